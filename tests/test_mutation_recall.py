"""Mutation recall: inject each kind of bug into clean, real-looking model and training code and
require the matching finding.

Every case takes a *correct* fixture file, checks that the rule is silent on it, applies one small
LibCST transform that reintroduces a bug the rule exists for (drop `training=self.training`, turn
`nn.ModuleList([...])` into a list, move `model.train()` out of the epoch loop, drop `.eval()`
before `no_grad` inference, ...) and requires at least one new finding of that rule. A rule whose
file does not exist yet, or a fixture another contributor has not written yet, is skipped with a
message naming it; a transform that no longer finds its target fails, so fixture edits that
remove a mutation target are noticed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List

import libcst as cst
import pytest
from libcst.metadata import MetadataWrapper, ParentNodeProvider

from modelint.engine import check_source
from modelint.rules import all_rules

ROOT = Path(__file__).resolve().parent.parent
REGISTERED = {r.code for r in all_rules()}


# ---------------------------------------------------------------------------------------------
# A tiny mutation toolkit


class _Mutator(cst.CSTTransformer):
    """Replaces the first node (in leave order) for which `match(node, parent_of)` holds."""

    def __init__(self, match, replace, parents):
        super().__init__()
        self.match = match
        self.replace = replace
        self.parents = parents
        self.done = False

    def on_leave(self, original, updated):
        if not self.done and self.match(original, self.parents.get):
            self.done = True
            return self.replace(updated)
        return updated


def mutate(source: str, match, replace) -> str:
    wrapper = MetadataWrapper(cst.parse_module(source))
    parents = wrapper.resolve(ParentNodeProvider)
    mutator = _Mutator(match, replace, parents)
    new = wrapper.module.visit(mutator)
    assert mutator.done, "mutation target not found: the fixture changed; update this test"
    return new.code


def code(node: cst.CSTNode) -> str:
    return cst.Module(body=[]).code_for_node(node)


def is_call(node, *suffixes: str) -> bool:
    return isinstance(node, cst.Call) and code(node.func).endswith(suffixes)


def has_kw(node: cst.Call, name: str) -> bool:
    return any(a.keyword is not None and a.keyword.value == name for a in node.args)


def drop_kw(name: str):
    def replace(node: cst.Call) -> cst.Call:
        args = [a for a in node.args if not (a.keyword is not None and a.keyword.value == name)]
        if args:
            args[-1] = args[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
        return node.with_changes(args=args)

    return replace


def reads_training(expr: cst.CSTNode) -> bool:
    return "self.training" in code(expr)


def in_function(parent_of, node, name: str) -> bool:
    n = parent_of(node)
    while n is not None:
        if isinstance(n, cst.FunctionDef):
            return n.name.value == name
        n = parent_of(n)
    return False


def statement_is(node, text: str) -> bool:
    return isinstance(node, cst.SimpleStatementLine) and code(node).strip() == text


def remove(_node):
    return cst.RemoveFromParent()


def unguard(node: cst.If):
    """`if <mode>: body` -> body (the guard is gone, the guarded statements stay)."""
    return cst.FlattenSentinel(list(node.body.body))


def hoist_train_call(node: cst.For):
    """Move the `X.train()` statement at the top of the loop body to just before the loop."""
    body = list(node.body.body)
    stmt = next(s for s in body if _is_train_call(s))
    body.remove(stmt)
    return cst.FlattenSentinel([stmt, node.with_changes(body=node.body.with_changes(body=body))])


def _is_train_call(stmt) -> bool:
    return isinstance(stmt, cst.SimpleStatementLine) and code(stmt).strip().endswith((".train()", ".to_train()"))


def for_with_train_call(node, parent_of) -> bool:
    return isinstance(node, cst.For) and isinstance(node.body, cst.IndentedBlock) and any(
        _is_train_call(s) for s in node.body.body
    )


def expr(text: str) -> cst.BaseExpression:
    return cst.parse_expression(text)


def statements(text: str) -> List[cst.BaseStatement]:
    return list(cst.parse_module(text).body)


def prepend_to_function(name: str, text: str, containing: str):
    """Insert statements at the top of the first function `name` whose source contains `containing`."""

    def match(node, parent_of):
        return isinstance(node, cst.FunctionDef) and node.name.value == name and containing in code(node)

    def replace(node: cst.FunctionDef):
        body = node.body.body
        start = 1 if body and _is_docstring(body[0]) else 0
        new = list(body[:start]) + statements(text) + list(body[start:])
        return node.with_changes(body=node.body.with_changes(body=new))

    return match, replace


def _is_docstring(stmt) -> bool:
    return (
        isinstance(stmt, cst.SimpleStatementLine)
        and isinstance(stmt.body[0], cst.Expr)
        and isinstance(stmt.body[0].value, (cst.SimpleString, cst.ConcatenatedString))
    )


# ---------------------------------------------------------------------------------------------
# The cases


@dataclass
class Case:
    id: str
    code: str
    path: str
    match: Callable
    replace: Callable


CASES: List[Case] = [
    # MDL101: functional dropout loses its training flag
    Case("drop-training-kw-F.dropout", "MDL101", "fixtures/transformer/block.py",
         lambda n, p: is_call(n, "F.dropout") and has_kw(n, "training"), drop_kw("training")),
    Case("drop-training-kw-F.dropout2d", "MDL101", "fixtures/cnn/resnet.py",
         lambda n, p: is_call(n, "dropout2d") and has_kw(n, "training"), drop_kw("training")),
    Case("drop-positional-training-F.dropout", "MDL101", "fixtures/transformer/block.py",
         lambda n, p: is_call(n, "F.dropout") and len(n.args) == 3 and n.args[2].keyword is None,
         lambda n: n.with_changes(args=[n.args[0], n.args[1].with_changes(comma=cst.MaybeSentinel.DEFAULT)])),
    # MDL102: alpha dropout / rrelu lose their training flag (they default to training=False)
    Case("drop-training-kw-F.alpha_dropout", "MDL102", "fixtures/cnn/resnet.py",
         lambda n, p: is_call(n, "alpha_dropout") and has_kw(n, "training"), drop_kw("training")),
    Case("drop-training-kw-F.rrelu", "MDL102", "fixtures/cnn/resnet.py",
         lambda n, p: is_call(n, "rrelu") and has_kw(n, "training"), drop_kw("training")),
    # MDL103: attention dropout made mode-independent
    Case("sdpa-dropout_p-ignores-mode-block", "MDL103", "fixtures/transformer/block.py",
         lambda n, p: isinstance(n, cst.Arg) and n.keyword is not None and n.keyword.value == "dropout_p"
         and isinstance(n.value, cst.IfExp) and reads_training(n.value.test),
         lambda n: n.with_changes(value=n.value.body)),
    Case("sdpa-dropout_p-ignores-mode-attention", "MDL103", "fixtures/attention/sdpa.py",
         lambda n, p: isinstance(n, cst.Arg) and n.keyword is not None and n.keyword.value == "dropout_p"
         and isinstance(n.value, cst.IfExp) and reads_training(n.value.test),
         lambda n: n.with_changes(value=n.value.body)),
    Case("remove-eval-zeroing-of-dropout_p", "MDL103", "fixtures/attention/sdpa.py",
         lambda n, p: isinstance(n, cst.If) and reads_training(n.test) and "dropout_p = 0" in code(n.body),
         remove),
    # MDL104: the `if self.training:` guard around sampling removed
    Case("unguard-multinomial-vrp", "MDL104", "fixtures/vrp/policy.py",
         lambda n, p: isinstance(n, cst.If) and reads_training(n.test) and "multinomial" in code(n.body),
         unguard),
    Case("unguard-rsample-gaussian-head", "MDL104", "fixtures/forward/pointer_policy.py",
         lambda n, p: isinstance(n, cst.If) and reads_training(n.test) and "dist.mean" in code(n.body), remove),
    # MDL105: grad mode used as the training flag
    Case("grad-mode-as-training-flag", "MDL105", "fixtures/transformer/block.py",
         lambda n, p: isinstance(n, cst.Arg) and code(n.value) == "self.training" and is_call(p(n), "F.dropout"),
         lambda n: n.with_changes(value=expr("torch.is_grad_enabled()"))),
    # MDL106: forward mutates module state in eval mode only
    Case("eval-only-state-mutation", "MDL106", "fixtures/transformer/block.py",
         *prepend_to_function("forward", "if not self.training:\n    self.p = 0.0\n", "self.p, self.training")),
    # MDL201: nn.ModuleList turned into a plain list
    Case("modulelist-to-list-generative", "MDL201", "fixtures/forward/generative.py",
         lambda n, p: is_call(n, "ModuleList") and len(n.args) == 1, lambda n: n.args[0].value),
    Case("modulelist-to-list-recurrent", "MDL201", "fixtures/perf/recurrent.py",
         lambda n, p: is_call(n, "ModuleList") and len(n.args) == 1, lambda n: n.args[0].value),
    # MDL202: a dropout module built in forward instead of __init__
    Case("dropout-built-in-forward-block", "MDL202", "fixtures/transformer/block.py",
         lambda n, p: is_call(n, "self.resid_drop"), lambda n: n.with_changes(func=expr("nn.Dropout(0.1)"))),
    Case("dropout-built-in-forward-attention", "MDL202", "fixtures/attention/sdpa.py",
         lambda n, p: is_call(n, "self.resid_dropout"), lambda n: n.with_changes(func=expr("nn.Dropout(0.1)"))),
    # MDL203: a train() override that stops delegating / returning self
    Case("train-override-no-return-self", "MDL203", "fixtures/forward/state.py",
         lambda n, p: statement_is(n, "return self") and in_function(p, n, "train"), remove),
    Case("train-override-no-super-state", "MDL203", "fixtures/forward/state.py",
         lambda n, p: statement_is(n, "super().train(mode)") and in_function(p, n, "train"), remove),
    Case("train-override-no-super-structure", "MDL203", "fixtures/structure/models.py",
         lambda n, p: statement_is(n, "super().train(mode)") and in_function(p, n, "train"), remove),
    # MDL204: .eval() replaced by assigning the flag
    Case("training-flag-assigned-probe", "MDL204", "fixtures/structure/models.py",
         lambda n, p: statement_is(n, "backbone.eval()"), lambda n: statements("backbone.training = False\n")[0]),
    Case("training-flag-assigned-saliency", "MDL204", "fixtures/perf/recurrent.py",
         lambda n, p: statement_is(n, "model.eval()"), lambda n: statements("model.training = False\n")[0]),
    # MDL301: model.train() moved out of the epoch loop whose helper calls .eval()
    Case("train-moved-out-of-epoch-loop", "MDL301", "fixtures/training/epoch_loop.py",
         for_with_train_call, hoist_train_call),
    Case("train-moved-out-of-epoch-loop-loops", "MDL301", "fixtures/loops/epoch_loop.py",
         for_with_train_call, hoist_train_call),
    Case("train-dropped-from-train_epoch", "MDL301", "fixtures/training/trainer.py",
         lambda n, p: statement_is(n, "self.model.train()") and in_function(p, n, "train_epoch"), remove),
    # MDL302: .eval() dropped before no_grad inference
    Case("eval-dropped-before-inference", "MDL302", "fixtures/training/inference.py",
         lambda n, p: statement_is(n, "model.eval()") and in_function(p, n, "predict"), remove),
    Case("eval-dropped-in-loader-helper", "MDL302", "fixtures/training/inference.py",
         lambda n, p: statement_is(n, "model.to(device).eval()"), lambda n: statements("model.to(device)\n")[0]),
    # MDL301 across files: the wrapper's `to_train()` hoisted out of the epoch loop
    Case("to-train-moved-out-of-epoch-loop-crossfile", "MDL301", "fixtures/training_loops/fit.py",
         for_with_train_call, hoist_train_call),
    # MDL302: `model.eval()` dropped before the per-epoch test of a train-then-test body
    Case("eval-dropped-before-epoch-test", "MDL302", "fixtures/training_loops/finetune.py",
         lambda n, p: statement_is(n, "model.eval()"), remove),
    # MDL303: `model.train()` dropped from a fine-tuning loop over a from_pretrained model
    Case("train-dropped-before-finetuning", "MDL303", "fixtures/training_loops/finetune.py",
         lambda n, p: statement_is(n, "model.train()"), remove),
    # MDL401: a mode query hoisted out of a loop moved back in
    Case("mode-query-moved-into-loop", "MDL401", "fixtures/perf/recurrent.py",
         lambda n, p: isinstance(n, cst.Name) and n.value == "tracing" and isinstance(p(n), cst.UnaryOperation),
         lambda n: expr("torch.jit.is_tracing()")),
    # MDL304: an evaluation routine that starts with model.train(); a training routine that starts in eval
    Case("eval-replaced-by-train-in-eval-routine", "MDL304", "fixtures/eval_routines/routines.py",
         lambda n, p: statement_is(n, "model.eval()") and in_function(p, n, "dump_predictions"),
         lambda n: statements("model.train()\n")[0]),
    Case("train-replaced-by-eval-in-training-routine", "MDL304", "fixtures/eval_routines/routines.py",
         lambda n, p: statement_is(n, "model.train()") and in_function(p, n, "train_epoch"),
         lambda n: statements("model.eval()\n")[0]),
    # MDL205: the frozen encoder's eval() hoisted out of the epoch loop whose model.train() resets it
    Case("frozen-eval-hoisted-out-of-epoch-loop", "MDL205", "fixtures/frozen_backbone/train.py",
         lambda n, p: isinstance(n, cst.For) and in_function(p, n, "finetune_head") and any(
             statement_is(s, "model.encoder.eval()") for s in n.body.body),
         lambda n: cst.FlattenSentinel(statements("model.encoder.eval()\n") + [n.with_changes(body=n.body.with_changes(
             body=[s for s in n.body.body if not statement_is(s, "model.encoder.eval()")]))])),
    # MDL207: the distillation teacher's eval() dropped: frozen by requires_grad_(False) only
    Case("frozen-teacher-eval-dropped", "MDL207", "fixtures/frozen_backbone/train.py",
         lambda n, p: statement_is(n, "teacher.eval()"), remove),
]

# Keras, MLX and Paddle (issue 19): the same bug kinds injected into each framework's fixtures.
CASES += [
    Case("keras-drop-training-in-tape", "MDL305", "fixtures/keras/custom_loop.py",
         lambda n, p: is_call(n, "model") and has_kw(n, "training") and "True" in code(n), drop_kw("training")),
    Case("keras-drop-training-in-train_step", "MDL305", "fixtures/keras/custom_loop.py",
         lambda n, p: is_call(n, "self") and has_kw(n, "training"), drop_kw("training")),
    Case("keras-drop-training-in-stateless_call", "MDL305", "fixtures/keras/custom_loop.py",
         lambda n, p: is_call(n, "stateless_call") and has_kw(n, "training"), drop_kw("training")),
    Case("keras-sublayer-training-literal", "MDL107", "fixtures/keras/layers.py",
         lambda n, p: isinstance(n, cst.Arg) and n.keyword is not None and n.keyword.value == "training"
         and code(n.value) == "training", lambda n: n.with_changes(value=expr("True"))),
    Case("keras-unguard-random-normal", "MDL104", "fixtures/keras/layers.py",
         lambda n, p: isinstance(n, cst.If) and code(n.test) == "training" and "random" in code(n.body), unguard),
    Case("mlx-unguard-random-normal", "MDL104", "fixtures/mlx/mlp.py",
         lambda n, p: isinstance(n, cst.If) and reads_training(n.test) and "random" in code(n.body), unguard),
    Case("mlx-dropout-built-in-call", "MDL202", "fixtures/mlx/mlp.py",
         lambda n, p: isinstance(n, cst.Attribute) and code(n) == "self.drop" and isinstance(p(n), cst.Call),
         lambda n: expr("nn.Dropout(0.2)")),
    Case("paddle-drop-training-kw-F.dropout", "MDL101", "fixtures/paddle/text_classifier.py",
         lambda n, p: is_call(n, "F.dropout") and has_kw(n, "training"), drop_kw("training")),
    Case("paddle-layerlist-to-list", "MDL201", "fixtures/paddle/text_classifier.py",
         lambda n, p: is_call(n, "nn.LayerList"), lambda n: n.args[0].value),
]

ALL_CODES = ("MDL101", "MDL102", "MDL103", "MDL104", "MDL105", "MDL106", "MDL201", "MDL202", "MDL203", "MDL204",
             "MDL301", "MDL302", "MDL303", "MDL401", "MDL205", "MDL304")
ALL_CODES += ("MDL107", "MDL305")  # issue 19 (Keras)
ALL_CODES += ("MDL207",)  # issue 14 (2026-12-07)


def _fixture_index(path: str):
    """The cross-file index of the fixture's folder (its siblings' imports, classes and mode
    summaries), so that a mutation in one file of a package is checked as part of it."""
    from modelint.analysis.index import ProjectIndex, facts_from_source

    index = ProjectIndex()
    for sibling in sorted((ROOT / path).parent.glob("*.py")):
        index.add(facts_from_source(sibling.read_bytes(), sibling))
    return index


def _findings(source: str, path: str, code: str):
    found = check_source(source, path=str(ROOT / path), select=[code], index=_fixture_index(path))
    assert not [f for f in found if f.code in ("MDL000", "MDL999")], found
    return sorted((f.line, f.message) for f in found if f.code == code)


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.code}-{c.id}")
def test_injected_bug_is_found(case: Case):
    if case.code not in REGISTERED:
        pytest.skip(f"{case.code}: rule not implemented yet")
    path = ROOT / case.path
    if not path.exists():
        pytest.skip(f"{case.path}: fixture not written yet")
    source = path.read_text()
    before = _findings(source, case.path, case.code)
    assert before == [], f"the clean fixture already has {case.code} findings: {before}"
    mutated = mutate(source, case.match, case.replace)
    assert mutated != source
    after = _findings(mutated, case.path, case.code)
    assert after, f"{case.code} missed the injected bug `{case.id}` in {case.path}"


@pytest.mark.parametrize("code", ALL_CODES)
def test_every_rule_has_a_mutation_case(code):
    if code not in REGISTERED:
        pytest.skip(f"{code}: rule not implemented yet")
    assert any(c.code == code for c in CASES), f"no mutation case injects a {code} bug"


def test_every_registered_rule_is_covered():
    """A rule added to the registry later needs a mutation case (or an entry in ALL_CODES)."""
    missing = sorted(REGISTERED - set(ALL_CODES))
    assert not missing, f"add mutation cases for {missing}"


# ---------------------------------------------------------------------------------------------
# Issue 15 (MDL201, helper i15b): the shapes MDL201 newly catches, each injected into the clean
# `fixtures/factories/pyramid.py`, checked as part of its package (the cross-file factory needs the
# index of `builders.py`).

from modelint.analysis.index import ProjectIndex, facts_from_source  # noqa: E402

_PYRAMID = "fixtures/factories/pyramid.py"


def _unwrap_call(callee: str, first_arg: str):
    """Match `<...callee>(<first_arg...>)` and replace it by its argument: the container stays plain."""
    def match(node, _parent):
        return is_call(node, callee) and len(node.args) == 1 and code(node.args[0].value).startswith(first_arg)
    return match, lambda node: node.args[0].value


STRUCTURE_CASES = [
    Case("factory-same-file", "MDL201", _PYRAMID, *_unwrap_call("nn.ModuleList", "[conv_bn(")),
    Case("factory-other-file", "MDL201", _PYRAMID, *_unwrap_call("nn.ModuleList", "[make_head(")),
    Case("list-concatenation", "MDL201", _PYRAMID, *_unwrap_call("ModuleList", "smooth")),
    Case("one-branch-registration", "MDL201", _PYRAMID, *_unwrap_call("nn.ModuleList", "tower")),
]


def _package_findings(source: str, path: Path, code: str):
    index = ProjectIndex()
    for sibling in sorted(path.parent.glob("*.py")):
        index.add(facts_from_source(sibling.read_bytes(), sibling))
    found = check_source(source, path=str(path), select=[code], index=index)
    assert not [f for f in found if f.code in ("MDL000", "MDL999")], found
    return sorted((f.line, f.message) for f in found if f.code == code)


@pytest.mark.parametrize("case", STRUCTURE_CASES, ids=lambda c: f"{c.code}-{c.id}")
def test_injected_structure_pattern_is_found(case: Case):
    path = ROOT / case.path
    source = path.read_text()
    assert _package_findings(source, path, case.code) == [], "the clean fixture already has findings"
    mutated = mutate(source, case.match, case.replace)
    after = _package_findings(mutated, path, case.code)
    assert after, f"{case.code} missed the injected bug `{case.id}` in {case.path}"
# MDL104, issue 15 (helper i15a): each idiom that controls a draw, taken away from the clean
# fixtures/forward/idioms.py, must bring the finding back.

_IDIOMS = "fixtures/forward/idioms.py"
MDL104_IDIOM_CASES = [
    # the default helper gets a value that is not an optional parameter: it is no longer a fill-in
    Case("default-helper-gets-a-required-value", "MDL104", _IDIOMS,
         lambda n, p: is_call(n, "default") and code(n.args[0].value) == "noise",
         lambda n: n.with_changes(args=[n.args[0].with_changes(value=expr("x")), *n.args[1:]])),
    # the knob test around the scaled noise removed
    Case("knob-guard-removed", "MDL104", _IDIOMS,
         lambda n, p: isinstance(n, cst.If) and code(n.test) == "gain > 0", unguard),
    # the noise no longer scaled by the knob (still under the knob's test: a fixed amount, always added)
    Case("knob-scale-replaced", "MDL104", _IDIOMS,
         lambda n, p: isinstance(n, cst.BinaryOperation) and code(n.left) == "gain" and "randn" in code(n.right),
         lambda n: n.with_changes(left=expr("0.1"))),
    # the draw made every call is now read outside the mode check too
    Case("layerdrop-coins-read-in-eval", "MDL104", _IDIOMS,
         lambda n, p: isinstance(n, cst.BooleanOperation) and reads_training(n.left) and "coins" in code(n.right),
         lambda n: n.right),
    # the lazy initialisation never sets its flag: it re-draws the codebook on every forward
    Case("lazy-init-flag-never-set", "MDL104", _IDIOMS,
         lambda n, p: statement_is(n, "self.initted.fill_(True)"), remove),
    # selection by mode arithmetic replaced by the draw alone
    Case("mode-arithmetic-dropped", "MDL104", _IDIOMS,
         lambda n, p: isinstance(n, cst.BinaryOperation) and isinstance(n.operator, cst.Add)
         and reads_training(n.left) and "gumbel" in code(n.left),
         lambda n: n.left.right),
    # the VAE stops returning its posterior: the caller has no mean to use in eval
    Case("vae-posterior-not-returned", "MDL104", _IDIOMS,
         lambda n, p: isinstance(n, cst.Return) and code(n.value) == "self.dec(z), mu, logvar",
         lambda n: n.with_changes(value=expr("self.dec(z)"))),
]


@pytest.mark.parametrize("case", MDL104_IDIOM_CASES, ids=lambda c: f"{c.code}-{c.id}")
def test_mdl104_idiom_removed_is_found(case: Case):
    test_injected_bug_is_found(case)


# Issue 15 (helper r15b): the patterns that stay reported beside each new exemption.
def _train_without_default_or_super(node: cst.FunctionDef) -> cst.FunctionDef:
    """`def train(self, mode=True): super().train(mode); ...` -> `def train(self, mode): ...`."""
    params = list(node.params.params)
    params[1] = params[1].with_changes(default=None, equal=cst.MaybeSentinel.DEFAULT)
    body = [s for s in node.body.body if not statement_is(s, "super().train(mode)")]
    return node.with_changes(params=node.params.with_changes(params=params), body=node.body.with_changes(body=body))


ISSUE15_CASES = [
    # MDL101: one call of a class that passes the mode elsewhere gets a literal `training=True`
    Case("literal-true-beside-mode", "MDL101", "fixtures/transformer/block.py",
         lambda n, p: isinstance(n, cst.Arg) and n.keyword is not None and n.keyword.value == "training"
         and code(n.value) == "self.training" and is_call(p(n), "F.dropout") and has_kw(p(n), "p"),
         lambda n: n.with_changes(value=expr("True"))),
    # MDL203: `mode` loses its default (loud, left to the option) and the override stops delegating (silent)
    Case("train-no-default-no-super", "MDL203", "fixtures/forward/state.py",
         lambda n, p: isinstance(n, cst.FunctionDef) and n.name.value == "train", _train_without_default_or_super),
    # MDL204: the flag assigned in `__init__` of a module with batch norm and dropout below it
    Case("training-flag-in-init-of-mode-dependent-module", "MDL204", "fixtures/structure/models.py",
         lambda n, p: statement_is(n, "self.drop_rate = drop_rate"),
         lambda n: cst.FlattenSentinel([n, *statements("self.training = False\n")])),
    # MDL105: the mode decides whether the *input* tracks gradients (not a fresh leaf)
    Case("mode-decides-input-requires-grad", "MDL105", "fixtures/transformer/block.py",
         *prepend_to_function("forward", "x = x.detach().requires_grad_(self.training)\n", "self.p, self.training")),
    # MDL104: a thunk bound first is also called directly: the draw runs on every forward
    Case("fill-in-thunk-also-called", "MDL104", "fixtures/forward/idioms.py",
         lambda n, p: statement_is(n, "noise = default(noise, lambda: torch.randn_like(x))"),
         lambda n: cst.FlattenSentinel(statements("draw = lambda: torch.randn_like(x)\n"
                                                  "noise = default(noise, draw) + 0.01 * draw()\n"))),
]


@pytest.mark.parametrize("case", ISSUE15_CASES, ids=lambda c: f"{c.code}-{c.id}")
def test_issue15_pattern_still_caught(case: Case):
    test_injected_bug_is_found(case)

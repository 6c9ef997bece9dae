"""The project-wide half of the mode model: per-function mode summaries that travel between files.

`modeflow` follows the mode of every model value through the statements of one file. A call into
another file (`evaluate(model)` imported from `engine.py`, `learner.to_eval()` of a wrapper class
defined elsewhere, `net = restore_from(path)`) needs what that function does to the mode, and that
is what this module computes, from the index pass (`analysis/index.py`), without a second parse
of the file: the functions whose text mentions a mode switch, a training step or a model loader
(`_RELEVANT`, one regex over the file) are cut out by indentation and parsed one by one with the
standard library's `ast` (the way the index reads class headers), into a small JSON-able program
(`FunctionIR`): mode switches, training steps, calls with their argument names, branches and loops.
`ProjectIndex.effect(qualname)` runs that program once per function (memoised), composing the
effects of the calls it makes through the project's import aliases, into an `Effect`: the mode each
parameter / `self.<attr>` has on exit ("eval", "train", "entry" = restored or unchanged, "unknown"),
whether a training step runs, what kind of value it returns (a freshly built or loaded model,
a model in eval mode, a callable that runs a training step), and which arguments it runs while
they are still in the mode they arrived in (`infers`: an evaluation helper that trusts its caller).

Documented limits: only functions whose own text matches `_RELEVANT` (or that call one in the same
file) are summarised; calls through objects whose class is not known are resolved by method name
when every project class defining that name agrees (`BY_NAME_MAX` definitions at most);
exceptions, `del` and containers are not followed.
"""

from __future__ import annotations

import ast
import bisect
import re
import textwrap
from dataclasses import dataclass, field
from typing import Dict, FrozenSet, Iterable, List, Optional, Sequence, Tuple

from modelint.analysis.astnames import dotted_ast
from modelint.analysis.calls import NOT_LITERAL
from modelint.analysis.conditions import atoms_ast, constant_ast, contradicts, falsified, remap
from modelint.frameworks import PROFILES

# A function is summarised when its text calls a mode switch or a method whose name says one
# (`.eval(`, `.train(`, `.to_eval(`, `.set_train_mode(`), runs a training step, or builds / loads a model.
# The IR's format: part of the cache key of a file's facts (`cache.Cache.file_key`), so a changed
# format is never read from an old cache entry. 2: the "load" return kind (a model that weights were
# loaded into: `net.load_state_dict(...)` on a returned local, or `torch.load(...)` returned),
# "eval" for a returned local switched with `.eval()` after it was bound, functions with no_grad /
# inference_mode / volatile=True and evaluation-like names summarised, calls after `volatile=True` or
# in a no-grad-decorated function marked as no-grad calls, `Effect.infers`, and a call handed a loss and
# an optimizer recorded as an optimizer step. 3: functions that call a loss scaler (`loss_scaler(loss,
# optimizer, ...)`, timm / DeiT's step with no `.backward(` or `.step(` in the text) are summarised.
# 4: local aliases (`net = model`) recorded under the original key (3 was given to both changes on two
# branches; 4 keeps a cache written by either apart from the merged format). 5: functions whose
# name holds an evaluation word after its first token (`compute_val_loss`, `run_validation`) are
# summarised too (their caller may hold the no_grad). 6: the "w" event, a local bound to a
# construction with the keys it is handed (`learner = Learner(model)`; `learner.to_eval()`).
# 7: guards (`analysis.conditions`): an `if` event carries the atoms its test fixes on the
# function's unrebound parameters in each arm, a call event the literal arguments it passes, and
# the IR the parameters' literal defaults and which parameters nothing rebinds (`run_epoch(loader,
# train=False)` runs no step of an `if train:` arm). 7 was given to two branches' changes; 8 is
# the merge: 7's guards plus an optimizer step over input tensors marked (["s", "o", line, 1]).
# 9: a conditional expression's arms are an "if" event (`m = m.train() if t else m.eval()` ran both).
# 10: a top-level function that calls, by name, a top-level function of its file that runs a parameter
# under no_grad is summarised too (`test_all_case(net, ...)` -> `test_single_case(net, ...)`), and a
# callee's `infers` reach the caller's parameters.
# 11: an optimizer over input tensors also when its lists are joined with `+` (`input_tensors`, one
# definition with the in-file flow's).
# 12: an optimizer step carries the models its optimizer is built over, when built in the function from
# readable `X.parameters()` (`Effect.trains` keeps only those: ADDA's fixed source encoder is not trained).
# 13: a plain name rebound to a copy / `from_pretrained` / whole-model load gets a key of its own
# (`model = deepcopy(model); model.eval()` does not put the caller's model in eval).
# 14: top-level functions that call a method of the project on a parameter named like a model
# (`model.get_embeddings(x)`) are summarised too (`_add_model_method_callers`).
# 15: a function that backpropagates only for a gradient on an input it made track gradients, and steps
# no optimizer, has no backward step (`_input_gradient_only`: set 13's AWP `attack_pgd`); a call handed a
# loss function and an optimizer (`loss_fns`, not a loss) is no step (`_NOT_A_LOSS`).
# 16-18: see the commits that raised them (class bodies record more calls).
# 19: `from_pretrained` on a tokenizer / config / processor receiver (`config_class`, any case) is no
# model (`Profile.loads_pretrained_model`); the index records pass-through helpers (`FileFacts.passes`)
# and class bodies the `if <param>:` above a construction (`CallSite.when`).
# 20: `if <test>: return` (or raise / break / continue) puts the rest of its block under the test's
# other arm (`if not model.training: return loss` before a step guards the step).
# 21: an optimizer's parameters are read from `params=` too (`Adam(params=net.parameters())`).
IR_VERSION = 22

_RELEVANT = (b".eval(", b".train(", b".to_eval(", b".to_train(", b".set_train", b".set_eval", b"backward(", b".step(",
             b"scaler(",
             b"from_pretrained", b"load_state_dict", b"torch.load", b"create_model",
             # inference: an evaluation helper that runs its model argument under no_grad without a
             # switch (MDL302 follows it from a training loop in another file)
             b"no_grad(", b"inference_mode(", b"volatile=True",
             # and evaluation routines by name, whose caller may hold the no_grad (`with torch.no_grad():
             # validation(model, ...)`); not `def test`: test suites would be summarised whole
             b"def valid", b"def eval", b"def _eval", b"def _valid", b"def predict", b"def infer",
             # decoding routines (`greedy_decode`, `beam_search`): `routines.evaluation_like_name`
             b"def greedy", b"def beam")
_NAME = re.compile(rb"[ \t]*(\w+)")
# a name that says it holds a model (an imported `net` / `model` object is still run as one)
MODEL_NAME = re.compile(r"model|net|encoder|decoder|backbone|policy|generator|discriminator|classifier", re.IGNORECASE)
# `<model-like name>.<method>(`: a call of a method on something named like a model, in bytes (the
# summaries' cheap filter for `_add_model_method_callers`)
_MODEL_METHOD_CALL = re.compile(rb"(?i)\b\w*(?:" + MODEL_NAME.pattern.encode() + rb")\w*\.[A-Za-z]\w*\(")

_OPTIMIZER = re.compile(r"optim|(^|_)opt(s|imizer)?(_|$|\d)|^opt[A-Z0-9_]|scaler$|^scaler", re.IGNORECASE)
_NOT_OPTIMIZER = re.compile(r"sched|lr_", re.IGNORECASE)
# Calls that change nothing about a mode and are too common to record.
_NO_GRAD_NAMES = frozenset({"no_grad", "inference_mode"})
_SKIP_CALLS = frozenset({"print", "len", "range", "enumerate", "zip", "isinstance", "getattr", "setattr", "hasattr",
                         "list", "dict", "tuple", "set", "str", "int", "float", "format", "append", "item", "sum",
                         "min", "max", "mean", "to", "cuda", "cpu", "size", "view", "reshape", "zero_grad", "no_grad",
                         "inference_mode", "update", "log", "info", "debug", "warning", "join", "get", "items"})
# Calls that load a whole pickled model (`torch.load(path)`): it keeps the mode it was saved in.
_WHOLE_MODEL_LOADS = frozenset(
    name for p in PROFILES for name, kind in p.model_loaders.items() if kind == "load")

# Method names resolved across the project by name only: not the framework's own switches, steps
# and forward (every module has them; their meaning is fixed).
NOT_BY_NAME = frozenset({"train", "eval", "step", "forward", "backward", "__call__", "__init__", "zero_grad",
                          "set_training_mode", "to", "cuda", "cpu", "load_state_dict", "state_dict", "parameters"})
BY_NAME_MAX = 3


def _peel(node: ast.AST) -> ast.AST:
    """`model.to(dev).cuda()` -> `model`."""
    while isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in (
        "to", "cuda", "cpu", "half", "float", "double", "bfloat16", "requires_grad_", "train", "eval"
    ):
        node = node.func.value
    return node


# calls that keep a plain tensor what it is (`[delta.requires_grad_()]`, `input_tensors`)
INPUT_PEEL = frozenset({"requires_grad_", "to", "cuda", "cpu", "detach", "clone", "float", "half"})


def _peel_input(node: ast.AST) -> ast.AST:
    """`delta.requires_grad_()` / `z.detach().cuda()` -> the tensor's name."""
    while isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in INPUT_PEEL:
        node = node.func.value
    return node


def input_tensors(expr: ast.AST, bound=lambda name: ()) -> bool:
    """The first argument of an optimizer built over plain tensors, not a model's parameters (an
    image, a latent, a perturbation: style transfer, adversarial inputs, latent search): `[image]`,
    `[z.requires_grad_()]`; lists joined with `+`; and the values of a dict of a model's buffers
    (`bufs = {n: b for n, b in G.named_buffers()}`; `[w] + list(bufs.values())`: GAN inversion
    optimizes a latent and the noise buffers, stylegan2-ada's projector). `[model.weight]` or
    `[{"params": ...}]` is not such a list; `bound(name)` gives the values a name is bound to. One
    definition for both halves of the mode model (`modeflow.optimizer_over_inputs` parses the
    LibCST expression into this `ast`)."""
    if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Add):
        return input_tensors(expr.left, bound) and input_tensors(expr.right, bound)
    if isinstance(expr, ast.Call) and _last_name(expr.func) == "list" and len(expr.args) == 1:
        inner = expr.args[0]
        if isinstance(inner, ast.Call) and isinstance(inner.func, ast.Attribute) and inner.func.attr == "values":
            inner = inner.func.value
        values = list(bound(inner.id)) if isinstance(inner, ast.Name) else []
        return bool(values) and all(_buffers_of_a_model(v) for v in values)
    if not isinstance(expr, (ast.List, ast.Tuple)) or not expr.elts:
        return False
    return all(isinstance(_peel_input(e), ast.Name) for e in expr.elts)


def _params_entry(group: ast.AST) -> Optional[ast.AST]:
    """The `"params"` value of a parameter group `{"params": net.parameters(), "lr": 1e-3}`."""
    if not isinstance(group, ast.Dict):
        return None
    return next((v for k, v in zip(group.keys, group.values) if isinstance(k, ast.Constant) and k.value == "params"), None)


def _last_name(func: ast.AST) -> Optional[str]:
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None


def _buffers_of_a_model(value: ast.AST) -> bool:
    """A comprehension over `X.named_buffers()` / `X.buffers()`: tensors that are not parameters."""
    if not isinstance(value, (ast.DictComp, ast.ListComp)):
        return False
    source = value.generators[0].iter
    return isinstance(source, ast.Call) and _last_name(source.func) in ("named_buffers", "buffers") and isinstance(
        source.func, ast.Attribute)


def optimizer_name(name: str) -> bool:
    return bool(_OPTIMIZER.search(name)) and not _NOT_OPTIMIZER.search(name)


def _train_flag(call: ast.Call) -> Optional[object]:
    """True / False for a literal `train(...)` argument, the flag's name for `train(was)`, None otherwise."""
    arg = call.args[0] if call.args else next((k.value for k in call.keywords if k.arg == "mode"), None)
    if arg is None:
        return True
    if isinstance(arg, ast.Constant) and isinstance(arg.value, (bool, int)):
        return bool(arg.value)
    if isinstance(arg, ast.Name):
        return arg.id
    return None


class _Builder:
    """ast function -> IR. Events: ["m", key, "eval"|"train"|"unknown"|"restore", line];
    ["s", "o"|"b", line(, 1: an optimizer over input tensors, its models' keys or None)]; ["c", callee, [arg keys], {kw: key},
    line, no_grad, steps, [[position or keyword, literal]]]; ["if", [...], [...], body atoms, else
    atoms] (`conditions`: atoms on the `fixed` parameters only); ["loop", [...]]; ["w", local, class,
    [arg keys], {kw: key}] (a local bound to a construction)."""

    def __init__(self, line0: int, fixed: FrozenSet[str] = frozenset(), once: FrozenSet[str] = frozenset()):
        self.line0 = line0
        self.fixed = fixed  # parameters nothing in the function rebinds
        self.once = once  # plain names bound exactly once (`is_train = mode == "train"`)
        self.derived: Dict[str, tuple] = {}  # such a local -> the atoms it stands for when true
        self.saved: Dict[str, str] = {}  # was = model.training
        self.returns: List[str] = []
        self.step_fns: set = set()
        self.kinds: Dict[str, str] = {}  # local -> kind of value bound
        self.no_grad = 0  # depth of `with torch.no_grad()` / `inference_mode()` blocks
        # `net = model` / `net = model.to(dev)`: a local that is another name for a parameter or an
        # attribute; its switches and runs are recorded under the original key (issue 14: a training
        # function binding its parameter to `net` and calling `net.train()` looked like no switch at all)
        self.aliases: Dict[str, str] = {}
        self.wrappers: set = set()  # locals bound to a construction (`learner = Learner(net)`)
        self.input_opts: set = set()  # locals bound to an optimizer over input tensors (`SGD([delta])`)
        # locals bound to an optimizer over models' parameters built here -> those models' keys
        self.opt_owners: Dict[str, List[str]] = {}

    def key(self, node: ast.AST) -> Optional[str]:
        """The dotted key of an expression (mode-preserving calls peeled), through local aliases."""
        key = dotted_ast(_peel(node))
        if key is None:
            return None
        root, dot, rest = key.partition(".")
        return self.aliases[root] + dot + rest if root in self.aliases else key

    def line(self, node: ast.AST) -> int:
        return self.line0 + getattr(node, "lineno", 1) - 1

    def body(self, stmts: Iterable[ast.stmt]) -> list:
        out: list = []
        stmts = list(stmts)
        for i, s in enumerate(stmts):
            if isinstance(s, ast.If) and not s.orelse and i + 1 < len(stmts) and _ends_ast(s.body):
                # `if not model.training: return loss` then the step: the rest is the `else` arm
                self.expr(s.test, out)
                out.append(["if", self.body(s.body), self.body(stmts[i + 1:]), self._atoms(s.test, True),
                            self._atoms(s.test, False)])
                return out
            self.stmt(s, out)
        return out

    def stmt(self, s: ast.stmt, out: list) -> None:
        if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef)):
            inner = _Builder(self.line0).body(s.body)
            if _has_step(inner):
                self.step_fns.add(s.name)
            return
        if isinstance(s, ast.ClassDef):
            return
        if isinstance(s, ast.If):
            flag = s.test.id if isinstance(s.test, ast.Name) else None
            if flag in self.saved and not s.orelse:
                # `if was_training: model.train()`: the saved mode comes back
                self.expr(s.test, out)
                out.append(["m", self.saved[flag], "restore", self.line(s)])
                return
            self.expr(s.test, out)
            out.append(["if", self.body(s.body), self.body(s.orelse), self._atoms(s.test, True), self._atoms(s.test, False)])
            return
        if isinstance(s, (ast.For, ast.AsyncFor, ast.While)):
            self.expr(s.iter if not isinstance(s, ast.While) else s.test, out)
            out.append(["loop", self.body(s.body)])
            out.extend(self.body(s.orelse))
            return
        if isinstance(s, (ast.With, ast.AsyncWith)):
            quiet = 0
            for item in s.items:
                self.expr(item.context_expr, out)
                ctx = item.context_expr.func if isinstance(item.context_expr, ast.Call) else item.context_expr
                quiet += (dotted_ast(ctx) or "").rsplit(".", 1)[-1] in _NO_GRAD_NAMES
            self.no_grad += quiet
            out.extend(self.body(s.body))
            self.no_grad -= quiet
            return
        if isinstance(s, ast.Try) or type(s).__name__ == "TryStar":
            main = self.body(s.body) + self.body(s.orelse)
            handlers = [self.body(h.body) for h in s.handlers]
            alt: list = main
            for h in handlers:
                alt = [["if", alt, h]]
            out.extend(alt)
            out.extend(self.body(s.finalbody))
            return
        if isinstance(s, ast.Return):
            if s.value is not None:
                self.expr(s.value, out)
                self.returns.append(self.value_kind(s.value))
            return
        if isinstance(s, (ast.Assign, ast.AnnAssign)):
            value = s.value
            if value is None:
                return
            self.expr(value, out)
            targets = s.targets if isinstance(s, ast.Assign) else [s.target]
            for t in targets:
                key = dotted_ast(t)
                if key is None:
                    continue
                self._alias(key, value)
                if "." not in key and _fresh_object(value):
                    # `model = deepcopy(model)`: from here on the name holds the function's own object
                    # (modeflow.FRESH_KINDS), so its switches and runs are a local's, not the caller's
                    self.aliases[key] = f"{key}@{self.line(s)}"
                self._note_wrapper(key, value, out)
                self._note_derived(key, value)
                self._note_input_optimizer(key, value)
                src = dotted_ast(value)
                if src and src.endswith(".training"):
                    self.saved[key] = src[: -len(".training")]
                self.kinds[key] = self.value_kind(value)
            return
        for child in ast.iter_child_nodes(s):
            if isinstance(child, ast.expr):
                self.expr(child, out)

    def _note_wrapper(self, target: str, value: ast.AST, out: list) -> None:
        """`learner = Learner(model)`: a local bound to a construction, with the caller's keys it is
        handed (["w", target, class, [arg keys], {kw: key}]), so that `learner.to_eval()` can put
        `model` in eval where `Learner.__init__` keeps it as `self.model` (issue 14: the evaluation
        helper of another file switching through a wrapper object); a later rebinding ends it."""
        func = dotted_ast(value.func) if isinstance(value, ast.Call) else None
        if "." not in target and func and func.rsplit(".", 1)[-1][:1].isupper():
            args = []
            for a in value.args:
                if isinstance(a, ast.Starred):
                    break
                args.append(self.key(a))
            out.append(["w", target, func, args, {k.arg: self.key(k.value) for k in value.keywords if k.arg}])
            self.wrappers.add(target)
        elif target in self.wrappers:
            out.append(["w", target, "", [], {}])
            self.wrappers.discard(target)

    def _atoms(self, test: ast.AST, arm: bool) -> list:
        """The atoms on fixed parameters, and on their mode flag (`if model.training:`: a caller that
        put the model in eval runs no step there, `modeflow`'s `_mode_values`)."""
        return [list(a) for a in atoms_ast(test, arm, self.derived)
                if a[0] in self.fixed or (a[0].endswith(".training") and a[0][: -len(".training")] in self.fixed)]

    def _note_derived(self, target: str, value: ast.AST) -> None:
        """`is_train = (loop_type == "train")`, bound once: a later `if is_train:` tests `loop_type`."""
        if target in self.once and isinstance(value, (ast.Compare, ast.UnaryOp, ast.BoolOp, ast.Name)):
            atoms = tuple(a for a in atoms_ast(value, True, self.derived) if a[0] in self.fixed)
            if len(atoms) == 1:
                self.derived[target] = atoms

    def _note_input_optimizer(self, target: str, value: ast.AST) -> None:
        """`opt_delta = optim.SGD([delta], lr=...)`: an optimizer over a list of plain tensors (an
        adversarial perturbation, an image), whose step trains no model (`input_tensors`; TRADES'
        `trades_loss` steps one while the model is in eval). Names are not followed here (a dict of
        buffers bound earlier is seen by the in-file flow only)."""
        self.input_opts.discard(target)
        self.opt_owners.pop(target, None)
        first = None
        if isinstance(value, ast.Call):  # the parameters, positional or as `params=` (set 19's PKT)
            first = value.args[0] if value.args else next((k.value for k in value.keywords if k.arg == "params"), None)
        if first is not None and input_tensors(first):
            self.input_opts.add(target)
        elif first is not None and optimizer_name(target.rsplit(".", 1)[-1]):
            owners = self._param_owners(first)
            if owners:
                self.opt_owners[target] = owners

    def _param_owners(self, expr: ast.AST) -> Optional[List[str]]:
        """The models whose parameters an optimizer is built over: `net.parameters()`,
        `list(a.parameters()) + list(b.parameters())`, `itertools.chain(a.parameters(), b.parameters())`,
        `[{"params": a.parameters()}, ...]`; None when any part is something else."""
        if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Add):
            left, right = self._param_owners(expr.left), self._param_owners(expr.right)
            return left + right if left is not None and right is not None else None
        if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Attribute) and expr.func.attr in (
                "parameters", "named_parameters") and not expr.args:
            key = self.key(expr.func.value)
            return [key] if key else None
        if isinstance(expr, ast.Call) and _last_name(expr.func) in ("list", "chain") and expr.args:
            parts = [self._param_owners(a) for a in expr.args]
            return [k for p in parts for k in p] if all(p is not None for p in parts) else None
        if isinstance(expr, (ast.List, ast.Tuple)) and expr.elts:
            parts = [self._param_owners(_params_entry(e)) if _params_entry(e) is not None else None for e in expr.elts]
            return [k for p in parts for k in p] if all(p is not None for p in parts) else None
        return None

    def _alias(self, target: str, value: ast.AST) -> None:
        """Record `target = <a name or attribute>` as an alias (a plain local only); any other
        binding of the target ends its alias."""
        self.aliases.pop(target, None)
        if "." in target or not isinstance(_peel(value), (ast.Name, ast.Attribute)):
            return
        src = self.key(value)
        if src is not None and src.partition(".")[0] != target and not src.endswith(".training"):
            self.aliases[target] = src

    def value_kind(self, value: ast.AST) -> str:
        """What a bound / returned value is, as far as its text says."""
        if isinstance(value, ast.Name) and value.id in self.step_fns:
            return "step_fn"
        if isinstance(value, ast.Lambda) and _has_step(_Builder(self.line0).body([ast.Expr(value.body)])):
            return "step_fn"
        key = self.key(value)
        if key is not None:
            return self.kinds.get(key, f"key:{key}")
        if isinstance(value, ast.Call):
            func = dotted_ast(value.func) or ""
            last = func.rsplit(".", 1)[-1]
            if _loads_pretrained(func):
                return "from_pretrained"
            if func in _WHOLE_MODEL_LOADS:
                return "load"
            if last == "deepcopy" and value.args:
                return self.value_kind(value.args[0])
            if last[:1].isupper():
                return f"construct:{func}"
            if func:
                return f"call:{func}"
        return ""

    def expr(self, node: ast.AST, out: list) -> None:
        """Calls in evaluation order (receivers and arguments first); lambdas are not entered."""
        if isinstance(node, ast.Lambda):
            return
        if isinstance(node, ast.IfExp):  # `model.train() if is_train else model.eval()`: one arm runs
            self.expr(node.test, out)
            body, orelse = [], []
            self.expr(node.body, body)
            self.expr(node.orelse, orelse)
            if body or orelse:
                out.append(["if", body, orelse, self._atoms(node.test, True), self._atoms(node.test, False)])
            return
        for child in ast.iter_child_nodes(node):
            self.expr(child, out)
        if isinstance(node, ast.Call):
            self.call(node, out)

    def call(self, call: ast.Call, out: list) -> None:
        func = call.func
        if any(k.arg == "volatile" and isinstance(k.value, ast.Constant) and k.value.value is True for k in call.keywords):
            self.no_grad += 1  # pre-0.4 inference: the rest of the function runs without gradients
        if isinstance(func, ast.Attribute):
            attr, recv = func.attr, self.key(func.value)
            if attr == "eval" and not call.args and recv:
                out.append(["m", recv, "eval", self.line(call)])
                if recv in self.kinds:  # `net = build(); net.eval(); return net` returns an eval model
                    self.kinds[recv] = "eval"
                return
            if attr == "train" and recv:
                flag = _train_flag(call)
                if recv in self.kinds and self.kinds[recv] == "eval":
                    self.kinds[recv] = ""  # switched again: what is returned is not known to be in eval
                if isinstance(flag, str):
                    value = "restore" if flag in self.saved else "unknown"
                else:
                    value = "unknown" if flag is None else "train" if flag else "eval"
                out.append(["m", recv, value, self.line(call)])
                return
            if attr == "load_state_dict" and recv and "." not in recv and not self.kinds.get(recv, "").startswith("construct:"):
                # `net = torchvision.models.resnet18(); net.load_state_dict(...)`; `return net` returns a
                # loaded model (a project class's construction keeps its "construct:" kind)
                self.kinds[recv] = "load"
            if attr in ("backward", "manual_backward"):
                out.append(["s", "b", self.line(call)])
                return
            if attr == "step":
                last = recv.rsplit(".", 1)[-1] if recv else ""
                if optimizer_name(last):
                    out.append(["s", "o", self.line(call), 1 if recv in self.input_opts else 0,
                                self.opt_owners.get(recv)])
                return
        callee = self.key(func) if isinstance(func, (ast.Name, ast.Attribute)) else None
        if callee is None or callee.rsplit(".", 1)[-1] in _SKIP_CALLS:
            return
        if isinstance(func, ast.Name) and func.id in self.step_fns:
            out.append(["s", "o", self.line(call)])
            return
        args = [self.key(a) for a in call.args if not isinstance(a, ast.Starred)]
        kws = {k.arg: self.key(k.value) for k in call.keywords if k.arg}
        # `loss_scaler(loss, optimizer, clip_grad=...)` (timm's NativeScaler, DeiT): a callable handed the
        # loss and the optimizer steps it, when it is not a summarised function (7th field: 1)
        steps = loss_and_optimizer([*args, *kws.values()]) and not callee.rsplit(".", 1)[-1][:1].isupper()
        before_star = [a for a in call.args[:next((i for i, a in enumerate(call.args) if isinstance(a, ast.Starred)), None)]]
        literals = [[i, v] for i, v in enumerate(constant_ast(a) for a in before_star) if v is not NOT_LITERAL]
        literals += [[k.arg, constant_ast(k.value)] for k in call.keywords if k.arg and constant_ast(k.value) is not NOT_LITERAL]
        out.append(["c", callee, args, kws, self.line(call), 1 if self.no_grad else 0, 1 if steps else 0, literals])


_LOSS = re.compile(r"(^|_)loss(es)?($|_)", re.IGNORECASE)
# names of what computes or weighs a loss, not of a loss value (`scheduler(i, optimizer, loss_fns,
# loss_weights)`: set 15's boundary-loss, taken for a `loss_scaler(loss, optimizer)` step)
_NOT_A_LOSS = re.compile(r"(^|_)loss(es)?_(fns?|funcs?|functions?|weights?|types?|cfg|config|names?|modules?)($|_)",
                         re.IGNORECASE)


def loss_and_optimizer(keys: List[Optional[str]]) -> bool:
    """Arguments that name a loss (`loss`, `total_loss`; not `loss_scaler`) and an optimizer
    (`optimizer`, `opt_g`)."""
    last = [k.rsplit(".", 1)[-1] for k in keys if k]
    return any(_LOSS.search(k) and not _NOT_A_LOSS.search(k) and not optimizer_name(k) for k in last) \
        and any(optimizer_name(k) for k in last)


def _has_step(events: list) -> bool:
    return any(e[0] == "s" for e in _events(events))


@dataclass
class FunctionIR:
    """One function's summary program (JSON-able: `to_json` / `from_json`)."""

    params: List[str]
    body: list
    returns: List[str] = field(default_factory=list)
    line: int = 0
    is_method: bool = False
    decorators: List[str] = field(default_factory=list)
    defaults: Dict[str, object] = field(default_factory=dict)  # parameter -> its literal default
    fixed: List[str] = field(default_factory=list)  # the parameters nothing in the function rebinds
    required: int = 0  # the parameters a call must give (no default; not `self`, `*args`, `**kwargs`)

    def to_json(self) -> list:
        return [self.params, self.body, self.returns, self.line, self.is_method, self.decorators, self.defaults, self.fixed,
                self.required]

    @staticmethod
    def from_json(raw: list) -> "FunctionIR":
        return FunctionIR(*raw)


def _block_end(source: bytes, pos: int, indent: int) -> int:
    """Position just after the block whose header line starts at `pos` (indent `indent`). A line that
    starts with a closing bracket at that indent closes a wrapped header (black's `def f(\n    a,\n):`)
    and does not end the block: it dropped 222 of the 903 summarised functions of upstream19's trees."""
    i = source.find(b"\n", pos)
    n = len(source)
    while 0 <= i < n - 1:
        start = i + 1
        j = start
        while j < n and source[j] in b" \t":
            j += 1
        if j < n and source[j] not in b"\r\n#)]}" and j - start <= indent:
            return start
        i = source.find(b"\n", start)
    return n


def summaries_from_source(source: bytes) -> Dict[str, FunctionIR]:
    """`name` / `Class.name` -> FunctionIR for the file's relevant functions (top level and methods
    of classes, by the innermost class's name; functions nested in a function are part of its
    summary). Cost: `find` loops over the file, then only the functions holding a match are cut
    out and parsed (timm: 0.1 s for 300 files)."""
    hits = _hits(source)
    if not hits:
        return {}
    headers = sorted(_headers(source, b"def ", False) + _headers(source, b"class ", True))
    defs = [h for h in headers if not h[3]]
    if not defs:
        return {}
    bounds = dict(zip((d[0] for d in defs), _next_outer(defs, len(source))))
    out: Dict[str, FunctionIR] = {}
    for k, (pos, indent, name, is_class) in enumerate(headers):
        if is_class:
            continue
        i = bisect.bisect_left(hits, _decorators_start(source, pos))
        if i == len(hits):
            break
        if hits[i] >= bounds[pos]:
            continue  # no match before the next def at this indent or less: not in this function
        outer = next((h for h in reversed(headers[:k]) if h[1] < indent), None) if indent else None
        if outer is not None and not outer[3]:
            continue  # nested in a function: part of that function's summary
        end = _block_end(source, pos, indent)
        if hits[i] >= end:
            continue
        owner = outer[2] if outer is not None else None
        ir = _parse_def(source, pos, end, owner is not None)
        if ir is not None:
            out.setdefault(f"{owner}.{name}" if owner else name, ir)
    _add_callers_of_helpers(source, headers, out)
    _add_model_method_callers(source, headers, out)
    return out


def _add_model_method_callers(source: bytes, headers: List[tuple], out: Dict[str, FunctionIR]) -> None:
    """Top-level functions that call a method of the project on a parameter named like a model
    (`def dataset_embeddings(model, loader)` running `model.get_embeddings(x)`), not already summarised.
    What the method does is known only across files (SCARF's `get_embeddings` is decorated with
    `@torch.inference_mode()` in the model's class, and nothing in the helper's text says so), so the
    helper is summarised and the project index resolves the method by name (`method_effect`): a
    training script of another file calling `dataset_embeddings(model, test_loader)` after training
    then runs the model's encoder in training mode (set 10's pytorch-scarf). The framework's own
    methods (`parameters`, `to`, `state_dict`, ...) are not such calls; in transformers 68 of 2,912
    files' functions pass the text filter."""
    for pos, indent, name, is_class in headers:
        if is_class or indent or name in out:
            continue
        end = _block_end(source, pos, indent)
        if _MODEL_METHOD_CALL.search(source, pos, end) is None:
            continue
        ir = _parse_def(source, pos, end, False)
        if ir is not None and _calls_a_model_parameters_method(ir.body, {p for p in ir.params if MODEL_NAME.search(p)}):
            out[name] = ir


def _calls_a_model_parameters_method(events: list, params: set) -> bool:
    """A call event `["c", "model.<method>", ...]` on one of `params`, of a method that is not the
    framework's own (`NOT_BY_NAME`: every module has those, their meaning is fixed)."""
    def own_method(e: list) -> bool:
        head, _, last = e[1].partition(".")
        return head in params and bool(last) and "." not in last and last not in NOT_BY_NAME and not last.startswith("_")

    return _any_call(events, own_method)


def _any_call(events: list, test) -> bool:
    """A call event (`["c", key, args, kws, line, no_grad, ...]`) `test` accepts, in any arm or loop."""
    return any(e[0] == "c" and test(e) for e in _events(events))


def _parse_def(source: bytes, pos: int, end: int, is_method: bool) -> Optional[FunctionIR]:
    """The IR of the def whose header starts at `pos` and whose body ends at `end`, decorators included."""
    first = _decorators_start(source, pos)
    return _parse_function(source[first:end], source.count(b"\n", 0, first) + 1, is_method)


def _add_callers_of_helpers(source: bytes, headers: List[tuple], out: Dict[str, FunctionIR]) -> None:
    """Top-level functions that call, by name, a top-level function of the file that runs one of its
    parameters under no_grad without a switch (`def test_all_case(net, ...)` looping over
    `test_single_case(net, patch)`: SSL4MIS's val_3D). Their summaries carry the helper's `infers`
    to a training script of another file that calls the outer one. Two rounds reach a caller of a
    caller; only files that already hold such a helper pay for the text search."""
    for _ in range(2):
        helpers = [n for n, ir in out.items() if "." not in n and _runs_a_parameter_quietly(ir.body, set(ir.params))]
        if not helpers:
            return
        words = [h.encode() + b"(" for h in helpers]
        added = False
        for pos, indent, name, is_class in headers:
            if is_class or indent or name in out:
                continue
            end = _block_end(source, pos, indent)
            if any(_calls_by_name(source, w, pos, end) for w in words):
                ir = _parse_def(source, pos, end, False)
                if ir is not None:
                    out[name] = ir
                    added = True
        if not added:
            return


def _calls_by_name(source: bytes, word: bytes, start: int, end: int) -> bool:
    i = source.find(word, start, end)
    while i >= 0:
        if i == 0 or not (source[i - 1:i].isalnum() or source[i - 1:i] in b"_."):
            return True
        i = source.find(word, i + 1, end)
    return False


def _runs_a_parameter_quietly(events: list, params: set) -> bool:
    """A call event under no_grad (`["c", key, args, kws, line, 1, ...]`) that runs a parameter."""
    return _any_call(events, lambda e: len(e) > 5 and e[5] and e[1].partition(".")[0] in params)


def _decorators_start(source: bytes, pos: int) -> int:
    """Start of the decorator lines (`@...`) right above the header line at `pos`."""
    while pos > 0:
        prev = source.rfind(b"\n", 0, pos - 1) + 1
        if not source[prev:pos].lstrip().startswith(b"@"):
            break
        pos = prev
    return pos


def _headers(source: bytes, word: bytes, is_class: bool) -> List[tuple]:
    """(line start, indent, name, is_class) of each `def` / `class` header (`find` loops: the
    equivalent multi-line regex costs as much as the rest of the summaries)."""
    out = []
    i = source.find(word)
    while i >= 0:
        start = source.rfind(b"\n", 0, i) + 1
        head = source[start:i]
        stripped = head.strip(b" \t")
        if stripped in (b"", b"async"):
            m = _NAME.match(source, i + len(word))
            if m:
                out.append((start, len(head) - len(head.lstrip(b" \t")), m.group(1).decode(), is_class))
        i = source.find(word, i + 1)
    return out


def _hits(source: bytes) -> List[int]:
    """Sorted positions of the `_RELEVANT` words outside docstring examples (plain `find` loops:
    a regex alternation over these words costs 10x more on transformers' 2,900 files)."""
    out: List[int] = []
    for word in _RELEVANT:
        i = source.find(word)
        while i >= 0:
            if not _in_doctest(source, i):
                out.append(i)
            i = source.find(word, i + 1)
    out.extend(_held_out_defs(source))
    i = source.find(b"@")
    while i >= 0:  # a decorator that switches to eval around the call (`@eval_decorator`)
        end = source.find(b"\n", i)
        if source.find(b"eval", i, end if end >= 0 else len(source)) >= 0 and not _in_doctest(source, i):
            out.append(i)
        i = source.find(b"@", i + 1)
    out.sort()
    return out


# A word of a function's name that says it evaluates on held-out data, after its first word
# (`compute_val_loss`, `run_validation`, `do_eval`; names that start with one are `_RELEVANT`).
_HELD_OUT_WORDS = frozenset({b"val", b"valid", b"validate", b"validation", b"eval", b"evaluate", b"evaluation"})


def _held_out_defs(source: bytes) -> List[int]:
    """Positions of `def` headers named for an evaluation (one `find` loop over the defs)."""
    out = []
    i = source.find(b"def ")
    while i >= 0:
        m = _NAME.match(source, i + 4)
        if m and _HELD_OUT_WORDS.intersection(m.group(1).lower().split(b"_")[1:]):
            out.append(i)
        i = source.find(b"def ", i + 4)
    return out


def _next_outer(defs: List[tuple], end: int) -> List[int]:
    """For each def, the position of the next def at the same or a smaller indent (or `end`): an
    upper bound of where its body ends."""
    out = [end] * len(defs)
    stack: List[int] = []  # indexes of defs still waiting for their bound
    for j, (pos, indent, *_) in enumerate(defs):
        while stack and defs[stack[-1]][1] >= indent:
            out[stack.pop()] = pos
        stack.append(j)
    return out


def _in_doctest(source: bytes, pos: int) -> bool:
    """A match on a `>>> ...` / `... ...` docstring example line (transformers documents
    `from_pretrained` in almost every model's docstrings)."""
    start = source.rfind(b"\n", 0, pos) + 1
    head = source[start:pos].lstrip()
    return head.startswith((b">>>", b"...", b"#"))


def _outdented_comments_blanked(text: str) -> str:
    """`text` with the comment lines indented less than its first line made blank (line numbers
    kept): a `####...` rule in column 0 inside or after a method's block would stop `textwrap.dedent`
    from removing the method's indent, and the parse failed (upstream19's hyena-dna: its own
    `from_pretrained` classmethod went unsummarised)."""
    base = len(text) - len(text.lstrip(" \t"))
    if not base or "#" not in text:
        return text
    lines = text.split("\n")
    for i, line in enumerate(lines):
        stripped = line.lstrip(" \t")
        if stripped.startswith("#") and len(line) - len(stripped) < base:
            lines[i] = ""
    return "\n".join(lines)


def _parse_function(text: bytes, line0: int, is_method: bool) -> Optional[FunctionIR]:
    try:
        tree = ast.parse(textwrap.dedent(_outdented_comments_blanked(text.decode("utf-8", "replace"))))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    if not tree.body or not isinstance(tree.body[0], (ast.FunctionDef, ast.AsyncFunctionDef)):
        return None
    fn = tree.body[0]
    params = [a.arg for a in (*fn.args.posonlyargs, *fn.args.args)] + [a.arg for a in fn.args.kwonlyargs]
    stores: Dict[str, int] = {}
    for node in ast.walk(fn):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            stores[node.id] = stores.get(node.id, 0) + 1
    fixed = [p for p in params if p not in stores]
    builder = _Builder(line0, frozenset(fixed), frozenset(k for k, n in stores.items() if n == 1))
    decorators = [dotted_ast(d.func if isinstance(d, ast.Call) else d) or "" for d in fn.decorator_list]
    builder.no_grad = sum(d.rsplit(".", 1)[-1] in _NO_GRAD_NAMES for d in decorators)  # `@torch.no_grad()`
    body = builder.body(fn.body)
    if _input_gradient_only(fn, body):
        body = _without_backward(body)  # an attack / saliency helper: its backward updates no weight
    return FunctionIR(params, body, builder.returns, line0, is_method, decorators, _defaults(fn.args), fixed,
                      _required(fn.args, is_method and "staticmethod" not in decorators))


def _required(args: ast.arguments, is_method: bool) -> int:
    """How many arguments a call must give: parameters without a default, less a method's receiver."""
    positional = [*args.posonlyargs, *args.args]
    count = len(positional) - len(args.defaults) + sum(d is None for d in args.kw_defaults)
    return max(0, count - (1 if is_method and positional else 0))


# what makes a tensor track gradients, from every profile: (attribute, the literal that turns it on), methods
_GRAD_FLAGS = tuple((p.requires_grad_attr, p.requires_grad_tracks) for p in PROFILES if p.requires_grad_attr)
_GRAD_METHODS = frozenset(p.requires_grad_method for p in PROFILES if p.requires_grad_method)


def _events(body: list) -> Iterable[list]:
    """Every event of a body, those in `if` arms and loop bodies included (pre-order)."""
    for e in body:
        yield e
        if e[0] == "if":
            yield from _events(e[1])
            yield from _events(e[2])
        elif e[0] == "loop":
            yield from _events(e[1])


def _input_gradient_only(fn: ast.AST, body: list) -> bool:
    """The function backpropagates, steps no optimizer itself (nor hands a loss and an optimizer to a
    call), and makes a tensor track gradients (`delta.requires_grad = True`, `torch.zeros(...,
    requires_grad=True)`, `x.requires_grad_()`): a PGD attack or a saliency map, whose backward is a
    gradient on an input, not a training step (the in-file twin is `modeflow.input_gradient_probe`,
    which also wants that tensor in a model call's arguments). A callee that steps is not seen here."""
    events = list(_events(body))
    if not any(e[0] == "s" and e[1] == "b" for e in events):
        return False
    if any((e[0] == "s" and e[1] == "o") or (e[0] == "c" and len(e) > 6 and e[6]) for e in events):
        return False

    def tracks(attr: str, value: ast.AST) -> bool:
        v = constant_ast(value)
        return any(attr == a and isinstance(v, bool) and v is on for a, on in _GRAD_FLAGS)

    for node in ast.walk(fn):
        if isinstance(node, ast.keyword) and node.arg and tracks(node.arg, node.value):
            return True
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Attribute) and tracks(t.attr, node.value)
                                                for t in node.targets):
            return True
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _GRAD_METHODS \
                and (not node.args or constant_ast(node.args[0]) is True):
            return True
    return False


def _without_backward(body: list) -> list:
    out = []
    for e in body:
        if e[0] == "s" and e[1] == "b":
            continue
        if e[0] == "if":
            e = [e[0], _without_backward(e[1]), _without_backward(e[2]), *e[3:]]
        elif e[0] == "loop":
            e = [e[0], _without_backward(e[1]), *e[2:]]
        out.append(e)
    return out


def _defaults(args: ast.arguments) -> Dict[str, object]:
    """Parameter -> literal default (`train=True`, `opt=None`)."""
    positional = [*args.posonlyargs, *args.args]
    pairs = list(zip(positional[len(positional) - len(args.defaults):], args.defaults))
    pairs += [(a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None]
    values = {a.arg: constant_ast(d) for a, d in pairs}
    return {k: v for k, v in values.items() if v is not NOT_LITERAL}


# --------------------------------------------------------------------------------------------
# Evaluation: IR -> Effect


@dataclass(frozen=True)
class Effect:
    """What calling a function does to modes, in its own names: `exit[key]` is the set of modes
    `key` may have on exit ("eval", "train", "entry", "unknown"; a key absent is "entry"), `where`
    the line that set it (for messages), `steps` the training-step kinds it runs ("o": optimizer /
    scaler step, "b": backward only), `returns` the kinds of value it returns."""

    qualname: str
    path_hint: str
    params: Tuple[str, ...]
    exit: Dict[str, FrozenSet[str]]
    where: Dict[str, int]
    steps: FrozenSet[str]
    returns: FrozenSet[str]
    is_method: bool
    decorators: Tuple[str, ...] = ()
    # keys run forward outside no_grad (`model(x)`, `self.net(x)`), in the function's own names:
    # the models a training step of the function trains (not a teacher run under no_grad)
    trains: FrozenSet[str] = frozenset()
    # keys run while still in the mode they arrived in (no `model.eval()` before): (key, line of the
    # first such run, 1 when under no_grad here / 0 otherwise); an evaluation that trusts its caller
    infers: Tuple[Tuple[str, int, int], ...] = ()
    # the steps that run only under a test of a parameter: (kind, guard) (`conditions`), and the
    # kinds that run whatever the arguments; `live_steps` reads them for one call
    guarded: Tuple[Tuple[str, tuple], ...] = ()
    always: FrozenSet[str] = frozenset()
    defaults: Tuple[Tuple[str, object], ...] = ()  # parameter -> literal default
    # the modes at its training steps (joined over them; keys as in `exit`), None when it steps
    # nowhere: a helper that switches its probe to train before stepping and leaves it in eval on
    # exit trains it in training mode (GraphMAE's linear-probe evaluation, TorchSSL's warmup)
    at_step: Optional[Dict[str, FrozenSet[str]]] = None
    # (key, mode, guards): a mode the function sets only under tests of its parameters, with the
    # guard of each place that sets it; `exit_for` drops it for a call whose literals falsify them all
    # (`epoch("train", ...)` of `if mode == "train": net.train() else: net.eval()` leaves it in train)
    mode_guards: Tuple[Tuple[str, str, tuple], ...] = ()
    # every optimizer it steps is built in it over readable `X.parameters()` (`trains` is then what
    # those hold): a callee whose `trains` map to nothing of the caller's trains nothing handed to it
    owns_optimizers: bool = False

    def evals(self) -> bool:
        return any("eval" in v for v in self.exit.values())


def _get(state: Dict[str, FrozenSet[str]], key: str) -> FrozenSet[str]:
    k = key
    while True:
        if k in state:
            return state[k]
        i = k.rfind(".")
        if i < 0:
            return frozenset({"entry"})
        k = k[:i]


def _join(a: Dict[str, FrozenSet[str]], b: Dict[str, FrozenSet[str]]) -> Dict[str, FrozenSet[str]]:
    return {k: _get(a, k) | _get(b, k) for k in set(a) | set(b)}


def _assign(state, key: str, value: FrozenSet[str]):
    out = {k: v for k, v in state.items() if not k.startswith(key + ".")}
    out[key] = value
    return out


class Evaluator:
    """Runs FunctionIRs over the project (`resolve(module, callee, receiver_is_self, cls)` finds a
    callee's Effect; `kept(module, class, arg keys, kw keys)` the {attribute: key} a construction
    of a checked class keeps, `ProjectIndex.kept_arguments`)."""

    def __init__(self, resolve, kept, runs_itself=lambda effect: False, defines=lambda module, callee: False):
        self.resolve = resolve
        self.kept_of = kept
        self.runs_itself = runs_itself  # `ProjectIndex.runs_its_module_quietly`
        self.defines = defines  # `ProjectIndex._defines_from`: a checked, unsummarised function

    def run(self, qualname: str, ir: FunctionIR, module: str, cls: Optional[str]) -> Effect:
        self.module, self.cls = module, cls
        self.steps: set = set()
        self.trains: set = set()
        # the models the optimizers this function steps are built over, when every one of them is
        # built here from readable `X.parameters()` (None: some step's optimizer is not)
        self.owners: Optional[set] = set()
        self.infers: Dict[str, Tuple[int, int]] = {}
        self.at_step: Optional[Dict[str, FrozenSet[str]]] = None
        self.where: Dict[str, int] = {}
        self.wrapped: Dict[str, Dict[str, str]] = {}  # `learner = Learner(net)` -> {"net": "net"}
        self.self_name = ir.params[0] if ir.is_method and ir.params else None
        self.fixed = frozenset(ir.fixed)
        self.guard: list = []  # the atoms the `if` arms around the current event fix
        self.assigned: Dict[Tuple[str, str], set] = {}  # (key, mode) -> the guards it was set under
        self.always: set = set()
        self.guarded: set = set()
        state = self.block(ir.body, {})
        returns = set()
        for r in ir.returns:
            if r.startswith("key:"):
                key = r[4:]
                modes = _get(state, key)
                returns.add("eval" if modes == {"eval"} else f"param:{ir.params.index(key)}" if key in ir.params else "")
            elif r.startswith("call:"):
                callee = self.resolve(module, r[5:], cls, None)
                if callee is not None:
                    returns |= callee.returns
            else:
                returns.add(r)
        returns.discard("")
        trains = self.trains
        if self.owners and "o" in self.steps:
            # `optim.Adam(tgt_encoder.parameters())`: a model it only runs (ADDA's fixed source encoder,
            # a VGG loss network) is not trained by its steps
            trains = {t for t in trains if t.split(".")[0] in {o.split(".")[0] for o in self.owners}}
        return Effect(qualname, module, tuple(ir.params), state, self.where, frozenset(self.steps),
                      frozenset(returns), ir.is_method, tuple(ir.decorators), frozenset(trains),
                      tuple(sorted((k, line, q) for k, (line, q) in self.infers.items())),
                      tuple(sorted(self.guarded, key=repr)), frozenset(self.always), tuple(sorted(ir.defaults.items())),
                      self.at_step,
                      tuple((k, m, tuple(sorted(g, key=repr))) for (k, m), g in sorted(self.assigned.items())
                            if m != "entry" and all(g)),
                      bool(self.owners) and "o" in self.steps)

    def record_step(self, kind: str, extra: tuple = ()) -> None:
        guard = tuple(self.guard) + extra
        self.steps.add(kind)
        if guard:
            self.guarded.add((kind, guard))
        else:
            self.always.add(kind)

    def arm(self, events: list, atoms: list, state):
        """One arm of an `if`, under the atoms its test fixes there."""
        self.guard.extend(tuple(a) for a in atoms)
        try:
            return self.block(events, state)
        finally:
            del self.guard[len(self.guard) - len(atoms):]

    def block(self, events: list, state):
        for e in events:
            state = self.event(e, state)
        return state

    def event(self, e: list, state):
        kind = e[0]
        if kind == "m":
            value = "entry" if e[2] == "restore" else e[2]
            self.where[e[1]] = e[3]
            self.assigned.setdefault((e[1], value), set()).add(tuple(self.guard))
            return _assign(state, e[1], frozenset({value}))
        if kind == "s":
            self.record_step(e[1])
            if e[1] == "o" and not (len(e) > 3 and e[3]):  # (a backward, or an input optimizer's step, trains no model)
                self.note_step(state, tuple(self.guard))
                self.owners = None if self.owners is None or len(e) < 5 or e[4] is None else self.owners | set(e[4])
            return state
        if kind == "if":
            atoms = e[3:5] if len(e) > 4 else ([], [])
            return _join(self.arm(e[1], atoms[0], state), self.arm(e[2], atoms[1], state))
        if kind == "loop":
            once = self.block(e[1], state)
            twice = self.block(e[1], _join(state, once))
            return _join(state, _join(once, twice))
        if kind == "c":
            return self.call(e, state)
        if kind == "w":
            kept = self.kept_of(self.module, e[2], e[3], e[4]) if e[2] else {}
            if kept:
                self.wrapped[e[1]] = kept
            else:
                self.wrapped.pop(e[1], None)
        return state

    def note_step(self, state, guard: tuple = ()) -> None:
        """Join `state` into the modes at the steps, without the modes every assignment of which sits
        under a test that contradicts the step's own (`if train: net.train() else: net.eval()` ...
        `if train: opt.step()`: the eval never reaches the step)."""
        if guard:
            state = {k: frozenset(m for m in v if not self._excluded(k, m, guard)) or v for k, v in state.items()}
        self.at_step = state if self.at_step is None else _join(self.at_step, state)

    def _excluded(self, key: str, mode: str, guard: tuple) -> bool:
        guards = self.assigned.get((key, mode))
        return bool(guards) and all(contradicts(g, guard, self.fixed) for g in guards)

    def call(self, e: list, state):
        callee_name, args, kws, line = e[1], e[2], e[3], e[4]
        quiet = len(e) > 5 and e[5]
        recv, _, last = callee_name.rpartition(".")
        if not quiet:
            self.trains.add(callee_name)
        run = recv if last in ("forward", "generate") and recv else callee_name
        if _get(state, run) == {"entry"} and (run not in self.infers or quiet and not self.infers[run][1]):
            self.infers[run] = (line, 1 if quiet else 0)
        effect = self.resolve(self.module, callee_name, self.cls, self.self_name)
        if effect is None:
            if len(e) > 6 and e[6] and not quiet and not self.defines(self.module, callee_name):
                self.record_step("o")  # `loss_scaler(loss, optimizer)`
                self.owners = None
                self.note_step(state, tuple(self.guard))
            return state
        mapping = bind(effect, args, kws, recv or None)
        self.pass_infers(effect, mapping, state, line, quiet)
        # the callee's live steps, each with its guard in this function's names
        live = [(kind, tuple(a for a in remap(guard, mapping) if a[0] in self.fixed))
                for kind, guard in live_steps(effect, call_values(effect, e[7] if len(e) > 7 else []))]
        for step_kind, guard in live:
            self.record_step(step_kind, guard)
            if step_kind == "o":
                self.owners = None  # the callee's optimizers: what they hold is not known here
        if not quiet:
            self.trains.update(k for k in (map_key(t, effect, mapping) for t in effect.trains) if k)
        if live and effect.at_step is not None:
            common = set.intersection(*(set(guard) for _, guard in live))
            self.note_step(self.apply(state, self.targets(effect, mapping, recv, effect.at_step)),
                           tuple(self.guard) + tuple(common))
        return self.apply(state, self.targets(effect, mapping, recv, effect.exit), line)

    def pass_infers(self, effect: Effect, mapping, state, line: int, quiet: bool) -> None:
        """The callee runs its argument in the mode it arrived in: so does this function, for a key of
        its own still in its entry mode (`test_all_case(net)` calling `test_single_case(net, x)`). A
        method of a module class that runs the module itself (or a submodule, `self.encoder`) under
        no_grad without switching or stepping it runs the receiver so (`model.get_embeddings(x)` of a
        no_grad-decorated method: set 10's pytorch-scarf; `ProjectIndex.runs_its_module_quietly`)."""
        for param, _, inner_quiet in effect.infers:
            key = map_key(param, effect, mapping)
            if key is not None:
                self._infer(key, state, line, 1 if quiet or inner_quiet else 0)
        recv = mapping.get(effect.params[0]) if effect.is_method and effect.params else None
        if recv is not None and self.runs_itself(effect):
            self._infer(recv, state, line, 1)

    def _infer(self, key: str, state, line: int, q: int) -> None:
        if _get(state, key) == {"entry"} and (key not in self.infers or q and not self.infers[key][1]):
            self.infers[key] = (line, q)

    def targets(self, effect: Effect, mapping, recv: str, modes_of: Dict[str, FrozenSet[str]]):
        """(caller key, modes, line) for the keys `modes_of` (the callee's exit or step modes) sets."""
        targets = mapped_exit(effect, mapping, recv or None, modes_of)
        if recv in self.wrapped and effect.is_method:
            targets += kept_exit(effect, self.wrapped[recv], modes_of)
        return targets

    def apply(self, state, targets, line: Optional[int] = None):
        """`state` with the targets' modes ("entry": the mode the key has in `state`); `line` (a call's
        exit) is noted as where a key was left in eval."""
        for key, modes, _ in targets:
            new = set()
            for m in modes:
                new |= _get(state, key) if m == "entry" else {m}
                if m != "entry":
                    self.assigned.setdefault((key, m), set()).add(tuple(self.guard))
            if "eval" in new and line is not None:
                self.where[key] = line
            state = _assign(state, key, frozenset(new))
        return state


def bind(effect: Effect, args: List[Optional[str]], kws: Dict[str, Optional[str]], recv: Optional[str]):
    params = list(effect.params)
    mapping: Dict[str, Optional[str]] = {}
    if effect.is_method and params:
        mapping[params[0]] = recv
        params = params[1:]
    for p, a in zip(params, args):
        mapping[p] = a
    for k, v in kws.items():
        if k in effect.params:
            mapping[k] = v
    return mapping


def call_values(effect: Effect, literals: Iterable[Sequence]) -> Dict[str, object]:
    """The callee's parameters bound to a literal by a call (`literals`: [position or keyword,
    value] pairs; a method's first parameter is its receiver) or left at a literal default."""
    values = dict(effect.defaults)
    params = list(effect.params[1:] if effect.is_method else effect.params)
    for where, value in literals:
        if isinstance(where, int):
            if where < len(params):
                values[params[where]] = value
        elif where in effect.params:
            values[where] = value
    return values


def exit_for(effect: Effect, values: Dict[str, object]) -> Dict[str, FrozenSet[str]]:
    """The callee's exit modes for a call binding these literal `values`: without the modes every
    place that sets them is under a test the values make false (a key keeps its modes when that
    would leave none)."""
    if not effect.mode_guards or not values:
        return effect.exit
    out = dict(effect.exit)
    for key, mode, guards in effect.mode_guards:
        if key in out and mode in out[key] and all(falsified(g, values) for g in guards):
            out[key] = out[key] - {mode} or out[key]
    return out


def live_steps(effect: Effect, values: Dict[str, object]) -> List[Tuple[str, tuple]]:
    """(kind, guard) of the training steps a call with these literal `values` may run: the
    unguarded kinds, and the guarded ones no value makes false (`run_epoch(train=False)` runs
    none of the `if train:` steps)."""
    if not effect.guarded:
        return [(k, ()) for k in sorted(effect.steps)]
    out = [(k, ()) for k in sorted(effect.always)]
    return out + [(k, g) for k, g in effect.guarded if not falsified(g, values)]


def _fresh_object(value: ast.AST) -> bool:
    """A deep copy (`deepcopy(m)`), a `from_pretrained` model or a whole-model load: the summary side
    of `modeflow.FRESH_KINDS` (hub and factory loads are not spelled out here). Not `copy.copy(m)`:
    a shallow copy shares the submodules, and its `.eval()` switches them (the in-file flow agrees)."""
    if not isinstance(value, ast.Call):
        return False
    func = dotted_ast(value.func) or ""
    last = func.rsplit(".", 1)[-1]
    return last == "deepcopy" or _loads_pretrained(func) or func in _WHOLE_MODEL_LOADS


def _ends_ast(stmts: List[ast.stmt]) -> bool:
    """The block never falls through: its last statement returns, raises, breaks or continues."""
    return bool(stmts) and isinstance(stmts[-1], (ast.Return, ast.Raise, ast.Break, ast.Continue))


def _loads_pretrained(func: str) -> bool:
    """`AutoModel.from_pretrained` as written, not a tokenizer's or config's (the profiles say which)."""
    return any(p.loads_pretrained_model(func) for p in PROFILES)


def map_key(ckey: str, effect: Effect, mapping: Dict[str, Optional[str]]) -> Optional[str]:
    """A callee's key in the caller's names (None: the callee's own local, or not a plain name)."""
    root, dot, rest = ckey.partition(".")
    if root in mapping:
        base = mapping[root]
        return None if base is None else base + (dot + rest if rest else "")
    return None  # the callee's locals and free names: not the caller's


def receiver_modes(effect: Effect, modes_of: Optional[Dict[str, FrozenSet[str]]] = None) -> FrozenSet[str]:
    """A wrapper method's effect on the wrapper object itself: the modes its `self.<net>`
    attributes (or `self`) have on exit (`learner.to_eval()` -> {"eval"}), or in `modes_of`."""
    if not effect.is_method or not effect.params:
        return frozenset()
    self_name = effect.params[0]
    out: set = set()
    for key, modes in (effect.exit if modes_of is None else modes_of).items():
        if key == self_name or key.startswith(self_name + "."):
            out |= modes
    return frozenset(out)


def mapped_exit(effect: Effect, mapping: Dict[str, Optional[str]], recv: Optional[str],
                modes_of: Optional[Dict[str, FrozenSet[str]]] = None):
    """(caller key, modes on exit, line that set them) for each key a call changes; a method's
    receiver that is a wrapper object (`learner.to_eval()`) takes the modes of its networks.
    `modes_of`: other modes of the callee's keys than its exit (`Effect.at_step`)."""
    modes_of = effect.exit if modes_of is None else modes_of
    out = []
    for ckey, modes in modes_of.items():
        key = map_key(ckey, effect, mapping)
        if key is not None:
            out.append((key, modes, effect.where.get(ckey, 0)))
    if recv is not None and effect.is_method and recv not in {k for k, _, _ in out}:
        modes = receiver_modes(effect, modes_of)
        if modes:
            out.append((recv, modes, min(effect.where.get(k, 0) for k in modes_of)))
    return out


def kept_exit(effect: Effect, kept: Dict[str, str], modes_of: Optional[Dict[str, FrozenSet[str]]] = None):
    """(caller key, modes on exit, line) for the networks a wrapper object keeps: a method leaving
    `self.net` in eval puts the key handed to `Learner(net)` in eval (`kept`: {attribute: key})."""
    self_name = effect.params[0] if effect.params else None
    out = []
    for ckey, modes in (effect.exit if modes_of is None else modes_of).items():
        root, _, rest = ckey.partition(".")
        attr, _, deeper = rest.partition(".")
        if root == self_name and attr in kept:
            out.append((kept[attr] + ("." + deeper if deeper else ""), modes, effect.where.get(ckey, 0)))
    return out


def trained_keys(effect: Effect, mapping: Dict[str, Optional[str]], recv: Optional[str]) -> List[str]:
    """The caller's keys a call trains: what the callee runs outside no_grad, mapped through the
    call (a wrapper method running `self.net(x)` trains the receiver too)."""
    out = [k for k in (map_key(t, effect, mapping) for t in effect.trains) if k]
    if recv is not None and effect.is_method and effect.params and any(
        t.startswith(effect.params[0] + ".") for t in effect.trains
    ):
        out.append(recv)
    return out

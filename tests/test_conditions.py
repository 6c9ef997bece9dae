"""Guards of training steps (`analysis/conditions.py`): a routine whose step sits under a test of one
of its parameters runs no step when a call passes the value that makes the test false, in the
same file (`modeflow`) and across files (`modemodel`'s summaries)."""

from __future__ import annotations

import ast
import textwrap

import libcst as cst
import pytest

from modelint.analysis.conditions import atoms_ast, atoms_cst, contradicts, falsified, remap
from modelint.analysis.modemodel import Effect, call_values, live_steps, summaries_from_source
from modelint.analysis.modeflow import flag_tests

from tests.test_modemodel import check, found


def _cst_test(src: str) -> cst.CSTNode:
    return cst.parse_expression(src)


@pytest.mark.parametrize("src, arm, atoms", [
    ("fit", True, (("fit", "truthy", None, True),)),
    ("not fit", True, (("fit", "truthy", None, False),)),
    ("phase == 'fit'", False, (("phase", "==", "fit", False),)),
    ("'fit' != phase", True, (("phase", "==", "fit", False),)),
    ("upd is not None", True, (("upd", "is None", None, False),)),
    ("fit and upd is None", True, (("fit", "truthy", None, True), ("upd", "is None", None, True))),
    ("phase == 'fit' or phase == 'fit+log'", True, (("phase", "in", ("fit", "fit+log"), True),)),
    ("not (phase == 'a' or phase == 'b')", False, (("phase", "in", ("a", "b"), True),)),
    ("phase == 'fit' or other == 'fit'", True, ()),
    ("phase == 'fit' or flag", True, ()),
    ("fit and upd is None", False, ()),  # an `and` fixes nothing in its `else`
    ("not (fit or self.cfg.x)", True, (("fit", "truthy", None, False), ("self.cfg.x", "truthy", None, False))),
    ("phase in ('a', 'b')", True, ()),
    ("upd is 3", True, ()),
])
def test_atoms_read_alike_from_libcst_and_ast(src, arm, atoms):
    assert atoms_cst(_cst_test(src), arm) == atoms
    assert atoms_ast(ast.parse(src, mode="eval").body, arm) == atoms


def test_flag_tests_keep_their_meaning():
    assert flag_tests(_cst_test("self.args.tune and not args.tie"), True) == (("args.tune", True), ("args.tie", False))
    assert flag_tests(_cst_test("mode == 'x'"), True) == ()


def test_derived_local_stands_for_its_compare():
    derived = {"fitting": (("phase", "==", "fit", True),)}
    assert atoms_ast(ast.parse("not fitting", mode="eval").body, True, derived) == (("phase", "==", "fit", False),)


def test_falsified_contradicts_and_remap():
    guard = (("phase", "==", "fit", True), ("upd", "is None", None, False))
    assert falsified(guard, {"phase": "score"})
    assert falsified(guard, {"upd": None})
    assert not falsified(guard, {"phase": "fit"})
    assert not falsified(guard, {})  # unknown values falsify nothing
    assert falsified((("fit", "truthy", None, True),), {"fit": 0})
    assert contradicts((("fit", "truthy", None, False),), (("fit", "truthy", None, True),), {"fit"})
    assert not contradicts((("fit", "truthy", None, False),), (("fit", "truthy", None, True),), set())  # rebound
    assert contradicts((("m", "==", "a", True),), (("m", "==", "b", True),), {"m"})
    assert not contradicts((("m", "==", "a", False),), (("m", "==", "b", False),), {"m"})
    assert remap((("fit", "truthy", None, True), ("upd", "is None", None, True)),
                 {"fit": "training", "upd": "self.opt"}) == (("training", "truthy", None, True),)


SWEEP = """
    import torch

    def sweep(net, batches, phase, optim=None):
        fitting = phase == "fit"
        for xb in batches:
            cost = net(xb).sum()
            if fitting:
                cost.backward()
                optim.step()
"""


def test_one_of_several_constants():
    """`mode == "train" or mode == "train+log"`: false for a third literal, true for either; it
    contradicts `mode == "eval"` and not `mode == "train"`."""
    guard = atoms_ast(ast.parse("mode == 'train' or mode == 'train+log'", mode="eval").body, True)
    assert [falsified(guard, {"mode": v}) for v in ("eval", "train", "train+log")] == [True, False, False]
    assert contradicts(guard, (("mode", "==", "eval", True),), ["mode"])
    assert not contradicts(guard, (("mode", "==", "train", True),), ["mode"])
    assert contradicts((("mode", "==", "eval", True),), guard, ["mode"])


def test_summary_keeps_the_parameters_defaults_and_guards():
    ir = summaries_from_source(textwrap.dedent(SWEEP).encode())["sweep"]
    assert ir.fixed == ["net", "batches", "phase", "optim"]
    assert ir.defaults == {"optim": None}
    loop = next(e for e in ir.body if e[0] == "loop")
    guarded = next(e for e in loop[1] if e[0] == "if")
    assert guarded[3] == [["phase", "==", "fit", True]] and guarded[4] == [["phase", "==", "fit", False]]


def _effect(**kw) -> Effect:
    base = dict(qualname="m.sweep", path_hint="m", params=("net", "phase"), exit={}, where={},
                steps=frozenset({"o", "b"}), returns=frozenset(), is_method=False)
    base.update(kw)
    return Effect(**base)


def test_live_steps_drop_the_steps_a_literal_argument_turns_off():
    guarded = (("o", (("phase", "==", "fit", True),)),)
    eff = _effect(guarded=guarded, always=frozenset({"b"}), steps=frozenset({"o", "b"}))
    assert live_steps(eff, call_values(eff, [[1, "score"]])) == [("b", ())]
    assert live_steps(eff, call_values(eff, [["phase", "fit"]])) == [("b", ())] + list(guarded)
    assert live_steps(eff, {}) == [("b", ())] + list(guarded)
    plain = _effect()
    assert live_steps(plain, {"phase": "score"}) == [("b", ()), ("o", ())]


def test_scoring_call_into_another_file_runs_no_step(tmp_path):
    files = {
        "loops.py": SWEEP,
        "run.py": """
            from loops import sweep

            def only_score(net, val, optim):
                net.eval()
                sweep(net, val, "score", optim)

            def scored_then_fitted(net, train, optim):
                net.eval()
                sweep(net, train, "fit", optim)

            def relay(net, data, optim, fit):
                sweep(net, data, "fit" if fit else "score", optim)

            def relay_score(net, val, optim):
                net.eval()
                relay(net, val, optim, fit=False)
        """,
    }
    # only_score runs no step (the guard `phase == "fit"` is false); scored_then_fitted trains in
    # eval; relay's argument is not a literal, so its step stays and relay_score's eval reaches it
    # (reported where the step runs, line 13)
    assert found(tmp_path, files) == [("run.py", 10, "MDL303"), ("run.py", 13, "MDL303")]


def test_a_literal_argument_picks_the_switch_of_another_files_routine(tmp_path):
    """`epoch("fit", ...)` of a routine that switches `if phase == "fit": net.train() else: net.eval()`
    leaves the model in training mode, so the next iteration's step trains in training mode (the
    summary's exit without the literal took both arms: MDL301 at line 14, measuring set 12's
    DatasetCondensation)."""
    files = {
        "loops.py": """
            def epoch(phase, net, batches, opt):
                if phase == "fit":
                    net.train()
                else:
                    net.eval()
                for x, y in batches:
                    loss = (net(x) - y).pow(2).mean()
                    if phase == "fit":
                        opt.zero_grad()
                        loss.backward()
                        opt.step()
        """,
        "run.py": """
            import torch
            from torch import nn
            from loops import epoch

            def inner_fits(batches):
                net = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5), nn.Linear(4, 1))
                opt = torch.optim.SGD(net.parameters(), 0.1)
                for it in range(10):
                    x, y = next(iter(batches))
                    opt.zero_grad()
                    net(x).sum().backward()
                    opt.step()
                    epoch("fit", net, batches, opt)
                net.eval()
                return net
        """,
    }
    assert found(tmp_path, files) == []


STEP_ON_OWN_MODE = """
    from torch import nn

    def step(loader, model, opt):
        for x, y in loader:
            loss = nn.functional.mse_loss(model(x), y)
            if {guard}:
                opt.zero_grad()
                loss.backward()
                opt.step()
"""

RUN_STEPS = """
    import torch
    from torch import nn
    from loops import step

    def main(loader, val_loader):
        model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.2), nn.Linear(4, 1))
        opt = torch.optim.SGD(model.parameters(), 0.1)
        for epoch in range(3):
            model.train()
            step(loader, model, opt)
            model.eval()
            step(val_loader, model, opt)
"""


@pytest.mark.parametrize("guard, reported", [("model.training", []), ("True", [("run.py", 13, "MDL303")])])
def test_a_step_under_the_models_own_mode_does_not_run_after_eval(tmp_path, guard, reported):
    """`if model.training: loss.backward(); opt.step()` in another file's routine: the pass after
    `model.eval()` runs no step (set 16's open_brats2020); without the guard it trains in eval."""
    files = {"loops.py": STEP_ON_OWN_MODE.format(guard=guard), "run.py": RUN_STEPS}
    assert found(tmp_path, files) == reported


def test_a_step_under_the_models_own_mode_in_the_same_file(tmp_path):
    source = textwrap.dedent(STEP_ON_OWN_MODE.format(guard="model.training")) + textwrap.dedent(
        RUN_STEPS.replace("from loops import step\n", ""))
    assert found(tmp_path, {"run.py": source}) == []
    assert found(tmp_path, {"run.py": source.replace("if model.training:", "if True:")}) != []


def test_validation_pass_of_a_same_file_epoch_routine():
    check(
        """
        import torch

        class Runner:
            def epoch(self, loader, fit=True):
                for xb, yb in loader:
                    if not fit and self.slow:
                        score_whole(self.net, xb)
                    out = torch.nn.functional.mse_loss(self.net(xb), yb)
                    if fit:
                        out.backward()
                        self.opt.step()

            def run(self, n):
                for i in range(n):
                    self.net.train()
                    self.epoch(self.train_loader)
                    self.net.eval()
                    with torch.no_grad():
                        self.epoch(self.val_loader, fit=False)

            def run_broken(self, n):
                self.net.train()
                for i in range(n):
                    self.epoch(self.train_loader)
                    self.net.eval()  # expect: MDL301
                    self.epoch(self.val_loader, False)  # expect: MDL301

        def score_whole(net, xb):
            net.eval()
            return net(xb)
        """,
        "MDL301",
    )


def test_eval_method_of_a_plain_class_is_a_call_and_of_a_module_a_switch():
    check(
        """
        import torch
        import torch.nn as nn

        class Episodes:
            def __init__(self, actor, opt):
                self.actor, self.opt = actor, opt

            def eval(self):
                with torch.no_grad():
                    return self.actor(torch.zeros(3))

            def loop(self, xs):
                self.actor.train()
                for x in xs:
                    self.opt.zero_grad()
                    self.actor(x).sum().backward()
                    self.opt.step()
                    self.eval()
                    score = self.eval()  # (its result is no model put in eval)
                    self.history.update(score)

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.drop = nn.Dropout(0.1)  # (a mode-free Net would not matter)

            def eval(self):
                print("eval")
                return super().eval()

            def loop(self, xs, opt):
                self.train()
                for x in xs:
                    opt.zero_grad()
                    self(x).sum().backward()
                    opt.step()
                    self.eval()  # expect: MDL301
        """,
        "MDL301",
    )


def test_parameter_handed_an_attribute_by_another_method_is_its_alias():
    check(
        """
        import torch

        class Loop:
            def __init__(self, body, accel, opt, held):
                self.body, self.accel, self.opt, self.held = body, accel, opt, held

            def start(self, data, rounds):
                wrapped, self.opt = self.accel.prepare(self.body, self.opt)
                for r in range(rounds):
                    self.rounds(wrapped, data)

            def start_stored(self, data, rounds, build):
                other = build()
                self.kept = other
                for r in range(rounds):
                    self.rounds_other(other, data)

            def rounds(self, wrapped, data):
                for xb in data:
                    self.learn(wrapped, xb)
                    self.check()

            def rounds_other(self, other, data):
                for xb in data:
                    self.learn(other, xb)
                    self.check()  # expect: MDL301

            def learn(self, net, xb):
                net.train()
                self.body(xb).sum().backward()
                self.opt.step()

            def check(self):
                self.body.eval()
                with torch.no_grad():
                    return self.body(self.held).mean()
        """,
        "MDL301",
    )

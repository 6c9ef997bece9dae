"""`ModeFlow.may_step` (analysis/modeflow.py) against every training-step spelling a framework profile
names: MDL302 skips the flows of a file for which `may_step` says no step can happen, so a step kind
the flow analysis records but `may_step` misses silently turns MDL302's neutral-evaluation check off
for every file that steps that way.

The test is driven by the profiles, not by a list of spellings written here: every value of every
step field of every profile is written into a training loop, and the loop must have a `Step` in the
flow and `may_step` must be True. A new value in a step field is therefore tested as soon as it is
added; a new step-like field of `Profile` fails `test_every_step_field_is_classified` until it is
given a spelling here (or a reason why the flow analysis does not make steps of it)."""

from __future__ import annotations

import dataclasses
import re
import textwrap
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Tuple

import libcst as cst
import pytest

from modelint.analysis.classbodies import with_bodies
from modelint.analysis.context import FileContext
from modelint.analysis.index import ProjectIndex, facts_from_source
from modelint.analysis.modeflow import for_context
from modelint.analysis.modules import ModuleClassifier
from modelint.analysis.walk import descendants
from modelint.frameworks import PROFILES
from modelint.frameworks.profile import Profile


def _backward_methods(name: str) -> List[Tuple[str, str]]:
    # `loss.backward()`, and the same method on a wrapper (`accelerator.backward(loss)`, Lightning's
    # `self.manual_backward(loss)` is the same attribute call on another receiver)
    return [("", f"loss.{name}()"), ("", f"accelerator.{name}(loss)")]


def _backward_calls(qualname: str) -> List[Tuple[str, str]]:
    module, _, last = qualname.rpartition(".")
    return [(f"import {module}", f"{qualname}(loss)"), (f"from {module} import {last}", f"{last}(loss)")]


def _optimizer_step(name: str) -> List[Tuple[str, str]]:
    # the optimizer's own step and an AMP grad scaler's (`scaler.step(optimizer)`)
    return [("", f"optimizer.{name}()"), ("", f"opt_g.{name}()"), ("", f"scaler.{name}(optimizer)")]


# Profile field -> (import line, step statement) for each of its values. These are the fields the flow
# analysis (`_ScopeAnalysis.call`) makes a `Step` of.
FLOW_STEP_FIELDS: Dict[str, Callable[[str], List[Tuple[str, str]]]] = {
    "backward_methods": _backward_methods,
    "backward_calls": _backward_calls,
    "optimizer_step_method": _optimizer_step,
}
# Step-like fields the flow analysis does not read, with the reason: `may_step` need not see them
# because no flow has a step made by them either (MDL305 reads them for Keras / MLX / JAX loops).
OTHER_FIELDS = {
    "apply_gradients_methods": "Keras/MLX apply spellings beyond optimizer_step_method: MDL305 only",
    "gradient_methods": "computes gradients (`tape.gradient`), applies none: MDL305 only",
    "gradient_tapes": "a recording context, not a step: MDL305 only",
    "grad_transforms": "builds a gradient function (`value_and_grad`), not a step: MDL305 only",
    "no_grad_contexts": "inference contexts, not steps",
    "set_grad_enabled": "inference contexts, not steps",
    "grad_context_names": "inference contexts, not steps",
    "grad_queries": "queries of the grad mode, not steps",
    "requires_grad_attr": "freezing, not a step",
    "requires_grad_tracks": "the literal of requires_grad_attr that turns tracking on (an input-gradient probe), not a step",
    "requires_grad_method": "freezing, not a step",
    "grad_attr": "the `.grad` a gradient probe reads (MDL304's Fisher-estimate exemption), not a step",
}
# A field of `Profile` whose name says it may spell a training step or gradients.
_STEP_LIKE = re.compile(r"backward|step|grad|optim|apply|update")

# Steps the flow analysis recognises without a profile field: a loss scaler called with the loss and
# the optimizer (timm's NativeScaler, `modeflow.steps_loss`) and a local helper that steps.
SHAPE_STEPS = [
    ("", "loss_scaler(loss, optimizer, clip_grad=1.0)"),
    ("", "update(loss, optimizer)"),
]
_LOCAL_HELPER = "def update(loss, optimizer):\n    loss.backward()\n    optimizer.step()\n"

_LOOP = """\
{root_import}
{extra_import}

{helper}
def fit(model, optimizer, opt_g, scaler, accelerator, loader):
    for x, y in loader:
        loss = model(x).sum()
        {step}
"""


def _context(source: str) -> FileContext:
    data = source.encode()
    facts = with_bodies(facts_from_source(data, Path("loop.py"), "loop"), data)
    index = ProjectIndex()
    index.add(facts)
    return FileContext("loop.py", cst.parse_module(data), facts, ModuleClassifier(index))


def _step_cases() -> Iterator[Tuple[str, str, str, str]]:
    """(profile name, field, import, statement) for every value of every flow step field."""
    for profile in PROFILES:
        for name, spell in FLOW_STEP_FIELDS.items():
            value = getattr(profile, name)
            for v in sorted(value) if isinstance(value, frozenset) else [value]:
                for extra, step in spell(v):
                    yield profile.name, name, extra, step


def _loop(profile: Profile, extra: str, step: str, helper: str = "") -> str:
    root = profile.name if profile.name in profile.import_roots else sorted(profile.import_roots)[0]
    return _LOOP.format(root_import=f"import {root}", extra_import=extra,
                        helper=helper, step=step)


def _judge(source: str) -> Tuple[str, int, bool]:
    """(the file's profile, the number of flow steps, may_step over all the file's calls)."""
    ctx = _context(source)
    mf = for_context(ctx)
    steps = sum(len(flow.steps) for flow in map(mf.flow, mf.scopes()) if flow is not None)
    calls = [n for n in descendants(ctx.module) if isinstance(n, cst.Call)]
    return ctx.framework.name, steps, mf.may_step(calls)


@pytest.mark.parametrize("profile_name, field, extra, step", list(_step_cases()))
def test_may_step_sees_every_step_spelling_of_the_profile(profile_name, field, extra, step):
    profile = next(p for p in PROFILES if p.name == profile_name)
    framework, steps, may = _judge(_loop(profile, extra, step))
    # the loop is read with the profile under test (a call of another framework's namespace, such as
    # MindSpore's inherited `paddle.autograd.backward`, makes it a merged profile that contains it)
    assert profile_name in framework.split("+")
    assert steps >= 1, f"{profile_name}.{field}: `{step}` is no step of the flow analysis"
    assert may, f"{profile_name}.{field}: the flow steps at `{step}` but may_step says it cannot"


# A spelling no field has yet, per flow step field: the profile's values overlap (`backward` is both a
# backward method and the last name of `torch.autograd.backward`), so a `may_step` that forgot one
# field could still pass on today's profiles; a fresh value in one field alone shows it.
FRESH = {
    "backward_methods": lambda p: {"backward_methods": p.backward_methods | {"fresh_backward"}},
    "backward_calls": lambda p: {"backward_calls": p.backward_calls | {"torch.autograd.fresh_backward_call"}},
    "optimizer_step_method": lambda p: {"optimizer_step_method": "fresh_step"},
}


@pytest.mark.parametrize("field", sorted(FLOW_STEP_FIELDS))
def test_a_new_spelling_in_a_step_field_is_seen(field, monkeypatch):
    torch_profile = next(p for p in PROFILES if p.name == "torch")
    variant = dataclasses.replace(torch_profile, **FRESH[field](torch_profile))
    monkeypatch.setattr("modelint.analysis.context.profile_for", lambda aliases: variant)
    new = getattr(variant, field)
    fresh = (new - getattr(torch_profile, field)) if isinstance(new, frozenset) else {new}
    for extra, step in FLOW_STEP_FIELDS[field](next(iter(fresh))):
        _, steps, may = _judge(_loop(variant, extra, step))
        assert steps >= 1 and may, f"{field}: `{step}` steps in the flow, may_step={may}"


@pytest.mark.parametrize("extra, step", SHAPE_STEPS)
def test_may_step_sees_the_steps_known_by_their_shape(extra, step):
    torch_profile = next(p for p in PROFILES if p.name == "torch")
    source = _loop(torch_profile, extra, step, helper=_LOCAL_HELPER if step.startswith("update(") else "")
    _, steps, may = _judge(source)
    assert steps >= 1 and may


def test_may_step_is_false_without_a_step():
    # the negative twin: the same loop with the step gone has no flow step, and may_step says so
    # (`may_step` reads method names only: `scheduler.step()` would be a "may")
    torch_profile = next(p for p in PROFILES if p.name == "torch")
    _, steps, may = _judge(_loop(torch_profile, "", "print(loss.item(), y)"))
    assert (steps, may) == (0, False)


def test_every_step_field_is_classified():
    fields = {f.name for f in dataclasses.fields(Profile) if f.init and _STEP_LIKE.search(f.name)}
    unclassified = fields - set(FLOW_STEP_FIELDS) - set(OTHER_FIELDS)
    assert not unclassified, (
        f"new step-like profile fields {sorted(unclassified)}: give them a spelling in FLOW_STEP_FIELDS "
        "(and teach ModeFlow.may_step) or a reason in OTHER_FIELDS"
    )
    assert set(FLOW_STEP_FIELDS) | set(OTHER_FIELDS) <= fields  # no stale entry

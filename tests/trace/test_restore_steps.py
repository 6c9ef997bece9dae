"""Restoration is unconditional and each step independent: inject a failure into each restore
step in turn; verify_modes raises that failure, and everything the other steps restore is
restored (only what the failing step was responsible for may differ)."""

from __future__ import annotations

import random

import pytest

torch = pytest.importorskip("torch")
np = pytest.importorskip("numpy")

from torch import nn  # noqa: E402
from torch.nn.modules import module as module_mod  # noqa: E402
from torch.utils.hooks import RemovableHandle  # noqa: E402

import modelint  # noqa: E402
from modelint.trace import state as state_mod  # noqa: E402

from .conftest import snapshot  # noqa: E402


class Injected(Exception):
    pass


class ChangesEverything(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.bn = nn.BatchNorm1d(4)

    def forward(self, x):
        self.note = "cached"
        self.bn.note = "cached"
        torch.default_generator.manual_seed(123)
        random.seed(5)
        np.random.seed(5)
        torch.set_deterministic_debug_mode("warn")
        torch._C._set_cudnn_benchmark(not torch._C._get_cudnn_benchmark())
        out = self.bn(self.fc(x))
        torch.set_grad_enabled(False)
        return out


def differences(before, after):
    """The keys of two `snapshot`s that differ, per module / tensor / generator."""
    out = set()
    for (name, flag), (_, other) in zip(before["flags"], after["flags"]):
        if flag != other:
            out.add(f"flag:{name}")
    for name, saved in before["tensors"].items():
        now = after["tensors"][name]
        if not state_mod.same_bits(saved, now):
            out.add(f"tensor:{name}")
    for name, keys in before["dict_keys"].items():
        if keys != after["dict_keys"].get(name):
            out.add(f"dict:{name}")
    for key in ("grad_mode", "deterministic", "hooks", "dispatch_modes", "profile", "inference_mode"):
        if before[key] != after[key]:
            out.add(key)
    if not torch.equal(before["torch_rng"], after["torch_rng"]):
        out.add("rng:torch")
    if before["python_rng"] != after["python_rng"]:
        out.add("rng:random")
    b, a = before["numpy_rng"], after["numpy_rng"]
    if not (b[0] == a[0] and np.array_equal(b[1], a[1]) and b[2:] == a[2:]):
        out.add("rng:numpy")
    if before["cudnn"] != after["cudnn"]:
        out.add("cudnn")
    return out


def _fail_for(method, predicate):
    def failing(self, *args, **kwargs):
        if predicate(self):
            raise Injected(method.__qualname__)
        return method(self, *args, **kwargs)
    return failing


# step name -> (what to patch, which differences that failure may leave)
STEPS = {
    "hook removal": (lambda m: (RemovableHandle, "remove", _fail_for(RemovableHandle.remove, lambda h: True)),
                     {"hooks"}),
    "module attributes (bn)": (lambda m: (state_mod.ModuleState, "restore_attributes",
                                          _fail_for(state_mod.ModuleState.restore_attributes,
                                                    lambda s: s.module is m.bn)),
                               {"flag:bn", "dict:bn"}),
    "tensor layout/flags (bn)": (lambda m: (state_mod.ModuleState, "restore_tensors",
                                            _fail_for(state_mod.ModuleState.restore_tensors,
                                                      lambda s: s.module is m.bn)),
                                 set()),
    "storage bytes (bn.running_mean)": (
        lambda m: (state_mod.StorageCopy, "restore",
                   _fail_for(state_mod.StorageCopy.restore,
                             lambda c: c.storage.data_ptr() == m.bn.running_mean.untyped_storage().data_ptr())),
        {"tensor:bn.running_mean"}),
    "storage comparison": (lambda m: (state_mod.StorageCopy, "changed",
                                      _fail_for(state_mod.StorageCopy.changed, lambda c: True)),
                           set()),
    "grad mode": (lambda m: (state_mod.GlobalState, "restore_grad",
                             _fail_for(state_mod.GlobalState.restore_grad, lambda g: True)),
                  {"grad_mode"}),
    "determinism": (lambda m: (state_mod.GlobalState, "restore_determinism",
                               _fail_for(state_mod.GlobalState.restore_determinism, lambda g: True)),
                    {"deterministic"}),
    "backend flags": (lambda m: (state_mod.GlobalState, "restore_backends",
                                 _fail_for(state_mod.GlobalState.restore_backends, lambda g: True)),
                      {"cudnn"}),
    "generators": (lambda m: (state_mod.GlobalState, "restore_rng",
                              _fail_for(state_mod.GlobalState.restore_rng, lambda g: True)),
                   {"rng:torch", "rng:random", "rng:numpy"}),
}


def _full_snapshot(model):
    snap = snapshot(model)
    snap["cudnn"] = (torch._C._get_cudnn_enabled(), torch._C._get_cudnn_benchmark(),
                     torch._C._get_cudnn_deterministic())
    return snap


@pytest.fixture
def clean_globals():
    """Undo by hand whatever a failed restore step left behind, for the next tests."""
    saved = state_mod.GlobalState()
    hooks = {name: dict(getattr(module_mod, name)) for name in (
        "_global_forward_pre_hooks", "_global_forward_hooks", "_global_buffer_registration_hooks",
        "_global_parameter_registration_hooks")}
    yield
    for name, content in hooks.items():
        registry = getattr(module_mod, name)
        registry.clear()
        registry.update(content)
    saved.restore()


@pytest.mark.parametrize("step", sorted(STEPS))
def test_each_restore_step_is_independent(step, clean_globals, monkeypatch):
    torch.manual_seed(0)
    model, x = ChangesEverything(), torch.randn(6, 4)
    random.seed(1)
    np.random.seed(1)
    before = _full_snapshot(model)
    patch, allowed = STEPS[step]
    owner, name, replacement = patch(model)
    monkeypatch.setattr(owner, name, replacement)
    with pytest.raises(Injected):
        modelint.verify_modes(model, x)
    monkeypatch.undo()
    left = differences(before, _full_snapshot(model))
    assert left <= allowed, (step, left - allowed)


def test_without_injection_everything_is_restored(clean_globals):
    torch.manual_seed(0)
    model, x = ChangesEverything(), torch.randn(6, 4)
    before = _full_snapshot(model)
    modelint.verify_modes(model, x)
    assert differences(before, _full_snapshot(model)) == set()


def test_run_all_runs_every_step_and_raises_the_first():
    calls = []

    def fail(tag):
        calls.append(tag)
        raise Injected(tag)

    with pytest.raises(Injected, match="first") as info:
        state_mod.run_all([lambda: fail("first"), lambda: calls.append("ok"), lambda: fail("second")])
    assert calls == ["first", "ok", "second"]
    assert any("second" in note for note in getattr(info.value, "__notes__", []))

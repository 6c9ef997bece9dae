"""Shared fixtures for the runtime tracer tests: the fixture models and a full-state snapshot."""

from __future__ import annotations

import importlib.util
import os
import random
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures" / "trace"


def load_fixture_module(name: str):
    """Import fixtures/trace/<name>.py under a private module name."""
    mod_name = f"_modelint_trace_fixture_{name}"
    if mod_name in sys.modules:
        return sys.modules[mod_name]
    spec = importlib.util.spec_from_file_location(mod_name, FIXTURES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def models():
    pytest.importorskip("torch")
    return load_fixture_module("models")


def line_of(path: Path, text: str, after: str = "") -> int:
    """1-based number of the first line containing `text` (after the first line containing
    `after`, if given)."""
    lines = path.read_text().splitlines()
    start = 0
    if after:
        start = next(i for i, line in enumerate(lines) if after in line)
    for index in range(start, len(lines)):
        if text in lines[index]:
            return index + 1
    raise AssertionError(f"{text!r} not in {path}")


def same_file(finding_path: str, path: Path) -> bool:
    return os.path.abspath(finding_path) == str(path)


def snapshot(model):
    """Everything verify_modes promises to leave untouched, in comparable form."""
    import numpy as np
    import torch
    from torch.nn.modules import module as module_mod

    state = {
        "flags": [(name, m.training) for name, m in model.named_modules()],
        "tensors": {name: t.detach().clone() for name, t in
                    list(model.named_parameters()) + list(model.named_buffers())},
        "identity": {name: id(t) for name, t in
                     list(model.named_parameters()) + list(model.named_buffers())},
        "requires_grad": {name: p.requires_grad for name, p in model.named_parameters()},
        "grads": {name: None if p.grad is None else p.grad.clone() for name, p in model.named_parameters()},
        "dict_keys": {name: sorted(vars(m)) for name, m in model.named_modules()},
        "grad_mode": torch.is_grad_enabled(),
        "inference_mode": torch.is_inference_mode_enabled(),
        "deterministic": (torch.are_deterministic_algorithms_enabled(),
                          torch.is_deterministic_algorithms_warn_only_enabled()),
        "torch_rng": torch.get_rng_state(),
        "python_rng": random.getstate(),
        "numpy_rng": np.random.get_state(),
        "hooks": (len(module_mod._global_forward_pre_hooks), len(module_mod._global_forward_hooks),
                  len(module_mod._global_buffer_registration_hooks),
                  len(module_mod._global_parameter_registration_hooks)),
        "dispatch_modes": torch._C._len_torch_dispatch_stack(),
        "profile": sys.getprofile(),
    }
    return state


def assert_same_state(before, after):
    import numpy as np
    import torch

    assert before["flags"] == after["flags"]
    assert before["identity"] == after["identity"]
    assert before["tensors"].keys() == after["tensors"].keys()
    for name, saved in before["tensors"].items():
        now = after["tensors"][name]
        assert saved.dtype == now.dtype and saved.shape == now.shape, name
        # bit for bit, NaNs included
        assert torch.equal(saved.view(-1).view(torch.uint8) if saved.numel() else saved,
                           now.view(-1).view(torch.uint8) if now.numel() else now), name
    assert before["requires_grad"] == after["requires_grad"]
    assert before["grads"].keys() == after["grads"].keys()
    for name, grad in before["grads"].items():
        other = after["grads"][name]
        assert (grad is None) == (other is None), name
        if grad is not None:
            assert torch.equal(grad, other), name
    assert before["dict_keys"] == after["dict_keys"]
    for key in ("grad_mode", "inference_mode", "deterministic", "hooks", "dispatch_modes", "profile"):
        assert before[key] == after[key], key
    assert torch.equal(before["torch_rng"], after["torch_rng"])
    assert before["python_rng"] == after["python_rng"]
    b, a = before["numpy_rng"], after["numpy_rng"]
    assert b[0] == a[0] and np.array_equal(b[1], a[1]) and b[2:] == a[2:]


def marker_line(path: Path, marker: str) -> int:
    """1-based line of `path` that ends with `# <- marker`."""
    lines = Path(path).read_text().splitlines()
    return next(i + 1 for i, text in enumerate(lines) if text.rstrip().endswith(f"# <- {marker}"))


def at_marker(finding, path: Path, marker: str) -> bool:
    return Path(finding.path).resolve() == Path(path).resolve() and finding.line == marker_line(path, marker)


def hook_registries():
    """torch's global hook registries and `nn.Module.train`: what a guard must leave as it found."""
    import torch.optim.optimizer as optimizer_mod
    from torch import nn
    from torch.nn.modules import module as module_mod

    return (dict(optimizer_mod._global_optimizer_pre_hooks), dict(module_mod._global_forward_pre_hooks),
            dict(module_mod._global_forward_hooks), nn.Module.__dict__["train"])

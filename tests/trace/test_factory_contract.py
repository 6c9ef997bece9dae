"""The trace factory contract: a factory returns `(model, inputs)` where inputs is a bare tensor
(one positional argument, as `verify_modes(model, x)` accepts), a tuple/list of positional
arguments, a dict of keyword arguments or a `modelint.Case`; anything else is one MDL600 line
saying what a factory must return. Run through `modelint trace FILE:factory` subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from modelint.trace.runner import run_targets

from .conftest import ROOT

FACTORIES = textwrap.dedent('''
    import torch
    from torch import nn
    import torch.nn.functional as F
    from modelint import Case

    class Net(nn.Module):
        def __init__(self, leak=False):
            super().__init__()
            self.fc = nn.Linear(4, 2)
            self.leak = leak

        def forward(self, x, scale=1.0):
            y = self.fc(x) * scale
            return F.dropout(y, 0.5, training=True) if self.leak else y  # samples in eval too

    def bare_tensor():
        return Net(), torch.randn(3, 4)

    def bare_tensor_leaky():
        return Net(leak=True), torch.randn(3, 4)

    def tuple_args():
        return Net(), (torch.randn(3, 4), 2.0)

    def list_args():
        return [Net(), [torch.randn(3, 4)]]

    def kwargs_dict():
        return Net(), {"x": torch.randn(3, 4), "scale": 0.5}

    def case():
        return Net(), Case(args=(torch.randn(3, 4),), kwargs={"scale": 0.5})

    def model_only():
        return Net()

    def three_items():
        return Net(), torch.randn(3, 4), 2.0

    def not_a_module():
        return "net", torch.randn(3, 4)

    def number_as_inputs():
        return Net(), 3
''')

CONTRACT = ("a factory must return (model, inputs): an nn.Module, and a tensor, a tuple of positional "
            "arguments, a dict of keyword arguments or a modelint.Case")


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    pytest.importorskip("torch")
    folder = tmp_path_factory.mktemp("factories")
    (folder / "factories.py").write_text(FACTORIES)
    names = ["bare_tensor", "bare_tensor_leaky", "tuple_args", "list_args", "kwargs_dict", "case",
             "model_only", "three_items", "not_a_module", "number_as_inputs"]
    found = run_targets([f"factories.py:{n}" for n in names], timeout=120, cwd=str(folder), jobs=2)
    out = {n: [] for n in names}
    for f in found:
        out[dict(f.extra)["target"].split(":")[1]].append(f)
    return out


@pytest.mark.parametrize("name", ["bare_tensor", "tuple_args", "list_args", "kwargs_dict", "case"])
def test_each_accepted_shape_is_traced_clean(results, name):
    assert results[name] == []


def test_a_bare_tensor_reaches_the_forward(results):
    # not vacuous: the same bare-tensor factory with a model that samples in eval is reported
    codes = {f.code for f in results["bare_tensor_leaky"]}
    assert codes and "MDL600" not in codes, results["bare_tensor_leaky"]


@pytest.mark.parametrize("name, got", [
    ("model_only", "must return (model, inputs), got Net; "),
    ("three_items", "must return (model, inputs), got a tuple of 3 items; "),
    ("not_a_module", "must return (model, inputs), got str as model; "),
    ("number_as_inputs", "must return (model, inputs), got int as inputs; "),
])
def test_any_other_shape_is_one_mdl600_line_stating_the_contract(results, name, got):
    [f] = results[name]
    assert f.code == "MDL600" and dict(f.extra)["stage"] == "factory"
    assert f.message == f"trace target factories.py:{name}: factory {name}() {got}{CONTRACT}"
    assert "\n" not in f.message and f.line == FACTORIES.splitlines().index(f"def {name}():") + 1


def test_the_cli_traces_a_bare_tensor_factory(tmp_path):
    pytest.importorskip("torch")
    (tmp_path / "factories.py").write_text(FACTORIES)
    cmd = [sys.executable, "-m", "modelint", "trace", "factories.py:bare_tensor_leaky",
           "factories.py:number_as_inputs", "--format", "json"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # this checkout's modelint, from any folder
    r = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    findings = json.loads(r.stdout)
    by = {}
    for f in findings:
        by.setdefault(f["extra"]["target"], set()).add(f["code"])
    assert r.returncode == 1, r.stdout + r.stderr
    assert by["factories.py:number_as_inputs"] == {"MDL600"}
    assert by["factories.py:bare_tensor_leaky"] - {"MDL600"}, by

"""`modelint trace` targets run in subprocesses: findings come back as Finding objects; a factory
that raises, hangs, aborts or exits becomes one MDL600 finding and the other targets still run;
the parent process never imports torch."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from modelint.findings import Finding
from modelint.trace.runner import finding_from_dict, parse_target, run_targets

from .conftest import FIXTURES, ROOT, line_of

FAILING = FIXTURES / "failing_targets.py"
TARGETS = FIXTURES / "targets.py"
MODELS = FIXTURES / "models.py"


def by_target(findings):
    out = {}
    for f in findings:
        out.setdefault(dict(f.extra)["target"], []).append(f)
    return out


def test_runner_does_not_import_torch():
    code = ("import sys, modelint.trace.runner, modelint.codes, modelint.catalog as c; "
            "c.catalog(); assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_parse_target():
    assert parse_target("pkg.mod:make") == ("module", "pkg.mod", "make")
    assert parse_target("path/to/file.py:make") == ("file", "path/to/file.py", "make")
    assert parse_target("file.py:make") == ("file", "file.py", "make")
    assert parse_target("nocolon") is None and parse_target("pkg:") is None
    assert parse_target("pkg.mod:not-an-identifier") is None


def test_finding_round_trip():
    f = Finding("a.py", 3, 5, "MDL601", "msg", name="eval-consumes-randomness",
                extra=(("module", "Net"), ("op", "aten::dropout")))
    assert finding_from_dict(f.to_dict()) == f
    assert finding_from_dict(f.to_dict()).extra == f.extra


@pytest.fixture(scope="module")
def failing(tmp_path_factory):
    """Targets that fail before torch is imported: fast subprocesses."""
    rel = "fixtures/trace/failing_targets.py"
    targets = [f"{rel}:raises", f"{rel}:hangs", f"{rel}:aborts", f"{rel}:exits",
               f"{rel}:missing", "fixtures/trace/nope.py:make", "fixtures.trace.nope:make",
               "not a target"]
    return by_target(run_targets(targets, timeout=3, cwd=str(ROOT), jobs=2))


def _one(failing, target):
    found = failing[target]
    assert len(found) == 1, found
    f = found[0]
    assert f.code == "MDL600" and f.name == "trace-target-failed" and f.level == "error"
    return f, dict(f.extra)["stage"]


def test_raising_factory(failing):
    f, stage = _one(failing, "fixtures/trace/failing_targets.py:raises")
    assert stage == "factory" and "ValueError: checkpoint not found" in f.message
    assert os.path.abspath(f.path) == str(FAILING) and f.line == line_of(FAILING, "raise ValueError")


def test_hanging_factory_times_out(failing):
    f, stage = _one(failing, "fixtures/trace/failing_targets.py:hangs")
    assert stage == "timeout" and "timed out after 3 s" in f.message
    assert os.path.abspath(f.path) == str(FAILING)
    # faulthandler's dump shows where it hung, else the factory's def line
    assert f.line in (line_of(FAILING, "time.sleep(0.05)"), line_of(FAILING, "def hangs"))


def test_aborting_factory(failing):
    f, stage = _one(failing, "fixtures/trace/failing_targets.py:aborts")
    assert stage == "crash" and "SIGABRT" in f.message
    assert f.line == line_of(FAILING, "os.abort()")


def test_exiting_factory(failing):
    f, stage = _one(failing, "fixtures/trace/failing_targets.py:exits")
    assert stage == "crash" and "exited with code 3" in f.message
    assert f.line == line_of(FAILING, "def exits")


def test_bad_targets(failing):
    f, stage = _one(failing, "fixtures/trace/failing_targets.py:missing")
    assert stage == "import" and "has no attribute 'missing'" in f.message
    f, stage = _one(failing, "fixtures/trace/nope.py:make")
    assert stage == "import" and "no such file" in f.message
    f, stage = _one(failing, "fixtures.trace.nope:make")
    assert stage == "import" and "ModuleNotFoundError" in f.message
    f, stage = _one(failing, "not a target")
    assert stage == "target" and "package.module:factory" in f.message


@pytest.mark.parametrize("factory", ["tuple_inputs", "dict_inputs", "case_inputs"])
def test_child_accepts_each_kind_of_inputs(factory, monkeypatch):
    pytest.importorskip("torch")
    from modelint.trace._child import trace_target

    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.chdir(ROOT)
    payload = trace_target(f"fixtures/trace/targets.py:{factory}", [])
    assert payload["findings"] == []


def test_child_reports_unusable_factories(monkeypatch):
    pytest.importorskip("torch")
    from modelint.trace._child import trace_target

    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.chdir(ROOT)
    [f] = trace_target("fixtures/trace/targets.py:returns_model_only", [])["findings"]
    assert f["code"] == "MDL600" and "must return (model, inputs), got TinyNet" in f["message"]
    assert f["line"] == line_of(TARGETS, "def returns_model_only")

    [f] = trace_target("fixtures/trace/targets.py:forward_always_fails", [])["findings"]
    assert f["code"] == "MDL600" and f["extra"]["stage"] == "forward"
    assert "both training and eval mode" in f["message"] and f["line"] == line_of(TARGETS, "self.fc(x.t())")


def test_targets_in_subprocesses_with_per_target_allow():
    pytest.importorskip("torch")
    targets = ["fixtures.trace.targets:dict_inputs", "fixtures/trace/models.py:dropout_list"]
    allow = {"fixtures/trace/models.py:dropout_list": {"MDL604"}}
    found = run_targets(targets, timeout=120, allow=allow, cwd=str(ROOT), jobs=2)
    assert found == sorted(found)
    result = by_target(found)
    assert "fixtures.trace.targets:dict_inputs" not in result
    [f] = result["fixtures/trace/models.py:dropout_list"]  # MDL604 opted out for this target only
    assert f.code == "MDL603" and f.name == "module-in-training-mode-during-eval"
    assert f.path == os.path.relpath(MODELS).replace(os.sep, "/")
    assert f.line == line_of(MODELS, "self.layers = [nn.Linear(8, 8), nn.Dropout(0.2)]")


def test_timeout_starts_at_the_factory_and_helpers_do_not_block():
    """A 4 s import plus `import torch` under a 3 s timeout is fine (the limit covers factory and
    tracing only); a helper process left running with the inherited stderr neither delays the
    result until the timeout nor survives it."""
    pytest.importorskip("torch")
    import time

    target = "tests/trace/runner_targets.py:leaves_helper"
    t0 = time.monotonic()
    found = run_targets([target], timeout=3, cwd=str(ROOT))
    assert found == [], found
    assert time.monotonic() - t0 < 60  # the helper sleeps 60 s
    helpers = subprocess.run(["pgrep", "-f", "import time; time.sleep(60)"], capture_output=True, text=True)
    assert helpers.stdout.strip() == "", "the factory's helper process was left running"


def test_malformed_target_is_a_usage_error_and_missing_module_is_not_in_importlib(failing):
    from modelint.trace.runner import target_error

    assert "package.module:factory" in target_error("targets.py::make")
    assert target_error("fixtures/trace/models.py:dropout_list") is None
    f, _ = _one(failing, "not a target")
    assert f.path == "<trace target>"
    f, _ = _one(failing, "fixtures.trace.nope:make")
    assert "importlib" not in f.path and f.path == "<fixtures.trace.nope>"

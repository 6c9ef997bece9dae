"""Mode-branch coverage (MDL501/MDL502): the static branch finder, the arc semantics, the pytest
plugin and `coverage_findings` on a data file.

The plugin runs in subprocesses, as a user would run it: on a small torch-free project generated here
(fast; every branch style; alone and with pytest-xdist) and on `fixtures/modes_project` (a real torch
model whose own tests only exercise training mode: alone, with pytest-cov, with pytest-cov under
pytest-xdist).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from modelint.analysis.branches import find_mode_branches, scan_files
from modelint.analysis.mode import value_under_mode
from modelint.modecov.report import arms_taken, coverage_findings, index_arcs
from tests.helpers import expected_from_source

import libcst as cst

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "fixtures" / "modes_project"
FINDING = re.compile(r"^(?P<path>\S+?):(?P<line>\d+):(?P<col>\d+): (?P<code>MDL50[12]) (?P<msg>.*)$", re.M)


def _by_line(branches):
    return {b.line: b for b in branches}


# --------------------------------------------------------------------------------------------
# Static: finding the branches


BRANCHY = '''\
import torch
import torch.nn as nn
from torch import is_grad_enabled


class Block(nn.Module):
    def forward(self, x, deterministic: bool = False):
        if self.training:
            x = x + 1
        else:
            x = x - 1
        if not self.training:
            return x
        y = x * 2
        if self.p == 0.0 or not self.training:
            return y
        if deterministic:
            y = y + 0
        use_noise = self.training and self.sigma > 0
        if use_noise:
            y = y + 1
        elif self.training == self.other:
            y = y + 2
        if torch.is_grad_enabled():
            y = y * 3
        if not is_grad_enabled(): y = 0
        z = 1 if self.training else 2
        if (
            self.training
            and self.p > 0
        ):
            y = y - 1

        def inner(a):
            if self.training:
                return a
            return -a

        return y


class NotAModule:
    def forward(self):
        if self.training:
            return 1
        return 0


def drop_path(x, training: bool = False):
    if not training:
        return x
    return x * 2
'''


def test_branches_record_arms_polarity_and_kind():
    got = _by_line(find_mode_branches(BRANCHY, "branchy.py"))
    assert sorted(got) == [8, 12, 15, 17, 20, 22, 24, 26, 27, 29, 35]

    b = got[8]  # if/else
    assert (b.class_name, b.method, b.kind, b.condition) == ("Block", "forward", "if", "self.training")
    assert (b.true_lines, b.false_lines, b.true_is_train, b.measurable) == ((9, 9), (11, 11), True, True)
    assert b.eval_arm.lines == (11, 11) and not b.eval_arm.implicit
    assert (b.line, b.column) == (8, 12)

    b = got[12]  # early exit: the eval arm is the true arm, training falls through to the rest
    assert (b.kind, b.true_is_train, b.true_lines, b.false_lines) == ("early-exit", False, (13, 13), (14, 39))
    assert b.eval_arm.lines == (13, 13) and b.train_arm.implicit

    assert got[15].true_is_train is False  # `p == 0 or not training`: eval always takes the true arm
    b = got[17]  # `deterministic` is true in eval; no else: the train arm is the fall-through
    assert (b.true_is_train, b.false_lines, b.train_arm.implicit) == (False, None, True)
    assert got[20].true_is_train is True  # a local derived from the mode
    b = got[22]  # elif on the mode with no polarity
    assert (b.kind, b.true_is_train, b.measurable) == ("elif", None, False)
    assert got[20].false_lines == (22, 23)  # the elif is the false arm of the `if`

    b = got[24]
    assert (b.subject, b.true_is_train, b.eval_arm.implicit) == ("grad", True, True)
    b = got[26]  # body on the test's line
    assert (b.subject, b.true_is_train, b.measurable) == ("grad", False, False)
    b = got[27]
    assert (b.kind, b.measurable) == ("ifexp", False) and "conditional expression" in b.note
    b = got[29]  # a test over several lines: the header runs up to the line before the body
    assert (b.header, b.true_lines, b.true_is_train) == ((28, 31), (32, 32), True)
    b = got[35]
    assert (b.method, b.kind, b.true_is_train) == ("forward.<locals>.inner", "early-exit", True)


def test_module_classes_found_across_files(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "base.py").write_text("import torch.nn as nn\n\n\nclass Base(nn.Module):\n    pass\n")
    (pkg / "enc.py").write_text(textwrap.dedent("""\
        from .base import Base


        class Encoder(Base):
            def forward(self, x):
                if self.training:
                    return x
                return -x
        """))
    alone = find_mode_branches((pkg / "enc.py").read_text(), str(pkg / "enc.py"))
    assert alone == []  # its base is unknown without the other file
    found = scan_files([pkg / "base.py", pkg / "enc.py"])
    assert [b.qualname for b in found[str(pkg / "enc.py")]] == ["Encoder.forward"]


@pytest.mark.parametrize(
    "test,in_train,in_eval",
    [
        ("self.training", True, False),
        ("not self.training", False, True),
        ("self.training and self.p > 0", None, False),
        ("self.p == 0 or not self.training", None, True),
        ("deterministic", False, True),
        ("self.training is False", False, True),
        ("self.training == other", None, None),
    ],
)
def test_value_under_mode(test, in_train, in_eval):
    expr = cst.parse_expression(test)
    assert value_under_mode(expr, True) is in_train
    assert value_under_mode(expr, False) is in_eval


# --------------------------------------------------------------------------------------------
# Arc semantics, against real coverage.py data


ARCS_MODULE = '''\
from tiny_base import Module


class M(Module):
    def if_else(self, x):
        if self.training:
            x = x + 1
        else:
            x = x - 1
        return x

    def last_in_function(self, x):
        if self.training:
            x = x + 1

    def early_exit(self, x):
        if not self.training:
            return x
        y = x * 2
        return y

    def loop(self, xs):
        for x in xs:
            if self.training:
                x = -x
        return xs

    def multi_line(self, x):
        if (self.training
                and x > 0):
            return (
                x + 1)
        elif x < -5:
            return 3
        return 0

    def in_try(self, x):
        try:
            if self.training:
                x = 1
        finally:
            x = 2
        return x

    def elif_on_mode(self, x):
        if x is None:
            return 0
        elif self.training:
            return 1
        return 2
'''


def test_arms_taken_from_real_arcs(tmp_path):
    coverage = pytest.importorskip("coverage")
    (tmp_path / "tiny_base.py").write_text("class Module:\n    training = True\n")
    mod_path = tmp_path / "arcs_module.py"
    mod_path.write_text(ARCS_MODULE)
    branches = scan_files([mod_path], module_bases=["tiny_base.Module"])[str(mod_path)]
    assert len(branches) == 7
    sys.path.insert(0, str(tmp_path))
    try:
        cov = coverage.Coverage(data_file=None, branch=True, include=[str(mod_path)], config_file=False)
        cov.start()
        try:
            spec = importlib.util.spec_from_file_location("arcs_module", mod_path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            obj = module.M()
            obj.training = True
            for name in ("if_else", "last_in_function", "early_exit", "multi_line", "in_try", "elif_on_mode"):
                getattr(obj, name)(1)
            obj.loop([1, 2])
        finally:
            cov.stop()
        data = cov.get_data()
        (measured,) = data.measured_files()
        by_line = index_arcs(data.arcs(measured))
    finally:
        sys.path.remove(str(tmp_path))
    taken = {b.method: arms_taken(b, by_line) for b in branches}
    # Training only: every true arm ran, except `not self.training` (its false arm is training's).
    assert taken == {
        "if_else": (True, False),
        "last_in_function": (True, False),
        "early_exit": (False, True),
        "loop": (True, False),
        "multi_line": (True, False),
        "in_try": (True, False),
        "elif_on_mode": (True, False),
    }
    # The same branches with the mode flipped take the other arm: checked through the plugin below
    # (eval-only run) and here for the shapes that have no explicit else.
    cov = coverage.Coverage(data_file=None, branch=True, include=[str(mod_path)], config_file=False)
    sys.path.insert(0, str(tmp_path))
    try:
        cov.start()
        try:
            obj = module.M()
            obj.training = False
            for name in ("if_else", "last_in_function", "early_exit", "in_try", "elif_on_mode"):
                getattr(obj, name)(1)
            obj.multi_line(-1)  # `and` short-circuits on the first line, then the elif is false
            obj.loop([1, 2])
        finally:
            cov.stop()
        data = cov.get_data()
        by_line = index_arcs(data.arcs(data.measured_files().pop()))
    finally:
        sys.path.remove(str(tmp_path))
    taken = {b.method: arms_taken(b, by_line) for b in branches}
    assert taken == {
        "if_else": (False, True),
        "last_in_function": (False, True),
        "early_exit": (True, False),
        "loop": (False, True),
        "multi_line": (False, True),
        "in_try": (False, True),
        "elif_on_mode": (False, True),
    }


# --------------------------------------------------------------------------------------------
# The plugin, on a small torch-free project


TINY = {
    "pyproject.toml": """\
        [tool.pytest.ini_options]
        python_files = ["*_checks.py"]
        pythonpath = ["."]
        addopts = "-p no:cacheprovider"

        [tool.modelint]
        module-bases = ["tiny.base.Module"]
        """,
    "tiny/__init__.py": "",
    "tiny/base.py": """\
        class Module:
            training = True

            def train(self, mode=True):
                self.training = mode
                return self

            def eval(self):
                return self.train(False)

            def __call__(self, *args):
                return self.forward(*args)
        """,
    "tiny/layers.py": """\
        from tiny.base import Module


        class Sampler(Module):
            def forward(self, x):
                if self.training:  # branch
                    x = x + 1
                else:
                    x = x - 1
                return x


        class Skip(Module):
            def forward(self, x):
                if not self.training:  # branch
                    return x
                return x * 2


        class Loop(Module):
            def forward(self, xs):
                out = []
                for x in xs:
                    if self.training:  # branch
                        x = -x
                    out.append(x)
                return out


        class Quiet(Module):
            def forward(self, x):
                if self.training:  # modelint: ignore[MDL501]
                    x = x + 1
                return x


        class Expr(Module):
            def forward(self, x):
                return x if self.training else -x


        class Unused(Module):
            def forward(self, x):
                if self.training:  # never called
                    return x
                return -x
        """,
    "checks/train_checks.py": """\
        from tiny.layers import Expr, Loop, Quiet, Sampler, Skip


        def test_training():
            assert Sampler()(1) == 2
            assert Skip()(1) == 2
            assert Loop()([1]) == [-1]
            assert Quiet()(1) == 2
            assert Expr()(1) == 1
        """,
    "checks/eval_checks.py": """\
        from tiny.layers import Loop, Quiet, Sampler, Skip


        def test_eval():
            assert Sampler().eval()(1) == 0
            assert Skip().eval()(1) == 1
            assert Loop().eval()([1]) == [1]
            assert Quiet().eval()(1) == 1
        """,
}


def _write_project(root: Path, files: dict) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def _env():
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("COV_CORE_", "COVERAGE_", "PYTEST_ADDOPTS", "PYTEST_XDIST"))}
    # Only the plugins named with -p: the same run whatever else is installed, and no double
    # registration once modelint's pytest11 entry point is installed.
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    env["OMP_NUM_THREADS"] = "1"  # tiny tensors: thread start-up and contention dominate otherwise
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _pytest(cwd: Path, *args, plugin=True, timeout=300):
    plugins = ["-p", "modelint.modecov.pytest_plugin"] if plugin else []
    if any(a.startswith("--cov") for a in args):
        plugins += ["-p", "pytest_cov.plugin"]
    if "-n" in args:
        plugins += ["-p", "xdist.plugin"]
    cmd = [sys.executable, "-m", "pytest", "-q", *plugins, *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=_env(), timeout=timeout)


def _findings(out: str):
    return sorted((m["path"], int(m["line"]), m["code"]) for m in FINDING.finditer(out))


def _marked(path: Path, marker: str):
    return [i for i, line in enumerate(path.read_text().splitlines(), 1) if marker in line]


@pytest.fixture
def tiny(tmp_path):
    return _write_project(tmp_path, TINY)


def _tiny_training_only(tiny):
    """What a training-only run reports: every marked eval arm, both arms of the never-called branch."""
    layers = tiny / "tiny" / "layers.py"
    (unused,) = _marked(layers, "# never called")
    return sorted([("tiny/layers.py", n, "MDL501") for n in _marked(layers, "# branch")]
                  + [("tiny/layers.py", unused, "MDL501"), ("tiny/layers.py", unused, "MDL502")])


def test_plugin_reports_the_eval_arms_a_training_only_suite_never_ran(tiny):
    proc = _pytest(tiny, "checks/train_checks.py", "--modelint-modes-fail", "--modelint-modes=out/modes.json")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    expected = _tiny_training_only(tiny)
    assert _findings(proc.stdout) == expected, proc.stdout
    assert "eval arm of Sampler.forward never ran in the test suite: `self.training` was never false" in proc.stdout
    assert "the test `self.training` never ran at all" in proc.stdout
    assert "FAIL: 5 mode-branch arms never ran (--modelint-modes-fail)" in proc.stdout
    # the table: one block per class, the expression and the suppressed branch still listed
    assert re.search(r"Sampler \(tiny/layers.py\)\n\s+\d+\s+forward\s+if self.training\s+ran\s+NEVER", proc.stdout)
    assert "... if self.training else ...  n/a (conditional expression" in proc.stdout
    assert re.search(r"Quiet \(tiny/layers.py\)\n\s+\d+\s+forward\s+if self.training\s+ran\s+NEVER", proc.stdout)
    report = json.loads((tiny / "out" / "modes.json").read_text())
    assert sorted((f["path"], f["line"], f["code"]) for f in report) == expected
    assert report[0]["extra"]["class"] == "Sampler" and report[0]["level"] == "warning"


def test_plugin_reports_the_train_arms_an_eval_only_suite_never_ran(tiny):
    proc = _pytest(tiny, "checks/eval_checks.py", "--modelint-modes", "--modelint-modes-format=github")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    layers = tiny / "tiny" / "layers.py"
    quiet = [n for n in _marked(layers, "modelint: ignore[MDL501]")]
    lines = sorted(_marked(layers, "# branch") + quiet)
    got = re.findall(r"^::warning file=tiny/layers.py,line=(\d+),.*title=(MDL50\d)", proc.stdout, re.M)
    (unused,) = _marked(layers, "# never called")
    assert sorted((int(n), c) for n, c in got) == sorted([(n, "MDL502") for n in lines] + [(unused, "MDL501"), (unused, "MDL502")])


def test_plugin_under_xdist_combines_the_workers_arcs(tiny):
    pytest.importorskip("xdist")
    # One file per worker: the training arms run on one, the eval arms on the other.
    proc = _pytest(tiny, "checks/train_checks.py", "checks/eval_checks.py", "--modelint-modes=modes.json",
                   "-n", "2", "--dist", "loadfile")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (unused,) = _marked(tiny / "tiny" / "layers.py", "# never called")
    expected = [("tiny/layers.py", unused, "MDL501"), ("tiny/layers.py", unused, "MDL502")]
    assert _findings(proc.stdout) == expected, proc.stdout
    assert "[own collector," in proc.stdout and "WARNING" not in proc.stdout
    assert sorted((f["path"], f["line"], f["code"]) for f in json.loads((tiny / "modes.json").read_text())) == expected
    proc = _pytest(tiny, "checks/train_checks.py", "--modelint-modes", "-n", "2")
    assert _findings(proc.stdout) == _tiny_training_only(tiny), proc.stdout


def test_plugin_honours_the_config_selection(tiny):
    config = (tiny / "pyproject.toml").read_text()
    (tiny / "pyproject.toml").write_text(config + 'ignore = ["MDL502"]\n')
    proc = _pytest(tiny, "checks/eval_checks.py", "--modelint-modes")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert {c for _, _, c in _findings(proc.stdout)} == {"MDL501"}  # only the never-called branch
    (tiny / "pyproject.toml").write_text(config + 'select = ["MDL1"]\n')
    proc = _pytest(tiny, "checks/eval_checks.py", "--modelint-modes-fail")
    assert proc.returncode == 0 and _findings(proc.stdout) == [], proc.stdout
    assert "MDL501/MDL502 are not selected" in proc.stdout


def test_plugin_is_inert_without_its_options(tiny):
    (tiny / "checks" / "inert_checks.py").write_text(textwrap.dedent("""\
        import sys


        def test_nothing_heavy_was_imported():
            assert "modelint.modecov.pytest_plugin" in sys.modules
            heavy = {"coverage", "torch", "libcst", "modelint.analysis.branches", "modelint.engine"}
            assert not heavy & set(sys.modules), heavy & set(sys.modules)
        """))
    proc = _pytest(tiny, "checks/inert_checks.py")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "mode-branch coverage" not in proc.stdout


def test_plugin_refuses_a_test_path_as_its_report_file(tiny):
    proc = _pytest(tiny, "--modelint-modes", "checks/train_checks.py")
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert "--modelint-modes=checks/train_checks.py" in proc.stderr
    assert (tiny / "checks" / "train_checks.py").read_text().startswith("from tiny.layers")


def test_plugin_needs_branch_data_from_pytest_cov(tiny):
    pytest.importorskip("pytest_cov")
    proc = _pytest(tiny, "checks/train_checks.py", "--modelint-modes", "--cov=tiny", "--cov-report=")
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert "add --cov-branch" in proc.stderr


def test_findings_honour_selection_suppressions_and_per_file_ignores(tmp_path, monkeypatch):
    from modelint.modecov.report import BranchResult, build_findings

    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.py").write_text(textwrap.dedent("""\
        import torch.nn as nn


        class A(nn.Module):
            def forward(self, x):
                if self.training:
                    x = x + 1
                if self.training:  # noqa: MDL501
                    x = x + 2
                if (  # modelint: ignore[MDL5]
                    not self.training
                ):
                    return x
                return x
        """))
    branches = scan_files(["m.py"])["m.py"]
    results = [BranchResult(b, measured=True, true_ran=b.true_is_train, false_ran=not b.true_is_train) for b in branches]
    got = build_findings(results, ("MDL501", "MDL502"))
    assert [(f.path, f.line, f.code) for f in got] == [("m.py", 6, "MDL501")]
    assert build_findings(results, ("MDL502",)) == []
    assert build_findings(results, ("MDL5",), per_file_ignores={"*.py": ["MDL501"]}) == []
    assert len(build_findings(results, ("MDL5",), per_file_ignores={"other/*.py": ["MDL501"]})) == 1


def test_measured_files_are_matched_by_real_path_then_by_unique_suffix(tmp_path, monkeypatch):
    from modelint.modecov.report import match_files

    monkeypatch.chdir(tmp_path)
    (tmp_path / "pkg").mkdir()
    ours = ["pkg/model.py", "pkg/__init__.py", "other/__init__.py"]
    measured = [str(tmp_path / "pkg" / "model.py"), "/ci/build/src/pkg/__init__.py", "/ci/build/src/x/__init__.py"]
    assert match_files(ours, measured) == {
        "pkg/model.py": measured[0],  # same file here
        "pkg/__init__.py": measured[1],  # collected on another machine: `pkg/__init__.py` is unique
    }  # `other/__init__.py` shares only its file name: not matched


# --------------------------------------------------------------------------------------------
# coverage_findings on a data file: errors


def test_coverage_findings_errors(tmp_path):
    coverage = pytest.importorskip("coverage")
    with pytest.raises(ValueError, match=r"no coverage data file.*pytest --cov --cov-branch"):
        coverage_findings(str(tmp_path / ".coverage"), [])
    (tmp_path / ".coverage.host.1.2").write_text("")
    with pytest.raises(ValueError, match=r"1 parallel data file .*coverage combine"):
        coverage_findings(str(tmp_path / ".coverage"), [])
    (tmp_path / "junk").write_text("not a database")
    with pytest.raises(ValueError, match=r"junk: cannot read coverage data"):
        coverage_findings(str(tmp_path / "junk"), [])
    lines_only = coverage.CoverageData(basename=str(tmp_path / "lines"))
    lines_only.add_lines({str(tmp_path / "m.py"): [1, 2]})
    lines_only.write()
    with pytest.raises(ValueError, match=r"lines but no branch arcs.*--cov-branch"):
        coverage_findings(str(tmp_path / "lines"), [])
    arcs = coverage.CoverageData(basename=str(tmp_path / "arcs"))
    arcs.add_arcs({str(tmp_path / "m.py"): [(-1, 1), (1, -1)]})
    arcs.write()
    with pytest.raises(ValueError, match=r"nowhere: no such file or directory"):
        coverage_findings(str(tmp_path / "arcs"), [str(tmp_path / "nowhere")])
    assert coverage_findings(str(tmp_path / "arcs"), []) == []  # m.py does not exist here


# --------------------------------------------------------------------------------------------
# The torch fixture project: alone, with pytest-cov, with pytest-xdist; and `coverage_findings`

TRAIN = "checks/train_checks.py"
COV = ["--cov=routing_policy", "--cov-branch", "--cov-report="]
RUNS = {
    "train": [TRAIN, "--modelint-modes-fail", "--modelint-modes=modes.json"],  # its own collector
    "train-cov": [TRAIN, "--modelint-modes", *COV],  # pytest-cov's data
    "train-xdist-cov": [TRAIN, "--modelint-modes", "-n", "2", *COV],  # pytest-cov's combined data
    "all-cov": ["checks", "--modelint-modes-fail", *COV],  # with the eval test
}


def _have(*modules):
    return all(importlib.util.find_spec(m) is not None for m in modules)


@pytest.fixture(scope="module", autouse=True)
def _fixture_runs_in_background(request, tmp_path_factory):
    """Start every run of the fixture project when the module starts, two at a time, so that they
    overlap with the fast tests (each run pays for importing torch); not when no selected test
    needs them."""
    wanted = any("fixture_runs" in getattr(item, "fixturenames", ()) for item in request.session.items)
    if not wanted or not _have("torch", "pytest_cov", "xdist"):
        yield None
        return

    def one(name):
        cwd = tmp_path_factory.mktemp(name) / "modes_project"
        shutil.copytree(FIXTURE, cwd, ignore=shutil.ignore_patterns("__pycache__", ".coverage*", ".pytest_cache"))
        return cwd, _pytest(cwd, *RUNS[name])

    pool = ThreadPoolExecutor(max_workers=2)
    futures = {name: pool.submit(one, name) for name in RUNS}
    yield futures
    pool.shutdown(wait=True)


@pytest.fixture
def fixture_runs(_fixture_runs_in_background):
    if _fixture_runs_in_background is None:
        pytest.skip("needs torch, pytest-cov and pytest-xdist")
    return {name: future.result() for name, future in _fixture_runs_in_background.items()}


def _annotated_eval_arms():
    out = []
    for path in sorted((FIXTURE / "routing_policy").glob("*.py")):
        rel = path.relative_to(FIXTURE).as_posix()
        out += [(rel, line, code) for line, code in expected_from_source(path.read_text(), only=["MDL501", "MDL502"])]
    return sorted(out)


def test_fixture_annotations_are_the_eval_arms():
    expected = _annotated_eval_arms()
    assert len(expected) == 3 and {c for _, _, c in expected} == {"MDL501"}


@pytest.mark.parametrize("name", ["train", "train-cov", "train-xdist-cov"])
def test_training_only_suite_reports_exactly_the_eval_arms(fixture_runs, name):
    cwd, proc = fixture_runs[name]
    assert proc.returncode == (1 if name == "train" else 0), proc.stdout + proc.stderr
    assert _findings(proc.stdout) == _annotated_eval_arms(), proc.stdout
    source = "pytest-cov data" if name.endswith("cov") else "own collector"
    assert f"[{source}," in proc.stdout
    assert "WARNING" not in proc.stdout
    if name == "train":
        report = json.loads((cwd / "modes.json").read_text())
        assert sorted((f["path"], f["line"], f["code"]) for f in report) == _annotated_eval_arms()


def test_one_eval_test_clears_them(fixture_runs, monkeypatch):
    cwd, proc = fixture_runs["all-cov"]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _findings(proc.stdout) == []
    assert "eval arm never ran in 0, train arm never ran in 0" in proc.stdout
    monkeypatch.chdir(cwd)  # the same through the data file (`modelint coverage`)
    assert coverage_findings(".coverage", []) == []


@pytest.mark.parametrize("name", ["train-cov", "train-xdist-cov"])
def test_coverage_findings_on_the_pytest_cov_data_file(fixture_runs, name, monkeypatch):
    cwd, proc = fixture_runs[name]
    monkeypatch.chdir(cwd)
    expected = _annotated_eval_arms()
    for paths in ([], ["routing_policy"]):
        got = coverage_findings(".coverage", paths)
        assert sorted((f.path, f.line, f.code) for f in got) == expected
    assert all(f.message.startswith("eval arm of ") for f in got)


def test_plugin_without_coverage_installed_is_a_one_line_usage_error(tiny):
    """The plugin is registered for every pytest user who installs modelint; coverage.py is an extra."""
    (tiny / "no_coverage.py").write_text("import sys\n\nsys.modules['coverage'] = None  # import coverage -> ImportError\n")
    proc = _pytest(tiny, "-p", "no_coverage", "checks/train_checks.py", "--modelint-modes")
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert "--modelint-modes needs coverage.py: pip install 'modelint[modecov]'" in proc.stderr
    assert "INTERNALERROR" not in proc.stdout + proc.stderr and "Traceback" not in proc.stdout + proc.stderr
    proc = _pytest(tiny, "-p", "no_coverage", "checks/train_checks.py")  # without the option: untouched
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("case", ["collection-error", "exitfirst", "no-tests"])
def test_plugin_reports_nothing_when_the_run_was_incomplete(tiny, case):
    """Tests that did not run would make every arm they reach "never ran": a report of false findings."""
    (tiny / "checks" / "broken_checks.py").write_text("import no_such_module_here\n")
    (tiny / "checks" / "failing_checks.py").write_text("def test_fails():\n    assert False\n")
    args = {"collection-error": ["checks/train_checks.py", "checks/broken_checks.py"],
            "exitfirst": ["-x", "checks/failing_checks.py", "checks/train_checks.py"],
            "no-tests": ["checks/train_checks.py", "-k", "no_test_has_this_name"]}[case]
    proc = _pytest(tiny, *args, "--modelint-modes=modes.json", "--modelint-modes-fail")
    assert proc.returncode == {"collection-error": 2, "exitfirst": 1, "no-tests": 5}[case], proc.stdout + proc.stderr
    assert _findings(proc.stdout) == [] and "never ran" not in proc.stdout, proc.stdout
    reason = {"collection-error": "1 error during collection", "exitfirst": "the session stopped early",
              "no-tests": "no tests ran"}[case]
    assert f"not reported: the run was incomplete ({reason}" in proc.stdout, proc.stdout
    assert not (tiny / "modes.json").exists()
    assert "INTERNALERROR" not in proc.stdout + proc.stderr

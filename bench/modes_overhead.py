#!/usr/bin/env python3
"""Overhead of the mode-branch coverage plugin (`pytest --modelint-modes`) on real test suites.

Each suite runs as a subprocess, in these configurations:

    base        pytest
    modes       pytest --modelint-modes                     (its own coverage.py collector)
    cov         pytest --cov=SRC --cov-branch               (pytest-cov alone)
    cov+modes   pytest --cov=SRC --cov-branch --modelint-modes   (the plugin reads pytest-cov's data)

and the script prints the median wall time and CPU time (user+sys of the whole process tree) of
`--repeat` runs, and the overhead of `modes` over `base` and of `cov+modes` over `cov`.

Suites:
    repo      this project's own in-process tests (tests/test_rule_examples.py, test_analysis.py,
              test_engine.py): the plugin scans the repository (no module class with a mode
              branch outside the excluded fixtures), so this is its fixed cost: import, config,
              scan, report.
    fixture   fixtures/modes_project (a torch routing policy) with its train and eval checks run
              `--scale` times each (a parametrised copy): tracing model code that calls torch ops.
    python    the worst case: a pure-Python module class whose `forward` branches on the mode,
              called 200,000 times in each of 4 tests (every traced line is Python, nothing is
              torch), plus a test of as much pure Python in a file without mode branches (not
              traced by the plugin's collector; pytest-cov traces both).

Usage:
    python bench/modes_overhead.py                   # all suites, 3 repeats
    python bench/modes_overhead.py fixture --repeat 5 --scale 20
    python bench/modes_overhead.py --json out.json

Plugins are loaded explicitly (`PYTEST_DISABLE_PLUGIN_AUTOLOAD=1`, `-p ...`) so that other
installed plugins do not blur the comparison. Nothing is written into the repository.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ("base", "modes", "cov", "cov+modes")

PYTHON_SUITE = {
    "pyproject.toml": """\
        [tool.pytest.ini_options]
        python_files = ["*_checks.py"]
        pythonpath = ["."]

        [tool.modelint]
        module-bases = ["hot.base.Module"]
        """,
    "hot/__init__.py": "",
    "hot/base.py": """\
        class Module:
            training = True

            def __call__(self, *args):
                return self.forward(*args)
        """,
    "hot/layers.py": """\
        from hot.base import Module


        class Gate(Module):
            def __init__(self, p=0.5):
                self.p = p

            def forward(self, x):
                if self.p == 0.0 or not self.training:
                    return x
                y = x * 2
                if self.training:
                    y = y + 1
                else:
                    y = y - 1
                return y
        """,
    "hot/util.py": """\
        def mix(values):
            total = 0
            for v in values:
                total += v * v - v
            return total
        """,
    "checks/hot_checks.py": """\
        import pytest

        from hot.layers import Gate
        from hot.util import mix


        @pytest.mark.parametrize("mode", [True, False] * 2)
        def test_gate(mode):
            gate = Gate()
            gate.training = mode
            total = 0
            for i in range(200_000):
                total += gate(i)
            assert total


        def test_untraced_python():
            assert mix(range(2_000_000))
        """,
}


def _write(root: Path, files: dict) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def _fixture_suite(root: Path, scale: int) -> None:
    shutil.copytree(ROOT / "fixtures" / "modes_project", root, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("train_checks.py", "eval_checks.py"):
        src = (root / "checks" / name).read_text()
        src = src.replace("import torch\n", "import pytest\nimport torch\n", 1)
        # run every test `scale` times
        src = src.replace("\ndef test_", f"\n@pytest.mark.parametrize('_rep', range({scale}))\ndef test_")
        src = src.replace("():", "(_rep):")
        (root / "checks" / name).write_text(src)


def _suites(tmp: Path, scale: int):
    """name -> (cwd, test args, --cov source)."""
    out = {}
    out["repo"] = (ROOT, ["tests/test_rule_examples.py", "tests/test_analysis.py", "tests/test_engine.py"], "modelint")
    fixture = tmp / "fixture"
    _fixture_suite(fixture, scale)
    out["fixture"] = (fixture, ["checks"], "routing_policy")
    hot = tmp / "python"
    _write(hot, PYTHON_SUITE)
    out["python"] = (hot, ["checks"], "hot")
    return out


def _env():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COV_CORE_", "COVERAGE_", "PYTEST_ADDOPTS"))}
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    return env


def _run(cwd: Path, args, source: str, config: str, data_dir: Path):
    cmd = [sys.executable, "-m", "pytest", *args, "-q", "-p", "no:cacheprovider"]
    if "modes" in config:
        cmd += ["-p", "modelint.modecov.pytest_plugin", "--modelint-modes"]
    if "cov" in config:
        cmd += ["-p", "pytest_cov.plugin", f"--cov={source}", "--cov-branch", "--cov-report="]
    env = _env()
    env["COVERAGE_FILE"] = str(data_dir / ".coverage")  # keep pytest-cov's data out of the repo
    start = time.perf_counter()
    before = os.times()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = os.times()
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(cmd)} failed in {cwd}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return wall, cpu


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("suites", nargs="*", metavar="SUITE", help="repo, fixture, python (default: all)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--scale", type=int, default=10, help="repetitions of each fixture test (default 10)")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args(argv)
    chosen = args.suites or ["repo", "fixture", "python"]
    unknown = set(chosen) - {"repo", "fixture", "python"}
    if unknown:
        parser.error(f"unknown suite(s): {', '.join(sorted(unknown))}")
    results = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        suites = _suites(tmp, args.scale)
        print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
        print(f"{'suite':8} {'config':10} {'wall s':>8} {'cpu s':>8}   (median of {args.repeat})")
        for name in chosen:
            cwd, test_args, source = suites[name]
            times = {c: ([], []) for c in CONFIGS}
            for _ in range(args.repeat):
                for config in CONFIGS:  # interleaved, so load drifts hit every configuration alike
                    wall, cpu = _run(cwd, test_args, source, config, tmp)
                    times[config][0].append(wall)
                    times[config][1].append(cpu)
            med = {c: (statistics.median(w), statistics.median(u)) for c, (w, u) in times.items()}
            for config in CONFIGS:
                print(f"{name:8} {config:10} {med[config][0]:8.2f} {med[config][1]:8.2f}")
            for new, old in (("modes", "base"), ("cov+modes", "cov")):
                dw = med[new][0] / med[old][0] - 1
                dc = med[new][1] / med[old][1] - 1
                print(f"{name:8} {new + ' vs ' + old:21} wall {dw:+7.1%}  cpu {dc:+7.1%}")
            results[name] = {c: {"wall": times[c][0], "cpu": times[c][1]} for c in CONFIGS}
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())} "
          "(wall times on a busy machine are noisy: compare the CPU column)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`modelint trace` as a user drives it: target specs checked before anything runs, targets counted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _trace(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "modelint", "trace", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=600)


def test_malformed_target_is_a_usage_error(tmp_path):
    r = _trace("targets.py::1:1", cwd=tmp_path)
    assert r.returncode == 2, r
    assert r.stderr.count("\n") == 1 and "must look like package.module:factory" in r.stderr, r


def test_summary_counts_targets(tmp_path):
    target = f"{ROOT / 'fixtures' / 'trace' / 'models.py'}:vrp_policy_always_samples"
    r = _trace(target, cwd=tmp_path)
    assert r.returncode == 1, r
    assert r.stdout.rstrip().endswith("in 1 of 1 target checked."), r.stdout


def test_timeout_help_says_what_it_covers(tmp_path):
    r = subprocess.run([sys.executable, "-m", "modelint", "trace", "--help"], cwd=tmp_path, capture_output=True,
                       text=True, timeout=60)
    assert "factory call and tracing" in " ".join(r.stdout.split()), r.stdout

"""The result cache: same answers warm as cold, invalidated by content, config and other files."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import BUGGY, CLEAN

BASE = "import torch.nn as nn\n\nclass Base(nn.Module):\n    pass\n"
NOT_A_MODULE = "class Base:\n    pass\n"
CHILD = "import torch.nn.functional as F\nfrom .base import Base\n\nclass M(Base):\n    def forward(self, x):\n        return F.dropout(x, 0.1)\n"


def _json(r):
    return json.loads(r.out)


def test_warm_run_gives_the_same_output_and_writes_gitignore(run, write, tmp_path):
    write("pkg/a.py", BUGGY)
    write("pkg/b.py", CLEAN)
    cold = run("check", "pkg")
    warm = run("check", "pkg")
    assert cold.code == warm.code == 1
    assert cold.out == warm.out
    cache = tmp_path / ".modelint_cache"
    assert (cache / ".gitignore").read_text().strip().endswith("*")
    assert list((cache / "v2" / "results").rglob("*.json"))


def test_content_change_invalidates(run, write):
    write("m.py", BUGGY)
    assert run("check", "m.py").code == 1
    write("m.py", CLEAN)
    assert run("check", "m.py").code == 0


def test_change_in_another_file_invalidates_dependent_findings(run, write):
    write("pkg/__init__.py", "")
    write("pkg/base.py", BASE)
    write("pkg/model.py", CHILD)
    assert run("check", "pkg").code == 1
    write("pkg/base.py", NOT_A_MODULE)  # M is no longer an nn.Module
    assert run("check", "pkg").code == 0
    write("pkg/base.py", BASE)
    assert run("check", "pkg").code == 1


def test_config_change_invalidates(run, write):
    write("m.py", BUGGY.replace("F.dropout(x, 0.1)", "F.dropout(F.dropout(x, 0.1, training=self.training), 0.1, training=True)"))
    assert run("check", "m.py").code == 1
    write("pyproject.toml", "[tool.modelint.rules.MDL101]\nreport-always-on = false\n")
    assert run("check", "m.py").code == 0
    assert run("check", "m.py", "--ignore", "MDL101").code == 0


def test_no_cache_writes_nothing_and_clean_removes(run, write, tmp_path):
    write("m.py", BUGGY)
    assert run("check", "m.py", "--no-cache").code == 1
    assert not (tmp_path / ".modelint_cache").exists()
    run("check", "m.py")
    assert (tmp_path / ".modelint_cache").exists()
    r = run("clean")
    assert r.code == 0 and "Removed" in r.out
    assert not (tmp_path / ".modelint_cache").exists()
    assert "No cache" in run("clean").out


def test_clean_refuses_a_folder_that_is_not_a_cache(run, write, tmp_path):
    write("pyproject.toml", '[tool.modelint]\ncache-dir = "precious"\n')
    write("precious/data.txt", "keep me")
    r = run("clean")
    assert r.code == 2 and "does not look like a modelint cache" in r.err
    assert (tmp_path / "precious" / "data.txt").exists()


def test_corrupt_cache_entries_are_ignored(run, write, tmp_path):
    write("m.py", BUGGY)
    first = run("check", "m.py")
    for entry in (tmp_path / ".modelint_cache").rglob("*.json"):
        entry.write_text("{not json")
    again = run("check", "m.py")
    assert again.code == 1 and again.out == first.out


def test_two_concurrent_runs_share_the_cache(write, tmp_path):
    for i in range(40):
        write(f"pkg/m{i:02d}.py", BUGGY if i % 3 == 0 else CLEAN)
    cmd = [sys.executable, "-m", "modelint", "check", "pkg", "--format", "json"]
    procs = [subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [1, 1], outs
    assert outs[0][0] == outs[1][0]
    assert len(json.loads(outs[0][0])) == 14
    assert not [p for p in (tmp_path / ".modelint_cache").rglob(".tmp-*")]
    warm = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True)
    assert warm.stdout == outs[0][0]


def test_read_only_cache_folder_does_not_fail_the_run(run, write, tmp_path):
    write("pyproject.toml", '[tool.modelint]\ncache-dir = "/proc/modelint-cannot-write-here"\n')
    write("m.py", BUGGY)
    r = run("check", "m.py")
    assert r.code == 1 and "Traceback" not in r.err, r

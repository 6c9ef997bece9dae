"""CLI conventions a ruff user expects, and refusals a new user hits (issue 18)."""

from __future__ import annotations

import json
import os
import re
import stat

import pytest

from tests.conftest import BUGGY, CLEAN


def test_fix_refuses_a_read_only_file_and_says_so(run, write):
    """The atomic rename only needs the folder's write permission, so a 0444 file used to be
    rewritten. Root (these tests) may write anything, so the refusal keys on the mode bits."""
    path = write("m.py", BUGGY)
    os.chmod(path, 0o444)
    r = run("check", "m.py", "--fix")
    assert path.read_text() == BUGGY and stat.S_IMODE(path.stat().st_mode) == 0o444
    assert "m.py: cannot write fixes: file is read-only (mode 0444); not modified" in r.err, r
    assert r.code == 1 and "MDL101" in r.out  # the finding is still reported, unfixed


def test_output_format_and_its_format_alias(run, write):
    write("m.py", BUGGY)
    new, old = run("check", "m.py", "--output-format", "json"), run("check", "m.py", "--format", "json")
    assert new.code == old.code == 1 and new.out == old.out
    assert [f["code"] for f in json.loads(new.out)] == ["MDL101"]


def test_quiet_prints_the_findings_only(run, write):
    write("m.py", BUGGY)
    write("ok.py", CLEAN)
    r = run("check", "m.py", "-q")
    assert r.code == 1 and r.out.splitlines() == [r.out.splitlines()[0]] and r.out.startswith("m.py:7:16: MDL101"), r
    r = run("check", "ok.py", "--quiet")
    assert r.code == 0 and r.out == "" and r.err == "", r


def test_verbose_names_the_config_and_the_file_count(run, write, tmp_path):
    write("pyproject.toml", "[tool.modelint]\n")
    write("m.py", CLEAN)
    r = run("check", "m.py", "-v")
    assert r.code == 0 and re.search(rf"config {re.escape(str(tmp_path))}/pyproject.toml; 1 file checked in \d", r.err), r
    assert "config" not in run("check", "m.py").err


@pytest.mark.parametrize("flag, env, colored", [
    (None, {}, False),                                  # stdout is a pipe here: auto means none
    (None, {"FORCE_COLOR": "1"}, True),
    (None, {"FORCE_COLOR": "1", "NO_COLOR": "1"}, False),  # NO_COLOR wins
    ("always", {"NO_COLOR": "1"}, True),                # an explicit flag beats the environment
    ("never", {"FORCE_COLOR": "1"}, False),
])
def test_color(run, write, flag, env, colored):
    write("m.py", BUGGY)
    base = {"NO_COLOR": "", "FORCE_COLOR": ""}
    r = run("check", "m.py", *(["--color", flag] if flag else []), env={**base, **env})
    assert r.code == 1 and ("\033[" in r.out) == colored, r
    if colored:
        assert r.out.startswith("\033[1mm.py:7:16\033[0m: \033[1;31mMDL101\033[0m")


def test_color_on_a_terminal_by_default(write, tmp_path):
    """auto = a TTY: run under a pseudo-terminal, as a user's shell would."""
    import pty
    import subprocess
    import sys

    write("m.py", BUGGY)
    leader, follower = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    proc = subprocess.run([sys.executable, "-m", "modelint", "check", "m.py"], cwd=tmp_path, stdout=follower,
                          stderr=subprocess.PIPE, env=env, timeout=300)
    os.close(follower)
    out = os.read(leader, 65536).decode()
    os.close(leader)
    assert proc.returncode == 1 and "\033[1;31mMDL101\033[0m" in out, out


def test_show_fixes_lists_each_fix_and_the_fixed_files(run, write):
    write("m.py", BUGGY)
    r = run("check", "m.py", "--show-fixes")
    assert r.code == 1 and "\n    fix (safe): " in r.out, r
    assert "--show-fixes" not in r.out and "    fix" not in run("check", "m.py").out
    r = run("check", "m.py", "--fix", "--show-fixes")
    assert "Fixed 1 finding in 1 file (MDL101 x1)." in r.err and "  fixed m.py" in r.err, r


def test_exit_non_zero_on_fix(run, write):
    path = write("m.py", BUGGY)
    r = run("check", "m.py", "--fix")
    assert r.code == 0 and "training=self.training" in path.read_text(), r  # everything fixed: success
    write("m.py", BUGGY)
    r = run("check", "m.py", "--fix", "--exit-non-zero-on-fix")
    assert r.code == 1 and "training=self.training" in path.read_text() and "All checks passed" in r.out, r
    r = run("check", "m.py", "--fix", "--exit-non-zero-on-fix")  # nothing left to fix
    assert r.code == 0, r


def test_exclude_and_extend_exclude_on_the_command_line(run, write):
    write("pyproject.toml", '[tool.modelint]\nextend-exclude = ["gen/"]\n')
    for rel in ("a/m.py", "b/m.py", "gen/m.py", "build/m.py"):
        write(rel, BUGGY)
    files = lambda *a: run("check", "--show-files", *a).out.split()  # noqa: E731
    assert files() == ["a/m.py", "b/m.py"]  # build/ is in the default exclude list, gen/ configured
    assert files("--extend-exclude", "b/") == ["a/m.py"]
    assert files("--exclude", "a/") == ["b/m.py", "build/m.py"]  # replaces the default list, keeps extend
    r = run("check", "--extend-exclude", "a/,b/")
    assert r.code == 0 and "(0 files checked)" in r.out


def test_show_files_lists_without_checking(run, write):
    write("m.py", BUGGY)
    write("nb/n.ipynb", json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    r = run("check", "--show-files")
    assert r.code == 0 and r.out.split() == ["m.py", "nb/n.ipynb"] and "MDL101" not in r.out, r


def test_show_settings_prints_the_resolved_settings(run, write, tmp_path):
    write("pyproject.toml", '[tool.modelint]\nignore = ["MDL102"]\nper-file-ignores = { "tests/*" = ["MDL3"] }\n')
    r = run("check", "--show-settings", "--extend-exclude", "gen/")
    assert r.code == 0, r
    rows = dict(line.split(None, 1) if not line.startswith(("config file", "extend-exclude", "per-file", "module",
                                                              "rule options", "respect"))
                else (line[:17].strip(), line[17:].strip()) for line in r.out.splitlines())
    assert rows["config file"] == str(tmp_path / "pyproject.toml")
    assert "MDL101" in rows["select"] and "MDL102" not in rows["select"]
    assert rows["extend-exclude"] == "gen/" and rows["per-file-ignores"] == "tests/* = MDL3"


def test_zero_files_checked_is_a_warning(run, write):
    write("notes.txt", "nothing to check\n")
    r = run("check", ".")
    assert r.code == 0 and "All checks passed (0 files checked)." in r.out
    assert r.err == "modelint: warning: no files to check under . (0 files checked)\n", r


def test_watch_rechecks_on_change_and_reuses_the_cache(tmp_path, write):
    """Two reports from one process: the first with the bug, the second after the file was fixed."""
    import subprocess
    import sys
    import time

    path = write("m.py", BUGGY)
    write("other.py", CLEAN)
    proc = subprocess.Popen([sys.executable, "-m", "modelint", "check", "--watch", "--watch-reports", "2",
                             "--watch-interval", "0.05"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = [proc.stdout.readline(), proc.stdout.readline()]
        assert first[0].startswith("m.py:7:16: MDL101") and first[1].startswith("Found 1 finding in 1 of 2 files"), first
        time.sleep(0.05)
        path.write_text(CLEAN + "\n")  # a different size: a change even within one mtime tick
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0 and out == "All checks passed (2 files checked).\n", (out, err)
    assert err.count("watching 2 files for changes") == 2
    assert sorted((tmp_path / ".modelint_cache").rglob("*")), "the cache was not used"


def test_watch_refuses_fix(run, write):
    write("m.py", BUGGY)
    r = run("check", "--watch", "--fix")
    assert r.code == 2 and "--watch only reports" in r.err

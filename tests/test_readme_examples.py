"""Every README example marked `<!-- example: FILE -->` is FILE verbatim, and behaves as shown.

A README example that was pasted by a new user reported nothing (it had no imports); now each one
is a file of the repository that this test checks: the block equals the file, `<!-- output:
modelint ARGS -->` blocks equal what that command prints, the fixed twin is clean, the
configuration loads.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from modelint.config import load_config, validate_config

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
EXAMPLES = dict(re.findall(r"<!-- example: (\S+)[^>]*-->\n```\w*\n(.*?)```\n", README, re.S))
OUTPUTS = re.findall(r"<!-- output: modelint (.*?) -->\n```\w*\n(.*?)```\n", README, re.S)


def _modelint(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "modelint", *args, "--no-cache"], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def test_the_readme_marks_its_examples():
    assert {"examples/what_it_finds.py", "examples/what_it_finds_fixed.py", "examples/configuration.toml",
            "examples/suppressing.py"} <= set(EXAMPLES)
    assert OUTPUTS, "no <!-- output: --> block"


@pytest.mark.parametrize("rel", sorted(EXAMPLES))
def test_the_readme_block_is_the_file_verbatim(rel):
    assert (ROOT / rel).read_text() == EXAMPLES[rel]


@pytest.mark.parametrize("command, shown", OUTPUTS, ids=[c for c, _ in OUTPUTS])
def test_the_readme_output_is_what_the_command_prints(command, shown):
    r = _modelint(*shlex.split(command))
    assert r.stdout == shown, r.stdout + r.stderr


def test_the_first_example_reports_what_its_comments_say_and_its_twin_is_clean():
    buggy = ROOT / "examples" / "what_it_finds.py"
    marked = sorted((n, code) for n, line in enumerate(buggy.read_text().splitlines(), 1)
                    for code in re.findall(r"# (MDL\d{3})", line))
    r = _modelint("check", "examples/what_it_finds.py", "--output-format", "json")
    import json

    assert sorted((f["line"], f["code"]) for f in json.loads(r.stdout)) == marked == [(12, "MDL101"), (13, "MDL103")]
    r = _modelint("check", "examples/what_it_finds_fixed.py")
    assert r.returncode == 0 and r.stdout == "All checks passed (1 file checked).\n", r.stdout + r.stderr


def test_the_fix_of_the_first_example_is_clean(tmp_path):
    target = tmp_path / "model.py"
    target.write_text((ROOT / "examples" / "what_it_finds.py").read_text())
    r = _modelint("check", "model.py", "--fix", cwd=tmp_path)
    assert r.returncode == 0 and "Fixed 2 findings" in r.stderr, r.stdout + r.stderr


def test_the_suppression_example_suppresses_both_lines_and_each_comment_is_used(tmp_path):
    r = _modelint("check", "examples/suppressing.py", "--extend-select", "MDL001")
    assert r.returncode == 0 and r.stdout == "All checks passed (1 file checked).\n", r.stdout + r.stderr
    bare = tmp_path / "bare.py"  # without the comments both lines are findings: the example is not vacuous
    bare.write_text(re.sub(r"  # (modelint|noqa).*", "", (ROOT / "examples" / "suppressing.py").read_text()))
    r = _modelint("check", "bare.py", "--output-format", "json", cwd=tmp_path)
    import json

    assert [(f["line"], f["code"]) for f in json.loads(r.stdout)] == [(8, "MDL101"), (9, "MDL101")], r.stdout


def test_the_configuration_example_loads_and_validates():
    cfg = load_config(ROOT / "examples" / "configuration.toml")
    validate_config(cfg)
    assert cfg.select == ["MDL1", "MDL2"] and cfg.ignore == ["MDL102"]
    assert cfg.per_file_ignores == {"tests/*": ["MDL3"]}
    assert cfg.rule_options == {"MDL101": {"report-always-on": False}}
    r = _modelint("check", "examples/suppressing.py", "--config", "examples/configuration.toml", "--show-settings")
    assert r.returncode == 0 and "extend-exclude     experiments/" in r.stdout, r.stdout + r.stderr


def test_the_guard_example_runs_clean_and_catches_the_bug_it_names(tmp_path):
    """The plain-PyTorch guard example, run as a script (torch in a subprocess, as a user runs it)."""
    if importlib.util.find_spec("torch") is None:  # not imported here: the test process stays torch-free
        pytest.skip("needs torch (the trace extra)")
    source = (ROOT / "examples" / "guard_plain.py").read_text()
    r = subprocess.run([sys.executable, str(ROOT / "examples" / "guard_plain.py")], capture_output=True, text=True,
                       timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "modelint.guard(Sequential): no findings in 3 optimizer steps (3 checked) and 0 eval forwards\n"
    assert source.count("model.head.train()") == 1
    bad = tmp_path / "bad.py"  # the classic bug: model.train() puts the frozen backbone's batch norm back in train mode
    bad.write_text(source.replace("model.head.train()", "model.train()"))
    r = subprocess.run([sys.executable, str(bad)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 1 and "ModeViolation: MDL611 [frozen-statistics-updated]" in r.stderr, r.stderr

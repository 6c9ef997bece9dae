"""Autofix: `--fix`, `--unsafe-fixes`, `--diff`, and the safety contract (parse, fixpoint,
idempotence, atomic writes keeping encoding / BOM / newlines / permissions, never touching broken
files, suppressed or ignored findings)."""

from __future__ import annotations

import copy
import json
import os
import stat
import textwrap

import pytest

from modelint import fixes
from modelint.fixing import FixOutcome, fix_text
from modelint.findings import Edit, Finding, Fix
from tests.conftest import BUGGY, CLEAN, ROOT

TWO_BUGS = """\
import torch.nn.functional as F
from torch import nn


class Block(nn.Module):
    def forward(self, x):
        x = F.dropout(x, 0.1)
        return F.dropout(x, 0.2)


class Cached(nn.Module):
    def train(self, mode=True):
        self.cache = None
"""


# --- the command line ------------------------------------------------------------------------


def test_fix_writes_the_fix_and_reports_nothing_left(run, write):
    path = write("m.py", BUGGY)
    r = run("check", "m.py", "--fix")
    assert r.code == 0, r
    assert path.read_text() == CLEAN.replace("0.1, self.training", "0.1, training=self.training")
    assert "Fixed 1 finding in 1 file (MDL101 x1)." in r.err
    assert "All checks passed" in r.out


def test_remaining_findings_set_the_exit_code(run, write):
    path = write("m.py", TWO_BUGS)
    r = run("check", "m.py", "--fix")
    # MDL101 x2 fixed; MDL203 needs super().train(mode) (unsafe), so it remains and exit is 1
    assert r.code == 1, r
    assert "Fixed 2 findings in 1 file (MDL101 x2)." in r.err
    assert "MDL203" in r.out and "MDL101" not in r.out
    assert "1 more with --unsafe-fixes." in r.out
    text = path.read_text()
    assert text.count("training=self.training") == 2 and "super().train" not in text


def test_unsafe_fixes(run, write):
    path = write("m.py", TWO_BUGS)
    r = run("check", "m.py", "--fix", "--unsafe-fixes")
    assert r.code == 0, r
    assert "(MDL101 x2, MDL203 x1)" in r.err
    text = path.read_text()
    assert "        super().train(mode)\n        self.cache = None\n        return self\n" in text


def test_diff_prints_and_writes_nothing(run, write):
    path = write("m.py", TWO_BUGS)
    before = path.read_bytes()
    r = run("check", "m.py", "--diff")
    assert r.code == 1, r
    assert path.read_bytes() == before
    assert r.out.startswith("--- a/m.py\n+++ b/m.py\n")
    assert "\n-        x = F.dropout(x, 0.1)\n" in r.out
    assert "\n+        x = F.dropout(x, 0.1, training=self.training)\n" in r.out
    assert "super" not in r.out  # unsafe fixes are not in the safe diff
    assert "Would fix 2 findings in 1 file (MDL101 x2)." in r.err


def test_diff_without_fixes_exits_0(run, write):
    write("m.py", CLEAN)
    r = run("check", "m.py", "--diff")
    assert r.code == 0 and r.out == "", r


def test_second_fix_run_is_a_no_op(run, write):
    path = write("m.py", TWO_BUGS)
    assert run("check", "m.py", "--fix", "--unsafe-fixes").code == 0
    once = path.read_bytes()
    r = run("check", "m.py", "--fix", "--unsafe-fixes", "--no-cache")
    assert r.code == 0 and "Fixed" not in r.err, r
    assert path.read_bytes() == once
    assert run("check", "m.py", "--diff", "--unsafe-fixes").out == ""


def test_text_marks_fixable_findings_and_json_carries_the_fix(run, write):
    write("m.py", TWO_BUGS)
    r = run("check", "m.py")
    lines = r.out.splitlines()
    assert all(" MDL101 [*] " in line for line in lines if "MDL101" in line)
    assert any("MDL203 " in line and "[*]" not in line for line in lines)  # its fix is unsafe
    assert "2 fixable with --fix ([*])." in r.out and "1 more with --unsafe-fixes." in r.out
    marked = run("check", "m.py", "--unsafe-fixes").out
    assert "MDL203 [*]" in marked and "3 fixable with --fix --unsafe-fixes ([*])." in marked

    data = json.loads(run("check", "m.py", "--format", "json").out)
    fixes_by_code = {f["code"]: f["fix"] for f in data["findings"]} if isinstance(data, dict) else \
        {f["code"]: f["fix"] for f in data}
    fx = fixes_by_code["MDL101"]
    assert fx["applicability"] == "safe" and fx["title"].startswith("Pass `training=self.training`")
    assert fx["edits"] == [{"line": 8, "column": 16, "end_line": 8, "end_column": 33,
                            "content": "F.dropout(x, 0.2, training=self.training)"}]
    assert fixes_by_code["MDL203"]["applicability"] == "unsafe"


def test_rules_lists_the_fixable_rules(run):
    out = run("rules").out
    fixable = {line.split()[0] for line in out.splitlines()[1:] if line.split()[3] == "yes"}
    assert fixable == {"MDL101", "MDL103", "MDL107", "MDL201", "MDL203", "MDL303", "MDL305", "MDL401"}
    assert "fixable" in run("rule", "MDL201").out.splitlines()[0]


def test_suppressed_ignored_and_unselected_findings_are_not_fixed(run, write):
    write("pyproject.toml", '[tool.modelint]\nper-file-ignores = {"ignored.py" = ["MDL101"]}\n')
    suppressed = write("sup.py", BUGGY.replace("0.1)", "0.1)  # modelint: ignore[MDL101]"))
    ignored = write("ignored.py", BUGGY)
    unselected = write("unsel.py", BUGGY)
    before = {p: p.read_bytes() for p in (suppressed, ignored, unselected)}
    assert run("check", "sup.py", "ignored.py", "--fix").code == 0
    assert run("check", "unsel.py", "--fix", "--select", "MDL203").code == 0
    assert {p: p.read_bytes() for p in before} == before


def test_file_with_a_parse_error_is_never_touched(run, write):
    path = write("m.py", BUGGY + "\ndef broken(:\n")
    before = path.read_bytes()
    r = run("check", "m.py", "--fix")
    assert r.code == 1 and "MDL000" in r.out
    assert path.read_bytes() == before


def test_other_files_are_fixed_when_one_is_broken(run, write):
    bad = write("bad.py", "def broken(:\n")
    good = write("good.py", BUGGY)
    r = run("check", ".", "--fix")
    assert r.code == 1 and "bad.py:1" in r.out
    assert "training=self.training" in good.read_text() and bad.read_text() == "def broken(:\n"


# --- bytes on disk ----------------------------------------------------------------------------


def test_crlf_bom_tabs_and_permissions_are_kept(run, write):
    source = BUGGY.replace("    ", "\t").replace("\n", "\r\n")
    path = write("m.py", b"\xef\xbb\xbf" + source.encode(), mode="wb")
    os.chmod(path, 0o640)
    assert run("check", "m.py", "--fix").code == 0
    data = path.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    assert data.count(b"\r\n") == source.count("\r\n") and b"\n" not in data.replace(b"\r\n", b"")
    assert b"\t\treturn F.dropout(x, 0.1, training=self.training)\r\n" in data
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_latin1_cookie_is_kept(run, write):
    source = "# -*- coding: latin-1 -*-\n# caf\xe9\n" + BUGGY
    path = write("m.py", source.encode("latin-1"), mode="wb")
    assert run("check", "m.py", "--fix").code == 0
    data = path.read_bytes()
    assert data.startswith(b"# -*- coding: latin-1 -*-\n# caf\xe9\n")
    assert b"training=self.training" in data


def test_inserted_lines_use_crlf_and_the_block_indentation(run, write):
    source = TWO_BUGS.replace("    ", "  ").replace("\n", "\r\n")
    path = write("m.py", source.encode(), mode="wb")
    assert run("check", "m.py", "--fix", "--unsafe-fixes").code == 0
    text = path.read_bytes().decode()
    assert "  def train(self, mode=True):\r\n    super().train(mode)\r\n    self.cache = None\r\n    return self\r\n" in text


def test_fix_writes_through_a_symlink(run, write, tmp_path):
    target = write("real.py", BUGGY)
    link = tmp_path / "link.py"
    link.symlink_to(target)
    assert run("check", "link.py", "--fix").code == 0
    assert link.is_symlink() and "training=self.training" in target.read_text()


def test_no_temporary_files_are_left_behind(run, write, tmp_path):
    write("m.py", TWO_BUGS)
    run("check", "m.py", "--fix", "--no-cache")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.py"]


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root can write to read-only folders")
def test_unwritable_folder_is_a_one_line_error_and_the_file_is_intact(run, write, tmp_path):
    path = write("ro/m.py", BUGGY)
    os.chmod(tmp_path / "ro", 0o555)
    try:
        r = run("check", "ro/m.py", "--fix", "--no-cache")
    finally:
        os.chmod(tmp_path / "ro", 0o755)
    assert "cannot write fixes" in r.err and "Traceback" not in r.err
    assert path.read_text() == textwrap.dedent(BUGGY)
    assert r.code == 1 and "MDL101" in r.out


# --- the fix loop -----------------------------------------------------------------------------


def _finding(fx: Fix, code: str = "MDL101") -> Finding:
    return Finding("m.py", fx.edits[0].line, fx.edits[0].column, code, "msg", fix=fx)


def test_overlapping_fixes_wait_for_the_next_round():
    a = Fix("a", "safe", (Edit(1, 1, 1, 4, "AAA"),))
    b = Fix("b", "safe", (Edit(1, 3, 1, 6, "BBB"),))
    c = Fix("c", "safe", (Edit(2, 1, 2, 1, "# c\n"),))
    text, used = fixes.apply_fixes("abcdef\nxyz\n", [b, c, a])
    assert used == [a, c]
    assert text == "AAAdef\n# c\nxyz\n"


def test_two_insertions_at_one_point_conflict():
    a = Fix("a", "safe", (Edit(1, 1, 1, 1, "x = 1\n"),))
    b = Fix("b", "safe", (Edit(1, 1, 1, 1, "y = 2\n"),))
    text, used = fixes.apply_fixes("pass\n", [a, b])
    assert len(used) == 1 and text.count("=") == 1


def test_a_fix_that_breaks_parsing_is_dropped_and_the_rest_applied():
    good = Fix("good", "safe", (Edit(1, 5, 1, 6, "2"),))
    bad = Fix("bad", "safe", (Edit(2, 5, 2, 5, "("),))
    source = "a = 1\nb = 1\n"

    def check(data: bytes):
        text = data.decode()
        found = []
        if "a = 1" in text:
            found.append(_finding(good))
        if "b = 1" in text and "(" not in text:
            found.append(_finding(bad, "MDL103"))
        return found

    out: FixOutcome = fix_text(source, str.encode, check, lambda f: f, unsafe=False)
    assert out.after == "a = 2\nb = 1\n"
    assert out.applied == {"MDL101": 1}
    assert "fix for MDL103 not applied: the fixed file would not parse" in out.error


def test_a_fix_that_never_converges_stops_after_the_bound():
    rounds = []

    def check(data: bytes):
        rounds.append(1)
        n = data.decode().count("\n") + 1
        return [_finding(Fix("grow", "safe", (Edit(n, 1, n, 1, "pass\n"),)))]

    out = fix_text("pass\n", str.encode, check, lambda f: f, unsafe=False)
    assert out.after.count("pass") == 1 + fixes.MAX_ROUNDS
    assert len(rounds) == fixes.MAX_ROUNDS + 1


def test_unsafe_fixes_need_the_flag():
    fx = Fix("u", "unsafe", (Edit(1, 1, 1, 6, "x = 2"),))

    def check(data: bytes):
        return [_finding(fx)] if data == b"x = 1\n" else []

    assert fix_text("x = 1\n", str.encode, check, lambda f: f, unsafe=False).after == "x = 1\n"
    assert fix_text("x = 1\n", str.encode, check, lambda f: f, unsafe=True).after == "x = 2\n"


def test_text_not_encodable_in_the_file_encoding_is_not_written():
    fx = Fix("e", "safe", (Edit(1, 1, 1, 1, "# \u2603\n"),))

    def check(data: bytes):
        return [_finding(fx)] if b"#" not in data else []

    out = fix_text("x = 1\n", lambda t: fixes.encode(fixes.Decoded(t, "latin-1"), t), check, lambda f: f, unsafe=False)
    assert out.after == "x = 1\n" and "cannot be encoded" in out.error


def test_line_splitting_matches_python_not_str_splitlines():
    # a form feed is not a line break for Python: edits on the next line must land there
    source = "x = 1\x0c\ny = 2\n"
    text, _ = fixes.apply_fixes(source, [Fix("t", "safe", (Edit(2, 5, 2, 6, "3"),))])
    assert text == "x = 1\x0c\ny = 3\n"


# --- notebooks --------------------------------------------------------------------------------

NOTEBOOK = ROOT / "fixtures" / "notebooks" / "finetune.ipynb"


def test_notebook_fix_changes_only_the_fixed_cell_source(run, tmp_path):
    path = tmp_path / "nb.ipynb"
    original = NOTEBOOK.read_bytes()
    path.write_bytes(original)
    before = json.loads(original)
    r = run("check", "nb.ipynb", "--fix")
    assert "Fixed" in r.err, r
    after = json.loads(path.read_bytes())
    changed = [i for i, (a, b) in enumerate(zip(before["cells"], after["cells"])) if a != b]
    assert changed, "nothing was fixed"
    for i in changed:
        a, b = copy.deepcopy(before["cells"][i]), copy.deepcopy(after["cells"][i])
        a.pop("source"), b.pop("source")
        assert a == b, "only `source` may change"
    assert {k: v for k, v in before.items() if k != "cells"} == {k: v for k, v in after.items() if k != "cells"}
    assert "training=self.training" in "".join(after["cells"][changed[0]]["source"])
    # every line of the file outside the changed source lines is byte-identical
    old_lines, new_lines = original.decode().split("\n"), path.read_text().split("\n")
    import difflib
    diff = [ln for ln in difflib.unified_diff(old_lines, new_lines, lineterm="", n=0)
            if ln.startswith(("+", "-")) and not ln.startswith(("+++", "---"))]
    assert all(ln[1:].lstrip().startswith('"') for ln in diff), diff
    # the magics survive, and a second run changes nothing
    assert "%matplotlib inline\n" in after["cells"][1]["source"]
    once = path.read_bytes()
    r2 = run("check", "nb.ipynb", "--fix", "--no-cache")
    assert "Fixed" not in r2.err and path.read_bytes() == once


def test_notebook_with_an_unusual_layout_is_not_reformatted(run, tmp_path):
    nb = json.loads(NOTEBOOK.read_bytes())
    text = json.dumps(nb, indent=1, separators=(",", " : "))  # not a layout we can reproduce
    path = tmp_path / "odd.ipynb"
    path.write_text(text)
    r = run("check", "odd.ipynb", "--fix")
    assert "not fixed: its JSON layout cannot be reproduced exactly" in r.err, r
    assert path.read_text() == text
    assert r.code == 1


def test_notebook_diff(run, tmp_path):
    path = tmp_path / "nb.ipynb"
    path.write_bytes(NOTEBOOK.read_bytes())
    r = run("check", "nb.ipynb", "--diff")
    assert r.code == 1 and "training=self.training" in r.out
    assert path.read_bytes() == NOTEBOOK.read_bytes()


def test_notebook_source_as_string_and_compact_layout(run, tmp_path):
    nb = json.loads(NOTEBOOK.read_bytes())
    for cell in nb["cells"]:
        cell["source"] = "".join(cell["source"])
    text = json.dumps(nb, indent=2, ensure_ascii=True) + "\n"
    path = tmp_path / "nb.ipynb"
    path.write_text(text)
    r = run("check", "nb.ipynb", "--fix")
    assert "Fixed" in r.err, r
    after = json.loads(path.read_text())
    assert all(isinstance(c["source"], str) for c in after["cells"])
    assert path.read_text() == json.dumps(after, indent=2, ensure_ascii=True) + "\n"


def test_rules_json_says_which_rules_fix(run):
    data = json.loads(run("rules", "--format", "json").out)
    assert {r["code"] for r in data if r["fixable"]} == {"MDL101", "MDL103", "MDL107", "MDL201", "MDL203", "MDL303", "MDL305", "MDL401"}
    assert all(isinstance(r["fixable"], bool) for r in data)


def test_fix_that_adds_an_import_converges_through_the_cli(run, write):
    """The fixed file is re-read with its new import (stale import facts would make MDL201 wrap
    the already wrapped list again on the next round)."""
    path = write("m.py", """\
        from torch.nn import Linear, Module


        class Heads(Module):
            def __init__(self, d):
                super().__init__()
                self.heads = [Linear(d, 1) for _ in range(3)]
        """)
    r = run("check", "m.py", "--fix", "--unsafe-fixes", "--extend-select", "MDL201")
    assert r.code == 0, r
    text = path.read_text()
    assert "from torch import nn\n" in text
    assert text.count("ModuleList") == 1 and "self.heads = nn.ModuleList([Linear(d, 1) for _ in range(3)])" in text


def test_notebook_and_module_share_one_fix_loop_a_breaking_fix_is_dropped_alone(tmp_path):
    """One loop for .py and .ipynb: in a notebook too, a fix that would break the code is left out
    and the others are applied (cell coordinates; only the edited cell's source changes)."""
    from modelint.fixing import fix_path

    cells = [{"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": [src]}
             for src in ("a = 1\n", "b = 1\n")]
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}, indent=1) + "\n")
    good = Fix("good", "safe", (Edit(1, 5, 1, 6, "2"),))
    bad = Fix("bad", "safe", (Edit(1, 5, 1, 5, "("),))

    def check(data: bytes):
        sources = ["".join(c["source"]) for c in json.loads(data)["cells"]]
        found = []
        if sources[0] == "a = 1\n":
            found.append(Finding(str(path), 1, 5, "MDL101", "msg", fix=good, cell=1))
        if sources[1] == "b = 1\n":
            found.append(Finding(str(path), 1, 5, "MDL103", "msg", fix=bad, cell=2))
        return found

    out = fix_path(str(path), [], check, lambda f: f, unsafe=False, write=True)
    assert out.applied == {"MDL101": 1}
    assert "fix for MDL103 not applied: the fixed file would not parse" in out.error
    assert [c["source"] for c in json.loads(path.read_text())["cells"]] == [["a = 2\n"], ["b = 1\n"]]
    assert [f.code for f in out.findings] == ["MDL103"]

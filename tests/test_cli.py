"""The CLI as a user drives it: options, exit codes, config, suppressions, errors."""

from __future__ import annotations

import json

import pytest

from tests.conftest import BUGGY, CLEAN


def test_clean_file_exits_0(run, write):
    write("m.py", CLEAN)
    r = run("check", "m.py")
    assert r.code == 0, r
    assert "All checks passed (1 file checked)." in r.out


def test_finding_exits_1_with_clickable_location(run, write):
    write("m.py", BUGGY)
    r = run("check", "m.py")
    assert r.code == 1, r
    first = r.out.splitlines()[0]
    assert first.startswith("m.py:7:16: MDL101 ")
    assert "Found 1 finding in 1 of 1 file checked." in r.out


def test_default_path_is_current_folder(run, write):
    write("pkg/m.py", BUGGY)
    r = run("check")
    assert r.code == 1 and "pkg/m.py:7:16: MDL101" in r.out, r


def test_exit_zero(run, write):
    write("m.py", BUGGY)
    r = run("check", "m.py", "--exit-zero")
    assert r.code == 0 and "MDL101" in r.out


def test_missing_path_is_one_line_error(run):
    r = run("check", "nope.py")
    assert r.code == 2
    assert r.err.strip() == "modelint: error: nope.py: no such file or directory"
    assert "Traceback" not in r.err


def test_unknown_option_is_usage_error(run):
    r = run("check", "--frobnicate")
    assert r.code == 2 and r.err.startswith("modelint: error:") and "Traceback" not in r.err


@pytest.mark.parametrize("args", [("--output", "json"), ("--form", "json"), ("--output-f", "r.txt"), ("--stat",)])
def test_abbreviated_options_are_refused_not_guessed(run, write, tmp_path, args):
    """argparse's prefix matching took `--output json` as `--output-file json` (a report written
    to a file named json); every option must be spelled out."""
    write("m.py", BUGGY)
    r = run("check", "m.py", *args)
    assert r.code == 2 and r.err.strip() == f"modelint: error: unrecognized arguments: {' '.join(args)}", r
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.py"]


def test_short_options_still_work(run, write, tmp_path):
    write("m.py", BUGGY)
    r = run("check", "m.py", "-j1", "-o", "r.txt")
    assert r.code == 1 and r.out == "" and "MDL101" in (tmp_path / "r.txt").read_text(), r


@pytest.mark.parametrize("flag", ["--select", "--ignore", "--extend-select"])
def test_unknown_code_on_command_line_suggests_nearest(run, write, flag):
    write("m.py", CLEAN)
    r = run("check", "m.py", flag, "MDL10l")
    assert r.code == 2, r
    assert "unknown rule code 'MDL10l'" in r.err and "did you mean" in r.err


def test_select_ignore_extend_select_and_prefixes(run, write):
    write(
        "m.py",
        BUGGY
        + "\n    def g(self, x):\n        return F.alpha_dropout(x, 0.1)\n",
    )
    both = run("check", "m.py", "--format", "json")
    assert sorted(f["code"] for f in json.loads(both.out)) == ["MDL101", "MDL102"]
    only_101 = run("check", "m.py", "--select", "MDL101", "--format", "json")
    assert [f["code"] for f in json.loads(only_101.out)] == ["MDL101"]
    prefix = run("check", "m.py", "--select", "MDL1", "--ignore", "MDL101", "--format", "json")
    assert [f["code"] for f in json.loads(prefix.out)] == ["MDL102"]
    none = run("check", "m.py", "--ignore", "MDL1")
    assert none.code == 0, none
    extend = run("check", "m.py", "--select", "MDL102", "--extend-select", "MDL101", "--format", "json")
    assert sorted(f["code"] for f in json.loads(extend.out)) == ["MDL101", "MDL102"]


def test_statistics(run, write):
    write("a.py", BUGGY)
    write("b.py", BUGGY)
    r = run("check", ".", "--statistics")
    assert "     2  MDL101  functional-dropout-ignores-mode" in r.out, r


def test_output_file_is_written_and_stdout_empty(run, write, tmp_path):
    write("m.py", BUGGY)
    r = run("check", "m.py", "--format", "json", "--output-file", "out/report.json")
    assert r.code == 2 and "cannot write out/report.json" in r.err  # missing folder: one-line error
    r = run("check", "m.py", "--format", "json", "--output-file", "report.json")
    assert r.code == 1 and r.out == ""
    assert json.loads((tmp_path / "report.json").read_text())[0]["code"] == "MDL101"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".report")] == []  # no temp left


def test_jobs_option(run, write):
    for i in range(30):
        write(f"pkg/m{i:02d}.py", BUGGY)
    serial = run("check", "pkg", "--jobs", "1")
    parallel = run("check", "pkg", "--jobs", "2")
    assert serial.code == parallel.code == 1
    assert serial.out == parallel.out
    assert serial.out.count("MDL101") == 30
    bad = run("check", "pkg", "--jobs", "-1")
    assert bad.code == 2


def test_version_and_help(run):
    assert run("--version").out.startswith("modelint ")
    r = run("check", "--help")
    assert r.code == 0 and "--select" in r.out
    assert run().code == 2  # no command


def test_rules_lists_every_rule(run):
    r = run("rules")
    assert r.code == 0
    header = r.out.splitlines()[0].split()
    assert header == ["CODE", "NAME", "LEVEL", "FIXABLE", "DEFAULT", "KIND"]
    assert any(line.startswith("MDL101  functional-dropout-ignores-mode") for line in r.out.splitlines())


def test_rule_docs_have_the_four_sections(run):
    r = run("rule", "MDL101")
    assert r.code == 0
    for section in ("## What it does", "## Why is this bad?", "## Example", "## Use instead"):
        assert section in r.out
    by_name = run("rule", "functional-dropout-ignores-mode")
    assert by_name.out == r.out
    unknown = run("rule", "MDL1O1")
    assert unknown.code == 2 and "did you mean MDL101?" in unknown.err


# --- suppressions -----------------------------------------------------------------------------

SUPPRESSIONS = {
    "# modelint: ignore[MDL101]": True,
    "# modelint: ignore": True,
    "# modelint: ignore[MDL1]": True,
    "# modelint: ignore[MDL102]": False,
    "# noqa: MDL101": True,
    "# noqa": True,
    "# NOQA:MDL101,E501": True,
    "# noqa: E501": False,
}


@pytest.mark.parametrize("comment,suppressed", list(SUPPRESSIONS.items()))
def test_suppression_comments(run, write, comment, suppressed):
    write("m.py", BUGGY.replace("F.dropout(x, 0.1)", f"F.dropout(x, 0.1)  {comment}"))
    r = run("check", "m.py", "--format", "json")
    assert (json.loads(r.out) == []) is suppressed, r


def test_suppression_on_first_line_of_multiline_statement(run, write):
    write(
        "m.py",
        """\
        import torch.nn.functional as F
        from torch import nn

        class Block(nn.Module):
            def forward(self, x):
                y = self.proj(  # modelint: ignore[MDL101]
                    F.dropout(x, 0.1)
                )
                z = self.proj(
                    F.dropout(x, 0.1)
                )
                return y + z
        """,
    )
    r = run("check", "m.py", "--format", "json")
    assert [f["line"] for f in json.loads(r.out)] == [10], r


def test_suppression_in_string_is_not_a_comment(run, write):
    write("m.py", BUGGY.replace("F.dropout(x, 0.1)", 'F.dropout(x, 0.1) if "# noqa" else x'))
    r = run("check", "m.py")
    assert r.code == 1, r


def test_unused_suppression_is_opt_in(run, write):
    write("m.py", CLEAN.replace("self.training)", "self.training)  # modelint: ignore[MDL101]"))
    assert run("check", "m.py").code == 0
    r = run("check", "m.py", "--extend-select", "MDL001")
    assert r.code == 1 and "MDL001 unused suppression `modelint: ignore[MDL101]`" in r.out, r


# --- parse errors and bad input ---------------------------------------------------------------


def test_parse_error_is_a_finding_and_other_files_are_checked(run, write):
    write("a_broken.py", "def forward(self, x)\n    return x\n")
    write("b.py", BUGGY)
    r = run("check", ".")
    assert r.code == 1, r
    lines = r.out.splitlines()
    assert lines[0].startswith("a_broken.py:1:") and "MDL000 cannot parse" in lines[0]
    assert lines[1].startswith("b.py:7:16: MDL101")


@pytest.mark.parametrize(
    "content,needle",
    [
        (b"x = 1\x00\n", "NUL bytes"),
        (b"x = '\xff\xfe'\n", "cannot decode"),
        (b"# -*- coding: latin-1 -*-\nx = '\xe9'\n", None),
        (b"\xef\xbb\xbfx = 1\r\ny = 2\r\n", None),
        (b"", None),
        (b"# only a comment\n", None),
    ],
)
def test_hostile_bytes(run, write, content, needle):
    write("m.py", content, mode="wb")
    r = run("check", "m.py")
    assert "Traceback" not in r.err
    if needle:
        assert r.code == 1 and needle in r.out, r
    else:
        assert r.code == 0, r


def test_deeply_nested_expression_does_not_crash(run, write):
    write("m.py", "x = " + "(" * 200 + "1" + ")" * 200 + "\ny = " + " + ".join(["a"] * 3000) + "\n")
    r = run("check", "m.py")
    assert r.code in (0, 1) and "Traceback" not in r.err, r


def test_deterministic_across_hash_seeds(run):
    from tests.conftest import ROOT

    outs = {
        run("check", "fixtures", "--format", "json", "--jobs", "2", cwd=ROOT, env={"PYTHONHASHSEED": seed}).out
        for seed in ("0", "1", "12345", "random")
    }
    assert len(outs) == 1
    assert json.loads(outs.pop())  # and it did report something


def test_ten_megabyte_generated_file_is_reported_not_parsed(run, write):
    write("big.py", "# generated dropout table\n" + "W = [" + ", ".join(["0.125"] * 1_400_000) + "]\n")
    write("m.py", BUGGY)
    r = run("check", ".")
    assert r.code == 1 and "Traceback" not in r.err, r
    assert "big.py:1:1: MDL000 file is 9.8 MB, over the 2 MB limit" in r.out
    assert "m.py:7:16: MDL101" in r.out


def test_crlf_tabs_and_python2(run, write):
    write("crlf.py", BUGGY.replace("\n", "\r\n").encode(), mode="wb")
    write("tabs.py", BUGGY.replace("    ", "\t"))
    write("py2.py", "print 'hello'\n")
    write("bom.py", b"\xef\xbb\xbf" + BUGGY.encode(), mode="wb")  # the BOM once hid the first-line import
    out = run("check", ".").out
    assert "crlf.py:7:16: MDL101" in out and "tabs.py:7:" in out and "bom.py:7:16: MDL101" in out
    assert "py2.py:1:1: MDL000 cannot parse" in out

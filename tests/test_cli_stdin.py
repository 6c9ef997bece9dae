"""`modelint check --stdin-filename PATH -` (editor plugins, formatters) and the `server` subcommand."""

from __future__ import annotations

from tests.conftest import BUGGY, CLEAN


def test_stdin_is_reported_under_path(run):
    r = run("check", "--stdin-filename", "src/model.py", "-", input=BUGGY)
    assert r.code == 1, r
    assert r.out.splitlines()[0].startswith("src/model.py:7:16: MDL101 "), r


def test_stdin_clean_exits_0(run):
    r = run("check", "--stdin-filename", "src/model.py", input=CLEAN)
    assert r.code == 0 and "All checks passed (1 file checked)." in r.out, r


def test_stdin_uses_the_configuration_of_path_folder(run, write):
    # The config lives beside PATH, not in the folder the command runs from.
    write("proj/pyproject.toml", '[tool.modelint]\nper-file-ignores = { "gen/*" = ["MDL101"] }\n')
    r = run("check", "--stdin-filename", "proj/gen/model.py", "-", input=BUGGY)
    assert r.code == 0, r
    r = run("check", "--stdin-filename", "proj/src/model.py", "-", input=BUGGY)
    assert r.code == 1 and "MDL101" in r.out, r


def test_stdin_fix_writes_the_fixed_source_to_stdout_and_the_report_to_stderr(run):
    r = run("check", "--stdin-filename", "m.py", "--fix", "-", input=BUGGY)
    assert r.out == BUGGY.replace("F.dropout(x, 0.1)", "F.dropout(x, 0.1, training=self.training)"), r
    assert "All checks passed" in r.err, r
    assert r.code == 0, r


def test_stdin_diff_shows_the_change_and_writes_nothing(run, tmp_path):
    r = run("check", "--stdin-filename", "m.py", "--diff", "-", input=BUGGY)
    assert r.code == 1, r
    assert "+        return F.dropout(x, 0.1, training=self.training)" in r.out, r
    assert not (tmp_path / "m.py").exists()


def test_stdin_with_paths_is_a_usage_error(run, write):
    write("m.py", BUGGY)
    r = run("check", "--stdin-filename", "x.py", "m.py", input=BUGGY)
    assert r.code == 2 and r.err.count("\n") == 1 and "standard input" in r.err, r


def test_server_subcommand_is_wired(run):
    r = run("server", "--help")
    assert r.code == 0 and "--log-file" in r.out, r

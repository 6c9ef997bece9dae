"""bench/precision.py's comparison of findings with verdict files, on small synthetic inputs.

No network and no modelint run: findings are the JSON shape `modelint check --format json`
prints (plus the `relpath` that bench/corpus.py's `check` adds), verdicts are tiny TSV files in
a temporary folder. Repository extraction is tested on a throw-away local git repository.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.helpers import BENCH, load_bench

P = load_bench("precision", "precision_bench")
HEADER = "codebase\tcode\tpath\tline\tverdict\treason\n"


def finding(code, relpath, line, **more):
    return dict({"code": code, "relpath": relpath, "path": "/abs/" + relpath, "line": line,
                 "column": 1, "message": f"{code} message"}, **more)


def tsv(*rows):
    return HEADER + "".join("\t".join(map(str, r)) + "\n" for r in rows)


def verdicts(*rows):
    return {v.key: v for v in P.parse_verdicts(tsv(*rows), "t.tsv")}


# ---------------------------------------------------------------------------------------------
# Verdict files


def test_rows_are_read_with_their_source_line():
    (v,) = P.parse_verdicts(tsv(("a", "MDL104", "m.py", 3, "real", "why")), "x.tsv")
    assert v.key == ("a", "MDL104", "m.py", 3) and v.verdict == "real" and v.source == "x.tsv:2"


def test_blank_and_comment_rows_are_skipped():
    text = HEADER + "\n# a note\n" + "a\tMDL104\tm.py\t3\tfalse\twhy\n"
    assert len(P.parse_verdicts(text, "x.tsv")) == 1


@pytest.mark.parametrize("row, says", [
    (("a", "MDL104", "m.py", 3, "maybe", "why"), "verdict must be one of"),
    (("a", "MDL104", "m.py", "three", "real", "why"), "line must be a positive integer"),
    (("a", "MDL104", "m.py", 3, "real"), "expected 6 tab-separated columns, got 5"),
    (("a", "MDL104", "m.py", 3, "real", ""), "must not be empty"),
])
def test_a_bad_row_names_file_and_line(row, says):
    with pytest.raises(P.BenchError, match=f"x.tsv:3: .*{says}"):
        P.parse_verdicts(tsv(("a", "MDL104", "ok.py", 1, "real", "fine"), row), "x.tsv")


def test_a_missing_header_is_an_error():
    with pytest.raises(P.BenchError, match="x.tsv:1: header"):
        P.parse_verdicts("a\tMDL104\tm.py\t3\treal\twhy\n", "x.tsv")


def test_the_same_key_in_two_files_is_an_error(tmp_path):
    row = ("a", "MDL104", "m.py", 3, "real", "why")
    (tmp_path / "s-one.tsv").write_text(tsv(row))
    (tmp_path / "s-two.tsv").write_text(tsv(row[:4] + ("false", "other")))
    with pytest.raises(P.BenchError, match="s-two.tsv:2: .* already judged at s-one.tsv:2"):
        P.load_verdicts(sorted(tmp_path.glob("*.tsv")))


def test_every_verdict_file_of_a_set_is_read(tmp_path, monkeypatch):
    monkeypatch.setattr(P, "VERDICT_DIR", tmp_path)
    for name in ("tuning.tsv", "tuning-mdl104.tsv", "tuning-structure.tsv", "measuring.tsv"):
        (tmp_path / name).write_text(HEADER)
    assert [p.name for p in P.verdict_files("tuning")] == [
        "tuning-mdl104.tsv", "tuning-structure.tsv", "tuning.tsv"]


def test_a_set_does_not_read_the_verdicts_of_a_set_whose_name_extends_it(tmp_path, monkeypatch):
    monkeypatch.setattr(P, "VERDICT_DIR", tmp_path)
    for name in ("measuring.tsv", "measuring-misc.tsv", "measuring2.tsv", "measuring2-x.tsv", "measuringx.tsv"):
        (tmp_path / name).write_text(HEADER)
    assert [p.name for p in P.verdict_files("measuring")] == ["measuring-misc.tsv", "measuring.tsv"]
    assert [p.name for p in P.verdict_files("measuring2")] == ["measuring2-x.tsv", "measuring2.tsv"]


# ---------------------------------------------------------------------------------------------
# Comparison


def test_counts_precision_and_deliberate_share_per_rule():
    found = {"a": [finding("MDL104", "m.py", 1), finding("MDL104", "m.py", 2),
                   finding("MDL104", "m.py", 3), finding("MDL104", "m.py", 4),
                   finding("MDL302", "t.py", 9)]}
    cmp = P.compare(found, verdicts(
        ("a", "MDL104", "m.py", 1, "real", "r"), ("a", "MDL104", "m.py", 2, "deliberate", "d"),
        ("a", "MDL104", "m.py", 3, "false", "f"), ("a", "MDL302", "t.py", 9, "false", "f"),
    ), {"MDL104", "MDL302"})
    s = cmp.per_rule["MDL104"]
    assert (s.findings, s.real, s.deliberate, s.false, s.untriaged) == (4, 1, 1, 1, 1)
    assert s.precision == pytest.approx(2 / 3)  # untriaged findings are not in the denominator
    assert s.deliberate_share == pytest.approx(1 / 4)
    assert cmp.per_rule["MDL302"].precision == 0.0
    total = cmp.total()
    assert (total.findings, total.deliberate, total.untriaged) == (5, 1, 1)
    assert total.deliberate_share == pytest.approx(1 / 5)
    assert [k for k, _ in cmp.new] == [("a", "MDL104", "m.py", 4)]


def test_a_verdict_without_its_finding_disappears_only_when_it_could_have_been_found():
    cmp = P.compare({"a": [], "b": []}, verdicts(
        ("a", "MDL104", "gone.py", 5, "real", "lost"),       # selected code, code base ran
        ("a", "MDL401", "gone.py", 6, "real", "perf"),       # code not selected this run
        ("c", "MDL104", "x.py", 1, "false", "not run"),      # code base not checked this run
    ), {"MDL104"})
    assert [v.key for v in cmp.disappeared] == [("a", "MDL104", "gone.py", 5)]
    assert (dict(cmp.not_selected), cmp.not_run) == ({"MDL401": 1}, 1)
    assert cmp.per_rule == {}


def test_a_line_change_is_one_new_finding_and_one_disappeared_verdict():
    cmp = P.compare({"a": [finding("MDL201", "m.py", 11)]},
                    verdicts(("a", "MDL201", "m.py", 10, "real", "moved")), {"MDL201"})
    assert [k for k, _ in cmp.new] == [("a", "MDL201", "m.py", 11)]
    assert [v.line for v in cmp.disappeared] == [10]


def test_several_findings_on_one_key_share_its_verdict():
    cmp = P.compare({"a": [finding("MDL104", "m.py", 7), dict(finding("MDL104", "m.py", 7), column=30)]},
                    verdicts(("a", "MDL104", "m.py", 7, "deliberate", "two draws")), {"MDL104"})
    assert (cmp.per_rule["MDL104"].findings, cmp.per_rule["MDL104"].deliberate) == (2, 2)
    assert not cmp.new and not cmp.disappeared


def test_a_notebook_finding_is_keyed_by_its_cell():
    f = finding("MDL000", "nb.ipynb", 2, cell=4)
    assert P.finding_key("a", f) == ("a", "MDL000", "nb.ipynb#cell=4", 2)
    cmp = P.compare({"a": [f]}, verdicts(("a", "MDL000", "nb.ipynb#cell=4", 2, "deliberate", "shell")), {"MDL000"})
    assert cmp.per_rule["MDL000"].deliberate == 1


def test_the_table_shows_dashes_for_a_rule_with_nothing_triaged():
    cmp = P.compare({"a": [finding("MDL105", "m.py", 1)]}, {}, {"MDL105"})
    row = [line for line in P.render_rules(cmp).splitlines() if line.startswith("MDL105")][0]
    assert row.split() == ["MDL105", "1", "0", "0", "0", "1", "-", "0%"]
    assert "| MDL105 | 1 | 0 | 0 | 0 | 1 | - | 0% |" in P.render_markdown(cmp)


def test_todo_rows_are_verdict_rows_to_fill_in():
    cmp = P.compare({"a": [finding("MDL104", "m.py", 4)]}, {}, {"MDL104"})
    (row,) = P.todo_rows(cmp, lambda key, f: "x = torch.rand(3)")
    assert row == ["a", "MDL104", "m.py", "4", "?", "MDL104 message | x = torch.rand(3)"]


# ---------------------------------------------------------------------------------------------
# Sets and the command line (on an earlier run's JSON: no modelint run)


def write_set(tmp_path, monkeypatch, body):
    monkeypatch.setattr(P, "SETS", tmp_path / "sets")
    monkeypatch.setattr(P, "VERDICT_DIR", tmp_path / "verdicts")
    (tmp_path / "sets").mkdir()
    (tmp_path / "verdicts").mkdir()
    (tmp_path / "sets" / "toy.toml").write_text(body)


REPO = '[[codebase]]\nname = "r"\nkind = "repo"\nrepo = "o/n"\ncommit = "%s"\nfield = "vision"\ntraining = true\n'
WHEEL = '[[codebase]]\nname = "w"\nkind = "wheel"\npackage = "pkg"\nversion = "1.0"\n'


def test_a_set_is_read_and_checked(tmp_path, monkeypatch):
    write_set(tmp_path, monkeypatch, REPO % ("a" * 40) + WHEEL)
    r, w = P.load_set("toy")
    assert (r.pin, r.training, w.pin, w.training) == ("o/n@aaaaaaaaaaaa", True, "pkg==1.0", False)


@pytest.mark.parametrize("body, says", [
    (REPO % "abc", "full 40-digit commit"),
    ('[[codebase]]\nname = "x"\nkind = "sdist"\n', "kind must be"),
    ('[[codebase]]\nname = "w"\nkind = "wheel"\npackage = "p"\n', "missing version"),
    (WHEEL + WHEEL, "names repeat: w"),
    ("[[codebase]\n", "toy.toml"),
])
def test_a_bad_set_is_a_one_line_error(tmp_path, monkeypatch, body, says):
    write_set(tmp_path, monkeypatch, body)
    with pytest.raises(P.BenchError, match=says):
        P.load_set("toy")


def test_the_tuning_set_falls_back_to_the_pinned_corpus(tmp_path, monkeypatch):
    monkeypatch.setattr(P, "SETS", tmp_path)
    assert {c.package for c in P.load_set("tuning")} == set(P.corpus.PINS)


def run_json(tmp_path, findings_by_name, scope):
    out = tmp_path / "run.json"
    out.write_text(json.dumps({"scope": scope, "codebases": [
        {"name": n, "findings": f, "error": "", "src_dir": None} for n, f in findings_by_name.items()]}))
    return out


def test_main_judges_an_earlier_run(tmp_path, monkeypatch, capsys):
    write_set(tmp_path, monkeypatch, REPO % ("a" * 40) + WHEEL)
    (tmp_path / "verdicts" / "toy.tsv").write_text(tsv(
        ("r", "MDL104", "m.py", 1, "real", "r"), ("w", "MDL104", "gone.py", 2, "false", "was false")))
    run = run_json(tmp_path, {"r": [finding("MDL104", "m.py", 1), finding("MDL104", "n.py", 8)], "w": []},
                   ["MDL104"])
    todo = tmp_path / "todo.tsv"
    assert P.main(["--set", "toy", "--findings", str(run), "--todo", str(todo), "--cache", str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out
    assert "new findings (no verdict, to triage): 1" in out and "r/n.py:8: MDL104" in out
    assert "disappeared verdicts" in out and "w/gone.py:2: MDL104 [false] was false" in out
    assert todo.read_text().splitlines()[1].split("\t")[:5] == ["r", "MDL104", "n.py", "8", "?"]


def test_main_says_which_codes_were_not_selected(tmp_path, monkeypatch, capsys):
    write_set(tmp_path, monkeypatch, WHEEL)
    (tmp_path / "verdicts" / "toy.tsv").write_text(tsv(("w", "MDL104", "m.py", 1, "deliberate", "d")))
    run = run_json(tmp_path, {"w": []}, ["MDL302"])  # MDL104 was not run (e.g. left the default set)
    assert P.main(["--set", "toy", "--findings", str(run), "--cache", str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out
    assert "did not select (left out or off by default): MDL104 1" in out
    assert "disappeared verdicts (a real one gone is a possible recall loss): 0" in out


@pytest.mark.parametrize("verdict_text, argv, says", [
    ("codebase\tcode\n", [], "toy.tsv:1: header"),
    (HEADER, ["nosuch"], "not in set toy: nosuch"),
    (HEADER, ["--set", "other"], "no set file"),
])
def test_main_fails_with_one_line(tmp_path, monkeypatch, capsys, verdict_text, argv, says):
    write_set(tmp_path, monkeypatch, WHEEL)
    (tmp_path / "verdicts" / "toy.tsv").write_text(verdict_text)
    args = ["--set", "toy", "--cache", str(tmp_path / "c")] + argv
    assert P.main(args) == 2
    err = capsys.readouterr().err
    assert says in err and len(err.strip().splitlines()) == 1


def test_main_refuses_a_cache_inside_the_repository(tmp_path, monkeypatch, capsys):
    write_set(tmp_path, monkeypatch, WHEEL)
    assert P.main(["--set", "toy", "--cache", str(BENCH / "cache")]) == 2
    assert "inside the repository" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# Repository extraction from a git mirror


def git(cwd, *args):
    return subprocess.run(["git", "-C", str(cwd), *args], check=True, capture_output=True, text=True).stdout.strip()


def test_a_commit_is_extracted_and_missing_blobs_are_reported(tmp_path):
    work = tmp_path / "owner+name"
    (work / "pkg").mkdir(parents=True)
    (work / "pkg" / "model.py").write_text("x = 1\n")
    (work / "pkg" / "gone.py").write_text("y = 2\n")
    (work / "README.md").write_text("not read by modelint\n")
    (work / ".gitignore").write_text("build/\n")
    git(tmp_path, "init", "-q", str(work))
    git(work, "add", "-A")
    git(work, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c")
    commit = git(work, "rev-parse", "HEAD")
    gone = git(work, "rev-parse", "HEAD:pkg/gone.py")
    (work / ".git" / "objects" / gone[:2] / gone[2:]).unlink()  # a partial mirror lacks this blob
    assert P.mirror_dir(tmp_path, "owner/name") == work
    cb = P.CodeBase("n", "repo", repo="owner/name", commit=commit)
    src, skipped = P.fetch_repo(cb, tmp_path / "cache", tmp_path)
    assert skipped == ["pkg/gone.py"]
    assert sorted(p.relative_to(src).as_posix() for p in src.rglob("*") if p.is_file()) == [
        ".gitignore", "pkg/model.py"]
    assert (src / "pkg" / "model.py").read_text() == "x = 1\n"
    assert P.fetch_repo(cb, tmp_path / "cache", tmp_path) == (src, ["pkg/gone.py"])  # made once


def test_a_repository_missing_from_the_mirror_is_a_fetch_error(tmp_path):
    cb = P.CodeBase("n", "repo", repo="owner/none", commit="a" * 40)
    with pytest.raises(RuntimeError, match="no git mirror of owner/none"):
        P.fetch_repo(cb, tmp_path / "cache", tmp_path)
    assert not list((tmp_path / "cache" / "src").iterdir())  # nothing half-made is left

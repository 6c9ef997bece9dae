"""[tool.modelint] in pyproject.toml: keys, per-rule options, errors, precedence."""

from __future__ import annotations

import json

import pytest

from tests.conftest import BUGGY

# a literal training=True beside a call that passes the mode: reported unless `report-always-on = false`
ALWAYS_ON = BUGGY.replace("F.dropout(x, 0.1)", "F.dropout(F.dropout(x, 0.1, training=self.training), 0.1, training=True)")


def codes(r):
    return sorted(f["code"] for f in json.loads(r.out))


def test_nearest_pyproject_is_found_upward(run, write, tmp_path):
    write("pyproject.toml", '[tool.modelint]\nignore = ["MDL101"]\n')
    write("src/pkg/m.py", BUGGY)
    r = run("check", "m.py", cwd=tmp_path / "src" / "pkg")
    assert r.code == 0, r


def test_pyproject_without_table_is_skipped_for_a_parent_with_one(run, write, tmp_path):
    write("pyproject.toml", '[tool.modelint]\nignore = ["MDL101"]\n')
    write("sub/pyproject.toml", '[project]\nname = "x"\n')
    write("sub/m.py", BUGGY)
    assert run("check", "m.py", cwd=tmp_path / "sub").code == 0


def test_select_and_extend_select_from_config(run, write):
    write("pyproject.toml", '[tool.modelint]\nselect = ["MDL102"]\nextend-select = ["MDL101"]\n')
    write("m.py", BUGGY)
    assert codes(run("check", "m.py", "--format", "json")) == ["MDL101"]


def test_cli_select_overrides_config_select(run, write):
    write("pyproject.toml", '[tool.modelint]\nselect = ["MDL102"]\n')
    write("m.py", BUGGY)
    assert codes(run("check", "m.py", "--format", "json")) == []
    assert codes(run("check", "m.py", "--format", "json", "--select", "MDL101")) == ["MDL101"]


def test_cli_ignore_adds_to_config(run, write):
    write("pyproject.toml", '[tool.modelint]\nignore = ["MDL102"]\n')
    write("m.py", BUGGY)
    assert codes(run("check", "m.py", "--format", "json", "--ignore", "MDL101")) == []


def test_no_config_and_explicit_config(run, write):
    write("pyproject.toml", '[tool.modelint]\nignore = ["MDL101"]\n')
    write("other.toml", '[tool.modelint]\nselect = ["MDL101"]\n')
    write("m.py", BUGGY)
    assert run("check", "m.py").code == 0
    assert run("check", "m.py", "--no-config").code == 1
    assert run("check", "m.py", "--config", "other.toml").code == 1


def test_per_file_ignores(run, write):
    write("pyproject.toml", '[tool.modelint.per-file-ignores]\n"legacy/*" = ["MDL1"]\n"gen_*.py" = ["MDL101"]\n')
    write("legacy/old.py", BUGGY)
    write("pkg/gen_model.py", BUGGY)
    write("pkg/model.py", BUGGY)
    r = run("check", ".", "--format", "json")
    assert [f["path"] for f in json.loads(r.out)] == ["pkg/model.py"], r


def test_exclude_and_extend_exclude(run, write):
    write("pyproject.toml", '[tool.modelint]\nextend-exclude = ["experiments/", "*_draft.py"]\n')
    write("experiments/a.py", BUGGY)
    write("pkg/b_draft.py", BUGGY)
    write("pkg/c.py", BUGGY)
    write("venv/lib/d.py", BUGGY)  # default exclude still applies with extend-exclude
    r = run("check", ".", "--format", "json")
    assert [f["path"] for f in json.loads(r.out)] == ["pkg/c.py"], r
    # Explicitly named files are always checked.
    assert run("check", "experiments/a.py").code == 1


def test_exclude_replaces_defaults(run, write):
    write("pyproject.toml", '[tool.modelint]\nexclude = ["skip"]\n')
    write("venv/lib/d.py", BUGGY)
    write("skip/e.py", BUGGY)
    r = run("check", ".", "--format", "json")
    assert [f["path"] for f in json.loads(r.out)] == ["venv/lib/d.py"], r


def test_rule_options(run, write):
    write("m.py", ALWAYS_ON)
    assert run("check", "m.py").code == 1
    write("pyproject.toml", "[tool.modelint.rules.MDL101]\nreport-always-on = false\n")
    assert run("check", "m.py").code == 0


def test_module_bases_option(run, write):
    src = BUGGY.replace("from torch import nn\n", "from mylib import Block as Base\n").replace("(nn.Module)", "(Base)")
    write("m.py", src)
    assert run("check", "m.py").code == 0  # mylib.Block is unknown: not a module
    write("pyproject.toml", '[tool.modelint]\nmodule-bases = ["mylib.Block"]\n')
    assert run("check", "m.py").code == 1


@pytest.mark.parametrize(
    "toml,message",
    [
        ('[tool.modelint]\nselet = ["MDL101"]\n', "unknown key tool.modelint.selet (did you mean select?)"),
        ('[tool.modelint]\nselct = ["MDL101"]\n', "unknown key tool.modelint.selct (did you mean select?)"),
        ('[tool.modelint]\nextend_exclude = ["x/"]\n', "tool.modelint.extend_exclude (did you mean extend-exclude?)"),
        ('[tool.modelint]\nselect = "MDL101"\n', "tool.modelint.select must be a list of strings"),
        ('[tool.modelint]\nselect = ["MDL1O1"]\n', "unknown rule code 'MDL1O1' (did you mean MDL101?)"),
        ('[tool.modelint]\nrespect-gitignore = "yes"\n', "respect-gitignore must be true or false"),
        ("[tool.modelint.rules.MDL101]\nreport-always-on = 1\n", "must be a bool, got int"),
        ("[tool.modelint.rules.MDL101]\nfoo = 1\n", "tool.modelint.rules.MDL101.foo: unknown option"),
        ("[tool.modelint.rules.MDL909]\nfoo = 1\n", "tool.modelint.rules.MDL909: unknown rule"),
        ('[tool.modelint.per-file-ignores]\n"a/*" = ["XYZ1"]\n', "unknown rule code 'XYZ1'"),
        ("[tool.modelint\nselect = 1\n", "invalid TOML"),
        ("[tool.modelint.trace]\ntimeout = -1\n", "trace.timeout must be a positive number"),
    ],
)
def test_config_errors_are_one_line_naming_file_and_key(run, write, tmp_path, toml, message):
    write("pyproject.toml", toml)
    write("m.py", BUGGY)
    r = run("check", "m.py")
    assert r.code == 2, r
    assert message in r.err, r
    assert str(tmp_path / "pyproject.toml") in r.err
    assert len(r.err.strip().splitlines()) == 1 and "Traceback" not in r.err


def test_suggest_is_case_insensitive_and_answers_in_the_candidates_case():
    from modelint.catalog import catalog, suggest
    from modelint.config import _KNOWN_KEYS as keys

    assert suggest("selct", keys) == " (did you mean select?)"
    assert suggest("Extend-Selct", ["extend-select", "ignore"]) == " (did you mean extend-select?)"
    assert suggest("mdl1o1", catalog()) == " (did you mean MDL101?)"
    assert suggest("zzzzzz", keys) == ""
    # equally similar by difflib's ratio; the same-place characters decide, not the sort order
    assert suggest("MDL1O1", ["MDL611", "MDL101", "MDL999"]) == " (did you mean MDL101?)"
    assert suggest("MDL6l1", ["MDL101", "MDL611"]) == " (did you mean MDL611?)"


def test_an_unknown_key_far_from_any_known_one_gets_no_hint(run, write):
    write("pyproject.toml", '[tool.modelint]\nqqqqqqqqqq = 1\n')
    write("m.py", BUGGY)
    r = run("check", "m.py")
    assert r.code == 2 and "unknown key tool.modelint.qqqqqqqqqq" in r.err and "did you mean" not in r.err, r


def test_missing_explicit_config(run, write):
    write("m.py", BUGGY)
    r = run("check", "m.py", "--config", "nope.toml")
    assert r.code == 2 and "nope.toml: config file not found" in r.err

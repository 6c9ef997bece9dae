"""Docs generated from the catalogue: `modelint rule CODE` / `--all` and the README's tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelint import docs
from modelint.catalog import catalog, lookup
from modelint.codes import RuleInfo

README = Path(__file__).resolve().parent.parent / "README.md"

FIXABLE = RuleInfo(
    code="MDL900", name="made-up", level="warning", summary="A made-up rule | with a pipe.",
    what="Does things.", why="Because.", example="bad()\n", use_instead="good()\n", fixable=True,
    options={"strict": True, "names": ["a", "b"], "limit": 0.5},
    option_docs={"strict": "Also report literals.", "names": "Which calls count."},
    fix_safety="Adds `x=1`: safe.\nReplacing a literal is unsafe.",
)
PLAIN = RuleInfo(code="MDL901", name="plain", level="info", summary="Plain.", default=False)


def test_readme_tables_are_generated_from_the_catalogue():
    text = README.read_text(encoding="utf-8")
    expected = docs.update_readme(text, docs.tables(list(catalog().values())))
    if text != expected:
        import difflib

        diff = "".join(difflib.unified_diff(text.splitlines(True), expected.splitlines(True), "README.md", "generated"))
        pytest.fail(f"README.md's generated tables are out of date: run `{docs.REGEN_COMMAND}`\n{diff}", pytrace=False)


def test_every_code_is_self_described():
    """Each fixable rule states its fix safety and each option has its docs (rules' `fix_safety`
    and `option_docs`, through `Rule.info()`)."""
    assert docs.undocumented(catalog().values()) == []


def test_rule_table_rows_come_from_the_infos():
    table = docs.rule_table([FIXABLE, PLAIN]).splitlines()
    assert table[0] == "| code | name | level | default | what goes wrong |"
    assert table[2] == "| MDL900 | made-up | warning | on | A made-up rule \\| with a pipe. |"
    assert table[3] == "| MDL901 | plain | info | off | Plain. |"


def test_fix_table_has_one_row_per_fixable_code_from_its_fix_safety():
    table = docs.fix_table([FIXABLE, PLAIN]).splitlines()
    assert table[2:] == ["| MDL900 made-up | Adds `x=1`: safe. Replacing a literal is unsafe. |"]
    undocumented = RuleInfo(code="MDL902", name="u", level="info", summary="s", fixable=True)
    assert docs.fix_table([undocumented]).splitlines()[2] == "| MDL902 u | (not documented) |"


def test_undocumented_finds_missing_fix_safety_and_option_docs():
    assert docs.undocumented([FIXABLE]) == ["MDL900: option limit has no entry in option_docs"]
    stray = RuleInfo(code="MDL903", name="s", level="info", summary="s", fixable=True, option_docs={"gone": "x"})
    assert docs.undocumented([stray]) == ["MDL903: fixable but no fix_safety",
                                          "MDL903: option_docs documents gone, which is not an option"]


def test_rule_doc_shows_options_with_their_docs_and_the_fix_safety():
    text = docs.rule_doc(FIXABLE)
    assert text.splitlines()[0] == "MDL900 made-up (warning, fixable)"
    for section in ("## What it does", "## Why is this bad?", "## Example", "## Use instead", "## Fix safety"):
        assert section in text
    assert "## Options ([tool.modelint.rules.MDL900])\n- `strict = true`: Also report literals.\n" \
           "- `names = [\"a\", \"b\"]`: Which calls count.\n- `limit = 0.5`\n" in text
    assert text.endswith("## Fix safety\nAdds `x=1`: safe.\nReplacing a literal is unsafe.")
    plain = docs.rule_doc(PLAIN)
    assert plain == "MDL901 plain (info, off by default)\n\nPlain."


def test_update_readme_replaces_only_the_marked_blocks_and_refuses_missing_markers():
    begin, end = docs._markers("rules")
    text = f"intro\n{begin}\nold\ntable\n{end}\noutro\n"
    assert docs.update_readme(text, {"rules": "NEW"}) == f"intro\n{begin}\nNEW\n{end}\noutro\n"
    with pytest.raises(ValueError, match="exactly one"):
        docs.update_readme("no markers\n", {"rules": "NEW"})
    with pytest.raises(ValueError, match="exactly one"):
        docs.update_readme(text + text, {"rules": "NEW"})


def test_docs_command_checks_and_writes(tmp_path, capsys):
    readme = tmp_path / "README.md"
    blocks = docs.tables(list(catalog().values()))
    stale = "".join(f"{docs._markers(n)[0]}\nstale\n{docs._markers(n)[1]}\n\n" for n in blocks)
    readme.write_text(stale)
    assert docs.main(["--check", str(readme)]) == 1
    assert docs.REGEN_COMMAND in capsys.readouterr().err
    assert docs.main(["--write", str(readme)]) == 0
    assert docs.main(["--check", str(readme)]) == 0
    assert blocks["rules"] in readme.read_text() and blocks["fixes"] in readme.read_text()
    readme.write_text("no markers\n")
    assert docs.main(["--check", str(readme)]) == 2


def test_rule_cli_prints_the_generated_doc(run):
    r = run("rule", "MDL101")
    assert r.code == 0 and r.out == docs.rule_doc(lookup("MDL101")) + "\n"
    assert "## Options ([tool.modelint.rules.MDL101])\n- `report-always-on = true`" in r.out


def test_rule_all_prints_every_code_in_the_same_layout(run):
    r = run("rule", "--all")
    assert r.code == 0, r
    assert r.out == "\n\n".join(docs.rule_doc(i) for i in catalog().values()) + "\n"
    headers = [line.split()[0] for line in r.out.splitlines() if line.startswith("MDL") and " (" in line]
    assert headers == list(catalog())


@pytest.mark.parametrize("args", [("rule",), ("rule", "MDL101", "--all")])
def test_rule_needs_exactly_one_of_code_or_all(run, args):
    r = run(*args)
    assert r.code == 2 and r.err.strip() == "modelint: error: rule: give either a CODE or --all", r

"""The Rust (Burn) rules' own examples are their tests, like `test_rule_examples.py` for Python:
VALID sources are silent, INVALID ones report exactly their `// expect:` lines, FIXES fix to their
`after`, `example`/`use_instead` of a new code are reported/silent, and each rule documents itself."""

from __future__ import annotations

import pytest

pytest.importorskip("tree_sitter_rust")

from modelint.catalog import catalog  # noqa: E402
from modelint.engine import check_source, fix_source  # noqa: E402
from modelint.rules import all_rules  # noqa: E402
from modelint.rules.rust import rust_rules  # noqa: E402
from tests.helpers import actual, diff, expected_from_source  # noqa: E402

RULES = rust_rules()
PY_CODES = {r.code for r in all_rules()}


def expected(source: str):
    return expected_from_source(source.replace("// expect:", "# expect:"))


def check(source: str, code: str):
    return check_source(source, path="example.rs", select=[code])


def _cases(attr):
    return [pytest.param(r, i, id=f"{r.code}-{i}") for r in RULES for i in range(len(getattr(r, attr)))]


def test_every_rust_rule_has_examples():
    assert {r.code for r in RULES} == {"MDL104", "MDL206", "MDL302", "MDL307", "MDL401"}
    for r in RULES:
        assert r.VALID and r.INVALID, r.code
        assert all(expected(src) for src in r.INVALID), r.code


@pytest.mark.parametrize("rule,i", _cases("VALID"))
def test_valid_is_silent(rule, i):
    found = check(rule.VALID[i], rule.code)
    assert not found, found


@pytest.mark.parametrize("rule,i", _cases("INVALID"))
def test_invalid_reports_exactly_the_expect_lines(rule, i):
    src = rule.INVALID[i]
    got = actual(check(src, rule.code), only=[rule.code])
    assert got == expected(src), diff(expected(src), got)


def test_invalid_examples_fail_without_the_rule():
    """The INVALID test can fail: with another code selected nothing is reported."""
    assert not check(RULES[0].INVALID[0], "MDL999")


@pytest.mark.parametrize("rule,i", _cases("FIXES"))
def test_fixes_produce_their_after_and_are_idempotent(rule, i):
    before, after = rule.FIXES[i]
    out = fix_source(before, path="example.rs", select=[rule.code])
    assert out.after == after
    assert not [f for f in out.findings if f.code == rule.code]
    assert fix_source(after, path="example.rs", select=[rule.code]).after == after


def test_fixable_rules_offer_a_fix_on_an_invalid_example():
    for r in RULES:
        offered = any(f.fix is not None for src in r.INVALID for f in check(src, r.code))
        assert offered == r.fixable, r.code


@pytest.mark.parametrize("rule", [r for r in RULES if r.code not in PY_CODES], ids=lambda r: r.code)
def test_new_codes_are_self_described(rule):
    info = catalog()[rule.code]
    assert info.name == rule.name and info.what and info.why and info.summary and info.fix_safety
    assert check(rule.example, rule.code), "example must be reported"
    assert not check(rule.use_instead, rule.code), "use_instead must be clean"


@pytest.mark.parametrize("rule", [r for r in RULES if r.code in PY_CODES], ids=lambda r: r.code)
def test_reused_codes_keep_their_name_and_mention_the_burn_form(rule):
    info = catalog()[rule.code]
    assert rule.name == info.name, "a reused code keeps its meaning and name"
    assert rule.burn_note and f"Burn (Rust): {rule.burn_note}" in info.what


def test_rules_never_spell_burn_api_names():
    """Burn's names live in frameworks/burn.py; a rule asks `self.file.profile`."""
    import inspect

    for r in RULES:
        src = inspect.getsource(inspect.getmodule(r))
        body = src.split("def check(", 1)[1]
        for name in ("ad_enabled", "is_autodiff", "multinomial", "no_grad", "AutodiffBackend"):
            assert f'"{name}' not in body, (r.code, name)

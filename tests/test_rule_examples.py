"""Every rule's VALID/INVALID examples and its documented Example/Use instead are its spec."""

from __future__ import annotations

import textwrap

import pytest

from modelint.engine import check_source, fix_source
from modelint.rules import all_rules
from tests.helpers import actual, diff, expected_from_source

RULES = all_rules()


def _cases(attr):
    for rule in RULES:
        for i, src in enumerate(getattr(rule, attr)):
            yield pytest.param(rule, textwrap.dedent(src), id=f"{rule.code}-{attr.lower()}-{i}")


@pytest.mark.parametrize("rule,source", list(_cases("VALID")))
def test_valid_examples_are_clean(rule, source):
    findings = check_source(source, select=[rule.code])
    assert [f for f in findings if f.code == rule.code] == []
    assert not [f for f in findings if f.code == "MDL000"], "example does not parse"


@pytest.mark.parametrize("rule,source", list(_cases("INVALID")))
def test_invalid_examples_report_exactly_the_annotated_lines(rule, source):
    expected = expected_from_source(source, only=[rule.code])
    assert expected, "an INVALID example must annotate at least one `# expect:` line"
    got = actual(check_source(source, select=[rule.code]), only=[rule.code])
    assert got == expected, diff(expected, got)


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.code)
def test_rule_has_complete_docs_and_examples(rule):
    assert rule.code.startswith("MDL") and len(rule.code) == 6
    assert rule.name and rule.summary and rule.what and rule.why
    assert rule.level in ("error", "warning", "info")
    assert rule.VALID and rule.INVALID


_PRELUDE = "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n\n"


@pytest.mark.parametrize("rule", [r for r in RULES if r.example], ids=lambda r: r.code)
def test_documented_example_is_reported_and_fix_is_clean(rule):
    bad = check_source(_PRELUDE + rule.example, select=[rule.code])
    assert any(f.code == rule.code for f in bad), f"docs example of {rule.code} is not reported"
    good = check_source(_PRELUDE + rule.use_instead, select=[rule.code])
    assert not [f for f in good if f.code == rule.code], f"docs 'use instead' of {rule.code} is reported"


def _fix_cases(attr):
    for rule in RULES:
        for i, (before, after) in enumerate(getattr(rule, attr)):
            yield pytest.param(rule, textwrap.dedent(before), textwrap.dedent(after), attr == "UNSAFE_FIXES",
                               id=f"{rule.code}-{attr.lower()}-{i}")


@pytest.mark.parametrize("rule,before,after,unsafe", list(_fix_cases("FIXES")) + list(_fix_cases("UNSAFE_FIXES")))
def test_fix_examples(rule, before, after, unsafe):
    """`before` is reported with a fix; fixing gives exactly `after`, which is no longer reported
    as fixable, and fixing `after` again changes nothing (idempotence)."""
    offered = [f.fix for f in check_source(before, select=[rule.code]) if f.code == rule.code and f.fix]
    assert offered, "nothing to fix"
    if unsafe:
        assert any(fx.applicability == "unsafe" for fx in offered), "an UNSAFE_FIXES example needs an unsafe fix"
        # and --fix alone must not apply the unsafe fixes
        assert fix_source(before, select=[rule.code], unsafe=False).after != after
    out = fix_source(before, select=[rule.code], unsafe=unsafe)
    assert out.error is None
    assert out.after == after, "\n" + out.after
    assert sum(out.applied.values()) >= 1
    assert not [f for f in out.findings if f.code == rule.code and f.fix is not None
                and (unsafe or f.fix.applicability == "safe")], "a fix did not remove its finding"
    assert fix_source(after, select=[rule.code], unsafe=unsafe).after == after, "fixing twice changed the file again"


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.code)
def test_fixable_flag_matches_examples(rule):
    """A rule marked fixable has fix examples and offers a fix on some INVALID example; a rule not
    marked fixable never offers one."""
    offered = any(f.fix is not None for src in rule.INVALID
                  for f in check_source(textwrap.dedent(src), select=[rule.code]) if f.code == rule.code)
    if rule.fixable:
        assert rule.FIXES or rule.UNSAFE_FIXES
        assert offered
    else:
        assert not offered and not rule.FIXES and not rule.UNSAFE_FIXES


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.code)
def test_rule_documents_fix_safety_and_options(rule):
    info = rule.info()
    assert info.fix_safety, "say what the fix does and whether it is safe, or why there is no fix"
    if rule.fixable:
        assert "safe" in info.fix_safety.lower()
    else:
        assert info.fix_safety.startswith("No fix")
    assert set(info.option_docs) == set(rule.options_schema), "document every option, and only those"
    assert all(text.strip() for text in info.option_docs.values())

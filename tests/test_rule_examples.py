"""Every rule's VALID/INVALID examples and its documented Example/Use instead are its spec."""

from __future__ import annotations

import textwrap

import pytest

from modelint.engine import check_source
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

"""Property tests of the fixer: generated programs and real code round-trip through it.

For every module: fixing never raises; a module with no fixable finding comes back unchanged; a
module with one comes back parseable, without the fixed findings, and a second pass changes
nothing. Bounded for CI (MODELINT_FIX_EXAMPLES, default 40 generated programs; the real-code part
reads the installed torch package's own nn and optim sources); `bench/fix_corpus.py` runs the
same contract over the large pinned corpora."""

from __future__ import annotations

import importlib.util
import os
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from modelint.config import resolve_selection
from modelint.engine import check_source, fix_source
from modelint.fixes import parses
from modelint.rules import all_rules

hypothesmith = pytest.importorskip("hypothesmith")

ALL = tuple(sorted(set(resolve_selection(None, (), ())) | {r.code for r in all_rules()}))
OPTIONS = {"MDL401": {"report-checkpointing": True}, "MDL101": {"report-explicit-always-on": True}}
EXAMPLES = int(os.environ.get("MODELINT_FIX_EXAMPLES", "40"))


def check_round_trip(source: str, path: str = "m.py") -> dict:
    before = check_source(source, path=path, select=ALL, rule_options=OPTIONS)
    fixable = [f for f in before if f.fix is not None]
    out = fix_source(source, path=path, select=ALL, unsafe=True, rule_options=OPTIONS)
    if any(f.code in ("MDL000", "MDL999") for f in before):
        assert out.after == source, "a file with a parse error or a crashed rule was changed"
        return {}
    if not fixable:
        assert out.after == source, "changed a module that had nothing to fix"
        return {}
    assert parses(out.after), f"fixed module does not parse:\n{out.after}"
    again = fix_source(out.after, path=path, select=ALL, unsafe=True, rule_options=OPTIONS)
    assert again.after == out.after, "a second fix pass changed the module again"
    assert not any(f.fix is not None for f in out.findings), "fixable findings remain after the fixpoint"
    return out.applied


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large])
@given(hypothesmith.from_grammar())
def test_generated_programs_round_trip(source):
    check_round_trip(source)


# Generated programs almost never contain a model; these do, built from every rule's INVALID
# examples combined with unusual layout the fixer must keep valid.
def _layouts(source: str):
    yield source
    yield source.replace("    ", "\t")
    yield source.replace("\n", "\r\n")
    yield "# -*- coding: utf-8 -*-\n" + source
    yield source.rstrip("\n")  # no final newline
    yield "if True:\n" + textwrap.indent(source, "    ")  # everything one block deeper


@pytest.mark.parametrize("rule", all_rules(), ids=lambda r: r.code)
def test_rule_examples_round_trip_in_unusual_layouts(rule):
    for src in rule.INVALID:
        for variant in _layouts(textwrap.dedent(src)):
            check_round_trip(variant)


def _torch_sources():
    spec = importlib.util.find_spec("torch")  # located, never imported
    if spec is None or not spec.origin:
        return []
    root = Path(spec.origin).parent
    files = sorted((root / "nn" / "modules").glob("*.py")) + sorted((root / "optim").glob("*.py"))
    return files


@pytest.mark.skipif(not _torch_sources(), reason="torch is not installed")
def test_real_code_round_trips():
    """torch's own module and optimizer sources: real code nobody here wrote."""
    files = _torch_sources()
    assert len(files) > 40
    applied: dict = {}
    for path in files:
        for code, n in check_round_trip(path.read_text(encoding="utf-8"), path=str(path)).items():
            applied[code] = applied.get(code, 0) + n
    # whatever was fixed was fixed cleanly (asserted per file above); record it for the log
    print(f"torch sources: {len(files)} files, fixes applied: {applied or 'none'}")

"""The text pre-filter never loses a finding on real code nobody here wrote (issue #7).

The pre-filter skips the LibCST parse of a file when no selected rule's trigger words occur in it
(`Rule.triggers`); it must be a pure optimisation. Fixtures and rule examples are written by us,
so they tend to contain the words the triggers were chosen from; this test runs the engine over
the Python sources of the installed torch package instead (CI installs torch 2.13.0; it is found
with `importlib.util.find_spec`, never imported), with every static rule selected (default-off
ones, the unused-suppression check MDL001 and the options that switch on optional sub-checks),
once with the pre-filter and once without, and requires identical findings.

The corpus is a bounded set of torch's folders (about 390 files, 116,000 lines: the modules,
the quantization-aware modules, optimizers, autograd, distributions, data loading, pipelining),
chosen so that several rules do fire on it (MDL105, MDL204, MDL401 with torch 2.13.0); the two runs
take about 30 s on 2 cores. `bench/prefilter_equivalence.py` does the same over the much larger
cached third-party corpora (timm, torchvision, transformers, diffusers, Lightning, ultralytics).

The comparison has teeth: with one rule's triggers replaced by a string that occurs nowhere, the
pre-filter skips that rule everywhere and the comparison fails, for a rule the corpus gives
findings for.
"""

from __future__ import annotations

import importlib.util
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pytest

from modelint.config import resolve_selection
from modelint.engine import EngineSettings, check_paths
from modelint.findings import Finding
from modelint.rules import all_rules

# Every static rule (default-off ones too), the unused-suppression check and the tool codes.
ALL = tuple(sorted(set(resolve_selection(None, (), ())) | {"MDL001"} | {r.code for r in all_rules()}))
# Options that switch on optional sub-checks (the others are on by default; spelled out so that a
# changed default does not silently narrow this test).
OPTIONS = {
    "MDL101": {"report-always-on": True, "report-explicit-always-on": True},
    "MDL302": {"check-parameters": True},
    "MDL401": {"report-checkpointing": True},
    "MDL104": {"report-by-design": True},  # issue 15: objectives, noise sources, VAE posteriors
}
# Folders of the torch package, relative to its root (missing ones are skipped).
CORPUS = (
    "nn",  # the modules themselves: every forward-pass rule runs here
    "ao/nn",  # quantization-aware modules (MDL204 fires here)
    "optim",  # optimizers (MDL401 fires here)
    "autograd",  # gradcheck (MDL105 fires here)
    "distributions",
    "utils/data",
    "distributed/pipelining",  # a training schedule with train/eval handling (MDL401 fires here)
)
# A string that occurs in no file of the corpus (checked below).
ABSENT = "modelint-prefilter-teeth-0b5f"


def torch_root() -> Optional[Path]:
    spec = importlib.util.find_spec("torch")  # finds the package without importing it
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent


def corpus_files(root: Path) -> List[Path]:
    files: List[Path] = []
    for rel in CORPUS:
        p = root / rel
        if p.is_file():
            files.append(p)
        elif p.is_dir():
            files.extend(sorted(f for f in p.rglob("*.py") if "__pycache__" not in f.parts))
    return files


def run(files: List[Path], prefilter: bool, jobs: int = 2) -> List[Finding]:
    settings = EngineSettings(select=ALL, rule_options=OPTIONS, jobs=jobs, prefilter=prefilter, cache=None)
    return check_paths(files, settings).findings


def key(f: Finding) -> Tuple:
    return (f.path, f.line, f.column, f.end_line, f.end_column, f.code, f.level, f.message, f.cell, repr(f.fix))


@pytest.fixture(scope="module")
def corpus() -> Dict[str, object]:
    root = torch_root()
    if root is None:
        pytest.skip("torch is not installed (CI installs torch==2.13.0): no real corpus to check")
    files = corpus_files(root)
    if len(files) < 100:
        pytest.skip(f"the installed torch at {root} has only {len(files)} files in the corpus folders")
    with_filter = run(files, prefilter=True)
    without = run(files, prefilter=False)
    return {"root": root, "files": files, "on": with_filter, "off": without}


def differences(on: List[Finding], off: List[Finding]) -> List[str]:
    """What differs between the runs with and without the pre-filter (empty: identical)."""
    only_on = sorted(set(map(key, on)) - set(map(key, off)))
    only_off = sorted(set(map(key, off)) - set(map(key, on)))
    out = [f"lost by the pre-filter: {k}" for k in only_off] + [f"added by the pre-filter: {k}" for k in only_on]
    if not out and [key(f) for f in on] != [key(f) for f in off]:
        out.append("same findings, different order or multiplicity")
    return out


def test_prefilter_keeps_every_finding_on_torch_sources(corpus):
    on, off = corpus["on"], corpus["off"]
    problems = differences(on, off)
    assert not problems, f"{len(problems)} difference(s):\n" + "\n".join(problems[:20])
    # The corpus must exercise the rules, or the comparison above proves little.
    assert not [f for f in off if f.code in ("MDL000", "MDL999")], "torch's sources all parse and no rule crashes"
    assert len({f.code for f in off}) >= 3, Counter(f.code for f in off)


def test_a_wrong_trigger_list_makes_the_comparison_fail(corpus, monkeypatch):
    """Give one rule that has findings on the corpus a trigger no file contains: the pre-filter then
    drops the rule everywhere and the runs differ. (Rerun on the three smallest files with that
    rule's findings only, both ways, so that the cross-file index is the same for both runs.)"""
    off: List[Finding] = corpus["off"]
    counts = Counter(f.code for f in off if f.code.startswith("MDL") and f.code not in ("MDL000", "MDL001", "MDL999"))
    assert counts, "no rule has findings on the corpus"
    code = max(sorted(counts), key=counts.get)
    rule = next(r for r in all_rules() if r.code == code)
    assert rule.triggers, f"{code} has no triggers, so the pre-filter never skips it"
    paths = sorted({f.path for f in off if f.code == code}, key=lambda p: (Path(p).stat().st_size, p))[:3]
    for p in paths:
        assert ABSENT.encode() not in Path(p).read_bytes()
    monkeypatch.setattr(rule, "triggers", (ABSENT,))
    # jobs=1: the patched class must be the one that checks the files (a spawned worker would not see it)
    good = run([Path(p) for p in paths], prefilter=False, jobs=1)
    broken = run([Path(p) for p in paths], prefilter=True, jobs=1)
    assert any(f.code == code for f in good)
    problems = differences(broken, good)
    assert problems, f"the comparison did not notice that {code} was skipped"
    assert all(p.startswith("lost by the pre-filter") and f"'{code}'" in p for p in problems), problems

"""The whole catalogue: the static rules' `RuleInfo`s joined with the data tables of `modelint.codes`.

Static rules live in `modelint.rules` (one class per file); codes that no static rule produces
(tool, tracer, coverage) are data in `modelint.codes`. Both have the same `RuleInfo` fields, so
`modelint rules`, `modelint rule CODE` and the SARIF `tool.driver.rules` table treat them alike.
Loading the rules imports LibCST; a JSON snapshot (`use_snapshot`) spares a cached run that cost.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import Dict, Iterable, List, Optional

from modelint.atomic import write_atomic
from modelint.codes import COVERAGE_CODES, GUARD_CODES, TOOL_CODES, TRACE_CODES, RuleInfo


def _static_infos() -> List[RuleInfo]:
    from modelint.rules import all_rules
    from modelint.rules.rust import rust_rules

    return _with_front_ends([r.info() for r in all_rules()], rust_rules())


def _with_front_ends(infos: List[RuleInfo], rules) -> List[RuleInfo]:
    """Join another front end's rules: a code a Python rule has gets the other form appended to its
    docs ("Burn (Rust): ..."); a new code is its own entry."""
    by_code = {i.code: i for i in infos}
    for rule in rules:
        if rule.code in by_code:
            old = by_code[rule.code]
            by_code[rule.code] = replace(old, what=f"{old.what}\n\nBurn (Rust): {rule.burn_note}",
                                         fixable=old.fixable or rule.fixable)
        else:
            by_code[rule.code] = rule.info()
    return list(by_code.values())


_CACHE: Optional[Dict[str, RuleInfo]] = None
_SNAPSHOT: Optional[Path] = None


def use_snapshot(path: Path) -> None:
    """Read (or else write) the catalogue from a JSON snapshot at `path`, whose name must encode
    modelint's source fingerprint. Loading the rule classes imports LibCST (about 0.3 s); a
    fully cached run needs neither."""
    global _SNAPSHOT
    _SNAPSHOT = Path(path)


def _load_snapshot() -> Optional[List[RuleInfo]]:
    if _SNAPSHOT is None:
        return None
    try:
        return [RuleInfo(**d) for d in json.loads(_SNAPSHOT.read_text(encoding="utf-8"))]
    except (OSError, ValueError, TypeError):
        return None


def _save_snapshot(infos: List[RuleInfo]) -> None:
    if _SNAPSHOT is None:
        return
    try:
        _SNAPSHOT.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(_SNAPSHOT, json.dumps([asdict(i) for i in infos]), fsync=False)
    except OSError:
        pass


def catalog() -> Dict[str, RuleInfo]:
    """Every known code -> RuleInfo, in code order."""
    global _CACHE
    if _CACHE is None:
        infos = _load_snapshot()
        if infos is None:
            infos = list(TOOL_CODES) + _static_infos() + list(TRACE_CODES) + list(COVERAGE_CODES) + list(GUARD_CODES)
            _save_snapshot(infos)
        _CACHE = {i.code: i for i in sorted(infos, key=lambda i: i.code)}
    return _CACHE


def lookup(code_or_name: str) -> Optional[RuleInfo]:
    cat = catalog()
    key = code_or_name.strip()
    if key.upper() in cat:
        return cat[key.upper()]
    for info in cat.values():
        if info.name == key:
            return info
    return None


def suggest(query: str, candidates: Iterable[str]) -> str:
    """' (did you mean MDL101?)' or ''. Case-insensitive, answering in the candidate's own case:
    codes are upper-case, config keys lower-case (`selct` -> `select`). Among equally similar
    candidates the one with most characters in the same places wins: `MDL1O1` (letter O) scores
    0.83 against both MDL101 and MDL611, and is a typo of the first."""
    by_upper = {c.upper(): c for c in candidates}
    q = query.strip().upper()
    close = difflib.get_close_matches(q, list(by_upper), n=max(len(by_upper), 1), cutoff=0.5)
    if not close:
        return ""

    def rank(c: str):
        return (-difflib.SequenceMatcher(None, q, c).ratio(), -sum(a == b for a, b in zip(q, c)), c)

    return f" (did you mean {by_upper[min(close, key=rank)]}?)"

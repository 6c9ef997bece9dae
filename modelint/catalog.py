"""The catalogue of every code modelint can report: static rules, tool codes and tracer checks.

Static rules live in `modelint.rules` (one class per file). Codes that are not produced by a static
rule (parse errors, internal errors, the runtime tracer's checks) are described here or in
`modelint.trace.codes` with the same `RuleInfo` fields, so `modelint rules`, `modelint rule CODE`
and the SARIF `tool.driver.rules` table treat them alike.
"""

from __future__ import annotations

import difflib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional


@dataclass(frozen=True)
class RuleInfo:
    code: str
    name: str
    level: str
    summary: str
    what: str = ""
    why: str = ""
    example: str = ""
    use_instead: str = ""
    fixable: bool = False
    default: bool = True
    # "static" rules are run by `modelint check`; "tool" codes are emitted by the engine itself;
    # "trace" codes by `modelint trace`; "coverage" by the pytest plugin / `modelint coverage`.
    kind: str = "static"
    # Per-rule options and their defaults (`[tool.modelint.rules.CODE]`).
    options: Dict[str, Any] = field(default_factory=dict)


TOOL_CODES = (
    RuleInfo(
        code="MDL000",
        name="parse-error",
        level="error",
        kind="tool",
        summary="The file could not be read or parsed, so no rule checked it.",
        what="Reports a file that is not valid Python (or not valid text in its declared encoding).",
        why="A file that does not parse is not checked at all: every other finding in it is hidden.",
        example="def forward(self, x)\n    return x\n",
        use_instead="def forward(self, x):\n    return x\n",
    ),
    RuleInfo(
        code="MDL001",
        name="unused-suppression",
        level="info",
        kind="tool",
        default=False,
        summary="A `# modelint: ignore[...]` comment suppresses nothing.",
        what="Reports `# modelint: ignore` comments (with or without codes) on lines where no "
        "selected rule reported a finding that the comment would suppress.",
        why="Stale suppressions hide future bugs on that line and mislead readers about what the "
        "line does. (`# noqa` comments are shared with other linters and are never reported.)",
        example="x = F.dropout(x, 0.1, self.training)  # modelint: ignore[MDL101]\n",
        use_instead="x = F.dropout(x, 0.1, self.training)\n",
    ),
    RuleInfo(
        code="MDL999",
        name="internal-error",
        level="error",
        kind="tool",
        summary="A rule crashed on this file; the other rules and files were still checked.",
        what="Reports that a rule raised an exception while checking the file.",
        why="The file was only partly checked. Please report it with the file that triggers it.",
    ),
)


def _static_infos() -> List[RuleInfo]:
    from modelint.rules import all_rules

    return [r.info() for r in all_rules()]


def _trace_infos() -> List[RuleInfo]:
    try:
        from modelint.trace.codes import TRACE_CODES
    except ImportError:  # pragma: no cover - the tracer package is part of modelint
        return []
    return list(TRACE_CODES)


def _coverage_infos() -> List[RuleInfo]:
    try:
        from modelint.trace.coverage_codes import COVERAGE_CODES
    except ImportError:
        return []
    return list(COVERAGE_CODES)


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
        fd, tmp = tempfile.mkstemp(dir=_SNAPSHOT.parent, prefix=".tmp-")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump([asdict(i) for i in infos], fh)
        os.replace(tmp, _SNAPSHOT)
    except OSError:
        pass


def catalog() -> Dict[str, RuleInfo]:
    """Every known code -> RuleInfo, in code order."""
    global _CACHE
    if _CACHE is None:
        infos = _load_snapshot()
        if infos is None:
            infos = list(TOOL_CODES) + _static_infos() + _trace_infos() + _coverage_infos()
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


def suggest(code: str, candidates: Iterable[str]) -> str:
    """' (did you mean MDL101?)' or ''."""
    close = difflib.get_close_matches(code.upper(), list(candidates), n=1, cutoff=0.5)
    return f" (did you mean {close[0]}?)" if close else ""

"""The `RustRule` base class: a Rust rule is one small class, like a Python rule (`rules/base.py`).

Its code, name and docs; VALID / INVALID example programs (Rust source, `// expect: CODE` on each
line that must be reported; run by `tests/test_rust_rules.py`); and `check()`, which reads facts
from `self.file` (a `RustFile`; Burn's names from `self.file.profile`, never spelled in the rule)
and reports with `self.report(node, message)`. A rule whose code a Python rule already has (the same
bug in Burn's spelling) sets `burn_note`: the catalogue appends it to that code's docs.
"""

from __future__ import annotations

from typing import Any, ClassVar, Dict, List, Optional, Sequence, Tuple

from modelint.codes import Described
from modelint.rust.facts import RustFile


class RustFix:
    """Byte-range replacements (start, end, text) that together repair one finding."""

    def __init__(self, title: str, edits: Sequence[Tuple[int, int, str]], applicability: str = "safe"):
        self.title, self.edits, self.applicability = title, tuple(edits), applicability


class RustReport:
    __slots__ = ("code", "node", "message", "fix")

    def __init__(self, code: str, node, message: str, fix: Optional[RustFix]):
        self.code, self.node, self.message, self.fix = code, node, message, fix


class RustRule(Described):
    """A Rust rule: its self-description (`codes.Described`, shared with Python rules) plus the
    examples, the pre-filter and `check()`."""

    # Text pre-filter, as for Python rules: the rule cannot fire on a file with none of these.
    triggers: ClassVar[Tuple[str, ...]] = ()
    # For a code shared with a Python rule: the Burn form, appended to that rule's docs.
    burn_note: ClassVar[str] = ""
    VALID: ClassVar[Sequence[str]] = ()
    INVALID: ClassVar[Sequence[str]] = ()
    FIXES: ClassVar[Sequence[Tuple[str, str]]] = ()

    def __init__(self, file: RustFile, options: Optional[Dict[str, Any]] = None):
        self.file = file
        self.options = {**self.options_schema, **(options or {})}
        self.reports: List[RustReport] = []

    def report(self, node, message: str, fix: Optional[RustFix] = None) -> None:
        self.reports.append(RustReport(self.code, node, message, fix))

    def check(self) -> None:  # pragma: no cover - every rule overrides it
        raise NotImplementedError

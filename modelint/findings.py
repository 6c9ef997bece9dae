"""Value types shared by the static checker, the runtime tracer and every report format.

A `Finding` is immutable and totally ordered (path, line, column, code, message), so any
collection of findings sorts the same way under every hash seed and worker count.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Optional, Tuple

from modelint.codes import TOOL_BY_CODE

LEVELS = ("error", "warning", "info")


@dataclass(frozen=True, order=True)
class Edit:
    """Replace the text between two 1-based (line, column) positions with `content`."""

    line: int
    column: int
    end_line: int
    end_column: int
    content: str


@dataclass(frozen=True)
class Fix:
    """A set of edits that together repair one finding."""

    title: str
    applicability: str  # "safe" | "unsafe"
    edits: Tuple[Edit, ...] = ()

    def to_dict(self) -> dict:
        return {
            "title": self.title,
            "applicability": self.applicability,
            "edits": [asdict(e) for e in self.edits],
        }


@dataclass(frozen=True, order=True)
class Finding:
    """One problem at one place. Lines and columns are 1-based; `end_*` are inclusive-exclusive
    like an editor selection (end_column points just past the last character)."""

    path: str
    line: int
    column: int
    code: str
    message: str
    name: str = field(default="", compare=False)
    level: str = field(default="error", compare=False)
    end_line: int = field(default=0, compare=False)
    end_column: int = field(default=0, compare=False)
    fix: Optional[Fix] = field(default=None, compare=False)
    # Notebook cell number (1-based) when the finding is inside a .ipynb code cell.
    cell: Optional[int] = field(default=None, compare=False)
    # Free-form extra facts (the tracer puts the op and module here); never used for ordering.
    extra: Tuple[Tuple[str, Any], ...] = field(default=(), compare=False)

    def to_dict(self) -> dict:
        d = {
            "code": self.code,
            "name": self.name,
            "message": self.message,
            "path": self.path,
            "line": self.line,
            "column": self.column,
            "end_line": self.end_line or self.line,
            "end_column": self.end_column or self.column,
            "level": self.level,
            "fix": self.fix.to_dict() if self.fix else None,
        }
        if self.cell is not None:
            d["cell"] = self.cell
        if self.extra:
            d["extra"] = {k: v for k, v in self.extra}
        return d


def finding_from_dict(d: dict) -> Finding:
    """Inverse of `Finding.to_dict` (used by the result cache and the tracer's subprocesses)."""
    fix = d.get("fix")
    if fix is not None:
        fix = Fix(title=fix["title"], applicability=fix["applicability"], edits=tuple(Edit(**e) for e in fix["edits"]))
    return Finding(
        path=d["path"],
        line=d["line"],
        column=d["column"],
        code=d["code"],
        message=d["message"],
        name=d.get("name", ""),
        level=d.get("level", "error"),
        end_line=d.get("end_line", 0),
        end_column=d.get("end_column", 0),
        fix=fix,
        cell=d.get("cell"),
        extra=tuple(sorted((d.get("extra") or {}).items())),
    )


def file_line(f: Finding) -> int:
    """The line of the file itself: for a notebook cell, the notebook JSON line holding it."""
    if f.cell is not None:
        return dict(f.extra).get("json_line", 1)
    return f.line


def tool_finding(path: str, code: str, message: str, line: int = 1, column: int = 1, **more: Any) -> Finding:
    """A finding of one of the tool's own codes (MDL000, MDL001, MDL999), named and levelled by the
    catalogue. `more` takes Finding's optional fields (`cell`, `extra`, ...)."""
    info = TOOL_BY_CODE[code]
    return Finding(path, line, column, code, message, name=info.name, level=info.level, **more)

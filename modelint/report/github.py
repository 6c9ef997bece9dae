"""GitHub Actions workflow commands: one `::error file=..,line=..::message` annotation per finding."""

from __future__ import annotations

from typing import Sequence

from modelint.findings import Finding, file_line

NAME = "github"

_LEVEL = {"error": "error", "warning": "warning", "info": "notice"}


def _escape_data(s: str) -> str:
    return s.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_prop(s: str) -> str:
    return _escape_data(s).replace(":", "%3A").replace(",", "%2C")


def render(findings: Sequence[Finding], ctx) -> str:
    out = []
    for f in findings:
        props = [f"file={_escape_prop(f.path)}", f"line={file_line(f)}"]
        if f.cell is None:  # a notebook annotation goes on the JSON line; its cell position is in the message
            props.append(f"col={f.column}")
            if f.end_line:
                props.append(f"endLine={f.end_line}")
            if f.end_column and f.end_line == f.line:
                props.append(f"endColumn={f.end_column}")
        title = f"{f.code} {f.name}".strip()
        message = f.message if f.cell is None else f"cell {f.cell}, line {f.line}: {f.message}"
        out.append(f"::{_LEVEL.get(f.level, 'error')} {','.join(props)},title={_escape_prop(title)}::{_escape_data(message)}")
    return "\n".join(out) + ("\n" if out else "")

"""Output formats. Each format is one small module exposing `render(findings, ctx) -> str`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, Sequence

from modelint.findings import Finding


@dataclass
class ReportContext:
    """What a format may need besides the findings themselves."""

    files_checked: int = 0
    statistics: bool = False
    # Directory that SARIF artifact URIs are made relative to.
    root: str = "."
    tool_name: str = "modelint"
    extra_summary: Dict[str, int] = field(default_factory=dict)
    # Count fixes marked unsafe as fixable (the run has --unsafe-fixes).
    unsafe_fixes: bool = False


def _formats() -> Dict[str, Callable[[Sequence[Finding], ReportContext], str]]:
    from modelint.report import github, json_format, sarif, text

    return {
        "text": text.render,
        "json": json_format.render,
        "sarif": sarif.render,
        "github": github.render,
    }


FORMAT_NAMES = ("text", "json", "sarif", "github")


def render(findings: Sequence[Finding], fmt: str, ctx: ReportContext) -> str:
    return _formats()[fmt](sorted(findings), ctx)

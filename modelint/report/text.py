"""`path:line:col: CODE message` lines (clickable in editors and terminals) plus a summary."""

from __future__ import annotations

from collections import Counter
from typing import Sequence

from modelint.findings import Finding

NAME = "text"
SUFFIXES = (".txt", ".log")


def location(f: Finding) -> str:
    if f.cell is not None:
        return f"{f.path}:cell {f.cell}:{f.line}:{f.column}"
    return f"{f.path}:{f.line}:{f.column}"


_STYLES = {"bold": "1", "red": "1;31", "yellow": "1;33", "blue": "1;34", "cyan": "36"}
_LEVEL_STYLE = {"error": "red", "warning": "yellow", "info": "blue"}


def _paint(text: str, style: str) -> str:
    return f"\033[{_STYLES[style]}m{text}\033[0m" if text else text


def render(findings: Sequence[Finding], ctx) -> str:
    lines = []
    def fixable(f: Finding) -> bool:
        return f.fix is not None and (f.fix.applicability == "safe" or ctx.unsafe_fixes)

    paint = _paint if ctx.color else (lambda text, _style: text)
    for f in findings:
        mark = " [*]" if fixable(f) else ""
        lines.append(f"{paint(location(f), 'bold')}: {paint(f.code, _LEVEL_STYLE.get(f.level, 'bold'))}"
                     f"{paint(mark, 'cyan')} {f.message}")
        if ctx.show_fixes and f.fix is not None:
            lines.append(f"    fix ({f.fix.applicability}): {f.fix.title}")
    if ctx.quiet:  # the findings, nothing else (ruff's -q)
        return "".join(line + "\n" for line in lines)
    if ctx.statistics and findings:
        counts = Counter((f.code, f.name) for f in findings)
        lines.append("")
        for (code, name), n in sorted(counts.items()):
            lines.append(f"{n:6d}  {code}  {name}")
    n = len(findings)
    if n:
        noun = "finding" if n == 1 else "findings"
        where = ctx.checked_noun
        # a trace target's findings may lie in several files: count the targets that have findings
        files = len({dict(f.extra).get("target", f.path) if where == "target" else f.path for f in findings})
        summary = f"Found {n} {noun} in {files} of {ctx.files_checked} {where}{'s' if ctx.files_checked != 1 else ''} checked."
        n_fixable = sum(1 for f in findings if fixable(f))
        if n_fixable:
            summary += f" {n_fixable} fixable with --fix{' --unsafe-fixes' if ctx.unsafe_fixes else ''} ([*])."
        hidden = sum(1 for f in findings if f.fix is not None and not fixable(f))
        if hidden:
            summary += f" {hidden} more with --unsafe-fixes."
    else:
        summary = (f"All checks passed ({ctx.files_checked} {ctx.checked_noun}"
                   f"{'s' if ctx.files_checked != 1 else ''} checked).")
    lines.append(summary)
    return "\n".join(lines) + "\n"

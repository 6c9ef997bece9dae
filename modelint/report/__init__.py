"""Output formats, registered by discovery like the rules: every public module of this package
defines `NAME` (its `--format` value) and `render(findings, ctx) -> str`, and may define
`SUFFIXES` (file suffixes that mean it, for the pytest plugin's report file). Adding a format is
adding a module; the CLI's `--format` choices and the pytest plugin's `--modelint-modes-format`
read `format_names()`, so the names are written once, in the modules themselves."""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from types import ModuleType
from typing import Dict, Optional, Sequence, Tuple

from modelint.findings import Finding

DEFAULT_FORMAT = "text"

@dataclass
class ReportContext:
    """What a format may need besides the findings themselves."""

    files_checked: int = 0
    # What was checked, for the summary: "file" (check, coverage) or "target" (trace).
    checked_noun: str = "file"
    statistics: bool = False
    # Directory that SARIF artifact URIs are made relative to.
    root: str = "."
    tool_name: str = "modelint"
    extra_summary: Dict[str, int] = field(default_factory=dict)
    # Count fixes marked unsafe as fixable (the run has --unsafe-fixes).
    unsafe_fixes: bool = False
    # Text output only: ANSI colour (the CLI decides: --color, NO_COLOR/FORCE_COLOR, a TTY), the
    # findings without the summary (--quiet), and each fixable finding's fix title (--show-fixes).
    color: bool = False
    quiet: bool = False
    show_fixes: bool = False


_REGISTRY: Dict[str, ModuleType] = {}


def _load() -> Dict[str, ModuleType]:
    if not _REGISTRY:
        found: Dict[str, ModuleType] = {}
        for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
            if info.name.startswith("_"):  # shared helpers, not formats
                continue
            mod = importlib.import_module(f"{__name__}.{info.name}")
            name, fn = getattr(mod, "NAME", None), getattr(mod, "render", None)
            if not isinstance(name, str) or not callable(fn):
                raise RuntimeError(f"{mod.__name__} is not a format: it needs NAME and render(findings, ctx)")
            if name in found:
                raise RuntimeError(f"two formats named {name!r}")
            found[name] = mod
        _REGISTRY.update(found)
    return _REGISTRY


def format_names() -> Tuple[str, ...]:
    """Every format's name: the default first (it leads `--help`), then alphabetical."""
    return tuple(sorted(_load(), key=lambda n: (n != DEFAULT_FORMAT, n)))


def format_suffixes() -> Dict[str, str]:
    """Report-file suffix (".sarif") -> the format it stands for, in `format_names()` order."""
    return {suffix: name for name in format_names() for suffix in getattr(_load()[name], "SUFFIXES", ())}


def format_for_suffix(suffix: str) -> Optional[str]:
    """The format a report file's suffix (".sarif", any case) stands for, or None."""
    return format_suffixes().get(suffix.lower())


def render(findings: Sequence[Finding], fmt: str, ctx: ReportContext) -> str:
    return _load()[fmt].render(sorted(findings), ctx)

"""Output formats, registered by discovery like the rules: every public module of this package
defines `NAME` (its `--format` value) and `render(findings, ctx) -> str`. Adding a format is adding
a module; the CLI's `--format` choices and the pytest plugin's `--modelint-modes-format` read
`format_names()`, so the names are written once, in the modules themselves."""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Callable, Dict, Sequence, Tuple

from modelint.findings import Finding

DEFAULT_FORMAT = "text"

Renderer = Callable[[Sequence[Finding], "ReportContext"], str]


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


_REGISTRY: Dict[str, Renderer] = {}


def _load() -> Dict[str, Renderer]:
    if not _REGISTRY:
        found: Dict[str, Renderer] = {}
        for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
            if info.name.startswith("_"):  # shared helpers, not formats
                continue
            mod = importlib.import_module(f"{__name__}.{info.name}")
            name, fn = getattr(mod, "NAME", None), getattr(mod, "render", None)
            if not isinstance(name, str) or not callable(fn):
                raise RuntimeError(f"{mod.__name__} is not a format: it needs NAME and render(findings, ctx)")
            if name in found:
                raise RuntimeError(f"two formats named {name!r}")
            found[name] = fn
        _REGISTRY.update(found)
    return _REGISTRY


def format_names() -> Tuple[str, ...]:
    """Every format's name: the default first (it leads `--help`), then alphabetical."""
    return tuple(sorted(_load(), key=lambda n: (n != DEFAULT_FORMAT, n)))


def render(findings: Sequence[Finding], fmt: str, ctx: ReportContext) -> str:
    return _load()[fmt](sorted(findings), ctx)

"""Shared test helpers: read `# expect: CODE[, CODE]` annotations and compare with findings."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from collections import Counter
from typing import Iterable, List, Tuple

EXPECT = re.compile(r"#\s*expect:\s*(?P<codes>MDL\d{3}(?:\s*,\s*MDL\d{3})*)")


def expected_from_source(source: str, only: Iterable[str] = ()) -> List[Tuple[int, str]]:
    """[(line, code)] for every `# expect:` annotation (a line may expect several codes)."""
    only = set(only)
    out = []
    for lineno, line in enumerate(source.splitlines(), start=1):
        m = EXPECT.search(line)
        if m:
            for code in re.split(r"\s*,\s*", m.group("codes")):
                if not only or code in only:
                    out.append((lineno, code))
    return sorted(out)


def actual(findings, only: Iterable[str] = ()) -> List[Tuple[int, str]]:
    only = set(only)
    return sorted((f.line, f.code) for f in findings if not only or f.code in only)


def diff(expected, got) -> str:
    e, g = Counter(expected), Counter(got)
    missing = sorted((e - g).elements())
    extra = sorted((g - e).elements())
    return f"missing (line, code): {missing}\nunexpected (line, code): {extra}"


BENCH = Path(__file__).resolve().parent.parent / "bench"


def load_bench(name: str, module_name: str = ""):
    """bench/NAME.py as a module (bench/ first on sys.path: its scripts import their siblings), registered
    in sys.modules under module_name or NAME (dataclasses look their module up there)."""
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(module_name or name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module

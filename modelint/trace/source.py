"""Where in the user's source something happened: frames, tracebacks, definitions, assignments.

A "user frame" is the innermost Python frame whose file is neither part of torch, nor of the
standard library (`random.uniform` is Python code in `random.py`; a missing module fails inside
`importlib`), nor of `modelint.trace` (the tracer itself). Paths are made relative to the current directory when they
are inside it, so findings read `fixtures/trace/models.py:42` and compare equal across machines.

No torch import at module level: the torch directory is found lazily from `sys.modules`.
"""

from __future__ import annotations

import inspect
import os
import re
import sys
import sysconfig
from dataclasses import dataclass
from functools import lru_cache
from types import FrameType, TracebackType
from typing import Iterator, Optional

_TRACE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_STDLIB_DIRS = tuple(sorted({os.path.abspath(p) + os.sep for p in (
    sysconfig.get_paths().get("stdlib"), sysconfig.get_paths().get("platstdlib")) if p}))
_SITE_DIRS = tuple(sorted({os.path.abspath(p) + os.sep for p in (
    sysconfig.get_paths().get("purelib"), sysconfig.get_paths().get("platlib")) if p}))


@dataclass(frozen=True, order=True)
class Location:
    """A 1-based position in a source file (`path` already made relative when possible)."""

    path: str
    line: int
    column: int = 1
    function: str = ""

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


def display_path(filename: str) -> str:
    """`filename` relative to the current directory when it lies inside it, else absolute."""
    absolute = os.path.abspath(filename)
    try:
        rel = os.path.relpath(absolute)
    except ValueError:  # another drive on Windows
        return absolute
    if rel == os.pardir or rel.startswith(os.pardir + os.sep):
        return absolute
    return rel.replace(os.sep, "/")


@lru_cache(maxsize=1)
def _torch_dir() -> Optional[str]:
    torch = sys.modules.get("torch")
    if torch is None or not getattr(torch, "__file__", None):
        return None
    return os.path.dirname(os.path.abspath(torch.__file__)) + os.sep


@lru_cache(maxsize=4096)
def is_library_file(filename: str) -> bool:
    """True for torch's files, the standard library's (not site-packages, which lives inside it),
    the tracer's own files and interpreter-internal pseudo files."""
    if filename.startswith("<frozen") or filename.startswith("<built-in"):
        return True
    absolute = os.path.abspath(filename)
    if absolute.startswith(_TRACE_DIR):
        return True
    if absolute.startswith(_STDLIB_DIRS) and not absolute.startswith(_SITE_DIRS):
        return True
    torch_dir = _torch_dir()
    return bool(torch_dir and absolute.startswith(torch_dir))


@lru_cache(maxsize=512)
def _start_columns(code) -> tuple:
    """0-based start column of each instruction of a code object (Python 3.11+), else ()."""
    positions = getattr(code, "co_positions", None)
    if positions is None:
        return ()
    try:
        return tuple(pos[2] or 0 for pos in positions())
    except Exception:  # pragma: no cover - defensive: positions are best effort
        return ()


def _column(code, lasti: int) -> int:
    """1-based start column of the instruction at byte offset `lasti`, else 1."""
    columns = _start_columns(code)
    index = lasti // 2
    return columns[index] + 1 if 0 <= index < len(columns) else 1


def _location(code, lineno: Optional[int], lasti: int) -> Location:
    return Location(
        path=display_path(code.co_filename),
        line=lineno or code.co_firstlineno or 1,
        column=_column(code, lasti),
        function=code.co_name,
    )


def user_frame(frame: Optional[FrameType] = None, skip: tuple = ()) -> Optional[Location]:
    """The innermost user frame, starting at `frame` (default: the caller; the tracer's own frames
    are skipped anyway). Files starting with one of the `skip` prefixes are skipped too."""
    f = frame if frame is not None else sys._getframe(1)
    while f is not None:
        filename = f.f_code.co_filename
        if not is_library_file(filename) and not (skip and filename.startswith(skip)):
            return _location(f.f_code, f.f_lineno, f.f_lasti)
        f = f.f_back
    return None


def _tb_entries(tb: Optional[TracebackType]) -> Iterator[TracebackType]:
    while tb is not None:
        yield tb
        tb = tb.tb_next


def traceback_user_frame(exc: BaseException) -> Optional[Location]:
    """The innermost user frame of an exception's traceback (where the user code failed)."""
    found = None
    for tb in _tb_entries(exc.__traceback__):
        code = tb.tb_frame.f_code
        if not is_library_file(code.co_filename):
            found = _location(code, tb.tb_lineno, tb.tb_lasti)
    return found


_DEF_RE = re.compile(r"\s*(async\s+def|def|class)\b")


def definition(obj) -> Optional[Location]:
    """Where a function or class is defined: its `def`/`class` line, below any decorators
    (`inspect.getsourcelines` starts at the first `@decorator` line)."""
    target = inspect.unwrap(obj) if callable(obj) else obj
    try:
        filename = inspect.getsourcefile(target)
        lines, line = inspect.getsourcelines(target)
    except (OSError, TypeError):
        return None
    if not filename:
        return None
    offset = next((i for i, text in enumerate(lines) if _DEF_RE.match(text)), 0)
    return Location(display_path(filename), max(line + offset, 1), 1, getattr(target, "__name__", ""))


def forward_definition(module) -> Optional[Location]:
    """The `def forward` line of a module's class (falls back to the class line)."""
    forward = getattr(type(module), "forward", None)
    return (definition(forward) if forward is not None else None) or definition(type(module))


@lru_cache(maxsize=1024)
def _class_source(cls) -> Optional[tuple]:
    try:
        filename = inspect.getsourcefile(cls)
        lines, start = inspect.getsourcelines(cls)
    except (OSError, TypeError):
        return None
    if not filename:
        return None
    return filename, tuple(lines), start


def class_mentions(cls, pattern: str) -> bool:
    """True if the source of `cls` (or a user base class) matches the regex `pattern`."""
    regex = re.compile(pattern)
    for klass in cls.__mro__:
        if klass.__module__.startswith("torch.") or klass is object:
            continue
        source = _class_source(klass)
        if source and any(regex.search(line) for line in source[1]):
            return True
    return False


def assignment(cls, attr: str) -> Optional[Location]:
    """The first `self.<attr> = ...` line in `cls` or its user base classes, if any."""
    return mention(cls, r"\bself\." + re.escape(attr) + r"\s*(:[^=]*)?=(?!=)", function=attr)


def mention(cls, pattern: str, function: str = "") -> Optional[Location]:
    """The first line of `cls` (or a user base class) matching the regex `pattern`, if any;
    `function` names what the location is of."""
    regex = re.compile(pattern)
    for klass in cls.__mro__:
        if klass is object or klass.__module__.startswith("torch."):
            continue
        source = _class_source(klass)
        if not source:
            continue
        filename, lines, start = source
        for offset, text in enumerate(lines):
            match = regex.search(text)
            if match:
                return Location(display_path(filename), start + offset, match.start() + 1, function)
    return None

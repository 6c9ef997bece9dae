"""Which files to read.

- Paths given on the command line: files are always checked (even if excluded or ignored, as in
  ruff and flake8); folders are walked.
- While walking: `.gitignore` files are honoured (the repository's root one and every nested one,
  each relative to its own folder, plus `.git/info/exclude`), the usual virtualenv / build / cache
  folders are skipped, and `exclude` / `extend-exclude` globs apply.
- Output order is sorted and free of duplicates, so runs are reproducible.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Tuple

from modelint.gitignore import PatternList

DEFAULT_EXCLUDE: Tuple[str, ...] = (
    ".bzr",
    ".direnv",
    ".eggs",
    ".git",
    ".hg",
    ".mypy_cache",
    ".nox",
    ".pants.d",
    ".pytype",
    ".ruff_cache",
    ".svn",
    ".tox",
    ".venv",
    ".modelint_cache",
    "__pypackages__",
    "_build",
    "buck-out",
    "build",
    "dist",
    "node_modules",
    "site-packages",
    "venv",
    ".ipynb_checkpoints",
    "__pycache__",
    ".pytest_cache",
)

SOURCE_SUFFIXES = (".py", ".ipynb")
# `lang` (config) / `--lang`: the file suffixes each language's front end reads.
LANGUAGE_SUFFIXES = {"python": SOURCE_SUFFIXES, "rust": (".rs",)}


class DiscoveryError(Exception):
    """A path on the command line that does not exist."""


def _spec(patterns: Iterable[str]) -> PatternList:
    return PatternList(patterns)


def glob_match(pattern: str, path: str, root: str) -> bool:
    """gitignore-style match of `path` (relative to `root` when inside it). A pattern without a
    slash also matches the file name alone, like ruff's `per-file-ignores`."""
    rel = _relative(Path(path), Path(root))
    return _single_pattern(pattern).matches(rel)


@functools.lru_cache(maxsize=None)
def _single_pattern(pattern: str) -> PatternList:
    # per-file-ignores test every file against every pattern: compile each pattern once.
    return _spec([pattern])


def _relative(path: Path, root: Path) -> str:
    try:
        return Path(os.path.relpath(path.resolve(), root.resolve())).as_posix()
    except ValueError:
        return path.as_posix()


def _git_root(start: Path) -> Optional[Path]:
    for folder in (start, *start.parents):
        if (folder / ".git").exists():
            return folder
    return None


@dataclass
class _Ignore:
    base: Path
    spec: PatternList

    def check(self, path: Path, is_dir: bool) -> Optional[bool]:
        try:
            rel = path.relative_to(self.base).as_posix()
        except ValueError:
            return None
        return self.spec.check(rel, is_dir)


def _ignored(path: Path, is_dir: bool, ignores: Sequence[_Ignore]) -> bool:
    """git's precedence: the deepest .gitignore with a matching pattern decides."""
    for ignore in reversed(ignores):
        verdict = ignore.check(path, is_dir)
        if verdict is not None:
            return verdict
    return False


def _read_ignore_file(path: Path) -> Optional[PatternList]:
    try:
        spec = _spec(path.read_text(encoding="utf-8", errors="replace").splitlines())
    except OSError:
        return None
    return spec or None


def _inherited_gitignores(folder: Path) -> List[_Ignore]:
    """The .gitignore files of the repository between its root and `folder` (exclusive)."""
    root = _git_root(folder)
    if root is None:
        return []
    out: List[_Ignore] = []
    info = _read_ignore_file(root / ".git" / "info" / "exclude")
    if info:
        out.append(_Ignore(root, info))
    chain = [root] + [p for p in reversed(folder.parents) if root in p.parents]
    for d in chain:
        if d == folder:
            continue
        spec = _read_ignore_file(d / ".gitignore")
        if spec:
            out.append(_Ignore(d, spec))
    return out


def discover(
    paths: Sequence[str],
    exclude: Sequence[str] = DEFAULT_EXCLUDE,
    extend_exclude: Sequence[str] = (),
    root: str = ".",
    respect_gitignore: bool = True,
    suffixes: Sequence[str] = SOURCE_SUFFIXES,
) -> List[Path]:
    """Files to check, sorted. Raises DiscoveryError for a path that does not exist."""
    exclude_spec = _spec(list(exclude) + list(extend_exclude))
    root_path = Path(root).resolve()
    found = {}
    for raw in paths:
        path = Path(raw)
        if not path.exists() and not path.is_symlink():
            raise DiscoveryError(f"{raw}: no such file or directory")
        if path.is_file() or (path.is_symlink() and not path.is_dir()):
            found[_display(path)] = path  # explicitly named: always checked
            continue
        for file in _walk(path, exclude_spec, root_path, respect_gitignore, suffixes):
            found[_display(file)] = file
    return [Path(k) for k in sorted(found)]


def _display(path: Path) -> str:
    s = os.path.normpath(str(path))
    return s


def _excluded(path: Path, spec: PatternList, root: Path, is_dir: bool, resolved: Optional[Path] = None) -> bool:
    """Matched by the exclude globs: by its name, or by its path relative to `root` (resolved).
    `resolved` is `path.resolve()` when the caller already knows it."""
    if spec.matches(path.name, is_dir):
        return True
    if resolved is None:
        rel = _relative(path, root)
    else:
        try:
            rel = Path(os.path.relpath(resolved, root)).as_posix()
        except ValueError:
            rel = path.as_posix()
    if rel.startswith(".."):
        return False
    return spec.matches(rel, is_dir)


def _walk(top: Path, exclude_spec, root: Path, respect_gitignore: bool, suffixes) -> Iterable[Path]:
    if _excluded(top, exclude_spec, root, True):
        # The user named an excluded folder explicitly: walk it, applying the globs below it only.
        root = top.resolve()
    ignores = _inherited_gitignores(top.resolve()) if respect_gitignore else []
    stack: List[Tuple[Path, List[_Ignore]]] = [(top, ignores)]
    while stack:
        folder, inherited = stack.pop()
        active = list(inherited)
        # Resolved once per folder; an entry's resolved path is then the folder's plus its name
        # (symlinks excepted), instead of a realpath() walk per entry.
        folder_resolved = folder.resolve()
        if respect_gitignore:
            spec = _read_ignore_file(folder / ".gitignore")
            if spec:
                active.append(_Ignore(folder_resolved, spec))
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            path = Path(folder, entry.name)
            try:
                is_dir = entry.is_dir()  # follows symlinks; a broken link is neither
                is_file = entry.is_file()
            except OSError:
                continue
            if not (is_dir or is_file):
                continue
            resolved = path.resolve() if entry.is_symlink() else folder_resolved / entry.name
            if _excluded(path, exclude_spec, root, is_dir, resolved):
                continue
            if not active:
                resolved = path
            if _ignored(resolved, is_dir, active):
                continue
            if is_dir:
                if entry.is_symlink():
                    continue  # never follow folder links: avoids loops and escaping the tree
                stack.append((path, active))
            elif path.suffix in suffixes:
                yield path

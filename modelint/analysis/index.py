"""A cheap cross-file index: each checked file's import aliases and class -> base classes.

Built with the standard library's `ast` (a C parser, roughly 10x faster than LibCST) before the
rules run, so a rule in `encoder.py` can know that `class Encoder(Base)` is an `nn.Module`
because `base.py` says `class Base(nn.Module)`.

Names are resolved from the module's own import statements only (a small alias table); nothing
is imported or executed. What it cannot see (documented heuristics):
- star imports (`from .layers import *`) and names assigned at run time (`Base = make_base()`);
- classes created by decorators or metaclasses that change the base list;
- packages outside the checked paths, except the well-known bases in `modules.KNOWN_MODULE_BASES`
  and the user's `module-bases` setting.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple


@dataclass
class FileFacts:
    """What one file says about names: `aliases` maps a local name to a dotted qualified name."""

    modname: str
    aliases: Dict[str, str] = field(default_factory=dict)
    # class name (top level or nested, dotted) -> qualified names of its bases
    classes: Dict[str, List[str]] = field(default_factory=dict)


def module_name(path: Path) -> str:
    """Dotted module name of a file, walking up through folders that hold an `__init__.py`."""
    path = Path(path).resolve()
    parts = [] if path.name == "__init__.py" else [path.stem]
    folder = path.parent
    while (folder / "__init__.py").is_file():
        parts.append(folder.name)
        if folder.parent == folder:
            break
        folder = folder.parent
    return ".".join(reversed(parts)) or path.stem


def _package_of(modname: str, is_package: bool) -> str:
    return modname if is_package else modname.rpartition(".")[0]


def resolve_relative(modname: str, is_package: bool, level: int, module: Optional[str]) -> str:
    """`from ..x import y` inside `modname` -> the absolute dotted name of `..x`."""
    base = _package_of(modname, is_package)
    for _ in range(level - 1):
        base = base.rpartition(".")[0]
    if module:
        return f"{base}.{module}" if base else module
    return base


def dotted_ast(node: ast.AST) -> Optional[str]:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = dotted_ast(node.value)
        return f"{inner}.{node.attr}" if inner else None
    if isinstance(node, ast.Subscript):  # Generic[T], nn.Module subclasses with typing
        return dotted_ast(node.value)
    if isinstance(node, ast.Call):  # with_metaclass(Meta, Base) and friends: not resolved
        return None
    return None


def qualify(name: str, aliases: Dict[str, str], modname: str, local_classes: Iterable[str] = ()) -> str:
    """Resolve a dotted name used in a module: through its imports, then its own classes."""
    head, dot, rest = name.partition(".")
    if head in aliases:
        return aliases[head] + (dot + rest if rest else "")
    if head in local_classes:
        return f"{modname}.{name}" if modname else name
    return name


def facts_from_source(source: bytes, path: Path, modname: Optional[str] = None) -> Optional[FileFacts]:
    """Parse with `ast` and collect imports (at any depth) and class bases. None if it does not parse."""
    try:
        tree = ast.parse(source, filename=str(path))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    modname = module_name(path) if modname is None else modname
    is_package = Path(path).name == "__init__.py"
    facts = FileFacts(modname=modname)
    raw_classes: List[Tuple[str, List[Optional[str]]]] = []

    def visit(body: Iterable[ast.stmt], prefix: str) -> None:
        for stmt in body:
            if isinstance(stmt, ast.Import):
                for a in stmt.names:
                    if a.asname:
                        facts.aliases[a.asname] = a.name
                    else:
                        head = a.name.split(".")[0]
                        facts.aliases.setdefault(head, head)
            elif isinstance(stmt, ast.ImportFrom):
                src = (
                    resolve_relative(modname, is_package, stmt.level, stmt.module)
                    if stmt.level
                    else (stmt.module or "")
                )
                for a in stmt.names:
                    if a.name == "*":
                        continue
                    facts.aliases[a.asname or a.name] = f"{src}.{a.name}" if src else a.name
            elif isinstance(stmt, ast.ClassDef):
                name = f"{prefix}{stmt.name}"
                raw_classes.append((name, [dotted_ast(b) for b in stmt.bases]))
                visit(stmt.body, name + ".")
            elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(stmt.body, prefix)
            else:
                for attr in ("body", "orelse", "finalbody"):
                    sub = getattr(stmt, attr, None)
                    if isinstance(sub, list):
                        visit(sub, prefix)
                for handler in getattr(stmt, "handlers", ()) or ():
                    visit(handler.body, prefix)
                for case in getattr(stmt, "cases", ()) or ():
                    visit(case.body, prefix)

    visit(tree.body, "")
    local = {name.split(".")[0] for name, _ in raw_classes}
    for name, bases in raw_classes:
        facts.classes[name] = [qualify(b, facts.aliases, modname, local) for b in bases if b]
    return facts


@dataclass
class ProjectIndex:
    """All checked files' facts, keyed by module name."""

    modules: Dict[str, FileFacts] = field(default_factory=dict)

    def add(self, facts: FileFacts) -> None:
        self.modules[facts.modname] = facts

    def bases_of(self, qualname: str) -> Optional[List[str]]:
        """Bases of a class given its qualified name, following re-exports (`from .x import C`
        in a package `__init__`). None when the class is not in the checked files."""
        seen = set()
        while qualname not in seen:
            seen.add(qualname)
            # The class may be nested (pkg.mod.Outer.Inner): try each split point.
            for i in range(qualname.count("."), 0, -1):
                parts = qualname.split(".")
                mod, cls = ".".join(parts[:i]), ".".join(parts[i:])
                facts = self.modules.get(mod)
                if facts is None:
                    continue
                if cls in facts.classes:
                    return facts.classes[cls]
                head = cls.split(".")[0]
                if head in facts.aliases:
                    rest = cls[len(head):]
                    qualname = facts.aliases[head] + rest
                    break
            else:
                return None
        return None

    def fingerprint(self) -> str:
        """A stable digest of the facts (for the result cache)."""
        import hashlib
        import json

        payload = json.dumps(
            {m: [sorted(f.aliases.items()), sorted(f.classes.items())] for m, f in sorted(self.modules.items())},
            sort_keys=True,
        )
        return hashlib.sha256(payload.encode()).hexdigest()

"""The mutation engine of `callsite_recall.py`: anchored, line-level edits of real scripts.

A script is a `Doc` (its lines, each remembering the line number it had in the original file, or
None when a mutation inserted it). Every edit names its place by an *anchor* resolved on the
original text: `Anchor(regex, within=FUNC, file=PATH)` is the one line of `file` that matches
`regex` (`re.search`) and lies inside `def FUNC` when `within` is given. An anchor that matches no
line, or more than one, raises `AnchorError`: a mutation whose target is missing is a bench error,
never counted as a miss. Statement extents (where a `for`/`with` block ends, what a decorator
wraps) come from the standard library's `ast` of the original file.

Edits keep the map original line -> mutant line, so findings of the original run can be compared
with the mutant's, and record the *sites* of each change (inserted or changed lines, and the line
where deleted text used to be) that `callsite_recall.py` uses to decide what "near" means.

Standard library only; nothing here imports modelint or torch.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple


class AnchorError(Exception):
    """A mutation's anchor is missing or ambiguous: a bench error, not a miss."""


@dataclass(frozen=True)
class Anchor:
    regex: str
    within: Optional[str] = None  # name of the def whose body must hold the line
    file: Optional[str] = None  # path of the file (default: the script's main file)
    after: Optional[str] = None  # regex of a line the anchor must come after (same scope)


@dataclass
class Line:
    orig: Optional[int]  # 1-based line number in the original file; None = inserted
    text: str
    changed: bool = False


def indent_of(text: str) -> str:
    return text[: len(text) - len(text.lstrip())]


class Doc:
    """One file of a mutant: original lines plus edits, with sites and the original->new map."""

    def __init__(self, path: str, text: str, new: bool = False):
        self.path = path
        self.original = text
        raw = text.splitlines()
        self.lines: List[Line] = [Line(None if new else i + 1, t, new) for i, t in enumerate(raw)]
        self.deleted_at: List[int] = []  # original line numbers just after a deleted run
        self.is_new = new
        self._tree: Optional[ast.Module] = None if new else ast.parse(text)

    # ---- facts about the original text ---------------------------------------------------------
    @property
    def tree(self) -> ast.Module:
        if self._tree is None:
            raise AnchorError(f"{self.path}: a new file has no original text to anchor in")
        return self._tree

    def orig_text(self, lineno: int) -> str:
        return self.original.splitlines()[lineno - 1]

    def find(self, anchor: Anchor) -> int:
        """The one original line matching `anchor`, else AnchorError."""
        lines = self.original.splitlines()
        span = (1, len(lines))
        if anchor.within:
            fns = [n for n in ast.walk(self.tree)
                   if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == anchor.within]
            if len(fns) != 1:
                raise AnchorError(f"{self.path}: {len(fns)} functions named {anchor.within!r} (want 1)")
            span = (fns[0].lineno, fns[0].end_lineno)
        if anchor.after:
            first = [i + 1 for i, t in enumerate(lines) if span[0] <= i + 1 <= span[1] and re.search(anchor.after, t)]
            if not first:
                raise AnchorError(f"{self.path}: {anchor.after!r} (the anchor's `after`) matches no line")
            span = (first[0] + 1, span[1])
        pattern = re.compile(anchor.regex)
        hits = [i + 1 for i, t in enumerate(lines) if span[0] <= i + 1 <= span[1] and pattern.search(t)]
        if len(hits) != 1:
            where = f" in {anchor.within}()" if anchor.within else ""
            raise AnchorError(f"{self.path}: {anchor.regex!r}{where} matches {len(hits)} lines {hits[:5]} (want 1)")
        return hits[0]

    def stmt_at(self, lineno: int) -> ast.stmt:
        """The outermost statement starting on original line `lineno`."""
        best = None
        for node in ast.walk(self.tree):
            if isinstance(node, ast.stmt) and node.lineno == lineno:
                if best is None or node.end_lineno > best.end_lineno:
                    best = node
        if best is None:
            raise AnchorError(f"{self.path}:{lineno}: no statement starts on this line")
        return best

    def enclosing_function(self, lineno: int) -> Optional[ast.AST]:
        best = None
        for node in ast.walk(self.tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.lineno <= lineno <= node.end_lineno:
                if best is None or node.lineno > best.lineno:
                    best = node
        return best

    def loops_around(self, lineno: int) -> List[ast.stmt]:
        """Loops (for/while) whose body holds the line, innermost first."""
        loops = [n for n in ast.walk(self.tree) if isinstance(n, (ast.For, ast.While, ast.AsyncFor))
                 and n.lineno < lineno <= n.end_lineno]
        return sorted(loops, key=lambda n: -n.lineno)

    def toplevel_stmt(self, lineno: int) -> ast.stmt:
        for node in self.tree.body:
            if _first_line(node) <= lineno <= node.end_lineno:
                return node
        raise AnchorError(f"{self.path}:{lineno}: not inside a top-level statement")

    def insert_before_toplevel(self, lineno: int, texts: Sequence[str]) -> None:
        """Insert `texts` (top-level code) before the top-level statement holding `lineno`, above
        its decorators."""
        self.insert(self.index_of(_first_line(self.toplevel_stmt(lineno))), texts)

    def siblings(self, stmt: ast.stmt) -> Optional[List[ast.stmt]]:
        for node in ast.walk(self.tree):
            for name in ("body", "orelse", "finalbody", "handlers"):
                body = getattr(node, name, None)
                if isinstance(body, list) and stmt in body:
                    return body
        return None

    # ---- positions in the current text -----------------------------------------------------------
    def index_of(self, orig: int) -> int:
        for i, line in enumerate(self.lines):
            if line.orig == orig:
                return i
        raise AnchorError(f"{self.path}:{orig}: line was removed by an earlier edit of this mutation")

    def index_after(self, orig_end: int) -> int:
        """Index just after the last surviving original line <= orig_end (and what was inserted after it)."""
        last = -1
        for i, line in enumerate(self.lines):
            if line.orig is not None and line.orig <= orig_end:
                last = i
        return last + 1

    # ---- edits -------------------------------------------------------------------------------------
    def insert(self, index: int, texts: Sequence[str], indent: str = "") -> None:
        new = [Line(None, (indent + t) if t.strip() else "", True) for t in texts]
        self.lines[index:index] = new

    def current_indent(self, orig: int) -> str:
        """Indentation the line has now (an earlier edit may have dedented it)."""
        return indent_of(self.lines[self.index_of(orig)].text)

    def insert_before(self, orig: int, texts: Sequence[str]) -> None:
        self.insert(self.index_of(orig), texts, self.current_indent(orig))

    def insert_after_stmt(self, orig: int, texts: Sequence[str]) -> None:
        stmt = self.stmt_at(orig)
        self.insert(self.index_after(stmt.end_lineno), texts, self.current_indent(orig))

    def replace_in(self, orig: int, old: str, new: str) -> None:
        line = self.lines[self.index_of(orig)]
        if old not in line.text:
            raise AnchorError(f"{self.path}:{orig}: {old!r} not in {line.text.strip()!r}")
        line.text = line.text.replace(old, new, 1)
        line.changed = True

    def replace_line(self, orig: int, texts: Sequence[str]) -> None:
        """Replace one original line by `texts` (at its indentation); the first keeps the line's place."""
        i = self.index_of(orig)
        ind = indent_of(self.lines[i].text)
        self.lines[i].text = ind + texts[0]
        self.lines[i].changed = True
        self.insert(i + 1, texts[1:], ind)

    def delete_range(self, first: int, last: int) -> None:
        """Delete original lines first..last; leave `pass` when the block would be empty."""
        start = self.stmt_at(first)
        body = self.siblings(start) or []
        keep_pass = all(first <= s.lineno <= last for s in body)
        ind = indent_of(self.orig_text(first))
        self.lines = [ln for ln in self.lines if ln.orig is None or not first <= ln.orig <= last]
        pos = self.index_after(first - 1)
        if keep_pass:
            self.insert(pos, ["pass"], ind)
        self.deleted_at.append(last + 1)

    def drop_line(self, orig: int) -> None:
        """Delete one original line as it is (a `with` header, a decorator)."""
        self.lines.pop(self.index_of(orig))
        self.deleted_at.append(orig + 1)

    def delete_stmt(self, orig: int) -> None:
        self.delete_range(orig, self.stmt_at(orig).end_lineno)

    def dedent_block(self, first: int, last: int, width: int) -> None:
        for line in self.lines:
            if line.orig is not None and first <= line.orig <= last and line.text.strip():
                if not line.text.startswith(" " * width):
                    raise AnchorError(f"{self.path}:{line.orig}: cannot dedent by {width}")
                line.text = line.text[width:]
                line.changed = True

    def rename(self, old: str, new: str) -> int:
        pattern = re.compile(rf"\b{re.escape(old)}\b")
        count = 0
        for line in self.lines:
            text, n = pattern.subn(new, line.text)
            if n:
                line.text, line.changed = text, True
                count += n
        return count

    def add_import(self, statement: str) -> None:
        """Put `statement` after the last top-level import before the first def/class."""
        if any(ln.text == statement for ln in self.lines):
            return
        end = 0
        for node in self.tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                break
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                end = node.end_lineno
        self.insert(self.index_after(end), [statement])

    # ---- results -------------------------------------------------------------------------------------
    def text(self) -> str:
        return "\n".join(ln.text for ln in self.lines) + "\n"

    def new_line_of(self) -> Dict[int, int]:
        """original line -> mutant line, for the lines that survived."""
        return {ln.orig: i + 1 for i, ln in enumerate(self.lines) if ln.orig is not None}

    def sites(self) -> List[int]:
        """Mutant lines that were inserted or changed, and where deleted text used to be."""
        out = [i + 1 for i, ln in enumerate(self.lines) if ln.changed or ln.orig is None]
        for after in self.deleted_at:
            out.append(self.index_after(after - 1) + 1)
        return sorted(set(out))


@dataclass
class Mutant:
    """All files of one mutant: the pinned files (edited or not) and files a mutation adds."""

    docs: Dict[str, Doc]
    main: str
    packages: Tuple[str, ...] = ()  # folders that are packages (helper imports are then dotted)
    related: List[Tuple[str, int]] = field(default_factory=list)  # (path, original line) of named anchors

    def doc(self, path: Optional[str] = None) -> Doc:
        return self.docs[path or self.main]

    def resolve(self, anchor: Anchor) -> Tuple[Doc, int]:
        doc = self.doc(anchor.file)
        return doc, doc.find(anchor)

    def add_file(self, name: str, text: str) -> Doc:
        folder = self.main.rpartition("/")[0]
        path = f"{folder}/{name}" if folder else name
        if path in self.docs:
            raise AnchorError(f"{path}: a mutation adds a file that already exists")
        self.docs[path] = Doc(path, text, new=True)
        return self.docs[path]

    def relate(self, doc: Doc, orig: int) -> None:
        self.related.append((doc.path, orig))

    def check_parses(self) -> None:
        for doc in self.docs.values():
            try:
                ast.parse(doc.text())
            except SyntaxError as exc:
                raise AnchorError(f"{doc.path}: the mutant does not parse: {exc}") from None

    def windows(self, near: int) -> Dict[str, set]:
        """Per file, the mutant lines within `near` lines of a site or of a related anchor."""
        out: Dict[str, set] = {}
        for path, doc in self.docs.items():
            centres = list(doc.sites())
            mapping = doc.new_line_of()
            centres += [mapping[o] for p, o in self.related if p == path and o in mapping]
            if centres:
                out[path] = {c + d for c in centres for d in range(-near, near + 1) if c + d >= 1}
        return out


def _first_line(node: ast.stmt) -> int:
    """A statement's first line, its decorators included."""
    return min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])

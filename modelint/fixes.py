"""Autofix: how a rule describes a fix, how the engine turns it into text edits, and how edits are
applied to a file without ever breaking it.

A rule describes a fix in terms of the nodes it saw (`FixSpec`): replace this node's text, insert
these lines before / after this statement, make sure this import exists. The engine positions the
nodes (it already does so for the finding) and turns the spec into a `Fix` of plain text `Edit`s
(1-based line/column ranges, columns in characters), which is what JSON output shows and what the
result cache stores. Applying is text-only and conservative:

- fixes are applied in source order; a fix whose edits overlap an already accepted fix's edits is
  left for the next round (the engine re-lints and re-applies to a fixpoint, a bounded number of
  rounds), so two findings on nested calls are both fixed, one round after the other;
- the result must still parse (LibCST and CPython) or the file is left as it was;
- new text uses the file's own newline (CRLF stays CRLF) and the statement's own indentation;
- bytes are written back in the file's encoding (BOM and PEP 263 cookie kept), atomically, with the
  file's permissions (`modelint.fixing` runs the fix-to-fixpoint loop and writes).
"""

from __future__ import annotations

import codecs
import io
import re
import tokenize
from dataclasses import dataclass
from typing import TYPE_CHECKING, Dict, Iterable, List, Optional, Sequence, Tuple

from modelint.findings import Edit, Fix

if TYPE_CHECKING:
    import libcst as cst

SAFE = "safe"
UNSAFE = "unsafe"
# A fixpoint is normally reached in two rounds (nested findings need one more each).
MAX_ROUNDS = 8


# --------------------------------------------------------------------------------------------
# What rules build


@dataclass(frozen=True)
class Replace:
    """Replace the exact source text of `node` with `text` (an expression's own text has no
    indentation of its own, so `module.code_for_node(new_node)` is right for expressions)."""

    node: "cst.CSTNode"
    text: str


@dataclass(frozen=True)
class InsertBefore:
    """Insert whole `lines` before statement `stmt`, indented like it."""

    stmt: "cst.CSTNode"
    lines: Tuple[str, ...]


@dataclass(frozen=True)
class InsertAfter:
    """Insert whole `lines` after the last line of statement `stmt`, indented like `indent_like`
    (default: `stmt` itself)."""

    stmt: "cst.CSTNode"
    lines: Tuple[str, ...]
    indent_like: Optional["cst.CSTNode"] = None


@dataclass(frozen=True)
class AddImport:
    """`import module` (obj None) or `from module import obj`, added through LibCST's
    `AddImportsVisitor` unless the module already has it."""

    module: str
    obj: Optional[str] = None


@dataclass(frozen=True)
class FixSpec:
    title: str
    applicability: str
    changes: Tuple[object, ...]

    def __post_init__(self) -> None:
        if self.applicability not in (SAFE, UNSAFE):
            raise ValueError(f"unknown applicability {self.applicability!r}")


def fix(title: str, *changes: object, safe: bool = True) -> FixSpec:
    return FixSpec(title, SAFE if safe else UNSAFE, tuple(changes))


# --------------------------------------------------------------------------------------------
# Spec -> Fix (in the engine, where positions are known)


def to_fix(spec: FixSpec, module: "cst.Module", positions, inclusive_positions) -> Optional[Fix]:
    """Positioned edits for a spec, or None when the spec cannot be placed safely (e.g. a statement
    that shares its line with another). `positions` are syntactic positions (statements start after
    their indentation); `inclusive_positions()` gives whitespace-inclusive ones, whose range for an
    expression is exactly the text `code_for_node` renders (parentheses included)."""
    lines = split_lines(module.code)
    newline = module.default_newline
    edits: List[Edit] = []
    for change in spec.changes:
        if isinstance(change, Replace):
            rng = inclusive_positions()[change.node]
            edits.append(Edit(rng.start.line, rng.start.column + 1, rng.end.line, rng.end.column + 1,
                              change.text.replace("\n", newline)))
        elif isinstance(change, InsertBefore):
            start = positions[change.stmt].start
            indent = lines[start.line - 1][: start.column]
            if indent.strip():
                return None  # shares its line with code before it (`a = 1; b = 2`)
            text = "".join(line + newline + indent for line in change.lines)
            edits.append(Edit(start.line, start.column + 1, start.line, start.column + 1, text))
        elif isinstance(change, InsertAfter):
            anchor = positions[change.indent_like or change.stmt].start
            indent = lines[anchor.line - 1][: anchor.column]
            if indent.strip():
                return None
            end = positions[change.stmt].end
            last = lines[end.line - 1]
            body = last.rstrip("\r\n")
            if body[end.column:].strip() and not body[end.column:].lstrip().startswith("#"):
                return None  # more code follows on the same line
            text = "".join(indent + line + newline for line in change.lines)
            if last.endswith(("\n", "\r")):
                edits.append(Edit(end.line + 1, 1, end.line + 1, 1, text))
            else:  # last line of a file without a final newline
                edits.append(Edit(end.line, len(body) + 1, end.line, len(body) + 1, newline + text.rstrip("\r\n")))
        elif isinstance(change, AddImport):
            edit = _import_edit(module, change)
            if edit is not None:
                edits.append(edit)
        else:
            raise TypeError(f"unknown fix change {change!r}")
    if not edits:
        return None
    edits.sort()
    if _overlapping(edits):
        return None
    return Fix(title=spec.title, applicability=spec.applicability, edits=tuple(edits))


class FixPlacer:
    """Positions for placing one module's fixes: syntactic ones (shared with the findings) for
    statements, and, computed on first need, whitespace-inclusive ones for replaced expressions
    (they include the node's own parentheses, as its generated code does)."""

    def __init__(self, module: "cst.Module", syntactic):
        self.module = module
        self.syntactic = syntactic
        self._inclusive = None

    def inclusive(self):
        if self._inclusive is None:
            from modelint.analysis.positions import whitespace_inclusive_positions

            self._inclusive = whitespace_inclusive_positions(self.module)
        return self._inclusive

    def place(self, fix: object) -> Optional[Fix]:
        """A rule's fix as text edits (a `FixSpec` is positioned; a ready `Fix` is kept); None when
        it cannot be placed. Never a crash: a fix that cannot be built is just not offered."""
        if fix is None or not isinstance(fix, FixSpec):
            return fix  # type: ignore[return-value]
        try:
            return to_fix(fix, self.module, self.syntactic, self.inclusive)
        except Exception:
            return None


def _import_edit(module: "cst.Module", change: AddImport) -> Optional[Edit]:
    """The edit LibCST's AddImportsVisitor makes, expressed as one replaced block of lines."""
    from libcst.codemod import CodemodContext
    from libcst.codemod.visitors import AddImportsVisitor

    context = CodemodContext()
    AddImportsVisitor.add_needed_import(context, change.module, change.obj)
    new_code = AddImportsVisitor(context).transform_module(module).code
    old = split_lines(module.code)
    new = split_lines(new_code)
    if old == new:
        return None
    head, tail = common_ends(old, new)
    replaced_old = old[head: len(old) - tail]
    replaced_new = "".join(new[head: len(new) - tail])
    if replaced_old:
        return Edit(head + 1, 1, head + len(replaced_old) + 1, 1, replaced_new)
    return Edit(head + 1, 1, head + 1, 1, replaced_new)


# --------------------------------------------------------------------------------------------
# Applying edits to text

_NEWLINE = re.compile(r"\r\n|\r|\n")


def common_ends(old: Sequence[str], new: Sequence[str]) -> Tuple[int, int]:
    """How many leading and trailing items (lines) `old` and `new` share, the two runs not
    overlapping: the lines in between are what changed."""
    head = 0
    while head < min(len(old), len(new)) and old[head] == new[head]:
        head += 1
    tail = 0
    while tail < min(len(old), len(new)) - head and old[-1 - tail] == new[-1 - tail]:
        tail += 1
    return head, tail


def split_lines(text: str) -> List[str]:
    """Lines with their endings, split only where Python (and LibCST) see a line break (not at
    form feeds or other characters `str.splitlines` also splits on)."""
    out: List[str] = []
    pos = 0
    for m in _NEWLINE.finditer(text):
        out.append(text[pos: m.end()])
        pos = m.end()
    if pos < len(text) or not out:
        out.append(text[pos:])
    return out


def _offsets(text: str) -> List[int]:
    starts = [0]
    for m in _NEWLINE.finditer(text):
        starts.append(m.end())
    return starts


def _span(edit: Edit, starts: Sequence[int], size: int) -> Optional[Tuple[int, int]]:
    try:
        a = starts[edit.line - 1] + edit.column - 1 if edit.line - 1 < len(starts) else size
        b = starts[edit.end_line - 1] + edit.end_column - 1 if edit.end_line - 1 < len(starts) else size
    except IndexError:
        return None
    if not (0 <= a <= b <= size):
        return None
    return a, b


def _overlapping(edits: Sequence[Edit]) -> bool:
    spans = sorted((e.line, e.column, e.end_line, e.end_column) for e in edits)
    return any((b[0], b[1]) < (a[2], a[3]) or (a[:2] == b[:2]) for a, b in zip(spans, spans[1:]))


def apply_fixes(text: str, fixes: Iterable[Fix]) -> Tuple[str, List[Fix]]:
    """Apply every fix that does not overlap an earlier one (in source order); return the new text
    and the fixes applied. Two edits touching the same point (two insertions at one place) count
    as overlapping: the second waits for the next round, when the rule sees the first's result."""
    starts = _offsets(text)
    taken: List[Tuple[int, int]] = []
    chosen: List[Tuple[Tuple[int, int], str]] = []
    applied: List[Fix] = []
    for fx in sorted(fixes, key=lambda f: (f.edits[0] if f.edits else Edit(0, 0, 0, 0, ""), f.title)):
        spans = [_span(e, starts, len(text)) for e in fx.edits]
        if not spans or any(s is None for s in spans):
            continue
        if any(_touch(s, t) for s in spans for t in taken):
            continue
        taken.extend(spans)
        chosen.extend(zip(spans, (e.content for e in fx.edits)))
        applied.append(fx)
    for (a, b), content in sorted(chosen, key=lambda c: c[0], reverse=True):
        text = text[:a] + content + text[b:]
    return text, applied


def _touch(s: Tuple[int, int], t: Tuple[int, int]) -> bool:
    if s[0] == s[1] or t[0] == t[1]:  # an insertion conflicts with anything at or around its point
        return t[0] <= s[0] <= t[1] or s[0] <= t[0] <= s[1]
    return s[0] < t[1] and t[0] < s[1]


def parses(text: str) -> bool:
    """Would both CPython and LibCST accept this module?"""
    import libcst as cst

    try:
        compile(text, "<fixed>", "exec", flags=0x400, dont_inherit=True)  # ast.PyCF_ONLY_AST
        cst.parse_module(text)
    except Exception:
        return False
    return True


# --------------------------------------------------------------------------------------------
# Bytes in, bytes out


@dataclass(frozen=True)
class Decoded:
    text: str
    encoding: str  # a codec name; "utf-8-sig" when the file starts with a BOM


def decode(data: bytes) -> Decoded:
    encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    if data.startswith(codecs.BOM_UTF8):
        encoding = "utf-8-sig"
    # newline="" semantics: str.decode keeps "\r\n" and "\r" as they are
    return Decoded(data.decode(encoding), encoding)


def encode(decoded: Decoded, text: str) -> Optional[bytes]:
    try:
        return text.encode(decoded.encoding)
    except UnicodeEncodeError:
        return None


def unified_diff(path: str, before: str, after: str) -> str:
    import difflib

    diff = difflib.unified_diff(split_lines(before), split_lines(after), fromfile=f"a/{path}", tofile=f"b/{path}")
    out = []
    for line in diff:
        if not line.endswith(("\n", "\r")):
            line += "\n\\ No newline at end of file\n"
        out.append(line)
    return "".join(out)


def applicable(fx: Optional[Fix], unsafe: bool) -> bool:
    return fx is not None and bool(fx.edits) and (unsafe or fx.applicability == SAFE)



# --------------------------------------------------------------------------------------------
# Helpers rules use to build fixes


def call_with_keyword(ctx, call: "cst.Call", keyword: str, value: str) -> Optional[str]:
    """Source of `call` with `keyword=value` appended after its last argument, keeping the call's
    own layout (a trailing comma stays trailing); None if it cannot be rendered in place."""
    import libcst as cst

    new_arg = cst.Arg(
        value=cst.parse_expression(value),
        keyword=cst.Name(keyword),
        equal=cst.AssignEqual(whitespace_before=cst.SimpleWhitespace(""), whitespace_after=cst.SimpleWhitespace("")),
    )
    args = list(call.args)
    if args:
        last = args[-1]
        # the new argument goes where the old last one ended; the old one takes the separator the
        # call already uses between arguments (", " or a newline at the arguments' indentation)
        sep = args[-2].comma.whitespace_after if len(args) > 1 and isinstance(args[-2].comma, cst.Comma) \
            else cst.SimpleWhitespace(" ")
        if isinstance(last.comma, cst.Comma):
            new_arg = new_arg.with_changes(comma=last.comma)
        else:
            new_arg = new_arg.with_changes(whitespace_after_arg=last.whitespace_after_arg)
            last = last.with_changes(whitespace_after_arg=cst.SimpleWhitespace(""))
        args[-1] = last.with_changes(comma=cst.Comma(whitespace_after=sep))
    args.append(new_arg)
    return code_in_place(ctx, call, call.with_changes(args=args))


def fresh_name(scope: "cst.CSTNode", base: str) -> str:
    """`base`, or `base_2`, ... : a name not used anywhere in `scope`."""
    import libcst as cst
    from modelint.analysis.walk import descendants

    used = {n.value for n in descendants(scope) if isinstance(n, cst.Name)}
    name, i = base, 2
    while name in used:
        name, i = f"{base}_{i}", i + 1
    return name


# (module, its parent map) for the last module a fix needed one for: fixes of one file come one
# after another, and keeping one entry holds at most one module alive.
_PARENTS: Optional[Tuple["cst.Module", Dict[int, "cst.CSTNode"]]] = None


def _indent_tokens(ctx, node: "cst.CSTNode") -> Optional[List[str]]:
    """The indentation LibCST's code generator has in force at `node`: one token per enclosing
    indented block (what `ParenthesizedWhitespace(indent=True)` continuation lines are relative to)."""
    import libcst as cst
    from modelint.analysis.walk import parent_map

    chain = None
    for i, anc in enumerate(ctx.ancestors):
        if anc is node:
            chain = ctx.ancestors[:i]
            break
    if chain is None:
        global _PARENTS
        if _PARENTS is None or _PARENTS[0] is not ctx.module:
            _PARENTS = (ctx.module, parent_map(ctx.module))
        parents = _PARENTS[1]
        chain = []
        cur = parents.get(id(node))
        while cur is not None:
            chain.append(cur)
            cur = parents.get(id(cur))
        if not chain or chain[-1] is not ctx.module:
            return None
        chain.reverse()
    default = ctx.module.default_indent
    return [blk.indent if blk.indent is not None else default for blk in chain if isinstance(blk, cst.IndentedBlock)]


def code_in_place(ctx, old: "cst.CSTNode", new: "cst.CSTNode") -> Optional[str]:
    """Source text for `new` as it will read where `old` stands now. `Module.code_for_node` renders
    a node at indentation zero, which is wrong for multi-line expressions whose continuation lines
    follow the enclosing block's indentation; None if that indentation cannot be known."""
    module = ctx.module
    tokens = _indent_tokens(ctx, old)
    if tokens is None:
        return None
    from modelint.cstcompat import code_at_indent

    return code_at_indent(module, new, tokens)


def _top_level_imports(module: "cst.Module") -> Dict[str, str]:
    """local name -> qualified name, for imports at the top level of the module (also inside a
    top-level `try:`), the only ones a fix may rely on being bound everywhere in the file."""
    import libcst as cst
    from libcst.helpers import get_full_name_for_node

    out: Dict[str, str] = {}
    stmts = []
    for stmt in module.body:
        if isinstance(stmt, cst.Try):
            stmts.extend(s for s in stmt.body.body if isinstance(s, cst.SimpleStatementLine))
        elif isinstance(stmt, cst.SimpleStatementLine):
            stmts.append(stmt)
    for stmt in stmts:
        for small in stmt.body:
            if isinstance(small, cst.Import):
                for alias in small.names:
                    full = get_full_name_for_node(alias.name) or ""
                    if alias.asname is not None:
                        out[alias.asname.name.value] = full
                    else:
                        out.setdefault(full.split(".")[0], full.split(".")[0])
            elif isinstance(small, cst.ImportFrom) and not small.relative and small.module is not None \
                    and not isinstance(small.names, cst.ImportStar):
                src = get_full_name_for_node(small.module) or ""
                for alias in small.names:
                    name = alias.name.value if isinstance(alias.name, cst.Name) else ""
                    out[alias.asname.name.value if alias.asname else name] = f"{src}.{name}"
    return out


def spelling(ctx, qualname: str) -> Optional[Tuple[str, Optional[AddImport]]]:
    """How to write `qualname` (e.g. `torch.nn.ModuleList`) in this file: through one of its
    top-level imports (`nn.ModuleList`, `torch.nn.ModuleList`, `ModuleList`), or `nn.ModuleList`
    plus `from torch import nn` when the name `nn` is free. None if neither is possible."""
    import libcst as cst
    from modelint.analysis.walk import descendants

    imports = _top_level_imports(ctx.module)
    best = None
    for local, full in sorted(imports.items()):
        if full == qualname or qualname.startswith(full + "."):
            text = local + qualname[len(full):]
            if best is None or len(text) < len(best):
                best = text
    if best is not None:
        return best, None
    parent, _, last = qualname.rpartition(".")
    pkg, _, short = parent.rpartition(".")
    if not pkg:
        return None
    nodes = list(descendants(ctx.module))
    attrs = {id(n.attr) for n in nodes if isinstance(n, cst.Attribute)}  # `torch.nn`: not a use of `nn`
    if any(isinstance(n, cst.Name) and n.value == short and id(n) not in attrs for n in nodes):
        return None  # `nn` means something else here
    return f"{short}.{last}", AddImport(pkg, short)

"""A fast, iterative walk over a LibCST tree that skips whitespace and punctuation nodes.

LibCST's own visitor rebuilds every node while it visits; the rules here only read the tree, so
walking the dataclass fields directly is several times cheaper, and being iterative it cannot
overflow the stack on deeply nested expressions.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Dict, Iterator, List, Tuple, Type

import libcst as cst

# Node types that never matter to a rule (whitespace, comments, punctuation).
_SKIP_TYPES: Tuple[type, ...] = (
    cst.BaseParenthesizableWhitespace,
    cst.TrailingWhitespace,
    cst.EmptyLine,
    cst.Comment,
    cst.Newline,
    cst.Comma,
    cst.Semicolon,
    cst.LeftParen,
    cst.RightParen,
    cst.LeftSquareBracket,
    cst.RightSquareBracket,
    cst.LeftCurlyBrace,
    cst.RightCurlyBrace,
    cst.Colon,
    cst.Dot,
    cst.AssignEqual,
    cst.ImportStar,
)

# Per concrete node type: the names of the fields that can hold nodes a rule cares about.
_FIELDS: Dict[Type[cst.CSTNode], Tuple[str, ...]] = {}
# Per concrete type of a field value: 0 = ignore, 1 = a node to walk, 2 = a sequence of values.
_KIND: Dict[type, int] = {tuple: 2, list: 2}


def _kind(tp: type) -> int:
    # isinstance against LibCST's abstract bases is slow; classify each concrete type once.
    kind = _KIND.get(tp)
    if kind is None:
        kind = 1 if issubclass(tp, cst.CSTNode) and not issubclass(tp, _SKIP_TYPES) else 0
        _KIND[tp] = kind
    return kind


def _fields(tp: Type[cst.CSTNode]) -> Tuple[str, ...]:
    names = _FIELDS.get(tp)
    if names is None:
        names = tuple(
            f.name
            for f in dataclasses.fields(tp)
            if not f.name.startswith("whitespace")
            and f.name not in ("lpar", "rpar", "leading_lines", "lines_after_decorators", "header", "footer")
        )
        _FIELDS[tp] = names
    return names


def children(node: cst.CSTNode) -> List[cst.CSTNode]:
    """Children in source order, without whitespace/punctuation nodes."""
    out: List[cst.CSTNode] = []
    fields = _FIELDS.get(type(node)) or _fields(type(node))
    for name in fields:
        value = getattr(node, name)
        kind = _KIND.get(type(value))
        if kind is None:
            kind = _kind(type(value))
        if kind == 1:
            out.append(value)
        elif kind == 2:
            for item in value:
                k = _KIND.get(type(item))
                if k is None:
                    k = _kind(type(item))
                if k == 1:
                    out.append(item)
    return out


def iter_children(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    return iter(children(node))


def walk(root: cst.CSTNode, enter: Callable[[cst.CSTNode], None], leave: Callable[[cst.CSTNode], None]) -> None:
    """Depth-first, source order, calling enter(node) before and leave(node) after its children."""
    stack: List[Tuple[cst.CSTNode, bool]] = [(root, False)]
    pop, push = stack.pop, stack.append
    while stack:
        node, left = pop()
        if left:
            leave(node)
            continue
        enter(node)
        push((node, True))
        for child in reversed(children(node)):
            push((child, False))


def descendants(root: cst.CSTNode) -> Iterator[cst.CSTNode]:
    """Every node below (and including) root, pre-order."""
    stack = [root]
    while stack:
        node = stack.pop()
        yield node
        kids = children(node)
        kids.reverse()
        stack.extend(kids)


def parent_map(root: cst.CSTNode) -> Dict[int, cst.CSTNode]:
    """id(child) -> parent for the subtree under root."""
    parents: Dict[int, cst.CSTNode] = {}
    stack = [root]
    while stack:
        node = stack.pop()
        for child in children(node):
            parents[id(child)] = node
            stack.append(child)
    return parents

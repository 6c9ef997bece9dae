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

_FIELDS: Dict[Type[cst.CSTNode], Tuple[str, ...]] = {}


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


def iter_children(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    """Children in source order, without whitespace/punctuation nodes."""
    for name in _fields(type(node)):
        value = getattr(node, name)
        if isinstance(value, cst.CSTNode):
            if not isinstance(value, _SKIP_TYPES):
                yield value
        elif isinstance(value, (tuple, list)):
            for item in value:
                if isinstance(item, cst.CSTNode) and not isinstance(item, _SKIP_TYPES):
                    yield item


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
        children = list(iter_children(node))
        for child in reversed(children):
            push((child, False))


def descendants(root: cst.CSTNode) -> Iterator[cst.CSTNode]:
    """Every node below (and including) root, pre-order."""
    stack = [root]
    while stack:
        node = stack.pop()
        yield node
        children = list(iter_children(node))
        children.reverse()
        stack.extend(children)


def parent_map(root: cst.CSTNode) -> Dict[int, cst.CSTNode]:
    """id(child) -> parent for the subtree under root."""
    parents: Dict[int, cst.CSTNode] = {}
    stack = [root]
    while stack:
        node = stack.pop()
        for child in iter_children(node):
            parents[id(child)] = node
            stack.append(child)
    return parents

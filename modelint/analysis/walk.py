"""A fast, iterative walk over a LibCST tree that skips whitespace and punctuation nodes.

LibCST's own visitor rebuilds every node while it visits; the rules here only read the tree, so
walking the dataclass fields directly is several times cheaper, and being iterative it cannot
overflow the stack on deeply nested expressions.

Every traversal here runs once per node of every checked file, so they are written for speed:
per concrete node type the fields worth following are computed once (`_FIELDS`, also reversed in
`_RFIELDS` for the stack-based walks), per concrete value type whether it is a node to follow, a
sequence or neither (`_KIND`, a dict whose misses classify the type), and the loops are inlined
rather than calling `children()` per node.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Dict, Iterator, List, Optional, Tuple, Type

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

_IGNORED_FIELDS = frozenset({"lpar", "rpar", "leading_lines", "lines_after_decorators", "header", "footer"})


class _FieldTable(dict):
    """Per concrete node type: the names of the fields that can hold nodes a rule cares about."""

    def __missing__(self, tp: Type[cst.CSTNode]) -> Tuple[str, ...]:
        names = tuple(
            f.name for f in dataclasses.fields(tp) if not f.name.startswith("whitespace") and f.name not in _IGNORED_FIELDS
        )
        self[tp] = names
        return names


class _ReversedFieldTable(dict):
    def __missing__(self, tp: Type[cst.CSTNode]) -> Tuple[str, ...]:
        names = tuple(reversed(_FIELDS[tp]))
        self[tp] = names
        return names


class _KindTable(dict):
    """Per concrete type of a field value: 0 = ignore, 1 = a node to walk, 2 = a sequence of values."""

    def __missing__(self, tp: type) -> int:
        kind = 1 if issubclass(tp, cst.CSTNode) and not issubclass(tp, _SKIP_TYPES) else 0
        self[tp] = kind
        return kind


_FIELDS: Dict[Type[cst.CSTNode], Tuple[str, ...]] = _FieldTable()
_RFIELDS: Dict[Type[cst.CSTNode], Tuple[str, ...]] = _ReversedFieldTable()
_KIND: Dict[type, int] = _KindTable({tuple: 2, list: 2})


def children(node: cst.CSTNode) -> List[cst.CSTNode]:
    """Children in source order, without whitespace/punctuation nodes."""
    out: List[cst.CSTNode] = []
    kinds = _KIND
    for name in _FIELDS[type(node)]:
        value = getattr(node, name)
        kind = kinds[type(value)]
        if kind == 1:
            out.append(value)
        elif kind == 2:
            for item in value:
                if kinds[type(item)] == 1:
                    out.append(item)
    return out


def iter_children(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    return iter(children(node))


def walk(root: cst.CSTNode, enter: Callable[[cst.CSTNode], None], leave: Callable[[cst.CSTNode], None]) -> None:
    """Depth-first, source order, calling enter(node) before and leave(node) after its children."""
    # The stack holds nodes to enter; a `None` above a node means "leave it" (no tuples per node).
    stack: List[Optional[cst.CSTNode]] = [root]
    pop, push = stack.pop, stack.append
    kinds, rfields = _KIND, _RFIELDS
    while stack:
        node = pop()
        if node is None:
            leave(pop())  # type: ignore[arg-type]
            continue
        enter(node)
        push(node)
        push(None)
        for name in rfields[type(node)]:
            value = getattr(node, name)
            kind = kinds[type(value)]
            if kind == 1:
                push(value)
            elif kind == 2:
                for item in reversed(value):
                    if kinds[type(item)] == 1:
                        push(item)


def descendants(root: cst.CSTNode) -> Iterator[cst.CSTNode]:
    """Every node below (and including) root, pre-order."""
    stack = [root]
    pop, push = stack.pop, stack.append
    kinds, rfields = _KIND, _RFIELDS
    while stack:
        node = pop()
        yield node
        for name in rfields[type(node)]:
            value = getattr(node, name)
            kind = kinds[type(value)]
            if kind == 1:
                push(value)
            elif kind == 2:
                for item in reversed(value):
                    if kinds[type(item)] == 1:
                        push(item)


def preorder_and_parents(root: cst.CSTNode) -> Tuple[List[cst.CSTNode], Dict[int, cst.CSTNode]]:
    """`(list(descendants(root)), parent_map(root))` in one pass."""
    order: List[cst.CSTNode] = []
    parents: Dict[int, cst.CSTNode] = {}
    stack = [root]
    pop, push, emit = stack.pop, stack.append, order.append
    kinds, rfields = _KIND, _RFIELDS
    while stack:
        node = pop()
        emit(node)
        for name in rfields[type(node)]:
            value = getattr(node, name)
            kind = kinds[type(value)]
            if kind == 1:
                parents[id(value)] = node
                push(value)
            elif kind == 2:
                for item in reversed(value):
                    if kinds[type(item)] == 1:
                        parents[id(item)] = node
                        push(item)
    return order, parents


def parent_map(root: cst.CSTNode) -> Dict[int, cst.CSTNode]:
    """id(child) -> parent for the subtree under root."""
    parents: Dict[int, cst.CSTNode] = {}
    stack = [root]
    pop, push = stack.pop, stack.append
    kinds, fields = _KIND, _FIELDS
    while stack:
        node = pop()
        for name in fields[type(node)]:
            value = getattr(node, name)
            kind = kinds[type(value)]
            if kind == 1:
                parents[id(value)] = node
                push(value)
            elif kind == 2:
                for item in value:
                    if kinds[type(item)] == 1:
                        parents[id(item)] = node
                        push(item)
    return parents


def enclosing(node: cst.CSTNode, parents: Dict[int, cst.CSTNode], kinds) -> Optional[cst.CSTNode]:
    """The nearest proper ancestor of `node` that is an instance of `kinds`, in a `parent_map`; None."""
    cur = parents.get(id(node))
    while cur is not None and not isinstance(cur, kinds):
        cur = parents.get(id(cur))
    return cur

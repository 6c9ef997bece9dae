"""tree-sitter plumbing: the one parser, node text and call shapes, byte -> character columns."""

from __future__ import annotations

import functools
from typing import Iterator, Optional, Tuple


@functools.lru_cache(maxsize=1)
def _parser():
    import tree_sitter
    import tree_sitter_rust

    return tree_sitter.Parser(tree_sitter.Language(tree_sitter_rust.language()))


def parse(data: bytes):
    """The tree-sitter tree of one file (never raises: syntax errors become ERROR nodes)."""
    return _parser().parse(data)


def text(node) -> str:
    return node.text.decode("utf-8", "replace")


def walk(node) -> Iterator:
    """Every node under `node` (itself included), in source order, with a cursor (no Python
    recursion: a deeply nested expression cannot overflow the stack)."""
    cursor = node.walk()
    while True:
        yield cursor.node
        if cursor.goto_first_child():
            continue
        while not cursor.goto_next_sibling():
            if not cursor.goto_parent() or cursor.node == node:
                return


def call_shape(call) -> Tuple[str, str, Optional[object]]:
    """(kind, name, receiver) of a call_expression: ("method", "multinomial", <probs>) for
    `probs.multinomial(..)`, ("path", "ad_enabled", <B>) for `B::ad_enabled()`,
    ("plain", "infer", None) for `infer(..)`; turbofish (`f::<B>(..)`) is looked through."""
    fn = call.child_by_field_name("function")
    if fn is not None and fn.type == "generic_function":
        fn = fn.child_by_field_name("function")
    if fn is None:
        return "other", "", None
    if fn.type == "field_expression":
        field = fn.child_by_field_name("field")
        return "method", text(field) if field is not None else "", fn.child_by_field_name("value")
    if fn.type == "scoped_identifier":
        name = fn.child_by_field_name("name")
        return "path", text(name) if name is not None else "", fn.child_by_field_name("path")
    if fn.type == "identifier":
        return "plain", text(fn), None
    return "other", "", None


def turbofish(call):
    """The type_arguments of `f::<A, B>(..)` / `x.f::<A>(..)`, or None."""
    fn = call.child_by_field_name("function")
    if fn is not None and fn.type == "generic_function":
        return fn.child_by_field_name("type_arguments")
    return None


def identifiers(node) -> set:
    """Names used in `node` (identifiers, not fields or types)."""
    return {text(n) for n in walk(node) if n.type == "identifier"}


class Columns:
    """tree-sitter points are (row, byte column); findings and edits use 1-based lines and
    character columns like the Python front end."""

    def __init__(self, data: bytes):
        self.lines = data.split(b"\n")

    def column(self, point) -> int:
        row, col = point
        line = self.lines[row] if row < len(self.lines) else b""
        return len(line[:col].decode("utf-8", "replace")) + 1


def parses(source: str) -> bool:
    """Does the fixed text still parse as Rust (no ERROR or MISSING node)?"""
    return not parse(source.encode("utf-8", "surrogatepass")).root_node.has_error

"""Per-file facts of a Rust file, computed once and asked for by name (the Rust `FileContext`).

One tree-sitter query collects every node kind the rules look at (calls, functions, impls,
structs, loops, closures, branches, comments) in C; the facts below are built from those lists on
first use and memoised, so a rule never walks the tree itself.
"""

from __future__ import annotations

import bisect
import functools
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from modelint.frameworks.burn import BURN, BurnProfile
from modelint.rust.syntax import Columns, call_shape, text

_KINDS = {
    "call_expression": "call", "function_item": "fn", "impl_item": "impl", "struct_item": "struct",
    "line_comment": "comment", "block_comment": "comment", "for_expression": "loop",
    "while_expression": "loop", "loop_expression": "loop", "closure_expression": "closure",
    "if_expression": "branch", "match_expression": "branch", "type_item": "alias",
}


@functools.lru_cache(maxsize=1)
def _query():
    import tree_sitter
    import tree_sitter_rust

    src = " ".join(f"({kind}) @{cap}" for kind, cap in _KINDS.items())
    return tree_sitter.Query(tree_sitter.Language(tree_sitter_rust.language()), src)


def _captures(root) -> Dict[str, list]:
    import tree_sitter

    found = tree_sitter.QueryCursor(_query()).captures(root)
    return {cap: sorted(found.get(cap, []), key=lambda n: n.start_byte) for cap in set(_KINDS.values())}


def inside(node, outer) -> bool:
    return outer.start_byte <= node.start_byte and node.end_byte <= outer.end_byte


@dataclass(frozen=True)
class Call:
    node: object
    kind: str  # "method" | "path" | "plain" | "other"
    name: str
    receiver: Optional[object]
    start: int = 0  # byte span, read once (each node attribute is a call into the binding)
    end: int = 0


@dataclass(frozen=True)
class Function:
    node: object
    name: str
    owner: Optional[str]  # the impl's type (`Model` for `impl<B: Backend> Model<B>`), None for a free fn

    @property
    def body(self):
        return self.node.child_by_field_name("body")

    def generics(self) -> str:
        tp = self.node.child_by_field_name("type_parameters")
        where = next((c for c in self.node.children if c.type == "where_clause"), None)
        return (text(tp) if tp is not None else "") + (text(where) if where is not None else "")


class RustFile:
    """One parsed Rust file: its bytes, tree and facts (memoised properties)."""

    def __init__(self, path: str, data: bytes, tree, profile: BurnProfile = BURN):
        self.path, self.data, self.tree, self.profile = path, data, tree, profile
        self.columns = Columns(data)

    @functools.cached_property
    def nodes(self) -> Dict[str, list]:
        return _captures(self.tree.root_node)

    @functools.cached_property
    def calls(self) -> List[Call]:
        return [Call(n, *call_shape(n), n.start_byte, n.end_byte) for n in self.nodes["call"]]

    @functools.cached_property
    def _call_starts(self) -> List[int]:
        return [c.start for c in self.calls]

    @functools.cached_property
    def _fn_spans(self) -> List[Tuple[int, int]]:
        return [(f.node.start_byte, f.node.end_byte) for f in self.functions]

    @functools.cached_property
    def functions(self) -> List[Function]:
        out = []
        for fn in self.nodes["fn"]:
            name = fn.child_by_field_name("name")
            out.append(Function(fn, text(name) if name is not None else "", self._owner(fn)))
        return out

    @staticmethod
    def _owner(fn) -> Optional[str]:
        node = fn.parent
        while node is not None and node.type not in ("impl_item", "function_item"):
            node = node.parent
        if node is None or node.type != "impl_item":
            return None
        tp = node.child_by_field_name("type")
        while tp is not None and tp.type in ("generic_type", "reference_type", "scoped_type_identifier"):
            tp = tp.child_by_field_name("type") or tp.child_by_field_name("name")
        return text(tp) if tp is not None else None

    def function_of(self, node) -> Optional[Function]:
        """The innermost function containing `node`."""
        start, end = node.start_byte, node.end_byte
        spans = self._fn_spans
        # Functions are in source order: the innermost container is the last one starting before
        # `node` that also ends after it (nesting is shallow, so the walk back is short).
        for i in range(bisect.bisect_right(spans, (start, float("inf"))) - 1, -1, -1):
            if spans[i][1] >= end:
                return self.functions[i]
        return None

    def calls_in(self, node) -> List[Call]:
        start, end = node.start_byte, node.end_byte
        lo, hi = bisect.bisect_left(self._call_starts, start), bisect.bisect_right(self._call_starts, end)
        return [c for c in self.calls[lo:hi] if c.end <= end]

    def is_mode_query(self, call: Call) -> bool:
        p = self.profile
        return (call.kind == "path" and call.name in p.mode_query_functions) or (
            call.kind == "method" and call.name in p.mode_query_methods)

    def is_sampling(self, call: Call) -> bool:
        p = self.profile
        if call.kind == "method":
            return call.name in p.sampling_methods
        # `Tensor::random(..)`, `Tensor::<B, 2>::random(..)`: a function of the tensor type.
        return call.kind == "path" and call.name in p.sampling_functions and call.receiver is not None \
            and "Tensor" in text(call.receiver)

    @functools.cached_property
    def mode_queries(self) -> List[Call]:
        return [c for c in self.calls if self.is_mode_query(c)]

    def has_mode_query(self, node) -> bool:
        start, end = node.start_byte, node.end_byte
        return any(start <= c.start and c.end <= end for c in self.mode_queries)

    def is_training_routine(self, fn: Function) -> bool:
        """Does the function train (an optimizer step, a backward pass, a learner's fit)?"""
        return any(c.name in self.profile.training_calls for c in self.calls_in(fn.node) if c.kind in ("method", "path"))

    def methods_of(self, owner: str) -> Dict[str, Function]:
        return {f.name: f for f in self.functions if f.owner == owner}

    def self_calls(self, fn: Function) -> List[Call]:
        """`self.m(..)` calls in `fn` (not in a nested function)."""
        return [c for c in self.calls_in(fn.node) if c.kind == "method" and c.receiver is not None
                and c.receiver.type == "self" and self.function_of(c.node) is fn]

    def self_calls_between(self, start: int, end: int) -> List[Call]:
        """`self.m(..)` calls within bytes [start, end)."""
        lo, hi = bisect.bisect_left(self._call_starts, start), bisect.bisect_left(self._call_starts, end)
        return [c for c in self.calls[lo:hi] if c.kind == "method" and c.receiver is not None
                and c.receiver.type == "self"]

    @functools.cached_property
    def comments(self) -> List[Tuple[int, str]]:
        return [(n.start_point[0] + 1, text(n)) for n in self.nodes["comment"]]

    @functools.cached_property
    def autodiff_aliases(self) -> set:
        """Type aliases of an autodiff backend (`type MyBackend = Autodiff<Wgpu>;`)."""
        out = set()
        for alias in self.nodes["alias"]:
            name, value = alias.child_by_field_name("name"), alias.child_by_field_name("type")
            if name is not None and value is not None and self.profile.autodiff_type + "<" in text(value):
                out.add(text(name))
        return out

    def branch_condition(self, branch):
        """The condition of an if/match (the scrutinee of a match)."""
        return branch.child_by_field_name("condition") or branch.child_by_field_name("value")

    def position(self, node) -> Tuple[int, int, int, int]:
        """1-based (line, column, end_line, end_column) in characters."""
        s, e = node.start_point, node.end_point
        return s[0] + 1, self.columns.column(s), e[0] + 1, self.columns.column(e)

    # --- forward paths, loops, branches -----------------------------------------------------------
    def forward_reach(self, owner: str) -> List[Function]:
        """The `forward*` methods of `owner` and the methods they call through `self.m(..)`,
        not going past a method that asks for the mode (what it calls runs under its decision)."""
        methods = self.methods_of(owner)
        todo = [m for name, m in methods.items() if name.startswith("forward")]
        seen = {id(m) for m in todo}
        out = []
        while todo:
            fn = todo.pop()
            out.append(fn)
            if self.has_mode_query(fn.node):
                continue
            for call in self.self_calls(fn):
                target = methods.get(call.name)
                if target is not None and id(target) not in seen:
                    seen.add(id(target))
                    todo.append(target)
        return out

    def branches_on(self, fn: Function, names) -> bool:
        """Does an if/match condition in `fn` mention one of `names` (`self.training`)?"""
        for branch in self.nodes["branch"]:
            if inside(branch, fn.node):
                cond = self.branch_condition(branch)
                if cond is not None and _mentions(cond, names):
                    return True
        return False

    def enclosing_loop(self, node):
        """The innermost loop body (`for`/`while`/`loop`) or per-item iterator closure around
        `node` within its function, or None."""
        child, parent = node, node.parent
        while parent is not None and parent.type != "function_item":
            if parent.type in ("for_expression", "while_expression", "loop_expression"):
                body = parent.child_by_field_name("body")
                if body is not None and inside(child, body):
                    return parent
            if parent.type == "closure_expression" and self._is_adaptor_closure(parent):
                return parent
            child, parent = parent, parent.parent
        return None

    def _is_adaptor_closure(self, closure) -> bool:
        args = closure.parent
        call = args.parent if args is not None and args.type == "arguments" else None
        return call is not None and call.type == "call_expression" and \
            call_shape(call)[1] in self.profile.iterator_adaptors

    def bound_in(self, loop) -> set:
        """Names a loop (re)binds per iteration: its pattern or closure parameters, and every
        `let`, assignment and compound assignment inside it."""
        from modelint.rust.syntax import identifiers, walk

        out = set()
        for key in ("pattern", "parameters"):
            part = loop.child_by_field_name(key)
            if part is not None:
                out |= identifiers(part)
        for n in walk(loop):
            if n.type == "let_declaration":
                pat = n.child_by_field_name("pattern")
                out |= identifiers(pat) if pat is not None else set()
            elif n.type in ("assignment_expression", "compound_assignment_expr"):
                left = n.child_by_field_name("left")
                out |= identifiers(left) if left is not None else set()
        return out


def _mentions(node, names) -> bool:
    from modelint.rust.syntax import walk

    return any(n.type in ("identifier", "field_identifier") and text(n) in names for n in walk(node))

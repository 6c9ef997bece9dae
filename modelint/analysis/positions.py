"""Node positions, as LibCST's `PositionProvider` / `WhitespaceInclusivePositionProvider` give them,
several times cheaper.

LibCST computes positions by generating the module's code with a codegen state that records, for
every node, a `CodeRange` of two `CodePosition`s (frozen dataclasses, built for all ~10^5 nodes of
a large file) in a dict keyed by the node (whose `__hash__` is a Python-level method), splitting
every token with a regular expression to count its newlines, and entering a generator-based
context manager for every syntactic position. The same codegen here keeps plain tuples keyed by
`id(node)`, counts newlines only in tokens that contain one, uses a small class as the context
manager, and builds a `CodeRange` only for the nodes that are looked up.

The results are identical to LibCST's (same codegen, same rules for which range wins; tested
against LibCST over real code in `tests/test_positions.py`).
"""

from __future__ import annotations

import re
from typing import Dict, Iterator, List, Mapping, Optional, Tuple

import libcst as cst
from libcst.metadata import CodePosition, CodeRange

import modelint.cstcompat as cstcompat  # LibCST's private codegen state; None there: use LibCST's providers

_NEWLINE = re.compile(r"\r\n?|\n")

_Raw = Tuple[int, int, int, int]  # start line, start column, end line, end column


class _Syntactic:
    """Context manager for `record_syntactic_position` (LibCST's is a generator per call)."""

    __slots__ = ("state", "node", "start_node", "end_node", "line", "column")

    def __init__(self, state: "_PositionState", node: cst.CSTNode, start_node: Optional[cst.CSTNode],
                 end_node: Optional[cst.CSTNode]):
        self.state = state
        self.node = node
        self.start_node = start_node
        self.end_node = end_node

    def __enter__(self) -> None:
        self.line = self.state.line
        self.column = self.state.column

    def __exit__(self, *exc: object) -> None:
        state = self.state
        computed = state.computed
        if self.start_node is not None:
            s = computed[id(self.start_node)]
            start_line, start_column = s[0], s[1]
        else:
            start_line, start_column = self.line, self.column
        if self.end_node is not None:
            e = computed[id(self.end_node)]
            end_line, end_column = e[2], e[3]
        else:
            end_line, end_column = state.line, state.column
        computed[id(self.node)] = (start_line, start_column, end_line, end_column)


class _NoSyntactic:
    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


_NO_SYNTACTIC = _NoSyntactic()


class _PositionState(cstcompat.CodegenState or object):  # type: ignore[misc]
    """Codegen state that tracks the position of every node (as LibCST's position states do)."""

    def __init__(self, module: cst.Module, syntactic: bool):
        super().__init__(default_indent=module.default_indent, default_newline=module.default_newline)
        self.line = 1  # one-indexed
        self.column = 0  # zero-indexed
        self.starts: List[Tuple[int, int]] = []
        self.computed: Dict[int, _Raw] = {}
        self.syntactic = syntactic

    def add_indent_tokens(self) -> None:
        for token in self.indent_tokens:
            self.add_token(token)

    def add_token(self, value: str) -> None:
        self.tokens.append(value)  # Module's codegen looks at them (empty file, trailing newline)
        if "\n" in value or "\r" in value:
            segments = _NEWLINE.split(value)
            self.line += len(segments) - 1
            self.column = len(segments[-1])
        else:
            self.column += len(value)

    def before_codegen(self, node: cst.CSTNode) -> None:
        self.starts.append((self.line, self.column))

    def after_codegen(self, node: cst.CSTNode) -> None:
        line, column = self.starts.pop()
        key = id(node)
        if key not in self.computed:  # a syntactic position recorded inside wins
            self.computed[key] = (line, column, self.line, self.column)

    def record_syntactic_position(self, node: cst.CSTNode, *, start_node: Optional[cst.CSTNode] = None,
                                  end_node: Optional[cst.CSTNode] = None):  # type: ignore[override]
        if not self.syntactic:
            return _NO_SYNTACTIC
        return _Syntactic(self, node, start_node, end_node)


class Positions(Mapping[cst.CSTNode, CodeRange]):
    """node -> CodeRange, for the nodes of one module (built on lookup)."""

    def __init__(self, module: cst.Module, computed: Dict[int, _Raw]):
        self._module = module  # keeps the nodes, so their ids stay valid
        self._computed = computed

    def __getitem__(self, node: cst.CSTNode) -> CodeRange:
        raw = self._computed[id(node)]
        return CodeRange(CodePosition(raw[0], raw[1]), CodePosition(raw[2], raw[3]))

    def __contains__(self, node: object) -> bool:
        return id(node) in self._computed

    def __iter__(self) -> Iterator[cst.CSTNode]:
        raise TypeError("Positions cannot be iterated (it is keyed by node identity)")

    def __len__(self) -> int:
        return len(self._computed)


def _positions(module: cst.Module, syntactic: bool):
    if cstcompat.CodegenState is None:
        from libcst.metadata import MetadataWrapper, PositionProvider, WhitespaceInclusivePositionProvider

        provider = PositionProvider if syntactic else WhitespaceInclusivePositionProvider
        return MetadataWrapper(module, unsafe_skip_copy=True).resolve(provider)
    state = _PositionState(module, syntactic)
    cstcompat.codegen(module, state)
    return Positions(module, state.computed)


def syntactic_positions(module: cst.Module) -> Positions:
    """What `MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)` gives."""
    return _positions(module, True)


def whitespace_inclusive_positions(module: cst.Module) -> Positions:
    """What `...resolve(WhitespaceInclusivePositionProvider)` gives."""
    return _positions(module, False)

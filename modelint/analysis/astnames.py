"""Dotted names of standard-library `ast` nodes (the index pass and the mode summaries read code
with `ast`, never with LibCST: see `analysis/index.py`)."""

from __future__ import annotations

import ast
from typing import Optional


def dotted_ast(node: ast.AST) -> Optional[str]:
    """`torch.nn.Module` -> that string; `Generic[T]` -> `Generic`; None for calls and the rest."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = dotted_ast(node.value)
        return f"{inner}.{node.attr}" if inner else None
    if isinstance(node, ast.Subscript):  # Generic[T], nn.Module subclasses with typing
        return dotted_ast(node.value)
    return None  # with_metaclass(Meta, Base) and friends: not resolved

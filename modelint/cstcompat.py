"""The one place that touches LibCST's private API, each use with its fallback.

LibCST renders code through `node._codegen(state)` with a `CodegenState` from
`libcst._nodes.internal`; neither is public. We use them twice: positions (a cheaper copy of
LibCST's position providers, `analysis/positions.py`) and rendering a replacement node at the
indentation of the node it replaces (`fixes.code_in_place`). If a LibCST release moves them,
`CodegenState` is None here and both callers take their public-API fallback (LibCST's own
providers; only single-line replacement text), so modelint keeps working, a little slower and with
fewer multi-line fixes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Sequence

try:
    from libcst._nodes.internal import CodegenState
except ImportError:  # pragma: no cover - depends on the LibCST release
    CodegenState = None  # type: ignore[assignment,misc]

if TYPE_CHECKING:
    import libcst as cst


def codegen(node: "cst.CSTNode", state: object) -> None:
    """Generate `node`'s code into `state` (a `CodegenState` or subclass)."""
    node._codegen(state)  # type: ignore[attr-defined]


def code_at_indent(module: "cst.Module", node: "cst.CSTNode", indent_tokens: Sequence[str]) -> Optional[str]:
    """`node`'s code as it reads inside blocks indented by `indent_tokens` (continuation lines of a
    multi-line expression follow the enclosing indentation; `Module.code_for_node` renders at
    indentation zero). Without the private API only single-line code is certain: None otherwise."""
    if CodegenState is None:
        text = module.code_for_node(node)
        return None if "\n" in text or "\r" in text else text
    state = CodegenState(default_indent=module.default_indent, default_newline=module.default_newline,
                         indent_tokens=list(indent_tokens))
    codegen(node, state)
    return "".join(state.tokens)

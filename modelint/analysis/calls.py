"""Reading call arguments the way Python binds them."""

from __future__ import annotations

import ast
from typing import List, Optional

import libcst as cst


def dotted(expr: cst.CSTNode) -> Optional[str]:
    """`torch.nn.functional.dropout` -> that string; None for anything but a Name/Attribute chain."""
    parts: List[str] = []
    while isinstance(expr, cst.Attribute):
        parts.append(expr.attr.value)
        expr = expr.value
    if not isinstance(expr, cst.Name):
        return None
    parts.append(expr.value)
    return ".".join(reversed(parts))


def callee_name(call: cst.Call) -> Optional[str]:
    """The last name of what is called: `dropout` for `F.dropout(...)` and `dropout(...)`; None for
    `f()()` and other computed callees. A cheap first filter before `ctx.resolve`."""
    return terminal_name(call.func)


def terminal_name(expr: cst.CSTNode) -> Optional[str]:
    """The last name of a dotted expression: `eval_mode` for `utils.eval_mode` and `eval_mode`;
    None for anything else (a call, a subscript)."""
    if isinstance(expr, cst.Attribute):
        return expr.attr.value
    if isinstance(expr, cst.Name):
        return expr.value
    return None


def has_star_args(call: cst.Call) -> bool:
    """`f(*args)` / `f(**kwargs)`: any parameter may be passed invisibly."""
    return any(a.star for a in call.args)


def get_arg(call: cst.Call, keyword: str, position: Optional[int] = None) -> Optional[cst.Arg]:
    """The argument bound to parameter `keyword` (given by keyword or at 0-based `position`)."""
    positional = 0
    for arg in call.args:
        if arg.star:
            continue
        if arg.keyword is not None:
            if arg.keyword.value == keyword:
                return arg
        else:
            if position is not None and positional == position:
                return arg
            positional += 1
    return None


def literal_value(expr: cst.CSTNode):
    """Python value of a literal number / True / False / None (also `-1`, `0.`); else a sentinel."""
    if isinstance(expr, (cst.Integer, cst.Float)):
        return ast.literal_eval(expr.value)
    if isinstance(expr, cst.Name) and expr.value in ("True", "False", "None"):
        return {"True": True, "False": False, "None": None}[expr.value]
    if isinstance(expr, cst.UnaryOperation) and isinstance(expr.operator, cst.Minus):
        inner = literal_value(expr.expression)
        if isinstance(inner, (int, float)) and not isinstance(inner, bool):
            return -inner
    return NOT_LITERAL


class _NotLiteral:
    def __repr__(self) -> str:
        return "NOT_LITERAL"


NOT_LITERAL = _NotLiteral()


def is_literal_zero(expr: cst.CSTNode) -> bool:
    v = literal_value(expr)
    return not isinstance(v, bool) and isinstance(v, (int, float)) and v == 0


def is_literal_bool(expr: cst.CSTNode, value: bool) -> bool:
    return literal_value(expr) is value

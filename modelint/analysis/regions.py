"""Which mode a piece of code runs in: "train" (only when training), "eval" (only in eval mode) or None
(both, or unknown). Used by MDL106.

A test's polarity is found by evaluating it in three-valued logic with the mode set to training and
then to eval, every other operand unknown: `not self.training and p > 0` is false whenever training,
so its `if` body is eval-only (its `else` runs in both modes). The evaluation is
`mode.value_under_mode` (`self.training`, a `training` parameter, `is_eval`/`deterministic` with the
opposite polarity, `== True`, single-assignment mode-derived locals); anything else is unknown, so the
answer errs towards None.

`walk_regions(root, visit)` calls `visit(node, region)` for every node below root, propagating the
region through `if`/`elif`/`else`, conditional expressions, `and`/`or` and early exits
(`if self.training: return x` makes the rest of the block eval-only).
"""

from __future__ import annotations

from typing import Callable, Optional

import libcst as cst

from modelint.analysis.mode import _block_exits, value_under_mode
from modelint.analysis.walk import iter_children


def _ev(expr: cst.CSTNode, training: bool, facts=None) -> Optional[bool]:
    if facts is None:
        return value_under_mode(expr, training)
    return value_under_mode(expr, training, facts.mode_locals, facts.assigns)


def when_true(test: cst.CSTNode, facts=None) -> Optional[str]:
    """The mode in which `test` can be true, when only one can: "eval", "train" or None."""
    if _ev(test, True, facts) is False:
        return "eval"
    if _ev(test, False, facts) is False:
        return "train"
    return None


def when_false(test: cst.CSTNode, facts=None) -> Optional[str]:
    """The mode in which `test` can be false, when only one can."""
    if _ev(test, True, facts) is True:
        return "eval"
    if _ev(test, False, facts) is True:
        return "train"
    return None


def walk_regions(
    root: cst.CSTNode,
    visit: Callable[[cst.CSTNode, Optional[str]], None],
    region: Optional[str] = None,
    facts=None,
) -> None:
    """`facts` (the function's `FunctionFacts`) lets mode-derived locals count as mode reads."""
    stack = [(root, region)]
    while stack:
        node, reg = stack.pop()
        visit(node, reg)
        todo = []
        if isinstance(node, (cst.If, cst.IfExp)):
            t, f = when_true(node.test, facts), when_false(node.test, facts)
            todo.append((node.test, reg))
            todo.append((node.body, reg or t))
            if node.orelse is not None:
                todo.append((node.orelse, reg or f))
        elif isinstance(node, cst.BooleanOperation):
            todo.append((node.left, reg))
            sub = when_true(node.left, facts) if isinstance(node.operator, cst.And) else when_false(node.left, facts)
            todo.append((node.right, reg or sub))
        elif isinstance(node, (cst.IndentedBlock, cst.Module)):
            cur = reg
            for stmt in node.body:
                todo.append((stmt, cur))
                if cur is None:
                    if isinstance(stmt, cst.If) and stmt.orelse is None and _block_exits(stmt.body):
                        cur = when_false(stmt.test, facts)
                    elif isinstance(stmt, cst.SimpleStatementLine):
                        for s in stmt.body:
                            if isinstance(s, cst.Assert):
                                cur = cur or when_true(s.test, facts)
        else:
            todo.extend((c, reg) for c in iter_children(node))
        stack.extend(reversed(todo))


def region_of(chain, facts=None) -> Optional[str]:
    """The region of chain[-1] (chain: ancestors from outside the function down to the node), looking
    only at the enclosing function: the innermost one-mode `if` arm, `and`/`or` operand or early exit."""
    for i in range(len(chain) - 1, 0, -1):
        parent, child = chain[i - 1], chain[i]
        if isinstance(parent, (cst.FunctionDef, cst.Lambda)):
            return None
        reg = None
        if isinstance(parent, (cst.If, cst.IfExp)):
            if child is parent.body:
                reg = when_true(parent.test, facts)
            elif child is parent.orelse:
                reg = when_false(parent.test, facts)
        elif isinstance(parent, cst.BooleanOperation) and child is parent.right:
            reg = when_true(parent.left, facts) if isinstance(parent.operator, cst.And) else when_false(parent.left, facts)
        elif isinstance(parent, (cst.IndentedBlock, cst.Module)):
            for stmt in parent.body:
                if stmt is child:
                    break
                if isinstance(stmt, cst.If) and stmt.orelse is None and _block_exits(stmt.body):
                    reg = when_false(stmt.test, facts)
                elif isinstance(stmt, cst.SimpleStatementLine):
                    for s in stmt.body:
                        if isinstance(s, cst.Assert):
                            reg = reg or when_true(s.test, facts)
                if reg:
                    break
        if reg:
            return reg
    return None

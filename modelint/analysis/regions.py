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

from modelint.analysis.guards import arm_test, exit_tests, guard_steps
from modelint.analysis.mode import value_under_mode
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


def when(test: cst.CSTNode, value: bool, facts=None) -> Optional[str]:
    """The mode in which `test` can have `value`, when only one can."""
    return when_true(test, facts) if value else when_false(test, facts)


# The children a region walk follows, per node type whose arms can be one-mode.
_ARMS = {cst.If: ("test", "body", "orelse"), cst.IfExp: ("test", "body", "orelse"), cst.BooleanOperation: ("left", "right")}


def walk_regions(
    root: cst.CSTNode,
    visit: Callable[[cst.CSTNode, Optional[str]], None],
    region: Optional[str] = None,
    facts=None,
) -> None:
    """`facts` (the function's `FunctionFacts`) lets mode-derived locals count as mode reads. The
    arms and early exits followed are `guards.arm_test` / `guards.exit_tests` (`while` tests are not
    mode regions: a loop on the mode is not a one-mode block)."""
    stack = [(root, region)]
    while stack:
        node, reg = stack.pop()
        visit(node, reg)
        todo = []
        parts = _ARMS.get(type(node))
        if parts is not None:
            for child in (getattr(node, f) for f in parts):
                if child is not None:
                    arm = reg is None and arm_test(node, child, loops=False)
                    todo.append((child, when(arm[0], arm[1], facts) if arm else reg))
        elif isinstance(node, (cst.IndentedBlock, cst.Module)):
            cur = reg
            for stmt in node.body:
                todo.append((stmt, cur))
                for test, value in exit_tests(stmt):
                    cur = cur or when(test, value, facts)
        else:
            todo.extend((c, reg) for c in iter_children(node))
        stack.extend(reversed(todo))


def region_of(chain, facts=None) -> Optional[str]:
    """The region of chain[-1] (chain: ancestors from outside the function down to the node), looking
    only at the enclosing function: the innermost one-mode `if` arm, `and`/`or` operand or early exit
    (`guards.guard_steps`, without `while`)."""
    for _, test, value in guard_steps(chain, loops=False):
        reg = when(test, value, facts)
        if reg:
            return reg
    return None

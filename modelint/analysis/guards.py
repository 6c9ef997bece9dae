"""Where a node sits under a test: the one definition of "guarded" that every guard question uses.

A node is under a test `T` (inside its function; guards do not cross function boundaries) when it is
- in an arm of an `if`/`elif`/`else`, a conditional expression or a `while` whose test is `T`
  (true in the body, false in the `else`);
- the right operand of `and` (T true) / `or` (T false) whose left operand is `T`;
- after an early exit in the same block: `if T: ...` whose body ends in `return`, `raise`, `continue`
  or `break` (T false from there on, whether or not the `if` has an `else`: the statements after it
  run only when T was false), or after `assert T` (T true).

`guard_steps(chain)` lists those tests from the node outwards; `guard_in_chain` asks "is any of them
a test I care about" (mode checks: `analysis.mode`; sampling switches: `analysis.sampling`) and
`analysis.regions` evaluates their polarity. The early-exit rule is `exit_tests`.
"""

from __future__ import annotations

from typing import Callable, Iterator, Optional, Sequence, Tuple

import libcst as cst

FUNCTION_TYPES = (cst.FunctionDef, cst.Lambda)
_JUMP_TYPES = (cst.Return, cst.Raise, cst.Continue, cst.Break)


def jumps_out(block: cst.BaseSuite) -> bool:
    """Does the block's last statement leave it (`return`, `raise`, `continue`, `break`)? Shallow on
    purpose: `if x: return y` is the early-exit idiom. (`structure.always_exits` is the deep question
    "does every path end in return/raise", for `train()` overrides.)"""
    if isinstance(block, cst.SimpleStatementSuite):
        return any(isinstance(s, _JUMP_TYPES) for s in block.body)
    if isinstance(block, cst.IndentedBlock) and block.body:
        last = block.body[-1]
        if isinstance(last, cst.SimpleStatementLine):
            return any(isinstance(s, _JUMP_TYPES) for s in last.body)
    return False


def exit_tests(stmt: cst.CSTNode) -> Iterator[Tuple[cst.BaseExpression, bool]]:
    """The early-exit rule: `(test, value of test in the statements after stmt)` for
    `if test: <jumps out>` (False) and each `assert test` on the line (True)."""
    if isinstance(stmt, cst.If):
        if jumps_out(stmt.body):
            yield stmt.test, False
    elif isinstance(stmt, cst.SimpleStatementLine):
        for s in stmt.body:
            if isinstance(s, cst.Assert):
                yield s.test, True


def arm_test(parent: cst.CSTNode, child: cst.CSTNode, loops: bool = True) -> Optional[Tuple[cst.BaseExpression, bool]]:
    """`(test, its value in child)` when `child` is an arm of `parent` (an if, conditional expression,
    `while` when `loops`, or `and`/`or`), else None."""
    tp = type(parent)
    if tp is cst.If or tp is cst.IfExp or (loops and tp is cst.While):
        if child is parent.test:
            return None
        return parent.test, child is not parent.orelse
    if tp is cst.BooleanOperation and child is parent.right:
        return parent.left, isinstance(parent.operator, cst.And)
    return None


def guard_steps(chain: Sequence[cst.CSTNode], loops: bool = True) -> Iterator[Tuple[cst.CSTNode, cst.BaseExpression, bool]]:
    """`(guard, test, value of test at chain[-1])` for every test chain[-1] is under, innermost
    first (in a block: earlier statements first). `chain` runs from an outer node down to the node;
    `loops=False` leaves `while` tests out."""
    for i in range(len(chain) - 1, 0, -1):
        parent, child = chain[i - 1], chain[i]
        if isinstance(parent, FUNCTION_TYPES):
            return
        if isinstance(parent, (cst.IndentedBlock, cst.Module)):
            for stmt in parent.body:
                if stmt is child:
                    break
                for test, value in exit_tests(stmt):
                    yield stmt, test, value
            continue
        arm = arm_test(parent, child, loops)
        if arm is not None:
            yield parent, arm[0], arm[1]


def guard_in_chain(chain: Sequence[cst.CSTNode], test: Callable[[cst.CSTNode], bool]) -> Optional[cst.CSTNode]:
    """The innermost guard (an If/IfExp/While, BooleanOperation or early-exit/assert statement) that
    puts chain[-1] under a test `test` accepts, or None."""
    for guard, expr, _ in guard_steps(chain):
        if test(expr):
            return guard
    return None

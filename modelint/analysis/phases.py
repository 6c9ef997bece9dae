"""Phase loops: `if phase == "train": model.train() else: model.eval()`, then a step under the same test.

The PyTorch transfer-learning tutorial's loop (and its many copies) runs one body for both phases:

    for phase in ["train", "val"]:
        if phase == "train":
            model.train()
        else:
            model.eval()
        for x, y in loaders[phase]:
            ...
            if phase == "train":
                loss.backward()
                optimizer.step()

A path-insensitive flow sees the `eval()` of the "val" arm reach the step; it cannot run there.
`switched_back_in_iteration(key, eval_node, step_node, loop)` says so when four things hold:

1. the eval is one arm of an `if` (not an `elif` chain) whose other arm puts the same key back in
   training mode at its top level (`key.train()`, `key.train(True)`);
2. that `if` is inside `loop` and is a statement of a block that also holds the step, before it: every
   iteration that reaches the step has run the `if` first;
3. the step runs only under tests (enclosing arms and earlier early exits inside that block,
   `analysis.guards.guard_steps`) that contradict the eval arm's test (`analysis.conditions`);
4. on a name the loop's body never rebinds (`phase` is bound by the loop, not in it).

Then in an iteration that reaches the step, the `if` took its training arm: whatever an earlier
iteration left in eval was switched back. A one-armed `if phase == "val": model.eval()` does not
count: the next "train" iteration would train in eval.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import libcst as cst

from modelint.analysis.conditions import atoms_cst, contradicts
from modelint.analysis.context import dotted
from modelint.analysis.guards import guard_steps
from modelint.analysis.modeflow import train_flag
from modelint.analysis.walk import descendants, preorder_and_parents


def switched_back_in_iteration(key: str, eval_node: cst.CSTNode, step_node: cst.CSTNode, loop: cst.CSTNode) -> bool:
    """See the module docstring."""
    parents = preorder_and_parents(loop)[1]
    site_chain = _chain(parents, loop, eval_node)
    found = _switch_arm(site_chain, key)
    if found is None:
        return False
    i, arm = found
    branch, block = site_chain[i], site_chain[i - 1]
    step_chain = _chain(parents, loop, step_node)
    at = next((j for j, n in enumerate(step_chain) if n is block), None)
    if at is None or at + 1 >= len(step_chain) or not _after(block, branch, step_chain[at + 1]):
        return False
    step_atoms = tuple(a for _, test, value in guard_steps(step_chain[at:]) for a in atoms_cst(test, value))
    site_atoms = atoms_cst(branch.test, arm)
    fixed = [a[0] for a in site_atoms if not _rebinds(loop, a[0])]
    return contradicts(site_atoms, step_atoms, fixed)


def _chain(parents, loop: cst.CSTNode, node: cst.CSTNode) -> List[cst.CSTNode]:
    """`loop` down to `node` (just `[node]` when it is not inside `loop`)."""
    out = [node]
    while out[-1] is not loop and id(out[-1]) in parents:
        out.append(parents[id(out[-1])])
    return out[::-1]


def _switch_arm(chain: List[cst.CSTNode], key: str) -> Optional[Tuple[int, bool]]:
    """(index in `chain` of the innermost `if` the eval is an arm of, True for its body), when the
    other arm switches `key` back to training mode."""
    for i in range(len(chain) - 2, 0, -1):
        node, child = chain[i], chain[i + 1]
        if isinstance(node, (cst.FunctionDef, cst.Lambda)):
            return None
        if not isinstance(node, cst.If):
            continue
        if not isinstance(node.orelse, cst.Else) or not isinstance(chain[i - 1], (cst.IndentedBlock, cst.Module)):
            return None  # an `elif` chain, or an `if` without an `else`
        if child is not node.body and child is not node.orelse:
            return None  # the eval is in the test
        arm = child is node.body
        other = node.orelse.body if arm else node.body
        return (i, arm) if _trains(other, key) else None
    return None


def _trains(block: cst.BaseSuite, key: str) -> bool:
    """A top-level statement of `block` is `key.train()` / `key.train(True)`."""
    for stmt in getattr(block, "body", ()):
        if not isinstance(stmt, cst.SimpleStatementLine):
            continue
        for small in stmt.body:
            call = small.value if isinstance(small, cst.Expr) else None
            if (isinstance(call, cst.Call) and isinstance(call.func, cst.Attribute) and call.func.attr.value == "train"
                    and dotted(call.func.value) == key and train_flag(call) is True):
                return True
    return False


def _after(block: cst.CSTNode, branch: cst.If, stmt: cst.CSTNode) -> bool:
    """`stmt` is a statement of `block` after `branch`."""
    body = list(getattr(block, "body", ()))
    ids = [id(s) for s in body]
    return id(branch) in ids and id(stmt) in ids and ids.index(id(stmt)) > ids.index(id(branch))


def _rebinds(loop: cst.CSTNode, name: str) -> bool:
    """Does the body of `loop` bind `name` (assignment, loop target, `with ... as`, walrus)?"""
    for node in descendants(loop.body):
        targets = ()
        if isinstance(node, cst.AssignTarget):
            targets = (node.target,)
        elif isinstance(node, (cst.AugAssign, cst.AnnAssign, cst.For, cst.CompFor, cst.NamedExpr)):
            targets = (node.target,)
        elif isinstance(node, cst.AsName):
            targets = (node.name,)
        if any(name in _bound_names(t) for t in targets):
            return True
    return False


def _bound_names(target: cst.CSTNode) -> set:
    """The names (or attribute keys) an assignment target binds: `phase`, `a, (b, *c)`, `self.mode`;
    not the names read inside it (`stats[phase]["loss"] = ...` binds no `phase`: set 11's ppnp)."""
    if isinstance(target, (cst.Tuple, cst.List)):
        return set().union(*(_bound_names(e.value) for e in target.elements))
    if isinstance(target, cst.StarredElement):
        return _bound_names(target.value)
    if isinstance(target, (cst.Name, cst.Attribute)):
        key = dotted(target)
        return {key} if key else set()
    return set()

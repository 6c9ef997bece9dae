"""What an `if` test says about a name, and whether a call's literal argument makes it false.

A routine that runs its training step only under a test of one of its parameters (`def
run_epoch(loader, train=True): ... if train: loss.backward()`, `if mode == "train": opt.step()`,
`if optimizer is not None: optimizer.step()`) does not train when it is called with the value that
makes the test false (`run_epoch(val_loader, train=False)`, `loop(model, "val", opt=None)`). The
flow analyses keep, for each training step, its *guard*: the atoms the enclosing tests fix there,
each an `Atom` (key, op, const, holds):

- `("train", "truthy", None, True)`: `if train:` (body) / `if not train:` (`else`);
- `("mode", "==", "train", False)`: `if mode != "train":` (body), `if mode == "train":` (`else`);
- `("opt", "is None", None, False)`: `if opt is not None:` (body);
- `("mode", "in", ("train", "train+log"), True)`: `if mode == "train" or mode == "train+log":` (body).

`and` in the body and `or` in the `else` fix each side (`flag_tests` of `modeflow` reads the same
atoms); anything else fixes nothing. Two readers of code share this module: `modeflow` (LibCST,
`atoms_cst`) and the project summaries of `modemodel` (standard-library `ast`, `atoms_ast`, whose
atoms travel as JSON lists). `falsified` decides a guard against the literal values a call binds
to the callee's parameters; `contradicts` says two guards of one scope cannot hold together (an
eval made under `if not train:` and a step under `if train:` never meet when `train` is not rebound).
"""

from __future__ import annotations

import ast
from typing import Dict, Iterable, Optional, Sequence, Tuple

import libcst as cst

from modelint.analysis.astnames import dotted_ast
from modelint.analysis.calls import NOT_LITERAL, dotted, literal_value

Atom = Tuple[str, str, object, bool]
Guard = Tuple[Atom, ...]
_CONSTANT_NAMES = ("True", "False", "None")


def constant_cst(expr: cst.CSTNode):
    """A literal number / bool / None / plain string, or NOT_LITERAL."""
    if isinstance(expr, cst.SimpleString):
        try:
            value = ast.literal_eval(expr.value)
        except (ValueError, SyntaxError):
            return NOT_LITERAL
        return value if isinstance(value, str) else NOT_LITERAL
    return literal_value(expr)


def constant_ast(expr: ast.AST):
    if isinstance(expr, ast.Constant) and isinstance(expr.value, (str, bool, int, float, type(None))):
        return expr.value
    return NOT_LITERAL


def _compare(key: Optional[str], const, op: str, negated: bool, holds: bool) -> Tuple[Atom, ...]:
    """One atom for `key OP const` (`==`/`!=`, `is`/`is not` None) in the arm where it is `holds`."""
    if key is None or key in _CONSTANT_NAMES or const is NOT_LITERAL:
        return ()
    if op == "is" and const is not None:
        return ()
    return ((key, "is None" if op == "is" else "==", const, holds != negated),)


def atoms_cst(test: cst.CSTNode, arm: bool) -> Guard:
    """The atoms a LibCST `if` test fixes in one arm (True: the body)."""
    wanted = True
    while isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not):
        test, wanted = test.expression, not wanted
    holds = wanted == arm
    if isinstance(test, cst.BooleanOperation):
        joins = cst.And if holds else cst.Or  # (`not (a or b)` fixes both in the body)
        if not isinstance(test.operator, joins):
            return _one_of(atoms_cst(test.left, holds) + atoms_cst(test.right, holds), 2)
        return atoms_cst(test.left, holds) + atoms_cst(test.right, holds)
    if isinstance(test, cst.Comparison) and len(test.comparisons) == 1:
        target = test.comparisons[0]
        op = target.operator
        kinds = {cst.Equal: ("==", False), cst.NotEqual: ("==", True), cst.Is: ("is", False), cst.IsNot: ("is", True)}
        kind = kinds.get(type(op))
        if kind is None:
            return ()
        left, right = test.left, target.comparator
        if constant_cst(left) is not NOT_LITERAL:
            left, right = right, left
        return _compare(dotted(left), constant_cst(right), kind[0], kind[1], holds)
    key = dotted(test)
    if key is None or key in _CONSTANT_NAMES:
        return ()
    return ((key, "truthy", None, holds),)


def atoms_ast(test: ast.AST, arm: bool, derived: Optional[Dict[str, Guard]] = None) -> Guard:
    """The same for a standard-library `ast` test; `derived` maps a local bound once to a compare
    (`is_train = loop_type == "train"`) to the atoms it stands for when true."""
    wanted = True
    while isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        test, wanted = test.operand, not wanted
    holds = wanted == arm
    if isinstance(test, ast.BoolOp):
        if not isinstance(test.op, ast.And if holds else ast.Or):
            return _one_of(tuple(a for v in test.values for a in atoms_ast(v, holds, derived)), len(test.values))
        return tuple(a for v in test.values for a in atoms_ast(v, holds, derived))
    if isinstance(test, ast.Compare) and len(test.ops) == 1:
        kinds = {ast.Eq: ("==", False), ast.NotEq: ("==", True), ast.Is: ("is", False), ast.IsNot: ("is", True)}
        kind = kinds.get(type(test.ops[0]))
        if kind is None:
            return ()
        left, right = test.left, test.comparators[0]
        if constant_ast(left) is not NOT_LITERAL:
            left, right = right, left
        return _compare(dotted_ast(left), constant_ast(right), kind[0], kind[1], holds)
    key = dotted_ast(test) if isinstance(test, (ast.Name, ast.Attribute)) else None
    if key is None or key in _CONSTANT_NAMES:
        return ()
    if derived and key in derived and len(derived[key]) == 1:
        k, op, const, h = derived[key][0]
        return ((k, op, const, h == holds),)
    return ((key, "truthy", None, holds),)


def _one_of(sides: Guard, count: int) -> Guard:
    """`mode == "train" or mode == "train+log"` where it holds: one atom `("mode", "in", ("train",
    "train+log"), True)`, when each of the `count` sides is such a compare of the same key (the
    annotated-transformer's `run_epoch(..., mode="eval")` runs no backward); else nothing."""
    if len(sides) != count or not all(op == "==" and holds for _, op, _, holds in sides) or len({k for k, *_ in sides}) != 1:
        return ()
    return ((sides[0][0], "in", tuple(const for _, _, const, _ in sides), True),)


def _value_holds(op: str, const, value) -> bool:
    if op == "truthy":
        return bool(value)
    if op == "is None":
        return value is None
    if op == "in":
        return value in const
    return value == const


def falsified(guard: Iterable[Sequence], values: Dict[str, object]) -> bool:
    """Some atom of `guard` is false for the literal `values` bound to its keys (a key absent from
    `values` is unknown and falsifies nothing)."""
    for key, op, const, holds in guard:
        if key in values and _value_holds(op, const, values[key]) != holds:
            return True
    return False


def contradicts(a: Iterable[Sequence], b: Iterable[Sequence], fixed: Iterable[str]) -> bool:
    """Two guards that cannot hold at once on a key of `fixed` (names nothing rebinds): the same
    atom with opposite values, or `key == c1` and `key == c2` for different constants."""
    keys = set(fixed)
    for ka, opa, ca, ha in a:
        if ka not in keys:
            continue
        for kb, opb, cb, hb in b:
            if ka == kb and ha and hb and {opa, opb} == {"in", "=="}:
                if (cb not in ca) if opa == "in" else (ca not in cb):
                    return True  # `mode in ("train", "train+log")` and `mode == "eval"`
                continue
            if ka != kb or opa != opb:
                continue
            if (ca == cb and ha != hb) or (opa == "==" and ha and hb and ca != cb):
                return True
    return False


def remap(guard: Iterable[Sequence], mapping: Dict[str, Optional[str]]) -> Guard:
    """A callee's guard on its parameters in the caller's names (an atom whose parameter was handed
    a plain name of the caller becomes an atom on that name, and one on an attribute of a parameter,
    `model.training`, an atom on that attribute of whatever the parameter was handed; the others are
    dropped)."""
    out = []
    for key, op, const, holds in guard:
        new = mapping.get(key)
        if new is not None and "." not in new:
            out.append((new, op, const, holds))
            continue
        root, dot, rest = key.partition(".")
        base = mapping.get(root) if dot else None
        if base is not None:  # `model.training` of a parameter handed `self.model`: `self.model.training`
            out.append((f"{base}.{rest}", op, const, holds))
    return tuple(out)

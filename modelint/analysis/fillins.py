"""Default ("fill-in") helpers: `def default(val, d): return val if val is not None else d()`.

MDL104 does not report a draw that only fills in an argument the caller did not pass through such a
helper (`noise = default(noise, lambda: torch.randn_like(x))`). Whether a function is one is judged
here, once, on the standard library's `ast`, for helpers of the checked file (their LibCST node is
printed and re-parsed, `judge_cst`) and for helpers of other checked files (the index fact
`FileFacts.fillins`, from `fillins_from_source`, by text like the rest of the index).

A default helper is a function of (value, fallback, ...) that, followed along its two paths (value set,
value unset), returns exactly the value when it is set without calling the fallback on the way, and
returns something built from the fallback when it is unset. Which arm of a test is "set" is read from
the test's shape (`is not None`, truthiness, `exists(v)` / `is_none(v)`-style names, `not ...`); a test
whose polarity cannot be read counts both arms, so such a helper is not one. Heuristics: only `if` and
conditional expressions are followed (a `return` inside a loop, `with` or `try` makes the verdict "no"),
and only top-level `def`s with a short body are indexed (`MAX_BODY_LINES`: a fill-in helper is a few
lines; a longer function from another file is left to the call's shape, as before the index knew it).
"""

from __future__ import annotations

import ast
import textwrap
from typing import Dict, Iterable, List, Optional, Tuple

import libcst as cst

# Real default helpers are 1-6 lines (`default`, `exists`-based spellings, with a docstring); 12 leaves
# room for comments while keeping the index pass to one small `ast.parse` per short top-level function.
MAX_BODY_LINES = 12

_SET, _UNSET = "set", "unset"
# Name fragments of one-argument predicates, by what a true answer means for the value.
_SET_WORDS = ("exist", "not_none", "notnone", "is_set", "present", "defined", "given", "has_value")
_UNSET_WORDS = ("none", "missing", "undefined", "unset", "empty")


def _polarity(test: ast.expr, value: str) -> Optional[str]:
    """Is `test` true when `value` is set (`_SET`) or when it is unset (`_UNSET`)? None: cannot tell."""
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        inner = _polarity(test.operand, value)
        return None if inner is None else (_UNSET if inner == _SET else _SET)
    if isinstance(test, ast.Name):
        return _SET if test.id == value else None
    if isinstance(test, ast.Compare) and len(test.ops) == 1:
        sides = (test.left, test.comparators[0])
        names = [s for s in sides if isinstance(s, ast.Name) and s.id == value]
        nones = [s for s in sides if isinstance(s, ast.Constant) and s.value is None]
        if names and nones:
            op = test.ops[0]
            if isinstance(op, (ast.IsNot, ast.NotEq)):
                return _SET
            if isinstance(op, (ast.Is, ast.Eq)):
                return _UNSET
        return None
    if isinstance(test, ast.Call) and len(test.args) == 1 and not test.keywords:
        arg, func = test.args[0], test.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        if not (isinstance(arg, ast.Name) and arg.id == value):
            return None
        name = name.lower()
        if any(w in name for w in _SET_WORDS):
            return _SET
        if any(w in name for w in _UNSET_WORDS):
            return _UNSET
    return None


class _Unknown(Exception):
    """A shape the path walk does not follow (a `return` in a loop, `with` or `try`)."""


def _arms(test: ast.expr, value: str, state: str, body, orelse) -> list:
    p = _polarity(test, value)
    if p is None:
        return [body, orelse]
    return [body] if p == state else [orelse]


_BLOCKS = tuple(getattr(ast, n) for n in ("For", "AsyncFor", "While", "With", "AsyncWith", "Try", "TryStar", "Match")
                if hasattr(ast, n))  # statements that hold statements (`if` aside)


def _walk(stmts: List[ast.stmt], value: str, state: str, returns: list, evaluated: list) -> bool:
    """Follow `stmts` on the path where `value` is `state`: append what is returned and what is
    evaluated on the way; True when every path ends (return/raise)."""
    for stmt in stmts:
        if isinstance(stmt, ast.Return):
            _returned(stmt.value, value, state, returns, evaluated)
            return True
        if isinstance(stmt, ast.Raise):
            return True
        if isinstance(stmt, ast.If):
            evaluated.append(stmt.test)
            ends = [_walk(arm, value, state, returns, evaluated) for arm in _arms(stmt.test, value, state, stmt.body, stmt.orelse)]
            if all(ends):
                return True
            continue
        if isinstance(stmt, _BLOCKS) and any(isinstance(n, ast.Return) for n in ast.walk(stmt)):
            raise _Unknown  # a return inside a loop, `with` or `try`
        evaluated.append(stmt)
    return False


def _returned(expr: Optional[ast.expr], value: str, state: str, returns: list, evaluated: list) -> None:
    if isinstance(expr, ast.IfExp):
        evaluated.append(expr.test)
        for arm in _arms(expr.test, value, state, [expr.body], [expr.orelse]):
            _returned(arm[0], value, state, returns, evaluated)
        return
    returns.append(expr)
    if expr is not None:
        evaluated.append(expr)


def _calls(nodes: list, name: str) -> bool:
    return any(isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == name
               for node in nodes for n in ast.walk(node))


def is_default_helper(fn: ast.FunctionDef, method: bool = False) -> bool:
    """`x if x is not None else f()` and its spellings (`if exists(x): return x` / `return f() if
    callable(f) else f`), judged along the value-set and value-unset paths (see the module doc).
    `method`: the first parameter is the receiver (`self._default(noise, f)`)."""
    params = [a.arg for a in (*fn.args.posonlyargs, *fn.args.args)][1 if method else 0:]
    if len(params) < 2:
        return False
    value, fallback = params[0], params[1]
    try:
        set_returns: list = []
        set_evaluated: list = []
        if not _walk(fn.body, value, _SET, set_returns, set_evaluated):
            return False  # falls off the end with the value set: returns None
        unset_returns: list = []
        _walk(fn.body, value, _UNSET, unset_returns, [])
    except _Unknown:
        return False
    gives_value = bool(set_returns) and all(isinstance(r, ast.Name) and r.id == value for r in set_returns)
    uses_fallback = any(r is not None and any(isinstance(n, ast.Name) and n.id == fallback for n in ast.walk(r))
                        for r in unset_returns)
    return gives_value and uses_fallback and not _calls(set_evaluated, fallback)


def judge_cst(module: cst.Module, fn: cst.FunctionDef, method: bool = False) -> bool:
    """`is_default_helper` of a LibCST function of the checked file (printed and re-parsed)."""
    code = textwrap.dedent(module.code_for_node(fn.with_changes(decorators=(), leading_lines=())))
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    first = tree.body[0] if tree.body else None
    return isinstance(first, (ast.FunctionDef, ast.AsyncFunctionDef)) and is_default_helper(first, method)


# --- the index fact --------------------------------------------------------------------------------
def fillins_from_defs(defs: Iterable[Tuple[str, bytes]]) -> Dict[str, bool]:
    """Short top-level function (name, text of its `def`) with two or more positional parameters ->
    is it a default helper. Functions not listed are unknown (long, or not parsable alone)."""
    out: Dict[str, bool] = {}
    for name, text in defs:
        if text.count(b"\n") > MAX_BODY_LINES + 3 or b"return" not in text or b"," not in text:
            continue  # long (+3: the signature and two blank lines after it), or cannot be a 2-argument helper
        if b"if" not in text:
            out[name] = False  # no test of the value: not a default helper (a parse saved)
            continue
        try:
            tree = ast.parse(text)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
        fn = tree.body[0] if tree.body else None
        if isinstance(fn, ast.FunctionDef) and len(fn.args.posonlyargs) + len(fn.args.args) >= 2:
            out[name] = is_default_helper(fn)
    return out


def fillin_verdict(index, qualname: str) -> Optional[bool]:
    """Is the top-level function `qualname` (through re-exports) a default helper, by the index?
    None when it is not an indexed function of the checked files."""
    seen = set()
    while qualname not in seen and len(seen) < 32:
        seen.add(qualname)
        mod, _, func = qualname.rpartition(".")
        facts = index.modules.get(mod) if index is not None else None
        if facts is None:
            return None
        if func in facts.fillins:
            return facts.fillins[func]
        if func not in facts.aliases:
            return None
        qualname = facts.aliases[func]  # `from .utils import default` in a package `__init__`
    return None

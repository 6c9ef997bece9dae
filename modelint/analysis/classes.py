"""Facts about classes and their methods, read from the tree (memoised per class by `FileContext`).

- `first_param(fn)`: the name a method calls its instance (`self`, sometimes `this` or `m`).
- `is_decorated_with(fn, *names)`: `@staticmethod`, `@torch.no_grad()`, ... by last name.
- Two method maps, because two questions need them:
  `class_methods(classdef)` is what Python binds: the last `def` of each name in the class body, plus
  methods defined under an `if` there (`if TYPE_CHECKING:`, version switches) when the body has none;
  `first_methods(classdef)` keeps the first `def` of each name directly in the body, which is what
  "what does `forward` execute" has always used (it keeps an `@overload` stub's real body out).
- `top_level_classes(module)`, `inherited_methods(classdef, classes)`: same-file base classes.
- `self_references(fn, self_name)`: the names `n` read as `self.n` in a function.
- `reach(methods, seeds, refs)`: the one closure "methods reachable from the seeds through `self.<m>`",
  with the edges given by `refs(name, fn)`; `reachable_methods` is it over every `self.<m>` reference.
"""

from __future__ import annotations

from typing import Callable, Dict, FrozenSet, Iterable, Optional, Set

import libcst as cst

from modelint.analysis.walk import descendants


def first_param(fn: cst.FunctionDef) -> Optional[str]:
    params = (*fn.params.posonly_params, *fn.params.params)
    return params[0].name.value if params else None


def is_decorated_with(fn: cst.FunctionDef, *names: str) -> bool:
    """Has `fn` a decorator whose last name (called or not) is one of `names`?"""
    for dec in fn.decorators:
        expr = dec.decorator
        if isinstance(expr, cst.Call):
            expr = expr.func
        if isinstance(expr, cst.Name) and expr.value in names:
            return True
        if isinstance(expr, cst.Attribute) and expr.attr.value in names:
            return True
    return False


def is_plain_staticmethod(fn: cst.FunctionDef) -> bool:
    """Decorated with the bare name `staticmethod` (not `@x.staticmethod`, not called)."""
    return any(isinstance(d.decorator, cst.Name) and d.decorator.value == "staticmethod" for d in fn.decorators)


def _body(classdef: cst.ClassDef):
    body = classdef.body
    return body.body if isinstance(body, cst.IndentedBlock) else ()


def class_methods(classdef: cst.ClassDef) -> Dict[str, cst.FunctionDef]:
    """Methods as Python binds them (see the module docs)."""
    out: Dict[str, cst.FunctionDef] = {}
    for stmt in _body(classdef):
        if isinstance(stmt, cst.FunctionDef):
            out[stmt.name.value] = stmt
        elif isinstance(stmt, cst.If):  # `if TYPE_CHECKING:` / version switches around methods
            for sub in descendants(stmt):
                if isinstance(sub, cst.FunctionDef):
                    out.setdefault(sub.name.value, sub)
    return out


def first_methods(classdef: cst.ClassDef) -> Dict[str, cst.FunctionDef]:
    """The first `def` of each name directly in the class body."""
    out: Dict[str, cst.FunctionDef] = {}
    for stmt in _body(classdef):
        if isinstance(stmt, cst.FunctionDef):
            out.setdefault(stmt.name.value, stmt)
    return out


def top_level_classes(module: cst.Module) -> Dict[str, cst.ClassDef]:
    return {stmt.name.value: stmt for stmt in module.body if isinstance(stmt, cst.ClassDef)}


def inherited_methods(classdef: cst.ClassDef, local_classes: Dict[str, cst.ClassDef], depth: int = 0) -> Dict[str, cst.FunctionDef]:
    """Methods (`first_methods`) of the bases of `classdef` defined in the same file (first base wins)."""
    out: Dict[str, cst.FunctionDef] = {}
    if depth > 10:
        return out
    for base in reversed(classdef.bases):
        if base.keyword is None and isinstance(base.value, cst.Name) and base.value.value in local_classes:
            parent = local_classes[base.value.value]
            if parent is classdef:
                continue
            out.update(inherited_methods(parent, local_classes, depth + 1))
            out.update(first_methods(parent))
    return out


def self_references(fn: cst.FunctionDef, self_name: str = "self") -> FrozenSet[str]:
    out: Set[str] = set()
    for node in descendants(fn.body):
        if isinstance(node, cst.Attribute) and isinstance(node.value, cst.Name) and node.value.value == self_name:
            out.add(node.attr.value)
    return frozenset(out)


def reach(
    methods: Dict[str, cst.FunctionDef],
    seeds: Iterable[str],
    refs: Callable[[str, cst.FunctionDef], Iterable[str]],
    admit: Callable[[str], bool] = lambda name: True,
) -> Dict[str, Optional[str]]:
    """Methods reachable from `seeds` (those defined) through the edges `refs(name, fn)` gives, as
    method -> the method it was first reached from (None for a seed). `admit(name)` may keep a
    method out (it is neither entered nor listed)."""
    out: Dict[str, Optional[str]] = {}
    todo = []
    for seed in seeds:
        if seed in methods and seed not in out:
            out[seed] = None
            todo.append(seed)
    while todo:
        name = todo.pop()
        for ref in refs(name, methods[name]):
            if ref in methods and ref not in out and admit(ref):
                out[ref] = name
                todo.append(ref)
    return out


def reachable_methods(methods: Dict[str, cst.FunctionDef], seeds: Iterable[str]) -> FrozenSet[str]:
    """Methods reachable from `seeds` (included when defined) through any `self.<method>` reference."""
    return frozenset(reach(methods, seeds, lambda name, fn: self_references(fn, first_param(fn) or "self")))

"""Facts about how a module class builds and reaches its submodules (used by MDL201-MDL204).

- `module_construction(ctx, call)`: does a call construct an `nn.Module` (a `torch.nn` layer class or
  a module class of the checked project)? Returns the qualified class name.
- `factory_module(ctx, call)`: does a call go to a top-level function of the checked files (this file
  or another) that returns a stateful module (`get_layer(cfg)`)? From the index's `factories`.
- `strip_self_returning(ctx, expr)`, `is_stateless_construction(ctx, call, qualname)`.
- `iter_returns(fn)`: the function's own return statements.
- `always_exits(block)`: does every path through a block end in `return` / `raise`?
- `path_guards(chain)`, `exclusive(a, b)`, `runs_whenever(site, at)`: which tests a node's path
  passes (`analysis.guards.guard_steps`), to tell "registered on every path" from "on one branch".
- `is_overload_stub(ctx, fn)`: is `fn` a `typing.overload` signature (not the implementation)?

Method maps, `first_param` and reachability through `self.<m>` are in `analysis.classes`.

Everything here reads the tree only; callers memoise per class.
"""

from __future__ import annotations

from typing import Dict, Iterable, Iterator, List, Optional, Sequence

import libcst as cst

from modelint.analysis.guards import guard_steps
from modelint.analysis.index import factory_classes
from modelint.analysis.walk import descendants, iter_children


def is_stateless_construction(ctx, call: cst.Call, qualname: str) -> bool:
    """A framework layer that holds no state and ignores the mode (`nn.ReLU()`, `nn.MSELoss()`, an
    empty or all-stateless `nn.Sequential(...)`); losses only without `weight` / `pos_weight`."""
    fw = ctx.framework
    if not fw.is_layer_name(qualname):
        return False
    last = qualname.rsplit(".", 1)[-1]
    if last in fw.stateless_layers:
        return True
    if last.endswith("Loss"):
        return not any(a.keyword is None or a.keyword.value in ("weight", "pos_weight") for a in call.args)
    if last in fw.containers:
        for arg in call.args:
            value = arg.value
            if isinstance(value, (cst.List, cst.Tuple)):
                values = [e.value for e in value.elements]
            else:
                values = [value]
            for v in values:
                v = strip_self_returning(ctx, v)
                inner = module_construction(ctx, v) if isinstance(v, cst.Call) else None
                if not inner or not is_stateless_construction(ctx, v, inner):
                    return False
        return True
    return False


def _callee(ctx, call: cst.Call) -> Optional[str]:
    """Qualified name of a call's Name/Attribute callee, else None."""
    func = call.func
    return ctx.resolve(func) if isinstance(func, (cst.Name, cst.Attribute)) else None


def module_construction(ctx, call: cst.Call) -> Optional[str]:
    """Qualified class name when `call` constructs an nn.Module, else None."""
    qualname = _callee(ctx, call)
    return module_class(ctx, qualname) if qualname else None


def module_class(ctx, qualname: str) -> Optional[str]:
    """`qualname` when it names an nn.Module class (a framework layer or a module class of the
    checked project), else None."""
    fw = ctx.framework
    if qualname.rsplit(".", 1)[-1] in fw.non_module_last_names:
        return None
    if fw.in_namespace(qualname):
        return qualname if fw.is_layer_class(qualname) else None
    if qualname in ("Module", "nn.Module"):  # the classifier's fallback for unresolved bases
        return None
    if ctx.classifier.is_module_base(qualname):
        return qualname
    return None


def strip_self_returning(ctx, expr: cst.BaseExpression) -> cst.BaseExpression:
    """`nn.Dropout(p).to(device).cuda()` -> `nn.Dropout(p)`."""
    methods = ctx.framework.self_returning_methods
    while (
        isinstance(expr, cst.Call)
        and isinstance(expr.func, cst.Attribute)
        and expr.func.attr.value in methods
        and isinstance(expr.func.value, cst.Call)
    ):
        expr = expr.func.value
    return expr


def iter_returns(fn: cst.FunctionDef) -> Iterator[cst.Return]:
    """Return statements of `fn` itself (not of nested functions or lambdas)."""
    stack: List[cst.CSTNode] = [fn.body]
    while stack:
        node = stack.pop()
        if isinstance(node, cst.Return):
            yield node
            continue
        for child in iter_children(node):
            if not isinstance(child, (cst.FunctionDef, cst.Lambda, cst.ClassDef)):
                stack.append(child)


def _statement_exits(stmt: cst.CSTNode) -> bool:
    if isinstance(stmt, cst.SimpleStatementLine):
        return any(isinstance(s, (cst.Return, cst.Raise)) for s in stmt.body)
    if isinstance(stmt, cst.If):
        if stmt.orelse is None:
            return False
        other = stmt.orelse.body if isinstance(stmt.orelse, cst.Else) else stmt.orelse
        if isinstance(other, cst.If):
            return always_exits(stmt.body) and _statement_exits(other)
        return always_exits(stmt.body) and always_exits(other)
    if isinstance(stmt, cst.With):
        return always_exits(stmt.body)
    if isinstance(stmt, cst.Try):
        if stmt.finalbody is not None and always_exits(stmt.finalbody.body):
            return True
        if stmt.orelse is not None:
            body_ok = always_exits(stmt.orelse.body) or always_exits(stmt.body)
        else:
            body_ok = always_exits(stmt.body)
        return body_ok and all(always_exits(h.body) for h in stmt.handlers)
    if isinstance(stmt, cst.While):
        test = stmt.test
        return isinstance(test, cst.Name) and test.value == "True" and not any(
            isinstance(n, cst.Break) for n in descendants(stmt.body)
        )
    return False


def always_exits(block: cst.BaseSuite) -> bool:
    """Does every path through the block end in `return` or `raise` (no fall-through)?"""
    if isinstance(block, cst.SimpleStatementSuite):
        return any(isinstance(s, (cst.Return, cst.Raise)) for s in block.body)
    if isinstance(block, cst.IndentedBlock):
        return any(_statement_exits(s) for s in block.body)
    return False


# `@overload` from either typing module, under any alias (`from typing import overload as ov`,
# `import typing as t; @t.overload`): stubs that declare a signature and never run.
_OVERLOAD_DECORATORS = frozenset({"typing.overload", "typing_extensions.overload"})


def is_overload_stub(ctx, fn: cst.FunctionDef) -> bool:
    """Is `fn` decorated with `typing.overload` / `typing_extensions.overload` (a signature stub; the
    undecorated `def` of the same name after it is what runs)?"""
    for dec in fn.decorators:
        expr = dec.decorator
        if isinstance(expr, (cst.Name, cst.Attribute)) and ctx.resolve(expr) in _OVERLOAD_DECORATORS:
            return True
    return False


def factory_module(ctx, call: cst.Call) -> Optional[str]:
    """The module class a call to a module-level factory returns (`get_layer(cfg)` whose body returns
    `nn.Linear(...)` or a project module), read from the cross-file index (`index.factory_classes`),
    for a function of this file or one imported from another checked file; None for anything else
    and for factories of stateless framework layers only (`get_activation(name)` returning `nn.ReLU()`).
    Methods are not factories here (MDL201 follows `self.<method>()` itself)."""
    name = _callee(ctx, call)
    if not name:
        return None
    if "." not in name:  # a function of this file: `resolve` leaves it unqualified
        name = f"{ctx.facts.modname}.{name}"
    fw = ctx.framework
    for qual in factory_classes(ctx.classifier.index, name):
        found = module_class(ctx, qual)
        last = qual.rsplit(".", 1)[-1]
        if found and not (fw.is_layer_name(qual) and (last in fw.stateless_layers or last.endswith("Loss"))):
            return found
    return None


Guards = Dict[str, bool]  # source of a test -> its value on the path (`guards.guard_steps`)
_TEXT = cst.Module(body=[]).code_for_node


def path_guards(chain: Sequence[cst.CSTNode]) -> Guards:
    """The tests chain[-1] is under inside its function (`if`/`else` arms, conditional expressions,
    `and`/`or`, early exits; not `while`), with their values there. Tests are keyed by their source,
    so `if cfg.aux: self.heads = [...]` and a later `if cfg.aux: self.heads = nn.ModuleList(...)` are
    under the same test (the flag is not expected to change in between)."""
    return {_TEXT(test): value for _, test, value in guard_steps(chain, loops=False)}


def exclusive(a: Guards, b: Guards) -> bool:
    """Can no single run reach both: a test both are under has opposite values (the two arms of one
    `if`, or the body of `if x: ...; return` and the statements after it)?"""
    return any(b.get(g, value) != value for g, value in a.items())


def runs_whenever(sites: Iterable[Guards], at: Guards) -> bool:
    """Does one of `sites` run on every path that reaches `at`: a site under no test that `at` is not
    under (with the same value), or two sites in the two arms of one extra test?"""
    halves: Dict[str, set] = {}
    for site in sites:
        extra = {g: v for g, v in site.items() if at.get(g) != v}
        if not extra:
            return True
        if len(extra) == 1:
            (g, v), = extra.items()
            halves.setdefault(g, set()).add(v)
            if len(halves[g]) == 2:
                return True
    return False

"""Facts about how a module class builds and reaches its submodules (used by MDL201-MDL204).

- `module_construction(ctx, call)`: does a call construct an `nn.Module` (a `torch.nn` layer class or
  a module class of the checked project)? Returns the qualified class name.
- `class_methods(classdef)`: the methods defined directly in a class body, by name.
- `self_references(fn, self_name)`: names `n` read as `self.n` inside a function (calls and bare
  references such as `checkpoint(self._inner, x)`), used for the intra-class call graph.
- `reachable_methods(classdef, seeds)`: methods reachable from the seed methods through `self.<m>`.
- `always_exits(block)`: does every path through a block end in `return` / `raise`?

Everything here reads the tree only; callers memoise per class.
"""

from __future__ import annotations

from typing import Dict, FrozenSet, Iterable, Iterator, List, Optional, Set

import libcst as cst

from modelint.analysis.modules import is_torch_nn_class
from modelint.analysis.walk import descendants, iter_children

# torch.nn classes that hold tensors, not modules (`torch.nn.parameter.Parameter` is spelled like a
# layer class, so `is_torch_nn_class` alone would accept it).
_NON_MODULE_LAST = frozenset({"Parameter", "UninitializedParameter", "Buffer", "UninitializedBuffer"})

# Methods that return the module they are called on (`nn.BatchNorm1d(n).to(x.device)`).
SELF_RETURNING_METHODS = frozenset(
    {"to", "cuda", "cpu", "half", "float", "double", "bfloat16", "type", "requires_grad_", "train", "eval",
     "to_empty", "share_memory", "xpu", "mps"}
)


# torch.nn modules without parameters, buffers or children whose forward does not depend on the mode:
# keeping them in a plain container loses nothing (MDL201 does not report them).
STATELESS_TORCH_MODULES = frozenset(
    """
    AdaptiveAvgPool1d AdaptiveAvgPool2d AdaptiveAvgPool3d AdaptiveMaxPool1d AdaptiveMaxPool2d AdaptiveMaxPool3d
    AvgPool1d AvgPool2d AvgPool3d LPPool1d LPPool2d LPPool3d MaxPool1d MaxPool2d MaxPool3d MaxUnpool1d MaxUnpool2d
    MaxUnpool3d CELU ELU GELU GLU Hardshrink Hardsigmoid Hardswish Hardtanh LeakyReLU LogSigmoid LogSoftmax Mish
    ReLU ReLU6 SELU SiLU Sigmoid Softmax Softmax2d Softmin Softplus Softshrink Softsign Tanh Tanhshrink Threshold
    ChannelShuffle CircularPad1d CircularPad2d CircularPad3d ConstantPad1d ConstantPad2d ConstantPad3d
    ReflectionPad1d ReflectionPad2d ReflectionPad3d ReplicationPad1d ReplicationPad2d ReplicationPad3d ZeroPad1d
    ZeroPad2d ZeroPad3d CosineSimilarity PairwiseDistance CrossMapLRN2d LocalResponseNorm Flatten Unflatten Fold
    Unfold Identity PixelShuffle PixelUnshuffle Upsample UpsamplingBilinear2d UpsamplingNearest2d
    """.split()
)
_CONTAINERS = frozenset({"Sequential", "ModuleList", "ModuleDict"})


def is_stateless_construction(ctx, call: cst.Call, qualname: str) -> bool:
    """A torch.nn module that holds no state and ignores the mode (`nn.ReLU()`, `nn.MSELoss()`, an
    empty or all-stateless `nn.Sequential(...)`); losses only without `weight` / `pos_weight`."""
    if not qualname.startswith("torch.nn."):
        return False
    last = qualname.rsplit(".", 1)[-1]
    if last in STATELESS_TORCH_MODULES:
        return True
    if last.endswith("Loss"):
        return not any(a.keyword is None or a.keyword.value in ("weight", "pos_weight") for a in call.args)
    if last in _CONTAINERS:
        for arg in call.args:
            value = arg.value
            if isinstance(value, (cst.List, cst.Tuple)):
                values = [e.value for e in value.elements]
            else:
                values = [value]
            for v in values:
                v = strip_self_returning(v)
                inner = module_construction(ctx, v) if isinstance(v, cst.Call) else None
                if not inner or not is_stateless_construction(ctx, v, inner):
                    return False
        return True
    return False


def module_construction(ctx, call: cst.Call) -> Optional[str]:
    """Qualified class name when `call` constructs an nn.Module, else None."""
    func = call.func
    if not isinstance(func, (cst.Name, cst.Attribute)):
        return None
    qualname = ctx.resolve(func)
    if not qualname:
        return None
    last = qualname.rsplit(".", 1)[-1]
    if last in _NON_MODULE_LAST:
        return None
    if qualname.startswith("torch."):
        return qualname if is_torch_nn_class(qualname) else None
    if qualname in ("Module", "nn.Module"):  # the classifier's fallback for unresolved bases
        return None
    if ctx.classifier.is_module_base(qualname):
        return qualname
    return None


def strip_self_returning(expr: cst.BaseExpression) -> cst.BaseExpression:
    """`nn.Dropout(p).to(device).cuda()` -> `nn.Dropout(p)`."""
    while (
        isinstance(expr, cst.Call)
        and isinstance(expr.func, cst.Attribute)
        and expr.func.attr.value in SELF_RETURNING_METHODS
        and isinstance(expr.func.value, cst.Call)
    ):
        expr = expr.func.value
    return expr


def class_methods(classdef: cst.ClassDef) -> Dict[str, cst.FunctionDef]:
    out: Dict[str, cst.FunctionDef] = {}
    body = classdef.body
    if isinstance(body, cst.IndentedBlock):
        for stmt in body.body:
            if isinstance(stmt, cst.FunctionDef):
                out[stmt.name.value] = stmt
            elif isinstance(stmt, cst.If):  # `if TYPE_CHECKING:` / version switches around methods
                for sub in descendants(stmt):
                    if isinstance(sub, cst.FunctionDef):
                        out.setdefault(sub.name.value, sub)
    return out


def first_param(fn: cst.FunctionDef) -> Optional[str]:
    params = (*fn.params.posonly_params, *fn.params.params)
    return params[0].name.value if params else None


def is_decorated_with(fn: cst.FunctionDef, *names: str) -> bool:
    for dec in fn.decorators:
        expr = dec.decorator
        if isinstance(expr, cst.Call):
            expr = expr.func
        if isinstance(expr, cst.Name) and expr.value in names:
            return True
        if isinstance(expr, cst.Attribute) and expr.attr.value in names:
            return True
    return False


def self_references(fn: cst.FunctionDef, self_name: str = "self") -> FrozenSet[str]:
    out: Set[str] = set()
    for node in descendants(fn.body):
        if isinstance(node, cst.Attribute) and isinstance(node.value, cst.Name) and node.value.value == self_name:
            out.add(node.attr.value)
    return frozenset(out)


def reachable_methods(methods: Dict[str, cst.FunctionDef], seeds: Iterable[str]) -> FrozenSet[str]:
    """Methods reachable from `seeds` (included when defined) through `self.<method>` references."""
    todo = [s for s in seeds if s in methods]
    seen: Set[str] = set(todo)
    refs_cache: Dict[str, FrozenSet[str]] = {}
    while todo:
        name = todo.pop()
        fn = methods[name]
        if name not in refs_cache:
            refs_cache[name] = self_references(fn, first_param(fn) or "self")
        for ref in refs_cache[name]:
            if ref in methods and ref not in seen:
                seen.add(ref)
                todo.append(ref)
    return frozenset(seen)


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

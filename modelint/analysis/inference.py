"""Is this model call inference, and why (or why not): the shared facts behind MDL302.

A forward under `torch.no_grad()` is not always inference on data. On 38 code bases never used to
develop the rules (issue 14), all 21 of MDL302's findings were forwards that are not inference in
train mode, in a few general shapes that this module recognises from the syntax alone:

- a **probe**: a forward on a synthetic tensor (`torch.zeros(1, 3, 32, 32)`, `torch.randn(...)`,
  the profile's `tensor_factories` and `noise_sampling_calls`) or one whose result is read only for
  its shape (`out.shape`, `out.size(1)`, `out.numel()`, `print(out.shape)`): a smoke test or a
  shape probe, where what the dropout / batch-norm layers compute does not matter;
- **build code**: a forward in `__init__` or in a function whose name says it builds or deduces
  something (`build_*`, `_init_*`, `setup*`, `make_layers`, `get_*_shape`, `compute_*_dims`): a no_grad
  pass that initialises lazy modules or measures a feature size;
- an **eval context**: a `with` or a decorator whose last name says eval / inference
  (`with evaluating(model):`, `with model_eval(net):`, `@eval_mode`, `@torch_utils.in_eval`), that is
  not one of the framework's grad contexts (`torch.inference_mode` only turns off gradients): such
  helpers (in the project or another package) switch the mode themselves.

And the evidence that a forward *is* an evaluation on held-out data (`held_out_text`): a name of
validation / test data (`val_loader`, `test_x`, `dev_batch`), also through a name bound from one
(`batch = next(iter(val_loader))`; `model(batch[0])`).
"""

from __future__ import annotations

import re
from typing import Dict, Iterable, Optional

import libcst as cst

from modelint.analysis.calls import literal_value, NOT_LITERAL, terminal_name

# Names of data held out from training: a loop over `val_loader`, a call on `test_x`, `held_out`.
# (`testloader`, `valset`, `test_dl`: the data word may be glued on.)
_HELD_OUT = re.compile(
    r"(^|_|\b)(val|valid|validation|test|testing|eval|evaluation|dev|holdout|heldout|held_out|held)"
    r"(_|$|\b|s\b|\d|loader|set|data|batch|dl|ds|iter)",
    re.IGNORECASE,
)
# Build / deduce names (`build_model`, `_init_weights`, `setup`, `make_layers`, `_get_conv_output_shape`,
# `compute_feature_dims`, `infer_output_size`): their no_grad forwards initialise or measure, not infer.
# (`make_predictions` / `create_submission` are inference: make / create only with a model word.)
# (The size suffix only after a "deduce" verb: `test_forward_shape` is a test, not build code.)
_BUILD_NAME = re.compile(
    r"^_*(init|build|setup|construct|materiali[sz]e|lazy)"
    r"|^_*(make|create)_(model|net|network|layers?|blocks?|modules?|encoder|decoder|backbone|head)"
    r"|^_*(get|compute|calc|calculate|infer|find|measure|count)_\w*(shape|shapes|dim|dims|size|sizes|numel)$",
    re.IGNORECASE,
)
# A `with` / decorator name that says it switches to eval (`evaluating`, `eval_mode`, `model_eval`,
# `in_eval`, `inference_context`, `torch_utils.inference`); the framework's grad contexts excluded.
_EVAL_CONTEXT = re.compile(r"(^|_)(eval|evaluat\w*|inference|infer)($|_)|^(eval|inference)[A-Z]|Eval(Mode|uat)",
                           re.IGNORECASE)
# Reads of a result that only look at its shape.
_SHAPE_ATTRS = frozenset({"shape", "size", "numel", "dim", "ndim", "ndimension", "dtype", "device"})


def held_out_text(text: str) -> bool:
    return bool(_HELD_OUT.search(text))


def build_name(name: str) -> bool:
    """`__init__`, `build_model`, `_init_lazy`, `setup`, `get_output_shape`, `feature_dims`."""
    return name == "__init__" or bool(_BUILD_NAME.search(name))


def eval_context_name(name: Optional[str], grad_context_names: Iterable[str]) -> bool:
    """The last name of a `with` item or decorator says it switches to eval mode (and it is not a
    grad context of the framework: `inference_mode` does not switch modes)."""
    if not name:
        return False
    last = name.rsplit(".", 1)[-1]
    return last not in set(grad_context_names) and bool(_EVAL_CONTEXT.search(last))


def last_name(expr: cst.CSTNode) -> Optional[str]:
    """`evaluating(model)` / `utils.eval_mode` / `@x.y()` -> the last name called or named."""
    return terminal_name(expr.func if isinstance(expr, cst.Call) else expr)


def synthetic(ctx, expr: cst.CSTNode, bound: Dict[str, cst.CSTNode], depth: int = 0) -> bool:
    """`torch.zeros(1, 3, 32, 32)`, `torch.randn(2, 16).to(dev)`, a tuple of those, or a name bound to
    one in the same scope (`dummy = torch.rand(...)`): a tensor made from a shape, not from data.
    `torch.tensor(...)` counts only with a literal argument (it also wraps real data)."""
    if depth > 4:
        return False
    fw = ctx.framework
    while isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute) and expr.func.attr.value in fw.mode_preserving_methods:
        expr = expr.func.value
    if isinstance(expr, cst.Name) and expr.value in bound:
        return synthetic(ctx, bound[expr.value], bound, depth + 1)
    if isinstance(expr, (cst.Tuple, cst.List)):
        return bool(expr.elements) and all(synthetic(ctx, e.value, bound, depth + 1) for e in expr.elements)
    if not isinstance(expr, cst.Call):
        return False
    qual = ctx.resolve(expr.func) if isinstance(expr.func, (cst.Name, cst.Attribute)) else None
    if qual in fw.noise_sampling_calls:
        return True
    if qual in fw.tensor_factories:
        if qual.rsplit(".", 1)[-1] in ("tensor", "as_tensor"):
            return bool(expr.args) and _constant(expr.args[0].value)
        return not qual.endswith("_like")  # `zeros_like(x)` takes the shape of data, the values don't matter
    return False


def _constant(expr: cst.CSTNode) -> bool:
    """A literal, or a list / tuple of literals (`[1.0, 2.0]`, `[[0, 1], [1, 0]]`)."""
    if isinstance(expr, (cst.List, cst.Tuple)):
        return all(_constant(e.value) for e in expr.elements)
    return literal_value(expr) is not NOT_LITERAL


def shape_only(parents: Dict[int, cst.CSTNode], call: cst.Call, uses: Iterable[cst.CSTNode]) -> bool:
    """The call's result is read only for its shape: `model(x).shape`, or it is bound to a name
    (`out = model(x)`) whose every later use in `uses` (the scope's `Name` nodes) is `out.shape` /
    `out.size(...)` / `len(out)`. False when the result is unused or used otherwise."""
    parent = parents.get(id(call))
    if isinstance(parent, cst.Attribute) and parent.value is call:
        return parent.attr.value in _SHAPE_ATTRS
    target = None
    if isinstance(parent, cst.Assign) and len(parent.targets) == 1 and isinstance(parent.targets[0].target, cst.Name):
        target = parent.targets[0].target.value
    if target is None:
        return False
    seen = False
    for name in uses:
        if not isinstance(name, cst.Name) or name.value != target:
            continue
        up = parents.get(id(name))
        if up is parent or (isinstance(up, cst.AssignTarget)):
            continue
        if isinstance(up, cst.Attribute) and up.value is name and up.attr.value in _SHAPE_ATTRS:
            seen = True
            continue
        if isinstance(up, cst.Arg) and isinstance(parents.get(id(up)), cst.Call):
            fn = parents[id(up)].func
            if isinstance(fn, cst.Name) and fn.value == "len":
                seen = True
                continue
        return False
    return seen

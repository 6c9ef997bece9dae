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
from typing import Dict, Iterable, List, Optional, Sequence, Set

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


# Names of a helper that produces outputs from the model (`generate_samples`, `reconstruct`,
# `synthesize_audio`, `sample_images`): a no_grad run there is inference whatever data it is given.
# (`sample_*` only for images / grids: `sample_batch`, `sample_negatives` draw data.)
_GENERATION_NAME = re.compile(
    r"^_*(generate|reconstruct|synthesi[sz]e|translate)|^_*(samples?|sampling)(_(images?|imgs?|grid|audio|text))?$",
    re.IGNORECASE,
)


def generation_name(name: str) -> bool:
    return bool(_GENERATION_NAME.search(name))


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


def synthetic(ctx, expr: cst.CSTNode, bound: Dict[str, List[cst.CSTNode]], depth: int = 0) -> bool:
    """`torch.zeros(1, 3, 32, 32)`, `torch.randn(2, 16).to(dev)`, a tuple of those, or a name every
    binding of which in the same scope is one (`dummy = torch.rand(...)`, `bound`: name -> the values
    bound to it): a tensor made from a shape, not from data.
    `torch.tensor(...)` counts only with a literal argument (it also wraps real data)."""
    if depth > 4:
        return False
    fw = ctx.framework
    while isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute) and expr.func.attr.value in fw.mode_preserving_methods:
        expr = expr.func.value
    if isinstance(expr, cst.Name) and expr.value in bound:
        return all(synthetic(ctx, value, bound, depth + 1) for value in bound[expr.value])
    if isinstance(expr, (cst.Tuple, cst.List)):
        return bool(expr.elements) and all(synthetic(ctx, e.value, bound, depth + 1) for e in expr.elements)
    if not isinstance(expr, cst.Call):
        return False
    qual = ctx.resolve(expr.func) if isinstance(expr.func, (cst.Name, cst.Attribute)) else None
    if qual in fw.tensor_wrappers and expr.args and expr.args[0].keyword is None and not expr.args[0].star:
        return synthetic(ctx, expr.args[0].value, bound, depth + 1)  # `Variable(torch.randn(...))`
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


def shape_only(parents: Dict[int, cst.CSTNode], call: cst.Call, uses: Sequence[cst.CSTNode]) -> bool:
    """The call's result is read only for its shape: `model(x).shape`, or it is bound to names
    (`out = model(x)`, `out, aux = model(x)`) whose every read in `uses` (the scope's nodes in source
    order) is `out.shape` / `out.size(...)` / `len(out)`, with at least one such read. Outside a loop
    only the reads after the call count: an earlier `out` is another binding (smoke tests reuse `y`
    for each block they build). False when the result is unused or used otherwise."""
    parent = parents.get(id(call))
    if isinstance(parent, cst.Attribute) and parent.value is call:
        return parent.attr.value in _SHAPE_ATTRS
    if not (isinstance(parent, cst.Assign) and len(parent.targets) == 1):
        return False
    targets = _bound_names(parent.targets[0].target)
    reads = _reads_after(parents, call, uses, targets) if targets else None
    return bool(reads) and all(_shape_read(parents, name) for name in reads)


def discarded(parents: Dict[int, cst.CSTNode], call: cst.Call, uses: Sequence[cst.CSTNode]) -> bool:
    """The call's result is thrown away: a bare expression statement (`model(x)`), or bound to names
    never read afterwards in the scope (a nested function that binds the name reads its own)."""
    parent = parents.get(id(call))
    if isinstance(parent, cst.Expr):
        return True
    if not (isinstance(parent, cst.Assign) and len(parent.targets) == 1):
        return False
    targets = _bound_names(parent.targets[0].target)
    if not targets:
        return False
    return not any(_own_binding(parents, name, call) for name in _reads_after(parents, call, uses, targets))


def _own_binding(parents, name: cst.Name, call: cst.Call) -> bool:
    """`name` reads the binding of `call`'s scope: no function between them binds it."""
    scope = _function_of(parents, call)
    fn = _function_of(parents, name)
    while fn is not None and fn is not scope:
        if name.value in _locals_of(fn):
            return False
        fn = _function_of(parents, fn)
    return True


def _function_of(parents, node: cst.CSTNode) -> Optional[cst.FunctionDef]:
    up = parents.get(id(node))
    while up is not None and not isinstance(up, cst.FunctionDef):
        up = parents.get(id(up))
    return up


def _locals_of(fn: cst.FunctionDef) -> Set[str]:
    """Parameters and plainly assigned names of `fn`'s own body (not of functions nested in it)."""
    found = {p.name.value for p in fn.params.params + fn.params.kwonly_params + fn.params.posonly_params}
    todo = list(fn.body.body) if isinstance(fn.body, cst.IndentedBlock) else []
    while todo:
        node = todo.pop()
        if isinstance(node, (cst.FunctionDef, cst.ClassDef)):
            continue
        if isinstance(node, cst.AssignTarget):
            found.update(n.value for n in _target_names(node.target))
        elif isinstance(node, (cst.For, cst.AnnAssign, cst.AugAssign)):
            found.update(n.value for n in _target_names(node.target))
        todo.extend(c for c in node.children)
    return found


def _bound_names(target: cst.CSTNode) -> Optional[Set[str]]:
    """`out` -> {out}; `out, aux` / `(out, _)` -> {out, aux}; anything else (`self.out`, `*rest`) -> None."""
    if isinstance(target, cst.Name):
        return {target.value}
    if isinstance(target, (cst.Tuple, cst.List)) and all(
        isinstance(e, cst.Element) and isinstance(e.value, cst.Name) for e in target.elements
    ):
        return {e.value.value for e in target.elements} - {"_"}
    return None


def _reads_after(parents, call: cst.Call, uses: Sequence[cst.CSTNode], targets: Set[str]) -> List[cst.Name]:
    """The loads of `targets` in `uses`: all of them when the call is in a loop of the scope (a read
    above it sees the previous iteration's value), else the ones after it."""
    after = _in_loop(parents, call)
    found: List[cst.Name] = []
    for node in uses:
        if node is call:
            after = True
        elif after and isinstance(node, cst.Name) and node.value in targets and not _stored(parents, node):
            found.append(node)
    return found


def _in_loop(parents, node: cst.CSTNode) -> bool:
    up = parents.get(id(node))
    while up is not None and not isinstance(up, (cst.FunctionDef, cst.Lambda)):
        if isinstance(up, (cst.For, cst.While)):
            return True
        up = parents.get(id(up))
    return False


def _stored(parents, name: cst.Name) -> bool:
    """`name` is bound here (an assignment or `for` target, possibly inside a tuple), not read."""
    up = parents.get(id(name))
    while isinstance(up, (cst.Element, cst.Tuple, cst.List, cst.StarredElement)):
        up = parents.get(id(up))
    return isinstance(up, (cst.AssignTarget, cst.For, cst.CompFor, cst.AnnAssign)) and up.target is not None and (
        up.target is name or any(n is name for n in _target_names(up.target))
    )


def _target_names(target: cst.CSTNode) -> List[cst.Name]:
    if isinstance(target, cst.Name):
        return [target]
    if isinstance(target, (cst.Tuple, cst.List)):
        return [n for e in target.elements for n in _target_names(e.value)]
    return []


def _shape_read(parents, name: cst.Name) -> bool:
    up = parents.get(id(name))
    if isinstance(up, cst.Attribute) and up.value is name and up.attr.value in _SHAPE_ATTRS:
        return True
    if isinstance(up, cst.Arg) and isinstance(parents.get(id(up)), cst.Call):
        fn = parents[id(up)].func
        return isinstance(fn, cst.Name) and fn.value == "len"
    return False

"""Grad-mode queries (`torch.is_grad_enabled()`, `x.requires_grad`, ...) and the global mode state they
read (used by MDL105 and MDL401).

- `grad_query(ctx, node)`: is this node a grad-mode query? Returns the text to show, else None.
- `reads_grad(ctx, expr, grad_locals)`: does an expression read one (or a local assigned from one)?
- `grad_locals(ctx, facts)`: locals assigned from grad-mode queries, to a fixpoint.
The names of the queries and of the calls that change each state are the framework profile's
(`Profile.grad_queries`, `mode_queries`, `state_setters`).
- `names_checkpoint(expr)`: does a test name a gradient-checkpointing flag?
- `feeds_objective(root)`: does a block assign a loss term (`loss = ...`, `self.aux_loss += ...`)?
- `parameter_flags_only(ctx, expr, ancestors)`: are its only grad reads `p.requires_grad` of a loop
  variable over `.parameters()` (a trainable-or-frozen question, not grad mode)?
- `graph_for_training_only(ctx, call, value, ...)`: does the mode deciding `create_graph=` only add the
  graph a training loss on the derivative needs (ORed with the module's own request, or a derivative
  the function never differentiates again)?
"""

from __future__ import annotations

import re
from typing import Dict, Optional

import libcst as cst

from modelint.analysis import mode as mode_analysis
from modelint.analysis.walk import descendants

def grad_query(ctx, node: cst.CSTNode) -> Optional[str]:
    """`torch.is_grad_enabled()` / `torch.is_inference_mode_enabled()` calls and `<x>.requires_grad` reads."""
    fw = ctx.framework
    if isinstance(node, cst.Call):
        func = node.func
        last = func.attr.value if isinstance(func, cst.Attribute) else func.value if isinstance(func, cst.Name) else None
        if last in fw.grad_query_last_names:
            q = ctx.resolve(func)
            if q in fw.grad_queries:
                return f"{ctx.module.code_for_node(func)}()"
        return None
    if isinstance(node, cst.Attribute) and node.attr.value == fw.requires_grad_attr:
        text = ctx.module.code_for_node(node)
        return text if len(text) <= 40 else "<tensor>.requires_grad"
    return None


def _grad_reads(ctx, expr: cst.CSTNode, grad_locals) -> Optional[str]:
    """The query read (or the local holding one), as `(query, local or None)` text; None if none."""
    for node in descendants(expr):
        shown = grad_query(ctx, node)
        if shown:
            return f"`{shown}`"
        if isinstance(node, cst.Name) and node.value in grad_locals:
            origin = grad_locals[node.value] if isinstance(grad_locals, dict) else None
            return f"`{node.value}` (from {origin})" if origin else f"`{node.value}`"
    return None


def reads_grad(ctx, expr: Optional[cst.CSTNode], grad_locals=frozenset()) -> Optional[str]:
    """The grad-mode query `expr` reads (text to show, with backticks), or None. `grad_locals` maps locals assigned from
    grad queries to the query they hold (see `grad_locals`)."""
    if expr is None:
        return None
    return _grad_reads(ctx, expr, grad_locals)


def grad_locals(ctx, facts: mode_analysis.FunctionFacts) -> Dict[str, str]:
    """Locals assigned from grad-mode queries (to a fixpoint) -> the query they come from."""
    out: Dict[str, str] = {}
    changed = True
    while changed:
        changed = False
        for name, values in facts.assigns.items():
            if name in out:
                continue
            for v in values:
                shown = v is not None and _grad_reads(ctx, v, out)
                if shown:
                    out[name] = shown.split(" (from ")[-1].rstrip(")") if " (from " in shown else shown
                    changed = True
                    break
    return out


_CHECKPOINT = re.compile(r"checkpoint", re.I)


def names_checkpoint(expr: cst.CSTNode) -> bool:
    """Does the expression name a gradient-checkpointing flag (`self.gradient_checkpointing`,
    `use_checkpoint`, `getattr(self.config, "gradient_checkpointing", False)`)? Grad mode is the right
    question for checkpointing, so MDL105 and MDL401 leave such tests alone."""
    for node in descendants(expr):
        if isinstance(node, cst.Name) and _CHECKPOINT.search(node.value):
            return True
        if isinstance(node, cst.Attribute) and _CHECKPOINT.search(node.attr.value):
            return True
        if isinstance(node, cst.SimpleString) and _CHECKPOINT.search(node.value):
            return True
    return False


# Targets that name a term of the training objective: `loss`, `aux_loss`, `self.gp_penalty`,
# `reg_term`, `kl`. Matched on the last name of an assignment target.
_OBJECTIVE = re.compile(r"loss|penalt|regulari[sz]|^reg(_|$)|_reg$|^kl(_|$)|_kl$|objective", re.I)


def feeds_objective(root: cst.CSTNode) -> bool:
    """Does the block assign (`=`, `+=`, annotated) a name or attribute that names a loss term? Then
    autograd work in it (a fresh `requires_grad_()` for a gradient penalty) serves a term of the
    training objective only, which evaluation does not compute: deciding it by `self.training` is
    the intent, not grad mode mistaken for the training mode."""
    for node in descendants(root):
        targets = ()
        if isinstance(node, cst.Assign):
            targets = tuple(t.target for t in node.targets)
        elif isinstance(node, (cst.AugAssign, cst.AnnAssign)):
            targets = (node.target,)
        for t in targets:
            if isinstance(t, cst.Subscript):
                t = t.value
            name = t.attr.value if isinstance(t, cst.Attribute) else t.value if isinstance(t, cst.Name) else ""
            if name and _OBJECTIVE.search(name):
                return True
    return False


# A name, attribute or key that says parameters: `model.parameters()`, `.named_parameters()`, a list of
# such methods (`for n, p in gen_params():`), an optimizer's `group["params"]`, `self.param_list`.
_PARAM_WORD = re.compile(r"param", re.I)


def _iterates_parameters(iter_expr: cst.CSTNode) -> bool:
    for node in descendants(iter_expr):
        text = node.attr.value if isinstance(node, cst.Attribute) else node.value if isinstance(node, (cst.Name, cst.SimpleString)) else ""
        if text and _PARAM_WORD.search(text):
            return True
    return False


def parameter_flags_only(ctx, expr: cst.CSTNode, ancestors) -> bool:
    """Is every grad query in `expr` the `requires_grad` of a parameter: of a name bound by an enclosing
    loop over `.parameters()` / `.named_parameters()` (`for p in model.parameters(): if p.requires_grad:`)
    or over an iterable named for parameters (`for n, p in gen_params():`, `for p in group["params"]:`),
    or of a layer's parameter attribute (`layer.weight.requires_grad`, `Profile.parameter_attrs`)?
    That flag says whether a parameter is trainable (frozen layers have it False), whatever the grad
    mode: it is not grad mode used as the training switch."""
    params = set()
    for anc in ancestors:
        if isinstance(anc, (cst.For, cst.CompFor)) and _iterates_parameters(anc.iter):
            params.update(n.value for n in descendants(anc.target) if isinstance(n, cst.Name))
    attrs = ctx.framework.parameter_attrs
    found = False
    for node in descendants(expr):
        if grad_query(ctx, node):
            receiver = node.value if isinstance(node, cst.Attribute) else None
            looped = isinstance(receiver, cst.Name) and receiver.value in params
            member = isinstance(receiver, cst.Attribute) and receiver.attr.value in attrs
            if not (looped or member):
                return False
            found = True
    return found


def _names_in(expr: cst.CSTNode) -> set:
    return {n.value for n in mode_analysis.loads(expr) if isinstance(n, cst.Name)}


def _bound_by(call: cst.Call, ancestors) -> Optional[set]:
    """The names the statement holding `call` binds (`grads = grad(...)`, `du, = grad(...)`); an empty
    set when the derivative is returned as it is; None when it is used some other way."""
    for anc in reversed(ancestors):
        if isinstance(anc, cst.Return):
            return set()
        if isinstance(anc, (cst.Assign, cst.AnnAssign)) and anc.value is not None:
            targets = [t.target for t in anc.targets] if isinstance(anc, cst.Assign) else [anc.target]
            return {n.value for t in targets for n in descendants(t) if isinstance(n, cst.Name)}
        if isinstance(anc, (cst.SimpleStatementLine, cst.BaseCompoundStatement)):
            return None
    return None


def _differentiates(ctx, node: cst.CSTNode, fw) -> bool:
    """A call that differentiates its arguments: the framework's derivative call, or any call given the
    graph keyword (a user helper around it, `derivative_from_atomic(dE, R, create_graph=...)`)."""
    if not isinstance(node, cst.Call):
        return False
    if any(a.keyword is not None and a.keyword.value == fw.create_graph_keyword for a in node.args):
        return True
    return isinstance(node.func, (cst.Name, cst.Attribute)) and (ctx.resolve(node.func) or "") in fw.derivative_calls


def graph_for_training_only(ctx, call: cst.Call, value: cst.CSTNode, ancestors, facts, reads_mode) -> bool:
    """Does the mode deciding `create_graph=` of `call` only add the graph a training loss needs?
    - `value` is `<request> or self.training`: the other operand builds the graph whenever the module
      itself needs it (a later derivative of this one), the mode adds it only for the loss backward;
    - the derivative (`forces = -grad(energy, pos, create_graph=self.training)`) is an output that the
      function never differentiates again: evaluation still computes it, only the second-order graph
      that backpropagating a loss on it needs is left out.
    A derivative the function differentiates again (`d2u = grad(du.sum(), x)`) needs the graph in
    both modes, and stays reported."""
    if isinstance(value, cst.BooleanOperation) and isinstance(value.operator, cst.Or):
        operands = [value.left, value.right]
        if any(not reads_mode(o) for o in operands):
            return True
    bound = _bound_by(call, ancestors)
    fn = ctx.enclosing_function()
    if bound is None or fn is None or facts is None:
        return False
    derived = mode_analysis.derived_locals(facts.assigns, lambda v, known: bool(_names_in(v) & known), bound)
    fw = ctx.framework
    for node in descendants(fn):
        if node is not call and _differentiates(ctx, node, fw):
            if any(_names_in(a.value) & derived for a in node.args if a.keyword is None):
                return False
    return True

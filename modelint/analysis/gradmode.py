"""Grad-mode queries (`torch.is_grad_enabled()`, `x.requires_grad`, ...) and the global mode state they
read (used by MDL105 and MDL401).

- `grad_query(ctx, node)`: is this node a grad-mode query? Returns the text to show, else None.
- `reads_grad(ctx, expr, grad_locals)`: does an expression read one (or a local assigned from one)?
- `grad_locals(ctx, facts)`: locals assigned from grad-mode queries, to a fixpoint.
- `MODE_QUERIES`: qualified names of the calls that query global mode state, with the state each reads.
- `STATE_SETTERS`: context managers / calls that change each state.
- `names_checkpoint(expr)`: does a test name a gradient-checkpointing flag?
"""

from __future__ import annotations

import re
from typing import Dict, FrozenSet, Optional

import libcst as cst

from modelint.analysis import mode as mode_analysis
from modelint.analysis.walk import descendants

GRAD_QUERY_FUNCS: Dict[str, str] = {
    "torch.is_grad_enabled": "grad",
    "torch.autograd.grad_mode.is_grad_enabled": "grad",
    "torch._C.is_grad_enabled": "grad",
    "torch.is_inference_mode_enabled": "inference",
    "torch._C._is_inference_mode_enabled": "inference",
}

# Calls that query global mode state -> the state they read.
MODE_QUERIES: Dict[str, str] = {
    **GRAD_QUERY_FUNCS,
    "torch.is_autocast_enabled": "autocast",
    "torch.is_autocast_cpu_enabled": "autocast",
    "torch.get_autocast_gpu_dtype": "autocast",
    "torch.get_autocast_dtype": "autocast",
    "torch.jit.is_scripting": "script",
    "torch.jit.is_tracing": "trace",
    "torch._C._get_tracing_state": "trace",
    "torch.compiler.is_compiling": "compile",
    "torch.compiler.is_dynamo_compiling": "compile",
    "torch._dynamo.is_compiling": "compile",
    "torch._utils.is_compiling": "compile",
}
# The last component of every query name: the cheap first check.
MODE_QUERY_LAST: FrozenSet[str] = frozenset(q.rsplit(".", 1)[-1] for q in MODE_QUERIES)

# Context managers and calls that change a state inside a loop (so a query there is loop-variant).
STATE_SETTERS: Dict[str, FrozenSet[str]] = {
    "grad": frozenset(
        {
            "torch.no_grad",
            "torch.enable_grad",
            "torch.set_grad_enabled",
            "torch.inference_mode",
            "torch.autograd.no_grad",
            "torch.autograd.enable_grad",
            "torch.autograd.set_grad_enabled",
            "torch.autograd.grad_mode.no_grad",
            "torch.autograd.grad_mode.enable_grad",
            "torch.autograd.grad_mode.set_grad_enabled",
            "torch.autograd.grad_mode.inference_mode",
            "torch._C._set_grad_enabled",
            "torch.autograd.forward_ad.dual_level",
        }
    ),
    "inference": frozenset({"torch.inference_mode", "torch.autograd.grad_mode.inference_mode", "torch.autograd.inference_mode"}),
    "autocast": frozenset(
        {
            "torch.autocast",
            "torch.amp.autocast",
            "torch.cuda.amp.autocast",
            "torch.cpu.amp.autocast",
            "torch.set_autocast_enabled",
            "torch.amp.autocast_mode.autocast",
        }
    ),
    "script": frozenset(),
    "trace": frozenset(),
    "compile": frozenset(),
}


def grad_query(ctx, node: cst.CSTNode) -> Optional[str]:
    """`torch.is_grad_enabled()` / `torch.is_inference_mode_enabled()` calls and `<x>.requires_grad` reads."""
    if isinstance(node, cst.Call):
        func = node.func
        last = func.attr.value if isinstance(func, cst.Attribute) else func.value if isinstance(func, cst.Name) else None
        if last in ("is_grad_enabled", "is_inference_mode_enabled", "_is_inference_mode_enabled"):
            q = ctx.resolve(func)
            if q in GRAD_QUERY_FUNCS:
                return f"{ctx.module.code_for_node(func)}()"
        return None
    if isinstance(node, cst.Attribute) and node.attr.value == "requires_grad":
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

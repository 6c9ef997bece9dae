from __future__ import annotations

from typing import Dict, FrozenSet, Optional, Tuple

import libcst as cst

from modelint.analysis.calls import NOT_LITERAL, callee_name, literal_value
from modelint.analysis.gradmode import names_checkpoint
from modelint.analysis.walk import descendants
from modelint.fixes import InsertBefore, Replace, fix, fresh_name
from modelint.rules.base import Rule, measured_set6, remeasured_2026_12_02, remeasured_2026_12_03

_COMPREHENSIONS = (cst.ListComp, cst.SetComp, cst.DictComp, cst.GeneratorExp)
_SCOPES = (cst.FunctionDef, cst.Lambda, cst.ClassDef)
_STATE_WORDS = {
    "grad": "grad mode",
    "inference": "inference mode",
    "autocast": "autocast state",
    "script": "whether the code is being scripted",
    "trace": "whether the code is being traced",
    "compile": "whether the code is being compiled",
}


def _loop_of(ancestors) -> Optional[cst.CSTNode]:
    """The innermost loop (for/while/comprehension) of the current function whose body repeats the
    current node, or None. `for x in <iter>` and the first `for` of a comprehension evaluate their
    iterable once; `else:` blocks run once."""
    for i in range(len(ancestors) - 2, -1, -1):
        node, child = ancestors[i], ancestors[i + 1]
        if isinstance(node, _SCOPES):
            return None
        if isinstance(node, cst.For):
            if child is node.body:
                return node
        elif isinstance(node, cst.While):
            if child is node.body or child is node.test:
                return node
        elif isinstance(node, _COMPREHENSIONS):
            # child is the element / key / value (repeats) or the outermost CompFor
            if child is not node.for_in:
                return node
        elif isinstance(node, cst.CompFor):
            if child is not node.iter:
                # ifs, the inner for: repeat; the parent comprehension is the loop
                for j in range(i - 1, -1, -1):
                    if isinstance(ancestors[j], _COMPREHENSIONS):
                        return ancestors[j]
                return None
            # the iterable of an inner `for` repeats; of the outermost one, it does not
            parent = ancestors[i - 1] if i >= 1 else None
            if isinstance(parent, cst.CompFor):
                for j in range(i - 1, -1, -1):
                    if isinstance(ancestors[j], _COMPREHENSIONS):
                        return ancestors[j]
    return None


class ModeQueryInLoop(Rule):
    code = "MDL401"
    name = "mode-query-in-loop"
    level = "info"
    default = False  # issue 15's measuring set: see the end of `what`
    summary = "A global mode query (`torch.is_grad_enabled()`, `torch.jit.is_scripting()`, ...) is re-evaluated on every loop iteration."
    what = (
        "Reports calls that query global mode state - `torch.is_grad_enabled`, "
        "`torch.is_inference_mode_enabled`, `torch.is_autocast_enabled`, `torch.jit.is_scripting`, "
        "`torch.jit.is_tracing`, `torch.compiler.is_compiling`, `torch._dynamo.is_compiling` - evaluated in "
        "the body of a `for`/`while` loop or the element / condition of a comprehension, when nothing in "
        "that loop changes the state queried: a `with torch.no_grad()` / `enable_grad()` / "
        "`set_grad_enabled(...)` / `inference_mode()` (for grad and inference mode) or `autocast(...)` (for "
        "autocast) inside the loop makes the query loop-variant and it is not reported. Nothing inside a "
        "loop can change whether the code is being scripted, traced or compiled. Reading `self.training` is "
        "an attribute read, not a call, and is not reported; nor is a query whose argument reads a name the "
        "loop binds (`for dev in devices: torch.is_autocast_enabled(dev)`), which asks something else on "
        "each iteration. Neither is `torch.jit.is_scripting()` written in "
        "an `if`/`while`/conditional-expression test (alone or under `not`/`and`/`or`): TorchScript skips "
        "compiling the branch it rules out only when the call stands in the test itself, so hoisting it "
        "would break `torch.jit.script` on code like `if not torch.jit.is_scripting(): checkpoint(...)`. "
        "The gradient-checkpointing switch in a loop "
        "over layers (`if self.gradient_checkpointing and torch.is_grad_enabled():`, any test or assignment "
        "that names a `*checkpoint*` flag) is not reported by default: it is in nearly every model of timm, "
        "diffusers and transformers, costs one call per layer next to the layer itself, and hoisting it is "
        "pure style; set `report-checkpointing = true` to see those too."
    )
    what += (
        " "
        'Off by default: on the measuring set (26 code bases never used to develop it: 17 repositories '
        'with training scripts and 9 model packages; `bench/precision.py`, verdicts with reasons in '
        '`bench/verdicts/measuring.tsv`) it reached 91% real-or-deliberate (32 findings: 29 real, 3 '
        'false), below the 95% a default rule needs. Select it with `--select` or `extend-select`.'
    )
    what += remeasured_2026_12_02(
        set3=('no finding'),
        set2=('no finding'),
    )
    what += remeasured_2026_12_03(set4="no finding", set5="no finding")
    what += measured_set6("no finding")
    why = (
        "Each query is a call into the dispatcher (and a graph break risk under some tracers); inside a "
        "loop over layers, time steps or tokens it is paid on every iteration for an answer that cannot "
        "change. Decide the mode once before the loop and reuse the local. This is a performance hint: the "
        "result is the same either way."
    )
    example = (
        "def greedy_decode(model, h, steps):\n"
        "    tokens = []\n"
        "    for _ in range(steps):\n"
        "        h = model.cell(model.embed(tokens[-1] if tokens else model.bos), h)\n"
        "        if torch.is_grad_enabled():\n"
        "            h = h.clone()  # keep the graph of every step\n"
        "        tokens.append(model.out(h).argmax(-1))\n"
        "    return tokens\n"
    )
    use_instead = (
        "def greedy_decode(model, h, steps):\n"
        "    keep_graph = torch.is_grad_enabled()\n"
        "    tokens = []\n"
        "    for _ in range(steps):\n"
        "        h = model.cell(model.embed(tokens[-1] if tokens else model.bos), h)\n"
        "        if keep_graph:\n"
        "            h = h.clone()\n"
        "        tokens.append(model.out(h).argmax(-1))\n"
        "    return tokens\n"
    )
    options_schema = {"report-checkpointing": False}
    option_docs = {
        "report-checkpointing": "Also report grad-mode queries in loops that decide gradient checkpointing "
        "(`if self.gradient_checkpointing and torch.is_grad_enabled():` per layer), a common and cheap idiom.",
    }
    fix_safety = (
        "Reads the query into a local before the (outermost unchanged) loop. Safe for `is_compiling()`, "
        "`is_tracing()`, `is_scripting()`, whose answer cannot change during a call, and for loops that call "
        "nothing else; unsafe otherwise, because a function called in the loop could switch the state "
        "without restoring it."
    )
    fixable = True
    triggers = ("is_grad_enabled", "is_inference_mode_enabled", "is_autocast", "get_autocast", "is_scripting",
                "is_tracing", "_get_tracing_state", "is_compiling", "is_dynamo_compiling")

    VALID = (
        """
import torch

def rollout(policy, env, steps):
    grad = torch.is_grad_enabled()            # hoisted
    for t in range(steps):
        with torch.no_grad():
            a = policy(env.obs)
        if torch.is_grad_enabled():           # the loop switches grad mode: loop-variant
            env.record(a)
        if grad:
            env.step(a)
    for layer in policy.layers:
        if not torch.jit.is_scripting():      # TorchScript compiles away the other branch: keep it here
            env.obs = torch.utils.checkpoint.checkpoint(layer, env.obs)
    for x in [1, 2] if torch.jit.is_scripting() else [3]:   # the iterable is evaluated once
        print(x)
    else:
        torch.is_grad_enabled()               # `else:` runs once

def checkpointed(layers, x, gradient_checkpointing):
    for layer in layers:                      # the checkpointing idiom: not reported by default
        if gradient_checkpointing and torch.is_grad_enabled():
            x = torch.utils.checkpoint.checkpoint(layer, x, use_reentrant=False)
        else:
            x = layer(x)
    return [y for y in x if self.grad_checkpointing and not torch.jit.is_scripting()]

def mixed(model, xs):
    for x in xs:
        with torch.autocast("cuda", enabled=x.is_cuda):
            if torch.is_autocast_enabled():
                model(x)
        def inner():                          # a nested function is not the loop body
            return torch.jit.is_tracing()
        inner()
""",
        # an argument that changes per iteration asks a different question each time
        """
import torch

def autocast_report(devices, model):
    states = [torch.is_autocast_enabled(d) for d in devices]
    for dev in devices:
        if torch.is_autocast_enabled(dev):
            model.log(dev, torch.get_autocast_dtype(dev))
    for i, (name, kind) in enumerate(model.targets):
        model.log(name, torch.get_autocast_dtype(kind))
    for step in range(3):
        kind = model.kinds[step]
        model.log(step, torch.is_autocast_enabled(device_type=kind))
    return states
""",
    )
    INVALID = (
        """
import torch
from torch import nn

class Encoder(nn.Module):
    def forward(self, x):
        for layer in self.layers:
            if self.cache is not None and torch.is_grad_enabled():  # expect: MDL401
                x = self.cache.pop()
            elif not torch.jit.is_tracing():  # expect: MDL401
                x = layer(x)
            scripted = torch.jit.is_scripting()  # expect: MDL401
        outs = [h for h in x if not torch.compiler.is_compiling()]  # expect: MDL401
        while torch.is_inference_mode_enabled() and x.shape[0] > 1:  # expect: MDL401
            x = x[1:]
        return outs
""",
        """
import torch
from torch.jit import is_tracing

def decode(model, tokens):
    for step in range(10):
        with torch.autocast("cuda"):                # changes autocast, not grad mode
            if torch.is_grad_enabled():  # expect: MDL401
                tokens = model(tokens)
        if is_tracing():  # expect: MDL401
            break
    return [[t for t in row if torch._dynamo.is_compiling()] for row in tokens]  # expect: MDL401
""",
        # the argument does not change in the loop; neither does the answer
        """
import torch

class Mixed(torch.nn.Module):
    def forward(self, x):
        dev = x.device.type
        for blk in self.blocks:
            self.last = blk
            if torch.is_autocast_enabled(dev):  # expect: MDL401
                x = blk(x.float())
            if torch.is_autocast_enabled(self.device_type):  # expect: MDL401
                x = blk(x)
        return [m(x) for m in self.heads if torch.is_grad_enabled()]  # expect: MDL401
""",
    )

    FIXES = (
        (
            """
import torch

def run(layers, x):
    for layer in layers:
        for i in range(3):
            if not torch.compiler.is_compiling() and x.is_cpu:
                x = x + i
            if not torch.jit.is_scripting():  # TorchScript needs this one in place
                x = layer(x)
    return x
""",
            """
import torch

def run(layers, x):
    compiling = torch.compiler.is_compiling()
    for layer in layers:
        for i in range(3):
            if not compiling and x.is_cpu:
                x = x + i
            if not torch.jit.is_scripting():  # TorchScript needs this one in place
                x = layer(x)
    return x
""",
        ),
    )
    UNSAFE_FIXES = (
        (
            """
import torch

def decode(model, h, steps):
    for _ in range(steps):
        h = model(h)
        if torch.is_grad_enabled():
            h = h.clone()
    return h
""",
            """
import torch

def decode(model, h, steps):
    grad_enabled = torch.is_grad_enabled()
    for _ in range(steps):
        h = model(h)
        if grad_enabled:
            h = h.clone()
    return h
""",
        ),
    )

    def __init__(self, ctx, options=None):
        super().__init__(ctx, options)
        self._variant: Dict[Tuple[int, str], bool] = {}
        self._bound: Dict[int, FrozenSet[str]] = {}

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        if callee_name(node) not in self.ctx.framework.mode_query_last_names:
            return
        state = self.ctx.framework.mode_queries.get(self.ctx.resolve(func) or "")
        if state is None:
            return
        loop = _loop_of(self.ctx.ancestors)
        if loop is None or self._loop_changes(loop, state) or self._argument_varies(node, loop):
            return
        if state == "script" and _in_condition(self.ctx.ancestors):
            return  # TorchScript drops the unscriptable branch only when the call is written in the test
        if not self.options["report-checkpointing"] and self._checkpointing_switch(loop):
            return
        shown = self.ctx.module.code_for_node(func)
        kind = {cst.For: "`for` loop", cst.While: "`while` loop"}.get(type(loop), "comprehension")
        self.report(
            node,
            f"`{shown}()` is called on every iteration of this {kind}, but nothing in the loop changes "
            f"{_STATE_WORDS[state]}: read it once before the loop and reuse the local",
            fix=self._hoist(node, loop, state),
        )

    # --- the fix ---------------------------------------------------------------------------------
    def _hoist(self, call: cst.Call, loop: cst.CSTNode, state: str):
        """Read the query into a local before the outermost loop that cannot change the state, and
        use the local in the loop. Safe for scripting / tracing / compiling (nothing at run time
        changes them); for grad, inference and autocast state, safe only when the loop calls
        nothing else (a called function could switch the state and not restore it), else unsafe."""
        if any(a.keyword is not None or a.star or literal_value(a.value) is NOT_LITERAL
               and not isinstance(a.value, cst.SimpleString) for a in call.args):
            return None  # arguments that may vary per iteration
        text = self.ctx.module.code_for_node(call)
        if "\n" in text or "\r" in text:
            return None
        anc = self.ctx.ancestors
        index = {id(n): i for i, n in enumerate(anc)}
        while True:  # widen to enclosing loops that repeat this one and do not change the state either
            outer = _loop_of(anc[: index[id(loop)] + 1])
            if outer is None or self._loop_changes(outer, state):
                break
            loop = outer
        # the statement holding the loop, directly in a block of the same scope
        stmt = block = None
        for i in range(index[id(loop)], 0, -1):
            node, parent = anc[i], anc[i - 1]
            if i < index[id(loop)] and isinstance(node, _SCOPES):
                return None
            if isinstance(node, (cst.SimpleStatementLine, cst.BaseCompoundStatement)) and isinstance(
                    parent, (cst.IndentedBlock, cst.Module)):
                stmt, block = node, parent
                break
        if stmt is None or isinstance(self.ctx.enclosing(*_SCOPES), cst.ClassDef):
            return None  # a class body's names are not visible inside its comprehensions
        scope = self.ctx.enclosing(cst.FunctionDef, cst.Lambda) or self.ctx.module
        position = next(i for i, s in enumerate(block.body) if s is stmt)
        previous = block.body[position - 1] if position else None
        name = _assigned_from(previous, text)
        changes: list = [Replace(call, name)] if name else []
        if not name:
            func = call.func.attr.value if isinstance(call.func, cst.Attribute) else call.func.value
            name = fresh_name(scope, func.removeprefix("is_").removeprefix("get_").lstrip("_") or "mode_state")
            changes = [InsertBefore(stmt, (f"{name} = {text}",)), Replace(call, name)]
        safe = state in ("script", "trace", "compile") or not any(
            isinstance(n, cst.Call) and self.ctx.framework.mode_queries.get(self.ctx.resolve(n.func) or "") is None
            for n in descendants(loop))
        title = f"Read `{text}` once into `{name}` before the loop"
        if not safe:
            title += " (unsafe: a function called in the loop could switch this state without restoring it)"
        return fix(title, *changes, safe=safe)

    def _checkpointing_switch(self, loop: cst.CSTNode) -> bool:
        """Is the query part of a gradient-checkpointing decision (`self.gradient_checkpointing and
        torch.is_grad_enabled()`, `use_checkpoint = ... and not torch.jit.is_scripting()`)?"""
        anc = self.ctx.ancestors
        for i in range(len(anc) - 2, -1, -1):
            node = anc[i]
            if node is loop or isinstance(node, (cst.BaseSmallStatement, cst.BaseCompoundStatement)):
                expr = None
                if isinstance(node, (cst.If, cst.While)):
                    expr = node.test
                elif isinstance(node, (cst.Assign, cst.AnnAssign, cst.AugAssign, cst.Expr, cst.Return)):
                    expr = node
                return expr is not None and names_checkpoint(expr)
            if isinstance(node, (cst.IfExp, cst.CompIf)) and anc[i + 1] is node.test:
                return names_checkpoint(node.test)
        return False

    def _argument_varies(self, call: cst.Call, loop: cst.CSTNode) -> bool:
        """Does an argument read a name the loop binds (`for dev in ("cuda", "cpu"):
        torch.is_autocast_enabled(dev)`)? Then each iteration asks about something else: the query is
        not loop-invariant, and there is no single answer to hoist."""
        if not call.args:
            return False
        key = id(loop)
        bound = self._bound.get(key)
        if bound is None:
            bound = self._bound[key] = _names_bound_in(loop)
        return any(isinstance(n, cst.Name) and n.value in bound for a in call.args for n in descendants(a.value))

    def _loop_changes(self, loop: cst.CSTNode, state: str) -> bool:
        state_setters = self.ctx.framework.state_setters
        setters = state_setters[state] | (state_setters["inference"] if state == "grad" else frozenset())
        if state == "inference":
            setters = setters | state_setters["grad"]
        if not setters:
            return False
        key = (id(loop), state)
        if key not in self._variant:
            found = False
            for node in descendants(loop):
                if isinstance(node, cst.Call) and isinstance(node.func, (cst.Name, cst.Attribute)):
                    if self.ctx.resolve(node.func) in setters:
                        found = True
                        break
                elif isinstance(node, cst.FunctionDef):
                    # `@torch.no_grad()` on a function defined in the loop does not change the loop's state
                    continue
            self._variant[key] = found
        return self._variant[key]


def _assigned_from(stmt, text: str):
    """`name` if `stmt` is `name = <text>` (an earlier hoist of the same query), else None."""
    if isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 and isinstance(stmt.body[0], cst.Assign):
        assign = stmt.body[0]
        if (len(assign.targets) == 1 and isinstance(assign.targets[0].target, cst.Name)
                and cst.Module(body=[]).code_for_node(assign.value) == text):
            return assign.targets[0].target.value
    return None


def _in_condition(ancestors) -> bool:
    """Is the current node (a call) the test of an if / while / conditional expression, possibly
    under `not`, `and`, `or` and parentheses?"""
    child = ancestors[-1]
    for node in reversed(ancestors[:-1]):
        if isinstance(node, (cst.If, cst.While, cst.IfExp)):
            return node.test is child
        if isinstance(node, cst.CompIf):
            return node.test is child
        if isinstance(node, (cst.BooleanOperation, cst.UnaryOperation)):
            if isinstance(node, cst.UnaryOperation) and not isinstance(node.operator, cst.Not):
                return False
            child = node
            continue
        return False
    return False


def _names_bound_in(loop: cst.CSTNode) -> FrozenSet[str]:
    """Names a loop (re)binds on each iteration: its targets (`for x in`, a comprehension's `for`s),
    and assignments, `with ... as`, walrus and inner loop targets in its body."""
    out = set()
    for node in descendants(loop):
        targets = ()
        if isinstance(node, (cst.For, cst.CompFor)):
            targets = (node.target,)
        elif isinstance(node, cst.Assign):
            targets = tuple(t.target for t in node.targets)
        elif isinstance(node, (cst.AugAssign, cst.AnnAssign, cst.NamedExpr)):
            targets = (node.target,)
        elif isinstance(node, cst.AsName):
            targets = (node.name,)
        stack = list(targets)
        while stack:  # names only: `self.x = ...` binds no local (and `self` would match every read)
            target = stack.pop()
            if isinstance(target, cst.Name):
                out.add(target.value)
            elif isinstance(target, (cst.Tuple, cst.List)):
                stack.extend(e.value for e in target.elements)
            elif isinstance(target, cst.StarredElement):
                stack.append(target.value)
    return frozenset(out)

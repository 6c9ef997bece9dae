"""The mode sensitivity of the model a *name* holds in a scope (MDL302, MDL303, MDL304, MDL205).

`analysis.sensitivity` answers for a class or a construction (`Net(...)`). A call-site rule sees a
name (`model` in `def test(model, loader)`, `self.net` in a wrapper's method) and needs the answer
for whatever that name was built from. `KeySensitivity(ctx, mf).of(scope, key)` follows, in this file:

- the bindings of `key` in `scope` (`ScopeFlow.bindings`): a construction is asked directly (both
  arms of a conditional expression); a rebinding to another name follows that name; a pass-through
  rebinding that is handed `key` itself (`model = accelerator.prepare(model)`,
  `model, opt, dl = engine.make_private(module=model, ...)`,
  `model = DDP(model)`: the wrapped model computes the same thing), and `model = model.to(device)`,
  leave the earlier binding to decide (a parameter rebound only so is decided by its callers); a pass-through wrapper of the profile around anything (`DataParallel(Net())`,
  `torch.compile(net)`) takes what it wraps;
- a parameter with no binding: what every caller in this file passes (a plain function by name, a
  method by `.name(...)` calls, `__init__` by constructions of its class), each caller's argument
  followed in the caller's scope; `state.net` where `state = SimpleNamespace(net=model)` is `model`;
- `self.<attr>` in a method that does not bind it: its binding in the class's `__init__`;
- `self` of a method of a module class: that class's answer.

Answers: "yes" when any source is "yes"; "no" only when every source is seen and "no"; "unknown"
otherwise (a name with no binding and no caller, a loop target, a call that does not show what it
builds, more than `MAX_DEPTH` hops). Callers in other files are not followed.
"""

from __future__ import annotations

from typing import Dict, FrozenSet, List, Optional, Tuple

import libcst as cst

from modelint.analysis.calls import callee_name, dotted
from modelint.analysis.classbodies import bodies_of
from modelint.analysis.classes import is_decorated_with
from modelint.analysis.index import passed_argument
from modelint.analysis.sensitivity import analysis_for
from modelint.analysis.modeflow import MODEL_NAME, ModeFlow, ScopeFlow, peel
from modelint.analysis.walk import children

MAX_DEPTH = 3  # hops through names and callers (MDL302 measured with 3)
Calls = Dict[str, List[Tuple[cst.Call, Optional[cst.CSTNode]]]]


def bound_expr(node: cst.CSTNode, key: str) -> Optional[cst.CSTNode]:
    """The expression a binding statement gives `key`: `key = value`; `key, opt = call(...)` -> the
    call; `a, key = x, y` -> `y`. None for loop targets, `with ... as key` and the like."""
    if isinstance(node, cst.AnnAssign):
        return node.value if dotted(node.target) == key else None
    if not isinstance(node, cst.Assign):
        return None
    for target in node.targets:
        t = target.target
        if dotted(t) == key:
            return node.value
        if isinstance(t, (cst.Tuple, cst.List)):
            i = next((j for j, e in enumerate(t.elements) if dotted(e.value) == key), None)
            if i is None:
                continue
            if isinstance(node.value, (cst.Tuple, cst.List)) and len(node.value.elements) == len(t.elements):
                return node.value.elements[i].value
            return node.value if isinstance(node.value, cst.Call) else None
    return None


def held_attribute(flow: ScopeFlow, key: str) -> str:
    """`state.net` where `state = SimpleNamespace(net=model)` (bound once in the scope): `model`."""
    root, _, attr = key.partition(".")
    bindings = flow.bindings.get(root, ())
    if not attr or "." in attr or len(bindings) != 1:
        return key
    value = bound_expr(bindings[0].node, root)
    if isinstance(value, cst.Call):
        for arg in value.args:
            if arg.keyword is not None and arg.keyword.value == attr:
                return dotted(peel(arg.value)) or key
    return key


def calls_by_name(module: cst.Module) -> Calls:
    """Every call of the module by its callee's last name, with the function it is made in (None at
    top level): one walk, for the caller lookups of parameters."""
    out: Calls = {}
    stack: List[Tuple[cst.CSTNode, Optional[cst.CSTNode]]] = [(module, None)]
    while stack:
        node, scope = stack.pop()
        for child in _own(node):
            if isinstance(child, cst.FunctionDef):
                stack.append((child, child))
            elif isinstance(child, cst.Call):
                name = callee_name(child)
                if name is not None:
                    out.setdefault(name, []).append((child, scope))
    return out


def _own(root: cst.CSTNode):
    """The nodes below `root` that are not inside a nested function (those are yielded, not entered)."""
    stack = list(reversed(children(root)))
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, cst.FunctionDef):
            stack.extend(reversed(children(node)))


class KeySensitivity:
    """Answers for one file (`calls`: the rule's own calls-by-name index when it keeps one)."""

    def __init__(self, ctx, mf: ModeFlow, calls: Optional[Calls] = None):
        self.ctx = ctx
        self.mf = mf
        self._calls = calls
        self._active: set = set()  # (id(scope), key) being answered: a binding that refers to itself

    @property
    def calls(self) -> Calls:
        if self._calls is None:
            self._calls = calls_by_name(self.mf.module)
        return self._calls

    def wrappers(self) -> FrozenSet[str]:
        """Wrappers that run the model they are given (DDP, `torch.compile`, `accelerator.prepare`);
        not `deepcopy` here (a copy bound back to the same name is another model)."""
        return self.ctx.framework.mode_delegating_wrappers - {"deepcopy"}

    def of(self, scope: cst.CSTNode, key: str, depth: int = 0) -> str:
        """"yes" / "no" / "unknown" for the model `key` holds in `scope` (see the module docstring)."""
        flow = self.mf.flow(scope)
        if flow is None or depth > MAX_DEPTH:
            return "unknown"
        asked = (id(scope), key)
        if asked in self._active:
            return "no"  # `model = Wrapper(model)` asks about `model` again: its other bindings decide
        self._active.add(asked)
        try:
            return self._of_bindings(flow, scope, key, depth)
        finally:
            self._active.discard(asked)

    def _of_bindings(self, flow: ScopeFlow, scope: cst.CSTNode, key: str, depth: int) -> str:
        answers: List[str] = []
        for binding in flow.bindings.get(key, ()):
            expr = bound_expr(binding.node, key)
            if expr is None:
                return "unknown"
            answer = self._of_value(scope, key, peel(expr), depth)
            if answer is not None:
                answers.append(answer)
        # no answer: no binding, or only pass-through rebindings (`model = model.to(rank)`, `DDP(model)`)
        if not answers and isinstance(scope, cst.FunctionDef):
            own = self._receiver(scope, key) if key in flow.params else None
            if own is not None:
                answers.append(own)
            elif key in flow.params:
                answers.extend(self._callers(scope, key, depth))
            elif key.startswith("self."):
                init = self._init_of(scope)
                if init is not None and init is not scope:
                    answers.append(self.of(init, key, depth + 1))
            elif "." not in key and key not in flow.bindings:  # a script's global `model = Net()`
                answers.append(self.of(self.mf.module, key, depth + 1))
        if "yes" in answers:
            return "yes"
        return "no" if answers and all(a == "no" for a in answers) else "unknown"

    def _of_value(self, scope: cst.CSTNode, key: str, expr: cst.CSTNode, depth: int) -> Optional[str]:
        """One binding's answer; None for a pass-through rebinding (an earlier binding decides)."""
        if isinstance(expr, cst.IfExp):  # `Noisy() if flag else Flat()`: either may be built
            both = [self._of_value(scope, key, peel(e), depth) for e in (expr.body, expr.orelse)]
            return "yes" if "yes" in both else "no" if all(a in ("no", None) for a in both) else "unknown"
        source = dotted(expr)
        if source is not None:  # `model = model.to(dev)`: the earlier binding (or the callers) decides
            return None if source == key else self.of(scope, source, depth + 1)
        if self._pass_through(expr, key):
            return None
        copied = self._copied(expr)
        if copied is not None:  # `ema = copy.deepcopy(net)`: another model, but built like `net`
            return None if copied == key else self.of(scope, copied, depth + 1)
        passed = self._passed(expr)
        if self._is_wrapper(expr) or passed is not None:
            # `DataParallel(Net())`, `torch.compile(model)`, `trans_to_cuda(Net())`: what it wraps or passes
            inner = peel(passed if passed is not None else expr.args[0].value)
            source = dotted(inner)
            if source == key:
                return None  # `model = DDP(model)`: the earlier binding decides
            return self.of(scope, source, depth + 1) if source else self.ctx.mode_sensitivity(inner).answer
        if self._plain_holder(expr):
            return self._of_plain_holder(scope, expr, depth)
        classes = self._class_alias(scope, expr)
        if classes:  # `model_func = GCN` ... `model_func(input_dim=d)`: each class, with these arguments
            call_text = self.mf.module.code_for_node(expr)[len(expr.func.value):]
            analysis = analysis_for(self.ctx.classifier)
            each = [analysis.of_expression(cls + call_text, self.ctx.facts).answer for cls in classes]
            return "yes" if "yes" in each else "no" if all(a == "no" for a in each) else "unknown"
        return self.of_construction(scope, expr, depth)

    def _class_alias(self, scope: cst.CSTNode, expr: cst.CSTNode) -> List[str]:
        """The classes a called name is bound to, when each of its bindings (in the scope, else at
        module level) names a module class: `if args.model == "gcn": model_func = GCN` / `else:
        model_func = MLP`, then `model = model_func(input_dim=d)` (set 19's text_gcn). [] otherwise."""
        if not (isinstance(expr, cst.Call) and isinstance(expr.func, cst.Name)):
            return []
        name = expr.func.value
        flows = [self.mf.flow(scope)] + ([self.mf.flow(self.mf.module)] if scope is not self.mf.module else [])
        bindings = next((f.bindings[name] for f in flows if f is not None and f.bindings.get(name)), ())
        out: List[str] = []
        for binding in bindings:
            value = bound_expr(binding.node, name)
            text = dotted(value) if value is not None else None
            qual = self.ctx.resolve(value) if text else None
            if not qual or not (self.ctx.classifier.is_module_base(qual) or self.ctx.framework.is_layer_class(qual)):
                return []
            out.append(text)
        return out

    def _of_plain_holder(self, scope: cst.CSTNode, expr: cst.Call, depth: int) -> str:
        """`Learner(net, opt)`, a wrapper object that is not a module: "yes" / "unknown" when a
        parameter it keeps is handed a name that holds (or, named like a model, may hold) a model;
        otherwise its class answer (`KGModel(args, n_entities)` keeping a config and sizes is what
        its own attributes build). "unknown" when its class body was not read."""
        q = self.ctx.resolve(expr.func)
        located = analysis_for(self.ctx.classifier).locate(q, self.ctx.facts) if q else None
        if located is None or bodies_of(located[0]).get(located[1]) is None:
            return "unknown"
        held = self.sensitive_kept(scope, expr, depth, is_model=lambda k: bool(MODEL_NAME.search(k)))
        if held:
            return "yes" if any(self.of(scope, k, depth + 1) == "yes" for k in held) else "unknown"
        return self.ctx.mode_sensitivity(expr).answer

    def of_construction(self, scope: cst.CSTNode, expr: cst.CSTNode, depth: int = 0) -> str:
        """A construction's answer in `scope`: the class answer, or "yes" when the class keeps a
        parameter that is handed a name holding a mode-sensitive model here (`_keeps_sensitive_argument`)."""
        answer = self.ctx.mode_sensitivity(expr).answer
        if answer == "no" and self.sensitive_kept(scope, expr, depth):
            return "yes"
        return answer

    def sensitive_kept(self, scope: cst.CSTNode, expr: cst.CSTNode, depth: int = 0, is_model=None) -> List[str]:
        """The names a construction hands to parameters its class keeps (`self.model = model`) that hold
        a mode-sensitive model in `scope`: `Sampler(ema_model, steps)` with `ema_model =
        copy.deepcopy(net)` of a network with dropout. The class answer takes a kept name for a plain
        value ("no"). A name counts when its answer is "yes", or "unknown" while it is bound to a module
        construction (`UNet(dropout=args.p)`), or `is_model(key)` says so (a rule that knows the
        modes: a name bound to a model a helper built): an unknown loop count or config value does not."""
        if not isinstance(expr, cst.Call):
            return []
        q = self.ctx.resolve(expr.func)
        located = analysis_for(self.ctx.classifier).locate(q, self.ctx.facts) if q else None
        body = bodies_of(located[0]).get(located[1]) if located else None
        if body is None or not body.kept:
            return []
        kept = {p for p, _ in body.kept}
        params = [p for p, _ in body.params]
        out: List[str] = []
        for i, arg in enumerate(expr.args):
            name = arg.keyword.value if arg.keyword is not None else params[i] if i < len(params) and not arg.star else None
            key = dotted(peel(arg.value))
            if name not in kept or not key:
                continue
            answer = self.of(scope, key, depth + 1)
            if answer == "yes" or (answer == "unknown" and (self._holds_module(scope, key) or (is_model and is_model(key)))):
                out.append(key)
        return out

    def holds_module(self, scope: cst.CSTNode, key: str) -> bool:
        """`key` is bound in `scope` to a construction of a module class, or to a copy of one (a model)."""
        return self._holds_module(scope, key)

    def _holds_module(self, scope: cst.CSTNode, key: str, depth: int = 0) -> bool:
        """`key` is bound in `scope` to a construction of a module class (`UNet(dropout=args.p)`), or
        to a copy of such a name: a model, whose "unknown" is a model's, not a loop count's."""
        flow = self.mf.flow(scope)
        if flow is None or depth > MAX_DEPTH:
            return False
        for binding in flow.bindings.get(key, ()):
            expr = bound_expr(binding.node, key)
            expr = peel(expr) if expr is not None else None
            copied = self._copied(expr) if expr is not None else None
            if copied is not None and copied != key and self._holds_module(scope, copied, depth + 1):
                return True
            q = self.ctx.resolve(expr.func) if isinstance(expr, cst.Call) else None
            if q and (self.ctx.classifier.is_module_base(q) or self.ctx.framework.is_layer_class(q)):
                return True
        return False

    def _plain_holder(self, expr: cst.CSTNode) -> bool:
        """`Learner(net, opt)`: a checked class that is not a module, handed a name. Class sensitivity
        takes its unannotated kept parameters for plain values (`analysis.sensitivity`), so it says
        "no"; but such a wrapper object may keep the network it is given (`self.image_net = net`)."""
        if not isinstance(expr, cst.Call) or not any(
            dotted(peel(a.value)) not in (None, "None", "True", "False") for a in expr.args
        ):
            return False
        q = self.ctx.resolve(expr.func)
        index = self.ctx.classifier.index
        located = index.locate(q) if q else None
        return located is not None and located[1] in located[0].classes and not self.ctx.classifier.is_module_base(q)

    def _pass_through(self, expr: cst.CSTNode, key: str) -> bool:
        """A call that is given `key` itself (positionally or by keyword) and whose result is bound
        back to `key`: not a construction of a new class of the project."""
        if not isinstance(expr, cst.Call) or not any(dotted(peel(a.value)) == key for a in expr.args):
            return False
        name = callee_name(expr) or ""
        return name in self.wrappers() or not name[:1].isupper()

    def _copied(self, expr: cst.CSTNode) -> Optional[str]:
        """The name `copy.deepcopy(name)` copies (under any import spelling), else None."""
        if not (isinstance(expr, cst.Call) and len(expr.args) == 1 and expr.args[0].keyword is None and not expr.args[0].star):
            return None
        resolved = self.ctx.resolve(expr.func) or ""
        if resolved.rsplit(".", 1)[-1] != "deepcopy" or "deepcopy" not in self.ctx.framework.mode_delegating_wrappers:
            return None
        return dotted(peel(expr.args[0].value))

    def _is_wrapper(self, expr: cst.CSTNode) -> bool:
        """`DDP(model)` (also imported under another name), `torch.compile(Net())`."""
        if not (isinstance(expr, cst.Call) and expr.args and not expr.args[0].star and expr.args[0].keyword is None):
            return False
        resolved = self.ctx.resolve(expr.func) or ""
        return (callee_name(expr) or "") in self.wrappers() or resolved.rsplit(".", 1)[-1] in self.wrappers()

    def _passed(self, expr: cst.CSTNode) -> Optional[cst.CSTNode]:
        """The argument a pass-through helper of the project hands back (`to_device(Net())`, the
        index's `passes`), else None."""
        if not isinstance(expr, cst.Call):
            return None
        qual = self.ctx.resolve(expr.func) or ""
        if qual and "." not in qual:  # a function of this file, or of a `from helpers import *`
            qual = f"{self.ctx.facts.modname}.{qual}"
        i = passed_argument(self.ctx.classifier.index, qual)
        positional = [a for a in expr.args if a.keyword is None]
        if i is None or len(positional) <= i or any(a.star for a in positional[: i + 1]):
            return None
        return positional[i].value

    def _receiver(self, fn: cst.FunctionDef, key: str) -> Optional[str]:
        """`self` of a method of a module class: that class's answer (its constructor's arguments
        unbound), unless a checked class derives from it (a base class's `fit` runs the subclasses'
        layers: deepctr's BaseModel holds no dropout, its models do); None: the callers decide."""
        cls = self.mf.index.method_class.get(id(fn))
        params = fn.params.params
        if cls is None or not params or params[0].name.value != key or is_decorated_with(fn, "staticmethod"):
            return None
        if not self.ctx.is_module_class(cls):
            return None  # a plain wrapper's `self`: what it holds decides (`self.net`)
        name = cls.name.value
        if self.mf.index.class_parent.get(id(cls)) is not self.mf.module:
            return None  # a nested class: not located by name here
        answer = analysis_for(self.ctx.classifier).of_class(f"{self.ctx.facts.modname}.{name}", None, self.ctx.facts).answer
        if answer == "no" and (self._derived_here(name) or self.ctx.classifier.index.has_subclass(self.ctx.facts, name)):
            return None
        return answer

    def _derived_here(self, name: str) -> bool:
        return any(name in (b.rsplit(".", 1)[-1] for b in bases) for bases in self.ctx.facts.classes.values())

    def _init_of(self, fn: cst.FunctionDef) -> Optional[cst.FunctionDef]:
        method = self.mf.index.method_owner(fn)
        if method is None:
            return None
        return self.mf.index.find_method(self.mf.index.method_class[id(method)], "__init__")

    def _callers(self, fn: cst.FunctionDef, param: str, depth: int) -> List[str]:
        positional = [p.name.value for p in (*fn.params.posonly_params, *fn.params.params)]
        is_method = id(fn) in self.mf.index.method_class and not is_decorated_with(fn, "staticmethod")
        constructor = is_method and fn.name.value == "__init__"
        if is_method:
            positional = positional[1:]
        name = self.mf.index.method_class[id(fn)].name.value if constructor else fn.name.value
        out: List[str] = []
        for call, scope in self.calls.get(name, ()):
            if not constructor and isinstance(call.func, cst.Attribute) != is_method:
                continue  # `model.train()` is not a call of a function `train(model, ...)`
            arg = next((a for a in call.args if a.keyword is not None and a.keyword.value == param), None)
            if arg is None and param in positional:
                plain = [a for a in call.args if a.keyword is None and not a.star]
                i = positional.index(param)
                arg = plain[i] if i < len(plain) else None
            where = scope if scope is not None else self.mf.module
            if arg is None:
                out.append("unknown")
                continue
            value = peel(arg.value)
            ckey = dotted(value)
            if ckey is None:
                out.append(self.ctx.mode_sensitivity(value).answer)
                continue
            caller = self.mf.flow(where)
            if caller is not None:
                ckey = held_attribute(caller, ckey)
            out.append(self.of(where, ckey, depth + 1))
        return out or ["unknown"]


def mode_free(ctx, mf: ModeFlow, scope: cst.CSTNode, key: str) -> bool:
    """The model `key` holds in `scope` has mode sensitivity "no" (no dropout, batch norm or mode
    branch in its construction tree: `self.criterion = nn.CrossEntropyLoss()`), through pass-through
    rebindings, wrappers and, for a parameter, this file's callers: its mode cannot be wrong. One
    KeySensitivity per file's ModeFlow (kept on it), so its calls-by-name walk of the module runs once."""
    keys = getattr(mf, "_mode_free_keys", None)
    if keys is None:
        keys = mf._mode_free_keys = KeySensitivity(ctx, mf)
    return keys.of(scope, key) == "no"

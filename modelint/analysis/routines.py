"""What kind of routine a function is (evaluation / training / both) and where its mode switches,
model runs and training steps are (MDL304, MDL205; reusable by the call-site rules).

`routine_facts(ctx, fn)` (memoised per function on the context) returns a `Routine`:
- `switches`: `X.train()` / `X.train(True|False|flag)` / `X.eval()` calls, with the key `X` (a name
  or attribute chain as written, subscripts of parts included: `model.layers[0]`, `part_key`) and
  the mode they set (True, False, None = a flag);
- `runs`: calls that run a model `X`: `X(...)`, `X.forward(...)`, `X.generate(...)` (transformers'
  `generate` does not switch to eval itself), each with whether it is under a no-grad context;
- `steps`: training steps: `backward()` calls (`loss.backward()`, `accelerator.backward(loss)`,
  Lightning's `manual_backward`), `torch.autograd.backward`, `<optimizer-like>.step()` (and a grad
  scaler's), a callable handed a loss and an optimizer (`loss_scaler(loss, optimizer)`), and calls
  of functions or methods of this file that reach one (two levels);
- `eval_signals`: why the routine is an evaluation / inference routine: a no-grad decorator
  (`@torch.no_grad()`, `@torch.inference_mode()`), a `with torch.no_grad()` / `inference_mode()` /
  `set_grad_enabled(False)` block that runs a model, `volatile=True` (pre-0.4 inference),
  `.generate(...)` / `.predict(...)` calls, and an evaluation-like name (`evaluate`, `validate`,
  `test_*`, `predict`, `infer*`, `inference`); the name alone counts only outside test suites;
- `kind`: "train" (an optimizer step, or a backward pass without any evaluation signal; no strong
  evaluation signal), "mixed" (both: a routine that trains and then evaluates, runs metrics under
  no_grad, or takes input gradients in an evaluation routine), "eval" (evaluation signals and no
  training step), or None. The name signal does not count for a `test*` function with `assert`s.

`unconditional(fn, node, parents)`: does `node` run on every path through `fn` up to it (not under
an `if`/loop/`except`/`match` arm of `fn`)? `order`: the preorder position of each node (source order).
Names of the no-grad contexts, backward and step methods come from the framework profile.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import libcst as cst

from modelint.analysis.calls import get_arg, literal_value
from modelint.analysis.classes import is_decorated_with
from modelint.analysis.context import dotted
from modelint.analysis.detached import detached_only
from modelint.analysis.modeflow import for_context, is_test_suite_file, optimizer_like, steps_loss, train_flag  # noqa: F401 (re-exported)
from modelint.analysis.walk import iter_children

_EVAL_NAME = re.compile(r"^_*(eval|valid|test|predict|infer(ence)?($|_)|inference)", re.IGNORECASE)
# `infer_shape`, `infer_dtype`, `infer_dependency_matrix`: "infer" meaning "deduce".
_DEDUCE = re.compile(r"^_*infer_(shape|dtype|type|size|dim|device|schema|output|dependenc)", re.IGNORECASE)
# `feature_evaluation`, `run_validation`: the last word says evaluation; not `train_and_evaluate`
# (a training routine that also evaluates, measuring set 4's VITS) and not `*_inference` (library
# helpers such as `sliding_window_inference` trust their caller's switch, measuring set 1's MONAI).
_EVAL_LAST_WORD = re.compile(r"^(?!.*(train|fit|learn)).*_(eval|evaluate|evaluation|validate|validation)$",
                             re.IGNORECASE)
# `dnn_test_model`, `run_test`, `net_evaluate`: an evaluation word after a one-word prefix, with at most
# an object word after it (set 17's upstream DnnBrain tested its model in `dnn_test_model`); not a
# prefix that trains, splits or fetches data (`train_test`, `unit_test`, `data_test_split`, `get_test`).
_EVAL_SECOND_WORD = re.compile(
    r"^(?!(train|fit|learn|unit|data|split|load|get|make|build|create|prepare|is|has|use|set)_)[a-z0-9]+_"
    r"(test|eval|evaluate|validate)(_(model|net|network|epoch|acc|accuracy|loop|step))?$", re.IGNORECASE)
# `predict_loss(predictor, ...)`, `infer_losses`: a loss of a predictor, computed for training (set 16's
# DF-GAN), not a prediction; `eval_loss` / `valid_loss` keep their evaluation word.
_PREDICTOR_LOSS = re.compile(r"^_*(predict|infer)\w*loss", re.IGNORECASE)
# `greedy_decode`, `beam_search`, `run_beam_decoding`: step-by-step decoding of a trained model, which
# is inference whatever calls it (harvardnlp's annotated-transformer decodes a reloaded model so).
_DECODING = re.compile(r"(^|_)(greedy|beam)(_|$)", re.IGNORECASE)
_CONDITIONAL = (cst.If, cst.For, cst.While, cst.ExceptHandler, cst.Else, cst.Match, cst.IfExp,
                cst.BooleanOperation, cst.Lambda, cst.ListComp, cst.GeneratorExp, cst.DictComp, cst.SetComp)


@dataclass(frozen=True)
class Switch:
    call: cst.Call
    key: str
    mode: Optional[bool]  # True: train, False: eval, None: a flag (restoring a saved mode)


@dataclass(frozen=True)
class Run:
    call: cst.Call
    key: str
    no_grad: bool
    used: bool  # the result is used (not a bare expression statement)
    detached: bool = False  # the result is used only cut from the graph (`analysis.detached`)


@dataclass
class Routine:
    fn: cst.CSTNode  # a FunctionDef, or the Module for a script's top-level code
    switches: List[Switch] = field(default_factory=list)
    runs: List[Run] = field(default_factory=list)
    steps: List[cst.Call] = field(default_factory=list)
    eval_signals: List[str] = field(default_factory=list)  # strong ones first
    strong_eval: bool = False
    order: Dict[int, int] = field(default_factory=dict)
    parents: Dict[int, cst.CSTNode] = field(default_factory=dict)

    optimizer_steps: int = 0  # how many of `steps` are optimizer / scaler steps (or reach one)

    @property
    def kind(self) -> Optional[str]:
        """A backward pass alone in a routine with an evaluation signal (saliency maps, input
        gradients) is not training: "mixed"."""
        if self.optimizer_steps:
            return "mixed" if self.strong_eval else "train"
        if self.steps:
            return "mixed" if self.eval_signals else "train"
        return "eval" if self.eval_signals else None

    def pos(self, node: cst.CSTNode) -> int:
        return self.order.get(id(node), -1)

    @property
    def name(self) -> str:
        return self.fn.name.value if isinstance(self.fn, cst.FunctionDef) else "<script>"

    def unconditional(self, node: cst.CSTNode) -> bool:
        """`node` runs whenever the routine gets that far (no `if`/loop/`except` arm above it; a
        script's `if __name__ == "__main__":` block counts as unconditional)."""
        cur = self.parents.get(id(node))
        while cur is not None and cur is not self.fn:
            if isinstance(cur, _CONDITIONAL) and not _is_main_guard(cur) or isinstance(cur, cst.FunctionDef):
                return False
            cur = self.parents.get(id(cur))
        return cur is self.fn

    def dominates(self, a: cst.CSTNode, b: cst.CSTNode) -> bool:
        """`a` comes first and its block contains `b`: whenever `b` runs, `a` ran before it in the
        same pass through that block (early exits aside)."""
        if self.pos(a) >= self.pos(b):
            return False
        block = self.parents.get(id(a))
        while block is not None and not isinstance(block, (cst.IndentedBlock, cst.SimpleStatementSuite, cst.Module)):
            if isinstance(block, _CONDITIONAL):
                return False  # `x and m.train()`, a comprehension: not every pass
            block = self.parents.get(id(block))
        cur = self.parents.get(id(b))
        while cur is not None:
            if cur is block:
                return True
            cur = self.parents.get(id(cur))
        return False

    def runs_with_grad_after(self, key: str, node: cst.CSTNode) -> List[Run]:
        """The forwards of `key` (or of a part / parent of it) outside no_grad after `node`, in this
        routine's own code: where a model put in eval before a training step trains here. A model
        trained only inside a called function (`distill(student, teacher, loader)`) has none."""
        return [run for run in self.runs
                if (key_covers(key, run.key) or key_covers(run.key, key)) and not run.no_grad and not run.detached
                and self.pos(run.call) > self.pos(node)]

    def between(self, a: cst.CSTNode, b: cst.CSTNode) -> List[cst.CSTNode]:
        """The routine's nodes after `a` and before `b` in source order."""
        lo, hi = self.pos(a), self.pos(b)
        return [n for n in self.order_nodes[lo + 1 : hi]] if 0 <= lo < hi else []

    @property
    def order_nodes(self) -> List[cst.CSTNode]:
        return self._nodes

    _nodes: List[cst.CSTNode] = field(default_factory=list)


def _is_main_guard(node: cst.CSTNode) -> bool:
    if not isinstance(node, cst.If):
        return False
    test = node.test
    return (isinstance(test, cst.Comparison) and isinstance(test.left, cst.Name) and test.left.value == "__name__")


def evaluation_like_name(name: str, last_word: bool = False) -> bool:
    """`evaluate`, `validate_epoch`, `test`, `predict_images`, `infer`, `inference_step`, `infer_batch`;
    not `infer_shape` / `infer_dtype`, where "infer" means "deduce". `last_word`: also a name whose
    last word says it (`feature_evaluation`, `run_validation`, `do_eval`) or whose second word does
    after a one-word prefix (`dnn_test_model`, `run_test`), for rules that take the name as one signal
    among several (MDL302), and a decoding routine (`greedy_decode`, `beam_search`)."""
    bare = name.lstrip("_")
    if last_word and (_EVAL_LAST_WORD.search(bare) or _EVAL_SECOND_WORD.match(bare) or _DECODING.search(name)):
        return True
    if _PREDICTOR_LOSS.match(name):
        return False
    return bool(_EVAL_NAME.match(name)) and not _DEDUCE.match(name)


def no_grad_context(ctx, expr: cst.CSTNode) -> bool:
    """`torch.no_grad()`, `torch.inference_mode()` (not `inference_mode(False)`), `set_grad_enabled(False)`."""
    func = expr.func if isinstance(expr, cst.Call) else expr
    q = ctx.resolve(func) if isinstance(func, (cst.Name, cst.Attribute)) else None
    fw = ctx.framework
    if q in fw.no_grad_contexts:
        arg = get_arg(expr, "mode", 0) if isinstance(expr, cst.Call) else None
        return arg is None or literal_value(arg.value) is not False
    if q in fw.set_grad_enabled and isinstance(expr, cst.Call):
        arg = get_arg(expr, "mode", 0)
        return arg is not None and literal_value(arg.value) is False
    return False


class _Collector:
    def __init__(self, ctx, fn: cst.FunctionDef, depth: int):
        self.ctx, self.fn, self.depth = ctx, fn, depth
        self.r = Routine(fn)
        self.nodes = _own_nodes(fn, self.r.parents)
        self.r.order = {id(n): i for i, n in enumerate(self.nodes)}
        self.r._nodes = self.nodes

    def run(self) -> Routine:
        fw, r = self.ctx.framework, self.r
        decorated = isinstance(self.fn, cst.FunctionDef) and is_decorated_with(self.fn, *fw.no_grad_last_names)
        if decorated:
            r.eval_signals.append(f"`{self.fn.name.value}` is decorated with a no-grad context")
        self.nested = {n.name.value: n for n in self.nodes if isinstance(n, cst.FunctionDef) and n is not self.fn}
        for node in self.nodes:
            if isinstance(node, cst.Call):
                self.call(node, decorated)
        r.strong_eval = bool(r.eval_signals)
        name = r.name
        if evaluation_like_name(name) and not for_context(self.ctx).pytest_file and not self.pytest_like(name):
            r.eval_signals.append(f"`{name}` is named like an evaluation routine")
        return r

    def pytest_like(self, name: str) -> bool:
        """`test_*` with `assert` statements: a test of the code, not an evaluation routine."""
        return name.startswith("test") and any(isinstance(n, cst.Assert) for n in self.nodes)

    def in_no_grad(self, node: cst.CSTNode) -> bool:
        cur = self.r.parents.get(id(node))
        while cur is not None and cur is not self.fn:
            if isinstance(cur, cst.With) and any(no_grad_context(self.ctx, item.item) for item in cur.items):
                return True
            cur = self.r.parents.get(id(cur))
        return False

    def call(self, call: cst.Call, decorated: bool) -> None:
        fw, r = self.ctx.framework, self.r
        func = call.func
        if any(a.keyword is not None and a.keyword.value == "volatile" and literal_value(a.value) is True for a in call.args):
            r.eval_signals.insert(0, "it uses `volatile=True` (pre-0.4 inference)")
        if isinstance(func, cst.Attribute):
            attr = func.attr.value
            key = dotted(func.value)
            if attr in (fw.train_method, fw.eval_method) and (key or part_key(func.value)):
                mode = train_flag(call) if attr == fw.train_method else (None if call.args else False)
                r.switches.append(Switch(call, key or part_key(func.value), mode))
                return
            if attr in fw.backward_methods:
                r.steps.append(call)
                return
            if attr == fw.optimizer_step_method and optimizer_like(func.value):
                r.steps.append(call)
                r.optimizer_steps += 1
                return
            if attr in ("generate", "forward") and key:
                self.add_run(call, key, decorated)
                if attr == "generate":
                    r.eval_signals.insert(0, f"it calls `{key}.generate(...)`")
                return
            if attr == "predict" and key:
                r.eval_signals.insert(0, f"it calls `{key}.predict(...)`")
        elif isinstance(func, cst.Name):
            if (self.ctx.resolve(func) or "") in fw.backward_calls:
                r.steps.append(call)
                return
            if steps_loss(call):  # `loss_scaler(loss, optimizer, ...)` (timm's NativeScaler): backward + step
                r.steps.append(call)
                r.optimizer_steps += 1
                return
            if func.value in self.nested and self.depth < 2:
                self.inline(call, self.nested[func.value], decorated)
                return
            self.add_run(call, func.value, decorated)
        if self.depth < 2:
            reached = self.reached(call)
            if reached is not None and reached.steps:
                r.steps.append(call)
                r.optimizer_steps += bool(reached.optimizer_steps)

    def inline(self, call: cst.Call, nested: cst.FunctionDef, decorated: bool) -> None:
        """A call of a function defined in this routine (`def eval_batch(b): ...` then
        `[eval_batch(b) for b in loader]`): its model runs, no-grad blocks and steps count here, at
        the call."""
        sub = _Collector(self.ctx, nested, self.depth + 1).run()
        outer_no_grad = decorated or self.in_no_grad(call)
        for run in sub.runs:
            self.r.runs.append(Run(call, run.key, run.no_grad or outer_no_grad, True))
        if sub.strong_eval:
            self.r.eval_signals.insert(0, f"the `{nested.name.value}` it calls runs code under a no-grad context")
        if sub.steps:
            self.r.steps.append(call)
            self.r.optimizer_steps += bool(sub.optimizer_steps)

    def add_run(self, call: cst.Call, key: str, decorated: bool) -> None:
        no_grad = decorated or self.in_no_grad(call)
        parent = self.r.parents.get(id(call))
        used = not isinstance(parent, cst.Expr)
        detached = used and detached_only(self.fn, call, self.r.parents, self.ctx.framework.detach_methods)
        self.r.runs.append(Run(call, key, no_grad, used, detached))
        if no_grad and not decorated and not any(s.startswith("it runs") for s in self.r.eval_signals):
            self.r.eval_signals.insert(0, "it runs code under a no-grad context")

    def reached(self, call: cst.Call) -> Optional[Routine]:
        """The routine of a function / `self.` method of this file that `call` calls (steps are
        followed two levels deep)."""
        target = local_callee(self.ctx, self.fn, call)
        if target is None or target is self.fn:
            return None
        return routine_facts(self.ctx, target, self.depth + 1)


def _own_nodes(fn: cst.FunctionDef, parents: Dict[int, cst.CSTNode]) -> List[cst.CSTNode]:
    """The nodes of `fn` in source order, not descending into nested functions, lambdas or classes
    (their bodies run when called, not here); fills `parents`."""
    out: List[cst.CSTNode] = []
    roots = list(fn.body) if isinstance(fn, cst.Module) else [fn.body]
    for root in roots:
        parents[id(root)] = fn
    stack: List[cst.CSTNode] = list(reversed(roots))
    while stack:
        node = stack.pop()
        out.append(node)
        if isinstance(node, (cst.FunctionDef, cst.Lambda, cst.ClassDef)):
            continue
        kids = list(iter_children(node))
        for kid in kids:
            parents[id(kid)] = node
        stack.extend(reversed(kids))
    return out


def local_callee(ctx, fn: cst.FunctionDef, call: cst.Call) -> Optional[cst.FunctionDef]:
    """The function of this file `call` calls: a top-level function by name, or `self.<m>` in the
    class enclosing `fn`."""
    func = call.func
    if isinstance(func, cst.Name):
        return _top_level_functions(ctx).get(func.value)
    if isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name) and func.value.value == "self" and isinstance(fn, cst.FunctionDef):
        for cls in ctx.top_level_classes().values():
            methods = ctx.methods(cls)
            if methods.get(fn.name.value) is fn:
                return methods.get(func.attr.value)
    return None


def _top_level_functions(ctx) -> Dict[str, cst.FunctionDef]:
    found = getattr(ctx, "_routine_functions", None)
    if found is None:
        found = {s.name.value: s for s in ctx.module.body if isinstance(s, cst.FunctionDef)}
        setattr(ctx, "_routine_functions", found)
    return found


_MEMO_ATTR = "_routine_memo"


def routine_facts(ctx, fn: cst.FunctionDef, depth: int = 0) -> Routine:
    """The `Routine` of `fn` (memoised on the context; `depth` bounds following local calls)."""
    memo: Dict[Tuple[int, int], Routine] = getattr(ctx, _MEMO_ATTR, None)
    if memo is None:
        memo = {}
        setattr(ctx, _MEMO_ATTR, memo)
    key = (id(fn), min(depth, 2))
    if key not in memo:
        memo[key] = Routine(fn)  # recursion guard
        memo[key] = _Collector(ctx, fn, depth).run()
    return memo[key]


def key_covers(outer: str, inner: str) -> bool:
    """`model` covers `model`, `model.encoder` and `model.layers[0]` (a switch of the parent switches
    its children)."""
    return inner == outer or inner.startswith((outer + ".", outer + "["))


def part_key(expr: cst.CSTNode) -> Optional[str]:
    """`model.layers[0]`, `self.blocks[:4]`, `net.stages[-1].norm`: a Name/Attribute chain with
    subscripts by literal integers, names or integer slices (a part of a model), as written without
    spaces; None for anything else (a call, a computed index)."""
    if isinstance(expr, cst.Attribute):
        head = part_key(expr.value)
        return f"{head}.{expr.attr.value}" if head else None
    if isinstance(expr, cst.Subscript) and len(expr.slice) == 1:
        head = part_key(expr.value)
        index = _index_text(expr.slice[0].slice)
        return f"{head}[{index}]" if head and index is not None else None
    return dotted(expr)


def _index_text(index: cst.BaseSlice) -> Optional[str]:
    def bound(e: Optional[cst.BaseExpression]) -> Optional[str]:
        if e is None:
            return ""
        if isinstance(e, (cst.Integer, cst.Name)):
            return e.value
        if (isinstance(e, cst.UnaryOperation) and isinstance(e.operator, cst.Minus)
                and isinstance(e.expression, cst.Integer)):
            return "-" + e.expression.value
        return None

    if isinstance(index, cst.Index):
        return bound(index.value) or None
    if isinstance(index, cst.Slice) and index.step is None:
        lower, upper = bound(index.lower), bound(index.upper)
        return f"{lower}:{upper}" if lower is not None and upper is not None else None
    return None


def construction_of(ctx, routine: Routine, key: str, before: cst.CSTNode) -> Optional[cst.BaseExpression]:
    """The expression `key` was last built from before `before`: `model = Net(...)` in the routine,
    or `self.model = Net(...)` in a method of the class enclosing it; None when not seen."""
    found = None
    for node in routine.order_nodes:
        if routine.pos(node) >= routine.pos(before):
            break
        if isinstance(node, cst.Assign) and len(node.targets) == 1 and dotted(node.targets[0].target) == key:
            found = node.value
    if found is not None or not key.startswith("self."):
        return found
    attr = key[len("self."):]
    for cls in ctx.top_level_classes().values():
        methods = ctx.methods(cls)
        if not isinstance(routine.fn, cst.FunctionDef) or methods.get(routine.fn.name.value) is not routine.fn:
            continue
        for method in methods.values():
            for node in _own_nodes(method, {}):
                if (isinstance(node, cst.Assign) and len(node.targets) == 1
                        and dotted(node.targets[0].target) == f"self.{attr}"):
                    return node.value
    return None


def passes(routine: Routine, key: str, nodes: List[cst.CSTNode], skip: Tuple[cst.CSTNode, ...] = (),
           ctx=None) -> Optional[cst.Call]:
    """A call among `nodes` that is given `key` (or a parent of it, or `self` for a `self.` key) as
    an argument, or calls a method on it that may change modes (`apply`): it may switch the mode.
    With `ctx`, a call of a function of this file that switches no mode itself does not count."""
    roots = {key}
    parts = key.split(".")
    roots.update(".".join(parts[:i]) for i in range(1, len(parts)))
    for node in nodes:
        if not isinstance(node, cst.Call) or any(node is s for s in skip):
            continue
        for arg in node.args:
            if dotted(arg.value) in roots:
                if ctx is not None and isinstance(routine.fn, cst.FunctionDef) and _switches_nothing(ctx, routine.fn, node):
                    break
                return node
        if isinstance(node.func, cst.Attribute) and node.func.attr.value == "apply" and dotted(node.func.value) in roots:
            return node
    return None


def _switches_nothing(ctx, fn: cst.FunctionDef, call: cst.Call) -> bool:
    callee = local_callee(ctx, fn, call)
    return callee is not None and not routine_facts(ctx, callee, 1).switches

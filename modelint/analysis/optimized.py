"""Which models a file's optimizers train, and which models it freezes (issue 14, helper cs3).

A model in eval mode at a training step is a bug only when the step trains it. On the measuring
set the false MDL303/MDL304 findings were fixed networks used inside the step (a VGG feature
extractor of a perceptual loss) whose parameters are in no optimizer, and MDL301's were a
linear-probe protocol whose eval arm freezes the backbone with `requires_grad_(False)`.

- `optimized_keys(ctx)`: the keys (`generator`, `self.d_net`) whose parameters reach an
  optimizer built in this file: a call bound to an optimizer-like name (`g_opt = Adam(...)`,
  `self.opt = torch.optim.SGD(...)`) whose first argument (or `params=`) is built from
  `K.parameters()` / `K.named_parameters()`, through `list(...)`, `itertools.chain(...)`, `+`,
  lists, `{"params": ...}` groups, comprehensions and names bound in the same function (not one
  grown after its binding, `params = []; params.append(p)` or `+=`: unreadable). A container
  built over models (`nn.ModuleList([gen, disc])`) brings its members; a call without arguments
  bound to such a name and never stepped is not one (`opt = parser.parse_args()`). `None` when no optimizer is
  built here or one's parameters cannot be read (`Adam(params)` with `params` a parameter,
  `build_optimizer(model)`), or an optimizer stepped in the file is bound nowhere in it (a
  parameter `opt` of a training function): the caller keeps its old behaviour then.
- `builds_optimizer_over(ctx, node, keys)`: `node` is such a construction over one of `keys`.
- `stepped_keys(ctx, name)`: the same for the one optimizer a step steps (`d_opt.step()` trains the
  discriminator, not the generator another optimizer holds).
- `held_by_step(ctx, flow, step)`: the same for the optimizer a training step of a scope steps (a
  `.backward()` asks the first optimizer step after it in its loop body).
- `frozen_keys(ctx)`: keys frozen with `K.requires_grad_(False)` or `for p in K.parameters():
  p.requires_grad = False` anywhere in the file.
- `trained_by(key, optimized)`: the key, a parent of it, or a part of it is optimized.
- `part_containers(ctx, key)` / `parts_back_in_train(ctx, key, state)`: containers built from parts of
  a model (`nn.ModuleList([net.blocks[-1], net.norm])`) and whether one is back in train mode at a step.

Keys are compared without a leading `self.` (an optimizer built in `__init__` over
`self.generator.parameters()` trains the `generator` a method runs as `self.generator`).
"""

from __future__ import annotations

import weakref
from typing import Dict, List, Optional, Set, Tuple

import libcst as cst

from modelint.analysis.calls import terminal_name
from modelint.analysis.context import dotted
from modelint.analysis.modeflow import TRAIN, TRAINED, EvalSite, flag_tests, get
from modelint.analysis.modemodel import optimizer_name
from modelint.analysis.walk import children, descendants

_PARAM_METHODS = frozenset({"parameters", "named_parameters"})
# calls whose arguments are the parameters passed on (`list(m.parameters())`, `chain(a, b)`)
_PASS_ON = frozenset({"list", "tuple", "chain", "filter", "iter", "sorted"})
# calls that add members to a container (`trainable = nn.ModuleList([]); trainable.append(net.body)`)
_ADDS = frozenset({"append", "extend"})
_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _norm(key: str) -> str:
    return key[5:] if key.startswith("self.") else key


class _Scan:
    """One pass: assignments by name (per file, for params lists and containers), optimizer
    constructions, freezes. Pre-order over `walk.children`, like LibCST's visitor without its
    rebuild of every node (`module.visit` was 0.27 of 0.28 s of these facts on timm)."""

    def __init__(self) -> None:
        self.bound: Dict[str, List[cst.BaseExpression]] = {}
        self.ctors: List[cst.Call] = []
        self.frozen: Set[str] = set()
        self.stepped: Set[str] = set()  # receivers of `<optimizer>.step()`
        self._param_loops: Dict[str, str] = {}  # loop variable -> model key (`for p in m.parameters()`)
        # (flag, value) -> keys whose parameters are read only where the flag has that value
        self.flag_params: Dict[Tuple[str, bool], Set[str]] = {}
        self._tests: List[Tuple[Tuple[str, bool], ...]] = []  # flags each enclosing `if` arm fixes
        self.ctor_tests: List[Tuple[Tuple[str, bool], ...]] = []  # the flags around each of `ctors`
        self.ctor_keys: List[str] = []  # the name each of `ctors` is bound to
        # `parts.append(net.blocks)` / `.extend(...)`: name -> the calls that add to it
        self.added: Dict[str, List[cst.Call]] = {}
        self.grown: Set[str] = set()  # names added to after their binding (`.append`, `+=`)
        # what each addition adds (`params.extend(list(W.parameters()))` -> `list(W.parameters())`): a
        # grown list is read as its binding and all of these (an unreadable one leaves it unreadable)
        self.growth: Dict[str, List[cst.BaseExpression]] = {}

    def run(self, module: cst.Module) -> "_Scan":
        # `if args.train_encoder: groups += [encoder.parameters()]`: the arm of each `if` a call is
        # in. An arm is pushed as (its flags, its block); `None` pops the flags after the block.
        stack: list = [module]
        visits = {cst.Assign: self.visit_Assign, cst.AugAssign: self.visit_AugAssign,
                  cst.For: self.visit_For, cst.Call: self.visit_Call}
        while stack:
            item = stack.pop()
            if item is None:
                self._tests.pop()
                continue
            if type(item) is tuple:
                self._tests.append(item[0])
                stack += (None, item[1])
                continue
            visit = visits.get(type(item))
            if visit is not None:
                visit(item)
            if isinstance(item, cst.If):
                if item.orelse is not None:
                    stack.append((flag_tests(item.test, False), item.orelse))
                stack += ((flag_tests(item.test, True), item.body), item.test)
            else:
                stack += reversed(children(item))
        return self

    def fixed(self) -> Tuple[Tuple[str, bool], ...]:
        return tuple(t for arm in self._tests for t in arm)

    def visit_Assign(self, node: cst.Assign) -> None:
        for t in node.targets:
            key = dotted(t.target)
            if key is None:
                continue
            self.bound.setdefault(key, []).append(node.value)
            if optimizer_name(key.rsplit(".", 1)[-1]) and isinstance(node.value, cst.Call):
                self.ctors.append(node.value)
                self.ctor_tests.append(self.fixed())
                self.ctor_keys.append(key)
            if key.endswith(".requires_grad") and _is_false(node.value):
                owner = self._param_loops.get(key[: -len(".requires_grad")])
                if owner:
                    self.frozen.add(_norm(owner))

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        key = dotted(node.target)
        if key:
            self.grown.add(key)
            self.growth.setdefault(key, []).append(node.value)

    def visit_For(self, node: cst.For) -> None:
        it = node.iter
        if isinstance(node.target, cst.Name) and isinstance(it, cst.Call) and terminal_name(it.func) == "parameters":
            owner = dotted(it.func.value) if isinstance(it.func, cst.Attribute) else None
            if owner:
                self._param_loops[node.target.value] = owner

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        if isinstance(func, cst.Attribute) and func.attr.value in _PARAM_METHODS:
            owner = dotted(func.value)
            for test in self.fixed() if owner else ():
                self.flag_params.setdefault(test, set()).add(_norm(owner))
        if isinstance(func, cst.Attribute) and func.attr.value in _ADDS:
            recv = dotted(func.value)
            if recv:
                self.added.setdefault(recv, []).append(node)
                self.grown.add(recv)
                arg = node.args[0] if node.args else None
                self.growth.setdefault(recv, []).append(
                    arg.value if arg is not None and not arg.star and arg.keyword is None and len(node.args) == 1 else cst.Name("_unread"))
        recv = _step_receiver(node)
        if recv and optimizer_name(recv.rsplit(".", 1)[-1]):
            self.stepped.add(recv)
        if not (isinstance(func, cst.Attribute) and func.attr.value == "requires_grad_" and node.args
                and _is_false(node.args[0].value)):
            return
        owner = dotted(func.value)
        if owner:  # `m.requires_grad_(False)`, or `p.requires_grad_(False)` over `m.parameters()`
            self.frozen.add(_norm(self._param_loops.get(owner, owner)))


def _is_false(node: cst.BaseExpression) -> bool:
    return isinstance(node, cst.Name) and node.value == "False"


class _Facts:
    def __init__(self, module: cst.Module):
        scan = _Scan().run(module)
        self.frozen = frozenset(scan.frozen)
        self.bound = scan.bound
        self.added = scan.added
        self.flag_params = scan.flag_params
        # (keys whose `.parameters()` an optimizer's constructor reads itself, the flags around it)
        self.direct = [({_norm(k) for k in (dotted(c.func.value) for c in _param_calls(ctor)) if k}, tests)
                       for ctor, tests in zip(scan.ctors, scan.ctor_tests)]
        self.reads = {id(ctor): keys for ctor, (keys, _) in zip(scan.ctors, self.direct)}
        self.optimized = self._optimized(scan)
        self.by_name = self._by_name(scan)

    @staticmethod
    def _by_name(scan: _Scan) -> Dict[str, Optional[frozenset]]:
        """Optimizer name (without `self.`) -> the keys its constructions hold (None: one of them
        cannot be read)."""
        readable = _readable(scan)
        out: Dict[str, Optional[frozenset]] = {}
        for ctor, name in zip(scan.ctors, scan.ctor_keys):
            name = _norm(name)
            keys = _ctor_keys(ctor, readable, scan)
            before = out.get(name, frozenset())
            out[name] = None if keys is None or (name in out and before is None) else before | keys
        return out

    @staticmethod
    def _optimized(scan: _Scan) -> Optional[frozenset]:
        # `opt = parser.parse_args()`: a call without arguments bound to an optimizer-like name and
        # never stepped is no optimizer (an optimizer takes parameters); PyTorch-GAN's scripts name
        # their options `opt`, which made every optimizer of the file unreadable (measuring set 2)
        ctors = [c for c, k in zip(scan.ctors, scan.ctor_keys) if c.args or k in scan.stepped]
        if not ctors or any(r not in scan.bound for r in scan.stepped):
            return None  # an optimizer stepped here is a parameter or built elsewhere: not readable
        # a list grown after its binding is read with what each addition adds: `params.append(p)` over a
        # loop adds an unreadable `p` (clova-str's `filtered_parameters`), `params.extend(list(W.parameters()))`
        # adds W (set 19's PKT)
        readable = _readable(scan)
        out: Set[str] = set()
        for ctor in ctors:
            keys = _ctor_keys(ctor, readable, scan)
            if keys is None:
                return None
            out |= keys
        return frozenset(out)


def _readable(scan: _Scan) -> Dict[str, List[cst.BaseExpression]]:
    """Each bound name's values, and for a name grown after its binding, what every addition adds too
    (a name grown but never bound here is not readable)."""
    return {k: v + scan.growth.get(k, []) for k, v in scan.bound.items()}


def _ctor_keys(ctor: cst.Call, readable, scan: _Scan) -> Optional[frozenset]:
    """The keys one optimizer construction holds: its `params` models, the members of a container
    built over models, an alias's original (None: not readable)."""
    arg = next((a.value for a in ctor.args if a.keyword is None or a.keyword.value == "params"), None)
    keys = _param_keys(arg, readable, 0) if arg is not None else None
    if keys is None:
        return None
    out = set(keys)
    for key in keys:
        for value in scan.bound.get(key, []) + scan.bound.get("self." + key, []):
            out |= _members(value)
            original = dotted(value)
            if original is not None:
                out.add(_norm(original))
    return frozenset(out)


def _param_keys(node: cst.BaseExpression, bound, depth: int) -> Optional[Set[str]]:
    """The models whose parameters an optimizer's `params` expression holds (None: not readable)."""
    if depth > 6:
        return None
    if isinstance(node, cst.Call):
        name = terminal_name(node.func)
        if name in _PARAM_METHODS and isinstance(node.func, cst.Attribute):
            owner = dotted(node.func.value)
            return {_norm(owner)} if owner else None
        if name in _PASS_ON:
            return _union([a.value for a in node.args if name != "filter" or a is not node.args[0]], bound, depth)
        return None
    if isinstance(node, cst.BinaryOperation):
        return _union([node.left, node.right], bound, depth)
    if isinstance(node, cst.IfExp):
        return _union([node.body, node.orelse], bound, depth)
    if isinstance(node, (cst.List, cst.Tuple)):
        return _union([e.value for e in node.elements], bound, depth)
    if isinstance(node, cst.Dict):  # a parameter group: {"params": ..., "lr": ...}
        return _union([e.value for e in node.elements if isinstance(e, cst.DictElement) and
                       isinstance(e.key, cst.SimpleString) and e.key.evaluated_value == "params"], bound, depth)
    if isinstance(node, (cst.ListComp, cst.GeneratorExp)):
        return _param_keys(node.for_in.iter, bound, depth + 1)
    key = dotted(node)
    if key is not None and bound.get(key):
        return _union(bound[key], bound, depth)
    return None


def _union(nodes, bound, depth: int) -> Optional[Set[str]]:
    out: Set[str] = set()
    for n in nodes:
        keys = _param_keys(n, bound, depth + 1)
        if keys is None:
            return None
        out |= keys
    return out


def _members(value: cst.BaseExpression) -> Set[str]:
    """`nn.ModuleList([gen, disc])`, `nn.Sequential(enc, head)`: the dotted names it is built from."""
    out: Set[str] = set()
    if isinstance(value, cst.Call) and (terminal_name(value.func) or "")[:1].isupper():
        for a in value.args:
            v = a.value
            items = [e.value for e in v.elements] if isinstance(v, (cst.List, cst.Tuple)) else [v]
            out |= {_norm(k) for k in (dotted(i) for i in items) if k}
        # parts of a model (`nn.ModuleList(student.get_feat_modules())`): the model is partly trained
        out |= {_norm(k) for k in (dotted(n) for n in _attribute_chains(value.args)) if k}
    return out


def _facts(ctx) -> _Facts:
    """Computed once per checked file (keyed on its FileContext, like `modeflow.for_context`)."""
    facts = _CACHE.get(ctx)
    if facts is None:
        facts = _Facts(ctx.module)
        _CACHE[ctx] = facts
    return facts


def optimized_keys(ctx) -> Optional[frozenset]:
    return _facts(ctx).optimized


def stepped_keys(ctx, optimizer: str) -> Optional[frozenset]:
    """The keys whose parameters the optimizer named `optimizer` (`opt`, `self.d_opt`) holds, from
    its constructions in this file; None when it is built nowhere here or cannot be read."""
    return _facts(ctx).by_name.get(_norm(optimizer))


def builds_optimizer_over(ctx, node: cst.CSTNode, keys) -> bool:
    """`node` is an optimizer construction bound in this file (`opt = Adam(...)`) whose arguments
    read `K.parameters()` for a K in `keys`."""
    reads = _facts(ctx).reads.get(id(node))
    return reads is not None and any(_norm(k) in reads for k in keys)


def frozen_keys(ctx) -> frozenset:
    return _facts(ctx).frozen


def frozen_by_flag(ctx, names: Set[str], tests: Tuple[Tuple[str, bool], ...]) -> bool:
    """An eval made under `tests` (`modeflow.ScopeFlow.site_tests`) is in the arm of a flag whose
    other arm is where the file reads the parameters of the model (`names`: its key and aliases):
    `if args.train_encoder: encoder.train() else: encoder.eval()` beside `if args.train_encoder:
    groups.append({"params": encoder.parameters()})`. The flag says whether the model trains, and
    the eval is its frozen setting (4 of MDL301's 8 false findings on measuring set 3). Names are
    compared as written, `self.` dropped: a helper that takes the model under another parameter name
    is not matched."""
    facts = _facts(ctx)
    keys = {_norm(n) for n in names}
    for flag, value in tests:
        trains = (flag, not value)
        if not keys & facts.flag_params.get(trains, set()):
            continue
        # `Adam(encoder.parameters())` outside that arm trains it whatever the flag says
        if not any(keys & owners and trains not in around for owners, around in facts.direct):
            return True
    return False


def _param_calls(ctor: cst.Call) -> List[cst.Call]:
    """The `X.parameters()` / `X.named_parameters()` calls written in a constructor's arguments."""
    return [n for a in ctor.args for n in descendants(a.value)
            if type(n) is cst.Call and isinstance(n.func, cst.Attribute) and n.func.attr.value in _PARAM_METHODS]


def part_containers(ctx, key: str) -> List[str]:
    """Names bound to a container built from parts of `key` (`trainable = nn.ModuleList(
    student.get_feat_modules())`, `nn.ModuleList([student.enc, student.head])`), or a container
    built and then given parts (`tuned = nn.ModuleList([]); tuned.append(student.get_feat_modules())`,
    RepDistiller's init stage): its `.train()` switches those parts back, whatever `key` itself is in."""
    root = _norm(key)
    facts = _facts(ctx)
    out = []
    for name, values in facts.bound.items():
        if any(_built_from_parts(v, root) for v in values) or (
            any(_is_construction(v) for v in values)
            and any(_has_part(c.args, root) for c in facts.added.get(name, ()))
        ):
            out.append(name)
    return out


def _is_construction(value: cst.BaseExpression) -> bool:
    return isinstance(value, cst.Call) and (terminal_name(value.func) or "")[:1].isupper()


def _has_part(args, root: str) -> bool:
    """An attribute chain under `root` (`student.enc`, `student.get_feat_modules()`) in `args`."""
    for node in _attribute_chains(args):
        key = dotted(node)
        if key and _norm(key).startswith(root + "."):
            return True
    return False


def _built_from_parts(value: cst.BaseExpression, root: str) -> bool:
    return _is_construction(value) and _has_part(value.args, root)


def _attribute_chains(args) -> List[cst.Attribute]:
    found: List[cst.Attribute] = []

    class _V(cst.CSTVisitor):
        def visit_Attribute(self, node: cst.Attribute) -> bool:
            found.append(node)
            return False

    for a in args:
        a.value.visit(_V())
    return found


def parts_back_in_train(ctx, key: str, state) -> bool:
    """At a step with mode-flow `state`: a container built from parts of `key` is in train mode (its
    `.train()` came after every eval of it), and, when the file's optimizers can be read, they hold
    the container rather than `key` as a whole: the parts the step trains are in train mode."""
    optimized = optimized_keys(ctx)
    if optimized is not None and _norm(key) in optimized:
        return False
    for c in part_containers(ctx, key):
        tokens = get(state, c)
        if tokens & {TRAIN, TRAINED} and not any(isinstance(t, EvalSite) for t in tokens):
            return True
    return False


def trained_by(key: str, optimized: frozenset) -> bool:
    """`key` (or a parent, or a part of it) has parameters in one of the optimizers."""
    k = _norm(key)
    return any(o == k or k.startswith(o + ".") or o.startswith(k + ".") for o in optimized)


def held_by_step(ctx, flow, step) -> Optional[frozenset]:
    """The keys the optimizer that `step` (a `modeflow.Step` of `flow`) steps holds, when it is built
    readable in this file (`stepped_keys`); None when that cannot be read. A `.backward()` of the
    scope itself is judged by the first `X.step()` after it in the same loop body (`d_loss.backward();
    d_opt.step()` updates the discriminator only, while the generator sits in eval making its no_grad
    inputs: SSL4MIS's adversarial loops, set 6)."""
    stepped = step if step.kind == "optimizer" else _next_optimizer_step(ctx, flow, step)
    receiver = _step_receiver(stepped.inner) if stepped is not None else None
    return stepped_keys(ctx, receiver) if receiver else None


def _next_optimizer_step(ctx, flow, step):
    if step.via or not step.loops:
        return None
    line = ctx.line(step.inner)
    later = [s for s in flow.steps if s.kind == "optimizer" and not s.via and len(s.loops) == len(step.loops)
             and all(a is b for a, b in zip(s.loops, step.loops)) and ctx.line(s.inner) > line]
    return min(later, key=lambda s: ctx.line(s.inner), default=None)


def _step_receiver(call: cst.CSTNode) -> Optional[str]:
    """`d_opt` of `d_opt.step()`; None for any other spelling (`scaler.step(opt)`: not read)."""
    func = call.func if isinstance(call, cst.Call) else None
    if isinstance(func, cst.Attribute) and func.attr.value == "step":
        return dotted(func.value)
    return None

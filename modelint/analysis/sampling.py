"""Random sampling ops, sampling switches and "what does `forward` execute" (used by MDL104-MDL106).

- `sampling_op(ctx, call, facts)`: is this call a torch random-sampling op? Returns the name to show
  (`torch.multinomial`, `.bernoulli_()`, `Categorical(...).sample()`), else None.
- `reads_switch(expr)` / `FunctionGuards`: does a test read an explicit sampling switch (`sample`,
  `do_sample`, `greedy`, `temperature`, `self.stochastic`, a `noise` or `generator` the caller may pass,
  `policy == "random"`), and is a node under such a test (or under a mode check, or in an arm of a
  conditional expression on a `True`/`False` flag parameter of `forward` itself: `flag_guard`)?
- `random_by_design_class`, `caller_supplied`, `caller_generator`, `seeds_rng`, `scaled_by_switch`: the
  exemptions MDL104 learned on real code (augmentation/loss classes, `if noise is None: noise = ...`,
  `generator=<parameter>`, `torch.manual_seed(...)` in the function, `randn(...) * noise_scale`).
- `ForwardReach`: per class, the methods that `forward` executes: `forward` itself and the methods of
  the same class it references through `self.<name>` (transitively), optionally only along references
  that no mode check (or sampling switch) guards.

Precision notes (documented heuristics):
- Functions are matched by qualified name through the file's imports (`torch.rand`, `F.gumbel_softmax`).
- Tensor methods (`probs.multinomial(1)`, `mask.bernoulli_(p)`, `w.normal_()`) cannot be typed
  statically; they are matched by method name when the receiver is not `self`/`cls` and not an imported
  module (`np.random.normal`, `nn.init.normal_(w)` and `random.random()` are not tensor methods).
- `.sample()` is a very common user method name, so it only counts when the receiver is a
  `torch.distributions` object built in the same expression or assigned from one in the same function
  (`Categorical(logits=l).sample()`, `d = D.Normal(m, s); d.sample()`). `.rsample()` (the
  reparameterised draw, specific to distributions) counts on any receiver but `self`.
- NumPy and `random` sampling are not covered: they are not torch ops and are not reset by a seed given to
  torch.
"""

from __future__ import annotations

import re
import weakref
from typing import Dict, FrozenSet, Iterable, Iterator, List, Optional, Set

import libcst as cst

from modelint.analysis import mode as mode_analysis
from modelint.analysis.calls import callee_name, dotted, literal_value
from modelint.analysis.classes import first_methods, first_param, inherited_methods, is_plain_staticmethod, reach
from modelint.analysis.guards import FUNCTION_TYPES, guard_in_chain, guard_steps
from modelint.analysis.regions import region_of
from modelint.analysis.structure import iter_returns
from modelint.analysis.walk import children, descendants

# Identifiers that name an explicit sampling switch: a parameter, local or attribute whose value decides
# whether to sample. Matched against whole names and `_`-separated parts, lower-cased.
_SWITCH_WORDS = frozenset(
    {
        "sample", "samples", "sampling", "sampled", "stochastic", "stochasticity", "deterministic",
        "determinism", "greedy", "temperature", "noise", "noisy", "random", "randomize", "randomized",
        "explore", "exploration", "argmax", "mean", "mode", "top_k", "topk", "top_p",
        # the caller supplies (or seeds) the randomness
        "generator", "generators", "rng", "seed",
    }
)
_SWITCH_PREFIXES = ("use_", "do_", "is_", "enable_", "with_", "apply_", "add_", "return_", "inject_", "should_")
_SHAPE_SUFFIXES = ("_rate", "_size", "_sizes", "_dim", "_dims", "_shape", "_len", "_length", "_count", "_channels")
_SWITCH_STEMS = ("sample", "sampling", "stochastic", "deterministic", "greedy", "noise", "temperature")


def is_switch_name(name: str) -> bool:
    """`sample`, `do_sample`, `use_sampling`, `greedy_decode`, `sample_posterior`, `add_noise`,
    `temperature`, `deterministic`, `return_mean`, ... (lower-cased, leading underscores ignored)."""
    n = name.lower().lstrip("_")
    if n.endswith(_SHAPE_SUFFIXES):  # `sample_rate`, `noise_dim`: sizes, not switches
        return False
    for prefix in _SWITCH_PREFIXES:
        if n.startswith(prefix):
            n = n[len(prefix):]
            break
    if n in _SWITCH_WORDS:
        return n not in ("mean", "mode") or n != name.lower().lstrip("_")  # bare `mean`/`mode`: too vague
    return n.startswith(tuple(s + "_" for s in _SWITCH_STEMS)) or n.endswith(tuple("_" + s for s in _SWITCH_STEMS))


# A strategy chosen by configuration: `if self.config.policy == "sampling":`.
_STRATEGY_LITERAL = re.compile(r"random|sampl|stochastic|gumbel|noise|greedy|argmax|multinomial|bernoulli", re.I)


def _compares_to_strategy_literal(expr: cst.CSTNode) -> bool:
    for node in descendants(expr):
        if isinstance(node, cst.Comparison):
            for part in (node.left, *(t.comparator for t in node.comparisons)):
                if isinstance(part, cst.SimpleString) and _STRATEGY_LITERAL.search(part.value):
                    return True
    return False


def reads_switch(expr: Optional[cst.CSTNode], switch_locals: FrozenSet[str] = frozenset()) -> bool:
    """Does `expr` read a sampling switch (a name or attribute named like one, or a local derived from
    one), or compare a setting with a sampling strategy's name (`policy == "random"`)? `self.training`
    -style mode reads are not switches (see `mode.reads_mode`)."""
    if expr is None:
        return False
    if _compares_to_strategy_literal(expr):
        return True
    for node in mode_analysis.loads(expr):
        if isinstance(node, cst.Attribute):
            if is_switch_name(node.attr.value):
                return True
        elif node.value in switch_locals or is_switch_name(node.value):
            return True
    return False


def switch_locals(facts: mode_analysis.FunctionFacts) -> FrozenSet[str]:
    """Locals assigned from a switch-reading expression, to a fixpoint (`greedy = temperature == 0`)."""
    return mode_analysis.derived_locals(facts.assigns, reads_switch)


def _named_params(fn: cst.CSTNode) -> Iterator[cst.Param]:
    params = fn.params
    return iter((*params.posonly_params, *params.params, *params.kwonly_params))


def flag_params(fn: cst.CSTNode) -> FrozenSet[str]:
    """Parameters that are on/off flags: a `True`/`False` default or a `bool` annotation
    (`def forward(self, x, reparam=True)`, `jitter: bool`). Data (`x`, `mask=None`) is not a flag."""
    out: Set[str] = set()
    for p in _named_params(fn):
        default_bool = isinstance(p.default, cst.Name) and p.default.value in ("True", "False")
        ann = p.annotation.annotation if p.annotation is not None else None
        if default_bool or (isinstance(ann, cst.Name) and ann.value == "bool"):
            out.add(p.name.value)
    return frozenset(out)


def flag_guard(chain: List[cst.CSTNode], flags: FrozenSet[str]) -> Optional[cst.CSTNode]:
    """The innermost conditional expression on one of `flags` that chain[-1] is an arm of (`z =
    self.draw(mu) if reparam else mu`): the flag picks the draw or a value without it. Conditional
    expressions only: an `if` statement on a flag may pick a whole other computation (a flow's `if not
    reverse:` training direction, whose draw is no choice the caller can turn off)."""
    if not flags:
        return None
    for guard, test, _ in guard_steps(chain):
        if isinstance(guard, cst.IfExp) and _names_in(test) & flags:
            return guard
    return None


def off_in_eval(facts: mode_analysis.FunctionFacts) -> FrozenSet[str]:
    """Locals that an evaluation arm binds to a falsy literal, `if self.training: p = self.p` / `else:
    p = 0` (the statement form of `p = self.p if self.training else 0`, which `mode_locals` holds
    already): their truth then tests the mode, so `if p: mask.bernoulli_(1 - p)` samples only in
    training. A falsy value bound in a training arm (`if self.training: p = 0`) says the opposite and
    is not one (set 16's ENAS embedding dropout: a mask sampled only when such a local is non-zero)."""
    out: Set[str] = set()
    for name, stmts in facts.assign_stmts.items():
        if name in facts.mode_locals:
            continue
        for stmt, value in zip(stmts, facts.assigns[name]):
            if literal_value(value) in (0, None, False) and region_of(facts.chain(stmt), facts) == "eval":
                out.add(name)
                break
    return frozenset(out)


class FunctionGuards:
    """Mode and sampling-switch guards of one function, computed once. `flags` are parameters that
    guard a conditional expression as sampling switches do, whatever their names (`flag_guard`):
    `ForwardReach` passes `forward`'s own flag parameters, because the module's caller sets them
    (`forward(self, x, reparam=True)`: eval can pass `False`). A helper's flag is not one: `forward`
    fills it, often from configuration (`self.pick(x, hard=self.cfg_hard)`)."""

    def __init__(self, facts: mode_analysis.FunctionFacts, flags: FrozenSet[str] = frozenset()):
        self.facts = facts
        self.mode_locals = facts.mode_locals | off_in_eval(facts)
        self.switch_locals = switch_locals(facts)
        self.flags = flags

    def mode_guard(self, node: cst.CSTNode, chain: Optional[List[cst.CSTNode]] = None) -> Optional[cst.CSTNode]:
        return mode_analysis.mode_guard(chain or self.facts.chain(node), self.mode_locals)

    def switch_guard(self, node: cst.CSTNode, chain: Optional[List[cst.CSTNode]] = None) -> Optional[cst.CSTNode]:
        sl = self.switch_locals
        chain = chain or self.facts.chain(node)
        return guard_in_chain(chain, lambda t: reads_switch(t, sl)) or flag_guard(chain, self.flags)

    def guard(self, node: cst.CSTNode, chain: Optional[List[cst.CSTNode]] = None) -> Optional[cst.CSTNode]:
        chain = chain or self.facts.chain(node)
        return self.mode_guard(node, chain) or self.switch_guard(node, chain)


def _receiver_is_module_or_self(ctx, receiver: cst.CSTNode) -> bool:
    """`self.x`/`cls.x` methods and `np.random.x`/`torch.nn.init.x` functions are not tensor methods."""
    if isinstance(receiver, cst.Name):
        return receiver.value in ("self", "cls") or ctx.is_imported(receiver.value)
    if isinstance(receiver, cst.Attribute):
        head = receiver
        while isinstance(head, cst.Attribute):
            head = head.value
        if isinstance(head, cst.Name) and ctx.is_imported(head.value):
            # `torch.empty(3).uniform_()` has a Call in the chain and never gets here; a pure
            # Name/Attribute chain from an import is a module path (`np.random`, `torch.nn.init`) or
            # a module-level tensor (`torch.Tensor`): not a tensor instance.
            return True
    return False


def _is_distribution(ctx, expr: cst.CSTNode, facts: Optional[mode_analysis.FunctionFacts], depth: int = 0) -> bool:
    """`Categorical(logits=x)` (a torch.distributions constructor call), or a local assigned from one."""
    if isinstance(expr, cst.Call):
        q = ctx.resolve(expr.func)
        return bool(q) and q.startswith(ctx.framework.distributions_namespace)
    if isinstance(expr, cst.Name) and facts is not None and depth < 4:
        values = facts.assigns.get(expr.value)
        return bool(values) and all(v is not None and _is_distribution(ctx, v, facts, depth + 1) for v in values)
    return False


def sampling_op(ctx, call: cst.Call, facts: Optional[mode_analysis.FunctionFacts] = None) -> Optional[str]:
    """The sampling op this call performs (a name to show), or None."""
    func = call.func
    last = callee_name(call)
    fw = ctx.framework
    if last is None or last not in fw.sampling_last_names:
        return None
    qualname = ctx.resolve(func)
    if qualname in fw.sampling_calls:
        return qualname
    if not isinstance(func, cst.Attribute):
        return None
    receiver = func.value
    if last in fw.tensor_sampling_methods:
        if _receiver_is_module_or_self(ctx, receiver):
            return None
        return f".{last}()"
    if last in fw.distribution_methods:
        if isinstance(receiver, cst.Name) and receiver.value in ("self", "cls"):
            return None
        if last == "rsample" and not _receiver_is_module_or_self(ctx, receiver):
            return ".rsample()"
        if _is_distribution(ctx, receiver, facts):
            shown = ctx.resolve(receiver.func).rsplit(".", 1)[-1] + "(...)" if isinstance(receiver, cst.Call) else receiver.value
            return f"{shown}.{last}()"
    return None


# --- what forward executes -------------------------------------------------------------------

# Methods that are explicit sampling APIs, never `forward`, and are not entered from it.
# `act*` means acting (`act`, `act_greedy`, `action`, `actions`), not `activation`/`actor`/`activate`.
_SAMPLING_API = re.compile(r"^_*(sample|generate|rollout|act($|_|ion))")


def is_sampling_api(name: str) -> bool:
    return bool(_SAMPLING_API.match(name))


class ForwardReach:
    """Which methods of one class `forward` executes, and through which call.

    `reach(guarded)` maps method name -> the name of the method whose `self.<name>` reference reached it
    (None for `forward` itself). With `unguarded_only=True` a reference counts only when no mode check
    and no sampling switch guards it in the referencing method. Methods named like a sampling API
    (`sample*`, `generate*`, `rollout*`, `act*`, leading underscores ignored) are never entered.
    """

    def __init__(self, ctx, classdef: cst.ClassDef, local_classes: Optional[Dict[str, cst.ClassDef]] = None):
        # A weak proxy: the context keeps this object, and a strong reference back made a cycle that
        # kept the file's syntax tree alive until a full collection (as `modeflow.ModeFlow`).
        self.ctx = weakref.proxy(ctx)
        self.classdef = classdef
        self.methods = first_methods(classdef)
        # The forward pass's name(s) in the file's framework (`forward`; MLX `__call__`, Keras `call`).
        self.seeds = ctx.framework.forward_methods
        if not any(s in self.methods for s in self.seeds) and local_classes:
            # Template method: `forward` is inherited from a base class in the same file and calls
            # methods this class overrides. Use the base's methods under this class's own.
            inherited = inherited_methods(classdef, local_classes)
            if any(s in inherited for s in self.seeds):
                self.methods = {**inherited, **self.methods}
        self._guards: Dict[int, FunctionGuards] = {}
        self._reach: Dict[bool, Dict[str, Optional[str]]] = {}

    def guards(self, fn: cst.CSTNode) -> FunctionGuards:
        key = id(fn)
        g = self._guards.get(key)
        if g is None:
            g = self._guards[key] = FunctionGuards(self.ctx.function_facts(fn), self._flags(fn))
        return g

    def _flags(self, fn: cst.CSTNode) -> FrozenSet[str]:
        """The flag parameters of `forward` itself (see `FunctionGuards`); none for any other function,
        a nested `def` or a lambda inside `forward` included."""
        if isinstance(fn, cst.FunctionDef) and fn.name.value in self.seeds and self.methods.get(fn.name.value) is fn:
            return flag_params(fn)
        return frozenset()

    def reach(self, unguarded_only: bool) -> Dict[str, Optional[str]]:
        if unguarded_only not in self._reach:
            def refs(name: str, fn: cst.FunctionDef) -> Iterable[str]:
                self_name = "self" if is_plain_staticmethod(fn) else (first_param(fn) or "self")
                return self._self_refs(fn, self_name, unguarded_only)

            self._reach[unguarded_only] = reach(self.methods, self.seeds, refs, lambda n: not is_sampling_api(n))
        return self._reach[unguarded_only]

    def _self_refs(self, fn: cst.FunctionDef, self_name: str, unguarded_only: bool) -> Iterable[str]:
        names: Set[str] = set()
        guards = self.guards(fn) if unguarded_only else None
        for node in descendants(fn.body):
            if (
                isinstance(node, cst.Attribute)
                and isinstance(node.value, cst.Name)
                and node.value.value == self_name
                and node.attr.value in self.methods
                and node.attr.value not in names
            ):
                if guards is not None and guards.guard(node) is not None:
                    continue
                names.add(node.attr.value)
        return names

    def path_to(self, name: str, unguarded_only: bool) -> List[str]:
        """`["forward", "decode", "select"]` for a method reached through those calls."""
        reach = self.reach(unguarded_only)
        path = [name]
        while reach.get(path[-1]) is not None and len(path) < 20:
            path.append(reach[path[-1]])
        return list(reversed(path))


# --- exemptions discovered on real code ------------------------------------------------------------

# Data-augmentation transforms (torchvision's `RandomCrop`, `ColorJitter`, `AutoAugment`, kornia's
# augmentations) are nn.Modules that are random by design; `.eval()` is not how they are switched off.
_AUGMENT_CLASS = re.compile(r"^_*Random|Augment|AugMix|Jitter|Transform$|Erasing$|Mixup|CutMix|Mosaic", re.I)
# Losses and target matchers sample points / negatives by design; they score, they do not predict.
_LOSS_CLASS = re.compile(r"(Loss|Criterion|Matcher|Losses)$")
_AUGMENT_MODULE = re.compile(r"(^|\.)(transforms|augment|augmentation|augmentations|augmenters)(\.|$)")


def random_by_design_class(ctx, classdef: cst.ClassDef) -> Optional[str]:
    """"augmentation" / "loss" when the class (or a base) is a data transform or a loss, else None."""
    names = [classdef.name.value]
    quals = []
    for base in classdef.bases:
        if base.keyword is None:
            q = ctx.resolve(base.value)
            if q:
                quals.append(q)
                names.append(q.rsplit(".", 1)[-1])
    if any(_LOSS_CLASS.search(n) for n in names):
        return "loss"
    if any(_AUGMENT_CLASS.search(n) for n in names):
        return "augmentation"
    if _AUGMENT_MODULE.search(ctx.facts.modname or "") or any(_AUGMENT_MODULE.search(q.rpartition(".")[0]) for q in quals):
        return "augmentation"
    return None


def _names_in(expr: cst.CSTNode) -> Set[str]:
    return {n.value for n in mode_analysis.loads(expr) if isinstance(n, cst.Name)}


def caller_supplied(chain: List[cst.CSTNode], params: FrozenSet[str]) -> bool:
    """`if noise is None: noise = torch.randn_like(x)` / `ids = ids if ids is not None else torch.randint(...)`:
    the op only fills in a parameter the caller did not pass, so the caller can make eval deterministic."""
    targets: Set[str] = set()
    for node in reversed(chain):
        if isinstance(node, FUNCTION_TYPES):
            break
        if isinstance(node, (cst.Assign, cst.AnnAssign)):
            tgts = [t.target for t in node.targets] if isinstance(node, cst.Assign) else [node.target]
            targets = {t.value for t in tgts if isinstance(t, cst.Name)} & params
            break
    if not targets:
        return False
    for node in reversed(chain):
        if isinstance(node, FUNCTION_TYPES):
            break
        if isinstance(node, (cst.If, cst.IfExp)) and _names_in(node.test) & targets:
            return True
    return False


def seeds_rng(ctx, fn: cst.CSTNode) -> bool:
    """Does the function seed a random generator (`torch.manual_seed(s)`, `g.manual_seed(s)`)?"""
    seed = ctx.framework.seed_method
    return any(isinstance(node, cst.Call) and callee_name(node) == seed for node in descendants(fn))


def scaled_by_switch(chain: List[cst.CSTNode], switch_locals: FrozenSet[str]) -> bool:
    """`torch.randn(...).to(x) * noise_scale`: the draw is multiplied by a knob the user sets (0 turns it off)."""
    i = len(chain) - 1
    while i > 0:
        parent, child = chain[i - 1], chain[i]
        if isinstance(parent, cst.BinaryOperation) and isinstance(parent.operator, cst.Multiply):
            other = parent.right if child is parent.left else parent.left
            if reads_switch(other, switch_locals):
                return True
        elif isinstance(parent, cst.Attribute) and child is parent.value:
            pass  # `.to(...)`, `.float()` on the draw
        elif isinstance(parent, cst.Call) and child is parent.func:
            pass
        elif not isinstance(parent, cst.BinaryOperation):
            return False
        i -= 1
    return False


def caller_generator(call: cst.Call, facts: Optional[mode_analysis.FunctionFacts],
                     keywords: FrozenSet[str] = frozenset({"generator"})) -> bool:
    """`generator=generator` where `generator` is a parameter of the function: the caller seeds the draw.
    A generator kept on the module (`generator=self.gen`) is not: its state advances from call to call.
    `keywords` are the framework's spellings (`Profile.generator_keywords`: MLX `key=`, Keras `seed=`)."""
    if facts is None:
        return False
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value in keywords:
            value = arg.value
            if isinstance(value, cst.Name) and value.value in facts.params:
                return True
    return False


# --- idioms that control the draw (issue 15: false positives on code the rule was not tuned on) ------
# Each is a general pattern with VALID/INVALID twins in tests/test_mdl104_patterns.py.

_STATEMENT_TYPES = (cst.SimpleStatementLine, cst.BaseCompoundStatement)


def _optional_params(fn: cst.CSTNode) -> FrozenSet[str]:
    """Parameters that default to `None` or are annotated `Optional[...]` / `... | None`."""
    out: Set[str] = set()
    for p in _named_params(fn):
        default_none = isinstance(p.default, cst.Name) and p.default.value == "None"
        ann = p.annotation.annotation if p.annotation is not None else None
        optional_ann = ann is not None and any(
            isinstance(n, cst.Name) and n.value in ("Optional", "None") for n in descendants(ann)
        )
        if default_none or optional_ann:
            out.add(p.name.value)
    return frozenset(out)


def fills_default(chain: List[cst.CSTNode], fn: cst.CSTNode, helper_verdict) -> bool:
    """`noise = default(noise, lambda: torch.randn_like(x))`: the draw is the fallback (a lambda, or the
    value itself) of a call whose first argument is an optional parameter of the function, so the op
    only fills in what the caller did not pass. The fallback may also be a thunk named first (`make =
    lambda: torch.randn_like(x)` or a nested `def make(): ...`, then `default(noise, make)`), and the
    optional value a lookup in the function's `**kwargs` (`kwargs.get("noise")`, `kwargs.pop("noise",
    None)`). `helper_verdict(call)` says whether the helper is a default helper (`analysis.fillins`) when
    its body is known (this file, or another checked file by the index); None (a helper from outside the
    checked files) leaves it to the call's shape alone."""
    inner = next((i for i in range(len(chain) - 1, 0, -1) if isinstance(chain[i], (cst.Lambda, cst.FunctionDef))), None)
    thunk = _thunk_name(chain[inner - 1], chain[inner]) if inner is not None else None
    scope = next((n for n in reversed(chain[:inner - 1]) if isinstance(n, cst.FunctionDef)), None) if thunk else None
    if scope is not None:  # (a method itself is no thunk: nothing encloses it but its class)
        return _fills_through(scope, thunk, helper_verdict)
    for i in range(len(chain) - 1, 0, -1):
        parent, child = chain[i - 1], chain[i]
        if isinstance(child, _STATEMENT_TYPES) or isinstance(child, cst.FunctionDef):
            return False
        if not (isinstance(parent, cst.Arg) and isinstance(chain[i - 2] if i >= 2 else None, cst.Call)):
            continue
        call = chain[i - 2]
        if _fallback_arg(call) is parent and _optional_value(call, fn if isinstance(fn, cst.FunctionDef) else None):
            verdict = helper_verdict(call)
            return verdict is None or verdict
    return False


def _fallback_arg(call: cst.Call) -> Optional[cst.Arg]:
    """The second positional argument of a call with at least two (the fallback of `default(value, fallback)`)."""
    args = [a for a in call.args if a.keyword is None and not a.star]
    return args[1] if len(args) >= 2 else None


def _optional_value(call: cst.Call, fn: Optional[cst.FunctionDef]) -> bool:
    """Is the first argument of `call` a value the caller may leave out: an optional parameter of `fn`, or a
    `.get(key)` / `.pop(key, None)` lookup in its `**kwargs`?"""
    if fn is None:
        return False
    first = next(a for a in call.args if a.keyword is None and not a.star).value
    if isinstance(first, cst.Name):
        return first.value in _optional_params(fn)
    star = fn.params.star_kwarg
    if star is None or not isinstance(first, cst.Call) or not isinstance(first.func, cst.Attribute):
        return False
    receiver, method = first.func.value, first.func.attr.value
    if not (isinstance(receiver, cst.Name) and receiver.value == star.name.value):
        return False
    if method == "get":
        return len(first.args) in (1, 2) and (len(first.args) == 1 or _is_none(first.args[1].value))
    return method == "pop" and len(first.args) == 2 and _is_none(first.args[1].value)


def _is_none(expr: cst.BaseExpression) -> bool:
    return isinstance(expr, cst.Name) and expr.value == "None"


def _thunk_name(parent: cst.CSTNode, child: cst.CSTNode) -> Optional[str]:
    """`make = lambda: <draw>` (parent the assignment, child the lambda) or a nested `def make(): ...`
    (child the definition): the local name the thunk is bound to."""
    if isinstance(child, cst.Lambda) and isinstance(parent, cst.Assign) and len(parent.targets) == 1:
        target = parent.targets[0].target
        return target.value if isinstance(target, cst.Name) else None
    if isinstance(child, cst.FunctionDef) and isinstance(parent, cst.IndentedBlock):
        return child.name.value
    return None


def _fills_through(scope: cst.FunctionDef, thunk: str, helper_verdict) -> bool:
    """Is the local thunk `thunk` used only as the fallback of fill-in calls of `scope` (at least one)?"""
    uses = [n for n in descendants(scope.body) if isinstance(n, cst.Name) and n.value == thunk]
    calls = [n for n in descendants(scope.body) if isinstance(n, cst.Call)]
    fallbacks = [c for c in calls if isinstance(getattr(_fallback_arg(c), "value", None), cst.Name)
                 and _fallback_arg(c).value.value == thunk]
    if not fallbacks or len(uses) != len(fallbacks) + _bindings(scope, thunk):
        return False  # also called or passed somewhere else: the draw may run unconditionally
    for call in fallbacks:
        verdict = helper_verdict(call)
        if not _optional_value(call, scope) or verdict is False:
            return False
    return True


def _bindings(scope: cst.FunctionDef, name: str) -> int:
    """How many `name = ...` targets and `def name` bind `name` in `scope` (each holds a Name node that is
    not a use)."""
    return sum(1 for n in descendants(scope.body)
               if (isinstance(n, cst.AssignTarget) and isinstance(n.target, cst.Name) and n.target.value == name)
               or (isinstance(n, cst.FunctionDef) and n.name.value == name))


def _multipliers(chain: List[cst.CSTNode]) -> Iterator[cst.BaseExpression]:
    """The other operands of the multiplications the draw (chain[-1]) takes part in, up to its statement
    (through `+`/`-`, `.to(...)`, `.float()`-style method calls on the draw)."""
    i = len(chain) - 1
    while i > 0:
        parent, child = chain[i - 1], chain[i]
        if isinstance(parent, cst.BinaryOperation):
            if isinstance(parent.operator, cst.Multiply):
                yield parent.right if child is parent.left else parent.left
        elif not ((isinstance(parent, cst.Attribute) and child is parent.value) or (isinstance(parent, cst.Call) and child is parent.func)):
            return
        i -= 1


def _knob_names(expr: cst.CSTNode, facts: mode_analysis.FunctionFacts) -> Set[str]:
    """Settings an expression reads: `self.<...>` chains (outermost only: `self.cfg.amp`, not `self.cfg`),
    also through locals assigned from them (one step). Data (`x.shape`) is not a knob."""
    out: Set[str] = set()
    for node in mode_analysis.loads(expr):
        d = dotted(node)
        if d is None:
            continue
        if d.startswith("self."):
            out.add(d)
        elif isinstance(node, cst.Name):
            for value in facts.assigns.get(d, ()):
                out |= {x for x in map(dotted, mode_analysis.loads(value)) if x and x.startswith("self.")}
    return {d for d in out if not any(o.startswith(d + ".") for o in out)}


def knob_guarded(chain: List[cst.CSTNode], facts: mode_analysis.FunctionFacts) -> bool:
    """`if self.noise_strength > 0: x = x + self.noise_strength * torch.randn_like(x)` (or through a local,
    `s = self.s; if s: ...`): the draw is scaled by a knob and runs only when a test of that knob passes,
    so setting the knob to 0 turns it off."""
    knobs: Set[str] = set()
    for other in _multipliers(chain):
        knobs |= _knob_names(other, facts)
    if not knobs:
        return False
    return guard_in_chain(chain, lambda test: bool(_knob_names(test, facts) & knobs)) is not None


def mode_selected(chain: List[cst.CSTNode], mode_locals: FrozenSet[str]) -> bool:
    """Selection by the mode written as arithmetic or a select call: `self.training * drawn + (1 -
    self.training) * mean`, `torch.where(self.training, drawn, mean)` (a call whose first argument is a
    mode test and the draw a later argument)."""
    if any(mode_analysis.reads_mode(other, mode_locals) for other in _multipliers(chain)):
        return True
    for i in range(len(chain) - 1, 1, -1):
        child, arg, call = chain[i], chain[i - 1], chain[i - 2]
        if isinstance(child, _STATEMENT_TYPES):
            return False
        if isinstance(arg, cst.Arg) and isinstance(call, cst.Call):
            args = [a for a in call.args if a.keyword is None]
            if args and arg is not args[0] and arg in args and mode_analysis.reads_mode(args[0].value, mode_locals):
                return True
    return False


def mode_parametrised(call: cst.Call, facts: mode_analysis.FunctionFacts, class_mode_attrs: FrozenSet[str]) -> bool:
    """`p = self.p if self.training else 0.0` ... `mask.bernoulli_(1 - p)`: an argument of the draw is
    chosen by the mode, so the mode decides the distribution (degenerate - all ones - in eval)."""
    # Reads of the mode and mode-selected locals only: a local merely reassigned under a mode check later
    # (`x = x + noise` in an eval branch) does not make `torch.rand_like(x)` mode-parametrised, and
    # neither does data computed by a call the mode is passed to (`x = self.norm(x, training=training)`,
    # `x = F.dropout(x, p, self.training)` then `randn(shape(x))`): that is the data's shape, not a
    # parameter the mode picks.
    selected = mode_analysis.derived_locals(facts.assigns, _reads_mode_as_value, ())
    attrs = {f"self.{m}" for m in class_mode_attrs}
    for a in call.args:
        if _reads_mode_as_value(a.value, selected):
            return True
        if any(isinstance(n, cst.Attribute) and dotted(n) in attrs for n in _loads_outside_calls(a.value)):
            return True
    return False


def _loads_outside_calls(expr: cst.CSTNode):
    """`mode_analysis.loads`, leaving out what is read only as an argument of a call (`f(x, training=t)`);
    the draw's own argument (`shape(x)` / `1 - p`) is the expression itself, so its top is kept."""
    stack = [expr]
    while stack:
        node = stack.pop()
        if type(node) is cst.Call:
            stack.append(node.func)  # `self.p.item()`: the callee is read; its arguments are not
            continue
        if type(node) in (cst.Attribute, cst.Name):
            yield from mode_analysis.loads(node)
            continue
        stack.extend(children(node))


def _reads_mode_as_value(expr: cst.CSTNode, selected: FrozenSet[str]) -> bool:
    for node in _loads_outside_calls(expr):
        if type(node) is cst.Attribute and node.attr.value in mode_analysis.MODE_ATTRS:
            return True
        if type(node) is cst.Name and (node.value in mode_analysis.MODE_NAMES or node.value in selected):
            return True
    return False


def _assigned_local(chain: List[cst.CSTNode]) -> Optional[str]:
    """The local name the draw's statement binds (`probs = torch.empty(n).uniform_()`), if it is one."""
    for node in reversed(chain[:-1]):
        if isinstance(node, cst.Assign):
            names = [t.target.value for t in node.targets if isinstance(t.target, cst.Name)]
            return names[0] if len(names) == 1 and len(node.targets) == 1 else None
        if isinstance(node, _STATEMENT_TYPES) or isinstance(node, FUNCTION_TYPES):
            return None
    return None


def consumed_under_mode(chain: List[cst.CSTNode], facts: mode_analysis.FunctionFacts, depth: int = 0) -> bool:
    """`probs = torch.empty(n).uniform_()` then `if not self.training or probs[i] >= rate: ...`: the draw is
    made whatever the mode but every read of it (and of the locals computed from it) is in code that runs
    only in training (`analysis.regions`), or is selected by the mode (`mode_selected`: `s = F.gumbel_softmax(l)`
    then `self.training * s + (1 - self.training) * l.softmax(-1)`), so eval never uses it. Judged by the
    use, not by the draw."""
    name = _assigned_local(chain)
    if name is None or depth > 3:
        return False
    uses = 0
    for node in descendants(facts.node):
        if not (isinstance(node, cst.Name) and node.value == name):
            continue
        parent = facts.parents.get(id(node))
        if isinstance(parent, (cst.AssignTarget, cst.Param)) or (isinstance(parent, cst.Attribute) and parent.attr is node):
            continue
        uses += 1
        use_chain = facts.chain(node)
        if region_of(use_chain, facts) == "train" or mode_selected(use_chain, facts.mode_locals):
            continue  # read only when training, or weighted by the mode (0 in eval)
        if not consumed_under_mode(use_chain, facts, depth + 1):
            return False
    return uses > 0


def _flips(fn: cst.CSTNode, flag: str) -> bool:
    """Does the function set `flag` (`self.initted = True`, `self.initted.fill_(True)`, `.copy_(...)`)?"""
    for node in descendants(fn):
        if isinstance(node, (cst.Assign, cst.AnnAssign)):  # not `+=`: a counter is not a one-time flag
            targets = [t.target for t in node.targets] if isinstance(node, cst.Assign) else [node.target]
            if any(dotted(t) == flag for t in targets):
                return True
        elif isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and node.func.attr.value.endswith("_"):
            d = dotted(node.func.value)
            if d is not None and (d == flag or d.startswith(flag + ".")):
                return True
    return False


def one_time_init(chain: List[cst.CSTNode], fn: cst.CSTNode) -> bool:
    """`if not self.initted: self.embed.data.copy_(torch.randn(...)); self.initted.fill_(True)`: the draw is
    under a test of a flag on the module that the same function sets, so it runs once (lazy
    initialisation), not on every forward."""
    for _, test, _ in guard_steps(chain):
        for node in mode_analysis.loads(test):
            d = dotted(node) if isinstance(node, cst.Attribute) else None
            if d and d.startswith("self.") and _flips(fn, d):
                return True
    return False


# Parameter initialisation: `reset_parameters`, `_init_weights`, `init_params`, `initialize_weights`,
# `initialize`. (`init_hidden`, `reset_state` are not: a random hidden state drawn each call is a draw.)
_INIT_METHOD = re.compile(r"^_*(reset|init|initiali[sz]e)_?\w*(param|weight)|^_*(init|initiali[sz]e)$")


def is_init_method(name: str) -> bool:
    return bool(_INIT_METHOD.search(name))


def on_meta_device(call: cst.Call) -> bool:
    """`torch.randn(shape, device="meta")`: a shape-only tensor, no numbers are drawn."""
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == "device":
            v = arg.value
            if isinstance(v, cst.Call) and v.args:
                v = v.args[0].value
            if isinstance(v, cst.SimpleString) and v.value.strip("'\"") == "meta":
                return True
    return False


def after_exit(chain: List[cst.CSTNode]) -> bool:
    """Dead code: the draw's statement follows an unconditional `return`/`raise` in one of its blocks."""
    for i in range(len(chain) - 1, 0, -1):
        parent, child = chain[i - 1], chain[i]
        if isinstance(parent, FUNCTION_TYPES):
            return False
        if isinstance(parent, cst.IndentedBlock):
            for stmt in parent.body:
                if stmt is child:
                    break
                if isinstance(stmt, cst.SimpleStatementLine) and any(isinstance(s, (cst.Return, cst.Raise)) for s in stmt.body):
                    return True
    return False


# --- randomness that is the computation (issue 15: "deliberate" findings) ----------------------------

# A returned value that is a training objective: `loss`, `total_loss`, `F.mse_loss(...)`,
# `self.criterion(...)`, `self.p_losses(...)`, `{"loss": ...}`, `(loss, pred)`, `elbo`, `nll`.
_LOSS_NAME = re.compile(r"loss|criterion|objective|elbo|(^|_)nll($|_)", re.I)


def _loss_like(expr: cst.CSTNode) -> bool:
    if isinstance(expr, cst.Name):
        return bool(_LOSS_NAME.search(expr.value))
    if isinstance(expr, cst.Attribute):
        return bool(_LOSS_NAME.search(expr.attr.value))
    if isinstance(expr, cst.Call):
        name = callee_name(expr)
        if name and _LOSS_NAME.search(name):
            return True
        # `loss.mean()`, `(w * loss).sum()`: a reduction of a loss
        return isinstance(expr.func, cst.Attribute) and _loss_like(expr.func.value)
    if isinstance(expr, (cst.Tuple, cst.List)):
        return bool(expr.elements) and _loss_like(expr.elements[0].value)
    if isinstance(expr, cst.Dict):
        return any(
            isinstance(e, cst.DictElement) and isinstance(e.key, cst.SimpleString) and _LOSS_NAME.search(e.key.value)
            for e in expr.elements
        )
    if isinstance(expr, cst.BinaryOperation):
        return _loss_like(expr.left) or _loss_like(expr.right)
    return False


def returns_objective(fn: Optional[cst.FunctionDef]) -> bool:
    """Does every `return` of `forward` hand back a loss (first of a tuple, a `"loss"` key, a reduction
    of one)? Then the module is an objective, not a predictor: a diffusion model's timestep and noise
    draws, a masked autoencoder's mask, a contrastive loss's negatives are the Monte Carlo estimate the
    loss is defined by, in eval as in training."""
    if fn is None:
        return False
    returns = [r for r in iter_returns(fn) if r.value is not None]
    return bool(returns) and all(_loss_like(r.value) for r in returns)


def path_returns_objective(chain: List[cst.CSTNode]) -> bool:
    """The draw's own branch ends by returning a loss (`if not reverse: ... return nll + logq`): the
    innermost enclosing block that ends in a `return` returns a loss. The objective half of a module
    whose other branch predicts (a flow's training direction)."""
    for node in reversed(chain):
        if isinstance(node, FUNCTION_TYPES):
            return False
        if isinstance(node, cst.IndentedBlock) and node.body:
            last = node.body[-1]
            if isinstance(last, cst.SimpleStatementLine):
                ret = next((s for s in last.body if isinstance(s, cst.Return)), None)
                if ret is not None:
                    return ret.value is not None and _loss_like(ret.value)
    return False


def caller_alternative(chain: List[cst.CSTNode], facts: mode_analysis.FunctionFacts) -> bool:
    """`if cond: t = torch.randint(...)` / `else: t = eval_t`: the drawn local is also bound from a
    parameter, so the function offers a caller-controlled deterministic value and picks the draw by a
    test that is neither the mode nor `is None` - the objective was meant to be deterministic too."""
    name = _assigned_local(chain)
    if name is None:
        return False
    return any(isinstance(v, cst.Name) and v.value in facts.params for v in facts.assigns.get(name, ()))


def _is_noise(ctx, expr: cst.CSTNode, facts: Optional[mode_analysis.FunctionFacts], depth: int = 0) -> bool:
    """A value that is a fixed-distribution draw: the call (`torch.randn_like(x)`), a method on it
    (`.to(x)`, `.mul_(s)`), the draw times/over something, or a local assigned only from such values."""
    if depth > 6:
        return False
    if isinstance(expr, cst.Call):
        if ctx.resolve(expr.func) in ctx.framework.noise_sampling_calls:
            return True
        return (
            isinstance(expr.func, cst.Attribute)
            and not any(_reads_input(a.value, facts) for a in expr.args)
            and _is_noise(ctx, expr.func.value, facts, depth + 1)
        )
    if isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, (cst.Multiply, cst.Divide)):
        # `torch.randn_like(x) * self.std` is noise; `x * torch.rand_like(x).lt(p)` is a dropout of the input
        for side, other in ((expr.left, expr.right), (expr.right, expr.left)):
            if not _reads_input(other, facts) and _is_noise(ctx, side, facts, depth + 1):
                return True
        return False
    if isinstance(expr, cst.Name) and facts is not None:
        values = facts.assigns.get(expr.value)
        return bool(values) and all(_is_noise(ctx, v, facts, depth + 1) for v in values)
    return False


def _reads_input(expr: cst.CSTNode, facts: Optional[mode_analysis.FunctionFacts]) -> bool:
    """Does the expression read a parameter of the function (other than `self`), i.e. data?"""
    params = (facts.params - {"self"}) if facts is not None else frozenset()
    return bool(_names_in(expr) & params)


def returns_noise(ctx, fn: Optional[cst.FunctionDef]) -> bool:
    """Does every `return` of `forward` hand back a fixed-distribution draw (`return torch.randn_like(x)`,
    `noise = torch.randn_like(x); noise.masked_fill_(pad, 0); return noise`)? Then the module is a noise
    source: its output *is* the draw (a diffusion noise generator), and eval is not how it is turned off.
    A module returning a choice made from its input (`probs.multinomial(1)`) is not one."""
    if fn is None:
        return False
    facts = ctx.function_facts(fn)
    returns = [r for r in iter_returns(fn) if r.value is not None]
    return bool(returns) and all(_is_noise(ctx, r.value, facts) for r in returns)


def _returned_names(fn: cst.FunctionDef) -> Set[str]:
    """Bare names returned as elements of a tuple (`return z, mu, logvar`) by fn itself."""
    out: Set[str] = set()
    for r in iter_returns(fn):
        if isinstance(r.value, (cst.Tuple, cst.List)) and len(r.value.elements) >= 2:
            out |= {e.value.value for e in r.value.elements if isinstance(e.value, cst.Name)}
    return out


def _statement(chain: List[cst.CSTNode]) -> Optional[cst.CSTNode]:
    for node in reversed(chain):
        if isinstance(node, cst.SimpleStatementLine):
            return node
        if isinstance(node, FUNCTION_TYPES):
            return None
    return None


def reparameterised(ctx, call: cst.Call, chain: List[cst.CSTNode], method: cst.FunctionDef, forward: Optional[cst.FunctionDef]) -> bool:
    """VAE reparameterisation: a fixed-distribution draw (`torch.randn_like(mu)`) combined with locals that
    `forward` also returns beside its output (`z = mu + eps * std` ... `return x_hat, mu, logvar`): the
    caller gets the posterior's parameters and uses the mean where it wants a deterministic value. When
    the draw is in a helper, the helper's call in `forward` passes returned names (`self.sample_z(mu, lv)`)."""
    if forward is None or ctx.resolve(call.func) not in ctx.framework.noise_sampling_calls:
        return False
    returned = _returned_names(forward)
    if len(returned) < 2:
        return False
    if method is forward:
        stmt, target = _statement(chain), _assigned_local(chain)
        return stmt is not None and bool((_names_in(stmt) - {target}) & returned)
    for node in descendants(forward.body):
        if (
            isinstance(node, cst.Call)
            and isinstance(node.func, cst.Attribute)
            and node.func.attr.value == method.name.value
            and {a.value.value for a in node.args if isinstance(a.value, cst.Name)} & returned
        ):
            return True
    return False


def _words(name: str) -> List[str]:
    return [w.lower() for w in re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+", name)]


def named_for_its_draw(class_name: str, op: str) -> bool:
    """A module named after the op it wraps: `class GumbelSoftmax` around `F.gumbel_softmax`, `class
    BernoulliMask` around `torch.bernoulli` (whole words in order: `Normalize` is not `normal`)."""
    op_words = _words(op.rsplit(".", 1)[-1].strip("._()").replace("_", " ").title().replace(" ", ""))
    cls_words = _words(class_name)
    n = len(op_words)
    return n > 0 and any(cls_words[i:i + n] == op_words for i in range(len(cls_words) - n + 1))


# The author says the randomness is wanted at evaluation too: "# applied even when evaluating",
# "also at inference", "in eval mode too".
_EVAL_TOO = re.compile(
    r"\b(even|also|always)\b[^.\n]{0,40}\b(eval(uat(e|es|ed|ing|ion))?|inference|test(ing)? time)\b"
    r"|\b(eval|evaluation|inference)( mode| time)? too\b",
    re.I,
)


def says_eval_too(ctx, methods: Iterable[cst.FunctionDef]) -> bool:
    """Does a comment or docstring of a method on the path say the draw also happens in eval?"""
    return any(_EVAL_TOO.search(ctx.module.code_for_node(m)) for m in methods)


# A class named as a training objective: Hugging Face's `*ForPreTraining` heads, `*Pretrainer`, `*Objective`.
_OBJECTIVE_CLASS = re.compile(r"(ForPre[Tt]raining|Pre[Tt]rainer|Objective)$")


def objective_class(name: str) -> bool:
    return bool(_OBJECTIVE_CLASS.search(name))


# Attributes and calls of a tensor that read only its size, placement or type, never its values.
_SIZE_ATTRS = frozenset({"shape", "device", "dtype", "ndim"})
_SIZE_METHODS = frozenset({"size", "dim", "numel", "get_device"})
_SIZE_KEYWORDS = frozenset({"size", "device", "dtype", "layout", "pin_memory", "requires_grad", "low", "high"})


def sizes_only_inputs(ctx, forward: Optional[cst.FunctionDef]) -> bool:
    """A sampler module: `forward` has no input whose *values* it computes with - every parameter (there may
    be none) is read only to size, place or type the draws (`torch.randn(n, self.dim, device=device)`,
    `x.shape[0]`, `len(x)`, `x.device`, `torch.randn_like(x)`). Its output is a function of its own draws and parameters alone (a GAN
    generator fed from its own latent, a learned prior's sampler): there is no input for eval to be
    deterministic about, so the randomness is the computation. `*args` / `**kwargs` may carry data: not one."""
    if forward is None or forward.params.star_arg not in (None, cst.MaybeSentinel.DEFAULT) or forward.params.star_kwarg:
        return False
    facts = ctx.function_facts(forward)
    params = facts.params - {first_param(forward) or "self"}
    sizers = ctx.framework.size_argument_calls
    for node in mode_analysis.loads(forward.body):
        if isinstance(node, cst.Name) and node.value in params and not _sizes_a_draw(ctx, facts.chain(node), sizers):
            return False
    return True


def _sizes_a_draw(ctx, chain: List[cst.CSTNode], sizers: FrozenSet[str]) -> bool:
    """Is chain[-1] (a parameter's read) used only as a size / device / dtype argument of a draw or factory,
    through tuples, arithmetic, `x.shape[0]`, `x.size(1)`, `x.device` and `len(x)`?"""
    i = len(chain) - 1
    while i > 0:
        parent, child = chain[i - 1], chain[i]
        if isinstance(parent, cst.Attribute) and child is parent.value:
            if parent.attr.value in _SIZE_ATTRS:
                i -= 1
                continue
            grand = chain[i - 2] if i >= 2 else None
            if parent.attr.value in _SIZE_METHODS and isinstance(grand, cst.Call) and grand.func is parent:
                i -= 2
                continue
            return False
        if isinstance(parent, cst.Arg):
            call = chain[i - 2] if i >= 2 else None
            if not isinstance(call, cst.Call):
                return False
            if isinstance(call.func, cst.Name) and call.func.value == "len":
                i -= 2
                continue
            keyword = parent.keyword.value if parent.keyword is not None else None
            q = ctx.resolve(call.func) if isinstance(call.func, (cst.Name, cst.Attribute)) else None
            return q in sizers and (keyword is None or keyword in _SIZE_KEYWORDS)
        if isinstance(parent, cst.Subscript) and child is parent.value and isinstance(child, cst.Name):
            return False  # `x[0]`: a value of the input
        if isinstance(parent, (cst.Tuple, cst.List, cst.Element, cst.BinaryOperation, cst.UnaryOperation,
                               cst.Subscript, cst.SubscriptElement, cst.Index)):
            i -= 1
            continue
        return False
    return False

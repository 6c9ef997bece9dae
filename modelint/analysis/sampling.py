"""Random sampling ops, sampling switches and "what does `forward` execute" (used by MDL104-MDL106).

- `sampling_op(ctx, call, facts)`: is this call a torch random-sampling op? Returns the name to show
  (`torch.multinomial`, `.bernoulli_()`, `Categorical(...).sample()`), else None.
- `reads_switch(expr)` / `FunctionGuards`: does a test read an explicit sampling switch (`sample`,
  `do_sample`, `greedy`, `temperature`, `self.stochastic`, a `noise` or `generator` the caller may pass,
  `policy == "random"`), and is a node under such a test (or under a mode check)?
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
from typing import Callable, Dict, FrozenSet, Iterable, List, Optional, Set, Tuple

import libcst as cst

from modelint.analysis.calls import callee_name
from modelint.analysis import mode as mode_analysis
from modelint.analysis.walk import descendants

# torch functions that draw random numbers.
TORCH_SAMPLING_FUNCS: FrozenSet[str] = frozenset(
    {
        "torch.multinomial",
        "torch.bernoulli",
        "torch.rand",
        "torch.randn",
        "torch.randint",
        "torch.randperm",
        "torch.rand_like",
        "torch.randn_like",
        "torch.randint_like",
        "torch.normal",
        "torch.poisson",
        "torch.binomial",
        "torch.nn.functional.gumbel_softmax",
        "torch.Tensor.multinomial",
        "torch.Tensor.bernoulli",
        "torch.Tensor.bernoulli_",
        "torch.Tensor.uniform_",
        "torch.Tensor.normal_",
        "torch.Tensor.exponential_",
        "torch.Tensor.geometric_",
        "torch.Tensor.cauchy_",
        "torch.Tensor.log_normal_",
        "torch.Tensor.random_",
    }
)

# Tensor methods that draw random numbers (matched by name, see module docs).
TENSOR_SAMPLING_METHODS: FrozenSet[str] = frozenset(
    {
        "multinomial",
        "bernoulli",
        "bernoulli_",
        "uniform_",
        "normal_",
        "exponential_",
        "geometric_",
        "cauchy_",
        "log_normal_",
        "random_",
    }
)
DISTRIBUTION_METHODS: FrozenSet[str] = frozenset({"sample", "rsample", "sample_n"})

# Every name a sampling call can end in: the cheap first check before any resolving.
SAMPLING_LAST_NAMES: FrozenSet[str] = frozenset(
    {n.rsplit(".", 1)[-1] for n in TORCH_SAMPLING_FUNCS} | TENSOR_SAMPLING_METHODS | DISTRIBUTION_METHODS
)

# Text pre-filter for rules that look for sampling ops: every name above, as a substring.
SAMPLING_TRIGGERS: Tuple[str, ...] = (
    "multinomial",
    "bernoulli",
    "rand",  # rand, randn, randint, randperm, *_like, random_
    "normal",  # torch.normal, normal_, log_normal_
    "poisson",
    "binomial",
    "gumbel_softmax",
    "uniform_",
    "exponential_",
    "geometric_",
    "cauchy_",
    "sample",  # sample, rsample, sample_n
)

_DISTRIBUTIONS = "torch.distributions."

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


def guard_in_chain_by(chain: List[cst.CSTNode], test: Callable[[cst.CSTNode], bool]) -> Optional[cst.CSTNode]:
    """Like `mode.guard_in_chain`, for any predicate on a test expression: the If/IfExp/While,
    BooleanOperation or early-exit/assert statement that puts chain[-1] under such a test."""
    for i in range(len(chain) - 1, 0, -1):
        parent, child = chain[i - 1], chain[i]
        if isinstance(parent, mode_analysis.FUNCTION_TYPES):
            return None
        if isinstance(parent, (cst.If, cst.IfExp, cst.While)):
            if child is not parent.test and test(parent.test):
                return parent
        elif isinstance(parent, cst.BooleanOperation):
            if child is parent.right and test(parent.left):
                return parent
        elif isinstance(parent, (cst.IndentedBlock, cst.Module)):
            for stmt in parent.body:
                if stmt is child:
                    break
                if isinstance(stmt, cst.If) and test(stmt.test) and mode_analysis._block_exits(stmt.body):
                    return stmt
                if isinstance(stmt, cst.SimpleStatementLine) and any(
                    isinstance(s, cst.Assert) and test(s.test) for s in stmt.body
                ):
                    return stmt
    return None


class FunctionGuards:
    """Mode and sampling-switch guards of one function, computed once."""

    def __init__(self, facts: mode_analysis.FunctionFacts):
        self.facts = facts
        self.mode_locals = facts.mode_locals
        self.switch_locals = switch_locals(facts)

    def mode_guard(self, node: cst.CSTNode, chain: Optional[List[cst.CSTNode]] = None) -> Optional[cst.CSTNode]:
        return mode_analysis.guard_in_chain(chain or self.facts.chain(node), self.mode_locals)

    def switch_guard(self, node: cst.CSTNode, chain: Optional[List[cst.CSTNode]] = None) -> Optional[cst.CSTNode]:
        sl = self.switch_locals
        return guard_in_chain_by(chain or self.facts.chain(node), lambda t: reads_switch(t, sl))

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
        return bool(q) and q.startswith(_DISTRIBUTIONS)
    if isinstance(expr, cst.Name) and facts is not None and depth < 4:
        values = facts.assigns.get(expr.value)
        return bool(values) and all(v is not None and _is_distribution(ctx, v, facts, depth + 1) for v in values)
    return False


def sampling_op(ctx, call: cst.Call, facts: Optional[mode_analysis.FunctionFacts] = None) -> Optional[str]:
    """The sampling op this call performs (a name to show), or None."""
    func = call.func
    last = callee_name(call)
    if last is None:
        return None
    if last not in SAMPLING_LAST_NAMES:
        return None
    qualname = ctx.resolve(func)
    if qualname in TORCH_SAMPLING_FUNCS:
        return qualname
    if not isinstance(func, cst.Attribute):
        return None
    receiver = func.value
    if last in TENSOR_SAMPLING_METHODS:
        if _receiver_is_module_or_self(ctx, receiver):
            return None
        return f".{last}()"
    if last in DISTRIBUTION_METHODS:
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


def class_methods(classdef: cst.ClassDef) -> Dict[str, cst.FunctionDef]:
    out: Dict[str, cst.FunctionDef] = {}
    body = classdef.body
    if isinstance(body, cst.IndentedBlock):
        for stmt in body.body:
            if isinstance(stmt, cst.FunctionDef):
                out.setdefault(stmt.name.value, stmt)
    return out


def top_level_classes(module: cst.Module) -> Dict[str, cst.ClassDef]:
    return {stmt.name.value: stmt for stmt in module.body if isinstance(stmt, cst.ClassDef)}


def _inherited_methods(classdef: cst.ClassDef, local_classes: Dict[str, cst.ClassDef], depth: int = 0) -> Dict[str, cst.FunctionDef]:
    """Methods of the bases of `classdef` that are defined in the same file (first base wins)."""
    out: Dict[str, cst.FunctionDef] = {}
    if depth > 10:
        return out
    for base in reversed(classdef.bases):
        if base.keyword is None and isinstance(base.value, cst.Name) and base.value.value in local_classes:
            parent = local_classes[base.value.value]
            if parent is classdef:
                continue
            out.update(_inherited_methods(parent, local_classes, depth + 1))
            out.update(class_methods(parent))
    return out


def _first_param(fn: cst.FunctionDef) -> Optional[str]:
    params = (*fn.params.posonly_params, *fn.params.params)
    return params[0].name.value if params else None


def _is_static(fn: cst.FunctionDef) -> bool:
    for dec in fn.decorators:
        d = dec.decorator
        if isinstance(d, cst.Name) and d.value == "staticmethod":
            return True
    return False


class ForwardReach:
    """Which methods of one class `forward` executes, and through which call.

    `reach(guarded)` maps method name -> the name of the method whose `self.<name>` reference reached it
    (None for `forward` itself). With `unguarded_only=True` a reference counts only when no mode check
    and no sampling switch guards it in the referencing method. Methods named like a sampling API
    (`sample*`, `generate*`, `rollout*`, `act*`, leading underscores ignored) are never entered.
    """

    def __init__(self, ctx, classdef: cst.ClassDef, local_classes: Optional[Dict[str, cst.ClassDef]] = None):
        self.ctx = ctx
        self.classdef = classdef
        self.methods = class_methods(classdef)
        if "forward" not in self.methods and local_classes:
            # Template method: `forward` is inherited from a base class in the same file and calls
            # methods this class overrides. Use the base's methods under this class's own.
            inherited = _inherited_methods(classdef, local_classes)
            if "forward" in inherited:
                self.methods = {**inherited, **self.methods}
        self._guards: Dict[int, FunctionGuards] = {}
        self._reach: Dict[bool, Dict[str, Optional[str]]] = {}

    def guards(self, fn: cst.CSTNode) -> FunctionGuards:
        key = id(fn)
        g = self._guards.get(key)
        if g is None:
            g = self._guards[key] = FunctionGuards(self.ctx.function_facts(fn))
        return g

    def reach(self, unguarded_only: bool) -> Dict[str, Optional[str]]:
        if unguarded_only in self._reach:
            return self._reach[unguarded_only]
        out: Dict[str, Optional[str]] = {}
        if "forward" in self.methods:
            out["forward"] = None
            todo = ["forward"]
            while todo:
                name = todo.pop()
                fn = self.methods[name]
                self_name = "self" if _is_static(fn) else (_first_param(fn) or "self")
                for ref in self._self_refs(fn, self_name, unguarded_only):
                    if ref in self.methods and ref not in out and not is_sampling_api(ref):
                        out[ref] = name
                        todo.append(ref)
        self._reach[unguarded_only] = out
        return out

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
        if isinstance(node, mode_analysis.FUNCTION_TYPES):
            break
        if isinstance(node, (cst.Assign, cst.AnnAssign)):
            tgts = [t.target for t in node.targets] if isinstance(node, cst.Assign) else [node.target]
            targets = {t.value for t in tgts if isinstance(t, cst.Name)} & params
            break
    if not targets:
        return False
    for node in reversed(chain):
        if isinstance(node, mode_analysis.FUNCTION_TYPES):
            break
        if isinstance(node, (cst.If, cst.IfExp)) and _names_in(node.test) & targets:
            return True
    return False


def seeds_rng(fn: cst.CSTNode) -> bool:
    """Does the function seed a random generator (`torch.manual_seed(s)`, `g.manual_seed(s)`)?"""
    for node in descendants(fn):
        if (
            isinstance(node, cst.Call)
            and isinstance(node.func, (cst.Attribute, cst.Name))
            and (node.func.attr.value if isinstance(node.func, cst.Attribute) else node.func.value) == "manual_seed"
        ):
            return True
    return False


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


def caller_generator(call: cst.Call, facts: Optional[mode_analysis.FunctionFacts]) -> bool:
    """`generator=generator` where `generator` is a parameter of the function: the caller seeds the draw.
    A generator kept on the module (`generator=self.gen`) is not: its state advances from call to call."""
    if facts is None:
        return False
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == "generator":
            value = arg.value
            if isinstance(value, cst.Name) and value.value in facts.params:
                return True
    return False

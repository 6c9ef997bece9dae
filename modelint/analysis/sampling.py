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
from typing import Dict, FrozenSet, Iterable, List, Optional, Set

import libcst as cst

from modelint.analysis import mode as mode_analysis
from modelint.analysis.calls import callee_name
from modelint.analysis.classes import first_methods, first_param, inherited_methods, is_plain_staticmethod, reach
from modelint.analysis.guards import FUNCTION_TYPES, guard_in_chain
from modelint.analysis.walk import descendants

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


class FunctionGuards:
    """Mode and sampling-switch guards of one function, computed once."""

    def __init__(self, facts: mode_analysis.FunctionFacts):
        self.facts = facts
        self.mode_locals = facts.mode_locals
        self.switch_locals = switch_locals(facts)

    def mode_guard(self, node: cst.CSTNode, chain: Optional[List[cst.CSTNode]] = None) -> Optional[cst.CSTNode]:
        return mode_analysis.mode_guard(chain or self.facts.chain(node), self.mode_locals)

    def switch_guard(self, node: cst.CSTNode, chain: Optional[List[cst.CSTNode]] = None) -> Optional[cst.CSTNode]:
        sl = self.switch_locals
        return guard_in_chain(chain or self.facts.chain(node), lambda t: reads_switch(t, sl))

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
        self.ctx = ctx
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
            g = self._guards[key] = FunctionGuards(self.ctx.function_facts(fn))
        return g

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

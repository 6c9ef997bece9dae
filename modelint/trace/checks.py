"""Turn a `Trace` into findings: one function per code, each documented with what it reports.

Causes are reported once: when a module runs in training mode during eval (MDL603), the random
numbers its dropout draws (MDL601) and the statistics its batch norm updates (MDL602) are
consequences, so they are not reported again unless MDL603 is opted out of with `allow`; likewise
the random weight initialisation of a module built inside forward (MDL604).
"""

from __future__ import annotations

from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.dropout import _DropoutNd
from torch.nn.modules.instancenorm import _InstanceNorm

from modelint.findings import Finding
from modelint.codes import RUNTIME_BY_CODE
from modelint.trace.source import Location, assignment, class_mentions, definition, forward_definition, mention
from modelint.trace.state import compare_outputs
from modelint.trace.tracer import Event, ModuleCall, Trace

_UNKNOWN = Location("<unknown>", 1)


def make(code: str, location: Optional[Location], message: str, **extra) -> Finding:
    """A tracer or guard finding at `location` (unknown: `<unknown>:1`); `extra` without None values."""
    info = RUNTIME_BY_CODE[code]
    loc = location or _UNKNOWN
    return Finding(
        path=loc.path,
        line=loc.line,
        column=loc.column,
        code=code,
        message=message,
        name=info.name,
        level=info.level,
        extra=tuple(sorted((k, v) for k, v in extra.items() if v is not None)),
    )


# ----------------------------------------------------------------------------- helpers


def _is_user_class(cls) -> bool:
    return not cls.__module__.startswith("torch.") and cls.__module__ != "torch"


def mode_dependent(module: nn.Module) -> bool:
    """Does this module behave differently in training and eval mode?

    Dropout with p>0, batch/instance norm tracking running statistics, RReLU, multi-head attention
    and RNNs with dropout, the Transformer layers, and user classes whose source reads `.training`.
    """
    if isinstance(module, _DropoutNd):
        return module.p > 0
    if isinstance(module, (_BatchNorm, _InstanceNorm)):
        return bool(module.track_running_stats)
    if isinstance(module, nn.RReLU):
        return True
    if isinstance(module, (nn.MultiheadAttention, nn.RNNBase)):
        return float(getattr(module, "dropout", 0) or 0) > 0
    if isinstance(module, (nn.TransformerEncoderLayer, nn.TransformerDecoderLayer,
                           nn.TransformerEncoder, nn.TransformerDecoder, nn.Transformer)):
        return True
    if _is_user_class(type(module)):
        return class_mentions(type(module), r"\.training\b")
    return False


def declares_mode_behaviour(module: nn.Module) -> bool:
    """Registered Dropout with p>0, or batch norm that tracks running statistics."""
    if isinstance(module, _DropoutNd):
        return module.p > 0
    return isinstance(module, _BatchNorm) and bool(module.track_running_stats)


def _has_state(module: nn.Module) -> bool:
    return any(True for _ in module.parameters()) or any(True for _ in module.buffers())


def _consequence(module: nn.Module) -> str:
    if isinstance(module, _DropoutNd) or (isinstance(module, nn.MultiheadAttention)):
        return "dropout stays active, so eval predictions are random"
    if isinstance(module, (_BatchNorm, _InstanceNorm)):
        return ("batch norm normalises with batch statistics and keeps updating its running "
                "statistics during evaluation")
    return "its training-only code paths run during evaluation"


def _user_train_override(module: nn.Module):
    """(owner, function) of a user-defined `train` for this module: set on the instance, or
    defined by a non-torch class in its MRO; None when torch's own `nn.Module.train` applies."""
    cls = type(module)
    bound = module.__dict__.get("train")
    if bound is not None:
        return cls, getattr(bound, "__func__", bound)
    for klass in cls.__mro__:
        if "train" in klass.__dict__:
            if klass is nn.Module or not _is_user_class(klass):
                return None
            return klass, klass.__dict__["train"]
    return None


class _Names:
    """Readable, id-free names for modules."""

    def __init__(self, trace: Trace):
        self.trace = trace
        self.by_name = {name: mid for mid, name in trace.names.items()}
        self._labels: Optional[Dict[int, str]] = None

    def of(self, module: Optional[nn.Module]) -> str:
        if module is None:
            return type(self.trace.model).__name__
        cls = type(module).__name__
        name = self.trace.names.get(id(module))
        if name is None:
            late = self.trace.late.get(id(module))
            if late:
                return f"`{late}` ({cls}, registered during forward)"
            label = self._unregistered_labels().get(id(module))
            return f"`{label}` ({cls}, unregistered)" if label else f"unregistered {cls}"
        return cls if name == "" else f"`{name}` ({cls})"

    def _unregistered_labels(self) -> Dict[int, str]:
        """`Owner.attr[i].sub.name` for unregistered modules held in a plain container."""
        if self._labels is None:
            self._labels = {}
            for call in self.trace.unregistered.values():
                holder = _holders(self.trace, call.module)
                if holder is None:
                    continue
                owner, attr, _ = holder
                container = vars(owner)[attr]
                if isinstance(container, dict):
                    key = next(k for k, v in container.items() if v is call.module)
                    base = f"{type(owner).__name__}.{attr}[{key!r}]"
                elif isinstance(container, set):
                    base = f"{type(owner).__name__}.{attr}"
                else:
                    index = next(i for i, v in enumerate(container) if v is call.module)
                    base = f"{type(owner).__name__}.{attr}[{index}]"
                for sub, module in call.module.named_modules():
                    self._labels.setdefault(id(module), f"{base}.{sub}" if sub else base)
        return self._labels

    def module(self, name: str) -> Optional[nn.Module]:
        mid = self.by_name.get(name)
        return self.trace.module(mid) if mid is not None else None

    def parent_and_attr(self, mid: int) -> Tuple[Optional[nn.Module], str]:
        name = self.trace.names.get(mid) or ""
        if not name:
            return None, ""
        parent, _, attr = name.rpartition(".")
        return self.module(parent), attr

    def declaration(self, module: nn.Module) -> Optional[Location]:
        """The `self.<attr> = ...` line that created a registered module, if it can be found."""
        parent, attr = self.parent_and_attr(id(module))
        if parent is not None and attr and not attr.isdigit():
            return assignment(type(parent), attr)
        return None


def _fallback(trace: Trace) -> Optional[Location]:
    return forward_definition(trace.model)


def _first_line(exc: BaseException, limit: int = 200) -> str:
    text = str(exc).strip().splitlines()
    msg = text[0] if text else ""
    if len(msg) > limit:
        msg = msg[: limit - 3] + "..."
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


def _list(items: Sequence[str], limit: int = 4) -> str:
    items = list(items)
    if len(items) <= limit:
        return ", ".join(items)
    return ", ".join(items[:limit]) + f" and {len(items) - limit} more"


# ----------------------------------------------------------------------------- MDL606


def check_mode_failures(trace: Trace) -> List[Finding]:
    """MDL606: the forward raises in one mode but not in the other (exception + user frame)."""
    train_err = next((f for f in trace.train if not f.ok), None)
    eval_err = next((f for f in trace.eval if not f.ok), None)
    if (train_err is None) == (eval_err is None):
        return []
    failed, mode, other = (train_err, "training", "eval") if train_err else (eval_err, "eval", "training")
    loc = failed.error_location or _fallback(trace)
    where = f" at {loc}" if failed.error_location else ""
    hint = ("the eval path is never exercised by the training loop and will fail at validation "
            "or deployment time" if mode == "eval" else
            "the model can be evaluated but not trained")
    message = (f"forward raises {_first_line(failed.error)}{where} in {mode} mode but not in "
               f"{other} mode: {hint}")
    return [make("MDL606", loc, message, mode=mode, exception=type(failed.error).__name__)]


# ----------------------------------------------------------------------------- MDL604


def _holders(trace: Trace, module: nn.Module) -> Optional[Tuple[nn.Module, str, str]]:
    """(owner, attribute, container type) of a plain list/tuple/dict/set attribute of a
    registered module that holds `module`."""
    for owner in trace.model.modules():
        for attr, value in sorted(vars(owner).items()):
            if attr.startswith("_") and attr in ("_modules", "_parameters", "_buffers"):
                continue
            if isinstance(value, (list, tuple, set)):
                members = value
            elif isinstance(value, dict):
                members = value.values()
            else:
                continue
            if any(m is module for m in members if isinstance(m, nn.Module)):
                return owner, attr, type(value).__name__
    return None


def _unregistered_tops(trace: Trace) -> List[ModuleCall]:
    """Unregistered modules worth reporting: with state or mode-dependent behaviour (in them or a
    child), and not themselves children of another reported unregistered module."""
    calls = trace.unregistered
    children = set()
    for call in calls.values():
        for child in call.module.modules():
            if child is not call.module:
                children.add(id(child))
    out = []
    for mid, call in calls.items():
        if mid in children:
            continue
        mods = list(call.module.modules())
        if _has_state(call.module) or any(mode_dependent(m) for m in mods):
            out.append(call)
    return out


def describe_unregistered(trace: Trace, call: ModuleCall) -> Tuple[Optional[Location], str]:
    """Where an unregistered module lives, and a sentence saying so."""
    names = _Names(trace)
    cls = type(call.module).__name__
    ran = f" (called at {call.location})" if call.location else ""
    late = trace.late.get(id(call.module))
    if late:
        parent_name, _, attr = late.rpartition(".")
        parent = names.module(parent_name)
        loc = (assignment(type(parent), attr) if parent is not None else None) or call.location
        return loc, (f"{cls} is created and registered as `{late}` inside forward{ran}: a fresh, "
                     f"untrained module runs on every call and the optimizer, state_dict() and "
                     f"model.eval() only ever see a stale one")
    holder = _holders(trace, call.module)
    if holder is not None:
        owner, attr, kind = holder
        loc = assignment(type(owner), attr) or call.location
        return loc, (f"{cls} held in plain {kind} `{type(owner).__name__}.{attr}` runs in forward{ran} "
                     f"but is not registered")
    return call.location, (f"{cls} runs in forward{ran} but is not part of the model (built inside "
                           f"forward or held outside it)")


def check_unregistered(trace: Trace) -> Tuple[List[Finding], Set[int]]:
    """MDL604: a module ran during a forward but is not in `model.modules()`.

    Parameter-free, mode-independent modules (an unregistered ReLU) are harmless and not
    reported; children of a reported unregistered module are covered by their parent. Returns
    the findings and the ids of the modules covered (the random weight initialisation of a module
    built inside forward is not reported again as MDL601)."""
    findings: Dict[tuple, Finding] = {}
    counts: Dict[tuple, int] = {}
    covered: Set[int] = set()
    for call in _unregistered_tops(trace):
        covered.update(id(m) for m in call.module.modules())
        loc, what = describe_unregistered(trace, call)
        message = (f"{what}: model.eval()/train(), .to(device), parameters() (so the optimizer) and "
                   f"state_dict() never see it; register it in __init__ (nn.ModuleList/nn.ModuleDict "
                   f"for collections)")
        key = (loc, type(call.module).__name__)
        counts[key] = counts.get(key, 0) + 1
        findings.setdefault(key, make("MDL604", loc, message, module=type(call.module).__name__))
    out = []
    for key, finding in findings.items():
        if counts[key] > 1:  # several instances from one place: say so once
            finding = make("MDL604", Location(finding.path, finding.line, finding.column),
                           f"{counts[key]} modules: " + finding.message, module=key[1])
        out.append(finding)
    return out, covered


# ----------------------------------------------------------------------------- MDL603


def _group_consequence(modules: Sequence[nn.Module]) -> str:
    if any(isinstance(m, (_DropoutNd, nn.MultiheadAttention)) or
           any(isinstance(c, _DropoutNd) for c in m.modules()) for m in modules):
        return "dropout stays active, so eval predictions are random"
    if any(isinstance(m, (_BatchNorm, _InstanceNorm)) for m in modules):
        return _consequence(next(m for m in modules if isinstance(m, (_BatchNorm, _InstanceNorm))))
    return "its training-only code paths run during evaluation"


def _broken_link(trace: Trace, names: "_Names", mid: int) -> Optional[nn.Module]:
    """The module that failed to pass `eval()` on towards module `mid`: walking from the root to
    it, the last module switched off before the first one left on (the root itself if it was
    left on). Every module was put in training mode before `model.eval()`."""
    name = trace.names[mid]
    parts = name.split(".") if name else []
    path = [""] + [".".join(parts[: i + 1]) for i in range(len(parts))]
    previous = None
    for path_name in path:
        module = names.module(path_name)
        if module is None:
            return previous
        if id(module) in trace.left_on:
            return previous if previous is not None else module
        previous = module
    return None


def check_stuck(trace: Trace) -> Tuple[List[Finding], Set[int]]:
    """MDL603: a mode-dependent module ran with training=True during an eval forward.

    Before each eval forward every module is put in training mode (`nn.Module.train`), then the
    user's `model.eval()` runs. A module still on afterwards is blamed on, in order: not being
    registered (eval() cannot reach it; reported at the attribute that holds it); the module on
    its path from the root that was switched off but did not pass the mode on (its `train()`
    override, instance or class, when it has one); else its call site. A module switched off by
    eval() but on when called had its flag set during the forward (`module.training = True`).
    Returns the findings and the ids of the modules reported, whose consequences MDL601/MDL602
    do not repeat."""
    names = _Names(trace)
    tops = _unregistered_tops(trace)
    groups: Dict[tuple, List[nn.Module]] = {}
    texts: Dict[tuple, Tuple[Optional[Location], str]] = {}
    reported: Set[int] = set()
    for mid, call in trace.stuck.items():
        module = call.module
        if not mode_dependent(module):
            continue
        reported.add(mid)
        cls = type(module).__name__
        ran = f" (called at {call.location})" if call.location else ""
        if mid not in trace.names:
            top = next((t for t in tops if any(m is module for m in t.module.modules())), call)
            loc, what = describe_unregistered(trace, top)
            key = ("unregistered", loc, type(top.module).__name__)
            texts[key] = (loc, f"{what}, so model.eval() cannot switch it off: {{modules}} ran with "
                               f"training=True during an eval forward")
        elif call.left_on_by_eval:
            link = _broken_link(trace, names, mid)
            override = _user_train_override(link) if link is not None else None
            if override is not None:
                klass, func = override
                loc = definition(func) or call.location
                owner = names.of(link)
                key = ("override", loc, owner)
                of = "" if owner == klass.__qualname__ else f" of {owner}"
                texts[key] = (loc, f"{klass.__qualname__}.train(){of} does not pass the mode "
                                   f"on to its submodules, so after model.eval() {{modules}} still ran "
                                   f"with training=True{ran}; call super().train(mode) in the override "
                                   f"and return self")
            else:
                loc = call.location
                key = ("left-on", loc, cls)
                texts[key] = (loc, f"model.eval() left {{modules}} in training mode and it ran with "
                                   f"training=True{ran}")
        else:
            loc = call.location
            key = ("set-during-forward", loc, cls)
            texts[key] = (loc, f"{{modules}} ran with training=True during an eval forward{ran} "
                               f"although model.eval() had switched it off: its `training` flag was "
                               f"set during the forward (e.g. `module.training = True`)")
        groups.setdefault(key, []).append(module)
    findings = []
    for key, modules in groups.items():
        loc, template = texts[key]
        labels = sorted(names.of(m) for m in modules)
        message = template.replace("{modules}", _list(labels)) + f"; {_group_consequence(modules)}"
        findings.append(make("MDL603", loc, message, modules=", ".join(labels)))
    return findings, reported


# ----------------------------------------------------------------------------- MDL601


def _random_hint(event: Event) -> str:
    op = event.op
    if "dropout_p" in event.detail and "train" not in event.detail:
        return "pass dropout_p=self.p if self.training else 0.0"
    if "p=" in event.detail and "train" in event.detail:
        return "pass training=self.training"
    if op.startswith(("Python random", "numpy.")):
        return "draw only when self.training (or from a private, seeded generator)"
    return "sample only when self.training (take argmax/mean in eval) or pass a private torch.Generator"


def check_randomness(trace: Trace, explained: Set[int], constructed: Set[int] = frozenset()) -> List[Finding]:
    """MDL601: an eval forward drew random numbers, or two eval forwards differ.

    Evidence: a generator state that moved during an eval forward, or eval outputs that differ
    between the two seeds. The locating forward then names each random op (dispatch mode) or
    Python/NumPy random call (profile hook) with its module and source line; ops inside modules
    already reported by MDL603 are not repeated. Evidence with no op to show for it is reported
    once at the model's forward. `explained`: ids of modules reported by MDL603 (their random ops
    are consequences); `constructed`: ids of modules reported by MDL604 (their weight
    initialisation inside forward is a consequence)."""
    names = _Names(trace)
    ok = [f for f in trace.eval if f.ok]
    moved = sorted({g for f in trace.eval_forwards for g in f.moved})
    diff = (compare_outputs(ok[0].outputs, ok[1].outputs, trace.atol, trace.rtol)
            if len(ok) == 2 else None)
    if not moved and diff is None:
        return []
    events = [e for e in (trace.events or []) if e.kind == "random"]
    unexplained = [e for e in events
                   if (e.module is None or id(e.module) not in explained)
                   and (e.constructing is None or id(e.constructing) not in constructed)]
    findings = {}
    if diff is not None:
        consequence = (f"predictions differ run to run (eval forwards with seeds {trace.seeds[0]} "
                       f"and {trace.seeds[1]}: {diff})")
    else:
        consequence = (f"the draw did not change the outputs for these inputs (eval forwards with "
                       f"seeds {trace.seeds[0]} and {trace.seeds[1]} agree), but every evaluation "
                       f"consumes the global generator, so the random numbers of whatever runs next "
                       f"(the next training step's dropout masks, data shuffling) depend on whether "
                       f"and how often you evaluated")
    for event in unexplained:
        where = f" ({event.location})" if event.location else ""
        message = (f"eval forward drew random numbers via {event.op} ({event.detail}) in "
                   f"{names.of(event.module)}{where}; {consequence}; {_random_hint(event)}")
        key = (event.op, event.location)
        findings.setdefault(key, make("MDL601", event.location or _fallback(trace), message,
                                      op=event.op, module=names.of(event.module)))
    if not events:
        what = []
        if moved:
            what.append(f"advanced the {_list(moved)} random generator state")
        if diff is not None:
            what.append(f"gave different outputs for seeds {trace.seeds[0]} and {trace.seeds[1]} ({diff})")
        message = (f"eval forward {' and '.join(what)}, but no torch op drew from a global generator: "
                   f"the randomness comes from code the tracer cannot see (Python/NumPy random in a "
                   f"helper thread, TorchScript, a C extension) or from nondeterministic ops; "
                   f"eval predictions are not reproducible")
        findings[("generic",)] = make("MDL601", _fallback(trace), message, generators=", ".join(moved) or None)
    return list(findings.values())


# ----------------------------------------------------------------------------- MDL602


_HOW = {
    "changed": "changed {noun} {names}",
    "replaced": "replaced {noun} {names}",
    "removed": "removed {noun} {names}",
    "initialised": "set {noun} {names} that were None or absent before the first forward",
    "requires_grad": "flipped requires_grad of {noun} {names}",
}


def check_state(trace: Trace, explained: Set[int]) -> List[Finding]:
    """MDL602: a parameter or buffer changed (in place, replaced or removed) during an eval
    forward. One finding per module, located at the op that wrote it when the locating forward
    saw one (batch norm with training=True, an in-place op, an assignment), else at the module's
    forward. Modules already reported by MDL603 are not repeated."""
    names = _Names(trace)
    by_module: Dict[int, Dict[str, Tuple[str, str]]] = {}
    for forward in trace.eval_forwards:
        for mid, kind, name, how in forward.changes:
            by_module.setdefault(mid, {}).setdefault(name, (kind, how))
    findings = []
    for mid, changed in by_module.items():
        if mid in explained:
            continue
        module = trace.module(mid)
        if module is None:
            continue
        event = next((e for e in (trace.events or [])
                      if e.kind in ("batch-norm-train", "write", "reassign")
                      and any(t[0] == mid and t[1] in changed for t in e.tensors)), None)
        parts = []
        for how, verb in _HOW.items():
            items = sorted(n for n, (_, h) in changed.items() if h == how)
            if items:
                kinds = {changed[n][0] for n in items}
                noun = "parameters/buffers" if len(kinds) > 1 else f"{kinds.pop()}s"
                parts.append(verb.format(noun=noun, names=_list(['`' + n + '`' for n in items])))
        via = ""
        loc = None
        if event is not None:
            loc = event.location
            via = f" via {event.op} ({event.detail})" + (f" at {event.location}" if event.location else "")
        loc = loc or forward_definition(module) or _fallback(trace)
        message = (f"eval forward {' and '.join(parts)} of {names.of(module)}{via}: every evaluation "
                   f"changes the model, so repeated evaluations drift and the saved checkpoint no "
                   f"longer matches the trained weights")
        findings.append(make("MDL602", loc, message, module=names.of(module),
                             op=event.op if event else None))
    return findings


# ----------------------------------------------------------------------------- MDL605


def check_no_effect(trace: Trace) -> List[Finding]:
    """MDL605: declared mode-dependent behaviour that does nothing.

    (a) A registered Dropout with p>0 that never ran in any forward, while the training forwards
        drew no random numbers at all (so its rate is not used functionally either).
    (b) Otherwise, a model that registers Dropout (p>0) or batch norm whose two training forwards
        (different seeds) are identical and equal to the eval output."""
    names = _Names(trace)
    declared = [m for m in trace.model.modules() if declares_mode_behaviour(m)]
    if not declared or not trace.train or not all(f.ok for f in trace.train):
        return []
    # a module kept in eval mode during training on purpose (a frozen backbone's batch norm)
    # declares nothing that train()/eval() could switch: only count the ones that trained
    declared = [m for m in declared if id(m) in trace.trained or
                (isinstance(m, _DropoutNd) and id(m) not in trace.called)]
    if not declared:
        return []
    torch_drew = any(g.startswith("torch") for f in trace.train for g in f.moved)
    unused = [m for m in declared if isinstance(m, _DropoutNd) and id(m) not in trace.called]
    if unused and not torch_drew:
        findings = []
        for module in unused:
            loc = names.declaration(module) or _fallback(trace)
            message = (f"{names.of(module)} with p={module.p:g} is declared but never runs: no "
                       f"forward called it and the training forward drew no random numbers, so no "
                       f"dropout is applied in training; call it in forward or remove it")
            findings.append(make("MDL605", loc, message, module=names.of(module)))
        return findings
    if not trace.eval or not trace.eval[0].ok or len(trace.train) < 2:
        return []
    t0, t1, e0 = trace.train[0].outputs, trace.train[1].outputs, trace.eval[0].outputs
    if not t0 or not any(t.numel() for _, t in t0):  # an empty batch: nothing could differ
        return []
    if compare_outputs(t0, t1, trace.atol, trace.rtol) is not None:
        return []
    if compare_outputs(t0, e0, trace.atol, trace.rtol) is not None:
        return []
    declared = [m for m in declared if id(m) in trace.trained]
    if not declared:
        return []
    labels = sorted(names.of(m) for m in declared)
    loc = names.declaration(declared[0]) or _fallback(trace)
    message = (f"{names.of(None)} declares {_list(labels)} but train() and eval() change nothing: "
               f"two training forwards with seeds {trace.seeds[0]} and {trace.seeds[1]} are identical "
               f"and equal to the eval output, so the declared dropout/batch norm has no effect")
    return [make("MDL605", loc, message, modules=", ".join(labels))]


# ----------------------------------------------------------------------------- MDL607


def check_differentiable(trace: Trace) -> List[Finding]:
    """MDL607: the training forward (grad enabled) returns floating-point tensors, none of which
    requires grad, although the model has trainable parameters. Integer outputs are ignored."""
    forward = next((f for f in trace.train if f.ok), None)
    if forward is None or not trace.trainable:
        return []
    if forward.float_outputs == 0 or forward.float_outputs_requiring_grad:
        return []
    n = forward.float_outputs
    message = (f"training forward of {type(trace.model).__name__} returns {n} floating-point "
               f"tensor{'s' if n != 1 else ''} and none requires grad although the model has "
               f"trainable parameters: loss.backward() will fail or train nothing (look for "
               f".detach(), torch.no_grad() or .item()/.numpy() round trips in forward)")
    return [make("MDL607", _fallback(trace), message)]


# ----------------------------------------------------------------------------- MDL608

_FAST_PATH_TYPES = (nn.MultiheadAttention, nn.TransformerEncoderLayer, nn.TransformerEncoder)
_GRAD_BRANCH = r"\bis_grad_enabled\(|\bis_inference_mode_enabled\("


def _grad_mode_suspect(trace: Trace) -> Tuple[Optional[Location], str]:
    """Where the grad-mode dependence most likely comes from: a user class whose source branches
    on grad mode, else a module with a grad-mode fast path, else the model's forward."""
    names = _Names(trace)
    for module in trace.model.modules():
        if _is_user_class(type(module)):
            loc = mention(type(module), _GRAD_BRANCH)
            if loc is not None:
                return loc, f"{names.of(module)} branches on grad mode ({loc})"
    for module in trace.model.modules():
        if isinstance(module, _FAST_PATH_TYPES):
            loc = names.declaration(module) or _fallback(trace)
            return loc, (f"{names.of(module)} takes PyTorch's fused fast path only when grad is "
                         f"disabled (its result differs from the regular path, e.g. at padded or "
                         f"fully masked positions)")
    return _fallback(trace), "the model's forward behaves differently with grad enabled"


def check_grad_mode(trace: Trace) -> List[Finding]:
    """MDL608: the eval output depends on grad mode.

    The inference-mode eval forward and the grad-enabled one (same mode, seeds 0 and 1) differ
    beyond the grad-mode tolerance (atol >= 1e-4, rtol >= 1e-3: fused kernels round differently
    by far less), while two inference-mode eval forwards with those seeds agree (else the
    difference is randomness, MDL601); or one of the two raises and the other does not."""
    grad_eval = trace.grad_eval
    if grad_eval is None or len(trace.eval) < 2:
        return []
    first, second = trace.eval
    if any(f.moved or f.changes for f in trace.eval_forwards):  # randomness or drift: MDL601/602
        return []
    if first.ok and second.ok and compare_outputs(first.outputs, second.outputs,
                                                  trace.atol, trace.rtol) is not None:
        return []
    loc, cause = _grad_mode_suspect(trace)
    tail = ("your validation (no_grad/inference_mode) and your saliency or adversarial evaluation "
            "(grad on) compute different models")
    if second.ok and grad_eval.ok:
        atol, rtol = trace.grad_tolerance
        diff = compare_outputs(second.outputs, grad_eval.outputs, atol, rtol)
        if diff is None:
            return []
        message = (f"eval output depends on grad mode: under torch.inference_mode() and with grad "
                   f"enabled (both in eval mode, seed {trace.seeds[1]}) {diff}; {cause}; {tail}")
    elif second.ok != grad_eval.ok:
        failed, where, other = ((grad_eval, "with grad enabled", "under torch.inference_mode()")
                                if not grad_eval.ok else
                                (second, "under torch.inference_mode()", "with grad enabled"))
        at = f" at {failed.error_location}" if failed.error_location else ""
        loc = failed.error_location or loc
        message = (f"eval forward raises {_first_line(failed.error)}{at} {where} but not {other}; "
                   f"{tail}")
    else:
        return []
    return [make("MDL608", loc, message)]


# ----------------------------------------------------------------------------- all


def build(trace: Trace, allow: Iterable[str] = ()) -> List[Finding]:
    """Every finding for a trace, sorted and de-duplicated. `allow` only matters here for
    de-duplication: consequences of MDL603 are reported when MDL603 itself is opted out of."""
    allow = set(allow)
    findings: List[Finding] = []
    findings += check_mode_failures(trace)
    unregistered, covered = check_unregistered(trace)
    findings += unregistered
    stuck, reported = check_stuck(trace)
    findings += stuck
    explained = set() if "MDL603" in allow else reported
    constructed = set() if "MDL604" in allow else covered
    findings += check_randomness(trace, explained, constructed)
    findings += check_state(trace, explained)
    findings += check_no_effect(trace)
    findings += check_differentiable(trace)
    findings += check_grad_mode(trace)
    return sorted(set(findings))

"""`modelint.guard`: catch mode bugs in a live training run, at the optimizer step.

    with modelint.guard(model, optimizer, frozen=[model.backbone]) as g:
        for x, y in loader:
            loss_fn(model(x), y).backward()
            optimizer.step()          # checked here, before the weights change
            optimizer.zero_grad()
    print(g.report)

While active (and only then) the guard registers:

* an optimizer step pre-hook (on `optimizer`, else the global one): every mode-dependent module
  (dropout with p>0, batch/instance norm with running statistics, user modules reading
  `self.training`; `modelint.trace.checks.mode_dependent`) whose parameters' owner is being stepped
  must be in train mode (MDL610); running statistics of frozen subtrees must not change (MDL611); a
  frozen module in train mode is reported once (MDL612);
* forward hooks on the root model: a forward under `no_grad`/`inference_mode` while mode-dependent
  modules are in train mode is "validation in train mode" (MDL613); a forward in eval mode that
  moves a random generator is located (op, module, line) with the tracer's `OpLogger` during the
  next eval forward (MDL614, the live MDL601);
* a forwarder in place of `nn.Module.train` that records who called `.train()`/`.eval()`
  (`modelint.trace.guard_origins`), so each finding names the line that set the mode.

"Frozen": listed in `frozen=` (modules or their qualified names; a listed module may be in eval mode
while its parameters train, e.g. batch-norm layers whose affine weights train but whose statistics
must not), or every parameter of the module's owner (the nearest module up the tree that has
parameters) has requires_grad=False. Dropout in an automatically frozen subtree is not reported in
train mode: parameter-efficient fine-tuning (LoRA, adapters) freezes the base weights and trains
with their dropout on, on purpose.

Cost: the list of mode-dependent modules, their owners and the frozen buffers are computed once and
again only after `train()`/`eval()` was called on (part of) the model or the number of parameters
requiring grad changed; a step reads one `training` flag per listed module, counts
`requires_grad` and compares the frozen running statistics (`bench/guard_overhead.py`). Memory: one
copy of the frozen subtrees' running statistics, not of the model.

Guarantees: the guard never changes a module's mode, a random generator or grad mode; `stop()` (also
on an exception inside the `with` block) removes every hook and the `train()` forwarder.

Limits: modes changed by plain assignment (`m.training = False`) are seen at the next check but
their origin is unknown; modules added to the model without a `train()`/`eval()` call afterwards
are picked up only at the next such call; a training forward under `no_grad` on purpose
(`torch.optim.swa_utils.update_bn`, a teacher forward of the model itself) is reported as MDL613:
stop the guard around it.
"""

from __future__ import annotations

import difflib
import inspect
import logging
import sys
import warnings
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.dropout import _DropoutNd
from torch.nn.modules.instancenorm import _InstanceNorm
from torch.optim.optimizer import register_optimizer_step_pre_hook

from modelint.findings import Finding
from modelint.trace.api import unwrap
from modelint.trace.checks import make, mode_dependent
from modelint.trace.guard_locate import Drew, EvalLocator
from modelint.trace.guard_origins import RECORDER, Origin, Origins, framework_prefixes
from modelint.trace.source import Location, definition, user_frame
from modelint.trace.state import same_bits

__all__ = ["guard", "Guard", "GuardReport", "ModeViolation", "ModeWarning"]

ON_VIOLATION = ("raise", "warn", "log")
_LOG = logging.getLogger("modelint.guard")
_STATS = ("running_mean", "running_var", "num_batches_tracked")


class ModeViolation(RuntimeError):
    """Raised by a guard with `on_violation="raise"` at the first finding (`.finding`)."""

    def __init__(self, finding: Finding):
        super().__init__(format_finding(finding))
        self.finding = finding


class ModeWarning(UserWarning):
    """Issued by a guard with `on_violation="warn"`; the text starts with the code."""


def format_finding(f: Finding) -> str:
    return f"{f.code} [{f.name}] {f.path}:{f.line}: {f.message}"


@dataclass
class GuardReport:
    """What a guard saw: its findings (in the order found), optimizer steps and eval forwards."""

    model: str
    findings: List[Finding] = field(default_factory=list)
    steps: int = 0
    checked: int = 0
    eval_forwards: int = 0

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def codes(self) -> List[str]:
        return sorted({f.code for f in self.findings})

    def __str__(self) -> str:
        n = len(self.findings)
        head = (f"modelint.guard({self.model}): {n or 'no'} finding{'s' if n != 1 else ''} in "
                f"{self.steps} optimizer step{'s' if self.steps != 1 else ''} ({self.checked} checked) "
                f"and {self.eval_forwards} eval forward{'s' if self.eval_forwards != 1 else ''}")
        lines = [head]
        for f in self.findings:
            lines.append(f"  {f.path}:{f.line}:{f.column}: {f.code} [{f.name}] {f.message}")
        return "\n".join(lines)


# ----------------------------------------------------------------------------- the module list


@dataclass
class Entry:
    """One mode-dependent module, as the step check needs it."""

    module: nn.Module
    name: str
    owner_params: List[nn.Parameter]  # of the nearest module (self or up) that has parameters
    listed: bool  # in a subtree listed in frozen=
    auto_frozen: bool  # every owner parameter has requires_grad=False
    stateful: bool  # batch/instance norm tracking running statistics

    @property
    def frozen(self) -> bool:
        return self.listed or self.auto_frozen


_TORCH_KINDS = (_DropoutNd, _BatchNorm, _InstanceNorm, nn.RReLU, nn.MultiheadAttention, nn.RNNBase)
_CLASS_VERDICT: Dict[type, bool] = {}


def is_mode_dependent(module: nn.Module) -> bool:
    """`checks.mode_dependent`, with the verdict for user classes (a regex over their source)
    cached per class: HF's Trainer calls model.train() every step, so the list is rebuilt often."""
    cls = type(module)
    if isinstance(module, _TORCH_KINDS) or cls.__module__.startswith("torch"):
        return mode_dependent(module)
    verdict = _CLASS_VERDICT.get(cls)
    if verdict is None:
        verdict = _CLASS_VERDICT[cls] = mode_dependent(module)
    return verdict


def _label(entry: Entry) -> str:
    module = entry.module
    cls = type(module).__name__
    extra = f", p={module.p:g}" if isinstance(module, _DropoutNd) else ""
    return f"`{entry.name or 'model'}` ({cls}{extra})"


def _labels(entries: Sequence[Entry], limit: int = 4) -> str:
    # torch's dropout/norm layers first: they say what goes wrong; user classes that merely read
    # `self.training` (HF's BertModel, for gradient checkpointing) follow
    ordered = sorted(entries, key=lambda e: (not isinstance(e.module, _TORCH_KINDS), e.name))
    items = [_label(e) for e in ordered]
    if len(items) <= limit:
        return ", ".join(items)
    return ", ".join(items[:limit]) + f" and {len(items) - limit} more"


def _consequence(entries: Sequence[Entry], eval_mode: bool) -> str:
    drop = any(not e.stateful for e in entries)
    norm = any(e.stateful for e in entries)
    if eval_mode:
        parts = (["dropout is off"] if drop else []) + (
            ["batch norm neither uses batch statistics nor updates its running statistics"] if norm else [])
        return " and ".join(parts) + ", so the model trains without the regularisation it was built with"
    parts = (["dropout randomises the predictions"] if drop else []) + (
        ["batch norm normalises with batch statistics and updates its running statistics from the "
         "evaluation data"] if norm else [])
    return " and ".join(parts)


# ----------------------------------------------------------------------------- the guard


class Guard:
    """See the module docstring. Use `modelint.guard(...)`; the integrations drive it through
    `check_step`, `check_modes`, `check_eval`, `begin_eval`/`end_eval` with `step_hook=False`."""

    def __init__(self, model: nn.Module, optimizer=None, *, frozen: Iterable = (),
                 on_violation: str = "raise", check_every: int = 1, step_hook: bool = True,
                 eval_hooks: bool = True):
        if not isinstance(model, nn.Module):
            raise TypeError(f"modelint.guard needs an nn.Module, got {type(model).__name__}")
        if on_violation not in ON_VIOLATION:
            raise ValueError(f"on_violation must be one of {', '.join(ON_VIOLATION)}, got {on_violation!r}")
        if isinstance(check_every, bool) or not isinstance(check_every, int) or check_every < 1:
            raise ValueError(f"check_every must be a positive integer, got {check_every!r}")
        self.root = unwrap(model)
        self.optimizers = _optimizers(optimizer)
        self.on_violation = on_violation
        self.check_every = check_every
        self.step_hook = step_hook
        self.eval_hooks = eval_hooks
        self.report = GuardReport(type(self.root).__name__)
        self.names = {id(m): n for n, m in self.root.named_modules()}
        self.frozen_names = _frozen_names(self.root, self.names, frozen)
        self.origins = Origins(self.root, self.names)
        self.active = False
        self._handles: list = []
        self._reported: set = set()
        self._opt_cache: Dict[int, Tuple[tuple, frozenset]] = {}
        self._signature: Optional[tuple] = None
        self.entries: List[Entry] = []
        self._copies: Dict[Tuple[int, str], Tuple[nn.Module, str, torch.Tensor]] = {}
        self._locator = EvalLocator()
        self._eval_depth = 0
        self._root_eval = False
        self._initial: Dict[int, bool] = {}

    # -- lifecycle

    def start(self) -> "Guard":
        if self.active:
            return self
        self._initial = {id(m): m.training for m in self.root.modules()}
        self._rewalk()
        try:
            RECORDER.add(self.origins.listener)
            if self.step_hook:
                self._register_step_hooks()
            if self.eval_hooks:
                self._handles.append(self.root.register_forward_pre_hook(self._pre_forward))
                self._handles.append(self.root.register_forward_hook(self._post_forward, always_call=True))
        except BaseException:
            self._remove()
            raise
        self.active = True
        return self

    def stop(self, report_pending: bool = True) -> GuardReport:
        """Remove every hook; report an eval forward that drew random numbers but was never
        located (no eval forward came after it). Idempotent."""
        was_active = self.active
        self.active = False
        self._remove()
        if was_active:
            pending = self._locator.pending()
            for finding in self._drew_findings(pending) if pending is not None else ():
                self._emit(finding, may_raise=report_pending)
        return self.report

    def _remove(self) -> None:
        self._locator.close()
        for handle in self._handles:
            handle.remove()
        self._handles = []
        RECORDER.remove(self.origins.listener)

    def __enter__(self) -> "Guard":
        return self.start()

    def __exit__(self, exc_type, exc, tb) -> None:
        self.stop(report_pending=exc_type is None)

    def _register_step_hooks(self) -> None:
        if not self.optimizers:
            self._handles.append(register_optimizer_step_pre_hook(self._on_step))
            return
        for opt in self.optimizers:
            inner = _torch_optimizer(opt)
            if inner is None:
                raise TypeError(f"modelint.guard: {type(opt).__name__} is not a torch.optim.Optimizer "
                                f"(and wraps none)")
            self._handles.append(inner.register_step_pre_hook(self._on_step))

    # -- reporting

    def _emit(self, finding: Finding, may_raise: bool = True) -> None:
        self.report.findings.append(finding)
        text = format_finding(finding)
        if self.on_violation == "raise" and may_raise:
            raise ModeViolation(finding)
        if self.on_violation == "warn":
            # attributed to the finding's line, so warning filters and pytest show the user's code
            warnings.warn_explicit(text, ModeWarning, finding.path, finding.line, module="modelint.guard")
        else:
            _LOG.warning("%s", text)

    def _new(self, key: tuple) -> bool:
        if key in self._reported:
            return False
        self._reported.add(key)
        return True

    # -- the cached list

    def _requires_grad_count(self) -> int:
        return sum(1 for p in self._params if p.requires_grad)

    def _stale(self) -> bool:
        return self._signature != (self.origins.generation, self._requires_grad_count())

    def _rewalk(self) -> None:
        """Rebuild the list of mode-dependent modules, their owners and the frozen buffers."""
        root = self.root
        by_name = dict(root.named_modules())
        self.names = self.origins.names = {id(m): n for n, m in by_name.items()}
        self._params = list(root.parameters())
        owners: Dict[str, Optional[nn.Module]] = {}
        entries = []
        tracked: Dict[Tuple[int, str], Tuple[nn.Module, str, torch.Tensor]] = {}
        for name, module in by_name.items():
            wants_stats = any(b in module._buffers and module._buffers[b] is not None
                              for b in _stats_names(module))
            dependent = is_mode_dependent(module)
            if not dependent and not wants_stats:
                continue
            owner = _owner(name, by_name, owners)
            owner_params = list(owner.parameters()) if owner is not None else []
            listed = _under(name, self.frozen_names)
            auto = bool(owner_params) and not any(p.requires_grad for p in owner_params)
            if dependent:
                stateful = isinstance(module, (_BatchNorm, _InstanceNorm)) and bool(module.track_running_stats)
                entries.append(Entry(module, name, owner_params, listed, auto, stateful))
            if listed or auto:
                for b in _stats_names(module):
                    self._track(tracked, module, b)
        self.entries = entries
        self._copies = tracked
        self._signature = (self.origins.generation, self._requires_grad_count())

    def _track(self, tracked, module: nn.Module, buffer_name: str) -> None:
        tensor = module._buffers.get(buffer_name)
        if tensor is None:
            return
        key = (id(module), buffer_name)
        old = self._copies.get(key)
        if old is not None and old[0] is module:  # keep the copy: a change since must still show
            tracked[key] = old
            return
        with torch.no_grad():
            tracked[key] = (module, buffer_name, tensor.detach().clone())

    @property
    def tracked_buffers(self) -> int:
        """How many running-statistics buffers of frozen subtrees are copied and compared."""
        return len(self._copies)

    # -- the step check

    def _on_step(self, optimizer, args=None, kwargs=None):
        if not self.active:
            return None
        self.report.steps += 1
        if (self.report.steps - 1) % self.check_every == 0:
            self.check_step(optimizer, sys._getframe(1), count=False)
        return None

    def check_step(self, optimizer=None, frame=None, count: bool = True) -> None:
        """The checks of one optimizer step: frozen statistics (MDL611), then modes (MDL610,
        MDL612). `optimizer` (or the guard's optimizers) says which parameters are being stepped."""
        if count:
            self.report.steps += 1
        self.report.checked += 1
        frame = frame or sys._getframe(1)
        if self._stale():
            self._rewalk()
        changed = self._check_frozen_stats(frame)
        self.check_modes(optimizer, frame, _skip=changed)

    def _step_site(self, frame) -> Optional[Location]:
        return user_frame(frame, skip=framework_prefixes()) or user_frame(frame)

    def _check_frozen_stats(self, frame) -> set:
        changed: Dict[int, List[str]] = {}
        for key, (module, name, saved) in self._copies.items():
            current = module._buffers.get(name)
            if current is None or same_bits(current.detach(), saved):
                continue
            changed.setdefault(id(module), []).append(name)
            with torch.no_grad():
                self._copies[key] = (module, name, current.detach().clone())
        fresh = [mid for mid in changed if self._new(("MDL611", mid))]
        if fresh:
            self._report_frozen_stats(fresh, changed, frame)
        return set(changed)

    def _report_frozen_stats(self, mids, changed, frame) -> None:
        by_id = {id(e.module): e for e in self.entries}
        groups = self._group([by_id[m] for m in mids if m in by_id])
        for origin, entries in groups:
            buffers = sorted({b for e in entries for b in changed[id(e.module)]})
            why = ("listed in frozen=" if all(e.listed for e in entries)
                   else "every parameter has requires_grad=False")
            message = (f"frozen {_labels(entries)} ({why}) updated {', '.join('`' + b + '`' for b in buffers)} "
                       f"before optimizer step {self.report.steps}: {self._mode_cause(entries, origin)}; "
                       f"the frozen layers drift towards the training batches although nothing should "
                       f"change them; put them back in eval mode after every model.train() (or "
                       f"override train())")
            self._emit(make("MDL611", self._where(origin, frame), message,
                            modules=", ".join(e.name for e in entries)))

    def check_modes(self, optimizer=None, frame=None, _skip=frozenset(), before: bool = False) -> None:
        """MDL610 (trained in eval mode) and MDL612 (frozen module in train mode). `before`: the
        check runs before a training batch's forward (Lightning's `on_train_batch_start`)."""
        frame = frame or sys._getframe(1)
        when = (f"before optimizer step {self.report.steps + 1}" if before
                else f"at optimizer step {self.report.steps}")
        if self._stale():
            self._rewalk()
        off = [e for e in self.entries if not e.module.training and not e.frozen]
        # batch norm that will run is better reported by what it changed (MDL611, after the
        # forward): before a forward, or once that was reported, only the others are
        frozen_on = [e for e in self.entries if e.module.training and e.frozen
                     and (e.listed or e.stateful) and not (before and e.stateful)
                     and id(e.module) not in _skip and ("MDL611", id(e.module)) not in self._reported]
        if off:
            stepped = self._stepped(optimizer)
            off = [e for e in off if any(p.requires_grad and id(p) in stepped for p in e.owner_params)]
            off = [e for e in off if self._new(("MDL610", id(e.module), self._cause(e)))]
            for origin, entries in self._group(off):
                message = (f"{_labels(entries)} {'is' if len(entries) == 1 else 'are'} in eval mode {when} "
                           f"although {'its' if len(entries) == 1 else 'their'} "
                           f"parameters are being trained: {_consequence(entries, True)}; "
                           f"{self._mode_cause(entries, origin)}")
                self._emit(make("MDL610", self._where(origin, frame), message, mode="eval",
                                modules=", ".join(e.name for e in entries)))
        frozen_on = [e for e in frozen_on if self._new(("MDL612", id(e.module)))]
        for origin, entries in self._group(frozen_on):
            message = (f"frozen {_labels(entries)} {'is' if len(entries) == 1 else 'are'} in train mode {when}: "
                       f"{self._mode_cause(entries, origin)}; "
                       f"{_consequence(entries, False).replace('the evaluation data', 'the training data')}"
                       f" although the subtree is frozen; call .eval() on it after model.train()")
            self._emit(make("MDL612", self._where(origin, frame), message, mode="train",
                            modules=", ".join(e.name for e in entries)))

    def _cause(self, entry: Entry) -> Optional[tuple]:
        """What set the module's mode, for de-duplication: the same line run every step (HF's
        Trainer calls model.train() in each training_step) is one cause."""
        origin = self.origins.of(entry.module)
        return (origin.location, origin.call) if origin else None

    def _stepped(self, optimizer) -> frozenset:
        """ids of the parameters requiring grad in `optimizer` (or the guard's optimizers)."""
        optimizers = _optimizers(optimizer) or self.optimizers
        if not optimizers:  # no optimizer known: every parameter that requires grad is stepped
            return frozenset(id(p) for p in self._params if p.requires_grad)
        ids = set()
        for opt in optimizers:
            groups = getattr(opt, "param_groups", None) or []
            key = tuple(len(g["params"]) for g in groups)
            cached = self._opt_cache.get(id(opt))
            if cached is None or cached[0] != key:
                cached = (key, frozenset(id(p) for g in groups for p in g["params"]))
                self._opt_cache[id(opt)] = cached
            ids |= cached[1]
        return frozenset(ids)

    def _group(self, entries: Sequence[Entry]) -> List[Tuple[Optional[Origin], List[Entry]]]:
        """Entries grouped by the recorded call that set their mode (None: unknown)."""
        groups: Dict[Optional[int], Tuple[Optional[Origin], List[Entry]]] = {}
        for entry in entries:
            origin = self.origins.of(entry.module)
            key = origin.seq if origin else None
            groups.setdefault(key, (origin, []))[1].append(entry)
        return list(groups.values())

    def _where(self, origin: Optional[Origin], frame) -> Optional[Location]:
        if origin is not None and (origin.user_location or origin.location):
            return origin.user_location or origin.location
        return self._step_site(frame)

    def _mode_cause(self, entries: Sequence[Entry], origin: Optional[Origin]) -> str:
        mode = "train" if entries[0].module.training else "eval"
        if origin is not None:
            return f"put in {mode} mode by {origin.describe()}"
        if all(self._initial.get(id(e.module)) == e.module.training for e in entries):
            text = f"in {mode} mode since before the guard started"
            if mode == "eval":
                hint = _from_pretrained_hint(self.root)
                text += (f" ({hint}); call model.train() before the training loop" if hint
                         else "; call model.train() before the training loop")
            return text
        return (f"set to {mode} mode without train()/eval() (an assignment to `.training`), so the "
                f"line is unknown")

    # -- the evaluation checks

    def _pre_forward(self, module, args):
        if not self.active or self._eval_depth:
            return None
        if module.training and torch.is_grad_enabled() and not torch.is_inference_mode_enabled():
            return None  # a training forward: nothing to check (the cheap, common case)
        self._root_eval = True  # before begin_eval: a ModeViolation from it still ends the scope
        self.begin_eval(sys._getframe(1), grad_off=not torch.is_grad_enabled() or torch.is_inference_mode_enabled())
        return None

    def _post_forward(self, module, args, output):
        if getattr(self, "_root_eval", False):
            self._root_eval = False
            # always_call=True: torch calls this from its `except` block (output None) when the
            # forward raised
            self.end_eval(failed=output is None and sys.exc_info()[1] is not None)
        return None

    def begin_eval(self, frame=None, grad_off: bool = True) -> None:
        """Start an evaluation forward (the root's forward hook, or a validation batch in a
        callback): check modes (MDL613) and start watching the random generators (MDL614)."""
        frame = frame or sys._getframe(1)
        self._eval_depth += 1
        self.report.eval_forwards += 1
        try:
            if grad_off:
                self.check_eval(frame)
        finally:
            self._locator.begin(frame, eval_mode=not self.root.training)

    def end_eval(self, failed: bool = False) -> None:
        if self._eval_depth:
            self._eval_depth -= 1
            drew = self._locator.end(failed)
            for finding in self._drew_findings(drew) if drew is not None else ():
                self._emit(finding)

    def check_eval(self, frame=None) -> None:
        """MDL613: mode-dependent modules in train mode during an evaluation."""
        frame = frame or sys._getframe(1)
        if self._stale():
            self._rewalk()
        on = [e for e in self.entries if e.module.training]
        if not on:
            return
        site = self._step_site(frame)
        grad = "inference_mode" if torch.is_inference_mode_enabled() else "no_grad"
        for origin, entries in self._group(on):
            # once per set of modules and origin: a validation loop evaluates hundreds of batches
            cause = (origin.location, origin.call) if origin else None
            if not self._new(("MDL613", frozenset(id(e.module) for e in entries), cause)):
                continue
            message = (f"validation in train mode: {type(self.root).__name__} evaluated (under "
                       f"torch.{grad}(){' at ' + str(site) if site else ''}) while {_labels(entries)} "
                       f"{'is' if len(entries) == 1 else 'are'} in train mode: "
                       f"{_consequence(entries, False)}; {self._mode_cause(entries, origin)}; call "
                       f"model.eval() before evaluating and model.train() after")
            self._emit(make("MDL613", site, message, mode="train",
                            modules=", ".join(e.name for e in entries)))

    def _drew_findings(self, drew: Drew) -> List[Finding]:
        """MDL614: one finding per (op, line) found by the locating forward, else one for the
        detection alone."""
        out = []
        events = [e for e in drew.events if e.module is None or not e.module.training]
        if drew.events and not events:
            return out  # dropout left in train mode during evaluation: a consequence of MDL613
        for event in events:
            if not self._new(("MDL614", event.op, event.location)):
                continue
            # no module on the stack: the op ran in the root's own forward (its hook came first)
            mod = event.module if event.module is not None else self.root
            name = self.names.get(id(mod))
            module = (f"`{name or 'model'}` ({type(mod).__name__})" if name is not None
                      else f"unregistered {type(mod).__name__}")
            message = (f"eval forward drew random numbers via {event.op} ({event.detail}) in {module}"
                       f"{' at ' + str(event.location) if event.location else ''}: evaluation results "
                       f"differ run to run; pass training=self.training to functional dropout, or "
                       f"sample with a private torch.Generator")
            out.append(make("MDL614", event.location or drew.site, message, op=event.op, module=module))
        if not drew.events and self._new(("MDL614", "moved", drew.site)):
            how = ("but no torch op drew from a global generator during the next eval forward (Python "
                   "or NumPy random, or randomness that depends on the input)" if drew.located else
                   "and no later eval forward ran to locate the op (modelint.verify_modes(model, x) "
                   "finds it)")
            message = (f"eval forward{' at ' + str(drew.site) if drew.site else ''} advanced the "
                       f"{', '.join(drew.moved)} random generator state {how}: evaluation results are "
                       f"not reproducible")
            out.append(make("MDL614", drew.site, message, generators=", ".join(drew.moved)))
        return out

    # -- for integrations that restore modes by assignment

    def origin_snapshot(self):
        return self.origins.snapshot()

    def restore_origins(self, snapshot) -> None:
        self.origins.restore(snapshot)


def guard(model: nn.Module, optimizer=None, *, frozen: Iterable = (), on_violation: str = "raise",
          check_every: int = 1) -> Guard:
    """A guard for one training run: a context manager, or `g = guard(...); g.start(); ...;
    g.stop()`. `optimizer` (one, or a list) whose steps are checked, else every optimizer's;
    `frozen` modules (or qualified names) that are frozen on purpose; `on_violation` "raise"
    (`ModeViolation` at the first finding), "warn" (`ModeWarning`) or "log" (logger
    `modelint.guard`); `check_every` N-th step. Findings are in `g.report`."""
    return Guard(model, optimizer, frozen=frozen, on_violation=on_violation, check_every=check_every)


# ----------------------------------------------------------------------------- helpers


def _stats_names(module: nn.Module) -> Tuple[str, ...]:
    """Running-statistics buffers: batch/instance norm's, and any buffer named `running_*`."""
    names = [b for b in module._buffers if b.startswith("running_")]
    if isinstance(module, (_BatchNorm, _InstanceNorm)) and "num_batches_tracked" in module._buffers:
        names.append("num_batches_tracked")
    return tuple(names)


def _owner(name: str, by_name: Dict[str, nn.Module], cache: Dict[str, Optional[nn.Module]]):
    """The nearest module, from `name` up to the root, that has parameters (None if none)."""
    if name in cache:
        return cache[name]
    module = by_name[name]
    if any(True for _ in module.parameters()):
        owner = module
    elif name == "":
        owner = None
    else:
        owner = _owner(name.rpartition(".")[0], by_name, cache)
    cache[name] = owner
    return owner


def _under(name: str, prefixes: Sequence[str]) -> bool:
    return any(p == "" or name == p or name.startswith(p + ".") for p in prefixes)


def _frozen_names(root: nn.Module, names: Dict[int, str], frozen: Iterable) -> Tuple[str, ...]:
    if isinstance(frozen, (nn.Module, str)):
        frozen = (frozen,)
    out = []
    known = set(names.values())
    for item in frozen:
        if isinstance(item, nn.Module):
            name = names.get(id(item))
            if name is None:
                raise ValueError(f"frozen=: {type(item).__name__} is not a submodule of "
                                 f"{type(root).__name__}")
        elif isinstance(item, str):
            name = item
            if name not in known:
                close = difflib.get_close_matches(name, sorted(known), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ValueError(f"frozen=: no submodule named {name!r} in {type(root).__name__}{hint}")
        else:
            raise TypeError(f"frozen= takes modules or qualified names, got {type(item).__name__}")
        out.append(name)
    return tuple(out)


def _optimizers(optimizer) -> list:
    if optimizer is None:
        return []
    if isinstance(optimizer, (list, tuple)):
        return list(optimizer)
    return [optimizer]


def _torch_optimizer(opt):
    """The torch optimizer inside a wrapper (accelerate's `.optimizer`, Lightning's `._optimizer`)."""
    for _ in range(4):
        if isinstance(opt, torch.optim.Optimizer):
            return opt
        opt = getattr(opt, "optimizer", None) or getattr(opt, "_optimizer", None)
        if opt is None:
            return None
    return None


def _from_pretrained_hint(root: nn.Module) -> str:
    """'from_pretrained() returns models in eval mode (path:line)' for classes that have one."""
    method = getattr(type(root), "from_pretrained", None)
    if method is None:
        return ""
    where = definition(method)
    try:
        lines, start = inspect.getsourcelines(inspect.unwrap(method))
        offset = next(i for i, text in enumerate(lines) if ".eval()" in text and "`" not in text)
        where = Location(where.path, start + offset) if where else None
    except (OSError, TypeError, StopIteration):
        pass
    return "from_pretrained() returns models in eval mode" + (f": {where}" if where else "")

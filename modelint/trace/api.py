"""`modelint.verify_modes`: check a model's train/eval behaviour from a test.

    import modelint

    def test_policy_modes():
        model = Policy()
        report = modelint.verify_modes(model, torch.randn(4, 10, 2))
        assert not report.findings, report

What it runs: a training-mode forward (autograd on, seed 0) and two eval-mode forwards
(`model.eval()`; seed 0 under `torch.inference_mode()`, seed 1 with grad enabled) on clones of the
given inputs, with a global module pre-hook, generator-state and parameter/buffer snapshots; a
second training forward (seed 1) only when the training output equals the eval output, a third
eval forward (inference mode, seed 1) only when the two eval outputs differ, and — only when an
eval forward misbehaved — one more under a `TorchDispatchMode` to find the op, module and source
line responsible. See `modelint.trace.tracer` for the sequence and `modelint.trace.checks`
for what each code (MDL601-MDL608) reports.

Memory: one byte copy of the model's parameters and buffers (each distinct storage once, so tied
weights count once) plus what the forwards themselves need; nothing else is copied.

Guarantees: when `verify_modes` returns or raises, every module's `training` flag and `__dict__`,
every parameter and buffer (bit for bit, `-0.0` included, with its `requires_grad` flag; a buffer
that was None is None again), grad mode, the deterministic-algorithms setting, the cuDNN flags
(also after `torch.backends.disable_global_flags()`) and every random generator's state are as
before, and no hook or dispatch mode is left installed. Each restore step runs even if another
fails; the first error is raised after all of them ran.

Limits:
* call it outside `torch.inference_mode()`; a model on the `meta` device is refused (no data);
  a model with uninitialised lazy modules (`nn.Lazy*`) is deep-copied and the copy runs one
  warm-up forward first (the given model is not touched, findings name the same modules);
* `torch.compile`d modules are traced through `_orig_mod` and DataParallel/DDP wrappers through
  `.module`: the wrapper's own code is not run;
* modules called as `m.forward(x)`, and submodules of TorchScript modules, are invisible to module
  hooks (no MDL603/MDL604 for them); module calls made by other threads during the trace are
  attributed to the model;
* state outside modules (global caches, closures) is not restored; containers on modules are
  restored one level deep; NumPy `Generator` objects and accelerators other than CUDA are not
  snapshotted (CUDA is untested: no GPU was available);
* Python `random`/NumPy draws are located with `sys.settrace`, which is skipped when another
  tracer (coverage, a debugger) is active: the finding then points at the model's forward;
* the forward runs three times for a clean model and up to six times when something is found,
  so a model whose forward has external side effects (logging, files) performs them that often.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import copy
from typing import Any, Iterable, List, Mapping, Sequence, Tuple, Union

import torch
from torch import nn

from modelint.catalog import suggest
from modelint.findings import Finding
from modelint.trace import checks, tracer
from modelint.codes import TRACE_CODE_NAMES as CODES
from modelint.trace.state import GlobalState, has_lazy_parameters, map_tensors, meta_tensor_name, run_all, seed_all

__all__ = ["Case", "ModeReport", "verify_modes", "unwrap"]


@dataclass(frozen=True)
class Case:
    """Inputs for one forward: `model(*args, **kwargs)`.

    A factory for `modelint trace` may return `(model, Case(args=(x,), kwargs={"mask": m}))`, and
    `verify_modes(model, Case(...))` accepts one too. A non-tuple `args` is wrapped: `Case(x)`
    means `Case(args=(x,))`."""

    args: Any = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        args = self.args
        if isinstance(args, list):
            args = tuple(args)
        elif not isinstance(args, tuple):
            args = (args,)
        object.__setattr__(self, "args", args)
        object.__setattr__(self, "kwargs", dict(self.kwargs or {}))


@dataclass
class ModeReport:
    """The result of `verify_modes`.

    `findings` holds the problems found (sorted `modelint.findings.Finding`s, path/line at the user
    source line responsible); `allowed` the ones opted out of with `allow=` (kept visible, never
    dropped silently). `str(report)` is a readable summary suitable as an assert message."""

    model: str
    seeds: Tuple[int, int]
    findings: List[Finding] = field(default_factory=list)
    allowed: List[Finding] = field(default_factory=list)
    forwards: int = 0  # how many forwards ran (3 for a clean model, up to 6)

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def codes(self) -> List[str]:
        """The distinct codes found, sorted."""
        return sorted({f.code for f in self.findings})

    def __str__(self) -> str:
        head = f"modelint.verify_modes({self.model}, seeds={self.seeds[0]}/{self.seeds[1]}): "
        if self.findings:
            n = len(self.findings)
            lines = [head + f"{n} finding{'s' if n != 1 else ''}"]
            for f in self.findings:
                lines.append(f"  {f.path}:{f.line}:{f.column}: {f.code} [{f.name}] {f.message}")
        else:
            lines = [head + f"no findings ({self.forwards} forwards)"]
        if self.allowed:
            codes = sorted({f.code for f in self.allowed})
            lines.append(f"  allowed (opted out): {len(self.allowed)} finding"
                         f"{'s' if len(self.allowed) != 1 else ''} with {', '.join(codes)}")
        return "\n".join(lines)


def unwrap(model: nn.Module) -> nn.Module:
    """The module to trace: `torch.compile`'s `OptimizedModule` -> `_orig_mod` (calling a compiled
    module under a dispatch mode would disable its compilation for good), DataParallel /
    DistributedDataParallel -> `.module`."""
    for _ in range(16):
        inner = getattr(model, "_orig_mod", None)
        if isinstance(inner, nn.Module):
            model = inner
            continue
        if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            model = model.module
            continue
        break
    return model


def normalize_allow(allow: Union[str, Iterable[str], None]) -> frozenset:
    """Codes to opt out of; a single string may hold several separated by commas or spaces.
    Unknown codes raise ValueError (a typo must not silently allow nothing)."""
    if allow is None:
        return frozenset()
    if isinstance(allow, str):
        allow = allow.replace(",", " ").split()
    codes = frozenset(str(code).strip().upper() for code in allow)
    for code in sorted(codes):
        if code not in CODES:
            raise ValueError(f"unknown tracer code {code!r} in allow{suggest(code, CODES)}; "
                             f"known: {', '.join(CODES)}")
    return codes


def warmed_up_copy(model: nn.Module, args: tuple, kwargs: dict, seed: int) -> nn.Module:
    """A deep copy of a model with uninitialised lazy modules after one forward (training mode,
    no grad) that gives them their shapes; the given model, the inputs, grad mode and every
    generator are left as they were. Raises ValueError if the copy or the forward fails."""
    saved = GlobalState()
    try:
        try:
            warm = copy.deepcopy(model)
        except Exception as exc:
            raise ValueError(f"the model has uninitialised lazy modules (nn.Lazy*) and cannot be "
                             f"deep-copied for a warm-up forward ({type(exc).__name__}: {exc}): run "
                             f"one forward before verify_modes") from None
        seed_all(seed)
        try:
            with torch.no_grad():
                warm(*map_tensors(args, torch.clone), **map_tensors(kwargs, torch.clone))
        except Exception as exc:
            raise ValueError(f"the model has uninitialised lazy modules (nn.Lazy*) and the warm-up "
                             f"forward that sets their shapes raised {type(exc).__name__}: {exc}") from None
    finally:
        run_all([saved.restore])
    return warm


def verify_modes(
    model: nn.Module,
    *args: Any,
    seeds: Sequence[int] = (0, 1),
    atol: float = 1e-6,
    rtol: float = 1e-5,
    allow: Union[str, Iterable[str]] = (),
    **kwargs: Any,
) -> ModeReport:
    """Run `model(*args, **kwargs)` twice in training and twice in eval mode and report mode bugs.

    `args`/`kwargs` are the forward's inputs (a single `Case` may be passed instead); a forward
    keyword argument named like one of this function's (`seeds`, `atol`, `rtol`, `allow`) must go
    through a `Case`. `seeds` are the two seeds for the two forwards of each mode; `atol`/`rtol`
    are the tolerances for comparing outputs (all tensors of a tuple/list/dict/dataclass output);
    `allow` lists codes to opt out of (reported in `ModeReport.allowed`).

    Raises the forward's exception (with a note) if it fails in both modes; if it fails in one
    mode only, that is finding MDL606.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"verify_modes needs an nn.Module, got {type(model).__name__}")
    if len(args) == 1 and isinstance(args[0], Case) and not kwargs:
        args, kwargs = args[0].args, args[0].kwargs
    seeds = tuple(int(s) for s in seeds)
    if len(seeds) != 2 or seeds[0] == seeds[1]:
        raise ValueError(f"seeds must be two different integers, got {seeds!r}")
    allowed_codes = normalize_allow(allow)
    target = unwrap(model)
    if torch.is_inference_mode_enabled():
        raise RuntimeError("verify_modes must be called outside torch.inference_mode(): it runs "
                           "training forwards with autograd")
    meta = meta_tensor_name(target)
    if meta is not None:
        raise ValueError(f"the model is on the meta device ({meta!r} has no data): build or load it "
                         f"on a real device (model.to_empty(device='cpu') then load weights) before "
                         f"verify_modes")
    if has_lazy_parameters(target):
        target = warmed_up_copy(target, tuple(args), dict(kwargs), seeds[0])

    trace = tracer.run(target, tuple(args), dict(kwargs), seeds, atol, rtol)

    forwards = trace.train + trace.eval_forwards
    if forwards and not any(f.ok for f in forwards):
        exc = trace.train[0].error
        if hasattr(exc, "add_note"):
            exc.add_note("modelint.verify_modes: the forward raised in both training and eval mode "
                         "(model and inputs restored)")
        raise exc

    found = checks.build(trace, allowed_codes)
    return ModeReport(
        model=type(target).__name__,
        seeds=seeds,
        findings=[f for f in found if f.code not in allowed_codes],
        allowed=[f for f in found if f.code in allowed_codes],
        forwards=len(forwards) + (trace.events is not None),
    )

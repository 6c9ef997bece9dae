"""`modelint.verify_modes`: check a model's train/eval behaviour from a test.

    import modelint

    def test_policy_modes():
        model = Policy()
        report = modelint.verify_modes(model, torch.randn(4, 10, 2))
        assert not report.findings, report

What it runs: two training-mode forwards (autograd on, seeds 0 and 1) and two eval-mode forwards
(`model.eval()` under `torch.inference_mode()`, seeds 0 and 1) on clones of the given inputs, with
a global module pre-hook, generator-state and parameter/buffer snapshots, and — only when an eval
forward misbehaved — one more eval forward under a `TorchDispatchMode` to find the op, module and
source line responsible. See `modelint.trace.tracer` for the sequence and `modelint.trace.checks`
for what each code (MDL601-MDL607) reports.

Guarantees: when `verify_modes` returns or raises, every module's `training` flag and `__dict__`,
every parameter and buffer (bit for bit), grad mode, the deterministic-algorithms setting and every
random generator's state are as before, and no hook or dispatch mode is left installed.

Limits:
* call it outside `torch.inference_mode()`; lazy modules (`nn.Lazy*`) must have run one forward;
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
* the forward runs five times when something is found (four otherwise), so a model whose
  forward has external side effects (logging, files) performs them that often.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, List, Mapping, Sequence, Tuple, Union

import torch
from torch import nn

from modelint.catalog import suggest
from modelint.findings import Finding
from modelint.trace import checks, tracer
from modelint.codes import TRACE_CODE_NAMES as CODES
from modelint.trace.state import has_lazy_parameters

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
            lines = [head + "no findings (2 training + 2 eval forwards)"]
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
    if has_lazy_parameters(target):
        raise ValueError("the model has uninitialized lazy parameters (nn.Lazy* modules): run one "
                         "forward before verify_modes so their shapes are known")
    if torch.is_inference_mode_enabled():
        raise RuntimeError("verify_modes must be called outside torch.inference_mode(): it runs "
                           "training forwards with autograd")

    trace = tracer.run(target, tuple(args), dict(kwargs), seeds, atol, rtol)

    forwards = trace.train + trace.eval
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
    )

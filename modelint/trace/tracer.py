"""Run a model in both modes under observers and record what happened (no judgement here:
`modelint.trace.checks` turns a `Trace` into findings).

Sequence (`run`):

1. Snapshot every module (`ModuleState`) and the process-wide state (`GlobalState`).
2. A training forward: `model.train()`, seed everything with seed 0, run under
   `torch.enable_grad()` on fresh clones of the inputs. A second one (seed 1) runs after the
   eval forwards only when the training output equals the eval output (MDL605: do dropout and
   batch norm do anything at all?).
3. Eval forwards: put every module in training mode with `nn.Module.train` (as after a
   training loop), call `model.eval()` (the user's override, if any), seed, run. The first runs
   under `torch.inference_mode()` (seed 0), the second with grad enabled (seed 1, as in saliency
   maps, adversarial evaluation or a validation loop without `no_grad`). Only if their outputs
   differ beyond the grad-mode tolerance (or one of them raised) does a third, inference-mode
   eval forward with seed 1 tell randomness (MDL601: the two inference forwards differ) from
   grad-mode dependence (MDL608: they agree, the grad-enabled one differs). Clean models pay
   for two eval forwards, not three.
   After every forward: compare each generator's state with its state right after seeding, and
   restore flags, attributes and parameter/buffer identities (a forward may cache tensors on
   modules). Values (bytes of every parameter and buffer, the main cost on small inputs) are
   compared and restored after each training forward and after the eval pair: batch-norm
   updates are undone before any eval forward, and the eval pair's changes are seen (and
   reported) together. Any later forward starts from restored values.
4. Only if an eval forward moved a generator, changed state or the two eval outputs differ: one
   more eval forward under the `OpLogger` dispatch mode (plus a module stack and buffer/parameter
   assignment hooks) to find the op, module and source line responsible. Dispatch modes cost tens
   of microseconds per op, so clean models never pay for them.
5. Always (also when the model raises or the user interrupts): remove hooks and modes, restore
   every module and the global state.

A global forward pre-hook (`ModuleWatcher`) is active during all forwards: it records which
registered modules ran, which ran with training=True in a training forward, every module that ran
without being registered, and every module that ran with training=True during an eval forward.

`torch.compile`d submodules (`OptimizedModule` children) are swapped for their `_orig_mod` during
each forward (and put back by the state restore): calling a compiled module under a dispatch mode
disables its compilation for good, and with our global hook installed torch warns on every call.

Reusable pieces (also used by `modelint.guard`): `ModuleWatcher` (module-mode observation),
`modelint.trace.state.GlobalState` / `rng_states` / `seed_all` / `set_rng_states` (RNG and global
snapshot/restore), `modelint.trace.state.ModelState` (module snapshot/restore), `run_all`.

Limits: modules called as `submodule.forward(x)` and submodules of TorchScript modules are
invisible to module hooks; modules called from other threads during the trace are recorded too.
"""

from __future__ import annotations

import random
import sys
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

import torch
from torch import nn
from torch.nn.modules import module as module_mod
from torch.utils._python_dispatch import TorchDispatchMode

from modelint.trace.source import Location, display_path, is_library_file, traceback_user_frame, user_frame
from modelint.trace.state import (
    GlobalState,
    ModelState,
    flatten,
    map_tensors,
    moved_generators,
    outputs_close,
    rng_states,
    run_all,
    seed_all,
)

MAX_EVENTS = 200
# Grad-mode tolerance floor: fused inference kernels (the MultiheadAttention fast path) round
# differently from the autograd path, by ~1e-6 relative on float32; real grad-mode dependence
# (masked positions zeroed, another branch taken) differs by far more than this.
GRAD_ATOL = 1e-4
GRAD_RTOL = 1e-3


@dataclass
class ModuleCall:
    """The first time a module of interest ran: the module, where it was called, in which phase,
    and (for modules running in training mode during eval) whether `model.eval()` left it on."""

    module: nn.Module
    location: Optional[Location]
    phase: str
    left_on_by_eval: bool = False


@dataclass
class Event:
    """Something the `OpLogger` saw during the locating eval forward."""

    kind: str  # "random" | "batch-norm-train" | "write" | "reassign"
    op: str  # e.g. "aten::multinomial"
    detail: str  # e.g. "p=0.2, train=True"
    module: Optional[nn.Module]  # innermost module running at the time
    location: Optional[Location]
    tensors: Tuple[Tuple[int, str], ...] = ()  # (module id, tensor name) written
    constructing: Optional[nn.Module] = None  # a module whose __init__/reset_parameters drew it


@dataclass
class Forward:
    """One forward pass: its phase, seed, flattened output or exception, and what it moved."""

    phase: str
    seed: int
    grad: bool = False  # an eval forward run with grad enabled (not under inference_mode)
    outputs: Optional[List[Tuple[str, torch.Tensor]]] = None
    error: Optional[BaseException] = None
    error_location: Optional[Location] = None
    moved: List[str] = field(default_factory=list)
    changes: List[Tuple[int, str, str, str]] = field(default_factory=list)
    float_outputs: int = 0
    float_outputs_requiring_grad: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class Trace:
    """Everything the checks need to know about one `run`."""

    model: nn.Module
    names: Dict[int, str]  # id(module) -> qualified name ("" for the root)
    seeds: Tuple[int, int]
    train: List[Forward]
    eval: List[Forward]  # inference-mode eval forwards: seed 0, and seed 1 when it was needed
    grad_eval: Optional[Forward]  # the grad-enabled eval forward (seed 1)
    called: Set[int]
    trained: Set[int]  # registered modules that ran with training=True in a training forward
    unregistered: Dict[int, ModuleCall]
    stuck: Dict[int, ModuleCall]
    events: Optional[List[Event]]
    late: Dict[int, str]
    left_on: Set[int]  # registered modules still in training mode right after model.eval()
    trainable: bool
    atol: float
    rtol: float

    @property
    def eval_forwards(self) -> List[Forward]:
        """Every eval forward, the grad-enabled one included."""
        return self.eval + ([self.grad_eval] if self.grad_eval is not None else [])

    @property
    def grad_tolerance(self) -> Tuple[float, float]:
        return max(self.atol, GRAD_ATOL), max(self.rtol, GRAD_RTOL)

    def module(self, mid: int) -> Optional[nn.Module]:
        return self._modules.get(mid)

    def __post_init__(self):
        self._modules = {id(m): m for m in self.model.modules()}


# ----------------------------------------------------------------------------- module hooks


class ModuleWatcher:
    """The global forward pre-hook (and, while locating, a post-hook keeping a module stack)."""

    def __init__(self, names: Dict[int, str], state: ModelState):
        self.names = names
        self.state = state
        self.phase: Optional[str] = None
        self.called: Set[int] = set()
        self.trained: Set[int] = set()
        self.unregistered: Dict[int, ModuleCall] = {}
        self.stuck: Dict[int, ModuleCall] = {}
        self.left_on: Set[int] = set()  # registered modules still training right after model.eval()
        self.stack: Optional[List[nn.Module]] = None

    def pre_hook(self, module: nn.Module, args) -> None:
        if self.stack is not None:
            self.stack.append(module)
        phase = self.phase
        if phase is None:
            return None
        mid = id(module)
        if mid in self.names:
            self.called.add(mid)
            if phase == "train" and module.training:
                self.trained.add(mid)
        elif mid not in self.unregistered:
            self.unregistered[mid] = ModuleCall(module, user_frame(), phase)
            self.state.add(module)  # so it is restored with the rest
        if phase == "eval" and module.training and mid not in self.stuck:
            left_on = mid in self.left_on or mid not in self.names
            self.stuck[mid] = ModuleCall(module, user_frame(), phase, left_on)
        return None

    def post_hook(self, module: nn.Module, args, output) -> None:
        stack = self.stack
        if stack:
            if stack[-1] is module:
                stack.pop()
            else:  # an exception unwound several frames: drop down to this module
                for index in range(len(stack) - 1, -1, -1):
                    if stack[index] is module:
                        del stack[index:]
                        break
        return None

    def innermost(self) -> Optional[nn.Module]:
        return self.stack[-1] if self.stack else None


# ----------------------------------------------------------------------------- op logger


@dataclass(frozen=True)
class _OpSpec:
    name: str
    seeded: bool  # tagged nondeterministic_seeded: may draw from a generator
    positions: Dict[str, Tuple[int, bool, Any]]  # arg name -> (index, kwarg_only, default)
    writes: Tuple[str, ...]

    def value(self, name: str, args, kwargs):
        index, kwarg_only, default = self.positions[name]
        if name in kwargs:
            return kwargs[name]
        if not kwarg_only and index < len(args):
            return args[index]
        return default


_INTERESTING = {"generator", "running_mean"}
_SPECS: Dict[Any, Optional[_OpSpec]] = {}
_SEEDED = getattr(torch.Tag, "nondeterministic_seeded", None)


def _spec(func) -> Optional[_OpSpec]:
    """What matters about an op's schema, by argument *name* (op names differ between grad and
    inference mode, argument names do not); None for ops that can neither draw nor write."""
    try:
        return _SPECS[func]
    except KeyError:
        pass
    spec = None
    schema = getattr(func, "_schema", None)
    if schema is not None:
        positions = {}
        writes = []
        for index, arg in enumerate(schema.arguments):
            default = arg.default_value if arg.has_default_value() else None
            positions[arg.name] = (index, arg.kwarg_only, default)
            if arg.alias_info is not None and arg.alias_info.is_write:
                writes.append(arg.name)
        seeded = _SEEDED is not None and _SEEDED in getattr(func, "tags", ())
        if seeded or writes or _INTERESTING & positions.keys():
            spec = _OpSpec(schema.name, seeded, positions, tuple(writes))
    _SPECS[func] = spec
    return spec


def _fmt(value) -> str:
    return f"{value:g}" if isinstance(value, float) else repr(value)


def _first(names, positions) -> Optional[str]:
    return next((n for n in names if n in positions), None)


def classify_random(spec: _OpSpec, args, kwargs) -> Optional[str]:
    """A description ("p=0.2, train=True") if the op draws from a global generator, else None.

    The `nondeterministic_seeded` tag alone over-reports (SDPA with dropout_p=0, LSTM in eval), so
    the arguments decide, by name:
    * a `generator` argument that is not None: a private generator, legitimate sampling;
    * a `train`/`training` argument that is False: the op is in eval mode (dropout, rrelu, lstm);
    * a `p`/`dropout_p`/`dropout` rate of 0 (ops without a generator argument): nothing is dropped.
    Otherwise a seeded op draws (multinomial, rand*, randn_like, bernoulli, normal_, randperm, ...).
    Untagged ops count only if they take a `generator` argument and get none."""
    pos = spec.positions
    has_generator = "generator" in pos
    if has_generator and spec.value("generator", args, kwargs) is not None:
        return None
    if not spec.seeded and not has_generator:
        return None
    details = []
    train_name = _first(("train", "training"), pos)
    if train_name is not None:
        train = spec.value(train_name, args, kwargs)
        if train is False:
            return None
    p_name = None if has_generator else _first(("p", "dropout_p", "dropout"), pos)
    if p_name is not None:
        p = spec.value(p_name, args, kwargs)
        if isinstance(p, (int, float)) and p <= 0:
            return None
        details.append(f"{p_name}={_fmt(p)}")
    if train_name is not None:
        details.append(f"{train_name}={spec.value(train_name, args, kwargs)!r}")
    return ", ".join(details) or "global generator"


_INIT_NAMES = ("__init__", "reset_parameters", "_reset_parameters")


def _module_under_construction(frame) -> Optional[nn.Module]:
    """The module whose `__init__`/`reset_parameters` (in torch's code) is running between this
    frame and the first user frame: weight initialisation of a module built inside forward."""
    f = frame
    while f is not None and is_library_file(f.f_code.co_filename):
        if f.f_code.co_name in _INIT_NAMES:
            candidate = f.f_locals.get("self")
            if isinstance(candidate, nn.Module):
                return candidate
        f = f.f_back
    return None


class OpLogger(TorchDispatchMode):
    """Logs random ops, batch norm in training mode and writes to parameters/buffers, with the
    innermost module and the first user source frame. Used only for the locating forward."""

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        # torch wraps a mode's __torch_dispatch__ in torch._dynamo.disable unless this says no;
        # that costs a multi-second import of torch._dynamo, and this mode runs no compiled code
        # (compiled models are traced through `_orig_mod`).
        return False

    def __init__(self, watcher: ModuleWatcher, owners: Dict[int, Tuple[int, str]]):
        super().__init__()
        self.watcher = watcher
        self.owners = owners
        self.events: List[Event] = []
        self._seen: Set[tuple] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        spec = _spec(func)
        if spec is not None and len(self.events) < MAX_EVENTS:
            try:
                self._inspect(spec, args, kwargs)
            except Exception:  # observing must never change what the model does
                pass
        return func(*args, **kwargs)

    def _inspect(self, spec: _OpSpec, args, kwargs) -> None:
        detail = classify_random(spec, args, kwargs)
        if detail is not None:
            self._add("random", spec.name, detail, ())
        pos = spec.positions
        if "running_mean" in pos:
            train_name = next((n for n in ("training", "train", "use_input_stats") if n in pos), None)
            stats = [spec.value(n, args, kwargs) for n in ("running_mean", "running_var") if n in pos]
            if train_name and spec.value(train_name, args, kwargs) and any(
                isinstance(t, torch.Tensor) for t in stats
            ):
                written = tuple(self.owners[id(t)] for t in stats if id(t) in self.owners)
                self._add("batch-norm-train", spec.name, f"{train_name}=True", written)
                return
        for name in spec.writes:
            value = spec.value(name, args, kwargs)
            tensors = value if isinstance(value, (list, tuple)) else (value,)
            written = tuple(self.owners[id(t)] for t in tensors if id(t) in self.owners)
            if written:
                self._add("write", spec.name, f"in-place write to `{name}`", written)

    def _add(self, kind, op, detail, tensors) -> None:
        constructing = _module_under_construction(sys._getframe(1)) if kind == "random" else None
        self.add(kind, op, detail, tensors, user_frame(), constructing)

    def add(self, kind, op, detail, tensors, location, constructing=None) -> None:
        module = self.watcher.innermost()
        key = (kind, op, id(module), location, tensors, id(constructing))
        if key in self._seen:
            return
        self._seen.add(key)
        self.events.append(Event(kind, op, detail, module, location, tensors, constructing))

    # global buffer/parameter registration hooks: `self.step = self.step + 1` on a buffer
    def on_assign(self, module: nn.Module, name: str, value) -> None:
        state = self.watcher.state.states.get(id(module))
        if state is None or len(self.events) >= MAX_EVENTS:
            return None
        if (name in state.none_buffers or name not in state.buffer_names
                or any(key[1] == name for key in state.tensors)):
            self._add("reassign", f"assignment to `{name}`", "replaced by a new tensor",
                      ((id(module), name),))
        return None


def _numpy_token(state_owner):
    """A cheap fingerprint of NumPy's legacy global generator (MT19937 position and key ends)."""
    st = state_owner._bit_generator.state
    inner = st["state"]
    return inner["pos"], int(inner["key"][0]), int(inner["key"][-1]), st.get("has_gauss"), st.get("gauss")


class GeneratorLineWatcher:
    """A `sys.settrace` function that finds the user line drawing from Python's global `random`
    or NumPy's global `RandomState` (their calls are invisible to a dispatch mode, and NumPy's
    Cython methods to profile hooks): at every call, line and return event in user code it
    compares a fingerprint of those generators with the previous one and blames the line that
    just ran. Used only while locating, only if one of them moved, only if no tracer (coverage,
    a debugger) is already installed."""

    def __init__(self, logger: "OpLogger", moved: Sequence[str]):
        self.logger = logger
        self.probes = {}
        if "random" in moved:
            self.probes["Python random"] = random.getstate
        np = sys.modules.get("numpy")
        if "numpy" in moved and np is not None:
            owner = np.random.mtrand._rand
            self.probes["numpy.random"] = lambda: _numpy_token(owner)
        self.last: Dict[str, Any] = {}
        self.previous_line: Dict[Any, int] = {}

    def start(self) -> None:
        """Take the fingerprints and install the tracer: after the forward's seeding, or the
        seeding itself is blamed on the caller of `verify_modes`."""
        self.last = {name: probe() for name, probe in self.probes.items()}
        sys.settrace(self)

    @staticmethod
    def stop() -> None:
        sys.settrace(None)

    def _check(self, location: Optional[Location]) -> None:
        for name, probe in self.probes.items():
            token = probe()
            if token != self.last[name]:
                self.last[name] = token
                if location is not None and len(self.logger.events) < MAX_EVENTS:
                    self.logger.add("random", name, "global generator", (), location)

    def __call__(self, frame, event, arg):  # global trace function: 'call' events
        if self.logger.watcher.phase is None or is_library_file(frame.f_code.co_filename):
            return None
        self._check(user_frame(frame.f_back) if frame.f_back is not None else None)
        return self._local

    def _local(self, frame, event, arg):
        if event == "line":
            line = self.previous_line.get(frame)
            if line is not None:
                self._check(Location(display_path(frame.f_code.co_filename), line, 1,
                                     frame.f_code.co_name))
            self.previous_line[frame] = frame.f_lineno
        elif event == "return":
            self._check(Location(display_path(frame.f_code.co_filename), frame.f_lineno, 1,
                                 frame.f_code.co_name))
            self.previous_line.pop(frame, None)
        return self._local


# ----------------------------------------------------------------------------- the run


def _clone_for_training(t: torch.Tensor) -> torch.Tensor:
    c = t.detach().clone()
    return c.requires_grad_(True) if t.requires_grad else c


def _clone_detached(t: torch.Tensor) -> torch.Tensor:
    return t.detach().clone()


def compiled_children(modules: Sequence[nn.Module]) -> List[Tuple[nn.Module, str, nn.Module]]:
    """(parent, name, OptimizedModule) for every `torch.compile`d child. Only looked up when
    torch._dynamo is already imported (importing it costs seconds; nothing is compiled otherwise)."""
    eval_frame = sys.modules.get("torch._dynamo.eval_frame")
    optimized = getattr(eval_frame, "OptimizedModule", None)
    if optimized is None:
        return []
    return [(parent, name, child) for parent in modules
            for name, child in list(parent._modules.items()) if isinstance(child, optimized)]


class _Runner:
    def __init__(self, model: nn.Module, args: tuple, kwargs: dict):
        self.model = model
        self.args = args
        self.kwargs = kwargs
        self.modules = list(model.modules())
        self.names = {id(m): name for name, m in model.named_modules()}
        self.compiled = compiled_children(self.modules)
        self.state = ModelState(self.modules)
        self.watcher = ModuleWatcher(self.names, self.state)
        self.late: Dict[int, str] = {}  # id -> qualified name, for modules registered during forward

    def _set_mode(self, phase: str) -> None:
        for parent, name, child in self.compiled:  # restored with `_modules` after the forward
            parent._modules[name] = child._orig_mod
        if phase == "train":
            self.model.train()
        else:
            nn.Module.train(self.model, True)  # as after a training loop, whatever the flags were
            self.model.eval()
            self.watcher.left_on = {id(m) for m in self.modules if m.training}

    def _call(self, phase: str, grad: bool, logger: Optional["OpLogger"]):
        if phase == "train":
            with torch.inference_mode(False), torch.enable_grad():
                args, kwargs = map_tensors((self.args, self.kwargs), _clone_for_training)
                return self.model(*args, **kwargs)
        if grad:
            with torch.inference_mode(False), torch.enable_grad():
                args, kwargs = map_tensors((self.args, self.kwargs), _clone_detached)
                return self.model(*args, **kwargs)
        with torch.inference_mode():
            args, kwargs = map_tensors((self.args, self.kwargs), torch.clone)
            if logger is None:
                return self.model(*args, **kwargs)
            with logger:
                return self.model(*args, **kwargs)

    def forward(self, phase: str, seed: int, logger: Optional["OpLogger"] = None, grad: bool = False,
                on_seeded=None, compare_values: bool = True) -> Forward:
        """One forward, then a sync: a full one (values compared and restored) unless
        `compare_values` is False, when the next forward may start from changed values."""
        result = Forward(phase, seed, grad=grad)
        self.state.dirty = self.state.touched = True
        before: Dict[str, Any] = {}
        try:
            self._set_mode(phase)
            seed_all(seed)
            before = rng_states()
            if on_seeded is not None:
                on_seeded()
            self.watcher.phase = phase
            output = self._call(phase, grad, logger)
            self.watcher.phase = None
            flat = flatten(output)
            floats = [t for _, t in flat if t.is_floating_point() or t.is_complex()]
            result.float_outputs = len(floats)
            result.float_outputs_requiring_grad = sum(1 for t in floats if t.requires_grad)
            result.outputs = [(path, t.detach()) for path, t in flat]
            del output, flat, floats  # free the autograd graph before the next forward
            self._note_late_registrations()
        except Exception as exc:  # a failing forward is an observation (MDL606), not a crash
            result.error = exc
            result.error_location = traceback_user_frame(exc)
        finally:
            self.watcher.phase = None
        if before:
            result.moved = moved_generators(before, rng_states())
        # restores; reports what an eval forward changed (training changes are expected)
        changes = self.state.sync(self.names if phase == "eval" else (), values=compare_values)
        if phase == "eval":
            result.changes = changes
        return result

    def _note_late_registrations(self) -> None:
        """Modules that became registered during the forward (`self.x = nn.Linear(...)` in forward)."""
        for name, module in self.model.named_modules():
            if id(module) not in self.names and id(module) in self.watcher.unregistered:
                self.late.setdefault(id(module), name)

    def locate(self, seed: int, moved: Sequence[str]) -> List[Event]:
        """One more eval forward under the dispatch mode, with a module stack and assignment hooks
        (and a line tracer if Python's or NumPy's global generator is among the `moved` ones)."""
        watcher = self.watcher
        logger = OpLogger(watcher, self.state.tensor_owners())
        line_watcher = None
        if ("random" in moved or "numpy" in moved) and sys.gettrace() is None:
            line_watcher = GeneratorLineWatcher(logger, moved)
        watcher.stack = []
        handles = [
            module_mod.register_module_forward_hook(watcher.post_hook, always_call=True),
            module_mod.register_module_buffer_registration_hook(logger.on_assign),
            module_mod.register_module_parameter_registration_hook(logger.on_assign),
        ]
        try:
            self.forward("eval", seed, logger, on_seeded=line_watcher.start if line_watcher else None)
        finally:
            steps = [handle.remove for handle in handles]
            if line_watcher is not None:
                steps.insert(0, line_watcher.stop)
            steps.append(lambda: setattr(watcher, "stack", None))
            run_all(steps)
        return logger.events


def needs_locating(evals: Sequence[Forward], atol: float, rtol: float) -> bool:
    """True if an eval forward moved a generator, changed state, or the inference-mode eval
    outputs differ (grad-mode differences, MDL608, need no op to be located)."""
    if any(f.moved or f.changes for f in evals):
        return True
    ok = [f for f in evals if f.ok and not f.grad]
    return len(ok) == 2 and not outputs_close(ok[0].outputs, ok[1].outputs, atol, rtol)


def needs_second_inference_eval(first: Forward, grad_eval: Forward, atol: float, rtol: float) -> bool:
    """The inference-mode forward (seed 0) and the grad-enabled one (seed 1) disagree: one more
    inference-mode forward with seed 1 tells randomness from grad-mode dependence."""
    if first.ok != grad_eval.ok:
        return True
    if not first.ok:
        return False
    return not outputs_close(first.outputs, grad_eval.outputs, max(atol, GRAD_ATOL), max(rtol, GRAD_RTOL))


def needs_second_training(train: Forward, first_eval: Forward, atol: float, rtol: float) -> bool:
    """A second training forward (seed 1) matters only for MDL605: when the training output
    equals the eval output, are two training forwards with different seeds identical too? A
    model whose dropout or batch norm works gives a training output unlike the eval one, so
    clean models skip it."""
    if not train.ok or not first_eval.ok or not train.outputs:
        return False
    return outputs_close(train.outputs, first_eval.outputs, atol, rtol)


def _observe(runner: "_Runner", seeds: Tuple[int, int], atol: float, rtol: float):
    # Values (every parameter byte) are compared after the training forward and after the eval
    # pair only: a change made by the inference-mode eval forward is still there, and reported,
    # at the grad-enabled one's sync. MDL608 is not reported when an eval forward changed state
    # (the grad-enabled forward may have started from it). Every later forward starts from
    # restored values.
    train = [runner.forward("train", seeds[0])]
    evals = [runner.forward("eval", seeds[0], compare_values=False)]
    second_training = needs_second_training(train[0], evals[0], atol, rtol)
    if not second_training:  # no check reads them any more: free them before the grad forward
        train[0].outputs = None  # (GPT-2's logits are 13 MiB at 64 tokens)
    grad_eval = runner.forward("eval", seeds[1], grad=True)
    if second_training:
        train.append(runner.forward("train", seeds[1]))
    if needs_second_inference_eval(evals[0], grad_eval, atol, rtol):
        evals.append(runner.forward("eval", seeds[1]))
    events = None
    every_eval = evals + [grad_eval]
    if needs_locating(every_eval, atol, rtol):
        events = runner.locate(seeds[0], sorted({g for f in every_eval for g in f.moved}))
    return train, evals, grad_eval, events


def run(model: nn.Module, args: tuple, kwargs: dict, seeds: Tuple[int, int],
        atol: float, rtol: float) -> Trace:
    """Run the forwards (and the locating one if needed); always restore everything.

    Restoration is unconditional and each step independent (`run_all`): hooks removed, modules
    restored, then grad mode, determinism, backend flags and generators, each even if an earlier
    step raised. An error of the observed run takes precedence over a restore error (attached to
    it as a note); otherwise the first restore error is raised."""
    global_state = GlobalState()
    handles: List[Any] = []
    runner: Optional[_Runner] = None
    try:
        runner = _Runner(model, args, kwargs)
        handles.append(module_mod.register_module_forward_pre_hook(runner.watcher.pre_hook))
        train, evals, grad_eval, events = _observe(runner, seeds, atol, rtol)
    except BaseException as exc:
        try:
            _restore(handles, runner, global_state)
        except BaseException as restore_exc:  # noqa: BLE001 - the run's own error comes first
            if hasattr(exc, "add_note"):
                exc.add_note(f"modelint: restoring the model after this error also failed: "
                             f"{type(restore_exc).__name__}: {restore_exc}")
        raise
    _restore(handles, runner, global_state)
    return Trace(
        model=model,
        names=runner.names,
        seeds=tuple(seeds),
        train=train,
        eval=evals,
        grad_eval=grad_eval,
        called=runner.watcher.called,
        trained=runner.watcher.trained,
        unregistered=runner.watcher.unregistered,
        stuck=runner.watcher.stuck,
        events=events,
        late=runner.late,
        left_on=runner.watcher.left_on,
        trainable=any(p.requires_grad for p in model.parameters()),
        atol=atol,
        rtol=rtol,
    )


def _restore(handles: Sequence[Any], runner: Optional[_Runner], global_state: GlobalState) -> None:
    steps = [handle.remove for handle in handles]
    if runner is not None:
        steps.append(lambda: setattr(runner.watcher, "phase", None))
        steps.append(runner.state.restore)
    steps.append(global_state.restore)
    run_all(steps)

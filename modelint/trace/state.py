"""Snapshots of everything a forward can change, and the code that puts it back.

* `ModuleState`: one module's `training` flag, its `__dict__` (attributes cached during a forward,
  including inference tensors that would later break training, are dropped again), the contents of
  its plain dict/list/set attributes (`_parameters`, `_buffers`, `_modules`, hook dicts, user
  caches), the state of `torch.Generator` attributes, and a clone of every parameter and buffer,
  compared and restored bit for bit.
* `GlobalState`: grad mode, the deterministic-algorithms settings, cuDNN flags and every random
  generator's state (torch CPU, each CUDA device where available, Python `random`, NumPy's legacy
  global generator when NumPy is imported).
* Tensor helpers: `same_bits`, `map_tensors` (clone inputs), `flatten` (every tensor in an output
  structure, with a readable path such as `output['logits']`).

Limits: objects that are not modules (a global cache dict, a closure) are not restored; nested
containers are restored one level deep; NumPy `Generator` objects and other accelerators' (MPS,
XPU) generators are not tracked.
"""

from __future__ import annotations

import dataclasses
import random
import sys
from collections import OrderedDict
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
from torch import nn

_CONTAINER_TYPES = (dict, OrderedDict, list, set)


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    """True if two tensors hold the same values (NaNs in the same places count as equal)."""
    if a.shape != b.shape or a.dtype != b.dtype or a.device != b.device:
        return False
    if torch.equal(a, b):
        return True
    if a.is_floating_point() or a.is_complex():
        return bool(((a == b) | (a.isnan() & b.isnan())).all())
    return False


# ----------------------------------------------------------------------------- modules


class ModuleState:
    """Everything about one module that a forward may change (see the module docstring)."""

    def __init__(self, module: nn.Module):
        self.module = module
        self.training = module.training
        self.attrs = dict(module.__dict__)
        # (container, saved contents, is_list) for each plain dict/list/set attribute
        self.containers = [
            (value, list(value) if isinstance(value, list) else value.copy(), isinstance(value, list))
            for value in self.attrs.values()
            if type(value) in _CONTAINER_TYPES
        ]
        # private generators kept on the module (`self.gen = torch.Generator()`): legitimate
        # sampling, restored so every forward starts from the same state
        self.generators = {key: value.get_state() for key, value in self.attrs.items()
                           if isinstance(value, torch.Generator)}
        self.tensors: Dict[Tuple[str, str], Tuple[torch.Tensor, torch.Tensor]] = {}
        for kind, store in (("parameter", module._parameters), ("buffer", module._buffers)):
            for name, tensor in store.items():
                if tensor is None or _is_lazy(tensor):
                    continue
                # a normal tensor even when taken during an inference-mode forward (a module
                # first seen there), so it can be copied back outside inference mode
                with torch.inference_mode(False), torch.no_grad():
                    self.tensors[(kind, name)] = (tensor, tensor.detach().clone())

    def restore_attributes(self) -> None:
        """Put back `__dict__`, container contents, the training flag and generator states."""
        module = self.module
        current = module.__dict__
        if len(current) != len(self.attrs) or not current.keys() <= self.attrs.keys():
            for key in [k for k in current if k not in self.attrs]:
                del current[key]
        current.update(self.attrs)
        for container, saved, is_list in self.containers:
            if not saved:  # most hook dicts: empty before, usually empty after
                if container:
                    container.clear()
            elif is_list:
                container[:] = saved
            else:
                container.clear()
                container.update(saved)
        module.training = self.training
        for key, generator_state in self.generators.items():
            self.attrs[key].set_state(generator_state)

    def sync(self) -> List[Tuple[str, str, str]]:
        """Restore everything and return (kind, name, how) for each parameter/buffer that differed
        from the snapshot: "changed" (same tensor, new values), "replaced" (another tensor with
        other values was assigned) or "removed". One comparison per tensor."""
        out = []
        store_of = {"parameter": self.module._parameters, "buffer": self.module._buffers}
        for (kind, name), (original, saved) in self.tensors.items():
            current = store_of[kind].get(name)
            original_changed = not same_bits(original.detach(), saved)
            if current is None:
                out.append((kind, name, "removed"))
            elif current is not original:
                if not same_bits(current.detach(), saved):
                    out.append((kind, name, "replaced"))
            elif original_changed:
                out.append((kind, name, "changed"))
            if original_changed:
                with torch.no_grad():
                    if original.shape == saved.shape and original.dtype == saved.dtype:
                        original.copy_(saved)
                    else:  # resized or retyped in place: put the saved tensor's data back
                        original.data = saved.clone()
        self.restore_attributes()
        return out


def _is_lazy(tensor) -> bool:
    return isinstance(tensor, nn.parameter.UninitializedTensorMixin)


def has_lazy_parameters(model: nn.Module) -> bool:
    return any(_is_lazy(t) for t in list(model.parameters()) + list(model.buffers()))


class ModelState:
    """`ModuleState` for every module of a model (and for modules added later with `add`)."""

    def __init__(self, modules: List[nn.Module]):
        self.dirty = False  # True while a forward may have changed tensors since the last sync
        self.touched = False  # True when flags/attributes may differ (a mode switch)
        self.states: Dict[int, ModuleState] = {}
        for module in modules:
            self.add(module)

    def add(self, module: nn.Module) -> None:
        if id(module) not in self.states:
            self.states[id(module)] = ModuleState(module)

    def sync(self, report_ids=()) -> List[Tuple[int, str, str, str]]:
        """Restore every module after a forward; return (module id, kind, name, how) for the
        parameters/buffers that had changed, for the modules whose ids are in `report_ids`."""
        out = []
        for mid, state in list(self.states.items()):
            changes = state.sync()
            if mid in report_ids:
                out.extend((mid,) + change for change in changes)
        self.dirty = self.touched = False
        return out

    def restore(self) -> None:
        """Restore every module: a full `sync` if a forward ran since the last one, else only the
        attributes and flags if something may have touched them (mode switching), else nothing."""
        if self.dirty:
            self.sync()
        elif self.touched:
            for state in list(self.states.values()):
                state.restore_attributes()
            self.touched = False

    def tensor_owners(self) -> Dict[int, Tuple[int, str]]:
        """id(tensor) -> (module id, tensor name) for every tracked parameter and buffer."""
        owners = {}
        for mid, state in self.states.items():
            for (_, name), (original, _) in state.tensors.items():
                owners.setdefault(id(original), (mid, name))
        return owners


# ----------------------------------------------------------------------------- process-wide


def rng_states() -> Dict[str, Any]:
    """The state of every random generator modelint knows about, keyed by a readable name."""
    states: Dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for index, state in enumerate(torch.cuda.get_rng_state_all()):
            states[f"torch.cuda:{index}"] = state
    states["random"] = random.getstate()
    np = sys.modules.get("numpy")
    if np is not None:
        states["numpy"] = np.random.get_state()
    return states


def _state_equal(a, b) -> bool:
    """Generator states: a torch ByteTensor, Python's (version, tuple of ints, gauss) tuple, or
    NumPy's legacy ('MT19937', key array, pos, has_gauss, gauss) tuple."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b):
        for x, y in zip(a, b):
            if hasattr(x, "shape") and hasattr(x, "tolist"):  # a NumPy array
                if not (hasattr(y, "shape") and x.shape == y.shape and bool((x == y).all())):
                    return False
            elif x != y:
                return False
        return True
    return a == b


def moved_generators(before: Dict[str, Any], after: Dict[str, Any]) -> List[str]:
    """Names of the generators whose state differs (a generator that appeared counts as moved
    only if it is torch's; NumPy imported during the forward is not a move)."""
    return sorted(
        name for name, state in after.items() if name in before and not _state_equal(before[name], state)
    )


def set_rng_states(states: Dict[str, Any]) -> None:
    for name, state in states.items():
        if name == "torch":
            torch.set_rng_state(state)
        elif name.startswith("torch.cuda:"):
            torch.cuda.set_rng_state(state, int(name.split(":")[1]))
        elif name == "random":
            random.setstate(state)
        elif name == "numpy":
            sys.modules["numpy"].random.set_state(state)


def seed_all(seed: int) -> None:
    """Seed torch (CPU, and CUDA when initialised), Python `random` and NumPy (when imported).

    Not `torch.manual_seed`: with CUDA/XPU/MTIA not initialised it queues lazy seed calls that
    each format the whole Python stack (tens of milliseconds under pytest)."""
    torch.default_generator.manual_seed(seed)
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.manual_seed_all(seed)
    random.seed(seed)
    np = sys.modules.get("numpy")
    if np is not None:
        np.random.seed(seed)


class GlobalState:
    """Grad mode, determinism settings and generator states, captured once and put back."""

    def __init__(self):
        self.grad = torch.is_grad_enabled()
        self.deterministic = torch.are_deterministic_algorithms_enabled()
        self.warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
        self.cudnn = (torch.backends.cudnn.enabled, torch.backends.cudnn.benchmark,
                      torch.backends.cudnn.deterministic)
        self.rng = rng_states()

    def restore(self) -> None:
        torch.set_grad_enabled(self.grad)
        if (torch.are_deterministic_algorithms_enabled(),
                torch.is_deterministic_algorithms_warn_only_enabled()) != (self.deterministic, self.warn_only):
            # what torch.use_deterministic_algorithms does, without importing torch._inductor
            # (seconds) just to update its config when nothing imported it yet
            torch._C._set_deterministic_algorithms(self.deterministic, warn_only=self.warn_only)
            inductor_config = sys.modules.get("torch._inductor.config")
            if inductor_config is not None:
                inductor_config.deterministic = self.deterministic
        (torch.backends.cudnn.enabled, torch.backends.cudnn.benchmark,
         torch.backends.cudnn.deterministic) = self.cudnn
        set_rng_states(self.rng)


# ----------------------------------------------------------------------------- structures


def map_tensors(obj: Any, fn: Callable[[torch.Tensor], torch.Tensor], _depth: int = 0) -> Any:
    """Apply `fn` to every tensor in nested tuples, lists, dicts and dataclasses; other objects
    are returned as they are."""
    if _depth > 32:
        return obj
    if isinstance(obj, torch.Tensor):
        return fn(obj)
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):  # namedtuple
        return type(obj)(*(map_tensors(v, fn, _depth + 1) for v in obj))
    if isinstance(obj, (tuple, list)):
        return type(obj)(map_tensors(v, fn, _depth + 1) for v in obj)
    if isinstance(obj, dict) and type(obj) in (dict, OrderedDict):
        return type(obj)((k, map_tensors(v, fn, _depth + 1)) for k, v in obj.items())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        changes = {f.name: map_tensors(getattr(obj, f.name), fn, _depth + 1)
                   for f in dataclasses.fields(obj) if f.init and hasattr(obj, f.name)}
        try:
            return dataclasses.replace(obj, **changes)
        except Exception:
            return obj
    return obj


def flatten(obj: Any, prefix: str = "output", _depth: int = 0) -> List[Tuple[str, torch.Tensor]]:
    """Every tensor in an output structure as (path, tensor): tensors, tuples, lists, mappings
    (including `transformers.ModelOutput`), namedtuples and dataclasses. Other leaves are ignored."""
    if _depth > 32:
        return []
    if isinstance(obj, torch.Tensor):
        return [(prefix, obj)]
    out: List[Tuple[str, torch.Tensor]] = []
    if isinstance(obj, dict):
        for key, value in obj.items():
            out.extend(flatten(value, f"{prefix}[{key!r}]", _depth + 1))
    elif isinstance(obj, tuple) and hasattr(obj, "_fields"):
        for key, value in zip(obj._fields, obj):
            out.extend(flatten(value, f"{prefix}.{key}", _depth + 1))
    elif isinstance(obj, (tuple, list)):
        for index, value in enumerate(obj):
            out.extend(flatten(value, f"{prefix}[{index}]", _depth + 1))
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for f in dataclasses.fields(obj):
            out.extend(flatten(getattr(obj, f.name, None), f"{prefix}.{f.name}", _depth + 1))
    return out


def compare_outputs(a, b, atol: float, rtol: float) -> Optional[str]:
    """None if two flattened outputs agree, else a short description of the first difference."""
    paths_a = [p for p, _ in a]
    paths_b = [p for p, _ in b]
    if paths_a != paths_b:
        return "the output structures differ"
    with torch.inference_mode():
        for (path, x), (_, y) in zip(a, b):
            if x.shape != y.shape or x.dtype != y.dtype:
                return f"{path} has shape/dtype {tuple(x.shape)}/{x.dtype} vs {tuple(y.shape)}/{y.dtype}"
            if x.device != y.device:
                y = y.to(x.device)
            if torch.equal(x, y):  # the common case, and much cheaper than allclose
                continue
            if x.is_floating_point() or x.is_complex():
                if not torch.allclose(x, y, atol=atol, rtol=rtol, equal_nan=True):
                    diff = (x - y).abs()
                    diff = diff[~diff.isnan()] if diff.is_floating_point() else diff
                    worst = float(diff.max()) if diff.numel() else float("nan")
                    return f"{path} differs (max abs diff {worst:.3g})"
            elif not torch.equal(x, y):
                changed = int((x != y).sum())
                return f"{path} differs in {changed} of {x.numel()} elements"
    return None

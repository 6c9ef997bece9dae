"""Snapshots of everything a forward can change, and the code that puts it back.

* `TensorStore`: one byte copy of every distinct storage behind a model's parameters and buffers
  (a tied embedding shared by two modules is copied once), compared and restored bit for bit
  (`-0.0` vs `0.0` and NaN payloads count: bytes are compared, not values). Extra memory: one copy
  of the parameter and buffer bytes, nothing else.
* `ModuleState`: one module's `training` flag, its `__dict__` (attributes cached during a forward,
  including inference tensors that would later break training, are dropped again), the contents of
  its plain dict/list/set attributes (`_parameters`, `_buffers`, `_modules`, hook dicts, user
  caches), the state of `torch.Generator` attributes, and for every parameter and buffer its
  identity, shape/strides/dtype and `requires_grad` (the values live in the `TensorStore`).
* `ModelState`: `ModuleState` for every module plus their shared `TensorStore`.
* `GlobalState`: grad mode, the deterministic-algorithms settings, cuDNN flags and every random
  generator's state (torch CPU, each CUDA device where available, Python `random`, NumPy's legacy
  global generator when NumPy is imported).
* `run_all`: every restore step runs even if an earlier one raised; the first error is re-raised
  after all of them (a half-restored model is worse than an exception).
* Tensor helpers: `same_bits`, `map_tensors` (clone inputs), `flatten` (every tensor in an output
  structure, with a readable path such as `output['logits']`), `compare_outputs`.

Limits: objects that are not modules (a global cache dict, a closure) are not restored; nested
containers are restored one level deep; NumPy `Generator` objects and other accelerators' (MPS,
XPU) generators are not tracked.
"""

from __future__ import annotations

import dataclasses
import random
import sys
from collections import OrderedDict
from typing import Any, Callable, Dict, Iterable, List, Optional, Set, Tuple

import torch
from torch import nn

_CONTAINER_TYPES = (dict, OrderedDict, list, set)
_INT_OF_SIZE = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def run_all(steps: Iterable[Callable[[], Any]]) -> None:
    """Call every step even if some raise; then re-raise the first error (others are attached as
    notes). Restoration must not stop half-way: one failing module must not leave the RNG state
    or another module's statistics changed."""
    first: Optional[BaseException] = None
    for step in steps:
        try:
            step()
        except BaseException as exc:  # noqa: BLE001 - re-raised below, after the other steps
            if first is None:
                first = exc
            elif hasattr(first, "add_note"):
                first.add_note(f"modelint: another restore step also failed: {type(exc).__name__}: {exc}")
    if first is not None:
        raise first


# ----------------------------------------------------------------------------- bits


def _bits(t: torch.Tensor) -> torch.Tensor:
    """A same-shape integer view of a strided tensor, so `torch.equal` compares bits."""
    t = t.resolve_conj().resolve_neg()
    if t.is_complex():
        t = torch.view_as_real(t)
    if t.is_floating_point():
        return t.view(_INT_OF_SIZE[t.element_size()])
    return t


def _comparable(t: torch.Tensor) -> torch.Tensor:
    if t.layout == torch.sparse_coo:
        return t.coalesce()
    if t.layout != torch.strided:  # CSR/CSC/BSR...: compare densely (rare, small)
        return t.to_dense()
    return t


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    """True if two tensors hold the same bits (shape, dtype and device included; sparse tensors
    by their coalesced indices and values). `torch.equal` alone says `0.0 == -0.0`."""
    if a.shape != b.shape or a.dtype != b.dtype or a.device != b.device or a.layout != b.layout:
        return False
    a, b = _comparable(a), _comparable(b)
    if a.layout == torch.sparse_coo:
        return torch.equal(a.indices(), b.indices()) and same_bits(a.values(), b.values())
    return torch.equal(_bits(a), _bits(b))


def _byte_view(storage) -> torch.Tensor:
    """The bytes of an untyped storage as a flat integer tensor (int64 when the size allows:
    comparing 8-byte words is about 4x faster than bytes)."""
    with torch.inference_mode(False), torch.no_grad():
        view = torch.empty(0, dtype=torch.uint8, device=storage.device).set_(storage)
        size = storage.nbytes()
        for width in (8, 4, 2):
            if size % width == 0:
                return view.view(_INT_OF_SIZE[width])
        return view


def _load_memcmp():
    """libc's memcmp, or None. On CPU it compares bytes about 7x faster than `torch.equal`
    (24 MB: 3 ms vs 22 ms here), and this comparison is the tracer's main cost on small inputs."""
    try:
        import ctypes
        import ctypes.util

        libc = ctypes.CDLL(ctypes.util.find_library("c") or None) if sys.platform != "win32" \
            else ctypes.cdll.msvcrt
        memcmp = libc.memcmp
        memcmp.restype = ctypes.c_int
        memcmp.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
        return memcmp
    except Exception:  # noqa: BLE001 - no libc through ctypes: torch.equal it is
        return None


_MEMCMP = _load_memcmp()


def _key(storage) -> Tuple[str, int]:
    return str(storage.device), storage.data_ptr()


class StorageCopy:
    """One storage and a byte copy of it."""

    def __init__(self, storage):
        self.storage = storage
        self.nbytes = storage.nbytes()
        with torch.inference_mode(False), torch.no_grad():
            self.saved = storage.clone()

    def changed(self) -> bool:
        if self.storage.nbytes() != self.nbytes:
            return True
        if _MEMCMP is not None and self.storage.device.type == "cpu":
            return _MEMCMP(self.storage.data_ptr(), self.saved.data_ptr(), self.nbytes) != 0
        return not torch.equal(_byte_view(self.storage), _byte_view(self.saved))

    def restore(self) -> None:
        with torch.inference_mode(False), torch.no_grad():
            if self.storage.nbytes() != self.nbytes:
                self.storage.resize_(self.nbytes)
            self.storage.copy_(self.saved)


@dataclasses.dataclass
class TensorRecord:
    """A parameter or buffer: the tensor object, its layout at snapshot time and where its
    values are saved (a `StorageCopy`, or a clone for tensors without a plain storage)."""

    tensor: torch.Tensor
    meta: tuple  # (dtype, shape, stride, storage offset)
    requires_grad: bool
    storage: Optional[StorageCopy] = None
    clone: Optional[torch.Tensor] = None
    where: int = 0  # data_ptr at snapshot time: storage, offset and dtype size in one number

    def saved(self) -> torch.Tensor:
        """The saved values, shaped like the tensor was."""
        if self.clone is not None:
            return self.clone
        dtype, shape, stride, offset = self.meta
        with torch.inference_mode(False), torch.no_grad():
            return torch.empty(0, dtype=dtype, device=self.tensor.device).set_(
                self.storage.saved, offset, shape, stride)

    def live_layout_changed(self) -> bool:
        t = self.tensor
        if self.storage is None:
            return t.dtype != self.meta[0] or t.shape != self.meta[1]
        dtype, shape, stride, _ = self.meta
        return t.data_ptr() != self.where or t.dtype != dtype or t.shape != shape or t.stride() != stride


class TensorStore:
    """Bit-exact copies of tensors, one per distinct storage."""

    def __init__(self):
        self.copies: Dict[Tuple[str, int], StorageCopy] = {}
        self.regions: Dict[Tuple[str, int], Set[tuple]] = {}  # storage -> distinct (meta) views

    @property
    def nbytes(self) -> int:
        return sum(c.nbytes for c in self.copies.values())

    def record(self, tensor: torch.Tensor) -> TensorRecord:
        t = tensor.detach()
        meta = (t.dtype, t.shape, None, None)
        storage = None
        if t.layout == torch.strided and type(t) is torch.Tensor:
            try:
                st = t.untyped_storage()
                meta = (t.dtype, t.shape, t.stride(), t.storage_offset())
                key = _key(st)
                if st.nbytes() and key not in self.copies:
                    self.copies[key] = StorageCopy(st)
                storage = self.copies.get(key)
                if storage is not None:
                    self.regions.setdefault(key, set()).add(meta)
            except (RuntimeError, NotImplementedError, TypeError):  # no plain storage (subclass)
                storage = None
        if storage is None:
            with torch.inference_mode(False), torch.no_grad():
                return TensorRecord(tensor, (t.dtype, t.shape, None, None), tensor.requires_grad,
                                    None, t.clone())
        return TensorRecord(tensor, meta, tensor.requires_grad, storage, where=t.data_ptr())

    def changed_storages(self) -> Set[Tuple[str, int]]:
        return {key for key, copy in self.copies.items() if copy.changed()}

    def shared(self, record: TensorRecord) -> bool:
        """True if other views of the record's storage exist (then compare the record's region)."""
        return record.storage is not None and len(self.regions.get(_key(record.storage.storage), ())) > 1

    def restore_steps(self, keys: Iterable[Tuple[str, int]]) -> List[Callable[[], None]]:
        return [self.copies[key].restore for key in keys]


# ----------------------------------------------------------------------------- modules


def _store(module: nn.Module, kind: str) -> Dict[str, Optional[torch.Tensor]]:
    """A module's own parameters or buffers as a plain dict (a TorchScript module's `_parameters`
    is an `OrderedDictWrapper` without `.get`)."""
    store = module._parameters if kind == "parameter" else module._buffers
    try:
        return dict(store.items())
    except Exception:  # noqa: BLE001 - exotic containers: ask the module
        named = module.named_parameters if kind == "parameter" else module.named_buffers
        return dict(named(recurse=False))


class ModuleState:
    """Everything about one module that a forward may change (see the module docstring)."""

    def __init__(self, module: nn.Module, store: TensorStore):
        self.module = module
        self.store = store
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
        # (`type(...) is`: isinstance on torch.Generator goes through a Python metaclass hook,
        # about a third of this constructor's time on a 68-module GPT)
        self.generators = {key: value.get_state() for key, value in self.attrs.items()
                           if type(value) is torch.Generator}
        self.tensors: Dict[Tuple[str, str], TensorRecord] = {}
        buffers = _store(module, "buffer")
        self.buffer_names = set(buffers)
        self.none_buffers = {name for name, t in buffers.items() if t is None}
        for kind, items in (("parameter", _store(module, "parameter")), ("buffer", buffers)):
            for name, tensor in items.items():
                if tensor is None or _is_lazy(tensor):
                    continue
                self.tensors[(kind, name)] = store.record(tensor)

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
        # Deliberate: every module of the tree has its own snapshot, so this restores only its own flag.
        module.training = self.training
        for key, generator_state in self.generators.items():
            self.attrs[key].set_state(generator_state)

    def changes(self, changed_storages: Set[Tuple[str, int]]) -> List[Tuple[str, str, str]]:
        """(kind, name, how) for each parameter/buffer that differs from the snapshot: "changed"
        (same tensor, new values or layout), "replaced" (another tensor with other values was
        assigned), "removed", "requires_grad" (flag flipped) or "initialised" (a persistent
        buffer that was None or absent now holds a tensor). Call before `restore_tensors`."""
        out = []
        current_of = {"parameter": _store(self.module, "parameter"), "buffer": _store(self.module, "buffer")}
        for (kind, name), record in self.tensors.items():
            current = current_of[kind].get(name)
            if current is None:
                out.append((kind, name, "removed"))
            elif current is not record.tensor:
                if not same_bits(current.detach(), record.saved()):
                    out.append((kind, name, "replaced"))
            elif self._values_changed(record, changed_storages):
                out.append((kind, name, "changed"))
            elif record.tensor.requires_grad != record.requires_grad:
                out.append((kind, name, "requires_grad"))
        persistent_skip = getattr(self.module, "_non_persistent_buffers_set", set())
        for name, value in current_of["buffer"].items():
            if value is None or name in persistent_skip or ("buffer", name) in self.tensors:
                continue
            if name in self.none_buffers or name not in self.buffer_names:
                out.append(("buffer", name, "initialised"))
        return out

    def _values_changed(self, record: TensorRecord, changed_storages) -> bool:
        if record.live_layout_changed():
            return True
        if changed_storages is None:  # a sync without value comparison
            return False
        if record.storage is None:
            return not same_bits(record.tensor.detach(), record.clone)
        if _key(record.storage.storage) not in changed_storages:
            return False
        if not self.store.shared(record):
            return True
        return not same_bits(record.tensor.detach(), record.saved())

    def restore_tensors(self) -> None:
        """Put back the layout, values (non-storage tensors) and requires_grad of each tensor;
        storage bytes are restored by the `TensorStore`. Each tensor independently."""
        run_all([lambda r=record: _restore_tensor(r) for record in self.tensors.values()])


def _restore_tensor(record: TensorRecord) -> None:
    t = record.tensor
    with torch.inference_mode(False), torch.no_grad():
        if record.live_layout_changed():  # resized, retyped or re-pointed (`.data = ...`)
            if record.storage is not None:
                dtype, shape, stride, offset = record.meta
                t.data = torch.empty(0, dtype=dtype, device=t.device).set_(
                    record.storage.storage, offset, shape, stride)
            else:
                t.data = record.clone.clone()
        elif record.storage is None and not same_bits(t.detach(), record.clone):
            t.copy_(record.clone)
    if t.requires_grad != record.requires_grad:
        t.requires_grad_(record.requires_grad)


def _is_lazy(tensor) -> bool:
    return isinstance(tensor, nn.parameter.UninitializedTensorMixin)


def has_lazy_parameters(model: nn.Module) -> bool:
    return any(_is_lazy(t) for t in list(model.parameters()) + list(model.buffers()))


def meta_tensor_name(model: nn.Module) -> Optional[str]:
    """The name of a parameter or buffer on the `meta` device (no data to run or compare)."""
    for name, t in list(model.named_parameters()) + list(model.named_buffers()):
        if t.is_meta:
            return name
    return None


class ModelState:
    """`ModuleState` for every module of a model (and for modules added later with `add`)."""

    def __init__(self, modules: List[nn.Module]):
        self.dirty = False  # True while a forward may have changed tensors since the last sync
        self.touched = False  # True when flags/attributes may differ (a mode switch)
        self.store = TensorStore()
        self.states: Dict[int, ModuleState] = {}
        for module in modules:
            self.add(module)

    def add(self, module: nn.Module) -> None:
        if id(module) not in self.states:
            self.states[id(module)] = ModuleState(module, self.store)

    def sync(self, report_ids=(), values: bool = True) -> List[Tuple[int, str, str, str]]:
        """Restore every module after a forward; return (module id, kind, name, how) for the
        parameters/buffers that had changed, for the modules whose ids are in `report_ids`.
        Every restore step runs even if another raises (`run_all`).

        `values=False` is the cheap sync between two forwards whose value changes may add up
        (the next full sync sees and restores them): identities, layouts, flags and attributes
        are restored, storage bytes are neither compared nor copied back. Comparing bytes is
        the tracer's main cost on small inputs (one pass over every parameter)."""
        out: List[Tuple[int, str, str, str]] = []
        changed: Set[Tuple[str, int]] = set()
        compared: List[bool] = []
        states = list(self.states.items())

        def compare() -> None:
            if values:
                changed.update(self.store.changed_storages())
            compared.append(True)
            for mid, state in states:
                if mid in report_ids:
                    out.extend((mid,) + change for change in state.changes(changed if values else None))

        def restore_storages() -> None:  # all of them if the comparison itself failed
            run_all(self.store.restore_steps(changed if compared else list(self.store.copies)))

        run_all([compare, restore_storages]
                + [state.restore_tensors for _, state in states]
                + [state.restore_attributes for _, state in states])
        # only when every step succeeded (else retried later), and values only after a full sync
        self.touched = False
        self.dirty = self.dirty and not values
        return out

    def restore(self) -> None:
        """Restore every module: a full `sync` if a forward ran since the last full one, else only
        the attributes and flags if something may have touched them (mode switching)."""
        if self.dirty:
            self.sync()
        elif self.touched:
            run_all([state.restore_attributes for state in list(self.states.values())])
            self.touched = False

    def tensor_owners(self) -> Dict[int, Tuple[int, str]]:
        """id(tensor) -> (module id, tensor name) for every tracked parameter and buffer."""
        owners = {}
        for mid, state in self.states.items():
            for (_, name), record in state.tensors.items():
                owners.setdefault(id(record.tensor), (mid, name))
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


def _set_rng_state(name: str, state) -> None:
    if name == "torch":
        torch.set_rng_state(state)
    elif name.startswith("torch.cuda:"):
        torch.cuda.set_rng_state(state, int(name.split(":")[1]))
    elif name == "random":
        random.setstate(state)
    elif name == "numpy":
        sys.modules["numpy"].random.set_state(state)


def set_rng_states(states: Dict[str, Any]) -> None:
    """Put back every generator's state, each independently (`run_all`)."""
    run_all([lambda n=name, s=state: _set_rng_state(n, s) for name, state in states.items()])


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


# getter, setter of each cuDNN flag: the setters are what `torch.backends.cudnn.flags()` uses, and
# work after `torch.backends.disable_global_flags()` (which PyTorch's own test harness calls on
# import), where assigning `torch.backends.cudnn.enabled = ...` raises even for an unchanged value
_CUDNN_FLAGS = (
    ("enabled", torch._C._get_cudnn_enabled, torch._C._set_cudnn_enabled),
    ("benchmark", torch._C._get_cudnn_benchmark, torch._C._set_cudnn_benchmark),
    ("deterministic", torch._C._get_cudnn_deterministic, torch._C._set_cudnn_deterministic),
)


class GlobalState:
    """Grad mode, determinism settings, cuDNN flags and generator states, captured once and put
    back by `restore`, whose steps (`restore_grad`, `restore_determinism`, `restore_backends`,
    `restore_rng`) each run even if another fails."""

    def __init__(self):
        self.grad = torch.is_grad_enabled()
        self.deterministic = torch.are_deterministic_algorithms_enabled()
        self.warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
        self.cudnn = tuple(get() for _, get, _ in _CUDNN_FLAGS)
        self.rng = rng_states()

    def restore(self) -> None:
        run_all([self.restore_grad, self.restore_determinism, self.restore_backends, self.restore_rng])

    def restore_grad(self) -> None:
        torch.set_grad_enabled(self.grad)

    def restore_determinism(self) -> None:
        if (torch.are_deterministic_algorithms_enabled(),
                torch.is_deterministic_algorithms_warn_only_enabled()) != (self.deterministic, self.warn_only):
            # what torch.use_deterministic_algorithms does, without importing torch._inductor
            # (seconds) just to update its config when nothing imported it yet
            torch._C._set_deterministic_algorithms(self.deterministic, warn_only=self.warn_only)
            inductor_config = sys.modules.get("torch._inductor.config")
            if inductor_config is not None:
                inductor_config.deterministic = self.deterministic

    def restore_backends(self) -> None:
        """Only the flags that changed, through the setters `cudnn.flags()` uses."""
        run_all([lambda s=set_, v=value: s(v)
                 for (_, get, set_), value in zip(_CUDNN_FLAGS, self.cudnn) if get() != value])

    def restore_rng(self) -> None:
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
        if obj.is_nested:  # components may differ in shape: compare them one by one
            return [(f"{prefix}[{i}]", c) for i, c in enumerate(obj.unbind())]
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


def _identical(x: torch.Tensor, y: torch.Tensor) -> bool:
    """Same bits (then also equal within any tolerance): memcmp for contiguous CPU tensors,
    several times faster than `torch.equal` on large outputs."""
    if (_MEMCMP is not None and type(x) is torch.Tensor and type(y) is torch.Tensor
            and x.device.type == "cpu" and x.is_contiguous() and y.is_contiguous()
            and not x.is_conj() and not y.is_conj() and not x.is_neg() and not y.is_neg()):
        try:
            return _MEMCMP(x.data_ptr(), y.data_ptr(), x.numel() * x.element_size()) == 0
        except (RuntimeError, TypeError):  # no plain data pointer (quantized, exotic layouts)
            pass
    return torch.equal(x, y)


def outputs_close(a, b, atol: float, rtol: float) -> bool:
    """True if two flattened outputs agree (a cheaper `compare_outputs(...) is None`)."""
    return compare_outputs(a, b, atol, rtol, describe=False) is None


def compare_outputs(a, b, atol: float, rtol: float, describe: bool = True) -> Optional[str]:
    """None if two flattened outputs agree, else a short description of the first difference
    (just "differs" with `describe=False`, which skips computing it)."""
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
            if x.layout != torch.strided or y.layout != torch.strided:  # sparse: no torch.equal
                x, y = x.to_dense(), y.to_dense()
            if _identical(x, y):  # the common case, and much cheaper than allclose
                continue
            if x.is_floating_point() or x.is_complex():
                if not torch.allclose(x, y, atol=atol, rtol=rtol, equal_nan=True):
                    if not describe:
                        return "differs"
                    diff = (x - y).abs()
                    diff = diff[~diff.isnan()] if diff.is_floating_point() else diff
                    worst = float(diff.max()) if diff.numel() else float("nan")
                    return f"{path} differs (max abs diff {worst:.3g})"
            elif not torch.equal(x, y):
                if not describe:
                    return "differs"
                changed = int((x != y).sum())
                return f"{path} differs in {changed} of {x.numel()} elements"
    return None

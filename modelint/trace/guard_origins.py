"""Who put each module in its current mode: the call sites of `.train()`/`.eval()` while a guard runs.

`modelint.guard` reports "`encoder.layer.3.dropout` is in eval mode, set by `model.eval()` at
validate.py:31". Nothing in torch records that, so while at least one guard is active,
`nn.Module.train` (which `nn.Module.eval` calls) is replaced by a thin forwarder. Only the
outermost call of a recursive `train()` is recorded (`model.train()` calls `train()` on every
child: a 230-module BERT would otherwise walk the Python stack 230 times); it stamps every
module below the target with (mode, location, sequence number). The original is put back when the
last guard stops, unless someone patched `nn.Module.train` after us (then theirs stays and ours
forwards, inert, to the original).

A mode set by plain assignment (`module.training = False`, as Lightning does when it restores modes
after validation) is not seen: the stamp's mode then differs from the module's and the origin is
reported as unknown rather than wrong.
"""

from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

from torch import nn

from modelint.trace.source import Location, user_frame

# Training frameworks whose own `model.train()`/`model.eval()` calls are reported as theirs, with
# the user line that led there (`trainer.fit(...)`) next to it.
FRAMEWORKS = ("lightning", "pytorch_lightning", "lightning_fabric", "transformers", "accelerate")
_INTEGRATIONS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                 "integrations") + os.sep


@dataclass(frozen=True)
class Origin:
    """One recorded `train(mode)` call: the mode it set, where, and when (a global sequence)."""

    training: bool
    location: Optional[Location]  # innermost frame outside torch and modelint
    user_location: Optional[Location]  # innermost frame outside the training frameworks too
    seq: int
    call: str  # "model.eval()", "encoder.train()", ...

    def describe(self) -> str:
        where = self.location
        text = f"`{self.call}`" + (f" at {where}" if where else "")
        if self.user_location and self.user_location != where:
            text += f" (called from {self.user_location})"
        return text


def framework_prefixes() -> Tuple[str, ...]:
    """Directories of the imported training frameworks, and of modelint's own callbacks."""
    prefixes = [_INTEGRATIONS_DIR]
    for name in FRAMEWORKS:
        module = sys.modules.get(name)
        path = getattr(module, "__file__", None) if module is not None else None
        if path:
            prefixes.append(os.path.dirname(os.path.abspath(path)) + os.sep)
    return tuple(prefixes)


def call_site(frame) -> Tuple[Optional[Location], Optional[Location]]:
    """(innermost frame outside torch/modelint, innermost frame outside the frameworks too)."""
    prefixes = framework_prefixes()
    own = user_frame(frame, skip=(_INTEGRATIONS_DIR,))
    user = user_frame(frame, skip=prefixes)
    return own, user or own


Listener = Callable[[nn.Module, bool, Callable[[], Tuple[Optional[Location], Optional[Location]]]], None]


class _Recorder:
    """The process-wide forwarder: at most one installed, shared by every active guard."""

    def __init__(self):
        self.lock = threading.Lock()
        self.listeners: List[Listener] = []
        self.original: Optional[Callable] = None
        self.installed: Optional[Callable] = None
        self.local = threading.local()

    def add(self, listener: Listener) -> None:
        with self.lock:
            self.listeners.append(listener)
            if self.installed is None:
                self.original = nn.Module.train
                self.installed = _make_forwarder(self, self.original)
                nn.Module.train = self.installed

    def remove(self, listener: Listener) -> None:
        with self.lock:
            if listener in self.listeners:
                self.listeners.remove(listener)
            if not self.listeners and self.installed is not None:
                if nn.Module.__dict__.get("train") is self.installed:
                    nn.Module.train = self.original
                self.installed = None

    def installed_now(self) -> bool:
        return self.installed is not None and nn.Module.__dict__.get("train") is self.installed


def _make_forwarder(recorder: _Recorder, original: Callable) -> Callable:
    def train(self, mode: bool = True):
        local = recorder.local
        if getattr(local, "depth", 0) or not recorder.listeners:
            return original(self, mode)
        local.depth = 1
        try:
            result = original(self, mode)
        finally:
            local.depth = 0
        frame = sys._getframe(1)
        cache: list = []

        def site():  # computed once, and only if a guard watches this module
            if not cache:
                cache.append(call_site(frame))
            return cache[0]

        for listener in list(recorder.listeners):
            try:
                listener(self, bool(mode), site)
            except Exception:  # recording must never break the user's train()/eval()
                pass
        return result

    train.__wrapped__ = original
    train.__doc__ = original.__doc__
    return train


RECORDER = _Recorder()


class Origins:
    """One guard's view: the latest recorded `train()`/`eval()` stamp of each module of its model."""

    _seq = 0

    def __init__(self, root: nn.Module, names: Dict[int, str]):
        self.root = root
        self.names = names
        self.stamps: Dict[int, Origin] = {}
        self.generation = 0  # bumped by every recorded call on (part of) the model

    def listener(self, module: nn.Module, training: bool, site) -> None:
        name = self.names.get(id(module))
        if name is None:
            # a wrapper around the model (DDP, a LightningModule holding it): covers the root
            if not any(m is self.root for m in module.modules()):
                return
            targets = self.root.modules()
            label = type(module).__name__
        else:
            targets = module.modules()
            label = name or "model"
        location, user_location = site()
        Origins._seq += 1
        verb = "train()" if training else "eval()"
        origin = Origin(training, location, user_location, Origins._seq, f"{label}.{verb}")
        for target in targets:
            self.stamps[id(target)] = origin
        self.generation += 1

    def of(self, module: nn.Module) -> Optional[Origin]:
        """The stamp that explains the module's current mode, or None (set before the guard
        started, or by plain assignment)."""
        origin = self.stamps.get(id(module))
        if origin is not None and origin.training == module.training:
            return origin
        return None

    def snapshot(self) -> Dict[int, Origin]:
        return dict(self.stamps)

    def restore(self, stamps: Dict[int, Origin]) -> None:
        """Put back stamps taken before a framework changed modes and restored them by assignment
        (Lightning's validation loop): the earlier call is again the one that explains them."""
        self.stamps = dict(stamps)

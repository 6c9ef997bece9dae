"""Eval forwards that draw random numbers, in a live run: detect cheaply, locate once.

Every eval forward (root model in eval mode) compares the random generators' states before and
after (`state.rng_states`: about 10 µs). The dispatch mode that finds the op, module and source
line (the tracer's `OpLogger`, 40-65 µs per aten op) is far too slow to run on every forward, and a
live run cannot be replayed, so it runs during the *next* eval forward only, after one moved a
generator. If no eval forward follows, the guard reports the detection alone when it stops.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from torch.nn.modules import module as module_mod

from modelint.trace.source import Location, user_frame
from modelint.trace.state import moved_generators, rng_states
from modelint.trace.tracer import Event, ModuleWatcher, OpLogger


@dataclass
class Drew:
    """An eval forward that moved a generator: the ops found (empty if not located yet/at all)."""

    moved: List[str]
    site: Optional[Location]  # where the eval forward was called
    events: List[Event] = field(default_factory=list)
    located: bool = False  # True once a forward ran under the OpLogger


class EvalLocator:
    def __init__(self):
        self.armed: Optional[Drew] = None
        self.before = None
        self.site: Optional[Location] = None
        self.logger: Optional[OpLogger] = None
        self.handles: list = []
        self.explained: set = set()  # eval call sites whose draws were located already

    def begin(self, frame, eval_mode: bool) -> None:
        self.before = None
        if not eval_mode:
            return
        self.site = user_frame(frame)
        if self.armed is not None:
            self._start_logger()
        self.before = rng_states()

    def _start_logger(self) -> None:
        # the tracer's module stack (innermost module of each op) and op classification, reused
        watcher = ModuleWatcher({}, None)
        watcher.stack = []
        logger = OpLogger(watcher, {})
        self.handles = [
            module_mod.register_module_forward_pre_hook(watcher.pre_hook),
            module_mod.register_module_forward_hook(watcher.post_hook, always_call=True),
        ]
        logger.__enter__()
        self.logger = logger

    def end(self, failed: bool = False) -> Optional[Drew]:
        """A `Drew` to report, or None (nothing drawn, or drawn and armed for locating). A forward
        that raised proves nothing: the locating forward is tried again next time."""
        if failed:
            self.before = None
            self.close()
            return None
        if self.before is None:
            return None
        moved = moved_generators(self.before, rng_states())
        self.before = None
        logger = self.logger
        self.close()
        if logger is not None:
            armed, self.armed = self.armed, None
            events = [e for e in logger.events if e.kind == "random"]
            self.explained.add(self.site)
            if events or moved:
                return Drew(moved or armed.moved, self.site, events, located=True)
            return Drew(armed.moved, armed.site, [], located=True)
        if moved and self.site not in self.explained:
            self.armed = Drew(moved, self.site)
        return None

    def pending(self) -> Optional[Drew]:
        armed, self.armed = self.armed, None
        return armed

    def close(self) -> None:
        logger, self.logger = self.logger, None
        if logger is not None:
            try:
                logger.__exit__(None, None, None)
            except Exception:  # an exception unwound past the forward: the mode is gone already
                pass
        for handle in self.handles:
            handle.remove()
        self.handles = []

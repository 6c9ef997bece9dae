"""What every guard callback takes and gives: the `modelint.guard` options and its report."""

from __future__ import annotations

from typing import Iterable


class GuardCallbackOptions:
    """Mixed into each framework's callback class (before the framework's base class)."""

    def __init__(self, frozen: Iterable = (), on_violation: str = "raise", check_every: int = 1):
        super().__init__()
        from modelint.trace.guard import ON_VIOLATION

        if on_violation not in ON_VIOLATION:
            raise ValueError(f"on_violation must be one of {', '.join(ON_VIOLATION)}, got {on_violation!r}")
        self.frozen = tuple(frozen) if not isinstance(frozen, str) else (frozen,)
        self.on_violation = on_violation
        self.check_every = check_every
        self.guard = None

    @property
    def report(self):
        """The guard's report (findings so far); None before the training run started."""
        return self.guard.report if self.guard is not None else None

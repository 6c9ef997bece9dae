"""`ModeGuard`: `modelint.guard` as a Lightning callback.

    trainer = L.Trainer(callbacks=[ModeGuard(frozen=["backbone"])])
    trainer.fit(model)

Checks, on the `LightningModule`:
* `on_train_batch_start`: modes before the forward (MDL610, MDL612);
* `on_before_optimizer_step`: frozen running statistics (MDL611), then modes again, for the
  parameters of the optimizer being stepped (MDL610, MDL612), every `check_every`-th step;
* `on_validation_start`: no mode-dependent module in train mode (MDL613); each validation batch is
  an eval forward for MDL614.
The guard starts at `on_fit_start` and stops at `on_fit_end`, `on_exception` or `teardown`, so no
hook survives the fit, whatever happens.

Lightning saves every submodule's mode before validation and restores it afterwards by assignment
(`module.training = mode`); the callback puts back the origins recorded before validation too
(at `on_validation_end`), so a module left in eval mode by the user's `self.eval()` is blamed on
that line, not on Lightning's own `eval()`.

Lightning is imported when `ModeGuard` is first used: `lightning` if importable (or already
imported), else `pytorch_lightning`.
"""

from __future__ import annotations

import sys
from typing import Any, Iterable, Optional

from modelint.integrations.options import GuardCallbackOptions

__all__ = ["ModeGuard"]

_CLASS: Optional[type] = None


def _callback_base() -> type:
    if "pytorch_lightning" in sys.modules and "lightning" not in sys.modules:
        from pytorch_lightning import Callback

        return Callback
    try:
        from lightning.pytorch import Callback
    except ImportError:
        try:
            from pytorch_lightning import Callback
        except ImportError:
            raise ImportError("modelint.integrations.lightning.ModeGuard needs Lightning: "
                              "pip install lightning") from None
    return Callback


class _ModeGuardMixin(GuardCallbackOptions):
    """The callback's behaviour; combined with Lightning's `Callback` on first use."""

    def __init__(self, frozen: Iterable = (), on_violation: str = "raise", check_every: int = 1):
        super().__init__(frozen, on_violation, check_every)
        self._before_validation = None

    def on_fit_start(self, trainer, pl_module) -> None:
        from modelint.trace.guard import Guard

        self._stop()
        self.guard = Guard(pl_module, frozen=self.frozen, on_violation=self.on_violation,
                           check_every=self.check_every, step_hook=False).start()
        self._before_validation = self.guard.origin_snapshot()

    def on_train_batch_start(self, trainer, pl_module, batch: Any, batch_idx: int) -> None:
        if self._live():
            self.guard.check_modes(list(trainer.optimizers), before=True)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch: Any, batch_idx: int) -> None:
        if self._live():
            self._before_validation = self.guard.origin_snapshot()

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if not self._live():
            return
        report = self.guard.report
        report.steps += 1
        if (report.steps - 1) % self.guard.check_every == 0:
            self.guard.check_step(optimizer, count=False)

    def on_validation_start(self, trainer, pl_module) -> None:
        if self._live():
            self.guard.check_eval()

    def on_validation_batch_start(self, trainer, pl_module, batch: Any, batch_idx: int,
                                  dataloader_idx: int = 0) -> None:
        if self._live():
            self.guard.begin_eval(grad_off=False)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch: Any, batch_idx: int,
                                dataloader_idx: int = 0) -> None:
        if self._live():
            self.guard.end_eval()

    def on_validation_end(self, trainer, pl_module) -> None:
        # Lightning now restores the pre-validation modes by assignment, which is not recorded:
        # the calls recorded before validation explain the modes again.
        if self._live():
            self.guard.restore_origins(self._before_validation)

    def on_fit_end(self, trainer, pl_module) -> None:
        self._stop()

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self._stop(report_pending=False)

    def teardown(self, trainer, pl_module, stage: str) -> None:
        self._stop(report_pending=False)

    def _live(self) -> bool:
        return self.guard is not None and self.guard.active

    def _stop(self, report_pending: bool = True) -> None:
        if self.guard is not None and self.guard.active:
            self.guard.stop(report_pending=report_pending)


def _build() -> type:
    global _CLASS
    if _CLASS is None:
        base = _callback_base()
        _CLASS = type("ModeGuard", (_ModeGuardMixin, base), {
            "__module__": __name__,
            "__doc__": "A Lightning callback running `modelint.guard` on the LightningModule "
                       "(see `modelint.integrations.lightning`).",
        })
    return _CLASS


def __getattr__(name: str):  # PEP 562: Lightning is imported on first use of ModeGuard
    if name == "ModeGuard":
        return _build()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

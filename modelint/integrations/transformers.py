"""`ModeGuardCallback`: `modelint.guard` as a Hugging Face `TrainerCallback`.

    trainer = Trainer(model=model, args=args, train_dataset=ds, callbacks=[ModeGuardCallback()])
    trainer.train()

* `on_train_begin`: starts a guard on the model (hooks on it for the evaluation checks);
* `on_pre_optimizer_step` (transformers >= 4.44; older versions get the guard's own optimizer
  step pre-hook): frozen running statistics (MDL611) and modes (MDL610, MDL612), every
  `check_every`-th step. Not `on_step_begin`: the Trainer calls `model.train()` inside
  `training_step`, after that event, so modes there are still the evaluation's;
* `on_prediction_step`: no mode-dependent module in train mode during evaluation (MDL613); each
  evaluation forward is watched for random draws by the model's forward hook (MDL614);
* `on_train_end`: stops the guard. The Trainer has no event for an exception, so when the callback
  is passed to `Trainer(callbacks=[...])`, `on_init_end` also wraps that trainer's `train` so the
  guard stops (every hook removed) when `train()` raises. A callback added later with
  `add_callback` stops only at `on_train_end` or `stop()`.

The Trainer's own `model.train()` (every step) and `model.eval()` (every evaluation) are reported
as "`model.train()` at transformers/trainer.py:N (called from your_script.py:M)".

transformers is imported when `ModeGuardCallback` is first used.
"""

from __future__ import annotations

import functools
import sys
from typing import Optional

from modelint.integrations.options import GuardCallbackOptions

__all__ = ["ModeGuardCallback"]

_CLASS: Optional[type] = None


class _ModeGuardCallbackMixin(GuardCallbackOptions):
    def on_init_end(self, args, state, control, **kwargs):
        trainer = _calling_trainer()
        if trainer is not None and not getattr(trainer.train, "_modelint_guarded", False):
            trainer.train = _stopping(trainer.train, self)
        return control

    def on_train_begin(self, args, state, control, model=None, optimizer=None, **kwargs):
        from modelint.trace.guard import Guard

        self.stop()
        if model is not None:
            own_hook = not _has_pre_optimizer_step()
            self.guard = Guard(model, optimizer if own_hook else None, frozen=self.frozen,
                               on_violation=self.on_violation, check_every=self.check_every,
                               step_hook=own_hook).start()
        return control

    def on_pre_optimizer_step(self, args, state, control, optimizer=None, **kwargs):
        guard = self.guard
        if guard is not None and guard.active:
            guard.report.steps += 1
            if (guard.report.steps - 1) % guard.check_every == 0:
                guard.check_step(optimizer, count=False)
        return control

    def on_prediction_step(self, args, state, control, **kwargs):
        if self.guard is not None and self.guard.active:
            self.guard.check_eval()
        return control

    def on_train_end(self, args, state, control, **kwargs):
        self.stop()
        return control

    def stop(self, report_pending: bool = True):
        """Stop the guard (idempotent) and return its report."""
        if self.guard is not None and self.guard.active:
            self.guard.stop(report_pending=report_pending)
        return self.report


def _has_pre_optimizer_step() -> bool:
    from transformers import TrainerCallback

    return hasattr(TrainerCallback, "on_pre_optimizer_step")


def _calling_trainer():
    """The `transformers.Trainer` whose `__init__` is sending `on_init_end` (found on the stack)."""
    from transformers import Trainer

    frame = sys._getframe(1)
    while frame is not None:
        candidate = frame.f_locals.get("self") if frame.f_code.co_name == "__init__" else None
        if isinstance(candidate, Trainer):
            return candidate
        frame = frame.f_back
    return None


def _stopping(train, callback):
    @functools.wraps(train)
    def guarded_train(*args, **kwargs):
        try:
            return train(*args, **kwargs)
        except BaseException:
            callback.stop(report_pending=False)
            raise

    guarded_train._modelint_guarded = True
    return guarded_train


def _build() -> type:
    global _CLASS
    if _CLASS is None:
        try:
            from transformers import TrainerCallback
        except ImportError:
            raise ImportError("modelint.integrations.transformers.ModeGuardCallback needs "
                              "transformers: pip install transformers") from None
        _CLASS = type("ModeGuardCallback", (_ModeGuardCallbackMixin, TrainerCallback), {
            "__module__": __name__,
            "__doc__": "A Hugging Face TrainerCallback running `modelint.guard` on the model "
                       "(see `modelint.integrations.transformers`).",
        })
    return _CLASS


def __getattr__(name: str):  # PEP 562: transformers is imported on first use
    if name == "ModeGuardCallback":
        return _build()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

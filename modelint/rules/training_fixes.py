"""The fixes of the mode rules: pass the training mode to a functional call (MDL101, MDL103); switch
a model to training mode before its training loop (MDL303)."""

from __future__ import annotations

from typing import Optional

from modelint.fixes import InsertBefore, Replace, call_with_keyword, fix


def pass_training(ctx, call, flag: Optional[str]):
    """Safe fix: `call` with `training=<flag>` added (None without a flag or when the call cannot
    be rendered in place)."""
    keyword = ctx.framework.mode_keyword
    text = flag and call_with_keyword(ctx, call, keyword, flag)
    return fix(f"Pass `{keyword}={flag}`", Replace(call, text)) if text else None


def replace_training(ctx, value, flag: Optional[str], why: str):
    """Unsafe fix: a literal `training=True` replaced by `<flag>`; `why` says why it is unsafe."""
    keyword = ctx.framework.mode_keyword
    return fix(f"Pass `{keyword}={flag}` (unsafe: {why})", Replace(value, flag), safe=False) if flag else None


def train_before_loop(ctx, loop, key: str):
    """Safe fix: `key.train()` on its own line right before the training loop `loop`."""
    line = f"{key}.{ctx.framework.train_method}()"
    return fix(f"Call `{line}` before the training loop", InsertBefore(loop, (line,)))

"""The fixes MDL101 and MDL103 share: pass the training mode to a functional call."""

from __future__ import annotations

from typing import Optional

from modelint.fixes import Replace, call_with_keyword, fix


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

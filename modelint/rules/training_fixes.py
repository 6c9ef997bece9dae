"""Shared facts about torch's functional dropout-like calls (used by MDL101-MDL103)."""

from __future__ import annotations

from typing import Optional

F = "torch.nn.functional."

# qualified name -> 0-based position of the `training` parameter (default True).
DROPOUT_TRAINING_DEFAULT_TRUE = {
    F + "dropout": 2,
    F + "dropout1d": 2,
    F + "dropout2d": 2,
    F + "dropout3d": 2,
}

# qualified name -> 0-based position of the `training` parameter (default False).
TRAINING_DEFAULT_FALSE = {
    F + "alpha_dropout": 2,
    F + "feature_alpha_dropout": 2,
    F + "rrelu": 3,
    "torch.rrelu": 3,
}

# qualified name -> 0-based position of `dropout_p`.
_FLASH = {
    "flash_attn_func": 3,
    "flash_attn_qkvpacked_func": 1,
    "flash_attn_kvpacked_func": 2,
    "flash_attn_varlen_func": 7,
    "flash_attn_varlen_qkvpacked_func": 3,
    "flash_attn_varlen_kvpacked_func": 6,
}
ATTENTION_DROPOUT_P = {
    F + "scaled_dot_product_attention": 4,
    "torch._C._nn.scaled_dot_product_attention": 4,
    **{f"flash_attn.{name}": pos for name, pos in _FLASH.items()},
    **{f"flash_attn.flash_attn_interface.{name}": pos for name, pos in _FLASH.items()},
}

# multi_head_attention_forward(query, key, value, embed_dim_to_check, num_heads, in_proj_weight,
#   in_proj_bias, bias_k, bias_v, add_zero_attn, dropout_p, out_proj_weight, out_proj_bias,
#   training=True, ...)
MHA_FORWARD = F + "multi_head_attention_forward"
MHA_DROPOUT_P_POS = 10
MHA_TRAINING_POS = 13

# Training-like parameter names whose value is True in *eval* mode.
INVERTED_MODE_NAMES = frozenset({"deterministic", "is_eval", "eval_mode", "inference"})


def training_flag(ctx) -> Optional[str]:
    """The expression that says "training" at the current node: `self.training` in a method of an
    nn.Module (when its first parameter is `self`, spelled as it is), else the enclosing function's
    training-like parameter (`not deterministic` for an inverted one); None when there is none."""
    from modelint.analysis.structure import first_param, is_decorated_with

    if ctx.in_module_method():
        method = ctx.enclosing_method()
        if method is not None and not is_decorated_with(method, "staticmethod", "classmethod"):
            self_name = first_param(method)
            if self_name:
                return f"{self_name}.training"
    params = sorted(ctx.mode_params())
    plain = [p for p in params if p not in INVERTED_MODE_NAMES]
    if plain:
        return plain[0]
    if params:
        return f"not {params[0]}"
    return None


def pass_training(ctx, call, flag: Optional[str]):
    """Safe fix: `call` with `training=<flag>` added (None without a flag or when the call cannot
    be rendered in place)."""
    from modelint.fixes import Replace, call_with_keyword, fix

    text = flag and call_with_keyword(ctx, call, "training", flag)
    return fix(f"Pass `training={flag}`", Replace(call, text)) if text else None


def replace_training(value, flag: Optional[str], why: str):
    """Unsafe fix: a literal `training=True` replaced by `<flag>`; `why` says why it is unsafe."""
    from modelint.fixes import Replace, fix

    return fix(f"Pass `training={flag}` (unsafe: {why})", Replace(value, flag), safe=False) if flag else None

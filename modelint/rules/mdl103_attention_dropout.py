from __future__ import annotations

from typing import Optional

import libcst as cst

from modelint.analysis.alwayson import ModeTies
from modelint.analysis.calls import get_arg, has_star_args, is_literal_bool, is_literal_zero
from modelint.analysis.mode import loads
from modelint.fixes import Replace, code_in_place, fix
from modelint.rules.training_fixes import pass_training, replace_training
from modelint.rules.base import Rule


class AttentionDropoutIgnoresMode(Rule):
    code = "MDL103"
    name = "attention-dropout-ignores-mode"
    level = "error"
    summary = "Attention dropout (`scaled_dot_product_attention(dropout_p=...)`, flash-attn) stays active in eval mode."
    what = (
        "Reports `F.scaled_dot_product_attention` and flash-attn's `flash_attn_*func` calls whose "
        "`dropout_p` is not a literal 0 and does not depend on the training mode, and "
        "`F.multi_head_attention_forward` called with a non-zero `dropout_p` but without `training=`. "
        "A value depends on the mode when it reads `self.training` (or a `training`-like name), or is "
        "a local or `self.` attribute assigned from such an expression or under a mode check. A "
        "`dropout_p` that is just a parameter of the enclosing function is the caller's decision and "
        "is not reported.\n\n"
        "A literal `training=True` given to `F.multi_head_attention_forward` is judged as MDL101 judges "
        "`F.dropout(..., training=True)`: reported when the same module class (or top-level function) elsewhere "
        "ties its functional dropout to the mode (a mode-derived `training=`, a mode check around the call, a "
        "mode-dependent probability), else taken for stated always-on intent and left out unless "
        "`report-explicit-always-on = true`. Not caught therefore by default: an attention class whose only "
        "mode-taking call says `training=True` by mistake. A literal non-zero `dropout_p` of "
        "`scaled_dot_product_attention` / flash-attn is still reported: those kernels have no mode argument, "
        "so a literal probability states nothing about eval."
    )
    why = (
        "These kernels take a dropout probability, not a module, so `model.eval()` cannot reach them: "
        "`dropout_p=self.attn_dropout` keeps dropping attention weights at inference, making "
        "evaluation noisy and generation non-deterministic."
    )
    example = (
        "class Attention(nn.Module):\n"
        "    def forward(self, q, k, v):\n"
        "        return F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout_p)\n"
    )
    use_instead = (
        "class Attention(nn.Module):\n"
        "    def forward(self, q, k, v):\n"
        "        p = self.dropout_p if self.training else 0.0\n"
        "        return F.scaled_dot_product_attention(q, k, v, dropout_p=p)\n"
    )
    triggers = ("scaled_dot_product_attention", "flash_attn", "multi_head_attention_forward")
    fix_safety = (
        "Safe: `dropout_p=(p if self.training else 0.0)` (or the function's training flag), and "
        "`training=self.training` for `multi_head_attention_forward`, which only changes eval mode, where "
        "attention dropout is always a bug. Unsafe: replacing a literal `training=True` of "
        "`multi_head_attention_forward`, which may be deliberate."
    )
    fixable = True
    options_schema = {"report-explicit-always-on": False}
    option_docs = {
        "report-explicit-always-on": "Also report `multi_head_attention_forward(..., training=True)` in a class or "
        "function that nowhere ties its functional dropout to the mode (left out by default: always-on attention "
        "dropout stated on purpose)."
    }

    VALID = (
        """
import torch.nn.functional as F
from torch import nn

class Attention(nn.Module):
    def __init__(self, p):
        super().__init__()
        self.p = p
        self.attn_drop = nn.Dropout(p)

    def forward(self, q, k, v, mask=None):
        a = F.scaled_dot_product_attention(q, k, v, mask, self.p if self.training else 0.0)
        b = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_drop.p if self.training else 0.)
        c = F.scaled_dot_product_attention(q, k, v, dropout_p=0.0)
        d = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        p = self.p
        if not self.training:
            p = 0.0
        e = F.scaled_dot_product_attention(q, k, v, dropout_p=p)
        return a + b + c + d + e
""",
        """
import torch.nn.functional as F
from torch import nn

class Attention(nn.Module):
    def __init__(self, p):
        super().__init__()
        self.p = p

    def train(self, mode=True):
        super().train(mode)
        self.active_p = self.p if mode else 0.0
        return self

    def forward(self, q, k, v, dropout_p=0.0):
        x = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)  # the caller decides
        return F.scaled_dot_product_attention(x, k, v, dropout_p=self.active_p)

def attention(q, k, v, p):  # a plain function without a training flag: not reported
    return F.scaled_dot_product_attention(q, k, v, dropout_p=p)
""",
        """
from torch.nn import functional as F
from torch import nn

class MHA(nn.Module):
    def forward(self, q, k, v):
        return F.multi_head_attention_forward(
            q, k, v, self.e, self.h, self.w, self.b, None, None, False, self.p,
            self.ow, self.ob, training=self.training)[0]
""",
        # a literal `training=True` where nothing else in the class ties dropout to the mode: stated intent
        # (reported with `report-explicit-always-on = true`)
        """
import torch.nn.functional as F
from torch import nn

class StochasticMHA(nn.Module):
    def forward(self, q, k, v):
        return F.multi_head_attention_forward(
            q, k, v, self.e, self.h, self.w, self.b, None, None, False, self.p,
            self.ow, self.ob, training=True)[0]
""",
    )
    INVALID = (
        """
import torch.nn.functional as F
from torch import nn

class Attention(nn.Module):
    def forward(self, q, k, v):
        return F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout)  # expect: MDL103
""",
        """
import torch
import torch.nn as nn
from flash_attn import flash_attn_func, flash_attn_qkvpacked_func

class FlashBlock(nn.Module):
    def forward(self, q, k, v, qkv):
        a = flash_attn_func(q, k, v, self.attn_drop.p, causal=True)  # expect: MDL103
        b = flash_attn_qkvpacked_func(qkv, 0.1)  # expect: MDL103
        c = torch.nn.functional.scaled_dot_product_attention(  # expect: MDL103
            q, k, v, None, 0.1)
        return a, b, c
""",
        """
import torch.nn.functional as F
from torch import nn

class MHA(nn.Module):
    def forward(self, q, k, v):
        return F.multi_head_attention_forward(  # expect: MDL103
            q, k, v, self.e, self.h, self.w, self.b, None, None, False, self.p, self.ow, self.ob)[0]
""",
        # the literal beside a call of the same class that passes the mode: forgotten once
        """
import torch.nn.functional as F
from torch import nn

class CrossMHA(nn.Module):
    def forward(self, q, k, v):
        q = F.dropout(q, self.p, training=self.training)
        return F.multi_head_attention_forward(  # expect: MDL103
            q, k, v, self.e, self.h, self.w, self.b, None, None, False, self.p,
            self.ow, self.ob, training=True)[0]
""",
    )

    FIXES = (
        (
            """
import torch.nn.functional as F
from torch import nn

class Attention(nn.Module):
    def forward(self, q, k, v):
        a = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout)
        return F.multi_head_attention_forward(
            q, k, v, self.e, self.h, self.w, self.b, None, None, False, self.p, self.ow, self.ob)[0]
""",
            """
import torch.nn.functional as F
from torch import nn

class Attention(nn.Module):
    def forward(self, q, k, v):
        a = F.scaled_dot_product_attention(q, k, v, dropout_p=(self.dropout if self.training else 0.0))
        return F.multi_head_attention_forward(
            q, k, v, self.e, self.h, self.w, self.b, None, None, False, self.p, self.ow, self.ob, training=self.training)[0]
""",
        ),
    )

    def visit_Call(self, node: cst.Call) -> None:
        fw = self.ctx.framework
        qualname = self.ctx.resolve(node.func)
        if qualname != fw.mha_call and qualname not in fw.attention_dropout_calls:
            return
        if has_star_args(node):
            return
        mode_params = self.ctx.mode_params()
        in_module = self.ctx.in_module_method()
        if not in_module and not mode_params:
            return
        shown = self.ctx.module.code_for_node(node.func)
        known = self.ctx.training_flag()
        flag = known or self.ctx.self_mode()
        if qualname == fw.mha_call:
            self._check_mha(node, shown, known, flag)
            return
        dropout = get_arg(node, fw.attention_dropout_p_keyword, fw.attention_dropout_calls[qualname])
        reason = self._active_in_eval(dropout.value if dropout else None)
        if reason:
            self.report(
                node,
                f"`{shown}()` gets `dropout_p={self.ctx.module.code_for_node(dropout.value)}`, which does not "
                f"depend on the training mode: attention weights are still dropped after `.eval()`, so "
                f"eval outputs are random; use `dropout_p=(<p> if {flag} else 0.0)`",
                fix=self._mode_aware(dropout.value, known),
            )

    def __init__(self, ctx, options=None):
        super().__init__(ctx, options)
        self._mode_ties = ModeTies(ctx)  # does the class around a literal `training=True` pass the mode elsewhere?

    def _mode_aware(self, value: cst.BaseExpression, flag: Optional[str]):
        text = flag and code_in_place(self.ctx, value, value)
        if not text:
            return None
        return fix(f"Use `dropout_p=(... if {flag} else 0.0)`", Replace(value, f"({text} if {flag} else 0.0)"))

    def _active_in_eval(self, dropout: Optional[cst.BaseExpression]) -> bool:
        if dropout is None or is_literal_zero(dropout):
            return False
        if self.ctx.is_guarded() or self.ctx.depends_on_mode(dropout):
            return False
        facts = self.ctx.function_facts()
        names = [n for n in loads(dropout)]
        if facts and names and all(isinstance(n, cst.Name) and n.value in facts.params - {"self"} for n in names):
            return False  # a parameter passed through: the caller decides
        return True

    def _check_mha(self, node: cst.Call, shown: str, known: Optional[str], flag: str) -> None:
        fw = self.ctx.framework
        training = get_arg(node, fw.mode_keyword, fw.mha_training_position)
        if training is not None and not is_literal_bool(training.value, True):
            return
        if not self._active_in_eval(getattr(get_arg(node, fw.attention_dropout_p_keyword, fw.mha_dropout_p_position), "value", None)):
            return
        if training is not None and not self.options["report-explicit-always-on"] and not self._mode_ties.here():
            return  # always-on attention dropout stated where nothing else follows the mode: intent
        if training is None:
            repair = pass_training(self.ctx, node, known)
        else:
            repair = replace_training(self.ctx, training.value, known, "the literal `True` may be deliberate")
        self.report(
            node,
            f"`{shown}()` without `training={flag}` applies its attention dropout in eval mode too "
            f"(training defaults to True), so eval outputs are random; pass `training={flag}`",
            fix=repair,
        )

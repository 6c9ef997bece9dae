from __future__ import annotations

import libcst as cst

from modelint.analysis.calls import get_arg, has_star_args, is_literal_zero
from modelint.rules.base import Rule


class FunctionalDropoutNeverActive(Rule):
    code = "MDL102"
    name = "functional-dropout-never-active"
    level = "warning"
    summary = "`F.alpha_dropout`/`F.feature_alpha_dropout`/`F.rrelu` without `training=` never run their training behaviour."
    what = (
        "Reports calls to `F.alpha_dropout`, `F.feature_alpha_dropout`, `F.rrelu` and `torch.rrelu` "
        "inside an `nn.Module` (or a function with a `training`-like parameter) that do not pass "
        "`training=`."
    )
    why = (
        "These functions default to `training=False`, the opposite of `F.dropout`. Called without the "
        "flag, alpha dropout never drops anything and RReLU never samples its slope, in training too: "
        "the regularizer you added is silently off and the model overfits as if it were not there. "
        "Being inside `if self.training:` does not help, because the call itself still says "
        "`training=False`. An explicit `training=False` is taken as deliberate and not reported, and so is an explicit "
        "literal `training=True` (always on, in eval too): unlike MDL101's `F.dropout(..., training=True)`, which is "
        "reported beside calls of the same class that pass the mode (issue 15), an always-on alpha dropout or "
        "RReLU is not checked against the rest of its class; not caught therefore: `F.alpha_dropout(x, p, True)` "
        "written where the author meant the mode."
    )
    example = (
        "class SNNBlock(nn.Module):\n"
        "    def forward(self, x):\n"
        "        return F.alpha_dropout(F.selu(self.fc(x)), p=0.05)\n"
    )
    use_instead = (
        "class SNNBlock(nn.Module):\n"
        "    def forward(self, x):\n"
        "        return F.alpha_dropout(F.selu(self.fc(x)), p=0.05, training=self.training)\n"
    )
    triggers = ("alpha_dropout", "rrelu")
    fix_safety = (
        "No fix: passing `training=self.training` switches on a regulariser that the model was trained "
        "without, which changes training results; the author must decide."
    )

    VALID = (
        """
import torch.nn.functional as F
from torch import nn

class SNN(nn.Module):
    def forward(self, x):
        x = F.alpha_dropout(x, 0.1, self.training)
        x = F.feature_alpha_dropout(x, p=0.1, training=self.training)
        x = F.rrelu(x, 0.1, 0.3, self.training)
        x = F.alpha_dropout(x, 0.0)
        return F.rrelu(x, training=False)  # explicit: deliberate
""",
    )
    INVALID = (
        """
import torch
import torch.nn.functional as F
from torch import nn

class SNN(nn.Module):
    def forward(self, x):
        if self.training:
            x = F.alpha_dropout(x, 0.1)  # expect: MDL102
        x = torch.rrelu(x)  # expect: MDL102
        return F.feature_alpha_dropout(x, p=0.2)  # expect: MDL102
""",
    )

    def visit_Call(self, node: cst.Call) -> None:
        fw = self.ctx.framework
        qualname = self.ctx.resolve(node.func)
        if qualname not in fw.training_default_false_calls or has_star_args(node):
            return
        mode_params = self.ctx.mode_params()
        in_module = self.ctx.in_module_method()
        if not in_module and not mode_params:
            return
        if get_arg(node, fw.mode_keyword, fw.training_default_false_calls[qualname]) is not None:
            return
        p = get_arg(node, fw.dropout_p_keyword, fw.dropout_p_position.get(qualname, 1))
        if qualname.endswith("rrelu"):
            effect = "uses the fixed mean slope and never samples a random slope, in training too"
        else:
            if p is not None and is_literal_zero(p.value):
                return
            effect = "drops nothing, in training too: the regularizer is silently off"
        flag = self.ctx.self_mode() if in_module else sorted(mode_params)[0]
        shown = self.ctx.module.code_for_node(node.func)
        self.report(
            node,
            f"`{shown}()` without `training=` defaults to training=False: it {effect}; pass `training={flag}`",
        )

from __future__ import annotations

import libcst as cst

from modelint.analysis.alwayson import ModeTies
from modelint.analysis.calls import get_arg, has_star_args, is_literal_bool, is_literal_zero
from modelint.rules.training_fixes import pass_training, replace_training
from modelint.rules.base import Rule, measured_set17, measured_set18, measured_set19, measured_set20


class FunctionalDropoutIgnoresMode(Rule):
    code = "MDL101"
    name = "functional-dropout-ignores-mode"
    level = "error"
    summary = "Functional dropout without `training=` stays active after `model.eval()`."
    what = (
        "Reports calls to `F.dropout`, `F.dropout1d`, `F.dropout2d` and `F.dropout3d` inside an "
        "`nn.Module` that do not pass `training=` (by keyword or as the third positional argument), "
        "and calls that pass a literal `training=True`; a plain class that a module class of the project also "
        "derives from (a mixin: `class Ranker(nn.Module, ScoringMixin)`) counts as a module class, since its "
        "methods run with `self` a module. Outside module classes, it reports such a call "
        "inside a function that has a `training`-like parameter the call ignores.\n\n"
        "A literal `training=True` (by keyword or positionally) is reported only when the same module class (or, "
        "outside classes, the same top-level function) elsewhere ties its functional dropout to the mode: another "
        "`F.dropout*` / alpha-dropout / `multi_head_attention_forward` call passes a mode-derived `training=` "
        "(`training=self.training`), sits under a mode check, or takes a probability that depends on the mode. "
        "Then the author knows the call takes the mode and forgot it once. Where nothing in the class or "
        "function ties dropout to the mode, the literal is stated intent (issue 15: Tacotron-style prenets whose "
        "dropout stays on at inference, Monte Carlo dropout helpers were all deliberate) and is not reported by "
        "default; `report-explicit-always-on = true` reports it again. Not caught therefore by default: a class "
        "whose only functional dropout says `training=True` by mistake (its `nn.Dropout` children, which follow "
        "the mode on their own, do not count as tying). A call without `training=` is reported whatever the "
        "class does elsewhere."
    )
    what += measured_set17('1 finding, false (a dropout probability that `forward` takes as an argument, which every evaluation call passes as 0)')
    what += measured_set18('no finding')
    what += measured_set19("5 findings: 4 real (`F.dropout` without `training=` on a conformer block's residual paths, which its dev-loss evaluation runs in eval; one of them in a front end whose dropout defaults to 0), 1 false (a method nothing calls)")
    what += measured_set20('no finding')
    why = (
        "Unlike `nn.Dropout`, the functional form does not know the module's mode: `training` defaults "
        "to `True`. After `model.eval()` the call still zeroes a fraction `p` of the activations and "
        "rescales the rest, so validation scores are noisy and too low, and predictions differ from "
        "run to run. Calls guarded by a mode check (`if self.training:`), calls whose `p` depends on "
        "the mode, and calls with any non-literal `training=` expression are not reported. A literal "
        "`training=True` is sometimes intended (Monte Carlo dropout, Tacotron-style prenets): it is reported "
        "only beside calls of the same class that do pass the mode (see above)."
    )
    example = (
        "class Block(nn.Module):\n"
        "    def forward(self, x):\n"
        "        return F.dropout(self.fc(x), p=0.1)\n"
    )
    use_instead = (
        "class Block(nn.Module):\n"
        "    def forward(self, x):\n"
        "        return F.dropout(self.fc(x), p=0.1, training=self.training)\n"
    )
    fixable = True
    options_schema = {"report-always-on": True, "report-explicit-always-on": False}
    option_docs = {
        "report-always-on": "Report an explicit literal `training=True` outside a mode check (always-on "
        "dropout) in a class or function that elsewhere passes the mode to its dropout; set to false to "
        "report no literal `training=True` at all.",
        "report-explicit-always-on": "Also report a literal `training=True` in a class or function that nowhere "
        "ties its functional dropout to the mode (left out by default: always-on dropout stated on purpose, "
        "such as a Tacotron prenet or Monte Carlo dropout). Needs `report-always-on`.",
    }
    fix_safety = (
        "Safe: adds `training=self.training` (in a method of a module class; else the function's training flag, "
        "`training` or `not deterministic`), which makes the call do what `nn.Dropout` does; no fix without a "
        "flag to pass. Unsafe: replacing a literal `training=True` by the flag, because always-on dropout may be "
        "deliberate (Monte Carlo dropout)."
    )
    triggers = ("dropout",)

    VALID = (
        # the near miss of the mixin case in INVALID: a plain class no module class derives from
        """
import torch.nn.functional as F

class Augmenter(object):
    def __init__(self, p):
        self.p = p

    def noisy(self, h):
        return F.dropout(h, self.p)
""",
        """
import torch.nn.functional as F
from torch import nn

class Block(nn.Module):
    def forward(self, x):
        x = F.dropout(x, 0.1, self.training)
        x = F.dropout(x, p=0.1, training=self.training and self.use_dropout)
        if self.training:
            x = F.dropout(x, 0.2)
        return x
""",
        """
import torch.nn.functional as F
from torch import nn

class Block(nn.Module):
    def forward(self, x):
        if not self.training:
            return x
        return F.dropout2d(x, 0.1)

def helper(x):  # not a module and no training parameter: the caller's business
    return F.dropout(x, 0.1)
""",
        """
from torch.nn.functional import dropout
import torch.nn as nn

class Block(nn.Module):
    def forward(self, x, **kw):
        p = self.p if self.training else 0.0
        x = dropout(x, p)                 # p is 0 in eval mode
        x = dropout(x, p=0.0)             # a no-op
        return dropout(x, 0.1, **kw)      # training may be in **kw
""",
        """
import torch.nn.functional as F

def mlp(x, w, training=False):
    return F.dropout(x @ w, 0.1, training=training)
""",
        # always-on dropout stated on purpose: nothing else in the class (or function) ties dropout to the
        # mode (an `nn.Dropout` child follows the mode by itself and does not count); reported with
        # `report-explicit-always-on = true`
        """
import torch.nn.functional as F
from torch import nn

class Prenet(nn.Module):
    def __init__(self, sizes, p=0.5):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes, sizes[1:]))
        self.post = nn.Dropout(0.1)
        self.p = p

    def forward(self, x):
        for layer in self.layers:
            x = F.dropout(F.relu(layer(x)), p=self.p, training=True)   # on at inference too
        return self.post(x)

class Sampler(nn.Module):
    def forward(self, x):
        return F.dropout(x, self.p if self.training else 0.0, True)   # off in eval through p

def mc_predict(net, x, training, n=20):
    return sum(net(F.dropout(x, 0.2, True)) for _ in range(n)) / n   # Monte Carlo dropout
""",
    )
    INVALID = (
        # a plain class whose methods a module class mixes in (`self` is then the module)
        """
import torch.nn.functional as F
from torch import nn

class ScoringMixin(object):
    def score(self, h):
        return self.out(F.dropout(F.relu(self.hidden(h)), self.p))  # expect: MDL101

class Ranker(nn.Module, ScoringMixin):
    def __init__(self, p):
        super().__init__()
        self.hidden, self.out, self.p = nn.Linear(8, 8), nn.Linear(8, 1), p

    def forward(self, h):
        return self.score(h)
""",
        """
import torch.nn.functional as F
from torch import nn

class Block(nn.Module):
    def forward(self, x):
        x = F.dropout(x, 0.1)  # expect: MDL101
        return F.dropout(x, p=0.1, training=self.training)
""",
        # a literal `training=True` where the same class passes the mode elsewhere: forgotten once
        """
import torch.nn.functional as F
from torch import nn

class Decoder(nn.Module):
    def step(self, h):
        return F.dropout(h, self.p, training=self.training)

    def forward(self, h, first):
        if first:
            h = F.dropout(h, self.p, True)  # expect: MDL101
        return self.step(h)

class Gated(nn.Module):
    def forward(self, x):
        if self.training:
            x = F.dropout2d(x, 0.1)
        return F.dropout(x, p=0.1, training=True)  # expect: MDL101

def mlp(x, w, training):
    x = F.dropout(x, 0.1, training=training)
    return F.dropout(x @ w, 0.1, training=True)  # expect: MDL101
""",
        """
import torch
from torch.nn import Module

class Enc(Module):
    def forward(self, x):
        def inner(y):
            return torch.nn.functional.dropout3d(y, 0.5)  # expect: MDL101
        return inner(x)
""",
        """
import torch.nn.functional as F

def mlp(x, w, training):
    return F.dropout(x @ w, 0.1)  # expect: MDL101
""",
    )

    FIXES = (
        (
            """
import torch.nn.functional as F
from torch import nn

class Block(nn.Module):
    def forward(self, x):
        x = F.dropout(F.dropout(x, 0.1), 0.1)
        x = F.dropout(
            x,
            p=0.1,
        )
        return F.dropout(x, training=True)

def mlp(x, w, deterministic):
    return F.dropout(x @ w, 0.1)
""",
            """
import torch.nn.functional as F
from torch import nn

class Block(nn.Module):
    def forward(self, x):
        x = F.dropout(F.dropout(x, 0.1, training=self.training), 0.1, training=self.training)
        x = F.dropout(
            x,
            p=0.1,
            training=self.training,
        )
        return F.dropout(x, training=True)

def mlp(x, w, deterministic):
    return F.dropout(x @ w, 0.1, training=not deterministic)
""",
        ),
    )
    UNSAFE_FIXES = (
        (
            """
import torch.nn.functional as F
from torch import nn

class Block(nn.Module):
    def forward(self, x):
        x = F.dropout(x, training=self.training)
        return F.dropout(x, training=True)
""",
            """
import torch.nn.functional as F
from torch import nn

class Block(nn.Module):
    def forward(self, x):
        x = F.dropout(x, training=self.training)
        return F.dropout(x, training=self.training)
""",
        ),
    )

    def __init__(self, ctx, options=None):
        super().__init__(ctx, options)
        self._mode_ties = ModeTies(ctx)  # does the class around a literal `training=True` pass the mode elsewhere?

    def visit_Call(self, node: cst.Call) -> None:
        fw = self.ctx.framework
        qualname = self.ctx.resolve(node.func)
        if qualname not in fw.dropout_calls or has_star_args(node):
            return
        mode_params = self.ctx.mode_params()
        if not (self.ctx.in_module_method() or self.ctx.in_module_mixin_method()) and not mode_params:
            return
        shown = self.ctx.module.code_for_node(node.func)
        known = self.ctx.training_flag()
        flag = known or self.ctx.self_mode()
        training = get_arg(node, fw.mode_keyword, fw.dropout_calls[qualname])
        if training is not None and not (self.options["report-always-on"] and is_literal_bool(training.value, True)):
            return  # any other `training=` expression is the author's decision
        if self.ctx.is_guarded(node):
            return
        p = get_arg(node, fw.dropout_p_keyword, fw.dropout_p_position[qualname])
        if p is not None and (is_literal_zero(p.value) or self.ctx.depends_on_mode(p.value)):
            return  # a no-op, or off in eval through its probability
        if training is not None:
            tied = self._mode_ties.here()
            if tied or self.options["report-explicit-always-on"]:
                beside = ", while other dropout here follows the mode" if tied else ""
                self.report(
                    node,
                    f"`{shown}(..., training=True)` keeps dropping activations after `.eval()`{beside}; pass "
                    f"`training={flag}`, or if this one is meant to stay on (MC dropout, an always-on prenet) "
                    f"say so with `# modelint: ignore[MDL101]`",
                    fix=replace_training(self.ctx, training.value, known, "turns off dropout that may be deliberately "
                                                                        "always on, e.g. Monte Carlo dropout"),
                )
            return
        self.report(
            node,
            f"`{shown}()` without `training=` defaults to training=True: it keeps zeroing and rescaling "
            f"activations in eval mode, so eval outputs are random; pass `training={flag}`",
            fix=pass_training(self.ctx, node, known),
        )

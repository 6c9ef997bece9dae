from __future__ import annotations

import re
from typing import Dict, FrozenSet, Optional, Tuple

import libcst as cst

from modelint.analysis.calls import get_arg
from modelint.analysis.gradmode import (
    feeds_objective,
    grad_locals,
    graph_for_training_only,
    names_checkpoint,
    parameter_flags_only,
    reads_grad,
)
from modelint.analysis.guards import FUNCTION_TYPES, jumps_out
from modelint.analysis.mode import reads_mode
from modelint.analysis.sampling import sampling_op
from modelint.analysis.walk import descendants, iter_children
from modelint.rules.base import Rule, measured_set6, remeasured_2026_12_02, remeasured_2026_12_03

# Attribute names of dropout-like submodules (`self.attn_drop(x)`): their call is mode-dependent work.
_DROP_ATTR = re.compile(r"dropout|drop_path|droppath|drop_block|dropblock|attn_drop|proj_drop|^drop$", re.I)


class GradModeAsTrainingFlag(Rule):
    code = "MDL105"
    name = "grad-mode-as-training-flag"
    level = "warning"
    default = False  # issue 15's measuring set: see the end of `what`
    summary = "Grad mode (`torch.is_grad_enabled()`, `x.requires_grad`) used as the training switch, or the reverse."
    what = (
        "Reports `torch.is_grad_enabled()`, `torch.is_inference_mode_enabled()` or `<tensor>.requires_grad` "
        "(directly or through a local assigned from them) used as a training switch: passed as `training=` "
        "(by keyword, or positionally to `F.dropout*`/`F.batch_norm`/`F.instance_norm`), inside a dropout "
        "probability (`dropout_p=`, or `p=` of a dropout call), or as the test of an `if`/conditional "
        "expression (or of an early `return`) that decides whether dropout, sampling or batch-norm work "
        "runs. Also reports the reverse inside module methods: `self.training` deciding `create_graph=`, "
        "`torch.set_grad_enabled(...)` or `requires_grad_(...)` (as the argument or as a guard around it). "
        "Not reported: a test that reads both (`self.training and torch.is_grad_enabled()` only narrows the "
        "mode); gradient-checkpointing switches (`self.gradient_checkpointing and torch.is_grad_enabled()`), "
        "where grad mode is exactly the right question; a grad-mode test whose arms apply the same "
        "mode-dependent work (the same dropout / sampling / batch-norm calls with the same arguments but "
        "the input: a faster or lower-memory path, not a mode switch); and a `requires_grad_()` under "
        "`if self.training:` whose arm assigns a loss term (`loss`, `*_loss`, `penalty`, `reg`, `kl`): "
        "autograd work for a training-only term of the objective, which evaluation skips; and "
        "`p.requires_grad` of a loop variable over `.parameters()` / `.named_parameters()`, or of a layer's "
        "parameter attribute (`self.proj.weight.requires_grad`, `layer.bias.requires_grad`: the framework "
        "profile's parameter names), or of a loop variable over an iterable named for parameters (a list of "
        "`named_parameters` methods, an optimizer's `group[\"params\"]`: any name, attribute or key with "
        "`param` in it), which says whether that parameter is trainable, not what the grad mode is.\n\n"
        "Also not reported (issue 15): the mode deciding whether autograd tracks a value the function builds "
        "itself - `requires_grad=self.training` given to a tensor construction (`torch.zeros((), "
        "requires_grad=self.training)`, `torch.tensor(0.0, device=d, requires_grad=self.training)`), or "
        "`requires_grad_(self.training)` on a fresh tensor (a factory, a `new_*` method such as `x.new_zeros(())`, "
        "a cast or move of one such as `.to(device)`, or a local assigned only from those). Such a leaf is a "
        "training-only term (a constant-zero auxiliary loss made backward-able in training); nobody's gradients "
        "flow through it in evaluation. Not caught therefore: a fresh leaf whose gradient an evaluation reads "
        "(rare; `x.detach().requires_grad_(self.training)` of an input is not fresh and stays reported)."
    )
    what += (
        "\n\nNor (measuring set 3) `create_graph=` decided by the mode when it only adds the graph a training "
        "loss on the derivative needs: the mode ORed with the module's own request (`create_graph=need_graph or "
        "self.training`: the other operand builds the graph whenever a later derivative needs it), or a "
        "derivative the function returns or keeps without differentiating it again (`forces = -grad(energy, "
        "pos, create_graph=self.training)`: evaluation still computes the forces, only the second-order graph "
        "for backpropagating a force loss is left out). A call differentiates when it is the framework's "
        "derivative call or is given `create_graph=` (a helper around it). Still reported: a derivative that "
        "the same function differentiates again (`du = grad(u, x, create_graph=self.training); d2u = "
        "grad(du.sum(), x)`), which breaks in evaluation."
    )
    what += (
        " "
        'Off by default: on the measuring set (26 code bases never used to develop it: 17 repositories '
        'with training scripts and 9 model packages; `bench/precision.py`, verdicts with reasons in '
        '`bench/verdicts/measuring.tsv`) it reached 33% real-or-deliberate (3 findings: 1 deliberate, 2 '
        'false: training-only gradient features keyed on `self.training`), below the 95% a default rule '
        'needs. Select it with `--select` or `extend-select`.'
    )
    what += remeasured_2026_12_02(
        set3=('10 findings, all false (0%: `create_graph=self.training` where forces are '
              'derivatives of a predicted energy and only the training loss needs the second-order '
              "graph; a parameter's `requires_grad` read to choose the trainable parameters)"),
        set2=('1 finding, false'),
    )
    what += remeasured_2026_12_03(set4="no finding", set5="2 findings, both deliberate")
    what += measured_set6("no finding")
    why = (
        "In PyTorch, grad mode and training mode are independent. Evaluation often runs with gradients "
        "(saliency maps, adversarial attacks, validation losses with `create_graph`), and training often runs "
        "without them (batch-norm recalibration, RL rollouts, teacher forward passes under `no_grad`). A "
        "layer that drops activations when gradients are enabled keeps doing so in such an evaluation, and "
        "one that decides autograd from `self.training` silently breaks gradient-based evaluation. Use "
        "`self.training` for dropout/sampling/batch statistics, and let the caller's `no_grad` decide "
        "autograd."
    )
    example = (
        "class Block(nn.Module):\n"
        "    def forward(self, x):\n"
        "        return F.dropout(x, p=0.1, training=torch.is_grad_enabled())\n"
    )
    use_instead = (
        "class Block(nn.Module):\n"
        "    def forward(self, x):\n"
        "        return F.dropout(x, p=0.1, training=self.training)\n"
    )
    fix_safety = (
        "No fix: replacing the grad-mode query by `self.training` is right for dropout and batch norm but "
        "changes what runs under `no_grad` training passes and under evaluations with gradients; the author "
        "must check both."
    )
    triggers = ("is_grad_enabled", "is_inference_mode_enabled", "requires_grad", "create_graph", "set_grad_enabled")

    VALID = (
        # gradient checkpointing and in-place-safety checks are legitimate grad-mode questions
        """
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

class Encoder(nn.Module):
    def forward(self, x):
        for layer in self.layers:
            if self.gradient_checkpointing and torch.is_grad_enabled():
                x = checkpoint(layer, x, use_reentrant=False)
            else:
                x = layer(x)
        if x.requires_grad:
            x = x + self.bias          # out of place: autograd needs the input
        else:
            x += self.bias
        return F.dropout(x, 0.1, self.training)

class Head(nn.Module):
    def forward(self, x):
        use_drop = self.training and torch.is_grad_enabled()   # narrows the mode, does not replace it
        x = F.dropout(x, 0.1, training=use_drop)
        if self.training and torch.is_grad_enabled():
            x = self.drop_path(x)
        return x
""",
        # the caller's grad mode decides autograd; the module's mode decides dropout
        """
import torch
import torch.nn as nn

class Critic(nn.Module):
    def forward(self, x, create_graph=False):
        y = self.net(x)
        g, = torch.autograd.grad(y.sum(), x, create_graph=create_graph)
        return y, g

class Decoder(nn.Module):
    def forward(self, memory):
        queries = torch.zeros_like(self.query_embed.weight)
        if self.training:
            queries.requires_grad_(True)      # a fresh leaf for reentrant checkpointing: harmless
        return self.layers(queries, memory)

class Router(nn.Module):                     # a constant-zero auxiliary loss, backward-able in training only
    def forward(self, x):
        aux = torch.zeros((), device=x.device, requires_grad=self.training)
        bias = torch.tensor(0.0, device=x.device, requires_grad=self.training)
        z = x.new_zeros(()).requires_grad_(self.training)
        w = torch.zeros(1).to(x.device).float()
        w.requires_grad_(self.training)
        return self.experts(x), aux + bias + z + w

class Potential(nn.Module):                  # forces are an output; only a force loss needs their graph
    def forward(self, pos):
        energy = self.net(pos).sum()
        dE, = torch.autograd.grad(energy, pos, create_graph=self.want_hessian or self.training)
        forces = -dE
        hess = self.second(forces, pos, create_graph=self.training) if self.want_hessian else None
        return {"energy": energy, "forces": forces, "hessian": hess}

def run_epoch(model, loader, train):
    model.train(train)
    with torch.set_grad_enabled(train):      # a loop's phase flag, not a module deciding autograd
        for x, y in loader:
            model(x)
""",
        # grad mode picks a code path; both paths apply the same dropout. The mode gates a loss term.
        """
import torch
import torch.nn as nn
import torch.nn.functional as F

class FusedResidual(nn.Module):
    def forward(self, x, y):
        if torch.is_grad_enabled():          # autograd needs the out-of-place add
            x = self.dropout(x) + y
        else:
            x = self.dropout(x)
            x += y
        if x.requires_grad:
            return F.dropout(x, self.p, self.training).contiguous()
        return F.dropout(x.contiguous(), self.p, self.training)

def perturb(model, scale):
    for name, p in model.named_parameters():
        if p.requires_grad:                  # trainable or frozen: a property of the parameter
            p.data.add_(torch.randn_like(p) * scale)

def shuffle_importance(groups, importance):
    for group in groups:
        for w in group["params"]:            # an optimizer's parameter group: trainable or frozen
            if w.requires_grad:
                importance[w] = importance[w].flatten()[torch.randperm(w.numel())].view_as(w)

class Smooth(nn.Module):
    def forward(self, pts):
        out = self.net(pts)
        if self.training:                    # a training-only penalty term
            pts.requires_grad_(True)
            g, = torch.autograd.grad(self.net(pts).sum(), pts, create_graph=True)
            self.eikonal_loss = (g.norm(dim=-1) - 1).pow(2).mean()
        return out

class Adapter(nn.Module):
    def forward(self, x):
        if self.proj.weight.requires_grad:   # fine-tuned or frozen: a property of the parameter
            x = F.dropout(x, 0.1, training=True)
        return self.proj(x)

def norm_grads(layer, acts, grads):
    out = {}
    if layer.bias is not None and layer.bias.requires_grad:
        out[layer.bias] = (F.instance_norm(acts) * grads).sum(0)
    return out
""",
    )
    INVALID = (
        """
import torch
import torch.nn as nn
import torch.nn.functional as F

class Block(nn.Module):
    def forward(self, x, q, k, v):
        x = F.dropout(x, 0.1, torch.is_grad_enabled())  # expect: MDL105
        x = F.dropout(x, p=0.1, training=x.requires_grad)  # expect: MDL105
        p = self.attn_p if torch.is_grad_enabled() else 0.0
        a = F.scaled_dot_product_attention(q, k, v, dropout_p=p)  # expect: MDL105
        if torch.is_grad_enabled():  # expect: MDL105
            x = self.dropout(x)
        return x + a
""",
        """
import torch
import torch.nn as nn
import torch.nn.functional as F

class Policy(nn.Module):
    def forward(self, logits):
        if not torch.is_grad_enabled():  # expect: MDL105
            return logits.argmax(-1)
        return torch.multinomial(logits.softmax(-1), 1)

class Norm(nn.Module):
    def forward(self, x):
        stats = x.requires_grad
        return F.batch_norm(x, self.rm, self.rv, training=stats)  # expect: MDL105
""",
        # the reverse: the module's mode deciding autograd
        """
import torch
import torch.nn as nn

class PINN(nn.Module):
    def forward(self, x):
        x.detach().requires_grad_(self.training)  # expect: MDL105
        x.to(x.device).requires_grad_(self.training)  # expect: MDL105
        x.requires_grad_(self.training)  # expect: MDL105
        with torch.set_grad_enabled(self.training):  # expect: MDL105
            u = self.net(x)
        du, = torch.autograd.grad(u.sum(), x, create_graph=self.training)  # expect: MDL105
        if self.training:
            self.scale.requires_grad_()  # expect: MDL105
        lap, = torch.autograd.grad(du.sum(), x)       # differentiated again: needs the graph in eval too
        return u, lap

class Curvature(nn.Module):
    def forward(self, pts):
        n = self.normal(pts, create_graph=self.training)  # expect: MDL105
        k = self.normal(n[..., 0].sum(), pts, create_graph=True)
        return k

""",
        # both arms have dropout, but with another mode; one arm only has it; no loss term is gated
        """
import torch
import torch.nn as nn
import torch.nn.functional as F

class Switch(nn.Module):
    def forward(self, x):
        if torch.is_grad_enabled():  # expect: MDL105
            x = F.dropout(x, self.p, training=True)
        else:
            x = F.dropout(x, self.p, training=False)
        if x.requires_grad:  # expect: MDL105
            x = self.drop_path(x)
        else:
            x = self.norm(x)
        return x

class Adapter(nn.Module):                # an attribute that is not a parameter: the tensor's grad tracking
    def forward(self, x):
        if self.proj.cached.requires_grad:  # expect: MDL105
            x = F.dropout(x, 0.1, training=True)
        return self.proj(x)

def shuffle_inputs(batches, importance):
    for group in batches:
        for w in group["inputs"]:            # not parameters: whether this tensor tracks gradients
            if w.requires_grad:  # expect: MDL105
                importance[w] = w.flatten()[torch.randperm(w.numel())].view_as(w)

def noisy_step(model, x):
    for p in model.parameters():
        if x.requires_grad:  # expect: MDL105
            x = x + torch.randn_like(x)
    return x

class Saliency(nn.Module):
    def forward(self, x):
        if self.training:
            x.requires_grad_(True)  # expect: MDL105
            self.saliency = torch.autograd.grad(self.net(x).sum(), x)[0]
        return self.net(x)
""",
    )

    def __init__(self, ctx, options=None):
        super().__init__(ctx, options)
        self._grad_locals: Dict[int, Dict[str, str]] = {}

    # --- per-function facts --------------------------------------------------------------------
    def _locals(self) -> Dict[str, str]:
        fn = self.ctx.enclosing_function()
        if fn is None:
            return {}
        key = id(fn)
        if key not in self._grad_locals:
            self._grad_locals[key] = grad_locals(self.ctx, self.ctx.function_facts(fn))
        return self._grad_locals[key]

    def _mode_locals(self) -> FrozenSet[str]:
        facts = self.ctx.function_facts()
        return facts.mode_locals if facts else frozenset()

    def _locals_read_by(self, expr: cst.CSTNode) -> Dict[str, str]:
        """`_locals()` when `expr` names an assigned local of its function, else `{}`: a grad local
        is always an assigned local, so the answer is the same, without the per-function fixpoint
        for the many tests (`if x is None:`) that read no assigned local."""
        facts = self.ctx.function_facts()
        if facts is None or not facts.assigns:
            return {}
        assigns = facts.assigns
        if any(isinstance(n, cst.Name) and n.value in assigns for n in descendants(expr)):
            return self._locals()
        return {}

    def _grad_flag(self, expr: cst.CSTNode) -> Optional[str]:
        """The grad query `expr` uses as a training flag (None when it also reads the mode)."""
        shown = reads_grad(self.ctx, expr, self._locals_read_by(expr))
        if shown and not reads_mode(expr, self._mode_locals()) and not parameter_flags_only(self.ctx, expr, self.ctx.ancestors):
            return shown
        return None

    # --- grad mode as the training flag ---------------------------------------------------------
    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        last = func.attr.value if isinstance(func, cst.Attribute) else func.value if isinstance(func, cst.Name) else None
        fw = self.ctx.framework
        flag_keywords = (fw.mode_keyword, fw.attention_dropout_p_keyword, fw.dropout_p_keyword, fw.create_graph_keyword)
        keywords = {a.keyword.value: a for a in node.args if a.keyword is not None and a.keyword.value in flag_keywords}
        if not keywords and last not in fw.mode_argument_callees and not (last or "").startswith(fw.mode_argument_callee_prefixes):
            return
        if self.ctx.enclosing_function() is None:
            return
        qualname = self.ctx.resolve(func) if isinstance(func, (cst.Name, cst.Attribute)) else None
        shown_func = self.ctx.module.code_for_node(func)
        if len(shown_func) > 40:
            shown_func = last or "call"
        position = fw.training_flag_position(qualname) if qualname else None
        training = get_arg(node, fw.mode_keyword, position) if position is not None else keywords.get(fw.mode_keyword)
        if training is not None:
            g = self._grad_flag(training.value)
            if g:
                self.report(
                    training.value,
                    f"`{shown_func}()` gets `training=` from {g}: grad mode is not the training mode, so "
                    f"this layer trains under evaluations that need gradients (saliency, adversarial, "
                    f"validation with autograd) and stops under `no_grad` training passes; pass "
                    f"`training=self.training`",
                )
                return
        p = None
        attention_p, plain_p = fw.attention_dropout_p_keyword, fw.dropout_p_keyword
        if qualname in fw.dropout_p_position:
            keyword = attention_p if qualname in fw.attention_dropout_calls else plain_p
            p = get_arg(node, keyword, fw.dropout_p_position[qualname])
        elif attention_p in keywords:
            p = keywords[attention_p]
        elif plain_p in keywords and last and _DROP_ATTR.search(last):
            p = keywords[plain_p]
        if p is not None:
            g = self._grad_flag(p.value)
            if g:
                self.report(
                    p.value,
                    f"the dropout probability of `{shown_func}()` depends on {g}: grad mode is not the "
                    f"training mode, so dropout stays on in evaluations that run with gradients and turns "
                    f"off in training passes under `no_grad`; use `p if self.training else 0.0`",
                )
                return
        self._check_reverse(node, last, qualname, keywords)

    # --- the reverse: the mode deciding autograd -------------------------------------------------
    def _check_reverse(self, node: cst.Call, last: Optional[str], qualname: Optional[str], keywords) -> None:
        if not self.ctx.in_module_method():
            return
        mode_locals = self._mode_locals()
        target = None
        what = ""
        fw = self.ctx.framework
        graph_kw = fw.create_graph_keyword
        if graph_kw and graph_kw in keywords and reads_mode(keywords[graph_kw].value, mode_locals):
            value = keywords[graph_kw].value
            if graph_for_training_only(self.ctx, node, value, self.ctx.ancestors, self.ctx.function_facts(),
                                       lambda e: reads_mode(e, mode_locals)):
                return
            target, what = value, f"`{graph_kw}=`"
        elif qualname in fw.set_grad_enabled and node.args and reads_mode(node.args[0].value, mode_locals):
            target, what = node, f"`{self.ctx.module.code_for_node(node.func)}(...)`"
        elif last == fw.requires_grad_method and isinstance(node.func, cst.Attribute) and not self._fresh_tensor(node.func.value):
            arg = node.args[0].value if node.args else None
            if (arg is not None and reads_mode(arg, mode_locals)) or self._guard_not_objective(node):
                target, what = node, f"`{fw.requires_grad_method}()`"
        if target is None:
            return
        self.report(
            target,
            f"`self.training` decides {what}: training mode is not grad mode, so gradients (and "
            f"higher-order graphs) disappear in evaluations that need them (saliency, adversarial attacks, "
            f"physics-informed validation losses); let the caller's `torch.no_grad()` / `enable_grad()` decide",
        )

    def _guard_not_objective(self, node: cst.CSTNode) -> bool:
        """Is `node` under a mode check whose arm does more than compute a training-only loss term?
        (`if self.training: x.requires_grad_(); ...; loss = loss + penalty` gates a term of the
        objective, which evaluation skips; that is what `self.training` is for.)"""
        guard = self.ctx.mode_guard(node)
        if guard is None:
            return False
        if isinstance(guard, cst.If):
            chain = self.ctx.chain(node)
            arm = guard.orelse if guard.orelse is not None and any(n is guard.orelse for n in chain) else guard.body
            return not feeds_objective(arm)
        return True

    def _fresh_tensor(self, expr: cst.CSTNode, depth: int = 0) -> bool:
        """A tensor the function builds itself: a factory (`torch.zeros(())`, `torch.tensor(0.0)`), a
        `new_*` method (`x.new_zeros(())`), a cast or move of one (`.to(device)`, `.float()`), or a local
        assigned only from such. Whether such a leaf requires grad concerns nobody else's gradients: the mode
        choosing it makes a training-only term (a constant-zero auxiliary loss) backward-able, or a fresh
        query leaf for reentrant checkpointing (MaskFormer's queries)."""
        facts = self.ctx.function_facts()
        if isinstance(expr, cst.Name):
            values = facts.assigns.get(expr.value) if facts is not None and depth < 3 else None
            return bool(values) and all(self._fresh_tensor(v, depth + 1) for v in values)
        if not isinstance(expr, cst.Call) or not isinstance(expr.func, (cst.Name, cst.Attribute)):
            return False
        fw, func = self.ctx.framework, expr.func
        if isinstance(func, cst.Attribute) and func.attr.value in fw.tensor_factory_methods:
            return True
        if isinstance(func, cst.Attribute) and func.attr.value in fw.tensor_cast_methods:
            return self._fresh_tensor(func.value, depth)
        return (self.ctx.resolve(func) or "") in fw.tensor_factories

    # --- branches on grad mode that hold dropout / sampling / batch-norm work ------------------------
    def visit_If(self, node: cst.If) -> None:
        self._check_branch(node, node.test, [node.body, node.orelse], early_exit=jumps_out(node.body))

    def visit_IfExp(self, node: cst.IfExp) -> None:
        self._check_branch(node, node.test, [node.body, node.orelse], early_exit=False)

    def _check_branch(self, node, test, arms, early_exit: bool) -> None:
        if self.ctx.enclosing_function() is None:
            return
        g = self._grad_flag(test)
        if not g or names_checkpoint(test):
            return
        if early_exit:
            parent = self.ctx.ancestors[-2] if len(self.ctx.ancestors) >= 2 else None
            if isinstance(parent, cst.IndentedBlock):
                body = list(parent.body)
                idx = next((i for i, s in enumerate(body) if s is node), None)
                if idx is not None:
                    arms = [arms[0], [a for a in (arms[1], *body[idx + 1 :]) if a is not None]]
        works = [self._mode_works(arm) for arm in arms]
        if works[0] and all(w == works[0] for w in works):
            return  # both arms apply the same mode-dependent work: grad mode picks a code path, not the mode
        work = next((min(w)[1] for w in works if w), None)
        if not work:
            return
        self.report(
            test,
            f"{g} decides whether {work} runs: grad mode is not the training mode, so it runs in "
            f"evaluations that need gradients and is skipped in training passes under `no_grad`; test "
            f"`self.training` instead",
        )

    def _mode_works(self, root) -> FrozenSet[Tuple[str, str]]:
        """The mode-dependent calls (dropout, sampling, batch norm) in an arm (a node, a list of
        statements or None), each as (signature, text to show). The signature is the callee with every
        argument but the input, so `F.dropout(x, p, self.training)` in both arms of a fast/slow path
        is the same work, and `training=True` against `training=False` is not."""
        code = self.ctx.module.code_for_node
        fw = self.ctx.framework
        out = set()
        stack = list(root) if isinstance(root, list) else [root] if root is not None else []
        while stack:
            node = stack.pop()
            if isinstance(node, cst.Call):
                shown = self._work_of(node, fw)
                if shown:
                    rest = [code(a) for a in node.args[1:]] if node.args and node.args[0].keyword is None else [code(a) for a in node.args]
                    out.add((code(node.func) + "(" + ", ".join(rest) + ")", shown))
            for child in iter_children(node):
                if not isinstance(child, (*FUNCTION_TYPES, cst.ClassDef)):
                    stack.append(child)
        return frozenset(out)

    def _work_of(self, node: cst.Call, fw) -> Optional[str]:
        func = node.func
        if not isinstance(func, (cst.Name, cst.Attribute)):
            return None
        last = func.attr.value if isinstance(func, cst.Attribute) else func.value
        q = self.ctx.resolve(func)
        if q and (fw.training_flag_position(q) is not None or q in fw.attention_dropout_calls):
            return f"`{self.ctx.module.code_for_node(func)}()`"
        if isinstance(func, cst.Attribute) and _DROP_ATTR.search(last):
            return f"`{self.ctx.module.code_for_node(func)}()`"
        op = sampling_op(self.ctx, node, self.ctx.function_facts())
        if op:
            return f"sampling (`{op.rsplit('.', 1)[-1] if fw.in_namespace(op) else op}`)"
        return None

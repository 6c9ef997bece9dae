from __future__ import annotations

import re
from typing import Dict, List, Optional, Tuple

import libcst as cst

from modelint.analysis.classbodies import TRAIN_CALLS, bodies_of, iter_located
from modelint.analysis.context import dotted
from modelint.analysis.routines import Routine, Switch, key_covers, local_callee, routine_facts
from modelint.analysis.sensitivity import analysis_for
from modelint.rules.base import Rule

_FREEZE_NAME = re.compile(r"freez|frozen", re.IGNORECASE)


class FrozenModuleResetByTrain(Rule):
    code = "MDL205"
    name = "frozen-module-reset-by-train"
    level = "warning"
    summary = "A submodule frozen with `.eval()` is switched back to training mode by its parent's later `.train()`."
    what = (
        "Reports `self.<sub>.eval()` (or `model.<sub>.eval()`, or `self.<sub> = <model>.eval()`) that freezes a "
        "submodule outside a `train()` override, next to a sign that it is meant to stay frozen "
        "(`<sub>.requires_grad_(False)`, `p.requires_grad = False` over `<sub>.parameters()`, or a "
        "`freeze`-like function name), when the parent's `.train()` runs later: for a submodule of a module "
        "class, when the class is a LightningModule (its trainer calls `.train()` on the root after every "
        "validation), when this file calls `.train()` / `.fit(...)` (on anything but the frozen part itself), or when a checked file that imports the "
        "class does (through the cross-file index); for `model.<sub>.eval()` in a script, when "
        "`model.train()` runs after it (later in the routine, at the top of the loop that contains it, or in "
        "a function of this file that it is passed to). Not reported: a class whose `train()` override "
        "re-applies `eval()` to that submodule (or puts anything in eval); an `eval()` re-applied after each "
        "`model.train()` in the loop; and submodules whose mode sensitivity is \"no\" (no dropout, batch norm "
        "or mode branch in their construction tree: train and eval compute the same thing)."
    )
    why = (
        "`Module.train()` sets the mode of every submodule recursively. A backbone frozen once with "
        "`backbone.eval()` is back in training mode after the first `model.train()`, so its batch norm "
        "layers normalise with batch statistics and keep overwriting the pretrained running averages with "
        "the new data (and its dropout is on), although its weights are frozen: the features drift and "
        "evaluation uses statistics the frozen weights were never trained with."
    )
    example = (
        "class Classifier(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.backbone = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8))\n"
        "        self.backbone.requires_grad_(False)\n"
        "        self.backbone.eval()\n"
        "        self.head = nn.LazyLinear(10)\n"
        "\n"
        "def fit(model, loader, opt):\n"
        "    model.train()\n"
    )
    use_instead = (
        "class Classifier(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.backbone = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8))\n"
        "        self.backbone.requires_grad_(False)\n"
        "        self.head = nn.LazyLinear(10)\n"
        "\n"
        "    def train(self, mode=True):\n"
        "        super().train(mode)\n"
        "        self.backbone.eval()  # stays frozen whatever the parent's mode\n"
        "        return self\n"
        "\n"
        "def fit(model, loader, opt):\n"
        "    model.train()\n"
    )
    triggers = ("eval",)
    options_schema = {}
    option_docs = {}
    fix_safety = (
        "No fix: the `train()` override belongs in the class (and must call `super().train(mode)` and return "
        "`self`), or the re-applied `eval()` after each `model.train()` in the loop; where depends on code "
        "the rule may not see (the training loop is often in another file)."
    )

    VALID = (
        # the class re-applies eval() in its train() override
        """
import torch
from torch import nn

class Frozen(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8))
        for p in self.encoder.parameters():
            p.requires_grad = False
        self.encoder.eval()

    def train(self, mode=True):
        super().train(mode)
        self.encoder.eval()
        return self

def run(model):
    model.train()
""",
        # the override re-applies it through a helper method
        """
from torch import nn
import pytorch_lightning as pl

class Distiller(pl.LightningModule):
    def __init__(self, teacher):
        super().__init__()
        self.teacher = teacher
        self.student = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8))

    def _freeze_teacher(self):
        self.teacher.eval()
        for p in self.teacher.parameters():
            p.requires_grad = False

    def train(self, mode=True):
        super().train(mode)
        self._freeze_teacher()
        return self
""",
        # re-applied after each model.train(); a submodule without mode-dependent layers
        """
import torch
from torch import nn

def train(model, loader, opt, epochs):
    model.backbone.requires_grad_(False)
    for epoch in range(epochs):
        model.train()
        model.backbone.eval()
        for x, y in loader:
            opt.zero_grad()
            model(x).sum().backward()
            opt.step()

class Probe(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(16, 16)
        self.proj.requires_grad_(False)
        self.proj.eval()

def fit(probe):
    probe.train()
""",
        # frozen, but nothing ever calls train() on the parent in the checked files
        """
from torch import nn

class Extractor(nn.Module):
    def __init__(self):
        super().__init__()
        self.cnn = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8))
        self.cnn.requires_grad_(False)
        self.cnn.eval()
""",
    )
    INVALID = (
        """
import torch
from torch import nn
import pytorch_lightning as pl

class FineTuner(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Dropout(0.1))
        self.backbone.requires_grad_(False)
        self.backbone.eval()  # expect: MDL205
        self.head = nn.LazyLinear(10)

    def training_step(self, batch, idx):
        x, y = batch
        return nn.functional.cross_entropy(self.head(self.backbone(x).flatten(1)), y)
""",
        # a script: frozen once before the epoch loop, reset by model.train() every epoch
        """
import torch

def main(model, loader, opt, epochs):
    for p in model.encoder.parameters():
        p.requires_grad = False
    model.encoder.eval()  # expect: MDL205
    for epoch in range(epochs):
        model.train()
        for x, y in loader:
            opt.zero_grad()
            model(x).sum().backward()
            opt.step()
""",
        # a train() override that forgets the frozen part; a helper that calls model.train()
        """
from torch import nn

class Detector(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8))
        self.neck = nn.Conv2d(8, 8, 1)

    def freeze_backbone(self):
        self.backbone.eval()  # expect: MDL205

    def train(self, mode=True):
        super().train(mode)
        self.neck.requires_grad_(True)
        return self

def train_one_epoch(net, loader):
    net.train()
    for x in loader:
        net(x)

def main(net, loader):
    net.freeze_backbone()
    train_one_epoch(net, loader)
""",
    )

    # --- the walk ----------------------------------------------------------------------------------
    # Only functions with an `.eval()` call are analysed (collected during the walk).
    def visit_Module(self, node: cst.Module) -> None:
        self._todo: Dict[int, cst.FunctionDef] = {}

    def visit_Call(self, node: cst.Call) -> None:
        if isinstance(node.func, cst.Attribute) and node.func.attr.value == self.ctx.framework.eval_method:
            fn = self.ctx.enclosing_function()
            if fn is not None:
                self._todo.setdefault(id(fn), fn)

    def leave_Module(self, node: cst.Module) -> None:
        for fn in self._todo.values():
            self._check(fn)

    def _check(self, node: cst.FunctionDef) -> None:
        if node.name.value == self.ctx.framework.train_method and self._owner(node) is not None:
            return  # inside a train() override: re-applying eval() there is the fix
        r = routine_facts(self.ctx, node)
        for key, call in self._frozen_evals(r):
            parent, attr = key.rsplit(".", 1)
            if parent == "self":
                reset = self._class_reset(node, attr)
            else:
                reset = self._script_reset(r, parent, key, call)
            if reset is None or self._not_sensitive(node, r, parent, attr, call):
                continue
            self.report(
                call,
                f"`{key}` is frozen with `.eval()` here, outside a `train()` override, but {reset} switches "
                f"every submodule back to training mode, so `{attr}`'s batch norm keeps updating its running "
                f"statistics (and its dropout is on) although it is meant to stay frozen; "
                + (f"override `train(self, mode=True)` to call `super().train(mode)` and then `self.{attr}.eval()`"
                   if parent == "self" else f"re-apply `{key}.eval()` after each `{parent}.train()`"),
            )

    # --- what is frozen ----------------------------------------------------------------------------
    def _frozen_evals(self, r: Routine) -> List[Tuple[str, cst.Call]]:
        """(submodule key, the eval call) for submodules put in eval with a sign of freezing."""
        out = []
        fw = self.ctx.framework
        for sw in r.switches:
            if (sw.mode is False and "." in sw.key and sw.call.func.attr.value == fw.eval_method
                    and self._freezing(r, sw.key)):
                out.append((sw.key, sw.call))
        for node in r.order_nodes:  # self.vae = AutoencoderKL.from_pretrained(...).eval()
            if (isinstance(node, cst.Assign) and len(node.targets) == 1 and isinstance(node.value, cst.Call)
                    and (key := dotted(node.targets[0].target)) and key.count(".") == 1 and key.startswith("self.")):
                call = _eval_in_chain(node.value, fw.eval_method)
                if call is not None and (self._freezing(r, key) or _chain_has(node.value, fw.requires_grad_method)):
                    out.append((key, call))
        return out

    def _freezing(self, r: Routine, key: str) -> bool:
        if isinstance(r.fn, cst.FunctionDef) and _FREEZE_NAME.search(r.fn.name.value):
            return True
        fw = self.ctx.framework
        for node in r.order_nodes:
            if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute):
                recv = dotted(node.func.value) or ""
                if node.func.attr.value == fw.requires_grad_method and key_covers(key, recv):
                    return True
                if node.func.attr.value in ("parameters", "named_parameters") and recv == key:
                    return _sets_requires_grad_false(r, node, fw.requires_grad_attr, fw.requires_grad_method)
        return False

    # --- who calls train() later ---------------------------------------------------------------------
    def _class_reset(self, fn: cst.FunctionDef, attr: str) -> Optional[str]:
        cls = self._owner(fn)
        if cls is None or not self.ctx.is_module_class(cls):
            return None
        methods = self.ctx.methods(cls)
        override = methods.get(self.ctx.framework.train_method)
        if override is not None and self._reapplies(override, methods):
            return None
        if self.ctx.is_lightning_class(cls):
            return "Lightning's trainer calls `.train()` on the module after every validation and"
        facts = self.ctx.facts
        own = bodies_of(facts).get(TRAIN_CALLS)
        # `self.<sub>.train()` of the frozen part itself (or inside it) is not a parent's train().
        others = [line for receiver, line in (own.refs if own is not None else ())
                  if not key_covers(f"self.{attr}", receiver)]
        if others:
            return f"the `.train()` / `.fit(...)` call on line {others[0]} of this file"
        index = self.ctx.classifier.index
        for other in index.modules.values():
            if other is facts or TRAIN_CALLS not in bodies_of(other):
                continue
            for value in other.aliases.values():
                located = next(iter_located(index, value), None) if value.endswith(cls.name.value) else None
                if located is not None and located[0].modname == facts.modname and located[1] == cls.name.value:
                    return f"`{other.modname}` (which imports `{cls.name.value}`) calls `.train()` / `.fit(...)`, which"
        return None

    def _reapplies(self, override: cst.FunctionDef, methods) -> bool:
        """The override puts something in eval, itself or through a `self.<method>()` that does
        (`self._freeze_teacher()`)."""
        r = routine_facts(self.ctx, override)
        if any(sw.mode is False for sw in r.switches):
            return True
        for node in r.order_nodes:
            if (isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute)
                    and dotted(node.func.value) == "self" and node.func.attr.value in methods):
                callee = methods[node.func.attr.value]
                if callee is not override and any(sw.mode is False for sw in routine_facts(self.ctx, callee).switches):
                    return True
        return False

    def _owner(self, fn: cst.FunctionDef) -> Optional[cst.ClassDef]:
        for cls in self.ctx.top_level_classes().values():
            if self.ctx.methods(cls).get(fn.name.value) is fn:
                return cls
        return None

    def _script_reset(self, r: Routine, parent: str, key: str, eval_call: cst.Call) -> Optional[str]:
        for sw in r.switches:
            if sw.mode is True and key_covers(sw.key, key) and sw.key == parent:
                if self._runs_after(r, sw.call, eval_call) and not self._reapplied_after(r, sw, key):
                    return f"`{parent}.train()` on line {self.ctx.line(sw.call)}"
        for node in r.order_nodes:
            if isinstance(node, cst.Call) and r.pos(node) > r.pos(eval_call):
                callee = local_callee(self.ctx, r.fn, node) if isinstance(r.fn, cst.FunctionDef) else None
                param = _bound_param(node, callee, parent) if callee is not None else None
                if param and any(s.mode is True and s.key == param for s in routine_facts(self.ctx, callee).switches):
                    return f"`{callee.name.value}({parent}, ...)` on line {self.ctx.line(node)} (it calls `{param}.train()`)"
        return None

    def _runs_after(self, r: Routine, later: cst.CSTNode, first: cst.CSTNode) -> bool:
        if r.pos(later) > r.pos(first):
            return True
        loop = r.parents.get(id(first))
        while loop is not None and loop is not r.fn:
            if isinstance(loop, (cst.For, cst.While)) and _inside(r, later, loop):
                return True
            loop = r.parents.get(id(loop))
        return False

    def _reapplied_after(self, r: Routine, train_sw: Switch, key: str) -> bool:
        """An `eval()` of `key` after this `train()`, in the same block (before the next step)."""
        block = r.parents.get(id(train_sw.call))
        while block is not None and not isinstance(block, (cst.IndentedBlock, cst.Module)):
            block = r.parents.get(id(block))
        return any(sw.mode is False and sw.key == key and r.pos(sw.call) > r.pos(train_sw.call)
                   and _inside(r, sw.call, block) for sw in r.switches)

    # --- sensitivity ---------------------------------------------------------------------------------
    def _not_sensitive(self, fn: cst.FunctionDef, r: Routine, parent: str, attr: str, call: cst.Call) -> bool:
        if parent == "self":
            cls = self._owner(fn)
            if cls is None:
                return False
            found = analysis_for(self.ctx.classifier).of_attribute(f"{self.ctx.facts.modname}.{cls.name.value}", attr,
                                                                    self.ctx.facts)
            return found is not None and found.answer == "no"
        return False


def _inside(r: Routine, node: cst.CSTNode, ancestor: Optional[cst.CSTNode]) -> bool:
    cur = node
    while cur is not None:
        if cur is ancestor:
            return True
        cur = r.parents.get(id(cur))
    return False


def _eval_in_chain(expr: cst.BaseExpression, eval_method: str) -> Optional[cst.Call]:
    """`X.from_pretrained(...).eval().requires_grad_(False)` -> the `.eval()` call."""
    while isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute):
        if expr.func.attr.value == eval_method and not expr.args:
            return expr
        expr = expr.func.value
    return None


def _chain_has(expr: cst.BaseExpression, method: str) -> bool:
    while isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute):
        if expr.func.attr.value == method:
            return True
        expr = expr.func.value
    return False


def _sets_requires_grad_false(r: Routine, params_call: cst.Call, attr: str, method: str) -> bool:
    """`for p in X.parameters(): p.requires_grad = False` (or `p.requires_grad_(False)`)."""
    loop = r.parents.get(id(params_call))
    while loop is not None and not isinstance(loop, cst.For):
        loop = r.parents.get(id(loop))
    if loop is None:
        return False
    text = " ".join(cst.Module([]).code_for_node(loop.body).split())
    return f".{attr} = False" in text or f".{method}(False)" in text


def _bound_param(call: cst.Call, callee: cst.FunctionDef, name: str) -> Optional[str]:
    """The parameter of `callee` that `call` passes `name` to."""
    params = [p.name.value for p in (*callee.params.posonly_params, *callee.params.params)]
    if params and params[0] == "self":
        params = params[1:]
    positional = [a for a in call.args if a.keyword is None and not a.star]
    for i, arg in enumerate(positional):
        if dotted(arg.value) == name and i < len(params):
            return params[i]
    for arg in call.args:
        if arg.keyword is not None and dotted(arg.value) == name:
            return arg.keyword.value
    return None

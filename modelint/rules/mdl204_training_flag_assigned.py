from __future__ import annotations

import re
from typing import Optional

import libcst as cst

from modelint.analysis.context import dotted
from modelint.analysis.classes import first_param
from modelint.rules.base import Rule

# Words that name a module when they end a variable or attribute name (`self.text_encoder`,
# `ema_model`, `m`). Anything else (`trainer`, `args`, `state`, `config`) is not assumed to be one.
_MODULE_WORDS = frozenset(
    {"model", "module", "net", "network", "encoder", "decoder", "backbone", "head", "layer", "block", "teacher",
     "student", "policy", "critic", "actor", "generator", "discriminator", "classifier", "submodule", "child",
     "mod", "m", "unet", "vae", "transformer", "bn", "norm", "dropout", "drop"}
)
# Methods where assigning `self.training` is the implementation of the mode switch itself.
_EXEMPT_METHODS = frozenset({"train", "eval", "__setstate__"})
# Iterating over these gives every module of a tree, one by one.
_MODULE_ITERATORS = re.compile(r"\b(named_)?(modules|children)\s*\(")


def _last_word(name: str) -> str:
    last = name.rsplit(".", 1)[-1]
    words = [w for w in re.split(r"[_\d]+", last.lower()) if w]
    return words[-1] if words else ""


class TrainingFlagAssigned(Rule):
    code = "MDL204"
    name = "training-flag-assigned"
    level = "warning"
    summary = "`module.training = ...` does not switch the children's mode; use `module.train(mode)`."
    what = (
        "Reports an assignment to the `training` attribute of a module outside a `train` / `eval` "
        "override (where setting the flag is the implementation) and outside `__setstate__`. The "
        "object counts as a module when it is `self` in a method of an `nn.Module` class (including "
        "`__init__`: children built there keep `training=True`), a parameter annotated with a module "
        "class, or a name / attribute whose last word names a module (`model`, `self.encoder`, "
        "`ema_model`, `m`, ...). Not reported: `self.training = ...` in classes that are not modules "
        "(trainers, validators, config objects with a `training` field); objects such as `trainer`, "
        "`args`, `state`; and loop variables that iterate over `.modules()` / `.named_modules()` / "
        "`.children()` (directly or through a list built from them), which set every module of the "
        "tree one by one (e.g. restoring saved modes)."
    )
    why = (
        "`nn.Module.train(mode)` sets `training` on the module and on every descendant. Assigning the "
        "attribute changes only that one object: its dropout and batch-norm children keep their old "
        "mode, so after `model.training = False` the model reports eval mode while its layers still "
        "drop activations and update running statistics (and the other way round). Use "
        "`model.train(mode)` / `model.eval()`; if only the module's own flag must change on purpose, "
        "say so with `# modelint: ignore[MDL204]`."
    )
    example = (
        "def freeze_encoder(model):\n"
        "    model.encoder.training = False\n"
    )
    use_instead = (
        "def freeze_encoder(model):\n"
        "    model.encoder.eval()\n"
    )
    triggers = ("training",)
    fix_safety = (
        "No fix: `self.train(mode)` also switches every child, which assigning the flag does not; whether the "
        "children should follow is the author's choice."
    )

    VALID = (
        """
import torch.nn as nn

class Net(nn.Module):
    def train(self, mode=True):
        self.training = mode
        for child in self.children():
            child.train(mode)
        return self

    def __setstate__(self, state):
        super().__setstate__(state)
        self.training = state.get("training", True)

class Trainer:                       # not a module
    def fit(self):
        self.training = True

def restore(module, saved):
    for name, mod in module.named_modules():
        mod.training = saved[name]          # every module, one by one

def probe(backbone):
    modes = [(m, m.training) for m in backbone.modules()]
    backbone.eval()
    for module, was_training in modes:
        module.training = was_training

def loop(trainer, args):
    trainer.training = True
    args.training = False
""",
    )
    INVALID = (
        """
import torch.nn as nn

class Distiller(nn.Module):
    def __init__(self, student, teacher: nn.Module):
        super().__init__()
        self.student = student
        self.teacher = teacher
        self.teacher.training = False  # expect: MDL204

    def freeze(self):
        self.training = False  # expect: MDL204

def evaluate(model, batch, net: nn.Module):
    model.training = False  # expect: MDL204
    net.training = False  # expect: MDL204
    return model(batch)
""",
    )

    def visit_Assign(self, node: cst.Assign) -> None:
        for t in node.targets:
            target = t.target
            if isinstance(target, cst.Attribute) and target.attr.value == self.ctx.framework.mode_attr:
                self._check(node, target)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        target = node.target
        if node.value is not None and isinstance(target, cst.Attribute) and target.attr.value == self.ctx.framework.mode_attr:
            self._check(node, target)

    def _check(self, stmt: cst.CSTNode, target: cst.Attribute) -> None:
        for anc in self.ctx.ancestors:
            if isinstance(anc, cst.FunctionDef) and anc.name.value in _EXEMPT_METHODS:
                return
        receiver = target.value
        name = dotted(receiver)
        if name is None:
            return
        why = self._module_evidence(receiver, name)
        if why is None or self._iterated_module(name):
            return
        shown = self.ctx.module.code_for_node(receiver)
        value = self.ctx.module.code_for_node(stmt.value)
        suggestion = f"`{shown}.train({value})`"
        if value == "False":
            suggestion = f"`{shown}.eval()`"
        elif value == "True":
            suggestion = f"`{shown}.train()`"
        self.report(
            stmt,
            f"`{shown}.training = {value}` changes only {why}'s own flag: its child modules (dropout, batch "
            f"norm) keep their current mode, so the flag and the layers' behaviour disagree; use {suggestion}",
        )

    def _module_evidence(self, receiver: cst.BaseExpression, name: str) -> Optional[str]:
        method = self.ctx.enclosing_method()
        if isinstance(receiver, cst.Name):
            if method is not None and receiver.value == first_param(method) and self.ctx.enclosing_function() is method:
                return "this module" if self.ctx.in_module_method() else None
            fn = self.ctx.enclosing_function()
            if fn is not None and self._annotated_module(fn, receiver.value):
                return f"`{receiver.value}`"
        if _last_word(name) in _MODULE_WORDS:
            return f"`{name}`"
        return None

    def _annotated_module(self, fn: cst.FunctionDef, name: str) -> bool:
        p = fn.params
        for param in (*p.posonly_params, *p.params, *p.kwonly_params):
            if param.name.value == name and param.annotation is not None:
                ann = param.annotation.annotation
                if isinstance(ann, cst.Subscript):  # Optional[nn.Module]
                    ann = ann.value
                qual = self.ctx.resolve(ann)
                return bool(qual) and qual not in ("Module",) and self.ctx.classifier.is_module_base(qual)
        return False

    def _iterated_module(self, name: str) -> bool:
        """Is the receiver (or its base name) a loop variable over `.modules()`-like iterators?"""
        base = name.split(".")[0]
        code = self.ctx.module.code_for_node
        for anc in reversed(self.ctx.ancestors):
            if isinstance(anc, (cst.For, cst.CompFor)):
                bound = {n.value for n in _names(anc.target)}
                if base not in bound:
                    continue
                if _MODULE_ITERATORS.search(code(anc.iter)):
                    return True
                it = anc.iter
                if isinstance(it, cst.Call) and it.args and isinstance(it.func, cst.Name) and it.func.value in ("enumerate", "zip", "reversed", "list"):
                    it = it.args[0].value
                if isinstance(it, cst.Name):
                    facts = self.ctx.function_facts()
                    values = facts.assigns.get(it.value, []) if facts else []
                    if any(_MODULE_ITERATORS.search(code(v)) for v in values):
                        return True
        return False


def _names(target: cst.CSTNode):
    stack = [target]
    while stack:
        node = stack.pop()
        if isinstance(node, cst.Name):
            yield node
        elif isinstance(node, (cst.Tuple, cst.List)):
            stack.extend(e.value for e in node.elements)
        elif isinstance(node, cst.StarredElement):
            stack.append(node.value)

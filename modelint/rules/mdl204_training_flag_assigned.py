from __future__ import annotations

import re
from typing import Optional

import libcst as cst

from modelint.analysis.context import dotted
from modelint.analysis.classes import first_param
from modelint.analysis.sensitivity import analysis_for
from modelint.analysis.walk import descendants
from modelint.rules.base import Rule, measured_set6, remeasured_2026_12_02, remeasured_2026_12_03

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
# Calls that hand a loop the elements of their arguments, and dict views (`saved.items()`).
_WRAPPERS = frozenset({"enumerate", "zip", "reversed", "list", "sorted", "tuple"})
_DICT_VIEWS = frozenset({"items", "values", "keys"})


def _last_word(name: str) -> str:
    last = name.rsplit(".", 1)[-1]
    words = [w for w in re.split(r"[_\d]+", last.lower()) if w]
    return words[-1] if words else ""


class TrainingFlagAssigned(Rule):
    code = "MDL204"
    name = "training-flag-assigned"
    level = "warning"
    default = False  # measuring set 2: see the end of `what`
    summary = "`module.training = ...` does not switch the children's mode; use `module.train(mode)`."
    what = (
        "Reports an assignment to the `training` attribute of a module outside a `train` / `eval` "
        "override or another library's mode setter (stable-baselines3's `set_training_mode`), where "
        "setting the flag is the implementation, and outside `__setstate__`. The "
        "object counts as a module when it is `self` in a method of an `nn.Module` class (including "
        "`__init__`: children built there keep `training=True`), a parameter annotated with a module "
        "class, or a name / attribute whose last word names a module (`model`, `self.encoder`, "
        "`ema_model`, `m`, ...). Not reported: `self.training = ...` in classes that are not modules "
        "(trainers, validators, config objects with a `training` field); objects such as `trainer`, "
        "`args`, `state`; and loop variables that iterate over `.modules()` / `.named_modules()` / "
        "`.children()` (directly, through `zip`/`enumerate`/`sorted`, or through a list or dict built from "
        "them and read with `.items()`/`.values()`), which set every module of the tree one by one "
        "(restoring saved modes); and restoring an object's own flag from a copy taken of that same "
        "object's flag (`was = m.training ... m.training = was`, or a holder that keeps one module and "
        "its flag, `self.module = module; self.training = module.training`, and puts it back) when the "
        "code that took the copy never calls `train()`/`eval()` on the object itself: such per-module "
        "snapshots put back exactly the mode each module had. Not caught therefore: a snapshot holder "
        "kept for the root only, while someone else switched the whole tree.\n\n"
        "Also not reported (issue 15): `self.training = ...` (or `self.<child>.training = ...`) in a method of a "
        "module class whose mode sensitivity is \"no\" (`analysis.sensitivity`: every layer of its construction "
        "tree is known and none depends on the mode - only convolutions, linear layers, activations, pooling; no "
        "dropout, batch norm, RNN dropout or read of `self.training`): there is no layer the flag could disagree "
        "with. An \"unknown\" answer (a submodule passed in, a probability from the caller) stays reported. Not "
        "caught therefore: such a module that later gains a mode-dependent child through code the analysis does "
        "not see (a child attached from outside the class)."
    )
    what += (
        " "
        "Off by default: on measuring set 2 (52 code bases never used to develop it: 32 repositories "
        "with training scripts and 20 model packages; `bench/precision.py --set measuring2`, verdicts "
        "with reasons in `bench/verdicts/measuring2.tsv`) it reached 0% real-or-deliberate (3 findings, "
        "all false: `self.training = False` in the `__init__` of modules without any mode-dependent "
        "layer, so the flag cannot disagree with a child), below the 95% a default rule needs; the "
        "first measuring set gave it no finding. Select it with `--select` or `extend-select`."
    )
    what += remeasured_2026_12_02(
        set3=('no finding'),
        set2=('no finding (its 3 false findings of the day before are exempted now)'),
    )
    what += remeasured_2026_12_03(set4="no finding", set5="no finding")
    what += measured_set6("1 finding, false (0%)")
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
        # per-module restores: every module gets its own saved flag back
        """
import torch.nn as nn

def restore_all(net, flags):
    for sub, was in zip(net.modules(), flags):
        sub.training = was

def restore_named(net):
    saved = {n: m.training for n, m in net.named_modules()}
    yield
    for n, mod in net.named_modules():
        mod.training = saved[n]

def restore_dict(net):
    saved = {m: m.training for m in net.modules()}
    yield
    for m, was in saved.items():
        m.training = was

class FlagSnapshot:                   # one per module of the tree
    def __init__(self, module):
        self.module = module
        self.was_training = module.training

    def put_back(self):
        target = self.module
        target.training = self.was_training

class PolicyWrapper(nn.Module):
    def set_training_mode(self, mode):   # the library's mode switch: the flag is its implementation
        self.actor.set_training_mode(mode)
        self.training = mode
""",
        # nothing mode-dependent under the flag: no child can disagree with it
        """
import torch.nn as nn

class ConvStem(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(3, c, 3, padding=1)
        self.act = nn.GELU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(c, 10)
        self.training = False            # only conv / activation / pooling / linear below

    def freeze_head(self):
        self.head.training = False       # a Linear: computes the same in both modes
""",
    )
    INVALID = (
        """
import torch.nn as nn

class Tower(nn.Module):                  # the twin of ConvStem with a batch norm: the flag now disagrees
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(3, c, 3, padding=1)
        self.bn = nn.BatchNorm2d(c)
        self.head = nn.Sequential(nn.Linear(c, 10), nn.Dropout(0.1))
        self.training = False  # expect: MDL204
        self.head.training = False  # expect: MDL204

class Wrapped(nn.Module):                # what the kept backbone holds is unknown: still reported
    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.training = False  # expect: MDL204
""",
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
        # restoring only the root's flag after switching the whole tree leaves the children switched
        """
import torch.nn as nn

def predict(model, x):
    was = model.training
    model.eval()
    out = model(x)
    model.training = was  # expect: MDL204
    return out

class eval_mode:
    def __init__(self, module):
        self.module = module
        self.was = module.training

    def __enter__(self):
        self.module.eval()

    def __exit__(self, *exc):
        self.module.training = self.was  # expect: MDL204

def copy_mode(student, teacher, flags):
    student.training = teacher.training  # expect: MDL204
    for m, was in zip(teacher.children(), flags):
        student.training = was  # expect: MDL204
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
        setters = self.ctx.framework.mode_setter_methods
        for anc in self.ctx.ancestors:
            if isinstance(anc, cst.FunctionDef) and (anc.name.value in _EXEMPT_METHODS or anc.name.value in setters):
                return
        receiver = target.value
        name = dotted(receiver)
        if name is None:
            return
        why = self._module_evidence(receiver, name)
        if why is None or self._iterated_module(name) or self._restores_own_snapshot(receiver, stmt.value):
            return
        if self._mode_free(receiver):
            return  # nothing under the flag depends on the mode: it cannot disagree with any layer
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

    def _mode_free(self, receiver: cst.BaseExpression) -> bool:
        """Is the receiver `self` (or `self.<attr>`) in a method of a module class whose mode sensitivity is
        "no" (`analysis.sensitivity`: only conv / linear / activation / pooling layers, no dropout, batch norm
        or mode read anywhere in its construction tree)? "unknown" is not mode-free."""
        method, classdef = self.ctx.enclosing_method_and_class()
        self_name = first_param(method) if method is not None else None
        if classdef is None or not self_name or not self.ctx.in_module_method():
            return False
        if isinstance(receiver, cst.Name) and receiver.value == self_name:
            return self.ctx.mode_sensitivity(classdef).answer == "no"
        if isinstance(receiver, cst.Attribute) and isinstance(receiver.value, cst.Name) and receiver.value.value == self_name:
            found = analysis_for(self.ctx.classifier).of_attribute(
                f"{self.ctx.facts.modname}.{classdef.name.value}", receiver.attr.value, self.ctx.facts)
            return found is not None and found.answer == "no"
        return False

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
                facts = self.ctx.function_facts()
                for it in _iterated_names(anc.iter):
                    values = facts.assigns.get(it, []) if facts else []
                    if any(_MODULE_ITERATORS.search(code(v)) for v in values):
                        return True
        return False

    def _restores_own_snapshot(self, receiver: cst.BaseExpression, value: cst.BaseExpression) -> bool:
        """`was = m.training ... m.training = was`, or a holder class that keeps one module and its flag
        (`self.module = module; self.training = module.training`) and puts the flag back: the value is
        that same object's own flag, saved earlier, and the code that saved it never switches the object
        with `train()` / `eval()` itself (then the children would have changed too, and restoring only
        the parent's flag would be the bug). Per-module snapshot holders (one for every module of a
        tree) are how a tracer or a checkpoint restores modes exactly."""
        code = self.ctx.module.code_for_node
        facts = self.ctx.function_facts()
        method, classdef = self.ctx.enclosing_method_and_class()
        self_name = first_param(method) if method is not None else None
        spellings = {code(receiver)}
        if isinstance(receiver, cst.Name) and facts is not None:
            spellings.update(code(v) for v in facts.assigns.get(receiver.value, ()))  # `module = self.module`
        if isinstance(value, cst.Name) and facts is not None:
            saved = facts.assigns.get(value.value, ())
            scope = [self.ctx.enclosing_function()]
        elif self_name and isinstance(value, cst.Attribute) and isinstance(value.value, cst.Name) and value.value.value == self_name:
            scope = list(self.ctx.methods(classdef).values())
            saved = [v for fn in scope for v in _self_assigned(fn, value.attr.value)]
            spellings.update(self._held_as(scope, spellings, saved))
        else:
            return False
        mode_attr = self.ctx.framework.mode_attr
        own = [v for v in saved if isinstance(v, cst.Attribute) and v.attr.value == mode_attr and code(v.value) in spellings]
        return bool(own) and len(own) == len(saved) and not self._switches(scope, spellings)

    def _held_as(self, methods, spellings, saved) -> set:
        """`self.module` spells the module whose flag was saved as `module.training` in a method that
        also did `self.module = module`."""
        code = self.ctx.module.code_for_node
        sources = {code(v.value) for v in saved if isinstance(v, cst.Attribute)}
        out = set()
        for fn in methods:
            self_name = first_param(fn)
            for node in descendants(fn):
                if isinstance(node, cst.Assign) and code(node.value) in sources:
                    for t in node.targets:
                        if isinstance(t.target, cst.Attribute) and code(t.target) in spellings and isinstance(t.target.value, cst.Name) and t.target.value.value == self_name:
                            out.add(code(node.value))
        return out

    def _switches(self, scope, spellings) -> bool:
        """Does any function in `scope` call `<object>.train(...)` / `.eval()` on one of its spellings?"""
        fw = self.ctx.framework
        methods = {fw.train_method, fw.eval_method} | set(fw.mode_setter_methods)
        code = self.ctx.module.code_for_node
        for fn in scope:
            if fn is None:
                continue
            for node in descendants(fn):
                if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and node.func.attr.value in methods:
                    if code(node.func.value) in spellings:
                        return True
        return False


def _self_assigned(fn: cst.FunctionDef, attr: str):
    """Values assigned to `self.<attr>` in a method."""
    self_name = first_param(fn)
    for node in descendants(fn):
        if isinstance(node, cst.Assign):
            for t in node.targets:
                target = t.target
                if isinstance(target, cst.Attribute) and target.attr.value == attr and isinstance(target.value, cst.Name) and target.value.value == self_name:
                    yield node.value


def _iterated_names(it: cst.BaseExpression):
    """The local names a loop iterates over: `xs`, `enumerate(xs)`, `zip(xs, ys)`, `xs.items()`."""
    stack = [it]
    while stack:
        node = stack.pop()
        if isinstance(node, cst.Name):
            yield node.value
        elif isinstance(node, cst.Call):
            func = node.func
            if isinstance(func, cst.Name) and func.value in _WRAPPERS:
                stack.extend(a.value for a in node.args)
            elif isinstance(func, cst.Attribute) and func.attr.value in _DICT_VIEWS and not node.args:
                stack.append(func.value)


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

from __future__ import annotations

import re
from typing import Dict, List, Optional, Tuple

import libcst as cst

from modelint.analysis.classbodies import TRAIN_CALLS, bodies_of
from modelint.analysis.context import dotted
from modelint.analysis.keysensitivity import KeySensitivity
from modelint.analysis.modeflow import for_context
from modelint.analysis.modemodel import bind, mapped_exit
from modelint.analysis.routines import (
    Routine, Switch, construction_of, key_covers, local_callee, part_key, routine_facts,
)
from modelint.analysis.walk import iter_children
from modelint.analysis.sensitivity import analysis_for
from modelint.rules.base import Rule, measured_set17, measured_set18, measured_set19, measured_upstream18, measured_upstream17, measured_set20, measured_upstream20

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
        "class does (through the cross-file index), or when an instance built in this file is later "
        "switched to training mode by a call (followed into other files through the mode summaries); a part "
        "of a kept module (`self.net.stem.eval()`) counts as a submodule of the class, and so does a part indexed by a "
        "literal or a slice (`self.blocks[:4].eval()`, `model.layers[0].eval()` next to "
        "`model.layers[0].requires_grad_(False)`). For `model.<sub>.eval()` "
        "in a function or a script's top-level code, when a `.train()` of `model` (or of a part holding "
        "`<sub>`) runs after it: later in the routine, at the top of the loop that contains it, in a function "
        "of this file that it is passed to (or that uses the script's global `model`), in a function of "
        "another file whose summary leaves it in training mode (`train_one_epoch(model, ...)`), or, when a "
        "setup function returns the model, after the call that binds its result in this file. Not reported: "
        "a class whose `train()` override re-applies `eval()` to that submodule (or puts anything in eval); "
        "an `eval()` re-applied after each `model.train()` in the loop or in the training function (also in "
        "another file); a `train(flag)` that restores a saved mode; a function's own local of the same name "
        "as the script's global; and submodules whose mode sensitivity is \"no\" (no dropout, batch norm or "
        "mode branch in their construction tree, looking through `DataParallel`-style wrappers and project "
        "factory functions whose every return builds a class (`self.vgg = load_vgg16(path)`): train and "
        "eval compute the same thing), also when the parent is a parameter, a global or a module kept from "
        "the constructor (`self.net = net`): then what this file's callers and constructions pass decides "
        "(`analysis.keysensitivity`). Not followed: parts indexed by a computed subscript "
        "(`model.blocks[f(i)].eval()`), setup functions called from another file, callers in other files."
    )
    what += measured_set17('no finding')
    what += measured_upstream17('neither of the 2 frozen-module bugs: a freeze written as a loop over `modules()` that puts each batch norm in eval, undone by a trainer in another file (MDL205), and a backbone frozen by a name filter over `named_parameters()` and never put in eval (MDL207, which takes a model that a validation puts in eval for one switched for good)')
    what += measured_set18('no finding')
    what += measured_upstream18('no finding (the list has no frozen-module bug)')
    what += measured_set19('no finding')
    what += measured_set20('no finding')
    what += measured_upstream20('not the one frozen submodule flipped back by its parent\'s `train()` (the switch comes from a trainer package outside the checked code)')
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
        # near misses of the setup-function case: the training helper re-freezes after its train();
        # a global name that the helper shadows with its own local; a saved mode restored
        """
import torch
from torch import nn

def prepare(cfg):
    model = torch.hub.load("pytorch/vision", "resnet18")
    model.layer1.requires_grad_(False)
    model.layer1.eval()
    return model

def fit(model, batches, opt):
    model.train()
    model.layer1.eval()  # re-applied after every train(): stays frozen
    for x in batches:
        opt.zero_grad()
        model(x).sum().backward()
        opt.step()

def probe(model, x):
    was = model.training
    model.eval()
    out = model(x)
    model.train(was)
    return out

def main(cfg, batches, opt):
    model = prepare(cfg)
    fit(model, batches, opt)
    probe(model, batches[0])
""",
        """
import torch
from torch import nn

model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8))
model.encoder = nn.Sequential(nn.Conv2d(8, 8, 3), nn.BatchNorm2d(8))
model.encoder.requires_grad_(False)
model.encoder.eval()

def pretrain_other():
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.1))
    model.train()
    return model

pretrain_other()
""",
        # mode-free parents reached through a parameter and a kept constructor argument: the callers
        # and constructions of this file pass a network without dropout or batch norm (the near miss
        # with batch norm is in INVALID)
        """
import torch
from torch import nn

class KeepStem(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.inner.stem.requires_grad_(False)
        self.inner.stem.eval()

    def forward(self, x):
        return self.inner(x)

def freeze_then_fit(net, data, opt):
    net[0].requires_grad_(False)
    net[0].eval()
    net.train()
    for x in data:
        opt.zero_grad()
        net(x).sum().backward()
        opt.step()

def run(data):
    net = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    freeze_then_fit(net, data, opt)
    wrapped = KeepStem(nn.Sequential(nn.Linear(4, 4)))
    wrapped.train()
""",
        # a frozen perceptual-loss network built by a factory function of the file (every return
        # builds the class): conv and ReLU only, so the later train() changes nothing it computes
        # (the near miss whose network has batch norm is in INVALID)
        """
import torch
from torch import nn

class FeatureNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(nn.Conv2d(3, 16, 3), nn.ReLU(), nn.Conv2d(16, 16, 3))

def build_features(weights):
    net = FeatureNet()
    net.load_state_dict(torch.load(weights))
    return net

class Translator(nn.Module):
    def __init__(self, weights):
        super().__init__()
        self.gen = nn.Sequential(nn.Conv2d(3, 3, 3), nn.InstanceNorm2d(3))
        self.features = build_features(weights)
        self.features.eval()
        self.features.requires_grad_(False)

    def update(self, x, opt):
        self.train()
        opt.zero_grad()
        (self.features(self.gen(x)) - self.features(x)).abs().mean().backward()
        opt.step()
""",
    )
    INVALID = (
        # the near miss of the factory VALID case: the frozen network has batch norm
        """
import torch
from torch import nn

class FeatureNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(nn.Conv2d(3, 16, 3), nn.BatchNorm2d(16), nn.ReLU())

def build_features(weights):
    net = FeatureNet()
    net.load_state_dict(torch.load(weights))
    return net

class Translator(nn.Module):
    def __init__(self, weights):
        super().__init__()
        self.gen = nn.Sequential(nn.Conv2d(3, 3, 3), nn.InstanceNorm2d(3))
        self.features = build_features(weights)
        self.features.eval()  # expect: MDL205
        self.features.requires_grad_(False)

    def update(self, x, opt):
        self.train()
        opt.zero_grad()
        (self.features(self.gen(x)) - self.features(x)).abs().mean().backward()
        opt.step()
""",
        # parts indexed by a literal or a slice, in a script and in a module class
        """
import torch
from torch import nn

class Tower(nn.Module):
    def __init__(self, depth):
        super().__init__()
        self.blocks = nn.ModuleList(nn.Sequential(nn.Linear(8, 8), nn.BatchNorm1d(8)) for _ in range(depth))
        self.blocks[:2].requires_grad_(False)
        self.blocks[:2].eval()  # expect: MDL205

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return x

def fit(tower, data, opt):
    tower.train()
    for x in data:
        opt.zero_grad()
        tower(x).sum().backward()
        opt.step()

def main(data):
    layers = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Conv2d(8, 8, 3))
    layers[1].requires_grad_(False)
    layers[1].eval()  # expect: MDL205
    opt = torch.optim.SGD(layers.parameters(), lr=0.1)
    for epoch in range(3):
        layers.train()
        for x in data:
            opt.zero_grad()
            layers(x).sum().backward()
            opt.step()
""",
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
        # a setup function freezes and returns the model; the caller trains it with a helper
        """
import torch
from torch import nn

def make_net(num_classes):
    net = torch.hub.load("pytorch/vision", "resnet50")
    for p in net.layer1.parameters():
        p.requires_grad = False
    net.layer1.eval()  # expect: MDL205
    optimizer = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.1)
    return net, optimizer

def one_epoch(net, batches, optimizer):
    net.train()
    for x, y in batches:
        optimizer.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        optimizer.step()

def run(batches, epochs):
    net, optimizer = make_net(10)
    for _ in range(epochs):
        one_epoch(net, batches, optimizer)
""",
        # a script: frozen at top level, reset by a function that trains the global model
        """
import torch
from torch import nn

model = torch.hub.load("pytorch/vision", "resnet18")
model.layer4.requires_grad_(False)
model.layer4.eval()  # expect: MDL205
opt = torch.optim.Adam(model.fc.parameters())

def epoch(batches):
    model.train()
    for x, y in batches:
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

for _ in range(5):
    epoch([])
""",
    )

    # --- the walk ----------------------------------------------------------------------------------
    # Only functions with an `.eval()` call are analysed (collected during the walk).
    def visit_Module(self, node: cst.Module) -> None:
        self._todo: Dict[int, cst.CSTNode] = {}

    def visit_Call(self, node: cst.Call) -> None:
        if isinstance(node.func, cst.Attribute) and node.func.attr.value == self.ctx.framework.eval_method:
            fn = self.ctx.enclosing_function() or self.ctx.module  # a script's top level too
            self._todo.setdefault(id(fn), fn)

    def leave_Module(self, node: cst.Module) -> None:
        for fn in self._todo.values():
            self._check(fn)

    def _check(self, node: cst.CSTNode) -> None:
        method = isinstance(node, cst.FunctionDef)
        if method and node.name.value == self.ctx.framework.train_method and self._owner(node) is not None:
            return  # inside a train() override: re-applying eval() there is the fix
        r = routine_facts(self.ctx, node)
        for key, call in self._frozen_evals(r):
            root, attr = _split_root(key)
            if root == "self" and method:  # `self.backbone`, `self.net.stem`: a part of this class
                self._freeze_line = self.ctx.line(call)
                parent, reset = "self", self._class_reset(node, attr)
            else:
                parent, reset = self._script_reset(r, key, call) or (root, None)
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
            if (sw.mode is False and _split_root(sw.key)[1] and sw.call.func.attr.value == fw.eval_method
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
                recv = part_key(node.func.value) or ""  # `model.layers[0].requires_grad_(False)` too
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
        # Nor a `.train()` earlier in the method that freezes (`self.model.train()` then
        # `self.model.stem.eval()` in `__init__`): that one runs before the freeze.
        start, freeze_line = self.ctx.line(fn), self._freeze_line
        others = [line for receiver, line in (own.refs if own is not None else ())
                  if not key_covers(f"self.{attr}", receiver) and not start <= line < freeze_line]
        if others:
            return f"the `.train()` / `.fit(...)` call on line {others[0]} of this file"
        index = self.ctx.classifier.index
        for other in index.modules.values():
            if other is facts or TRAIN_CALLS not in bodies_of(other):
                continue
            for value in other.aliases.values():
                located = index.locate(value) if value.endswith(cls.name.value) else None
                if located is not None and located[0].modname == facts.modname and located[1] == cls.name.value:
                    return f"`{other.modname}` (which imports `{cls.name.value}`) calls `.train()` / `.fit(...)`, which"
        return self._instance_reset(cls, attr)

    def _instance_reset(self, cls: cst.ClassDef, attr: str) -> Optional[str]:
        """An instance built in this file (`model = Frozen(net)`) whose later calls switch it to
        training mode, through functions of this file or other files (the mode summaries)."""
        scopes = [self.ctx.module] + [s for s in self.ctx.module.body if isinstance(s, cst.FunctionDef)]
        for scope in scopes:
            r = routine_facts(self.ctx, scope, 1)
            for node in r.order_nodes:
                if (isinstance(node, cst.Assign) and len(node.targets) == 1 and isinstance(node.value, cst.Call)
                        and isinstance(node.targets[0].target, cst.Name)
                        and (self.ctx.resolve(node.value.func) or "").rsplit(".", 1)[-1] == cls.name.value):
                    name = node.targets[0].target.value
                    found = self._reset_after(r, name, f"{name}.{attr}", node)
                    if found is not None:
                        return f"{found}, on the `{cls.name.value}` instance `{name}`,"
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

    def _script_reset(self, r: Routine, key: str, eval_call: cst.Call) -> Optional[Tuple[str, str]]:
        """(parent, what resets it) when a `.train()` of a parent of `key` (`model` or `model.bert`
        for `model.bert.embeddings`) runs after the freeze: in this routine, in a function it calls
        (this file or another, through the mode summaries), or, when the routine returns the model
        (a setup function), in a routine of this file that binds its result."""
        root = _split_root(key)[0]
        found = self._reset_after(r, root, key, eval_call)
        if found is not None:
            return root, found
        positions = _returns(r, root) if isinstance(r.fn, cst.FunctionDef) else []
        for caller, name, at in self._bindings_of_result(r.fn, positions) if positions else ():
            sub = name + key[len(root):]
            found = self._reset_after(caller, name, sub, at)
            if found is not None:
                return name, f"{found}, after `{name}` is returned by `{r.fn.name.value}()`,"
        return None

    def _reset_after(self, r: Routine, root: str, key: str, after: cst.CSTNode) -> Optional[str]:
        """What switches `key`'s parents back to training mode after `after` in `r`, if anything."""
        for sw in r.switches:
            if sw.mode is True and key_covers(sw.key, key) and sw.key != key and key_covers(root, sw.key):
                if self._runs_after(r, sw.call, after) and not self._reapplied_after(r, sw, key):
                    return f"`{sw.key}.train()` on line {self.ctx.line(sw.call)}"
        for node in r.order_nodes:
            if isinstance(node, cst.Call) and r.pos(node) > r.pos(after):
                found = self._call_resets(r, node, root, key)
                if found is not None:
                    return found
        return None

    def _call_resets(self, r: Routine, call: cst.Call, root: str, key: str) -> Optional[str]:
        """A call that puts a parent of `key` in training mode and leaves `key` so: a function of this
        file given the model (or using the script's global of that name), or a summarised function of
        the project (`train_one_epoch(model, ...)` imported from another file)."""
        line = self.ctx.line(call)
        callee = local_callee(self.ctx, r.fn, call)
        if callee is not None:
            name = _bound_param(call, callee, root)
            if name is None and isinstance(r.fn, cst.Module) and not _binds(callee, root):
                name = root  # a script's function working on the global `model`
            if name is not None:
                cr = routine_facts(self.ctx, callee, 1)
                sub = name + key[len(root):]
                for s in cr.switches:
                    if s.mode is True and key_covers(s.key, sub) and s.key != sub and not self._reapplied_after(cr, s, sub):
                        return f"`{callee.name.value}(...)` on line {line} (it calls `{s.key}.train()`)"
        effect = for_context(self.ctx).project_effect(call)
        if effect is None:
            return None
        func = call.func
        recv = dotted(func.value) if isinstance(func, cst.Attribute) else None
        args = [dotted(a.value) if not a.star and a.keyword is None else None for a in call.args]
        kws = {a.keyword.value: dotted(a.value) for a in call.args if a.keyword is not None}
        exits = {k: modes for k, modes, _ in mapped_exit(effect, bind(effect, args, kws, recv), recv) if k}
        modes = _nearest(exits, key)
        if modes and modes & {"train", "unknown"} and "eval" not in modes and key_covers(root, _nearest_key(exits, key)):
            return f"`{self.ctx.module.code_for_node(func)}(...)` on line {line} (`{effect.qualname}` switches it to training mode)"
        return None

    def _bindings_of_result(self, fn: cst.FunctionDef, positions: List[Optional[int]]):
        """(routine, name, assignment) for each `name = fn(...)` / `name, x = fn(...)` (the model at
        one of `positions` of the returned tuple) in the file's top-level code and functions."""
        scopes = [self.ctx.module] + [s for s in self.ctx.module.body if isinstance(s, cst.FunctionDef) and s is not fn]
        for scope in scopes:
            r = routine_facts(self.ctx, scope, 1)
            for node in r.order_nodes:
                if (isinstance(node, cst.Assign) and isinstance(node.value, cst.Call)
                        and isinstance(node.value.func, cst.Name) and node.value.func.value == fn.name.value):
                    for target in node.targets:
                        for name in _target_names(target.target, positions):
                            yield r, name, node

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
    def _not_sensitive(self, fn: cst.CSTNode, r: Routine, parent: str, attr: str, call: cst.Call) -> bool:
        if parent == "self":
            cls = self._owner(fn) if isinstance(fn, cst.FunctionDef) else None
            if cls is None:
                return False
            top = re.split(r"[.\[]", attr)[0]  # `self.net.stem`, `self.blocks[:4]`: as mode-free as `self.net` at most
            found = analysis_for(self.ctx.classifier).of_attribute(f"{self.ctx.facts.modname}.{cls.name.value}", top,
                                                                    self.ctx.facts)
            if found is not None:
                return found.answer == "no"
            # `self.net = net` kept from the constructor: what this file's constructions pass
            return self._keys().of(fn, f"self.{top}") == "no"
        built = construction_of(self.ctx, r, parent, call)  # `model = Net()` in the routine: mode-free?
        if built is None:  # a parameter or a global: what it holds in this file
            return self._keys().of(r.fn, parent) == "no"
        return self.ctx.mode_sensitivity(built).answer == "no"

    def _keys(self) -> KeySensitivity:
        return KeySensitivity(self.ctx, for_context(self.ctx))



def _split_root(key: str) -> Tuple[str, str]:
    """`model.encoder.stem` -> (`model`, `encoder.stem`); `layers[1]` -> (`layers`, `[1]`); a bare
    name has no part (``)."""
    root = re.match(r"[^.\[]*", key).group(0)
    return root, key[len(root):].lstrip(".")


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


def _returns(r: Routine, name: str) -> List[Optional[int]]:
    """Where `name` is in the routine's returned values: None for `return name`, i for a returned
    tuple holding it at position i."""
    out: List[Optional[int]] = []
    for node in r.order_nodes:
        if isinstance(node, cst.Return) and node.value is not None:
            value = node.value
            if isinstance(value, cst.Tuple):
                out += [i for i, el in enumerate(value.elements) if dotted(el.value) == name]
            elif dotted(value) == name:
                out.append(None)
    return out


def _target_names(target: cst.BaseExpression, positions: List[Optional[int]]) -> List[str]:
    names = []
    if isinstance(target, cst.Name):
        names.append(target.value)
    elif isinstance(target, (cst.Tuple, cst.List)):
        for i in positions:
            if i is not None and i < len(target.elements) and isinstance(target.elements[i].value, cst.Name):
                names.append(target.elements[i].value.value)
    return names


def _binds(fn: cst.FunctionDef, name: str) -> bool:
    """`fn` has a parameter or a local called `name` (so its `name.train()` is not the global's)."""
    params = fn.params
    if any(p.name.value == name for p in (*params.posonly_params, *params.params, *params.kwonly_params)):
        return True
    for node in _walk(fn.body):
        if isinstance(node, cst.Global) and any(n.name.value == name for n in node.names):
            return False
        if isinstance(node, (cst.Assign, cst.AnnAssign, cst.AugAssign, cst.For, cst.WithItem)):
            targets = node.targets if isinstance(node, cst.Assign) else [node.asname] if isinstance(node, cst.WithItem) else [node.target]
            for t in targets:
                t = t.target if isinstance(t, (cst.AssignTarget,)) else t.name if isinstance(t, cst.AsName) else t
                if t is not None and any(isinstance(n, cst.Name) and n.value == name for n in _walk(t)):
                    return True
    return False


def _walk(node: cst.CSTNode):
    stack = [node]
    while stack:
        cur = stack.pop()
        yield cur
        if not isinstance(cur, (cst.FunctionDef, cst.ClassDef, cst.Lambda)) or cur is node:
            stack.extend(iter_children(cur))


def _nearest_key(exits: Dict[str, frozenset], key: str) -> str:
    k = key
    while k not in exits and "." in k:
        k = k.rsplit(".", 1)[0]
    return k


def _nearest(exits: Dict[str, frozenset], key: str) -> frozenset:
    """The modes `key` has after the call: its own entry, else its nearest parent's."""
    return exits.get(_nearest_key(exits, key), frozenset())

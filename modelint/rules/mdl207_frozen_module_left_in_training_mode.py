from __future__ import annotations

import re
from typing import List, Optional, Set, Tuple

import libcst as cst

from modelint.analysis.calls import literal_value
from modelint.analysis.classbodies import bodies_of
from modelint.analysis.keysensitivity import KeySensitivity
from modelint.analysis.modeflow import for_context
from modelint.analysis.routines import key_covers, part_key
from modelint.analysis.sensitivity import analysis_for
from modelint.analysis.walk import enclosing, preorder_and_parents
from modelint.rules.base import Rule, measured_set17, measured_set18, measured_set19, measured_upstream18, measured_upstream17, measured_set20, measured_upstream20

_STATEMENTS = (cst.SimpleStatementLine, cst.BaseCompoundStatement)
# Methods of a module that do not run it (`X.parameters()`, `X.to(dev)`): a module only touched by
# them is not run, so its mode never shows.
_NOT_RUNNING = frozenset({
    "parameters", "named_parameters", "buffers", "named_buffers", "modules", "named_modules", "children",
    "named_children", "state_dict", "load_state_dict", "to", "cuda", "cpu", "half", "float", "double", "apply",
    "register_buffer", "register_forward_hook", "zero_grad", "share_memory", "requires_grad_", "eval", "train",
})


# The examples' shared preambles: a stage with batch norm that another one freezes, and a teacher
# loaded with another package's `from_pretrained` and frozen in `__init__` (the class's base, and the
# `# expect:` mark of INVALID, vary).
_STAGE = """
import torch
from torch import nn

class Stage(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU())

    def forward(self, x):
        return self.body(x)
"""
_TEACHER = """
import torch
from torch import nn
from transformers import AutoModel

class Contrastive({base}):
    def __init__(self, name):
        super().__init__()
        self.student = AutoModel.from_pretrained(name)
        self.teacher = AutoModel.from_pretrained(name)
        for p in self.teacher.parameters():{mark}
            p.requires_grad = False
"""


class FrozenModuleLeftInTrainingMode(Rule):
    code = "MDL207"
    name = "frozen-module-left-in-training-mode"
    level = "warning"
    default = False  # new on 2026-12-07: not yet measured on code it was not developed on
    summary = ("A module frozen with `requires_grad = False` is never put in eval mode, so it runs in training "
               "mode: its batch norm keeps updating its statistics and its dropout stays on.")
    what = (
        "Reports the freeze of a module (`X.requires_grad_(False)`, or `for p in X.parameters(): p.requires_grad = "
        "False` / `p.requires_grad_(False)`) whose model holds a mode-dependent layer (the sensitivity analysis "
        "answers \"yes\": batch norm with running statistics, dropout with a probability that is not a literal 0, "
        "a mode branch), when nothing in the file ever puts it in eval mode (`X.eval()`, `X.train(False)`, or an "
        "`eval()` chained onto what `X` is bound to) and the file runs it (`X(...)`, or a method of it other than "
        "`parameters()` / `to()` and the like). Two shapes: a submodule of a module class (`self.X`, frozen in any "
        "method, usually `__init__`), whose parent's `train()` runs it in training mode during training; and a "
        "name of a script or function bound there to a model, in a file with a training step (`backward()` or an "
        "optimizer step), which it runs in the mode it was built in: training. Not reported: a class with a "
        "`train()` override (it may keep the part in eval; MDL205 checks an `eval()` that a parent's `train()` "
        "undoes); a file that sets `requires_grad` to anything but a literal False anywhere (`True`, a flag, "
        "`requires_grad_()`: unfreezing later, GAN loops that freeze and unfreeze a discriminator, test-time "
        "adaptation that re-enables batch-norm parameters, input gradients); a parameter of a function (its "
        "callers decide its mode); modules whose sensitivity is \"no\" or \"unknown\" (a class of another "
        "package), except a part a module class keeps from another package's `from_pretrained` (it starts in eval "
        "mode, and the parent's `train()` switches it: set 16's TaCL teacher; not in a LightningModule, whose loops keep "
        "each submodule's own mode); `X.requires_grad = False` on a module itself (an attribute, which "
        "freezes nothing: another bug)."
        " Developed on 2026-12-07 against the bugs of this kind found by reading in measuring sets 7, 9, 12 and 13 "
        "(Wav2Lip's frozen SyncNet expert, twice; SimCLR's linear-probe encoder; audioset_tagging_cnn's frozen base), "
        "then swept over every tuning code base (sets 1-14 and the tuning wheels, 4.8 M lines): 6 findings, all real "
        "(3 latent: a library model, a template, ESMFold's config-driven dropout). It misses a frozen part kept from a "
        "constructor argument whose callers are in another file (set 13's StackGAN Stage-I generator: its answer is "
        "\"unknown\"). Held-out set 15, run once afterwards: no finding, and none was owed (its frozen VGGs have no batch "
        "norm or dropout, its frozen probe encoder is put in eval, finBERT unfreezes gradually). Held-out set 16 (33 repositories), run once: "
        "no finding, while reading found one it owed (TaCL's frozen `from_pretrained` teacher, reported since). Mutation recall on the "
        "real scripts of `bench/callsite_recall.py`: 8 of 18 (the misses are models built by a factory or a class the "
        "checked files do not define, whose answer is \"unknown\"), controls 12 of 12. Off by default until a held-out "
        "set gives it findings to judge."
    )
    what += measured_set17('no finding')
    what += measured_upstream17("neither of the 2 frozen-module bugs (see MDL205): the one of this rule's kind is a backbone frozen by a name filter over `named_parameters()` and never put in eval, missed because a validation's `eval()` of the whole model is taken for a switch that lasts")
    what += measured_set18('no finding')
    what += measured_upstream18('no finding (the list has no frozen-module bug)')
    what += measured_set19('no finding')
    what += measured_set20('no finding')
    what += measured_upstream20('no fixed entry of its kind; 1 other finding, real (a frozen batch-norm energy scaler of a TTS model, put in eval once and switched back by each epoch\'s `model.train()`)')
    why = (
        "`requires_grad = False` stops the optimizer from changing the weights; it does not change the mode. A "
        "frozen network that is never put in eval runs in training mode whenever its parent or its script trains: "
        "batch norm normalises each batch with that batch's statistics and overwrites the running averages it was "
        "trained with, and dropout stays on. The frozen teacher, expert, feature extractor or first stage drifts "
        "away from the network that was trained, and its outputs depend on the batch."
    )
    example = (
        "class StageTwo(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.stage_one = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8))\n"
        "        for p in self.stage_one.parameters():\n"
        "            p.requires_grad = False  # frozen, but in training mode whenever StageTwo trains\n"
        "        self.head = nn.Conv2d(8, 3, 1)\n"
        "\n"
        "    def forward(self, x):\n"
        "        return self.head(self.stage_one(x))\n"
    )
    use_instead = (
        "class StageTwo(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.stage_one = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8))\n"
        "        for p in self.stage_one.parameters():\n"
        "            p.requires_grad = False\n"
        "        self.head = nn.Conv2d(8, 3, 1)\n"
        "\n"
        "    def train(self, mode=True):\n"
        "        super().train(mode)\n"
        "        self.stage_one.eval()  # stays frozen: fixed batch-norm statistics, no dropout\n"
        "        return self\n"
        "\n"
        "    def forward(self, x):\n"
        "        return self.head(self.stage_one(x))\n"
    )

    triggers = ("requires_grad",)
    options_schema = {}
    option_docs = {}
    fix_safety = (
        "No fix: where the `eval()` belongs depends on code the rule may not see: in a `train()` override of "
        "the class that holds the frozen part, after each `.train()` of its parent in the training loop (often "
        "in another file), or right after the freeze in a script."
    )

    VALID = (
        # frozen and kept in eval by a train() override; a script's frozen expert put in eval
        _STAGE + """
class Refiner(nn.Module):
    def __init__(self, first):
        super().__init__()
        self.first = Stage()
        for p in self.first.parameters():
            p.requires_grad = False
        self.head = nn.Conv2d(8, 3, 1)

    def train(self, mode=True):
        super().train(mode)
        self.first.eval()
        return self

    def forward(self, x):
        return self.head(self.first(x))

def fit(batches):
    expert = Stage()
    expert.load_state_dict(torch.load("expert.pt"))
    expert.requires_grad_(False)
    expert.eval()
    student = Stage()
    opt = torch.optim.SGD(student.parameters(), lr=0.1)
    for x in batches:
        loss = (student(x) - expert(x)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
""",
        # a file that unfreezes later (warm-up of a head, then the whole network): no finding
        """
import torch
from torch import nn

def fit(batches, epochs):
    net = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.Linear(16, 2))
    net[0].requires_grad_(False)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    for epoch in range(epochs):
        if epoch == 2:
            net[0].requires_grad_(True)
        for x, y in batches:
            opt.zero_grad()
            nn.functional.cross_entropy(net(x), y).backward()
            opt.step()
""",
        # a mode-free frozen embedding and a frozen network handed in as a parameter
        """
import torch
from torch import nn

class Tagger(nn.Module):
    def __init__(self, vectors):
        super().__init__()
        self.embed = nn.Embedding.from_pretrained(vectors)
        self.embed.requires_grad_(False)
        self.out = nn.Linear(vectors.size(1), 5)

    def forward(self, tokens):
        return self.out(self.embed(tokens))

def distil(teacher, student, batches, opt):
    teacher.requires_grad_(False)
    for x in batches:
        loss = (student(x) - teacher(x)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
""",
    )
    VALID += (
        # a momentum teacher averaged from the student (run in training mode by design, as in MoCo / BYOL);
        # a snapshot of the live encoder, reloaded each epoch; a freeze offered to the user as a method;
        # one frozen parameter of a batch norm
        """
import copy
import torch
from torch import nn

def self_distil(student, batches, opt, m=0.99):
    teacher = copy.deepcopy(student)
    for p in teacher.parameters():
        p.requires_grad = False
    for x in batches:
        loss = (student(x) - teacher(x).detach()).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            for ps, pt in zip(student.parameters(), teacher.parameters()):
                pt.mul_(m).add_(ps, alpha=1 - m)
""",
        """
import torch
from torch import nn

class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(8, 8), nn.BatchNorm1d(8))

    def forward(self, x):
        return self.body(x)

class Prior(nn.Module):
    def __init__(self):
        super().__init__()
        self.old = Encoder()
        self.old.requires_grad_(False)

    def forward(self, x):
        return self.old(x)

class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = Encoder()
        self.prior = Prior()
        self.neck = nn.BatchNorm1d(8)
        self.neck.bias.requires_grad_(False)

    def refresh(self):
        self.prior.old.load_state_dict(self.encoder.state_dict())

    def forward(self, x):
        return self.neck(self.encoder(x)) - self.prior(x)
""",
        """
from torch import nn

class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.base = nn.Sequential(nn.Linear(8, 8), nn.Dropout(0.1))
        self.head = nn.Linear(8, 2)

    def freeze_base(self):
        for p in self.base.parameters():
            p.requires_grad = False

    def forward(self, x):
        return self.head(self.base(x))
""",
    )
    INVALID = (
        # a first stage frozen in the second stage's __init__, never put in eval
        _STAGE + """
class Refiner(nn.Module):
    def __init__(self):
        super().__init__()
        self.first = Stage()
        for p in self.first.parameters():  # expect: MDL207
            p.requires_grad = False
        self.head = nn.Conv2d(8, 3, 1)

    def forward(self, x):
        return self.head(self.first(x))
""",
        # a script's frozen expert, loaded and used as a loss, never put in eval
        """
import torch
from torch import nn

def fit(batches):
    expert = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.Linear(16, 1))
    expert.load_state_dict(torch.load("expert.pt"))
    expert.requires_grad_(False)  # expect: MDL207
    student = nn.Sequential(nn.Linear(8, 8), nn.Dropout(0.1), nn.Linear(8, 8))
    opt = torch.optim.SGD(student.parameters(), lr=0.1)
    for x in batches:
        loss = expert(student(x)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
""",
        # the same frozen base, frozen in __init__ when the user asks for it: the fine-tuning runs it in training mode
        """
from torch import nn

class Classifier(nn.Module):
    def __init__(self, freeze_base=True):
        super().__init__()
        self.base = nn.Sequential(nn.Linear(8, 8), nn.Dropout(0.1))
        self.head = nn.Linear(8, 2)
        if freeze_base:
            for p in self.base.parameters():  # expect: MDL207
                p.requires_grad = False

    def forward(self, x):
        return self.head(self.base(x))
""",
        # a pretrained network of another package kept frozen as a teacher: `from_pretrained` gives it in
        # eval mode, and the parent's `train()` puts it back in training mode (near miss in VALID)
        _TEACHER.format(base="nn.Module", mark="  # expect: MDL207") + """
    def forward(self, ids):
        with torch.no_grad():
            target = self.teacher(ids)[0]
        return (self.student(ids)[0] - target).pow(2).mean()
""",
    )
    VALID += (
        # the same teacher in a LightningModule: its loops keep each submodule's own mode (the teacher
        # stays in the eval mode `from_pretrained` gives it)
        _TEACHER.replace("from torch import nn", "import lightning as L").format(base="L.LightningModule", mark="") + """
    def training_step(self, ids, idx):
        with torch.no_grad():
            target = self.teacher(ids)[0]
        return (self.student(ids)[0] - target).pow(2).mean()
""",
        # the same teacher kept in eval by a `train()` override
        _TEACHER.format(base="nn.Module", mark="") + """
    def train(self, mode=True):
        super().train(mode)
        self.teacher.eval()
        return self

    def forward(self, ids):
        with torch.no_grad():
            target = self.teacher(ids)[0]
        return (self.student(ids)[0] - target).pow(2).mean()
""",
    )

    # The walk only notices a possible freeze; the file is read again, whole, only then (few files freeze).
    # (and not at all when it also sets `requires_grad` to anything but False: such files are skipped)
    def visit_Module(self, node: cst.Module) -> None:
        self._freezing = self._toggling = False

    def visit_Call(self, node: cst.Call) -> None:
        if isinstance(node.func, cst.Attribute) and node.func.attr.value == self.ctx.framework.requires_grad_method:
            self._note(literal_value(node.args[0].value) if node.args else True)

    def visit_Assign(self, node: cst.Assign) -> None:
        flag = self.ctx.framework.requires_grad_attr
        if any(isinstance(t.target, cst.Attribute) and t.target.attr.value == flag for t in node.targets):
            self._note(literal_value(node.value))

    def _note(self, value) -> None:
        if value is False:
            self._freezing = True
        else:
            self._toggling = True

    def leave_Module(self, node: cst.Module) -> None:
        fw = self.ctx.framework
        flag, method = fw.requires_grad_attr, fw.requires_grad_method
        if not self._freezing or self._toggling or not flag or not method:
            return
        facts = _FileFacts(self.ctx, node, flag, method)
        if not facts.freezes or not facts.steps_or_classes():
            return
        for key, site, scope, cls in facts.freezes:
            if self._exempt(facts, key, scope, cls):
                continue
            where = (f"whenever `{cls.name.value}` trains (its parent's `train()` switches it back)" if cls is not None
                     else "in the training mode it was built in")
            self.report(site, (
                f"`{key}` is frozen here (`requires_grad = False`) but nothing in this file puts it in eval mode, so it "
                f"runs {where}: its batch norm normalises each batch with that batch's statistics and overwrites the "
                f"running averages it was trained with, and its dropout stays on, although its weights never change; "
                + (f"override `train(self, mode=True)` to call `super().train(mode)` and then `{key}.eval()`"
                   if cls is not None else f"call `{key}.eval()` after freezing it (and after any `.train()` of a model holding it)")
            ))

    def _exempt(self, facts: "_FileFacts", key: str, scope: cst.CSTNode, cls: Optional[cst.ClassDef]) -> bool:
        root = re.split(r"[.\[]", key)[0]
        if any(e == key or (key_covers(e, key) and e != root) for e in facts.evals) or not facts.runs(key):
            return True  # put in eval itself (or a part holding it; the whole model's eval for a validation is undone by its train())
        if key.rsplit(".", 1)[-1] in self.ctx.framework.parameter_attrs:
            return True  # `self.bn.bias.requires_grad_(False)`: one parameter, not a module
        tail = key[len("self"):] if key.startswith("self.") else None  # `.encoder_old`, copied as `self.prior.encoder_old`
        if facts.averaged or any(key_covers(k, key) or key_covers(key, k) or (tail and k.endswith(tail))
                                 for k in facts.copies):
            return True  # a momentum / EMA teacher or a snapshot of another module's weights: run as the design says
        if cls is not None and isinstance(scope, cst.FunctionDef) and scope.name.value != "__init__" \
                and scope.name.value not in facts.called_names:
            return True  # `def freeze_base_model(self)`: an API for the user, who decides the modes
        if cls is not None:
            if not self.ctx.is_module_class(cls) or self.ctx.framework.train_method in self.ctx.methods(cls):
                return True
            top = re.split(r"[.\[]", key[len("self."):])[0]
            found = analysis_for(self.ctx.classifier).of_attribute(f"{self.ctx.facts.modname}.{cls.name.value}", top,
                                                                    self.ctx.facts)
            answer = found.answer if found is not None else KeySensitivity(self.ctx, for_context(self.ctx)).of(scope, f"self.{top}")
            # (a LightningModule's loops restore each submodule's own mode after validation and do not
            # call `train()` at fit start: the pretrained part stays in the eval mode it was loaded in)
            return answer != "yes" and not (answer == "unknown" and not self.ctx.is_lightning_class(cls)
                                            and self._pretrained_part(cls, top))
        if isinstance(scope, cst.FunctionDef) and root in _params(scope):
            return True  # the caller's model: its mode is the caller's
        # "yes", or "unknown" while bound here to a module construction (`net = get_network(args)` of a
        # project factory, `resnet.__dict__[arch]()`): a model, whose layers are not all seen
        keys = KeySensitivity(self.ctx, for_context(self.ctx))
        answer = keys.of(scope, root)
        if answer == "no" or (answer == "unknown" and not keys.holds_module(scope, root)):
            return True
        return key != root and keys.of(scope, key) == "no"


    def _pretrained_part(self, cls: cst.ClassDef, attr: str) -> bool:
        """`self.<attr> = BertModel.from_pretrained(name)` (the profile's `external_model_methods` on a
        class outside the framework): a pretrained network of another package, which starts in eval
        mode and which the parent's `train()` puts in training mode (set 16's TaCL teacher). Not a
        framework layer's constructor (`nn.Embedding.from_pretrained(vectors)`)."""
        fw = self.ctx.framework
        body = bodies_of(self.ctx.facts).get(cls.name.value)
        for site in body.calls if body is not None else ():
            if site.attr != attr or "." not in site.name or not fw.loads_external_model(site.name):
                continue
            head, _, rest = site.name.rpartition(".")[0].partition(".")
            qual = self.ctx.facts.aliases.get(head, head) + ("." + rest if rest else "")
            if not fw.in_namespace(qual) and not fw.is_layer_name(qual):
                return True
        return False


def _params(fn: cst.FunctionDef) -> Set[str]:
    p = fn.params
    return {x.name.value for x in (*p.posonly_params, *p.params, *p.kwonly_params)}


class _FileFacts:
    """One walk of the file: the freezes (key, the statement, its scope, its class), the keys put in eval,
    the calls that run a key, and the training steps. (A file that sets `requires_grad` to anything but
    False never gets here: the rule's own walk stops it.)"""

    def __init__(self, ctx, module: cst.Module, flag: str, method: str):
        fw = ctx.framework
        self.freezes: List[Tuple[str, cst.CSTNode, cst.CSTNode, Optional[cst.ClassDef]]] = []
        self.evals: Set[str] = set()
        self.called: Set[str] = set()
        self.averaged = False  # `zip(a.parameters(), b.parameters())`: weights averaged between two modules
        self.copies: Set[str] = set()  # `X.load_state_dict(Y.state_dict())`: X holds a copy of Y's weights
        self.called_names: Set[str] = set()  # last names of everything called (`self.model_freeze()`)
        self.handed: Set[str] = set()  # names passed to a call (`train_val(model, loader)` runs it there)
        self.has_step = False
        self.has_class_freeze = False
        order, parents = preorder_and_parents(module)
        steps = fw.backward_methods | {fw.optimizer_step_method}
        for n in order:
            if isinstance(n, cst.Call):
                self.handed.update(k for k in (part_key(a.value) for a in n.args) if k)
                self.called_names.add(n.func.attr.value if isinstance(n.func, cst.Attribute)
                                      else n.func.value if isinstance(n.func, cst.Name) else "")
                if isinstance(n.func, cst.Name) and n.func.value == "zip" and sum(
                        _calls_method(a.value, "parameters") for a in n.args) >= 2:
                    self.averaged = True
                whole = part_key(n.func)
                if whole:
                    self.called.add(whole)  # `self.first(x)` runs `self.first`
            if isinstance(n, cst.Call) and isinstance(n.func, cst.Attribute):
                attr, recv = n.func.attr.value, part_key(n.func.value)
                if attr == "load_state_dict" and recv and n.args and _calls_method(n.args[0].value, "state_dict"):
                    self.copies.add(recv)
                if attr == method:
                    if recv and n.args and literal_value(n.args[0].value) is False:
                        self._freeze(recv, enclosing(n, parents, _STATEMENTS), n, parents, module)
                elif attr == fw.eval_method and recv:
                    self.evals.add(recv)
                elif attr == fw.train_method and recv and n.args and literal_value(n.args[0].value) is False:
                    self.evals.add(recv)
                elif attr in steps:  # (`scheduler.step()` too: a training script either way)
                    self.has_step = True
                if recv and attr not in _NOT_RUNNING:
                    self.called.add(recv)  # `expert.encode(x)` runs `expert`
                if attr == fw.eval_method:  # `self.X = make(...).eval()`
                    target = _assigned_to(n, parents)
                    if target:
                        self.evals.add(target)
            elif isinstance(n, cst.Assign) and literal_value(n.value) is False:
                target = next((t.target for t in n.targets
                               if isinstance(t.target, cst.Attribute) and t.target.attr.value == flag), None)
                loop = _params_loop(target, parents) if target is not None else None
                if loop is not None:
                    self._freeze(loop[0], loop[1], n, parents, module)

    def _freeze(self, key: str, site: cst.CSTNode, node: cst.CSTNode, parents, module: cst.Module) -> None:
        scope, cls = _scope_and_class(node, parents, module)
        if key.startswith("self."):
            if cls is None:
                return
            self.has_class_freeze = True
        elif key == "self":
            return
        self.freezes.append((key, site, scope, cls))

    def steps_or_classes(self) -> bool:
        return self.has_step or self.has_class_freeze

    def runs(self, key: str) -> bool:
        # `X(...)`, `X.forward(...)`, or a model holding it (`model(x)` runs the frozen `model.f`)
        return any(key_covers(c, key) or c == key + ".forward" for c in self.called if c != "super") or any(
            key_covers(h, key) for h in self.handed if h != "self")


def _calls_method(expr: cst.CSTNode, name: str) -> bool:
    """`expr` is, or wraps (`deepcopy(...)`), a call of `X.<name>()`."""
    while isinstance(expr, cst.Call):
        if isinstance(expr.func, cst.Attribute) and expr.func.attr.value == name:
            return True
        if not expr.args:
            return False
        expr = expr.args[0].value
    return False


def _assigned_to(call: cst.Call, parents) -> Optional[str]:
    cur = parents.get(id(call))
    while isinstance(cur, (cst.Call, cst.Attribute)):
        cur = parents.get(id(cur))
    if isinstance(cur, cst.Assign) and len(cur.targets) == 1:
        return part_key(cur.targets[0].target)
    return None


def _params_loop(target: cst.Attribute, parents) -> Optional[Tuple[str, cst.CSTNode]]:
    """`for p in X.parameters(): p.requires_grad = False`: (X, the loop)."""
    var = target.value
    if not isinstance(var, cst.Name):
        return None
    cur = enclosing(target, parents, (cst.For, cst.FunctionDef))
    if not isinstance(cur, cst.For) or not isinstance(cur.target, cst.Name) or cur.target.value != var.value:
        return None
    it = cur.iter
    if isinstance(it, cst.Call) and isinstance(it.func, cst.Attribute) and it.func.attr.value == "parameters" and not it.args:
        key = part_key(it.func.value)
        return (key, cur) if key else None
    return None


def _scope_and_class(node: cst.CSTNode, parents, module: cst.Module) -> Tuple[cst.CSTNode, Optional[cst.ClassDef]]:
    """The function around `node` (the module outside any, or in a class body) and the class it is a
    method of (None for a plain function, or one nested in another function)."""
    fn = enclosing(node, parents, (cst.FunctionDef, cst.ClassDef))
    if not isinstance(fn, cst.FunctionDef):
        return module, None
    owner = enclosing(fn, parents, (cst.FunctionDef, cst.ClassDef))
    return fn, owner if isinstance(owner, cst.ClassDef) else None

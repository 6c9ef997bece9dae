"""Shared analysis: import resolution, nn.Module detection (incl. across files), mode guards."""

from __future__ import annotations

import json
import textwrap

import libcst as cst
import pytest

from modelint.analysis import mode
from modelint.analysis.index import ProjectIndex, facts_from_source, module_name
from modelint.analysis.modules import ModuleClassifier
from modelint.analysis.walk import descendants, parent_map
from modelint.frameworks import TORCH
from modelint.engine import check_source


def _facts(src, modname="m"):
    from pathlib import Path

    return facts_from_source(textwrap.dedent(src).encode(), Path(f"{modname}.py"), modname=modname)


@pytest.mark.parametrize(
    "imports,base",
    [
        ("import torch.nn as nn", "nn.Module"),
        ("from torch import nn", "nn.Module"),
        ("from torch.nn import Module", "Module"),
        ("import torch", "torch.nn.Module"),
        ("from torch.nn import Module as M", "M"),
        ("import torch.nn", "torch.nn.Sequential"),
        ("from torch import nn as tnn", "tnn.TransformerEncoderLayer"),
        ("import pytorch_lightning as pl", "pl.LightningModule"),
        ("from lightning.pytorch import LightningModule", "LightningModule"),
        ("from transformers import PreTrainedModel", "PreTrainedModel"),
    ],
)
def test_module_bases_resolved_through_imports(imports, base):
    src = f"{imports}\nimport torch.nn.functional as F\nclass B({base}):\n    def forward(self, x):\n        return F.dropout(x, 0.1)\n"
    assert [f.code for f in check_source(src, select=["MDL101"])] == ["MDL101"]


@pytest.mark.parametrize(
    "imports,base",
    [
        ("import torch.nn as nn", "nn.Parameter"),
        ("import torch", "torch.Tensor"),
        ("from mylib import Module2", "Module2"),
        ("import torch.nn as nn", "object"),
    ],
)
def test_non_module_bases(imports, base):
    src = f"{imports}\nimport torch.nn.functional as F\nclass B({base}):\n    def forward(self, x):\n        return F.dropout(x, 0.1)\n"
    assert check_source(src, select=["MDL101"]) == []


def test_torch_layer_classes():
    assert TORCH.is_layer_class("torch.nn.Linear")
    assert TORCH.is_layer_class("torch.nn.modules.conv.Conv2d")
    assert not TORCH.is_layer_class("torch.nn.functional.dropout")
    assert not TORCH.is_layer_class("torch.nn.Parameter")
    assert not TORCH.is_layer_class("torch.nn.utils.rnn.PackedSequence")
    assert TORCH.is_layer_class("torch.nn.modules.dropout._DropoutNd")  # private bases layers derive from
    assert TORCH.is_layer_class("torch.nn.modules.batchnorm._BatchNorm")
    assert not TORCH.is_layer_class("torch.nn.modules.module._IncompatibleKeys")
    assert not TORCH.is_layer_class("torch.nn.modules.utils._pair")


def test_cross_file_index_follows_relative_imports_and_reexports(tmp_path):
    pkg = tmp_path / "proj" / "models"
    (pkg / "layers").mkdir(parents=True)
    (tmp_path / "proj" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "layers" / "__init__.py").write_text("from .base import Base as ExportedBase\n")
    (pkg / "layers" / "base.py").write_text("import torch.nn as nn\nclass Base(nn.Module):\n    pass\nclass Plain:\n    pass\n")
    (pkg / "enc.py").write_text("from .layers import ExportedBase\nfrom ..models.layers.base import Plain\nclass Enc(ExportedBase):\n    pass\nclass Deep(Enc):\n    pass\nclass P(Plain):\n    pass\n")
    index = ProjectIndex()
    for f in pkg.rglob("*.py"):
        index.add(facts_from_source(f.read_bytes(), f))
    assert module_name(pkg / "enc.py") == "proj.models.enc"
    assert module_name(pkg / "layers" / "__init__.py") == "proj.models.layers"
    c = ModuleClassifier(index)
    assert c.is_module_base("proj.models.enc.Enc")
    assert c.is_module_base("proj.models.enc.Deep")
    assert not c.is_module_base("proj.models.enc.P")
    assert not c.is_module_base("proj.models.layers.base.Plain")


def test_cross_file_cycle_terminates(tmp_path):
    (tmp_path / "a.py").write_text("from b import B\nclass A(B):\n    pass\n")
    (tmp_path / "b.py").write_text("from a import A\nclass B(A):\n    pass\n")
    index = ProjectIndex()
    for f in tmp_path.glob("*.py"):
        index.add(facts_from_source(f.read_bytes(), f))
    assert not ModuleClassifier(index).is_module_base("a.A")


def test_cross_file_detection_end_to_end(run, write):
    write("pkg/__init__.py", "")
    write("pkg/base.py", "import torch.nn as nn\n\nclass Base(nn.Module):\n    pass\n")
    write("pkg/model.py", "import torch.nn.functional as F\nfrom .base import Base\n\nclass M(Base):\n    def forward(self, x):\n        return F.dropout(x, 0.1)\n")
    r = run("check", "pkg", "--format", "json")
    assert [(f["path"], f["line"]) for f in json.loads(r.out)] == [("pkg/model.py", 6)], r
    # Checking the file alone, the base is unknown: no finding (documented heuristic).
    assert run("check", "pkg/model.py").code == 0


# --- mode guards ----------------------------------------------------------------------------------

GUARDED = [
    "if self.training:\n        y = TARGET",
    "if not self.training:\n        pass\n    else:\n        y = TARGET",
    "if x is None:\n        pass\n    elif self.training and self.p > 0:\n        y = TARGET",
    "y = TARGET if self.training else x",
    "y = x if not self.training else TARGET",
    "y = self.training and TARGET",
    "if not self.training:\n        return x\n    y = TARGET",
    "if not training:\n        return x\n    y = TARGET",
    "assert self.training\n    y = TARGET",
    "use = self.training and self.p > 0\n    if use:\n        y = TARGET",
    "if self.encoder.training:\n        y = TARGET",
    "if deterministic:\n        y = x\n    else:\n        y = TARGET",
    "for i in range(3):\n        if not self.training:\n            continue\n        y = TARGET",
]
UNGUARDED = [
    "y = TARGET",
    "if self.p > 0:\n        y = TARGET",
    "if torch.is_grad_enabled():\n        y = TARGET",
    "if self.training:\n        pass\n    y = TARGET",
    "if self.training:\n        x = 1\n    y = TARGET",
    "y = TARGET and self.training",
    "if self.train:\n        pass\n    self.train(False)\n    y = TARGET",
    "def inner():\n        return TARGET\n    if self.training:\n        inner()",
]


def _target_guarded(body: str) -> bool:
    src = f"def forward(self, x, training=True, deterministic=False):\n    {body}\n"
    module = cst.parse_module(src.replace("TARGET", "target(x)"))
    fn = module.body[0]
    target = next(n for n in descendants(module) if isinstance(n, cst.Call) and getattr(n.func, "value", None) == "target")
    facts = mode.function_facts(fn)
    inner_fn = [n for n in facts.chain(target) if isinstance(n, cst.FunctionDef)][-1]
    facts = mode.function_facts(inner_fn) if inner_fn is not fn else facts
    return mode.mode_guard(facts.chain(target), facts.mode_locals) is not None


@pytest.mark.parametrize("body", GUARDED)
def test_guarded(body):
    assert _target_guarded(body)


@pytest.mark.parametrize("body", UNGUARDED)
def test_not_guarded(body):
    assert not _target_guarded(body)


def test_reads_mode_ignores_keyword_and_attribute_names():
    expr = cst.parse_expression("f(x, training=False) + self.train(False)")
    assert not mode.reads_mode(expr)
    assert mode.reads_mode(cst.parse_expression("f(x, training=self.training)"))


def test_parent_map_covers_subtree():
    module = cst.parse_module("def f(x):\n    return g(x)\n")
    parents = parent_map(module)
    call = next(n for n in descendants(module) if isinstance(n, cst.Call))
    assert isinstance(parents[id(call)], cst.Return)


# --- framework profiles ------------------------------------------------------------------------------


def test_rules_and_analysis_spell_no_framework_names():
    """PyTorch's names live in `modelint/frameworks/`; a rule or an analysis asks `ctx.framework`.
    Docs may mention them; code strings may not (a string constant starting with a framework
    namespace, outside docstrings and the rule's documentation attributes)."""
    import ast
    from pathlib import Path

    import modelint
    from modelint.frameworks import PROFILES

    root = Path(modelint.__file__).parent
    spaces = tuple(s for p in PROFILES for s in p.namespaces)
    doc_attrs = {"what", "why", "example", "use_instead", "summary", "fix_safety", "option_docs", "VALID", "INVALID",
                 "FIXES", "UNSAFE_FIXES"}
    bad = []
    for path in sorted([*(root / "rules").glob("*.py"), *(root / "analysis").glob("*.py")]):
        tree = ast.parse(path.read_text())
        skip = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef)) and ast.get_docstring(node) is not None:
                skip.add(id(node.body[0].value))
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id in doc_attrs for t in node.targets):
                skip.update(id(n) for n in ast.walk(node.value))
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
                if node.value.startswith(spaces):
                    bad.append(f"{path.name}:{node.lineno}: {node.value!r}")
    assert bad == []


def test_profile_is_chosen_from_imports_and_defaults_to_torch():
    from modelint.frameworks import PROFILES, TORCH, profile_for

    assert profile_for({"nn": "torch.nn"}) is TORCH
    assert profile_for({}) is PROFILES[0] is TORCH  # model code may import torch through a project module


def test_profile_can_say_plain_containers_register_modules():
    """A framework that registers modules held in plain lists (MLX) must not get MDL201."""
    import dataclasses

    import libcst as cst
    from modelint.analysis.context import FileContext
    from modelint.analysis.walk import walk
    from modelint.engine import _Dispatcher
    from modelint.frameworks import TORCH
    from modelint.rules import get_rule

    source = "import torch.nn as nn\nclass M(nn.Module):\n    def __init__(self):\n        self.layers = [nn.Linear(2, 2)]\n"

    def reports(profile):
        module = cst.parse_module(source)
        facts = _facts(source, "example")
        index = ProjectIndex()
        index.add(facts)
        ctx = FileContext("example.py", module, facts, ModuleClassifier(index))
        ctx._framework = profile
        rule = get_rule("MDL201")(ctx)
        dispatcher = _Dispatcher(ctx, [rule])
        walk(module, dispatcher.enter, dispatcher.leave)
        return rule.reports

    assert len(reports(TORCH)) == 1
    assert reports(dataclasses.replace(TORCH, registers_plain_containers=True)) == []


def test_star_imports_of_checked_modules_are_followed(tmp_path):
    """`from models.base import *` then `class Net(BaseModel)`: the base is looked up through the
    star-imported modules (and their own star imports); a name no star module defines stays
    unresolved, a star import of a module outside the checked files resolves nothing, and the
    plain `Module` spelling after `from torch.nn import *` keeps its meaning."""
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "base.py").write_text("import torch.nn as nn\nclass BaseModel(nn.Module):\n    pass\nclass Plain:\n    pass\n")
    (tmp_path / "models" / "general.py").write_text("from models.base import *\nclass General(BaseModel):\n    pass\n")
    (tmp_path / "models" / "rerank.py").write_text(
        "from models.general import *\nfrom torch.nn import *\n"
        "class Rerank(General):\n    pass\nclass Deep(BaseModel):\n    pass\nclass P(Plain):\n    pass\n"
        "class Lost(Missing):\n    pass\nclass Bare(Module):\n    pass\nclass Lin(Linear):\n    pass\n")
    index = ProjectIndex()
    for f in tmp_path.rglob("*.py"):
        index.add(facts_from_source(f.read_bytes(), f, modname=f"models.{f.stem}"))
    c = ModuleClassifier(index)
    assert [c.is_module_base(f"models.rerank.{n}") for n in ("Rerank", "Deep", "P", "Lost", "Bare", "Lin")] == [
        True, True, False, False, True, False]
    assert index.locate("models.rerank.BaseModel")[1] == "BaseModel"
    assert index.modules["models.rerank"].stars == ["models.general", "torch.nn"]


def test_a_plain_class_mixed_into_a_module_is_a_mixin(tmp_path):
    (tmp_path / "m.py").write_text(
        "import torch.nn as nn\nclass HeadMixin(object):\n    pass\nclass Alone:\n    pass\n"
        "class Net(nn.Module, HeadMixin):\n    pass\n")
    index = ProjectIndex()
    index.add(facts_from_source((tmp_path / "m.py").read_bytes(), tmp_path / "m.py", modname="m"))
    c = ModuleClassifier(index)
    assert c.is_module_mixin("m.HeadMixin") and not c.is_module_mixin("m.Alone") and not c.is_module_mixin("m.Net")


def test_a_class_of_a_folder_without_init_is_located_by_its_dotted_import(tmp_path):
    """`from utility.log import Log` where utility/ has no `__init__.py`: the index names the file
    `log`, and the import's `utility.log.Log` is that class; a framework's own name is never taken
    for a script module's class of the same spelling."""
    (tmp_path / "utility").mkdir()
    (tmp_path / "utility" / "log.py").write_text("class Log:\n    def train(self, n):\n        pass\n")
    (tmp_path / "nn.py").write_text("class Module:\n    pass\n")
    index = ProjectIndex()
    for f in tmp_path.rglob("*.py"):
        index.add(facts_from_source(f.read_bytes(), f))
    found = index.locate("utility.log.Log")
    assert found is not None and (found[0].modname, found[1]) == ("log", "Log")
    assert index.locate("other.log.Missing") is None
    assert index.locate("torch.nn.Module") is None

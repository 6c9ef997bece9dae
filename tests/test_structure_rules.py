"""MDL201-MDL204 (module structure): semantics beyond the rule examples, per-finding levels of
MDL203, cross-file module classes, and mutation recall (inject each bug into clean code and require
the matching finding)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import libcst as cst
import pytest

from modelint.analysis.context import FileContext
from modelint.analysis.index import ProjectIndex, facts_from_source
from modelint.analysis.modules import ModuleClassifier
from modelint.analysis.walk import walk
from modelint.engine import EngineSettings, _Dispatcher, check_paths, check_source
from modelint.rules import get_rule

CODES = ("MDL201", "MDL202", "MDL203", "MDL204")


def lines(source: str, code: str):
    return [f.line for f in check_source(textwrap.dedent(source), select=[code]) if f.code == code]


def reports(source: str, code: str, options=None):
    """The rule's raw reports (with their per-report level), straight from one walk."""
    source = textwrap.dedent(source)
    module = cst.parse_module(source)
    facts = facts_from_source(source.encode(), Path("example.py"), modname="example")
    index = ProjectIndex()
    index.add(facts)
    ctx = FileContext("example.py", module, facts, ModuleClassifier(index))
    rule = get_rule(code)(ctx, options)
    dispatcher = _Dispatcher(ctx, [rule])
    walk(module, dispatcher.enter, dispatcher.leave)
    assert not dispatcher.failed, dispatcher.failed
    return rule.reports


# --------------------------------------------------------------------------------------------
# MDL201


def test_mdl201_only_module_classes_and_only_stateful_modules():
    src = """
    import torch.nn as nn

    class Plain:
        def __init__(self):
            self.layers = [nn.Linear(2, 2)]

    class Loss(nn.Module):
        def __init__(self):
            super().__init__()
            self.loss_fcts = {"l2": nn.SmoothL1Loss(reduction="none"), "ce": nn.CrossEntropyLoss()}
            self.acts = [nn.ReLU(), nn.GELU(), nn.Sequential()]
            self.weighted = [nn.CrossEntropyLoss(weight=None)]
    """
    assert lines(src, "MDL201") == [13]


def test_mdl201_fill_through_local_and_registration_exemptions():
    src = """
    import torch.nn as nn

    class A(nn.Module):
        def __init__(self, n):
            super().__init__()
            self.convs = []
            for i in range(n):
                conv = nn.Conv2d(3, 3, 3)
                self.convs.append(conv)
            self.kept = []
            for i in range(n):
                conv2 = nn.Conv2d(3, 3, 3)
                setattr(self, f"conv{i}", conv2)
                self.kept.append(conv2)
            self.later = [nn.Linear(2, 2)]
            self.seq = nn.Sequential(*self.later)

    class B(nn.Module):
        def __init__(self, n):
            super().__init__()
            self.layers = [None] * n
            for i in range(n):
                self.layers[i] = nn.Linear(2, 2)
            self.extra = []
            self.extra += [nn.Linear(2, 2)]
            self.ext = []
            self.ext.extend(nn.Linear(2, 2) for _ in range(n))
    """
    assert lines(src, "MDL201") == [7, 22, 25, 27]


def test_mdl201_project_module_class_in_another_file(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "blocks.py").write_text(textwrap.dedent("""
        import torch.nn as nn

        class Block(nn.Module):
            def __init__(self, d):
                super().__init__()
                self.fc = nn.Linear(d, d)
    """))
    (pkg / "model.py").write_text(textwrap.dedent("""
        from torch import nn
        from .blocks import Block

        class Model(nn.Module):
            def __init__(self, d):
                super().__init__()
                self.blocks = [Block(d) for _ in range(4)]
    """))
    result = check_paths(sorted(pkg.glob("*.py")), EngineSettings(select=("MDL201",), jobs=1))
    assert [(Path(f.path).name, f.line) for f in result.findings] == [("model.py", 8)]


# --------------------------------------------------------------------------------------------
# MDL202


def test_mdl202_runtime_reachability_and_builders():
    src = """
    import torch.nn as nn
    from torch.utils.checkpoint import checkpoint

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = self._build(4)

        def _build(self, d):                       # reached from __init__ only: a builder
            return nn.Sequential(nn.Linear(d, d), nn.Dropout(0.1))

        def reset_head(self, d):                   # stores the module: fine
            self.head_drop = nn.Dropout(0.2)

        def forward(self, x):
            return checkpoint(self._inner, x)

        def _inner(self, x):                       # reached through a reference, not a call
            self.lazy = nn.BatchNorm1d(x.shape[1])
            return self.lazy(x)

        def embed(self, x):                        # not reached, but applied right away
            enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2), 2)
            return enc(x)
    """
    assert lines(src, "MDL202") == [20, 24]


def test_mdl202_argument_rules():
    src = """
    import torch.nn as nn

    class M(nn.Module):
        def forward(self, x):
            a = nn.LazyInstanceNorm1d()(x)                          # running stats by default
            b = nn.InstanceNorm1d(4, 1e-5, 0.1, False, True)(x)     # positional track_running_stats
            c = nn.LSTM(4, 4, 2, True, False, 0.3)(x)               # positional dropout
            d = nn.LSTM(4, 4, 2)(x)                                 # no dropout
            e = nn.GRU(4, 4, 2, dropout=0.0)(x)
            f = nn.Dropout(0.0)(x)
            g = nn.MultiheadAttention(4, 2)(x, x, x)
            h = nn.Dropout(0.1).eval()(x)                           # mode set explicitly
            return a, b, c, d, e, f, g, h
    """
    assert lines(src, "MDL202") == [6, 7, 8, 12]


# --------------------------------------------------------------------------------------------
# MDL203: one finding per override, level = the most severe case


@pytest.mark.parametrize(
    "body,level",
    [
        ("def train(self, loader):\n        pass", "error"),
        ("def train(self, mode=True):\n        self.x = 1\n        return self", "warning"),
        ("def train(self, mode=True):\n        self.x = 1", "warning"),
        ("def train(self, mode=True):\n        super().train(mode)", "info"),
        ("def eval(self):\n        super().eval()", "info"),
        ("def train(self, mode=True):\n        if mode:\n            return super().train(True)\n        super().train(False)", "info"),
        ("def train(self, mode=True):\n        return super().train(mode) if mode else None", "info"),
    ],
)
def test_mdl203_levels(body, level):
    src = f"import torch.nn as nn\n\nclass M(nn.Module):\n    {body}\n"
    found = reports(src, "MDL203")
    assert [r.level for r in found] == [level]


LOUD_SIGNATURES = [
    "def train(self, loader, epochs):\n        pass",
    "def train(self):\n        pass",
    "def train(self, mode=True, *, loader):\n        pass",
    "def eval(self, loader):\n        pass",
    "def eval(self, *, loader):\n        pass",
    "def train(self, mode):\n        return super().train(mode)",  # `model.train()` raises; `train(False)` works
]
SILENT_TWINS = [  # each takes `train(False)` / `eval()` and does the wrong thing without an error
    "def train(self, loader, epochs=1):\n        pass",
    "def train(self, epochs=10):\n        pass",
    "def train(self, loader):\n        pass",
]


@pytest.mark.parametrize("body", LOUD_SIGNATURES)
def test_mdl203_loud_signature_clashes_only_with_the_option(body):
    """A signature that cannot take the mode switch's call raises TypeError at the first switch: left out
    by default, reported (as an error) with `report-signature-clashes`."""
    src = f"import torch.nn as nn\n\nclass M(nn.Module):\n    {body}\n"
    assert reports(src, "MDL203") == []
    found = reports(src, "MDL203", {"report-signature-clashes": True})
    assert [r.level for r in found] == ["error"] and "TypeError" in found[0].message


@pytest.mark.parametrize("body", SILENT_TWINS)
def test_mdl203_silent_signature_clashes_stay_reported(body):
    src = f"import torch.nn as nn\n\nclass M(nn.Module):\n    {body}\n"
    for options in (None, {"report-signature-clashes": True}):
        found = reports(src, "MDL203", options)
        assert [r.level for r in found] == ["error"], options
        assert "=False` instead of switching modes" in found[0].message


def test_mdl203_mode_without_default_still_has_its_body_judged():
    """`train(self, mode)` is loud only for `model.train()` without an argument; every other call switches
    modes, so by default its body is judged like any override's (here: no delegation, no `return self`)."""
    src = "import torch.nn as nn\n\nclass M(nn.Module):\n    def train(self, mode):\n        self.x = mode\n"
    found = reports(src, "MDL203")
    assert [r.level for r in found] == ["warning"] and "super().train(mode)" in found[0].message
    assert "TypeError" not in found[0].message
    (clash,) = reports(src, "MDL203", {"report-signature-clashes": True})
    assert clash.level == "error" and "has no default" in clash.message


def test_mdl203_option_reaches_the_rule_through_check_source():
    src = "import torch.nn as nn\n\nclass M(nn.Module):\n    def eval(self, td, reward):\n        return reward\n"
    assert lines(src, "MDL203") == []
    found = check_source(src, select=["MDL203"], rule_options={"MDL203": {"report-signature-clashes": True}})
    assert [f.line for f in found if f.code == "MDL203"] == [4]


def test_mdl203_combined_cases_in_one_message():
    src = "import torch.nn as nn\n\nclass M(nn.Module):\n    def train(self, mode=True):\n        self.x = 1\n"
    (r,) = reports(src, "MDL203")
    assert "never calls `super().train(mode)`" in r.message and "return `self`" in r.message


def test_mdl203_delegation_forms():
    src = """
    import torch.nn as nn

    class Base(nn.Module):
        pass

    class Mixin:
        pass

    class A(Mixin, Base):
        def train(self, mode=True):
            Base.train(self, mode)
            return self

    class B(Base):
        def train(self, mode=True):
            nn.Module.train(self, mode)
            return self

    class C(Base):
        def train(self, mode=True):
            return super(C, self).train(mode)

    class D(Base):
        def eval(self):
            self.train(False)
            return self
    """
    assert lines(src, "MDL203") == []


# --------------------------------------------------------------------------------------------
# MDL204


def test_mdl204_receivers():
    src = """
    import torch.nn as nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.1))
            self.training = False                  # children built above keep training=True

    class State:
        def __init__(self):
            self.training = False

    def go(args, trainer, model, ema_model, cfg):
        args.training = True
        trainer.training = True
        cfg.model.training = False
        ema_model.training = False
        for m in model.children():
            m.training = False
    """
    assert lines(src, "MDL204") == [8, 17, 18]


# --------------------------------------------------------------------------------------------
# Mutation recall: clean real-looking code, one injected bug at a time.

CLEAN = '''
import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, dim, p=0.1):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc = nn.Linear(dim, dim)
        self.drop = nn.Dropout(p)

    def forward(self, x):
        return x + self.drop(self.fc(self.norm(x)))


class Net(nn.Module):
    def __init__(self, dim, depth, tasks):
        super().__init__()
        self.blocks = nn.ModuleList([Block(dim) for _ in range(depth)])
        self.heads = nn.ModuleDict()
        for name, n_out in tasks.items():
            self.heads[name] = nn.Linear(dim, n_out)
        self.bn = nn.BatchNorm1d(dim)
        self.cache = None

    def train(self, mode=True):
        super().train(mode)
        self.cache = None
        return self

    def forward(self, x):
        for blk in self.blocks:
            x = blk(x)
        x = self.bn(x.mean(1))
        return {name: head(x) for name, head in self.heads.items()}


def fit(model, loader, opt):
    model.train()
    for x, y in loader:
        opt.zero_grad()
        F.mse_loss(model(x)["a"], y).backward()
        opt.step()


def freeze(model):
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
'''

MUTATIONS = [
    ("ModuleList -> list", "nn.ModuleList([Block(dim) for _ in range(depth)])", "[Block(dim) for _ in range(depth)]", "MDL201"),
    ("ModuleDict -> dict", "self.heads = nn.ModuleDict()", "self.heads = {}", "MDL201"),
    ("ModuleList -> tuple", "nn.ModuleList([Block(dim) for _ in range(depth)])", "tuple(Block(dim) for _ in range(depth))", "MDL201"),
    ("dropout built in forward", "self.drop(self.fc(self.norm(x)))", "nn.Dropout(0.1)(self.fc(self.norm(x)))", "MDL202"),
    ("batch norm built in forward", "x = self.bn(x.mean(1))", "x = nn.BatchNorm1d(x.shape[-1])(x.mean(1))", "MDL202"),
    ("super().train dropped", "        super().train(mode)\n", "", "MDL203"),
    ("return self dropped", "        self.cache = None\n        return self\n", "        self.cache = None\n", "MDL203"),
    ("fit named train", "    def train(self, mode=True):\n        super().train(mode)", "    def train(self, loader, epochs=1):\n        super().train(True)", "MDL203"),
    ("eval() -> training flag", "    model.eval()\n", "    model.training = False\n", "MDL204"),
]


def test_clean_template_is_clean():
    found = check_source(CLEAN, select=list(CODES))
    assert [(f.line, f.code) for f in found] == []


@pytest.mark.parametrize("label,old,new,code", MUTATIONS, ids=[m[0] for m in MUTATIONS])
def test_mutation_is_found(label, old, new, code):
    assert CLEAN.count(old) == 1, label
    mutated = CLEAN.replace(old, new)
    found = check_source(mutated, select=list(CODES))
    assert [f.code for f in found] == [code], [(f.line, f.code, f.message) for f in found]


def test_mutation_on_the_structure_fixture():
    """The correct fixture model turned into the buggy patterns by hand-picked edits."""
    path = Path(__file__).resolve().parent.parent / "fixtures" / "structure" / "models.py"
    clean = path.read_text()
    assert check_source(clean, select=list(CODES)) == []
    edits = [
        ("self.heads = nn.ModuleDict()", "self.heads = {}", "MDL201"),
        ("        super().train(mode)\n        self.teacher.eval()", "        self.teacher.eval()", "MDL203"),
        ("h = self.norm(self.encoder(x))", "h = nn.BatchNorm1d(4)(self.encoder(x))", "MDL202"),
        ("    backbone.eval()\n", "    backbone.training = False\n", "MDL204"),
    ]
    for old, new, code in edits:
        assert clean.count(old) == 1, old
        found = check_source(clean.replace(old, new), select=list(CODES))
        assert [f.code for f in found] == [code], (old, [(f.line, f.code) for f in found])

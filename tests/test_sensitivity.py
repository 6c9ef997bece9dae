"""Mode sensitivity (`analysis.sensitivity`) on multi-file projects, built as the engine builds them."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Dict

import libcst as cst
import pytest

from modelint.analysis.classbodies import class_bodies, project_fingerprint, with_bodies
from modelint.analysis.context import FileContext
from modelint.analysis.index import ProjectIndex, facts_from_source
from modelint.analysis.modules import ModuleClassifier
from modelint.analysis.sensitivity import NO, UNKNOWN, YES, combine, Sensitivity


def project(tmp_path: Path, files: Dict[str, str]) -> Dict[str, FileContext]:
    """Write `files` (relative path -> source) under tmp_path and build each file's context over one
    project index, as the engine's index pass does."""
    index = ProjectIndex()
    parsed = {}
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    for rel in files:
        path = tmp_path / rel
        data = path.read_bytes()
        facts = with_bodies(facts_from_source(data, path), data)
        index.add(facts)
        parsed[rel] = (cst.parse_module(data), facts)
    classifier = ModuleClassifier(index)
    return {rel: FileContext(str(tmp_path / rel), module, facts, classifier) for rel, (module, facts) in parsed.items()}


def sens(ctx: FileContext, target) -> Sensitivity:
    if isinstance(target, str) and not target.startswith(("<", "expr:")):
        cls = ctx.top_level_classes().get(target)
        if cls is not None:
            return ctx.mode_sensitivity(cls)
        return ctx.mode_sensitivity(target)
    return ctx.mode_sensitivity(cst.parse_expression(target[5:]))


MLP = """
import torch.nn as nn

class MLP(nn.Module):
    def __init__(self, d=4):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, 1))
        self.norm = nn.LayerNorm(d)

    def forward(self, x):
        return self.net(self.norm(x))
"""


def test_plain_mlp_is_not_sensitive(tmp_path):
    ctx = project(tmp_path, {"mlp.py": MLP})["mlp.py"]
    assert sens(ctx, "MLP").answer == NO
    assert sens(ctx, "expr:MLP(8)").answer == NO
    assert sens(ctx, "expr:nn.Sequential(nn.Linear(3, 4), nn.ReLU())").answer == NO


def test_literal_zero_dropout_is_not_sensitive_and_a_literal_half_is(tmp_path):
    ctx = project(tmp_path, {"m.py": """
        import torch.nn as nn
        class A(nn.Module):
            def __init__(self):
                super().__init__()
                self.drop = nn.Dropout(0.0)
                self.rnn = nn.LSTM(4, 4, num_layers=2)
                self.att = nn.MultiheadAttention(4, 2)
        class B(nn.Module):
            def __init__(self):
                super().__init__()
                self.drop = nn.Dropout(p=0.5)
    """})["m.py"]
    assert sens(ctx, "A").answer == NO
    b = sens(ctx, "B")
    assert b.answer == YES and "nn.Dropout(p=0.5)" in b.reason and "line 12" in b.reason


def test_dropout_from_a_constructor_argument(tmp_path):
    """`nn.Dropout(p)` with `p=0.1`: the class alone is "unknown" (the caller decides, documented);
    a construction binds it: `Net()` -> yes, `Net(p=0.0)` / `Net(0)` -> no, `Net(p=args.p)` -> unknown."""
    ctx = project(tmp_path, {"m.py": """
        import torch.nn as nn
        class Net(nn.Module):
            def __init__(self, d, p=0.1):
                super().__init__()
                self.fc = nn.Linear(d, d)
                self.drop = nn.Dropout(p)
    """})["m.py"]
    alone = sens(ctx, "Net")
    assert alone.answer == UNKNOWN and "`p` (default 0.1)" in alone.reason
    assert sens(ctx, "expr:Net(4)").answer == YES
    assert sens(ctx, "expr:Net(4, p=0.0)").answer == NO
    assert sens(ctx, "expr:Net(4, 0)").answer == NO
    assert sens(ctx, "expr:Net(4, p=args.p)").answer == UNKNOWN
    assert sens(ctx, "expr:Net(4, p=0.0).to(device)").answer == NO


def test_zero_passed_down_through_another_files_constructor(tmp_path):
    files = {
        "pkg/__init__.py": "",
        "pkg/enc.py": """
            import torch.nn as nn
            class Encoder(nn.Module):
                def __init__(self, d, dropout=0.1):
                    super().__init__()
                    self.layer = nn.TransformerEncoderLayer(d, 2, dropout=dropout)
        """,
        "pkg/model.py": """
            import torch.nn as nn
            from .enc import Encoder
            class Zero(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.enc = Encoder(8, dropout=0.0)
            class Default(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.enc = Encoder(8)
        """,
    }
    ctx = project(tmp_path, files)["pkg/model.py"]
    assert sens(ctx, "Zero").answer == NO
    default = sens(ctx, "Default")
    assert default.answer == YES and "Encoder" in default.reason and "TransformerEncoderLayer" in default.reason


def test_batch_norm_in_a_submodule_class_of_another_file(tmp_path):
    files = {
        "proj/__init__.py": "",
        "proj/blocks.py": """
            from torch import nn
            class ConvBlock(nn.Module):
                def __init__(self, c):
                    super().__init__()
                    self.conv = nn.Conv2d(c, c, 3)
                    self.bn = nn.BatchNorm2d(c)
            class NoStats(nn.Module):
                def __init__(self, c):
                    super().__init__()
                    self.bn = nn.BatchNorm2d(c, track_running_stats=False)
        """,
        "proj/net.py": """
            import torch.nn as nn
            from proj.blocks import ConvBlock, NoStats
            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.body = nn.Sequential(ConvBlock(3), nn.ReLU())
            class Plain(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.body = NoStats(3)
        """,
    }
    ctx = project(tmp_path, files)["proj/net.py"]
    net = sens(ctx, "Net")
    assert net.answer == YES and "ConvBlock" in net.reason and "BatchNorm2d" in net.reason and "proj.blocks" in net.reason
    assert sens(ctx, "Plain").answer == NO


def test_a_training_branch_and_a_functional_mode_call(tmp_path):
    ctx = project(tmp_path, {"m.py": """
        import torch.nn as nn
        import torch.nn.functional as F
        class Branch(nn.Module):
            def forward(self, x):
                if self.training:
                    x = x + 1
                return x
        class Functional(nn.Module):
            def forward(self, x, stats):
                return F.batch_norm(x, *stats, training=True)
    """})["m.py"]
    branch = sens(ctx, "Branch")
    assert branch.answer == YES and "self.training" in branch.reason and "line 6" in branch.reason
    assert sens(ctx, "Functional").answer == YES


def test_unknown_third_party_base_and_from_pretrained(tmp_path):
    ctx = project(tmp_path, {"m.py": """
        import torch.nn as nn
        from somelib import FancyBase, FancyBlock
        from transformers import AutoModel, AutoTokenizer
        class Sub(FancyBase):
            pass
        class Holder(nn.Module):
            def __init__(self):
                super().__init__()
                self.block = FancyBlock(3)
        class Pre(nn.Module):
            def __init__(self, name):
                super().__init__()
                self.tok = AutoTokenizer.from_pretrained(name)
                self.bert = AutoModel.from_pretrained(name)
        class TokOnly(nn.Module):
            def __init__(self, name):
                super().__init__()
                self.tok = AutoTokenizer.from_pretrained(name)
                self.fc = nn.Linear(3, 3)
    """})["m.py"]
    sub = sens(ctx, "Sub")
    assert sub.answer == UNKNOWN and "somelib.FancyBase" in sub.reason
    assert sens(ctx, "Holder").answer == UNKNOWN
    pre = sens(ctx, "Pre")
    assert pre.answer == UNKNOWN and "AutoModel.from_pretrained" in pre.reason
    assert sens(ctx, "TokOnly").answer == NO
    assert sens(ctx, "expr:AutoModel.from_pretrained('bert')").answer == UNKNOWN


def test_a_library_model_factory_kept_as_an_attribute_is_unknown(tmp_path):
    ctx = project(tmp_path, {"m.py": """
        import torch
        import torch.nn as nn
        import torchvision
        import torchvision.models as tvm
        from torchvision import models
        class Full(nn.Module):
            def __init__(self):
                super().__init__()
                self.backbone = torchvision.models.resnet50(pretrained=False)
        class Short(nn.Module):
            def __init__(self):
                super().__init__()
                self.backbone = models.resnet18()
                self.head = nn.Linear(512, 1)
        class Alias(nn.Module):
            def __init__(self):
                super().__init__()
                self.features = tvm.vgg16().features
        class Plain(nn.Module):
            def __init__(self):
                super().__init__()
                self.grid = torch.zeros(3)
                self.fc = nn.Linear(3, 3)
    """})["m.py"]
    full = sens(ctx, "Full")
    assert full.answer == UNKNOWN and "torchvision.models.resnet50(...)" in full.reason
    assert sens(ctx, "Short").answer == UNKNOWN
    assert sens(ctx, "Alias").answer == UNKNOWN
    assert sens(ctx, "Plain").answer == NO  # `torch.zeros` is no model factory


def test_yes_wins_over_unknown(tmp_path):
    ctx = project(tmp_path, {"m.py": """
        import torch.nn as nn
        from somelib import FancyBlock
        class Mixed(nn.Module):
            def __init__(self):
                super().__init__()
                self.block = FancyBlock(3)
                self.bn = nn.BatchNorm1d(3)
    """})["m.py"]
    assert sens(ctx, "Mixed").answer == YES


def test_layer_factory_parameters(tmp_path):
    """timm / torchvision style: `norm_layer=nn.BatchNorm2d` (a default class), and `norm_layer=None`
    replaced in the body by a mode-sensitive class."""
    ctx = project(tmp_path, {"m.py": """
        import torch.nn as nn
        class ByDefault(nn.Module):
            def __init__(self, c, norm_layer=nn.BatchNorm2d):
                super().__init__()
                self.norm = norm_layer(c)
        class ByNone(nn.Module):
            def __init__(self, c, norm_layer=None):
                super().__init__()
                if norm_layer is None:
                    norm_layer = nn.BatchNorm2d
                self.norm = norm_layer(c)
        class LayerNormOnly(nn.Module):
            def __init__(self, c, norm_layer=nn.LayerNorm):
                super().__init__()
                self.norm = norm_layer(c)
                for m in self.modules():
                    if isinstance(m, nn.BatchNorm2d):
                        pass
    """})["m.py"]
    assert sens(ctx, "expr:ByDefault(3)").answer == YES
    assert sens(ctx, "expr:ByDefault(3, norm_layer=nn.LayerNorm)").answer == NO
    assert sens(ctx, "ByNone").answer == YES
    assert sens(ctx, "LayerNormOnly").answer == NO


def test_subclass_of_a_layer_and_of_a_project_class(tmp_path):
    files = {
        "a.py": """
            import torch.nn as nn
            class MyBN(nn.BatchNorm2d):
                pass
            class Base(nn.Module):
                def forward(self, x):
                    return x * 2 if self.training else x
        """,
        "b.py": """
            from a import Base
            class Child(Base):
                pass
        """,
    }
    ctxs = project(tmp_path, files)
    assert sens(ctxs["a.py"], "MyBN").answer == YES
    assert sens(ctxs["b.py"], "Child").answer == YES


def test_cycles_terminate(tmp_path):
    files = {
        "a.py": "import torch.nn as nn\nfrom b import B\nclass A(nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.b = B()\n",
        "b.py": "import torch.nn as nn\nfrom a import A\nclass B(nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.a = A()\n",
    }
    assert sens(project(tmp_path, files)["a.py"], "A").answer == NO


def test_expressions_that_do_not_show_what_they_build(tmp_path):
    ctx = project(tmp_path, {"m.py": "import torch\nimport torch.nn as nn\n"})["m.py"]
    assert sens(ctx, "expr:build_model(cfg)").answer == UNKNOWN
    assert sens(ctx, "expr:torch.load(path)").answer == UNKNOWN
    assert sens(ctx, "expr:nn.Sequential(*layers)").answer == UNKNOWN
    assert sens(ctx, "expr:nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.2))").answer == YES


def test_docstrings_and_comments_are_not_calls(tmp_path):
    ctx = project(tmp_path, {"m.py": '''
        import torch.nn as nn
        class Doc(nn.Module):
            """Unlike the paper we use no nn.Dropout(0.5) here.

        and no nn.BatchNorm2d(c) either (a line at column 0 inside the docstring).
            """
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(2, 2)  # was nn.Dropout(0.1)
    '''})["m.py"]
    assert sens(ctx, "Doc").answer == NO


def test_memoised_per_project(tmp_path):
    ctx = project(tmp_path, {"mlp.py": MLP})["mlp.py"]
    first = sens(ctx, "MLP")
    assert sens(ctx, "MLP") is first


def test_combine_prefers_yes_then_unknown():
    y, u = Sensitivity(YES, "y"), Sensitivity(UNKNOWN, "u")
    assert combine([None, u, y]) is y
    assert combine([u, Sensitivity(NO, "")]) is u
    assert combine([]).answer == NO


def test_class_bodies_fingerprint_changes_with_a_body(tmp_path):
    path = tmp_path / "m.py"
    a = b"import torch.nn as nn\nclass A(nn.Module):\n    def __init__(self):\n        self.x = nn.Linear(1, 1)\n"
    b = a.replace(b"nn.Linear(1, 1)", b"nn.Dropout(0.1)")
    prints = []
    for data in (a, b):
        index = ProjectIndex()
        index.add(with_bodies(facts_from_source(data, path), data))
        prints.append(project_fingerprint(index))
    assert prints[0] != prints[1]
    assert index.fingerprint() == ProjectIndex(modules={"m": facts_from_source(a, path)}).fingerprint()


def test_cache_round_trips_class_bodies(tmp_path):
    """The cache stores each file's class bodies under its content key (a changed file gets a new
    key; the result key changes through `project_fingerprint`, tested above)."""
    from modelint.cache import Cache

    cache = Cache(tmp_path / ".cache", salt="t")
    data = b"import torch.nn as nn\nclass E(nn.Module):\n    def __init__(self):\n        self.d = nn.Dropout(0.1)\n"
    key = cache.file_key("e.py", data)
    bodies = class_bodies(data, facts_from_source(data, Path("e.py")))
    cache.put_bodies(key, bodies)
    assert cache.get_bodies(key) == bodies


@pytest.mark.parametrize("header", ["class Net(\n    nn.Module,\n):", "class Net(nn.Module):"])
def test_multiline_class_headers(tmp_path, header):
    src = f"import torch.nn as nn\n{header}\n    def __init__(self):\n        super().__init__()\n        self.d = nn.Dropout()\n"
    ctx = project(tmp_path, {"m.py": src})["m.py"]
    assert sens(ctx, "Net").answer == YES


def test_a_module_passed_in_and_kept(tmp_path):
    """`self.backbone = backbone`: unknown alone when annotated as a module; a construction that
    passes a construction decides."""
    ctx = project(tmp_path, {"m.py": """
        import torch.nn as nn
        class Seg(nn.Module):
            def __init__(self, backbone: nn.Module, width: int):
                super().__init__()
                self.backbone = backbone
                self.width = width
                self.head = nn.Conv2d(width, 2, 1)
        class Untyped(nn.Module):
            def __init__(self, width):
                super().__init__()
                self.width = width
    """})["m.py"]
    alone = sens(ctx, "Seg")
    assert alone.answer == UNKNOWN and "backbone" in alone.reason
    assert sens(ctx, "expr:Seg(nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8)), 8)").answer == YES
    assert sens(ctx, "expr:Seg(nn.Linear(3, 8), 8)").answer == NO
    assert sens(ctx, "Untyped").answer == NO


WRAPPED = """
import copy
import torch
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.optim.swa_utils import AveragedModel

class Noisy(nn.Module):
    def __init__(self):
        super().__init__()
        self.drop = nn.Dropout(0.2)

class Flat(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 3)

class Holder(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.DataParallel(Noisy())
"""


@pytest.mark.parametrize("wrapper", ["nn.DataParallel({})", "DDP({})", "torch.compile({})", "copy.deepcopy({})",
                                     "AveragedModel({})", "nn.DataParallel({}).cuda()", "torch.compile({}.to('cuda'))"])
def test_pass_through_wrappers_take_the_wrapped_models_answer(tmp_path, wrapper):
    ctx = project(tmp_path, {"w.py": WRAPPED})["w.py"]
    assert sens(ctx, "expr:" + wrapper.format("Noisy()")).answer == YES
    assert sens(ctx, "expr:" + wrapper.format("Flat()")).answer == NO
    assert sens(ctx, "expr:" + wrapper.format("model")).answer == UNKNOWN  # built elsewhere


def test_a_wrapper_kept_in_a_class_body_counts_as_what_it_wraps(tmp_path):
    ctx = project(tmp_path, {"w.py": WRAPPED})["w.py"]
    assert sens(ctx, "Holder").answer == YES


def _key_answers(tmp_path, source: str, asks):
    from modelint.analysis.keysensitivity import KeySensitivity
    from modelint.analysis.modeflow import for_context

    ctx = project(tmp_path, {"k.py": source})["k.py"]
    mf = for_context(ctx)
    scopes = {getattr(getattr(s, "name", None), "value", "<module>"): s for s in mf.scopes()}
    keys = KeySensitivity(ctx, mf)
    return [keys.of(scopes[scope], key) for scope, key in asks]


def test_a_parameter_takes_what_the_callers_pass_through_pass_through_rebindings(tmp_path):
    answers = _key_answers(tmp_path, WRAPPED + """
def fit(model, data):
    for x in data:
        model(x).sum().backward()

def score(model, data):
    return [model(x) for x in data]

def main(engine, data, flag):
    model = Flat().cuda()
    model, opt, data = engine.make_private(module=model, data=data)
    model = DDP(model)
    fit(model, data)
    other = Noisy() if flag else Flat()
    score(other, data)
    score(Flat(), data)
""", [("fit", "model"), ("main", "model"), ("score", "model"), ("main", "other")])
    assert answers == [NO, NO, YES, YES]


def test_a_kept_constructor_argument_takes_what_the_constructions_pass(tmp_path):
    answers = _key_answers(tmp_path, WRAPPED + """
class Keep(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def freeze(self):
        self.inner.eval()

a = Keep(Flat())
""", [("freeze", "self.inner")])
    assert answers == [NO]  # `self.inner = inner` in __init__, and `Keep(Flat())` passes a flat network
    lone = _key_answers(tmp_path / "lone", WRAPPED + """
def fit(model, data):
    return model(data)
""", [("fit", "model")])
    assert lone == [UNKNOWN]  # no caller in this file: nothing says what it is


def test_a_free_name_of_a_function_is_the_scripts_global(tmp_path):
    """A script's `model = Flat()` at module level, switched in a `test()` function: the function's
    free name `model` is that global; a local of the same name shadows it."""
    answers = _key_answers(tmp_path, WRAPPED + """
model = Flat().to("cpu")
noisy = Noisy()

def test():
    model.eval()
    noisy.eval()

def shadow(flag):
    model = make() if flag else Flat()
    model.eval()
""", [("test", "model"), ("test", "noisy"), ("shadow", "model"), ("test", "absent")])
    assert answers == [NO, YES, UNKNOWN, UNKNOWN]


def test_a_plain_object_handed_a_network_is_not_mode_free(tmp_path):
    """`Learner(net, opt)`: a project class that is not a module keeps what it is given under any
    attribute name; its class answer ("no": unannotated kept parameters are plain values) does not
    say what the object holds. Built from literals only, it holds nothing it was handed."""
    answers = _key_answers(tmp_path, WRAPPED + """
class Learner:
    def __init__(self, net, lr):
        self.image_net = net
        self.lr = lr

def fit(net):
    learner = Learner(net, 0.1)
    meter = Learner(None, 0.1)
    learner.image_net.eval()
""", [("fit", "learner"), ("fit", "meter")])
    assert answers == [UNKNOWN, NO]


def test_layers_of_a_library_the_profile_has_read(tmp_path):
    """PyTorch Geometric (`frameworks/torch.py` `_PYG_LAYERS`): message-passing convolutions without
    dropout are mode-free under any import spelling; attention convolutions and the BasicGNN models
    are decided by their `dropout` / `norm` arguments; a class of the package the table does not list
    (a wrapper of a module it is given) stays unknown."""
    ctx = project(tmp_path, {"g.py": """
        import torch.nn as nn
        import torch_geometric.nn as pyg_nn
        from torch_geometric.nn import GATConv, GINConv
        from torch_geometric.nn.conv.sage_conv import SAGEConv
        from torch_geometric.nn.models import GCN

        class Net(nn.Module):
            def __init__(self, d, heads=2):
                super().__init__()
                self.c1 = pyg_nn.GCNConv(d, 16)
                self.c2 = SAGEConv(16, 16)
                self.att = GATConv(16, 16, heads)
                self.lin = nn.Linear(16, 2)

        class Att(nn.Module):
            def __init__(self, d, p):
                super().__init__()
                self.att = GATConv(d, 16, dropout=p)
    """})["g.py"]
    assert sens(ctx, "Net").answer == NO
    assert sens(ctx, "expr:Att(4, 0.0)").answer == NO
    att = sens(ctx, "expr:Att(4, 0.6)")
    assert att.answer == YES and "dropout" in att.reason
    assert sens(ctx, "expr:Att(4, cfg.p)").answer == UNKNOWN
    assert sens(ctx, "expr:GCN(4, 16, 2)").answer == NO
    assert sens(ctx, "expr:GCN(4, 16, 2, 2, 0.5)").answer == YES  # dropout is the 5th argument
    assert sens(ctx, "expr:GCN(4, 16, 2, 0.5)").answer == NO  # (the 4th is out_channels)
    assert sens(ctx, "expr:GCN(4, 16, 2, norm='batch_norm')").answer == YES
    assert sens(ctx, "expr:GCN(4, 16, 2, norm=None, dropout=0.0)").answer == NO
    assert sens(ctx, "expr:GINConv(nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5)))").answer != NO
    assert sens(ctx, "expr:pyg_nn.MetaPath2Vec(edges, 128, metapath)").answer == NO  # one Embedding


def test_torchaudio_transforms_are_mode_free(tmp_path):
    """torchaudio's transforms (`frameworks/torch.py` `_TORCHAUDIO_TRANSFORMS`) hold no mode-dependent
    layer under any import spelling; its models (`torchaudio.models.*`) stay unknown, and a dropout
    beside a transform still decides."""
    ctx = project(tmp_path, {"a.py": """
        import torch.nn as nn
        import torchaudio
        from torchaudio.transforms import MelSpectrogram

        class LogMel(nn.Module):
            def __init__(self, **kw):
                super().__init__()
                self.mel = MelSpectrogram(**kw)
                self.db = torchaudio.transforms.AmplitudeToDB()

        class Noisy(nn.Module):
            def __init__(self):
                super().__init__()
                self.mel = MelSpectrogram()
                self.drop = nn.Dropout(0.1)

        class Acoustic(nn.Module):
            def __init__(self):
                super().__init__()
                self.net = torchaudio.models.Wav2Letter(num_classes=40)
    """})["a.py"]
    assert [sens(ctx, n).answer for n in ("LogMel", "Noisy", "Acoustic")] == [NO, YES, UNKNOWN]


def test_a_project_factory_takes_the_classes_it_returns(tmp_path):
    """`load_vgg16(path)` in another file, whose returns all build a class (`vgg = Vgg(); vgg.load_
    state_dict(...); return vgg`): those classes decide. A factory with another return
    (`return torch.load(path)`) or a tuple return (`return net, opt`) does not show what it builds."""
    ctxs = project(tmp_path, {
        "nets.py": """
            import torch
            import torch.nn as nn

            class Plain(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.conv = nn.Conv2d(3, 8, 3)

            class Normed(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.bn = nn.BatchNorm2d(8)

            def load_plain(path):
                net = Plain()
                net.load_state_dict(torch.load(path))
                return net

            def pick(flag):
                if flag:
                    return Plain()
                return Normed()

            def restore(path, whole):
                if whole:
                    return torch.load(path)
                return Plain()

            def with_opt():
                net = Plain()
                return net, torch.optim.SGD(net.parameters(), 0.1)
        """,
        "train.py": """
            from nets import load_plain, pick, restore, with_opt
        """,
    })
    ctx = ctxs["train.py"]
    answers = [sens(ctx, f"expr:{e}").answer for e in ("load_plain('w.pt')", "pick(True)", "restore('w', False)", "with_opt()")]
    assert answers == [NO, YES, UNKNOWN, UNKNOWN]


def test_a_factory_returning_a_container_is_judged_by_what_it_puts_in(tmp_path):
    """`make_layers(cfg)` / `block(n)` returning `nn.Sequential(...)`: the classes the body builds
    decide, also for a class that keeps the result (`self.features = make_layers(cfg)`), in the
    factory's file or from another. Only a "yes" among them counts: a plain stack built with a stdlib
    `OrderedDict(` stays "no"."""
    ctxs = project(tmp_path, {
        "layers.py": """
            from collections import OrderedDict
            import torch.nn as nn

            def make_layers(cfg, batch_norm=False):
                layers = []
                for v in cfg:
                    layers += [nn.Conv2d(3, v, 3), nn.BatchNorm2d(v), nn.ReLU()]
                return nn.Sequential(*layers)

            def plain_stack(n):
                return nn.Sequential(OrderedDict([("fc", nn.Linear(n, n)), ("act", nn.ReLU())]))

            def regularised(n):
                return nn.ModuleList([nn.Linear(n, n), nn.Dropout(0.2)])
        """,
        "model.py": """
            import torch.nn as nn
            from layers import make_layers, plain_stack

            class VGGish(nn.Module):
                def __init__(self, cfg):
                    super().__init__()
                    self.features = make_layers(cfg)
                    self.fc = nn.Linear(8, 2)

            class Plain(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.body = plain_stack(8)
        """,
    })
    layers, model = ctxs["layers.py"], ctxs["model.py"]
    answers = [sens(layers, f"expr:{e}").answer for e in ("make_layers([8])", "plain_stack(8)", "regularised(8)")]
    assert answers == [YES, NO, YES]
    assert [sens(model, n).answer for n in ("VGGish", "Plain")] == [YES, NO]


def test_a_layer_chosen_by_a_constructor_literal_is_built_only_for_that_literal(tmp_path):
    """`if norm == "batch": self.norm = nn.BatchNorm2d(c)` (or `elif (norm == "batch"):`): a
    construction that binds another literal, passed or by default, does not build it; asked about
    alone, the caller decides; a test of anything else (`if c > 8:`) or an `else:` arm decides nothing."""
    ctx = project(tmp_path, {"m.py": """
        import torch.nn as nn
        class Block(nn.Module):
            def __init__(self, c, norm="instance"):
                super().__init__()
                if norm == "instance":
                    self.norm = nn.InstanceNorm2d(c)
                elif (norm == "batch"):
                    # a comment between the test and the layer
                    self.norm = nn.BatchNorm2d(c)
        class Wide(nn.Module):
            def __init__(self, c, norm="instance"):
                super().__init__()
                if c > 8:
                    self.norm = nn.BatchNorm2d(c)
        class Other(nn.Module):
            def __init__(self, c, norm="instance"):
                super().__init__()
                if norm == "instance":
                    self.norm = nn.InstanceNorm2d(c)
                else:
                    self.norm = nn.BatchNorm2d(c)
    """})["m.py"]
    answers = [sens(ctx, f"expr:{e}").answer for e in (
        "Block(3)", "Block(3, norm='instance')", "Block(3, norm='batch')", "Wide(3)", "Other(3)")]
    assert answers == [NO, NO, YES, YES, YES]
    assert sens(ctx, "Block").answer != NO


def test_a_layer_built_under_a_constructor_flag_is_built_only_when_the_flag_is_set(tmp_path):
    """`if use_bn: self.bn = nn.BatchNorm1d(d)` (or `if self.use_bn:` after keeping the flag): a
    construction that leaves the flag at a falsy default, or passes a falsy literal, builds no such
    layer; a true or unknown value builds it (as an unknown `norm` does above); a test of something that is not a parameter decides
    nothing, and neither does `if not flag:` (its arm runs for the falsy value)."""
    ctx = project(tmp_path, {"m.py": """
        import torch.nn as nn
        class Head(nn.Module):
            def __init__(self, d, use_bn=False, dropout=0):
                super().__init__()
                self.fc = nn.Linear(d, d)
                self.use_bn = use_bn
                if use_bn:
                    self.bn = nn.BatchNorm1d(d)
                if self.use_bn:  # the kept flag
                    self.bn2 = nn.BatchNorm1d(d)
        class Flagged(nn.Module):
            def __init__(self, d, plain=False):
                super().__init__()
                if not plain:
                    self.bn = nn.BatchNorm1d(d)
        class Global(nn.Module):
            def __init__(self, d):
                super().__init__()
                if USE_BN:
                    self.bn = nn.BatchNorm1d(d)
    """})["m.py"]
    answers = [sens(ctx, f"expr:{e}").answer for e in (
        "Head(8)", "Head(8, use_bn=False)", "Head(8, False)", "Head(8, use_bn=True)", "Head(8, use_bn=cfg.bn)",
        "Flagged(8)", "Global(8)")]
    assert answers == [NO, NO, NO, YES, YES, YES, YES]
    assert sens(ctx, "Head").answer != NO


def test_a_copy_and_a_wrapper_holding_a_sensitive_model(tmp_path):
    """`ema = copy.deepcopy(net)` is built like `net`; a layer-free wrapper that keeps what it is
    handed (`Sampler(ema, steps)`) holds a sensitive model when handed one ("yes"), or a module
    construction whose answer is unknown (`Noisy(p)`-like with an outside flag); handed only a count,
    it stays "no"."""
    answers = _key_answers(tmp_path, WRAPPED + """
class Sampler(nn.Module):
    def __init__(self, model, steps):
        super().__init__()
        self.model = model
        self.steps = steps

class Maybe(nn.Module):
    def __init__(self, p):
        super().__init__()
        self.drop = nn.Dropout(p)

def run(steps, p):
    net = Noisy()
    ema = copy.deepcopy(net)
    flat = copy.deepcopy(Flat())
    sampler = Sampler(ema, steps)
    flat_sampler = Sampler(flat, steps)
    counted = Sampler(None, steps)
    maybe = Sampler(Maybe(p), steps)
    unknown = Maybe(p)
    guessed = Sampler(unknown, steps)
    opaque = Sampler(steps, steps)
    rewrapped = Flat()
    rewrapped = Sampler(rewrapped, steps)
    renoisy = Noisy()
    renoisy = Sampler(renoisy, steps)
""", [("run", k) for k in ("ema", "sampler", "flat_sampler", "counted", "guessed", "opaque", "rewrapped", "renoisy")])
    assert answers == [YES, YES, NO, NO, YES, NO, NO, YES]  # (`x = Sampler(x)`: x's earlier binding decides)

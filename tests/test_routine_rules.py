"""MDL304 (wrong-switch-in-routine), MDL205 (frozen-module-reset-by-train) and the routine facts
they read (`analysis/routines.py`), beyond the rules' VALID/INVALID examples: cross-file projects,
the result cache, and the routine kinds."""

from __future__ import annotations

import textwrap

import libcst as cst

from modelint.analysis.classbodies import with_bodies
from modelint.analysis.context import FileContext
from modelint.analysis.index import ProjectIndex, facts_from_source
from modelint.analysis.modules import ModuleClassifier
from modelint.analysis.routines import evaluation_like_name, is_test_suite_file, routine_facts
from modelint.engine import EngineSettings, check_paths, check_source


def codes(source: str, code: str, path: str = "example.py"):
    return [f.line for f in check_source(textwrap.dedent(source), path=path, select=[code])]


def routine_kind(source: str, name: str, path: str = "m.py"):
    data = textwrap.dedent(source).encode()
    facts = with_bodies(facts_from_source(data, __import__("pathlib").Path(path), "m"), data)
    index = ProjectIndex()
    index.add(facts)
    module = cst.parse_module(data)
    ctx = FileContext(path, module, facts, ModuleClassifier(index))
    fn = next(s for s in module.body if isinstance(s, cst.FunctionDef) and s.name.value == name)
    return routine_facts(ctx, fn).kind


# --- routine kinds ----------------------------------------------------------------------------------
def test_routine_kinds():
    src = """
    import torch

    def a(model, x, opt):
        model(x).sum().backward()
        opt.step()

    @torch.no_grad()
    def b(model, x):
        return model(x)

    def c(model, x, opt):
        loss = model(x).sum()
        loss.backward()
        opt.step()
        with torch.no_grad():
            return model(x)

    def evaluate_saliency(model, x):
        model(x).sum().backward()
        return x.grad

    def closure(model, x):
        model(x).sum().backward()

    def helper(model, x, opt):
        a(model, x, opt)

    def d(x):
        return x + 1
    """
    assert routine_kind(src, "a") == "train"
    assert routine_kind(src, "b") == "eval"
    assert routine_kind(src, "c") == "mixed"
    assert routine_kind(src, "evaluate_saliency") == "mixed"
    assert routine_kind(src, "closure") == "train"
    assert routine_kind(src, "helper") == "train"  # the step is in a function it calls
    assert routine_kind(src, "d") is None


def test_evaluation_names_and_test_suites():
    assert evaluation_like_name("evaluate") and evaluation_like_name("validate_epoch") and evaluation_like_name("infer")
    assert not evaluation_like_name("infer_shape") and not evaluation_like_name("train")
    # a predictor's loss is training code; decoding routines are evaluations for MDL302 (`last_word`)
    assert not evaluation_like_name("predict_loss", last_word=True) and evaluation_like_name("eval_loss")
    assert evaluation_like_name("greedy_decode", last_word=True) and evaluation_like_name("beam_search", last_word=True)
    assert not evaluation_like_name("greedy_decode") and not evaluation_like_name("beamformer", last_word=True)
    # an evaluation word after a one-word prefix (`last_word` only), not after a training or data prefix
    for name in ("dnn_test_model", "run_test", "net_evaluate", "model_eval_epoch"):
        assert evaluation_like_name(name, last_word=True) and not evaluation_like_name(name), name
    for name in ("train_test", "unit_test", "data_test_split", "get_test", "split_test", "load_test_model",
                 "check_valid", "min_val", "run_test_suite_files"):
        assert not evaluation_like_name(name, last_word=True), name
    assert is_test_suite_file("pkg/tests/test_model.py") and is_test_suite_file("x/model_test.py")
    assert not is_test_suite_file("pkg/evaluation.py")
    # a `test_*.py` outside a tests folder that runs as a script is a script (set 18's resnet1d)
    script = cst.parse_module("def test(model):\n    pass\n\nif __name__ == '__main__':\n    test(None)\n")
    suite = cst.parse_module("def test_a():\n    pass\n\nif __name__ == '__main__':\n    import pytest\n    pytest.main()\n")
    assert not is_test_suite_file("repo/test_ray.py", script) and is_test_suite_file("repo/test_ray.py")
    assert is_test_suite_file("repo/test_ray.py", suite) and is_test_suite_file("repo/tests/test_ray.py", script)


# --- MDL304 -------------------------------------------------------------------------------------------
def test_mdl304_neutral_name_with_volatile_and_generate():
    src = """
    import torch
    from torch.autograd import Variable

    def dump_activations(net, batch):
        net.train()
        return net(Variable(batch, volatile=True))

    def sample_text(lm, prompt):
        lm.train()
        return lm.generate(prompt)
    """
    assert codes(src, "MDL304") == [6, 10]


def test_mdl304_name_alone_is_not_enough_in_tests():
    src = """
    def test_dropout_is_active(model, x):
        model.train()
        assert not (model(x) == model(x)).all()
    """
    assert codes(src, "MDL304") == []
    assert codes(src, "MDL304", path="tests/test_model.py") == []


def test_mdl304_a_call_that_may_switch_back_in_between():
    src = """
    import torch
    from helpers import prepare

    def evaluate(model, x):
        model.train()
        prepare(model)
        with torch.no_grad():
            return model(x)

    def local_noop(model):
        return model

    def validate(model, x):
        model.train()
        local_noop(model)
        with torch.no_grad():
            return model(x)
    """
    assert codes(src, "MDL304") == [15]  # `prepare` (another file) may switch; `local_noop` does not


def test_mdl304_uses_mode_sensitivity_of_a_local_construction():
    src = """
    import torch
    from torch import nn

    @torch.no_grad()
    def predict(x):
        mlp = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
        mlp.train()
        a = mlp(x)
        net = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))
        net.train()
        return a, net(x)
    """
    assert codes(src, "MDL304") == [11]


def test_mdl304_training_routine_option_and_frozen_parts():
    src = """
    def train_epoch(model, loader, opt):
        model.eval()
        for x in loader:
            model(x).sum().backward()
            opt.step()

    def finetune(model, loader, opt):
        model.eval()  # keep batch norm frozen while fine-tuning
        for x in loader:
            model(x).sum().backward()
            opt.step()
    """
    assert codes(src, "MDL304") == [3]
    off = check_source(textwrap.dedent(src), select=["MDL304"], rule_options={"MDL304": {"check-training-routines": False}})
    assert off == []


# --- MDL205 --------------------------------------------------------------------------------------------
PROBE = """
import torch.nn as nn

class Probe(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8))
        self.backbone.requires_grad_(False)
        self.backbone.eval()
        self.head = nn.Linear(8, 2)
"""
TRAIN_SCRIPT = """
from pkg.probe import Probe

def main(loader, opt):
    model = Probe()
    for epoch in range(3):
        model.train()
        for x in loader:
            model(x).sum().backward()
            opt.step()
"""
NO_TRAIN_SCRIPT = """
from pkg.probe import Probe

def main(loader):
    model = Probe()
    return [model(x) for x in loader]
"""


def _check(tmp_path, cache=None):
    files = sorted(tmp_path.rglob("*.py"))
    settings = EngineSettings(select=("MDL205",), root=str(tmp_path), jobs=1, cache=cache)
    return [(f.path.rsplit("/", 1)[-1], f.line) for f in check_paths(files, settings).findings]


def _write(tmp_path, rel, text):
    path = tmp_path / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))


def test_mdl205_class_frozen_in_one_file_reset_by_a_script_in_another(tmp_path):
    _write(tmp_path, "pkg/__init__.py", "")
    _write(tmp_path, "pkg/probe.py", PROBE)
    _write(tmp_path, "pkg/train.py", NO_TRAIN_SCRIPT)
    assert _check(tmp_path) == []  # nothing calls train() on it
    _write(tmp_path, "pkg/train.py", TRAIN_SCRIPT)
    assert _check(tmp_path) == [("probe.py", 9)]


def test_mdl205_cache_follows_the_other_file(tmp_path):
    """The finding in probe.py depends on train.py's text: the result cache must recompute it."""
    from modelint.cache import Cache

    project = tmp_path / "proj"
    _write(project, "pkg/__init__.py", "")
    _write(project, "pkg/probe.py", PROBE)
    _write(project, "pkg/train.py", TRAIN_SCRIPT)
    cache = Cache(tmp_path / ".cache", salt="test")
    assert _check(project, cache) == [("probe.py", 9)]
    _write(project, "pkg/train.py", NO_TRAIN_SCRIPT)
    assert _check(project, cache) == []
    _write(project, "pkg/train.py", TRAIN_SCRIPT)
    assert _check(project, cache) == [("probe.py", 9)]


def test_mdl205_chained_eval_on_a_pretrained_submodule_of_a_lightning_module():
    src = """
    import pytorch_lightning as pl
    from transformers import CLIPVisionModel

    class Captioner(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.vision = CLIPVisionModel.from_pretrained("openai/clip-vit-base-patch32").eval().requires_grad_(False)
            self.vision.eval()
    """
    assert codes(src, "MDL205") == [8]


def test_mdl205_a_train_override_that_reapplies_eval_and_a_mode_free_submodule():
    src = """
    import torch.nn as nn
    import pytorch_lightning as pl

    class A(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.enc = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8))
            self.enc.requires_grad_(False)
            self.enc.eval()

        def train(self, mode=True):
            super().train(mode)
            self.enc.eval()
            return self

    class B(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.proj = nn.Linear(3, 3)
            self.proj.requires_grad_(False)
            self.proj.eval()

    class C(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.enc = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8))
            self.enc.eval()  # no sign of freezing: a temporary switch, not reported
    """
    assert codes(src, "MDL205") == []


def test_mdl205_script_reset_through_a_helper_and_not_after_reapplying():
    src = """
    def epoch(net, loader):
        net.train()
        for x in loader:
            net(x)

    def main(model, loader):
        model.encoder.requires_grad_(False)
        model.encoder.eval()
        for _ in range(3):
            epoch(model, loader)

    def main2(model, loader):
        model.encoder.requires_grad_(False)
        for _ in range(3):
            model.train()
            model.encoder.eval()
    """
    assert codes(src, "MDL205") == [9]


def test_mdl304_forward_in_a_nested_function_and_a_switch_in_the_same_branch():
    src = """
    import torch

    def rollout(policy, batches):
        policy.train()

        def run(batch):
            with torch.inference_mode():
                return policy(batch)

        return [run(b) for b in batches]

    def check(model, loader, every):
        if every:
            model.train()
            with torch.no_grad():
                return [model(x) for x in loader]
    """
    assert codes(src, "MDL304") == [5, 15]

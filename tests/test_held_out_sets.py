"""The patterns held-out sets 13 and 14 showed (issue 14), as general cases with their near misses: a
fresh model handed to another file's evaluation helper (MDL302), a wrapper module whose mode-dependent
layers are those of a model it keeps (MDL302), an input-gradient attack helper whose backward is not a
training step (MDL301); an evaluator object's `__call__`, and a function of a script folder without
`__init__.py` imported by its folder's name (MDL302). Hand-written, not copies of the sets' files."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Dict, List, Sequence

from modelint.engine import EngineSettings, check_paths, check_source

EVALUATION = """
import torch

def evaluate(model, loader):
    correct = 0
    with torch.no_grad():
        for x, y in loader:
            correct += (model(x).argmax(1) == y).sum().item()
    return correct
"""

NETS = """
from torch import nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.Linear(16, 3))

    def forward(self, x):
        return self.body(x)
"""

SCORE = """
import torch
from nets import Net
from evaluation import evaluate

def score(path, val_loader):
    net = Net()
    net.load_state_dict(torch.load(path))
{switch}    return evaluate(net, val_loader)
"""


def project(tmp_path: Path, files: Dict[str, str], codes: Sequence[str]) -> List[tuple]:
    for rel, text in files.items():
        (tmp_path / rel).write_text(textwrap.dedent(text))
    result = check_paths(sorted(tmp_path.rglob("*.py")), EngineSettings(select=tuple(codes), root=str(tmp_path), jobs=1))
    return sorted((Path(f.path).name, f.line, f.code) for f in result.findings)


def test_a_fresh_model_handed_to_another_files_evaluation_is_reported(tmp_path):
    files = {"nets.py": NETS, "evaluation.py": EVALUATION, "score.py": SCORE.format(switch="")}
    assert project(tmp_path, files, ("MDL302",)) == [("score.py", 9, "MDL302")]


def test_the_same_model_switched_first_is_not(tmp_path):
    files = {"nets.py": NETS, "evaluation.py": EVALUATION, "score.py": SCORE.format(switch="    net.eval()\n")}
    assert project(tmp_path, files, ("MDL302",)) == []


def test_a_whole_model_from_torch_load_keeps_its_saved_mode(tmp_path):
    score = SCORE.format(switch="").replace("    net = Net()\n    net.load_state_dict(torch.load(path))\n",
                                            "    net = torch.load(path)\n")
    files = {"nets.py": NETS, "evaluation.py": EVALUATION, "score.py": score}
    assert project(tmp_path, files, ("MDL302",)) == []


def test_a_fresh_model_of_a_mode_free_class_is_not_reported(tmp_path):
    nets = NETS.replace("nn.BatchNorm1d(16)", "nn.ReLU()")
    files = {"nets.py": nets, "evaluation.py": EVALUATION, "score.py": SCORE.format(switch="")}
    assert project(tmp_path, files, ("MDL302",)) == []


WRAPPED = """
import torch
from torch import nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(8, 16), nn.Dropout(0.5), nn.Linear(16, 1))

    def forward(self, x):
        return self.body(x)

class Scaled(nn.Module):
    def __init__(self, inner, scale):
        super().__init__()
        self.inner = inner
        self.scale = scale

    def forward(self, x):
        return self.inner(x) * self.scale

def run(batches, val_batches):
    net = Net()
    scaled = Scaled(net, 2.0)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    for x, y in batches:
        opt.zero_grad()
        (scaled(x) - y).pow(2).mean().backward()
        opt.step()
{switch}    with torch.no_grad():
        return [scaled(x) for x, _ in val_batches]
"""


def test_a_wrapper_run_while_the_model_it_keeps_is_in_training_mode_is_reported():
    found = check_source(textwrap.dedent(WRAPPED.format(switch="")), select=["MDL302"])
    assert [(f.line, f.code) for f in found] == [(31, "MDL302")]


def test_a_wrapper_run_after_the_kept_models_eval_is_not():
    found = check_source(textwrap.dedent(WRAPPED.format(switch="    net.eval()\n")), select=["MDL302"])
    assert found == []


def test_a_wrapper_after_the_eval_of_another_model_is_still_reported():
    source = WRAPPED.format(switch="    other = Net()\n    other.eval()\n")
    found = check_source(textwrap.dedent(source), select=["MDL302"])
    assert [(f.line, f.code) for f in found] == [(33, "MDL302")]


ATTACK = """
import torch
import torch.nn.functional as F

def saliency_step(model, images, labels):
    images = images.clone()
    images.requires_grad = True
    F.cross_entropy(model(images * 2 - 1), labels).backward()
    return images.grad.abs()

def fit(model, opt, loader, val_loader, epochs):
    for epoch in range(epochs):
        for x, y in loader:
            weights = saliency_step(model, x, y)
{train}            loss = (F.cross_entropy(model(x), y, reduction="none") * weights.mean((1, 2, 3))).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        for x, y in val_loader:
            print(saliency_step(model, x, y).mean())
"""


def test_an_input_gradient_helper_is_not_a_training_step():
    found = check_source(textwrap.dedent(ATTACK.format(train="            model.train()\n")), select=["MDL301"])
    assert found == []


def test_the_epochs_own_step_in_eval_is_still_reported():
    found = check_source(textwrap.dedent(ATTACK.format(train="")), select=["MDL301"])
    assert [(f.line, f.code) for f in found] == [(19, "MDL301")]


def test_a_helper_that_also_steps_the_weights_stays_a_training_step():
    # the same helper, but it steps an optimizer itself: a training step, in eval after the first epoch
    source = ATTACK.format(train="            model.train()\n").replace(
        "def saliency_step(model, images, labels):", "def saliency_step(model, images, labels, opt=None):").replace(
        "    return images.grad.abs()", "    if opt is not None:\n        opt.step()\n    return images.grad.abs()")
    found = check_source(textwrap.dedent(source), select=["MDL301"])
    assert [f.code for f in found] == ["MDL301"]


ATTACKS = """
import torch
import torch.nn.functional as F

def fgsm(model, x, y, eps):
    x = x.clone().detach()
    x.requires_grad = True
    F.cross_entropy(model(x), y).backward()
    return (x + eps * x.grad.sign()).detach()
"""

ROBUST = """
import torch.nn.functional as F
from attacks import fgsm

def fit(model, opt, loader, test_loader, epochs):
    for epoch in range(epochs):
        for x, y in loader:
            adv = fgsm(model, x, y, 0.03)
{train}            loss = F.cross_entropy(model(adv), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        for x, y in test_loader:
            adv = fgsm(model, x, y, 0.03)
"""


def test_an_attack_helper_of_another_file_is_not_a_training_step(tmp_path):
    files = {"attacks.py": ATTACKS, "robust.py": ROBUST.format(train="            model.train()\n")}
    assert project(tmp_path, files, ("MDL301", "MDL303")) == []


def test_without_the_train_switch_the_epochs_own_step_is_reported(tmp_path):
    files = {"attacks.py": ATTACKS, "robust.py": ROBUST.format(train="")}
    assert [c for _, _, c in project(tmp_path, files, ("MDL301", "MDL303"))] == ["MDL301"]


def test_a_helper_of_another_file_that_steps_is_a_training_step(tmp_path):
    attacks = ATTACKS.replace("def fgsm(model, x, y, eps):", "def fgsm(model, x, y, eps, opt):").replace(
        "    return (x + eps", "    opt.step()\n    return (x + eps")
    robust = ROBUST.format(train="            model.train()\n").replace("fgsm(model, x, y, 0.03)", "fgsm(model, x, y, 0.03, opt)")
    files = {"attacks.py": attacks, "robust.py": robust}
    # the next epoch's first attack steps in the test loop's eval (MDL301); the test loop's own attacks
    # step in eval on every path (MDL303)
    assert [c for _, _, c in project(tmp_path, files, ("MDL301", "MDL303"))] == ["MDL301", "MDL303"]


FIT = """
import torch

def fit(model, loader, val_loader, opt, scorer):
    for x, y in loader:
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        return [scorer(model(x), y) for x, y in val_loader]
"""

FIT_CALLER = """
import torch
from nets import Net
from fitting import fit

class Scorer(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.drop = torch.nn.Dropout(0.1)

    def forward(self, out, y):
        return (self.drop(out).argmax(1) == y).float().mean()

def main(loader, val_loader):
    net = Net()
    scorer = Scorer()
    return fit(net, loader, val_loader, torch.optim.SGD(net.parameters(), lr=0.1), scorer)
"""


def test_fresh_objects_handed_to_a_helper_that_trains_first_are_its_business(tmp_path):
    # `fit` steps before it evaluates: what it is handed is trained (and switched) there, so the
    # fresh state at the call says nothing (set 4's siamese-triplet `fit(..., model, loss_fn, ...)`)
    files = {"nets.py": NETS, "fitting.py": FIT, "main.py": FIT_CALLER}
    assert project(tmp_path, files, ("MDL302",)) == []


EVALUATOR = """
import torch
from torch import nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8))

    def forward(self, x):
        return self.body(x)

class TiledEval:
    def __init__(self, tile):
        self.tile = tile

    def eval_tile(self, net, tile):
        return net(tile).softmax(1)

    def {entry}(self, net, images):
        with torch.no_grad():
            return [self.eval_tile(net, im[..., : self.tile]) for im in images]

def score(images):
    net = Net()
    net.load_state_dict(torch.load("best.pt"))
{switch}    return TiledEval(64){call}(net, images)
"""


def test_an_evaluator_objects_call_after_the_eval_is_not_reported():
    source = EVALUATOR.format(entry="__call__", switch="    net.eval()\n", call="")
    assert check_source(textwrap.dedent(source), select=["MDL302"]) == []


def test_its_near_miss_a_named_entry_called_without_eval_is_reported():
    source = EVALUATOR.format(entry="run", switch="", call=".run")
    assert [f.code for f in check_source(textwrap.dedent(source), select=["MDL302"])] == ["MDL302"]


NAMESPACE_EVAL = """
import torch

def evaluate(model, x):
    return model(torch.as_tensor(x)).argmax(1)
"""


def test_a_function_imported_through_a_folder_without_init_is_judged_at_its_importers(tmp_path):
    (tmp_path / "attention").mkdir()
    files = {"attention/train.py": NAMESPACE_EVAL, "main.py": "from attention.train import evaluate\n"}
    assert project(tmp_path, files, ("MDL302",)) == []


def test_not_imported_it_is_still_reported(tmp_path):
    (tmp_path / "attention").mkdir()
    files = {"attention/train.py": NAMESPACE_EVAL, "main.py": "import torch\n"}
    assert [c for _, _, c in project(tmp_path, files, ("MDL302",))] == ["MDL302"]


SCHEDULED = """
import torch
from torch import nn

def run_epoch(net, loader, loss_fns, optimizer=None, train=True):
    if train:
        net.train()
    else:
        net.eval()
    for x, y in loader:
        loss = sum(fn(net(x), y) for fn in loss_fns)
        if optimizer is not None:
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

def fit(net, loader, val_loader, loss_fns, optimizer, scheduler, epochs):
    for epoch in range(epochs):
        run_epoch(net, loader, loss_fns, optimizer)
        with torch.no_grad():
            run_epoch(net, val_loader, loss_fns, train=False)
        optimizer, loss_fns = scheduler(epoch, optimizer, loss_fns)
"""


def test_a_scheduler_handed_the_loss_functions_and_the_optimizer_is_no_training_step():
    # set 15's boundary-loss: `scheduler(i, optimizer, loss_fns, loss_weights)` returns new loss functions;
    # `loss_fns` names functions, not a loss value, so the call is not a `loss_scaler(loss, optimizer)` step
    assert check_source(textwrap.dedent(SCHEDULED), select=["MDL301"]) == []


def test_a_callable_handed_a_loss_and_the_optimizer_still_steps():
    source = SCHEDULED.replace("        optimizer, loss_fns = scheduler(epoch, optimizer, loss_fns)\n",
                               "        val_loss = net(next(iter(val_loader))[0]).sum()\n"
                               "        scaler(val_loss, optimizer)\n")
    assert [f.code for f in check_source(textwrap.dedent(source), select=["MDL301"])] == ["MDL301"]


PROBE = """
import torch
from torch import nn

def fit_probe(feats, labels, width, classes):
    probe = nn.Linear(width, classes)
    opt = torch.optim.SGD(probe.parameters(), 0.1)
    for _ in range(10):
        opt.zero_grad()
        nn.functional.cross_entropy(probe(feats), labels).backward()
        opt.step()
    return probe

def fit_handed(model, feats, labels):
    opt = torch.optim.SGD(model.parameters(), 0.1)
    for _ in range(10):
        opt.zero_grad()
        nn.functional.cross_entropy(model(feats), labels).backward()
        opt.step()
"""

SWEEP_PROBES = """
import torch
from nets import Net
from evaluation import evaluate
from probes import {helper}

def sweep(path, feats, labels, val_loader):
    net = Net()
    net.load_state_dict(torch.load(path))
    for width in (8, 16):
        net.eval()
        evaluate(net, val_loader)
        {call}
"""


def test_a_helper_that_trains_only_a_model_it_builds_trains_nothing_handed_to_it(tmp_path):
    """`fit_probe(feats, labels, net.width, 3)` builds its own classifier and steps an optimizer over
    it alone: the encoder that the sweep keeps in eval is not trained there (set 16's pytorch-simclr,
    MDL301 and MDL303 on its L-BFGS probe); a helper whose optimizer is over the model handed to it
    trains that model in eval."""
    files = {"nets.py": NETS, "evaluation.py": EVALUATION, "probes.py": PROBE}
    files["sweep.py"] = SWEEP_PROBES.format(helper="fit_probe", call="fit_probe(feats, labels, net.width, 3)")
    assert project(tmp_path, files, ("MDL301", "MDL303")) == []
    files["sweep.py"] = SWEEP_PROBES.format(helper="fit_handed", call="fit_handed(net, feats, labels)")
    assert project(tmp_path, files, ("MDL301", "MDL303")) != []

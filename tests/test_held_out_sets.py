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


CHECKPOINTS = """
import torch

def save_checkpoint(epoch, model, optimizer, loss, is_best):
    state = {"epoch": epoch, "model": model, "optimizer": optimizer, "loss": loss}
    torch.save(state, "checkpoint.tar")
    if is_best:
        torch.save(state, "best.tar")
"""

FIT_AND_SAVE = """
import torch
from {module} import save_checkpoint

def validate(model, loader):
    model.eval()
    with torch.no_grad():
        return sum(float(model(x).sum()) for x, _ in loader)

def main(model, loader, val_loader, optimizer, epochs):
    best_loss = float("inf")
    for epoch in range(epochs):
        model.train()
        for x, y in loader:
            optimizer.zero_grad()
            model(x).sum().backward()
            optimizer.step()
        val_loss = validate(model, val_loader)
        best_loss = min(best_loss, val_loss)
        save_checkpoint(epoch, model, optimizer, best_loss, val_loss == best_loss)
"""


def test_a_checked_helper_handed_the_model_the_optimizer_and_a_loss_only_saves_them(tmp_path):
    """set 19's Deep-Image-Matting: `save_checkpoint(epoch, model, optimizer, best_loss, is_best)` after
    the validation has the shape of a `loss_scaler(loss, optimizer)` step, but the project defines it and
    it runs no step (it is not summarised as one), so nothing trains in eval there; the same call of a
    helper the project does not define is still taken for a step."""
    files = {"nets.py": NETS, "utils.py": CHECKPOINTS, "train.py": FIT_AND_SAVE.format(module="utils")}
    assert project(tmp_path, files, ("MDL301", "MDL303")) == []
    files = {"nets.py": NETS, "train.py": FIT_AND_SAVE.format(module="ckpt_tools")}
    assert [c for _, _, c in project(tmp_path, files, ("MDL303",))] == ["MDL303"]


def test_a_checked_save_helper_called_from_another_files_routine_is_no_step_either(tmp_path):
    """The cross-file summary of a routine that ends with such a call (`evaluate_and_save` in one file,
    called from the training loop of another) runs no step at that call either."""
    routine = FIT_AND_SAVE.format(module="utils").replace(
        "def main(", "def evaluate_and_save(model, val_loader, optimizer, epoch, best_loss):\n"
        "    val_loss = validate(model, val_loader)\n"
        "    save_checkpoint(epoch, model, optimizer, val_loss, val_loss < best_loss)\n\n\ndef main(")
    caller = ("from routine import evaluate_and_save\n\n"
              "def run(model, loader, val_loader, optimizer):\n"
              "    for epoch in range(3):\n"
              "        model.train()\n"
              "        for x, y in loader:\n"
              "            optimizer.zero_grad()\n"
              "            model(x).sum().backward()\n"
              "            optimizer.step()\n"
              "        evaluate_and_save(model, val_loader, optimizer, epoch, 1.0)\n")
    files = {"utils.py": CHECKPOINTS, "routine.py": routine, "run.py": caller}
    assert [f for f in project(tmp_path, files, ("MDL301", "MDL303")) if f[0] == "run.py"] == []
    del files["utils.py"]
    (tmp_path / "without").mkdir()
    assert [c for name, _, c in project(tmp_path / "without", files, ("MDL303",)) if name == "run.py"] == ["MDL303"]


DEAD_EVALUATION = "from nets import Net\n" + EVALUATION.replace("{", "{{").replace("}", "}}") + "{script}"


def test_an_evaluation_function_nothing_can_call_is_not_reported(tmp_path):
    """set 19's NER-pytorch: an evaluation script whose calls of its `eval(model, ...)` are commented
    out; the function cannot run. Still reported: the same function in a module of definitions (API,
    callers may be outside the checked code), and in the script once something names it."""
    script = "\nnet = torch.load('net.pt')\nnet.eval()\n# evaluate(net, loader)\nprint('done')\n"
    files = {"nets.py": NETS, "score.py": DEAD_EVALUATION.format(script=script)}
    assert project(tmp_path, files, ("MDL302",)) == []
    for n, other in enumerate(("", "\nhooks = {'evaluate': evaluate}\n" + script)):
        (tmp_path / str(n)).mkdir()
        files = {"nets.py": NETS, "score.py": DEAD_EVALUATION.format(script=other)}
        assert [c for _, _, c in project(tmp_path / str(n), files, ("MDL302",))] == ["MDL302"], other


def test_a_script_is_told_by_what_it_runs():
    from libcst import parse_module
    from modelint.analysis.modeflow import works_as_script

    def works(text):
        return works_as_script(parse_module(textwrap.dedent(text)), {"main"}, {"train", "eval"})

    assert works("if __name__ == '__main__':\n    main()\n")
    assert works("for x in range(3):\n    pass\n") and works("main()\n") and works("net.eval()\n")
    assert works("print('x')\n")
    assert not works("import logging\nlogging.basicConfig()\nX = 3\ndef main():\n    pass\n")
    assert not works("import sys\nsys.path.append('..')\n")
    assert not works("if __name__ == '__main__':\n    import pytest\n    pytest.main()\n")


GRAPH_NETS = """
from torch import nn

class GCN(nn.Module):
    def __init__(self, dim, classes, dropout_rate=0.0):
        super().__init__()
        self.fc = nn.Linear(dim, classes)
        self.dropout = nn.Dropout(dropout_rate)

    def forward(self, x):
        return self.fc(self.dropout(x))
"""

GRAPH_TRAIN = """
import sys
import torch
from models.gcn import GCN

if sys.argv[1] == "gcn":
    model_func = GCN
else:
    model_func = GCN
model = model_func(16, 3{extra})
optimizer = torch.optim.Adam(model.parameters())

def evaluate(x):
    model.eval()
    with torch.no_grad():
        return model(x)

for epoch in range(10):
    loss = model(torch.randn(4, 16)).sum()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    evaluate(torch.randn(4, 16))
"""


def test_a_model_built_through_a_name_bound_to_its_class_is_asked_with_the_calls_arguments(tmp_path):
    """set 19's text_gcn: `model_func = GCN` in the arms of an `if`, then `model = model_func(...)`
    without `dropout_rate` (default 0) from a folder without `__init__.py` (`models/gcn.py`): nothing
    in the model changes with its mode, so the evaluation that never switches back is no MDL301; with
    `dropout_rate=0.5` it is."""
    (tmp_path / "models").mkdir()
    files = {"models/gcn.py": GRAPH_NETS, "train.py": GRAPH_TRAIN.format(extra="")}
    assert project(tmp_path, files, ("MDL301",)) == []
    files["train.py"] = GRAPH_TRAIN.format(extra=", dropout_rate=0.5")
    assert [c for _, _, c in project(tmp_path, files, ("MDL301",))] == ["MDL301"]


def test_the_bases_of_a_class_of_a_folder_without_init_are_found():
    from modelint.analysis.index import ProjectIndex, facts_from_source

    index = ProjectIndex()
    index.add(facts_from_source(textwrap.dedent(GRAPH_NETS).encode(), Path("models/gcn.py")))
    assert index.modules.keys() == {"gcn"}  # the index names it from its own folder
    assert index.bases_of("models.gcn.GCN") == ["torch.nn.Module"]
    assert index.bases_of("models.gcn.Missing") is None and index.bases_of("torch.nn.GCN") is None


OPTIMIZERS = """
import torch

class EagerOptimizer:
    def __init__(self, model, lr):
        self.optimizer = torch.optim.SGD(model.parameters(), lr)

    def update(self, model, x, y):
        self.optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        self.optimizer.step()
        return loss
"""

EMBED = """
import torch
from nets import Net

net = Net()
net.load_state_dict(torch.load("net.pt"))
pg = make_progress_bar(100)
for x, y in batches:
    {call}
    with torch.no_grad():
        print(net(x))
"""


def test_a_method_called_by_name_with_fewer_arguments_than_it_needs_is_not_that_method(tmp_path):
    """upstream18's mead-baseline: `pg.update()` of a progress bar, resolved by its name to the project's
    `EagerOptimizer.update(self, model, x, y)`, made the script's no_grad embedding loop a training loop
    and silenced MDL302; a call that can be that method (`trainer.update(net, x, y)`) still steps."""
    files = {"nets.py": NETS, "optz.py": OPTIMIZERS, "embed.py": EMBED.format(call="pg.update()")}
    assert [(n, c) for n, _, c in project(tmp_path, files, ("MDL302",))] == [("embed.py", "MDL302")]
    (tmp_path / "b").mkdir()
    files["embed.py"] = EMBED.format(call="trainer.update(net, x, y)")
    assert project(tmp_path / "b", files, ("MDL302",)) == []


def test_a_summary_counts_the_arguments_a_call_must_give():
    from modelint.analysis.modemodel import summaries_from_source

    source = textwrap.dedent(OPTIMIZERS) + textwrap.dedent("""
    def evaluate(model, loader, *args, device=None, k, **kw):
        model.eval()
    """)
    irs = summaries_from_source(source.encode())
    assert irs["EagerOptimizer.update"].required == 3 and irs["evaluate"].required == 3


HELD_IN_CONTEXT = """
import torch
from nets import Net


def predict(model, loader):
    with torch.no_grad():
        return [model(x) for x in loader]


def validate(context):
{switch}    return predict(context.model, context.val_loader)


def train(context):
    model = context.model
    model.train()
    for epoch in range(3):
        for x, y in context.train_loader:
            model(x).sum().backward()
            context.optimizer.step()
{between}        validate(context)
"""


def test_a_model_handed_on_as_an_attribute_of_a_parameter_is_followed_to_the_callers(tmp_path):
    """upstream18's TrOCR: `train(context)` trains `model = context.model` and calls `validate(context)`,
    which hands `context.model` to `predict(model, loader)`: the attribute of `validate`'s parameter is
    what `train` passes as `context`, in training mode after the step (MDL302). Switched in `validate`
    (`context.model.eval()`) or around the call in `train`, it is not."""
    files = {"nets.py": NETS, "scripts.py": HELD_IN_CONTEXT.format(switch="", between="")}
    assert [(n, c) for n, _, c in project(tmp_path, files, ("MDL302",))] == [("scripts.py", "MDL302")]
    for n, (switch, between) in enumerate((("    context.model.eval()\n", ""),
                                           ("", "        model.eval()\n"))):
        (tmp_path / str(n)).mkdir()
        files["scripts.py"] = HELD_IN_CONTEXT.format(switch=switch, between=between)
        assert project(tmp_path / str(n), files, ("MDL302",)) == [], n


def test_a_function_with_a_wrapped_signature_is_summarised_whole():
    """upstream19's glasspy: black's wrapped signature closes with `):` at the `def`'s own indent, which
    ended the block there; the summary then held only the signature and the function was left out
    (222 of the 903 summarised functions of upstream19's ten trees)."""
    from modelint.analysis.modemodel import summaries_from_source

    source = textwrap.dedent('''
    import torch

    class Predictor:
        @torch.no_grad()
        def predict_from_tensor(
            self,
            features,
        ):
            return self.model(features)

    def evaluate(
        model,
        loader,
    ) -> float:
        model.eval()
        return sum(float(model(x).sum()) for x in loader)
    ''')
    irs = summaries_from_source(source.encode())
    assert set(irs) == {"Predictor.predict_from_tensor", "evaluate"}
    assert irs["evaluate"].body and irs["Predictor.predict_from_tensor"].body


OWN_LOADER = """
import torch
from transformers import PreTrainedModel
from nets import Net


class NetPreTrained(PreTrainedModel):
    @classmethod
    def from_pretrained(cls, path, device="cpu"):
        net = Net()
        net.load_state_dict(torch.load(path, map_location=device))
        return net{switch}

####################################################################################################
"""

OWN_LOADER_DEMO = """
import torch
from wrapper import NetPreTrained


def embed(path, x):
    model = NetPreTrained.from_pretrained(path)
    with torch.inference_mode():
        out = model(x)
    return out.tolist()
"""


def test_a_projects_own_from_pretrained_returns_what_it_builds(tmp_path):
    """upstream19's hyena-dna: the project's own `from_pretrained` classmethod builds the network, loads
    its weights and returns it in training mode; the framework loader's eval mode does not apply to it
    (also when a `####` rule in column 0 follows the method, which made its text unparsable). A class
    that only inherits the framework's `from_pretrained` still gives a model in eval mode."""
    files = {"nets.py": NETS, "wrapper.py": OWN_LOADER.format(switch=""), "demo.py": OWN_LOADER_DEMO}
    assert [(n, c) for n, _, c in project(tmp_path, files, ("MDL302",))] == [("demo.py", "MDL302")]
    for n, wrapper in enumerate((OWN_LOADER.format(switch=".eval()"),
                                 "from transformers import PreTrainedModel\n\nclass NetPreTrained(PreTrainedModel):\n"
                                 "    pass\n")):
        (tmp_path / str(n)).mkdir()
        files["wrapper.py"] = wrapper
        assert project(tmp_path / str(n), files, ("MDL302",)) == [], n


def test_a_method_followed_by_a_column_zero_comment_is_summarised():
    from modelint.analysis.modemodel import summaries_from_source

    irs = summaries_from_source(textwrap.dedent(OWN_LOADER.format(switch="")).encode())
    assert list(irs) == ["NetPreTrained.from_pretrained"] and irs["NetPreTrained.from_pretrained"].returns


OPENMMLAB_INFER = """
import torch
from mmcv.parallel import MMDataParallel
from {loader} import load_checkpoint
from mmdet.models import build_detector


def infer(cfg, data_loader):
    model = build_detector(cfg.model)
    load_checkpoint(model, cfg.load_from, map_location="cpu")
{switch}    eval_model = MMDataParallel(model.cuda(), device_ids=[0])
    results = []
    with torch.no_grad():
        for data in data_loader:
            results.append(eval_model(return_loss=False, **data))
    return results
"""


def test_a_checkpoint_loaded_into_a_built_model_by_openmmlabs_runner_is_a_fresh_model(tmp_path):
    """upstream19's model_preparation_algorithm: `build_detector(cfg)` (unknown), then mmcv's
    `load_checkpoint(model, path)` loads weights into it, like `model.load_state_dict(...)`, and
    `MMDataParallel` runs what it wraps: the inference runs a model in training mode. Switched first,
    or loaded by a helper of unknown origin, it is not reported."""
    files = {"infer.py": OPENMMLAB_INFER.format(loader="mmcv.runner", switch="")}
    assert [(n, c) for n, _, c in project(tmp_path, files, ("MDL302",))] == [("infer.py", "MDL302")]
    for n, (loader, switch) in enumerate((("mmcv.runner", "    model.eval()\n"), ("ckpt_utils", ""))):
        (tmp_path / str(n)).mkdir()
        files = {"infer.py": OPENMMLAB_INFER.format(loader=loader, switch=switch)}
        assert project(tmp_path / str(n), files, ("MDL302",)) == [], n


READER = """
import torch
from torch import nn


class Reader:
    def __init__(self):
        self.network = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.1))
        self.optimizer = torch.optim.SGD(self.network.parameters(), 0.1)

    def update(self, ex):
{switch}        loss = self.network(ex).sum()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return loss.item(), ex.size(0)

    def predict(self, ex):
        self.network.eval()
        with torch.no_grad():
            return self.network(ex)
"""

METERS = """
class AverageMeter:
    def update(self, val, n=1):
        self.val = val
"""

READER_TRAIN = """
import utils
from reader import Reader


def validate(model, loader):
    return [model.predict(ex) for ex in loader]


def train(loader, model):
    train_loss = utils.AverageMeter()
    for ex in loader:
        train_loss.update(*model.update(ex))


def main(loader):
    model = Reader()
    for epoch in range(3):
        train(loader, model)
        validate(model, loader)
"""


def test_a_method_of_a_receiver_built_from_a_known_class_is_that_classs(tmp_path):
    """set 11's DrQA: `train_loss = utils.AverageMeter()`, then `train_loss.update(*model.update(ex))`:
    by its name alone `train_loss.update` was the reader's `update`, whose step ran before the inner
    call's `self.network.train()` was seen, so the eval left by `validate` was blamed (MDL301). The
    receiver's class is known and does not train; with no `train()` in `Reader.update` the finding stays."""
    guard = "        if not self.optimizer:\n            raise RuntimeError('no optimizer')\n"
    files = {"reader.py": READER.format(switch=guard + "        self.network.train()\n"), "utils.py": METERS,
             "train.py": READER_TRAIN}
    assert project(tmp_path, files, ("MDL301",)) == []
    (tmp_path / "b").mkdir()
    files["reader.py"] = READER.format(switch=guard)
    assert [(n, c) for n, _, c in project(tmp_path / "b", files, ("MDL301",))] == [("train.py", "MDL301")]


KWARGS_LOOP = """
import torch
from nets import Net


def evaluate(model, data):
    model.eval()
    with torch.no_grad():
        return model(data).sum()


def run(model, opt, data):
{switch}    loss = model(data).sum()
    opt.zero_grad()
    loss.backward()
    opt.step()


model = Net()
opt = torch.optim.Adam(model.parameters())
learning_kwargs = {{"model": model, "data": torch.randn(4, 8)}}
for epoch in range(3):
    weights = model.body.weight.data.T
    for w in [weights]:
        w[:] = w * 0.5
    run(opt=opt, **learning_kwargs)
    evaluate(model, torch.randn(4, 8))
"""


def test_a_model_passed_in_a_kwargs_dict_display_is_mapped_to_the_parameter(tmp_path):
    """set 20's RecVAE: `run(opts=..., **learning_kwargs)` with `learning_kwargs = {"model": model, ...}`,
    and `run` starts with `model.train()`: the model is switched back before each step. A tensor bound
    from the model (`weights = model.body.weight.data.T`) does not share its mode. Without the
    `model.train()` in `run`, the evaluation's eval reaches the next step (MDL301)."""
    files = {"nets.py": NETS, "train.py": KWARGS_LOOP.format(switch="    model.train()\n")}
    assert project(tmp_path, files, ("MDL301",)) == []
    (tmp_path / "b").mkdir()
    files["train.py"] = KWARGS_LOOP.format(switch="")
    assert [(n, c) for n, _, c in project(tmp_path / "b", files, ("MDL301",))] == [("train.py", "MDL301")]


EVAL_BEFORE_UPDATE = """
import torch
from nets import Net


def evaluate(model, data):
    model.eval()
    with torch.no_grad():
        return model(data).sum()


def fit(model, opt, batches, val):
    for step, x in enumerate(batches):
{switch}        loss = model(x).sum()
        loss.backward()
        if step % 10 == 0:
            evaluate(model, val)
        opt.step()
        opt.zero_grad()
"""


def test_an_evaluation_between_the_backward_and_the_update_is_judged_at_the_next_backward(tmp_path):
    """upstream20's DALLE2 after its fix: `model.train()` at the top of each pass, the evaluation between
    `loss.backward()` and `opt.step()`: the update applies gradients of a training-mode forward, and the
    next forward runs after `model.train()`; without that `train()` the next backward is reported."""
    files = {"nets.py": NETS, "train.py": EVAL_BEFORE_UPDATE.format(switch="        model.train()\n")}
    assert project(tmp_path, files, ("MDL301",)) == []
    (tmp_path / "b").mkdir()
    files["train.py"] = EVAL_BEFORE_UPDATE.format(switch="")
    assert [(n, c) for n, _, c in project(tmp_path / "b", files, ("MDL301",))] == [("train.py", "MDL301")]


def test_an_uncalled_evaluation_of_a_package_module_run_as_a_script_is_still_reported(tmp_path):
    # review of 8b418fe: a package's function is public API, whatever its `__main__` block does
    (tmp_path / "pkg").mkdir()
    files = {"pkg/__init__.py": "", "pkg/nets.py": NETS,
             "pkg/evaluation.py": DEAD_EVALUATION.replace("from nets", "from pkg.nets").format(
                 script="\nif __name__ == '__main__':\n    print('smoke test')\n")}
    assert [c for _, _, c in project(tmp_path, files, ("MDL302",))] == ["MDL302"]


def test_a_checked_helper_that_hands_the_optimizer_on_may_step(tmp_path):
    """review of 8b418fe: `apply_grads(loss, optimizer)` of a checked file that calls another file's
    `do_step(loss, optimizer)` is not summarised itself, but may step: it is still taken for a step."""
    files = {"nets.py": NETS,
             "optim_utils.py": "def do_step(loss, optimizer):\n    optimizer.zero_grad()\n    loss.backward()\n"
                               "    optimizer.step()\n",
             "train_utils.py": "from optim_utils import do_step\n\ndef apply_grads(loss, optimizer):\n"
                               "    do_step(loss, optimizer)\n",
             "train.py": "import torch\nfrom nets import Net\nfrom train_utils import apply_grads\n\ndef main(loader):\n"
                         "    model = Net()\n    optimizer = torch.optim.SGD(model.parameters(), 0.1)\n    model.eval()\n"
                         "    for epoch in range(10):\n        for x, y in loader:\n            loss = model(x).sum()\n"
                         "            apply_grads(loss, optimizer)\n\n\nif __name__ == '__main__':\n    main([])\n"}
    assert [(n, c) for n, _, c in project(tmp_path, files, ("MDL303",))] == [("train.py", "MDL303")]


def test_a_dict_display_with_a_bad_escape_is_no_crash():
    source = "import torch\n\ndef run(model):\n    model.train()\n\ndef main(model, opt, loader):\n" \
             "    kw = {'\\N{NOTANAME}': model}\n    for x in loader:\n        run(**kw)\n" \
             "        model(x).sum().backward()\n        opt.step()\n        model.eval()\n"
    assert [f.code for f in check_source(source, select=["MDL301", "MDL302", "MDL303"])] == ["MDL301"]


def test_a_staticmethod_needs_all_its_parameters():
    from modelint.analysis.modemodel import summaries_from_source

    source = "class Opt:\n    @staticmethod\n    def update(model, x, y):\n        model.train()\n"
    assert summaries_from_source(source.encode())["Opt.update"].required == 3

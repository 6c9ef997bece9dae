#!/usr/bin/env python3
"""Mutation recall of the call-site rules on real training and evaluation scripts.

Eleven real scripts from eleven public projects (``SCRIPTS``: repository, pinned commit, paths)
are fetched, each bug pattern of issue 14 is injected into each of them by a small anchored
textual mutation (``PATTERNS``), and modelint must report the pattern's code on or near the
mutated lines. Negative controls (correct idioms injected the same way) must stay silent.

Sources: with ``--mirror DIR`` the files are read from git directories ``DIR/OWNER+NAME/repo``
(as the ``fetch`` tool makes them; ``git show COMMIT:PATH``); otherwise the GitHub archive of
the pinned commit (``https://codeload.github.com/OWNER/NAME/tar.gz/COMMIT``) is downloaded once
into ``CACHE/callsite/`` (default ``~/.cache/modelint-bench``) and the pinned paths extracted.
No third-party source is stored in this repository: only the pins and the mutations.

Each mutant is written, with the other pinned files of its script and any helper module the
mutation adds (``learner.py``, ``steps.py``, ...), into a fresh temporary folder and checked as a
subprocess, ``python -m modelint check --no-config --no-cache --format json --exit-zero --jobs 1
--select MDL2,MDL3 FOLDER`` (the modelint on ``PYTHONPATH``: run with ``PYTHONPATH=/work/main``
to measure that tree). The unmutated script is checked the same way once (the baseline).

Anchors and mutations (``callsite_mutations.py``): every edit is placed by a regex that must
match exactly one line of the original file (optionally inside a named ``def``), statement extents
come from ``ast``; an anchor that is missing or ambiguous, or a mutant that does not parse, is a
**bench error** (listed, exit status 2), never a miss. A pattern that needs something a script
does not have (an evaluation routine separate from the loop, a model handed to it as an argument)
is *not applicable* to that script and is listed as such, not counted.

"Near", precisely: the *sites* of a mutant are (a) every line the mutation inserted or changed,
including every line of a file it added, (b) the first line after each run of deleted lines, and
(c) the lines of the anchors the pattern names as related: where the mode is set and where it is
wrong (for MDL301 the evaluation switch, the evaluation call in the loop and the training step;
for MDL302 the forward call run for inference and the evaluation call in the loop; for MDL303
the model's construction, the evaluation switch and call, and the step;
for MDL205 the later ``model.train()``; for MDL207 the freeze itself). "The training step" is the optimizer step and every
``.backward()`` call of the function that holds it. A finding is *near* when it is in the same file as a
site and at most ``NEAR`` = 2 lines from it (``--near N`` changes it).

Verdict of one mutant, for the pattern's expected code(s):
- baseline findings (of those codes in the unmutated script) are mapped to mutant lines; a mutant
  finding on such a line is not new;
- *caught*: a new finding of an expected code is near a site; *missed*: none; *baseline*: none new,
  but the unmutated script already reports the code on those lines (excluded from the recall, and
  listed: the pattern could not be measured there);
- controls (``ctl-*``, and every pattern on a script whose model has no mode-dependent layer, except
  the patterns that bring a model of their own, ``Pattern.own_model``: ``302-restore-helper`` tests a
  torchvision ResNet-18, batch norm included, and ``303-from-pretrained`` a ``from_pretrained`` model
  whose layers are unknown; the script's mode-free model is not the one they get wrong):
  *clean* when no new finding of MDL205, MDL207, MDL301-MDL304 is near a site, else *false alarm*.
A code the checked modelint does not know yet simply never appears: it is reported as 0 caught.

Usage::

    PYTHONPATH=/work/main python bench/callsite_recall.py --mirror /work/.mirror
    python bench/callsite_recall.py --mirror /work/.mirror --require 80      # exit 1 below 80 %
    python bench/callsite_recall.py --mirror /work/.mirror --scripts cifar100,deit --patterns 301-plain
    python bench/callsite_recall.py --mirror /work/.mirror --list            # every mutant's verdict
    python bench/callsite_recall.py --mirror /work/.mirror --keep /tmp/mutants --json out.json

Exit status: 0; 1 when ``--require N`` is given and overall recall is below N %; 2 on a bench
error (missing source, missing anchor, a mutant that does not parse, modelint failing).
Standard library only.
"""

from __future__ import annotations

import ast
import argparse
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent))
from callsite_mutations import Anchor, AnchorError, Doc, Mutant, indent_of  # noqa: E402

NEAR = 2
WATCHED = ("MDL205", "MDL207", "MDL301", "MDL302", "MDL303", "MDL304")  # what a control must not report
A = Anchor


class NotApplicable(Exception):
    """The script lacks what the pattern needs (not a bench error, not a miss)."""


# ---------------------------------------------------------------------------------------------
# The scripts


@dataclass(frozen=True)
class Script:
    key: str
    repo: str
    commit: str
    files: Tuple[str, ...]  # the first is the script; the others are modules it uses
    epoch_loop: Anchor  # the outer training loop (for / while)
    step: Anchor  # the optimizer step (or what stands for it)
    train_switch: Anchor  # the model.train() that restores training mode in the loop
    eval_switch: Anchor  # the model.eval() before evaluation
    eval_block: Tuple[Anchor, ...]  # first (and last) statement of the evaluation in the loop
    eval_forward: Anchor  # the model call run for evaluation
    val_loader: str  # a validation loader in the loop's scope
    model: str  # the model's name in the loop's scope
    build: Optional[Anchor] = None  # the line that creates the model (`x = Net(...)`)
    freeze: Optional[str] = None  # a submodule of the built model holding batch norm or dropout (MDL205)
    infer: str = "{m}({b}[0])"  # how the scripts' model is called on one batch
    more_train_switches: Tuple[Anchor, ...] = ()  # other .train() calls on the model
    more_steps: Tuple[Anchor, ...] = ()  # other optimizer steps of the same loop
    packages: Tuple[str, ...] = ()  # folders that get an (empty) __init__.py
    prep: Tuple[Tuple[str, str, str], ...] = ()  # (file, old, new): make it parse on Python 3
    starts_in_eval: bool = False  # from_pretrained: eval mode before any .train()
    mode_free: bool = False  # the model has no mode-dependent layer: its mutants are controls (not `own_model` ones)
    eval_in_loop: bool = True  # the evaluation runs inside the training loop
    trained_build: Optional[Anchor] = None  # creation of the trained model, when `build` is another one


SCRIPTS: Tuple[Script, ...] = (
    Script(
        "cifar100", "weiaicunzai/pytorch-cifar100", "11d8418f415b261e4ae3cb1ffe20d06ec95b98e4",
        ("train.py",),
        epoch_loop=A(r"for epoch in range\(1, settings.EPOCH"),
        step=A(r"optimizer\.step\(\)", within="train"),
        train_switch=A(r"net\.train\(\)", within="train"),
        eval_switch=A(r"net\.eval\(\)", within="eval_training"),
        eval_block=(A(r"acc = eval_training\(epoch\)"),),
        eval_forward=A(r"outputs = net\(images\)", within="eval_training"),
        val_loader="cifar100_test_loader", model="net",
        build=A(r"^    net = get_network\(args\)"), freeze="conv1",
    ),
    Script(
        "clova-str", "clovaai/deep-text-recognition-benchmark", "e2117f2fb882b3c6085030500a260c113be27a63",
        ("train.py", "test.py"),
        epoch_loop=A(r"while\(True\):", within="train"),
        step=A(r"optimizer\.step\(\)", within="train"),
        train_switch=A(r"^                model\.train\(\)", within="train"),
        more_train_switches=(A(r"^    model\.train\(\)", within="train"),),
        eval_switch=A(r"model\.eval\(\)", within="train"),
        eval_block=(A(r"model\.eval\(\)", within="train"), A(r"with torch\.no_grad\(\):", within="train")),
        eval_forward=A(r"preds = model\(image, text_for_pred\)$", within="validation", file="test.py"),
        val_loader="valid_loader", model="model", infer="{m}({b}[0], {b}[1])",
        build=A(r"model = Model\(opt\)", within="train"), freeze="FeatureExtraction",
    ),
    Script(
        "supcon-ce", "HobbitLong/SupContrast", "66a8fe53880d6a1084b2e4e0db0a019024d6d41a",
        ("main_ce.py",),
        epoch_loop=A(r"for epoch in range\(1, opt\.epochs \+ 1\):", within="main"),
        step=A(r"optimizer\.step\(\)", within="train"),
        train_switch=A(r"model\.train\(\)", within="train"),
        eval_switch=A(r"model\.eval\(\)", within="validate"),
        eval_block=(A(r"loss, val_acc = validate\(", within="main"),),
        eval_forward=A(r"output = model\(images\)", within="validate"),
        val_loader="val_loader", model="model",
        build=A(r"model = SupCEResNet\(", within="set_model"), freeze="encoder",
    ),
    Script(
        "bearpaw-cifar", "bearpaw/pytorch-classification", "24f1c456f48c78133088c4eefd182ca9e6199b03",
        ("cifar.py",),
        # Python 2 era: `async` is a keyword since 3.7; the same call says non_blocking since 0.4
        prep=(("cifar.py", "targets.cuda(async=True)", "targets.cuda(non_blocking=True)"),),
        epoch_loop=A(r"for epoch in range\(start_epoch, args\.epochs\):", within="main"),
        step=A(r"optimizer\.step\(\)", within="train"),
        train_switch=A(r"model\.train\(\)", within="train"),
        eval_switch=A(r"model\.eval\(\)", within="test"),
        eval_block=(A(r"test_loss, test_acc = test\(testloader, model, criterion, epoch", within="main"),),
        eval_forward=A(r"outputs = model\(inputs\)", within="test"),
        val_loader="testloader", model="model",
        build=A(r"model = models\.__dict__\[args\.arch\]\(num_classes=num_classes\)", within="main"),
        freeze="layer1",
    ),
    Script(
        "pytorchyolo", "eriklindernoren/PyTorch-YOLOv3", "1d621c8489e22c76ceb93bb2397ac6c8dfb5ceb7",
        ("pytorchyolo/train.py", "pytorchyolo/test.py"), packages=("pytorchyolo",),
        epoch_loop=A(r"for epoch in range\(1, args\.epochs\+1\):", within="run"),
        step=A(r"optimizer\.step\(\)", within="run"),
        train_switch=A(r"model\.train\(\)", within="run"),
        eval_switch=A(r"model\.eval\(\)", within="_evaluate", file="pytorchyolo/test.py"),
        eval_block=(A(r"metrics_output = _evaluate\(", within="run"),),
        eval_forward=A(r"outputs = model\(imgs\)", within="_evaluate", file="pytorchyolo/test.py"),
        val_loader="validation_dataloader", model="model", infer="{m}({b}[1])",
        build=A(r"model = load_model\(args\.model, args\.pretrained_weights\)", within="run"),
        freeze="module_list[0]",
    ),
    Script(
        "accelerate-nlp", "huggingface/accelerate", "16cb6eb80dd9aa8b4df1a63ef57863e455d53b83",
        ("examples/nlp_example.py",),
        epoch_loop=A(r"for epoch in range\(num_epochs\):", within="training_function"),
        step=A(r"optimizer\.step\(\)", within="training_function"),
        train_switch=A(r"model\.train\(\)", within="training_function"),
        eval_switch=A(r"model\.eval\(\)", within="training_function"),
        eval_block=(A(r"model\.eval\(\)", within="training_function"),
                    A(r"for step, batch in enumerate\(eval_dataloader\):", within="training_function")),
        eval_forward=A(r"^                outputs = model\(\*\*batch\)$", within="training_function"),
        val_loader="eval_dataloader", model="model", infer="{m}(**{b})",
        build=A(r"model = AutoModelForSequenceClassification\.from_pretrained"), freeze="bert.embeddings",
        starts_in_eval=True,
    ),
    Script(
        "deit", "facebookresearch/deit", "7e160fe43f0252d17191b71cbb5826254114ea5b",
        ("main.py", "engine.py"),
        epoch_loop=A(r"for epoch in range\(args\.start_epoch, args\.epochs\):", within="main"),
        step=A(r"loss_scaler\(loss, optimizer", within="train_one_epoch", file="engine.py"),
        train_switch=A(r"model\.train\(set_training_mode\)", within="train_one_epoch", file="engine.py"),
        eval_switch=A(r"model\.eval\(\)", within="evaluate", file="engine.py"),
        eval_block=(A(r"test_stats = evaluate\(data_loader_val, model, device\)$", within="main",
                      after=r"for epoch in range\(args\.start_epoch"),),
        eval_forward=A(r"output = model\(images\)", within="evaluate", file="engine.py"),
        val_loader="data_loader_val", model="model",
        build=A(r"^    model = create_model\($", within="main"), freeze="blocks",
    ),
    Script(
        "opacus-mnist", "pytorch/opacus", "4d0ebc84613d214fbfd37fbfd1390e3747a625ce",
        ("examples/mnist.py",),
        epoch_loop=A(r"for epoch in range\(1, args\.epochs \+ 1\):", within="main"),
        step=A(r"optimizer\.step\(\)", within="train"),
        train_switch=A(r"model\.train\(\)", within="train"),
        eval_switch=A(r"model\.eval\(\)", within="test"),
        eval_block=(A(r"run_results\.append\(test\(model, device, test_loader\)\)", within="main"),),
        eval_forward=A(r"output = model\(data\)", within="test"),
        val_loader="test_loader", model="model",
        build=A(r"model = SampleConvNet\(\)\.to\(device\)", within="main"), freeze="conv1",
        mode_free=True,  # SampleConvNet: Conv2d, Linear, relu, max_pool2d only
        eval_in_loop=False,  # it tests once, after training
    ),
    Script(
        "resnet-cifar10", "akamaster/pytorch_resnet_cifar10", "d5489e8995e81e91ce6b1d69dcc98ad579b0b153",
        ("trainer.py",),
        epoch_loop=A(r"for epoch in range\(args\.start_epoch, args\.epochs\):", within="main"),
        step=A(r"optimizer\.step\(\)", within="train"),
        train_switch=A(r"model\.train\(\)", within="train"),
        eval_switch=A(r"model\.eval\(\)", within="validate"),
        eval_block=(A(r"prec1 = validate\(val_loader, model, criterion\)", within="main"),),
        eval_forward=A(r"output = model\(input_var\)", within="validate"),
        val_loader="val_loader", model="model",
        build=A(r"model = torch\.nn\.DataParallel\(resnet", within="main"), freeze="module.layer1",
    ),
    Script(
        "vit-pytorch", "jeonsworld/ViT-pytorch", "460a162767de1722a014ed2261463dbbc01196b6",
        ("train.py",),
        epoch_loop=A(r"while True:", within="train"),
        step=A(r"optimizer\.step\(\)", within="train"),
        train_switch=A(r"^                    model\.train\(\)", within="train"),
        more_train_switches=(A(r"^        model\.train\(\)", within="train"),),
        eval_switch=A(r"model\.eval\(\)", within="valid"),
        eval_block=(A(r"accuracy = valid\(args, model, writer, test_loader, global_step\)", within="train"),),
        eval_forward=A(r"logits = model\(x\)\[0\]", within="valid"),
        val_loader="test_loader", model="model",
        build=A(r"model = VisionTransformer\(", within="setup"), freeze="transformer.embeddings",
    ),
    Script(
        "show-attend-tell", "sgrvinod/a-PyTorch-Tutorial-to-Image-Captioning",
        "cc9c7e2f4017938d414178d3781fed8dbe442852",
        ("train.py",),
        epoch_loop=A(r"for epoch in range\(start_epoch, epochs\):", within="main"),
        step=A(r"decoder_optimizer\.step\(\)", within="train"),
        train_switch=A(r"decoder\.train\(\)", within="train"),
        eval_switch=A(r"decoder\.eval\(\)", within="validate"),
        eval_block=(A(r"recent_bleu4 = validate\(val_loader=val_loader,", within="main"),),
        eval_forward=A(r"= decoder\(imgs, caps, caplens\)", within="validate"),
        val_loader="val_loader", model="decoder", infer="{m}({b}[0], {b}[1], {b}[2])",
        build=A(r"encoder = Encoder\(\)", within="main"), freeze="resnet",
        trained_build=A(r"decoder = DecoderWithAttention\(", within="main"),
        more_steps=(A(r"encoder_optimizer\.step\(\)", within="train"),),
    ),
)


# ---------------------------------------------------------------------------------------------
# Helper modules that mutations add next to the script (written by this bench, not third-party)

EVALMODE = '''\
def prepare_for_eval(net):
    """Switch the network to inference behaviour before validation."""
    net.eval()
'''

LEARNER = '''\
class Learner:
    """Owns the network; the training script switches it through these methods."""

    def __init__(self, net):
        self.net = net

    def to_eval(self):
        self.net.eval()

    def to_train(self):
        self.net.train()
'''

STEPS = '''\
def make_update_fn(model, optimizer):
    """Return a closure that applies one optimizer update to `model`'s parameters."""

    def update():
        optimizer.step()

    return update
'''

CKPT = '''\
import torch
import torchvision


def restore_from(path):
    """Rebuild the network and load a checkpoint's weights into it."""
    net = torchvision.models.resnet18()
    net.load_state_dict(torch.load(path, map_location="cpu"))
    return net
'''

PRETRAINED = '"google/vit-base-patch16-224"'


# ---------------------------------------------------------------------------------------------
# Small helpers shared by the patterns


def receiver(doc: Doc, line: int, method: str) -> str:
    match = re.search(rf"([\w.\[\]]+)\.{method}\(", doc.orig_text(line))
    if not match:
        raise AnchorError(f"{doc.path}:{line}: no `.{method}(` call on this line")
    return match.group(1)


def same_function(m: Mutant, a: Anchor, b: Anchor) -> bool:
    da, la = m.resolve(a)
    db, lb = m.resolve(b)
    fa, fb = da.enclosing_function(la), db.enclosing_function(lb)
    return da is db and fa is not None and fa is fb


def relate(m: Mutant, *anchors: Anchor) -> None:
    for anchor in anchors:
        doc, line = m.resolve(anchor)
        m.relate(doc, line)


def relate_step(m: Mutant, s: Script) -> None:
    """Relate the training step: the optimizer step and the backward() calls of its function
    (a rule may name either as the place where training runs in the wrong mode), and, when that
    function is not the epoch loop's, its calls inside the epoch loop (`train_one_epoch(model, ...)`
    in main.py for a step in engine.py: where the loop trains, as the caller sees it)."""
    import ast as _ast
    doc, line = m.resolve(s.step)
    m.relate(doc, line)
    fn = doc.enclosing_function(line)
    for node in _ast.walk(fn if fn is not None else doc.tree):
        if isinstance(node, _ast.Call) and isinstance(node.func, _ast.Attribute) and node.func.attr == "backward":
            m.relate(doc, node.lineno)
    ldoc, lline = m.resolve(s.epoch_loop)
    loop = ldoc.stmt_at(lline)
    if fn is None or (ldoc is doc and ldoc.enclosing_function(lline) is fn):
        return
    for node in _ast.walk(loop):
        callee = getattr(node, "func", None)
        name = getattr(callee, "id", None) or getattr(callee, "attr", None)
        if isinstance(node, _ast.Call) and name == fn.name:
            m.relate(ldoc, node.lineno)


def delete_train_switches(m: Mutant, s: Script, every: bool = False) -> None:
    for anchor in (s.train_switch,) + (s.more_train_switches if every else ()):
        doc, line = m.resolve(anchor)
        doc.delete_stmt(line)


def import_from(m: Mutant, module: str, name: str) -> str:
    folder = m.main.rpartition("/")[0]
    return f"from {folder.replace('/', '.') + '.' if folder and folder in m.packages else ''}{module} import {name}"


def train_model(m: Mutant, s: Script) -> str:
    """The model's name where the step runs."""
    if same_function(m, s.train_switch, s.step):
        doc, line = m.resolve(s.train_switch)
        return receiver(doc, line, "train")
    return s.model


def eval_model(m: Mutant, s: Script) -> str:
    doc, line = m.resolve(s.eval_switch)
    return receiver(doc, line, "eval")


def infer(s: Script, model: str, batch: str = "batch") -> str:
    return s.infer.format(m=model, b=batch)


def inference_loop(s: Script, model: str, out: str) -> List[str]:
    return ["with torch.no_grad():",
            f"    for batch in {s.val_loader}:",
            f"        {out} = {infer(s, model)}"]


def eval_range(m: Mutant, s: Script) -> Tuple[Doc, int, int]:
    doc, first = m.resolve(s.eval_block[0])
    last = first
    if len(s.eval_block) > 1:
        _, last = m.resolve(s.eval_block[-1])
    return doc, first, doc.stmt_at(last).end_lineno


def after_epoch_loop(m: Mutant, s: Script, texts: Sequence[str]) -> None:
    doc, line = m.resolve(s.epoch_loop)
    if _endless(doc.stmt_at(line)):
        raise NotApplicable("the epoch loop is `while True` without a break (it ends by sys.exit): code after it never runs")
    doc.insert_after_stmt(line, texts)


def _endless(loop: ast.stmt) -> bool:
    """`while True:` / `while(True):` with no `break` of its own (breaks of nested loops do not end it)."""
    if not (isinstance(loop, ast.While) and isinstance(loop.test, ast.Constant) and loop.test.value is True):
        return False
    todo = list(loop.body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Break):
            return False
        if not isinstance(node, (ast.For, ast.While, ast.AsyncFor, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            todo.extend(ast.iter_child_nodes(node))
        else:
            todo.extend(node.orelse if isinstance(node, (ast.For, ast.While, ast.AsyncFor)) else ())
    return True


def eval_routine(m: Mutant, s: Script):
    """(doc, def node) of the function that runs the evaluation forward, if not the loop's."""
    doc, line = m.resolve(s.eval_forward)
    fn = doc.enclosing_function(line)
    ldoc, lline = m.resolve(s.epoch_loop)
    if fn is None or (doc is ldoc and fn is ldoc.enclosing_function(lline)):
        raise NotApplicable("the evaluation runs inline in the training loop, not in a routine")
    return doc, fn


def switch_in_routine(m: Mutant, switch: Anchor, s: Script) -> Tuple[Doc, int]:
    doc, line = m.resolve(switch)
    ldoc, lline = m.resolve(s.epoch_loop)
    fn = doc.enclosing_function(line)
    if fn is None or (doc is ldoc and fn is ldoc.enclosing_function(lline)):
        raise NotApplicable("the switch is in the training loop itself, not at the start of a routine")
    return doc, line


def need_eval_in_loop(s: Script) -> None:
    if not s.eval_in_loop:
        raise NotApplicable("the script evaluates only after training")


# ---------------------------------------------------------------------------------------------
# The patterns: each edits a Mutant in place (or raises NotApplicable)


def p301_plain(m: Mutant, s: Script) -> None:
    """Delete the model.train() that undoes the evaluation's model.eval()."""
    need_eval_in_loop(s)
    delete_train_switches(m, s)
    relate(m, s.eval_switch, s.eval_block[0])
    relate_step(m, s)


def p301_cross_file(m: Mutant, s: Script) -> None:
    """The eval switch moves into prepare_for_eval() of another file; train() is never restored."""
    need_eval_in_loop(s)
    doc, line = m.resolve(s.eval_switch)
    em = eval_model(m, s)
    m.add_file("evalmode.py", EVALMODE)
    doc.replace_in(line, f"{em}.eval()", f"prepare_for_eval({em})")
    doc.add_import(import_from(m, "evalmode", "prepare_for_eval"))
    delete_train_switches(m, s)
    relate(m, s.eval_block[0])
    relate_step(m, s)


def p301_wrapper(m: Mutant, s: Script) -> None:
    """A wrapper object's to_eval() switches; its to_train() exists but nothing calls it."""
    need_eval_in_loop(s)
    doc, line = m.resolve(s.eval_switch)
    em = eval_model(m, s)
    m.add_file("learner.py", LEARNER)
    doc.replace_line(line, [f"learner = Learner({em})", "learner.to_eval()"])
    doc.add_import(import_from(m, "learner", "Learner"))
    delete_train_switches(m, s)
    relate(m, s.eval_block[0])
    relate_step(m, s)


def p301_update_fn(m: Mutant, s: Script) -> None:
    """The step is a callable returned by a helper of another file (no opt.step() in the loop)."""
    need_eval_in_loop(s)
    tm = train_model(m, s)
    for anchor in (s.step,) + s.more_steps:
        doc, line = m.resolve(anchor)
        match = re.search(r"([\w.]+)\.step\(\)", doc.orig_text(line))
        if not match:
            raise NotApplicable("the script's step is not spelled opt.step()")
        fn = "update" if anchor is s.step else f"update_{match.group(1).replace('.', '_')}"
        doc.replace_in(line, match.group(0), f"{fn}()")
        doc.insert_before(line, [f"{fn} = make_update_fn({tm}, {match.group(1)})"])
        doc.add_import(import_from(m, "steps", "make_update_fn"))
    m.add_file("steps.py", STEPS)
    delete_train_switches(m, s)
    relate(m, s.eval_switch, s.eval_block[0])
    relate_step(m, s)


def _flag_routine(m: Mutant, s: Script, train: str) -> None:
    """A routine that steps only `if train:` is called with `train=...` right after the evaluation
    in the loop, before anything switches the model back to train mode."""
    need_eval_in_loop(s)
    ldoc, lline = m.resolve(s.epoch_loop)
    ldoc.insert_before_toplevel(lline, [
        "def run_pass(net, batch, optimizer, train):",
        f"    out = {infer(s, 'net')}",
        "    if train:",
        "        optimizer.zero_grad()",
        "        out.sum().backward()",
        "        optimizer.step()",
        "    return out",
        "",
        "",
    ])
    doc, first_e, last_e = eval_range(m, s)
    doc.insert(doc.index_after(last_e), [
        f"extra_opt = torch.optim.SGD({s.model}.parameters(), lr=1e-4)",
        f"run_pass({s.model}, next(iter({s.val_loader})), extra_opt, train={train})",
    ], indent_of(doc.orig_text(first_e)))
    doc.add_import("import torch")


def p301_flag_routine(m: Mutant, s: Script) -> None:
    """`run_pass(model, batch, opt, train=True)` right after the evaluation: its guarded step runs
    while the model is still in eval (MDL301's guard exemption must not cover it)."""
    _flag_routine(m, s, "True")
    relate(m, s.eval_switch, s.eval_block[0])


def c_flag_routine_off(m: Mutant, s: Script) -> None:
    """The same routine called with `train=False`: its guarded step does not run."""
    _flag_routine(m, s, "False")


def p302_plain(m: Mutant, s: Script) -> None:
    """Delete the model.eval() before the evaluation."""
    doc, line = m.resolve(s.eval_switch)
    doc.delete_stmt(line)
    relate(m, s.eval_forward, s.eval_block[0])


def p302_after_training(m: Mutant, s: Script) -> None:
    """No evaluation in the loop; a test loop after training, under no_grad, without eval()."""
    if s.eval_in_loop:
        doc, first, last = eval_range(m, s)
        doc.delete_range(first, last)
    after_epoch_loop(m, s, inference_loop(s, s.model, "test_out"))


def p302_heldout(m: Mutant, s: Script) -> None:
    """Every ~100 steps a held-out batch is run under no_grad inside the training loop."""
    _heldout_read(m, s, None)


def _heldout_read(m: Mutant, s: Script, reads: Optional[str]) -> None:
    """A held-out batch every ~100 steps under no_grad, its output printed by `reads` (if given)."""
    doc, line = m.resolve(s.step)
    tm = train_model(m, s)
    doc.insert_after_stmt(line, [
        "if torch.rand(1).item() < 0.01:  # a held-out batch every ~100 steps",
        "    with torch.no_grad():",
        f"        held_batch = next(iter({s.val_loader}))",
        f"        held_out = {infer(s, tm, 'held_batch')}",
    ] + ([f"    print({reads})"] if reads else []))
    doc.add_import("import torch")


def p302_shape_and_value(m: Mutant, s: Script) -> None:
    """The held-out forward's output is read for its shape and for its values (MDL302's shape-only
    exemption must not cover it)."""
    _heldout_read(m, s, "held_out.shape, held_out.float().mean()")


def c_shape_probe(m: Mutant, s: Script) -> None:
    """The held-out forward's output is read only for its shape: the mode cannot change it."""
    _heldout_read(m, s, "held_out.shape, len(held_out)")


def _alias_eval(m: Mutant, s: Script) -> None:
    """The evaluation switches the model through a local alias: `eval_net = model; eval_net.eval()`."""
    doc, line = m.resolve(s.eval_switch)
    model = receiver(doc, line, "eval")
    doc.replace_in(line, f"{model}.eval()", "eval_net.eval()")
    doc.insert_before(line, [f"eval_net = {model}"])


def p301_alias(m: Mutant, s: Script) -> None:
    """The evaluation's eval() goes through a local alias of the model, and nothing undoes it."""
    need_eval_in_loop(s)
    _alias_eval(m, s)
    delete_train_switches(m, s)
    relate(m, s.eval_switch, s.eval_block[0])
    relate_step(m, s)


def c_alias_eval_restored(m: Mutant, s: Script) -> None:
    """The evaluation's eval() goes through a local alias; the script's own train() undoes it."""
    need_eval_in_loop(s)
    _alias_eval(m, s)


def p302_neutral_name(m: Mutant, s: Script) -> None:
    """The eval routine has a neutral name (compute_val_loss) and no model.eval()."""
    _, fn = eval_routine(m, s)
    doc, line = m.resolve(s.eval_switch)
    doc.delete_stmt(line)
    if sum(d.rename(fn.name, "compute_val_loss") for d in m.docs.values()) < 2:
        raise AnchorError(f"{fn.name}: renamed fewer than 2 places (def and call)")
    relate(m, s.eval_forward, s.eval_block[0])


def p302_tester(m: Mutant, s: Script) -> None:
    """The evaluation is a method Tester.run(self, net, loader); the loop calls it without eval()."""
    ldoc, lline = m.resolve(s.epoch_loop)
    ldoc.insert_before_toplevel(lline, [
        "class Tester:",
        '    """Runs a network over a loader and collects its outputs."""',
        "",
        "    def run(self, net, loader):",
        "        outputs = []",
        "        with torch.no_grad():",
        "            for batch in loader:",
        f"                outputs.append({infer(s, 'net')})",
        "        return outputs",
        "",
        "",
    ])
    doc, first_e, last_e = eval_range(m, s)
    doc.insert_before(first_e, [f"test_outputs = Tester().run({s.model}, {s.val_loader})"])
    doc.delete_range(first_e, last_e)


def p302_helper_chain(m: Mutant, s: Script) -> None:
    """The evaluation is `evaluate_all(net, loader)` of a helper module, which hands each batch to
    `evaluate_batch(net, batch)` run under no_grad; neither switches, and the loop calls it without
    eval() (SSL4MIS's val_3D `test_all_case` -> `test_single_case`)."""
    _add_scoring(m, s)
    _helper_chain_call(m, s, [f"val_outputs = evaluate_all({s.model}, {s.val_loader})"])


def c_helper_chain_eval(m: Mutant, s: Script) -> None:
    """The same helper chain, called right after `model.eval()` (and `model.train()` after it): the
    helper trusts its caller, who switched; the helper's file has no caller of its own. Only in a
    script folder: in a package the helper is public API, and MDL302 reports it where it is."""
    folder = m.main.rpartition("/")[0]
    if folder and folder in m.packages:
        raise NotApplicable("the script is in a package: its helper module is public API")
    _add_scoring(m, s)
    _helper_chain_call(m, s, [f"{s.model}.eval()", f"val_outputs = evaluate_all({s.model}, {s.val_loader})",
                              f"{s.model}.train()"])


def p302_star_helper(m: Mutant, s: Script) -> None:
    """The same helper chain, imported with `from scoring import *` (set 8's Text-Classification
    `from utils import *`): the callers in the loop still run it in train mode."""
    _add_scoring(m, s)
    _helper_chain_call(m, s, [f"val_outputs = evaluate_all({s.model}, {s.val_loader})"], star=True)


def p302_eval_helper_grad(m: Mutant, s: Script) -> None:
    """A helper module's `validate_outputs(net, loader)` runs the network over the loader without
    no_grad and without eval(); its evaluation name is what says it is inference, and the loop
    calls it in train mode."""
    m.add_file("checks.py", "\n".join([
        "def validate_outputs(net, loader):",
        f"    return [{infer(s, 'net')}.detach() for batch in loader]",
        "",
    ]))
    doc, first_e, last_e = eval_range(m, s)
    doc.insert_before(first_e, [f"val_outputs = validate_outputs({s.model}, {s.val_loader})"])
    doc.delete_range(first_e, last_e)
    doc.add_import(import_from(m, "checks", "validate_outputs"))


def p302_self_evaluate(m: Mutant, s: Script) -> None:
    """A module class with dropout trains itself in a Keras-style `fit(self, loader, val_loader)`
    and calls its own `evaluate(val_loader)` (`self(x)` under no_grad) after each epoch without
    `self.eval()` (set 8's deepctr-style BaseModel.fit); the script fits one on its loader."""
    ldoc, lline = m.resolve(s.epoch_loop)
    ldoc.insert_before_toplevel(lline, [
        "class ScoreHead(torch.nn.Module):",
        '    """A small scoring head with dropout that fits itself."""',
        "",
        "    def __init__(self):",
        "        super().__init__()",
        "        self.drop = torch.nn.Dropout(0.3)",
        "        self.fc = torch.nn.Linear(16, 1)",
        "",
        "    def forward(self, x):",
        "        return self.fc(self.drop(x))",
        "",
        "    def evaluate(self, loader):",
        "        with torch.no_grad():",
        "            return [self(batch[0].float().flatten(1)[:, :16]) for batch in loader]",
        "",
        "    def fit(self, loader, val_loader, epochs=2):",
        "        head_opt = torch.optim.SGD(self.parameters(), lr=0.1)",
        "        for epoch in range(epochs):",
        "            self.train()",
        "            for batch in loader:",
        "                head_opt.zero_grad()",
        "                self(batch[0].float().flatten(1)[:, :16]).pow(2).mean().backward()",
        "                head_opt.step()",
        "            scores = self.evaluate(val_loader)",
        "        return scores",
        "",
        "",
    ])
    ldoc, lline = m.resolve(s.epoch_loop)
    ldoc.insert_before(lline, ["score_head = ScoreHead()", f"head_scores = score_head.fit({s.val_loader}, {s.val_loader})"])
    ldoc.add_import("import torch")


_DISTILL = [
    "def distill(student, teacher, loader):",
    '    """Fit `student` to the outputs of the fixed `teacher` on `loader`."""',
    "    student_opt = torch.optim.SGD(student.parameters(), lr=0.01)",
    "    for batch in loader:",
    "        with torch.no_grad():",
    "            target = {teacher_out}",
    "        loss = ({student_out} - target).pow(2).mean()",
    "        student_opt.zero_grad()",
    "        loss.backward()",
    "        student_opt.step()",
    "",
    "",
]


def _distill(m: Mutant, s: Script, student_mode: str) -> None:
    """After training, a copy of the model is distilled from the model, which is put in eval as a
    fixed teacher; the student is put in `student_mode` first."""
    ldoc, lline = m.resolve(s.epoch_loop)
    ldoc.insert_before_toplevel(lline, [t.format(teacher_out=infer(s, "teacher"), student_out=infer(s, "student"))
                                        for t in _DISTILL])
    after_epoch_loop(m, s, [
        f"student = copy.deepcopy({s.model})",
        f"{s.model}.eval()",
        f"student.{student_mode}()",
        f"distill(student, {s.model}, {s.val_loader})",
    ])
    ldoc.add_import("import copy")
    ldoc.add_import("import torch")


def p303_distill_student_eval(m: Mutant, s: Script) -> None:
    """The student is put in eval (not train) before it is distilled: every step trains it in eval."""
    _distill(m, s, "eval")


def c_distill_teacher_eval(m: Mutant, s: Script) -> None:
    """The same distillation with the student in train mode: the teacher is in eval, but the
    steps' optimizer holds only the student's parameters."""
    _distill(m, s, "train")


def _score_batch(m: Mutant, s: Script, switched: bool) -> None:
    """The evaluation maps a scoring function over the loader (`map(partial(score_batch, model),
    loader)`): the function is handed as a value, and the caller switched around it."""
    ldoc, lline = m.resolve(s.epoch_loop)
    ldoc.insert_before_toplevel(lline, [
        "def score_batch(net, batch):",
        "    with torch.no_grad():",
        f"        return {infer(s, 'net')}",
        "",
        "",
    ])
    ldoc.add_import("import functools")
    ldoc.add_import("import torch")
    doc, first_e, last_e = eval_range(m, s)
    call = f"val_outputs = list(map(functools.partial(score_batch, {s.model}), {s.val_loader}))"
    doc.insert_before(first_e, [f"{s.model}.eval()", call, f"{s.model}.train()"] if switched else [call])
    doc.delete_range(first_e, last_e)


def c_handed_function(m: Mutant, s: Script) -> None:
    _score_batch(m, s, switched=True)


def _ranker(m: Mutant, s: Script, switched: bool) -> None:
    """A plain helper object of another module (`ranking.Ranker`, no evaluation name) runs the
    network under no_grad; the loop builds one and hands it the model and the validation loader
    where the evaluation was (set 9's vaal: `self.sampler.sample(vae, ...)` in sampler.py)."""
    m.add_file("ranking.py", "\n".join([
        "import torch", "", "",
        "class Ranker:",
        '    """Ranks the batches of a loader by the network\'s top score."""',
        "",
        "    def rank(self, net, loader):",
        "        with torch.no_grad():",
        f"            return [{infer(s, 'net')}.max() for batch in loader]",
        "",
    ]))
    call = f"val_ranks = Ranker().rank({s.model}, {s.val_loader})"
    doc, first_e, last_e = eval_range(m, s)
    doc.insert_before(first_e, [f"{s.model}.eval()", call, f"{s.model}.train()"] if switched else [call])
    doc.delete_range(first_e, last_e)
    doc.add_import(import_from(m, "ranking", "Ranker"))


def p302_helper_object(m: Mutant, s: Script) -> None:
    _ranker(m, s, switched=False)


def c_helper_object_eval(m: Mutant, s: Script) -> None:
    _ranker(m, s, switched=True)


def _add_scoring(m: Mutant, s: Script) -> None:
    m.add_file("scoring.py", "\n".join([
        "import torch", "", "",
        "def evaluate_batch(net, batch):",
        "    with torch.no_grad():",
        f"        return {infer(s, 'net')}",
        "", "",
        "def evaluate_all(net, loader):",
        "    return [evaluate_batch(net, batch) for batch in loader]",
        "",
    ]))


def _helper_chain_call(m: Mutant, s: Script, lines: List[str], star: bool = False) -> None:
    doc, first_e, last_e = eval_range(m, s)
    doc.insert_before(first_e, lines)
    doc.delete_range(first_e, last_e)
    doc.add_import(import_from(m, "scoring", "*" if star else "evaluate_all"))


_RUNNER = [
    "class AveragedRunner(torch.nn.Module):",
    '    """Runs the network it is given (a sampler / decoder wrapper without layers of its own)."""',
    "",
    "    def __init__(self, net):",
    "        super().__init__()",
    "        self.net = net",
    "",
    "    def forward(self, *args, **kwargs):",
    "        return self.net(*args, **kwargs)",
    "",
    "",
]


def _wrapped_copy(m: Mutant, s: Script, switched: str) -> None:
    """An averaged copy `avg_net = copy.deepcopy(model)` built before the epoch loop, run through a
    layer-free wrapper module on a held-out batch under no_grad where the evaluation was, after
    `<switched>.eval()` (and `.train()` after it)."""
    ldoc, lline = m.resolve(s.epoch_loop)
    ldoc.insert_before_toplevel(lline, _RUNNER)
    ldoc, lline = m.resolve(s.epoch_loop)
    ldoc.insert_before(lline, [f"avg_net = copy.deepcopy({s.model})", "avg_runner = AveragedRunner(avg_net)"])
    ldoc.add_import("import copy")
    ldoc.add_import("import torch")
    doc, first_e, last_e = eval_range(m, s)
    target = s.model if switched == "model" else "avg_net"
    doc.insert_before(first_e, [
        f"{target}.eval()",
        "with torch.no_grad():",
        f"    held_batch = next(iter({s.val_loader}))",
        f"    avg_out = {infer(s, 'avg_runner', 'held_batch')}",
        f"{target}.train()",
    ])
    doc.delete_range(first_e, last_e)


def p302_wrapped_copy(m: Mutant, s: Script) -> None:
    """The averaged copy's wrapper runs after the trained model's eval(), not the copy's: the copy
    samples in training mode (set 7's pytorch-ddpm: `net_model.eval()` before `ema_sampler(x_T)`)."""
    if s.starts_in_eval:
        raise NotApplicable("the model starts in eval (from_pretrained): a copy made before the loop is in eval")
    _wrapped_copy(m, s, "model")


def c_wrapped_copy_eval(m: Mutant, s: Script) -> None:
    """The same wrapper, after the averaged copy's own eval()."""
    _wrapped_copy(m, s, "copy")


def p302_generate(m: Mutant, s: Script) -> None:
    """The evaluation calls model.generate(...) and the model is not switched to eval."""
    doc, line = m.resolve(s.eval_switch)
    em = eval_model(m, s)
    fdoc, fline = m.resolve(s.eval_forward)
    doc.delete_stmt(line)
    fdoc.replace_in(fline, f"{em}(", f"{em}.generate(")
    relate(m, s.eval_forward, s.eval_block[0])


def _nograd_around(doc: Doc, line: int):
    import ast as _ast
    best = None
    for node in _ast.walk(doc.tree):
        if isinstance(node, _ast.With) and node.lineno < line <= node.end_lineno:
            if any("no_grad" in _ast.unparse(item.context_expr) for item in node.items):
                if best is None or node.lineno > best.lineno:
                    best = node
    if best is not None:
        return best
    fn = doc.enclosing_function(line)
    for dec in getattr(fn, "decorator_list", []):
        if "no_grad" in _ast.unparse(dec):
            return dec
    return None


def p302_volatile(m: Mutant, s: Script) -> None:
    """Pre-0.4 style: Variable(x, volatile=True) instead of no_grad, and no model.eval()."""
    import ast as _ast
    fdoc, fline = m.resolve(s.eval_forward)
    em = eval_model(m, s)
    arg = re.search(rf"\b{re.escape(em)}\((\w+)[,)]", fdoc.orig_text(fline))
    already = "volatile=True" in fdoc.original
    if not arg and not already:
        raise NotApplicable("the evaluation forward's input is not a plain name")
    target = _nograd_around(fdoc, fline)
    tdoc = fdoc
    if target is None and not already:
        bdoc, first, last = eval_range(m, s)
        withs = [n for n in _ast.walk(bdoc.tree) if isinstance(n, _ast.With) and first <= n.lineno <= last
                 and any("no_grad" in _ast.unparse(i.context_expr) for i in n.items)]
        if not withs:
            raise NotApplicable("no no_grad to replace")
        target, tdoc = withs[0], bdoc
    doc, line = m.resolve(s.eval_switch)
    doc.delete_stmt(line)
    if target is not None:
        tdoc.drop_line(target.lineno)
        if isinstance(target, _ast.With):  # its body moves out by one indentation level
            body = target.body[0].lineno
            width = len(indent_of(tdoc.orig_text(body))) - len(indent_of(tdoc.orig_text(target.lineno)))
            tdoc.dedent_block(body, target.end_lineno, width)
    if arg and not already:
        fdoc.insert_before(fline, [f"{arg.group(1)} = Variable({arg.group(1)}, volatile=True)"])
        fdoc.add_import("from torch.autograd import Variable")
    relate(m, s.eval_forward, s.eval_block[0])


def p302_attr(m: Mutant, s: Script) -> None:
    """The model reaches the evaluation as an attribute, state.net, and is not switched to eval."""
    import ast as _ast
    doc, first, last = eval_range(m, s)
    hit = None
    for node in _ast.walk(doc.tree):
        if isinstance(node, _ast.Call) and first <= node.lineno <= last:
            for a in list(node.args) + [k.value for k in node.keywords]:
                if isinstance(a, _ast.Name) and a.id == s.model:
                    hit = hit or a
    if hit is None:
        raise NotApplicable("the evaluation is not a call that takes the model")
    line = doc.lines[doc.index_of(hit.lineno)]
    col = hit.col_offset
    if line.text[col:col + len(s.model)] != s.model:
        raise AnchorError(f"{doc.path}:{hit.lineno}: model argument not at column {col}")
    line.text = line.text[:col] + "state.net" + line.text[col + len(s.model):]
    line.changed = True
    doc.insert_before(first, [f"state = SimpleNamespace(net={s.model})"])
    doc.add_import("from types import SimpleNamespace")
    sdoc, sline = m.resolve(s.eval_switch)
    sdoc.delete_stmt(sline)
    relate(m, s.eval_forward, s.eval_block[0])


def p302_restore_helper(m: Mutant, s: Script) -> None:
    """A model rebuilt by a helper of another module (restore_from) is tested without eval()."""
    m.add_file("ckpt_utils.py", CKPT)
    doc, _ = m.resolve(s.epoch_loop)
    doc.add_import(import_from(m, "ckpt_utils", "restore_from"))
    after_epoch_loop(m, s, ['best_net = restore_from("model_best.pth")']
                     + inference_loop(s, "best_net", "best_out"))


def p302_restored_fresh(m: Mutant, s: Script) -> None:
    """After training, the loop's function rebuilds the model as the script builds it, loads the best
    checkpoint into it and hands it to the evaluation routine without eval(); the loop's own call of
    the routine comes after `model.eval()` (moved out of the routine when it was inside), so another
    caller's switch must not hide this one (set 13's Prototypical-Networks `eval(opt)`)."""
    doc, fn = eval_routine(m, s)
    if s.build is None:
        raise NotApplicable("no model construction to repeat")
    bdoc, bline = m.resolve(s.build)
    ldoc, lline = m.resolve(s.epoch_loop)
    loop_fn = ldoc.enclosing_function(lline)
    if bdoc is not ldoc or bdoc.enclosing_function(bline) is not loop_fn:
        raise NotApplicable("the model is built outside the training loop's function")
    stmt = bdoc.stmt_at(bline)
    built = re.match(r"\s*(\w+)\s*=\s*(.*)", " ".join(bdoc.orig_text(i).strip() for i in range(bline, stmt.end_lineno + 1)))
    if not built or built.group(1) != s.model:
        raise NotApplicable("the construction does not bind the loop's model name")
    loop = ldoc.stmt_at(lline)
    def statement(i: int) -> str:
        st = ldoc.stmt_at(i)
        return " ".join(ldoc.orig_text(j).strip() for j in range(st.lineno, st.end_lineno + 1))
    calls = sorted({ldoc.stmt_at(i).lineno for i in range(loop.lineno, loop.end_lineno + 1)
                    if re.search(rf"\b{fn.name}\(", ldoc.orig_text(i))})
    calls = [i for i in calls if re.search(rf"\b{s.model}\b", statement(i))
             and not isinstance(ldoc.stmt_at(i), (ast.For, ast.While, ast.If, ast.With))]
    if len(calls) != 1:
        raise NotApplicable("the loop does not call the evaluation routine once with the model")
    inner = re.search(rf"\b{fn.name}\(.*\)", statement(calls[0]))
    sdoc, sline = m.resolve(s.eval_switch)
    if sdoc.enclosing_function(sline) is fn:  # the routine switches itself: its loop caller does instead
        em = eval_model(m, s)
        sdoc.delete_stmt(sline)
        ldoc.insert_before(calls[0], [f"{s.model}.eval()"])
        m.relate(ldoc, calls[0])
    restored = re.sub(rf"\b{s.model}\b", "restored", inner.group(0))
    after_epoch_loop(m, s, [f"restored = {built.group(2)}",
                            'restored.load_state_dict(torch.load("model_best.pth"))',
                            f"best_scores = {restored}"])
    ldoc.add_import("import torch")
    relate(m, s.eval_forward)


def p302_train_then_test(m: Mutant, s: Script) -> None:
    """Right after the batch loop, in the same body, a no_grad test loop without eval()."""
    doc, line = m.resolve(s.step)
    loops = doc.loops_around(line)
    ldoc, lline = m.resolve(s.epoch_loop)
    if not loops or (ldoc is doc and loops[0].lineno == lline):
        raise NotApplicable("the step is directly in the outer loop: no batch loop to follow")
    tm = train_model(m, s)
    doc.insert_after_stmt(loops[0].lineno, inference_loop(s, tm, "quick_out"))
    doc.add_import("import torch")


def p303_from_pretrained(m: Mutant, s: Script) -> None:
    """A from_pretrained model (eval mode) is trained by the loop without any .train()."""
    delete_train_switches(m, s, every=True)
    build = s.trained_build or s.build
    if build is None:
        raise NotApplicable("no model construction to replace")
    doc, line = m.resolve(build)
    if not s.starts_in_eval:
        lhs = re.match(r"\s*(\w+)\s*=", doc.orig_text(line))
        if not lhs:
            raise AnchorError(f"{doc.path}:{line}: the construction is not `name = ...`")
        stmt = doc.stmt_at(line)
        doc.insert_before(line, [f"{lhs.group(1)} = AutoModel.from_pretrained({PRETRAINED})"])
        doc.delete_range(line, stmt.end_lineno)
        doc.add_import("from transformers import AutoModel")
    m.relate(doc, line)
    relate(m, s.eval_switch, s.eval_block[0])
    relate_step(m, s)


def p303_initial_eval(m: Mutant, s: Script) -> None:
    """An evaluation before the loop leaves the model in eval; nothing calls .train() afterwards."""
    bdoc, first, last = eval_range(m, s)
    ldoc, lline = m.resolve(s.epoch_loop)
    drop = set()
    for anchor in (s.train_switch,) + s.more_train_switches:
        d, l = m.resolve(anchor)
        if d is bdoc:
            drop.add(l)
    base = len(indent_of(bdoc.orig_text(first)))
    texts = [bdoc.orig_text(i)[base:] for i in range(first, last + 1) if i not in drop]
    ldoc.insert_before(lline, texts)
    delete_train_switches(m, s, every=True)
    relate(m, s.eval_switch, s.eval_block[0])
    relate_step(m, s)


def p304_train_in_eval(m: Mutant, s: Script) -> None:
    """model.train() at the start of the evaluation routine, before its no_grad forward."""
    doc, line = switch_in_routine(m, s.eval_switch, s)
    em = eval_model(m, s)
    doc.replace_in(line, f"{em}.eval()", f"{em}.train()")
    relate(m, s.eval_forward)


def p304_eval_in_train(m: Mutant, s: Script) -> None:
    """model.eval() at the start of the training routine."""
    doc, line = switch_in_routine(m, s.train_switch, s)
    call = re.search(r"\.train\([^)]*\)", doc.orig_text(line))
    doc.replace_in(line, call.group(0), ".eval()")
    relate_step(m, s)


def _frozen_target(m: Mutant, s: Script) -> Tuple[Doc, int, str]:
    if s.build is None or s.freeze is None:
        raise NotApplicable("no model construction / submodule to freeze")
    doc, line = m.resolve(s.build)
    lhs = re.match(r"\s*(\w+)\s*=", doc.orig_text(line))
    if not lhs:
        raise AnchorError(f"{doc.path}:{line}: the construction is not `name = ...`")
    return doc, line, lhs.group(1)


def p205_setup(m: Mutant, s: Script) -> None:
    """A submodule frozen with eval() + requires_grad_(False) at setup; model.train() comes later."""
    doc, line, name = _frozen_target(m, s)
    doc.insert_after_stmt(line, [f"{name}.{s.freeze}.eval()  # frozen: fixed batch-norm statistics",
                                 f"{name}.{s.freeze}.requires_grad_(False)"])
    relate(m, s.train_switch)


def p205_init(m: Mutant, s: Script) -> None:
    """The freeze sits in a wrapper module's __init__ (no train() override); model.train() later."""
    doc, line, name = _frozen_target(m, s)
    doc.insert_before_toplevel(line, [
        "class FrozenStem(torch.nn.Module):",
        '    """Wraps a network whose first block stays frozen."""',
        "",
        "    def __init__(self, net):",
        "        super().__init__()",
        "        self.net = net",
        f"        self.net.{s.freeze}.eval()",
        f"        self.net.{s.freeze}.requires_grad_(False)",
        "",
        "    def forward(self, *args, **kwargs):",
        "        return self.net(*args, **kwargs)",
        "",
        "",
    ])
    doc.insert_after_stmt(line, [f"{name} = FrozenStem({name})"])
    doc.add_import("import torch")
    relate(m, s.train_switch)


def _frozen_by_flag_only(m: Mutant, s: Script) -> Tuple[Doc, int, str]:
    if s.starts_in_eval:
        raise NotApplicable("from_pretrained: the model starts in eval and its layers are unknown (MDL207 claims neither)")
    return _frozen_target(m, s)


def p207_setup(m: Mutant, s: Script) -> None:
    """A submodule frozen at setup with `requires_grad_(False)` only, never put in eval."""
    doc, line, name = _frozen_by_flag_only(m, s)
    doc.insert_after_stmt(line, [f"{name}.{s.freeze}.requires_grad_(False)  # frozen: not trained"])


def p207_params_loop(m: Mutant, s: Script) -> None:
    """The same freeze spelled as a loop over the submodule's parameters."""
    doc, line, name = _frozen_by_flag_only(m, s)
    doc.insert_after_stmt(line, [f"for frozen_p in {name}.{s.freeze}.parameters():",
                                 "    frozen_p.requires_grad = False"])


def c_unfrozen_later(m: Mutant, s: Script) -> None:
    """Frozen at setup, unfrozen at the start of the training loop (a warm-up that trains it later)."""
    doc, line, name = _frozen_by_flag_only(m, s)
    doc.insert_after_stmt(line, [f"{name}.{s.freeze}.requires_grad_(False)  # frozen for the warm-up"])
    sdoc, sline = m.resolve(s.step)
    sdoc.insert_after_stmt(sline, [f"{train_model(m, s)}.{s.freeze}.requires_grad_(True)  # warm-up over"])


def _saved_flag(m: Mutant, s: Script, restore: List[str]) -> None:
    need_eval_in_loop(s)
    if s.starts_in_eval:
        raise NotApplicable("the model starts in eval: without its .train() the control would be a bug")
    doc, first, last = eval_range(m, s)
    doc.insert_before(first, [f"was_training = {s.model}.training"])
    doc.insert(doc.index_after(last), restore, indent_of(doc.orig_text(first)))
    delete_train_switches(m, s)


def c_save_restore_if(m: Mutant, s: Script) -> None:
    """was = model.training; ...eval...; if was: model.train() (instead of the loop's .train())."""
    _saved_flag(m, s, ["if was_training:", f"    {s.model}.train()"])


def c_save_restore_arg(m: Mutant, s: Script) -> None:
    """was = model.training; ...eval...; model.train(was) (instead of the loop's .train())."""
    _saved_flag(m, s, [f"{s.model}.train(was_training)"])


def c_train_after_eval(m: Mutant, s: Script) -> None:
    """The .train() moves from the top of the training code to right after the evaluation."""
    need_eval_in_loop(s)
    if s.starts_in_eval:
        raise NotApplicable("the model starts in eval: the first epoch would train in eval")
    doc, first, last = eval_range(m, s)
    doc.insert(doc.index_after(last), [f"{s.model}.train()"], indent_of(doc.orig_text(first)))
    delete_train_switches(m, s)


def c_plain_class_eval(m: Mutant, s: Script) -> None:
    """A plain (non-module) object with its own eval() method is called right before the step: not
    a mode switch of any model."""
    doc, line = m.resolve(s.step)
    doc.insert_before(line, ["meter.eval()"])
    doc.insert_before_toplevel(line, [
        "class RunningMeter:",
        "    def __init__(self):",
        "        self.values = []",
        "",
        "    def eval(self):",
        "        return sum(self.values) / max(len(self.values), 1)",
        "",
        "",
        "meter = RunningMeter()",
        "",
        "",
    ])


def c_linear_probe(m: Mutant, s: Script) -> None:
    """After training, the model is put in eval as a frozen feature extractor and a new linear
    probe is trained on its outputs: the probe, not the model, is what the step trains."""
    after_epoch_loop(m, s, [
        f"{s.model}.eval()",
        "probe = torch.nn.Linear(16, 2)",
        "probe_opt = torch.optim.SGD(probe.parameters(), lr=0.1)",
        f"for batch in {s.val_loader}:",
        "    with torch.no_grad():",
        f"        feats = {infer(s, s.model)}",
        "    probe_opt.zero_grad()",
        "    probe(feats.float().flatten(1)[:, :16]).sum().backward()",
        "    probe_opt.step()",
    ])
    doc, _ = m.resolve(s.epoch_loop)
    doc.add_import("import torch")


def c_modefree_probe(m: Mutant, s: Script) -> None:
    """A model without mode-dependent layers run under no_grad in train mode (same in both modes)."""
    doc, line = m.resolve(s.epoch_loop)
    doc.insert_before(line, [
        "probe = torch.nn.Sequential(torch.nn.Linear(16, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))",
        "with torch.no_grad():",
        "    probe_out = probe(torch.zeros(2, 16))",
    ])
    doc.add_import("import torch")


@dataclass(frozen=True)
class Pattern:
    name: str
    codes: Tuple[str, ...]  # accepted codes; the first is the one it counts for; () = control
    apply: Callable[[Mutant, Script], None]
    # The bug is on a model the mutation brings (a `from_pretrained` model, a torchvision ResNet
    # rebuilt by a helper), not on the script's own: a mode-free script does not make it a control.
    own_model: bool = False

    @property
    def control(self) -> bool:
        return not self.codes

    def control_on(self, s: "Script") -> bool:
        """A control on this script: a correct idiom, or any pattern on the script's mode-free model."""
        return self.control or (s.mode_free and not self.own_model)


PATTERNS: Tuple[Pattern, ...] = (
    Pattern("301-plain", ("MDL301",), p301_plain),
    Pattern("301-cross-file-switch", ("MDL301",), p301_cross_file),
    Pattern("301-wrapper-to_eval", ("MDL301",), p301_wrapper),
    Pattern("301-update-fn-step", ("MDL301",), p301_update_fn),
    Pattern("301-alias-eval", ("MDL301",), p301_alias),
    Pattern("301-flag-routine-train-true", ("MDL301", "MDL303"), p301_flag_routine),
    Pattern("302-plain", ("MDL302",), p302_plain),
    Pattern("302-test-after-training", ("MDL302",), p302_after_training),
    Pattern("302-heldout-every-n", ("MDL302",), p302_heldout),
    Pattern("302-heldout-shape-and-value", ("MDL302",), p302_shape_and_value),
    Pattern("302-neutral-name", ("MDL302",), p302_neutral_name),
    Pattern("302-tester-method", ("MDL302",), p302_tester),
    Pattern("302-helper-chain", ("MDL302",), p302_helper_chain),
    Pattern("302-generate", ("MDL302",), p302_generate),
    Pattern("302-wrapped-copy", ("MDL302",), p302_wrapped_copy),
    Pattern("302-volatile", ("MDL302",), p302_volatile),
    Pattern("302-attribute-state.net", ("MDL302",), p302_attr),
    Pattern("302-star-imported-helper", ("MDL302",), p302_star_helper),
    Pattern("302-helper-object-held-out", ("MDL302",), p302_helper_object),
    Pattern("302-eval-helper-with-grad", ("MDL302",), p302_eval_helper_grad),
    Pattern("302-self-evaluate-in-fit", ("MDL302",), p302_self_evaluate, own_model=True),  # its own dropout head
    Pattern("302-restore-helper", ("MDL302",), p302_restore_helper, own_model=True),  # resnet18: batch norm
    Pattern("302-train-then-test", ("MDL302",), p302_train_then_test),
    Pattern("302-restored-into-fresh-model", ("MDL302",), p302_restored_fresh),
    Pattern("303-from-pretrained", ("MDL303",), p303_from_pretrained, own_model=True),  # layers unknown
    Pattern("303-initial-eval", ("MDL303",), p303_initial_eval),
    Pattern("303-distill-student-eval", ("MDL303",), p303_distill_student_eval),
    Pattern("304-train-in-eval-routine", ("MDL304",), p304_train_in_eval),
    Pattern("304-eval-in-train-routine", ("MDL304",), p304_eval_in_train),
    Pattern("205-freeze-at-setup", ("MDL205",), p205_setup),
    Pattern("205-freeze-in-init", ("MDL205",), p205_init),
    Pattern("207-frozen-at-setup", ("MDL207",), p207_setup),
    Pattern("207-frozen-params-loop", ("MDL207",), p207_params_loop),
    Pattern("ctl-save-restore-if", (), c_save_restore_if),
    Pattern("ctl-save-restore-arg", (), c_save_restore_arg),
    Pattern("ctl-train-after-eval", (), c_train_after_eval),
    Pattern("ctl-mode-free-probe", (), c_modefree_probe),
    Pattern("ctl-heldout-shape-probe", (), c_shape_probe),
    Pattern("ctl-alias-eval-restored", (), c_alias_eval_restored),
    Pattern("ctl-plain-class-eval", (), c_plain_class_eval),
    Pattern("ctl-linear-probe", (), c_linear_probe),
    Pattern("ctl-flag-routine-train-false", (), c_flag_routine_off),
    Pattern("ctl-helper-chain-eval", (), c_helper_chain_eval),
    Pattern("ctl-wrapped-copy-eval", (), c_wrapped_copy_eval),
    Pattern("ctl-distill-teacher-eval", (), c_distill_teacher_eval),
    Pattern("ctl-handed-scoring-function", (), c_handed_function),
    Pattern("ctl-helper-object-eval", (), c_helper_object_eval),
    Pattern("ctl-unfrozen-later", (), c_unfrozen_later),
)


def accepted(p: Pattern, s: Script) -> Tuple[str, ...]:
    """Codes that count as the right finding. With a from_pretrained model, deleting the loop's
    .train() leaves it in eval on every path: 'eval never undone' (MDL301) and 'training in eval
    mode' (MDL303) are then both right."""
    if s.starts_in_eval and p.codes and p.codes[0] == "MDL301":
        return ("MDL301", "MDL303")
    return p.codes


# ---------------------------------------------------------------------------------------------
# Sources


class BenchError(Exception):
    """Something the bench itself could not do (no source, modelint failed): exit status 2."""


def read_sources(s: Script, mirror: Optional[Path], cache: Path) -> Dict[str, str]:
    if mirror is not None:
        gitdir = mirror / s.repo.replace("/", "+") / "repo"
        out = {}
        for path in s.files:
            res = subprocess.run(["git", "-C", str(gitdir), "show", f"{s.commit}:{path}"],
                                 capture_output=True, text=True)
            if res.returncode:
                raise BenchError(f"{s.repo}@{s.commit[:10]}:{path}: {res.stderr.strip() or 'git show failed'}")
            out[path] = res.stdout
        return out
    return read_archive(s, cache)


def read_archive(s: Script, cache: Path) -> Dict[str, str]:
    folder = cache / "callsite" / f"{s.repo.replace('/', '+')}-{s.commit[:12]}"
    if not all((folder / p).is_file() for p in s.files):
        url = f"https://codeload.github.com/{s.repo}/tar.gz/{s.commit}"
        try:
            with urllib.request.urlopen(url, timeout=120) as resp:
                data = resp.read()
        except OSError as exc:
            raise BenchError(f"{url}: {exc} (no network? use --mirror DIR)") from None
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for member in tar.getmembers():
                inner = member.name.partition("/")[2]
                if inner in s.files and member.isfile():
                    target = folder / inner
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(tar.extractfile(member).read())
    missing = [p for p in s.files if not (folder / p).is_file()]
    if missing:
        raise BenchError(f"{s.repo}@{s.commit[:10]}: not in the archive: {', '.join(missing)}")
    return {p: (folder / p).read_text(encoding="utf-8") for p in s.files}


def prepared(s: Script, sources: Dict[str, str]) -> Dict[str, str]:
    out = dict(sources)
    for path, old, new in s.prep:
        if old not in out[path]:
            raise AnchorError(f"{path}: preparation anchor {old!r} missing")
        out[path] = out[path].replace(old, new)
    return out


def fresh_mutant(s: Script, sources: Dict[str, str]) -> Mutant:
    return Mutant({p: Doc(p, t) for p, t in sources.items()}, s.files[0], packages=s.packages)


# ---------------------------------------------------------------------------------------------
# Running modelint


def write_tree(m: Mutant, root: Path) -> None:
    for path, doc in m.docs.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(doc.text(), encoding="utf-8")
    for pkg in m.packages:
        init = root / pkg / "__init__.py"
        if not init.exists():
            init.write_text("", encoding="utf-8")


def check(root: Path) -> List[dict]:
    cmd = [sys.executable, "-m", "modelint", "check", "--no-config", "--no-cache", "--format", "json",
           "--exit-zero", "--jobs", "1", "--select", "MDL2,MDL3", str(root)]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=str(root))
    if res.returncode:
        raise BenchError(f"modelint exited {res.returncode}: {res.stderr.strip()[-400:]}")
    try:
        findings = json.loads(res.stdout)
    except ValueError:
        raise BenchError(f"modelint printed no JSON: {res.stdout[:200]!r}") from None
    for f in findings:  # paths relative to the mutant's root, as the mutation engine names files
        f["path"] = Path(os.path.relpath(Path(root, f["path"]), root)).as_posix()
    bad = [f for f in findings if f["code"] in ("MDL000", "MDL999")]
    if bad:
        raise BenchError(f"modelint could not read the mutant: {bad[0]['path']}:{bad[0]['line']}: {bad[0]['message']}")
    return findings


def known_codes(codes: Sequence[str]) -> Dict[str, bool]:
    """Which codes the modelint on PYTHONPATH knows (`modelint rule CODE` exits 0). Run outside
    this repository: `python -m` puts the working folder before PYTHONPATH."""
    with tempfile.TemporaryDirectory(prefix="callsite-") as tmp:
        return {c: subprocess.run([sys.executable, "-m", "modelint", "rule", c], capture_output=True,
                                  cwd=tmp).returncode == 0 for c in codes}


def run_tree(m: Mutant, keep: Optional[Path], label: str) -> List[dict]:
    if keep is not None:
        root = keep / label
        if root.exists():
            shutil.rmtree(root)
        root.mkdir(parents=True)
        write_tree(m, root)
        return check(root)
    with tempfile.TemporaryDirectory(prefix="callsite-") as tmp:
        write_tree(m, Path(tmp))
        return check(Path(tmp))


# ---------------------------------------------------------------------------------------------
# Verdicts


@dataclass
class Outcome:
    script: str
    pattern: str
    code: str  # the code it counts for ("" for a control)
    status: str  # caught / missed / baseline / clean / false-alarm / n/a / error
    detail: str = ""
    findings: List[str] = field(default_factory=list)


def judge(p: Pattern, s: Script, m: Mutant, base: List[dict], found: List[dict], near: int) -> Outcome:
    control = p.control_on(s)
    codes = WATCHED if control else accepted(p, s)
    windows = m.windows(near)
    maps = {path: doc.new_line_of() for path, doc in m.docs.items()}
    old = {(f["path"], maps.get(f["path"], {}).get(f["line"]), f["code"]) for f in base if f["code"] in codes}
    near_new = [f for f in found if f["code"] in codes and f["line"] in windows.get(f["path"], ())
                and (f["path"], f["line"], f["code"]) not in old]
    shown = [f"{f['path']}:{f['line']}: {f['code']} {f['message'][:110]}" for f in near_new]
    code = "" if control else p.codes[0]
    if control:
        return Outcome(s.key, p.name, code, "false-alarm" if near_new else "clean", findings=shown)
    if near_new:
        return Outcome(s.key, p.name, code, "caught", findings=shown)
    in_window_before = [o for o in old if o[1] is not None and o[1] in windows.get(o[0], ())]
    if in_window_before:
        return Outcome(s.key, p.name, code, "baseline", f"the original already reports {in_window_before[0][2]} there")
    elsewhere = [f"{f['path']}:{f['line']}: {f['code']}" for f in found if f["code"] in codes
                 and (f["path"], f["line"], f["code"]) not in old]
    return Outcome(s.key, p.name, code, "missed", ("not near; elsewhere: " + ", ".join(elsewhere[:3])) if elsewhere else "")


def measure(s: Script, p: Pattern, sources: Dict[str, str], base: List[dict], near: int,
            keep: Optional[Path]) -> Outcome:
    label = p.name if not p.control_on(s) or p.control else f"{p.name} (mode-free model)"
    m = fresh_mutant(s, sources)
    try:
        p.apply(m, s)
        m.check_parses()
    except NotApplicable as exc:
        return Outcome(s.key, label, "" if p.control_on(s) else p.codes[0], "n/a", str(exc))
    except AnchorError as exc:
        return Outcome(s.key, label, "", "error", str(exc))
    try:
        found = run_tree(m, keep, f"{s.key}/{p.name}")
    except BenchError as exc:
        return Outcome(s.key, label, "", "error", str(exc))
    out = judge(p, s, m, base, found, near)
    out.pattern = label
    return out


# ---------------------------------------------------------------------------------------------
# Report


def pct(a: int, b: int) -> str:
    return f"{100.0 * a / b:5.1f}%" if b else "    -"


def summarize(outcomes: List[Outcome]) -> dict:
    positive = [o for o in outcomes if o.code and o.status in ("caught", "missed")]
    per_pattern: Dict[str, List[int]] = {}
    per_code: Dict[str, List[int]] = {}
    for o in positive:
        for table, key in ((per_pattern, o.pattern), (per_code, o.code)):
            row = table.setdefault(key, [0, 0])
            row[0] += o.status == "caught"
            row[1] += 1
    controls = [o for o in outcomes if o.status in ("clean", "false-alarm")]
    return {
        "caught": sum(o.status == "caught" for o in positive), "injected": len(positive),
        "per_pattern": per_pattern, "per_code": per_code,
        "controls_clean": sum(o.status == "clean" for o in controls), "controls": len(controls),
        "baseline": [vars(o) for o in outcomes if o.status == "baseline"],
        "errors": [vars(o) for o in outcomes if o.status == "error"],
    }


def report(outcomes: List[Outcome], summary: dict, listing: bool, known: Dict[str, bool]) -> str:
    lines = []
    order = [p.name for p in PATTERNS]
    lines.append(f"{'pattern':34} {'caught/injected':>16} {'recall':>7}   n/a  baseline")
    for name in order:
        row = summary["per_pattern"].get(name, [0, 0])
        na = sum(o.status == "n/a" and o.pattern == name for o in outcomes)
        bl = sum(o.status == "baseline" and o.pattern == name for o in outcomes)
        if name.startswith("ctl-"):
            continue
        lines.append(f"{name:34} {row[0]:>7}/{row[1]:<8} {pct(*row):>7} {na:5} {bl:9}")
    lines.append("")
    lines.append(f"{'code':34} {'caught/injected':>16} {'recall':>7}")
    for code in sorted(set(c for p in PATTERNS for c in p.codes)):
        row = summary["per_code"].get(code, [0, 0])
        note = "" if known.get(code, True) else "   (not a code of this modelint: 0 by construction)"
        lines.append(f"{code:34} {row[0]:>7}/{row[1]:<8} {pct(*row):>7}{note}")
    lines.append(f"{'all':34} {summary['caught']:>7}/{summary['injected']:<8} {pct(summary['caught'], summary['injected']):>7}")
    lines.append("")
    lines.append(f"controls clean: {summary['controls_clean']}/{summary['controls']}")
    for o in outcomes:
        if o.status == "false-alarm":
            lines.append(f"  FALSE ALARM {o.script} {o.pattern}: " + " | ".join(o.findings[:2]))
    misses = [o for o in outcomes if o.status == "missed"]
    if misses:
        lines.append("")
        lines.append(f"misses ({len(misses)}), per pattern:")
        for name in order:
            these = [o for o in misses if o.pattern.split(" ")[0] == name]
            if these:
                lines.append(f"  {name:30} {', '.join(o.script for o in these)}")
        for o in misses:
            if o.detail:
                lines.append(f"  {o.script} {o.pattern}: {o.detail}")
    for o in outcomes:
        if o.status == "baseline":
            lines.append(f"  BASELINE {o.script} {o.pattern}: {o.detail}")
    for o in outcomes:
        if o.status == "error":
            lines.append(f"  BENCH ERROR {o.script} {o.pattern}: {o.detail}")
    if listing:
        lines.append("")
        for o in outcomes:
            lines.append(f"{o.script:18} {o.pattern:44} {o.code or 'control':7} {o.status:11} {o.detail}")
            for f in o.findings:
                lines.append(f"      {f}")
    return "\n".join(lines) + "\n"


def select(items, names: Optional[str], key, what: str):
    if not names:
        return list(items)
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    known = {key(i) for i in items}
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise SystemExit(f"callsite_recall: unknown {what}: {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    return [i for i in items if key(i) in wanted]


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description="Mutation recall of the call-site rules on real scripts.")
    ap.add_argument("--mirror", type=Path, help="folder of git mirrors OWNER+NAME/repo (no download)")
    ap.add_argument("--cache", type=Path, default=Path(os.environ.get("MODELINT_BENCH_CACHE",
                                                                      Path.home() / ".cache" / "modelint-bench")))
    ap.add_argument("--scripts", help="comma-separated script keys (default: all)")
    ap.add_argument("--patterns", help="comma-separated pattern names (default: all)")
    ap.add_argument("--near", type=int, default=NEAR, help=f"lines a finding may be from a site (default {NEAR})")
    ap.add_argument("--require", type=float, metavar="N", help="exit 1 if overall recall is below N %%")
    ap.add_argument("--jobs", type=int, default=2, help="mutants checked at once (default 2)")
    ap.add_argument("--list", action="store_true", help="print every mutant's verdict and findings")
    ap.add_argument("--keep", type=Path, help="write the mutants under this folder and keep them")
    ap.add_argument("--json", type=Path, help="write outcomes and summary as JSON")
    args = ap.parse_args(argv)
    if args.mirror is not None and not args.mirror.is_dir():
        print(f"callsite_recall: --mirror {args.mirror}: not a folder", file=sys.stderr)
        return 2
    scripts = select(SCRIPTS, args.scripts, lambda s: s.key, "script")
    patterns = select(PATTERNS, args.patterns, lambda p: p.name, "pattern")
    outcomes: List[Outcome] = []
    errors = 0
    for s in scripts:
        try:
            sources = prepared(s, read_sources(s, args.mirror, args.cache))
            base = run_tree(fresh_mutant(s, sources), args.keep, f"{s.key}/original")
        except (BenchError, AnchorError, SyntaxError) as exc:
            print(f"callsite_recall: {s.key}: {exc}", file=sys.stderr)
            errors += 1
            continue
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            outcomes += list(pool.map(lambda p: measure(s, p, sources, base, args.near, args.keep), patterns))
    summary = summarize(outcomes)
    known = known_codes(sorted({c for p in PATTERNS for c in p.codes}))
    summary["unknown_codes"] = [c for c, ok in known.items() if not ok]
    sys.stdout.write(report(outcomes, summary, args.list, known))
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "outcomes": [vars(o) for o in outcomes]}, indent=1))
    if errors or summary["errors"]:
        return 2
    if args.require is not None and summary["injected"]:
        if 100.0 * summary["caught"] / summary["injected"] < args.require:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

from __future__ import annotations

from typing import Dict, List, Optional, Set, Tuple

import libcst as cst

from modelint.analysis.context import dotted
from modelint.analysis.keysensitivity import mode_free
from modelint.analysis.modeflow import (
    TRAIN, TRAINED, UNKNOWN, Created, EvalSite, ModeFlow, ScopeFlow, Step, eval_on_every_path, for_context,
    forwarded_at_step, get, not_trained_by, not_trained_name, step_over_inputs, trains_only_parts_in_train,
)
from modelint.analysis.optimized import held_by_step, optimized_keys, parts_back_in_train, trained_by
from modelint.analysis.routines import routine_facts
from modelint.rules.base import Rule, measured_set6, measured_sets_8_9, measured_sets_10_11, measured_set12, measured_set13, measured_set14, measured_sets_15_16, remeasured_2026_12_02, remeasured_2026_12_03, measured_set17, measured_set18, measured_set19, measured_upstream18, measured_upstream17, measured_set20
from modelint.rules.training_fixes import train_before_loop


class TrainingInEvalMode(Rule):
    code = "MDL303"
    name = "training-in-eval-mode"
    level = "error"
    default = False  # issue 15's measuring set: see the end of `what`
    summary = "A training step runs on a model that is in eval mode on every path to it."
    what = (
        "Reports an optimizer step (`optimizer.step()`, `scaler.step(opt)`, a wrapper's `fit_batch()` or a "
        "step callable returned by a helper, followed across files through the project's mode summaries, also "
        "through a name bound to the method and called later: `run_epoch = runner.fit; run_epoch(batches)`) "
        "when a model that the step trains (called outside `no_grad` in the same loop, or handed to the "
        "call that steps) is in eval mode on every path to it: it comes from `from_pretrained` (which "
        "returns eval mode) and nothing calls `.train()` (on every path, or on the path that loads it when no "
        "path switches it: `if ckpt is None: model = X.from_pretrained(...) else: model = torch.load(ckpt)`), "
        "or it was put in eval mode (`model.eval()`, "
        "`model.train(False)`, an evaluation helper, in this file or another) before the training loop "
        "and nothing switched it back (also when the loop repeats that evaluation: no path reaches the "
        "step in training mode). The model may come from a file-local setup function (`net, opt = "
        "build(cfg)`), a model handed to a function outside the project and bound back (`model = "
        "convert_syncbn_model(model)`, `model, opt, dl = engine.make_private(module=model, ...)`, "
        "`model = DDP(model)` under any import name) keeps its mode, and a step inside "
        "a function of this file that the loop calls is reported where it "
        "runs. A step inside a helper of another file (or a method of a plain class) is judged in the modes "
        "the helper has at that step, not those it leaves on return (`def warm_up(self): self.net.train(); "
        "<steps>; self.net.eval()` trains in training mode), and when what the helper runs outside no_grad "
        "is a part of the model (`head = model.head`, then a loop that calls `head.train()` before its "
        "step: a linear-probe evaluation), the mode of that part at the step is what counts, not the "
        "whole model's. Also reports a `LightningModule` whose `__init__` stores a "
        "`from_pretrained` model when none of its methods calls `.train()` (Lightning 2.2 and later do not call "
        "`.train()` when fitting starts; newer versions only warn that modules are in eval mode), unless the class "
        "defines a hook only Lightning 1.x calls (`validation_epoch_end`: it was written for a Lightning whose fit "
        "put the whole module in training mode), or the loaded object is a tokenizer, config, processor, "
        "scheduler or retriever (`config_class.from_pretrained(...)`, by the receiver's name in any case). Not reported: a step the model's mode turns off (`if not model.training: return loss` before it, "
        "or `if model.training:` around it, also in a helper of another file and on an attribute handed "
        "to it, `self.loss_f.call_optimize(x, self.model, ...)`); a model run only with its result detached (`feats = model(x).detach()`: a frozen encoder under a linear probe gets no gradient); a step "
        "that some path reaches in training mode (MDL301's case when an eval in the loop is undone too late) "
        "unless another path brings an unswitched `from_pretrained` model, "
        "an optimizer built over input tensors (`LBFGS([image])`: style transfer, adversarial inputs; lists joined with "
        "`+`, and the values of a dict of a model's buffers, `Adam([w] + list(noise.values()))` with `noise = {n: b for "
        "n, b in G.named_buffers()}`: GAN inversion; also inside "
        "a helper of another file, whose steps in eval are then not the model's), a model "
        "built in the scope whose mode sensitivity is \"no\" (train and eval compute the same), sub-modules (`model.backbone.eval()` "
        "freezes on purpose), EMA / teacher / target models by name, backward-only loops (adversarial "
        "examples), a model whose parameters are not in the optimizer the step steps when that optimizer is built in the file (`d_opt.step()` with `d_opt = Adam(disc.parameters())`: the generator put in eval to make the discriminator's inputs is not trained by it; a `.backward()` is judged by the first `X.step()` after it in its loop body), or in none of the optimizers built in the file (a fixed loss network such as a VGG feature extractor beside `Adam(generator.parameters())`; only when every optimizer the file steps is built in it from readable `X.parameters()` expressions; options named like one, `opt = parser.parse_args()`, are not an optimizer), a model whose parts the step trains through a container built from them and switched back to train (`tuned = nn.ModuleList([net.blocks[-1]]); tuned.train()`, or built empty and given the parts with `tuned.append(net.blocks[-1])`, with the optimizer over the container: the parts outside it stay in eval and are not caught), a new model built from a value read off a model in eval (`Probe(encoder.width, n_classes)`: a linear probe sized from a frozen encoder is another model; `Wrapper(encoder)` around the model itself runs it in eval and is reported), a `.eval()` written in a routine named as training (`train_epoch`, `fit`: MDL304 "
        "reports that switch), steps whose model may be in training mode on some path, and the steps of a "
        "routine that sit under a test of one of its parameters nothing in it rebinds (`if train:`, `if "
        "optimizer is not None:`, `if stage == \"fit\":`, or a local bound once to such a compare) when the call "
        "passes the literal value, or leaves the literal default, that makes the test false (`evaluate_loop("
        "model, \"val\", opt=None)`: no step runs, in this file or another); `mode == \"train\" or mode == "
        "\"train+log\"` counts as one test; and a step under a test of the model's own mode (`if "
        "model.training:`) after the caller put that model in eval."
    )
    what += (
        " "
        'Off by default: on the measuring set (26 code bases never used to develop it: 17 repositories '
        'with training scripts and 9 model packages; `bench/precision.py`, verdicts with reasons in '
        '`bench/verdicts/measuring.tsv`) it reached 0% real-or-deliberate (2 findings, both false: an '
        'optimizer that steps an input image rather than the model in eval, and two models mixed up by '
        "the step's reach), below the 95% a default rule needs. Select it with `--select` or "
        '`extend-select`.'
    )
    what += remeasured_2026_12_02(
        set3=('no finding'),
        set2=('3 findings, all false (0%)'),
    )
    what += remeasured_2026_12_03(set4="3 findings, all false (0%)", set5="3 findings, all false (0%)")
    what += measured_set6("5 findings, all false (0%: a discriminator in eval while the other network's optimizer steps, a frozen perceptual network)")
    what += (" Sets 4 and 5 have since tuned this rule (set 5's false eval-only branch, whose routine steps "
             "only `if is_train`, shaped the guarded-step exemption above; afterwards set 4: 3 findings, all "
             "false; set 5: 2, both false).")
    what += measured_sets_8_9("no finding", "1 finding, false (0%: a fixed source encoder that the called routine's optimizers do not hold)")
    what += measured_sets_10_11("no finding", "1 finding, false (a routine training a new probe on detached embeddings)")
    what += measured_set12("no finding", "none is a training step in eval mode")
    what += measured_set13("1 finding, false (0%: a linear probe stepping Linear heads on the detached features of an encoder kept in eval on purpose); after the run it became a tuning set, and the detached-result exemption above mends that finding")
    what += measured_set14("no finding")
    what += measured_sets_15_16("no finding",
                                "3 findings: 1 deliberate (a linear probe on an encoder kept in eval on purpose), 2 false (a step under `if model.training:`; a helper that trains only a probe it builds; both no longer reported)")
    what += measured_set17("1 finding, deliberate (a head trained with the teacher's backbone kept in eval, as the method intends)")
    what += measured_upstream17('none: it missed a model that a loader of another file returns in eval (`return model.eval()`) and that Lightning then fits; its one other finding on those trees was false (a config object taken for a model)')
    what += measured_set18('1 finding, false (an evaluation through a loss whose step sits behind `if not model.training: return`; fixed since)')
    what += measured_upstream18('no finding (the list has no model trained in eval)')
    what += measured_set19('2 findings, both false (a checkpoint helper handed a loss and an optimizer, taken for a step; a frozen teacher the optimizer does not hold)')
    what += measured_set20('no finding')
    why = (
        "`from_pretrained` returns a model in eval mode, and `.eval()` lasts until `.train()`. Training "
        "such a model runs with dropout off and batch norm normalising with, and never updating, its "
        "running statistics: nothing fails, the loss goes down, but regularisation is gone and "
        "fine-tuning results are worse than the same code with `model.train()`."
    )
    example = (
        "from transformers import AutoModelForSequenceClassification\n"
        "\n"
        "def finetune(loader, epochs):\n"
        "    model = AutoModelForSequenceClassification.from_pretrained(\"bert-base-uncased\")\n"
        "    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5)\n"
        "    for epoch in range(epochs):\n"
        "        for batch in loader:\n"
        "            model(**batch).loss.backward()\n"
        "            optimizer.step()\n"
        "            optimizer.zero_grad()\n"
    )
    use_instead = (
        "from transformers import AutoModelForSequenceClassification\n"
        "\n"
        "def finetune(loader, epochs):\n"
        "    model = AutoModelForSequenceClassification.from_pretrained(\"bert-base-uncased\")\n"
        "    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5)\n"
        "    model.train()\n"
        "    for epoch in range(epochs):\n"
        "        for batch in loader:\n"
        "            model(**batch).loss.backward()\n"
        "            optimizer.step()\n"
        "            optimizer.zero_grad()\n"
    )
    triggers = ("eval", "from_pretrained", "train(")
    fixable = True
    fix_safety = (
        "Safe: inserts `model.train()` right before the outermost loop that holds the training step, "
        "only when the model is in eval mode on every path into that loop and nothing in the loop "
        "switches its mode; the loop then trains in training mode, which is what an optimizer step "
        "expects. No fix for the Lightning case (where `.train()` belongs, e.g. `on_fit_start`, is "
        "a design choice)."
    )

    VALID = (
        # the routine steps only for one of two phase names (`phase == "fit" or phase == "fit+log"`):
        # the pass after `eval()` names a third
        """
import torch
from torch import nn

def one_pass(net, batches, opt, phase="fit"):
    for x, y in batches:
        loss = nn.functional.mse_loss(net(x), y)
        if phase == "fit" or phase == "fit+log":
            opt.zero_grad()
            loss.backward()
            opt.step()

def main(batches, held):
    net = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.3), nn.Linear(4, 1))
    opt = torch.optim.SGD(net.parameters(), 0.1)
    for epoch in range(3):
        net.train()
        one_pass(net, batches, opt)
        net.eval()
        one_pass(net, held, opt, phase="score")
""",
        # the routine steps only when handed an optimizer: the scoring call hands none
        """
import torch
import torch.nn.functional as F

def loop_over(model, batches, opt=None):
    for xb, yb in batches:
        loss = F.mse_loss(model(xb), yb)
        if opt is not None:
            opt.zero_grad()
            loss.backward()
            opt.step()

def score_only(model, batches):
    model.eval()
    with torch.no_grad():
        loop_over(model, batches)
    model.eval()
    loop_over(model, batches, opt=None)
""",
        # near miss of the two-way setup in INVALID: the pretrained branch is switched to training mode
        """
import torch
from transformers import AutoModelForTokenClassification

def fit(resume, batches):
    if resume:
        tagger = torch.load(resume)
    else:
        tagger = AutoModelForTokenClassification.from_pretrained("bert-base-cased")
        tagger.train()
    opt = torch.optim.AdamW(tagger.parameters(), lr=3e-5)
    for batch in batches:
        opt.zero_grad()
        tagger(**batch).loss.backward()
        opt.step()
""",
        """
import torch
from transformers import AutoModel

def finetune(loader, opt):
    model = AutoModel.from_pretrained("bert-base-uncased")
    model.train()
    for batch in loader:
        model(**batch).loss.backward()
        opt.step()

def after_eval(model, loader, val_loader, opt, evaluate):
    model.eval()
    evaluate(model, val_loader)
    model.train()
    for x, y in loader:
        model(x, y).backward()
        opt.step()

def frozen_backbone(model, loader, opt):
    model.backbone.eval()  # deliberate: keep pretrained batch-norm statistics
    for x, y in loader:
        model(x, y).backward()
        opt.step()

def attack(model, x, y, steps):
    model.eval()
    for _ in range(steps):
        torch.nn.functional.cross_entropy(model(x), y).backward()

def probe_after_baseline(loader, opt, evaluate):
    net = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))  # mode-free
    net.eval()
    evaluate(net)
    for x, y in loader:
        (net(x) - y).pow(2).mean().backward()
        opt.step()

def stylize(net, content, steps):
    net.eval()  # a fixed feature extractor: only the image is optimised
    image = content.clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS([image])
    for _ in range(steps):
        optimizer.zero_grad()
        net(image).pow(2).mean().backward()
        optimizer.step()
""",
        """
import pytorch_lightning as pl
from transformers import AutoModel

class Finetuner(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.encoder = AutoModel.from_pretrained("bert-base-uncased")

    def on_fit_start(self):
        self.encoder.train()

    def training_step(self, batch, idx):
        return self.encoder(**batch).loss
""",
        # written for Lightning 1.x (`validation_epoch_end` was removed in 2.0), whose fit put the whole
        # module in training mode; the config loaded first is no model
        """
import lightning.pytorch as pl
from transformers import AutoConfig, T5ForConditionalGeneration

class Summariser(pl.LightningModule):
    def __init__(self, name):
        super().__init__()
        config_class = AutoConfig
        self.config = config_class.from_pretrained(name)
        self.seq2seq = T5ForConditionalGeneration.from_pretrained(name, config=self.config)

    def training_step(self, batch, idx):
        return self.seq2seq(**batch).loss

    def validation_epoch_end(self, outputs):
        self.log("val_loss", sum(outputs) / len(outputs))
""",
        # a config and a tokenizer from `from_pretrained`, the model built fresh from the config (training mode)
        """
import lightning.pytorch as pl
from transformers import AutoConfig, AutoModelForMaskedLM, AutoTokenizer

class Pretrainer(pl.LightningModule):
    def __init__(self, name):
        super().__init__()
        tokenizer_cls = AutoTokenizer
        self.tok = tokenizer_cls.from_pretrained(name)
        config = AutoConfig.from_pretrained(name)
        self.mlm = AutoModelForMaskedLM.from_config(config)

    def training_step(self, batch, idx):
        return self.mlm(**batch).loss
""",
        # a fixed feature network of the loss, in eval, in no optimizer: the step trains only the decoder
        """
import torch

def decoder_rounds(decoder, feature_net, pairs, rounds):
    feature_net.eval()
    opt_dec = torch.optim.Adam(decoder.parameters(), lr=2e-4)
    decoder.train()
    for r in range(rounds):
        for code, image in pairs:
            loss = (feature_net(decoder(code)) - feature_net(image)).pow(2).mean()
            opt_dec.zero_grad()
            loss.backward()
            opt_dec.step()
""",
        # a probe head sized from a frozen encoder is a new model, not a wrapper of the encoder
        """
import torch

class Probe(torch.nn.Module):
    def __init__(self, width, n_classes):
        super().__init__()
        self.drop = torch.nn.Dropout(0.5)
        self.fc = torch.nn.Linear(width, n_classes)

def linear_probe(encoder, feature_batches, n_classes, epochs):
    encoder.eval()
    probe = Probe(encoder.width, n_classes)
    opt = torch.optim.Adam(probe.parameters(), lr=1e-3)
    for _ in range(epochs):
        for feats, labels in feature_batches:
            opt.zero_grad()
            torch.nn.functional.cross_entropy(probe(feats), labels).backward()
            opt.step()
""",
        # an evaluation helper fine-tunes a part of the model it switched to train: the rest of the
        # model stays in eval around it, but no step trains it there
        """
import torch

class ProbeReport:
    def measure(self, net, pairs):
        net.eval()
        classifier = net.classifier
        self.fit_classifier(classifier, pairs)

    def fit_classifier(self, classifier, pairs):
        probe_opt = torch.optim.SGD(classifier.parameters(), lr=0.05)
        for inp, target in pairs:
            classifier.train()
            probe_opt.zero_grad()
            torch.nn.functional.mse_loss(classifier(inp), target).backward()
            probe_opt.step()

def pretrain(net, optimizer, pairs, reporter, epochs):
    for epoch in range(epochs):
        net.train()
        for inp, target in pairs:
            optimizer.zero_grad()
            torch.nn.functional.mse_loss(net(inp), target).backward()
            optimizer.step()
        reporter.measure(net, pairs)
""",
        # options named like an optimizer (`opts = parser.parse_args()`) are no optimizer: the one
        # optimizer built holds only the decoder, the scorer in eval is a fixed loss network
        """
import argparse
import torch

parser = argparse.ArgumentParser()
parser.add_argument("--rounds", type=int, default=3)
opts = parser.parse_args()

decoder = torch.nn.Sequential(torch.nn.Linear(16, 64), torch.nn.Dropout(0.1), torch.nn.Linear(64, 16))
scorer = torch.nn.Sequential(torch.nn.Linear(16, 16), torch.nn.BatchNorm1d(16))
scorer.eval()
opt_dec = torch.optim.Adam(decoder.parameters(), lr=1e-3)
for r in range(opts.rounds):
    for code in torch.randn(10, 8, 16):
        opt_dec.zero_grad()
        scorer(decoder(code)).pow(2).mean().backward()
        opt_dec.step()
""",
        # the trained parts are collected in a container switched back to train
        """
import torch

def adapt(net, batches, rounds):
    net.eval()
    tuned = torch.nn.ModuleList([net.blocks[-1], net.norm])
    opt = torch.optim.SGD(tuned.parameters(), lr=0.01)
    for r in range(rounds):
        tuned.train()
        for inp, target in batches:
            opt.zero_grad()
            (net(inp) - target).pow(2).mean().backward()
            opt.step()
""",
        # the same container built empty and given the parts one by one; the optimizer is a parameter
        """
import torch

def adapt_stagewise(net, batches, rounds, optimizer):
    net.eval()
    stage = torch.nn.ModuleList()
    stage.append(net.encoder.layers[-2])
    stage.extend([net.encoder.layers[-1], net.pooler])
    for r in range(rounds):
        stage.train()
        for inp, target in batches:
            optimizer.zero_grad()
            (net(inp) - target).abs().mean().backward()
            optimizer.step()
""",
        # adversarial training: each optimizer steps its own network while the other one is in eval
        """
import torch
from torch import nn

class Seg(nn.Module):
    def __init__(self):
        super().__init__()
        self.bn = nn.BatchNorm2d(8)

class Critic(nn.Module):
    def __init__(self):
        super().__init__()
        self.drop = nn.Dropout(0.3)

def fit(loader, steps):
    seg, critic = Seg(), Critic()
    seg_opt = torch.optim.SGD(seg.parameters(), lr=0.01)
    critic_opt = torch.optim.Adam(critic.parameters(), lr=1e-4)
    for x, y in loader:
        seg.train()
        critic.eval()
        pred = seg(x)
        (pred - y).abs().mean().add(critic(pred).mean()).backward()
        seg_opt.step()
        seg.eval()
        critic.train()
        with torch.no_grad():
            fake = seg(x)
        critic(fake).mean().backward()
        critic_opt.step()
""",
        # GAN inversion: the optimizer holds a latent and the generator's noise buffers, not a model
        """
import torch

from features import load_feature_net


def invert(G, target, steps):
    feats = load_feature_net().eval()
    noise = {name: buf for name, buf in G.named_buffers() if "noise" in name}
    latent = torch.zeros(1, 512, requires_grad=True)
    opt = torch.optim.Adam([latent] + list(noise.values()), lr=0.1)
    goal = feats(target)
    for _ in range(steps):
        loss = (feats(G(latent)) - goal).square().sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return latent.detach()
""",
    )
    VALID += (
        # features of a pretrained encoder taken detached: the step trains the head only, whatever the
        # optimizer holds (near miss in INVALID: the same loop without `.detach()`)
        """
import torch
from transformers import AutoModel


def main(loader, head):
    encoder = AutoModel.from_pretrained("bert-base-uncased")
    opt = torch.optim.AdamW(list(encoder.parameters()) + list(head.parameters()), lr=1e-3)
    for batch, y in loader:
        feats = encoder(**batch).last_hidden_state[:, 0].detach()
        loss = torch.nn.functional.cross_entropy(head(feats), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
""",
    )
    INVALID = (
        # near miss of the inversion above: the dict holds the feature network's parameters
        """
import torch

from features import load_feature_net


def invert(G, target, steps):
    feats = load_feature_net().eval()
    noise = {name: p for name, p in feats.named_parameters()}
    latent = torch.zeros(1, 512, requires_grad=True)
    opt = torch.optim.Adam([latent] + list(noise.values()), lr=0.1)
    goal = feats(target)
    for _ in range(steps):
        loss = (feats(G(latent)) - goal).square().sum()
        opt.zero_grad()
        loss.backward()
        opt.step()  # expect: MDL303
    return latent.detach()
""",
        # the optimizer the step steps holds the network in eval (another optimizer holds only it)
        """
import torch

def rounds(gen, disc, pairs, n):
    disc.eval()
    g_opt = torch.optim.Adam(list(gen.parameters()) + list(disc.parameters()), lr=2e-4)
    d_opt = torch.optim.Adam(disc.parameters(), lr=2e-4)
    for r in range(n):
        for inp, target in pairs:
            loss = (disc(gen(inp)) - target).pow(2).mean()
            g_opt.zero_grad()
            loss.backward()
            g_opt.step()  # expect: MDL303
    return d_opt
""",
        # the same routine handed an optimizer after an eval: its step trains in eval mode
        """
import torch.nn.functional as F

def walk(model, data, optimizer=None, learn=False):
    total = 0.0
    for xb, yb in data:
        cost = F.smooth_l1_loss(model(xb), yb)
        total += cost.item()
        if learn:
            cost.backward()
            optimizer.step()  # expect: MDL303
    return total

def tune_after_scoring(model, data, optimizer):
    model.eval()
    walk(model, data)
    walk(model, data, optimizer, learn=True)
""",
        # the whole model is in the optimizer: the container's train() leaves the other parts in eval
        """
import torch

def adapt(net, batches, rounds):
    net.eval()
    tuned = torch.nn.ModuleList([net.blocks[-1], net.norm])
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    for r in range(rounds):
        tuned.train()
        for inp, target in batches:
            opt.zero_grad()
            (net(inp) - target).pow(2).mean().backward()
            opt.step()  # expect: MDL303
""",
        # the feature network is in an optimizer too: it is trained in eval
        """
import torch

def head_rounds(head, feature_net, pairs, rounds):
    feature_net.eval()
    opt_all = torch.optim.Adam(list(head.parameters()) + list(feature_net.parameters()), lr=2e-4)
    for r in range(rounds):
        for inp, target in pairs:
            loss = (head(feature_net(inp)) - target).pow(2).mean()
            opt_all.zero_grad()
            loss.backward()
            opt_all.step()  # expect: MDL303
""",
        # the pretrained branch of a two-way setup is never switched; a conversion handed the model
        # and an aliased DDP keep its mode
        """
import torch
from torch.nn.parallel import DistributedDataParallel as Wrapped
from transformers import AutoModelForTokenClassification
from apex.parallel import convert_syncbn_model

def build(resume):
    if resume:
        tagger = torch.load(resume)
    else:
        tagger = AutoModelForTokenClassification.from_pretrained("bert-base-cased")
    return tagger

def fit(resume, batches, distributed):
    tagger = build(resume)
    tagger = convert_syncbn_model(tagger)
    if distributed:
        tagger = Wrapped(tagger)
    opt = torch.optim.AdamW(tagger.parameters(), lr=3e-5)
    for batch in batches:
        opt.zero_grad()
        tagger(**batch).loss.backward()
        opt.step()  # expect: MDL303
""",
        """
import torch
from transformers import AutoModel

def finetune(loader, opt):
    model = AutoModel.from_pretrained("bert-base-uncased").to("cuda")
    for batch in loader:
        model(**batch).loss.backward()
        opt.step()  # expect: MDL303

def finetune_after_baseline(model, loader, val_loader, opt):
    model.eval()
    with torch.no_grad():
        baseline = [model(x) for x, _ in val_loader]
    for x, y in loader:
        model(x, y).backward()
        opt.step()  # expect: MDL303
""",
        # a baseline evaluation before the loop, and the per-epoch evaluation inside it: no path
        # reaches the step in training mode (not MDL301's "switched by an earlier iteration")
        """
import torch

def run(net, optimizer, train_batches, val_batches, epochs, report):
    net.eval()
    with torch.no_grad():
        report(sum(net(x).mean() for x in val_batches))
    for epoch in range(epochs):
        for x in train_batches:
            optimizer.zero_grad()
            net(x).mean().backward()
            optimizer.step()  # expect: MDL303
        net.eval()
        with torch.no_grad():
            report(sum(net(x).mean() for x in val_batches))
""",
        """
import pytorch_lightning as pl
from transformers import AutoModel

class Finetuner(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.encoder = AutoModel.from_pretrained("bert-base-uncased")  # expect: MDL303

    def training_step(self, batch, idx):
        return self.encoder(**batch).loss
""",
        # near miss of the Lightning 1.x VALID example: `on_validation_epoch_end` is the 2.x hook, and a
        # config loaded first does not hide the model loaded after it
        """
import lightning.pytorch as pl
from transformers import AutoConfig, T5ForConditionalGeneration

class Summariser(pl.LightningModule):
    def __init__(self, name):
        super().__init__()
        config_class = AutoConfig
        self.config = config_class.from_pretrained(name)
        self.seq2seq = T5ForConditionalGeneration.from_pretrained(name, config=self.config)  # expect: MDL303

    def training_step(self, batch, idx):
        return self.seq2seq(**batch).loss

    def on_validation_epoch_end(self):
        self.log("val_loss", self.trainer.callback_metrics["val_loss"])
""",
    )
    INVALID += (
        # near miss of the detached-features VALID example: the encoder's output keeps its graph, so the
        # step fine-tunes the pretrained encoder in the eval mode `from_pretrained` left
        """
import torch
from transformers import AutoModel


def main(loader, head):
    encoder = AutoModel.from_pretrained("bert-base-uncased")
    opt = torch.optim.AdamW(list(encoder.parameters()) + list(head.parameters()), lr=1e-3)
    for batch, y in loader:
        feats = encoder(**batch).last_hidden_state[:, 0]
        loss = torch.nn.functional.cross_entropy(head(feats), y)
        opt.zero_grad()
        loss.backward()
        opt.step()  # expect: MDL303
""",
    )
    INVALID += (
        # the near miss: the part is never switched back, so it trains in the eval its caller set
        """
import torch

class ProbeReport:
    def measure(self, net, pairs):
        net.eval()
        classifier = net.classifier
        self.fit_classifier(classifier, pairs)

    def fit_classifier(self, classifier, pairs):
        probe_opt = torch.optim.SGD(classifier.parameters(), lr=0.05)
        for inp, target in pairs:
            probe_opt.zero_grad()
            torch.nn.functional.mse_loss(classifier(inp), target).backward()
            probe_opt.step()  # expect: MDL303

def pretrain(net, optimizer, pairs, reporter, epochs):
    for epoch in range(epochs):
        net.train()
        for inp, target in pairs:
            optimizer.zero_grad()
            torch.nn.functional.mse_loss(net(inp), target).backward()
            optimizer.step()
        reporter.measure(net, pairs)  # expect: MDL303
""",
    )
    INVALID += (
        # a method taken as a value and called later is a call of that method
        """
import torch

class Session:
    def __init__(self, net, make_opt):
        self.net = net
        self.opt = make_opt(self.net)

    def baseline(self, batches):
        self.net.eval()
        with torch.no_grad():
            return sum(self.net(x).mean() for x, _ in batches)

    def one_pass(self, batches):
        for x, y in batches:
            self.opt.zero_grad()
            torch.nn.functional.l1_loss(self.net(x), y).backward()
            self.opt.step()

def schedule(net, make_opt, batches, passes):
    session = Session(net, make_opt)
    session.baseline(batches)
    step_pass = session.one_pass
    for _ in range(passes):
        step_pass(batches)  # expect: MDL303
""",
    )
    INVALID += (
        # a training routine whose eval'd model trains only inside a called function: MDL304 (which needs
        # a forward with gradients in the routine itself) does not report it, so this rule does
        """
import torch

def match_outputs(pupil, oracle, batches):
    opt = torch.optim.Adam(pupil.parameters())
    for x in batches:
        with torch.no_grad():
            goal = oracle(x)
        opt.zero_grad()
        torch.nn.functional.mse_loss(pupil(x), goal).backward()
        opt.step()  # expect: MDL303

def train_stage(oracle, batches):
    pupil = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.BatchNorm1d(8))
    pupil.eval()
    match_outputs(pupil, oracle, batches)
""",
    )
    FIXES = (
        (
            """
from transformers import T5ForConditionalGeneration

def tune(batches, optim, scaler):
    net = T5ForConditionalGeneration.from_pretrained("t5-small")
    while batches:
        scaler.scale(net(**batches.pop()).loss).backward()
        scaler.step(optim)
""",
            """
from transformers import T5ForConditionalGeneration

def tune(batches, optim, scaler):
    net = T5ForConditionalGeneration.from_pretrained("t5-small")
    net.train()
    while batches:
        scaler.scale(net(**batches.pop()).loss).backward()
        scaler.step(optim)
""",
        ),
    )

    VALID += (
        # a step behind an early return in eval (`if not self.model.training: return loss`): an evaluation
        # that puts the model in eval first runs no step there (set 18's disentangling-vae)
        """
import torch

class Scorer:
    def __init__(self, model, opt):
        self.model = model
        self.opt = opt

    def step_or_score(self, batch):
        loss = self.model(batch).mean()
        if not self.model.training:
            return loss
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return loss

    def evaluate(self, loader):
        self.model.eval()
        total = 0.0
        for b in loader:
            total += self.step_or_score(b).item()
        return total
""",
    )
    INVALID += (
        # near miss of the early-return VALID example: the return is in training mode, so the step runs in eval
        """
import torch

def step_or_score(model, opt, batch):
    loss = model(batch).mean()
    if model.training:
        return loss
    opt.zero_grad()
    loss.backward()
    opt.step()  # expect: MDL303
    return loss

def evaluate(model, opt, loader):
    model.eval()
    total = 0.0
    for b in loader:
        total += step_or_score(model, opt, b).item()
    return total
""",
    )

    def __init__(self, ctx, options=None):
        super().__init__(ctx, options)
        self._stepping = False  # an optimizer step, or a call of a project function that runs one
        self._evaluating = False  # an `.eval()` / `train(...)` / `from_pretrained`, or a project switch
        self._project_names = ctx.classifier.index.step_or_switch_names()
        self._classes: List[cst.ClassDef] = []
        # Lightning classes: id -> [from_pretrained assignments in __init__, calls `.train()`, has training_step]
        self._lightning: Dict[int, list] = {}

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        self._classes.append(node)

    def leave_ClassDef(self, node: cst.ClassDef) -> None:
        self._classes.pop()

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        if node.name.value in self.ctx.framework.runtime_methods and self._classes:
            entry = self._lightning_entry()
            if entry is not None and node.name.value == "training_step":
                entry[2] = True

    def _lightning_entry(self) -> Optional[list]:
        cls = self._classes[-1] if self._classes else None
        if cls is None:
            return None
        key = id(cls)
        if key not in self._lightning:
            self._lightning[key] = [[], False, False] if self._fit_keeps_modes(cls) else None
        return self._lightning[key]

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        fw = self.ctx.framework
        if not isinstance(func, (cst.Attribute, cst.Name)):
            return
        name = func.attr.value if isinstance(func, cst.Attribute) else func.value
        if name == fw.optimizer_step_method:
            self._stepping = True
        elif name in (fw.eval_method, fw.train_method, fw.pretrained_loader_method):
            self._evaluating = True
            if self._classes:
                self._note_lightning(node, name)
        elif name in self._project_names:
            effect = for_context(self.ctx).project_effect(node)
            if effect is not None:
                self._stepping = self._stepping or bool(effect.steps) or "step_fn" in effect.returns
                self._evaluating = self._evaluating or effect.evals() or "eval" in effect.returns

    def visit_Assign(self, node: cst.Assign) -> None:
        # `fit = runner.fit` of a project method, called later as `fit(batches)`: the flow follows
        # the call through the name (its effect is unknown here, so both may hold)
        if isinstance(node.value, cst.Attribute) and node.value.attr.value in self._project_names:
            self._stepping = self._evaluating = True

    def _fit_keeps_modes(self, cls: cst.ClassDef) -> bool:
        """A trainer module for a trainer that keeps its sub-modules' modes when fitting starts: not
        one that defines a hook only an older trainer calls (`validation_epoch_end`, written for
        Lightning 1.x, whose fit put the whole module in training mode)."""
        if not self.ctx.is_lightning_class(cls):
            return False
        legacy = self.ctx.framework.trainer_module_legacy_hooks
        return not any(isinstance(s, cst.FunctionDef) and s.name.value in legacy for s in cls.body.body)

    def _note_lightning(self, call: cst.Call, name: str) -> None:
        entry = self._lightning_entry()
        if entry is None:
            return
        fw = self.ctx.framework
        if name == fw.train_method:
            entry[1] = True
            return
        method, _ = self.ctx.enclosing_method_and_class()
        if (name == fw.pretrained_loader_method and method is not None and method.name.value == "__init__"
                and fw.loads_pretrained_model(dotted(call.func) or f"?.{name}")):
            entry[0].append(call)

    def leave_Module(self, node: cst.Module) -> None:
        for entry in self._lightning.values():
            if entry is None:
                continue
            found, trains, has_step = entry
            if found and has_step and not trains:
                for call in found[:1]:
                    self.report(call, self._lightning_message(call))
        if not (self._stepping and self._evaluating):
            return
        mf = for_context(self.ctx)
        reported: Set[int] = set()
        for scope in mf.scopes():
            if mf.in_lightning_class(scope):
                continue
            flow = mf.flow(scope)
            if flow is None or not flow.has_optimizer_step:
                continue
            for step, key, tokens in self._eval_steps(mf, flow):
                # A step inside a function of this file that the loop calls (`train_one_epoch(model)`) is
                # reported where it runs, once, however many callers reach it in eval mode.
                at = step.inner if step.inner is not step.node else step.node
                if id(at) in reported:
                    continue
                reported.add(id(at))
                self.report(at, self._message(mf, key, tokens, step), fix=self._fix(mf, flow, key, step, tokens))

    def _eval_steps(self, mf: ModeFlow, flow: ScopeFlow) -> List[Tuple[Step, str, frozenset]]:
        """(step, key, facts) for each optimizer step whose trained model is in eval on every path
        (also when an evaluation inside the loop is one of those paths: with no path in training
        mode the step never trains in training mode; MDL301 leaves these steps to this rule)."""
        out: List[Tuple[Step, str, frozenset]] = []
        done: Set[str] = set()
        keys = list(dict.fromkeys(k for k, _ in flow.forwarded))
        for st in sorted(flow.steps, key=lambda s: mf.line(s.node)):
            if st.kind != "optimizer" or step_over_inputs(flow, st):
                continue  # (an optimizer over an input image / latent trains no model)
            for key in keys:
                if key in done or not_trained_name(key) or not forwarded_at_step(flow, key, st):
                    continue
                if trains_only_parts_in_train(st, key) or not_trained_by(st, key):
                    continue  # a helper of another file trains a part of `key` it switched to train, or not `key`
                tokens = get(st.state, key)
                if not eval_on_every_path(tokens):
                    # a `from_pretrained` model reaches the step on some path and no path switched it
                    # (`if ckpt is None: model = X.from_pretrained(...) else: model = torch.load(ckpt)`, no
                    # `.train()` anywhere): that path trains in eval mode from the first step on. A
                    # `.train()` on another path (`if not resume: model.train()`) is left alone.
                    if tokens & {TRAIN, TRAINED, UNKNOWN}:
                        continue
                    tokens = frozenset(t for t in tokens if isinstance(t, Created) and t.kind == "from_pretrained")
                    if not tokens:
                        continue
                if mode_free(self.ctx, for_context(self.ctx), flow.node, key):  # through rebindings, wrappers, callers
                    continue  # train and eval compute the same: nothing goes wrong
                if not self._trained_here(flow, key, st) or parts_back_in_train(self.ctx, key, st.state):
                    continue  # a fixed loss network no optimizer holds; a trained part switched back
                if self._wrong_switch_in_routine(flow, key, tokens, st):
                    continue  # MDL304's finding (`model.eval()` at the start of a training routine)
                done.add(key)
                out.append((st, key, tokens))
        return out

    def _wrong_switch_in_routine(self, flow: ScopeFlow, key: str, tokens, st: Step) -> bool:
        """Every eval comes from a `.eval()` written before the step in a training routine named as
        such (`train_epoch`, `fit`) that runs no evaluation itself, repeats no eval in the loop and runs
        `key` with gradients after each such switch: MDL304 (wrong-switch-in-routine) reports that
        switch; one finding is enough. A routine that evaluates first (a baseline under no_grad) is not
        MDL304's case, nor one that trains `key` only through a called function (`student.eval();
        distill(student, teacher, loader)`): reported here."""
        name = flow.name.lstrip("_").lower()
        if not name.startswith(("train", "fit")) or not isinstance(flow.node, cst.FunctionDef):
            return False
        if not all(isinstance(t, EvalSite) and not t.via for t in tokens) or self._switched_in_loop(flow, tokens, st):
            return False
        r = routine_facts(self.ctx, flow.node)
        return r.kind == "train" and all(r.runs_with_grad_after(key, t.node) for t in tokens)

    def _trained_here(self, flow: ScopeFlow, key: str, st: Step) -> bool:
        """The step can train `key`: its parameters (or a parent's, or a container's holding it) are in
        the optimizer it steps (`d_opt.step()`, built in this file; for a `.backward()`, the optimizer
        stepped next in its loop body), else in an optimizer built in this file; when no optimizer
        construction can be read, assumed so."""
        own = held_by_step(self.ctx, flow, st)
        if own is not None:
            return trained_by(key, own)
        optimized = optimized_keys(self.ctx)
        return optimized is None or trained_by(key, optimized)

    @staticmethod
    def _switched_in_loop(flow: ScopeFlow, tokens, st: Step) -> bool:
        """An eval site inside a loop around the step (an evaluation the loop repeats)."""
        for t in tokens:
            if isinstance(t, EvalSite):
                site_loops = flow.site_loops.get(id(t.node), ())
                if any(lp is x for lp in st.loops for x in site_loops):
                    return True
        return False

    def _fix(self, mf: ModeFlow, flow: ScopeFlow, key: str, step: Step, tokens):
        """Only when no eval of `key` runs inside the loops around the step: a `.train()` before the
        loop would not undo an evaluation that the loop itself repeats (fix_safety)."""
        if not step.loops or self._switched_in_loop(flow, tokens, step):
            return None
        return train_before_loop(self.ctx, step.loops[0], key)

    def _message(self, mf: ModeFlow, key: str, tokens, step: Step) -> str:
        origin = min(tokens, key=lambda t: mf.line(t.node))
        if isinstance(origin, Created):
            how = f"`{key}` comes from `{origin.shown}` on line {mf.line(origin.node)}, which returns a model in eval mode,"
        else:
            where = origin.elsewhere or f"line {mf.line(origin.eval_node)}"
            how = f"`{origin.shown}` ({where}) put `{key}` in eval mode"
        before = f"`{step.shown}` on line {mf.line(step.node)}"
        if step.inner is not step.node:  # reported at the step inside the called function
            before = f"`{mf.code(step.node)}` on line {mf.line(step.node)} runs this step"
        return (
            f"{how} and nothing calls `{key}.train()` before {before}: "
            f"`{key}` trains with dropout off and batch norm frozen on its running statistics; call "
            f"`{key}.train()` before the training loop"
        )

    def _lightning_message(self, call: cst.Call) -> str:
        shown = " ".join(self.ctx.module.code_for_node(call).split())[:60]
        return (
            f"`{shown}` returns a model in eval mode and no method of this LightningModule calls `.train()`: "
            "Lightning 2.2 and later do not switch modules to training mode when fitting starts, so this sub-module "
            "trains with dropout off and batch norm frozen; call `self.train()` (or the sub-module's "
            "`.train()`) in `on_fit_start` / `on_train_epoch_start`"
        )

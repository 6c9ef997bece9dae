from __future__ import annotations

import re
from typing import Dict

import libcst as cst

from modelint.analysis.context import dotted
from modelint.analysis.keysensitivity import KeySensitivity
from modelint.analysis.modeflow import for_context, gradient_probe
from modelint.analysis.optimized import optimized_keys, trained_by
from modelint.analysis.sensitivity import NOT_SENSITIVE
from modelint.analysis.routines import Routine, Switch, construction_of, key_covers, passes, routine_facts
from modelint.rules.base import Rule, measured_set6, measured_set13, measured_set14, measured_sets_15_16, remeasured_2026_12_02, remeasured_2026_12_03, measured_set17, measured_set18, measured_set19, measured_upstream18, measured_upstream17, measured_set20, measured_upstream20

# A comment or routine name that says the switch is deliberate: MC dropout, BN recalibration,
# frozen batch norm during fine-tuning.
_DELIBERATE = re.compile(r"dropout|monte|\bmc\b|mc_|calibrat|update_bn|bn_update|running stat|freez|frozen|\bbn\b|batch.?norm",
                         re.IGNORECASE)
# A line comment naming the mode the switch does *not* set (`model.train()  # eval mode (no dropout)`):
# copied from the other switch and left stale, so its dropout / batch-norm words say nothing deliberate.
_SAYS_EVAL = re.compile(r"\b(eval|evaluation|inference|test(ing)?)[ _-]?mode\b", re.IGNORECASE)
_SAYS_TRAIN = re.compile(r"\btrain(ing)?[ _-]?mode\b", re.IGNORECASE)
# Models that are run but not trained in a training routine (distillation teachers, EMA / target copies).
_NOT_TRAINED = re.compile(r"teacher|target|ema|frozen|reference|ref_|momentum|critic_old|old_", re.IGNORECASE)


def _where(r: Routine) -> str:
    return f"`{r.name}`" if isinstance(r.fn, cst.FunctionDef) else "the script's top-level code"


def _same(a: str, b: str) -> bool:
    return key_covers(a, b) or key_covers(b, a)


class WrongSwitchInRoutine(Rule):
    code = "MDL304"
    name = "wrong-switch-in-routine"
    level = "warning"
    default = False  # issue 15's measuring set: see the end of `what`
    summary = "`model.train()` before the forward of an evaluation routine, or `model.eval()` before the step of a training routine."
    what = (
        "Reports a mode switch that is the wrong way round for the routine it opens. (1) `model.train()` "
        "that runs before the first forward (`model(x)`, `model.forward(x)`, "
        "`model.generate(...)`; in the routine or in a function it defines and calls) of an evaluation or "
        "inference routine, in a block that contains that forward, with nothing in between that switches "
        "`model` back or is given it (a function of this file that switches no mode does not count). A routine is an evaluation routine when it takes no training "
        "step and it runs a model under `torch.no_grad()` / `torch.inference_mode()` / "
        "`torch.set_grad_enabled(False)` (a block or a decorator), passes `volatile=True`, calls "
        "`.generate(...)` / `.predict(...)`, or has an evaluation-like name (`evaluate`, `validate`, `test*`, "
        "`predict`, `infer`, `inference`; the name alone does not count in test suites). A script's top-level "
        "code (and its `if __name__ == \"__main__\":` block) counts as a routine. (2) `model.eval()` / "
        "`model.train(False)` that runs before the first training step, in a block that contains it (`backward()`, an "
        "optimizer or grad-scaler `step()`, or a call of a function of this file that takes one) of a "
        "routine with no evaluation signal, when `model` then runs outside no_grad and nothing restores "
        "training mode before the step. Not reported: a training routine whose optimizers are all built "
        "in it over other parameters than the model's (`SGD(head.parameters())`, `Adam([prompt])`: a frozen "
        "network run in eval on purpose while a head, an adapter or a prompt trains); the save/restore idiom (`was = model.training; "
        "model.eval(); ...; model.train(was)`); `model.train()` after the forward (restoring training mode "
        "for the caller is right); a switch under an `if`, a loop or an `except` that the forward / step is "
        "not under; a routine that trains and "
        "then evaluates; MC dropout done on purpose (`model.eval()` and then `m.train()` for the dropout "
        "modules of `model.modules()`: the switch is on another key and comes after the eval); batch-norm "
        "recalibration (`model.train()` then forwards whose results are discarded, as `update_bn` does); "
        "a routine that backpropagates without any optimizer step (in it or in what it calls), reads "
        "the gradients (`p.grad`), and hands the model back in the mode it had on entry on every way out (`was = m.training; m.eval(); ...; "
        "m.train(was)` or `m.train(mode=was)`, `analysis.modeflow.gradient_probe`): it reads gradients in "
        "eval mode on purpose (a Fisher-information estimate, a saliency map, gradient norms), while one "
        "that does not hand the mode back, or never reads `.grad`, may be a backward for a caller that "
        "steps and is reported; a routine that backpropagates without any optimizer step and makes an input "
        "tensor require gradients (`Variable(x, requires_grad=True)`, `x.requires_grad_()` on a tensor it feeds "
        "to a model, `analysis.modeflow.input_gradient_probe`): an input gradient (ODIN scoring, an FGSM attack, "
        "a saliency map) is meant in eval mode, whatever mode it leaves; "
        "switches whose line comment or routine name mentions dropout / MC / calibration / frozen batch "
        "norm (not a comment that names the other mode, `model.train()  # eval mode (no dropout)`: one "
        "copied from the other switch and left stale, which is reported); models whose parameters are in none of the optimizers built in the file (a perceptual-loss network beside `Adam(generator.parameters())`; only when every optimizer stepped in the file is built in it from readable parameter expressions); models that "
        "are not trained by the routine (run only under no_grad, with every result used only through `.detach()` (a frozen encoder under a linear probe), or named like a teacher, "
        "an EMA or a target copy); and models whose mode sensitivity (`ctx.mode_sensitivity`) is \"no\": "
        "no dropout, batch norm or mode branch anywhere in their construction tree."
    )
    what += (
        " "
        'Off by default: on the measuring set (26 code bases never used to develop it: 17 repositories '
        'with training scripts and 9 model packages; `bench/precision.py`, verdicts with reasons in '
        '`bench/verdicts/measuring.tsv`) it reached 0% real-or-deliberate (1 finding, false: a frozen '
        'network switched to eval while only added parameters train, restored afterwards), below the 95% '
        'a default rule needs. Select it with `--select` or `extend-select`.'
    )
    what += remeasured_2026_12_02(
        set3=('3 findings, all false (0%: `eval()` then `backward()` without an optimizer step, to '
              'read gradients for a Fisher-information estimate, the mode restored with '
              '`train(mode=saved)`)'),
        set2=('2 findings, both deliberate'),
    )
    what += remeasured_2026_12_03(set4="no finding", set5="1 finding, deliberate")
    what += measured_set6("1 finding, deliberate")
    what += measured_set13("1 finding, false (0%: the same linear probe as MDL303's, an encoder in eval whose detached features train Linear heads); after the run it became a tuning set, and the detached-result exemption above mends that finding")
    what += measured_set14("no finding")
    what += measured_sets_15_16("no finding",
                                "2 findings: 1 deliberate (the linear probe's eval), 1 false (`train()` in a no-grad routine on a network whose mode only changes an output's form)")
    what += (" Measuring set 3 has since tuned this rule (its false findings shaped the exemptions "
             "above; no finding on it afterwards), so it no longer measures it.")
    what += measured_set17('no finding at its run; since a torchvision backbone counts as mode-sensitive it reports 1, false: a frozen pretrained encoder put in eval at the start of the training routine, whose optimizer, over the decoder only, reaches it as a parameter the rule cannot read')
    what += measured_upstream17("1, a demo script's `model.train()` before its inference (the other wrong switch of the list, `train()` inside a validation loop, was reported by MDL302)")
    what += measured_set18('no finding')
    what += measured_upstream18("none: it missed the one `train()` inside an evaluation path (three calls and a file away from the evaluation's branch); its 2 other findings there were deliberate (unit tests that run an encoder in training mode)")
    what += measured_set19('1 finding, deliberate (a linear-evaluation head trained on an encoder kept in eval on purpose)')
    what += measured_set20('no finding')
    what += measured_upstream20('1 of the 3 wrong switches in a routine (`model.train()` in a Tacotron `evaluate`)')
    why = (
        "`model.train()` before an evaluation turns dropout on (random, weaker predictions) and makes batch "
        "norm normalise with the statistics of each test batch and overwrite its running averages with test "
        "data, so the reported metric is wrong and every later evaluation too. `no_grad` does not help: it "
        "only turns off gradients. `model.eval()` before a training step turns dropout off and freezes batch "
        "norm's statistics for the whole epoch: the model trains without its regulariser and with "
        "normalisation statistics that no longer follow the data."
    )
    example = (
        "def evaluate(model, loader):\n"
        "    model.train()\n"
        "    with torch.no_grad():\n"
        "        return [model(x).argmax(1) for x in loader]\n"
    )
    use_instead = (
        "def evaluate(model, loader):\n"
        "    model.eval()\n"
        "    with torch.no_grad():\n"
        "        return [model(x).argmax(1) for x in loader]\n"
    )
    triggers = ("train", "eval")
    options_schema = {"check-training-routines": True}
    option_docs = {
        "check-training-routines": "Also report `model.eval()` before the first training step of a training routine "
        "(case 2); set to false where a frozen-statistics fine-tuning style is the convention.",
    }
    fix_safety = (
        "No fix. Replacing the `model.train()` that opens an evaluation routine by `model.eval()` looks "
        "right, but it is unsafe: callers that train after calling the routine relied on it leaving the "
        "model in training mode, and would then train in eval mode (MDL301/MDL303); the switch back "
        "belongs after the evaluation, or at the caller. Likewise the `model.eval()` of a training routine "
        "may be meant for code the rule cannot see."
    )

    VALID = (
        # an input gradient in eval mode, no optimizer: the perturbed-input score of an OOD detector (the
        # near miss, the same routine stepping an optimizer over the network, is in INVALID)
        """
import torch
import torch.nn.functional as F

def input_score(x, logits, net, eps):
    F.cross_entropy(logits, logits.argmax(1)).backward()
    with torch.no_grad():
        return net(x - eps * x.grad.sign()).softmax(1).max(1).values

def perturbed_scores(net, loader, eps):
    net.eval()
    out = []
    for x, _ in loader:
        x = x.clone().requires_grad_()
        out.append(input_score(x, net(x), net, eps))
    return out
""",
        # prompt tuning: the network stays in eval while only the added prompt is optimised, and the
        # caller's mode comes back afterwards; near miss below: an optimizer over the network itself
        """
import torch

def train_prompt(model, prompt, loader, steps):
    was = model.training
    model.eval()
    optimizer = torch.optim.Adam([prompt], lr=1e-3)
    for x, y in loader:
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(torch.cat([prompt.expand(len(x), -1), x], 1)), y).backward()
        optimizer.step()
    model.train(was)

def train_adapter(model, adapter, loader):
    model.eval()
    optimizer = torch.optim.SGD(adapter.parameters(), lr=0.1)
    for x, y in loader:
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(adapter(model(x)), y).backward()
        optimizer.step()
""",
        # the save/restore idiom; train() after the forward restores training mode for the caller
        """
import torch

def evaluate(model, loader):
    was_training = model.training
    model.eval()
    with torch.no_grad():
        scores = [model(x) for x in loader]
    model.train(was_training)
    return scores

@torch.no_grad()
def validate(model, batch):
    model.eval()
    out = model(batch)
    model.train()
    return out
""",
        # MC dropout on purpose; BN recalibration (outputs discarded); a switch under a condition
        """
import torch
from torch import nn

@torch.no_grad()
def predict_with_uncertainty(model, x, n=10):
    model.eval()
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.train()
    return torch.stack([model(x) for _ in range(n)])

def refresh_statistics(model, loader):
    model.train()
    with torch.no_grad():
        for x in loader:
            model(x)

def infer(model, x, stochastic=False):
    if stochastic:
        model.train()
    with torch.no_grad():
        return model(x)
""",
        # a routine that trains then evaluates; a teacher in eval for distillation; a model without
        # mode-dependent layers
        """
import torch
from torch import nn

def fit_epoch(model, loader, opt, val_batch):
    model.train()
    for x, y in loader:
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        return model(val_batch)

def finetune_step(model, x, y, opt):
    model.train()
    model.backbone.eval()  # the parent's train() flipped the frozen part back; re-apply eval to it
    nn.functional.cross_entropy(model(x), y).backward()
    opt.step()

def distill(student, teacher, loader, opt):
    teacher.eval()
    student.train()
    for x in loader:
        with torch.no_grad():
            target = teacher(x)
        loss = (student(x) - target).pow(2).mean()
        loss.backward()
        opt.step()

@torch.no_grad()
def test_linear(x):
    layer = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
    layer.train()
    return layer(x)
""",
        # a perceptual-loss network in eval at the start of the training routine; no optimizer holds it
        """
import torch

def train_epoch(decoder, loss_net, opt_dec, pairs):
    loss_net.eval()
    decoder.train()
    for code, image in pairs:
        loss = (loss_net(decoder(code)) - loss_net(image)).abs().mean()
        opt_dec.zero_grad()
        loss.backward()
        opt_dec.step()

def main(decoder, loss_net, pairs):
    opt_dec = torch.optim.Adam(decoder.parameters(), lr=1e-4)
    for epoch in range(5):
        train_epoch(decoder, loss_net, opt_dec, pairs)
""",
        # gradients read in eval mode (backward, no optimizer step) and the entry mode handed back
        """
import torch


def gradient_norms(classifier, batches, loss_fn):
    previous = classifier.training
    classifier.eval()
    norms = []
    for x, y in batches:
        classifier.zero_grad()
        loss_fn(classifier(x), y).backward()
        norms.append(sum(p.grad.norm() ** 2 for p in classifier.parameters() if p.grad is not None))
    classifier.train(previous)
    return norms
""",
    )
    VALID += (
        # linear evaluation of a frozen encoder: `model.eval()` on purpose, its features detached before
        # the head that is stepped (near miss in INVALID: one use of the output not detached)
        """
import torch

def train_linear(model, loader, opt):
    model.eval()
    for x, y in loader:
        _, aux = model(x, penultimate=True)
        feats = aux["penultimate"].detach()
        loss = torch.nn.functional.cross_entropy(model.linear(feats), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
""",
    )
    INVALID = (
        # the near miss of the input-gradient VALID case: the same routine also steps an optimizer
        # over the network, so it trains it in eval mode
        """
import torch
import torch.nn.functional as F

def adversarial_epoch(net, loader, eps, opt):
    net.eval()  # expect: MDL304
    for x, y in loader:
        x = x.clone().requires_grad_()
        F.cross_entropy(net(x), y).backward()
        x_adv = (x - eps * x.grad.sign()).detach()
        opt.zero_grad()
        F.cross_entropy(net(x_adv), y).backward()
        opt.step()
""",
        # the same routine when the loss network is fine-tuned too
        """
import torch

def train_epoch(decoder, loss_net, opt_dec, pairs):
    loss_net.eval()  # expect: MDL304
    decoder.train()
    for code, image in pairs:
        loss = (loss_net(decoder(code)) - loss_net(image)).abs().mean()
        opt_dec.zero_grad()
        loss.backward()
        opt_dec.step()

def main(decoder, loss_net, pairs):
    opt_dec = torch.optim.Adam([*decoder.parameters(), *loss_net.parameters()], lr=1e-4)
    for epoch in range(5):
        train_epoch(decoder, loss_net, opt_dec, pairs)
""",
        """
import torch

def evaluate(model, loader):
    model.train()  # expect: MDL304
    correct = 0
    with torch.no_grad():
        for x, y in loader:
            correct += (model(x).argmax(1) == y).sum().item()
    return correct

def compute_val_loss(net, batches, loss_fn):
    net.train()  # expect: MDL304
    total = 0.0
    with torch.inference_mode():
        for x, y in batches:
            total += loss_fn(net(x), y).item()
    return total
""",
        # a method of a wrapper; generate(); a training routine that starts in eval mode
        """
import torch

class Runner:
    def caption(self, images):
        self.model.train()  # expect: MDL304
        return self.model.generate(images, max_new_tokens=20)

def train_epoch(model, loader, optimizer):
    model.eval()  # expect: MDL304
    for x, y in loader:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
""",
        # an inference script
        """
import torch
from torch import nn

net = nn.Sequential(nn.Linear(8, 8), nn.Dropout(0.3), nn.Linear(8, 2))
net.load_state_dict(torch.load("weights.pt"))
net.train()  # expect: MDL304
with torch.no_grad():
    print(net(torch.randn(1, 8)).softmax(-1))
""",
        # stale comments copied from the other switch (their dropout / batch-norm words are not a reason);
        # a training routine whose step is a loss scaler handed the loss and the optimizer
        """
import torch

def score(encoder, images):
    encoder.train()  # eval mode: no dropout, batch norm uses running statistics  # expect: MDL304
    with torch.no_grad():
        return encoder(images).softmax(-1)

def fit_epoch(encoder, batches, opt, amp_scaler):
    encoder.eval()  # training mode, so dropout and batch norm are active  # expect: MDL304
    for images, labels in batches:
        loss = torch.nn.functional.nll_loss(encoder(images), labels)
        amp_scaler(loss, opt, clip_grad=1.0)
""",
        # backward for a caller that steps, the mode not handed back (or handed back, the gradients
        # not read: the caller steps on them); the mode handed back around an optimizer step (that
        # trains in eval mode all the same)
        """
import torch


def backprop(classifier, x, y, loss_fn):
    previous = classifier.training
    classifier.eval()  # expect: MDL304
    loss_fn(classifier(x), y).backward()
    classifier.train(previous)


def accumulate(classifier, batches, loss_fn):
    classifier.eval()  # expect: MDL304
    for x, y in batches:
        loss_fn(classifier(x), y).backward()


def refine(classifier, batches, loss_fn, opt):
    previous = classifier.training
    classifier.eval()  # expect: MDL304
    for x, y in batches:
        opt.zero_grad()
        loss_fn(classifier(x), y).backward()
        opt.step()
    classifier.train(previous)
""",
    )
    INVALID += (
        # near miss of the linear-evaluation VALID example: the logits of the same forward also go
        # into the loss, so the encoder trains in eval mode
        """
import torch

def train_linear(model, loader, opt):
    model.eval()  # expect: MDL304
    for x, y in loader:
        logits, aux = model(x, penultimate=True)
        feats = aux["penultimate"].detach()
        loss = torch.nn.functional.cross_entropy(model.linear(feats), y) + torch.nn.functional.cross_entropy(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
""",
    )

    # --- the walk ----------------------------------------------------------------------------------
    # Only routines with a switch are analysed: collecting them during the walk costs nothing, while
    # building the facts of every function cost +15% CPU on timm.
    def visit_Module(self, node: cst.Module) -> None:
        self._todo: Dict[int, cst.CSTNode] = {}

    def visit_Call(self, node: cst.Call) -> None:
        fw = self.ctx.framework
        if isinstance(node.func, cst.Attribute) and node.func.attr.value in (fw.train_method, fw.eval_method):
            scope = self.ctx.enclosing_function() or self.ctx.module
            self._todo.setdefault(id(scope), scope)

    def leave_Module(self, node: cst.Module) -> None:
        for scope in self._todo.values():
            self._check(routine_facts(self.ctx, scope))

    def _check(self, r: Routine) -> None:
        if not r.switches:
            return
        if r.kind == "eval":
            for sw in r.switches:
                if sw.mode is True:
                    self._train_in_eval(r, sw)
        elif r.kind == "train" and self.options["check-training-routines"]:
            first_step = min(r.steps, key=r.pos)
            for sw in r.switches:
                if sw.mode is False and r.pos(sw.call) < r.pos(first_step):
                    self._eval_in_train(r, sw, first_step)

    # --- case 1: train() before the forward of an evaluation routine ---------------------------------
    def _train_in_eval(self, r: Routine, sw: Switch) -> None:
        if self._deliberate(r, sw):
            return
        runs = [run for run in r.runs if key_covers(sw.key, run.key)]
        if any(r.pos(run.call) < r.pos(sw.call) for run in runs):
            return  # after a forward: restoring training mode for the caller
        later = sorted((run for run in runs if r.pos(run.call) > r.pos(sw.call)), key=lambda run: r.pos(run.call))
        if not later or not any(run.used for run in later):
            return  # no forward, or only forwards whose outputs are discarded (BN recalibration)
        first = later[0]
        if not r.dominates(sw.call, first.call):
            return  # under a condition the forward is not under (`if stochastic: model.train()`)
        if self._switched_between(r, sw, first.call) or passes(r, sw.key, r.between(sw.call, first.call), ctx=self.ctx):
            return
        sensitivity = self._sensitivity(r, sw.key, sw.call)
        if sensitivity is not None and sensitivity.answer == "no":
            return
        line = self._line(first.call)
        signal = next((s for s in r.eval_signals if "decorated" in s), None) if first.no_grad else None
        if signal is None:
            signal = f"it runs `{first.key}` under a no-grad context" if first.no_grad else r.eval_signals[0]
        self.report(
            sw.call,
            f"`{sw.key}.train()` switches `{sw.key}` to training mode before it runs on line {line} in "
            f"{_where(r)}, an evaluation routine ({signal}): dropout stays on and batch norm normalises "
            f"with each batch's statistics and overwrites its running averages with this data, so the results "
            f"are noisy and every later evaluation is affected{self._why(sensitivity)}; call `{sw.key}.eval()` "
            f"here, and `{sw.key}.train()` after the evaluation if the caller trains next",
        )

    # --- case 2: eval() before the step of a training routine ----------------------------------------
    def _eval_in_train(self, r: Routine, sw: Switch, first_step: cst.Call) -> None:
        if not r.dominates(sw.call, first_step) or self._deliberate(r, sw) or _NOT_TRAINED.search(sw.key):
            return
        if self._refreezes_part(r, sw) or self._optimizes_others(r, sw.key) or not self._in_an_optimizer(sw.key):
            return
        if r.optimizer_steps == 0 and self._probes_gradients(r, sw.key):
            return  # backward only, the saved mode put back: gradients read in eval mode on purpose
        if r.optimizer_steps == 0 and self._input_gradients(r):
            return  # backward only, for the gradient of an input made to require it (ODIN, FGSM, saliency)
        trained = r.runs_with_grad_after(sw.key, sw.call)
        if not trained:
            return  # not run with gradients here: a teacher, an EMA copy, or a forward in another function
        end = min(first_step, trained[0].call, key=r.pos) if r.pos(trained[0].call) < r.pos(first_step) else first_step
        if self._switched_between(r, sw, first_step) or self._frozen(r, sw.key):
            return
        skip = tuple(run.call for run in r.runs)
        if passes(r, sw.key, r.between(sw.call, end), skip, ctx=self.ctx):
            return
        sensitivity = self._sensitivity(r, sw.key, sw.call)
        if sensitivity is not None and sensitivity.answer == "no":
            return
        shown = self.ctx.module.code_for_node(sw.call)
        self.report(
            sw.call,
            f"`{shown}` puts `{sw.key}` in eval mode before the training step on line {self._line(first_step)} "
            f"of {_where(r)}, and nothing switches it back: it trains with dropout off and batch norm frozen "
            f"on its running statistics{self._why(sensitivity)}; call `{sw.key}.train()` instead (if a part "
            f"must stay frozen, switch only that part to eval after `{sw.key}.train()`)",
        )

    # --- helpers -----------------------------------------------------------------------------------
    def _probes_gradients(self, r: Routine, key: str) -> bool:
        """`analysis.modeflow.gradient_probe`: no optimizer step, `.grad` read, `key`'s entry mode restored."""
        flow = for_context(self.ctx).flow(r.fn)
        return flow is not None and gradient_probe(flow, key, self.ctx.framework.grad_attr)

    def _input_gradients(self, r: Routine) -> bool:
        """`analysis.modeflow.input_gradient_probe`: no optimizer step, an input made to require gradients."""
        mf = for_context(self.ctx)
        flow = mf.flow(r.fn)
        return flow is not None and mf.probes_inputs(flow)

    def _switched_between(self, r: Routine, sw: Switch, end: cst.CSTNode) -> bool:
        lo, hi = r.pos(sw.call), r.pos(end)
        return any(lo < r.pos(o.call) < hi and _same(o.key, sw.key) and o.mode is not sw.mode for o in r.switches)

    @staticmethod
    def _refreezes_part(r: Routine, sw: Switch) -> bool:
        """`model.train(); model.stem.eval()`: a part put back in eval after its parent's `train()` is how a
        frozen part stays frozen (MDL205's advice), not a training routine left in eval."""
        return any(o.mode is True and sw.key.startswith(o.key + ".") and r.pos(o.call) < r.pos(sw.call)
                   for o in r.switches)

    def _optimizes_others(self, r: Routine, key: str) -> bool:
        """Every optimizer the routine steps is built in it over something other than `key`'s
        parameters (`SGD(head.parameters())`, `Adam([prompt, z])`): `key` is a frozen network run in
        eval on purpose while added parameters train (prompt tuning, adapters, input optimisation)."""
        method = self.ctx.framework.optimizer_step_method
        steps = [s for s in r.steps if isinstance(s.func, cst.Attribute) and s.func.attr.value == method]
        return bool(steps) and all(self._built_over_others(r, dotted(s.func.value), key, s) for s in steps)

    def _in_an_optimizer(self, key: str) -> bool:
        """`key`'s parameters (or a parent's / a container's holding it) are in an optimizer built in this
        file (`analysis.optimized`; assumed so when none can be read): a perceptual-loss network
        switched to eval while `Adam(generator.parameters())` trains is not trained by the step."""
        optimized = optimized_keys(self.ctx)
        return optimized is None or trained_by(key, optimized)

    @staticmethod
    def _built_over_others(r: Routine, opt: str, key: str, step: cst.Call) -> bool:
        ctor = None
        for node in r.order_nodes:
            if (isinstance(node, cst.Assign) and len(node.targets) == 1 and dotted(node.targets[0].target) == opt
                    and r.pos(node) < r.pos(step)):
                ctor = node.value
        if not isinstance(ctor, cst.Call) or not ctor.args or ctor.args[0].keyword is not None:
            return False
        first = ctor.args[0].value
        if isinstance(first, cst.Call) and isinstance(first.func, cst.Attribute) and first.func.attr.value in (
                "parameters", "named_parameters"):
            owners = [dotted(first.func.value)]
        elif isinstance(first, (cst.List, cst.Tuple)) and first.elements:
            owners = [dotted(el.value) for el in first.elements]
        else:
            return False
        return all(o is not None and not _same(o, key) for o in owners)

    def _frozen(self, r: Routine, key: str) -> bool:
        fw = self.ctx.framework
        for node in r.order_nodes:
            if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute):
                if node.func.attr.value == fw.requires_grad_method and self.ctx.module.code_for_node(node.func.value).startswith(key):
                    return True
        return False

    def _deliberate(self, r: Routine, sw: Switch) -> bool:
        if _DELIBERATE.search(r.name):
            return True
        stmt = r.parents.get(id(sw.call))
        while stmt is not None and not isinstance(stmt, cst.SimpleStatementLine):
            stmt = r.parents.get(id(stmt))
        if isinstance(stmt, cst.SimpleStatementLine) and stmt.trailing_whitespace.comment is not None:
            comment = stmt.trailing_whitespace.comment.value
            other, same = (_SAYS_EVAL, _SAYS_TRAIN) if sw.mode else (_SAYS_TRAIN, _SAYS_EVAL)
            if other.search(comment) and not same.search(comment):
                return False  # a stale comment of the other switch
            return bool(_DELIBERATE.search(comment))
        return False

    def _sensitivity(self, r: Routine, key: str, before: cst.CSTNode):
        built = construction_of(self.ctx, r, key, before)
        if built is None:  # a parameter or a global: what it holds in this file (`analysis.keysensitivity`)
            answer = KeySensitivity(self.ctx, for_context(self.ctx)).of(r.fn, key)
            return NOT_SENSITIVE if answer == "no" else None
        return self.ctx.mode_sensitivity(built)

    @staticmethod
    def _why(sensitivity) -> str:
        if sensitivity is not None and sensitivity.answer == "yes" and sensitivity.reason:
            return f" (it is mode-dependent: {sensitivity.reason})"
        return ""

    def _line(self, node: cst.CSTNode) -> int:
        return self.ctx.line(node)

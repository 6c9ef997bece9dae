from __future__ import annotations

import re
from typing import Dict, List, Optional, Set, Tuple

import libcst as cst

from modelint.analysis.calls import dotted
from modelint.analysis.conditions import contradicts
from modelint.analysis.phases import switched_back_in_iteration
from modelint.analysis.keysensitivity import mode_free
from modelint.analysis.modeflow import (
    EvalSite, ModeFlow, ScopeFlow, Step, eval_on_every_path, for_context, forwarded_at_step, not_trained_by, not_trained_name,
    optimizer_like, sites, step_over_inputs,
)
from modelint.analysis.optimized import (
    frozen_by_flag, frozen_keys, held_by_step, optimized_keys, parts_back_in_train, trained_by,
)
from modelint.rules.base import Rule, measured_set6, measured_sets_8_9, measured_sets_10_11, measured_set12, measured_set13, measured_set14, measured_sets_15_16, remeasured_2026_12_02, remeasured_2026_12_03, measured_set17, measured_set18, measured_set19, measured_upstream19, measured_upstream18, measured_upstream17, measured_set20, measured_upstream20

_OPTIMIZER = re.compile(r"optim|(^|_)opt(s|imizer)?(_|$|\d)|scaler", re.IGNORECASE)


_MODEL_NAME = re.compile(
    r"model|net|module|encoder|decoder|backbone|policy|actor|critic|generator|discriminator|student|"
    r"classifier|transformer|unet|vae|learner|agent",
    re.IGNORECASE,
)
_NOT_A_FORWARD = ("get_", "is_", "has_", "num_", "save", "load", "print", "log", "to_", "register", "named_",
                  "parameters", "state_dict", "modules", "children", "buffers", "zero_grad", "_")


def _involves(used: str, name: str) -> bool:
    """`name` (a model) takes part in a use: it is called itself, one of its compute methods is
    called (`model.compute_loss(b)`; not `model.num_parameters()`), or it is part of something
    called (`model.encoder(x)` uses `model`'s parameters too). A bare `self` handed to a call is
    not taken to use every attribute of the object (a Brain/Trainer passes `self` around; its metric
    trackers are not models): its models count when they are run or handed on themselves."""
    if used == name or (name.startswith(used + ".") and used != "self"):
        return True
    if used.startswith(name + "."):
        method = used[len(name) + 1:]
        return "." not in method and not method.startswith(_NOT_A_FORWARD)
    return False


def _local_object(flow: ScopeFlow, key: str) -> bool:
    """`key` is a plain local bound in this scope to an object of its own (a copy, a construction,
    a factory's result: `est = copy.deepcopy(base)`, `est = self._make_estimator()`), never to
    `self` or one of its attributes, nor stored on `self`: `self.eval()` switches only the modules
    that are children of `self`, so it does not switch this one."""
    if "." in key or key in flow.params or key not in flow.bindings:
        return False
    related = set(flow.aliases.get(key, ()))
    return not any(a == "self" or a.startswith("self.") for a in related)


def _keys_in(entries, loop: cst.CSTNode) -> Set[str]:
    """The keys of `flow.trained` / `flow.forwarded` entries used inside `loop`."""
    return {k for k, loops in entries if any(lp is loop for lp in loops)}


def _self_module_use(flow: ScopeFlow, used: str, loop: cst.CSTNode, mode_free_here) -> bool:
    """A use that may run `self`'s mode-sensitive modules: anything but an attribute of `self` that
    is mode-free (`self.loss_fn = nn.SmoothL1Loss()`) or only handed to a call without a model's name
    (`split(batch, self.device)`). torchensemble's fit loops use `self._criterion` and hand on
    `self.device` while they train a local copy (4 false MDL301, set 2)."""
    if not used.startswith("self."):
        return True
    if mode_free_here(used):
        return False
    if _MODEL_NAME.search(_last(used)):
        return True
    return used in _keys_in(flow.forwarded, loop)


def _inherited(site: EvalSite, key: str) -> bool:
    """`key` is in eval only as a child of the object switched here (`self.eval()` and the key
    `self.criterion`), not switched itself."""
    func = site.eval_node.func if isinstance(site.eval_node, cst.Call) and not site.via else None
    switched = dotted(func.value) if isinstance(func, cst.Attribute) else None
    return switched is not None and key.startswith(switched + ".")


def _used_in(flow: ScopeFlow, key: str, loop: cst.CSTNode) -> bool:
    """`key` (or a part of it, or a name bound to it) takes part in the loop's training computation."""
    names = flow.alias_names(key)
    return any(_involves(t, n) for t in _keys_in(flow.trained, loop) for n in names)


def _last(key: str) -> str:
    return key.rsplit(".", 1)[-1]


class EvalNotUndoneInTrainingLoop(Rule):
    code = "MDL301"
    name = "eval-not-undone-in-training-loop"
    level = "error"
    default = False  # issue 15's measuring set: see the end of `what`
    summary = "A training loop switches the model to eval mode and never switches it back before the next step."
    what = (
        "Reports a call inside a loop that trains (the loop, or a function of this file that it calls, "
        "runs an optimizer step: `optimizer.step()`, `opt.step()`, `scaler.step(opt)`, with "
        "`.backward()` / `accelerator.backward()`) when that call puts a model in eval mode "
        "(`model.eval()`, `model.train(False)`, or a call of a function or method defined in the same "
        "file that does so, followed transitively with arguments mapped to parameters: "
        "`validate(model, loader)`, `self.validate()` running `self.model.eval()`; a method of a plain wrapper "
        "object, `learner.to_eval()`, switching a network the wrapper keeps as `self.net = net` in its "
        "`__init__`, also in another file, and also when the wrapper is built around the model inside an "
        "evaluation helper of another file, `def score(model, data): Holder(model).to_eval(); ...`), and a training "
        "step can run afterwards, on some path, in the same or the next iteration, without "
        "`model.train()` / `model.train(True)` in between (at the top of the loop, after the "
        "evaluation, or inside the called `train_one_epoch()`; those calls are followed too). "
        "The object must be the model the loop trains: it (or an alias such as `ddp_model = "
        "DDP(model)`) is called outside `no_grad` in the loop, or handed to a call that trains it "
        "(a file-local function that calls it, or a call that cannot be followed). "
        "Not reported: objects that are not the trained model (an EMA/SWA copy, teacher, target "
        "or frozen reference network by name, a `copy.deepcopy` of the model, a name bound anew "
        "inside the loop such as a freshly loaded checkpoint, a model only run under `no_grad` in "
        "the loop or only with its result detached (`feats = model(x).detach()`, a frozen encoder under a linear probe), an optimizer's own `eval()` as in schedule-free optimizers); a sub-module put in eval mode on "
        "its own (`model.backbone.eval()` to freeze batch norm is a common deliberate choice); an "
        "evaluation followed by `break`/`return`, or run on the last iteration only (`if i == len(loader) - 1:` as the "
        "last statement of `for i, x in enumerate(loader)`, also when the loop counts a `tqdm(loader)`); a `model.train(was_training)` that restores a "
        "saved mode; loops that only call `.backward()` without an optimizer step (adversarial "
        "examples, saliency maps), and a function of this file that backpropagates only for a gradient on an input "
        "(it makes an input of its model calls require gradients, `delta.requires_grad = True`, and steps no optimizer: "
        "a PGD attack called from the training and the test loop alike is no training step), or whose optimizer is built over input tensors (`Adam([z])`: latent "
        "search, style transfer); steps that no path reaches in training mode (MDL303 reports those: "
        "the decision is by paths, one finding); code in `LightningModule` classes, whose loop Lightning owns; "
        "a model frozen in the file (`m.requires_grad_(False)`, or `p.requires_grad = False` over "
        "`m.parameters()`: a linear probe that keeps the frozen encoder in eval while a head trains, "
        "also when the switch is chosen per run, `if tune: m.train() else: m.eval()`); a model whose "
        "parameters are in none of the optimizers built in the file (a fixed loss network), judged only "
        "when every optimizer stepped in the file is built in it from readable `X.parameters()` "
        "expressions; and `self.eval()` while the loop trains a local built or copied in the method "
        "(`est = copy.deepcopy(base)`, `est = self.make_member()`): `self.eval()` switches only the "
        "children of `self`, so such a local is caught only once it is stored on `self` (`self.net = est`, "
        "or an alias of an attribute: `net = self.net`); the loop's uses of `self` that count there are "
        "its attributes that are not mode-free (`self.loss_fn = nn.SmoothL1Loss()` is, `self.head` with a "
        "dropout is not) and are run or named as a model (`to_device(batch, self.device)` hands on a "
        "value, not a module); an attribute of `self` that `self.eval()` switches only as its child "
        "(`self.width`, `self.loss_fn`) is not the trained model unless the loop uses it; a model whose "
        "mode sensitivity is \"no\" (`analysis.keysensitivity`: built from mode-free classes only, also through a "
        "project helper that returns the model it is given, `to_device(Net())`: `analysis.passthrough`); a step "
        "whose optimizer, built in the file from readable parameters (positional or `params=`; a list grown by "
        "`append` / `extend` / `+=` is read with what each addition adds), holds neither the model nor a name "
        "bound to it (a `.backward()` is judged by the first `X.step()` after it in its loop body: "
        "`critic_loss.backward(); critic_opt.step()` while the generator is in eval making no_grad inputs); and a model whose trained parts sit in a container built from them (`top = nn.ModuleList([net.blocks[-1], net.norm])`, the optimizer over `top`) that is switched back with `top.train()` before the step (the parts outside the container stay in eval, which is not caught). Aliases of a parameter in a training function "
        "of another file (`net = model; net.train()`) are followed. A local that is an attribute or a "
        "mode-delegating wrapper of it on every binding (`net = self.encoder`, then `net = "
        "DataParallel(net)`) is that object: its `eval()` replaces the attribute's earlier evals rather "
        "than adding to them (a local that may be another object, `a if c else b`, or a parameter "
        "rebound, adds). Also not reported: an eval in the arm of a flag (`if cfg.tune_enc: enc.train() "
        "else: enc.eval()`, `if not cfg.tune_enc: enc.eval()`) whose other value is where the file reads "
        "the model's parameters (`if cfg.tune_enc: groups.append({\"params\": enc.parameters()})`), when "
        "no optimizer constructor reads them outside that arm: the flag says whether the model trains "
        "and the eval is its frozen setting (flags and models compared as written, `self.` dropped). A "
        "model counts as held by an optimizer when it or a name it is bound to in the scope is "
        "(`judged = net`, then `check(judged)`). A routine whose training step sits under a test of one of "
        "its parameters that nothing in it rebinds (`if train:`, `if not is_eval:`, `if stage == \"fit\":`, "
        "`if optimizer is not None:`, also through a local bound once to such a compare, `fitting = stage == "
        "\"fit\"`) runs no step when a call passes the literal value (or leaves the literal default) that makes "
        "the test false (`run_epoch(val_loader, train=False)`, `loop(model, \"val\", None)`), in this file "
        "or another; and an eval made under a test of such a parameter (`if not train: predict(model, x)`) "
        "is not paired with a step under the opposite test (`if train: loss.backward()`): the two never "
        "run in the same call. A phase loop (`for phase in (\"train\", \"val\"): if phase == \"train\": "
        "model.train() else: model.eval()`, then the step under `if phase == \"train\":` in the same iteration) is "
        "not reported: the eval's `if` has an `else` that puts the model back in train, every iteration runs "
        "it before the step, and the step's tests contradict the eval's arm on a name the loop's body does "
        "not rebind (`analysis.phases`); a one-armed `if phase == \"val\": model.eval()` still is. `x.eval()` / `x.train()` where `x` is `self` (or `super()`) and the method is "
        "defined by a project class of this file that is not a module (a workspace or runner whose `eval()` "
        "runs evaluation episodes) is a call of that method, followed like any other: its own switches count, "
        "the object itself is not put in eval. An `assert False` / `assert 0` (an arm that cannot run: `if a: "
        "m.train() elif b: m.eval() else: assert False`) ends its path like `raise`, so an eval that every "
        "running path overwrites before the step is not the one blamed. Arguments passed as `*name`, where `name` "
        "is bound by one statement of the scope to a tuple or list display (`args = (loader, net, opt); "
        "run_epoch(*args, epoch)`), are mapped to the callee's parameters element by element, and so are arguments "
        "passed as `**name` bound to a dict display with string keys (`kw = {\"model\": model}; run(**kw)`), so the callee's "
        "own `net.train()` is seen. A name bound to a tensor attribute of the model (`w = model.fc.weight.data.T`) does not "
        "share its mode. A direct optimizer step is not judged when the same loop has a direct backward: the mode "
        "matters to the forward the backward differentiates, so an evaluation between `loss.backward()` and "
        "`opt.step()` is reported at the next pass's backward, if nothing switches back before it. A method's parameter that a call of another method of the class hands an "
        "attribute of `self`, directly or through a local of the caller bound from it (`runner = "
        "DataParallel(self.net)`, `m, opt = accelerator.prepare(self.net, opt)`, `self.wrapped = m`, or the "
        "tuple a setup method of the class returns), may be that attribute: its `train()` switches the "
        "attribute back too (as for any other alias). A callable handed a loss and an optimizer (`loss_scaler(loss, "
        "optimizer)`) counts as a training step, unless it is a top-level function of a checked file that is not "
        "summarised as stepping and hands no optimizer-like name to a call of its own (`save_checkpoint(epoch, model, "
        "optimizer, best_loss)` that pickles them; not `apply_grads(loss, optimizer)` calling another file's `do_step(loss, optimizer)`). A method "
        "called by name on an object of unknown class (`pg.update()`) is taken for a checked class's method of that "
        "name only when the call gives at least the arguments that method needs."
    )
    what += (
        " "
        'Off by default: on the measuring set (26 code bases never used to develop it: 17 repositories '
        'with training scripts and 9 model packages; `bench/precision.py`, verdicts with reasons in '
        '`bench/verdicts/measuring.tsv`) it reached 0% real-or-deliberate (1 finding, false: the model '
        'left in eval held only an embedding of a third-party class, whose sensitivity is unknown; a '
        'single finding, measure again), below the 95% a default rule needs. Select it with `--select` or '
        '`extend-select`.'
    )
    what += remeasured_2026_12_02(
        set3=('10 findings: 2 real, 8 false (20%; false: `eval()` on a sub-model in the branch '
              'where a config flag also keeps it out of the optimizer, the mode put back at the '
              'next epoch through an alias of the attribute or a DataParallel wrapper, an '
              'evaluation routine that saves and restores the flag itself); one real latent finding '
              'of the day before is no longer reported'),
        set2=('10 findings: 6 real, 4 false (60%)'),
    )
    what += remeasured_2026_12_03(set4="3 findings: 1 deliberate, 2 false (33%)", set5="3 findings, all false (0%)")
    what += measured_set6("1 finding, false (0%)")
    what += (" Measuring set 3 has since tuned this rule (its false findings shaped the exemptions "
             "above; 3 findings, all real on it afterwards), so it no longer measures it. Sets 4 and 5 "
             "have tuned it too (their 5 false findings shaped the guarded-step, plain-class `eval()`, "
             "`assert False` and `*args` exemptions above; afterwards set 4: 1 finding, deliberate; set 5: none).")
    what += measured_sets_8_9("no finding", "2 findings, both real (100%), and missed a third such bug (a Laplace fit that puts the model in eval each epoch)")
    what += measured_sets_10_11("6 findings: 1 real, 5 false (17%: a copy switched by an attack helper, an eval guarded by the agent's test flag)",
                                "2 findings, both false (0%: a warm-up that trains only a mode-free head, a phase loop over a dict's keys)")
    what += measured_set12("no finding", "none is an eval left on in a training loop")
    what += measured_set13("1 finding, false (0%: the backward after the test's `eval()` is a PGD attack's input gradient; the epoch's training step comes after `model.train()`), a pattern no longer reported (the input-gradient helper above)")
    what += measured_set14("no finding")
    what += measured_sets_15_16("2 findings, both false (an alias rebound through DDP, whose switch is its own, since no longer reported; a step under `if optimizer:` in a routine whose `train()` sits under a test of a literal phase)",
                                "4 findings, all false (0%: a student switched back through the distillation wrapper that keeps it; a generator without mode-dependent layers, twice; a helper that trains only a probe it builds, since no longer reported)")
    what += measured_set17('1 finding, false (a mode-free model built through a pass-through helper, `trans_to_cuda(Net(...))`)')
    what += measured_upstream17('4 of the 7 missing `train()`s after an evaluation, and missed 3: a switch through a helper over a list of models (`set_mode("eval", [a, b])`), switches and steps through a wrapper object\'s methods, and a prediction method that leaves eval for a later fit method. Its other findings on those trees were 11 real (the same bug in other trainers) and 2 false')
    what += measured_set18('1 finding, false (an evaluation at the last batch of each epoch, `if i == len(loader) - 1:`, before an epoch that starts with `train()`; fixed since)')
    what += measured_upstream18("4 of the 5 missing `train()`s after an evaluation inside the buggy routine, and the fifth (a script) at its validation calls, which the list's script-level criterion added after the run counts: 5 of 5; its other findings there were 2, both real (that script's bug at its second validation call)")
    what += measured_set19('3 findings, all false (a frozen teacher kept in eval that the optimizer, built with the keyword `params=`, does not hold, twice; a model whose dropout defaults to 0 and is never set)')
    what += measured_upstream19("all 3 missing `train()`s after an evaluation; its 16 other findings there were 12 real (the same step-wise evaluation, copied across the library's other trainers) and 4 false (two trainers whose evaluation path crashes before the next step)")
    what += measured_set20('1 finding, false (the routine that starts with `model.train()` is called with the model inside `**kwargs` bound to a dict display, which the rule does not map)')
    what += measured_upstream20('2 of the 3 missing `train()`s after an evaluation (the third is a `self.eval()` inside the model\'s own sampling method); one fix still leaves a false finding: an optimizer step after a mid-loop evaluation, whose backward ran before the evaluation')
    why = (
        "`model.eval()` is sticky: it stays in effect until something calls `model.train()`. A "
        "validation helper called at the end of each epoch therefore makes every later epoch train "
        "with dropout disabled and batch norm normalising with (and no longer updating) its running "
        "statistics. Nothing fails: the loss still goes down, but the model overfits or diverges "
        "from what the same code gives with a single epoch, and the bug only shows as worse "
        "validation numbers."
    )
    example = (
        "def fit(model, optimizer, loader, val_loader, epochs):\n"
        "    model.train()\n"
        "    for epoch in range(epochs):\n"
        "        for x, y in loader:\n"
        "            optimizer.zero_grad()\n"
        "            F.cross_entropy(model(x), y).backward()\n"
        "            optimizer.step()\n"
        "        model.eval()\n"
        "        with torch.no_grad():\n"
        "            acc = sum((model(x).argmax(1) == y).sum().item() for x, y in val_loader)\n"
    )
    use_instead = (
        "def fit(model, optimizer, loader, val_loader, epochs):\n"
        "    for epoch in range(epochs):\n"
        "        model.train()\n"
        "        for x, y in loader:\n"
        "            optimizer.zero_grad()\n"
        "            F.cross_entropy(model(x), y).backward()\n"
        "            optimizer.step()\n"
        "        model.eval()\n"
        "        with torch.no_grad():\n"
        "            acc = sum((model(x).argmax(1) == y).sum().item() for x, y in val_loader)\n"
    )
    triggers = ("eval", "train")
    fix_safety = (
        "No fix: where `model.train()` belongs (after the evaluation, at the top of the loop, or in a "
        "`finally`) depends on the loop."
    )

    VALID = (
        # one body for both phases: the `if` switches back to train in the other arm, every iteration
        # runs it before the step, and the step runs only under the opposite test of the loop's own
        # `split` (the near misses, a one-armed switch and an unguarded step, are in INVALID)
        """
import torch.nn.functional as F

def run(net, loaders, opt, epochs):
    for epoch in range(epochs):
        for split in ("fit", "dev"):
            if split == "dev":
                net.eval()
            else:
                net.train()
            for x, y in loaders[split]:
                loss = F.mse_loss(net(x), y)
                if split != "dev":
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
""",
        # the epoch method switches back through its parameter, which the caller bound from
        # `self.net` (a wrapper returned by a setup method)
        """
import torch
from torch.nn import DataParallel

class Coach:
    def __init__(self, net, opt, val):
        self.net, self.opt, self.val = net, opt, val

    def _setup(self):
        runner = DataParallel(self.net)
        return runner, self.opt

    def fit(self, batches, epochs):
        runner, opt = self._setup()
        for e in range(epochs):
            self._epoch(runner, batches)

    def _epoch(self, runner, batches):
        for xb in batches:
            self._one(runner, xb)
            self.opt.step()
            self.validate()

    def _one(self, m, xb):
        m.train()
        m(xb).sum().backward()

    def validate(self):
        self.net.eval()
        with torch.no_grad():
            return [self.net(x) for x in self.val]
""",
        # the mode is chosen again at the top of every epoch; the arm that cannot run asserts
        """
import torch

def tune(net, opt, data, val, phase, epochs):
    for ep in range(epochs):
        if phase == "warm":
            net.train()
        elif phase == "full":
            net.train(True)
        else:
            assert 0, phase
        for xb, yb in data:
            opt.zero_grad()
            torch.nn.functional.l1_loss(net(xb), yb).backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            print(sum(net(xb).sum() for xb, _ in val))
""",
        # `self.eval()` of a plain class (not a module) is its own method: evaluation episodes that
        # leave the policy's mode alone
        """
import torch

class Runner:
    def __init__(self, policy, opt, env):
        self.policy, self.opt, self.env = policy, opt, env

    def eval(self):
        with torch.no_grad():
            return sum(self.policy(o).max() for o in self.env.episodes())

    def fit(self, batches, every):
        self.policy.train()
        for i, (xb, yb) in enumerate(batches):
            self.opt.zero_grad()
            torch.nn.functional.mse_loss(self.policy(xb), yb).backward()
            self.opt.step()
            if i % every == 0:
                self.eval()
""",
        # a routine steps only under a test of its parameter; the validation call passes the value
        # that turns the test off, and the eval it makes under the opposite test never meets the step
        """
import torch

def run_pass(net, batches, opt, learn=True):
    for xb, yb in batches:
        if not learn and len(xb) > 64:
            chunked_predict(net, xb)
        loss = (net(xb) - yb).abs().mean()
        if learn:
            loss.backward()
            opt.step()

def chunked_predict(net, xb):
    net.eval()
    return [net(c) for c in xb.split(32)]

def main(net, opt, train_b, val_b, rounds):
    for r in range(rounds):
        net.train()
        run_pass(net, train_b, opt)
        net.eval()
        run_pass(net, val_b, None, learn=False)
""",
        # model.train() at the top of every epoch
        """
import torch
import torch.nn.functional as F

def validate(model, loader):
    model.eval()
    with torch.no_grad():
        return sum(F.cross_entropy(model(x), y).item() for x, y in loader)

def fit(model, optimizer, loader, val_loader, epochs):
    for epoch in range(epochs):
        model.train()
        for x, y in loader:
            optimizer.zero_grad()
            F.cross_entropy(model(x), y).backward()
            optimizer.step()
        validate(model, val_loader)
""",
        # the called train_one_epoch() switches back itself; evaluate() restores the saved mode
        """
import torch

def train_one_epoch(model, loader, optimizer, scaler):
    model.train()
    for x, y in loader:
        with torch.autocast("cuda"):
            loss = model(x, y)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

@torch.no_grad()
def evaluate(model, loader):
    was_training = model.training
    model.eval()
    out = [model(x) for x, _ in loader]
    model.train(was_training)
    return out

def main(model, loader, optimizer, scaler, epochs):
    for epoch in range(epochs):
        train_one_epoch(model, loader, optimizer, scaler)
        evaluate(model, loader)
""",
        # a different model is evaluated: EMA copy, a freshly loaded checkpoint, a teacher
        """
import copy
import torch

def fit(model, teacher, optimizer, loader, epochs):
    ema_model = copy.deepcopy(model)
    snapshot = copy.deepcopy(model)
    model.train()
    for epoch in range(epochs):
        teacher.eval()
        for x, y in loader:
            with torch.no_grad():
                soft = teacher(x)
            loss = (model(x) - soft).pow(2).mean()
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        ema_model.eval()
        snapshot.eval()
        best = torch.load("best.pt")
        best.eval()
""",
        # final evaluation followed by break; sub-module frozen on purpose; backward-only loop
        """
import torch

def fit(model, optimizer, loader, max_steps, evaluate):
    model.train()
    for step, (x, y) in enumerate(loader):
        model.backbone.eval()  # keep the pretrained batch-norm statistics
        loss = model(x, y)
        loss.backward()
        optimizer.step()
        if step == max_steps:
            model.eval()
            evaluate(model)
            break

def pgd(model, x, y, steps, eps):
    model.eval()
    delta = torch.zeros_like(x, requires_grad=True)
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(model(x + delta), y)
        loss.backward()
        delta.data = (delta + eps * delta.grad.sign()).clamp(-eps, eps)
    return delta
""",
        # eval on every path to the step (a baseline evaluation before the loop too): MDL303's finding
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
            optimizer.step()
        net.eval()
        with torch.no_grad():
            report(sum(net(x).mean() for x in val_batches))
""",
        # LightningModule: Lightning owns the loop and switches modes itself
        """
import pytorch_lightning as pl

class Classifier(pl.LightningModule):
    def on_train_epoch_end(self):
        self.eval()
        self.log_samples()

    def fit_manually(self, loader, opt):
        for batch in loader:
            self.manual_backward(self.training_step(batch, 0))
            opt.step()
            self.eval()
""",
        # the trained network is a local built in the method: `self.eval()` switches only self's children
        """
import torch

class SnapshotEnsemble(torch.nn.Module):
    def __init__(self, make_member, rounds):
        super().__init__()
        self.make_member = make_member
        self.kept = torch.nn.ModuleList()
        self.rounds = rounds

    def fit(self, batches, score):
        for r in range(self.rounds):
            member = self.make_member()
            optimizer = torch.optim.SGD(member.parameters(), lr=0.05)
            member.train()
            for inp, target in batches:
                optimizer.zero_grad()
                (member(inp) - target).abs().mean().backward()
                optimizer.step()
            self.kept.append(member)
            self.eval()
            with torch.no_grad():
                score(self, batches)
""",
        # correlated switch: a linear probe freezes the encoder and keeps it in eval; only the head trains
        """
import torch

def probe_or_tune(encoder, head, tune, batches, rounds):
    if not tune:
        encoder.requires_grad_(False)
    groups = [{"params": head.parameters()}] + ([{"params": encoder.parameters()}] if tune else [])
    optim = torch.optim.AdamW(groups, lr=1e-3)
    for r in range(rounds):
        if tune:
            encoder.train()
        else:
            encoder.eval()
        for inp, target in batches:
            optim.zero_grad()
            torch.nn.functional.nll_loss(head(encoder(inp)), target).backward()
            optim.step()
""",
        # a fixed feature network of the loss, in no optimizer: the step does not train it
        """
import torch

def fit_decoder(decoder, feature_net, pairs, rounds):
    opt_dec = torch.optim.Adam(decoder.parameters(), lr=2e-4)
    decoder.train()
    for r in range(rounds):
        for code, image in pairs:
            recon = decoder(code)
            loss = (feature_net(recon) - feature_net(image)).pow(2).mean()
            opt_dec.zero_grad()
            loss.backward()
            opt_dec.step()
        feature_net.eval()
""",
        # the parts that train are collected in a container switched back to train every epoch
        """
import torch

def tune_top(net, batches, held_out, rounds):
    top = torch.nn.ModuleList([net.blocks[-1], net.norm])
    opt = torch.optim.SGD(top.parameters(), lr=0.01)
    for r in range(rounds):
        top.train()
        for inp, target in batches:
            opt.zero_grad()
            (net(inp) - target).pow(2).mean().backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            print(sum(net(inp).sum() for inp, _ in held_out))
""",
        # a per-round switch chosen by a flag through a local that is the attribute (or its
        # DataParallel wrapper): its eval arm is the frozen setting, since the same flag decides
        # whether the network's parameters join the optimizer, and it replaces the stale eval
        # `score()` left on the attribute; near miss in INVALID: a local that may be another network
        """
import torch


class Ranker:
    def score(self, batches):
        self.ranker_net.eval()
        with torch.no_grad():
            return [self.ranker_net(b) for b in batches]

    def groups(self, net):
        out = [{"params": self.head.parameters()}]
        if self.cfg.tune_ranker_net:
            out.append({"params": net.parameters(), "lr": 1e-5})
        return out

    def fit(self, batches, rounds, wrap):
        net = self.ranker_net
        opt = torch.optim.AdamW(self.groups(net))
        if wrap:
            net = torch.nn.DataParallel(net)
        for _ in range(rounds):
            if self.cfg.tune_ranker_net:
                net.train()
            else:
                net.eval()
            for b in batches:
                opt.zero_grad()
                self.head(net(b)).mean().backward()
                opt.step()
            self.score(batches)
""",
        # the evaluation is handed a network the optimizer does not hold
        """
import torch


def check(net, batches):
    total = 0.0
    for x in batches:
        net.eval()
        with torch.no_grad():
            total += float(net(x).mean())
    return total


def run(net, spare, batches, epochs):
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    net.train()
    for _ in range(epochs):
        for x in batches:
            opt.zero_grad()
            net(x).mean().backward()
            opt.step()
        judged = spare
        check(judged, batches)
""",
        # `self.eval()` of a committee while the loop trains a local member: the loop's uses of
        # `self` are a mode-free loss attribute and an attribute handed on (`self.device`)
        """
import copy

import torch
from torch import nn

from .utils import build_optimizer, to_device


class Committee(nn.Module):
    def __init__(self, make_member, size, device):
        super().__init__()
        self.members = nn.ModuleList()
        self.make_member, self.size, self.device = make_member, size, device

    def forward(self, x):
        return torch.stack([m(x) for m in self.members]).mean(0)

    def fit(self, batches, held_out, rounds):
        self.loss_fn = nn.SmoothL1Loss()
        self.width = len(batches)
        member = self.make_member()
        opt = build_optimizer(member, lr=1e-3)
        member.train()
        for r in range(rounds):
            for batch in batches:
                x, y = to_device(batch, self.device)
                opt.zero_grad()
                self.loss_fn(member(x), y).backward()
                opt.step()
            self.members.append(copy.deepcopy(member))
            self.eval()
            with torch.no_grad():
                err = sum(self.loss_fn(self(x), y) for x, y in held_out) / self.width
""",
        # adversarial loop: the segmenter (and its alias `net`) is in eval only while the critic's own
        # optimizer steps; each iteration starts with `seg.train()`
        """
import torch
import torch.nn.functional as F

from nets import build_critic, build_segmenter


def main(cfg, batches):
    net = build_segmenter(cfg)
    seg = net.cuda()
    critic = build_critic(cfg).cuda()
    seg_opt = torch.optim.SGD(seg.parameters(), lr=0.01)
    critic_opt = torch.optim.Adam(critic.parameters())
    for x, real in batches:
        seg.train()
        critic.eval()
        pred = seg(x)
        loss = F.mse_loss(pred, real) + critic(pred).mean()
        seg_opt.zero_grad()
        loss.backward()
        seg_opt.step()
        seg.eval()
        critic.train()
        with torch.no_grad():
            fake = seg(x)
        critic_loss = critic(fake).mean() - critic(real).mean()
        critic_opt.zero_grad()
        critic_loss.backward()
        critic_opt.step()
""",
    )
    VALID += (
        # a phase loop that records each phase's loss under the phase's name: writing `history[stage]`
        # does not rebind `stage`, so the step under `if stage == "fit"` never meets the other arm's eval
        """
import torch

def run(net, loaders, opt, epochs):
    for epoch in range(epochs):
        history = {}
        for stage in ("fit", "check"):
            if stage == "fit":
                net.train()
            else:
                net.eval()
            total = 0.0
            for x, y in loaders[stage]:
                loss = torch.nn.functional.mse_loss(net(x), y)
                if stage == "fit":
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                total += loss.item()
            history[stage] = total
""",
    )
    VALID += (
        # a linear probe: the encoder runs with its output detached, so the steps train only the head
        # on its features and the encoder's eval after each epoch's check is the protocol (near miss in
        # INVALID: the same loop without `.detach()` trains the encoder in eval from epoch 2 on)
        """
import torch

def fit(model, loader, opt, epochs):
    for epoch in range(epochs):
        for x, y in loader:
            loss = torch.nn.functional.cross_entropy(model.head(model(x).detach()), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            acc = sum((model.head(model(x)).argmax(1) == y).sum() for x, y in loader)
""",
    )
    VALID += (
        # a gradient-sign attack helper, called by the training loop and, after `eval()`, by the test
        # loop: its backward computes a gradient on the perturbation (`delta.requires_grad = True`), not a
        # weight update, and the epoch's own step comes after `train()` (near miss in INVALID: that
        # `train()` is missing)
        """
import torch
import torch.nn.functional as F

def perturb(net, x, y, eps, steps):
    delta = torch.zeros_like(x)
    delta.requires_grad = True
    for _ in range(steps):
        F.cross_entropy(net(x + delta), y).backward()
        delta.data = (delta + eps * delta.grad.sign()).clamp(-eps, eps)
        delta.grad.zero_()
    return delta.detach()

def robust_fit(net, opt, train_dl, test_dl, epochs, eps):
    for epoch in range(epochs):
        for x, y in train_dl:
            delta = perturb(net, x, y, eps, steps=3)
            net.train()
            loss = F.cross_entropy(net(x + delta), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        net.eval()
        wrong = 0
        for x, y in test_dl:
            delta = perturb(net, x, y, eps, steps=10)
            with torch.no_grad():
                wrong += (net(x + delta).argmax(1) != y).sum().item()
""",
    )
    INVALID = (        # near miss of the phase-loop VALID example: the loop body rebinds the phase name itself
        """
import torch

def run(net, loaders, opt, epochs):
    for epoch in range(epochs):
        for stage in ("fit", "check"):
            if stage == "fit":
                net.train()
            else:
                net.eval()  # expect: MDL301
            for x, y in loaders[stage]:
                loss = torch.nn.functional.mse_loss(net(x), y)
                if stage == "fit":
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
            stage = "fit"
""",
        # near misses of the phase loop in VALID: a one-armed switch (the next "fit" iteration trains
        # in eval), and a step that is not under the phase's test
        """
import torch.nn.functional as F

def run(net, loaders, opt, epochs):
    for epoch in range(epochs):
        for split in ("fit", "dev"):
            if split == "dev":
                net.eval()  # expect: MDL301
            for x, y in loaders[split]:
                loss = F.mse_loss(net(x), y)
                if split != "dev":
                    opt.zero_grad()
                    loss.backward()
                    opt.step()

def run_all(net, loaders, opt, epochs):
    for epoch in range(epochs):
        for split in ("fit", "dev"):
            if split == "dev":
                net.eval()  # expect: MDL301
            else:
                net.train()
            for x, y in loaders[split]:
                opt.zero_grad()
                F.mse_loss(net(x), y).backward()
                opt.step()
""",
        # near miss of the adversarial loop above: `seg.train()` only before the loop, so the
        # segmenter's own step of the next iteration runs in eval
        """
import torch
import torch.nn.functional as F

from nets import build_critic, build_segmenter


def main(cfg, batches):
    net = build_segmenter(cfg)
    seg = net.cuda()
    critic = build_critic(cfg).cuda()
    seg_opt = torch.optim.SGD(seg.parameters(), lr=0.01)
    critic_opt = torch.optim.Adam(critic.parameters())
    seg.train()
    for x, real in batches:
        critic.eval()
        pred = seg(x)
        loss = F.mse_loss(pred, real) + critic(pred).mean()
        seg_opt.zero_grad()
        loss.backward()
        seg_opt.step()
        seg.eval()  # expect: MDL301
        critic.train()
        with torch.no_grad():
            fake = seg(x)
        critic_loss = critic(fake).mean() - critic(real).mean()
        critic_opt.zero_grad()
        critic_loss.backward()
        critic_opt.step()
""",
        # near miss of the committee above: the loop also runs the dropout head `self.head`
        """
import copy

import torch
from torch import nn

from .utils import build_optimizer, to_device


class Committee(nn.Module):
    def __init__(self, make_member, size, device):
        super().__init__()
        self.members = nn.ModuleList()
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(8, 1))
        self.make_member, self.size, self.device = make_member, size, device

    def forward(self, x):
        return torch.stack([m(x) for m in self.members]).mean(0)

    def fit(self, batches, held_out, rounds):
        self.loss_fn = nn.SmoothL1Loss()
        self.width = len(batches)
        member = self.make_member()
        opt = build_optimizer(member, lr=1e-3)
        member.train()
        for r in range(rounds):
            for batch in batches:
                x, y = to_device(batch, self.device)
                opt.zero_grad()
                self.loss_fn(self.head(member(x)), y).backward()
                opt.step()
            self.members.append(copy.deepcopy(member))
            self.eval()  # expect: MDL301
            with torch.no_grad():
                err = sum(self.loss_fn(self(x), y) for x, y in held_out) / self.width
""",
        # a plain class's own `eval()` that switches the network it holds and never back
        """
import torch

class Runner:
    def __init__(self, policy, opt, probe):
        self.policy, self.opt, self.probe = policy, opt, probe

    def eval(self):
        self.policy.eval()
        with torch.no_grad():
            return self.policy(self.probe).mean()

    def fit(self, batches):
        self.policy.train()
        for xb, yb in batches:
            self.opt.zero_grad()
            torch.nn.functional.mse_loss(self.policy(xb), yb).backward()
            self.opt.step()
            self.eval()  # expect: MDL301
""",
        # the step runs when the stage is "fit": the evaluation's eval reaches it in the next round
        """
import torch

def epoch(model, loader, stage, optimizer=None):
    for xb, yb in loader:
        loss = torch.nn.functional.l1_loss(model(xb), yb)
        if stage == "fit":
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

def go(model, optimizer, tr, va, n):
    model.train()
    for e in range(n):
        epoch(model, tr, "fit", optimizer)
        model.eval()  # expect: MDL301
        epoch(model, va, "check")
""",
        # the same container never switched back: its parts train in eval from the second round
        """
import torch

def tune_top(net, batches, held_out, rounds):
    top = torch.nn.ModuleList([net.blocks[-1], net.norm])
    opt = torch.optim.SGD(top.parameters(), lr=0.01)
    net.train()
    for r in range(rounds):
        for inp, target in batches:
            opt.zero_grad()
            (net(inp) - target).pow(2).mean().backward()
            opt.step()
        net.eval()  # expect: MDL301
        with torch.no_grad():
            print(sum(net(inp).sum() for inp, _ in held_out))
""",
        # the network stored on self before training: `self.eval()` does switch it
        """
import torch

class Wrapper(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def fit(self, batches, rounds, score):
        member = self.net
        optimizer = torch.optim.SGD(member.parameters(), lr=0.05)
        member.train()
        for r in range(rounds):
            for inp, target in batches:
                optimizer.zero_grad()
                (member(inp) - target).abs().mean().backward()
                optimizer.step()
            self.eval()  # expect: MDL301
            with torch.no_grad():
                score(self, batches)
""",
        # correlated switch without a freeze: the eval arm trains the encoder in eval (one finding)
        """
import torch

def probe_or_tune(encoder, head, tune, batches, rounds):
    optim = torch.optim.AdamW(list(head.parameters()) + list(encoder.parameters()), lr=1e-3)
    for r in range(rounds):
        if tune:
            encoder.train()
        else:
            encoder.eval()  # expect: MDL301
        for inp, target in batches:
            optim.zero_grad()
            torch.nn.functional.nll_loss(head(encoder(inp)), target).backward()
            optim.step()
        encoder.eval()
        with torch.no_grad():
            print(sum(head(encoder(inp)).sum() for inp, _ in batches))
""",
        # the epoch loop: validate() leaves the model in eval mode for the next epoch
        """
import torch
import torch.nn.functional as F

def validate(model, loader):
    model.eval()
    with torch.no_grad():
        return sum(F.cross_entropy(model(x), y).item() for x, y in loader)

def fit(model, optimizer, loader, val_loader, epochs):
    model.train()
    for epoch in range(epochs):
        for x, y in loader:
            optimizer.zero_grad()
            F.cross_entropy(model(x), y).backward()
            optimizer.step()
        validate(model, val_loader)  # expect: MDL301
""",
        # a trainer class: self.validate() switches self.model to eval mode
        """
import torch

class Trainer:
    def __init__(self, model, optimizer):
        self.model = model
        self.optimizer = optimizer

    def validate(self, loader):
        self.model.eval()
        with torch.no_grad():
            return [self.model(x) for x in loader]

    def train_step(self, batch):
        loss = self.model(*batch)
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad()

    def fit(self, loader, val_loader, epochs):
        self.model.train()
        for epoch in range(epochs):
            for batch in loader:
                self.train_step(batch)
            self.validate(val_loader)  # expect: MDL301
""",
        # evaluation every N steps inside the batch loop, and `train(False)` at script level
        """
import torch

def fit(model, opt, loader, eval_every):
    model.train()
    for step, (x, y) in enumerate(loader):
        loss = model(x, y)
        loss.backward()
        opt.step()
        opt.zero_grad()
        if step % eval_every == 0:
            model.eval()  # expect: MDL301
            with torch.no_grad():
                print(model(x, y).item())

net = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Dropout(0.1))
optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
net.train()
for x in range(10):
    net(torch.randn(2, 4)).sum().backward()
    optimizer.step()
    net.train(False)  # expect: MDL301
""",
        # the local may be another network (`a if c else b`), so its eval adds to the attribute's
        # stale eval; the flag reads the parameters, but the optimizer holds them whatever it says
        """
import torch


class Ranker:
    def score(self, batches):
        self.ranker_net.eval()
        with torch.no_grad():
            return [self.ranker_net(b) for b in batches]

    def fit(self, batches, rounds, pick):
        net = self.ranker_net if pick else self.spare
        opt = torch.optim.AdamW([*self.ranker_net.parameters(), *self.spare.parameters()])
        if self.cfg.tune_ranker_net:
            print(sum(p.numel() for p in net.parameters()))
        for _ in range(rounds):
            if self.cfg.tune_ranker_net:
                net.train()
            else:
                net.eval()  # expect: MDL301
            for b in batches:
                opt.zero_grad()
                (self.ranker_net(b) + net(b)).mean().backward()
                opt.step()
            self.score(batches)  # expect: MDL301
""",
        # the evaluation is handed a name bound to the trained network (or to a spare one)
        """
import torch


def check(net, batches):
    total = 0.0
    for x in batches:
        net.eval()
        with torch.no_grad():
            total += float(net(x).mean())
    return total


def run(net, spare, batches, epochs, keep_spare):
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    net.train()
    for _ in range(epochs):
        for x in batches:
            opt.zero_grad()
            net(x).mean().backward()
            opt.step()
        judged = spare if keep_spare else net
        check(judged, batches)  # expect: MDL301
""",
    )
    INVALID += (
        # near miss of the linear-probe VALID example: without `.detach()` the steps train the encoder
        # too, in the eval mode the first check left
        """
import torch

def fit(model, loader, opt, epochs):
    for epoch in range(epochs):
        for x, y in loader:
            loss = torch.nn.functional.cross_entropy(model.head(model(x)), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()  # expect: MDL301
        with torch.no_grad():
            acc = sum((model.head(model(x)).argmax(1) == y).sum() for x, y in loader)
""",
        # near miss of the attack VALID example: without the `train()` before the epoch's own step, every
        # epoch after the first trains in the eval mode the test loop left
        """
import torch
import torch.nn.functional as F

def perturb(net, x, y, eps, steps):
    delta = torch.zeros_like(x)
    delta.requires_grad = True
    for _ in range(steps):
        F.cross_entropy(net(x + delta), y).backward()
        delta.data = (delta + eps * delta.grad.sign()).clamp(-eps, eps)
        delta.grad.zero_()
    return delta.detach()

def robust_fit(net, opt, train_dl, test_dl, epochs, eps):
    for epoch in range(epochs):
        for x, y in train_dl:
            delta = perturb(net, x, y, eps, steps=3)
            loss = F.cross_entropy(net(x + delta), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        net.eval()  # expect: MDL301
        wrong = 0
        for x, y in test_dl:
            delta = perturb(net, x, y, eps, steps=10)
            with torch.no_grad():
                wrong += (net(x + delta).argmax(1) != y).sum().item()
""",
    )

    VALID += (
        # a mode-free recommender (embeddings and a linear score) built through a helper that hands back
        # what it is given: the model is the one built inside, and eval and train compute the same
        """
import torch
from torch import nn

def to_device(module, device=None):
    return module.to(device) if device is not None else module

class SessionScorer(nn.Module):
    def __init__(self, n_items, dim):
        super().__init__()
        self.items = nn.Embedding(n_items, dim)
        self.score = nn.Linear(dim, n_items)

    def forward(self, session):
        return self.score(self.items(session).mean(1))

def check(model, sessions):
    model.eval()
    with torch.no_grad():
        return sum(model(s).argmax(1).eq(t).sum().item() for s, t in sessions)

def main(train_sessions, test_sessions, n_items):
    model = to_device(SessionScorer(n_items, 64), "cuda")
    opt = torch.optim.Adam(model.parameters())
    for epoch in range(10):
        for s, t in train_sessions:
            loss = nn.functional.cross_entropy(model(s), t)
            opt.zero_grad()
            loss.backward()
            opt.step()
        check(model, test_sessions)
""",
    )
    INVALID += (
        # near miss of the pass-through VALID example: the model the helper hands back holds dropout
        """
import torch
from torch import nn

def to_device(module, device=None):
    return module.to(device) if device is not None else module

class SessionScorer(nn.Module):
    def __init__(self, n_items, dim):
        super().__init__()
        self.items = nn.Embedding(n_items, dim)
        self.drop = nn.Dropout(0.25)
        self.score = nn.Linear(dim, n_items)

    def forward(self, session):
        return self.score(self.drop(self.items(session).mean(1)))

def check(model, sessions):
    model.eval()
    with torch.no_grad():
        return sum(model(s).argmax(1).eq(t).sum().item() for s, t in sessions)

def main(train_sessions, test_sessions, n_items):
    model = to_device(SessionScorer(n_items, 64), "cuda")
    opt = torch.optim.Adam(model.parameters())
    for epoch in range(10):
        for s, t in train_sessions:
            loss = nn.functional.cross_entropy(model(s), t)
            opt.zero_grad()
            loss.backward()
            opt.step()
        check(model, test_sessions)  # expect: MDL301
""",
    )

    VALID += (
        # the evaluation runs on the last batch of each epoch only (`i == len(loader) - 1` ends the body of
        # the batch loop), and the next epoch starts with `train()`
        """
import torch
from tqdm import tqdm

def fit(model, opt, loader, epochs, evaluate):
    for epoch in range(epochs):
        model.train()
        with tqdm(loader) as bar:
            for i, x in enumerate(bar):
                loss = model(x).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                if i == len(loader) - 1:
                    model.eval()
                    evaluate(model)
""",
    )
    INVALID += (
        # near misses of the last-batch VALID example: `train()` only once before the epochs (the next
        # epoch trains in eval), and a test of another loader's length (it may hold mid-epoch)
        """
import torch

def fit(model, opt, loader, epochs, evaluate):
    model.train()
    for epoch in range(epochs):
        for i, x in enumerate(loader):
            loss = model(x).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            if i == len(loader) - 1:
                model.eval()  # expect: MDL301
                evaluate(model)
""",
        """
import torch

def fit(model, opt, loader, val_loader, evaluate):
    model.train()
    for i, x in enumerate(loader):
        loss = model(x).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i == len(val_loader) - 1:
            model.eval()  # expect: MDL301
            evaluate(model)
""",
    )

    VALID += (
        # switches written as comprehensions over a tuple of the networks: each element is switched
        """
import torch

def fit(enc, head, opt, loader, val):
    for epoch in range(3):
        _ = [m.train() for m in (enc, head)]
        for x, y in loader:
            loss = torch.nn.functional.cross_entropy(head(enc(x)), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        [m.eval() for m in (enc, head)]
        with torch.no_grad():
            acc = sum((head(enc(x)).argmax(1) == y).sum() for x, y in val)
""",
    )
    INVALID += (
        # near miss of the comprehension VALID example: no switch back to training before the next epoch
        """
import torch

def fit(enc, head, opt, loader, val):
    for epoch in range(3):
        pass
        for x, y in loader:
            loss = torch.nn.functional.cross_entropy(head(enc(x)), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        [m.eval() for m in (enc, head)]  # expect: MDL301
        with torch.no_grad():
            acc = sum((head(enc(x)).argmax(1) == y).sum() for x, y in val)
""",
    )

    def __init__(self, ctx, options=None):
        super().__init__(ctx, options)
        self._mode_calls = False  # some `.eval()` / `.train(<arg>)` / `set_training_mode(<arg>)`
        self._optimizer_step = False
        self._stack: List[Optional[cst.FunctionDef]] = [None]
        self._scopes: Dict[int, Optional[cst.FunctionDef]] = {0: None}
        self._steps_in: Set[int] = set()  # scopes that call a training step directly
        self._calls: Dict[int, Set[str]] = {}  # scope -> names it calls
        self._project_names = ctx.classifier.index.step_or_switch_names()

    # The walk only collects cheap facts; the flow analysis runs at the end, only on files that
    # switch something to eval mode and step an optimizer, and only on scopes with a loop that
    # reach a training step (directly or through calls, matched by name).
    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._stack.append(node)
        self._scopes[id(node)] = node

    def leave_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._stack.pop()

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        scope = self._stack[-1]
        sid = id(scope) if scope is not None else 0
        fw = self.ctx.framework
        if isinstance(func, cst.Attribute):
            name = func.attr.value
            if name == fw.eval_method or ((name == fw.train_method or name in fw.mode_setter_methods) and node.args):
                self._mode_calls = True
            elif name in fw.backward_methods:
                self._steps_in.add(sid)
            elif name == fw.optimizer_step_method and optimizer_like(func.value):
                self._steps_in.add(sid)
                self._optimizer_step = True
        elif isinstance(func, cst.Name):
            name = func.value
            if name in fw.backward_call_last_names:
                self._steps_in.add(sid)
        else:
            return
        self._calls.setdefault(sid, set()).add(name)
        if name in self._project_names:  # a summarised function of the project (another file too)
            effect = for_context(self.ctx).project_effect(node)
            if effect is not None:
                self._mode_calls = self._mode_calls or effect.evals() or bool(effect.exit)
                if effect.steps or "step_fn" in effect.returns:
                    self._steps_in.add(sid)
                    self._optimizer_step = True

    def _reaching_step(self) -> Set[int]:
        reach = set(self._steps_in)
        names = {self._scopes[s].name.value for s in reach if self._scopes.get(s) is not None}
        changed = True
        while changed:
            changed = False
            for sid, called in self._calls.items():
                if sid not in reach and called & names:
                    reach.add(sid)
                    scope = self._scopes.get(sid)
                    if scope is not None:
                        names.add(scope.name.value)
                    changed = True
        return reach

    def leave_Module(self, node: cst.Module) -> None:
        if not (self._mode_calls and self._optimizer_step):
            return
        reach = self._reaching_step()
        mf = for_context(self.ctx)
        candidates: List[Tuple[int, cst.CSTNode, ScopeFlow, str, EvalSite, List[Step]]] = []
        for scope in mf.scopes():
            sid = 0 if scope is node else id(scope)
            if sid not in reach or id(scope) not in mf.index.has_loop or mf.in_lightning_class(scope):
                continue
            flow = mf.flow(scope)
            if flow is None or not flow.steps:
                continue
            for key, site, steps in self._scope_candidates(flow):
                score = len(site.via) + min(len(s.via) for s in steps)
                candidates.append((score, site.node, flow, key, site, steps))
        accepted: List[Tuple[cst.CSTNode, List[cst.CSTNode]]] = []
        seen_nodes = set()
        for score, node_, flow, key, site, steps in sorted(candidates, key=lambda c: self._order(mf, c)):
            inners = [s.inner for s in steps]
            if id(site.node) in seen_nodes:
                continue
            if any(eval_node is site.eval_node and any(i in prev for i in inners) for eval_node, prev in accepted):
                continue
            accepted.append((site.eval_node, inners))
            seen_nodes.add(id(site.node))
            self.report(site.node, self._message(mf, key, site, steps))

    @staticmethod
    def _order(mf: ModeFlow, candidate) -> tuple:
        """Shortest chain first, then by line; among keys one call leaves in eval (`evaluate(ddp)` for
        `ddp` and the `model` it wraps) the key the call names, then by name: the states' key order
        follows set iteration, so without the last two the message changed with the hash seed."""
        score, node, _, key, site, _ = candidate
        named = re.search(r"(?<![\w.])" + re.escape(key) + r"(?![\w])", mf.code(site.node)) is not None
        return (score, mf.line(node), not site.shown.startswith(key + "."), not named, key)

    def _scope_candidates(self, flow: ScopeFlow):
        """(key, site, steps it reaches) for eval sites of this scope that reach a training step
        of a common loop that runs an optimizer step."""
        found: Dict[Tuple[int, str], Tuple[str, EvalSite, List[Step]]] = {}
        trains_cache: Dict[int, bool] = {}
        for st in flow.steps:
            if not st.loops or step_over_inputs(flow, st):
                continue  # (an optimizer over an input image / latent trains no model)
            if st.kind == "optimizer" and not st.via and st.node is st.inner and any(
                    s.kind == "backward" and not s.via and s.node is s.inner and s.loops and s.loops[-1] is st.loops[-1]
                    for s in flow.steps):
                continue  # the backward of the same loop is judged: the mode matters to the forward
                # it differentiates, not to the update (an eval between `loss.backward()` and
                # `opt.step()`, then `model.train()` at the top of the next pass: upstream20's DALLE2)
            for key, tokens in st.state.items():
                if eval_on_every_path(tokens) and forwarded_at_step(flow, key, st):
                    continue  # in eval on every path to this step: MDL303 (training-in-eval-mode)
                if any(key == k or key.startswith(k + ".") for k in st.set_by_callee):
                    continue  # the step's callee sets the mode itself first: an earlier eval does not reach it
                for site in sites(tokens):
                    site_loops = flow.site_loops.get(id(site.node), ())
                    common = [lp for lp in st.loops if any(lp is x for x in site_loops)]
                    if not common:
                        continue
                    loop = common[-1]
                    if id(loop) not in trains_cache:
                        trains_cache[id(loop)] = any(
                            s.kind == "optimizer" and any(lp is loop for lp in s.loops) and not step_over_inputs(flow, s)
                            for s in flow.steps
                        )
                    if not trains_cache[id(loop)] or self._other_model(flow, key, loop) or self._not_trained(flow, key):
                        continue
                    if not self._stepped(flow, key, st):
                        continue  # `model.eval(); ...; d_loss.backward(); d_opt.step()`: d_opt holds only `disc`
                    if _inherited(site, key) and not _used_in(flow, key, loop):
                        continue  # `self.eval()` also covers `self.n_outputs`; only a child the loop runs counts
                    if self._mode_free(flow, key):
                        continue  # `self.criterion = nn.CrossEntropyLoss()` left in eval: computes the same
                    if contradicts(flow.site_guards.get(id(site.node), ()), st.guard, flow.fixed):
                        continue  # `if not train: evaluate()` and `if train: loss.backward()`: never both
                    if parts_back_in_train(self.ctx, key, st.state):
                        continue  # `trainable = nn.ModuleList(student.blocks); trainable.train()`
                    if self._switched_by_own_method(flow, key, site, loop) or self._frozen_by_flag(flow, key, site):
                        continue
                    if site.node is site.eval_node and switched_back_in_iteration(key, site.node, st.node, loop):
                        continue  # `if phase == "train": m.train() else: m.eval()` ... `if phase == "train": step`
                    entry = found.setdefault((id(site.node), key), (key, site, []))
                    entry[2].append(st)
        return list(found.values())

    def _other_model(self, flow: ScopeFlow, key: str, loop: cst.CSTNode) -> bool:
        """Is `key` evidently not the model being trained?"""
        if not_trained_name(key) or _OPTIMIZER.search(_last(key)):
            return True  # optimizer.eval(): schedule-free optimizers have modes too, but not this bug
        parts = key.split(".")
        if parts[0] == "self":
            parts = parts[1:]
        if len(parts) > 1:
            return True  # `model.backbone.eval()`: a sub-module frozen on purpose
        for b in flow.bindings.get(key, ()):
            if b.kind == "copy":
                return True  # ema = copy.deepcopy(model)
            if b.kind != "alias" and any(lp is loop for lp in b.loops):
                return True  # bound anew in the loop: a fresh load / another object every time
        # The trained model takes part in the loop's training computation: it is called outside
        # no_grad, or handed to a call that trains it (followed in this file, or not followable).
        # When the loop visibly trains some other model and never uses this one, this one is not it.
        # (When no model is visibly run - the forward hides in a subclass or another module - the
        # object is given the benefit of the doubt and reported.)
        names = flow.alias_names(key)
        if any(d in names for d in _keys_in(flow.detached, loop)) and not any(
                f in names for f in _keys_in(flow.forwarded, loop)):
            return True  # run in the loop only with its result detached (`feats = model(x).detach()`): a
            # frozen encoder under a probe; what trains is a head, given the features (`analysis.detached`)
        trained = _keys_in(flow.trained, loop)
        if key == "self":  # `split(batch, self.device)`: an attribute handed on is no use of self's modules
            trained = {t for t in trained if _self_module_use(flow, t, loop, lambda k: self._mode_free(flow, k))}
        trained |= {a for t in trained for a in flow.aliases.get(t, ())}  # `member = self.net`: self's child
        names = flow.alias_names(key)
        if any(_involves(t, n) for t in trained for n in names):
            return False
        forwarded = _keys_in(flow.forwarded, loop)
        if key == "self" and any(_local_object(flow, k) for k in forwarded):
            return True  # `self.eval()` of an ensemble while the loop trains `est = copy.deepcopy(base)`
        return any(_MODEL_NAME.search(_last(k)) for k in forwarded)

    def _stepped(self, flow: ScopeFlow, key: str, st: Step) -> bool:
        """The optimizer the step updates may hold `key` (or a name bound to it): unknown, or it does;
        and a project call's summary, when it says what its steps train, names `key` or a part of it
        (`not_trained_by`: set 10's ODFA backpropagates through its own copy for an input gradient)."""
        if all(not_trained_by(st, n) for n in flow.alias_names(key)):
            return False
        own = held_by_step(self.ctx, flow, st)
        return own is None or any(trained_by(n, own) for n in flow.alias_names(key))

    def _mode_free(self, flow: ScopeFlow, key: str) -> bool:
        return mode_free(self.ctx, for_context(self.ctx), flow.node, key)

    def _not_trained(self, flow: ScopeFlow, key: str) -> bool:
        """No step trains `key`: it is frozen in this file (`key.requires_grad_(False)`, or
        `p.requires_grad = False` over its parameters: a linear probe whose eval arm freezes the
        backbone while a head trains), or the file's optimizers, when all can be read, hold none of
        its parameters nor those of a name it is bound to here (a fixed loss network;
        `analysis.optimized`). The aliases count because the key an evaluation leaves in eval is
        the name it was handed: `test_model = model` then `test(test_model)` (FixMatch's real latent
        finding, lost when only `test_model` itself was looked up in the optimizers)."""
        if key.removeprefix("self.") in frozen_keys(self.ctx):
            return True
        optimized = optimized_keys(self.ctx)
        return optimized is not None and not any(trained_by(k, optimized) for k in flow.alias_names(key))

    def _frozen_by_flag(self, flow: ScopeFlow, key: str, site: EvalSite) -> bool:
        """The eval is the arm of a flag under whose other value the file reads the model's
        parameters (`if args.tune_enc: enc.train() else: enc.eval()` beside `if args.tune_enc:
        groups += [enc.parameters()]`): the model's frozen setting (`analysis.optimized`)."""
        tests = flow.site_tests.get(id(site.eval_node)) if site.node is site.eval_node else None
        return bool(tests) and frozen_by_flag(self.ctx, flow.alias_names(key), tests)

    @staticmethod
    def _switched_by_own_method(flow: ScopeFlow, key: str, site: EvalSite, loop: cst.CSTNode) -> bool:
        """`self.pesq_metric.append(...)` whose summary leaves the object "in eval" (its own scoring
        network): an object switched only through one of its own methods, not named like a model and
        never run in the loop, is a tracker or helper that holds a network, not the trained model.
        (A wrapper that keeps the trained network, `learner.to_eval()`, maps to that network's key.)"""
        if not site.via or not site.shown.startswith(key + ".") or _MODEL_NAME.search(_last(key)):
            return False
        return not any(_involves(k, key) for k in _keys_in(flow.forwarded, loop))

    def _message(self, mf: ModeFlow, key: str, site: EvalSite, steps: List[Step]) -> str:
        step = min(steps, key=lambda s: (len(s.via), mf.line(s.inner), mf.line(s.node), s.shown))
        eval_line = mf.line(site.eval_node)
        site_line = mf.line(site.node)
        step_line = mf.line(step.inner)
        where = f"`{site.shown}` on line {eval_line}" + (f" in `{site.via[-1]}()`" if site.via else "")
        if site.elsewhere:  # the switch is in another file: name where
            where = f"the switch on {site.elsewhere}"
        if site.via:
            first = f"`{mf.code(site.node)}` leaves `{key}` in eval mode ({where})"
        else:
            first = f"`{site.shown}` puts `{key}` in eval mode"
        step_where = f"`{step.shown}` on line {step_line}" + (f" (in `{step.via[-1]}()`)" if step.via else "")
        step_line_here = mf.line(step.node)
        when = "runs again in the next iteration" if step_line_here <= site_line else "runs later in the loop"
        return (
            f"{first} and nothing calls `{key}.train()` before {step_where} {when}: "
            f"from then on `{key}` trains with dropout disabled and batch norm frozen on its running "
            f"statistics; call `{key}.train()` at the start of each epoch (or right after evaluating)"
        )

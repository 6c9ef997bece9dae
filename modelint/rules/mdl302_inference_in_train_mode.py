from __future__ import annotations

import builtins
import re
from typing import Dict, FrozenSet, List, Optional, Set, Tuple

import libcst as cst

from modelint.analysis import inference
from modelint.analysis.routines import evaluation_like_name
from modelint.analysis.calls import callee_name
from modelint.analysis.classes import is_decorated_with
from modelint.analysis.context import dotted
from modelint.analysis.walk import descendants, preorder_and_parents
from modelint.analysis.modeflow import (
    ENTRY,
    half_forward,
    runs_model,
    TRAIN,
    TRAINED,
    UNKNOWN,
    Created,
    EvalSite,
    ModeFlow,
    ScopeFlow,
    State,
    eval_on_every_path,
    for_context,
    get,
    peel,
)
from modelint.analysis.keysensitivity import KeySensitivity, bound_expr, held_attribute
from modelint.analysis.modemodel import loss_and_optimizer
from modelint.analysis.optimized import builds_optimizer_over
from modelint.rules.base import Rule, measured_set6, measured_sets_8_9, measured_sets_10_11, measured_set12, measured_set13, measured_set14, measured_sets_15_16, remeasured_2026_12_02, remeasured_2026_12_03, measured_set17, measured_set18, measured_set19, measured_upstream19, measured_upstream18, measured_upstream17, measured_set20, measured_upstream20

# Parameter names that say "this is a model" (`model`, `net`, `student_model`, `backbone`, `resnet`).
# Python's own callables (`enumerate(val_loader)`, `len(test_loader)`, `next(it)`): never a model.
_BUILTINS = frozenset(dir(builtins))


def _model_like(key: str, tokens) -> bool:
    """A callee that may be the trained model: switched or trained in this scope, created here as a
    module, or named as a model. A name with none of these (`mel_spectrogram(...)`, `save_sample(...)`,
    an imported function) was only *called* before the step, which does not make it a model: the
    held-out check would otherwise take every function called in a training loop for one."""
    if key.split(".")[0] in _BUILTINS:
        return False
    if tokens & {TRAIN, TRAINED} or any(isinstance(t, Created) for t in tokens):
        return True
    return bool(_MODEL_PARAM.search(key.split(".")[-1]))


_MODEL_PARAM = re.compile(
    r"(^|_)(model|net|network|encoder|decoder|classifier|backbone|policy|generator|discriminator|detector|"
    r"predictor|unet|vae|student|actor|critic|regressor|segmenter)s?(_|$|\d)|(model|net)$",
    re.IGNORECASE,
)
# the origins after which a model is in training mode for sure: built here (its weights loaded or not)
_FRESH = ("construct", "factory", "load_state_dict")
_CREATED = {
    "construct": "built by",
    "load": "loaded by",
    "hub": "loaded by",
    "factory": "built by",
    "load_state_dict": "loaded by",
}


# Calls that may build or load a model (besides class constructors, spelled in CapWords).
_CREATING_NAMES = frozenset({"load", "load_state_dict", "create_model", "get_model", "from_pretrained"})
# CapWords calls that build no model: exceptions and warnings (`raise ValueError(...)` made 230 of
# transformers' config checks named `validate_*` look like evaluation code that builds a model)
_NOT_A_MODEL = re.compile(r"(Error|Exception|Warning)$")


_EVAL_CLASS = re.compile(r"^_?(Test|Eval|Valid|Predict|Infer)", re.IGNORECASE)


def mode_sensitivity(ctx, expr) -> str:
    """"yes" / "no" / "unknown": can the model built by `expr` compute differently in train and
    eval mode (helper i14b's `analysis/sensitivity.py`; "unknown" until it is there)."""
    ask = getattr(ctx, "mode_sensitivity", None)
    return ask(expr).answer if ask is not None else "unknown"


def _runs_in_scope(flow: ScopeFlow, key: str) -> bool:
    """The scope runs `key` (or a key of the same root object) forward outside no_grad."""
    root = key.split(".")[0]
    return any(k == key or k.split(".")[0] == root for k, _ in flow.forwarded)


def _fresh_origin(mf, tokens) -> Optional[Created]:
    """The latest origin when every path brings the model as built here, its weights loaded or not,
    and never switched or trained since (`_FRESH`): it is in training mode for sure."""
    if not tokens or not all(isinstance(t, Created) and t.kind in _FRESH for t in tokens):
        return None
    return max(tokens, key=lambda t: mf.line(t.node))


def _is_tokens_evaluated(tokens) -> bool:
    """Some path put it in eval mode, restored an unknown mode, or chose training mode on purpose."""
    return any(isinstance(t, EvalSite) or t is UNKNOWN or t is TRAIN for t in tokens)


def _names_in(expr: cst.CSTNode) -> List[str]:
    """Plain names read in an argument (`held_batch[0]` -> [`held_batch`]), not attribute names."""
    if isinstance(expr, cst.Name):
        return [expr.value]
    if isinstance(expr, cst.Subscript):
        return _names_in(expr.value)
    if isinstance(expr, cst.Attribute):
        return _names_in(expr.value)
    if isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute):
        return _names_in(expr.func.value)  # `held_x.to(device)`
    return []


# A sequence-to-sequence model restored from a checkpoint and decoded step by step, the caller's end
# left open: VALID switches it to eval, INVALID forgets.
_SEQ2SEQ = """
import torch
from torch import nn

class Encoder(nn.Module):
    def __init__(self, width, p):
        super().__init__()
        self.layer = nn.TransformerEncoderLayer(width, 4, dropout=p)

    def forward(self, x):
        return self.layer(x)

class Seq2Seq(nn.Module):
    def __init__(self, encoder, decoder, head):
        super().__init__()
        self.encoder, self.decoder, self.head = encoder, decoder, head

    def encode(self, src):
        return self.encoder(src)

    def decode(self, memory, ys):
        return self.head(self.decoder(ys + memory))

def build_seq2seq(width, p=0.1):
    return Seq2Seq(Encoder(width, p), Encoder(width, p), nn.Linear(width, width))

def beam_search(model, tokenizer, src, steps):
    memory = model.encode(src)
    ys = src[:, :1]
    for _ in range(steps):
        best = model.decode(memory, ys)[:, -1:].argmax(-1)
        ys = torch.cat([ys, best], 1)
    return tokenizer.decode(ys[0])

def show_translations(model, tokenizer, batches):
    for src in batches:
        print(beam_search(model, tokenizer, src, 20))

def demo(path, tokenizer, batches):
    model = build_seq2seq(64)
    model.load_state_dict(torch.load(path))
"""

# A freshly built model with dropout, for the examples of a step's forward in a routine named `test_*`.
_HOLDER = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(8, 8), nn.BatchNorm1d(8), nn.Dropout(0.5), nn.Linear(8, 2))

    def forward(self, x):
        return self.body(x)


def fit(model, loader, opt):
    for x, y in loader:
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()


def test(model, loader):
    correct = 0
    for x, y in loader:
        correct += (model(x).argmax(1) == y).sum().item()  # expect: MDL302
    return correct


class Runner:
    def __init__(self, train_loader, test_loader):
        self.model = Net()
        self.opt = torch.optim.Adam(self.model.parameters())
        self.train_loader, self.test_loader = train_loader, test_loader

    def epoch(self):
        fit(self.model, self.train_loader, self.opt)
        return test(self.model, self.test_loader)
"""

_STEP_NET = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(8, 8), nn.Dropout(0.1), nn.Linear(8, 1))

    def forward(self, x):
        return self.body(x)
"""


class InferenceInTrainMode(Rule):
    code = "MDL302"
    name = "inference-in-train-mode"
    level = "warning"
    default = False  # issue 15's measuring set: see the end of `what`
    # Default on. (An earlier version also checked parameters in methods and in functions without an
    # evaluation-like name; on the real-code corpus those findings were training-time no_grad passes
    # and helpers whose callers in other files switch modes, so the parameter case was narrowed to
    # plain `evaluate(model, ...)`-style functions; see the docs below and tests/test_callsite_rules.py.)
    summary = "A model is run for inference under `torch.no_grad()` without `model.eval()`."
    what = (
        "Reports a call of a model (`model(x)`, `model.forward(x)`, `model.generate(...)`, a forward variant "
        "`model.forward_features(x)` / `model.set_forward(x)`) that runs in "
        "training mode in inference code: under `torch.no_grad()` / `torch.inference_mode()` (a `with` "
        "block or a decorator; also `torch.set_grad_enabled(False)`), or anywhere in a function whose "
        "name starts with `eval`, `valid`, `test`, `predict`, `infer` or `inference`, or ends with `_eval`, "
        "`_evaluate`, `_evaluation`, `_validate` or `_validation` without a training word before it (not "
        "`train_and_evaluate`; not `infer_shape`-"
        "style names, where \"infer\" means \"deduce\"). Two kinds of model are checked. (1) A model "
        "built or loaded in the same function (or the file's top-level script code): a module class of "
        "the project, a top-level function of the project that returns one it constructs and neither switches "
        "nor loads (`lib.models.gated(...)`), a mode-sensitive `torch.nn` class (dropout, batch norm, RNNs, transformer "
        "layers, or a `Sequential` holding one), `timm.create_model`, `torchvision.models.*`, "
        "`torch.hub.load`, or any model that `load_state_dict` (or OpenMMLab's `load_checkpoint(model, path)`) is called on there, also run through "
        "`MMDataParallel` (not a whole model "
        "unpickled by `torch.load`: it keeps the mode it was saved in, which the checked code does not show), when "
        "no `.eval()` / `.train(False)` on it reaches the call (directly, through an alias such as "
        "`m = model.to(device)`, or in a function of this file that it is passed to or returned from). "
        "(2) A parameter with a model-like name (`model`, `net`, `*_model`, `backbone`, `policy`, ...) "
        "or a module type annotation, of a plain function with an evaluation-like name (also an evaluation word after a one-word prefix, `dnn_test_model`, `run_test`, not `train_test` / `get_test`), called "
        "directly, when neither the function nor any caller in this file switches it to eval mode (a caller that hands it `self.model` of a plain holder class whose `__init__` builds that model, when nothing in the file switches that attribute, hands it a model in training mode) "
        "before the call, or when some caller hands it a model that it built there (its weights loaded with `load_state_dict` "
        "or not) and never switched (`net = build(cfg); net.load_state_dict(...); test(net)`: another caller's switch does "
        "not reach that call; also for an evaluation helper of another file, reported at the call) (callers are followed through their own parameters, and through attributes of them that are not a method's receiver: `validate(context)` handing `context.model` on is judged at `validate`'s callers, by what they pass as `context`; a caller that passes "
        "something whose mode cannot be told, e.g. the result of a call into another module, counts "
        "as switching it; when the function, or the outermost function of this file that hands it the model, "
        "has no caller in this file, sits in a script folder (no `__init__.py`: a package's function is public "
        "API, reported) and another checked file imports it (also by `from module import *`, and by the names of the folders "
        "above it, `from attention.train import evaluate`), its callers there are judged instead, at "
        "their call, as below; a dunder method such as an evaluator's `__call__` is run through its instances, which are not "
        "followed: it counts as switched; a top-level function nothing can call is not reported: its file is in a script folder (not a package) and runs as a "
        "script (a `__main__` block, a top-level loop, or a top-level call of its own functions, `print` or a mode "
        "switch), no checked file imports it, and nothing in the file names it, as when its calls are commented out). A wrapper module without mode-dependent layers of its own that keeps a "
        "model it is handed (`sampler = Sampler(ema_model, steps)` with `self.model = model`) counts as that "
        "model: reported when the model it was handed is mode-sensitive (\"yes\", or \"unknown\" while it is "
        "bound to a module construction or a `copy.deepcopy` of one, holds a model built, loaded or trained in "
        "the scope, or is named like a model) and not in eval on every path to the call "
        "(`net.eval()` before `sampler(x)` switches the wrong model); when every model it keeps is in eval on every "
        "path to the call (`elbo = SVI(model)`, then `model.eval()`), the wrapper's own flag switches nothing and it is not reported. Not reported: a parameter annotated with a checked class that is not a module "
        "(`detector: Detector`); a function of this file that is handed as an argument rather than called "
        "(`pool.starmap(evaluate_shard, jobs)`: its caller's switch is not followed); a forward whose only evals "
        "come from an `if` re-run by a loop around it (`for phase in (\"train\", \"val\"): if phase == \"train\": "
        "m.train() else: m.eval()`); models from `from_pretrained` (transformers' "
        "`PreTrainedModel.from_pretrained` and diffusers' `ModelMixin.from_pretrained` call "
        "`model.eval()` before returning; a checked class's own `from_pretrained` is read like any loader of the project: "
        "what it returns, in training mode when it builds the model and does not switch it); an explicit `model.train()` before the call (batch-norm "
        "recalibration runs under no_grad in training mode on purpose); `model.train(flag)` restoring "
        "a saved mode; `model.predict(...)` of high-level wrappers (stable-baselines3, skorch, flair "
        "switch modes inside `predict`); parameters of methods (the class that owns the loop "
        "switches modes, often in another file) and of functions without an evaluation-like name "
        "(training-time no_grad passes: distillation targets, EMA updates, DREAM); mode-free "
        "`torch.nn` layers (`Linear`, `Conv2d`, `LayerNorm`); `LightningModule` methods (Lightning "
        "switches modes around its hooks); and pytest's `test_*` functions in test suites (`test_*.py`, `*_test.py`, `tests/`: they "
        "build small models to check shapes and losses). Also reported: a model left in training mode by a "
        "training step and then run on held-out data (a test loop after the epoch's training loop, "
        "held-out batches every N steps, a neutrally named no_grad helper called with `val_*` / `test_*` "
        "data), a global model that an evaluation function runs through a function of the file (`eval_model` -> "
        "`sync_loss(g)` -> the script's frozen `syncnet`), methods of `Tester` / `Evaluator`-style classes, "
        "`model.generate(...)`, a method of the model's "
        "own module class that runs the module or a submodule its `__init__` builds under its own no_grad / "
        "inference_mode decorator without switching it (`model.get_embeddings(x)`; also through a helper of "
        "another file, `dataset_embeddings(model, test_loader)`), and "
        "`Variable(x, volatile=True)` (pre-0.4 inference). A model whose construction tree holds no "
        "mode-dependent layer (the sensitivity analysis answers \"no\"; it knows the layers of `torch.nn` and of "
        "PyTorch Geometric) is never reported; \"unknown\" "
        "(configured from outside, third-party classes) is; the answer follows same-model pass-through "
        "rebindings (`model = accelerator.prepare(model)`, `model, opt, dl = engine.make_private(module=model, "
        "...)`, `DDP(model)`, `torch.compile(model)`) and, for a parameter or a global, what the callers in "
        "this file pass; `self` in a method of a module class has that class's answer unless a checked class "
        "derives from it (then its callers decide); a plain wrapper object that keeps no argument named like a "
        "model (`KGModel(args, n_entities)`) has its class's answer. "
        "Not inference, so not reported (`analysis/inference.py`): a forward on synthetic input "
        "(`torch.zeros(1, 3, 32, 32)`, `torch.randn(...)`, also wrapped in a pre-0.4 `Variable(...)` and "
        "through a name every binding of which is one) of a model built in the same scope and neither trained nor given weights there (a smoke test); "
        "a forward whose result is read only for its shape (`out.shape`, `out.size(1)`, `len(out)`, also "
        "unpacked, `out, aux = net(x)`; outside a loop only the reads after the call count), unless the model "
        "was loaded or given weights before it (a demo that prints `embeddings.shape` of a trained model); a forward whose "
        "result is discarded (never read afterwards in its scope), before any training step of the scope and "
        "followed in it by an optimizer built over the model's `.parameters()` (`opt = Adam(model.parameters())`: "
        "lazy modules materialised before the optimizer collects them); a forward in `__init__` "
        "or in a function named to build or deduce something (`build_*`, `init*`, `setup*`, `make_layers`, "
        "`get_*_shape`: lazy-module initialisation, feature-size probes); a forward inside a `with` or under "
        "a decorator whose name says eval / inference (`with evaluating(model):`, `@eval_mode`, "
        "`model_eval(net)`; not the framework's `inference_mode`, which only turns off gradients), from "
        "any package. "
        "Also reported: held-out batches run every N steps inside the training loop (held-out data "
        "recognised through names bound from it, `batch = next(iter(val_loader)); model(batch[0])`), and a "
        "forward on held-out data after a training step of the same scope even when the training switch "
        "was `model.train(flag)`; a global model of a script (`net`) run by a top-level evaluation function "
        "(`def eval_training(epoch)`) that every caller in the file calls while the model is in training mode "
        "or as built, or by a neutrally named helper on held-out data or by a helper named for generation "
        "(`generate_samples`, `reconstruct`, `synthesize_*`, `sample_images`; not `sample_batch`) that runs it "
        "under no_grad, called after a training step on a model built in the caller and never switched; a model handed to an evaluation "
        "helper as an attribute of a namespace built in the caller (`SimpleNamespace(net=model)`); and a "
        "model returned by a loader helper of another file that builds a network and loads weights into it "
        "(`net = restore_from(path)`; a helper that calls `.eval()` before returning is trusted); an "
        "evaluation helper of another file (`validate(model, val_loader)`, `compute_val_loss(...)`: an "
        "evaluation-like or held-out name, or held-out arguments) that runs its model argument without "
        "switching it, under its own no_grad or under the caller's (or neither, when the helper's name says evaluation), called where a training step left the "
        "model in training mode, also through a function of its own file that it hands the model to "
        "(`test_all_cases(net, cases)` calling `evaluate_case(net, case)` under no_grad) (reported at the call; a callable handed a loss and an optimizer, "
        "`loss_scaler(loss, optimizer)`, counts as a training step); and an evaluation helper of this file "
        "when one caller passes the model right after a training step, whatever another caller passes. "
        "Also reported without no_grad: a forward in a loop over held-out data (`for x, y in test_loader:`) "
        "that runs no training step itself, after a training step of the same scope, on a model built or "
        "loaded there that no path switches to eval (a linear probe whose backbone is frozen only by "
        "`requires_grad = False`: that freezes weights, not batch-norm statistics); and, under no_grad, "
        "a test after training when the only `eval()` reaching it came before every training step (an "
        "evaluation of a resumed checkpoint before the epoch loop). An evaluation helper of another file "
        "is followed when its name starts with, or holds after its first word, an evaluation word "
        "(`validate`, `compute_val_loss`, `run_validation`), as its caller may hold the no_grad. "
        "A step-by-step decoding routine counts as an evaluation by name (`greedy_decode`, `beam_search`), "
        "and `model.encode(...)` / `model.decode(...)` on a receiver named like a model run it (not "
        "`tokenizer.decode(ids)`); a freshly built or restored model is followed into it through up to two "
        "helpers that only hand it on (`show_examples(model)` calling `greedy_decode(model, ...)`). What a "
        "project factory builds is judged by its returns and by the parts its body builds "
        "(`make_layers(cfg)` returning `nn.Sequential(*layers)`, `make_model()` returning "
        "`EncoderDecoder(Encoder(...), ...)`)."
    )
    what += (
        " "
        'Off by default: on the measuring set (26 code bases never used to develop it: 17 repositories '
        'with training scripts and 9 model packages; `bench/precision.py`, verdicts with reasons in '
        '`bench/verdicts/measuring.tsv`) it reached 0% real-or-deliberate (22 findings, all false: shape '
        'smoke tests of untrained networks, no_grad forwards that initialise lazy modules, third-party '
        'models without mode-dependent layers, eval decorators and eval contexts defined in other '
        "packages; it found none of the set's real inference-in-train-mode bugs either), below the 95% a "
        'default rule needs. (Measured before the exemptions above were added; the measuring set has not '
        'been re-run on them.) Select it with `--select` or `extend-select`.'
    )
    what += remeasured_2026_12_02(
        set3=('no finding, and it missed a test loop run in train mode '
              '(`bench/verdicts/measuring3-misses.md`)'),
        set2=('5 findings: 3 real, 2 deliberate (100%, after a fix made on seeing that set)'),
    )
    what += remeasured_2026_12_03(set4="5 findings: 1 real, 4 false (20%)", set5="1 finding, false (0%)")
    what += measured_set6("2 findings, both false (0%), and missed the one real inference-in-train-mode bug of the set (a sampler that reloads its prior and samples without `.eval()`)")
    what += measured_sets_8_9("10 findings: 7 real, 3 false (70%)", "8 findings, all false (0%: a non-module detector, a logger with train()/eval() methods, a phase loop, a helper mapped over a pool after eval), and missed the set's real inference-in-train-mode bugs (an active-learning sampler, a GAN's conditional sampling)")
    what += measured_sets_10_11("1 finding, false (a critic's training inputs made under no_grad)",
                                "8 findings, all deliberate (transductive batch norm in a few-shot relation network) and no real bug")
    what += measured_set12("no finding", "two are a frozen expert network run in training mode by the training step "
                           "and by the evaluation through a helper, and one a validation loop in training mode; after the "
                           "run (tuning changes: a model built by a project factory function, a global model an evaluation "
                           "runs through a helper) this rule reports the validation loop and both evaluations, not the "
                           "expert's training-time use")
    what += measured_set13("2 findings, both false (0%: a wrapper module, `SVI(model)`, whose only submodule is a model the loop had put in eval, "
                          "no longer reported) and no real bug; it missed one found by reading, a freshly built model given a checkpoint "
                          "and handed to `test()` without `eval()`, now reported (the caller rule above)")
    what += measured_set14("2 findings, both false (0%: an evaluator object's method reached through its `__call__` after the caller's `net.eval()`; an uncalled evaluation function of a script folder imported by its folder's name, whose project model has no mode-dependent layer), and no real bug; both patterns are no longer reported (set 14 is a tuning set since)")
    what += measured_sets_15_16("no finding, while reading found 2 real bugs it missed (a decoding helper on a reloaded model, reported since; a forward that switches its own mode)",
                                "7 findings, all false (0%: a style network with instance norm only, 4 times, and a predictor's training loss, since no longer reported; a pose network whose mode only changes the form of an output it discards, twice), and no real bug")
    what += measured_set17("6 findings, none real: 1 deliberate (pix2pix's generator run in training mode at test time, as its paper prescribes), 5 false (a speed benchmark of training steps in routines named `test_*`, three times; a model class handed in as a parameter and called to build the model; an evaluation helper that nothing calls); 4 of the false ones are not reported since, as general cases: the forward of a training step (on every pass of its level, a backward or optimizer step after it there) whatever the routine is called, and a parameter called to build the model that is then loaded or switched")
    what += measured_upstream17('2 as MDL302: a validation routine without `eval()`, reported at its call, and a validation loop that switched to `train()`. It missed 5 of the 6 missing `eval()`s: a model kept by a plain demo class around a torchvision backbone, twice (the backbone answered "no" for mode sensitivity: fixed since); evaluation routines with neutral names and no `no_grad`, twice; an evaluation helper of another folder without `no_grad`. Its other findings on those trees were 6 real (the same bug in other scripts) and 4 false')
    what += measured_set18("4 findings: 1 real (a DCGAN generation script that samples its loaded batch-norm generator in training mode), 1 deliberate (the DCGAN tutorial's progress snapshot on fixed noise inside the training loop; a judgement call), 2 false (a mel-spectrogram wrapper of torchaudio's transform, mode-free, fixed since; an FID wrapper whose constructor puts its Inception network in eval itself)")
    what += measured_upstream18("2 of the 13 missing `eval()`s (an inpainting network run in training mode in its prediction script and in its training snapshot), and missed 11: models held by plain wrapper objects or dataclass fields, evaluation routines with neutral names and no no_grad, a model's forward of itself inside its own `predict`, factories behind registries; its other findings there were 3 real and 1 false (a model its influence module's constructor puts in eval)")
    what += measured_set19("3 findings, none real: 1 deliberate (a GAN's per-epoch progress samples on fixed noise; a judgement call, as in set 18), 2 false (a wrapper whose wrapped model the validation switches with `net.module.model.eval()`; an evaluation function nothing calls, in a script that puts its model in eval)")
    what += measured_upstream19('none of the 10 missing `eval()`s (`bench/verdicts/upstream19-misses.md`: models kept by holder objects and forwards through the model\'s own methods, 4 each; since then a wrapped signature that dropped functions from the summaries, a project\'s own `from_pretrained` and OpenMMLab\'s checkpoint loader are read, and the list catches 1 of the 10 as tuning)')
    what += measured_set20('5 findings, all false (0%: 4 demo scripts of mode-free RL networks whose six script folders each have a `models.py`, so the bare import did not resolve to the sibling and the loaded model\'s sensitivity was unknown; a mode-free autoencoder run through a parameter with no caller)')
    what += measured_upstream20('none of the 7 missing `eval()`s; its 5 other findings there were all false (models that are in eval mode at every real caller, hold dropout 0, or are test fakes)')
    why = (
        "`torch.no_grad()` and `torch.inference_mode()` only turn off gradient tracking; they do not "
        "switch the model to eval mode. Under them a model in training mode still applies dropout "
        "(random, down-weighted predictions that change from run to run) and batch norm still "
        "normalises each batch with its own statistics and overwrites its running averages with "
        "inference data, so even later evaluations are affected. A new `nn.Module` starts in "
        "training mode, and `load_state_dict` / `torch.load` do not change the mode."
    )
    example = (
        "def predict(path, images):\n"
        "    model = ResNet()\n"
        "    model.load_state_dict(torch.load(path))\n"
        "    with torch.no_grad():\n"
        "        return model(images).argmax(1)\n"
        "\n"
        "class ResNet(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.bn = nn.BatchNorm2d(64)\n"
    )
    use_instead = (
        "def predict(path, images):\n"
        "    model = ResNet()\n"
        "    model.load_state_dict(torch.load(path))\n"
        "    model.eval()\n"
        "    with torch.no_grad():\n"
        "        return model(images).argmax(1)\n"
        "\n"
        "class ResNet(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.bn = nn.BatchNorm2d(64)\n"
    )
    # ("_val" / "val_": a helper named for held-out data, `compute_val_loss`, defined in another file)
    triggers = ("no_grad", "inference_mode", "set_grad_enabled", "eval", "valid", "test", "predict", "infer",
                "_val", "val_", "greedy", "beam",
                # the held-out names `inference.held_out_text` takes with the data word glued on
                "valloader", "valset", "valdata", "valbatch", "valdl", "valds", "valiter")
    options_schema = {"check-parameters": True}
    option_docs = {
        "check-parameters": "Also report inference on a model-like parameter of an evaluation-like function "
        "(`def evaluate(model, loader)`) that neither the function nor its callers in the file switch to eval; "
        "set to false when callers in other files switch modes.",
    }
    fix_safety = (
        "No fix: the `.eval()` call belongs before the inference, and the matching `.train()` (if training "
        "follows) where training resumes; both depend on the code around it."
    )

    VALID = (
        # a global model that the evaluation helper switches to eval itself, called where the script
        # just loaded weights (pytorch-cifar100's `eval_training`; near miss in INVALID: a helper that
        # runs the global in the mode it finds it in)
        """
import torch
from torch import nn

net = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
test_loader = []

@torch.no_grad()
def eval_training():
    net.eval()
    return [net(x).argmax(1) for x in test_loader]

def log_scores():
    return eval_training()

if __name__ == "__main__":
    net.load_state_dict(torch.load("best.pt"))
    acc = eval_training()
    more = log_scores()
    print(acc, more)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    for x in []:
        net.train()
        net(x).sum().backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        final = [net(x) for x in test_loader]
""",
        # a frozen expert of the script's global scope put in eval where it is built, run by the
        # evaluation through a helper (near miss in INVALID: without the eval)
        """
import torch
from torch import nn

class Expert(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8))

    def forward(self, x):
        return self.body(x)

syncnet = Expert()
for p in syncnet.parameters():
    p.requires_grad = False
syncnet.eval()

def sync_loss(g):
    return syncnet(g).mean()

def eval_model(gen, test_loader):
    gen.eval()
    with torch.no_grad():
        return [sync_loss(gen(x)).item() for x in test_loader]

if __name__ == "__main__":
    gen = Expert()
    opt = torch.optim.Adam(gen.parameters())
    for x in []:
        gen.train()
        sync_loss(gen(x)).backward()
        opt.step()
    eval_model(gen, [])
""",
        # a method of the model's class decorated with inference_mode, called after `model.eval()`;
        # one that switches to eval itself; a no_grad method that runs none of the module's layers,
        # only another method (near miss in INVALID: the first call without the eval)
        """
import torch
from torch import nn

class Tabular(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(8, 8), nn.BatchNorm1d(8), nn.Dropout(0.1))

    def forward(self, x):
        return self.body(x)

    @torch.inference_mode()
    def embed(self, x):
        return self.body(x)

    @torch.no_grad()
    def predict(self, x):
        self.eval()
        return self.body(x).argmax(-1)

    @torch.no_grad()
    def restore(self, path):
        self._load(path)

def fit(model, loader, test_loader, opt):
    for x in loader:
        model.train()
        model(x).sum().backward()
        opt.step()
    model.eval()
    codes = [model.embed(x) for x in test_loader]
    model.train()
    return codes, [model.predict(x) for x in test_loader]

def test_checkpoint(model, path, batch):
    model.restore(path)
    model.eval()
    return model(batch)
""",
        # one body for both phases: the eval arm's forward sees the eval of the same iteration; a
        # scorer annotated with a checked class that is not a module is no model; a helper handed to a
        # pool runs where the caller switched (near misses in INVALID: the test loop after the epoch
        # loop's training when the only eval came before it; the same scorer unannotated)
        """
import torch
from torch import nn
from multiprocessing import Pool

class Scorer:
    def __init__(self, net):
        self.net = net

    def __call__(self, x):
        return self.net(x).softmax(1).max(1).values

def run_phases(net, loaders, opt, epochs):
    for epoch in range(epochs):
        for phase in ("train", "dev"):
            if phase == "train":
                net.train()
            else:
                net.eval()
            for x, y in loaders[phase]:
                if phase == "train":
                    loss = nn.functional.cross_entropy(net(x), y)
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                else:
                    with torch.no_grad():
                        print(net(x).argmax(1).eq(y).float().mean())

def evaluate_scores(detector: Scorer, loader):
    return [detector(x) for x, _ in loader]

def evaluate_shard(model, shard):
    with torch.no_grad():
        return [model(x).argmax(1) for x in shard]

def evaluate_parallel(model, shards):
    model.eval()
    with Pool(4) as pool:
        return pool.starmap(evaluate_shard, [(model, s) for s in shards])
""",
        # the near miss of the last-word evaluation in INVALID: the caller switches the reloaded model;
        # and a `generate_*` helper method is not a forward
        """
import torch
from torch import nn

class Relation(nn.Module):
    def __init__(self):
        super().__init__()
        self.score = nn.Sequential(nn.Linear(16, 8), nn.BatchNorm1d(8), nn.Linear(8, 1))

    def set_forward(self, z):
        return self.score(z)

    def generate_mask(self, n):
        return torch.ones(n, n).tril()

def episode_evaluation(model, episodes):
    return [model.set_forward(z).argmax() for z in episodes]

def main(path, episodes):
    model = Relation()
    model.load_state_dict(torch.load(path))
    with torch.no_grad():
        mask = model.generate_mask(4)
    model.eval()
    print(episode_evaluation(model, episodes), mask)
""",
        # the near miss of the generation helper in INVALID: the caller switches the model first; and
        # a data-drawing helper (`sample_batch`) is not a generation
        """
import torch
from torch import nn

class AutoEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ConvTranspose2d(8, 3, 3))

    def forward(self, x):
        return self.net(x)

def fit_epoch(model, loader, opt):
    model.train()
    for x in loader:
        opt.zero_grad()
        (model(x) - x).pow(2).mean().backward()
        opt.step()

def reconstruct(model, x):
    with torch.no_grad():
        return model(x)

def sample_batch(model, pool):
    with torch.no_grad():
        scores = model(pool).mean((1, 2, 3))
    return pool[scores.argsort()[:4]]

def main(loader, shown, pool, epochs):
    model = AutoEncoder()
    opt = torch.optim.Adam(model.parameters())
    for epoch in range(epochs):
        fit_epoch(model, loader, opt)
        hard = sample_batch(model, pool)
        model.eval()
        grid = reconstruct(model, shown)
""",
        # the near miss of the wrapper case in INVALID: the averaged copy the wrapper runs is put in
        # eval; and a wrapper handed a loop count only
        """
import copy
import torch
from torch import nn

class Tagger(nn.Module):
    def __init__(self, p):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(8, 8), nn.Dropout(p), nn.Linear(8, 3))

    def forward(self, x):
        return self.body(x)

class Beam(nn.Module):
    def __init__(self, model, width):
        super().__init__()
        self.model = model
        self.width = width

    def forward(self, x):
        return self.model(x).topk(self.width).indices

class Noise(nn.Module):
    def __init__(self, steps):
        super().__init__()
        self.steps = steps

    def forward(self, x):
        return x + torch.zeros_like(x) * self.steps

def fit(batches, p, steps):
    tagger = Tagger(p)
    averaged = copy.deepcopy(tagger)
    beam = Beam(averaged, width=2)
    noise = Noise(steps)
    opt = torch.optim.SGD(tagger.parameters(), lr=0.1)
    for i, (x, y) in enumerate(batches):
        opt.zero_grad()
        nn.functional.cross_entropy(tagger(x), y).backward()
        opt.step()
        if i % 50 == 0:
            averaged.eval()
            with torch.no_grad():
                print(beam(noise(x)))
""",
        # after training: a test loop that adapts on the test data (it steps), one after `eval()`,
        # and an evaluation whose switch comes after the steps on a branch of its own
        """
import torch
import torchvision

def adapt_and_score(train_dl, holdout_dl):
    encoder = torchvision.models.resnet50(num_classes=5)
    sgd = torch.optim.SGD(encoder.parameters(), lr=0.01)
    for imgs, target in train_dl:
        torch.nn.functional.cross_entropy(encoder(imgs), target).backward()
        sgd.step()
    for imgs, _ in holdout_dl:
        encoder(imgs).logsumexp(1).mean().backward()
        sgd.step()
    encoder.eval()
    return [encoder(imgs) for imgs, _ in holdout_dl]

def run(net, opt, batches, dev_batches, rank):
    for xb, yb in batches:
        net(xb).sum().backward()
        opt.step()
    if rank == 0:
        net.eval()
    with torch.no_grad():
        if rank == 0:
            for xb, yb in dev_batches:
                print(net(xb).mean())
""",
        """
import torch
from torch import nn
from transformers import AutoModel

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.drop = nn.Dropout(0.1)

def predict(path, x):
    model = Net()
    model.load_state_dict(torch.load(path))
    model.eval()
    with torch.no_grad():
        return model(x)

@torch.no_grad()
def embed(texts):
    model = AutoModel.from_pretrained("bert-base-uncased")  # from_pretrained returns eval mode
    return model(**texts).last_hidden_state

def evaluate(model, loader):
    model.eval()
    with torch.inference_mode():
        return [model(x) for x in loader]
""",
        # the caller switches the argument to eval mode; a helper does it; restore a saved mode
        """
import torch

def run_inference(model, batch):
    with torch.no_grad():
        return model(batch)

def main(model, batch):
    model.eval()
    return run_inference(model, batch)

def prepare(net):
    net.eval()
    return net

def score(net, x):
    prepare(net)
    with torch.no_grad():
        return net(x)

def probe(model, x):
    was_training = model.training
    model.eval()
    with torch.no_grad():
        shape = model(x).shape
    model.train(was_training)
    return shape
""",
        # BN recalibration: training mode under no_grad on purpose; mode-free torch.nn layers;
        # a callable that is not a model; Lightning hooks
        """
import torch
from torch import nn
import pytorch_lightning as pl

def recalibrate_bn(model, loader):
    model.train()
    with torch.no_grad():
        for x in loader:
            model(x)

def test_linear_shape():
    layer = nn.Linear(3, 4)
    with torch.no_grad():
        assert layer(torch.zeros(2, 3)).shape == (2, 4)

def evaluate(loss_fn, preds, targets):
    with torch.no_grad():
        return loss_fn(preds, targets)

class Lit(pl.LightningModule):
    def validation_step(self, batch, idx):
        model = self.build()
        with torch.no_grad():
            return model(batch)
""",
        # not inference on data: a smoke test of an untrained network, a shape probe, build code,
        # an eval context of another package; a mode-free model behind pass-through wrappers
        """
import torch
from torch import nn
from torch.autograd import Variable
from torchutils import evaluating

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.bn = nn.BatchNorm1d(16)
        with torch.no_grad():
            self.width = self.bn(torch.zeros(2, 16)).shape[1]

class Plain(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 16)

def test_net():
    net = Net()
    x = Variable(torch.randn(2, 16))
    print(net(x))

def smoke():
    net = Net()
    with torch.no_grad():
        out = net(torch.zeros(2, 16))
    print(out.shape)

def predict(path, loader):
    net = Net()
    net.load_state_dict(torch.load(path))
    with evaluating(net), torch.no_grad():
        return [net(x) for x in loader]

def fit(accelerator, loader, val_loader):
    model = Plain()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model, opt = accelerator.prepare(model, opt)
    model = torch.compile(model)
    model.train()
    for x in loader:
        model(x).sum().backward()
        opt.step()
    with torch.no_grad():
        return [model(x) for x in val_loader]
""",
        # the result read only for its shape, unpacked, the name used before for something else;
        # smoke tests that rebind the synthetic input for each block they build
        """
import torch
from torch import nn

class Stem(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.bn = nn.BatchNorm2d(c)

    def forward(self, x):
        return self.bn(x), [x]

def log_output_sizes(path, images):
    enc = Stem(8)
    enc.load_state_dict(torch.load(path))
    feats = images.flatten(1)
    print(feats.mean())
    with torch.no_grad():
        feats, skips = enc(images)
    print(feats.shape, len(skips))

def test_stem_then_head():
    x = torch.randn(2, 8, 16, 16)
    stem = Stem(8)
    out, _ = stem(x)
    x = torch.randn(2, 3, 16, 16).cuda()
    wide = Stem(3)
    print(wide(x))
""",
        # a discarded no_grad forward that materialises lazy layers before the optimizer is built
        """
import torch
from torch import nn

class Head(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.LazyLinear(4)
        self.drop = nn.Dropout(0.2)

    def forward(self, x):
        return self.drop(self.fc(x))

def fit(first_batch, loader):
    head = Head()
    with torch.no_grad():
        head(first_batch)
    opt = torch.optim.SGD(head.parameters(), lr=0.1)
    for x in loader:
        opt.zero_grad()
        head(x).sum().backward()
        opt.step()

net = Head()
sample = next(iter(loader))
with torch.no_grad():
    out = net(sample)
opt = torch.optim.Adam(net.parameters())

def step(x):
    net.train()
    out = net(x)
    out.sum().backward()
    opt.step()
""",
        # graph layers of a library the profile has read: no dropout, no norm (PyTorch Geometric)
        """
import torch
from torch import nn
from torch_geometric.nn import GCNConv, GATConv

class Encoder(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.conv = GCNConv(d, 32)
        self.att = GATConv(32, 32, heads=4)
        self.out = nn.Linear(32, 3)

    def forward(self, x, edges):
        return self.out(self.att(self.conv(x, edges).relu(), edges))

def predict(path, graph):
    enc = Encoder(graph.num_features)
    enc.load_state_dict(torch.load(path))
    with torch.no_grad():
        return enc(graph.x, graph.edge_index).argmax(-1)
""",
    )
    VALID += (
        # a head whose optional batch norm is left off (a constructor flag with a falsy default) holds
        # no mode-dependent layer: the probe runs it the same way in either mode
        """
import torch
from torch import nn

class Head(nn.Module):
    def __init__(self, dim, classes, use_bn=False):
        super().__init__()
        self.fc = nn.Linear(dim, classes)
        if use_bn:
            self.bn = nn.BatchNorm1d(classes)

    def forward(self, x):
        return self.fc(x)

def probe(feats, labels):
    head = Head(feats.shape[1], 10)
    opt = torch.optim.SGD(head.parameters(), lr=0.1)
    for _ in range(100):
        loss = nn.functional.cross_entropy(head(feats), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return (head(feats).argmax(1) == labels).float().mean()
""",
    )
    VALID += (
        # a plain helper object of this file scores with the model: after the model's eval(), or on the
        # training batches (a training-time statistic); near miss in INVALID: on held-out batches
        """
import torch

class Scout:
    def scores(self, net, batches):
        with torch.no_grad():
            return [net(x).amax() for x in batches]

def rounds(net, opt, pool, holdout_pool, n):
    scout = Scout()
    for _ in range(n):
        net.train()
        for x in pool:
            opt.zero_grad()
            net(x).sum().backward()
            opt.step()
        scout.scores(net, pool)
        net.eval()
        scout.scores(net, holdout_pool)
""",
    )
    VALID += (
        # inside a training iteration the no_grad forward makes another network's training inputs
        # (fakes for the discriminator's steps): part of training, in the generator's training mode
        """
import torch
from torch import nn

def adversarial(noise_batches, real_batches, rounds):
    gen = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8))
    disc = nn.Linear(8, 1)
    d_opt = torch.optim.SGD(disc.parameters(), lr=0.01)
    for z, real in zip(noise_batches, real_batches):
        with torch.no_grad():
            fake = gen(z)
        for _ in range(rounds):
            d_loss = disc(fake).mean() - disc(real).mean()
            d_opt.zero_grad()
            d_loss.backward()
            d_opt.step()
""",
    )
    VALID += (
        # a loss module that keeps the network it scores (`self.net = net`, no layer of its own), run on
        # held-out batches after the network's eval(): the layers whose mode matters are in eval; the
        # near miss, without the eval(), is in INVALID
        """
import torch
from torch import nn

class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(16, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 4))

    def forward(self, x):
        return self.body(x)

class MarginLoss(nn.Module):
    def __init__(self, net, margin=1.0):
        super().__init__()
        self.net = net
        self.margin = margin

    def forward(self, x, y):
        scores = self.net(x)
        return (self.margin - scores.gather(1, y[:, None]) + scores).clamp(min=0).mean()

def fit(train_batches, val_batches, epochs):
    clf = Classifier()
    criterion = MarginLoss(clf, margin=0.5)
    opt = torch.optim.Adam(clf.parameters())
    for _ in range(epochs):
        clf.train()
        for x, y in train_batches:
            opt.zero_grad()
            criterion(x, y).backward()
            opt.step()
        clf.eval()
        total = 0.0
        for x, y in val_batches:
            total += criterion(x, y).item()
        print(total)
""",
    )
    VALID += (
        # an evaluation helper that does not switch, with two callers that both switch first: after
        # training, and after restoring a checkpoint into a freshly built model (near miss in INVALID:
        # the restoring caller forgets `eval()`)
        """
import torch
from torch import nn

class Tagger(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.body = nn.Sequential(nn.Embedding(100, width), nn.Dropout(0.2), nn.Linear(width, 5))

    def forward(self, tokens):
        return self.body(tokens)

def make_tagger(cfg):
    return Tagger(cfg["width"])

def evaluate(model, batches):
    hits = 0
    for tokens, tags in batches:
        hits += (model(tokens).argmax(-1) == tags).sum().item()
    return hits

def fit(cfg, batches, dev_batches):
    tagger = make_tagger(cfg)
    opt = torch.optim.Adam(tagger.parameters())
    for tokens, tags in batches:
        opt.zero_grad()
        nn.functional.cross_entropy(tagger(tokens).flatten(0, 1), tags.flatten()).backward()
        opt.step()
    tagger.eval()
    return evaluate(tagger, dev_batches)

def score_checkpoint(cfg, path, dev_batches):
    tagger = make_tagger(cfg)
    tagger.load_state_dict(torch.load(path))
    tagger.eval()
    return evaluate(tagger, dev_batches)
""",
    )
    VALID += (
        # a decoding helper reached through a helper that hands its model on, from a caller that
        # restores a checkpoint and switches to eval first; a tokenizer's `decode` runs no model
        # (near miss in INVALID: the caller forgets `eval()`)
        _SEQ2SEQ + """    model.eval()
    show_translations(model, tokenizer, batches)
""",
    )
    VALID += (
        # the forward of a training step, in a routine named like a test: it runs on every pass of its
        # level and a backward / optimizer step follows there (a timing benchmark of one step; near miss
        # in INVALID: a probe before the training loop, and a periodic one inside it)
        _STEP_NET + """

def test_step_time(batch, target, steps=100):
    net = Net()
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    out = net(batch)
    nn.functional.mse_loss(out, target).backward()
    opt.step()
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.mse_loss(net(batch), target).backward()
        opt.step()
""",
    )
    VALID += (
        # a model class handed in as a parameter: calling it builds the model, which is then loaded and
        # switched (near miss in INVALID: a parameter whose output feeds another, switched, network)
        """
import torch


def evaluate_checkpoint(model_cls, config, path, batches):
    model = model_cls(config)
    model.load_state_dict(torch.load(path))
    model.eval()
    with torch.no_grad():
        return [model(x) for x in batches]
""",
    )
    INVALID = (
        """
import torch


def evaluate_features(model, head, batches):
    with torch.no_grad():
        feats = model(batches)  # expect: MDL302
        head.eval()
        return head(feats)
""",
        # a probe of a freshly built model before its training loop, and one every 100 steps inside it,
        # each followed by training steps but not on the same pass (near miss in VALID: a step's forward)
        _STEP_NET + """

def test_then_tune(probe, loader):
    net = Net()
    opt = torch.optim.SGD(net.parameters(), 0.1)
    before = net(probe)  # expect: MDL302
    for x, y in loader:
        opt.zero_grad()
        nn.functional.mse_loss(net(x), y).backward()
        opt.step()
    return before


def test_periodic(loader, probe):
    net = Net()
    opt = torch.optim.SGD(net.parameters(), 0.1)
    for i, (x, y) in enumerate(loader):
        if i % 100 == 0:
            with torch.no_grad():
                print(net(probe).mean())  # expect: MDL302
        opt.zero_grad()
        nn.functional.mse_loss(net(x), y).backward()
        opt.step()
""",
        # a frozen expert of the script's global scope, never put in eval, that the evaluation runs
        # through a helper of the file (set 12's Wav2Lip: eval_model -> get_sync_loss -> syncnet)
        """
import torch
from torch import nn

class Expert(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8))

    def forward(self, x):
        return self.body(x)

syncnet = Expert()
for p in syncnet.parameters():
    p.requires_grad = False

def sync_loss(g):
    return syncnet(g).mean()

def eval_model(gen, test_loader):
    gen.eval()
    with torch.no_grad():
        return [sync_loss(gen(x)).item() for x in test_loader]  # expect: MDL302

if __name__ == "__main__":
    gen = Expert()
    opt = torch.optim.Adam(gen.parameters())
    for x in []:
        gen.train()
        sync_loss(gen(x)).backward()
        opt.step()
    eval_model(gen, [])
""",
        # a method of the model's class that runs it under its own inference_mode decorator, called
        # after training without `model.eval()` (set 10's pytorch-scarf: `model.get_embeddings(x)`)
        """
import torch
from torch import nn

class Tabular(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(8, 8), nn.BatchNorm1d(8), nn.Dropout(0.1))

    def forward(self, x):
        return self.body(x)

    @torch.inference_mode()
    def embed(self, x):
        return self.body(x)

def fit(model, loader, test_loader, opt):
    for x in loader:
        model.train()
        model(x).sum().backward()
        opt.step()
    return [model.embed(x) for x in test_loader]  # expect: MDL302
""",
        # near miss of the training-iteration VALID example: the same loop also scores held-out noise
        """
import torch
from torch import nn

def adversarial(noise_batches, real_batches, rounds, val_noise):
    gen = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8))
    disc = nn.Linear(8, 1)
    d_opt = torch.optim.SGD(disc.parameters(), lr=0.01)
    for z, real in zip(noise_batches, real_batches):
        with torch.no_grad():
            fake = gen(z)
            shown = gen(val_noise)  # expect: MDL302
        for _ in range(rounds):
            d_loss = disc(fake).mean() - disc(real).mean()
            d_opt.zero_grad()
            d_loss.backward()
            d_opt.step()
""",
        # near miss of the helper-object VALID example: held-out batches scored in training mode
        """
import torch

class Scout:
    def scores(self, net, batches):
        with torch.no_grad():
            return [net(x).amax() for x in batches]

def rounds(net, opt, pool, holdout_pool, n):
    scout = Scout()
    for _ in range(n):
        net.train()
        for x in pool:
            opt.zero_grad()
            net(x).sum().backward()
            opt.step()
        scout.scores(net, holdout_pool)  # expect: MDL302
""",
        # near misses of the first VALID example: the only eval came before the epoch loop (a resumed
        # checkpoint's evaluation), and the scorer is not annotated (named like a model: reported)
        """
import torch
from torch import nn

def fit_then_test(net, loader, test_loader, opt, epochs):
    net.eval()
    with torch.no_grad():
        print(sum(net(x).sum() for x, _ in test_loader))
    for epoch in range(epochs):
        net.train()
        for x, y in loader:
            loss = nn.functional.cross_entropy(net(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            for x, y in test_loader:
                print(net(x).argmax(1).eq(y).float().mean())  # expect: MDL302

def evaluate_scores(detector, loader):
    return [detector(x) for x, _ in loader]  # expect: MDL302
""",
        # an evaluation named by its last word, running a forward variant of a reloaded model
        """
import torch
from torch import nn

class Relation(nn.Module):
    def __init__(self):
        super().__init__()
        self.score = nn.Sequential(nn.Linear(16, 8), nn.BatchNorm1d(8), nn.Linear(8, 1))

    def set_forward(self, z):
        return self.score(z)

def episode_evaluation(model, episodes):
    return [model.set_forward(z).argmax() for z in episodes]  # expect: MDL302

def main(path, episodes):
    model = Relation()
    model.load_state_dict(torch.load(path))
    print(episode_evaluation(model, episodes))
""",
        # a generation helper called after a step on a model built in the caller (near miss in VALID)
        """
import torch
from torch import nn

class AutoEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ConvTranspose2d(8, 3, 3))

    def forward(self, x):
        return self.net(x)

def fit_epoch(model, loader, opt):
    for x in loader:
        opt.zero_grad()
        (model(x) - x).pow(2).mean().backward()
        opt.step()

def reconstruct(model, x):
    with torch.no_grad():
        return model(x)

def main(loader, shown, epochs):
    model = AutoEncoder()
    opt = torch.optim.Adam(model.parameters())
    for epoch in range(epochs):
        fit_epoch(model, loader, opt)
        grid = reconstruct(model, shown)  # expect: MDL302
""",
        # a layer-free wrapper around an averaged copy of the trained network: the loop switches the
        # network it trains, not the copy the wrapper runs (the near miss is in VALID)
        """
import copy
import torch
from torch import nn

class Tagger(nn.Module):
    def __init__(self, p):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(8, 8), nn.Dropout(p), nn.Linear(8, 3))

    def forward(self, x):
        return self.body(x)

class Beam(nn.Module):
    def __init__(self, model, width):
        super().__init__()
        self.model = model
        self.width = width

    def forward(self, x):
        return self.model(x).topk(self.width).indices

def fit(batches, p):
    tagger = Tagger(p)
    averaged = copy.deepcopy(tagger)
    beam = Beam(averaged, width=2)
    opt = torch.optim.SGD(tagger.parameters(), lr=0.1)
    for i, (x, y) in enumerate(batches):
        opt.zero_grad()
        nn.functional.cross_entropy(tagger(x), y).backward()
        opt.step()
        if i % 50 == 0:
            tagger.eval()
            with torch.no_grad():
                print(beam(x))  # expect: MDL302
            tagger.train()
""",
        # a library graph layer whose attention dropout is on
        """
import torch
from torch import nn
from torch_geometric.nn import GATConv

class Encoder(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.att = GATConv(d, 32, heads=4, dropout=0.6)

    def forward(self, x, edges):
        return self.att(x, edges)

def predict(path, graph):
    enc = Encoder(graph.num_features)
    enc.load_state_dict(torch.load(path))
    with torch.no_grad():
        return enc(graph.x, graph.edge_index).argmax(-1)  # expect: MDL302
""",
        # a discarded forward run for its hooks; a lazy-looking forward whose output is used
        """
import torch
from torch import nn

class Head(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.LazyLinear(4)
        self.drop = nn.Dropout(0.2)

    def forward(self, x):
        return self.drop(self.fc(x))

def embed(path, batch, store):
    head = Head()
    head.load_state_dict(torch.load(path))
    head.fc.register_forward_hook(lambda m, i, o: store.append(o))
    with torch.no_grad():
        head(batch)  # expect: MDL302
    return store

def fit_and_log(head, loader, opt, val_batch, writer):
    head.train()
    for x in loader:
        opt.zero_grad()
        head(x).sum().backward()
        opt.step()
    with torch.no_grad():
        head(val_batch)  # expect: MDL302
    log_opt = torch.optim.SGD(head.parameters(), lr=0.0)
    return log_opt

def warm_start(path, batch):
    head = Head()
    head.load_state_dict(torch.load(path))
    with torch.no_grad():
        first = head(batch)  # expect: MDL302
    opt = torch.optim.SGD(head.parameters(), lr=0.1)
    return first, opt
""",
        # a shape read beside a value read; a smoke test whose input is rebound to real data
        """
import torch
from torch import nn

class Stem(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.bn = nn.BatchNorm2d(c)

    def forward(self, x):
        return self.bn(x), [x]

def log_outputs(path, images):
    enc = Stem(8)
    enc.load_state_dict(torch.load(path))
    with torch.no_grad():
        feats, skips = enc(images)  # expect: MDL302
    print(feats.shape, skips[0].mean())

def test_stem(loader):
    x = torch.randn(2, 8, 16, 16)
    stem = Stem(8)
    x = next(iter(loader))
    print(stem(x))  # expect: MDL302
""",
        """
import torch
from torch import nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.drop = nn.Dropout(0.1)

def predict(path, x):
    model = Net()
    model.load_state_dict(torch.load(path))
    with torch.no_grad():
        return model(x)  # expect: MDL302

@torch.inference_mode()
def embed(x):
    encoder = torch.hub.load("facebookresearch/dino:main", "dino_vits16")
    return encoder(x)  # expect: MDL302

def evaluate(model, loader):
    correct = 0
    with torch.no_grad():
        for x, y in loader:
            correct += (model(x).argmax(1) == y).sum().item()  # expect: MDL302
    return correct
""",
        # no_grad is not eval mode, even when the name does not say "eval"; train(False) later is too late
        """
import torch
import timm

def extract_features(images):
    backbone = timm.create_model("resnet50", pretrained=True, num_classes=0)
    with torch.no_grad():
        feats = backbone(images)  # expect: MDL302
    backbone.eval()
    return feats

def infer(net, batch):
    return net(batch).softmax(-1)  # expect: MDL302
""",
        # held-out batches every N steps in the training loop; a script's global model in its
        # evaluation function
        """
import torch
from torch import nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.drop = nn.Dropout(0.1)

def fit(model, opt, loader, val_loader):
    model.train()
    for step, (x, y) in enumerate(loader):
        model(x).sum().backward()
        opt.step()
        if step % 100 == 0:
            with torch.no_grad():
                held = next(iter(val_loader))
                print(model(held[0]).mean())  # expect: MDL302

@torch.no_grad()
def eval_epoch(epoch):
    return [net(x) for x in test_loader]  # expect: MDL302

if __name__ == "__main__":
    net = Net()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    train_loader = test_loader = []
    for epoch in range(3):
        net.train()
        for x in train_loader:
            net(x).sum().backward()
            opt.step()
        eval_epoch(epoch)
""",
        # a probe whose test loop has no no_grad; an evaluation of a resumed checkpoint before training
        """
import torch
import torchvision

def linear_probe(train_dl, holdout_dl, head_lr):
    encoder = torchvision.models.resnet50(num_classes=5)
    encoder.requires_grad_(False)
    encoder.fc.requires_grad_(True)
    sgd = torch.optim.SGD(encoder.fc.parameters(), lr=head_lr)
    for _ in range(20):
        for imgs, target in train_dl:
            torch.nn.functional.cross_entropy(encoder(imgs), target).backward()
            sgd.step()
        hits = 0
        for imgs, target in holdout_dl:
            hits += (encoder(imgs).argmax(1) == target).sum()  # expect: MDL302
    return hits

def run(net, opt, batches, dev_batches, resume):
    if resume:
        net.load_state_dict(torch.load(resume))
        net.eval()
        print(score(net, dev_batches))
    for ep in range(5):
        net.train()
        for xb, yb in batches:
            net(xb).sum().backward()
            opt.step()
    with torch.no_grad():
        for xb, yb in dev_batches:
            print(net(xb).mean())  # expect: MDL302
""",
        # the loss module that keeps its network, run on held-out batches while the network is still in
        # training mode: no path switches the network (the VALID twin calls `clf.eval()`)
        """
import torch
from torch import nn

class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(16, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 4))

    def forward(self, x):
        return self.body(x)

class MarginLoss(nn.Module):
    def __init__(self, net, margin=1.0):
        super().__init__()
        self.net = net
        self.margin = margin

    def forward(self, x, y):
        scores = self.net(x)
        return (self.margin - scores.gather(1, y[:, None]) + scores).clamp(min=0).mean()

def fit(train_batches, val_batches, epochs):
    clf = Classifier()
    criterion = MarginLoss(clf, margin=0.5)
    opt = torch.optim.Adam(clf.parameters())
    for _ in range(epochs):
        for x, y in train_batches:
            opt.zero_grad()
            criterion(x, y).backward()
            opt.step()
        total = 0.0
        for x, y in val_batches:
            total += criterion(x, y).item()  # expect: MDL302
        print(total)
""",
        # a freshly built model given weights and handed straight to an evaluation helper that does not
        # switch: the other caller's eval() does not reach this call (the VALID twin switches both)
        """
import torch
from torch import nn

class Tagger(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.body = nn.Sequential(nn.Embedding(100, width), nn.Dropout(0.2), nn.Linear(width, 5))

    def forward(self, tokens):
        return self.body(tokens)

def make_tagger(cfg):
    return Tagger(cfg["width"])

def evaluate(model, batches):
    hits = 0
    for tokens, tags in batches:
        hits += (model(tokens).argmax(-1) == tags).sum().item()  # expect: MDL302
    return hits

def fit(cfg, batches, dev_batches):
    tagger = make_tagger(cfg)
    opt = torch.optim.Adam(tagger.parameters())
    for tokens, tags in batches:
        opt.zero_grad()
        nn.functional.cross_entropy(tagger(tokens).flatten(0, 1), tags.flatten()).backward()
        opt.step()
    tagger.eval()
    return evaluate(tagger, dev_batches)

def score_checkpoint(cfg, path, dev_batches):
    tagger = make_tagger(cfg)
    tagger.load_state_dict(torch.load(path))
    return evaluate(tagger, dev_batches)
""",
        # step-by-step decoding (`beam_search`, by name) on a model restored from a checkpoint and never
        # switched, reached through a helper that only hands the model on; the factory's parts decide
        # its sensitivity (the returned class only keeps what it is given)
        _SEQ2SEQ.replace("model.encode(src)\n", "model.encode(src)  # expect: MDL302\n") + """    show_translations(model, tokenizer, batches)
""",
    )
    INVALID += (
        # a plain holder class builds the model in `__init__` and nothing in the file switches that
        # attribute: it is in training mode when `epoch()` hands it to the evaluation (set 18's resnet1d)
        _HOLDER,
    )
    VALID += (
        # near miss of the holder INVALID example: the file switches the attribute from outside (`runner.model.eval()`)
        _HOLDER.replace("  # expect: MDL302", "") + """

def main(train_loader, test_loader):
    runner = Runner(train_loader, test_loader)
    runner.model.eval()  # switched from outside: the holder's attribute is not known fresh
    return runner.epoch()
""",
    )
    INVALID += (
        # an evaluation word after a one-word project prefix (`dnn_test_model`, `run_test`) names an
        # evaluation routine too; its model parameter is never switched
        """
import torch

def dnn_test_model(loader, model):
    correct = 0
    for x, y in loader:
        correct += (model(x).argmax(1) == y).sum().item()  # expect: MDL302
    return correct / len(loader.dataset)
""",
    )
    INVALID += (
        # near miss of the optional-batch-norm VALID example: the probe turns the flag on
        """
import torch
from torch import nn

class Head(nn.Module):
    def __init__(self, dim, classes, use_bn=False):
        super().__init__()
        self.fc = nn.Linear(dim, classes)
        self.use_bn = use_bn
        if use_bn:
            self.bn = nn.BatchNorm1d(classes)

    def forward(self, x):
        x = self.fc(x)
        return self.bn(x) if self.use_bn else x

def probe(feats, labels):
    head = Head(feats.shape[1], 10, use_bn=True)
    opt = torch.optim.SGD(head.parameters(), lr=0.1)
    for _ in range(100):
        loss = nn.functional.cross_entropy(head(feats), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return (head(feats).argmax(1) == labels).float().mean()  # expect: MDL302
""",
    )

    def __init__(self, ctx, options=None):
        super().__init__(ctx, options)
        self._relevant = False
        self._scope_stack: List[cst.CSTNode] = []
        self._calls: Dict[str, List[Tuple[cst.Call, Optional[cst.CSTNode]]]] = {}
        self._creating: Set[int] = set()  # scopes (0: top level) with a call that may build / load a model
        self._stepping: Set[int] = set()  # scopes with a backward / step call (train-then-test bodies)
        self._project_names = ctx.classifier.index.step_or_switch_names()
        self._volatile: Set[int] = set()  # scopes with `Variable(x, volatile=True)` (pre-0.4 inference)
        # eval contexts open around the walk (`with evaluating(model):`, `@eval_mode`): the keys they
        # name (None: every model), and the calls seen inside one -> those keys
        self._eval_contexts: List[Optional[FrozenSet[str]]] = []
        self._in_eval_context: Dict[int, List[Optional[FrozenSet[str]]]] = {}
        self._calls_project_evaluation = False
        # scopes calling a method of a model class that runs it under its own no_grad decorator
        # (`model.get_embeddings(x)`; `ModeFlow.quiet_module_method`): inference like a no_grad block
        self._quiet_method_scopes: Set[int] = set()
        self._reported: Set[int] = set()  # ids of the model calls reported
        self._walks: Dict[int, tuple] = {}
        self._keys: Optional[KeySensitivity] = None
        self._handed: Optional[Set[str]] = None  # `_handed_functions`
        self._assigns: Dict[int, Dict[str, List[cst.CSTNode]]] = {}  # id(scope) -> name -> the values bound to it

    # --- the walk: remember calls by name (for the caller check) and whether anything is relevant --
    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._scope_stack.append(node)
        if not self._relevant and evaluation_like_name(node.name.value, last_word=True):
            self._relevant = True
        found = [self._eval_context(d.decorator) for d in node.decorators]
        self._eval_contexts.extend(f for f in found if f is not False)

    def leave_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._scope_stack.pop()
        found = [self._eval_context(d.decorator) for d in node.decorators]
        del self._eval_contexts[len(self._eval_contexts) - sum(f is not False for f in found):]

    def visit_With(self, node: cst.With) -> None:
        self._eval_contexts.extend(f for f in (self._eval_context(i.item) for i in node.items) if f is not False)

    def leave_With(self, node: cst.With) -> None:
        n = sum(self._eval_context(i.item) is not False for i in node.items)
        del self._eval_contexts[len(self._eval_contexts) - n:]

    def _eval_context(self, expr: cst.CSTNode):
        """A `with` item or decorator that says it switches to eval (`evaluating(model)`, `@eval_mode`):
        the keys of its arguments (None when it names none: it switches every model it sees); False
        when it is not one."""
        if not inference.eval_context_name(inference.last_name(expr), self.ctx.framework.grad_context_names):
            return False
        keys = frozenset(k for k in (dotted(a.value) for a in getattr(expr, "args", ())) if k)
        return keys or None

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        name = callee_name(node)
        if name is None:
            return
        fw = self.ctx.framework
        if name in fw.grad_context_names:
            self._relevant = True
        scope = self._scope_stack[-1] if self._scope_stack else None
        sid = id(scope) if scope is not None else 0
        self._calls.setdefault(name, []).append((node, scope))
        if self._eval_contexts:
            self._in_eval_context[id(node)] = list(self._eval_contexts)
        if name in fw.backward_methods or name == fw.optimizer_step_method or (
            isinstance(func, cst.Name) and len(node.args) >= 2 and not name[:1].isupper()
            and loss_and_optimizer([dotted(a.value) for a in node.args])  # `loss_scaler(loss, optimizer)`
            and not for_context(self.ctx).project_defines(func)  # not a checked `save_checkpoint(...)`
        ):
            self._stepping.add(sid)
        if any(a.keyword is not None and a.keyword.value == fw.volatile_keyword for a in node.args):
            self._volatile.add(sid)
            self._relevant = True
        if (name[:1].isupper() and not _NOT_A_MODEL.search(name)) or name in _CREATING_NAMES or (
            isinstance(func, cst.Attribute) and isinstance(func.value, cst.Attribute) and func.value.attr.value == "models"
        ) or self.ctx.facts.aliases.get(name, "").startswith(fw.model_factory_namespaces) or (
            name in self._project_names  # a project helper that may return a model (`restore_from(path)`)
        ):
            self._creating.add(id(scope) if scope is not None else 0)
            if name in self._project_names and isinstance(func, cst.Attribute) and sid not in self._quiet_method_scopes:
                mf = for_context(self.ctx)
                effect = mf.project_effect(node)
                if effect is not None and mf.quiet_module_method(effect):
                    self._quiet_method_scopes.add(sid)
                    self._relevant = True
            if name in self._project_names and (evaluation_like_name(name, last_word=True) or any(
                inference.held_out_text(text) and any(t in text for t in self.triggers)
                for text in (name, *(self.ctx.module.code_for_node(a.value) for a in node.args if isinstance(
                    a.value, (cst.Name, cst.Attribute))))
            )):
                # `validate(model, ...)` / `compute_val_loss(...)` defined in another file, or any project
                # helper given held-out data (`picker.sample(net, val_loader)`; `_held_out_helper` takes
                # both): the name or argument holds a trigger word, so the text pre-filter stays sound
                self._calls_project_evaluation = True

    def visit_Decorator(self, node: cst.Decorator) -> None:
        dec = node.decorator
        if isinstance(dec, cst.Attribute) and dec.attr.value in self.ctx.framework.no_grad_last_names:
            self._relevant = True

    # --- the check ---------------------------------------------------------------------------------
    def leave_Module(self, node: cst.Module) -> None:
        if self._stepping and not self._relevant:
            self._tests_after_training(for_context(self.ctx), node)  # a training file without no_grad
        if not self._relevant:
            if self._calls_project_evaluation:
                self._project_evaluations(for_context(self.ctx), node)
            return
        mf = for_context(self.ctx)
        for scope in mf.scopes():
            name_based = isinstance(scope, cst.FunctionDef) and self._evaluation_scope(mf, scope)
            sid = 0 if scope is node else id(scope)
            if isinstance(scope, cst.FunctionDef) and self._pytest_test(mf, scope):
                continue  # a test of a test suite builds a small model to check shapes and losses
            if not (name_based or id(scope) in mf.index.has_no_grad or self._decorated(scope) or sid in self._volatile
                    or sid in self._quiet_method_scopes):
                if sid in self._stepping:
                    self._test_loops_after_training(mf, scope)
                continue
            creating = sid in self._creating or sid in self._stepping
            if not creating and not (name_based and (self._has_model_params(mf, scope) or self._reads_globals(mf, scope))):
                continue  # nothing built, loaded or trained here, and no parameter that could be checked
            if mf.in_lightning_class(scope):
                continue
            flow = mf.flow(scope)
            if flow is None:
                continue
            done: Set[str] = set()
            for mc in flow.model_calls:
                if mc.key in done or not (mc.no_grad or name_based):
                    continue
                if "." in mc.key and not self._bound_here(get(mc.state, mc.key)):
                    continue  # an attribute model not built or trained here: its owner switches modes
                if self._not_inference(mf, flow, mc):
                    continue
                message = self._check(mf, flow, mc, name_based)
                if message:
                    done.add(mc.key)
                    self._reported.add(id(mc.node))
                    self.report(mc.node, message)
        calls = [c for found in self._calls.values() for c, _ in found]
        if mf.may_step(calls):  # (else no flow has a step: most model files)
            self._neutral_evaluations(mf, node)
        self._project_evaluations(mf, node)

    # --- a test loop after the training loop, no no_grad and no eval anywhere (a linear probe) ------
    def _tests_after_training(self, mf: ModeFlow, module: cst.Module) -> None:
        for scope in mf.scopes():
            if (0 if scope is module else id(scope)) in self._stepping:
                self._test_loops_after_training(mf, scope)

    def _test_loops_after_training(self, mf: ModeFlow, scope: cst.CSTNode) -> None:
        """A scope with a training step and no no_grad: a forward in a loop over held-out data
        (`for x, y in test_loader: model(x)`) that runs no step itself, on a model that a step of
        this scope trained earlier and that no path switches to eval (it reaches the call as built,
        loaded, or trained after `train()`: not a parameter, not an unknown mode). Frozen-backbone linear probes are the common case:
        `requires_grad = False` freezes the weights, not the batch-norm statistics."""
        if isinstance(scope, cst.FunctionDef) and (self._pytest_test(mf, scope) or mf.in_lightning_class(scope)):
            return
        flow = mf.flow(scope)
        if flow is None or not flow.steps:
            return
        done: Set[str] = set()
        for mc in flow.model_calls:
            tokens = get(mc.state, mc.key)
            if mc.no_grad or mc.key in done or id(mc.node) in self._reported or not tokens:
                continue
            if not self._built_or_trained(flow, mc.key, tokens):
                continue  # some path switched it, or its mode comes from outside (a parameter, `from_pretrained`)
            if not self._trained_before(mf, flow, mc):
                continue
            loop = self._held_out_loop(mf, mc)
            if loop is None or any(loop in st.loops for st in flow.steps) or self._not_inference(mf, flow, mc):
                continue  # no held-out loop, or the loop trains (test-time training, fine-tuning on it)
            if not self._sensitive_at(mf, flow, mc.key, mc.state):
                continue
            done.add(mc.key)
            self._reported.add(id(mc.node))
            self.report(mc.node, (
                f"`{mf.code(mc.node)}` runs `{mc.key}` on held-out data (the loop over "
                f"`{mf.code(loop.iter, 60)}`) in training mode: a training step "
                f"left it there and no path calls `{mc.key}.eval()`, so dropout drops activations and "
                f"batch norm normalises each held-out batch with its own statistics and writes them into "
                f"its running averages (freezing weights with `requires_grad = False` does not stop "
                f"that); call `{mc.key}.eval()` before the loop and `{mc.key}.train()` before training"
            ))

    @staticmethod
    def _built_or_trained(flow: ScopeFlow, key: str, tokens) -> bool:
        """Every path brings the model as built / loaded here or trained after `train()`. ENTRY of a
        name this scope binds (not a parameter; the top level of a script or notebook) is the path
        where it was never bound (`if arch == "a": model = A() elif ...: model = B()`), which
        would fail with a NameError, so it does not count."""
        root = key.split(".")[0]
        local = isinstance(flow.node, cst.Module) or (root in flow.locals and root not in flow.params)
        rest = [t for t in tokens if not (t is ENTRY and local)]
        return bool(rest) and all(t is TRAINED or (isinstance(t, Created) and t.kind in _CREATED) for t in rest)

    def _held_out_loop(self, mf: ModeFlow, mc) -> Optional[cst.For]:
        """The innermost `for` loop around the call that iterates held-out data."""
        for loop in reversed(mc.loops):
            if isinstance(loop, cst.For) and inference.held_out_text(mf.code(loop.iter, 200)):
                return loop
        return None

    # --- forwards that are not inference on data (analysis/inference.py) --------------------------
    def _not_inference(self, mf: ModeFlow, flow: ScopeFlow, mc) -> bool:
        """An eval context around the call, build code, or a probe of an untrained model."""
        root = mc.key.split(".")[0]
        for keys in self._in_eval_context.get(id(mc.node), ()):
            if keys is None or any(k == mc.key or k.split(".")[0] == root for k in keys):
                return True
        fn = flow.node
        if isinstance(fn, cst.FunctionDef) and any(
            inference.build_name(f.name.value) for f in self._enclosing_functions(mf, fn)
        ):
            return True  # `__init__` / `build_*` / `*_shape`: a no_grad pass that initialises or measures
        nodes, parents = self._walk(flow.node)
        if inference.shape_only(parents, mc.node, nodes) and not self._loaded(mc):
            return True  # only the output's shape is read: dropout and batch norm cannot matter
        if inference.discarded(parents, mc.node, nodes) and self._optimizer_built_after(mf, flow, mc.key, nodes, mc.node):
            return True  # `with no_grad(): model(x)` before `Adam(model.parameters())`: lazy modules
        return self._untrained_probe(mf, flow, mc, nodes, parents)

    def _untrained_probe(self, mf: ModeFlow, flow: ScopeFlow, mc, nodes, parents) -> bool:
        """`net = Net(); net(torch.zeros(1, 3, 32, 32))`: a model built here and neither trained nor
        given weights before the call, run on synthetic input (a smoke test)."""
        tokens = get(mc.state, mc.key)
        if not tokens or not all(isinstance(t, Created) and t.kind in ("construct", "factory") for t in tokens):
            return False
        if flow.steps or not mc.node.args:
            return False
        bound = self._assignments(flow.node)  # `x = torch.rand(1, 16)` ... `x = torch.rand(1, 32)`: each synthetic
        if not all(inference.synthetic(self.ctx, a.value, bound) for a in mc.node.args if a.keyword is None):
            return False
        return not self._given_weights(mc.key, flow, nodes, parents, mc.node)

    def _optimizer_built_after(self, mf: ModeFlow, flow: ScopeFlow, key: str, nodes, call: cst.Call) -> bool:
        """The scope runs no training step before `call` and builds an optimizer over `key`'s (or an
        alias's) parameters after it (`opt = Adam(model.parameters())`): `call` came first so that
        lazy layers exist when the optimizer collects them. (A `.named_parameters()` read for logging
        after the training step is not that.)"""
        # source order is the scope's pre-order: no positions needed (they cost a code generation
        # of the whole file, 2.5 of transformers' 130 CPU s when only this asked for them)
        steps = {id(st.node) for st in flow.steps}
        rest = iter(nodes)
        for n in rest:
            if n is call:
                break
            if id(n) in steps:
                return False
        names = {key} | set(flow.aliases.get(key, ()))
        return any(builds_optimizer_over(self.ctx, n, names) for n in rest)

    @staticmethod
    def _loaded(mc) -> bool:
        """A loader made the model, or loaded weights into it (`load_state_dict`, `load_checkpoint`):
        a run of trained weights whose output only has its shape printed is still an inference
        (upstream19's hyena-dna demo, `print(embeddings.shape)`), unlike a smoke test of a fresh
        network (`print(net)` before it does not count: `_given_weights` is broader on purpose)."""
        return any(isinstance(t, Created) and t.kind in ("load", "load_state_dict", "from_pretrained", "hub")
                   for t in get(mc.state, mc.key))

    def _given_weights(self, key: str, flow: ScopeFlow, nodes, parents, before: cst.Call) -> bool:
        """Before `before`, a call on the model or its aliases other than a device move
        (`load_state_dict`, `load_checkpoint(model, path)`, `model.apply(init)`) may give it weights."""
        names = {key} | set(flow.aliases.get(key, ()))
        preserving = self.ctx.framework.mode_preserving_methods - {"apply"}
        for n in nodes:
            if n is before:
                return False
            if not isinstance(n, cst.Call):
                continue
            func = n.func
            if isinstance(func, cst.Attribute) and dotted(func.value) in names and func.attr.value not in preserving:
                return True
            if any(dotted(a.value) in names for a in n.args):
                return True
        return False

    def _builds_a_module(self, scope: cst.CSTNode, call: cst.Call) -> bool:
        """`model = model_pattern(self.config)` followed in the scope by `model.load_state_dict(...)` /
        `model.eval()` / `model.parameters()`: the parameter is a class (or factory) handed in and the
        call builds the model (set 17's CasRel `testall(model_pattern)`), it runs no forward."""
        nodes, parents = self._walk(scope)
        stmt = parents.get(id(call))
        if not (isinstance(stmt, cst.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0].target, cst.Name)):
            return False
        name = stmt.targets[0].target.value
        fw = self.ctx.framework
        module_only = fw.module_only_methods | {fw.train_method, fw.eval_method}
        return any(isinstance(n, cst.Call) and isinstance(n.func, cst.Attribute) and isinstance(n.func.value, cst.Name)
                   and n.func.value.value == name and n.func.attr.value in module_only for n in nodes)

    def _walk(self, scope: cst.CSTNode):
        found = self._walks.get(id(scope))
        if found is None:
            found = preorder_and_parents(scope)
            self._walks[id(scope)] = found
        return found

    def _single_assignments(self, scope: cst.CSTNode) -> Dict[str, cst.CSTNode]:
        """Names assigned exactly once in the scope (a function, or a script's top-level code) -> value."""
        return {name: vs[0] for name, vs in self._assignments(scope).items() if len(vs) == 1}

    def _assignments(self, scope: cst.CSTNode) -> Dict[str, List[cst.CSTNode]]:
        """Every name bound in the scope -> the values bound to it (an unpacked or loop-bound name gets
        the whole statement, which is never a tensor factory)."""
        found = self._assigns.get(id(scope))
        if found is None:
            found = {}
            for node in self._walk(scope)[0]:
                if isinstance(node, cst.Assign):
                    for target in node.targets:
                        if isinstance(target.target, cst.Name):
                            found.setdefault(target.target.value, []).append(node.value)
                        else:
                            for name in _names_in(target.target):
                                found.setdefault(name, []).extend((node, node))
                elif isinstance(node, (cst.AugAssign, cst.AnnAssign, cst.For, cst.CompFor)) and isinstance(node.target, cst.Name):
                    found.setdefault(node.target.value, []).extend((node, node))
            self._assigns[id(scope)] = found
        return found

    @staticmethod
    def _enclosing_functions(mf: ModeFlow, fn: cst.FunctionDef):
        node = fn
        while isinstance(node, cst.FunctionDef):
            yield node
            node = mf.index.parent.get(id(node))

    # --- the sensitivity of the model a key holds, through pass-through wrappers and callers -------
    def _key_sensitivity(self, mf: ModeFlow, scope: cst.CSTNode, key: str) -> str:
        """"yes" / "no" / "unknown" for the model `key` holds in `scope` (`analysis.keysensitivity`:
        its constructions, pass-through rebindings and wrappers, and what this file's callers pass)."""
        return self._keys_for(mf).of(scope, key)

    def _keys_for(self, mf: ModeFlow) -> KeySensitivity:
        """The file's KeySensitivity, built on first use (with the rule's calls-by-name index)."""
        if self._keys is None:
            self._keys = KeySensitivity(self.ctx, mf, self._calls)
        return self._keys

    def _origin_sensitivity(self, mf: ModeFlow, flow: ScopeFlow, key: str, origin: Created,
                            state: Optional[State] = None) -> str:
        """The origin's answer; for `key.load_state_dict(...)` (weights into the model `key` already
        holds) the answer of what `key` was built from. A mode-free wrapper built around a name that
        holds a sensitive model (`Sampler(ema_model, steps)`) answers for that model: "yes" unless every
        such model is in eval on every path here (`state`: the modes at the call)."""
        node = origin.node
        if origin.kind == "load_state_dict" and isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) \
                and dotted(node.func.value) == key:
            return self._key_sensitivity(mf, flow.node, key)
        return self._built_sensitivity(mf, flow, node, state)

    def _built_sensitivity(self, mf: ModeFlow, flow: ScopeFlow, node: cst.CSTNode,
                           state: Optional[State] = None) -> str:
        """The answer of the model an expression builds; a mode-free wrapper construction answers for the
        models it keeps ("yes" unless every one is in eval on every path of `state`)."""
        answer = mode_sensitivity(self.ctx, node)
        if answer != "no" or not isinstance(node, cst.Call):
            return answer
        def is_model(k: str) -> bool:
            """The flow holds a built / loaded / trained model under `k`, or `k` is named like a model
            (`avg_net = copy.deepcopy(model)` of a parameter, or of what a setup helper returned)."""
            tokens = get(state, k) if state is not None else frozenset()
            return any(isinstance(t, Created) or t is TRAINED for t in tokens) or bool(_MODEL_PARAM.search(k))

        inner = self._keys_for(mf).sensitive_kept(flow.node, node, 0, is_model)
        if state is not None:
            inner = [k for k in inner if not eval_on_every_path(get(state, k))]
        return "yes" if inner else "no"

    def _sensitive_at(self, mf: ModeFlow, flow: ScopeFlow, key: str, state: State) -> bool:
        """The model `key` holds may compute differently in the two modes at a call whose modes are
        `state`: its answer is not "no", and it is not a mode-free wrapper module every binding of
        which keeps only models that are in eval on every path here (`elbo = SVI(model)` with
        `self.model = model`, run after `model.eval()`: the layers that depend on the mode are the
        model's, and the wrapper's own flag switches nothing)."""
        if self._key_sensitivity(mf, flow.node, key) == "no":
            return False
        exprs = [bound_expr(b.node, key) for b in flow.bindings.get(key, ())]
        if not exprs or any(not isinstance(e, cst.Call) or mode_sensitivity(self.ctx, e) != "no"
                            or self._built_sensitivity(mf, flow, e) == "no" for e in exprs):
            return True  # not only wrappers, layers of their own, or sensitive for another reason
        return any(self._built_sensitivity(mf, flow, e, state) != "no" for e in exprs)

    def _neutral_evaluations(self, mf: ModeFlow, module: cst.Module) -> None:
        """A helper of this file with a neutral name (`compute_val_loss(model, val_loader)`) that runs
        its model parameter, or a global model, under no_grad without switching it, called on
        held-out data (`val_*` / `test_*` arguments, a held-out name, or its forward in a loop over
        held-out data) by a scope where a training step left that model in training mode."""
        for scope in mf.scopes():
            sid = 0 if scope is module else id(scope)
            if sid not in self._stepping and sid not in self._creating or mf.in_lightning_class(scope):
                continue
            flow = mf.flow(scope)
            if flow is None or not flow.steps:
                continue  # (a step through a called function counts: `train(...); compute_val_loss(...)`)
            for lc in flow.local_calls:
                callee = mf.flow(lc.callee)
                if callee is None:
                    continue
                named = any(inference.held_out_text(mf.code(a.value, 200)) for a in lc.node.args) \
                    or inference.generation_name(lc.callee.name.value)
                for param, key in self._mapped_models(lc, callee):
                    # a helper reading global data (`def eval_training(epoch)`): its name is evidence too
                    evidence = named or (param not in lc.mapping and inference.held_out_text(lc.callee.name.value))
                    if key is None or not self._trained_at(mf, flow, lc.node, key, get(lc.state, key)):
                        continue
                    runs = [mc for mc in callee.model_calls if mc.key == param and mc.no_grad
                            and get(mc.state, param) == frozenset({ENTRY})
                            and (evidence or self._held_out(mf, callee, mc))]
                    if any(id(r.node) in self._reported for r in runs):
                        continue  # reported in the helper itself (an evaluation by name)
                    if runs and self._key_sensitivity(mf, scope, key) != "no":
                        does = (f"generates with `{key}`" if inference.generation_name(lc.callee.name.value)
                                else f"evaluates `{key}` on held-out data")
                        self.report(lc.node, (
                            f"`{mf.code(lc.node)}` {does} after a training step left it "
                            f"in training mode, and `{lc.callee.name.value}()` runs it under no_grad "
                            f"(`{mf.code(runs[0].node)}` on line {mf.line(runs[0].node)}) without `{param}.eval()`: "
                            "dropout still drops activations and batch norm uses batch statistics and updates its "
                            f"running averages with data it was not trained on; call `{key}.eval()` before and `{key}.train()` after"
                        ))
                        break

    def _project_evaluations(self, mf: ModeFlow, module: cst.Module) -> None:
        """An evaluation helper of another file (`_evaluate(model, val_loader)` from `test.py`) whose
        summary runs a model argument under no_grad without switching it, called where a training
        step left that model in training mode, with held-out evidence: held-out arguments or an
        evaluation-like / held-out name of the helper."""
        from modelint.analysis.modemodel import bind

        # the scopes that make such a call themselves (a flow's project calls are its own calls): the
        # others' flows would find none (40 of timm's files computed them all for nothing, and
        # transformers' model files 2 CPU s)
        wanted = {0 if scope is None else id(scope) for found in self._calls.values() for c, scope in found
                  if self._held_out_helper(mf, mf.project_effect(c), c)}
        if not wanted:
            return
        for scope in mf.scopes():
            sid = 0 if scope is module else id(scope)
            if sid not in wanted or mf.in_lightning_class(scope):
                continue
            flow = mf.flow(scope) if sid in self._stepping | self._creating else None
            for pc in flow.project_calls if flow is not None else ():
                effect, call = pc.effect, pc.node
                if not self._held_out_helper(mf, effect, call):
                    continue
                recv = dotted(peel(call.func.value)) if isinstance(call.func, cst.Attribute) else None
                args = [dotted(peel(a.value)) if not a.star and a.keyword is None else None for a in call.args]
                kws = {a.keyword.value: dotted(peel(a.value)) for a in call.args if a.keyword is not None}
                mapping = bind(effect, args, kws, recv)
                named = evaluation_like_name(effect.qualname.rsplit(".", 1)[-1], last_word=True)
                for param, line, quiet in effect.infers:
                    if not quiet and (effect.steps or not (pc.no_grad or named)):
                        continue  # run with gradients there, not under no_grad here, not named an evaluation
                    key = mapping.get(param)
                    if key is None or param == (effect.params[0] if effect.is_method and effect.params else None):
                        continue
                    key = held_attribute(flow, key)
                    # (a helper that steps trains what it is handed before it evaluates it: its own switches decide)
                    fresh = _fresh_origin(mf, get(pc.state, key)) if not effect.steps else None
                    if fresh is None and not self._trained_at(mf, flow, call, key, get(pc.state, key)):
                        continue
                    if self._key_sensitivity(mf, scope, key) == "no":
                        continue
                    how = (f"while it is {_CREATED[fresh.kind]} `{fresh.shown}` on line {mf.line(fresh.node)} and never "
                           "switched to eval" if fresh is not None else "after a training step left it in training mode")
                    self.report(call, (
                        f"`{mf.code(call)}` evaluates `{key}` {how}, and "
                        f"`{effect.qualname}` runs it{' under no_grad' if quiet else ''} (line {line}) without "
                        f"`{param}.eval()`: dropout "
                        "still drops activations and batch norm uses batch statistics and updates its running "
                        f"averages with held-out data; call `{key}.eval()` before and `{key}.train()` after"
                    ))
                    break

    def _held_out_helper(self, mf: ModeFlow, effect, call: cst.Call) -> bool:
        """`effect`, of `call`, is another file's helper that runs a model argument without a switch,
        named like an evaluation or called on held-out data. A helper of this file is checked where it
        is defined, except a method not named like an evaluation (of a class not named so): there its
        parameters are skipped (`_check`), so `picker.sample(net, val_loader)` is judged here."""
        if effect is None or not effect.infers:
            return False
        name = effect.qualname.rsplit(".", 1)[-1]
        if effect.qualname.startswith(self.ctx.facts.modname + "."):
            owner = effect.qualname.rsplit(".", 2)[-2] if effect.is_method else ""
            if not effect.is_method or evaluation_like_name(name, last_word=True) or _EVAL_CLASS.match(owner):
                return False
        return bool(evaluation_like_name(name, last_word=True) or inference.held_out_text(name)
                    or any(inference.held_out_text(mf.code(a.value, 200)) for a in call.args))

    @staticmethod
    def _mapped_models(lc, callee: ScopeFlow):
        """(callee key, caller key) of the models a local call hands over: its parameters, and the
        global names the callee runs (`net` in `def compute_val_loss(epoch): ... net(x)`)."""
        yield from lc.mapping.items()
        for mc in callee.model_calls:
            root = mc.key.split(".")[0]
            if root not in callee.params and root not in callee.locals and root not in lc.mapping and (
                _MODEL_PARAM.search(mc.key)  # a global named as a model, not `len` / `tqdm`
            ):
                yield mc.key, mc.key

    def _evaluation_scope(self, mf: ModeFlow, scope: cst.FunctionDef) -> bool:
        """An evaluation by name: `evaluate()`, `test_epoch()`, or any method of a `Tester` /
        `Evaluator` / `Validator` / `Predictor` class (`Tester.run(self, net, loader)`)."""
        if self._pytest_test(mf, scope):
            return False
        if evaluation_like_name(scope.name.value, last_word=True):
            return True
        method = mf.index.method_owner(scope)
        if method is None or method is not scope or scope.name.value.startswith("__"):
            return False
        return bool(_EVAL_CLASS.match(mf.index.method_class[id(method)].name.value)) and not mf.pytest_file

    @staticmethod
    def _bound_here(tokens) -> bool:
        return any(isinstance(t, Created) or t is TRAINED for t in tokens)

    def _held_out(self, mf: ModeFlow, flow: ScopeFlow, mc) -> bool:
        """Evidence that a call after training runs on held-out data: it is inside a loop over
        validation / test data, or its arguments are named so (`model(val_x)`)."""
        loops = list(mc.loops)
        facts = self.ctx.function_facts(flow.node) if isinstance(flow.node, cst.FunctionDef) else None
        if facts is not None:  # comprehensions too: `sum(model(x) ... for x, y in test_loader)`
            for n in facts.chain(mc.node):
                comp = getattr(n, "for_in", None) if isinstance(n, (cst.GeneratorExp, cst.ListComp, cst.SetComp, cst.DictComp)) else None
                while comp is not None:
                    loops.append(comp)
                    comp = comp.inner_for_in
        for loop in loops:
            if isinstance(loop, (cst.For, cst.CompFor)) and inference.held_out_text(mf.code(loop.iter, 200)):
                return True
        if any(inference.held_out_text(mf.code(a.value, 200)) for a in mc.node.args):
            return True
        # a name bound from held-out data: `held_batch = next(iter(val_loader))`; `model(held_batch[0])`
        bound = self._single_assignments(flow.node)
        for arg in mc.node.args:
            for name in _names_in(arg.value):
                value = bound.get(name)
                if value is not None and inference.held_out_text(mf.code(value, 200)):
                    return True
        return False

    def _trained_at(self, mf: ModeFlow, flow: ScopeFlow, node: cst.CSTNode, key: str, tokens) -> bool:
        """At `node` the model `key` is in the training mode a training step left it in: a step
        after `key.train()` on every path that reaches it, or (`key.train(flag)`, a caller's switch)
        a step of this scope that runs it earlier in the source; never when an eval reaches it."""
        if any(isinstance(t, EvalSite) for t in tokens):
            return False
        if TRAINED in tokens and UNKNOWN not in tokens:
            return True
        fresh = [t for t in tokens if isinstance(t, Created) and t.kind in ("construct", "factory")]
        if fresh and not tokens - set(fresh) - {TRAIN, TRAINED}:
            # built here (in training mode) before a step that runs it, and never switched since:
            # `model = Net(); for epoch ...: train(loader, model, opt); generate_samples(x, model)`
            line = mf.line(node)
            return _runs_in_scope(flow, key) and any(
                mf.line(t.node) < mf.line(st.node) < line for t in fresh for st in flow.steps)
        if not tokens & {UNKNOWN, TRAINED, TRAIN, ENTRY}:
            return False  # rebound after the step (`net = load(...)`): another object
        if not tokens & {UNKNOWN, TRAINED, TRAIN} and not _MODEL_PARAM.search(key):
            return False  # a name nothing here switched and not named as a model (`len`, `tqdm`)
        if not _runs_in_scope(flow, key):
            return False
        line = mf.line(node)
        return any(mf.line(st.node) < line for st in flow.steps)

    def _stale_evals(self, mf: ModeFlow, flow: ScopeFlow, mc, name_based: bool) -> bool:
        """The only evals reaching the call come before every training step of the scope in the
        source (an evaluation of a resumed checkpoint before the epoch loop), while the training
        path reaches it too (TRAINED), on held-out data: the evaluation after training never
        switched. An eval after a step (`if is_main: model.eval()`) may be this evaluation's switch."""
        tokens = get(mc.state, mc.key)
        if TRAINED not in tokens or not flow.steps or not (mc.no_grad or name_based):
            return False
        first_step = min(mf.line(st.node) for st in flow.steps)
        evals = [t.node for t in tokens if isinstance(t, EvalSite)]
        if any(mf.line(n) >= first_step for n in evals):
            return False
        if any(self._in_loop(n, loop) for loop in mc.loops for n in evals):
            return False  # re-run by a loop around the call (`for phase in ...: if phase == "train": ... else: m.eval()`)
        return name_based or self._held_out(mf, flow, mc)

    @staticmethod
    def _in_loop(node: cst.CSTNode, loop: cst.CSTNode) -> bool:
        return any(n is node for n in descendants(loop.body))

    def _trained_before(self, mf: ModeFlow, flow: ScopeFlow, mc) -> bool:
        """A training step of this scope that runs the model comes before the call in the source
        (`loss.backward(); opt.step()` then, in the same loop, `model(val_x)`): whatever mode the
        model arrived in (`model.train(flag)`, a caller's switch), it was the training mode."""
        tokens = get(mc.state, mc.key)
        if any(isinstance(t, EvalSite) for t in tokens) or not _model_like(mc.key, tokens):
            return False
        if not _runs_in_scope(flow, mc.key):
            return False
        line = mf.line(mc.node)
        return any(mf.line(st.node) < line for st in flow.steps)

    def _in_training_iteration(self, flow: ScopeFlow, mc) -> bool:
        """The innermost loop around the call also holds a training step of the scope, and the call
        runs on every pass (no `if` between it and the loop): part of each training iteration (`with
        no_grad(): h = extractor(x)` feeding the critic's steps below it; GAN fakes for the
        discriminator), where the model's training mode is the one its own steps use. A periodic
        block (`if i % 50 == 0:` sampling or validating) is not; held-out evidence still makes it an
        evaluation (`_held_out`)."""
        if not mc.loops or not any(any(lp is mc.loops[-1] for lp in st.loops) for st in flow.steps):
            return False
        return self._on_every_pass(flow, mc.node, mc.loops[-1])

    def _on_every_pass(self, flow: ScopeFlow, node: cst.CSTNode, stop: cst.CSTNode) -> bool:
        """No `if`, conditional expression or `try` between `node` and `stop` (its loop, or the scope)."""
        _, parents = self._walk(flow.node)
        up = parents.get(id(node))
        while up is not None and up is not stop:
            if isinstance(up, (cst.If, cst.IfExp, cst.Try)):
                return False
            up = parents.get(id(up))
        return up is not None

    def _forward_of_a_step(self, mf: ModeFlow, flow: ScopeFlow, mc) -> bool:
        """A forward outside no_grad that runs on every pass of its loop (or of its scope: no `if`
        or `try` between) and is followed at that level by a training step of the scope: the forward
        of that step (`out = net(x)`, `loss.backward()`, `opt.step()`), whatever the routine is called
        (set 17's speed benchmarks of a training step, named `test_*`). A held-out forward under
        `if i % 100 == 0:` is not one, nor one after the loop's last step."""
        line, loops = mf.line(mc.node), tuple(mc.loops)
        same = lambda a, b: len(a) == len(b) and all(x is y for x, y in zip(a, b))  # noqa: E731
        if not any(same(tuple(st.loops), loops) and mf.line(st.node) > line for st in flow.steps):
            return False
        return self._on_every_pass(flow, mc.node, loops[-1] if loops else flow.node)

    def _switches_inside(self, call: cst.Call) -> bool:
        """`model.generate(...)` where the project's `generate` is decorated to switch to eval itself."""
        func = call.func
        if not isinstance(func, cst.Attribute):
            return False
        effect = self.ctx.classifier.index.method_effect(func.attr.value)
        word = self.ctx.framework.eval_decorator_word
        return effect is not None and any(word in d.lower() for d in effect.decorators)

    def _decorated(self, scope: cst.CSTNode) -> bool:
        """`@torch.no_grad()` / `@torch.inference_mode()` (by last name) on the function."""
        return isinstance(scope, cst.FunctionDef) and is_decorated_with(scope, *self.ctx.framework.no_grad_last_names)

    def _pytest_test(self, mf: ModeFlow, scope: cst.FunctionDef) -> bool:
        if not scope.name.value.startswith("test"):
            return False
        if mf.pytest_file:
            return True
        method = mf.index.method_owner(scope)
        return method is not None and mf.index.method_class[id(method)].name.value.startswith("Test")

    def _check(self, mf: ModeFlow, flow: ScopeFlow, mc, name_based: bool) -> Optional[str]:
        key, no_grad, call = mc.key, mc.no_grad, mc.node
        tokens = get(mc.state, key)
        if self._switches_inside(call):
            return None
        if not no_grad and self._forward_of_a_step(mf, flow, mc):
            return None
        if any(isinstance(t, EvalSite) for t in tokens):
            if not self._stale_evals(mf, flow, mc, name_based):
                return None
            tokens = frozenset(t for t in tokens if not isinstance(t, EvalSite))
        if UNKNOWN in tokens and not (no_grad and self._trained_before(mf, flow, mc) and self._held_out(mf, flow, mc)):
            return None
        where = ("under its method's no_grad decorator" if mc.via_method else "under `torch.no_grad()`"
                 if no_grad else f"in `{flow.name}()`")
        consequence = (
            "no_grad only turns off gradient tracking and does not switch modes: dropout still drops "
            "activations and batch norm still normalises with batch statistics and overwrites its running "
            "averages, so predictions are noisy and change from run to run"
            if no_grad
            else "dropout still drops activations and batch norm still normalises with batch statistics "
            "and overwrites its running averages, so predictions are noisy and change from run to run"
        )
        # (not a whole model unpickled by `torch.load`: it keeps the mode it was saved in, which the
        # checked code does not show; set 14's EfficientDet saved it right after `model.eval()`)
        created = [t for t in tokens if isinstance(t, Created) and t.kind in _CREATED and t.kind != "load"
                   and self._origin_sensitivity(mf, flow, key, t, mc.state) != "no"]
        if (TRAINED in tokens or (no_grad and self._trained_before(mf, flow, mc))) and (
            name_based or self._held_out(mf, flow, mc)
        ):
            if not self._sensitive_at(mf, flow, key, mc.state):
                return None  # every model it may hold computes the same in both modes here
            return (
                f"`{mf.code(call)}` runs `{key}` {where} on held-out data after a training step left it in "
                f"training mode (`{key}.train()` earlier on this path was for training, not for this "
                f"evaluation): {consequence}; call `{key}.eval()` before evaluating and `{key}.train()` after"
            )
        if _is_tokens_evaluated(tokens):
            return None  # `model.train()` right before: training mode on purpose (BN recalibration)
        if created and self._in_training_iteration(flow, mc) and not (name_based or self._held_out(mf, flow, mc)):
            return None  # inputs or targets of every iteration's update (a critic's features), not inference
        if created:
            origin = min(created, key=lambda t: mf.line(t.node))
            return (
                f"`{mf.code(call)}` runs `{key}` {where} while it is still in training mode (`{key}` is "
                f"{_CREATED[origin.kind]} `{origin.shown}` on line {mf.line(origin.node)} and nothing calls "
                f"`{key}.eval()`): {consequence}; call `{key}.eval()` before inference"
            )
        if ENTRY not in tokens or not self.options["check-parameters"]:
            return None
        if key not in flow.params:
            return self._global_model(mf, flow, mc, name_based, where, consequence)
        fn = flow.node
        if not name_based or not isinstance(fn, cst.FunctionDef):
            return None
        if id(fn) in mf.index.method_class and not self._evaluation_scope(mf, fn):
            return None  # methods: the class that owns the loop switches modes (often in another file)
        if not (isinstance(call.func, cst.Name) or runs_model(call.func.attr.value) or half_forward(call.func)
                or mc.via_method):
            return None  # `model.predict(...)` of a high-level wrapper switches modes itself
        if not self._model_like_param(fn, key):
            return None
        if self._builds_a_module(flow.node, call):
            return None  # `model = model_cls(config)`, then `model.load_state_dict(...)`: a class handed in
        callers = self._callers_evaluate(mf, flow.node, key, 0)
        fresh = self._fresh_caller(mf, fn, key) if callers is True else None
        if callers is True and fresh is None:
            return None
        if self._key_sensitivity(mf, fn, key) == "no":
            return None  # the callers pass models without mode-dependent layers
        if fresh is not None:
            lc, ckey, origin = fresh
            return (
                f"`{mf.code(call)}` runs the parameter `{key}` {where} without `{key}.eval()`, and "
                f"`{mf.code(lc.node)}` on line {mf.line(lc.node)} hands it `{ckey}` as "
                f"{_CREATED[origin.kind]} `{origin.shown}` on line {mf.line(origin.node)}, never switched to "
                f"eval mode (another caller's switch does not reach this call): {consequence}; call "
                f"`{key}.eval()` at the start of `{flow.name}()`"
            )
        who = "its callers in this file do not" if callers is False else "it has no caller in this file that does"
        return (
            f"`{mf.code(call)}` runs the parameter `{key}` {where} without `{key}.eval()`: `{flow.name}()` "
            f"does not switch it to eval mode and {who}, so it runs in whatever mode it arrives in "
            f"(training mode after any training step); {consequence}; call `{key}.eval()` first"
        )

    def _handed_functions(self) -> Set[str]:
        """Names handed as an argument to some call of this file (`pool.starmap(evaluate_batch, jobs)`,
        `map(score, xs)`, `Thread(target=run)`, `partial(test, cfg)`): functions called by what they
        are handed to, with arguments we do not see (KGAT's evaluate_mp switches to eval, then maps)."""
        if self._handed is None:
            self._handed = {a.value.value for found in self._calls.values() for c, _ in found
                            for a in c.args if isinstance(a.value, cst.Name)}
        return self._handed

    def _global_model(self, mf: ModeFlow, flow: ScopeFlow, mc, name_based: bool, where: str, consequence: str) -> Optional[str]:
        """A model of the script's global scope (`net`) run by a top-level evaluation function
        (`def eval_training(epoch): ... net(images)`) that does not switch it, when every call of the
        function in this file comes where a training step left the model in training mode."""
        fn, key, call = flow.node, mc.key, mc.node
        if not (name_based and isinstance(fn, cst.FunctionDef) and mf.index.parent.get(id(fn)) is mf.module):
            return None
        if id(fn) in mf.index.method_class or key.split(".")[0] in flow.locals or not _MODEL_PARAM.search(key):
            return None
        if not (isinstance(call.func, cst.Name) or runs_model(call.func.attr.value) or mc.via_method):
            return None
        if self._callers_evaluate(mf, fn, key, 0, global_key=True) is not False:
            return None  # no caller here, or one that switches it / whose mode we cannot tell
        if self._key_sensitivity(mf, mf.module, key) == "no":
            return None
        return (
            f"`{mf.code(call)}` runs the global model `{key}` {where} without `{key}.eval()`: `{flow.name}()` "
            f"does not switch it to eval mode and its callers in this file call it while `{key}` is in training "
            f"mode (after a training step, or as built); {consequence}; call `{key}.eval()` first"
        )

    def _reads_globals(self, mf: ModeFlow, fn: cst.FunctionDef) -> bool:
        """A top-level function of a file whose script code builds or trains a model."""
        return self.options["check-parameters"] and mf.index.parent.get(id(fn)) is mf.module and (
            0 in self._creating or 0 in self._stepping
        )

    def _has_model_params(self, mf: ModeFlow, fn: cst.FunctionDef) -> bool:
        if not self.options["check-parameters"]:
            return False
        if id(fn) in mf.index.method_class and not self._evaluation_scope(mf, fn):
            return False
        return any(
            self._model_like_param(fn, p.name.value)
            for p in (*fn.params.posonly_params, *fn.params.params, *fn.params.kwonly_params)
        )

    def _model_like_param(self, fn: cst.FunctionDef, name: str) -> bool:
        for p in (*fn.params.posonly_params, *fn.params.params, *fn.params.kwonly_params):
            if p.name.value != name:
                continue
            if p.annotation is not None:
                ann = p.annotation.annotation
                if isinstance(ann, (cst.Name, cst.Attribute)):
                    qual = self.ctx.resolve(ann)
                    if qual and qual not in ("Module", "nn.Module") and self.ctx.classifier.is_module_base(qual):
                        return True
                    if qual and self.ctx.classifier.index.locate(qual) is not None:
                        return False  # a checked class that is not a module (`detector: Detector`): not a model
            return bool(_MODEL_PARAM.search(name))
        return False

    def _fresh_caller(self, mf: ModeFlow, fn: cst.FunctionDef, param: str, depth: int = 0):
        """A call of `fn` in this file that hands `param` a model built (or built and given weights
        with `load_state_dict`) in the caller and never switched or trained there: (local call, the
        caller's key, the latest origin), else None. `model = build(opts); model.load_state_dict(...);
        test(model)` runs the evaluation in training mode whatever the other callers do (set 13's
        Prototypical-Networks `eval()`). A whole model from `torch.load` is not fresh: it keeps the mode
        it was saved in. Also through a caller that only passes its own parameter on (`check_outputs(
        loader, model)` calling `greedy_decode(model, ...)`, called with a reloaded model: harvardnlp's
        annotated-transformer), two such callers deep."""
        for call, scope in self._calls.get(fn.name.value, ()):
            flow = mf.flow(scope if scope is not None else mf.module)
            lc = next((c for c in flow.local_calls if c.node is call and c.callee is fn), None) if flow else None
            ckey = lc.mapping.get(param) if lc is not None else None
            tokens = get(lc.state, ckey) if ckey is not None else frozenset()
            origin = _fresh_origin(mf, tokens) if ckey is not None else None
            if origin is not None:
                return lc, ckey, origin
            if (depth < 2 and isinstance(scope, cst.FunctionDef) and ckey in flow.params and tokens == {ENTRY}
                    and scope is not fn):
                found = self._fresh_caller(mf, scope, ckey, depth + 1)
                if found is not None:
                    return found
        return None

    def _fresh_holder_attribute(self, mf: ModeFlow, scope: cst.CSTNode, key: str) -> bool:
        """`self.model` in a method of a plain (non-module) class whose `__init__` builds it (`self.model =
        ResNet1D(...)`: training mode) when nothing in the file switches that attribute (no `<x>.model.eval()` /
        `.train(...)` and no method of the class that leaves it in eval): it is in training mode in every
        method (set 18's resnet1d: `Network.train()` trains `self.model`, then hands it to `test()`,
        which never switches it; the attribute's mode had counted as unknown)."""
        cls = mf.index.method_class.get(id(scope)) if isinstance(scope, cst.FunctionDef) else None
        root, _, attr = key.partition(".")
        params = scope.params.params if cls is not None else ()
        if cls is None or not params or params[0].name.value != root or "." in attr or not attr or self.ctx.is_module_class(cls):
            return False
        methods = mf.index.methods.get(id(cls), {})
        init = methods.get("__init__")
        init_flow = mf.flow(init) if init is not None else None
        if init_flow is None or not any(b.kind == "construct" for b in init_flow.bindings.get(key, ())):
            return False
        fw = self.ctx.framework
        for node, _ in self._calls.get(fw.eval_method, []) + self._calls.get(fw.train_method, []):
            func = node.func
            if (isinstance(func, cst.Attribute) and func.attr.value in (fw.eval_method, fw.train_method)
                    and isinstance(func.value, cst.Attribute) and func.value.attr.value == attr):
                return False  # `net.model.eval()` / `self.model.train()` anywhere in the file
        for m in methods.values():
            flow = mf.flow(m)
            if flow is None:
                continue
            if any(b.kind != "construct" for b in flow.bindings.get(key, ())):
                return False  # rebound to something else somewhere
            if any(isinstance(t, EvalSite) for k, toks in flow.exit.items() if k == key or k.startswith(key + ".") for t in toks):
                return False  # a method that leaves it in eval (`self.set_eval()` helpers)
        return True

    @staticmethod
    def _parameter_attribute(mf: ModeFlow, flow: ScopeFlow, key: str) -> bool:
        """`context.model` of a parameter `context` that is not a method's receiver (whose attributes
        the holder checks answer for): its callers say what they hand over (`_mapped`)."""
        head, _, rest = key.partition(".")
        if not rest or "." in rest or head not in flow.params:
            return False
        return not (id(flow.node) in mf.index.method_class and flow.params[:1] == (head,))

    @staticmethod
    def _mapped(mapping: Dict[str, str], param: str) -> Optional[str]:
        """The caller's key for `param`, or for an attribute of a parameter (`context.model` when the
        caller passes `state` as `context`: `state.model`): upstream18's TrOCR, whose `train(context)`
        runs `validate(context)`, which hands `context.model` to `predict(model, ...)`."""
        if param in mapping:
            return mapping[param]
        head, _, rest = param.partition(".")
        base = mapping.get(head) if rest else None
        return f"{base}.{rest}" if base else None

    def _callers_evaluate(self, mf: ModeFlow, fn: cst.FunctionDef, param: str, depth: int,
                          global_key: bool = False) -> Optional[bool]:
        """True: some caller in this file switches the argument to eval mode (or its own callers
        may), or no caller shows training mode and some pass something whose mode we cannot tell;
        False: no caller switches it and some caller passes it where a training step left it in
        training mode (`train(model); evaluate(model)` in the epoch loop, whatever an `if
        args.evaluate:` branch passes), or every caller passes a model built there; None: no caller
        in this file. `global_key`: `param` is a global name the function reads."""
        any_caller = unknown = trained = False
        for call, scope in self._calls.get(fn.name.value, ()):
            flow = mf.flow(scope if scope is not None else mf.module)
            lc = next((c for c in flow.local_calls if c.node is call and c.callee is fn), None) if flow else None
            if flow is None or lc is None:
                unknown = unknown or flow is None
                continue
            any_caller = True
            ckey = param if global_key else self._mapped(lc.mapping, param)
            if ckey is None:
                unknown = True  # an expression we cannot follow
                continue
            ckey = held_attribute(flow, ckey)
            tokens = get(lc.state, ckey)
            if TRAINED in tokens:
                tokens = tokens - {TRAIN}  # `model.train()` then a loop that may run zero times: for training
            if _is_tokens_evaluated(tokens) or any(isinstance(t, Created) and t.kind == "from_pretrained" for t in tokens):
                return True
            if ENTRY in tokens:
                if global_key and isinstance(flow.node, cst.FunctionDef) and depth < 3 and not (
                    ckey in flow.params or ckey.split(".")[0] in flow.locals
                ):
                    if self._callers_evaluate(mf, flow.node, ckey, depth + 1, global_key=True) is not False:
                        return True
                    continue
                if self._fresh_holder_attribute(mf, flow.node, ckey):
                    pass  # `self.model` of a plain holder class that built it and never switches it
                elif not (isinstance(flow.node, cst.FunctionDef) and depth < 3 and (
                        ckey in flow.params or self._parameter_attribute(mf, flow, ckey))):
                    unknown = True  # a global or free name: set elsewhere
                elif self._callers_evaluate(mf, flow.node, ckey, depth + 1) is True:
                    return True
            trained = trained or TRAINED in tokens
            if any(t is not ENTRY and t is not TRAINED and not isinstance(t, Created) for t in tokens):
                unknown = True  # bound to the result of some call: its mode is unknown
        if not any_caller:  # (another file's callers are judged there: `_project_evaluations`)
            if fn.name.value in self._handed_functions():
                return True  # `pool.starmap(evaluate_batch, ...)`: called where we do not follow it
            if fn.name.value.startswith("__") and fn.name.value.endswith("__"):
                # `__call__` of an evaluator object, run as `evaluator(net, dl)`: called through its
                # instances, which calls by name do not see (nor what their callers switched)
                return True
            return True if mf.imported_elsewhere(fn) or mf.never_called(fn) else None
        return False if trained or not unknown else True

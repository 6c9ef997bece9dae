"""The code catalogue as data: every code modelint can report, and what it means.

The ground floor of the package (like pyflakes' `messages.py`): it imports nothing of modelint's,
so every other module may import it. Static rules describe themselves in their own class
(`modelint.rules`, one file each) and become `RuleInfo`s through `Rule.info()`; the codes that no
static rule produces live here: the tool's own codes (MDL0xx, MDL999), the runtime tracer's
(MDL6xx) and mode-branch coverage's (MDL5xx). `modelint.catalog` joins them all.

A code, once shipped, keeps its meaning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Dict


@dataclass(frozen=True)
class RuleInfo:
    code: str
    name: str
    level: str
    summary: str
    what: str = ""
    why: str = ""
    example: str = ""
    use_instead: str = ""
    fixable: bool = False
    default: bool = True
    # "static" rules are run by `modelint check`; "tool" codes are emitted by the engine itself;
    # "trace" codes by `modelint trace`; "coverage" by the pytest plugin / `modelint coverage`.
    kind: str = "static"
    # Per-rule options and their defaults (`[tool.modelint.rules.CODE]`).
    options: Dict[str, Any] = field(default_factory=dict)
    # What each option does (same keys as `options`).
    option_docs: Dict[str, str] = field(default_factory=dict)
    # For fixable rules: what the fix changes and why it is safe or unsafe (one paragraph).
    fix_safety: str = ""



class Described:
    """What a rule class says about itself, for every front end (Python rules in `rules/base.py`,
    Rust rules in `rust/rule.py`): its code, docs and options, and `info()`, the `RuleInfo` the
    catalogue shows."""

    code: ClassVar[str]
    name: ClassVar[str]
    level: ClassVar[str] = "error"
    summary: ClassVar[str] = ""
    what: ClassVar[str] = ""
    why: ClassVar[str] = ""
    example: ClassVar[str] = ""
    use_instead: ClassVar[str] = ""
    fixable: ClassVar[bool] = False
    default: ClassVar[bool] = True
    # Option name -> default value; `[tool.modelint.rules.CODE]` may override them.
    options_schema: ClassVar[Dict[str, Any]] = {}
    # Option name -> what it does (every option in `options_schema` has one; a test checks).
    option_docs: ClassVar[Dict[str, str]] = {}
    # What the fix changes and why it is safe or unsafe; for a rule without a fix, why there is none.
    fix_safety: ClassVar[str] = ""

    @classmethod
    def info(cls) -> RuleInfo:
        return RuleInfo(code=cls.code, name=cls.name, level=cls.level, summary=cls.summary, what=cls.what,
                        why=cls.why, example=cls.example, use_instead=cls.use_instead, fixable=cls.fixable,
                        default=cls.default, kind="static", options=dict(cls.options_schema),
                        option_docs=dict(cls.option_docs), fix_safety=cls.fix_safety)

TOOL_CODES = (
    RuleInfo(
        code="MDL000",
        name="parse-error",
        level="error",
        kind="tool",
        summary="The file could not be read or parsed, so no rule checked it.",
        what="Reports a file that is not valid Python (or not valid text in its declared encoding).",
        why="A file that does not parse is not checked at all: every other finding in it is hidden.",
        example="def forward(self, x)\n    return x\n",
        use_instead="def forward(self, x):\n    return x\n",
    ),
    RuleInfo(
        code="MDL001",
        name="unused-suppression",
        level="info",
        kind="tool",
        default=False,
        summary="A `# modelint: ignore[...]` comment suppresses nothing.",
        what="Reports `# modelint: ignore` comments (with or without codes) on lines where no "
        "selected rule reported a finding that the comment would suppress.",
        why="Stale suppressions hide future bugs on that line and mislead readers about what the "
        "line does. (`# noqa` comments are shared with other linters and are never reported.)",
        example="x = F.dropout(x, 0.1, self.training)  # modelint: ignore[MDL101]\n",
        use_instead="x = F.dropout(x, 0.1, self.training)\n",
    ),
    RuleInfo(
        code="MDL999",
        name="internal-error",
        level="error",
        kind="tool",
        summary="A rule crashed on this file; the other rules and files were still checked.",
        what="Reports that a rule raised an exception while checking the file.",
        why="The file was only partly checked. Please report it with the file that triggers it.",
    ),
)


TRACE_CODES = (
    RuleInfo(
        code="MDL600",
        name="trace-target-failed",
        level="error",
        kind="trace",
        summary="A `modelint trace` target could not be traced: its factory raised, an import failed, "
        "the process crashed or timed out, or the forward raised in both modes.",
        what="Reports a trace target (`package.module:factory` or `path/to/file.py:factory`) that "
        "produced no result. Each target runs in its own subprocess; this finding names the stage "
        "(import, factory, forward, crash, timeout) and, where one is known, the user source line.",
        why="A target that fails is not checked at all, so every mode bug in it stays hidden. The "
        "other targets still run.",
        example="def policy():\n    model = Policy(hidden=64)\n    return model  # inputs missing\n",
        use_instead="def policy():\n    model = Policy(hidden=64)\n    return model, (torch.randn(4, 10, 2),)\n",
    ),
    RuleInfo(
        code="MDL601",
        name="eval-consumes-randomness",
        level="error",
        kind="trace",
        summary="An eval forward drew random numbers, or two eval forwards with different seeds "
        "gave different outputs.",
        what="Runs the model twice in eval mode under `torch.inference_mode()`, each time after "
        "seeding torch, Python `random` and NumPy with a different seed. Reports a random op that "
        "used a global generator (dropout with p>0 and train=True, multinomial, bernoulli, rand, "
        "normal_, SDPA with dropout_p>0, ...), a generator state that moved, or outputs that differ. "
        "The finding names the op, the innermost module and the user source line. Sampling with a "
        "private `torch.Generator` is not reported.",
        why="Eval predictions become non-reproducible: metrics jitter between runs, exported models "
        "behave differently from the evaluated ones, and greedy decoding silently samples.",
        example="def forward(self, x):\n    h = F.dropout(self.fc(x), p=0.2)  # training defaults to True\n"
        "    return self.out(h)\n",
        use_instead="def forward(self, x):\n    h = F.dropout(self.fc(x), p=0.2, training=self.training)\n"
        "    return self.out(h)\n",
    ),
    RuleInfo(
        code="MDL602",
        name="eval-mutates-state",
        level="error",
        kind="trace",
        summary="A parameter or buffer changed during an eval forward.",
        what="Snapshots every parameter and buffer before each eval forward and compares them bit for "
        "bit afterwards. Reports each module whose tensors changed, with the op that wrote them "
        "(e.g. `aten::batch_norm` with training=True, an in-place `add_` on a buffer) and its source "
        "line. Buffers newly registered during the forward are not reported; BatchNorm with "
        "`track_running_stats=False` uses batch statistics by design and writes nothing.",
        why="Evaluating the model changes it: batch-norm statistics drift towards the eval data, the "
        "next evaluation gives different numbers and the saved checkpoint differs from the trained one.",
        example="return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,\n"
        "                    training=True)\n",
        use_instead="return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,\n"
        "                    training=self.training)\n",
    ),
    RuleInfo(
        code="MDL603",
        name="module-in-training-mode-during-eval",
        level="error",
        kind="trace",
        summary="A mode-dependent module ran with training=True while the root model was in eval mode.",
        what="Puts every module in training mode, calls `model.eval()` and watches every module call "
        "with a global forward pre-hook. Reports modules whose behaviour depends on the mode "
        "(dropout, batch norm, user modules that read `self.training`) that still run with "
        "training=True. Points at a `train()` override that does not propagate the mode when an "
        "ancestor has one, else at the call.",
        why="`model.eval()` did not reach the module: a `train()` override that does not call "
        "`super().train(mode)`, a direct `module.training = True`, or a module that is not registered. "
        "Dropout stays on and batch norm keeps updating its statistics during evaluation.",
        example="def train(self, mode=True):\n    self.training = mode  # children keep their mode\n"
        "    return self\n",
        use_instead="def train(self, mode=True):\n    super().train(mode)\n    return self\n",
    ),
    RuleInfo(
        code="MDL604",
        name="unregistered-module-called",
        level="error",
        kind="trace",
        summary="A module ran during a forward but is not in `model.modules()`.",
        what="Compares every module call seen by a global forward pre-hook with `model.modules()`. "
        "Reports the class and where the module lives: the plain list/dict/tuple attribute that "
        "holds it, a module registered during the forward, or the line that built it inside forward.",
        why="Unregistered modules are invisible to `model.eval()`/`train()`, `.to(device)`, "
        "`model.parameters()` (the optimizer never trains them) and `state_dict()` (they are not "
        "saved). Dropout kept in a plain list stays on in eval.",
        example="self.layers = [nn.Linear(16, 16), nn.Dropout(0.1)]\n",
        use_instead="self.layers = nn.ModuleList([nn.Linear(16, 16), nn.Dropout(0.1)])\n",
    ),
    RuleInfo(
        code="MDL605",
        name="mode-has-no-effect",
        level="warning",
        kind="trace",
        summary="The model declares dropout or batch norm, but switching between train() and eval() "
        "changes nothing at run time.",
        what="Reports a model that registers Dropout with p>0 or batch norm while its two training "
        "forwards (different seeds) are identical and equal to the eval output, and a registered "
        "Dropout with p>0 that never ran in any forward while the training forward drew no random "
        "numbers at all (declared in `__init__`, never called in `forward`).",
        why="The regularisation the model was designed with is not applied: training overfits and "
        "hyper-parameters such as the dropout rate silently do nothing.",
        example="self.drop = nn.Dropout(0.1)\n...\ndef forward(self, x):\n    return self.fc(x)\n",
        use_instead="self.drop = nn.Dropout(0.1)\n...\ndef forward(self, x):\n    return self.fc(self.drop(x))\n",
    ),
    RuleInfo(
        code="MDL606",
        name="mode-forward-fails",
        level="error",
        kind="trace",
        summary="The forward raises in one mode but not in the other.",
        what="Reports the exception and the innermost user source frame when the training forwards "
        "succeed and the eval forwards raise, or the other way round.",
        why="A code path only taken in one mode is broken; typically the eval branch is never run by "
        "the training loop and fails only at validation or deployment time.",
        example="if self.training:\n    return self.head(x)\nreturn self.head(x.mean(0))  # wrong shape\n",
        use_instead="if self.training:\n    return self.head(x)\nreturn self.head(x)\n",
    ),
    RuleInfo(
        code="MDL607",
        name="training-output-not-differentiable",
        level="warning",
        kind="trace",
        summary="In training mode with grad enabled, no floating-point output requires grad although "
        "the model has trainable parameters.",
        what="Looks at every floating-point tensor in the training output structure (tuples, lists, "
        "dicts, dataclasses). Integer outputs, such as sampled actions, are not considered; a model "
        "whose outputs are all integers is not reported.",
        why="`loss.backward()` fails or, worse, trains nothing: the forward detached its result, ran "
        "under `torch.no_grad()`, or rebuilt tensors from `.item()`/NumPy values.",
        example="def forward(self, x):\n    with torch.no_grad():\n        return self.fc(x)\n",
        use_instead="def forward(self, x):\n    return self.fc(x)\n",
    ),
    RuleInfo(
        code="MDL608",
        name="eval-depends-on-grad-mode",
        level="error",
        kind="trace",
        summary="In eval mode the model computes something else with grad enabled than under "
        "`torch.no_grad()`/`torch.inference_mode()`.",
        what="Runs the eval forward under `torch.inference_mode()` and once with grad enabled (same "
        "eval mode); reports when the outputs differ beyond a tolerance (atol 1e-4, rtol 1e-3 at "
        "least: fused kernels round differently by far less) while two inference-mode forwards agree, "
        "or when only one of them raises. Points at a `torch.is_grad_enabled()` branch in the model's "
        "classes, else at the `nn.MultiheadAttention`/`nn.TransformerEncoderLayer` whose fused fast "
        "path runs only without grad.",
        why="Your validation (no_grad) and your saliency, attribution or adversarial evaluation (grad "
        "on) compute different models: the fast path of `nn.TransformerEncoder` returns zeros at padded "
        "positions and handles fully masked rows differently, and code branching on grad mode changes "
        "the result, so metrics, explanations and attacks disagree about the same model.",
        example="def forward(self, x):\n    if torch.is_grad_enabled():\n        x = self.augment(x)\n"
        "    return self.head(x)\n",
        use_instead="def forward(self, x):\n    if self.training:\n        x = self.augment(x)\n"
        "    return self.head(x)\n",
    ),
)


_MEASURED = (
    "A mode branch is an `if`/`elif` in a method of an `nn.Module` class whose test reads the mode "
    "(`self.training`, `not self.training`, a `training`/`deterministic`-style parameter, a local derived "
    "from them, `torch.is_grad_enabled()`), including early exits such as `if not self.training: return x`. "
    "An `if` without `else` has an implicit arm: the fall-through, taken when the test is false. "
    "Which arms ran comes from coverage.py's branch (arc) data: an arm ran when execution went from the "
    "line of the test to that arm. Conditional expressions (`a if self.training else b`) and tests whose "
    "arm is on the same line cannot be measured from line arcs; they are listed in the summary table "
    "but never reported. Suppress one branch with `# modelint: ignore[CODE]` on the line of the test."
)

COVERAGE_CODES = (
    RuleInfo(
        code="MDL501",
        name="eval-arm-never-ran",
        level="warning",
        kind="coverage",
        summary="The eval arm of a mode branch never ran in the test suite.",
        what="Reports each mode branch of a module whose eval arm (the arm taken when the module is in "
        "eval mode, or when grad mode is off for `torch.is_grad_enabled()`) was never executed while the "
        "test suite ran. " + _MEASURED,
        why="The eval path is what ships: validation, export and inference all run it. Most suites "
        "only call `model(x)` right after construction, in training mode, so the eval arm (greedy "
        "decoding instead of sampling, skipping drop-path, a cached mask) can be broken, or crash, "
        "with every test green.",
        example="class Decoder(nn.Module):\n"
        "    def forward(self, logits):\n"
        "        if self.training:\n"
        "            return logits.softmax(-1).multinomial(1)\n"
        "        return logits.argmax(-1, keepdim=True)\n"
        "\n"
        "\n"
        "def test_decoder_shapes():\n"
        "    assert Decoder()(torch.randn(4, 10)).shape == (4, 1)  # training mode only\n",
        use_instead="def test_decoder_shapes():\n"
        "    decoder = Decoder()\n"
        "    assert decoder(torch.randn(4, 10)).shape == (4, 1)\n"
        "\n"
        "\n"
        "def test_decoder_is_greedy_in_eval():\n"
        "    decoder = Decoder().eval()\n"
        "    logits = torch.randn(4, 10)\n"
        "    assert torch.equal(decoder(logits), logits.argmax(-1, keepdim=True))\n",
    ),
    RuleInfo(
        code="MDL502",
        name="train-arm-never-ran",
        level="warning",
        kind="coverage",
        summary="The training arm of a mode branch never ran in the test suite.",
        what="Reports each mode branch of a module whose training arm (the arm taken when the module is "
        "in training mode, or when grad mode is on for `torch.is_grad_enabled()`) was never executed "
        "while the test suite ran. " + _MEASURED,
        why="Suites that only check inference (a pretrained model in eval mode, an export test) never "
        "run the training path: stochastic depth, sampling, auxiliary losses. A bug there shows up only "
        "in a long training run, after the data and the GPUs have been paid for.",
        example="class DropPath(nn.Module):\n"
        "    def forward(self, x):\n"
        "        if not self.training:\n"
        "            return x\n"
        "        mask = x.new_empty(x.shape[0], 1).bernoulli_(1 - self.p)\n"
        "        return x * mask / (1 - self.p)\n"
        "\n"
        "\n"
        "def test_inference():\n"
        "    model = DropPath().eval()  # the training arm never runs\n"
        "    assert torch.equal(model(x), x)\n",
        use_instead="def test_inference():\n"
        "    model = DropPath().eval()\n"
        "    assert torch.equal(model(x), x)\n"
        "\n"
        "\n"
        "def test_training_drops_whole_rows():\n"
        "    out = DropPath(p=0.5).train()(torch.ones(64, 8))\n"
        "    assert ((out == 0).all(1) | (out == 2).all(1)).all()\n",
    ),
)


# The live-training guard's codes (`modelint.guard`, MDL6xx like the tracer's).
GUARD_CODES: tuple = (
    RuleInfo(
        code="MDL610",
        name="trained-in-eval-mode",
        level="error",
        kind="guard",
        summary="At an optimizer step, a mode-dependent module whose parameters are being trained "
        "is in eval mode.",
        what="`modelint.guard` checks, before every optimizer step (a step pre-hook), each "
        "mode-dependent module (dropout with p>0, batch/instance norm with running statistics, user "
        "modules reading `self.training`) whose owner (the nearest module up the tree with parameters) "
        "has parameters this optimizer steps. The finding names the modules (`encoder.layer.3.dropout`), "
        "their mode and the `.eval()`/`.train(False)` call that set it, recorded while the guard runs, "
        "or says the mode predates the guard (`from_pretrained()` returns models in eval mode). Modules "
        "listed in `frozen=` and frozen subtrees (no parameter requires grad) are not reported.",
        why="The run trains with dropout off and batch norm frozen on its running statistics: it "
        "overfits, and nothing errors. A validation helper that calls `model.eval()` and never switches "
        "back does this to every later epoch; a model from `from_pretrained()` does it from the start.",
        example="model = AutoModelForSequenceClassification.from_pretrained(path)  # eval mode\n"
        "for batch in loader:\n"
        "    model(**batch).loss.backward()\n"
        "    optimizer.step()\n",
        use_instead="model = AutoModelForSequenceClassification.from_pretrained(path)\n"
        "model.train()\n"
        "for batch in loader:\n"
        "    model(**batch).loss.backward()\n"
        "    optimizer.step()\n",
    ),
    RuleInfo(
        code="MDL611",
        name="frozen-statistics-updated",
        level="error",
        kind="guard",
        summary="The running statistics of a frozen subtree changed between optimizer steps.",
        what="`modelint.guard` keeps one copy of the running statistics (`running_mean`, "
        "`running_var`, `num_batches_tracked`, any `running_*` buffer) of frozen subtrees: modules "
        "listed in `frozen=`, and modules whose owner's parameters all have requires_grad=False. At "
        "each checked step it compares them bit for bit and reports each module whose statistics "
        "changed, with the `.train()` call that put it in train mode.",
        why="`backbone.requires_grad_(False)` freezes the weights but not batch norm's statistics: "
        "after `model.train()` the frozen backbone normalises with batch statistics and keeps "
        "updating its running averages towards the fine-tuning batches, so the features the head is "
        "trained on drift and the pretrained statistics are lost.",
        example="backbone.requires_grad_(False)\n"
        "for epoch in range(epochs):\n"
        "    model.train()  # the backbone's batch norm is back in train mode\n"
        "    train_one_epoch(model, loader)\n",
        use_instead="backbone.requires_grad_(False)\n"
        "for epoch in range(epochs):\n"
        "    model.train()\n"
        "    backbone.eval()  # frozen: keep its statistics\n"
        "    train_one_epoch(model, loader)\n",
    ),
    RuleInfo(
        code="MDL612",
        name="frozen-module-in-train-mode",
        level="warning",
        kind="guard",
        summary="A frozen module is in train mode at an optimizer step (reported once per module).",
        what="Reports, once per module, a mode-dependent module in a subtree listed in `frozen=`, or "
        "a batch/instance norm layer in a subtree whose parameters all have requires_grad=False, that "
        "is in train mode at a checked step while its statistics did not (yet) change (when they did, "
        "MDL611 is reported instead). Dropout in a subtree frozen only by requires_grad is not "
        "reported: parameter-efficient fine-tuning (LoRA, adapters) freezes the base weights and "
        "trains with their dropout on, on purpose.",
        why="A module declared frozen still behaves as in training: its dropout randomises the "
        "features and its batch norm updates its statistics as soon as it runs.",
        example="with modelint.guard(model, opt, frozen=[model.backbone]):\n"
        "    model.train()  # puts the backbone back in train mode\n",
        use_instead="with modelint.guard(model, opt, frozen=[model.backbone]):\n"
        "    model.train()\n"
        "    model.backbone.eval()\n",
    ),
    RuleInfo(
        code="MDL613",
        name="validation-in-train-mode",
        level="error",
        kind="guard",
        summary="The model was evaluated (forward under `no_grad`/`inference_mode`, or a validation "
        "loop) while mode-dependent modules were in train mode.",
        what="`modelint.guard` watches the root model's forward: a forward with grad disabled while "
        "mode-dependent modules are in train mode is reported once per call site, with the modules "
        "and the `.train()` call that left them on. The Lightning callback checks at "
        "`on_validation_start`, the Hugging Face callback at every prediction step.",
        why="Validation metrics are computed with dropout on and batch norm on batch statistics, "
        "and batch norm's running statistics are updated from the validation data: metrics are noisy "
        "and optimistic or pessimistic at random, checkpoint selection picks the wrong epoch, and the "
        "model changes every time it is evaluated.",
        example="def validate(model, loader):\n"
        "    with torch.no_grad():\n"
        "        return sum(metric(model(x), y) for x, y in loader)\n",
        use_instead="def validate(model, loader):\n"
        "    model.eval()\n"
        "    with torch.no_grad():\n"
        "        score = sum(metric(model(x), y) for x, y in loader)\n"
        "    model.train()\n"
        "    return score\n",
    ),
    RuleInfo(
        code="MDL614",
        name="eval-forward-draws-random",
        level="error",
        kind="guard",
        summary="A forward of the model in eval mode drew random numbers during the run.",
        what="The live counterpart of the tracer's MDL601: every forward of the root model in eval "
        "mode compares the random generators' states (torch, CUDA, Python `random`, NumPy) before "
        "and after. After one moved, the next eval forward runs under the tracer's op logger, which "
        "names the op (`aten::bernoulli_`, `aten::multinomial`, ...), the innermost module and the "
        "source line; if no eval forward follows, the detection alone is reported when the guard "
        "stops. Sampling with a private `torch.Generator` is not reported.",
        why="Evaluation results are not reproducible: metrics jitter between runs, checkpoint "
        "selection is noisy, and the deployed model behaves differently from the evaluated one.",
        example="def forward(self, x):\n    return self.out(F.dropout(self.fc(x), p=0.2))\n",
        use_instead="def forward(self, x):\n"
        "    return self.out(F.dropout(self.fc(x), p=0.2, training=self.training))\n",
    ),
)


TRACE_CODE_NAMES = tuple(info.code for info in TRACE_CODES)
TRACE_BY_CODE = {info.code: info for info in TRACE_CODES}
# Every code a run of the model can report: the tracer's and the live guard's.
RUNTIME_BY_CODE = {info.code: info for info in TRACE_CODES + GUARD_CODES}

# Codes the engine reports whatever the selection: a file that was not (fully) checked.
PARSE_ERROR = "MDL000"
UNUSED_SUPPRESSION = "MDL001"
INTERNAL_ERROR = "MDL999"
ALWAYS_SHOWN = (PARSE_ERROR, INTERNAL_ERROR)
TOOL_BY_CODE = {info.code: info for info in TOOL_CODES}

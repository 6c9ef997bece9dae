"""Catalogue entries for mode-branch coverage (MDL501, MDL502): arms of a mode branch that the test
suite never ran. Reported by the pytest plugin (`pytest --modelint-modes`) and by
`modelint coverage` from an existing coverage.py data file.

No torch and no coverage import here: `modelint rules` and the SARIF writer read this module.
"""

from __future__ import annotations

from modelint.catalog import RuleInfo

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

"""Framework profiles beyond PyTorch (issue 19): selection from imports, merged profiles for mixed
files, and the rules that read framework-specific facts (each exemption with a VALID and an INVALID
example that are not copies of the code that prompted it)."""

from __future__ import annotations

import pytest

from modelint.engine import check_source
from modelint.frameworks import KERAS, MINDSPORE, MLX, PADDLE, PROFILES, TORCH, profile_for


def codes(source: str, *select: str):
    return [(f.code, f.line) for f in check_source(source, select=list(select) or None)
            if f.code not in ("MDL000", "MDL001")]


@pytest.mark.parametrize("aliases, expected", [
    ({}, TORCH),
    ({"torch": "torch"}, TORCH),
    ({"keras": "keras"}, KERAS),
    ({"tf": "tensorflow"}, KERAS),
    ({"mx": "mlx.core", "nn": "mlx.nn"}, MLX),
    ({"paddle": "paddle", "F": "paddle.nn.functional"}, PADDLE),
    ({"ops": "mindspore.ops"}, MINDSPORE),
])
def test_a_file_gets_the_profile_of_the_framework_it_imports(aliases, expected):
    assert profile_for(aliases) is expected


def test_a_mixed_file_looks_each_call_up_in_its_own_framework():
    both = profile_for({"torch": "torch", "mx": "mlx.core"})
    assert both.parts == (TORCH, MLX)
    assert {"torch.randn", "mlx.core.random.normal"} <= both.sampling_calls
    assert both.in_namespace("mlx.nn.Linear") and both.in_namespace("torch.nn.Linear")
    assert profile_for({"mx": "mlx.core", "torch": "torch"}) is both  # memoised, order-free


def test_profiles_share_the_scalars_rules_compare_against():
    # Switch names a rule compares with `==` must never be an empty match for a real method name.
    for p in PROFILES:
        assert p.train_method in ("", "train") and p.eval_method in ("", "eval")
        assert p.mode_keyword == "training"


MIXED_MLX = """
import mlx.core as mx
import mlx.nn as nn

class Stack(nn.Module):
    def __init__(self, dims):
        super().__init__()
        self.layers = [nn.Linear(a, b) for a, b in zip(dims, dims[1:])]  # MLX registers plain lists

    def __call__(self, x):
        for layer in self.layers:
            x = layer(x)
        return x

def convert(path):
    import torch  # weight conversion: the file now imports torch too
    return torch.load(path)
"""


def test_mdl201_follows_the_class_framework_in_a_mixed_file():
    assert codes(MIXED_MLX, "MDL201") == []
    torch_twin = MIXED_MLX.replace("import mlx.nn as nn", "import torch.nn as nn").replace("__call__", "forward")
    assert codes(torch_twin, "MDL201") == [("MDL201", 8)]


PADDLE_SWITCH = """
import paddle.nn as nn

class Wrapper(nn.Layer):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def eval(self):
        self.training = False
        for layer in self.model.sublayers():
            layer.training = False
"""


def test_mdl203_knows_paddles_switch_contract():
    # Paddle: `eval()` takes no argument, returns None and sets `training` itself: this is its contract.
    assert codes(PADDLE_SWITCH, "MDL203") == []
    # Not setting the mode at all is still the bug, in Paddle too.
    broken = PADDLE_SWITCH.replace("        self.training = False\n", "").replace("layer.training = False", "pass")
    assert [c for c, _ in codes(broken, "MDL203")] == ["MDL203"]
    # The same override in PyTorch breaks `eval()`'s return value.
    torch_twin = PADDLE_SWITCH.replace("import paddle.nn as nn", "import torch.nn as nn").replace("nn.Layer", "nn.Module")
    assert [c for c, _ in codes(torch_twin, "MDL203")] == ["MDL203"]


MLX_KEY = """
import mlx.core as mx
import mlx.nn as nn

class Posterior(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.proj = nn.Linear(dim, 2 * dim)

    def __call__(self, x, key=None):
        mean, logvar = mx.split(self.proj(x), 2, axis=-1)
        return mean + mx.exp(0.5 * logvar) * mx.random.normal(mean.shape, key=key)
"""


def test_mdl104_an_mlx_key_parameter_is_the_callers_draw():
    assert codes(MLX_KEY, "MDL104") == []
    kept = MLX_KEY.replace("def __call__(self, x, key=None):", "def __call__(self, x):").replace("key=key", "key=self.key")
    assert codes(kept, "MDL104") == [("MDL104", 12)]


PADDLE_DROPOUT = """
import paddle.nn as nn
import paddle.nn.functional as F

class Head(nn.Layer):
    def forward(self, x):
        return F.dropout(x, p=0.1)
"""


def test_paddle_functional_dropout_defaults_to_training():
    assert codes(PADDLE_DROPOUT, "MDL101") == [("MDL101", 7)]
    assert codes(PADDLE_DROPOUT.replace("p=0.1)", "p=0.1, training=self.training)"), "MDL101") == []


def test_mindspore_ops_dropout_defaults_to_training():
    source = """
import mindspore.nn as nn
from mindspore import ops

class Head(nn.Cell):
    def construct(self, x):
        return ops.dropout(x, p=0.1)
"""
    assert codes(source, "MDL101") == [("MDL101", 7)]
    assert codes(source.replace("p=0.1)", "p=0.1, training=self.training)"), "MDL101") == []


def test_keras_layers_built_in_call_follow_the_call_context():
    # A Keras Dropout built inside `call` reads the mode from the call context: not MDL202.
    source = """
import keras

class Block(keras.layers.Layer):
    def call(self, x, training=None):
        return keras.layers.Dropout(0.1)(x)
"""
    assert codes(source, "MDL202") == []


def _loop(fixture: str) -> str:
    """The fixture's training loop with `model.train()` dropped from `evaluate` and from the epoch:
    validation leaves the model in eval mode for the next epoch's updates."""
    from pathlib import Path

    source = (Path(__file__).parent.parent / fixture).read_text()
    return source.replace("    model.train()\n    return", "    return", 1).replace("        model.train()\n", "", 1)


@pytest.mark.parametrize("fixture, step", [("fixtures/paddle/text_classifier.py", "loss.backward()"),
                                           ("fixtures/mlx/mlp.py", "optimizer.update()")])
def test_mdl301_reads_each_frameworks_training_step(fixture, step):
    from pathlib import Path

    clean = (Path(__file__).parent.parent / fixture).read_text()
    assert codes(clean, "MDL301") == []
    found = [f for f in check_source(_loop(fixture), select=["MDL301"])]
    assert [f.code for f in found] == ["MDL301"] and step in found[0].message

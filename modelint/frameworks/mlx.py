"""MLX's profile (`mlx.nn`, `mlx.core`; with mlx-lm): the names a rule needs for MLX code.

MLX has PyTorch's mode design: `mlx.nn.Module.train(mode=True)` / `.eval()` set `self.training`, which
`nn.Dropout` and `nn.BatchNorm` read; the forward pass is `__call__`. So PyTorch's bugs have the same
codes here: `.eval()` never undone in a training loop, inference in training mode, `mx.random.*`
sampling in `__call__` with no mode branch (MDL104), a `nn.Dropout` built inside `__call__` (MDL202).
Unlike PyTorch, an `mlx.nn.Module` registers the modules held in plain lists and dicts
(`self.layers = [nn.Linear(...)]` is how mlx-lm writes its models), so MDL201 has nothing to report.
There is no global grad mode (gradients come from `nn.value_and_grad(model, loss_fn)`), and a
training step is `loss, grads = loss_and_grad(model, x, y)` then `optimizer.update(model, grads)`.
Nothing here imports mlx.
"""

from __future__ import annotations

import re

from modelint.frameworks.profile import NO_FUNCTIONAL_MODE_CALLS, NO_GLOBAL_MODES, NO_LAYER_ARGS, Profile

_NN = "mlx.nn."
_DROPOUT = "drops activations at random even after `model.eval()`"
_BN = "normalises with the statistics of the current batch even after `model.eval()` (its running statistics start from scratch every call)"
_TRANSFORMER = "gets fresh random weights on every call, and applies its dropout even after `model.eval()`"

_RANDOM = ("normal", "uniform", "bernoulli", "categorical", "randint", "gumbel", "truncated_normal",
           "multivariate_normal", "laplace", "permutation")

MLX = Profile(
    name="mlx",
    import_roots=frozenset({"mlx", "mlx_lm", "mlx_vlm"}),
    namespace="mlx.",
    # --- modules
    layers_namespace=_NN,
    non_module_classes=frozenset(),
    non_module_packages=("mlx.nn.init", "mlx.nn.losses", "mlx.nn.utils"),
    module_bases=frozenset({"mlx.nn.Module", "mlx.nn.layers.base.Module"}),
    trainer_module_bases=frozenset(),
    trainer_module_suffix="\0",  # MLX has no trainer-owned module class
    containers=frozenset({"Sequential"}),
    list_container="",
    dict_container="",
    register_methods=frozenset(),
    registers_plain_containers=True,
    stateless_layers=frozenset(),
    mode_sensitive_layers={
        "Dropout": _DROPOUT, "Dropout2d": _DROPOUT, "Dropout3d": _DROPOUT, "BatchNorm": _BN,
        **{n: _TRANSFORMER for n in ("Transformer", "TransformerEncoder", "TransformerDecoder",
                                     "TransformerEncoderLayer", "TransformerDecoderLayer")},
    },
    mode_sensitive_pattern=re.compile(r"^(Dropout\w*|BatchNorm|Transformer\w*)$"),
    # `Module.train()` / `.eval()` / `.freeze()` / `.unfreeze()` / `.update()` return the module.
    self_returning_methods=frozenset({"train", "eval", "freeze", "unfreeze", "update", "set_dtype"}),
    mode_preserving_methods=frozenset({"train", "eval", "freeze", "unfreeze", "update", "set_dtype",
                                       "load_weights", "apply"}),
    mode_delegating_wrappers=frozenset(),
    model_methods=frozenset({"__call__", "generate"}),
    runtime_methods=("__call__",),
    # --- the mode
    mode_attr="training",
    train_method="train",
    eval_method="eval",
    train_mode_keyword="mode",
    mode_setter_methods=frozenset(),
    # --- functional calls: MLX has no functional dropout with a mode flag
    mode_keyword="training",
    dropout_p_keyword="p",
    attention_dropout_p_keyword="dropout_p",
    # --- no global grad mode
    tensor_factories=frozenset("mlx.core." + n for n in ("zeros", "ones", "full", "zeros_like", "ones_like",
                                                           "array", "arange")),
    # --- random sampling (`import mlx.core as mx; mx.random.normal(...)`)
    sampling_calls=frozenset(f"mlx.core.random.{n}" for n in _RANDOM),
    tensor_sampling_methods=frozenset(),
    distribution_methods=frozenset(),
    distributions_namespace="\0",  # MLX has no distributions package
    sampling_triggers=("normal", "uniform", "bernoulli", "categorical", "rand", "gumbel", "laplace",
                       "permutation"),
    seed_method="seed",
    # --- training steps: `loss, grads = nn.value_and_grad(model, loss_fn)(...)`, `optimizer.update(model, grads)`
    backward_methods=frozenset(),
    backward_calls=frozenset(),
    optimizer_step_method="update",
    model_loaders={"mlx_lm.load": "factory", "mlx_lm.utils.load": "factory"},
    model_factory_namespaces=(),
    forward_methods=("__call__",),
    generator_keywords=frozenset({"key"}),  # `mx.random.normal(shape, key=key)`: an explicit PRNG key
    apply_gradients_methods=frozenset({"update"}),
    grad_transforms=frozenset({"mlx.nn.value_and_grad", "mlx.core.value_and_grad", "mlx.core.grad"}),
    trainable_weights_attrs=frozenset({"trainable_parameters"}),
    **NO_FUNCTIONAL_MODE_CALLS,
    **NO_GLOBAL_MODES,
    **NO_LAYER_ARGS,
)

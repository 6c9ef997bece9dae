"""PaddlePaddle's profile (`paddle.nn`, with PaddleNLP / PaddleOCR), and MindSpore's, built from it.

Paddle has PyTorch's mode design: `paddle.nn.Layer.train()` / `.eval()` set `self.training`; the
forward pass is `forward`; sublayers in plain lists are not registered (`paddle.nn.LayerList` is).
Its functional dropouts take the mode as an argument that **defaults to True**
(`paddle.nn.functional.dropout(x, p=0.5, axis=None, training=True, mode="upscale_in_train")`), which
is exactly PyTorch's `F.dropout` bug (MDL101). MindSpore's `mindspore.ops.dropout(input, p=0.5,
training=True, seed=None)` has the same default; its mode switch is `cell.set_train(False)`.
Nothing here imports paddle or mindspore.
"""

from __future__ import annotations

import dataclasses
import re

from modelint.frameworks.profile import NO_GLOBAL_MODES, LayerArg, Profile

F = "paddle.nn.functional."
# qualified name -> position of `training` (default True)
_DROPOUT_CALLS = {F + "dropout": 3, F + "dropout2d": 2, F + "dropout3d": 2, F + "alpha_dropout": 2,
                  F + "feature_alpha_dropout": 2}

_DROPOUT = "drops activations at random even after `model.eval()`"
_BN = ("normalises with the statistics of the current batch even after `model.eval()` (its running statistics "
       "start from scratch every call)")
_TRANSFORMER = "gets fresh random weights on every call, and applies its dropout even after `model.eval()`"
_DROPOUT_CLASSES = ("Dropout", "Dropout2D", "Dropout3D", "AlphaDropout", "FeatureAlphaDropout")
_BN_CLASSES = ("BatchNorm", "BatchNorm1D", "BatchNorm2D", "BatchNorm3D", "SyncBatchNorm")
_TRANSFORMERS = ("Transformer", "TransformerEncoderLayer", "TransformerDecoderLayer", "TransformerEncoder",
                 "TransformerDecoder")

_RANDOM = ("rand", "randn", "randint", "randint_like", "randperm", "normal", "uniform", "standard_normal",
           "bernoulli", "multinomial", "poisson")

PADDLE = Profile(
    name="paddle",
    import_roots=frozenset({"paddle", "paddlenlp", "paddleocr", "ppocr", "paddlex"}),
    namespace="paddle.",
    # --- modules
    layers_namespace="paddle.nn.",
    # Classes in paddle.nn that are not layers (gradient clipping, parameter attributes).
    non_module_classes=frozenset({"paddle.nn.ClipGradByGlobalNorm", "paddle.nn.ClipGradByNorm",
                                  "paddle.nn.ClipGradByValue", "paddle.nn.ParamAttr"}),
    non_module_packages=("paddle.nn.functional", "paddle.nn.initializer", "paddle.nn.utils", "paddle.nn.quant"),
    module_bases=frozenset({"paddle.nn.Layer", "paddle.nn.layer.layers.Layer", "paddle.fluid.dygraph.Layer",
                            "paddlenlp.transformers.PretrainedModel",
                            "paddlenlp.transformers.model_utils.PretrainedModel"}
                           # tensor-parallel layers (PaddleNLP's LoRA and large models subclass them)
                           | {f"{pkg}.{cls}" for pkg in ("paddle.distributed.fleet.meta_parallel",
                                                         "paddle.distributed.fleet.layers.mpu.mp_layers",
                                                         "paddle.distributed.fleet.layers.mpu")
                              for cls in ("ColumnParallelLinear", "RowParallelLinear", "VocabParallelEmbedding",
                                          "ParallelCrossEntropy")}),
    trainer_module_bases=frozenset(),
    trainer_module_suffix="\0",  # Paddle's trainers (paddle.Model, PaddleNLP's Trainer) wrap a Layer
    containers=frozenset({"Sequential", "LayerList", "LayerDict", "ParameterList"}),
    list_container="paddle.nn.LayerList",
    dict_container="paddle.nn.LayerDict",
    register_methods=frozenset({"add_sublayer", "__setattr__"}),
    registers_plain_containers=False,
    stateless_layers=frozenset(
        """
        AdaptiveAvgPool1D AdaptiveAvgPool2D AdaptiveAvgPool3D AdaptiveMaxPool1D AdaptiveMaxPool2D AdaptiveMaxPool3D
        AvgPool1D AvgPool2D AvgPool3D MaxPool1D MaxPool2D MaxPool3D CELU ELU GELU GLU Hardshrink Hardsigmoid
        Hardswish Hardtanh LeakyReLU LogSigmoid LogSoftmax Mish ReLU ReLU6 SELU Silu Swish Sigmoid Softmax
        Softplus Softshrink Softsign Tanh Tanhshrink ThresholdedReLU Flatten Unflatten Identity PixelShuffle
        PixelUnshuffle Upsample UpsamplingBilinear2D UpsamplingNearest2D Pad1D Pad2D Pad3D ZeroPad2D
        """.split()
    ),
    mode_sensitive_layers={
        **{n: _DROPOUT for n in _DROPOUT_CLASSES},
        **{n: _BN for n in _BN_CLASSES},
        **{n: _TRANSFORMER for n in _TRANSFORMERS},
    },
    mode_sensitive_pattern=re.compile(r"^(\w*Dropout\w*|\w*BatchNorm\w*|RReLU|MultiHeadAttention|Transformer\w*|"
                                      r"RNN|LSTM|GRU)$"),
    layer_stats_arg={},
    # paddle.nn.Dropout(p=0.5, axis=None, mode=...); Transformer layers' `dropout` is the third argument.
    layer_dropout_arg={**{n: LayerArg("p", 0) for n in _DROPOUT_CLASSES},
                       "TransformerEncoderLayer": LayerArg("dropout", 3),
                       "TransformerDecoderLayer": LayerArg("dropout", 3)},
    layer_optional_dropout_arg={},
    self_returning_methods=frozenset({"to", "cuda", "cpu", "astype", "float", "half", "bfloat16"}),
    mode_preserving_methods=frozenset({"to", "cuda", "cpu", "astype", "float", "half", "bfloat16", "train", "eval",
                                       "apply", "clear_gradients"}),
    mode_delegating_wrappers=frozenset({"DataParallel", "to_static", "amp_decorate", "decorate"}),
    model_methods=frozenset({"forward", "generate"}),
    runtime_methods=("forward", "__call__"),
    # --- the mode
    mode_attr="training",
    train_method="train",
    eval_method="eval",
    train_mode_keyword="",  # `Layer.train()` takes no argument
    mode_setter_methods=frozenset(),
    # --- functional calls
    mode_keyword="training",
    dropout_p_keyword="p",
    attention_dropout_p_keyword="dropout_p",
    dropout_calls=_DROPOUT_CALLS,
    training_default_false_calls={},
    # batch_norm(x, running_mean, running_var, weight, bias, training=False, ...)
    norm_training_calls={F + "batch_norm": 5},
    dropout_p_position={q: 1 for q in _DROPOUT_CALLS},
    attention_dropout_calls={},
    mha_call="",
    mha_dropout_p_position=-1,
    mha_training_position=-1,
    mode_argument_callees=frozenset({"dropout", "dropout2d", "dropout3d", "alpha_dropout", "feature_alpha_dropout",
                                     "batch_norm", "set_grad_enabled"}),
    mode_argument_callee_prefixes=(),
    # --- grad mode
    no_grad_contexts=frozenset({"paddle.no_grad", "paddle.base.dygraph.no_grad", "paddle.fluid.dygraph.no_grad",
                                "paddle.autograd.no_grad"}),
    set_grad_enabled=frozenset({"paddle.set_grad_enabled"}),
    grad_context_names=frozenset({"no_grad", "set_grad_enabled"}),
    grad_queries={"paddle.is_grad_enabled": "grad"},
    mode_queries={"paddle.is_grad_enabled": "grad", "paddle.in_dynamic_mode": "script"},
    state_setters={"grad": frozenset({"paddle.no_grad", "paddle.enable_grad", "paddle.set_grad_enabled"}),
                   "script": frozenset({"paddle.enable_static", "paddle.disable_static"})},
    requires_grad_attr="stop_gradient",  # inverted: `x.stop_gradient = False` tracks gradients
    requires_grad_tracks=False,
    requires_grad_method="",
    tensor_factories=frozenset("paddle." + n for n in ("zeros", "ones", "empty", "full", "zeros_like", "ones_like",
                                                         "empty_like", "full_like", "to_tensor", "arange")),
    # --- random sampling
    sampling_calls=frozenset({f"paddle.{n}" for n in _RANDOM} | {f"paddle.tensor.random.{n}" for n in _RANDOM}
                             | {F + "gumbel_softmax"}),
    tensor_sampling_methods=frozenset({"uniform_", "normal_", "exponential_", "bernoulli_"}),
    distribution_methods=frozenset({"sample", "rsample"}),
    distributions_namespace="paddle.distribution.",
    sampling_triggers=("rand", "normal", "uniform", "bernoulli", "multinomial", "poisson", "gumbel_softmax",
                       "exponential_", "sample"),
    seed_method="seed",
    # --- training steps: `loss.backward()`, `opt.step()`, `opt.clear_grad()`
    backward_methods=frozenset({"backward"}),
    backward_calls=frozenset({"paddle.autograd.backward"}),
    optimizer_step_method="step",
    model_loaders={"paddle.jit.load": "load", "paddle.load": "load"},
    model_factory_namespaces=("paddle.vision.models.",),
    # `Layer.train()` / `.eval()`: `self.training = False; for layer in self.sublayers(): layer.training
    # = False`, no argument, no return value (paddle/nn/layer/layers.py).
    switch_calls_train=False,
    switches_return_self=False,
)

# MindSpore: `mindspore.nn.Cell`, `cell.set_train(False)`, `mindspore.ops.dropout(x, p, training=True)`.
_MS_DROPOUT = {"mindspore.ops.dropout": 2, "mindspore.ops.function.nn_func.dropout": 2,
               "mindspore.ops.function.dropout": 2}
MINDSPORE = dataclasses.replace(
    PADDLE,
    name="mindspore",
    import_roots=frozenset({"mindspore"}),
    namespace="mindspore.",
    layers_namespace="mindspore.nn.",
    non_module_classes=frozenset(),
    non_module_packages=("mindspore.nn.probability", "mindspore.nn.optim"),
    module_bases=frozenset({"mindspore.nn.Cell"}),
    containers=frozenset({"SequentialCell", "CellList", "CellDict"}),
    list_container="mindspore.nn.CellList",
    dict_container="mindspore.nn.CellDict",
    register_methods=frozenset({"insert_child_to_cell", "__setattr__"}),
    mode_sensitive_layers={"Dropout": _DROPOUT, "BatchNorm1d": _BN, "BatchNorm2d": _BN, "BatchNorm3d": _BN},
    layer_dropout_arg={},
    runtime_methods=("construct",),
    forward_methods=("construct",),
    train_method="",
    eval_method="",
    mode_setter_methods=frozenset({"set_train"}),  # `cell.set_train(False)` is MindSpore's eval()
    eval_words="`cell.set_train(False)`",
    train_words="`cell.set_train(True)`",
    dropout_calls=_MS_DROPOUT,
    norm_training_calls={},
    dropout_p_position={q: 1 for q in _MS_DROPOUT},
    mode_argument_callees=frozenset({"dropout"}),
    tensor_factories=frozenset(),
    sampling_calls=frozenset(),
    tensor_sampling_methods=frozenset(),
    distribution_methods=frozenset(),
    distributions_namespace="\0",
    model_loaders={},
    model_factory_namespaces=(),
    **NO_GLOBAL_MODES,  # MindSpore's grad mode is not profiled
)

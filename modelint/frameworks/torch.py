"""PyTorch's profile (with its ecosystem: Lightning, transformers, diffusers, timm, torchvision,
flash-attn): every PyTorch name a rule or an analysis knows about.

The tables were collected from the rules that used them (MDL101-MDL401 and the mode-flow analysis);
their comments say why an entry is there. Nothing here imports torch.
"""

from __future__ import annotations

import re

from modelint.frameworks.profile import LayerArg, Profile

F = "torch.nn.functional."

_FLASH = {  # flash-attn function -> position of `dropout_p`
    "flash_attn_func": 3,
    "flash_attn_qkvpacked_func": 1,
    "flash_attn_kvpacked_func": 2,
    "flash_attn_varlen_func": 7,
    "flash_attn_varlen_qkvpacked_func": 3,
    "flash_attn_varlen_kvpacked_func": 6,
}

_DROPOUT_CALLS = {F + "dropout": 2, F + "dropout1d": 2, F + "dropout2d": 2, F + "dropout3d": 2}
_ATTENTION_DROPOUT = {
    F + "scaled_dot_product_attention": 4,
    "torch._C._nn.scaled_dot_product_attention": 4,
    **{f"flash_attn.{name}": pos for name, pos in _FLASH.items()},
    **{f"flash_attn.flash_attn_interface.{name}": pos for name, pos in _FLASH.items()},
}

# Class name -> what goes wrong when a fresh one runs in training mode during evaluation.
_DROPOUT = "drops activations at random even after `model.eval()`"
_BN = ("normalises with the statistics of the current batch even after `model.eval()` (its running statistics "
       "start from scratch every call and are thrown away)")
_IN = "normalises with per-batch statistics even after `model.eval()` (its running statistics start from scratch every call)"
_RRELU = "samples a random negative slope even after `model.eval()`"
_MHA = "gets fresh random weights on every call, and applies its attention dropout even after `model.eval()`"
_TRANSFORMER = "gets fresh random weights on every call, and applies its dropout even after `model.eval()`"
_RNN = "gets fresh random weights on every call, and applies its inter-layer dropout even after `model.eval()`"
_DROPOUT_CLASSES = ("Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "FeatureAlphaDropout")
_BN_CLASSES = ("BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "SyncBatchNorm")
_LAZY_NORMS = ("LazyBatchNorm1d", "LazyBatchNorm2d", "LazyBatchNorm3d",
               "LazyInstanceNorm1d", "LazyInstanceNorm2d", "LazyInstanceNorm3d")
_IN_CLASSES = ("InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d")

_MODE_SENSITIVE = {
    **{n: _DROPOUT for n in _DROPOUT_CLASSES},
    **{n: _BN for n in (*_BN_CLASSES, "LazyBatchNorm1d", "LazyBatchNorm2d", "LazyBatchNorm3d")},
    **{n: _IN for n in (*_IN_CLASSES, "LazyInstanceNorm1d", "LazyInstanceNorm2d", "LazyInstanceNorm3d")},
    "RReLU": _RRELU,
    "MultiheadAttention": _MHA,
    **{n: _TRANSFORMER for n in ("Transformer", "TransformerEncoderLayer", "TransformerDecoderLayer",
                                 "TransformerEncoder", "TransformerDecoder")},
    **{n: _RNN for n in ("RNN", "LSTM", "GRU")},
}

_GRAD_QUERIES = {
    "torch.is_grad_enabled": "grad",
    "torch.autograd.grad_mode.is_grad_enabled": "grad",
    "torch._C.is_grad_enabled": "grad",
    "torch.is_inference_mode_enabled": "inference",
    "torch._C._is_inference_mode_enabled": "inference",
}

_NO_GRAD = frozenset(
    {"torch.no_grad", "torch.inference_mode", "torch.autograd.no_grad", "torch.autograd.grad_mode.no_grad",
     "torch.autograd.grad_mode.inference_mode", "torch.autograd.inference_mode"}
)
_SET_GRAD = frozenset({"torch.set_grad_enabled", "torch.autograd.set_grad_enabled", "torch.autograd.grad_mode.set_grad_enabled"})

_MODULE_BASES = frozenset(
    {
        "torch.nn.Module",
        "pytorch_lightning.LightningModule",
        "pytorch_lightning.core.LightningModule",
        "pytorch_lightning.core.module.LightningModule",
        "lightning.LightningModule",
        "lightning.pytorch.LightningModule",
        "lightning.pytorch.core.LightningModule",
        "lightning.pytorch.core.module.LightningModule",
        "transformers.PreTrainedModel",
        "transformers.modeling_utils.PreTrainedModel",
        "diffusers.ModelMixin",
        "diffusers.models.modeling_utils.ModelMixin",
        "timm.layers.Mlp",
    }
)

TORCH = Profile(
    name="torch",
    import_roots=frozenset({"torch", "pytorch_lightning", "lightning", "transformers", "diffusers", "timm",
                            "torchvision", "flash_attn"}),
    namespace="torch.",
    # --- modules
    layers_namespace="torch.nn.",
    non_module_classes=frozenset(
        {"torch.nn.Parameter", "torch.nn.UninitializedParameter", "torch.nn.UninitializedBuffer", "torch.nn.Buffer",
         "torch.nn.modules.module._IncompatibleKeys", "torch.nn.modules.module._WrappedHook"}
    ),
    non_module_packages=("torch.nn.functional", "torch.nn.init", "torch.nn.utils", "torch.nn.attention"),
    module_bases=_MODULE_BASES,
    trainer_module_bases=frozenset(b for b in _MODULE_BASES if b.endswith("LightningModule")),
    trainer_module_suffix=".LightningModule",
    containers=frozenset({"Sequential", "ModuleList", "ModuleDict"}),
    list_container="torch.nn.ModuleList",
    dict_container="torch.nn.ModuleDict",
    register_methods=frozenset({"add_module", "register_module", "__setattr__"}),
    registers_plain_containers=False,
    # torch.nn modules without parameters, buffers or children whose forward does not depend on the
    # mode: keeping them in a plain container loses nothing (MDL201 does not report them).
    stateless_layers=frozenset(
        """
        AdaptiveAvgPool1d AdaptiveAvgPool2d AdaptiveAvgPool3d AdaptiveMaxPool1d AdaptiveMaxPool2d AdaptiveMaxPool3d
        AvgPool1d AvgPool2d AvgPool3d LPPool1d LPPool2d LPPool3d MaxPool1d MaxPool2d MaxPool3d MaxUnpool1d MaxUnpool2d
        MaxUnpool3d CELU ELU GELU GLU Hardshrink Hardsigmoid Hardswish Hardtanh LeakyReLU LogSigmoid LogSoftmax Mish
        ReLU ReLU6 SELU SiLU Sigmoid Softmax Softmax2d Softmin Softplus Softshrink Softsign Tanh Tanhshrink Threshold
        ChannelShuffle CircularPad1d CircularPad2d CircularPad3d ConstantPad1d ConstantPad2d ConstantPad3d
        ReflectionPad1d ReflectionPad2d ReflectionPad3d ReplicationPad1d ReplicationPad2d ReplicationPad3d ZeroPad1d
        ZeroPad2d ZeroPad3d CosineSimilarity PairwiseDistance CrossMapLRN2d LocalResponseNorm Flatten Unflatten Fold
        Unfold Identity PixelShuffle PixelUnshuffle Upsample UpsamplingBilinear2d UpsamplingNearest2d
        """.split()
    ),
    mode_sensitive_layers=_MODE_SENSITIVE,
    # Wider than the table above: any torch.nn class whose forward depends on the mode (others:
    # Linear, Conv, ReLU, LayerNorm, ...), for the mode-flow analysis.
    mode_sensitive_pattern=re.compile(
        r"^(\w*Dropout\w*|\w*BatchNorm\w*|InstanceNorm\w*|LazyInstanceNorm\w*|RReLU|MultiheadAttention|"
        r"Transformer\w*|RNN|LSTM|GRU)$"
    ),
    layer_stats_arg={
        **{n: LayerArg("track_running_stats", 4, True) for n in _BN_CLASSES},
        **{n: LayerArg("track_running_stats", 3, True) for n in _LAZY_NORMS},
        **{n: LayerArg("track_running_stats", 4, False) for n in _IN_CLASSES},
    },
    layer_dropout_arg={
        **{n: LayerArg("p", 0) for n in _DROPOUT_CLASSES},
        "TransformerEncoderLayer": LayerArg("dropout", 3),
        "TransformerDecoderLayer": LayerArg("dropout", 3),
        "Transformer": LayerArg("dropout", 5),
    },
    layer_optional_dropout_arg={n: LayerArg("dropout", pos) for n, pos in (("RNN", 6), ("LSTM", 5), ("GRU", 5))},
    self_returning_methods=frozenset(
        {"to", "cuda", "cpu", "half", "float", "double", "bfloat16", "type", "requires_grad_", "train", "eval",
         "to_empty", "share_memory", "xpu", "mps"}
    ),
    mode_preserving_methods=frozenset(
        {"to", "cuda", "cpu", "half", "float", "double", "bfloat16", "requires_grad_", "share_memory",
         "type", "to_empty", "xpu", "mps", "ipu", "train", "eval", "apply", "zero_grad"}
    ),
    mode_delegating_wrappers=frozenset(
        {"DistributedDataParallel", "DataParallel", "FullyShardedDataParallel", "compile", "prepare_model",
         "prepare", "wrap", "deepcopy",
         # OpenMMLab's DataParallel subclasses (mmcv.parallel, mmengine.model), which run the wrapped model
         "MMDataParallel", "MMDistributedDataParallel"}
    ),
    # Not `predict`: high-level wrappers such as stable-baselines3 algorithms, skorch nets and flair
    # models switch modes inside their own `predict`.
    model_methods=frozenset({"forward", "generate"}),
    runtime_methods=("forward", "__call__", "training_step", "validation_step", "test_step", "predict_step"),
    # --- the mode
    mode_attr="training",
    train_method="train",
    eval_method="eval",
    train_mode_keyword="mode",
    mode_setter_methods=frozenset({"set_training_mode"}),
    # --- functional calls
    mode_keyword="training",
    dropout_p_keyword="p",
    attention_dropout_p_keyword="dropout_p",
    dropout_calls=_DROPOUT_CALLS,
    training_default_false_calls={F + "alpha_dropout": 2, F + "feature_alpha_dropout": 2, F + "rrelu": 3, "torch.rrelu": 3},
    norm_training_calls={F + "batch_norm": 5, F + "instance_norm": 5},
    dropout_p_position={**{q: 1 for q in _DROPOUT_CALLS}, F + "alpha_dropout": 1, F + "feature_alpha_dropout": 1,
                        **_ATTENTION_DROPOUT},
    attention_dropout_calls=_ATTENTION_DROPOUT,
    # multi_head_attention_forward(query, key, value, embed_dim_to_check, num_heads, in_proj_weight,
    #   in_proj_bias, bias_k, bias_v, add_zero_attn, dropout_p, out_proj_weight, out_proj_bias,
    #   training=True, ...)
    mha_call=F + "multi_head_attention_forward",
    mha_dropout_p_position=10,
    mha_training_position=13,
    mode_argument_callees=frozenset(
        {"requires_grad_", "set_grad_enabled", "dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout",
         "feature_alpha_dropout", "batch_norm", "instance_norm", "scaled_dot_product_attention"}
    ),
    mode_argument_callee_prefixes=("flash_attn",),
    # --- grad mode and the other global modes
    no_grad_contexts=_NO_GRAD,
    set_grad_enabled=_SET_GRAD,
    grad_context_names=frozenset({"no_grad", "inference_mode", "set_grad_enabled"}),
    grad_queries=_GRAD_QUERIES,
    mode_queries={
        **_GRAD_QUERIES,
        "torch.is_autocast_enabled": "autocast",
        "torch.is_autocast_cpu_enabled": "autocast",
        "torch.get_autocast_gpu_dtype": "autocast",
        "torch.get_autocast_dtype": "autocast",
        "torch.jit.is_scripting": "script",
        "torch.jit.is_tracing": "trace",
        "torch._C._get_tracing_state": "trace",
        "torch.compiler.is_compiling": "compile",
        "torch.compiler.is_dynamo_compiling": "compile",
        "torch._dynamo.is_compiling": "compile",
        "torch._utils.is_compiling": "compile",
    },
    state_setters={
        "grad": frozenset(
            {
                "torch.no_grad",
                "torch.enable_grad",
                "torch.set_grad_enabled",
                "torch.inference_mode",
                "torch.autograd.no_grad",
                "torch.autograd.enable_grad",
                "torch.autograd.set_grad_enabled",
                "torch.autograd.grad_mode.no_grad",
                "torch.autograd.grad_mode.enable_grad",
                "torch.autograd.grad_mode.set_grad_enabled",
                "torch.autograd.grad_mode.inference_mode",
                "torch._C._set_grad_enabled",
                "torch.autograd.forward_ad.dual_level",
            }
        ),
        "inference": frozenset({"torch.inference_mode", "torch.autograd.grad_mode.inference_mode", "torch.autograd.inference_mode"}),
        "autocast": frozenset(
            {
                "torch.autocast",
                "torch.amp.autocast",
                "torch.cuda.amp.autocast",
                "torch.cpu.amp.autocast",
                "torch.set_autocast_enabled",
                "torch.amp.autocast_mode.autocast",
            }
        ),
        "script": frozenset(),
        "trace": frozenset(),
        "compile": frozenset(),
    },
    requires_grad_attr="requires_grad",
    parameter_attrs=frozenset({"weight", "bias", "in_proj_weight", "in_proj_bias"}),  # nn.Linear/Conv/Norm, nn.MultiheadAttention
    requires_grad_method="requires_grad_",
    derivative_calls=frozenset({"torch.autograd.grad"}),
    create_graph_keyword="create_graph",
    grad_attr="grad",
    tensor_wrappers=frozenset({"torch.autograd.Variable", "torch.autograd.variable.Variable"}),
    tensor_factories=frozenset(
        "torch." + n
        for n in ("zeros", "ones", "empty", "full", "zeros_like", "ones_like", "empty_like", "full_like", "tensor", "arange")
    ),
    tensor_factory_methods=frozenset({"new_zeros", "new_ones", "new_empty", "new_full", "new_tensor"}),
    size_argument_calls=frozenset(
        "torch." + n for n in ("rand", "randn", "randint", "randperm", "rand_like", "randn_like", "randint_like",
                               "zeros", "ones", "empty", "zeros_like", "ones_like", "empty_like", "arange")
    ),
    tensor_cast_methods=frozenset({"to", "cuda", "cpu", "float", "double", "half", "bfloat16", "long", "int", "bool",
                                   "type", "type_as", "contiguous", "view", "reshape", "expand", "squeeze", "unsqueeze"}),
    # --- random sampling
    sampling_calls=frozenset(
        {
            "torch.multinomial",
            "torch.bernoulli",
            "torch.rand",
            "torch.randn",
            "torch.randint",
            "torch.randperm",
            "torch.rand_like",
            "torch.randn_like",
            "torch.randint_like",
            "torch.normal",
            "torch.poisson",
            "torch.binomial",
            "torch.nn.functional.gumbel_softmax",
            "torch.Tensor.multinomial",
            "torch.Tensor.bernoulli",
            "torch.Tensor.bernoulli_",
            "torch.Tensor.uniform_",
            "torch.Tensor.normal_",
            "torch.Tensor.exponential_",
            "torch.Tensor.geometric_",
            "torch.Tensor.cauchy_",
            "torch.Tensor.log_normal_",
            "torch.Tensor.random_",
        }
    ),
    # Tensor methods that draw random numbers (matched by name: tensors cannot be typed statically).
    tensor_sampling_methods=frozenset(
        {"multinomial", "bernoulli", "bernoulli_", "uniform_", "normal_", "exponential_", "geometric_", "cauchy_",
         "log_normal_", "random_"}
    ),
    distribution_methods=frozenset({"sample", "rsample", "sample_n"}),
    distributions_namespace="torch.distributions.",
    sampling_triggers=(
        "multinomial",
        "bernoulli",
        "rand",  # rand, randn, randint, randperm, *_like, random_
        "normal",  # torch.normal, normal_, log_normal_
        "poisson",
        "binomial",
        "gumbel_softmax",
        "uniform_",
        "exponential_",
        "geometric_",
        "cauchy_",
        "sample",  # sample, rsample, sample_n
    ),
    seed_method="manual_seed",
    # --- training steps and model values
    backward_methods=frozenset({"backward", "manual_backward"}),
    backward_calls=frozenset({"torch.autograd.backward"}),
    optimizer_step_method="step",
    detach_methods=frozenset({"detach"}),
    module_only_methods=frozenset({"load_state_dict", "parameters", "named_parameters", "modules"}),
    model_loaders={
        "torch.load": "load",
        "torch.serialization.load": "load",
        "torch.hub.load": "hub",
        "timm.create_model": "factory",
        "timm.models.create_model": "factory",
        "torchvision.models.get_model": "factory",
    },
    model_factory_namespaces=("torchvision.models.",),
    # OpenMMLab's runners load a checkpoint into the model they are handed (upstream19's
    # model_preparation_algorithm: `build_detector(cfg)`, then `load_checkpoint(model, path)`)
    tensor_value_attrs=frozenset({"data", "T", "mT", "H", "grad", "weight", "bias"}),
    weight_loaders={
        f"{pkg}.{mod}load_checkpoint": 0
        for pkg in ("mmcv.runner", "mmengine.runner") for mod in ("", "checkpoint.")
    },
    # issue 15 (MDL104): draws whose arguments carry no values of the input, only its shape or bounds;
    # a module whose `forward` returns one of these is a noise source.
    noise_sampling_calls=frozenset(
        "torch." + n for n in ("rand", "randn", "randint", "randperm", "rand_like", "randn_like", "randint_like")
    ),
)

# --- mode sensitivity (analysis.sensitivity, issue #14) ------------------------------------------------
# `from_pretrained` / `from_config` / diffusers' `from_single_file` build a model whose layers the
# checked code does not show; tokenizers, configs, processors and schedulers have no mode.
# MultiheadAttention's `dropout` is its third parameter and defaults to 0.0. TransformerEncoder /
# Decoder clone the layer they are given. `timm.layers.Mlp` is a module base for the classifier but
# holds dropout itself, so it is not "empty".
from dataclasses import replace  # noqa: E402 (kept in this block)

# PyTorch Geometric (read from torch_geometric 2.8.1's sources: no `self.training` in MessagePassing,
# its aggregations or these convolutions). Message-passing convolutions without dropout or norm are
# mode-free; the attention convolutions drop attention weights with `dropout` (default 0.0, the 6th
# argument); the BasicGNN models (`GCN`, `GraphSAGE`, `GAT`, `GIN`, `EdgeCNN`) take `dropout` (5th,
# 0.0) and `norm` (9th, None). The shallow embedding models `Node2Vec` and `MetaPath2Vec` hold one
# `Embedding` and nothing else. Classes that wrap a module they are given (`GINConv(nn)`,
# `EdgeConv(nn)`, `HeteroConv`) are not listed: their answer is the given module's (unknown here).
_PYG_MODE_FREE = """
    AGNNConv ChebConv ClusterGCNConv EGConv FeaStConv GatedGraphConv GCN2Conv GCNConv GMMConv GraphConv
    GravNetConv LEConv LGConv MFConv MixHopConv PANConv PDNConv ResGatedGraphConv RGCNConv SAGEConv SGConv
    SignedConv SimpleConv SplineConv SSGConv TAGConv WLConv WLConvContinuous MetaPath2Vec Node2Vec
""".split()
_PYG_LAYERS = {
    **{n: () for n in _PYG_MODE_FREE},
    **{n: (LayerArg("dropout", 5, 0.0),) for n in ("GATConv", "GATv2Conv", "TransformerConv", "SuperGATConv")},
    **{n: (LayerArg("dropout", 4, 0.0), LayerArg("norm", 8, None))
       for n in ("GCN", "GraphSAGE", "GAT", "GIN", "EdgeCNN")},
}

# torchaudio's transforms (read from torchaudio 2.8.0's `transforms/_transforms.py` and
# `_multi_channel.py`: none reads `self.training` or holds a mode-dependent layer; the random ones,
# `FrequencyMasking` / `TimeMasking` / `SpecAugment` / `AddNoise`, draw in either mode). Set 18's
# WaveGrad ran a mel-spectrogram wrapper under no_grad, reported as a model in training mode.
_TORCHAUDIO_TRANSFORMS = """
    Spectrogram InverseSpectrogram GriffinLim AmplitudeToDB MelScale InverseMelScale MelSpectrogram MFCC LFCC
    MuLawEncoding MuLawDecoding Resample ComputeDeltas TimeStretch Fade FrequencyMasking TimeMasking SpecAugment
    Loudness Vol SlidingWindowCmn Vad SpectralCentroid PitchShift RNNTLoss Convolve FFTConvolve Speed
    SpeedPerturbation AddNoise Preemphasis Deemphasis PSD MVDR RTFMVDR SoudenMVDR
""".split()

TORCH = replace(
    TORCH,
    external_model_methods=frozenset({"from_pretrained", "from_config", "from_single_file"}),
    non_model_suffixes=("Tokenizer", "TokenizerFast", "Config", "Processor", "FeatureExtractor", "ImageProcessor",
                        "Scheduler", "Retriever"),
    trainer_module_legacy_hooks=frozenset({"training_epoch_end", "validation_epoch_end", "test_epoch_end"}),
    layer_zero_default_dropout_arg={"MultiheadAttention": LayerArg("dropout", 2, 0.0)},
    layer_wrapping_layers=frozenset({"TransformerEncoder", "TransformerDecoder"}),
    empty_module_bases=_MODULE_BASES - {"timm.layers.Mlp"},
    # The mode-delegating wrappers, plus averaged copies that hold a deep copy of the module they are
    # given: `torch.optim.swa_utils.AveragedModel(net)`, timm's `ModelEma` / `ModelEmaV2` / `ModelEmaV3`.
    sensitivity_passing_wrappers=frozenset(
        {"DistributedDataParallel", "DataParallel", "FullyShardedDataParallel", "compile", "prepare_model",
         "prepare", "wrap", "deepcopy", "AveragedModel", "ModelEma", "ModelEmaV2", "ModelEmaV3"}
    ),
    ecosystem_layers={"torch_geometric.nn": _PYG_LAYERS, "torchaudio.transforms": {n: () for n in _TORCHAUDIO_TRANSFORMS}},
)

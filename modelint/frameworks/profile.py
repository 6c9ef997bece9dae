"""The `Profile` type: one framework's vocabulary as data (see `modelint.frameworks`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import FrozenSet, Mapping, Pattern, Tuple, Union


@dataclass(frozen=True)
class LayerArg:
    """The constructor argument that decides whether a layer class is mode-sensitive:
    keyword, 0-based position and the value it has when not passed."""

    keyword: str
    position: int
    default: object = None


@dataclass(frozen=True)
class Profile:
    name: str
    # Top-level packages whose import selects this profile (`import torch`, `from lightning import ...`).
    import_roots: FrozenSet[str]
    # The framework's own namespace: a call under it is never a project class (`torch.`).
    namespace: Union[str, Tuple[str, ...]]  # a tuple when the framework has several spellings

    # --- modules ---------------------------------------------------------------------------------
    # The namespace of its layer classes: a public capitalised name under it is a module (`torch.nn.`).
    layers_namespace: Union[str, Tuple[str, ...]]
    # Classes in that namespace that are not modules (`torch.nn.Parameter`), and sub-packages of
    # functions (`torch.nn.functional`).
    non_module_classes: FrozenSet[str]
    non_module_packages: Tuple[str, ...]
    # Base classes from the framework and its ecosystem that make a class a module.
    module_bases: FrozenSet[str]
    # Module bases whose training loop a trainer owns (Lightning), and the name that marks one when
    # the base is not in the list (`*.LightningModule`).
    trainer_module_bases: FrozenSet[str]
    trainer_module_suffix: str
    # Containers that register the modules they hold (`nn.ModuleList`), by last name, and the
    # qualified names MDL201's fix writes for a list and a dict.
    containers: FrozenSet[str]
    list_container: str
    dict_container: str
    # Methods that register a module under a name (`self.add_module("x", m)`).
    register_methods: FrozenSet[str]
    # True when plain Python lists / dicts of modules are registered too (MLX): MDL201 is moot.
    registers_plain_containers: bool
    # Layer classes (last names) with no state whose forward ignores the mode.
    stateless_layers: FrozenSet[str]
    # Layer classes (last names) whose forward depends on the mode -> what goes wrong when a fresh
    # one runs in training mode during evaluation (MDL202's message).
    mode_sensitive_layers: Mapping[str, str]
    # The same, as a pattern over last names (any `*Dropout*`, `*BatchNorm*`, ...: mode flow).
    mode_sensitive_pattern: Pattern[str]
    # Layer class -> the argument that turns its mode dependence on or off.
    layer_stats_arg: Mapping[str, LayerArg]  # `track_running_stats`
    layer_dropout_arg: Mapping[str, LayerArg]  # `p` / `dropout`, mode-sensitive unless literally 0
    layer_optional_dropout_arg: Mapping[str, LayerArg]  # RNN `dropout`: mode-sensitive only when passed
    # Methods that return the module they are called on (`nn.Dropout(p).to(device)`).
    self_returning_methods: FrozenSet[str]
    # Methods after which the same object is still in charge of the mode (mode flow's `peel`).
    mode_preserving_methods: FrozenSet[str]
    # Wrappers whose result delegates to the wrapped module's mode (DDP, `torch.compile`), by last name.
    mode_delegating_wrappers: FrozenSet[str]
    # Methods that run the model's computation when called on it.
    model_methods: FrozenSet[str]
    # Methods the framework (or its trainer) calls while the model runs: the seeds of "what runs at
    # forward time" (`forward`, Lightning's `training_step`, ...).
    runtime_methods: Tuple[str, ...]

    # --- the mode --------------------------------------------------------------------------------
    # The module attribute holding the mode (`self.training`).
    mode_attr: str
    # The mode switches (`model.train(mode=True)`, `model.eval()`), and the keyword of train's flag.
    train_method: str
    eval_method: str
    train_mode_keyword: str
    # Other libraries' switches that take the mode as their first argument (stable-baselines3's
    # `policy.set_training_mode(False)`).
    mode_setter_methods: FrozenSet[str]

    # --- functional calls that take the mode -------------------------------------------------------
    # The keyword that passes the mode to a functional call (`F.dropout(x, p, training=...)`), and
    # those of the dropout probability in dropout and attention calls.
    mode_keyword: str
    dropout_p_keyword: str
    attention_dropout_p_keyword: str
    # qualified name -> position of `training` (default True: always on unless passed).
    dropout_calls: Mapping[str, int]
    # qualified name -> position of `training` (default False: never on unless passed).
    training_default_false_calls: Mapping[str, int]
    # Normalisation calls with a `training` parameter -> its position.
    norm_training_calls: Mapping[str, int]
    # qualified name -> position of the dropout probability (`p`).
    dropout_p_position: Mapping[str, int]
    # Attention calls with a dropout probability but no mode flag -> position of `dropout_p`.
    attention_dropout_calls: Mapping[str, int]
    # Multi-head attention in one call with both: name, position of `dropout_p`, of `training`.
    mha_call: str
    mha_dropout_p_position: int
    mha_training_position: int
    # Last names of calls that may take the mode or a dropout probability (MDL105's cheap filter).
    mode_argument_callees: FrozenSet[str]
    mode_argument_callee_prefixes: Tuple[str, ...]

    # --- grad mode and other global modes ----------------------------------------------------------
    # Context managers / decorators that turn gradients off (`torch.no_grad`, `torch.inference_mode`).
    no_grad_contexts: FrozenSet[str]
    # `set_grad_enabled(mode)`: off when its argument is literally False.
    set_grad_enabled: FrozenSet[str]
    # Last names of both (a cheap first check).
    grad_context_names: FrozenSet[str]
    # Queries of global mode state -> the state they read ("grad", "inference", "autocast",
    # "script", "trace", "compile").
    mode_queries: Mapping[str, str]
    # The grad-mode ones among them.
    grad_queries: Mapping[str, str]
    # Context managers and calls that change each state.
    state_setters: Mapping[str, FrozenSet[str]]
    # The tensor attribute / method that make a tensor track gradients.
    requires_grad_attr: str
    requires_grad_method: str
    # Tensor factories: a tensor built from one is fresh (`torch.zeros_like(w)`).
    tensor_factories: FrozenSet[str]

    # --- random sampling ---------------------------------------------------------------------------
    sampling_calls: FrozenSet[str]
    tensor_sampling_methods: FrozenSet[str]
    distribution_methods: FrozenSet[str]
    distributions_namespace: Union[str, Tuple[str, ...]]
    # Substrings for the text pre-filter of rules that look for sampling ops.
    sampling_triggers: Tuple[str, ...]
    # The method that seeds a random generator.
    seed_method: str

    # --- training steps and model values -------------------------------------------------------------
    # `loss.backward()` / Lightning's `self.manual_backward(loss)`, and `torch.autograd.backward(t)`.
    backward_methods: FrozenSet[str]
    backward_calls: FrozenSet[str]
    # `optimizer.step()`: the method name (its receiver must look like an optimizer).
    optimizer_step_method: str
    # Calls that return a model -> how it was made ("load": a pickled model, "hub", "factory").
    model_loaders: Mapping[str, str]
    # Namespaces whose lower-case functions build models (`torchvision.models.resnet50`).
    model_factory_namespaces: Tuple[str, ...]

    # --- beyond PyTorch (issue 19): defaults keep PyTorch's behaviour -------------------------------
    # The methods that are a module's forward pass (`forward`; MLX `__call__`, Keras `call`).
    forward_methods: Tuple[str, ...] = ("forward",)
    # True when the mode is an argument of the forward pass (Keras `call(x, training=None)`), not an
    # attribute set by switch methods: there is no `self.training` and no `.train()`/`.eval()`.
    mode_is_argument: bool = False
    # How the framework's own words say "switch to training / to inference" (for messages).
    train_words: str = "`model.train()`"
    eval_words: str = "`model.eval()`"
    mode_check_words: str = "`if self.training:`"
    # PyTorch's switch contract, which an override of `train`/`eval` must keep (MDL203): `eval()` and a
    # parent's switch call `train(mode)` on the module (so an override must accept `mode`), and both
    # return the module. Paddle's `Layer.eval()` sets `training` on every sublayer directly and
    # returns None, so neither holds there.
    # Keywords that pass a random generator / key to a sampling op: one that is a parameter of the
    # function means the caller controls the draw (`torch.randn(..., generator=g)`, MLX `key=`).
    generator_keywords: FrozenSet[str] = frozenset({"generator"})
    switch_calls_train: bool = True
    switches_return_self: bool = True
    # Training-step spellings beyond `backward` + `step`: methods that apply gradients to the weights
    # (Keras `optimizer.apply_gradients(...)`, JAX-backend `optimizer.stateless_apply(...)`, MLX
    # `optimizer.update(model, grads)`), and methods that compute them (`tape.gradient(loss, vars)`).
    apply_gradients_methods: FrozenSet[str] = frozenset()
    gradient_methods: FrozenSet[str] = frozenset()
    # Context managers that record a forward pass for differentiation (`tf.GradientTape()`).
    gradient_tapes: FrozenSet[str] = frozenset()
    # Calls that turn a loss function into a gradient function (`jax.value_and_grad`, MLX
    # `nn.value_and_grad(model, loss_fn)`).
    grad_transforms: FrozenSet[str] = frozenset()
    # Attributes that name a model's trainable weights (`model.trainable_variables`): their receiver is
    # the model a training step updates.
    trainable_weights_attrs: FrozenSet[str] = frozenset()
    # A model method that runs the forward pass without state (Keras `model.stateless_call(...)`).
    stateless_call_method: str = ""
    # Calls that build a whole model from layers (`keras.Sequential`, `keras.Model`).
    model_constructors: FrozenSet[str] = frozenset()
    # Calls that differentiate a value (`torch.autograd.grad(y, x)`), and their keyword that builds the
    # graph of the result (`create_graph=`): MDL105 asks whether a derivative is differentiated again.
    derivative_calls: FrozenSet[str] = frozenset()
    create_graph_keyword: str = ""
    # The tensor attribute that holds a computed gradient (`p.grad`): a routine that backpropagates and
    # reads it is a gradient probe, not a training step (`analysis.modeflow.gradient_probe`).
    grad_attr: str = ""
    # Tensor methods that build a fresh tensor (`x.new_zeros(())`), and casts / moves that keep a fresh
    # tensor fresh (`torch.zeros(()).to(device)`): MDL105 asks whether a value is a leaf built right here.
    tensor_factory_methods: FrozenSet[str] = frozenset()
    tensor_cast_methods: FrozenSet[str] = frozenset()
    # Draws and factories whose positional arguments are sizes (or a tensor read for its shape only:
    # `torch.randn_like(x)`), never values: MDL104's sampler test (`analysis.sampling.sizes_only_inputs`).
    size_argument_calls: FrozenSet[str] = frozenset()

    # Calls that load weights into a model they are handed, by argument position
    # (`load_checkpoint(model, path)` of OpenMMLab's runners): like `model.load_state_dict(...)`.
    weight_loaders: Mapping[str, int] = field(default_factory=dict)
    # Attributes whose value is a tensor, not a module (`model.decoder.weight.data.T`): a name bound to
    # one does not share the model's mode.
    tensor_value_attrs: FrozenSet[str] = frozenset()

    # The profiles a merged profile stands for (a file that imports several frameworks), else ().
    parts: Tuple["Profile", ...] = ()

    # Memoised derived sets (computed in __post_init__).
    sampling_last_names: FrozenSet[str] = field(init=False)
    mode_query_last_names: FrozenSet[str] = field(init=False)
    non_module_last_names: FrozenSet[str] = field(init=False)
    grad_query_last_names: FrozenSet[str] = field(init=False)
    backward_call_last_names: FrozenSet[str] = field(init=False)
    no_grad_last_names: FrozenSet[str] = field(init=False)

    # --- appended for issue 15 (MDL104 noise sources) ------------------------------------------------
    # Draws from a fixed distribution whose arguments are shapes, bounds and devices only (`randn_like(x)`
    # reads x's shape, not its values): what a noise-source module returns. Default empty (other profiles).
    noise_sampling_calls: FrozenSet[str] = frozenset()
    # --- appended for issue 15 (MDL105 parameter flags) ------------------------------------------------
    # Attribute names of a layer's parameters (`layer.weight`): their `requires_grad` says whether the
    # parameter is trainable, whatever the grad mode. Default empty (other profiles).
    parameter_attrs: FrozenSet[str] = frozenset()
    # --- the mode model (issue 14: analysis/modeflow.py, analysis/modemodel.py) -------------------
    # Pre-0.4 PyTorch inference: `Variable(x, volatile=True)` turns gradients off like no_grad.
    volatile_keyword: str = "volatile"
    # Methods that cut a tensor from the graph (`feats = encoder(x).detach()`): a forward whose result
    # is used only through them gives its model no gradient (`analysis.detached`). Default empty.
    detach_methods: FrozenSet[str] = frozenset()
    # Methods only a module has besides the switches (`model.load_state_dict(...)`, `model.parameters()`):
    # a name that receives one holds a module, so the call that bound it built one (MDL302). Default empty.
    module_only_methods: FrozenSet[str] = frozenset()
    # The literal that, given to `requires_grad_attr` (keyword or assignment), makes a tensor track
    # gradients: True for `requires_grad`, False for PaddlePaddle's inverted `stop_gradient`.
    requires_grad_tracks: bool = True
    # Pre-0.4 wrappers of a tensor that compute nothing (`Variable(torch.randn(1, 3, 32, 32))`): what
    # they wrap decides whether a forward's input is synthetic (`analysis.inference.synthetic`).
    tensor_wrappers: FrozenSet[str] = frozenset()
    # A model's own method decorated with a name holding this word switches to eval mode around the
    # call (`@eval_decorator def generate(self, ...)`), so `model.generate(...)` runs in eval mode.
    eval_decorator_word: str = "eval"
    # Loading a pretrained model this way returns it in eval mode (transformers, diffusers).
    pretrained_loader_method: str = "from_pretrained"
    # Hooks of a trainer module that only an older trainer calls (Lightning's `validation_epoch_end`,
    # removed in 2.0): a class defining one was written for a trainer that put the whole module in
    # training mode when fitting started (Lightning before 2.2), so its `from_pretrained` sub-module
    # trains in training mode there (MDL303).
    trainer_module_legacy_hooks: FrozenSet[str] = frozenset()
    # --- mode sensitivity of a model's construction tree (`analysis.sensitivity`, issue #14) ----------
    # Methods building a model from outside the checked code (`AutoModel.from_pretrained(...)`): its
    # layers are unknown.
    external_model_methods: FrozenSet[str] = frozenset()
    # Receivers of those methods that are not models, by name suffix (`AutoTokenizer`).
    non_model_suffixes: Tuple[str, ...] = ()
    # Mode-sensitive layers whose dropout argument defaults to 0 (off unless passed).
    layer_zero_default_dropout_arg: Mapping[str, LayerArg] = field(default_factory=dict)
    # Layer classes of libraries built on the framework, read from their sources: package ->
    # class name -> the constructor arguments that turn the mode on (each off when it is a literal
    # 0 / None / False, passed or by its `default`). `()` is a layer whose forward never depends on
    # the mode. A class of the package not listed stays unknown.
    ecosystem_layers: Mapping[str, Mapping[str, Tuple[LayerArg, ...]]] = field(default_factory=dict)
    # Layers whose mode dependence is that of the layer they are given (`TransformerEncoder(layer, n)`).
    layer_wrapping_layers: FrozenSet[str] = frozenset()
    # Module bases that hold no layers of their own (`nn.Module`, `LightningModule`); any other base
    # outside the checked files makes a subclass's sensitivity unknown.
    empty_module_bases: FrozenSet[str] = frozenset()
    # Wrappers and copies whose result computes what the module given as their first argument computes
    # (DDP, `torch.compile`, `deepcopy`, averaged / EMA copies), by last name: a construction
    # `Wrapper(x)` is as mode-sensitive as `x` (the wrapper class itself holds no layer of its own).
    sensitivity_passing_wrappers: FrozenSet[str] = frozenset()

    def __post_init__(self) -> None:
        last = lambda names: frozenset(n.rsplit(".", 1)[-1] for n in names)  # noqa: E731
        object.__setattr__(self, "sampling_last_names",
                           last(self.sampling_calls) | self.tensor_sampling_methods | self.distribution_methods)
        object.__setattr__(self, "mode_query_last_names", last(self.mode_queries))
        object.__setattr__(self, "non_module_last_names", last(self.non_module_classes))
        object.__setattr__(self, "grad_query_last_names", last(self.grad_queries))
        object.__setattr__(self, "backward_call_last_names", last(self.backward_calls))
        object.__setattr__(self, "no_grad_last_names", last(self.no_grad_contexts))

    # --- questions on qualified names ----------------------------------------------------------------
    @property
    def namespaces(self) -> Tuple[str, ...]:
        """`namespace` as a tuple (one entry for most frameworks; Keras has several spellings)."""
        return (self.namespace,) if isinstance(self.namespace, str) else tuple(self.namespace)

    def owns(self, qualname: str) -> bool:
        """Is `qualname` one of this framework's module bases or layer classes?"""
        return qualname in self.module_bases or self.is_layer_class(qualname)

    def in_namespace(self, qualname: str) -> bool:
        return qualname.startswith(self.namespace)

    def is_layer_name(self, qualname: str) -> bool:
        """Under the layers namespace (`torch.nn.X`), whatever X is."""
        return qualname.startswith(self.layers_namespace)

    def is_layer_class(self, qualname: str) -> bool:
        """`torch.nn.Linear`, `torch.nn.modules.conv.Conv2d`, ... (not functions, not Parameter)."""
        if not qualname.startswith(self.layers_namespace) or qualname in self.non_module_classes:
            return False
        if qualname.startswith(self.non_module_packages):
            return False
        # private bases count (`torch.nn.modules.dropout._DropoutNd`, `_BatchNorm`, `_ConvNd`): layers
        # derive from them (baal's `ConsistentDropout(_DropoutNd)`, measuring set 7)
        return qualname.rsplit(".", 1)[-1].lstrip("_")[:1].isupper()

    def is_capitalised_layer_name(self, qualname: str) -> bool:
        """Under the layers namespace and capitalised: a class there, module or not."""
        return qualname.startswith(self.layers_namespace) and qualname.rsplit(".", 1)[-1][:1].isupper()

    def builds_library_model(self, qualname: str) -> bool:
        """A lower-case function of a `model_factory_namespaces` namespace (`torchvision.models.resnet50`)."""
        return qualname.startswith(self.model_factory_namespaces) and qualname.rsplit(".", 1)[-1][:1].islower()

    def loads_external_model(self, dotted: str) -> bool:
        """`BertModel.from_pretrained` / `AutoModel.from_config` as written: one of the
        `external_model_methods` on a receiver not named as a tokenizer, config, processor or
        scheduler (`non_model_receiver`)."""
        owner, _, method = dotted.rpartition(".")
        return method in self.external_model_methods and not self.non_model_receiver(owner)

    def loads_pretrained_model(self, dotted: str) -> bool:
        """`AutoModel.from_pretrained(...)` / `self.model_class.from_pretrained(...)` as written: the
        `pretrained_loader_method` on a receiver that is not a tokenizer, config, processor or scheduler."""
        owner, _, method = dotted.rpartition(".")
        return bool(owner) and method == self.pretrained_loader_method and not self.non_model_receiver(owner)

    def non_model_receiver(self, owner: str) -> bool:
        """A class named by one of `non_model_suffixes`, or a variable holding one, any case, with a
        trailing `_class` / `_cls` / `Class` dropped (`AutoTokenizer`, `config_class`, `tokenizer_cls`;
        a vendored transformers example's `config_class.from_pretrained` was taken for a model)."""
        stem = owner.rsplit(".", 1)[-1]
        for tail in ("_class", "_cls", "Class"):
            if stem.endswith(tail) and len(stem) > len(tail):
                stem = stem[: -len(tail)]
                break
        return stem.lower().endswith(tuple(s.lower() for s in self.non_model_suffixes))

    def mode_sensitive_layer(self, qualname: str) -> bool:
        """A layer class listed in `mode_sensitive_layers` (by its last name)."""
        return qualname.startswith(self.layers_namespace) and qualname.rsplit(".", 1)[-1] in self.mode_sensitive_layers

    def is_trainer_module(self, qualname: str) -> bool:
        return qualname in self.trainer_module_bases or qualname.endswith(self.trainer_module_suffix)

    def training_flag_position(self, qualname: str):
        """Position of the `training` parameter of a functional call, or None."""
        for table in (self.dropout_calls, self.training_default_false_calls, self.norm_training_calls):
            if qualname in table:
                return table[qualname]
        return None


# Field groups a framework without the feature sets to "none" (Keras, MLX, MindSpore), one home each.
# Functional calls that take the mode as an argument (`F.dropout(x, p, training=...)`): none.
NO_FUNCTIONAL_MODE_CALLS = dict(
    dropout_calls={}, training_default_false_calls={}, norm_training_calls={}, dropout_p_position={},
    attention_dropout_calls={}, mha_call="", mha_dropout_p_position=-1, mha_training_position=-1,
    mode_argument_callees=frozenset(), mode_argument_callee_prefixes=(),
)
# A global grad mode and other global mode state (`torch.no_grad`, `torch.is_grad_enabled`): none.
NO_GLOBAL_MODES = dict(
    no_grad_contexts=frozenset(), set_grad_enabled=frozenset(), grad_context_names=frozenset(), grad_queries={},
    mode_queries={}, state_setters={}, requires_grad_attr="", requires_grad_method="",
)
# Layer-constructor arguments that switch mode dependence on or off, and module-returning methods: none.
NO_LAYER_ARGS = dict(layer_stats_arg={}, layer_dropout_arg={}, layer_optional_dropout_arg={})

"""Keras' profile (Keras 3 and `tf.keras` >= 2.3, with KerasHub): the names a rule needs for Keras code.

Keras has no mode attribute and no mode switches: the mode is the `training` argument of a layer's
`call(self, x, training=None)`. Keras resolves it (keras/src/layers/layer.py, `Layer.__call__`, step
"Infer training value"; the same order since tf.keras 2.3, TensorFlow commit 317709904) as:
(1) the `training` argument passed to this call, if not None; (2) the `training` of an outer
`Layer.__call__` (the call context); (3) a non-None default in the `call` signature; (4) False.
So a sublayer called without `training=` inherits its caller's mode (not a bug), a model called
without `training=` at the top of a custom training loop runs in inference mode (MDL305), and a
literal `training=True`/`False` on a sublayer overrides the context (MDL107).

Keras tracks layers held in plain lists and dicts (`Tracker` in Keras 3, `ListWrapper` in tf.keras),
so MDL201 has nothing to report. `keras.layers.Dropout(...)` built inside `call` still follows the
call's mode through the context, so MDL202 (a mode layer built in forward) does not apply either:
`mode_sensitive_layers` is empty, and `mode_sensitive_pattern` says which layers the mode changes.
Nothing here imports keras or tensorflow.
"""

from __future__ import annotations

import re

from modelint.frameworks.profile import NO_FUNCTIONAL_MODE_CALLS, NO_GLOBAL_MODES, NO_LAYER_ARGS, Profile

_ROOTS = ("keras.", "tensorflow.keras.", "tf_keras.")
_LAYERS = tuple(r + "layers." for r in _ROOTS)

# keras.random.* (Keras 3) and tf.random.* draw fresh numbers on every call; `dropout` and `shuffle`
# too. (tf.random.stateless_* with a fixed seed are deterministic and are not listed.)
_KERAS_RANDOM = ("normal", "uniform", "randint", "truncated_normal", "categorical", "dropout", "shuffle",
                 "gamma", "binomial", "beta")
_TF_RANDOM = ("normal", "uniform", "truncated_normal", "categorical", "shuffle", "gamma", "poisson")

KERAS = Profile(
    name="keras",
    import_roots=frozenset({"keras", "tensorflow", "tf_keras", "keras_hub", "keras_nlp", "keras_cv"}),
    namespace=_ROOTS + ("tensorflow.", "keras_hub.", "keras_nlp.", "keras_cv."),
    # --- modules
    # `keras.src.layers.` is how Keras' own sources (and code importing its internals) name its layers.
    layers_namespace=_LAYERS + ("keras.src.layers.", "keras_hub.layers."),
    non_module_classes=frozenset({r + "layers.InputSpec" for r in _ROOTS}),
    non_module_packages=tuple(r + "layers.experimental" for r in _ROOTS),
    module_bases=frozenset(
        f"{r}{name}" for r in _ROOTS
        for name in ("Layer", "Model", "Sequential", "layers.Layer", "models.Model", "models.Sequential")
    ) | frozenset({"keras_hub.models.Backbone", "keras_hub.models.Task", "keras_hub.layers.Layer",
                   "keras.src.layers.layer.Layer", "keras.src.models.model.Model", "keras.src.models.Model",
                   "keras.src.models.sequential.Sequential", "keras.src.models.functional.Functional"}),
    trainer_module_bases=frozenset(),
    trainer_module_suffix="\0",  # no trainer-owned module class in Keras (`model.fit` is the model's own)
    containers=frozenset({"Sequential"}),
    list_container="",
    dict_container="",
    register_methods=frozenset({"__setattr__"}),
    registers_plain_containers=True,
    stateless_layers=frozenset(),
    mode_sensitive_layers={},
    # Layers whose output depends on `training`: dropout and noise layers, BatchNormalization (batch
    # statistics and moving-average updates), and the random-augmentation preprocessing layers
    # (`RandomFlip`, `RandomRotation`, ...: identity in inference).
    mode_sensitive_pattern=re.compile(r"^(\w*Dropout\w*|Gaussian\w*|\w*BatchNormalization|Random\w+|RandAugment|"
                                      r"AugMix|MixUp|CutMix)$"),
    self_returning_methods=frozenset(),
    mode_preserving_methods=frozenset(),
    mode_delegating_wrappers=frozenset(),
    model_methods=frozenset({"call"}),
    runtime_methods=("call",),
    # --- the mode: an argument, not an attribute
    mode_attr="",
    train_method="",
    eval_method="",
    train_mode_keyword="",
    mode_setter_methods=frozenset(),
    # --- functional calls: none takes the mode (keras.random.dropout always drops): NO_FUNCTIONAL_MODE_CALLS
    mode_keyword="training",
    dropout_p_keyword="rate",
    attention_dropout_p_keyword="dropout",
    # --- no global grad mode (NO_GLOBAL_MODES): gradients are recorded by a tape, not switched off globally
    tensor_factories=frozenset(),
    # --- random sampling
    sampling_calls=frozenset(
        {f"{r}random.{n}" for r in ("keras.", "tf_keras.") for n in _KERAS_RANDOM}
        | {f"tensorflow.random.{n}" for n in _TF_RANDOM}
    ),
    tensor_sampling_methods=frozenset(),
    distribution_methods=frozenset(),
    distributions_namespace="\0",  # tensorflow_probability is its own framework; not profiled
    sampling_triggers=("rand",),  # `keras.random.`, `tf.random.`, `from keras import random`
    seed_method="set_seed",
    # --- training steps: `with tf.GradientTape() as tape:` ... `tape.gradient` + `apply_gradients`
    backward_methods=frozenset(),
    backward_calls=frozenset(),
    optimizer_step_method="apply_gradients",
    model_loaders={f"{r}{n}": "load" for r in _ROOTS for n in ("models.load_model", "saving.load_model")},
    model_factory_namespaces=tuple(r + "applications." for r in _ROOTS),
    forward_methods=("call",),
    generator_keywords=frozenset({"seed"}),  # `keras.random.normal(shape, seed=seed)` with a caller's seed
    mode_is_argument=True,
    train_words="`training=True`",
    eval_words="`training=False`",
    mode_check_words="`if training:`",
    apply_gradients_methods=frozenset({"apply_gradients", "stateless_apply", "apply"}),
    gradient_methods=frozenset({"gradient"}),
    gradient_tapes=frozenset({"tensorflow.GradientTape", "tensorflow.autodiff.GradientTape"}),
    grad_transforms=frozenset({"jax.value_and_grad", "jax.grad"}),
    trainable_weights_attrs=frozenset({"trainable_variables", "trainable_weights"}),
    stateless_call_method="stateless_call",
    model_constructors=frozenset(f"{r}{n}" for r in _ROOTS for n in ("Sequential", "Model", "models.Sequential",
                                                                    "models.Model")),
    **NO_FUNCTIONAL_MODE_CALLS,
    **NO_GLOBAL_MODES,
    **NO_LAYER_ARGS,
)

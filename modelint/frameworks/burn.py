"""The Burn (Rust) profile: every Burn API name the Rust rules ask about, in three generations.

Burn reads the mode from the backend: an autodiff backend means training, its inner backend means
evaluation. How the question is spelled changed twice:
- <= 0.20: `B::ad_enabled()` (an associated function of the backend type);
- 0.21:    `B::ad_enabled(&device)`;
- 0.22:    `device.is_autodiff()` (the backend generic is gone from tensors).
`model.valid()` gives the module on the inner backend (evaluation); `no_grad()`/`freeze*()` only stop
gradients (Burn's docs: "use valid" for inference). Burn's own `Dropout`, `BatchNorm`,
`GaussianNoise` and `RRelu` branch on the mode. Rules never spell these names: they read `BURN`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import FrozenSet, Pattern


@dataclass(frozen=True)
class BurnProfile:
    name: str
    # `B::ad_enabled()` / `B::ad_enabled(&device)`: the last segment of a scoped call.
    mode_query_functions: FrozenSet[str]
    # `device.is_autodiff()`: a method call.
    mode_query_methods: FrozenSet[str]
    # Calls that sample: methods (`probs.multinomial(..)`, `x.random_like(..)`, `x.bernoulli()`)
    # and scoped functions (`Tensor::random(..)`, `Tensor::<B, 2>::random(..)`).
    sampling_methods: FrozenSet[str]
    sampling_functions: FrozenSet[str]
    # Layers that branch on the mode themselves (messages name them).
    mode_layers: FrozenSet[str]
    # The switch to evaluation and the gradient-only switches that are not one.
    to_inference: str
    grad_off_methods: FrozenSet[str]
    grad_off_prefixes: tuple
    # Calls that make a function a training routine (an optimizer step, a backward pass, a learner).
    training_calls: FrozenSet[str]
    # Calls that move data to another device/backend: a loop containing one may change the mode.
    device_changes: FrozenSet[str]
    # Iterator adaptors whose closure runs once per item (`xs.iter().map(|x| ..)`).
    iterator_adaptors: FrozenSet[str]
    # Names of functions that run a model for inference or evaluation.
    inference_function: Pattern
    # Hand-rolled mode fields on a `#[derive(Module)]` struct.
    training_fields: FrozenSet[str]
    # Words in a gated branch that mean randomness (`drop_path`, `self.noise`, `stochastic_depth`).
    random_words: Pattern
    # The autodiff backend type and the bound of a backend generic that is one.
    autodiff_type: str
    autodiff_bound: str
    # Model construction and loading (a model built in the function, on its backend).
    model_builders: FrozenSet[str]
    model_calls: FrozenSet[str]

    # The `let` name a hoisted mode query gets: for `B::ad_enabled(..)` and `device.is_autodiff()`.
    hoisted_function_name: str = "ad_enabled"
    hoisted_method_name: str = "is_autodiff"

    def is_grad_off(self, method: str) -> bool:
        return method in self.grad_off_methods or method.startswith(self.grad_off_prefixes)

    def mode_query_spelling(self, text: bytes) -> str:
        """How this file's Burn generation asks for the mode (for messages and fixes)."""
        if b"is_autodiff" in text:
            return "device.is_autodiff()"
        if re.search(rb"ad_enabled\(\s*&", text):
            return "B::ad_enabled(&device)"
        return "B::ad_enabled()"


BURN = BurnProfile(
    name="burn",
    mode_query_functions=frozenset({"ad_enabled"}),
    mode_query_methods=frozenset({"is_autodiff"}),
    sampling_methods=frozenset({"multinomial", "random_like", "bernoulli"}),
    sampling_functions=frozenset({"random", "random_like"}),
    mode_layers=frozenset({"Dropout", "BatchNorm", "GaussianNoise", "RRelu"}),
    to_inference="valid",
    grad_off_methods=frozenset({"no_grad"}),
    grad_off_prefixes=("freeze",),
    # `optim.step(lr, model, grads)`, `loss.backward()`, `GradientsParams::from_grads(..)`,
    # `learner.fit(..)` / `Learner::new(..)` (burn-train validates on `model.valid()` itself).
    training_calls=frozenset({"step", "backward", "from_grads", "fit", "train_step"}),
    device_changes=frozenset({"to_device", "fork"}),
    iterator_adaptors=frozenset({"map", "for_each", "filter_map", "flat_map", "fold", "scan", "try_for_each",
                                 "filter", "zip_with", "par_iter", "for_each_with"}),
    inference_function=re.compile(r"^(main|run|launch|infer\w*|inference\w*|predict\w*|eval\w*|test_model|generate\w*|sample_\w+)$"),
    training_fields=frozenset({"training", "is_training", "train_mode", "training_mode", "is_train"}),
    random_words=re.compile(r"drop|noise|random|sample|stochastic|bernoulli|multinomial"),
    autodiff_type="Autodiff",
    autodiff_bound="AutodiffBackend",
    model_builders=frozenset({"init", "load_record", "load_file", "load", "init_with"}),
    model_calls=frozenset({"forward", "infer", "forward_classification", "forward_regression", "predict"}),
)

from __future__ import annotations

from typing import Dict, FrozenSet, Optional

import libcst as cst

from modelint.analysis.calls import get_arg, has_star_args
from modelint.analysis.layers import LayerFacts
from modelint.analysis.walk import descendants
from modelint.rules.base import Rule
from modelint.rules.training_fixes import pass_training


class TrainingNotPassedInCustomLoop(Rule):
    code = "MDL305"
    name = "training-not-passed-in-custom-loop"
    level = "error"
    summary = "A Keras model is called without `training=True` in a custom training step, so Dropout and BatchNorm run in inference mode while it trains."
    what = (
        "Reports a call of a Keras model without `training=` where its weights are being updated: "
        "(1) inside `with tf.GradientTape() as tape:` when the same function differentiates that "
        "model's weights (`tape.gradient(loss, model.trainable_variables)`, or `self(x)` in a "
        "`train_step` that differentiates `self.trainable_variables`); (2) `model.stateless_call(...)` "
        "in a loss function handed to `jax.value_and_grad` / `jax.grad` (the JAX backend's loop); "
        "(3) a model built by Keras (`keras.Sequential`, `keras.Model`, a Keras model class of the file) "
        "called in a function that also runs `loss.backward()` and `optimizer.step()` (the torch "
        "backend's loop). Not reported: a call that passes `training=` (any value) or `**kwargs`, and a "
        "model the file shows to hold no mode-dependent layer (only `Dense`, `Conv2D`, ...: no "
        "Dropout, BatchNormalization, noise or random-augmentation layer, and no layer it cannot see).\n\n"
        "Assumes Keras' resolution of `training` (Keras 3; `tf.keras` since 2.3): the argument passed "
        "to this call, else the outer layer call's, else the `call` signature's non-None default, else "
        "False."
    )
    why = (
        "`model.fit()` passes `training=True` for you; a custom loop does not. Called as `model(x)` at "
        "the top of a step nothing sets the mode, Keras resolves it to False, and every Dropout layer "
        "passes its input through while BatchNormalization normalises with its moving statistics and "
        "never updates them: the weights are trained on an inference-mode network (no regularisation, "
        "batch-norm statistics frozen at their initial values), so training and validation curves "
        "disagree with `fit()` on the same model (TensorFlow issues 31184 and 32864). Keras' own "
        "custom-loop guides always write `model(x, training=True)` and "
        "`model.stateless_call(..., training=True)`."
    )
    example = (
        "import keras, tensorflow as tf\n"
        "model = keras.Sequential([keras.layers.Dense(64), keras.layers.Dropout(0.5), keras.layers.Dense(1)])\n"
        "def train_step(x, y):\n"
        "    with tf.GradientTape() as tape:\n"
        "        loss = keras.ops.mean((model(x) - y) ** 2)\n"
        "    grads = tape.gradient(loss, model.trainable_variables)\n"
        "    model.optimizer.apply_gradients(zip(grads, model.trainable_variables))\n"
    )
    use_instead = (
        "import keras, tensorflow as tf\n"
        "model = keras.Sequential([keras.layers.Dense(64), keras.layers.Dropout(0.5), keras.layers.Dense(1)])\n"
        "def train_step(x, y):\n"
        "    with tf.GradientTape() as tape:\n"
        "        loss = keras.ops.mean((model(x, training=True) - y) ** 2)\n"
        "    grads = tape.gradient(loss, model.trainable_variables)\n"
        "    model.optimizer.apply_gradients(zip(grads, model.trainable_variables))\n"
    )
    # Sound: a tape step names `GradientTape`, a JAX step `stateless_call`, and a torch-backend loop
    # reports only a model Keras builds, so the file spells `keras` (PyTorch-only files skip the rule).
    triggers = ("GradientTape", "stateless_call", "keras")
    fixable = True
    fix_safety = (
        "Safe: adds `training=True` to a call that passes no `training=`; Keras would otherwise resolve "
        "it to False there (nothing outer sets it), so the fix changes exactly the layers that read "
        "the mode, to the mode `fit()` runs them in."
    )

    VALID = (
        """
import keras
import tensorflow as tf
from keras import layers

model = keras.Sequential([layers.Dense(8), layers.Dropout(0.2), layers.Dense(1)])
teacher = keras.Sequential([layers.Dense(8), layers.BatchNormalization(), layers.Dense(1)])

def train_step(x, y, optimizer):
    with tf.GradientTape() as tape:
        soft = teacher(x)  # not differentiated: a frozen teacher runs in inference on purpose
        loss = keras.ops.mean((model(x, training=True) - soft) ** 2)
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))

def eval_step(x):
    with tf.GradientTape() as tape:  # saliency: gradients w.r.t. the input, not the weights
        tape.watch(x)
        out = model(x)
    return tape.gradient(out, x)
""",
        """
import keras
import tensorflow as tf
from keras import layers

class Linear(keras.Model):
    def __init__(self, units):
        super().__init__()
        self.units = units
        self.dense = layers.Dense(units)

    def call(self, x):
        return self.dense(x)

model = Linear(4)

def step(x, y, optimizer, **kw):
    with tf.GradientTape() as tape:
        loss = keras.ops.sum((model(x) - y) ** 2)  # only Dense: `training` changes nothing
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
""",
        """
import jax
import keras

model = keras.Sequential([keras.layers.Dense(8), keras.layers.Dropout(0.2)])

def loss_fn(tv, ntv, x, y):
    y_pred, ntv = model.stateless_call(tv, ntv, x, training=True)
    return keras.ops.mean((y - y_pred) ** 2), ntv

def predict(tv, ntv, x):
    return model.stateless_call(tv, ntv, x)[0]  # not differentiated

grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
""",
        """
import keras
import tensorflow as tf

class Trainer(keras.Model):
    def train_step(self, data):
        x, y = data
        with tf.GradientTape() as tape:
            if self.call_takes_training:
                y_pred = self(x, training=True)
            else:
                y_pred = self(x)  # a model whose `call` takes no `training`: decided per model
            loss = self.compute_loss(y=y, y_pred=y_pred)
        self.optimizer.apply_gradients(zip(tape.gradient(loss, self.trainable_variables), self.trainable_variables))
""",
        """
import torch

model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Dropout(0.1))

def train(loader, optimizer):
    model.train()
    for x, y in loader:
        loss = (model(x) - y).pow(2).mean()  # a torch model: `.train()` sets its mode
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
""",
    )
    INVALID = (
        """
import keras
import tensorflow as tf

def train_step(model, optimizer, x, y):
    with tf.GradientTape() as tape:
        logits = model(x)  # expect: MDL305
        loss = keras.losses.sparse_categorical_crossentropy(y, logits)
    grads = tape.gradient(loss, model.trainable_weights)
    optimizer.apply_gradients(zip(grads, model.trainable_weights))
""",
        """
import keras
import tensorflow as tf

class GAN(keras.Model):
    def __init__(self, generator, discriminator):
        super().__init__()
        self.generator = generator
        self.discriminator = discriminator

    def train_step(self, real):
        noise = keras.random.normal((32, 128))
        with tf.GradientTape() as tape:
            fake = self.generator(noise, training=True)
            score = self.discriminator(fake)  # expect: MDL305
            loss = keras.ops.mean(score)
        grads = tape.gradient(loss, self.discriminator.trainable_weights)
        self.d_optimizer.apply_gradients(zip(grads, self.discriminator.trainable_weights))
        return {"d_loss": loss}
""",
        """
import jax
import keras

model = keras.applications.ResNet50(weights=None)

def compute_loss(tv, ntv, x, y):
    y_pred, ntv = model.stateless_call(tv, ntv, x)  # expect: MDL305
    return keras.ops.mean(keras.losses.categorical_crossentropy(y, y_pred)), ntv

grad_fn = jax.grad(compute_loss, has_aux=True)
""",
        """
import keras
import torch

model = keras.Sequential([keras.layers.Dense(32), keras.layers.Dropout(0.5), keras.layers.Dense(10)])

def train(model, loader, optimizer, loss_fn):
    for x, y in loader:
        outputs = model(x)  # expect: MDL305
        loss = loss_fn(outputs, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
""",
    )
    FIXES = (
        (
            """
import keras
import tensorflow as tf

def train_step(model, optimizer, x, y):
    with tf.GradientTape() as tape:
        loss = keras.ops.mean((model(x) - y) ** 2)
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
""",
            """
import keras
import tensorflow as tf

def train_step(model, optimizer, x, y):
    with tf.GradientTape() as tape:
        loss = keras.ops.mean((model(x, training=True) - y) ** 2)
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
""",
        ),
    )

    def __init__(self, ctx, options=None):
        super().__init__(ctx, options)
        self._layers: Optional[LayerFacts] = None
        self._trained: Dict[int, FrozenSet[str]] = {}
        self._steps: Dict[int, bool] = {}
        self._grad_fns: Optional[FrozenSet[str]] = None

    @property
    def layers(self) -> LayerFacts:
        if self._layers is None:
            self._layers = LayerFacts(self.ctx)
        return self._layers

    def visit_Call(self, node: cst.Call) -> None:
        fw = self.ctx.framework
        if not fw.trainable_weights_attrs or has_star_args(node) or get_arg(node, fw.mode_keyword) is not None:
            return
        fn = self.ctx.enclosing_function()
        if fn is None:
            return
        func = node.func
        if isinstance(func, cst.Attribute) and func.attr.value == fw.stateless_call_method and fw.stateless_call_method:
            if fn.name.value in self._grad_functions() and self._may_be_sensitive(func.value):
                self._report(node, "`stateless_call`", "in a loss function whose gradient updates the weights")
            return
        if not isinstance(func, (cst.Name, cst.Attribute)):
            return
        text = self.ctx.module.code_for_node(func)
        if self._in_tape(node) and text in self._trained_models(fn):
            if self._may_be_sensitive(func):
                self._report(node, f"`{text}(...)`", "under the `GradientTape` whose gradient updates its weights")
        elif isinstance(func, cst.Name) and self._is_step(fn) and self._keras_binding(func.value):
            if self._may_be_sensitive(func):
                self._report(node, f"`{text}(...)`", "in a step that runs `backward()` and the optimizer")

    def _report(self, node: cst.Call, shown: str, where: str) -> None:
        if self._has_training_twin(node):
            return
        self.report(
            node,
            f"{shown} runs without `training=` {where}: nothing sets the mode, so Keras resolves it to False "
            f"and Dropout / BatchNormalization run in inference mode while the model trains (no dropout, "
            f"batch-norm statistics never updated); pass `training=True`",
            fix=pass_training(self.ctx, node, "True"),
        )

    def _has_training_twin(self, node: cst.Call) -> bool:
        """The function also makes the same call with `training=` (`if model_accepts_training: y =
        self(x, training=True) else: y = self(x)`): it decides per model on purpose."""
        fn = self.ctx.enclosing_function()
        callee = self.ctx.module.code_for_node(node.func)
        keyword = self.ctx.framework.mode_keyword
        return fn is not None and any(
            isinstance(n, cst.Call) and n is not node and get_arg(n, keyword) is not None
            and self.ctx.module.code_for_node(n.func) == callee
            for n in descendants(fn.body)
        )

    # --- where the call is ----------------------------------------------------------------------
    def _in_tape(self, node: cst.Call) -> bool:
        tapes = self.ctx.framework.gradient_tapes
        for anc in reversed(self.ctx.ancestors[:-1]):
            if isinstance(anc, cst.FunctionDef):
                return False
            if isinstance(anc, cst.With) and any(
                isinstance(i.item, cst.Call) and self.ctx.resolve(i.item.func) in tapes for i in anc.items
            ):
                return True
        return False

    def _trained_models(self, fn: cst.FunctionDef) -> FrozenSet[str]:
        """Receivers of `.trainable_variables` / `.trainable_weights` in the function: the models whose
        weights it differentiates (`self.discriminator`, `model`, `self`)."""
        key = id(fn)
        if key not in self._trained:
            attrs = self.ctx.framework.trainable_weights_attrs
            self._trained[key] = frozenset(
                self.ctx.module.code_for_node(n.value)
                for n in descendants(fn.body)
                if isinstance(n, cst.Attribute) and n.attr.value in attrs
            )
        return self._trained[key]

    def _is_step(self, fn: cst.FunctionDef) -> bool:
        """The function runs `loss.backward()` and `optimizer.step()` (a torch-backend loop)."""
        key = id(fn)
        if key not in self._steps:
            fw = self.ctx.framework
            names = {n.func.attr.value for n in descendants(fn.body)
                     if isinstance(n, cst.Call) and isinstance(n.func, cst.Attribute)}
            self._steps[key] = bool(names & fw.backward_methods) and fw.optimizer_step_method in names
        return self._steps[key]

    def _grad_functions(self) -> FrozenSet[str]:
        """Names of the file's functions handed to a gradient transform (`jax.value_and_grad(loss_fn)`)."""
        if self._grad_fns is None:
            transforms = self.ctx.framework.grad_transforms
            self._grad_fns = frozenset(
                n.args[0].value.value
                for n in descendants(self.ctx.module)
                if isinstance(n, cst.Call) and n.args and isinstance(n.args[0].value, cst.Name)
                and self.ctx.resolve(n.func) in transforms
            )
        return self._grad_fns

    # --- what the model is ----------------------------------------------------------------------
    def _keras_binding(self, name: str) -> bool:
        """`name` is bound at the top of the file to a model Keras builds (so a torch loop over it
        needs `training=True`; a torch model there is `.train()`'s business)."""
        value = self.layers.assigns.get(name)
        if not isinstance(value, cst.Call):
            return False
        fw = self.ctx.framework
        qual = self.ctx.resolve(value.func) or ""
        if qual in fw.model_constructors or qual.startswith(fw.model_factory_namespaces):
            return True
        local = self.ctx.top_level_classes().get(value.func.value) if isinstance(value.func, cst.Name) else None
        return local is not None and self.ctx.is_module_class(local) and any(
            (self.ctx.resolve(b.value) or "") in fw.module_bases for b in local.bases
        )

    def _may_be_sensitive(self, model: cst.CSTNode) -> bool:
        if isinstance(model, cst.Name) and model.value == "self":
            cls = self.ctx.enclosing_class()
            return cls is None or self.layers.class_may_be_sensitive(cls)
        if isinstance(model, cst.Name):
            fn = self.ctx.enclosing_function()
            facts = self.ctx.function_facts(fn)
            if facts is not None and model.value in facts.params:
                return True  # handed in: unknown
            local = facts.assigns.get(model.value) if facts is not None else None
            if local:
                return any(self.layers.value_may_be_sensitive(v) for v in local)
            return self.layers.value_may_be_sensitive(model)
        return True

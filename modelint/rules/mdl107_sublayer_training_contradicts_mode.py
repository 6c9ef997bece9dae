from __future__ import annotations

from typing import Dict, Optional

import libcst as cst

from modelint.analysis.calls import get_arg, is_literal_bool
from modelint.analysis.layers import LayerFacts
from modelint.analysis.walk import descendants
from modelint.rules.base import Rule
from modelint.rules.training_fixes import replace_training


class SublayerTrainingContradictsMode(Rule):
    code = "MDL107"
    name = "sublayer-training-contradicts-mode"
    level = "warning"
    summary = "A Keras layer's `call` runs a sublayer with a literal `training=True`/`False`, whatever mode the layer itself runs in."
    what = (
        "Reports, in a method of a Keras layer or model (its `call` and what it calls), a call of a "
        "sublayer (`self.x(...)` or a local layer) with a literal `training=True` or `training=False`, "
        "when the call is not under a mode check (`if training:`). Not reported: a sublayer the file "
        "shows to hold no mode-dependent layer (a `Dense`: the flag changes nothing), and "
        "`training=False` on a sublayer the class freezes (`self.backbone.trainable = False`: keras.io's "
        "fine-tuning guide keeps a frozen backbone's BatchNorm in inference mode on purpose).\n\n"
        "A sublayer called without `training=` is not reported: since `tf.keras` 2.3 and in Keras 3 it "
        "inherits the outer call's mode through the call context (the argument passed, else the outer "
        "call's, else the signature default, else False). Random sampling in `call` without "
        "`if training:` is MDL104 (the same bug as in PyTorch)."
    )
    why = (
        "The literal overrides the mode Keras propagates: `training=True` keeps the sublayer's Dropout "
        "dropping and its BatchNorm normalising with batch statistics in `model.predict()` and "
        "`evaluate()`, so inference is random and batch-dependent; `training=False` makes it run in "
        "inference while the model trains, so its Dropout never regularises and its BatchNorm never "
        "updates its moving statistics. Pass the layer's own `training` argument on."
    )
    example = (
        "import keras\n"
        "class Block(keras.layers.Layer):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.drop = keras.layers.Dropout(0.3)\n"
        "    def call(self, x, training=None):\n"
        "        return self.drop(x, training=True)\n"
    )
    use_instead = (
        "import keras\n"
        "class Block(keras.layers.Layer):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.drop = keras.layers.Dropout(0.3)\n"
        "    def call(self, x, training=None):\n"
        "        return self.drop(x, training=training)\n"
    )
    # Sound: the rule needs a file whose profile takes the mode as an argument, i.e. one importing Keras
    # (`keras`, `tf.keras`, `tf_keras`, `keras_hub`); PyTorch-only files skip it.
    triggers = ("keras",)
    fixable = True
    fix_safety = (
        "Unsafe: replaces the literal with the method's own `training` parameter. A literal can be "
        "deliberate (Monte-Carlo dropout at inference, a teacher kept in inference mode); the fix "
        "changes what the sublayer does in one of the two modes."
    )

    VALID = (
        """
import keras
from keras import layers

class Block(layers.Layer):
    def __init__(self, backbone):
        super().__init__()
        self.proj = layers.Dense(8)
        self.drop = layers.Dropout(0.1)
        self.backbone = backbone
        self.backbone.trainable = False

    def call(self, x, training=None):
        x = self.backbone(x, training=False)  # frozen on purpose (fine-tuning)
        x = self.proj(x, training=True)       # a Dense: training changes nothing
        if training:
            x = self.drop(x, training=True)
        return self.drop(x, training=training)
""",
        """
import keras

def build(base):
    inputs = keras.Input((224, 224, 3))
    x = base(inputs, training=False)  # building a functional model, not inside a layer's call
    return keras.Model(inputs, keras.layers.Dense(1)(x))
""",
    )
    INVALID = (
        """
import keras
from keras import layers

class Encoder(keras.Model):
    def __init__(self):
        super().__init__()
        self.norm = layers.BatchNormalization()
        self.drop = layers.SpatialDropout1D(0.2)

    def call(self, x, training=None):
        x = self.norm(x, training=False)  # expect: MDL107
        return self.drop(x, training=True)  # expect: MDL107
""",
        """
import tensorflow as tf

class Head(tf.keras.layers.Layer):
    def __init__(self, body, **kw):
        super().__init__(**kw)
        self.body = body

    def call(self, x):
        return self.body(x, training=True)  # expect: MDL107
""",
    )
    UNSAFE_FIXES = (
        (
            """
import keras

class Block(keras.layers.Layer):
    def __init__(self):
        super().__init__()
        self.drop = keras.layers.Dropout(0.3)

    def call(self, x, training=None):
        return self.drop(x, training=True)
""",
            """
import keras

class Block(keras.layers.Layer):
    def __init__(self):
        super().__init__()
        self.drop = keras.layers.Dropout(0.3)

    def call(self, x, training=None):
        return self.drop(x, training=training)
""",
        ),
    )

    def __init__(self, ctx, options=None):
        super().__init__(ctx, options)
        self._layers: Optional[LayerFacts] = None
        self._attrs: Dict[int, Dict[str, Optional[cst.BaseExpression]]] = {}
        self._frozen: Dict[int, frozenset] = {}

    def visit_Call(self, node: cst.Call) -> None:
        fw = self.ctx.framework
        if not (fw.mode_is_argument or any(p.mode_is_argument for p in fw.parts)):
            return
        arg = get_arg(node, fw.mode_keyword)
        if arg is None or not (is_literal_bool(arg.value, True) or is_literal_bool(arg.value, False)):
            return
        method, cls = self.ctx.enclosing_method_and_class()
        if method is None or cls is None or not self._argument_mode_class(cls):
            return
        if method.name.value not in self.ctx.reachable_methods(cls, fw.forward_methods + fw.runtime_methods):
            return  # `train_step`'s `self(x, training=True)` calls the model, not a sublayer
        if isinstance(node.func, cst.Name) and node.func.value == "self":
            return
        value = is_literal_bool(arg.value, True)
        sublayer = self._sublayer(node.func, cls)
        if sublayer is False or self.ctx.is_guarded(node):
            return
        name = node.func.attr.value if isinstance(node.func, cst.Attribute) else None
        if not value and name in self._frozen_attrs(cls):
            return
        self._report(node, arg, method, value)

    def _report(self, node: cst.Call, arg: cst.Arg, method: cst.FunctionDef, value: bool) -> None:
        shown = self.ctx.module.code_for_node(node.func)
        if value:
            effect = ("runs it in training mode also when this layer runs in inference (`predict()`, "
                      "`evaluate()`): its Dropout keeps dropping and its BatchNorm uses batch statistics")
        else:
            effect = ("runs it in inference mode also while the model trains: its Dropout never drops and "
                      "its BatchNorm never updates its moving statistics")
        params = {p.name.value for p in method.params.params + method.params.kwonly_params}
        flag = self.ctx.framework.mode_keyword if self.ctx.framework.mode_keyword in params else None
        self.report(
            node,
            f"`{shown}(..., training={value})` overrides the mode Keras passes down and {effect}; pass the "
            f"layer's own `training` on",
            fix=replace_training(self.ctx, arg.value, flag, "the literal may be deliberate"),
        )

    def _argument_mode_class(self, cls: cst.ClassDef) -> bool:
        """A layer class of a framework whose mode is an argument (Keras), also in a mixed file."""
        return self.ctx.is_module_class(cls) and self.ctx.class_framework(cls).mode_is_argument

    # --- what the sublayer is -------------------------------------------------------------------
    def _sublayer(self, func: cst.CSTNode, cls: cst.ClassDef):
        """False when the file shows the callee holds no mode-dependent layer; True otherwise."""
        if self._layers is None:
            self._layers = LayerFacts(self.ctx)
        if isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name) and func.value.value == "self":
            attrs = self._self_attrs(cls)
            if func.attr.value in attrs:
                value = attrs[func.attr.value]
                return value is None or self._layers.value_may_be_sensitive(value)
        return True

    def _self_attrs(self, cls: cst.ClassDef) -> Dict[str, Optional[cst.BaseExpression]]:
        """`self.x = <call>` in the class -> the call (None when assigned more than once or from a name)."""
        key = id(cls)
        if key not in self._attrs:
            out: Dict[str, Optional[cst.BaseExpression]] = {}
            for n in descendants(cls.body):
                if isinstance(n, cst.Assign) and len(n.targets) == 1 and _self_attr(n.targets[0].target):
                    attr = n.targets[0].target.attr.value  # type: ignore[attr-defined]
                    out[attr] = None if attr in out or not isinstance(n.value, cst.Call) else n.value
            self._attrs[key] = out
        return self._attrs[key]

    def _frozen_attrs(self, cls: cst.ClassDef) -> frozenset:
        """Sublayers the class freezes: `self.backbone.trainable = False`."""
        key = id(cls)
        if key not in self._frozen:
            self._frozen[key] = frozenset(
                n.targets[0].target.value.attr.value  # type: ignore[attr-defined]
                for n in descendants(cls.body)
                if isinstance(n, cst.Assign) and len(n.targets) == 1
                and isinstance(n.targets[0].target, cst.Attribute) and n.targets[0].target.attr.value == "trainable"
                and _self_attr(n.targets[0].target.value) and is_literal_bool(n.value, False)
            )
        return self._frozen[key]


def _self_attr(expr: cst.CSTNode) -> bool:
    return isinstance(expr, cst.Attribute) and isinstance(expr.value, cst.Name) and expr.value.value == "self"

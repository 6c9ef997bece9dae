from __future__ import annotations

from typing import Tuple

import libcst as cst

from modelint.analysis.calls import get_arg, is_literal_bool, is_literal_zero, literal_value, NOT_LITERAL
from modelint.analysis.walk import descendants
from modelint.rules.base import Rule, measured_set20



class ModeSensitiveModuleBuiltInForward(Rule):
    code = "MDL202"
    name = "mode-sensitive-module-built-in-forward"
    level = "error"
    summary = "A dropout / batch-norm / attention / RNN module constructed at run time is always in training mode."
    what = (
        "Reports the construction of a mode-sensitive `torch.nn` module inside a method of an "
        "`nn.Module` class, where it runs at forward time: `Dropout*`, `AlphaDropout`, "
        "`FeatureAlphaDropout`, `BatchNorm*`, `SyncBatchNorm`, `LazyBatchNorm*` (unless "
        "`track_running_stats=False`), `InstanceNorm*` with `track_running_stats=True` (the default is "
        "False; for `LazyInstanceNorm*` it is True), `RReLU`, `MultiheadAttention`, `Transformer`, "
        "`TransformerEncoder(Layer)`, `TransformerDecoder(Layer)`, and `RNN`/`LSTM`/`GRU` with a "
        "non-zero `dropout`. Where it reports: (1) any such construction in `forward` (also "
        "`__call__` and Lightning's `*_step` methods), in a method that these reach through "
        "`self.<method>` (calls or references such as `checkpoint(self._inner, x)`), and in functions "
        "nested in them; (2) in every other method except `__init__`, a construction that is applied "
        "right away: `nn.Dropout(0.5)(x)`, or bound to a local name that the method then calls and "
        "never stores. Builder methods called from `__init__` (`_make_layer`, `build_*`, "
        "`reset_classifier`) that return or store the new module are not reported: that is how "
        "modules are meant to be built. Not reported either: a literal `p=0` / `dropout=0`, a module "
        "whose mode is set explicitly (`.eval()` / `.train(...)` on it), stateless modules (`ReLU`, "
        "losses, `Identity`)."
    )
    what += measured_set20('1 finding, real (a `nn.BatchNorm1d` built on every forward of a graph network, so its evaluation normalises with batch statistics; latent: behind a flag that is off by default)')
    why = (
        "A module constructed at run time starts in training mode whatever mode the model is in, and "
        "`model.eval()` cannot reach it because it is not a registered child (or did not exist yet). "
        "So in evaluation dropout keeps dropping, batch norm keeps using batch statistics, and every "
        "call gets freshly initialised weights that the optimizer never trains and `state_dict()` never "
        "saves. Construct the module once in `__init__`, assign it to `self.<name>`, and call it in "
        "`forward`; or use the functional form with `training=self.training`."
    )
    example = (
        "class Head(nn.Module):\n"
        "    def __init__(self, d):\n"
        "        super().__init__()\n"
        "        self.fc = nn.Linear(d, 10)\n"
        "    def forward(self, x):\n"
        "        return self.fc(nn.Dropout(0.5)(x))\n"
    )
    use_instead = (
        "class Head(nn.Module):\n"
        "    def __init__(self, d):\n"
        "        super().__init__()\n"
        "        self.fc = nn.Linear(d, 10)\n"
        "        self.drop = nn.Dropout(0.5)\n"
        "    def forward(self, x):\n"
        "        return self.fc(self.drop(x))\n"
    )
    fix_safety = (
        "No fix: the module must move to `__init__` under a new attribute name, which also changes "
        "`state_dict()` keys and, for layers with weights, what is trained."
    )
    triggers = ("Dropout", "BatchNorm", "InstanceNorm", "RReLU", "MultiheadAttention", "Transformer", "RNN",
                "LSTM", "GRU")

    VALID = (
        """
import torch.nn as nn

class ResNet(nn.Module):
    def __init__(self, widths):
        super().__init__()
        self.layers = nn.Sequential(*[self._make_layer(w) for w in widths])
        self.reset_classifier(10)

    def _make_layer(self, w):
        return nn.Sequential(nn.Conv2d(w, w, 3), nn.BatchNorm2d(w), nn.ReLU(), nn.Dropout(0.1))

    def reset_classifier(self, num_classes, drop=0.2):
        self.head = nn.Sequential(nn.Dropout(drop), nn.LazyLinear(num_classes))

    def forward(self, x):
        x = nn.ReLU()(self.layers(x))                      # stateless
        x = nn.InstanceNorm2d(x.shape[1])(x)               # no running stats by default
        x = nn.Dropout(p=0.0)(x)                           # a no-op
        x = nn.BatchNorm2d(x.shape[1], track_running_stats=False)(x)
        return self.head(x.mean((2, 3)))

class Frozen(nn.Module):
    def forward(self, x):
        bn = nn.BatchNorm1d(x.shape[1]).to(x.device).train(self.training)  # mode set explicitly
        return bn(x)

class NotAModule:
    def forward(self, x):
        return nn.Dropout(0.5)(x)
""",
    )
    INVALID = (
        """
import torch.nn as nn
from torch.nn import BatchNorm1d

class Decoder(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.fc = nn.Linear(d, d)

    def forward(self, x):
        x = nn.Dropout(0.5)(x)  # expect: MDL202
        return self._head(x)

    def _head(self, x):
        norm = BatchNorm1d(x.shape[-1]).to(x.device)  # expect: MDL202
        rnn = nn.LSTM(8, 8, num_layers=2, dropout=0.2)  # expect: MDL202
        return rnn(norm(self.fc(x)))[0]

    def encode(self, x):  # not reached from forward, but applied right away
        drop = nn.Dropout2d(0.1)  # expect: MDL202
        return drop(x)
""",
    )

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        if not isinstance(func, (cst.Name, cst.Attribute)):
            return
        qualname = self.ctx.resolve(func)
        fw = self.ctx.framework
        if not qualname or not fw.mode_sensitive_layer(qualname):
            return
        cls_name = qualname.rsplit(".", 1)[-1]
        if not self._is_mode_sensitive(node, cls_name):
            return
        method = self.ctx.enclosing_method()
        if method is None or method.name.value == "__init__":
            return
        if not self.ctx.in_module_method():
            return
        if self._nested_in_reported_construction():
            return
        applied, explicit_mode = self._usage(node)
        if explicit_mode:
            return
        classdef = self.ctx.enclosing_class()
        seeds = self.ctx.framework.runtime_methods  # what runs while the model is used
        runtime = method.name.value in self.ctx.reachable_methods(classdef, seeds)
        if not runtime and not applied:
            return
        shown = self.ctx.module.code_for_node(func)
        where = f"`{method.name.value}`" + ("" if method.name.value in seeds or not runtime else " (called from `forward`)")
        self.report(
            node,
            f"`{shown}(...)` is constructed in {where} on every call: the fresh module is in training mode "
            f"whatever the model's mode and `model.eval()` cannot reach it, so it {fw.mode_sensitive_layers[cls_name]}; "
            f"create it once in `__init__` as `self.<name> = {shown}(...)` and call that",
        )

    # --- helpers ---------------------------------------------------------------------------------
    def _is_mode_sensitive(self, node: cst.Call, cls_name: str) -> bool:
        fw = self.ctx.framework
        spec = fw.layer_stats_arg.get(cls_name)
        if spec is not None:
            arg = get_arg(node, spec.keyword, spec.position)
            if arg is None:
                return bool(spec.default)
            value = literal_value(arg.value)
            return value is NOT_LITERAL or bool(value)
        spec = fw.layer_dropout_arg.get(cls_name)
        if spec is not None:
            arg = get_arg(node, spec.keyword, spec.position)
            return arg is None or not is_literal_zero(arg.value)
        spec = fw.layer_optional_dropout_arg.get(cls_name)
        if spec is not None:
            arg = get_arg(node, spec.keyword, spec.position)
            return arg is not None and not is_literal_zero(arg.value) and not is_literal_bool(arg.value, False)
        return True

    def _nested_in_reported_construction(self) -> bool:
        """`nn.TransformerEncoder(nn.TransformerEncoderLayer(...), 2)`: report the outer call once."""
        anc = self.ctx.ancestors
        i = len(anc) - 2
        while i > 0 and isinstance(anc[i], (cst.Arg, cst.Element, cst.StarredElement, cst.List, cst.Tuple)):
            i -= 1
        outer = anc[i] if i >= 0 else None
        if isinstance(outer, cst.Call) and outer is not anc[-1] and isinstance(outer.func, (cst.Name, cst.Attribute)):
            return self.ctx.framework.mode_sensitive_layer(self.ctx.resolve(outer.func) or "")
        return False

    def _usage(self, node: cst.Call) -> Tuple[bool, bool]:
        """(applied right away, mode set explicitly) for the module built by `node`, following
        `nn.Sequential(...)` wrappers and `.to(...)`-style chains up to the expression that uses it."""
        anc = self.ctx.ancestors
        fw = self.ctx.framework
        switches = (fw.train_method, fw.eval_method)
        i = len(anc) - 1
        explicit = False
        while i > 0:
            parent = anc[i - 1]
            if isinstance(parent, (cst.Arg, cst.Element, cst.StarredElement, cst.List, cst.Tuple)):
                i -= 1
                continue
            if isinstance(parent, cst.Call) and parent.func is not anc[i]:
                # an argument of another constructor (`nn.Sequential(nn.Dropout(), ...)`) or of a call
                q = self.ctx.resolve(parent.func) if isinstance(parent.func, (cst.Name, cst.Attribute)) else None
                if q and fw.is_capitalised_layer_name(q):
                    i -= 1
                    continue
                return False, False
            if isinstance(parent, cst.Attribute) and parent.value is anc[i] and i >= 2 and isinstance(anc[i - 2], cst.Call):
                if parent.attr.value in switches:
                    explicit = True
                if parent.attr.value in fw.self_returning_methods:
                    i -= 2
                    continue
                return False, explicit
            break
        top = anc[i]
        parent = anc[i - 1] if i > 0 else None
        if isinstance(parent, cst.Call) and parent.func is top:
            return True, explicit
        if isinstance(parent, cst.Assign) and len(parent.targets) == 1 and isinstance(parent.targets[0].target, cst.Name):
            return self._local_usage(parent.targets[0].target.value, explicit)
        return False, explicit

    def _local_usage(self, name: str, explicit: bool) -> Tuple[bool, bool]:
        """A local bound to the fresh module: is it called, and is its mode set explicitly?"""
        fn = self.ctx.enclosing_function()
        if fn is None:
            return False, explicit
        called = False
        fw = self.ctx.framework
        switches = (fw.train_method, fw.eval_method)
        for n in descendants(fn.body):
            if isinstance(n, cst.Call):
                f = n.func
                if isinstance(f, cst.Name) and f.value == name:
                    called = True
                elif (isinstance(f, cst.Attribute) and isinstance(f.value, cst.Name) and f.value.value == name
                      and f.attr.value in switches):
                    explicit = True
        return called, explicit

"""May a model (a value or a class in this file) run layers whose output depends on the mode?

Used where forgetting the mode only matters if some layer reads it (MDL305: a Keras model called
without `training=True` in a custom loop is harmless when it holds only `Dense` layers, as in
Keras' own `examples/demo_custom_tf_workflow.py`). The answer is "yes" unless the file shows every
layer: a framework layer matching the profile's `mode_sensitive_pattern` (`Dropout`,
`BatchNormalization`, ...) is yes, a known framework layer that does not match is no, and anything
the file cannot see (a parameter, an imported project class, a functional `keras.Model(inputs,
outputs)`, a pretrained model) is yes: the rule then assumes the common case, dropout or batch norm.
"""

from __future__ import annotations

from typing import Dict, Optional

import libcst as cst

from modelint.analysis.walk import descendants

_DEPTH = 6  # model -> builder function -> Sequential -> local class -> ...: deeper is "unknown"


def module_assignments(module: cst.Module) -> Dict[str, cst.BaseExpression]:
    """Top-level `name = value` bindings (the last one wins), and top-level functions by name."""
    out: Dict[str, cst.BaseExpression] = {}
    for stmt in module.body:
        if isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                if isinstance(small, cst.Assign) and len(small.targets) == 1 and isinstance(small.targets[0].target, cst.Name):
                    out[small.targets[0].target.value] = small.value
    return out


def _functions(module: cst.Module) -> Dict[str, cst.FunctionDef]:
    return {s.name.value: s for s in module.body if isinstance(s, cst.FunctionDef)}


class LayerFacts:
    """Per-file answers, memoised (one instance per rule per file)."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.assigns = module_assignments(ctx.module)
        self.functions = _functions(ctx.module)
        self._classes: Dict[int, bool] = {}

    # --- values ---------------------------------------------------------------------------------
    def value_may_be_sensitive(self, value: Optional[cst.CSTNode], depth: int = 0) -> bool:
        if value is None or depth > _DEPTH:
            return True
        if isinstance(value, cst.Name):
            return self.value_may_be_sensitive(self.assigns.get(value.value), depth + 1)
        if isinstance(value, (cst.List, cst.Tuple)):
            return any(self.value_may_be_sensitive(e.value, depth + 1) for e in value.elements)
        if not isinstance(value, cst.Call):
            return True
        return self._call_may_be_sensitive(value, depth)

    def _call_may_be_sensitive(self, call: cst.Call, depth: int) -> bool:
        fw = self.ctx.framework
        qual = self.ctx.resolve(call.func) or ""
        last = qual.rsplit(".", 1)[-1]
        if fw.is_layer_name(qual) and last in fw.containers or qual in fw.model_constructors and last in fw.containers:
            # `Sequential([...])`: its layers decide; `Sequential()` filled later by `.add` is unknown.
            return not call.args or self.value_may_be_sensitive(call.args[0].value, depth + 1)
        if fw.is_layer_class(qual):
            return bool(fw.mode_sensitive_pattern.match(last))
        if isinstance(call.func, cst.Name) and call.func.value in self.functions:
            return self._returns_may_be_sensitive(self.functions[call.func.value], depth)
        local = self.ctx.top_level_classes().get(call.func.value) if isinstance(call.func, cst.Name) else None
        if local is not None:
            return self.class_may_be_sensitive(local, depth + 1)
        return True

    def _returns_may_be_sensitive(self, fn: cst.FunctionDef, depth: int) -> bool:
        returns = [n.value for n in descendants(fn.body) if isinstance(n, cst.Return)]
        return not returns or any(self.value_may_be_sensitive(v, depth + 1) for v in returns)

    # --- classes --------------------------------------------------------------------------------
    def class_may_be_sensitive(self, classdef: cst.ClassDef, depth: int = 0) -> bool:
        """Does the class build (or receive) a layer that may read the mode? Every call in its body is
        looked at (`self.drop = layers.Dropout(.2)`, `layers.Dropout(.2)(x)` in `call`), and a
        sublayer handed in through a parameter (`self.backbone = backbone`) is unknown."""
        key = id(classdef)
        if key not in self._classes:
            self._classes[key] = True  # a recursive class is unknown
            self._classes[key] = self._class_scan(classdef, depth)
        return self._classes[key]

    def _class_scan(self, classdef: cst.ClassDef, depth: int) -> bool:
        fw = self.ctx.framework
        for base in classdef.bases:
            q = self.ctx.resolve(base.value) or ""
            if q not in fw.module_bases:
                return True  # an inherited `__init__` we do not see
        nodes = list(descendants(classdef.body))
        called = {n.func.attr.value for n in nodes if isinstance(n, cst.Call) and _self_attribute(n.func)}
        for node in nodes:
            if isinstance(node, cst.Assign) and _injected(node) in called:
                return True
            if isinstance(node, cst.Call) and self._call_builds_sensitive(node, depth):
                return True
        return False

    def _call_builds_sensitive(self, call: cst.Call, depth: int) -> bool:
        fw = self.ctx.framework
        qual = self.ctx.resolve(call.func) or ""
        last = qual.rsplit(".", 1)[-1]
        if fw.is_layer_class(qual):
            return bool(fw.mode_sensitive_pattern.match(last))
        if isinstance(call.func, cst.Name):
            local = self.ctx.top_level_classes().get(call.func.value)
            if local is not None:
                return self.class_may_be_sensitive(local, depth + 1)
            if call.func.value in self.functions:
                return self._returns_may_be_sensitive(self.functions[call.func.value], depth)
        # A capitalised callee outside the framework is a class we cannot see (an imported block).
        return last[:1].isupper() and not fw.in_namespace(qual)


def _self_attribute(expr: cst.CSTNode) -> bool:
    return isinstance(expr, cst.Attribute) and isinstance(expr.value, cst.Name) and expr.value.value == "self"


def _injected(assign: cst.Assign) -> Optional[str]:
    """`self.x = x`: the attribute set from a plain name (a parameter, usually), or None. It counts as
    an unseen sublayer only when the class calls it (`self.x(...)`; `self.units = units` is a number)."""
    if len(assign.targets) != 1 or not _self_attribute(assign.targets[0].target):
        return None
    if not isinstance(assign.value, cst.Name) or assign.value.value in ("None", "True", "False"):
        return None
    return assign.targets[0].target.attr.value  # type: ignore[attr-defined]

from __future__ import annotations

from typing import List, Optional, Tuple

import libcst as cst

from modelint.analysis.calls import literal_value
from modelint.analysis.classes import first_param, is_decorated_with
from modelint.analysis.structure import always_exits, is_overload_stub, iter_returns
from modelint.analysis.walk import descendants
from modelint.fixes import InsertAfter, InsertBefore, Replace, fix
from modelint.rules.base import Rule, measured_set20

# Parameter names that say "this is the mode flag" (`def train(self, mode=True)`).
_MODE_PARAM_NAMES = frozenset(
    {"mode", "training", "train", "is_training", "train_mode", "training_mode", "is_train", "flag", "enable",
     "enabled", "on", "value", "val", "b", "state", "mode_", "_mode", "new_mode", "set_train"}
)
_LEVEL_RANK = {"info": 0, "warning": 1, "error": 2}



def _signature(fn: cst.FunctionDef) -> str:
    text = cst.Module(body=[]).code_for_node(fn.params)
    return f"def {fn.name.value}({' '.join(text.split()).rstrip(', ')})"


class TrainOverrideBroken(Rule):
    code = "MDL203"
    name = "train-override-broken"
    level = "warning"
    summary = "A module's `train()` / `eval()` override breaks `model.eval()` / `model.train()`."
    what = (
        "Reports a method named `train` or `eval` of an `nn.Module` class when (a) its parameters are "
        "not compatible with `train(self, mode=True)` / `eval(self)` in a way that fails silently (error): e.g. a "
        "fit method `train(self, loader, epochs=10)` or `train(self, epochs=10)`, which `model.eval()` runs with "
        "`loader=False` / `epochs=False` (signatures that raise `TypeError` instead: see below); (b) it never "
        "delegates to the base implementation (warning): no `super().train(mode)`, "
        "`super(Cls, self).train(mode)`, `nn.Module.train(self, mode)` or `<Base>.train(self, mode)` "
        "for a base module class (for `eval`: `super().eval()`, `self.train(False)` or one of the "
        "former), neither in the method nor in a method of the class it calls through `self.`, and no "
        "hand-written equivalent (assigning `self.training` and calling `.train(...)` on the children); "
        "(c) it does not return `self` (or the delegated call's result) on every path (info); (d) an `eval` "
        "override of a layer (a class deriving from a framework layer class other than a container, "
        "`class ConsistentDropout(_DropoutNd)`) that does work besides switching (`self.reset()` next to "
        "`super().eval()`) and has no `train` override (warning): a layer is a child, and a parent's `.eval()` "
        "calls `train(False)` on each child, never its `eval()`, so the work never runs inside a model. "
        "An `eval` with extra work on a model class (not a layer) is not reported: it is usually the root. One "
        "finding per method, on its name, with every case that applies; the finding's level is that of "
        "the most severe case. Methods whose every path raises, `@overload` signature stubs "
        "(`typing.overload` / `typing_extensions.overload` under any alias: the implementation after them is "
        "judged, once), and classes that are not modules, are not reported. The catalogue lists the rule as `warning` (case b, the common one); with "
        "per-finding levels the engine reports case (a) as `error` and case (c) as `info`.\n\n"
        "What it no longer reports by default (issue 15): a signature that cannot take the mode switch's own "
        "call at all - a `train` with no parameter after `self`, or with two or more required positional "
        "parameters (`train(self, data, epochs)`) or a required keyword-only one, and an `eval` that requires "
        "an argument (`eval(self, loader)`). Those raise `TypeError` the first time anything switches modes, "
        "a loud failure rather than the silent bug this rule is for; `report-signature-clashes = true` "
        "reports them again. The same holds for a mode parameter without a default (`def train(self, mode)`): "
        "`model.train()` without an argument - the first line of nearly every training loop, and what "
        "Lightning and the Hugging Face Trainer call - raises `TypeError` at once, while `model.eval()` "
        "(`train(False)`) and a parent's `child.train(mode)` work, so the signature never fails silently; by "
        "default such an override is judged like any other by its body (cases b and c), and the option reports "
        "the signature itself (as an error). A `train` whose first parameter takes the flag silently (`train(self, "
        "epochs=10)`: `model.eval()` runs a fit with `epochs=False`) is still reported."
    )
    what += measured_set20("1 finding, real (a vocoder generator's `eval(self, inference=False)` that returns None; latent, the repo calls it as a statement)")
    why = (
        "PyTorch switches modes through this method: `model.eval()` is `model.train(False)`, and a "
        "parent's `.train(mode)` / `.eval()` calls `child.train(mode)` on every child. (a) A `train` "
        "that means something else is hijacked: `model.eval()` calls `train(False)`, which starts a "
        "fit with `loader=False` or raises `TypeError`, and an `eval(self, loader)` makes "
        "`model.eval()` (called by Lightning, Accelerate and most evaluation loops) raise. (b) Without "
        "delegation neither `self.training` nor the children change mode: dropout and batch norm keep "
        "training behaviour during evaluation. (c) `nn.Module.train` returns `self`, so "
        "`model = Net().eval()` and `model.eval().to(device)` are common; an override that returns "
        "`None` turns those into `None`."
    )
    example = (
        "class Net(nn.Module):\n"
        "    def train(self, mode=True):\n"
        "        self.cache = None\n"
    )
    use_instead = (
        "class Net(nn.Module):\n"
        "    def train(self, mode=True):\n"
        "        super().train(mode)\n"
        "        self.cache = None\n"
        "        return self\n"
    )
    triggers = ("train", "eval")
    fix_safety = (
        "Safe: `return self` where `train()` / `eval()` returns None (a bare `return` or falling off the end), "
        "which restores chaining such as `model.train().cuda()`; no fix when a `return` gives back something "
        "else. Unsafe: calling `super().train(mode)` / `super().eval()` first, because the override may switch "
        "its children on purpose and the parent's switch now also runs on every child."
    )
    fixable = True
    options_schema = {"report-signature-clashes": False}
    option_docs = {
        "report-signature-clashes": (
            "Also report `train` / `eval` overrides whose signature cannot take the mode switch's call "
            "(`train(self)`, `train(self, data, epochs)`, `eval(self, loader)`) or a plain `model.train()` "
            "(`train(self, mode)` without a default): they raise `TypeError` at the first `model.eval()` / "
            "`model.train()`, so they are left out by default."
        )
    }

    VALID = (
        # the near misses of (d): the same work in a train(mode) override, and a model (not a layer)
        # whose eval() does more than switch
        """
import torch.nn as nn

class FrozenMaskDropout(nn.Dropout):
    def __init__(self, p=0.5):
        super().__init__(p)
        self.mask = None

    def train(self, mode=True):
        if not mode:
            self.mask = None
        return super().train(mode)

class Tagger(nn.Module):
    def eval(self):
        self.cache = {}
        return super().eval()
""",
        """
import torch
import torch.nn as nn

class Attention(nn.Module):
    @torch.no_grad()
    def train(self, mode: bool = True):
        super().train(mode)
        if mode and hasattr(self, "ab"):
            del self.ab
        return self

class GraphModule(nn.Module):
    def train(self, mode=True):
        if mode and not self.training:
            self.graph = self.train_graph
        return super().train(mode=mode)

class Wrapper(GraphModule):
    def train(self, mode=True):
        out = GraphModule.train(self, mode)
        self.teacher.eval()
        return out

    def eval(self):
        return self.train(False)

class Manual(nn.Module):
    def train(self, mode=True):
        self.training = mode
        for child in self.children():
            child.train(mode)
        return self

class Trainer:                      # not a module: its train() is nobody's business
    def train(self, loader, epochs):
        pass
""",
        # signatures that cannot take `train(False)` / `eval()`: a TypeError at the first mode switch, loud
        # (reported with `report-signature-clashes = true`)
        """
import torch.nn as nn

class Fitter(nn.Module):
    def train(self, data, epochs):
        for _ in range(epochs):
            self.step(data)

class Frozen(nn.Module):
    def train(self):
        return self

class Scorer(nn.Module):
    def eval(self, loader):
        return sum(self(x).sum() for x in loader)

class KeywordFit(nn.Module):
    def train(self, mode=True, *, loader):
        return self.fit(loader)

class Strict(nn.Module):             # `model.train()` raises at once; `train(False)` / `child.train(mode)` work
    def train(self, mode):
        return super().train(mode)
""",
        """
import torch.nn as nn

class Base(nn.Module):
    def train(self, mode=True):
        return self._set_mode(mode)

    def _set_mode(self, mode):
        self.cache = {}
        return super().train(mode)

class Legacy(nn.Module):
    def train(self, mode=True, freeze_bn=False):
        super(Legacy, self).train(mode)
        if freeze_bn:
            for m in self.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.eval()
        return self

class NoTraining(nn.Module):
    def train(self, mode=True):
        raise RuntimeError("this model is inference-only")
""",
        # `@overload` stubs declare signatures; only the implementation runs, and it delegates
        """
import typing as t
from typing import overload
from typing_extensions import overload as ext_overload
import torch.nn as nn

class Typed(nn.Module):
    @overload
    def train(self, mode: bool = ...) -> "Typed": ...
    @t.overload
    def train(self, mode: int) -> "Typed": ...
    def train(self, mode=True):
        return super().train(bool(mode))

class TypedExt(nn.Module):
    @ext_overload
    def eval(self) -> "TypedExt": ...
    def eval(self):
        return self.train(False)
""",
    )
    INVALID = (
        # (d) a layer whose eval() override does more than switch: a parent's eval() never runs it
        """
import torch.nn as nn

class FrozenMaskDropout(nn.Dropout):
    def __init__(self, p=0.5):
        super().__init__(p)
        self.mask = None

    def eval(self):  # expect: MDL203
        self.mask = None
        return super().eval()
""",
        """
import torch.nn as nn

class Classifier(nn.Module):
    def train(self, loader, epochs=10):  # expect: MDL203
        for _ in range(epochs):
            for x, y in loader:
                self.step(x, y)

class Epochs(nn.Module):                 # `model.eval()` silently runs a fit with `epochs=False`
    def train(self, epochs=10):  # expect: MDL203
        for _ in range(epochs):
            self.step()
""",
        """
import torch.nn as nn

class Cached(nn.Module):
    def train(self, mode=True):  # expect: MDL203
        self.cache = None
        return self

class NoReturn(nn.Module):
    def train(self, mode=True):  # expect: MDL203
        super().train(mode)
        self.cache = None

class HeadOnly(nn.Module):
    def eval(self):  # expect: MDL203
        self.model.eval()
        return self

class StrictCached(nn.Module):       # no default for `mode`: still a mode switch, and this one never delegates
    def train(self, mode):  # expect: MDL203
        self.cache = None
        return self
""",
        # one finding per override: on the implementation, not on each `@overload` stub
        """
from typing import overload as sig
import typing_extensions
import torch.nn as nn

class Stubbed(nn.Module):
    @sig
    def train(self, mode: bool = ...) -> "Stubbed": ...
    @typing_extensions.overload
    def train(self, mode: int) -> "Stubbed": ...
    def train(self, mode=True):  # expect: MDL203
        self.cache = None
        return self

class Decorated(nn.Module):
    @overloaded_elsewhere
    def train(self, mode=True):  # expect: MDL203
        self.cache = None
        return self
""",
    )

    FIXES = (
        (
            """
import torch.nn as nn

class Cached(nn.Module):
    def train(self, mode=True):
        super().train(mode)
        if mode:
            return
        self.cache = None
""",
            """
import torch.nn as nn

class Cached(nn.Module):
    def train(self, mode=True):
        super().train(mode)
        if mode:
            return self
        self.cache = None
        return self
""",
        ),
    )
    UNSAFE_FIXES = (
        (
            """
import torch.nn as nn

class Cached(nn.Module):
    def train(self, mode: bool = True):
        \"\"\"Drop the cache.\"\"\"
        self.cache = None

class HeadOnly(nn.Module):
    def eval(self):
        self.head.eval()
        return self
""",
            """
import torch.nn as nn

class Cached(nn.Module):
    def train(self, mode: bool = True):
        \"\"\"Drop the cache.\"\"\"
        super().train(mode)
        self.cache = None
        return self

class HeadOnly(nn.Module):
    def eval(self):
        super().eval()
        self.head.eval()
        return self
""",
        ),
    )

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        kind = node.name.value
        if kind not in ("train", "eval"):
            return
        anc = self.ctx.ancestors
        if len(anc) < 3 or not isinstance(anc[-3], cst.ClassDef):
            return
        classdef = anc[-3]
        if not self.ctx.is_module_class(classdef) or is_overload_stub(self.ctx, node):
            return  # an `@overload` stub never runs: the implementation after it is judged, once
        cases: List[Tuple[str, str]] = []
        repair = None
        fw = self.ctx.class_framework(classdef)  # Paddle's switches neither call train(mode) nor return self
        clash = self._incompatible(node, kind, own_eval="eval" in self.ctx.methods(classdef)) if fw.switch_calls_train else None
        incompatible = clash[0] if clash is not None else None
        if clash is not None and clash[1] and not self.options["report-signature-clashes"]:
            if not clash[2]:
                return  # fails loudly (TypeError) at the first mode switch: not the silent bug this rule is for
            incompatible = None  # `train(self, mode)`: loud without an argument, a mode switch otherwise: judge the body
        if incompatible:
            cases.append(("error", incompatible))
        else:
            if always_exits(node.body) and not any(True for _ in iter_returns(node)):
                return  # every path raises: deliberately unsupported
            self_name = first_param(node) or "self"
            delegates = self._delegates(node, kind, classdef, self_name) or (
                # Paddle's own switch is `self.training = ...` plus the same on each sublayer
                not fw.switch_calls_train and _assigns_attr(node, self_name, fw.mode_attr))
            if not delegates:
                if kind == "train":
                    cases.append(("warning",
                                  "it never calls `super().train(mode)`, so neither `self.training` nor any child "
                                  "module changes mode: dropout and batch norm keep their training behaviour after "
                                  "`model.eval()` (and the other way round); call `super().train(mode)`"))
                else:
                    cases.append(("warning",
                                  "it never calls `super().eval()` / `self.train(False)`, so `self.training` (and any "
                                  "child not handled here) stays in training mode after `model.eval()`; call "
                                  "`super().eval()` or `return self.train(False)`"))
            elif kind == "eval" and fw.switch_calls_train:
                extra = self._eval_only_work(node, classdef, self_name)
                if extra:
                    cases.append(("warning", extra))
            bad_return = fw.switches_return_self and self._bad_return(node, kind, classdef, self_name)
            if bad_return:
                cases.append(("info", bad_return))
            if cases:
                repair = self._repair(node, kind, classdef, self_name, not delegates, bool(bad_return))
        if not cases:
            return
        level = max((c[0] for c in cases), key=_LEVEL_RANK.__getitem__)
        self.report(node.name, f"`{_signature(node)}` overrides `nn.Module.{kind}`: " + "; and ".join(c[1] for c in cases),
                    level=level, fix=repair)

    # --- the fix ---------------------------------------------------------------------------------
    def _repair(self, fn: cst.FunctionDef, kind: str, classdef: cst.ClassDef, self_name: str,
                add_super: bool, fix_returns: bool):
        """`return self` where the method returns None (bare `return`, falling off the end): safe.
        Calling `super().train(mode)` / `super().eval()` first: unsafe (the override may switch its
        children on purpose, and the parent's switch now also runs). No fix when a `return` gives
        back something other than self, or the body is on the `def` line."""
        body = fn.body
        if not isinstance(body, cst.IndentedBlock) or not body.body:
            return None
        changes: list = []
        titles: List[str] = []
        after_docstring = _is_docstring(body.body[0])
        if add_super:
            positional = list(fn.params.posonly_params) + list(fn.params.params)
            if kind == "train":
                if len(positional) < 2:
                    return None
                call = f"super().train({positional[1].name.value})"
            else:
                call = "super().eval()"
            titles.append(f"call `{call}` first (unsafe: the parent's mode switch now also runs on every child)")
            if after_docstring and len(body.body) == 1:
                changes.append(InsertAfter(body.body[0], (call,) + ((f"return {self_name}",) if fix_returns else ())))
                fix_returns = False
            else:
                changes.append(InsertBefore(body.body[1 if after_docstring else 0], (call,)))
        if fix_returns:
            returns = list(iter_returns(fn))
            if any(r.value is not None and not self._value_returns_self(fn, r.value, kind, classdef, self_name)
                   for r in returns):
                return None
            changes += [Replace(r, f"return {self_name}") for r in returns if r.value is None]
            if not always_exits(body):
                changes.append(InsertAfter(body.body[-1], (f"return {self_name}",)))
            titles.append(f"return `{self_name}`")
        if not changes:
            return None
        title = "; ".join(titles)
        return fix(title[:1].upper() + title[1:], *changes, safe=not add_super)

    # --- (a) ---------------------------------------------------------------------------------
    def _incompatible(self, fn: cst.FunctionDef, kind: str, own_eval: bool = False) -> Optional[Tuple[str, bool, bool]]:
        """(message, loud, switch) when the signature does not fit `train(self, mode=True)` / `eval(self)`;
        `loud` when a mode switch's own call (`train(False)`, `train()`, `eval()`) raises `TypeError`;
        `switch` when every call that does not raise switches modes (`train(self, mode)`), so the body is
        still judged as a mode switch."""
        params = fn.params
        positional = list(params.posonly_params) + list(params.params)
        if not is_decorated_with(fn, "staticmethod"):
            positional = positional[1:]
        has_star = isinstance(params.star_arg, cst.Param)
        required_kw = [p.name.value for p in params.kwonly_params if p.default is None]
        required_pos = [p.name.value for p in positional if p.default is None]
        if kind == "eval":
            required = required_pos + required_kw
            if required:
                return (f"`model.eval()` (called by your evaluation loop, Lightning, Accelerate, ...) raises "
                        f"`TypeError` because `{required[0]}` is required; rename this method (e.g. `evaluate`) "
                        f"and keep `eval(self)` for the mode switch", True, False)
            return None
        if not positional and not has_star:
            return ("`model.eval()` calls `self.train(False)` and a parent's `.train()`/`.eval()` calls "
                    "`child.train(mode)`, which raise `TypeError` here; rename this method (e.g. `fit`) or give "
                    "it a `mode=True` parameter", True, False)
        if len(required_pos) > 1 or required_kw:
            missing = (required_pos[1:] + required_kw)[0]
            return (f"`model.eval()` calls `self.train(False)` (and a parent's `.train()`/`.eval()` calls "
                    f"`child.train(mode)`), which raises `TypeError` here because `{missing}` is required; "
                    f"rename this method (e.g. `fit`) and keep `train(self, mode=True)` for the mode switch", True, False)
        if positional:
            first = positional[0]
            callers = ("a parent module's `.train(mode)` / `.eval()` calls `child.train(mode)` on it"
                       if own_eval else
                       "`model.eval()` calls `self.train(False)` and a parent's `.train()`/`.eval()` calls "
                       "`child.train(mode)`")
            default = literal_value(first.default) if first.default is not None else None
            if first.name.value.lower() not in _MODE_PARAM_NAMES and not isinstance(default, bool):
                return (f"{callers}, so this method runs with `{first.name.value}=False` instead of "
                        f"switching modes; rename it (e.g. `fit`) and keep `train(self, mode=True)` for the mode "
                        f"switch", False, False)
            if first.default is None:
                # `train(False)` and a parent's `child.train(mode)` work; `model.train()` raises at once: loud
                return (f"`model.train()` without an argument raises `TypeError` (`{first.name.value}` has no "
                        f"default); use `{first.name.value}: bool = True`", True, True)
        return None

    # --- (b) ---------------------------------------------------------------------------------
    def _is_delegation(self, call: cst.Call, kind: str, classdef: cst.ClassDef, self_name: str) -> bool:
        func = call.func
        if not isinstance(func, cst.Attribute):
            return False
        method = func.attr.value
        if method not in ("train", "eval"):
            return False
        receiver = func.value
        if isinstance(receiver, cst.Call) and isinstance(receiver.func, cst.Name) and receiver.func.value == "super":
            return kind == "eval" or method == "train"
        if isinstance(receiver, cst.Name) and receiver.value == self_name:
            # `self.train(False)` inside `eval` delegates; inside `train` it would recurse.
            return kind == "eval" and method == "train"
        if isinstance(receiver, (cst.Name, cst.Attribute)):
            first = call.args[0].value if call.args and not call.args[0].keyword else None
            if not (isinstance(first, cst.Name) and first.value == self_name):
                return False
            if kind == "train" and method != "train":
                return False
            qual = self.ctx.resolve(receiver)
            if qual and self.ctx.classifier.is_module_base(qual):
                return True
            shown = self.ctx.module.code_for_node(receiver)
            return any(self.ctx.module.code_for_node(b.value) == shown for b in classdef.bases)
        return False

    def _delegates(self, fn: cst.FunctionDef, kind: str, classdef: cst.ClassDef, self_name: str) -> bool:
        methods = self.ctx.methods(classdef)
        bodies = [fn] + [methods[m] for m in self.ctx.reachable_methods(classdef, (kind,)) if methods[m] is not fn]
        for body in bodies:
            sets_flag = calls_train = False
            for node in descendants(body.body):
                if isinstance(node, cst.Call):
                    if self._is_delegation(node, kind, classdef, self_name):
                        return True
                    if isinstance(node.func, cst.Attribute) and node.func.attr.value in ("train", "apply"):
                        calls_train = True
                elif isinstance(node, cst.Assign):
                    for t in node.targets:
                        tgt = t.target
                        if (isinstance(tgt, cst.Attribute) and tgt.attr.value == "training"
                                and isinstance(tgt.value, cst.Name) and tgt.value.value == self_name):
                            sets_flag = True
            if sets_flag and calls_train:
                return True  # a hand-written equivalent of nn.Module.train
        return False

    # --- (d) ---------------------------------------------------------------------------------
    def _eval_only_work(self, fn: cst.FunctionDef, classdef: cst.ClassDef, self_name: str) -> Optional[str]:
        """An `eval()` override of a layer (its class derives from a framework layer class other than a
        container or the module base: `class ConsistentDropout(nn.Dropout)`) that does more than switch
        (`self.reset()` besides `super().eval()`), in a class without a `train` override: a layer is a
        child, and a parent's `.eval()` / `.train(False)` calls `train(False)` on each child, never its
        `eval()`, so the extra work never runs inside a model."""
        if "train" in self.ctx.methods(classdef) or not self._is_layer_subclass(classdef):
            return None
        body = fn.body.body if isinstance(fn.body, cst.IndentedBlock) else ()
        extra = [st for st in body if not _is_docstring(st) and not self._switch_or_return(st, classdef, self_name)]
        if not extra:
            return None
        shown = " ".join(self.ctx.module.code_for_node(extra[0]).split())
        return (f"its extra work (`{shown[:60]}`) runs only when `.eval()` is called on this layer itself: a parent "
                f"model's `.eval()` (or `.train(False)`) calls `train(False)` on each child, never its `eval()`, so "
                f"inside a model it never runs; move it into a `train(self, mode=True)` override, under `if not mode:`")

    def _is_layer_subclass(self, classdef: cst.ClassDef) -> bool:
        fw = self.ctx.class_framework(classdef)
        for base in classdef.bases:
            q = self.ctx.resolve(base.value) if base.keyword is None else None
            if q and fw.is_layer_class(q) and q not in fw.module_bases and q.rsplit(".", 1)[-1] not in fw.containers:
                return True
        return False

    def _switch_or_return(self, stmt: cst.CSTNode, classdef: cst.ClassDef, self_name: str) -> bool:
        """`super().eval()`, `self.train(False)`, `return ...` of either or of self."""
        if not isinstance(stmt, cst.SimpleStatementLine) or len(stmt.body) != 1:
            return False
        small = stmt.body[0]
        value = small.value if isinstance(small, (cst.Expr, cst.Return)) else None
        if value is None:
            return isinstance(small, (cst.Return, cst.Pass))
        if isinstance(value, cst.Name) and value.value == self_name:
            return True
        return isinstance(value, cst.Call) and self._is_delegation(value, "eval", classdef, self_name)

    # --- (c) ---------------------------------------------------------------------------------
    def _bad_return(self, fn: cst.FunctionDef, kind: str, classdef: cst.ClassDef, self_name: str) -> Optional[str]:
        for ret in iter_returns(fn):
            value = ret.value
            if value is None:
                return f"a bare `return` makes `model.{kind}()` return `None`, so `model = Net().{kind}()` sets `model` to None; return `self`"
            if self._value_returns_self(fn, value, kind, classdef, self_name):
                continue
            return (f"it returns `{self.ctx.module.code_for_node(value)}` instead of `self`, so "
                    f"`model = Net().{kind}()` does not give the model back; return `self`")
        if not always_exits(fn.body):
            chained = " and `model.eval()` (which returns `self.train(False)`) return" if kind == "train" else " returns"
            return (f"it does not return `self` on every path, so `model.{kind}()`{chained} `None`: "
                    f"`model = Net().eval()` sets `model` to None; end with `return self`")
        return None

    def _value_returns_self(self, fn: cst.FunctionDef, value: cst.BaseExpression, kind: str, classdef: cst.ClassDef,
                            self_name: str) -> bool:
        """`return self`, `return super().train(mode)`, or `return out` where every `out = ...` is one."""
        if self._returns_self(value, kind, classdef, self_name):
            return True
        if isinstance(value, cst.Name):
            values = self.ctx.function_facts(fn).assigns.get(value.value, [])
            return bool(values) and all(self._returns_self(v, kind, classdef, self_name) for v in values)
        return False

    def _returns_self(self, value: cst.BaseExpression, kind: str, classdef: cst.ClassDef, self_name: str,
                      depth: int = 0) -> bool:
        if isinstance(value, cst.Name) and value.value == self_name:
            return True
        if not isinstance(value, cst.Call):
            return False
        if self._is_delegation(value, kind, classdef, self_name):
            return True
        # `return self._set_mode(mode)` where the helper returns self / delegates on every path
        func = value.func
        if (depth < 3 and isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name)
                and func.value.value == self_name):
            helper = self.ctx.methods(classdef).get(func.attr.value)
            if helper is not None and helper.name.value != kind and always_exits(helper.body):
                rets = [r.value for r in iter_returns(helper)]
                return bool(rets) and all(
                    r is not None and self._returns_self(r, kind, classdef, first_param(helper) or "self", depth + 1)
                    for r in rets
                )
        return False


def _is_docstring(stmt: cst.CSTNode) -> bool:
    return (isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 and isinstance(stmt.body[0], cst.Expr)
            and isinstance(stmt.body[0].value, (cst.SimpleString, cst.ConcatenatedString)))


def _assigns_attr(fn: cst.FunctionDef, self_name: str, attr: str) -> bool:
    """`self.<attr> = ...` somewhere in the function."""
    return any(
        isinstance(n, cst.Assign) and any(
            isinstance(t.target, cst.Attribute) and t.target.attr.value == attr
            and isinstance(t.target.value, cst.Name) and t.target.value.value == self_name for t in n.targets)
        for n in descendants(fn.body)
    )

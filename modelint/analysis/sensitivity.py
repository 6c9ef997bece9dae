"""Mode sensitivity: does a model compute something different in train and in eval mode?

Only a mode-sensitive model can have a mode bug: a model without dropout, batch norm or a mode
branch anywhere in its construction tree computes the same thing in both modes (14 of MDL302's 21
false findings on unseen code, issue #14). `ctx.mode_sensitivity(target)` answers for a class
qualname, a class definition, or an expression naming or constructing a model (`Net`, `Net(...)`,
`nn.Sequential(nn.Linear(4, 4), nn.ReLU())`), with one of three answers and a reason naming the
layer and line that decide it (for messages):

- **yes**: the construction tree holds, transitively through the classes it builds (in any checked
  file, through the cross-file index and `analysis.classbodies`): dropout whose probability is not a
  literal 0; batch / instance norm with running statistics (`track_running_stats=False` is not);
  RReLU; attention or RNN layers with a dropout that is not 0 (MultiheadAttention and RNN dropout
  default to 0); a functional call that takes the mode (`F.dropout`, `F.batch_norm`, ...); a read of
  `self.training`; a mode-sensitive layer class used as a factory (`norm_layer = nn.BatchNorm2d`);
  a base class that is a mode-sensitive layer or a "yes" class.
- **no**: every layer and submodule class is known and none is mode-dependent, counting literal
  `dropout=0.0` arguments passed down through constructors (`Encoder(dropout=0.0)` binds `Encoder`'s
  parameter, whose `nn.Dropout(dropout)` is then off). Layers of libraries the profile has read
  (`Profile.ecosystem_layers`: PyTorch Geometric's convolutions and BasicGNN models, torchaudio's transforms) count as known:
  mode-free, or decided by their `dropout` / `norm` arguments like a `torch.nn` layer; a model
  loaded with `key.load_state_dict(...)` is asked about through what `key` was built from.
- **unknown**, reported so by the rules (a rule treats "unknown" like "yes" unless it documents
  otherwise, since only "no" proves that the mode cannot matter). The unknown cases:
  * a dropout probability or `track_running_stats` from a constructor parameter whose default is
    not a literal 0 / False, when the class is asked about without a construction (`Net` alone, a
    class definition): the caller decides. A construction binds the parameters: `Net()` with
    `p=0.1` by default is **yes**, `Net(p=0.0)` is **no**, `Net(p=args.p)` is **unknown**;
  * a value that is not a literal or a bound parameter (`nn.Dropout(cfg.p)`, a local variable);
  * a layer built by a constructor parameter with no class default (`norm_layer(dim)` with
    `norm_layer=None`) that the body does not rebind to a class (`norm_layer = nn.BatchNorm2d`,
    `conv_block = conv_block or BasicConv2d`) and no mode-sensitive class named in the body;
  * a module passed to the constructor and kept (`self.backbone = backbone`) when the parameter is
    annotated as a module (`backbone: nn.Module`) and the class is asked about alone; a construction
    that passes a construction (`Seg(resnet_block(...))`: its answer) decides. Unannotated kept
    parameters are taken for plain values (`self.width = width`);
  * a base class's constructor is evaluated as if asked about alone (what `super().__init__(...)`
    passes is not followed);
  * a class outside the checked files that the profile does not know (`transformers.BertModel(...)`
    kept as `self.bert`, a third-party base class), models built by `from_pretrained` /
    `from_config` (the profile's `external_model_methods`), and a library model factory kept as an
    attribute (`self.backbone = torchvision.models.resnet50()`, the profile's `model_factory_namespaces`);
  * an expression that does not show what it builds (`build_model(cfg)`, `torch.load(path)`,
    `nn.Sequential(*layers)` asked about directly). A call of a top-level function of the checked
    files whose every `return` builds a class (`net = Vgg(); net.load_state_dict(...); return net`,
    the index's `factories`) takes those classes' answer, each asked about alone; one other return
    (`return torch.load(path)`, `return net, opt`) leaves it unknown. When that answer is not
    "yes", the classes the factory's body builds decide too (the index's `factory_parts`: a
    container's contents, `make_layers(cfg)` returning `nn.Sequential(*layers)`, and the parts a
    returned class keeps, `EncoderDecoder(Encoder(...), ...)`): a "yes" among them, else an "unknown"
    of a checked class; a class keeping such a factory's result (`self.features = make_layers(cfg)`)
    is read the same way.
  A layer built right under `if <param> == "<literal>":` / `elif` of a constructor parameter is not
  built by a construction that binds that parameter, passed or by default, to another literal
  (`ConvLayer(c, norm="instance")` against `elif norm == "batch": nn.BatchNorm2d(c)`); one built
  right under `if <param>:` / `if self.<param>:` is not built when the parameter is bound to a falsy
  literal (`Head(d)` with `use_bn=False` against `if use_bn: self.bn = nn.BatchNorm1d(d)`).
  A call of a pass-through helper of the checked files (`trans_to_cuda(Net())`, the index's `passes`:
  `analysis.passthrough`) answers for the argument it hands back.
  A "yes" anywhere wins over "unknown"; a cycle of classes counts as "no" for the class already
  being evaluated (its other layers still decide).

Heuristics: class bodies are read from text (`analysis.classbodies`); calls to plain (non-module)
project classes and to unimported or standard-library names are ignored; a third-party construction
counts only when assigned to `self.<attr>` (or passed to a container), so `self.cfg = Config(...)`-style
helpers with a model-like name make the answer unknown, not yes.

Answers are memoised per project (per `ModuleClassifier`, i.e. per run and worker process).
"""

from __future__ import annotations

import ast
import sys
import weakref
from dataclasses import dataclass
from typing import Dict, Iterable, Optional, Tuple, Union

from modelint.analysis.classbodies import ClassBody, bodies_of
from modelint.analysis.index import (
    NOT_A_CLASS, FileFacts, dotted_ast as _dotted, factory_classes, factory_parts, passed_argument, qualify,
)
from modelint.frameworks import LayerArg, Profile, profile_for

YES, NO, UNKNOWN = "yes", "no", "unknown"


@dataclass(frozen=True)
class Sensitivity:
    answer: str  # "yes" | "no" | "unknown"
    reason: str  # names the layer / line that decides it ("" for a plain "no")

    @property
    def may_matter(self) -> bool:
        """"yes" or "unknown": the mode may change what the model computes."""
        return self.answer != NO


NOT_SENSITIVE = Sensitivity(NO, "")


def combine(parts: Iterable[Optional[Sensitivity]]) -> Sensitivity:
    """The first "yes", else the first "unknown", else "no"."""
    unknown = None
    for part in parts:
        if part is None:
            continue
        if part.answer == YES:
            return part
        if part.answer == UNKNOWN and unknown is None:
            unknown = part
    return unknown or NOT_SENSITIVE


# A value passed to a layer or constructor parameter: ("lit", python value), ("ref", qualified class
# name), ("unknown", why).
Value = Tuple[str, object]
Env = Optional[Tuple[Tuple[str, Value], ...]]  # None: the class asked about alone (parameters from outside)


@dataclass(frozen=True)
class _Scope:
    facts: FileFacts
    cls: Optional[str]  # class name in facts, when evaluating a class body
    body: Optional[ClassBody]
    env: Env
    in_body: bool  # names among container arguments were built elsewhere in the same body

    def bound(self, name: str) -> Optional[Value]:
        return dict(self.env).get(name) if self.env is not None else None


_STDLIB = frozenset(getattr(sys, "stdlib_module_names", ())) | {"builtins", "typing", "abc", "dataclasses"}


class SensitivityAnalysis:
    """The project's answers, memoised (one per `ModuleClassifier`)."""

    def __init__(self, classifier):
        self.classifier = classifier
        self.index = classifier.index
        self._memo: Dict[Tuple[str, Env], Sensitivity] = {}

    # --- entry points --------------------------------------------------------------------------
    def of_class(self, qualname: str, env: Env = None, facts: Optional[FileFacts] = None) -> Sensitivity:
        """A class by qualified name (`env`: its constructor's parameters bound by a construction)."""
        key = (qualname, env)
        if key in self._memo:
            return self._memo[key]
        self._memo[key] = NOT_SENSITIVE  # cycle guard
        result = self._class(qualname, env, facts)
        self._memo[key] = result
        return result

    def of_expression(self, text: str, facts: FileFacts) -> Sensitivity:
        """An expression's source text in the module `facts` (a class name or a construction)."""
        try:
            node = ast.parse(f"({text})", mode="eval").body
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return Sensitivity(UNKNOWN, f"`{_short(text)}` could not be read")
        scope = _Scope(facts, None, None, (), in_body=False)
        node = _strip_self_returning(node, profile_for(facts.aliases))
        if isinstance(node, (ast.Name, ast.Attribute)):
            q = self._qualify(_dotted(node), facts)
            if q and self._is_class(q, facts):
                return self.of_class(q, None, facts)
            return Sensitivity(UNKNOWN, f"`{_short(text)}` is not a model class the checks can see")
        if isinstance(node, ast.Call):
            return self._built(node, scope, text)
        return Sensitivity(UNKNOWN, f"`{_short(text)}` does not show what it builds")

    def _built(self, node: ast.Call, scope: _Scope, text: str) -> Sensitivity:
        """What a construction asked about directly builds."""
        found = self._call(node, scope, held=True) or self._factory(node, scope.facts)
        if found is not None:
            return found
        q = self._qualify(_dotted(node.func), scope.facts)
        fw = profile_for(scope.facts.aliases)
        if q and (fw.is_capitalised_layer_name(q) or self.locate(q, scope.facts) or _ecosystem_specs(q, fw) is not None):
            return NOT_SENSITIVE  # a known class that builds nothing mode-dependent
        return Sensitivity(UNKNOWN, f"`{_short(text)}` does not show what it builds")

    def _factory(self, node: ast.Call, facts: FileFacts) -> Optional[Sensitivity]:
        """`load_vgg16(path)`, a top-level function of the checked files whose every `return` builds a
        class (`vgg = Vgg16(); vgg.load_state_dict(...); return vgg`): those classes' answer, each
        asked about alone (its constructor's parameters from outside). None when it is not such a
        factory, or one of its returns is something else (`return torch.load(path)`)."""
        name = _dotted(node.func)
        if not name or name.rsplit(".", 1)[-1][:1].isupper():
            return None
        q = self._qualify(name, facts) or name
        q = q if "." in q else f"{facts.modname}.{q}"
        classes = factory_classes(self.index, q)
        if not classes or NOT_A_CLASS in classes:
            return None
        result = combine(self.of_class(c, None, facts) for c in classes)
        if result.answer != YES:
            # what the body builds and hands over (a container's contents, the parts a returned class
            # keeps): a "yes" among them, else an "unknown" of a checked class (its dropout set from
            # outside); a stdlib `OrderedDict(`, a class the checks cannot see must not turn a plain
            # stack into "unknown"
            answers = [(c, self.of_class(c, None, facts)) for c in factory_parts(self.index, q)]
            content = next((a for _, a in answers if a.answer == YES), None) or next(
                (a for c, a in answers if a.answer == UNKNOWN and self.locate(c, facts) is not None), None)
            if content is not None and (content.answer == YES or result.answer == NO):
                return Sensitivity(content.answer, f"`{name}(...)` builds `{classes[0].rsplit('.', 1)[-1]}` from "
                                                   f"parts it builds: {content.reason}")
        if result.answer == NO:
            return result
        return Sensitivity(result.answer, f"`{name}(...)` builds `{classes[0]}`: {result.reason}")

    def of_attribute(self, qualname: str, attr: str, facts: Optional[FileFacts] = None) -> Optional[Sensitivity]:
        """The submodule a class keeps as `self.<attr> = <construction>` (its first such call site);
        None when the class or that attribute is not seen."""
        located = self.locate(qualname, facts)
        if located is None:
            return None
        file_facts, cls = located
        body = bodies_of(file_facts).get(cls)
        site = next((c for c in body.calls if c.attr == attr), None) if body is not None else None
        if site is None or site.text is None:
            return None
        return self.of_expression(site.text, file_facts)

    # --- classes -------------------------------------------------------------------------------
    def _class(self, qualname: str, env: Env, facts: Optional[FileFacts]) -> Sensitivity:
        fw = profile_for(facts.aliases) if facts is not None else _default_profile()
        if fw.is_layer_name(qualname):
            return self._layer(qualname, None, None, fw) or NOT_SENSITIVE
        located = self.locate(qualname, facts)
        if located is None:
            if qualname in fw.empty_module_bases:
                return NOT_SENSITIVE
            return Sensitivity(UNKNOWN, f"`{qualname}` is not in the checked files")
        file_facts, cls = located
        body = bodies_of(file_facts).get(cls)
        if body is None:
            return Sensitivity(UNKNOWN, f"the body of `{qualname}` was not read")
        scope = _Scope(file_facts, cls, body, env, in_body=True)
        where = f"`{cls}` ({file_facts.modname}, line"
        parts = [self._base(b, file_facts, fw) for b in file_facts.classes.get(cls, ())]
        if body.mode_lines:
            parts.insert(0, Sensitivity(YES, f"{where} {body.mode_lines[0]}) reads `self.{fw.mode_attr}`"))
        for name, line in body.refs:
            q = self._qualify(name, file_facts)
            if q and fw.is_layer_name(q) and self._layer(q, None, None, fw, via=name):
                parts.append(Sensitivity(YES, f"{where} {line}) builds layers with `{name}`"))
        for param, line in body.kept:
            part = self._kept(param, scope, file_facts)
            if part is not None and part.answer != NO:
                parts.append(Sensitivity(part.answer, f"{where} {line}): {part.reason}"))
        for site in body.calls:
            part = self._site(site, scope, fw)
            if part is not None and part.answer != NO:
                parts.append(Sensitivity(part.answer, f"{where} {site.line}): {part.reason}"))
        return combine(parts)

    def _kept(self, param: str, scope: _Scope, facts: FileFacts) -> Optional[Sensitivity]:
        """`self.backbone = backbone`: the module passed in (known when a construction passed a
        construction; "unknown" when the parameter is annotated as a module and comes from outside)."""
        value = self._value(ast.Name(param), scope)
        if value[0] == "obj":
            answer, reason = value[1]
            return Sensitivity(answer, f"holds the `{param}` it is given: {reason}" if reason else "")
        if value[0] == "unknown" and self._module_annotation(scope.body.annotations.get(param), facts):
            return Sensitivity(UNKNOWN, f"holds the module passed as `{param}`")
        return None

    def _module_annotation(self, note: Optional[str], facts: FileFacts) -> bool:
        if not note:
            return False
        try:
            tree = ast.parse(note, mode="eval")
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return False
        names = {_dotted(n) for n in ast.walk(tree) if isinstance(n, (ast.Name, ast.Attribute))}
        return any(q and self.classifier.is_module_base(q) for q in (self._qualify(n, facts) for n in names if n))

    def _base(self, base: str, facts: FileFacts, fw: Profile) -> Optional[Sensitivity]:
        if fw.is_layer_name(base):
            return self._layer(base, None, None, fw)
        if base in fw.empty_module_bases or self._ignorable(base, facts):
            return None
        if self.locate(base, facts) is None:
            return Sensitivity(UNKNOWN, f"its base class `{base}` is not in the checked files")
        return self.of_class(base, None, facts)

    def locate(self, qualname: str, facts: Optional[FileFacts]) -> Optional[Tuple[FileFacts, str]]:
        """(file facts, class name) of a class of the checked files: the file being checked first (its
        newest facts), then the cross-file index."""
        if facts is not None and qualname.startswith(facts.modname + "."):
            cls = qualname[len(facts.modname) + 1 :]
            if cls in facts.classes:
                return facts, cls  # the file being checked (its newest facts)
        return self.index.locate(qualname)

    def _is_class(self, qualname: str, facts: FileFacts) -> bool:
        fw = profile_for(facts.aliases)
        return fw.is_capitalised_layer_name(qualname) or self.locate(qualname, facts) is not None or (
            qualname.rsplit(".", 1)[-1][:1].isupper() and not self._ignorable(qualname, facts))

    # --- calls ---------------------------------------------------------------------------------
    def _site(self, site, scope: _Scope, fw: Profile) -> Optional[Sensitivity]:
        if site.when is not None and scope.env is not None:
            bound = scope.bound(site.when[0])
            if bound is not None and bound[0] == "lit" and (not bound[1] if site.when[1] is None else bound[1] != site.when[1]):
                return None  # `if norm == "batch":` in a construction that binds `norm="instance"`; `if use_bn:` with False
        if site.text is None:
            return Sensitivity(UNKNOWN, f"`{site.name}(...)` could not be read") if site.held else None
        try:
            node = ast.parse(f"({site.text})", mode="eval").body
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return None
        return self._call(node, scope, site.held) if isinstance(node, ast.Call) else None

    def _call(self, call: ast.Call, scope: _Scope, held: bool) -> Optional[Sensitivity]:
        """What a call contributes: None when it builds nothing that matters."""
        fw = profile_for(scope.facts.aliases)
        name = _dotted(call.func)
        if name is None:
            return None
        last = name.rsplit(".", 1)[-1]
        if self._wrapper_name(name, last, scope.facts, fw):
            return self._wrapped(call, scope, fw)
        if last in fw.external_model_methods:
            if not fw.loads_external_model(name):
                return None  # `AutoTokenizer.from_pretrained(...)`
            return Sensitivity(UNKNOWN, f"`{name}(...)` loads a model whose layers are not in the checked code")
        if "." not in name and scope.body is not None and name in dict(scope.body.params):
            return self._factory_call(name, call, scope, fw)
        q = self._qualify(name, scope.facts)
        if q is None:
            return None
        if fw.training_flag_position(q) is not None or q == fw.mha_call:
            return Sensitivity(YES, f"`{name}(...)` takes the mode")
        if fw.is_layer_name(q):
            return self._layer(q, call, scope, fw, via=name)
        passed = passed_argument(self.index, q) if not last[:1].isupper() else None
        if passed is not None:  # `trans_to_cuda(Net())`: a helper returning what it is given
            return self._wrapped(call, scope, fw, passed)
        if not last[:1].isupper() and held and not fw.in_namespace(q):
            found = self._factory(call, scope.facts)  # `self.features = make_layers(cfg)`
            if found is not None:
                return found
        if held and fw.builds_library_model(q):
            # `self.backbone = torchvision.models.resnet50()`: a library model whose layers are not read
            # (upstream set 17: two demo classes around a ResNet-50 answered "no" and were never reported)
            return Sensitivity(UNKNOWN, f"`{name}(...)` builds a library model whose layers are not in the checked code")
        if fw.in_namespace(q) or (not last[:1].isupper() and self.locate(q, scope.facts) is None):
            return None  # (a lower-case name builds something only when it is a checked class: `fastText`)
        return self._construct(q, name, call, scope, held, fw)

    def _wrapper_name(self, name: str, last: str, facts: FileFacts, fw: Profile) -> bool:
        """By last name as written or as imported (`DistributedDataParallel as DDP`)."""
        if last in fw.sensitivity_passing_wrappers:
            return True
        q = self._qualify(name, facts) if name in facts.aliases else None
        return bool(q) and q.rsplit(".", 1)[-1] in fw.sensitivity_passing_wrappers

    def _wrapped(self, call: ast.Call, scope: _Scope, fw: Profile, position: int = 0) -> Optional[Sensitivity]:
        """`DataParallel(x)`, `torch.compile(x)`, `AveragedModel(x)`: x's answer (the profile's
        `sensitivity_passing_wrappers`; a pass-through helper of the project hands back its argument
        at `position`). A name built elsewhere is unknown when asked about directly; in a class body it
        counts as a kept constructor argument does (`_kept`)."""
        arg = call.args[position] if len(call.args) > position else None
        if arg is None or isinstance(arg, ast.Starred):
            if scope.in_body:
                return None
            return Sensitivity(UNKNOWN, f"`{_short(ast.unparse(call))}` wraps what it is given")
        inner = _strip_self_returning(arg, fw)
        if isinstance(inner, ast.Call):
            return self._built(inner, scope, ast.unparse(inner))
        params = dict(scope.body.params) if scope.body is not None else {}
        if scope.in_body and isinstance(inner, ast.Name) and inner.id in params:
            return self._kept(inner.id, scope, scope.facts)
        value = self._value(inner, scope)
        if value[0] == "obj":
            return Sensitivity(*value[1])
        if value[0] == "ref" and self._is_class(str(value[1]), scope.facts):
            return self.of_class(str(value[1]), None, scope.facts)
        return None if scope.in_body else Sensitivity(UNKNOWN, f"`{_short(ast.unparse(inner))}` is built elsewhere")

    def _construct(self, q: str, name: str, call: ast.Call, scope: _Scope, held: bool, fw: Profile) -> Optional[Sensitivity]:
        specs = _ecosystem_specs(q, fw)
        if specs is not None and (held or self.locate(q, scope.facts) is not None):
            # a layer the profile has read, decided by its mode arguments, also when the library itself
            # is checked (its code reads `self.training` for a dropout that defaults to 0)
            return self._library_layer(specs, call, scope)
        located = self.locate(q, scope.facts)
        if located is None:
            if self._ignorable(q, scope.facts) or not held or q in fw.empty_module_bases:
                return None
            return Sensitivity(UNKNOWN, f"`{name}` is not in the checked files")
        if scope.in_body and not self.classifier.is_module_base(q):
            return None  # a plain helper object: its layers (if any) are not registered here
        env = self._bind(located, call, scope)
        result = self.of_class(q, env, scope.facts)
        if result.answer == NO:
            return result
        return Sensitivity(result.answer, f"builds `{name}`: {result.reason}" if result.reason else f"builds `{name}`")

    def _library_layer(self, specs: Tuple[LayerArg, ...], call: ast.Call, scope: _Scope) -> Optional[Sensitivity]:
        """A layer of a library the profile has read (`torch_geometric.nn.GCNConv`, also through
        submodules such as `torch_geometric.nn.conv`), with its mode arguments `specs`: None when
        they are all off, its answer otherwise."""
        shown = f"`{_short(ast.unparse(call))}`"
        for spec in specs:
            value = self._arg_value(call, spec, scope)
            if value is None:
                value = ("lit", spec.default)
            if value[0] != "lit":
                return Sensitivity(UNKNOWN, f"{shown}: its `{spec.keyword}` is set from outside")
            if value[1] not in (0, None, False):
                return Sensitivity(YES, f"{shown} is mode-dependent (`{spec.keyword}={value[1]!r}`)")
        return None

    def _factory_call(self, param: str, call: ast.Call, scope: _Scope, fw: Profile) -> Optional[Sensitivity]:
        """`norm_layer(dim)` where `norm_layer` is a constructor parameter: the class it is bound
        to, else (None, from outside) the classes the body rebinds it to (`norm_layer = nn.BatchNorm2d`)."""
        value = self._value(ast.Name(param), scope)
        if value[0] == "ref":
            return self._factory_class(str(value[1]), param, call, scope, fw)
        rebound = [name for p, name, _ in scope.body.rebinds if p == param] if scope.body is not None else []
        if rebound:
            parts = [self._factory_class(q, param, call, scope, fw)
                     for q in (self._qualify(n, scope.facts) for n in rebound) if q]
            found = combine(parts)
            if found.answer == YES or value == ("lit", None):
                return found
        default = " (default None)" if value == ("lit", None) else ""
        return Sensitivity(UNKNOWN, f"a layer is built by the constructor argument `{param}`{default}")

    def _factory_class(self, q: str, param: str, call: ast.Call, scope: _Scope, fw: Profile) -> Optional[Sensitivity]:
        if fw.is_layer_name(q):
            return self._layer(q, call, scope, fw, via=param)
        return self._construct(q, param, call, scope, True, fw)

    def _bind(self, located: Tuple[FileFacts, str], call: ast.Call, scope: _Scope) -> Env:
        """The callee's constructor parameters bound by `call` (defaults for the rest)."""
        facts, cls = located
        body = self._init_body(facts, cls)
        if body is None:
            return ()
        params = list(body.params)
        env: Dict[str, Value] = {}
        star = any(isinstance(a, ast.Starred) for a in call.args) or any(k.arg is None for k in call.keywords)
        for (pname, _), arg in zip(params, call.args):
            if isinstance(arg, ast.Starred):
                break
            env[pname] = self._value(arg, scope)
        for kw in call.keywords:
            if kw.arg is not None:
                env[kw.arg] = self._value(kw.value, scope)
        callee = _Scope(facts, cls, body, (), in_body=True)
        for pname, default in params:
            if pname not in env:
                if star:
                    env[pname] = ("unknown", f"`{pname}` may be passed through `*args`/`**kwargs`")
                elif default is None:
                    env[pname] = ("unknown", f"`{pname}` has no default")
                else:
                    env[pname] = self._default(default, callee)
        return tuple(sorted(env.items(), key=lambda kv: kv[0]))

    def _init_body(self, facts: FileFacts, cls: str) -> Optional[ClassBody]:
        """The body whose `__init__` the class uses: its own, else the first base's that has one."""
        for _ in range(16):
            body = bodies_of(facts).get(cls)
            if body is None:
                return None
            if body.has_init:
                return body
            bases = facts.classes.get(cls) or []
            located = self.index.locate(bases[0]) if bases else None
            if located is None:
                return None
            facts, cls = located
        return None

    # --- values --------------------------------------------------------------------------------
    def _value(self, expr: ast.expr, scope: _Scope) -> Value:
        literal = _literal(expr)
        if literal is not _NOT_LITERAL:
            return ("lit", literal)
        if isinstance(expr, ast.Name):
            bound = scope.bound(expr.id)
            if bound is not None:
                return bound
            if scope.body is not None and expr.id in dict(scope.body.params):
                return self._outside(expr.id, dict(scope.body.params)[expr.id], scope)
        if isinstance(expr, ast.Call):
            fw = profile_for(scope.facts.aliases)
            call = _strip_self_returning(expr, fw)
            built = self._call(call, scope, held=True)
            if built is not None:
                return ("obj", (built.answer, built.reason))
            q = self._qualify(_dotted(call.func), scope.facts) if isinstance(call, ast.Call) else None
            if q and (fw.is_capitalised_layer_name(q) or self.locate(q, scope.facts)):
                return ("obj", (NO, ""))  # a known class that builds nothing mode-dependent
        if isinstance(expr, (ast.Name, ast.Attribute)):
            name = _dotted(expr)
            q = self._qualify(name, scope.facts) if name else None
            if q and (profile_for(scope.facts.aliases).is_capitalised_layer_name(q) or self.locate(q, scope.facts)):
                return ("ref", q)
        return ("unknown", f"`{_short(ast.unparse(expr))}` is set from outside")

    def _outside(self, name: str, default: Optional[str], scope: _Scope) -> Value:
        """A constructor parameter of a class asked about alone: the caller decides, unless its
        default is a literal that turns the layer off (0, False, None)."""
        value = self._default(default, scope) if default is not None else ("unknown", "")
        if value[0] == "lit" and not value[1]:
            return value
        if value[0] == "ref":
            return value
        shown = f" (default {default})" if default is not None else ""
        return ("unknown", f"the constructor argument `{name}`{shown} decides")

    def _default(self, default: str, scope: _Scope) -> Value:
        try:
            expr = ast.parse(f"({default})", mode="eval").body
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return ("unknown", f"`{default}`")
        return self._value(expr, _Scope(scope.facts, scope.cls, scope.body, (), in_body=True))

    # --- framework layers ----------------------------------------------------------------------
    def _layer(self, q: str, call: Optional[ast.Call], scope: Optional[_Scope], fw: Profile,
               via: str = "") -> Optional[Sensitivity]:
        last = q.rsplit(".", 1)[-1]
        shown = f"`{_short(ast.unparse(call))}`" if call is not None else f"`{via or last}`"
        if last in fw.containers or last in fw.layer_wrapping_layers:
            return self._container(call, scope, fw, shown) if call is not None else None
        if not fw.mode_sensitive_pattern.match(last):
            return None
        why = fw.mode_sensitive_layers.get(last, "depends on the mode")
        for table, check in ((fw.layer_stats_arg, _stats_on), (fw.layer_dropout_arg, _dropout_on),
                             (fw.layer_optional_dropout_arg, _optional_on),
                             (fw.layer_zero_default_dropout_arg, _optional_on)):
            spec = table.get(last)
            if spec is not None:
                value = self._arg_value(call, spec, scope)
                on = check(value, spec)
                if on is True:
                    return Sensitivity(YES, f"{shown} is mode-dependent ({_first_clause(why)})")
                if on is False:
                    return None
                why = value[1] if value is not None and value[0] == "unknown" else ""
                return Sensitivity(UNKNOWN, f"{shown}: {why}" if why else f"{shown} is configured from outside")
        return Sensitivity(YES, f"{shown} is mode-dependent ({_first_clause(why)})")

    def _arg_value(self, call: Optional[ast.Call], spec: LayerArg, scope: Optional[_Scope]) -> Optional[Value]:
        """The value passed for `spec` (None: not passed)."""
        if call is None:
            return None
        expr = next((k.value for k in call.keywords if k.arg == spec.keyword), None)
        if expr is None and len(call.args) > spec.position and not any(
                isinstance(a, ast.Starred) for a in call.args[: spec.position + 1]):
            expr = call.args[spec.position]
        if expr is None:
            if any(k.arg is None for k in call.keywords) or any(isinstance(a, ast.Starred) for a in call.args):
                return ("unknown", "its arguments are passed with `*`/`**`")
            return None
        if scope is None:
            literal = _literal(expr)
            return ("lit", literal) if literal is not _NOT_LITERAL else ("unknown", "")
        return self._value(expr, scope)

    def _container(self, call: ast.Call, scope: Optional[_Scope], fw: Profile, shown: str) -> Optional[Sensitivity]:
        parts = []
        for arg in [*call.args, *(k.value for k in call.keywords)]:
            for item in _elements(arg):
                if isinstance(item, ast.Call) and scope is not None:
                    item = _strip_self_returning(item, fw)
                    parts.append(self._call(item, scope, held=True) if isinstance(item, ast.Call) else None)
                elif not (scope is not None and scope.in_body) and not _literal_like(item):
                    parts.append(Sensitivity(UNKNOWN, f"{shown} holds `{_short(ast.unparse(item))}`, built elsewhere"))
        return combine(parts)

    # --- names ---------------------------------------------------------------------------------
    def _qualify(self, name: Optional[str], facts: FileFacts) -> Optional[str]:
        if not name:
            return None
        local = {n.split(".")[0] for n in facts.classes}
        q = qualify(name, facts.aliases, facts.modname, local, facts.stars)
        if q == name and facts.stars and "." not in name and name[:1].islower():
            # a lower-case class of a star-imported module (`fastText(...)` after `from model import *`):
            # `qualify` takes only capitalised names as star-imported (lower-case ones are mostly functions)
            starred = f"{facts.modname}.{name}"
            if self.index.locate(starred) is not None:
                return starred
        return q

    def _ignorable(self, q: str, facts: FileFacts) -> bool:
        """Builtins, unimported names and the standard library: never models."""
        head = q.split(".")[0]
        if head in _STDLIB:
            return True
        local = {n.split(".")[0] for n in facts.classes}
        roots = {v.split(".")[0] for v in facts.aliases.values()}
        return head not in roots and head not in local and not q.startswith(facts.modname + ".")


# --- small helpers ---------------------------------------------------------------------------------
class _NotLiteral:
    pass


_NOT_LITERAL = _NotLiteral()


def _literal(expr: ast.expr):
    if isinstance(expr, ast.Constant):
        return expr.value
    if isinstance(expr, ast.UnaryOp) and isinstance(expr.op, (ast.USub, ast.UAdd)) and isinstance(expr.operand, ast.Constant):
        v = expr.operand.value
        return -v if isinstance(expr.op, ast.USub) and isinstance(v, (int, float)) else v
    return _NOT_LITERAL


def _literal_like(expr: ast.expr) -> bool:
    return _literal(expr) is not _NOT_LITERAL


def _stats_on(value: Optional[Value], spec: LayerArg) -> Optional[bool]:
    if value is None:
        return bool(spec.default)
    return bool(value[1]) if value[0] == "lit" else None


def _dropout_on(value: Optional[Value], spec: LayerArg) -> Optional[bool]:
    if value is None:
        return True
    if value[0] == "lit":
        return not (value[1] == 0 or value[1] is None)
    return None


def _optional_on(value: Optional[Value], spec: LayerArg) -> Optional[bool]:
    if value is None:
        return False  # defaults to 0
    return _dropout_on(value, spec)


def _ecosystem_specs(q: str, fw: Profile) -> Optional[Tuple[LayerArg, ...]]:
    """The profile's mode arguments of a library layer (`torch_geometric.nn.conv.GCNConv` -> ())."""
    last = q.rsplit(".", 1)[-1]
    return next((table[last] for package, table in fw.ecosystem_layers.items()
                 if q.startswith(package + ".") and last in table), None)


def _elements(expr: ast.expr):
    if isinstance(expr, (ast.List, ast.Tuple)):
        for e in expr.elts:
            yield from _elements(e)
    elif isinstance(expr, ast.Dict):
        yield from (v for v in expr.values if v is not None)
    elif isinstance(expr, ast.Call) and _dotted(expr.func) in ("OrderedDict", "collections.OrderedDict", "dict"):
        for a in expr.args:
            if isinstance(a, (ast.List, ast.Tuple)):
                for pair in a.elts:
                    if isinstance(pair, ast.Tuple) and len(pair.elts) == 2:
                        yield pair.elts[1]
    else:
        yield expr


def _strip_self_returning(node: ast.expr, fw: Profile) -> ast.expr:
    """`Net(...).to(device).eval()` -> `Net(...)`."""
    while (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
           and node.func.attr in fw.self_returning_methods and isinstance(node.func.value, ast.Call)):
        node = node.func.value
    return node


def _short(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _first_clause(why: str) -> str:
    return why.split(" even after", 1)[0]


def _default_profile() -> Profile:
    return profile_for({})


# --- per-project memo and the context's entry point ------------------------------------------------
_ANALYSES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def analysis_for(classifier) -> SensitivityAnalysis:
    """The project's analysis (one per ModuleClassifier: per run and worker process)."""
    found = _ANALYSES.get(classifier)
    if found is None:
        found = _ANALYSES[classifier] = SensitivityAnalysis(classifier)
    return found


Target = Union[str, object]


def sensitivity_in_file(ctx, target) -> Sensitivity:
    """`FileContext.mode_sensitivity`: a class qualname, a `cst.ClassDef`, or a `cst` expression."""
    import libcst as cst

    analysis = analysis_for(ctx.classifier)
    if isinstance(target, str):
        return analysis.of_class(target, None, ctx.facts)
    if isinstance(target, cst.ClassDef):
        return analysis.of_class(f"{ctx.facts.modname}.{_class_path(ctx, target)}", None, ctx.facts)
    if isinstance(target, cst.BaseExpression):
        return analysis.of_expression(ctx.module.code_for_node(target), ctx.facts)
    return Sensitivity(UNKNOWN, "not a model")


def _class_path(ctx, classdef) -> str:
    """Dotted name of a class definition in its file (`Outer.Inner` for a nested one)."""
    name = classdef.name.value
    if name in ctx.facts.classes:
        return name
    nested = [n for n in ctx.facts.classes if n.rsplit(".", 1)[-1] == name]
    return nested[0] if len(nested) == 1 else name

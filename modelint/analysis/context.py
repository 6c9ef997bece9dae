"""`FileContext`: the shared, lazily computed facts a rule may ask about the file it is visiting.

The engine owns one per file and keeps `ancestors` (the walk's current path, node last) up to date.
Everything else is computed on first use and memoised, so a rule that never asks pays nothing.
"""

from __future__ import annotations

from typing import Dict, FrozenSet, List, Optional, Sequence, Tuple

import libcst as cst

from modelint.analysis import classes
from modelint.analysis import mode as mode_analysis
from modelint.analysis.calls import dotted  # noqa: F401  (re-exported: its importers say `context.dotted`)
from modelint.analysis.index import FileFacts, qualify
from modelint.analysis.modules import ModuleClassifier
from modelint.analysis.sampling import ForwardReach
from modelint.analysis.sensitivity import Sensitivity, sensitivity_in_file
from modelint.frameworks import Profile, profile_for


class FileContext:
    def __init__(self, path: str, module: cst.Module, facts: FileFacts, classifier: ModuleClassifier):
        self.path = path
        self.module = module
        self.facts = facts
        self.classifier = classifier
        self.ancestors: List[cst.CSTNode] = []
        self._module_class: Dict[int, bool] = {}
        self._function_facts: Dict[int, mode_analysis.FunctionFacts] = {}
        self._class_mode_attrs: Dict[int, FrozenSet[str]] = {}
        self._local_classes = frozenset(n.split(".")[0] for n in facts.classes)
        self._framework: Optional[Profile] = None
        self._class_framework: Dict[int, Profile] = {}
        self._methods: Dict[int, Dict[str, cst.FunctionDef]] = {}
        self._reachable: Dict[Tuple[int, Tuple[str, ...]], FrozenSet[str]] = {}
        self._top_classes: Optional[Dict[str, cst.ClassDef]] = None
        self._forward_reach: Dict[int, ForwardReach] = {}
        # id(expr) -> (expr, qualified name): every rule resolves the callee of the calls it sees (on
        # transformers, 540k resolutions, most of them of nodes resolved already). The node is kept
        # with its answer so that its id cannot be reused by another node while the entry lives.
        self._resolved: Dict[int, Tuple[cst.CSTNode, Optional[str]]] = {}

    @property
    def framework(self) -> Profile:
        """The framework profile of this file (chosen from its imports; see `modelint.frameworks`)."""
        if self._framework is None:
            self._framework = profile_for(self.facts.aliases)
        return self._framework

    def class_framework(self, classdef: cst.ClassDef) -> Profile:
        """The profile of the framework a class belongs to: the file's, unless the file mixes
        frameworks; then the one owning the class's base, through bases in the file and the project
        (an `mlx.nn.Module` subclass in a file that also imports torch is MLX's: its plain lists are
        registered). The merged profile when no base tells."""
        fw = self.framework
        if not fw.parts:
            return fw
        key = id(classdef)
        if key not in self._class_framework:
            bases = [q for q in (self.resolve(b.value) for b in classdef.bases if b.keyword is None) if q]
            self._class_framework[key] = self._owner(bases, fw, 0)
        return self._class_framework[key]

    def _owner(self, bases: Sequence[str], fw: Profile, depth: int) -> Profile:
        for q in bases:
            owner = next((p for p in fw.parts if p.owns(q)), None)
            if owner is not None:
                return owner
            up = self.classifier.index.bases_of(q) if depth < 20 else None
            if up:
                found = self._owner(up, fw, depth + 1)
                if found is not fw:
                    return found
        return fw

    # --- names -------------------------------------------------------------------------------
    def resolve(self, expr: cst.CSTNode) -> Optional[str]:
        """Qualified name of a Name/Attribute chain through this file's imports, e.g. `F.dropout`
        -> `torch.nn.functional.dropout`. Unimported names come back unchanged."""
        hit = self._resolved.get(id(expr))
        if hit is not None and hit[0] is expr:
            return hit[1]
        name = dotted(expr)
        found = None if name is None else qualify(name, self.facts.aliases, self.facts.modname,
                                                   self._local_classes, self.facts.stars)
        self._resolved[id(expr)] = (expr, found)
        return found

    def is_imported(self, name: str) -> bool:
        return name.split(".")[0] in self.facts.aliases

    # --- classes -----------------------------------------------------------------------------
    def is_module_class(self, classdef: cst.ClassDef) -> bool:
        key = id(classdef)
        if key not in self._module_class:
            self._module_class[key] = any(
                self.classifier.is_module_base(q)
                for q in (self.resolve(b.value) for b in classdef.bases if b.keyword is None)
                if q
            )
        return self._module_class[key]

    def is_lightning_class(self, classdef: cst.ClassDef) -> bool:
        return any(
            self.classifier.is_lightning(q)
            for q in (self.resolve(b.value) for b in classdef.bases if b.keyword is None)
            if q
        )

    def enclosing(self, *types: type) -> Optional[cst.CSTNode]:
        """Innermost ancestor (excluding the current node) of one of the types."""
        for node in reversed(self.ancestors[:-1]):
            if isinstance(node, types):
                return node
        return None

    def enclosing_function(self) -> Optional[cst.FunctionDef]:
        return self.enclosing(cst.FunctionDef)

    def enclosing_class(self) -> Optional[cst.ClassDef]:
        return self.enclosing(cst.ClassDef)

    def enclosing_method_and_class(self) -> Tuple[Optional[cst.FunctionDef], Optional[cst.ClassDef]]:
        """(method, class) for the method directly in the innermost class body around the current node."""
        anc = self.ancestors
        for i in range(len(anc) - 2, 1, -1):
            if isinstance(anc[i], cst.FunctionDef) and isinstance(anc[i - 2], cst.ClassDef):
                return anc[i], anc[i - 2]
        return None, None

    def enclosing_method(self) -> Optional[cst.FunctionDef]:
        """The function defined directly in the innermost enclosing class body, if any."""
        anc = self.ancestors
        for i in range(len(anc) - 2, 0, -1):
            if isinstance(anc[i], cst.FunctionDef):
                # anc[i-1] is the IndentedBlock of the class, anc[i-2] the class
                if i >= 2 and isinstance(anc[i - 2], cst.ClassDef):
                    return anc[i]
        return None

    def in_module_method(self) -> bool:
        """Inside a method (or a function nested in one) of an nn.Module class."""
        cls = self.enclosing_class()
        return cls is not None and self.enclosing_function() is not None and self.is_module_class(cls) and self._function_inside(cls)

    def in_module_mixin_method(self) -> bool:
        """Inside a method of a plain class that a module class of the project also derives from
        (`ModuleClassifier.is_module_mixin`)."""
        cls = self.enclosing_class()
        if cls is None or self.enclosing_function() is None or not self._function_inside(cls):
            return False
        return self.classifier.is_module_mixin(f"{self.facts.modname}.{cls.name.value}")

    def _function_inside(self, cls: cst.ClassDef) -> bool:
        seen_cls = False
        for node in self.ancestors[:-1]:
            if node is cls:
                seen_cls = True
            elif seen_cls and isinstance(node, cst.FunctionDef):
                return True
        return False

    # --- methods of a class ----------------------------------------------------------------------
    def methods(self, classdef: cst.ClassDef) -> Dict[str, cst.FunctionDef]:
        """The class's methods as Python binds them (`classes.class_methods`)."""
        key = id(classdef)
        if key not in self._methods:
            self._methods[key] = classes.class_methods(classdef)
        return self._methods[key]

    def reachable_methods(self, classdef: cst.ClassDef, seeds: Sequence[str]) -> FrozenSet[str]:
        """Methods reachable from `seeds` through `self.<method>` references (`classes.reachable_methods`)."""
        key = (id(classdef), tuple(seeds))
        if key not in self._reachable:
            self._reachable[key] = classes.reachable_methods(self.methods(classdef), seeds)
        return self._reachable[key]

    def top_level_classes(self) -> Dict[str, cst.ClassDef]:
        if self._top_classes is None:
            self._top_classes = classes.top_level_classes(self.module)
        return self._top_classes

    def forward_reach(self, classdef: cst.ClassDef) -> ForwardReach:
        """What the class's `forward` executes (`sampling.ForwardReach`), built once per class."""
        key = id(classdef)
        if key not in self._forward_reach:
            self._forward_reach[key] = ForwardReach(self, classdef, self.top_level_classes())
        return self._forward_reach[key]

    # --- the training mode -----------------------------------------------------------------------
    def self_mode(self, self_name: str = "self") -> str:
        """The expression for a module's own mode: `self.training`."""
        return f"{self_name}.{self.framework.mode_attr}"

    def training_flag(self) -> Optional[str]:
        """The expression that says "training" at the current node: `self.training` in a method of a
        module class (when its first parameter is `self`, spelled as it is), else the enclosing
        function's training-like parameter (`not deterministic` for an inverted one); None when there
        is none."""
        # A framework whose mode is an argument (Keras `call(x, training=None)`) has no `self.training`.
        if self.in_module_method() and not self.framework.mode_is_argument:
            method = self.enclosing_method()
            if method is not None and not classes.is_decorated_with(method, "staticmethod", "classmethod"):
                self_name = classes.first_param(method)
                if self_name:
                    return self.self_mode(self_name)
        params = sorted(self.mode_params())
        plain = [p for p in params if p not in mode_analysis.EVAL_NAMES]
        if plain:
            return plain[0]
        if params:
            return f"not {params[0]}"
        return None

    def function_facts(self, fn: Optional[cst.CSTNode] = None) -> Optional[mode_analysis.FunctionFacts]:
        fn = fn or self.enclosing_function()
        if fn is None:
            return None
        key = id(fn)
        if key not in self._function_facts:
            self._function_facts[key] = mode_analysis.function_facts(fn)
        return self._function_facts[key]

    def mode_params(self) -> FrozenSet[str]:
        """Training-like parameters of the innermost enclosing function."""
        facts = self.function_facts()
        return facts.params & mode_analysis.MODE_NAMES if facts else frozenset()

    def class_mode_attrs(self, classdef: Optional[cst.ClassDef] = None) -> FrozenSet[str]:
        classdef = classdef or self.enclosing_class()
        if classdef is None:
            return frozenset()
        key = id(classdef)
        if key not in self._class_mode_attrs:
            self._class_mode_attrs[key] = mode_analysis.class_mode_attributes(classdef)
        return self._class_mode_attrs[key]

    def chain(self, node: cst.CSTNode) -> List[cst.CSTNode]:
        if self.ancestors and self.ancestors[-1] is node:
            return list(self.ancestors)
        facts = self.function_facts()
        return facts.chain(node) if facts else [node]

    def mode_guard(self, node: Optional[cst.CSTNode] = None) -> Optional[cst.CSTNode]:
        """The enclosing mode check that makes `node` (default: the current node) mode-dependent."""
        node = node if node is not None else self.ancestors[-1]
        facts = self.function_facts()
        return mode_analysis.mode_guard(self.chain(node), facts.mode_locals if facts else frozenset())

    def is_guarded(self, node: Optional[cst.CSTNode] = None) -> bool:
        return self.mode_guard(node) is not None

    def depends_on_mode(self, expr: cst.CSTNode) -> bool:
        return mode_analysis.expr_depends_on_mode(expr, self.function_facts(), self.class_mode_attrs())

    def statement_of(self, node: cst.CSTNode) -> Optional[cst.CSTNode]:
        """The innermost statement containing `node` (suppression comments go on its first line)."""
        chain = self.ancestors
        if not any(n is node for n in chain):
            chain = self.chain(node)
            if len(chain) < 2:
                return None
        for n in reversed(chain[: next(i for i, c in enumerate(chain) if c is node) + 1]):
            if isinstance(n, (cst.SimpleStatementLine, cst.BaseCompoundStatement)):
                return n
        return None

    # --- mode sensitivity (analysis.sensitivity, issue #14) ----------------------------------------
    def mode_sensitivity(self, target) -> "Sensitivity":
        """Does the model `target` compute differently in train and eval mode? `target`: a class
        qualname, a `cst.ClassDef`, or an expression naming or constructing a model (`Net`,
        `Net(p=0.0)`, `nn.Sequential(...)`). A `Sensitivity` with `.answer` "yes" / "no" / "unknown"
        and a `.reason` for messages; memoised per project (see `analysis.sensitivity`)."""
        return sensitivity_in_file(self, target)

    def positions(self):
        """The syntactic positions of the file's nodes (`analysis.positions`), computed once per
        file on the first call: for findings, messages and mode branches alike (one code generation
        over the module costs about a third of its parse; four homes computed it up to four times)."""
        positions = getattr(self, "_line_positions", None)
        if positions is None:
            from modelint.analysis.positions import syntactic_positions

            positions = self._line_positions = syntactic_positions(self.module)
        return positions

    def line(self, node: cst.CSTNode) -> int:
        """1-based first line of `node` (for messages)."""
        return self.positions()[node].start.line

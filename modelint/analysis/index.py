"""A cheap cross-file index: each checked file's import aliases and class -> base classes.

Built before the rules run from the import and class-header statements of each file, found by text
and parsed one by one with the standard library's `ast` (far cheaper than parsing the file), so a rule in `encoder.py` can know that `class Encoder(Base)` is an `nn.Module`
because `base.py` says `class Base(nn.Module)`.

Names are resolved from the module's own import statements only (a small alias table); nothing
is imported or executed. What it cannot see (documented heuristics):
- star imports (`from .layers import *`) and names assigned at run time (`Base = make_base()`);
- classes created by decorators or metaclasses that change the base list;
- packages outside the checked paths, except the well-known bases in the framework profiles (`Profile.module_bases`)
  and the user's `module-bases` setting.
"""

from __future__ import annotations

import ast
import builtins
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

from modelint.analysis.astnames import dotted_ast  # noqa: F401 (re-exported: the index's API)
from modelint.analysis.fillins import fillins_from_defs
from modelint.analysis.passthrough import passes_from_defs
from modelint.frameworks import PROFILES
from modelint.analysis.modemodel import Effect, Evaluator, FunctionIR, optimizer_name, summaries_from_source, BY_NAME_MAX, NOT_BY_NAME


@dataclass
class FileFacts:
    """What one file says about names: `aliases` maps a local name to a dotted qualified name."""

    modname: str
    aliases: Dict[str, str] = field(default_factory=dict)
    # class name (top level or nested, dotted) -> qualified names of its bases
    classes: Dict[str, List[str]] = field(default_factory=dict)
    # top-level function -> qualified names of the classes it returns an instance of (`factories_from_source`)
    factories: Dict[str, List[str]] = field(default_factory=dict)
    # such a factory -> the qualified classes its body constructs: a container's contents
    # (`nn.Sequential(*layers)`), the parts handed to the class it returns (`EncoderDecoder(Encoder(...),
    # ...)`), which that class asked about alone does not show (`factory_parts_from_source`)
    factory_parts: Dict[str, List[str]] = field(default_factory=dict)
    # `func` / `Class.method` -> its mode summary program (`modemodel.FunctionIR.to_json()`), for
    # the functions whose text switches a mode, runs a training step or loads a model
    functions: Dict[str, list] = field(default_factory=dict)
    # short top-level function -> is it a default helper, `x if x is not None else f()` (`analysis.fillins`)
    fillins: Dict[str, bool] = field(default_factory=dict)
    # short top-level function -> the parameter it returns as given (`def to_gpu(m): return m.cuda()`,
    # `analysis.passthrough`); only the functions that do are listed
    passes: Dict[str, int] = field(default_factory=dict)
    # the file's top-level functions that hand no optimizer-like name to a call, by name
    # (`ProjectIndex.defines`: such a function that is not summarised runs no training step, whatever
    # its own arguments look like)
    defs: List[str] = field(default_factory=list)
    # modules imported with `from X import *`, in order (`qualify`, `ProjectIndex.locate`)
    stars: List[str] = field(default_factory=list)


# The class bodies of a file (`classbodies.ClassBody` by class name) are computed by `classbodies` and
# kept on its FileFacts, outside the fields above: the index pass does not need them and the result
# cache stores them apart (`classbodies.project_fingerprint`).
_BODIES = "class_bodies"


def attach(facts: FileFacts, bodies: Mapping[str, object]) -> FileFacts:
    setattr(facts, _BODIES, bodies)
    return facts


def bodies_of(facts: FileFacts) -> Mapping[str, object]:
    """The class bodies recorded for a file ({} when its facts were built without them)."""
    found = getattr(facts, _BODIES, None)  # (not `or {}`: the truth test of a LazyBodies would scan it)
    return {} if found is None else found


def module_name(path: Path) -> str:
    """Dotted module name of a file, walking up through folders that hold an `__init__.py`."""
    path = Path(path).resolve()
    parts = [] if path.name == "__init__.py" else [path.stem]
    folder = path.parent
    while (folder / "__init__.py").is_file():
        parts.append(folder.name)
        if folder.parent == folder:
            break
        folder = folder.parent
    return ".".join(reversed(parts)) or path.stem


def _package_of(modname: str, is_package: bool) -> str:
    return modname if is_package else modname.rpartition(".")[0]


def resolve_relative(modname: str, is_package: bool, level: int, module: Optional[str]) -> str:
    """`from ..x import y` inside `modname` -> the absolute dotted name of `..x`."""
    base = _package_of(modname, is_package)
    for _ in range(level - 1):
        base = base.rpartition(".")[0]
    if module:
        return f"{base}.{module}" if base else module
    return base


def qualify(name: str, aliases: Dict[str, str], modname: str, local_classes: Iterable[str] = (),
            stars: Sequence[str] = ()) -> str:
    """Resolve a dotted name used in a module: through its imports, then its own classes. In a module
    with star imports (`stars`), a class-like name that nothing else binds (`GeneralModel` after
    `from models.base import *`) is taken as the module's own, `modname.GeneralModel`: the index
    looks it up through the star-imported modules (`ProjectIndex.locate`). Not `Module` /
    `nn.Module`, which stay the unresolved spellings of `torch.nn.Module` (`analysis.modules`)."""
    head, dot, rest = name.partition(".")
    if head in aliases:
        return aliases[head] + (dot + rest if rest else "")
    if head in local_classes:
        return f"{modname}.{name}" if modname else name
    if stars and modname and head[:1].isupper() and head not in _BUILTIN_NAMES and name not in ("Module", "nn.Module"):
        return f"{modname}.{name}"
    return name


_BUILTIN_NAMES = frozenset(dir(builtins))


# Statements the index needs: imports (at any depth) and class headers. Matching them by text and
# parsing only those snippets with `ast` is several times cheaper than parsing the whole file.
_STATEMENT = re.compile(
    rb"^([ \t]*)(?:class[ \t]+[A-Za-z_]\w*|import[ \t]|from[ \t]+[.\w]+[ \t]+import\b)", re.MULTILINE
)


def _logical_line(source: bytes, start: int, stop_at_colon: bool) -> bytes:
    """The statement starting at `start`: up to the newline (or, for a class header, the colon) at
    bracket depth 0, following backslash continuations."""
    depth, i, n = 0, start, len(source)
    while i < n:
        c = source[i]
        if c in b"([{":
            depth += 1
        elif c in b")]}":
            depth -= 1
        elif c == 0x5C and i + 1 < n and source[i + 1] in b"\r\n":  # backslash continuation
            i += 2
            continue
        elif c == 0x23 and depth == 0:  # a comment ends the header
            break
        elif c in b"\r\n" and depth <= 0:
            break
        elif stop_at_colon and c == 0x3A and depth == 0:
            return source[start : i + 1]
        i += 1
    return source[start:i]


def _snippet_statements(source: bytes) -> Iterator[Tuple[int, ast.stmt]]:
    """(indent width, statement) for each import / class header, in source order. A docstring line
    that looks like one is read as one: harmless for the index, documented as a heuristic."""
    for m in _STATEMENT.finditer(source):
        indent = len(m.group(1).expandtabs(8))
        is_class = source.startswith(b"class", m.end(1))
        text = _logical_line(source, m.end(1), stop_at_colon=is_class)
        if is_class:
            text += b" pass"
        try:
            tree = ast.parse(text)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
        if tree.body:
            yield indent, tree.body[0]


def facts_from_source(source: bytes, path: Path, modname: Optional[str] = None) -> FileFacts:
    """Imports (at any depth) and class bases of one file, from its text."""
    modname = module_name(path) if modname is None else modname
    if source.startswith(b"\xef\xbb\xbf"):
        source = source[3:]  # a UTF-8 BOM would hide a first-line import from the statement pattern
    is_package = Path(path).name == "__init__.py"
    facts = FileFacts(modname=modname)
    raw_classes: List[Tuple[str, List[Optional[str]]]] = []
    class_stack: List[Tuple[int, str]] = []  # (indent, dotted name) of enclosing classes
    for indent, stmt in _snippet_statements(source):
        if isinstance(stmt, ast.Import):
            for a in stmt.names:
                if a.asname:
                    facts.aliases[a.asname] = a.name
                else:
                    head = a.name.split(".")[0]
                    facts.aliases.setdefault(head, head)
        elif isinstance(stmt, ast.ImportFrom):
            src = resolve_relative(modname, is_package, stmt.level, stmt.module) if stmt.level else (stmt.module or "")
            for a in stmt.names:
                if a.name != "*":
                    facts.aliases[a.asname or a.name] = f"{src}.{a.name}" if src else a.name
                elif src and src not in facts.stars:
                    facts.stars.append(src)
        elif isinstance(stmt, ast.ClassDef):
            while class_stack and class_stack[-1][0] >= indent:
                class_stack.pop()
            name = f"{class_stack[-1][1]}.{stmt.name}" if class_stack else stmt.name
            class_stack.append((indent, name))
            raw_classes.append((name, [dotted_ast(b) for b in stmt.bases]))
    local = {name.split(".")[0] for name, _ in raw_classes}
    for name, bases in raw_classes:
        facts.classes[name] = [qualify(b, facts.aliases, modname, local, facts.stars) for b in bases if b]
    defs = list(_top_level_defs(source)) if b"return" in source else []  # one scan for both facts
    facts.defs = sorted(m.group(1).decode("ascii", "replace")
                        for m, end in (defs or _top_level_defs(source)) if not _hands_on_an_optimizer(source, m.end(), end))
    facts.factories = factories_from_source(source, facts.aliases, modname, local, defs)
    facts.factory_parts = factory_parts_from_source(source, facts, local, defs)
    texts = [(m.group(1).decode("ascii", "replace"), source[m.start():end]) for m, end in defs]
    facts.fillins = fillins_from_defs(texts)
    facts.passes = passes_from_defs(texts)
    facts.functions = {name: ir.to_json() for name, ir in summaries_from_source(source).items()}
    return facts


@dataclass
class ProjectIndex:
    """All checked files' facts, keyed by module name."""

    modules: Dict[str, FileFacts] = field(default_factory=dict)
    _effects: Dict[str, Optional[Effect]] = field(default_factory=dict, repr=False, compare=False)
    _by_name: Optional[Dict[str, List[str]]] = field(default=None, repr=False, compare=False)
    _names: Optional[frozenset] = field(default=None, repr=False, compare=False)
    _imports: Optional[Dict[str, set]] = field(default=None, repr=False, compare=False)
    _bases_by_last: Optional[Dict[str, set]] = field(default=None, repr=False, compare=False)
    _by_last_part: Optional[Dict[str, List[str]]] = field(default=None, repr=False, compare=False)
    _roots: frozenset = field(default=frozenset(), repr=False, compare=False)

    def add(self, facts: FileFacts) -> None:
        self.modules[facts.modname] = facts
        self._effects.clear()
        self._by_name = self._names = self._imports = self._bases_by_last = self._by_last_part = None

    def imported_elsewhere(self, modname: str, name: str) -> bool:
        """Another checked file imports `name` of module `modname`, or the module itself (`from
        val_3D import test_all_case`, `import val_3D`). Module names are compared by their dotted
        tail, because a script directory's files import each other by bare name (`val_3D`) while the
        index names them from the checked root (`code.val_3D`)."""
        if self._imports is None:
            self._imports = {}
            for mod, facts in self.modules.items():
                for target in facts.aliases.values():
                    self._imports.setdefault(target.rsplit(".", 1)[-1], set()).add((target, mod))
        wanted = (f"{modname}.{name}", modname)
        for target, importer in self._imports.get(name, set()) | self._imports.get(modname.rsplit(".", 1)[-1], set()):
            if importer != modname and any(self._same_module_path(target, w) for w in wanted):
                return True
        # `from utils import *` imports every public name (a script folder's `model.py` calling
        # `evaluate_model(self, ...)` of its `utils.py`)
        return not name.startswith("_") and any(
            mod != modname and any(self._same_module_path(star, modname) for star in facts.stars)
            for mod, facts in self.modules.items() if facts.stars)

    def _same_module_path(self, target: str, wanted: str) -> bool:
        """An import of `target` names the project's `wanted` (`val_3D.test_all_case` for
        `code.val_3D.test_all_case`): equal, or a dotted suffix of it whose first part is the last
        part of a checked module's name (`from torch import utils` is not the project's `utils`)."""
        if target == wanted:
            return True
        head = target.split(".")[0]
        if wanted.endswith("." + target) and any(m == head or m.endswith("." + head) for m in self.modules):
            return True
        # `from attention.train import evaluate` of a script module `train` in a folder without
        # `__init__.py` (an implicit namespace package; `module_name` stops at that folder): the
        # import names the folders first, the index the file alone (as `_script_function`)
        module = wanted.split(".")[0]  # (the index keys its modules by name: a dotless one is a script module)
        return target.endswith("." + wanted) and module in self.modules \
            and not any(p.in_namespace(target) for p in PROFILES)

    # --- mode summaries (modemodel) ----------------------------------------------------------------
    def _split(self, qualname: str) -> Optional[Tuple[str, str]]:
        """(module, `func` / `Class.method`) of a qualified function name, following re-exports."""
        qualname = self.rooted(qualname)
        seen = set()
        while qualname not in seen and len(seen) < 32:
            seen.add(qualname)
            parts = qualname.split(".")
            for i in range(len(parts) - 1, 0, -1):
                mod, rest = ".".join(parts[:i]), ".".join(parts[i:])
                facts = self.modules.get(mod)
                if facts is None:
                    continue
                if rest in facts.functions:
                    return mod, rest
                head = rest.split(".")[0]
                if head not in facts.aliases:
                    return (self._inherited(mod, rest) or self._star_function(facts, rest)
                            or self._script_function(parts))
                qualname = facts.aliases[head] + rest[len(head):]
                break
            else:
                return self._script_function(parts)
        return None

    def _script_function(self, parts: List[str]) -> Optional[Tuple[str, str]]:
        """`example.utils.dataset_embeddings` imported from a folder without `__init__.py` (an implicit
        namespace package: a notebook's `sys.path.append("..")`; `from example.utils import ...`): the
        index names that file `utils` (`module_name` stops at the first folder without one), so the
        function is `utils.dataset_embeddings` (or the method `utils.Cls.meth`) when a script module
        `utils` defines it. `_script_tail` is the same for classes."""
        if len(parts) < 3 or any(p.in_namespace(".".join(parts)) for p in PROFILES):
            return None
        for k in (2, 3):
            facts = self.modules.get(parts[-k]) if len(parts) > k else None
            rest = ".".join(parts[-k + 1:])
            if facts is not None and "." not in facts.modname and rest in facts.functions:
                return facts.modname, rest
        return None

    def _inherited(self, mod: str, rest: str) -> Optional[Tuple[str, str]]:
        """`Class.method` defined in a base class of `mod.Class` (checked files only)."""
        cls, _, meth = rest.rpartition(".")
        if not cls or not meth:
            return None
        todo, seen = [f"{mod}.{cls}"], set()
        while todo and len(seen) < 16:
            q = todo.pop()
            if q in seen:
                continue
            seen.add(q)
            for base in self.bases_of(q) or ():
                found = self._split(f"{base}.{meth}") if base not in seen else None
                if found is not None:
                    return found
                todo.append(base)
        return None

    def _star_function(self, facts: FileFacts, rest: str) -> Optional[Tuple[str, str]]:
        """A top-level function `rest` not bound in `facts`'s module, defined by a module it
        star-imports (`from utils import *`; `evaluate_model(...)`), the first in import order."""
        if "." in rest or rest.startswith("_"):
            return None
        return next(((mod, rest) for mod, target in self._star_modules(facts) if rest in target.functions), None)

    def _star_modules(self, facts: FileFacts) -> Iterator[Tuple[str, FileFacts]]:
        """The checked modules `facts` star-imports, and theirs in turn, in import order."""
        todo, seen = list(facts.stars), {facts.modname}
        while todo:
            mod = todo.pop(0)
            target = self.modules.get(mod)
            if mod in seen or target is None:
                continue
            seen.add(mod)
            yield mod, target
            todo.extend(target.stars)

    def has_subclass(self, facts: FileFacts, cls: str) -> bool:
        """Some checked class names `cls` of `facts`'s module among its bases (through imports and
        re-exports: each base spelled with the same last name is located)."""
        if self._bases_by_last is None:
            self._bases_by_last = {}
            for f in self.modules.values():
                for bases in f.classes.values():
                    for b in bases:
                        self._bases_by_last.setdefault(b.rsplit(".", 1)[-1], set()).add(b)
        last = cls.rsplit(".", 1)[-1]
        for base in self._bases_by_last.get(last, ()):
            found = self.locate(base)
            if found is not None and found[0].modname == facts.modname and found[1] == cls:
                return True
        return False

    def star_effect(self, facts: FileFacts, name: str) -> Optional[Effect]:
        """The effect of a function `name` a file (`facts`, its own: script folders' modules share
        names, `model.py` in each) takes from its star imports; None when none defines it."""
        found = self._star_function(facts, name)
        return self.effect(".".join(found)) if found is not None else None

    def effect(self, qualname: str) -> Optional[Effect]:
        """What calling the checked function `qualname` does to modes (None: not summarised)."""
        if qualname in self._effects:
            return self._effects[qualname]
        found = self._split(qualname)
        self._effects[qualname] = None  # recursion guard
        if found is None:
            return None
        mod, rest = found
        ir = FunctionIR.from_json(self.modules[mod].functions[rest])
        cls = rest.rpartition(".")[0] or None
        result = Evaluator(self._resolve_from, self._kept_from, self.runs_its_module_quietly, self._defines_from).run(
            f"{mod}.{rest}", ir, mod, cls)
        if any(r.startswith("construct:") for r in result.returns):  # qualify the class a loader builds
            facts = self.modules[mod]
            local = {n.split(".")[0] for n in facts.classes}
            result = replace(result, returns=frozenset(
                "construct:" + qualify(r[10:], facts.aliases, mod, local) if r.startswith("construct:") else r
                for r in result.returns))
        self._effects[qualname] = result
        return result

    def runs_its_module_quietly(self, effect: Effect) -> bool:
        """`effect` is a method that runs its own object (`self(x)`, `self.forward(x)`) or a submodule
        its class's `__init__` builds (`self.encoder = MLP(...)`, the class body's held calls) under
        no_grad, in the mode it arrived in, and neither switches nor steps it: `@torch.inference_mode()
        def get_embeddings(self, x): return self.encoder(x)` (set 10's pytorch-scarf). Calling it runs
        the receiver for inference, like `with torch.no_grad(): model(x)`. Not a no_grad method that
        only calls other methods or helpers (`self._load_checkpoint(...)`, an EMA update, weight
        init): only the module's own layers say that the model itself is run. The caller decides
        whether the receiver is a module (`ModeFlow.quiet_module_method`)."""
        if not effect.is_method or not effect.params or effect.steps:
            return False
        me = effect.params[0]
        if any(k == me or k.startswith(me + ".") for k in effect.exit):
            return False
        runs = {k for k, _, quiet in effect.infers if quiet}
        if me in runs:
            return True
        if not any(k.startswith(me + ".") for k in runs):
            return False
        located = self.locate(effect.qualname.rpartition(".")[0])
        body = bodies_of(located[0]).get(located[1]) if located is not None else None
        held = {c.attr for c in getattr(body, "calls", ()) if c.held and c.attr}
        return any(f"{me}.{a}" in runs for a in held)

    def method_effect(self, name: str, imported: Iterable[str] = (), given: Optional[int] = None) -> Optional[Effect]:
        """The effect of `obj.<name>()` when `obj`'s class is unknown: the method of that name of
        the checked classes, when there are at most `BY_NAME_MAX` and they agree on what they do.
        Of agreeing ones, that of a class the calling file imports (`imported`: its qualified
        import names) is returned, so that a message names the right file. `given`: how many
        arguments the call passes (None: unknown, `*args`): a method that needs more cannot be the
        one called (upstream18's mead-baseline: a progress bar's `pg.update()` is not the project's
        `EagerOptimizer.update(self, model, x, y)`, whose step made the evaluation loop a training loop)."""
        if name in NOT_BY_NAME or name.startswith("__"):
            return None
        if self._by_name is None:
            self._by_name = {}
            for mod, facts in self.modules.items():
                for fname in facts.functions:
                    if "." in fname:
                        self._by_name.setdefault(fname.rsplit(".", 1)[1], []).append(f"{mod}.{fname}")
        quals = self._by_name.get(name, ())
        if not quals or len(quals) > BY_NAME_MAX:
            return None
        if given is not None:
            quals = [q for q in quals if self._required_of(q) <= given]
            if not quals:
                return None
        effects = [self.effect(q) for q in quals]
        if any(e is None for e in effects):
            return None
        first = effects[0]
        if any((e.steps, e.exit) != (first.steps, first.exit) for e in effects[1:]):
            return None
        return next((e for q, e in zip(quals, effects) if _imported_class(q, imported)), first)

    def _required_of(self, qualname: str) -> int:
        """`FunctionIR.required` of a summarised `module.Class.method` (0 when not found)."""
        found = self._split(qualname)
        raw = self.modules[found[0]].functions[found[1]] if found else None
        return raw[8] if raw is not None and len(raw) > 8 else 0

    def step_or_switch_names(self) -> frozenset:
        """Last names of the summarised functions that run a training step, switch a mode, or run a
        model argument under no_grad without a switch (a rule's cheap filter before resolving a call)."""
        if self._names is None:
            names = set()
            for mod, facts in self.modules.items():
                for fname in facts.functions:
                    eff = self.effect(f"{mod}.{fname}")
                    if eff is not None and (eff.steps or eff.exit or eff.returns or eff.decorators or eff.infers):
                        names.add(fname.rsplit(".", 1)[-1])
            self._names = frozenset(names)
        return self._names

    def _resolve_from(self, mod: str, callee: str, cls: Optional[str], self_name: Optional[str]) -> Optional[Effect]:
        """The Effect of a call spelled `callee` inside module `mod` (in class `cls`, whose methods'
        receiver is `self_name`)."""
        facts = self.modules.get(mod)
        if facts is None:
            return None
        head, _, rest = callee.partition(".")
        if self_name is not None and head == self_name and cls and rest and "." not in rest:
            return self.effect(f"{mod}.{cls}.{rest}")
        if head in facts.aliases:
            return self.effect(facts.aliases[head] + (f".{rest}" if rest else ""))
        if not rest:
            return self.effect(f"{mod}.{callee}")
        if head in facts.classes and "." not in rest:
            return self.effect(f"{mod}.{callee}")
        return self.method_effect(callee.rsplit(".", 1)[1])

    def defines(self, qualname: str) -> bool:
        """`qualname` is a top-level function a checked file defines (followed through re-exports).
        Such a function runs no training step unless it is summarised as one: a step-shaped call of it
        (`save_checkpoint(epoch, model, optimizer, best_loss)`, set 19's Deep-Image-Matting, which only
        pickles them) is not a `loss_scaler(loss, optimizer)`."""
        qualname = self.rooted(qualname)
        for _ in range(32):
            mod, _, name = qualname.rpartition(".")
            facts = self.modules.get(mod)
            if facts is None:
                return False
            if name in facts.defs:
                return True
            target = facts.aliases.get(name)
            if target is None or target == qualname:
                return False
            qualname = self.rooted(target)
        return False

    def _defines_from(self, mod: str, callee: str) -> bool:
        """`defines` for a bare name called inside module `mod` (the Evaluator's spelling)."""
        facts = self.modules.get(mod)
        if facts is None or "." in callee:
            return False
        return self.defines(facts.aliases.get(callee, f"{mod}.{callee}"))

    def _kept_from(self, mod: str, cls: str, args, kws) -> Dict[str, str]:
        """`kept_arguments` of a construction spelled `cls` inside module `mod` (a summary's "w" event)."""
        facts = self.modules.get(mod)
        if facts is None:
            return {}
        head, dot, rest = cls.partition(".")
        qual = facts.aliases[head] + dot + rest if head in facts.aliases else f"{mod}.{cls}" if head in facts.classes else None
        return self.kept_arguments(qual, args, kws) if qual else {}

    def kept_arguments(self, qualname: str, args: Sequence[Optional[str]],
                       kws: Mapping[str, Optional[str]]) -> Dict[str, str]:
        """`Learner(net, opt)` of a checked class `qualname` whose `__init__` keeps parameters as
        attributes of the same name (`self.net = net`, its `ClassBody.kept`): {attribute: the caller's
        key passed for it}, from the positional `args` (keys, None for an expression; up to a starred
        one) and the keyword `kws`. Attributes named otherwise (`self.model = net`) are not mapped.
        One home for the in-file mode flow (`modeflow`) and the cross-file summaries (`modemodel`)."""
        located = self.locate(qualname)
        body = bodies_of(located[0]).get(located[1]) if located is not None else None
        if body is None or not body.kept:
            return {}
        names = [p for p, _ in body.params]
        kept = {p for p, _ in body.kept}
        pairs = list(zip(names, args)) + list(kws.items())
        return {name: key for name, key in pairs if name in kept and key is not None}

    def rooted(self, qualname: str) -> str:
        """`resnet1d.ResNet1D` as imported by a script of a checked folder that has an `__init__.py`
        (`from resnet1d import ResNet1D`, run from that folder): the index names the file
        `pkg.resnet1d`, so the name is `pkg.resnet1d.ResNet1D` when exactly one checked module has that
        last part and no checked module is named by the first part itself (set 18's resnet1d: the
        model class of a sibling file was not found, so its training script's model had no mode)."""
        head = qualname.split(".", 1)[0]
        if not head or head in self.modules or "." not in qualname:
            return qualname
        if self._by_last_part is None:
            self._by_last_part = {}
            for mod in self.modules:
                self._by_last_part.setdefault(mod.rsplit(".", 1)[-1], []).append(mod)
            self._roots = frozenset(m.split(".", 1)[0] for m in self.modules)
        found = self._by_last_part.get(head, ())  # (most names, `torch.nn.Module`, stop here: no such module)
        if len(found) != 1 or head in self._roots or any(p.in_namespace(qualname) for p in PROFILES):
            return qualname
        return found[0] + qualname[len(head):]

    def locate(self, qualname: str) -> Optional[Tuple[FileFacts, str]]:
        """The (file, class name) a qualified class name denotes in the checked files, following
        re-exports (`from .x import C` in a package `__init__`) the way `bases_of` does."""
        qualname = self.rooted(qualname)
        seen = set()
        while qualname not in seen and len(seen) < 32:
            seen.add(qualname)
            parts = qualname.split(".")
            for i in range(len(parts) - 1, 0, -1):
                facts = self.modules.get(".".join(parts[:i]))
                if facts is None:
                    continue
                cls = ".".join(parts[i:])
                if cls in facts.classes:
                    return facts, cls
                head = cls.split(".")[0]
                if head not in facts.aliases:
                    qualname = self._through_stars(facts, cls)
                    if qualname is None:
                        return None
                    break
                qualname = facts.aliases[head] + cls[len(head):]
                break
            else:
                qualname = self._script_tail(parts)
                if qualname is None:
                    return None
        return None

    def _script_tail(self, parts: List[str]) -> Optional[str]:
        """`utility.log.Log` imported from a folder without `__init__.py` (an implicit namespace
        package: sam's `from utility.log import Log`): the index names that file `log` (`module_name`
        stops at the first folder without one), so the class is `log.Log` when a script module `log`
        defines it. Not for a framework's own names (`torch.nn.Module`)."""
        if len(parts) < 3 or any(p.in_namespace(".".join(parts)) for p in PROFILES):
            return None
        facts = self.modules.get(parts[-2])
        if facts is None or "." in facts.modname or parts[-1] not in facts.classes:
            return None
        return f"{parts[-2]}.{parts[-1]}"

    def _through_stars(self, facts: FileFacts, cls: str) -> Optional[str]:
        """`cls` as defined or imported by a module `facts` star-imports (`from models.base import *`),
        through star imports of those modules too (the first found, in import order); None if none."""
        head = cls.split(".")[0]
        return next((f"{mod}.{cls}" for mod, target in self._star_modules(facts)
                     if head in target.classes or head in target.aliases), None)

    def bases_of(self, qualname: str) -> Optional[List[str]]:
        """Bases of a class given its qualified name, found as `locate` finds it (re-exports such as
        `from .x import C` in a package `__init__`, star imports, and a class imported from a folder
        without `__init__.py`: set 19's text_gcn, `from models.gcn import GCN`, whose GCN was not
        taken for a module). None when the class is not in the checked files."""
        found = self.locate(qualname)
        return found[0].classes[found[1]] if found is not None else None

    def fingerprint(self) -> str:
        """A stable digest of the facts (for the result cache)."""
        import hashlib
        import json

        payload = json.dumps(
            {m: [sorted(f.aliases.items()), sorted(f.classes.items()), sorted(f.factories.items()), sorted(f.factory_parts.items()),
                 sorted(f.functions.items()),
                 sorted(f.fillins.items()), sorted(f.passes.items()), f.stars, f.defs]
             for m, f in sorted(self.modules.items())},
            sort_keys=True,
        )
        return hashlib.sha256(payload.encode()).hexdigest()


# --- module factories: top-level functions that return a class instance ---------------------------
# `def get_layer(cfg): ... return nn.Linear(...)` (or `layer = Block(...); ...; return layer`), found by
# text like the rest of the index: a top-level `def`, its body up to the next line that starts in
# column 0 (a closing bracket of a wrapped signature aside), and in it `return Name(` / `return local`
# with `local = Name(`. Only capitalised callees are kept (class constructions); whether the class is
# an nn.Module is decided when a rule asks (`analysis.structure.factory_module`). Heuristics: a body
# with a column-0 line inside a string ends early (a factory missed), and a decorated or nested
# function counts only if its `def` is in column 0.
_TOP_DEF = re.compile(rb"^(?:async[ \t]+)?def[ \t]+([A-Za-z_]\w*)[ \t]*\(", re.MULTILINE)
_TOP_LINE = re.compile(rb"^(?![ \t\r\n#)\]}])", re.MULTILINE)
# A factory's entry for a `return` that is not a class construction (`return torch.load(path)`): the
# function may return something else, so what it builds is not only its classes (`analysis.sensitivity`).
NOT_A_CLASS = "?"
_RETURN = re.compile(rb"^[ \t]+return[ \t]+([A-Za-z_][\w.]*)[ \t]*(\()?", re.MULTILINE)


# `name = Callee(` at the start of a line. One pattern for every name, each body scanned once: a
# pattern compiled per returned name (`re.escape(name)`) competes for `re`'s cache of 512 with the
# rest of the run; a profiled check of timm spent 0.8 of 169 s (wall, loaded machine) compiling them.
_BIND = re.compile(rb"^[ \t]+([A-Za-z_][\w.]*)[ \t]*=[ \t]*([A-Za-z_][\w.]*)[ \t]*\(", re.MULTILINE)


def _first_bindings(body: bytes) -> Dict[bytes, bytes]:
    """name -> the callee of its first `name = Callee(` line in `body`."""
    out: Dict[bytes, bytes] = {}
    for m in _BIND.finditer(body):
        out.setdefault(m.group(1), m.group(2))
    return out


# A call in a function's body handed an optimizer-like name (`do_step(loss, optimizer)`): such a function
# may step through a helper its summary does not show, so it is not listed in `FileFacts.defs`.
_CALL_ARGS = re.compile(rb"\w\s*\(([^()\n]*)\)")
_ARG_NAME = re.compile(rb"[A-Za-z_][\w.]*")
_OPTIMIZER_WORD = re.compile(rb"opt|scaler", re.IGNORECASE)


def _hands_on_an_optimizer(source: bytes, start: int, end: int) -> bool:
    """A call between `start` and `end` (a def's body) is handed an optimizer-like name (`modemodel.optimizer_name`)."""
    body_start = source.find(b"\n", start)
    if not _OPTIMIZER_WORD.search(source, body_start, end):
        return False  # (most bodies: no optimizer-like name at all)
    for m in _CALL_ARGS.finditer(source, body_start if 0 <= body_start < end else end, end):
        if any(optimizer_name(a.decode("ascii", "replace").rsplit(".", 1)[-1]) for a in _ARG_NAME.findall(m.group(1))):
            return True
    return False


def _is_class_name(dotted: str) -> bool:
    return dotted.rsplit(".", 1)[-1][:1].isupper()


def _top_level_defs(source: bytes) -> Iterator[Tuple["re.Match[bytes]", int]]:
    """(match of `def name(`, end offset of its body) for each top-level `def`, by text: the body runs
    up to the next line that starts in column 0 (factories and fill-in helpers)."""
    for m in _TOP_DEF.finditer(source):
        end = _TOP_LINE.search(source, source.find(b"\n", m.end()) + 1 or len(source))
        yield m, end.start() if end else len(source)


def factories_from_source(source: bytes, aliases: Dict[str, str], modname: str, local: Iterable[str],
                          defs: Optional[List[Tuple["re.Match[bytes]", int]]] = None) -> Dict[str, List[str]]:
    """Top-level function name -> qualified class names it returns an instance of (`defs`: the file's
    `_top_level_defs`, when the caller has them already)."""
    out: Dict[str, List[str]] = {}
    if b"return" not in source:
        return out
    local = frozenset(local)
    for m, end in _top_level_defs(source) if defs is None else defs:
        body = source[m.end() : end]
        found: List[str] = []
        bound: Optional[Dict[bytes, bytes]] = None
        for r in _RETURN.finditer(body):
            name = r.group(1).decode("ascii", "replace")
            if name in ("None", "True", "False"):
                continue
            if r.group(2) is None:  # `return layer`: the class `layer = Block(...)` built
                bound = _first_bindings(body) if bound is None else bound
                name = bound[r.group(1)].decode("ascii", "replace") if r.group(1) in bound else ""
            # (a class of this file whatever its spelling: `return medt_net(...)`, Medical-Transformer)
            if name and (_is_class_name(name) or name in local) and not body[r.end() :].lstrip(b" \t").startswith(b","):
                found.append(qualify(name, aliases, modname, local))
            else:
                found.append(NOT_A_CLASS)  # `return torch.load(p)` beside `return Net()`: not only classes
        if any(q != NOT_A_CLASS for q in found):
            out[m.group(1).decode("ascii", "replace")] = found
    return out


# What a factory returns is also decided by what its body builds and hands over: a container's contents
# (`make_layers(cfg)`: `layers += [conv, nn.BatchNorm2d(v)]`, `return nn.Sequential(*layers)`), the parts
# of a class that keeps what it is given (`make_model()` returning `EncoderDecoder(Encoder(...), ...)`).
# The containers of every framework (`Sequential`, `ModuleList`, `LayerList`) are left out of the parts.
_CONTAINERS = frozenset(c for p in PROFILES for c in p.containers)
_CALLEE = re.compile(rb"(?<![\w.])([A-Za-z_][\w.]*)[ \t]*\(")


def factory_parts_from_source(source: bytes, facts: FileFacts, local: Iterable[str],
                              defs: List[Tuple["re.Match[bytes]", int]]) -> Dict[str, List[str]]:
    """Factory name -> the qualified classes constructed in its body (capitalised callees outside
    comments, containers and the returned classes left out), for the factories in `facts.factories`."""
    out: Dict[str, List[str]] = {}
    wanted = set(facts.factories)
    if not wanted:
        return out
    local = frozenset(local)
    for m, end in defs:
        func = m.group(1).decode("ascii", "replace")
        if func not in wanted:
            continue
        body = b"\n".join(line.split(b"#", 1)[0] for line in source[m.end():end].splitlines())
        parts = []
        for c in _CALLEE.finditer(body):
            name = c.group(1).decode("ascii", "replace")
            if _is_class_name(name) and name.rsplit(".", 1)[-1] not in _CONTAINERS:
                q = qualify(name, facts.aliases, facts.modname, local)
                if q not in parts and q not in facts.factories[func]:
                    parts.append(q)
        if parts:
            out[func] = parts
    return out


def _imported_class(method_qual: str, imported: Iterable[str]) -> bool:
    """`mod.Class.method`'s class is one of the `imported` names, or their dotted tail: an import
    spelled from a folder above the indexed package (`models.algo_b.core.Algo` for the module
    `algo_b.core` of a folder without `__init__.py`, a namespace package). TorchSSL's two
    `FreeMatch` classes (measuring set 4): a message named the other file's `warmup`."""
    cls = method_qual.rpartition(".")[0]
    return any(q == cls or q.endswith("." + cls) for q in imported)


def _function_home(index: ProjectIndex, qualname: str, table: str = "factories") -> Optional[Tuple[FileFacts, str]]:
    """(facts of the module defining it, its name) for the top-level function `qualname` listed in
    the facts' `table` (`factories`, `passes`), followed through re-exports; None when it is not
    listed there in the checked files."""
    qualname = index.rooted(qualname)
    seen = set()
    while qualname not in seen and len(seen) < 32:
        seen.add(qualname)
        mod, _, func = qualname.rpartition(".")
        facts = index.modules.get(mod)
        if facts is None:
            return None
        if func in getattr(facts, table):
            return facts, func
        if func not in facts.aliases:
            # `from .axialnet import *` in a package `__init__` (`lib.models.axialunet(...)`)
            return next(((target, func) for _, target in index._star_modules(facts) if func in getattr(target, table)),
                        None)
        qualname = facts.aliases[func]  # `from .layers import get_layer` in a package `__init__`
    return None


def factory_classes(index: ProjectIndex, qualname: str) -> List[str]:
    """What the top-level function `qualname` (`pkg.layers.get_layer`, through re-exports) returns an
    instance of, by the index's `factories`; [] when it is not a factory of the checked files."""
    home = _function_home(index, qualname)
    return home[0].factories[home[1]] if home is not None else []


def factory_parts(index: ProjectIndex, qualname: str) -> List[str]:
    """The other classes that factory's body constructs (the index's `factory_parts`)."""
    home = _function_home(index, qualname)
    return home[0].factory_parts.get(home[1], []) if home is not None else []


def passed_argument(index: Optional[ProjectIndex], qualname: str) -> Optional[int]:
    """The position of the argument the top-level function `qualname` returns as it was given (a
    pass-through helper, `analysis.passthrough`), by the index's `passes`; None when it is none."""
    home = _function_home(index, qualname, "passes") if index is not None and qualname else None
    return home[0].passes[home[1]] if home is not None else None

"""Which objects are in eval mode where: a small flow analysis of `.eval()` / `.train()` calls.

Used by the call-site rules (MDL301 eval-not-undone-in-training-loop, MDL302
inference-in-train-mode). It follows the statements of one *scope* (a function, or a file's
top-level code) in order, through `if`/`for`/`while`/`try`/`with`/`match`, `break`/`continue`/
`return`, and keeps, for each *key* (a name or attribute chain: `model`, `self.model`), the set of
facts that may hold for it at that point:

- an `EvalSite`: it was put in eval mode by that call (`m.eval()`, `m.train(False)`,
  `policy.set_training_mode(False)`, or a call of a function of this file that does so);
- `TRAIN`: `m.train()` / `m.train(True)` was called;
- `UNKNOWN`: `m.train(flag)` with a flag we cannot read (typically restoring a saved mode);
- `Created(kind)`: it was bound to a freshly built or loaded model (`Net()`, `torch.load`,
  `torch.hub.load`, `timm.create_model`, `from_pretrained`, `load_state_dict` on it, ...);
- `BOUND`: it was bound to something else;
- `ENTRY`: nothing in this scope changed it (its mode is whatever it was on entry).

Calls of functions and methods defined in the same file (`validate(model)`, `self.validate()`,
nested helper functions) are followed: each such function is analysed once into a summary (its
exit state and the states at its training steps, in its own names) and the summary is mapped
through the call's arguments (`validate(model)`: the callee's parameter becomes the caller's
`model`; `self.X` maps to the receiver's `X`; free and global names stay as they are; the callee's
own locals are dropped). Recursion and depth are bounded; an unresolved call changes nothing.

Sub-module keys inherit from their parents (`model.eval()` also puts `model.encoder` in eval
mode) but a mode change of a sub-module (`model.backbone.eval()`) is tracked under its own key.
Loops are iterated to a fixpoint, so an eval at the end of a loop body reaches the training step
at the top of the next iteration.

Documented limits: aliases are followed only through plain assignment and mode-preserving calls
(`m = model.to(dev)`, `m = torch.compile(model)`); objects stored in containers, calls through
arbitrary objects (`trainer.validate()` where `trainer` is not `self`) and exceptions are not
followed.
"""

from __future__ import annotations

import ast

import builtins
import re
import weakref
from dataclasses import dataclass, field, replace
from typing import Dict, FrozenSet, Iterable, Iterator, List, Optional, Sequence, Set, Tuple

import libcst as cst

from modelint.analysis.calls import get_arg, literal_value, NOT_LITERAL, terminal_name
from modelint.analysis.conditions import Atom, Guard, atoms_cst, constant_cst, falsified, remap
from modelint.analysis.context import dotted
from modelint.analysis.index import factory_classes
from modelint.analysis.modemodel import MODEL_NAME, input_tensors
from modelint.analysis.detached import detached_only
from modelint.analysis.walk import descendants, iter_children, parent_map
from modelint.frameworks import MODE_PRESERVING_METHODS, PROFILES


# --------------------------------------------------------------------------------------------
# Tokens


class _Token:
    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return self.name


ENTRY = _Token("ENTRY")
UNKNOWN = _Token("UNKNOWN")
TRAIN = _Token("TRAIN")
# `TRAIN` after a training step ran on the path: the `model.train()` was for training, so an
# inference further on (a test loop below the epoch's training loop) is not deliberate train mode.
TRAINED = _Token("TRAINED")
BOUND = _Token("BOUND")

ENTRY_SET: FrozenSet = frozenset({ENTRY})


@dataclass(frozen=True)
class EvalSite:
    """A place that leaves a key in eval mode. `node` is the call in the analysed scope (the
    `.eval()` itself, or the call of a file-local function that ends up calling it); `eval_node`
    is the `.eval()` / `.train(False)` call; `via` names the functions in between."""

    node: cst.CSTNode
    eval_node: cst.CSTNode
    shown: str
    via: Tuple[str, ...] = ()
    # set in another file: "line 7 of `lib.learner.Learner.to_eval`" (eval_node is then the call here)
    elsewhere: str = ""


@dataclass(frozen=True)
class Created:
    """The key was bound to a new or loaded model: kind is one of CREATION_KINDS."""

    kind: str
    node: cst.CSTNode
    shown: str


State = Dict[str, FrozenSet]


def get(state: State, key: str) -> FrozenSet:
    """The facts for key, inherited from the nearest parent key (`model` for `model.encoder`)."""
    k = key
    while True:
        value = state.get(k)
        if value is not None:
            return value
        i = k.rfind(".")
        if i < 0:
            return ENTRY_SET
        k = k[:i]


def assign(state: State, key: str, value: FrozenSet) -> State:
    prefix = key + "."
    out = {k: v for k, v in state.items() if not k.startswith(prefix)}
    out[key] = value
    return out


def join(*states: Optional[State]) -> Optional[State]:
    present = [s for s in states if s is not None]
    if not present:
        return None
    if len(present) == 1:
        return present[0]
    keys: Set[str] = set()
    for s in present:
        keys.update(s)
    out: State = {}
    for k in keys:
        acc: FrozenSet = frozenset()
        for s in present:
            acc = acc | get(s, k)
        out[k] = acc
    first = present[0]
    return first if out == first else out


def sites(tokens: FrozenSet) -> List[EvalSite]:
    return [t for t in tokens if isinstance(t, EvalSite)]


# --------------------------------------------------------------------------------------------
# Names and call classification


# `model` / `self.model` / `self.model.encoder` -> that string; None for anything else.
key_of = dotted


# Names every framework's profile contributes, for the helpers below that have no file at hand:
# methods after which the same object is in charge of the mode (`model.to(dev)`), wrappers that
# delegate to the first argument's mode (DDP, `torch.compile`, `deepcopy`), methods that run the
# model, and the last names of grad-mode context managers.
MODE_PRESERVING = MODE_PRESERVING_METHODS
_WRAPPER_LAST = frozenset().union(*(p.mode_delegating_wrappers for p in PROFILES))
MODEL_METHODS = frozenset().union(*(p.model_methods for p in PROFILES))


def runs_model(attr: str) -> bool:
    """A method call that runs the model's computation: the profiles' `model_methods` (`forward`,
    `generate`), and variants of a forward method (`forward_features`, `set_forward`, `_forward`:
    few-shot and timm models split their forward so). Not `generate_*` (`generate_square_subsequent_mask`
    is a mask helper)."""
    return attr in MODEL_METHODS or ("forward" in MODEL_METHODS and (
        attr.startswith("forward_") or attr.endswith("_forward")) and "hook" not in attr)
_GRAD_CONTEXT_NAMES = frozenset().union(*(p.grad_context_names for p in PROFILES))

_OPTIMIZER = re.compile(r"optim|(^|_)opt(s|imizer)?(_|$|\d)|^opt[A-Z0-9_]|scaler$|^scaler", re.IGNORECASE)
_NOT_OPTIMIZER = re.compile(r"sched|lr_", re.IGNORECASE)

# The halves of an encoder-decoder's forward, run step by step when decoding (`model.encode(src)`, then
# `model.decode(memory, ys)` per token): a run of the model when the receiver is named like one (not
# `tokenizer.decode(ids)`).
_HALF_FORWARDS = frozenset({"encode", "decode"})


def half_forward(func: cst.Attribute) -> bool:
    return func.attr.value in _HALF_FORWARDS and bool(MODEL_NAME.search(dotted(func.value) or ""))

# Method calls that do not run a model's computation (they do not make it "used for training").
_NON_COMPUTE = MODE_PRESERVING | frozenset(
    {"parameters", "named_parameters", "state_dict", "load_state_dict", "modules", "named_modules",
     "children", "named_children", "buffers", "named_buffers", "register_buffer", "register_forward_hook",
     "register_forward_pre_hook", "register_full_backward_hook", "add_module", "get_submodule"}
)

_NOT_USING = frozenset(
    {"isinstance", "issubclass", "hasattr", "getattr", "setattr", "delattr", "type", "id", "len", "print",
     "repr", "str", "callable", "iter", "next", "zip", "enumerate", "list", "tuple", "dict", "set", "sorted",
     "vars", "dir", "format", "log", "info", "debug", "warning", "error", "append", "deepcopy", "copy",
     "save", "unwrap_model", "state_dict", "load_state_dict", "parameters", "named_parameters"}
)
_PREDICATE_PREFIXES = ("is_", "has_", "get_", "check_", "should_", "can_", "_is_", "_has_", "_get_", "_check_",
                       "log_", "_log", "save_", "_save", "print_", "count_", "num_")

CREATION_KINDS = ("construct", "load", "hub", "factory", "load_state_dict", "from_pretrained")
# Binding kinds that give a name another object than the one it held: a parameter rebound so
# (`model = deepcopy(model)`, `net = torch.load(path)`) is the callee's own object from then on, and
# its switches are not the caller's (set 10's ODFA: `model = deepcopy(model); model.eval()` before an
# attack step). A construction is not among them: `model = Wrapper(model)` switches the model it wraps.
FRESH_KINDS = ("copy", "load", "hub", "factory", "from_pretrained")


# Objects that are evaluated on purpose while another model trains: EMA / SWA copies, teachers,
# target networks, frozen reference models, the best checkpoint kept for comparison.
NOT_TRAINED = re.compile(
    r"(^|_)(ema|teacher|target|tgt|frozen|ref|reference|momentum|shadow|averaged|avg|swa|old|prev|previous|best|"
    r"infer|inference|export|exported|deploy|fixed|baseline|pretrained|orig|original|eval|evaluator|val)(_|$|\d)"
    r"|^(ema|teacher|target|frozen|swa|shadow)|(ema|teacher|target|_t|_tgt)$",
    re.IGNORECASE,
)




_BUILTIN_NAMES = frozenset(dir(builtins))
# a name that says it holds a model (an imported `net` / `model` object is still run as one): `MODEL_NAME`,
# imported above from `modemodel`, whose summaries use it too


def not_trained_name(key: str) -> bool:
    """`ema_model`, `self.teacher`, `target_net`: named as a model that is not the one trained."""
    return bool(NOT_TRAINED.search(key.rsplit(".", 1)[-1]))


def optimizer_like(recv: cst.CSTNode) -> bool:
    """`optimizer`, `self.opt`, `optimizers[i]`, `opt_g`, `scaler`: the receiver of a `.step()`
    that is an optimizer (or an AMP grad scaler) step, not a scheduler or environment step."""
    while isinstance(recv, cst.Subscript):
        recv = recv.value
    if isinstance(recv, cst.Attribute):
        name = recv.attr.value
    elif isinstance(recv, cst.Name):
        name = recv.value
    else:
        return False
    return bool(_OPTIMIZER.search(name)) and not _NOT_OPTIMIZER.search(name)


def train_flag(call: cst.Call) -> Optional[bool]:
    """`m.train()` -> True, `m.train(False)` -> False, `m.train(flag)` -> None."""
    arg = get_arg(call, "mode", 0)
    if arg is None:
        return True
    value = literal_value(arg.value)
    if value is True or value is False:
        return value
    if value is not NOT_LITERAL and isinstance(value, int):
        return bool(value)
    return None


def peel(expr: cst.CSTNode) -> cst.CSTNode:
    """`model.to(dev).cuda()` -> `model`; stops at a mode switch's receiver too."""
    while isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute) and expr.func.attr.value in MODE_PRESERVING:
        expr = expr.func.value
    return expr


def is_test_suite_file(path: str, module: Optional[cst.Module] = None) -> bool:
    """A test-suite file: `test_*.py`, `*_test.py`, `conftest.py`, or anything under a `tests/` /
    `test/` folder; but not a `test_*.py` / `*_test.py` outside such a folder that runs as a script
    (`module` given: a top-level `if __name__ == "__main__":` that does not start pytest or unittest;
    set 18's resnet1d trains and tests in `test_ray.py`)."""
    norm = "/" + path.replace("\\", "/")
    name = norm.rsplit("/", 1)[-1]
    if name == "conftest.py" or "/tests/" in norm or "/test/" in norm:
        return True
    if not (name.startswith("test_") or name.endswith("_test.py")):
        return False
    return module is None or not _runs_as_script(module)


def _runs_as_script(module: cst.Module) -> bool:
    for stmt in module.body:
        if (isinstance(stmt, cst.If) and isinstance(stmt.test, cst.Comparison) and isinstance(stmt.test.left, cst.Name)
                and stmt.test.left.value == "__name__"):
            runner = any(isinstance(n, cst.Call) and (dotted(n.func) or "") in ("pytest.main", "unittest.main")
                         for n in descendants(stmt.body))
            return not runner
    return False


def _identifier_key(key: cst.BaseExpression) -> Optional[str]:
    """The identifier a dict display's plain string key spells (`"model"`), else None (a bad escape
    such as `"\\N{NOTANAME}"` is None, not an error)."""
    if not isinstance(key, cst.SimpleString):
        return None
    try:
        value = key.evaluated_value
    except (SyntaxError, ValueError):
        return None
    return value if isinstance(value, str) and value.isidentifier() else None


def works_as_script(module: cst.Module, defs: Set[str], switches: Set[str]) -> bool:
    """The file does its work when run, not only when imported from: a top-level `if __name__ ==
    "__main__":` (not a test runner), a top-level loop, or a top-level statement that calls a function
    of the file, `print`, or a mode switch (`model.eval()`). A module of definitions, constants and
    set-up calls (`logging.basicConfig()`, `sys.path.append(...)`) does not."""
    if _runs_as_script(module):
        return True
    for stmt in module.body:
        if isinstance(stmt, (cst.For, cst.While)):
            return True
        if not isinstance(stmt, cst.SimpleStatementLine):
            continue
        for small in stmt.body:
            call = small.value if isinstance(small, cst.Expr) else None
            if not isinstance(call, cst.Call):
                continue
            func = call.func
            if isinstance(func, cst.Name) and (func.value in defs or func.value == "print"):
                return True
            if isinstance(func, cst.Attribute) and func.attr.value in switches:
                return True
    return False


# --------------------------------------------------------------------------------------------
# Events


@dataclass
class Step:
    """A training step reached in a scope: `node` is the call in the scope (the step itself or
    the file-local call that performs it), `inner` the `.backward()` / `.step()` call."""

    node: cst.CSTNode
    inner: cst.CSTNode
    shown: str
    kind: str  # "backward" | "optimizer"
    via: Tuple[str, ...]
    state: State
    loops: Tuple[cst.CSTNode, ...] = ()
    # the atoms the `if`s around it fix on the scope's parameters that nothing rebinds
    # (`if train: loss.backward()` -> (("train", "truthy", None, True),); `analysis.conditions`)
    guard: Guard = ()
    # the keys the step trains when a project summary says (what it runs outside no_grad, in the
    # caller's names); None: not known, every model used around the step may be
    trains: Optional[Tuple[str, ...]] = None
    # keys a project step's callee switches itself before its steps, on every path (its `at_step`
    # modes have no "entry"): what the caller left them in does not reach the step (SCAN's
    # `scan_train`: `if head_only: model.eval() else: model.train()`, then its loop's step)
    set_by_callee: Tuple[str, ...] = ()


@dataclass
class ModelCall:
    node: cst.Call
    key: str
    state: State
    no_grad: bool
    loops: Tuple[cst.CSTNode, ...] = ()
    # a call of a method of the model's module class that runs the model under its own no_grad /
    # inference_mode decorator without switching it (`model.get_embeddings(x)`; `project_call`)
    via_method: bool = False


@dataclass
class LocalCall:
    node: cst.Call
    callee: cst.FunctionDef
    mapping: Dict[str, Optional[str]]  # callee parameter -> caller key (None: not a plain name)
    state: State


@dataclass
class ProjectCall:
    """A call into a summarised function of the project (`modemodel.Effect`), with the state before it."""

    node: cst.Call
    effect: object
    state: State
    loops: Tuple[cst.CSTNode, ...] = ()
    no_grad: bool = False  # made under no_grad / inference_mode / after volatile=True


@dataclass
class Binding:
    node: cst.CSTNode
    kind: str  # "alias" | "copy" | a CREATION_KINDS value | "other"
    loops: Tuple[cst.CSTNode, ...]


def _returned(tokens: Iterable, call: cst.CSTNode, name: str) -> FrozenSet:
    """A file-local function's returned facts as seen at `call`: the callee's own entry state is
    whatever the caller bound, and an eval site inside it is reached through `name`."""
    out: Set = set()
    for t in tokens:
        if t is ENTRY:
            out.add(BOUND)
        elif isinstance(t, EvalSite):
            out.add(EvalSite(call, t.eval_node, t.shown, (name,) + t.via))
        else:
            out.add(t)
    return frozenset(out)


@dataclass
class ScopeFlow:
    node: cst.CSTNode
    name: str
    params: Tuple[str, ...]
    locals: FrozenSet[str]
    exit: State
    steps: List[Step] = field(default_factory=list)
    model_calls: List[ModelCall] = field(default_factory=list)
    local_calls: List[LocalCall] = field(default_factory=list)
    project_calls: List[ProjectCall] = field(default_factory=list)
    bindings: Dict[str, List[Binding]] = field(default_factory=dict)
    # id(call node) -> loops (outermost first) around a call that leaves something in eval mode
    site_loops: Dict[int, Tuple[cst.CSTNode, ...]] = field(default_factory=dict)
    no_grad_scope: bool = False  # decorated with @torch.no_grad() / @torch.inference_mode()
    has_optimizer_step: bool = False
    returns: FrozenSet = frozenset()  # facts about the returned object (ENTRY: a parameter or free name)
    # keys that take part in training-path computation (called outside no_grad, or handed to a
    # call we cannot follow), with the loops around that use
    trained: List[Tuple[str, Tuple[cst.CSTNode, ...]]] = field(default_factory=list)
    # the subset that is called (run forward) outside no_grad: `model(x)`, `self.net(x)`; not a
    # builtin (`enumerate(loader)`) nor an imported function not named as a model (`_plain_function`)
    forwarded: List[Tuple[str, Tuple[cst.CSTNode, ...]]] = field(default_factory=list)
    # keys run forward outside no_grad with a result used only detached (`analysis.detached`: a
    # frozen encoder feeding a probe), in neither list above, with the loops around that run
    detached: List[Tuple[str, Tuple[cst.CSTNode, ...]]] = field(default_factory=list)
    # key -> keys it was bound from (`ddp = DDP(model)`, `m = model.to(dev)`) and back
    aliases: Dict[str, Set[str]] = field(default_factory=dict)
    # `return args, model`: facts about each position of a returned tuple
    tuple_returns: Dict[int, FrozenSet] = field(default_factory=dict)
    # id(`.eval()` call of this scope) -> the flags of the `if`s around it, each with the value it
    # has there: `if args.tune: m.train() else: m.eval()` -> (("args.tune", False),) (`flag_tests`)
    site_tests: Dict[int, Tuple[Tuple[str, bool], ...]] = field(default_factory=dict)
    # id(call that leaves something in eval) -> its guard on the scope's fixed parameters (as `Step.guard`)
    site_guards: Dict[int, Guard] = field(default_factory=dict)
    fixed: FrozenSet[str] = frozenset()  # the parameters nothing in the scope rebinds
    replaced: FrozenSet[str] = frozenset()  # the parameters rebound to another object (FRESH_KINDS)

    def alias_names(self, key: str, hops: int = 2) -> Set[str]:
        """`key` and the names bound to or from it in this scope, `hops` bindings away
        (`test_model = model`, `ddp = DDP(model)`; two hops: `m = model; d = DDP(m)`)."""
        names = {key}
        for _ in range(hops):
            names |= {a for n in names for a in self.aliases.get(n, ())}
        return names


class _Flow:
    __slots__ = ("out", "brk", "cont", "ret")

    def __init__(self, out: Optional[State]):
        self.out = out
        self.brk: List[State] = []
        self.cont: List[State] = []
        self.ret: List[State] = []

    def absorb(self, other: "_Flow") -> None:
        self.brk += other.brk
        self.cont += other.cont
        self.ret += other.ret


# --------------------------------------------------------------------------------------------
# The file's functions and classes


class _Index:
    """Statement-level map of a module: scopes, nested functions, classes and methods."""

    def __init__(self, module: cst.Module):
        self.module = module
        self.parent: Dict[int, cst.CSTNode] = {}  # id(fn) -> enclosing scope (FunctionDef or Module)
        self.method_class: Dict[int, cst.ClassDef] = {}  # id(fn) -> class whose body defines it
        self.class_parent: Dict[int, cst.CSTNode] = {}  # id(class) -> enclosing scope
        self.defs: Dict[int, Dict[str, cst.FunctionDef]] = {}  # id(scope) -> name -> function
        self.classes: Dict[str, cst.ClassDef] = {}
        self.methods: Dict[int, Dict[str, cst.FunctionDef]] = {}
        self.functions: List[cst.FunctionDef] = []
        self.has_loop: Set[int] = set()  # ids of scopes with a for/while statement
        self.has_no_grad: Set[int] = set()  # ids of scopes with a `with <something no_grad-ish>`
        self._build()

    def _build(self) -> None:
        stack: List[Tuple[Sequence[cst.CSTNode], cst.CSTNode, Optional[cst.ClassDef]]] = [
            (self.module.body, self.module, None)
        ]
        while stack:
            body, scope, cls = stack.pop()
            for stmt in body:
                if isinstance(stmt, cst.FunctionDef):
                    self.functions.append(stmt)
                    self.parent[id(stmt)] = scope
                    if cls is not None:
                        self.method_class[id(stmt)] = cls
                        self.methods.setdefault(id(cls), {}).setdefault(stmt.name.value, stmt)
                    else:
                        self.defs.setdefault(id(scope), {}).setdefault(stmt.name.value, stmt)
                    stack.append((_suite_body(stmt.body), stmt, None))
                elif isinstance(stmt, cst.ClassDef):
                    self.classes.setdefault(stmt.name.value, stmt)
                    self.class_parent[id(stmt)] = scope
                    stack.append((_suite_body(stmt.body), scope, stmt))
                elif isinstance(stmt, cst.BaseCompoundStatement):
                    if isinstance(stmt, (cst.For, cst.While)):
                        self.has_loop.add(id(scope))
                    if isinstance(stmt, cst.With) and any(
                        _looks_no_grad(item.item) for item in stmt.items
                    ):
                        self.has_no_grad.add(id(scope))
                    for sub in _sub_bodies(stmt):
                        stack.append((sub, scope, cls))

    def method_owner(self, scope: cst.CSTNode) -> Optional[cst.FunctionDef]:
        """The method (function defined in a class body) that is `scope` or encloses it."""
        node = scope
        while isinstance(node, cst.FunctionDef):
            if id(node) in self.method_class:
                return node
            node = self.parent.get(id(node))
        return None

    def find_method(self, cls: cst.ClassDef, name: str, skip_self: bool = False, depth: int = 0) -> Optional[cst.FunctionDef]:
        if depth > 8:
            return None
        if not skip_self:
            found = self.methods.get(id(cls), {}).get(name)
            if found is not None:
                return found
        for base in cls.bases:
            if base.keyword is None and isinstance(base.value, cst.Name):
                bcls = self.classes.get(base.value.value)
                if bcls is not None and bcls is not cls:
                    found = self.find_method(bcls, name, False, depth + 1)
                    if found is not None:
                        return found
        return None


def _looks_no_grad(expr: cst.CSTNode) -> bool:
    if isinstance(expr, cst.Call):
        expr = expr.func
    if isinstance(expr, cst.Attribute):
        return expr.attr.value in _GRAD_CONTEXT_NAMES
    if isinstance(expr, cst.Name):
        return expr.value in _GRAD_CONTEXT_NAMES
    return False


def _suite_body(suite: cst.BaseSuite) -> Sequence[cst.CSTNode]:
    if isinstance(suite, cst.IndentedBlock):
        return suite.body
    return ()  # SimpleStatementSuite: no defs inside


def _sub_bodies(stmt: cst.BaseCompoundStatement) -> Iterator[Sequence[cst.CSTNode]]:
    if isinstance(stmt, cst.If):
        yield _suite_body(stmt.body)
        if stmt.orelse is not None:
            if isinstance(stmt.orelse, cst.If):
                yield (stmt.orelse,)
            else:
                yield _suite_body(stmt.orelse.body)
    elif isinstance(stmt, (cst.For, cst.While)):
        yield _suite_body(stmt.body)
        if stmt.orelse is not None:
            yield _suite_body(stmt.orelse.body)
    elif isinstance(stmt, (cst.Try, cst.TryStar)):
        yield _suite_body(stmt.body)
        for h in stmt.handlers:
            yield _suite_body(h.body)
        if stmt.orelse is not None:
            yield _suite_body(stmt.orelse.body)
        if stmt.finalbody is not None:
            yield _suite_body(stmt.finalbody.body)
    elif isinstance(stmt, cst.With):
        yield _suite_body(stmt.body)
    elif isinstance(stmt, cst.Match):
        for case in stmt.cases:
            yield _suite_body(case.body)


def _param_list(fn: cst.FunctionDef) -> Tuple[List[str], List[str], Set[str]]:
    """(positional parameter names, keyword-only names, all names)."""
    p = fn.params
    positional = [x.name.value for x in (*p.posonly_params, *p.params)]
    kwonly = [x.name.value for x in p.kwonly_params]
    names = set(positional) | set(kwonly)
    for star in (p.star_arg, p.star_kwarg):
        if isinstance(star, cst.Param):
            names.add(star.name.value)
    return positional, kwonly, names


# --------------------------------------------------------------------------------------------
# The analysis


MAX_DEPTH = 6
MAX_LOOP_PASSES = 6


class ModeFlow:
    """Per-file analysis, shared by the rules through `for_context(ctx)`; every scope is analysed
    at most once (memoised)."""

    def __init__(self, ctx):
        # A weak proxy: `for_context` caches this object under `ctx` in a WeakKeyDictionary, and a
        # strong reference back would keep every checked file's context and syntax tree alive for
        # the whole run (memory, and a full garbage collection that walks them all, again and again).
        self.ctx = weakref.proxy(ctx)
        self.module: cst.Module = ctx.module
        self._index: Optional[_Index] = None
        self._flows: Dict[int, ScopeFlow] = {}
        self._busy: Set[int] = set()
        self.pytest_file = is_test_suite_file(ctx.path, ctx.module)
        self._handed: Dict[int, Dict[int, Dict[str, Set[str]]]] = {}  # id(class) -> `handed_attributes`
        self._names_memo: Optional[Tuple[Optional[Dict[str, int]]]] = None  # `_script_names`

    # --- shared facts ----------------------------------------------------------------------------
    @property
    def index(self) -> _Index:
        if self._index is None:
            self._index = _Index(self.module)
        return self._index

    def line(self, node: cst.CSTNode) -> int:
        return self.ctx.line(node)

    def code(self, node: cst.CSTNode, limit: int = 60) -> str:
        text = " ".join(self.module.code_for_node(node).split())
        return text if len(text) <= limit else text[: limit - 3] + "..."

    def scopes(self) -> Iterator[cst.CSTNode]:
        yield self.module
        yield from self.index.functions

    def probes_inputs(self, flow: ScopeFlow) -> bool:
        """`input_gradient_probe` with this file's profile: the scope backpropagates only for a
        gradient on an input (a PGD attack called from the training and the test loop alike)."""
        fw = self.ctx.framework
        return input_gradient_probe(flow, fw.requires_grad_attr, fw.requires_grad_method, fw.requires_grad_tracks)

    def in_lightning_class(self, scope: cst.CSTNode) -> bool:
        method = self.index.method_owner(scope) if isinstance(scope, cst.FunctionDef) else None
        if method is None:
            return False
        return self.ctx.is_lightning_class(self.index.method_class[id(method)])

    def flow(self, scope: cst.CSTNode) -> Optional[ScopeFlow]:
        """The analysis of one scope; None while it is being computed (recursion) or too deep."""
        key = id(scope)
        found = self._flows.get(key)
        if found is not None:
            return found
        if key in self._busy or len(self._busy) >= MAX_DEPTH:
            return None
        self._busy.add(key)
        try:
            result = _ScopeAnalysis(self, scope).run()
        finally:
            self._busy.discard(key)
        self._flows[key] = result
        return result

    def handed_attributes(self, method: cst.FunctionDef) -> Dict[str, Set[str]]:
        """parameter -> the attributes of `self` that some `self.<method>(...)` call of a method of
        the same class hands it, directly or through a local of the caller bound from one
        (`model = self.accelerator.prepare(self.model)`; `self.model_wrapped = model`): names the
        parameter may share its object with. Read from the text, not from the callers' flows
        (the caller's analysis is what asks for this method's)."""
        cls = self.index.method_class.get(id(method))
        if cls is None:
            return {}
        table = self._handed.get(id(cls))
        if table is None:
            table = self._handed[id(cls)] = _handed_in_class(self.index, cls)
        return table.get(id(method), {})

    # --- call resolution -----------------------------------------------------------------------
    def imported_elsewhere(self, fn: cst.FunctionDef) -> bool:
        """This top-level function is in a module of a script folder (not in a package: its name has
        no dot, `index.module_name`) and another checked file imports it (or its module): its callers
        are those scripts, checked where they call it (`modemodel.Effect.infers` travels to them). A
        package's function is public API: callers outside the checked code may exist."""
        if id(fn) in self.index.method_class or "." in self.ctx.facts.modname:
            return False
        return self.ctx.classifier.index.imported_elsewhere(self.ctx.facts.modname, fn.name.value)

    def never_called(self, fn: cst.FunctionDef) -> bool:
        """This top-level function cannot run: its file does its work when run as a script
        (`works_as_script`), no checked file imports it or its module, and nothing in the file names
        it (set 19's NER-pytorch: an evaluation script whose `eval(model, ...)` calls are commented
        out). A function of a module that only defines things is API, and is not answered for."""
        if self.index.parent.get(id(fn)) is not self.module or id(fn) in self.index.method_class:
            return False
        if "." in self.ctx.facts.modname:
            return False  # a package's function is public API (as for `imported_elsewhere`)
        names = self._script_names()
        name = fn.name.value
        if names is None or self.ctx.classifier.index.imported_elsewhere(self.ctx.facts.modname, name):
            return False
        return names.get(name, 0) <= 1  # its own `def` name is the one occurrence

    def _script_names(self) -> Optional[Dict[str, int]]:
        """None when the file does not work as a script (`works_as_script`); else how often each name
        occurs in it, not counting attribute names (`model.eval()` does not name `eval`). Computed once
        per file: `never_called` asks for every caller-less function."""
        if self._names_memo is None:
            fw = self.ctx.framework
            names: Optional[Dict[str, int]] = None
            if works_as_script(self.module, set(self.index.defs.get(id(self.module), ())),
                               {fw.train_method, fw.eval_method}):
                nodes = list(descendants(self.module))
                attrs = {id(n.attr) for n in nodes if isinstance(n, cst.Attribute)}
                names = {}
                for n in nodes:
                    if isinstance(n, cst.Name) and id(n) not in attrs:
                        names[n.value] = names.get(n.value, 0) + 1
            self._names_memo = (names,)
        return self._names_memo[0]

    def project_effect(self, call: cst.Call, func: Optional[cst.BaseExpression] = None, receiver_class: str = ""):
        """The `modemodel.Effect` of a call into a summarised function of the project (this file
        included: methods of wrapper objects), or None. `func`: the callee when the call goes through
        a name bound to it (`fit = runner.fit; fit(batches)`). `receiver_class`: the class the
        receiver was built from in the caller's scope: when it is a checked class, the call is its method
        (not a namesake found by name: set 11's DrQA, `train_loss = utils.AverageMeter()`, whose `train_loss.update(...)` was
        read as the reader's training `update`)."""
        func = call.func if func is None else func
        index = self.ctx.classifier.index
        last = func.attr.value if isinstance(func, cst.Attribute) else func.value if isinstance(func, cst.Name) else None
        if last is None or last not in index.step_or_switch_names():
            return None
        qual = self.ctx.resolve(func)
        if qual is None and isinstance(func, cst.Attribute) and isinstance(func.value, cst.Call):
            made = func.value.func  # `Ranker().rank(net, loader)`: the method of the class constructed
            built = self.ctx.resolve(made) if isinstance(made, (cst.Name, cst.Attribute)) else None
            qual = f"{built}.{last}" if built is not None else None
        if qual is None:
            return None
        modname = self.ctx.facts.modname
        if isinstance(func, cst.Name):
            if "." not in qual and self.ctx.facts.stars and qual not in self.ctx.facts.functions:
                return index.star_effect(self.ctx.facts, qual)
            return index.effect(qual if "." in qual else f"{modname}.{qual}")
        head = qual.split(".")[0]
        if self.ctx.is_imported(head) or qual.startswith(modname + "."):
            found = index.effect(qual)
            if found is not None:
                return found
        located = index.locate(receiver_class if "." in receiver_class else f"{modname}.{receiver_class}") \
            if receiver_class and isinstance(func, cst.Attribute) else None
        if located is not None:  # a checked class: its own method (or none), not a namesake
            return index.effect(f"{located[0].modname}.{located[1]}.{last}")
        given = None if any(a.star for a in call.args) else len(call.args)
        return index.method_effect(last, self.ctx.facts.aliases.values(), given)

    def project_defines(self, func: cst.Name) -> bool:
        """The bare callee `func` is a top-level function of a checked file (`ProjectIndex.defines`)."""
        qual = self.ctx.resolve(func)
        if qual is None:
            return False
        return self.ctx.classifier.index.defines(qual if "." in qual else f"{self.ctx.facts.modname}.{qual}")

    def quiet_module_method(self, effect) -> bool:
        """`effect` is a method of a module class of the project that runs the module (or a submodule,
        `self.encoder`) under no_grad in the mode it arrived in (`ProjectIndex.runs_its_module_quietly`):
        `@torch.inference_mode() def get_embeddings(self, x): return self.encoder(x)` (set 10's
        pytorch-scarf). Calling it is an inference call of the receiver, like `with torch.no_grad():
        model(x)`."""
        index = self.ctx.classifier.index
        return index.runs_its_module_quietly(effect) and self.ctx.classifier.is_module_base(
            effect.qualname.rpartition(".")[0])

    def may_step(self, calls: Iterable[cst.Call]) -> bool:
        """Whether any scope of this file, whose calls are `calls`, can have a training `Step`: each
        is made by a call of a backward method, the optimizer step or a backward function, a
        `steps_loss` call (`_ScopeAnalysis.call`), or a project call whose effect steps or returns a
        step function (`project_call`, `_step_fns`); a local call's steps are its callee's. Lets a
        rule skip the flows of a file that cannot step (transformers' model files: every `__init__`
        and `forward` builds something, so MDL302 computed flows for nearly all of them). Every step
        field of every profile is tied to it by tests/test_modeflow_steps.py."""
        fw = self.ctx.framework
        names = fw.backward_methods | fw.backward_call_last_names | {fw.optimizer_step_method}
        project = self.ctx.classifier.index.step_or_switch_names()
        for call in calls:
            last = terminal_name(call.func)
            if last in names or (isinstance(call.func, cst.Name) and steps_loss(call)):
                return True
            effect = self.project_effect(call) if last in project else None
            if effect is not None and (effect.steps or "step_fn" in effect.returns):
                return True
        return False

    def kept_arguments(self, call: cst.Call) -> Dict[str, str]:
        """`Learner(net, opt)` of a checked class whose `__init__` keeps parameters as attributes of
        the same name: {attribute: the key the caller passes for it} (`ProjectIndex.kept_arguments`)."""
        func = call.func
        last = func.attr.value if isinstance(func, cst.Attribute) else func.value if isinstance(func, cst.Name) else ""
        if not last[:1].isupper():
            return {}
        qual = self.ctx.resolve(func)
        if not qual:
            return {}
        args: List[Optional[str]] = []
        for arg in call.args:
            if arg.star:
                break
            if arg.keyword is None:
                args.append(key_of(peel(arg.value)))
        kws = {a.keyword.value: key_of(peel(a.value)) for a in call.args if a.keyword is not None}
        return self.ctx.classifier.index.kept_arguments(qual, args, kws)

    def resolve_call(self, scope: cst.CSTNode, call: cst.Call,
                     func: Optional[cst.BaseExpression] = None) -> Optional[Tuple[cst.FunctionDef, Optional[str]]]:
        """(file-local function, receiver key bound to its first parameter or None); `func` as in
        `project_effect`."""
        func = call.func if func is None else func
        index = self.index
        if isinstance(func, cst.Name):
            name = func.value
            node = scope
            while node is not None:
                found = index.defs.get(id(node), {}).get(name)
                if found is not None:
                    return found, None
                if node is self.module:
                    break
                node = index.parent.get(id(node))
            return None
        if not isinstance(func, cst.Attribute):
            return None
        method = index.method_owner(scope) if isinstance(scope, cst.FunctionDef) else None
        if method is None:
            return None
        positional, _, _ = _param_list(method)
        self_name = positional[0] if positional else None
        if self_name is None or any(isinstance(d.decorator, cst.Name) and d.decorator.value == "staticmethod" for d in method.decorators):
            return None
        cls = index.method_class[id(method)]
        recv = func.value
        if isinstance(recv, cst.Name) and recv.value == self_name:
            found = index.find_method(cls, func.attr.value)
        elif isinstance(recv, cst.Call) and isinstance(recv.func, cst.Name) and recv.func.value == "super":
            found = index.find_method(cls, func.attr.value, skip_self=True)
        else:
            return None
        if found is None:
            return None
        return found, self_name


class _ScopeAnalysis:
    def __init__(self, mf: ModeFlow, scope: cst.CSTNode):
        self.mf = mf
        self.ctx = mf.ctx
        self.scope = scope
        self.loops: List[cst.CSTNode] = []
        self.no_grad = 0
        self._steps: Dict[Tuple[int, int], Step] = {}
        self._model_calls: Dict[int, ModelCall] = {}
        self._local_calls: Dict[int, LocalCall] = {}
        self._project_calls: Dict[int, ProjectCall] = {}
        self._bindings: Dict[Tuple[str, int], Binding] = {}
        self.site_loops: Dict[int, Tuple[cst.CSTNode, ...]] = {}
        self.atoms: List[Atom] = []  # what the enclosing `if`s fix, with its value there (`conditions`)
        self.site_tests: Dict[int, Tuple[Tuple[str, bool], ...]] = {}
        self.site_guards: Dict[int, Guard] = {}
        self._literal_attrs: Optional[Dict[str, Tuple[int, object]]] = None  # (`_flag_attributes`)
        self._statement_of: Optional[Dict[int, int]] = None  # id(node) -> index of its body statement
        self._parents: Optional[Dict[int, cst.CSTNode]] = None  # (`_detached`, built on first use)
        self._detached_runs: List[Tuple[str, Tuple[cst.CSTNode, ...]]] = []
        self.has_optimizer_step = False
        self._returns: Set = set()
        self._bound: Set[str] = set()  # plain names bound in this scope (its locals)
        self._trained: Dict[Tuple[str, int], Tuple[str, Tuple[cst.CSTNode, ...]]] = {}
        self._forwarded: Dict[Tuple[str, int], Tuple[str, Tuple[cst.CSTNode, ...]]] = {}
        self._aliases: Dict[str, Set[str]] = {}
        # key -> the one key each of its bindings so far was an alias of (None: anything else)
        self._sources: Dict[str, Set[Optional[str]]] = {}
        # local -> the class every binding of it so far constructs (`train_loss = utils.AverageMeter()`),
        # "" once bound otherwise: its methods are that class's, not a namesake's (`project_effect`)
        self._built: Dict[str, str] = {}
        self._step_fns: Set[str] = set()  # names bound to a callable that runs a training step
        self._bound_methods: Dict[str, cst.Attribute] = {}  # `fit = runner.fit`: name -> the method
        self._kept: Dict[str, Dict[str, str]] = {}  # wrapper object -> {its attribute: the key it keeps}
        self._tuple_returns: Dict[int, Set] = {}
        # pre-0.4 inference: `Variable(x, volatile=True)` seen earlier in the scope works as no_grad
        self.volatile = False
        self._saved: Dict[str, Tuple[str, FrozenSet]] = {}  # `was = model.training`: flag -> (key, facts then)
        # a local bound by one statement to a tuple / list display (`params = (loader, model, opt)`;
        # None: bound otherwise or by more than one statement), to expand `train_epoch(*params)`
        self._displays: Dict[str, Optional[cst.CSTNode]] = {}
        # `if i == len(loader) - 1:` as the last statement of `for i, x in enumerate(loader)`: its arm runs
        # on the last iteration only, so what it leaves flows out of the loop, not into the next pass
        self._final_ifs: Set[int] = set()
        if isinstance(scope, cst.FunctionDef):
            positional, _, names = _param_list(scope)
            self.params = tuple(positional) + tuple(sorted(names - set(positional)))
            self.name = scope.name.value
            self.no_grad_scope = any(self._is_no_grad(d.decorator) for d in scope.decorators)
            for param, attrs in mf.handed_attributes(scope).items():
                # `self._run_epoch(model, ...)` with `model = prepare(self.model)`: `model.train()`
                # here may switch `self.model` back (transformers' Trainer, tuning set)
                for attr in attrs:
                    self._aliases.setdefault(param, set()).add(attr)
                    self._aliases.setdefault(attr, set()).add(param)
        else:
            self.params = ()
            self.name = "<module>"
            self.no_grad_scope = False

    # --- driver --------------------------------------------------------------------------------
    def run(self) -> ScopeFlow:
        if isinstance(self.scope, cst.FunctionDef):
            flow = self.suite(self.scope.body, {})
        else:
            flow = self.block(self.scope.body, {})
        exit_state = join(flow.out, *flow.ret) or {}
        fixed = frozenset(self.params) - self._bound
        mode_attr = "." + self.ctx.framework.mode_attr
        mode_attrs = frozenset(f"{p}{mode_attr}" for p in fixed)
        # and the mode flag of an attribute of one (`self.model.training`, from a callee's
        # `if not model.training: return` handed `self.model`)
        mode_of_part = lambda key: key.endswith(mode_attr) and key.partition(".")[0] in fixed and key.count(".") > 1
        steps = [_keep_guard(st, fixed | mode_attrs, mode_of_part) for st in self._steps.values()]
        # `if self.is_test: self.dqn.eval()`: a flag attribute of a parameter that this scope never assigns
        assigned = {key for key, _ in self._bindings}
        attrs_of_fixed = lambda key: key.partition(".")[0] in fixed and key not in assigned
        bindings: Dict[str, List[Binding]] = {}
        for (key, _), b in self._bindings.items():
            bindings.setdefault(key, []).append(b)
        return ScopeFlow(
            node=self.scope,
            name=self.name,
            params=self.params,
            locals=frozenset(self._bound - set(self.params)) if isinstance(self.scope, cst.FunctionDef) else frozenset(),
            exit=exit_state,
            steps=steps,
            model_calls=list(self._model_calls.values()),
            local_calls=list(self._local_calls.values()),
            project_calls=list(self._project_calls.values()),
            bindings=bindings,
            site_loops=self.site_loops,
            site_tests=self.site_tests,
            site_guards={k: _fixed_atoms(g, fixed, attrs_of_fixed) for k, g in self.site_guards.items()},
            fixed=fixed,
            replaced=frozenset(k for k in self.params if any(b.kind in FRESH_KINDS for b in bindings.get(k, ()))),
            no_grad_scope=self.no_grad_scope,
            has_optimizer_step=self.has_optimizer_step,
            returns=frozenset(self._returns),
            trained=list(self._trained.values()),
            forwarded=list(self._forwarded.values()),
            detached=self._detached_runs,
            aliases=self._aliases,
            tuple_returns={i: frozenset(v) for i, v in self._tuple_returns.items()},
        )

    # --- statements ----------------------------------------------------------------------------
    @staticmethod
    def _sequence(items: Sequence[cst.CSTNode], state: Optional[State], step) -> _Flow:
        """Run `step` over statements in order, stopping once no path falls through."""
        flow = _Flow(state)
        for item in items:
            if flow.out is None:
                break
            sub = step(item, flow.out)
            flow.absorb(sub)
            flow.out = sub.out
        return flow

    def block(self, stmts: Sequence[cst.CSTNode], state: Optional[State]) -> _Flow:
        """The statements in order; after `if <test>: return ...` (a body that never falls through, no
        `else`) the rest runs under the test's other arm, as if it were the `else` (`if not
        model.training: return loss`, then the step: the step runs only in training mode; set 18's
        disentangling-vae evaluates through a loss whose step is behind such a return)."""
        flow = _Flow(state)
        pushed = 0
        try:
            for stmt in stmts:
                if flow.out is None:
                    break
                sub = self.statement(stmt, flow.out)
                flow.absorb(sub)
                flow.out = sub.out
                if isinstance(stmt, cst.If) and stmt.orelse is None and _ends_cst(stmt.body):
                    fixed = atoms_cst(stmt.test, False)
                    self.atoms.extend(fixed)
                    pushed += len(fixed)
        finally:
            if pushed:
                del self.atoms[len(self.atoms) - pushed:]
        return flow

    def suite(self, suite: cst.BaseSuite, state: State) -> _Flow:
        if isinstance(suite, cst.SimpleStatementSuite):
            return self._sequence(suite.body, state, self.small)
        return self.block(suite.body, state)

    def statement(self, stmt: cst.CSTNode, state: State) -> _Flow:
        if isinstance(stmt, cst.SimpleStatementLine):
            return self._sequence(stmt.body, state, self.small)
        if isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
            self._bound.add(stmt.name.value)
            return _Flow(state)
        if isinstance(stmt, cst.If):
            return self.if_(stmt, state)
        if isinstance(stmt, cst.For):
            state = self.expr(stmt.iter, state)
            return self.loop(stmt, state)
        if isinstance(stmt, cst.While):
            return self.loop(stmt, state)
        if isinstance(stmt, (cst.Try, cst.TryStar)):
            return self.try_(stmt, state)
        if isinstance(stmt, cst.With):
            entered = 0
            for item in stmt.items:
                state = self.expr(item.item, state)
                if self._is_no_grad(item.item):
                    entered += 1
                if item.asname is not None:
                    state = self.bind_target(item.asname.name, None, state, stmt)
            self.no_grad += entered
            try:
                return self.suite(stmt.body, state)
            finally:
                self.no_grad -= entered
        if isinstance(stmt, cst.Match):
            state = self.expr(stmt.subject, state)
            out = _Flow(state)
            outs: List[Optional[State]] = [state]
            for case in stmt.cases:
                sub = self.suite(case.body, state)
                out.absorb(sub)
                outs.append(sub.out)
            out.out = join(*outs)
            return out
        return _Flow(state)

    def if_(self, stmt: cst.If, state: State) -> _Flow:
        state = self.expr(stmt.test, state)
        test = stmt.test
        if isinstance(test, cst.Name) and test.value in self._saved and stmt.orelse is None:
            # `if was_training: model.train()`: afterwards the model has the mode it had when saved
            body = self.suite(stmt.body, state)
            key, tokens = self._saved[test.value]
            out = _Flow(assign(body.out, key, tokens) if body.out is not None else state)
            out.absorb(body)
            return out
        body = self._under(test, True, lambda: self.suite(stmt.body, state))
        if id(stmt) in self._final_ifs and body.out is not None:
            body.brk.append(body.out)  # the last iteration's arm: the loop ends after it
            body.out = None
        if stmt.orelse is None:
            other = _Flow(state)
        elif isinstance(stmt.orelse, cst.If):
            other = self._under(test, False, lambda: self.if_(stmt.orelse, state))
        else:
            other = self._under(test, False, lambda: self.suite(stmt.orelse.body, state))
        out = _Flow(join(body.out, other.out))
        out.absorb(body)
        out.absorb(other)
        return out

    def _under(self, test: cst.CSTNode, arm: bool, run) -> _Flow:
        """Run one arm of an `if`, noting the atoms its test fixes there (`conditions.atoms_cst`)
        for the eval sites and training steps made in it."""
        fixed = atoms_cst(test, arm)
        self.atoms.extend(fixed)
        try:
            return run()
        finally:
            del self.atoms[len(self.atoms) - len(fixed):]

    def note_site(self, call: cst.Call, loops: Tuple[cst.CSTNode, ...]) -> None:
        """A call that leaves something in eval mode: the loops and tests around it."""
        self.site_loops[id(call)] = loops
        self.site_tests[id(call)] = _flags(self.atoms)
        self.site_guards[id(call)] = tuple(self.atoms)

    def loop(self, stmt, state: State) -> _Flow:
        self.loops.append(stmt)
        last = stmt.body.body[-1] if isinstance(stmt, cst.For) and isinstance(stmt.body, cst.IndentedBlock) else None
        if isinstance(last, cst.If) and last_iteration_test(stmt, last.test, self.scope):
            self._final_ifs.add(id(last))
        try:
            head = state
            result = _Flow(state)
            body: _Flow = _Flow(state)
            for _ in range(MAX_LOOP_PASSES):
                s = head
                if isinstance(stmt, cst.While):
                    s = self.expr(stmt.test, s)
                else:
                    s = self.bind_target(stmt.target, None, s, stmt)
                body = self.suite(stmt.body, s)
                new_head = join(state, body.out, *body.cont)
                if new_head == head:
                    break
                head = new_head
        finally:
            self.loops.pop()
        infinite = isinstance(stmt, cst.While) and literal_value(stmt.test) is True
        exits: List[Optional[State]] = [] if infinite else [head]
        if stmt.orelse is not None and not infinite:
            other = self.suite(stmt.orelse.body, head)
            result.absorb(other)
            exits = [other.out]
        result.out = join(*exits, *body.brk)
        result.ret += body.ret
        return result

    def try_(self, stmt, state: State) -> _Flow:
        body = self.suite(stmt.body, state)
        result = _Flow(None)
        result.absorb(body)
        handler_entry = join(state, body.out, *body.ret) or state
        outs: List[Optional[State]] = []
        if stmt.orelse is not None and body.out is not None:
            other = self.suite(stmt.orelse.body, body.out)
            result.absorb(other)
            outs.append(other.out)
        else:
            outs.append(body.out)
        for h in stmt.handlers:
            if h.type is not None:
                handler_entry = self.expr(h.type, handler_entry)
            sub = self.suite(h.body, handler_entry)
            result.absorb(sub)
            outs.append(sub.out)
        out = join(*outs)
        if stmt.finalbody is not None:
            # `finally` runs on every way out; analysed once on the join of them all (a may-analysis)
            fin_entry = join(out, *result.brk, *result.cont, *result.ret) or handler_entry
            fin = self.suite(stmt.finalbody.body, fin_entry)
            after = [fin.out] if fin.out is not None else []
            result.brk = after if result.brk else []
            result.cont = list(after) if result.cont else []
            result.ret = list(after) if result.ret else []
            result.absorb(fin)
            out = fin.out if out is not None else None
        result.out = out
        return result

    def small(self, node: cst.CSTNode, state: State) -> _Flow:
        if isinstance(node, cst.Expr):
            return _Flow(self.expr(node.value, state))
        if isinstance(node, cst.Assign):
            state = self.expr(node.value, state)
            for t in node.targets:
                state = self.bind_target(t.target, node.value, state, node)
            return _Flow(state)
        if isinstance(node, cst.AnnAssign):
            if node.value is not None:
                state = self.expr(node.value, state)
                state = self.bind_target(node.target, node.value, state, node)
            return _Flow(state)
        if isinstance(node, cst.AugAssign):
            if isinstance(node.target, cst.Name):
                self._bound.add(node.target.value)
            return _Flow(self.expr(node.value, state))
        if isinstance(node, cst.Return):
            if node.value is not None:
                state = self.expr(node.value, state)
                self._returns.update(self.value_of(node.value, state)[0])
                if isinstance(node.value, cst.Tuple):
                    self._note_tuple_return(node.value, state)
            flow = _Flow(None)
            flow.ret.append(state)
            return flow
        if isinstance(node, cst.Raise):
            if node.exc is not None:
                self.expr(node.exc, state)
            return _Flow(None)
        if isinstance(node, cst.Break):
            flow = _Flow(None)
            flow.brk.append(state)
            return flow
        if isinstance(node, cst.Continue):
            flow = _Flow(None)
            flow.cont.append(state)
            return flow
        if isinstance(node, cst.Assert):
            if literal_value(node.test) in (False, None):  # (`0`, `0.0` compare equal to False)
                return _Flow(None)  # `else: assert False`, an unreachable arm: no path goes on
            return _Flow(self.expr(node.test, state))
        if isinstance(node, cst.Del):
            return _Flow(state)
        return _Flow(state)

    # --- bindings ------------------------------------------------------------------------------
    def bind_target(self, target: cst.CSTNode, value: Optional[cst.CSTNode], state: State, node: cst.CSTNode) -> State:
        key = key_of(target)
        if key is not None:
            if isinstance(target, cst.Name):
                self._bound.add(key)
                self._note_saved_or_step_fn(key, value, state)
                self._note_display(key, value)
            if value is not None and self._handed_back(key, value):
                tokens, kind = get(state, key), "alias"
            else:
                tokens, kind = self.value_of(value, state) if value is not None else (frozenset({BOUND}), "other")
            sources = alias_sources(value) if value is not None else []
            self._sources.setdefault(key, set()).update(sources if len(sources) == 1 else [None])
            if isinstance(target, cst.Name):
                built = self.ctx.resolve(value.func) if isinstance(value, cst.Call) else None
                built = built if built and built.rsplit(".", 1)[-1][:1].isupper() else ""
                self._built[key] = built if self._built.get(key, built) == built else ""
            for source in sources:
                if source != key:
                    self._aliases.setdefault(key, set()).add(source)
                    self._aliases.setdefault(source, set()).add(key)
            self._bindings[(key, id(node))] = Binding(node, kind, tuple(self.loops))
            self._note_wrapper(key, value)
            return assign(state, key, tokens)
        if isinstance(target, (cst.Tuple, cst.List)):
            values: Optional[Sequence[cst.CSTNode]] = None
            if (
                isinstance(value, cst.Call)
                and isinstance(value.func, cst.Attribute)
                and value.func.attr.value == "prepare"
                and len(value.args) == len(target.elements)
                and not any(a.star for a in value.args)
            ):
                values = [a.value for a in value.args]  # model, opt = accelerator.prepare(model, opt)
            elif isinstance(value, (cst.Tuple, cst.List)) and len(value.elements) == len(target.elements):
                values = [e.value for e in value.elements]
            returned = self._returned_tuple(value) if values is None and isinstance(value, cst.Call) else {}
            for i, el in enumerate(target.elements):
                if returned.get(i) and key_of(el.value) is not None:
                    state = self._bind_facts(el.value, returned[i], state, node)
                    continue
                if values is None and not returned and key_of(el.value) and self._handed_back(key_of(el.value), value):
                    # `model, opt, dl = make_private(module=model, ...)`
                    state = self.bind_target(el.value, value, state, node)
                    continue
                state = self.bind_target(el.value, values[i] if values else None, state, node)
        elif isinstance(target, cst.StarredElement):
            state = self.bind_target(target.value, None, state, node)
        return state

    def _note_display(self, name: str, value: Optional[cst.CSTNode]) -> None:
        display = value if isinstance(value, (cst.Tuple, cst.List)) and not any(
            isinstance(e, cst.StarredElement) for e in value.elements) else None
        if isinstance(value, cst.Dict) and value.elements and all(
                isinstance(e, cst.DictElement) and _identifier_key(e.key) for e in value.elements):
            display = value  # `kwargs = {"model": model, ...}`, for `run(**kwargs)`
        if name in self._displays and self._displays[name] is not display:
            display = None  # (the loop passes see the same node again)
        self._displays[name] = display

    def arguments(self, call: cst.Call) -> Sequence[cst.Arg]:
        """The call's arguments with `*name` (`**name`) expanded when `name` is a tuple or list display
        (a dict display with string keys) bound once here (pycls's `params = (loader, model, ema, ...); train_epoch(*params, epoch)`: without it the
        callee's `model.train()` mapped to nothing, and its step seemed to train a model in eval)."""
        if not any(a.star and isinstance(a.value, cst.Name) for a in call.args):
            return call.args
        out: List[cst.Arg] = []
        for a in call.args:
            display = self._displays.get(a.value.value) if a.star and isinstance(a.value, cst.Name) else None
            if a.star == "*" and isinstance(display, (cst.Tuple, cst.List)):
                out.extend(cst.Arg(value=e.value) for e in display.elements)
            elif a.star == "**" and isinstance(display, cst.Dict):
                # `learning_kwargs = {"model": model, ...}; run(opts=..., **learning_kwargs)` (set 20's RecVAE)
                out.extend(cst.Arg(value=e.value, keyword=cst.Name(_identifier_key(e.key))) for e in display.elements)
            else:
                out.append(a)
        return out

    def _handed_back(self, key: str, value: Optional[cst.CSTNode]) -> bool:
        """`model = convert_syncbn_model(model)`, `model, opt, dl = engine.make_private(module=model,
        ...)`: a function outside the project (lower-case: not a class being built) is handed the model
        and its result is bound back to the model's name: the same model, converted or wrapped in
        place, in the mode it had (a project function is followed instead; a mode switch is not this)."""
        if not isinstance(value, cst.Call) or not any(key_of(peel(a.value)) == key for a in value.args):
            return False
        func = value.func
        last = func.attr.value if isinstance(func, cst.Attribute) else func.value if isinstance(func, cst.Name) else ""
        if not last[:1].islower() or last in _WRAPPER_LAST or last in (self.ctx.framework.train_method,
                                                                         self.ctx.framework.eval_method):
            return False  # (wrappers and `deepcopy` are value_of's: a copy is another model)
        if self.creation_kind(value) is not None:
            return False
        return self.mf.resolve_call(self.scope, value) is None and self.mf.project_effect(value) is None

    def _note_saved_or_step_fn(self, name: str, value: Optional[cst.CSTNode], state: State) -> None:
        self._saved.pop(name, None)
        self._step_fns.discard(name)
        self._bound_methods.pop(name, None)
        if isinstance(value, cst.Attribute):
            self._bound_methods[name] = value
        src = key_of(value)
        attr = "." + self.ctx.framework.mode_attr
        if src is not None and src.endswith(attr):
            owner = src[: -len(attr)]
            self._saved[name] = (owner, get(state, owner))
        elif isinstance(value, cst.Call):
            effect = self.mf.project_effect(value)
            if effect is not None and "step_fn" in effect.returns:
                self._step_fns.add(name)

    def value_of(self, value: cst.CSTNode, state: State) -> Tuple[FrozenSet, str]:
        """The facts a key takes when bound to `value`, and the kind of binding."""
        expr = value
        while True:
            k = key_of(expr)
            if k is not None:
                if isinstance(expr, cst.Attribute) and expr.attr.value in self.ctx.framework.tensor_value_attrs:
                    return frozenset({BOUND}), "other"  # `embs = model.decoder.weight.data.T`: a tensor (set 20's RecVAE)
                return get(state, k), "alias"
            if isinstance(expr, cst.IfExp):
                a, ka = self.value_of(expr.body, state)
                b, kb = self.value_of(expr.orelse, state)
                return a | b, ka if ka == kb else "other"
            if not isinstance(expr, cst.Call):
                return frozenset({BOUND}), "other"
            func = expr.func
            if isinstance(func, cst.Attribute) and self.own_method(expr) is None:
                attr = func.attr.value
                if attr == "eval" and not expr.args:
                    return frozenset({EvalSite(expr, expr, self.mf.code(expr))}), "alias"
                if attr == "train":
                    flag = train_flag(expr)
                    if flag is False:
                        return frozenset({EvalSite(expr, expr, self.mf.code(expr))}), "alias"
                    return frozenset({TRAIN if flag else UNKNOWN}), "alias"
                if attr in MODE_PRESERVING:
                    expr = func.value
                    continue
                if self.ctx.framework.loads_pretrained_model(dotted(func) or f"?.{attr}"):
                    own = self.own_loader(func)
                    if own is not None:  # the project's own `from_pretrained`: what it returns
                        return (self.returned(expr, own) if own.returns else frozenset({BOUND})), "other"
                    return frozenset({Created("from_pretrained", expr, self.mf.code(expr))}), "from_pretrained"
            resolved = self.mf.resolve_call(self.scope, expr)
            if resolved is not None:  # `model = load_model(path)`: what the function returns
                summary = self.mf.flow(resolved[0])
                if summary is None or not summary.returns:
                    return frozenset({BOUND}), "other"
                name = resolved[0].name.value
                return _returned(summary.returns, expr, name), "other"
            kind = self.creation_kind(expr)
            if kind == "construct":
                inner = self.wrapped_eval(expr, state)
                if inner:  # `search = BeamSearch(model)` around a model already in eval mode
                    return inner, "alias"
            if kind is not None:
                return frozenset({Created(kind, expr, self.mf.code(expr))}), kind
            effect = self.mf.project_effect(expr)
            if effect is not None and effect.returns:
                return self.returned(expr, effect), "other"
            last = func.attr.value if isinstance(func, cst.Attribute) else func.value if isinstance(func, cst.Name) else None
            if last not in _WRAPPER_LAST:  # `DistributedDataParallel as DDP`: the imported name's last part
                last = (self.ctx.resolve(func) or "").rsplit(".", 1)[-1] or last
            if last in _WRAPPER_LAST and expr.args and not expr.args[0].star and expr.args[0].keyword is None:
                inner_key = key_of(peel(expr.args[0].value))
                if inner_key is None and last != "deepcopy" and isinstance(expr.args[0].value, cst.Call):
                    expr = expr.args[0].value  # `DataParallel(Net())`: the facts of the wrapped construction
                    continue
                tokens = get(state, inner_key) if inner_key else frozenset({BOUND})
                return tokens, ("copy" if last == "deepcopy" else "alias")
            return frozenset({BOUND}), "other"

    def loaded_into(self, key: Optional[str], call: cst.Call, state: State) -> State:
        """`key.load_state_dict(...)` / `load_checkpoint(key, path)`: a model made by a call we cannot
        read (`build_detector(cfg)`) is a fresh model given weights, in training mode."""
        if key is None:
            return state
        tokens = get(state, key)
        if BOUND not in tokens:
            return state
        return assign(state, key, (tokens - {BOUND}) | {Created("load_state_dict", call, self.mf.code(call))})

    def own_loader(self, func: cst.Attribute):
        """The summary of `Cls.from_pretrained` when a checked class defines (or inherits from a checked
        base) that method itself, else None. Such a loader is the project's code, not the framework's:
        upstream19's hyena-dna builds `HyenaDNAModel(...)` in its own classmethod, loads the weights and
        returns it in training mode, which the framework loader's eval mode hid."""
        qual = self.ctx.resolve(func.value)
        index = self.ctx.classifier.index
        if not qual or index.bases_of(qual) is None:
            return None
        return index.effect(f"{qual}.{func.attr.value}")

    def wrapped_eval(self, call: cst.Call, state: State) -> FrozenSet:
        """The eval facts of a model argument that is in eval mode on every path (a wrapper built
        around it runs it in that mode), else empty. The argument is the model itself (a name, or
        `self.net`) or a key switched under its own name (`model.decoder.eval()`); an attribute that only inherits
        its parent's facts is read off the model, not the model (`Probe(encoder.n_features, 10)`:
        a new head sized from a frozen encoder, not a wrapper of it; measuring set 4's SimCLR
        linear probe took the probe for the encoder in eval)."""
        for arg in call.args:
            key = key_of(peel(arg.value))
            if key is not None and (_whole_model(key) or key in state):
                tokens = get(state, key)
                if _switched_to_eval(tokens):
                    return tokens
        return frozenset()

    def returned(self, call: cst.Call, effect) -> FrozenSet:
        """Facts of a model returned by a project helper in another file (`net = restore_from(p)`)."""
        out: Set = set()
        for r in effect.returns:
            if r == "from_pretrained":
                out.add(Created("from_pretrained", call, self.mf.code(call)))
            elif r == "load":  # weights loaded into a new model: it is in training mode (the summary kind
                # also covers `return torch.load(path)`, a whole model, which it does not tell apart)
                out.add(Created("load_state_dict", call, self.mf.code(call)))
            elif r == "eval":
                out.add(EvalSite(call, call, self.mf.code(call), (effect.qualname.rsplit(".", 1)[-1],),
                                 f"`{effect.qualname}`"))
            elif r.startswith("construct:") and self.ctx.classifier.is_module_base(r[10:]):
                out.add(Created("construct", call, self.mf.code(call)))
            else:
                out.add(BOUND)
        return frozenset(out or {BOUND})

    def creation_kind(self, call: cst.Call) -> Optional[str]:
        qual = self.ctx.resolve(call.func)
        if not qual:
            return None
        fw = self.ctx.framework
        if qual in fw.model_loaders:
            return fw.model_loaders[qual]
        if fw.builds_library_model(qual):
            return "factory"
        last = qual.rsplit(".", 1)[-1]
        if fw.is_layer_name(qual):
            return "construct" if self.layer_mode_sensitive(call, last) else None
        if fw.in_namespace(qual):
            return None
        if self.ctx.classifier.is_module_base(qual) and qual not in ("Module", "nn.Module"):
            return "construct"
        index = self.ctx.classifier.index
        if any(self.ctx.classifier.is_module_base(c) for c in factory_classes(index, qual)) and index.effect(qual) is None:
            # a project function returning a module it builds (`lib.models.axialnet.gated(...)`), whose
            # text neither switches nor loads it (those are summarised, and their `Effect.returns` decide)
            return "factory"
        return None

    def layer_mode_sensitive(self, call: cst.Call, last: str) -> bool:
        """A framework layer whose forward depends on the mode (or a container built holding one)."""
        fw = self.ctx.framework
        if fw.mode_sensitive_pattern.match(last):
            return True
        if last in fw.containers:
            for arg in call.args:
                for node in _calls_in(arg.value):
                    q = self.ctx.resolve(node.func)
                    if q and fw.is_layer_name(q) and fw.mode_sensitive_pattern.match(q.rsplit(".", 1)[-1]):
                        return True
        return False

    # --- expressions ---------------------------------------------------------------------------
    def _is_no_grad(self, expr: cst.CSTNode) -> bool:
        if not _looks_no_grad(expr):
            return False
        func = expr.func if isinstance(expr, cst.Call) else expr
        qual = self.ctx.resolve(func)
        fw = self.ctx.framework
        if qual in fw.no_grad_contexts:
            if isinstance(expr, cst.Call) and qual.endswith("inference_mode"):
                arg = get_arg(expr, "mode", 0)
                if arg is not None and literal_value(arg.value) is False:
                    return False
            return True
        if qual in fw.set_grad_enabled and isinstance(expr, cst.Call):
            arg = get_arg(expr, "mode", 0)
            return arg is not None and literal_value(arg.value) is False
        return False

    def expr(self, node: cst.CSTNode, state: State) -> State:
        switches = self.element_switches(node) if isinstance(node, _COMPREHENSIONS) else {}
        for call in _calls_in(node):
            if id(call) in switches:
                attr, keys = switches[id(call)]
                for key in keys:
                    state = self.switch(call, attr, key, state)
                continue
            state = self.call(call, state)
        return state

    def switch(self, call: cst.Call, attr: str, key: str, state: State) -> State:
        """`key.eval()` / `key.train(flag)` / a profile's mode setter, made by `call`."""
        fw = self.ctx.framework
        if attr == fw.eval_method:
            if call.args:
                return state
            self.note_site(call, tuple(self.loops))
            return self.set_eval(state, key, EvalSite(call, call, self.mf.code(call)))
        if attr == fw.train_method:
            flag = train_flag(call)
            saved = self._restored(call, key)
            if saved is not None:  # (its aliases too: `model_without_ddp = model` is restored with it)
                return self.set_mode(state, key, saved)
        else:  # stable-baselines3's policy.set_training_mode(mode)
            arg = get_arg(call, fw.train_mode_keyword, 0)
            value = literal_value(arg.value) if arg is not None else None
            flag = value if isinstance(value, bool) else None
        if flag is False:
            self.note_site(call, tuple(self.loops))
            return self.set_eval(state, key, EvalSite(call, call, self.mf.code(call)))
        return self.set_mode(state, key, frozenset({TRAIN if flag else UNKNOWN}))

    def element_switches(self, node) -> Dict[int, Tuple[str, List[str]]]:
        """`[x.eval() for x in (encoder, head)]` as a statement or an assigned value (a list, set or
        generator comprehension without `if` over a display of names): the switch call -> (its method,
        the elements' keys), each switched in turn (set 10's MetaOptNet switches its two networks so)."""
        fw = self.ctx.framework
        loop, elt = node.for_in, node.elt
        if (loop.inner_for_in is not None or loop.ifs or not isinstance(loop.target, cst.Name)
                or not isinstance(elt, cst.Call) or not isinstance(elt.func, cst.Attribute)
                or not _is_name(elt.func.value, loop.target.value)
                or elt.func.attr.value not in (fw.eval_method, fw.train_method)):
            return {}
        keys = display_keys(loop.iter)
        return {id(elt): (elt.func.attr.value, keys)} if keys else {}

    def call(self, call: cst.Call, state: State) -> State:
        func = call.func
        fw = self.ctx.framework
        if not self.volatile and call.args:
            self.volatile = any(
                a.keyword is not None and a.keyword.value == fw.volatile_keyword and literal_value(a.value) is True
                for a in call.args
            )
        if isinstance(func, cst.Attribute):
            attr = func.attr.value
            if attr == fw.eval_method or attr == fw.train_method or attr in fw.mode_setter_methods:
                resolved = self.own_method(call)
                if resolved is not None:
                    return self.local_call(call, resolved, state)
                key = key_of(peel(func.value))
                if key is None:
                    return state
                return self.switch(call, attr, key, state)
            # `torch.autograd.backward(loss)` written in full: today its last name is also a backward
            # method, but a backward call of another last name would otherwise be no step here
            # (tests/test_modeflow_steps.py gives each step field a fresh spelling)
            if attr in fw.backward_methods or (attr in fw.backward_call_last_names and self.ctx.resolve(func) in fw.backward_calls):
                self.step(call, "backward", state)
                return trained_after_step(state)
            if attr == fw.optimizer_step_method and optimizer_like(func.value):
                self.has_optimizer_step = True
                self.step(call, "optimizer", state)
                return trained_after_step(state)
            if attr == "load_state_dict":
                return self.loaded_into(key_of(peel(func.value)), call, state)
            resolved = self.mf.resolve_call(self.scope, call)
            if resolved is not None:
                return self.local_call(call, resolved, state)
            effect = self.mf.project_effect(call, receiver_class=self._built.get(key_of(func.value) or ""))
            if effect is not None:
                return self.project_call(call, effect, state)
            if runs_model(attr) or half_forward(func):
                key = key_of(func.value)
                if key is not None:
                    self.model_call(call, key, state)
            elif attr not in _NON_COMPUTE and not (self.no_grad or self.no_grad_scope):
                fkey = key_of(func)  # `self.model(x)`, `model.encode(x)`: the called object is used
                if fkey is not None:
                    self.use(fkey, forwarded=True)
                if call.args:
                    self.use_args(call)
            return state
        if isinstance(func, cst.Name):
            resolved = self.mf.resolve_call(self.scope, call)
            if resolved is not None:
                return self.local_call(call, resolved, state)
            through = self._through_bound_method(call, func.value, state)
            if through is not None:
                return through
            if func.value in self._step_fns:  # `update = make_update_fn(model, lr); update(loss)`
                self.has_optimizer_step = True
                self.step(call, "optimizer", state)
                return trained_after_step(state)
            effect = self.mf.project_effect(call)
            if effect is not None:
                return self.project_call(call, effect, state)
            if steps_loss(call) and not (self.no_grad or self.no_grad_scope) and not self.mf.project_defines(func):
                # `loss_scaler(loss, optimizer)`; not a checked function that is not summarised as a step
                self.has_optimizer_step = True
                self.step(call, "optimizer", state)
                return trained_after_step(state)
            if func.value in fw.backward_call_last_names and self.ctx.resolve(func) in fw.backward_calls:
                self.step(call, "backward", state)
                return trained_after_step(state)
            position = fw.weight_loaders.get(self.ctx.resolve(func) or "") if fw.weight_loaders else None
            if position is not None and len(call.args) > position and not call.args[position].star:
                return self.loaded_into(key_of(peel(call.args[position].value)), call, state)
            self.model_call(call, func.value, state, forwards=not self._plain_function(func.value))
            if call.args:
                self.use_args(call)
            return state
        return state

    def _through_bound_method(self, call: cst.Call, name: str, state: State) -> Optional[State]:
        """`fit = runner.fit; fit(batches)` (a bound method taken as a value, called later) is a call
        of that method, when it is one of this file's or a project summary's (TorchSSL binds
        `trainer = model.train` and calls `trainer(args)` per epoch); None otherwise."""
        method = self._bound_methods.get(name)
        if method is None:
            return None
        resolved = self.mf.resolve_call(self.scope, call, method)
        if resolved is not None:
            return self.local_call(call, resolved, state)
        effect = self.mf.project_effect(call, method)
        return self.project_call(call, effect, state, method) if effect is not None else None

    def _plain_function(self, name: str) -> bool:
        """A called name that is not a model: a builtin nothing here rebinds (`enumerate`, `len`,
        `next`), or an imported name not named as a model (`mel_spectrogram`, `save_sample`). Counting
        their calls as forwards took them for the trained model (16 of MDL302's 19 new findings on
        measuring set 2, issue 14; the fix lived in MDL302 until MDL301/303 needed it too)."""
        if name in self._bound:
            return False
        if name in _BUILTIN_NAMES:
            return True
        return self.ctx.is_imported(name) and not MODEL_NAME.search(name)

    def _restored(self, call: cst.Call, key: str) -> Optional[FrozenSet]:
        """`model.train(was_training)` after `was_training = model.training`: the facts saved then."""
        arg = get_arg(call, "mode", 0)
        if arg is not None and isinstance(arg.value, cst.Name) and arg.value.value in self._saved:
            saved_key, tokens = self._saved[arg.value.value]
            if saved_key == key:
                return tokens
        return None

    def project_call(self, call: cst.Call, effect, state: State, func: Optional[cst.BaseExpression] = None) -> State:
        """A call of a function or method of the project summarised by `analysis.modemodel`: its
        exit modes mapped through the arguments, its training steps (those its guards let run with
        the literal arguments passed), its effect on a wrapper object (`func`: the method a called
        name is bound to)."""
        from modelint.analysis.modemodel import bind, call_values, exit_for, live_steps, mapped_exit, trained_keys

        func = call.func if func is None else func
        recv = key_of(peel(func.value)) if isinstance(func, cst.Attribute) else None
        arguments = self.arguments(call)
        args = [key_of(peel(a.value)) if not a.star and a.keyword is None else None for a in arguments]
        kws = {a.keyword.value: key_of(peel(a.value)) for a in arguments if a.keyword is not None}
        mapping = bind(effect, [a for a in args], kws, recv)
        name = effect.qualname.rsplit(".", 1)[-1]
        shown = self.mf.code(call)
        loops = tuple(self.loops)
        self.note_site(call, loops)
        self._project_calls[id(call)] = ProjectCall(call, effect, state, loops,
                                                    bool(self.no_grad) or self.no_grad_scope or self.volatile)
        if recv is not None and self.mf.quiet_module_method(effect):
            self.model_call(call, recv, state, via_method=True)
        values = {**call_values(effect, _literal_arguments(arguments)),
                  **self._mode_values(mapping, state, [g for _, g in effect.guarded])}
        out = self._project_modes(call, effect, state, recv, mapped_exit(effect, mapping, recv, exit_for(effect, values)))
        live = live_steps(effect, values)
        if live and not (self.no_grad or self.no_grad_scope):
            kind = "optimizer" if any(k == "o" for k, _ in live) else "backward"
            self.has_optimizer_step = self.has_optimizer_step or kind == "optimizer"
            # the modes at the callee's steps, not on its exit: a helper that switches its probe to
            # train, steps, and evaluates it before returning trains it in training mode
            at_targets = [] if effect.at_step is None else mapped_exit(effect, mapping, recv, effect.at_step)
            at = out if effect.at_step is None else self._project_modes(call, effect, state, recv, at_targets, effect.at_step)
            own = tuple(k for k, modes, _ in at_targets if k is not None and modes and "entry" not in modes)
            # the atoms every live step of the callee is guarded by, in this scope's names
            common = set.intersection(*(set(remap(g, mapping)) for _, g in live))
            guard = tuple(self.atoms) + tuple(sorted(common, key=repr))
            trains = trained_keys(effect, mapping, recv)
            # nothing of the caller's, when the model the callee runs is its own copy (`model =
            # deepcopy(model)`: a `@` key, modemodel's IR 13; its free names map to nothing either)
            # rather than nothing visible (None: any argument may be what it trains)
            own_copies = any("@" in k.partition(".")[0] for k in effect.trains)
            # (and nothing, when its optimizers are built over its own models: `clf = nn.Linear(...)`,
            # `LBFGS(clf.parameters())` in pytorch-simclr's `train_clf(X, y, net.representation_dim)`)
            own_models = effect.owns_optimizers and bool(effect.trains) and not trains
            self._steps[(id(call), id(call))] = Step(call, call, shown, kind, (name,), at, loops, guard,
                                                     tuple(trains) if trains or own_copies or own_models else None, own)
            for key in trains or ([] if own_models else [recv, *args, *kws.values()]):
                if key is not None:  # (nothing visibly run: every argument may be what it trains)
                    self.use(key, forwarded=True)
            out = trained_after_step(out)
        return out

    def _project_modes(self, call: cst.Call, effect, state: State, recv: Optional[str], targets, modes_of=None) -> State:
        """`state` with the modes a project call gives its keys (`targets`: `modemodel.mapped_exit`
        of its exit, or of `modes_of`, its modes at its steps), and the networks a wrapper object it
        is a method of keeps (`learner.to_eval()`)."""
        from modelint.analysis.modemodel import kept_exit

        if recv in self._kept and effect.is_method:
            targets = targets + kept_exit(effect, self._kept[recv], modes_of)
        name = effect.qualname.rsplit(".", 1)[-1]
        out = state
        for key, modes, line in targets:
            if key is None:
                continue
            new: Set = set()
            for m in modes:
                if m == "entry":
                    new |= get(state, key)
                elif m == "eval":
                    new.add(EvalSite(call, call, self.mf.code(call), (name,), f"line {line} of `{effect.qualname}`"))
                else:
                    new.add(TRAIN if m == "train" else UNKNOWN)
            out = self.set_mode(out, key, frozenset(new)) if "entry" not in modes else assign(out, key, frozenset(new))
        return out

    # --- tuples returned by a function of this file (`args, model = setup(cfg)`) ---------------
    def _note_tuple_return(self, value: cst.Tuple, state: State) -> None:
        for i, el in enumerate(value.elements):
            if not isinstance(el, cst.StarredElement):
                self._tuple_returns.setdefault(i, set()).update(self.value_of(el.value, state)[0])

    def _returned_tuple(self, call: cst.Call) -> Dict[int, FrozenSet]:
        """Facts about each position of the tuple a file-local function returns, in the caller's terms
        (a parameter or free name returned: BOUND; an eval inside it: an EvalSite at this call)."""
        resolved = self.mf.resolve_call(self.scope, call)
        summary = self.mf.flow(resolved[0]) if resolved is not None else None
        if summary is None or not summary.tuple_returns:
            return {}
        name = resolved[0].name.value
        out: Dict[int, FrozenSet] = {}
        for i, tokens in summary.tuple_returns.items():
            out[i] = _returned(tokens, call, name)
        return out

    def _bind_facts(self, target: cst.CSTNode, tokens: FrozenSet, state: State, node: cst.CSTNode) -> State:
        key = key_of(target)
        if isinstance(target, cst.Name):
            self._bound.add(key)
            self._note_saved_or_step_fn(key, None, state)
        self._bindings[(key, id(node))] = Binding(node, "other", tuple(self.loops))
        self._sources.setdefault(key, set()).add(None)
        self._note_wrapper(key, None)
        return assign(state, key, tokens)

    # --- wrapper objects that own the networks (`learner = Learner(net)`; `learner.to_eval()`) ----
    def _note_wrapper(self, key: str, value: Optional[cst.CSTNode]) -> None:
        kept = self.mf.kept_arguments(value) if isinstance(value, cst.Call) else {}
        if kept:
            self._kept[key] = kept
        else:
            self._kept.pop(key, None)

    def set_eval(self, state: State, key: str, site: EvalSite) -> State:
        return self.set_mode(state, key, frozenset({site}))

    def set_mode(self, state: State, key: str, tokens: FrozenSet) -> State:
        """`key` changed mode; so, maybe, did every other name bound to the same object in this
        scope (`model = model if model is not None else self.model; model.eval()`, `ddp =
        DDP(model); model.train()`): an eval is added to the aliases' facts (it may be the same
        object), and a switch back to training (or a restored mode) replaces them, so that a
        `model.train()` is not outlived by a stale eval on an alias. An eval replaces the facts too
        when the two names are one object (`same_object`): the `else: context_model.eval()` arm of
        a per-epoch switch kept the stale eval of the attribute `context_model = self.context_encoder`
        from the last epoch's evaluation, 4 of MDL301's 8 false findings on measuring set 3."""
        state = assign(state, key, tokens)
        aliases = self._aliases.get(key)
        if not aliases:
            return state
        evals = any(isinstance(t, EvalSite) for t in tokens)
        for other in aliases:
            if other != key and not other.startswith(key + ".") and not key.startswith(other + "."):
                union = evals and not self.same_object(key, other)
                state = assign(state, other, (get(state, other) | tokens) if union else tokens)
        return state

    def same_object(self, a: str, b: str) -> bool:
        """`a` and `b` name one object (or a mode-delegating wrapper of it) at this point: one is a
        plain local, not a parameter, every binding of which so far is the other or itself
        (`m = self.net`, `m = DataParallel(m)`), and the other is rebound to nothing else. A
        parameter or an attribute has an object of its own on entry, so `if c: net = model` leaves
        two objects; a conditional value (`a if c else b`) or any other call is not an alias."""
        return self._bound_only_to(a, b) or self._bound_only_to(b, a)

    def _bound_only_to(self, local: str, other: str) -> bool:
        if "." in local or local in self.params or other not in self._sources.get(local, ()):
            return False
        if not self._sources[local] <= {local, other}:
            return False
        return self._sources.get(other, set()) <= {other}

    @staticmethod
    def _is_fit_method(fn: cst.FunctionDef, call: cst.Call) -> bool:
        """A file-local `train`/`eval` method that is not a mode switch: `def train(self, loader,
        epochs)` (a fit loop) rather than `def train(self, mode=True)`."""
        positional, _, _ = _param_list(fn)
        required = [p for p in (*fn.params.posonly_params, *fn.params.params)[1:] if p.default is None]
        return len(positional) > 2 or bool(required) or len(call.args) > 1

    def own_method(self, call: cst.Call) -> Optional[Tuple[cst.FunctionDef, Optional[str]]]:
        """`self.train(loader)` / `self.eval()` that calls a method of this file rather than switching
        a mode: a fit loop named `train`, or a `train`/`eval` of a plain class (`_plain_class_method`)."""
        fw = self.ctx.framework
        if not isinstance(call.func, cst.Attribute) or call.func.attr.value not in (fw.train_method, fw.eval_method):
            return None
        resolved = self.mf.resolve_call(self.scope, call)
        if resolved is not None and (self._is_fit_method(resolved[0], call) or self._plain_class_method(resolved[0])):
            return resolved
        return None

    def _plain_class_method(self, fn: cst.FunctionDef) -> bool:
        """A `train`/`eval` method of a project class that is not a module (a workspace or runner
        whose `eval()` runs evaluation episodes): calling it runs that method, it switches no mode
        of the object itself (a module's own `eval()` override still is a switch)."""
        cls = self.mf.index.method_class.get(id(fn))
        return cls is not None and not self.ctx.is_module_class(cls) and not self.ctx.is_lightning_class(cls)

    def model_call(self, call: cst.Call, key: str, state: State, forwards: bool = True, via_method: bool = False) -> None:
        no_grad = bool(self.no_grad) or self.no_grad_scope or self.volatile or via_method
        self._model_calls[id(call)] = ModelCall(call, key, state, no_grad, tuple(self.loops), via_method)
        if not no_grad and forwards:
            if self._detached(call):  # (trains it no more than a no_grad forward)
                self._detached_runs.append((key, tuple(self.loops)))
            else:
                self.use(key, forwarded=True)

    def _detached(self, call: cst.Call) -> bool:
        """The forward's result is used only cut from the graph (`analysis.detached`): it trains nothing."""
        methods = self.ctx.framework.detach_methods
        if not methods:
            return False
        if self._parents is None:
            self._parents = parent_map(self.scope)
        return detached_only(self.scope, call, self._parents, methods)

    def use(self, key: str, forwarded: bool = False) -> None:
        loops = tuple(self.loops)
        entry = (key, id(loops[-1]) if loops else 0)
        self._trained[entry] = (key, loops)
        if forwarded:
            self._forwarded[entry] = (key, loops)

    def use_args(self, call: cst.Call) -> None:
        """Arguments handed to a call we cannot follow may be trained there (`train_step(model, b)`);
        not those of builtins and predicates (`isinstance(model, X)`, `is_fsdp_managed_module(m)`)."""
        if self.no_grad or self.no_grad_scope:
            return
        func = call.func
        name = func.attr.value if isinstance(func, cst.Attribute) else func.value if isinstance(func, cst.Name) else ""
        if name in _NOT_USING or name.startswith(_PREDICATE_PREFIXES):
            return
        for arg in call.args:
            key = key_of(peel(arg.value))
            if key is not None:
                self.use(key)

    def step(self, call: cst.Call, kind: str, state: State) -> None:
        shown = self.mf.code(call.func) + "()"
        self._steps[(id(call), id(call))] = Step(call, call, shown, kind, (), state, tuple(self.loops), tuple(self.atoms))

    def local_call(self, call: cst.Call, resolved: Tuple[cst.FunctionDef, Optional[str]], state: State) -> State:
        callee, receiver = resolved
        summary = self.mf.flow(callee)
        mapping = self.bind_args(call, callee, receiver)
        self._local_calls[id(call)] = LocalCall(call, callee, mapping, state)
        if summary is None:
            return state
        name = callee.name.value
        # `run_epoch(val_loader, train=False)`: the steps under `if train:` do not run (`conditions`)
        values = {**self.literal_args(call, callee, receiver),
                  **self._mode_values(mapping, state, [st.guard for st in summary.steps])}
        live = [st for st in summary.steps if not falsified(st.guard, values)]
        if live and self.mf.probes_inputs(summary):
            live = []  # an attack / input-saliency helper's backward updates no weight (`input_gradient_probe`)
        if receiver is not None and any("." in a[0] for g in summary.site_guards.values() for a in g):
            values = {**values, **self._flag_attributes(call, callee, receiver)}
        if summary.has_optimizer_step and any(st.kind == "optimizer" for st in live):
            self.has_optimizer_step = True
        loops = tuple(self.loops)
        if live and not (self.no_grad or self.no_grad_scope):
            # what a callee that runs a training step uses is trained here (not what a logging,
            # saving or evaluation helper touches)
            forwarded = {k for k, _ in summary.forwarded}
            for ckey, _ in summary.trained:
                mapped = map_key(ckey, summary, mapping)
                if mapped is not None:
                    self.use(mapped, forwarded=ckey in forwarded)
        for st in live:
            composed = self.compose(state, st.state, summary, mapping, None, name, values)
            guard = tuple(self.atoms) + remap(st.guard, mapping)
            self._steps[(id(call), id(st.inner))] = Step(call, st.inner, st.shown, st.kind, (name,) + st.via, composed, loops, guard)
        self.note_site(call, loops)
        self._global_runs(call, callee, summary, state)
        new_state = self.compose(state, summary.exit, summary, mapping, call, name, values)
        return trained_after_step(new_state) if live and not (self.no_grad or self.no_grad_scope) else new_state

    def _global_runs(self, call: cst.Call, callee: cst.FunctionDef, summary: "ScopeFlow", state: State) -> None:
        """A top-level function of this file that runs a module-level model named like one (`def
        get_sync_loss(g): return syncnet(g).mean()`) runs it here too, at this call: an evaluation that
        calls the helper (`eval_model` -> `get_sync_loss` -> the global `syncnet`, set 12's Wav2Lip) runs
        the global model, in the mode the script left it in, when the helper runs it in the mode it
        arrived in (not after a switch of its own). Methods and parameters are not globals."""
        if id(callee) in self.mf.index.method_class or self.mf.index.parent.get(id(callee)) is not self.mf.module:
            return
        for mc in summary.model_calls:
            root = mc.key.split(".")[0]
            if (root in summary.params or root in summary.locals or (isinstance(self.scope, cst.FunctionDef) and root in self._bound)
                    or not MODEL_NAME.search(root) or id(call) in self._model_calls):
                continue
            if get(mc.state, mc.key) != frozenset({ENTRY}):
                continue  # the helper switches it itself first (`def eval_training(): net.eval(); ...`)
            no_grad = bool(self.no_grad) or self.no_grad_scope or self.volatile or mc.no_grad
            self._model_calls[id(call)] = ModelCall(call, mc.key, state, no_grad, tuple(self.loops))

    def _flag_attributes(self, call: cst.Call, callee: cst.FunctionDef, receiver: Optional[str]) -> Dict[str, object]:
        """`self.select_action(s)` from a scope whose body starts by setting `self.is_test = False` (its
        one assignment of that attribute, at the top level of the body): the callee's `self.is_test`
        is False there (set 10's rainbow agents guard `self.dqn.eval()` by `if self.is_test:`)."""
        positional = _param_list(callee)[0]
        if receiver is None or not positional or not isinstance(self.scope, cst.FunctionDef):
            return {}
        if self._literal_attrs is None:  # once per scope: attribute -> (statement index, literal) of its one top-level assignment
            found: Dict[str, list] = {}
            for n in descendants(self.scope.body):
                if isinstance(n, cst.Assign) and len(n.targets) == 1 and isinstance(n.targets[0].target, cst.Attribute):
                    key = key_of(n.targets[0].target)
                    if key is not None:
                        found.setdefault(key, []).append(n)
            # (statement order, not lines: positions cost a code generation of the whole file)
            top = {id(s.body[0]): i for i, s in enumerate(self.scope.body.body) if isinstance(s, cst.SimpleStatementLine) and s.body}
            self._literal_attrs = {key: (top[id(nodes[0])], constant_cst(nodes[0].value)) for key, nodes in found.items()
                                   if len(nodes) == 1 and id(nodes[0]) in top and constant_cst(nodes[0].value) is not NOT_LITERAL}
        prefix = receiver + "."
        wanted = {key: found for key, found in self._literal_attrs.items() if key.startswith(prefix)}
        if not wanted:
            return {}
        at_call = self._top_statement(call)
        return {positional[0] + key[len(receiver):]: value for key, (at, value) in wanted.items() if at < at_call}

    def _top_statement(self, node: cst.CSTNode) -> int:
        """The index of the statement of the scope's body that holds `node` (-1: none)."""
        if self._statement_of is None:
            self._statement_of = {id(n): i for i, s in enumerate(self.scope.body.body) for n in descendants(s)}
        return self._statement_of.get(id(node), -1)

    def bind_args(self, call: cst.Call, callee: cst.FunctionDef, receiver: Optional[str]) -> Dict[str, Optional[str]]:
        positional = _param_list(callee)[0]
        mapping: Dict[str, Optional[str]] = {positional[0]: receiver} if receiver is not None and positional else {}
        mapping.update(_bind(self.arguments(call), callee, receiver, lambda v: key_of(peel(v))))
        return mapping

    def _mode_values(self, mapping: Dict[str, Optional[str]], state: State, guards=None) -> Dict[str, bool]:
        """`<param>.training` for the parameters handed a model whose mode is known here: False when
        every fact is an eval switch, True when it is `train()`. A step under `if model.training:`
        does not run for a model put in eval first (open_brats2020's `step(val_loader, model, ...)`
        after `model.eval()`, measuring set 16)."""
        out: Dict[str, bool] = {}
        attr = self.ctx.framework.mode_attr
        wanted = [] if guards is None else [a[0] for g in guards for a in g if a[0].count(".") > 1]
        for param, key in mapping.items():
            if key is None:
                continue
            # the parameter itself, and the attributes of it that the callee's guards test (`self.model.eval()`
            # before `self.compute_losses(...)`, whose step sits behind `if not self.model.training: return`)
            parts = [w[len(param):-len(attr) - 1] for w in wanted if w.startswith(param + ".") and w.endswith("." + attr)]
            for sk in [key] + [key + rest for rest in parts]:
                tokens = get(state, sk)
                name = f"{param}{sk[len(key):]}.{attr}"
                if _switched_to_eval(tokens):
                    out[name] = False
                elif tokens and all(t is TRAIN for t in tokens):
                    out[name] = True
        return out

    def literal_args(self, call: cst.Call, callee: cst.FunctionDef, receiver: Optional[str]) -> Dict[str, object]:
        """The callee's parameters bound to a literal by the call, or left at a literal default."""
        values = {p.name.value: constant_cst(p.default) for p in (*callee.params.posonly_params, *callee.params.params, *callee.params.kwonly_params)
                  if p.default is not None}
        values.update(_bind(self.arguments(call), callee, receiver, constant_cst))
        return {k: v for k, v in values.items() if v is not NOT_LITERAL}

    def compose(
        self,
        state: State,
        callee_state: State,
        summary: ScopeFlow,
        mapping: Dict[str, Optional[str]],
        at: Optional[cst.Call],
        name: str,
        values: Optional[Dict[str, object]] = None,
    ) -> State:
        """The caller's state after (at is not None) or inside (at is None: sites of the callee
        itself are dropped) a call, given the callee's state in its own names. `values`: the literal
        values the call gives the callee's parameters (and flag attributes); an eval site whose guard
        they falsify does not run (`if self.is_test: self.dqn.eval()` with `is_test` False)."""
        if not callee_state:
            return state
        out = state
        for ckey, tokens in callee_state.items():
            key = map_key(ckey, summary, mapping)
            if key is None:
                continue
            if values:
                kept = frozenset(t for t in tokens if not (
                    isinstance(t, EvalSite) and falsified(summary.site_guards.get(id(t.node), ()), values)))
                if kept != tokens:  # (all of them dropped: the caller's mode is unchanged)
                    tokens = kept or frozenset({ENTRY})
            new: Set = set()
            for t in tokens:
                if t is ENTRY:
                    new |= get(state, key)
                elif isinstance(t, EvalSite):
                    if at is not None:
                        new.add(EvalSite(at, t.eval_node, t.shown, (name,) + t.via))
                else:
                    new.add(t)
            if ENTRY in tokens:
                out = assign(out, key, frozenset(new))
            else:  # the callee changed its mode on every path: its aliases here change too
                out = self.set_mode(out, key, frozenset(new))
        return out


def _handed_in_class(index: "_Index", cls: cst.ClassDef) -> Dict[int, Dict[str, Set[str]]]:
    """id(method) -> `ModeFlow.handed_attributes` for every method of `cls` called as `self.m(...)`."""
    methods = index.methods.get(id(cls), {})
    out: Dict[int, Dict[str, Set[str]]] = {}
    for caller in methods.values():
        positional = _param_list(caller)[0]
        if not positional:
            continue
        me, local_sources = positional[0], None
        for node in descendants(caller.body):
            if not (isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute)
                    and isinstance(node.func.value, cst.Name) and node.func.value.value == me):
                continue
            callee = methods.get(node.func.attr.value)
            if callee is None or callee is caller:
                continue
            for param, key in _bind(node.args, callee, me, lambda v: key_of(peel(v))).items():
                if key is None:
                    continue
                if "." not in key:
                    local_sources = local_sources if local_sources is not None else _local_attr_sources(caller, me, methods)
                    attrs = local_sources.get(key, set())
                else:
                    attrs = {key} if key.startswith(me + ".") else set()
                if attrs:
                    out.setdefault(id(callee), {}).setdefault(param, set()).update(
                        "self" + a[len(me):] for a in attrs)
    return out


def _local_attr_sources(fn: cst.FunctionDef, me: str, methods: Optional[Dict[str, cst.FunctionDef]] = None) -> Dict[str, Set[str]]:
    """Plain local -> the attributes of `me` it is bound from or stored into in `fn` (`m =
    DDP(self.net)`, `m, opt = accelerator.prepare(self.net, opt)`, `self.wrapped = m`), also
    through what a method of `methods` returns (`m, dl = self._prepare(...)`, one level)."""
    out: Dict[str, Set[str]] = {}
    for node in descendants(fn.body):
        if not isinstance(node, cst.Assign):
            continue
        for t in node.targets:
            returned = _returned_attrs(node.value, me, methods) if methods else {}
            for i, (name, value) in enumerate(_paired(t.target, node.value)):
                tkey, sources = key_of(name), alias_sources(value) if value is not None else []
                sources = sources + sorted(returned.get(i if isinstance(t.target, (cst.Tuple, cst.List)) else -1, ()))
                if tkey is not None and "." not in tkey:
                    out.setdefault(tkey, set()).update(k for k in sources if k.startswith(me + "."))
                elif tkey is not None and tkey.startswith(me + "."):
                    for k in sources:
                        if "." not in k:
                            out.setdefault(k, set()).add(tkey)
    return out


def _returned_attrs(value: cst.CSTNode, me: str, methods: Dict[str, cst.FunctionDef]) -> Dict[int, Set[str]]:
    """position (-1: the whole value) -> the attributes of `me` that `self.m(...)` returns there."""
    if not (isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute) and key_of(value.func.value) == me):
        return {}
    callee = methods.get(value.func.attr.value)
    positional = _param_list(callee)[0] if callee is not None else []
    if not positional:
        return {}
    inner, locals_ = positional[0], None
    out: Dict[int, Set[str]] = {}
    for node in descendants(callee.body):
        if not isinstance(node, cst.Return) or node.value is None:
            continue
        items = list(enumerate(e.value for e in node.value.elements)) if isinstance(node.value, cst.Tuple) else [(-1, node.value)]
        for i, item in items:
            key = key_of(peel(item))
            if key is None:
                continue
            if "." not in key:
                locals_ = locals_ if locals_ is not None else _local_attr_sources(callee, inner)
                attrs = locals_.get(key, set())
            else:
                attrs = {key} if key.startswith(inner + ".") else set()
            out.setdefault(i, set()).update(me + a[len(inner):] for a in attrs)
    return out


def _paired(target: cst.CSTNode, value: cst.CSTNode) -> List[Tuple[cst.CSTNode, Optional[cst.CSTNode]]]:
    """(target, the value it takes) for a plain or a tuple assignment (`a, b = x, y`; `m, opt =
    accelerator.prepare(net, opt)`: each prepared object is handed back in its place)."""
    if not isinstance(target, (cst.Tuple, cst.List)):
        return [(target, value)]
    elements = [e.value for e in target.elements]
    if isinstance(value, (cst.Tuple, cst.List)) and len(value.elements) == len(elements):
        return list(zip(elements, (e.value for e in value.elements)))
    if (isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute) and value.func.attr.value == "prepare"
            and len(value.args) == len(elements) and not any(a.star for a in value.args)):
        return list(zip(elements, (a.value for a in value.args)))
    return [(e, None) for e in elements]


def _literal_arguments(args: Sequence[cst.Arg]) -> List[Tuple[object, object]]:
    """[position or keyword, literal] for a call's literal arguments (`modemodel.call_values`)."""
    out: List[Tuple[object, object]] = []
    positional = []
    for arg in args:
        if arg.star == "*":
            break  # positions unknown from here on
        if not arg.star and arg.keyword is None:
            positional.append(arg)
    for i, arg in enumerate(positional):
        value = constant_cst(arg.value)
        if value is not NOT_LITERAL:
            out.append((i, value))
    for arg in args:
        if arg.keyword is not None and constant_cst(arg.value) is not NOT_LITERAL:
            out.append((arg.keyword.value, constant_cst(arg.value)))
    return out


def _bind(args: Sequence[cst.Arg], callee: cst.FunctionDef, receiver: Optional[str], read) -> Dict[str, object]:
    """callee parameter -> `read(argument)` for the arguments a call passes (after the receiver)."""
    positional, kwonly, names = _param_list(callee)
    mapping: Dict[str, object] = {}
    params = list(positional)
    if receiver is not None and params:
        params = params[1:]
    i = 0
    for arg in args:
        if arg.star:
            if arg.star == "*":
                i = len(params)  # positions unknown from here on
            continue
        if arg.keyword is not None:
            if arg.keyword.value in names:
                mapping[arg.keyword.value] = read(arg.value)
        elif i < len(params):
            mapping[params[i]] = read(arg.value)
            i += 1
    return mapping


def flag_tests(test: cst.CSTNode, arm: bool) -> Tuple[Tuple[str, bool], ...]:
    """The plain flags (a name or attribute chain, `self.` dropped so that a method reading
    `self.args.X` and a function reading `args = self.args; args.X` name the same flag) that the
    `if` test fixes in one arm, each with its value there: `if args.tune and not args.tie:` fixes
    ("args.tune", True) and ("args.tie", False) in the body, `if a or b:` both False in the `else`."""
    return _flags(atoms_cst(test, arm))


def _flags(atoms: Iterable[Atom]) -> Tuple[Tuple[str, bool], ...]:
    """The truth-tested atoms as `flag_tests` names them."""
    return tuple((key.removeprefix("self."), holds) for key, op, _, holds in atoms if op == "truthy")


def _fixed_atoms(guard: Guard, fixed: FrozenSet[str], also=lambda key: False) -> Guard:
    return tuple(a for a in guard if a[0] in fixed or also(a[0]))


def _keep_guard(step: Step, fixed: FrozenSet[str], also=lambda key: False) -> Step:
    """A step's guard reduced to the parameters nothing in its scope rebinds (a rebound flag may
    hold anything by the time of the step), and the keys `also` accepts."""
    kept = _fixed_atoms(step.guard, fixed, also)
    if kept == step.guard:
        return step
    return replace(step, guard=kept)


def steps_loss(call: cst.Call) -> bool:
    """`loss_scaler(loss, optimizer, clip_grad=...)`: a lower-case callable handed a loss and an
    optimizer (timm's NativeScaler in DeiT) steps it (`modemodel.loss_and_optimizer`)."""
    from modelint.analysis.modemodel import loss_and_optimizer

    name = call.func.value if isinstance(call.func, cst.Name) else ""
    if not name or name[:1].isupper() or len(call.args) < 2:
        return False
    return loss_and_optimizer([key_of(peel(a.value)) for a in call.args if not a.star])


def trained_after_step(state: State) -> State:
    """After a training step every `TRAIN` fact becomes `TRAINED` (see there)."""
    if not any(TRAIN in v for v in state.values()):
        return state
    return {k: (v - {TRAIN}) | {TRAINED} if TRAIN in v else v for k, v in state.items()}


def map_key(ckey: str, summary: ScopeFlow, mapping: Dict[str, Optional[str]]) -> Optional[str]:
    """A callee's key in the caller's names: parameters through the call's arguments, free and
    global names unchanged, the callee's own locals dropped (None), and so are the parameters it
    rebinds to another object (`ScopeFlow.replaced`; what it did before that is dropped with them)."""
    root, dot, rest = ckey.partition(".")
    if root in summary.replaced:
        return None
    if root in mapping:
        base = mapping[root]
        if base is None:
            return None
        return base + (dot + rest if rest else "")
    if root in summary.params or root in summary.locals:
        return None
    return ckey


def _ends_cst(body: cst.BaseSuite) -> bool:
    """An `if` body that never falls through: its last statement returns, raises, breaks or continues."""
    stmts = body.body
    last = stmts[-1] if stmts else None
    if isinstance(last, cst.SimpleStatementLine):
        last = last.body[-1] if last.body else None
    return isinstance(last, (cst.Return, cst.Raise, cst.Break, cst.Continue))


def last_iteration_test(loop: cst.For, test: cst.CSTNode, scope: cst.CSTNode) -> bool:
    """`i == len(X) - 1` / `i + 1 == len(X)` (either side) where `i` is the index of `for i, x in
    enumerate(X)` (or of `for i in range(len(X))`), and `X` is the loop's iterable, the first argument
    of the call it is (`enumerate(tqdm(X))`), or a name bound in `scope` to such a call (`with tqdm(X) as
    t: for i, x in enumerate(t)`): true on the loop's last iteration only (set 18's ddpm-torch evaluates
    at the last batch of each epoch; the next epoch starts with `model.train()`)."""
    if not (isinstance(test, cst.Comparison) and len(test.comparisons) == 1 and isinstance(test.comparisons[0].operator, cst.Equal)):
        return False
    target = test.comparisons[0]
    index, sources = _loop_index(loop, scope)
    if index is None:
        return False
    for a, b in ((test.left, target.comparator), (target.comparator, test.left)):
        if _is_name(a, index) and _len_minus_one(b, sources):
            return True
        if (isinstance(a, cst.BinaryOperation) and isinstance(a.operator, cst.Add) and _is_name(a.left, index)
                and literal_value(a.right) == 1 and _len_of(b, sources)):
            return True
    return False


def _is_name(node: cst.CSTNode, name: str) -> bool:
    return isinstance(node, cst.Name) and node.value == name


def _len_of(node: cst.CSTNode, sources: Set[str]) -> bool:
    return (isinstance(node, cst.Call) and isinstance(node.func, cst.Name) and node.func.value == "len"
            and len(node.args) == 1 and key_of(node.args[0].value) in sources)


def _len_minus_one(node: cst.CSTNode, sources: Set[str]) -> bool:
    return (isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Subtract)
            and literal_value(node.right) == 1 and _len_of(node.left, sources))


def _loop_index(loop: cst.For, scope: cst.CSTNode) -> Tuple[Optional[str], Set[str]]:
    """The index name of `for i, x in enumerate(X)` / `for i in range(len(X))`, and the keys that name
    what it counts (X, and what X wraps when X is a call or a name bound in `scope` to one)."""
    it, target = loop.iter, loop.target
    if not (isinstance(it, cst.Call) and isinstance(it.func, cst.Name) and it.args and not it.args[0].star):
        return None, set()
    if it.func.value == "enumerate" and isinstance(target, cst.Tuple) and target.elements:
        first = target.elements[0].value
        counted = it.args[0].value
    elif it.func.value == "range" and len(it.args) == 1 and isinstance(target, cst.Name):
        first, inner = target, it.args[0].value
        if not (isinstance(inner, cst.Call) and isinstance(inner.func, cst.Name) and inner.func.value == "len" and inner.args):
            return None, set()
        counted = inner.args[0].value
    else:
        return None, set()
    if not isinstance(first, cst.Name):
        return None, set()
    sources = {k for k in (key_of(counted),) if k}
    wrapped = [counted]
    if isinstance(counted, cst.Name):  # `with tqdm(loader) as t:` / `t = tqdm(loader)`
        for node in descendants(scope):
            if isinstance(node, cst.WithItem) and node.asname is not None and _is_name(node.asname.name, counted.value):
                wrapped.append(node.item)
            elif isinstance(node, cst.Assign) and any(_is_name(t.target, counted.value) for t in node.targets):
                wrapped.append(node.value)
    for w in wrapped:
        if isinstance(w, cst.Call) and w.args and not w.args[0].star and w.args[0].keyword is None:
            k = key_of(w.args[0].value)
            if k:
                sources.add(k)
    return first.value, sources


def alias_sources(value: cst.CSTNode) -> List[str]:
    """`model.to(dev)` / `DDP(model, ...)` / `torch.compile(model)` -> [`model`]; `a if c else b`
    -> both: the keys whose object (or mode) the bound value may share."""
    value = peel(value)
    if isinstance(value, cst.IfExp):
        return alias_sources(value.body) + alias_sources(value.orelse)
    key = key_of(value)
    if key is not None:
        return [key] if key not in ("None", "True", "False") else []
    if isinstance(value, cst.Call) and value.args and not value.args[0].star and value.args[0].keyword is None:
        func = value.func
        last = func.attr.value if isinstance(func, cst.Attribute) else func.value if isinstance(func, cst.Name) else None
        if last in _WRAPPER_LAST and last != "deepcopy":
            inner = key_of(peel(value.args[0].value))
            return [inner] if inner else []
    return []


_COMPREHENSIONS = (cst.ListComp, cst.SetComp, cst.GeneratorExp)


def display_keys(value: cst.CSTNode) -> Optional[List[str]]:
    """The keys of a non-empty list or tuple display of names (`(encoder, self.head)`), else None."""
    if not isinstance(value, (cst.List, cst.Tuple)) or not value.elements:
        return None
    keys = [key_of(peel(e.value)) if not isinstance(e, cst.StarredElement) else None for e in value.elements]
    return keys if all(k is not None and k not in ("None", "True", "False") for k in keys) else None


def _calls_in(node: cst.CSTNode) -> List[cst.Call]:
    """Calls in an expression in evaluation order (receivers and arguments before the call);
    lambdas and nested functions are not entered."""
    out: List[cst.Call] = []
    stack: List[Tuple[cst.CSTNode, bool]] = [(node, False)]
    while stack:
        n, done = stack.pop()
        if done:
            out.append(n)  # type: ignore[arg-type]
            continue
        if isinstance(n, (cst.Lambda, cst.FunctionDef, cst.ClassDef)):
            continue
        if isinstance(n, cst.Call):
            stack.append((n, True))
        children = list(iter_children(n))
        for child in reversed(children):
            stack.append((child, False))
    return out



# --------------------------------------------------------------------------------------------
# Which call-site rule owns a training step in eval mode: decided by paths (MDL301 / MDL303)


def _whole_model(key: str) -> bool:
    """A name, or one attribute of `self`: a key that holds a model rather than reads one's part."""
    return key.count(".") == (1 if key.startswith("self.") else 0)


def _switched_to_eval(tokens: FrozenSet) -> bool:
    """Every path switched the object to eval here (`.eval()` / `.train(False)`, or a call that does)."""
    return bool(tokens) and all(isinstance(t, EvalSite) for t in tokens)


def eval_on_every_path(tokens: FrozenSet) -> bool:
    """Every path gives the object eval mode (`.eval()` / `.train(False)`, or a `from_pretrained`
    load): a training step there trains in eval mode from its first run on (MDL303). When some path
    still has training mode (built, entry, `.train()`), the eval came from an earlier iteration or
    branch (MDL301)."""
    return bool(tokens) and all(
        isinstance(t, EvalSite) or (isinstance(t, Created) and t.kind == "from_pretrained") for t in tokens
    )


def forwarded_at_step(flow: ScopeFlow, key: str, step: Step) -> bool:
    """`key` (a top-level model, not a sub-module) runs forward outside no_grad in the innermost loop
    around `step` (or anywhere, for a step outside loops): the step trains it."""
    parts = key.split(".")
    if parts[0] == "self":
        parts = parts[1:]
    if len(parts) != 1:
        return False
    inner = step.loops[-1] if step.loops else None
    return any(k == key and (inner is None or any(lp is inner for lp in loops)) for k, loops in flow.forwarded)


def not_trained_by(step: Step, key: str) -> bool:
    """The step is a project call whose summary says what it trains (`Step.trains`), and that is
    neither `key` nor a part of it: `train_tgt(src_encoder, tgt_encoder, critic, ...)` whose
    optimizers are built over `tgt_encoder` and `critic` only runs the fixed `src_encoder`."""
    return step.trains is not None and key not in step.trains and not any(
        t.startswith(key + ".") for t in step.trains)


def trains_only_parts_in_train(step: Step, key: str) -> bool:
    """The step is a project call whose summary says what it trains (`Step.trains`), and that is
    not `key` but parts of it (`model.encoder`), none of them in eval on every path at the callee's
    step: the routine trains the part it switched to train (a linear-probe evaluation fine-tuning
    `model.encoder` after `encoder.train()`), not the whole model left in eval around it."""
    if step.trains is None or key in step.trains:
        return False
    parts = [t for t in step.trains if t.startswith(key + ".")]
    return bool(parts) and not any(eval_on_every_path(get(step.state, p)) for p in parts)




def optimizer_over_inputs(ctor: Optional[cst.CSTNode], bound=lambda name: ()) -> bool:
    """`LBFGS([image])`, `Adam([z.requires_grad_()], lr=0.1)`: an optimizer built over plain tensors
    (`modemodel.input_tensors`, which this parses the first argument for), whose step trains no model,
    so a model in eval mode there is deliberate; `bound(name)` gives the LibCST values a name is bound to."""
    if not isinstance(ctor, cst.Call) or not ctor.args or ctor.args[0].keyword is not None:
        return False
    first = _as_ast(ctor.args[0].value)
    return first is not None and input_tensors(
        first, lambda name: [v for v in map(_as_ast, bound(name)) if v is not None])


def _as_ast(node: cst.CSTNode) -> Optional[ast.expr]:
    try:
        return ast.parse(_EMPTY.code_for_node(node).strip(), mode="eval").body
    except (SyntaxError, ValueError):
        return None


_EMPTY = cst.Module([])


def gradient_probe(flow: ScopeFlow, key: str, grad_attr: str) -> bool:
    """The scope backpropagates but steps no optimizer (itself or in what it calls), reads the
    gradients (`p.grad`, `grad_attr` of the profile; in a function it defines too), and every way
    out of it hands `key` back in the mode it had on entry (`was = m.training; m.eval(); ...;
    m.train(mode=was)`): it reads gradients in the mode it chose (a Fisher-information estimate, a
    saliency map, gradient norms) and is not a training step of `key`. A helper that only runs
    `loss.backward()` for a caller that steps neither reads `.grad` nor, usually, hands the mode back.
    (MDL304's 3 findings on measuring set 3 were such Fisher estimates, all false.)"""
    if flow.has_optimizer_step or not any(s.kind == "backward" for s in flow.steps):
        return False
    return get(flow.exit, key) == ENTRY_SET and _reads_attr(flow.node, grad_attr)


def input_gradient_probe(flow: ScopeFlow, grad_flag: str, grad_method: str, tracks: bool = True) -> bool:
    """The scope backpropagates but steps no optimizer (itself or in what it calls), and makes an
    input tensor require gradients (`Variable(x, requires_grad=True)`, `torch.zeros(..., requires_grad=True)`,
    or `x.requires_grad_()` on a tensor it hands to a model call): the backward computes a gradient
    with respect to the input (ODIN's input perturbation, an FGSM/PGD attack, a saliency map), which
    is meant in eval mode, whatever mode it leaves the model in (`grad_flag` / `grad_method`: the
    profile's `requires_grad` / `requires_grad_`; `tracks`: the literal that turns tracking on, False for
    an inverted flag). Also `delta.requires_grad = True` on a name in a model call's arguments
    (`model(normalize(X + delta))`: set 13's AWP attack, taken as a training step). Energy-OOD's ODIN scoring (measuring set 7) was reported as a training routine."""
    if flow.has_optimizer_step or not any(s.kind == "backward" for s in flow.steps) or not grad_flag:
        return False
    # the names in what the model calls are given (`net(x)`, `model(normalize(X + delta))`)
    fed = {dotted(n) for mc in flow.model_calls for a in mc.node.args for n in descendants(a.value)
           if type(n) in (cst.Name, cst.Attribute)} - {None}
    for n in descendants(flow.node):
        if type(n) is cst.Arg and n.keyword is not None and n.keyword.value == grad_flag \
                and literal_value(n.value) is tracks:
            return True
        if type(n) is cst.Assign and literal_value(n.value) is tracks and any(
                type(t.target) is cst.Attribute and t.target.attr.value == grad_flag
                and dotted(t.target.value) in fed for t in n.targets):
            return True  # `delta.requires_grad = True`, then `net(x + delta)`
        if type(n) is cst.Assign and _requires_grad_call(n.value, grad_method) \
                and any(dotted(t.target) in fed for t in n.targets):
            return True  # `x = x.clone().requires_grad_()`, then `net(x)`
        if type(n) is cst.Expr and _requires_grad_call(n.value, grad_method) and dotted(n.value.func.value) in fed:
            return True  # `x.requires_grad_()`, then `net(x)`
    return False


def _requires_grad_call(node: cst.CSTNode, method: str) -> bool:
    return (isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and node.func.attr.value == method
            and (not node.args or literal_value(node.args[0].value) is True))


def _reads_attr(node: cst.CSTNode, attr: str) -> bool:
    """Some `X.<attr>` in `node` that is not the target of an assignment (`p.grad = None` clears)."""
    if not attr:
        return False
    stored: Set[int] = set()  # nodes of attribute assignment targets (pre-order: seen before them)
    for n in descendants(node):
        if type(n) is cst.AssignTarget and type(n.target) is cst.Attribute:
            stored.update(id(d) for d in descendants(n.target))
        elif type(n) is cst.Attribute and n.attr.value == attr and id(n) not in stored:
            return True
    return False


def step_over_inputs(flow: ScopeFlow, step: Step) -> bool:
    """The step's optimizer is bound in this scope to an optimizer over input tensors (see there)."""
    call = step.inner
    if not (isinstance(call, cst.Call) and isinstance(call.func, cst.Attribute)):
        return False
    key = key_of(call.func.value)
    def bound(name: str):
        return [b.node.value for b in flow.bindings.get(name, ()) if isinstance(b.node, cst.Assign)]

    return any(optimizer_over_inputs(value, bound) for value in (bound(key) if key else ()))

_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def for_context(ctx) -> ModeFlow:
    """The file's ModeFlow, shared by every rule that asks during one check."""
    mf = _CACHE.get(ctx)
    if mf is None:
        mf = ModeFlow(ctx)
        _CACHE[ctx] = mf
    return mf

"""Mode branches: the places where a module's code takes one path in training and another in eval.

For every `nn.Module` class (the same detection as the rules: `FileContext.is_module_class`, across
files when a `ProjectIndex` is given) this finds, in its methods and the functions nested in them:

- `if <test>:` / `elif <test>:` statements whose test reads the mode (`modelint.analysis.mode.reads_mode`:
  `self.training`, `self.encoder.training`, training-like parameters such as `training` or
  `deterministic`, locals derived from them), or calls `torch.is_grad_enabled()` /
  `torch.is_inference_mode_enabled()`;
- early exits on the mode (`if not self.training: return x`): an `if` without `else` whose body
  returns/raises; the statements after it are its other arm;
- conditional expressions `a if self.training else b` (recorded, but see "Measuring" below).

Each `ModeBranch` records the class, the method, where the test is, the line ranges of the arm taken
when the test is true and of the arm taken when it is false (an `if` without `else` has an implicit
false arm: the fall-through, "the test was evaluated and was false"), and the polarity: which arm
training takes (`if not self.training:` flips it; `deterministic`/`is_eval`-style names are true in
eval). A test such as `self.training and self.p > 0` still has a polarity: eval always takes the false
arm, and only training can take the true one. A test whose polarity cannot be told
(`self.training == other`) is recorded with `true_is_train=None` and never reported.

Measuring with line arcs (what `modelint.modecov.report` does): an arm ran when some executed
arc goes from a line of the `if ...:` header to a line of that arm (true arm), or from the header to any
line outside the header and the true arm (false arm, including the fall-through and leaving the
function). That is exact for statement-level branches whose arm starts on its own line. It cannot tell
the two arms of a conditional expression apart (CPython attributes the jump to the expression's first
line, which is also the true arm's), nor an `if` whose body is on the header line
(`if self.training: x = f(x)`), nor `and`/`or` short-circuits: those are recorded with
`measurable=False` and a note, and never reported.

Cost: `scan_files` reads the index facts of every file (cheap, text + `ast` snippets), then only the
files that define a module class, contain a mode word and (by an `ast` over-approximation,
`_may_have_mode_test`) may test the mode inside a class are parsed with LibCST. Nothing here imports
torch or coverage.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import libcst as cst

from modelint.analysis import mode as mode_analysis
from modelint.analysis.context import FileContext
from modelint.analysis.guards import jumps_out
from modelint.frameworks import PROFILES
from modelint.analysis.index import FileFacts, ProjectIndex, facts_from_source, module_name
from modelint.analysis.modules import ModuleClassifier
from modelint.analysis.walk import iter_children

# Grad-mode queries as mode atoms: `torch.is_grad_enabled()` is true on the training side (autograd
# records), `torch.is_inference_mode_enabled()` on the eval side.
_GRAD_POLARITY = {"grad": True, "inference": False}

# A file containing none of these cannot hold a mode branch (text pre-filter; `train` covers
# `training`, `is_train`, `train_mode`, `def train(self, mode)` ...).
TRIGGERS: Tuple[bytes, ...] = (b"train", b"deterministic", b"is_eval", b"eval_mode", b"inference", b"is_grad_enabled")

Lines = Tuple[int, int]


@dataclass(frozen=True)
class Arm:
    role: str  # "train" | "eval"
    when: bool  # the value of the test that selects this arm
    lines: Optional[Lines]  # first and last line of its code; None for a bare fall-through
    implicit: bool  # no `else`: the arm is "the test was false and execution went on"


@dataclass(frozen=True)
class ModeBranch:
    path: str
    class_name: str  # "Decoder", "Outer.Inner"
    method: str  # "forward", "forward.<locals>.step"
    kind: str  # "if" | "elif" | "early-exit" | "ifexp"
    condition: str  # source of the test, on one line
    subject: str  # "training" (the module / a parameter) or "grad" (torch.is_grad_enabled())
    line: int  # the test expression (1-based line and column, end exclusive)
    column: int
    end_line: int
    end_column: int
    statement_line: int  # first line of the `if`/`elif` (or of the statement holding the expression)
    header: Lines  # lines an arc must start from: the `if ...:` header
    true_lines: Optional[Lines]
    false_lines: Optional[Lines]  # None: implicit fall-through (or an expression's arm)
    true_is_train: Optional[bool]  # polarity; None = cannot be told
    measurable: bool = True
    note: str = ""  # why it is not measurable

    @property
    def qualname(self) -> str:
        return f"{self.class_name}.{self.method}"

    def arm(self, role: str) -> Optional[Arm]:
        if self.true_is_train is None:
            return None
        when = self.true_is_train if role == "train" else not self.true_is_train
        lines = self.true_lines if when else self.false_lines
        implicit = (not when) and self.false_is_implicit
        return Arm(role=role, when=when, lines=lines, implicit=implicit)

    @property
    def false_is_implicit(self) -> bool:
        return self.kind == "early-exit" or (self.kind in ("if", "elif") and self.false_lines is None)

    @property
    def train_arm(self) -> Optional[Arm]:
        return self.arm("train")

    @property
    def eval_arm(self) -> Optional[Arm]:
        return self.arm("eval")

    def to_dict(self) -> dict:
        return {
            "path": self.path,
            "class": self.class_name,
            "method": self.method,
            "kind": self.kind,
            "condition": self.condition,
            "subject": self.subject,
            "line": self.line,
            "column": self.column,
            "true_lines": list(self.true_lines) if self.true_lines else None,
            "false_lines": list(self.false_lines) if self.false_lines else None,
            "true_is_train": self.true_is_train,
            "measurable": self.measurable,
            "note": self.note,
        }


def may_have_branches(source: bytes) -> bool:
    """Cheap text test: False proves the file holds no mode branch."""
    return b"class" in source and any(t in source for t in TRIGGERS)


_MODE_WORDS = (mode_analysis.MODE_NAMES | mode_analysis.MODE_ATTRS | mode_analysis.EVAL_NAMES
               | {n for p in PROFILES for n in p.grad_query_last_names})


def _may_have_mode_test(data: bytes) -> bool:
    """Can a class of this file hold a mode test? An over-approximation computed with `ast` (a C
    parser, a fraction of a LibCST parse): some `if`/conditional expression inside a class tests a
    mode word (`training`, `deterministic`, `is_grad_enabled`, ...) or a name assigned, anywhere in
    that class, from an expression that does (to a fixpoint, like `mode.function_facts` per function),
    or the class defines `train` (`def train(self, mode)`: `if mode:`). Class headers inside
    docstrings do not count."""
    import ast

    def bound_names(targets):  # `x, (flag, *rest) = ...` binds x, flag and rest
        for t in targets:
            if isinstance(t, ast.Name):
                yield t.id
            elif isinstance(t, (ast.Tuple, ast.List)):
                yield from bound_names(t.elts)
            elif isinstance(t, ast.Starred):
                yield from bound_names([t.value])

    def words(expr):
        for node in ast.walk(expr):
            if isinstance(node, ast.Name):
                yield node.id
            elif isinstance(node, ast.Attribute):
                yield node.attr

    try:
        tree = ast.parse(data)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    for cls in ast.walk(tree):
        if not isinstance(cls, ast.ClassDef):
            continue
        tests, assigns = [], []
        for node in ast.walk(cls):
            if isinstance(node, (ast.If, ast.IfExp)):
                tests.append(node.test)
            elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign, ast.NamedExpr)) and node.value is not None:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names = set(bound_names(targets))
                if names:
                    assigns.append((names, set(words(node.value))))
            elif isinstance(node, ast.FunctionDef) and node.name == "train":
                return True
        if not tests:
            continue
        mode_words = set(_MODE_WORDS)
        changed = True
        while changed:
            changed = False
            for names, used in assigns:
                if not names <= mode_words and used & mode_words:
                    mode_words |= names
                    changed = True
        if any(not mode_words.isdisjoint(words(test)) for test in tests):
            return True
    return False


def find_mode_branches(
    source: Union[str, bytes],
    path: str,
    *,
    index: Optional[ProjectIndex] = None,
    module_bases: Sequence[str] = (),
    facts: Optional[FileFacts] = None,
    classifier: Optional[ModuleClassifier] = None,
) -> List[ModeBranch]:
    """Every mode branch in the module classes of one file, in source order. A file that does not
    parse has none (the static checker reports it as MDL000)."""
    data = source.encode("utf-8") if isinstance(source, str) else source
    if not may_have_branches(data) or not _may_have_mode_test(data):
        return []
    if facts is None:
        facts = facts_from_source(data, Path(path)) or FileFacts(modname=module_name(Path(path)))
    if classifier is None:
        if index is None:
            index = ProjectIndex()
            index.add(facts)
        classifier = ModuleClassifier(index, module_bases)
    try:
        module = cst.parse_module(data)
    except Exception:  # ParserSyntaxError, RecursionError, ...
        return []
    ctx = FileContext(path, module, facts, classifier)
    finder = _Finder(ctx)
    try:
        for classdef, qual in _classes(module):
            if ctx.is_module_class(classdef):
                finder.scan_class(classdef, qual)
    except RecursionError:
        return []
    return finder.resolve()


def scan_files(paths: Iterable[Union[str, Path]], module_bases: Sequence[str] = ()) -> Dict[str, List[ModeBranch]]:
    """path -> its mode branches, for the files that have some. Module-ness is decided across all
    the given files (a class whose `nn.Module` base lives in another of them counts)."""
    from modelint.sources import read_source

    sources: Dict[str, bytes] = {}
    index = ProjectIndex()
    all_facts: Dict[str, Optional[FileFacts]] = {}
    for p in paths:
        data, _ = read_source(Path(p))
        if data is None:
            continue
        facts = facts_from_source(data, Path(p))
        all_facts[str(p)] = facts
        if facts is not None:
            index.add(facts)
            if may_have_branches(data):
                sources[str(p)] = data
    classifier = ModuleClassifier(index, module_bases)
    out: Dict[str, List[ModeBranch]] = {}
    for p, data in sources.items():
        facts = all_facts[p]
        # The index's class headers say whether the file has a module class at all: most files
        # of a project do not, and need no LibCST parse.
        if not any(classifier.is_module_base(b) for bases in facts.classes.values() for b in bases):
            continue
        found = find_mode_branches(data, p, facts=facts, classifier=classifier)
        if found:
            out[p] = found
    return out


# --------------------------------------------------------------------------------------------


def _classes(module: cst.Module) -> Iterator[Tuple[cst.ClassDef, str]]:
    """Every class at any statement depth with its dotted name (`Outer.Inner`; a class inside a
    function keeps its enclosing class's prefix, as `modelint.analysis.index` names them)."""
    stack: List[Tuple[cst.CSTNode, str]] = [(module, "")]
    while stack:
        node, prefix = stack.pop()
        kids = [c for c in iter_children(node) if not isinstance(c, cst.BaseExpression)]
        for child in reversed(kids):
            if isinstance(child, cst.ClassDef):
                stack.append((child.body, f"{prefix}{child.name.value}."))
            else:
                stack.append((child, prefix))
        for child in kids:
            if isinstance(child, cst.ClassDef):
                yield child, f"{prefix}{child.name.value}"


def _suite_lines(suite: cst.BaseSuite, pos) -> Optional[Lines]:
    if isinstance(suite, cst.IndentedBlock) and suite.body:
        return pos[suite.body[0]].start.line, pos[suite.body[-1]].end.line
    if isinstance(suite, cst.SimpleStatementSuite):
        r = pos[suite]
        return r.start.line, r.end.line
    return None


class _Pending:
    """A branch found during the walk; positions are filled in once, at the end."""

    __slots__ = ("node", "kind", "cls", "method", "facts", "block", "index_in_block")

    def __init__(self, node, kind, cls, method, facts, block, index_in_block):
        self.node = node
        self.kind = kind
        self.cls = cls
        self.method = method
        self.facts = facts
        self.block = block
        self.index_in_block = index_in_block


class _Finder:
    def __init__(self, ctx: FileContext):
        self.ctx = ctx
        self.pending: List[_Pending] = []

    # --- recognising tests ---------------------------------------------------------------------
    def _grad_atom(self, node: cst.CSTNode) -> Optional[bool]:
        if isinstance(node, cst.Call) and not node.args:
            return _GRAD_POLARITY.get(self.ctx.framework.grad_queries.get(self.ctx.resolve(node.func) or ""))
        return None

    def _subject(self, test: cst.BaseExpression, facts: mode_analysis.FunctionFacts) -> Optional[str]:
        if mode_analysis.reads_mode(test, facts.mode_locals):
            return "training"
        stack: List[cst.CSTNode] = [test]
        while stack:
            node = stack.pop()
            if isinstance(node, cst.Call) and self._grad_atom(node) is not None:
                return "grad"
            if isinstance(node, (cst.Lambda, cst.BaseComp)):
                continue
            stack.extend(iter_children(node))
        return None

    # --- walking -------------------------------------------------------------------------------
    def scan_class(self, classdef: cst.ClassDef, qual: str) -> None:
        if not isinstance(classdef.body, cst.IndentedBlock):
            return
        for stmt in classdef.body.body:
            if isinstance(stmt, cst.FunctionDef):
                self._scan_function(stmt, qual, stmt.name.value)

    def _scan_function(self, fn: cst.FunctionDef, cls: str, method: str) -> None:
        facts = self.ctx.function_facts(fn)
        elifs = set()
        # (node, block holding it (IndentedBlock) or None, index in that block)
        stack: List[Tuple[cst.CSTNode, Optional[cst.IndentedBlock], int]] = [(fn.body, None, 0)]
        while stack:
            node, block, idx = stack.pop()
            if isinstance(node, cst.ClassDef):
                continue  # a class defined in a method is scanned on its own if it is a module
            if isinstance(node, cst.FunctionDef) and node is not fn:
                self._scan_function(node, cls, f"{method}.<locals>.{node.name.value}")
                continue
            if isinstance(node, cst.If):
                subject = self._subject(node.test, facts)
                if subject is not None:
                    kind = "elif" if id(node) in elifs else "if"
                    if kind == "if" and node.orelse is None and jumps_out(node.body):
                        kind = "early-exit"
                    self.pending.append(_Pending(node, kind, cls, method, facts, block, idx))
                if isinstance(node.orelse, cst.If):
                    elifs.add(id(node.orelse))
            elif isinstance(node, cst.IfExp):
                if self._subject(node.test, facts) is not None:
                    self.pending.append(_Pending(node, "ifexp", cls, method, facts, None, 0))
            if isinstance(node, cst.IndentedBlock):
                for i in range(len(node.body) - 1, -1, -1):
                    stack.append((node.body[i], node, i))
            else:
                for child in reversed(list(iter_children(node))):
                    stack.append((child, None, 0))

    # --- positions -----------------------------------------------------------------------------
    def resolve(self) -> List[ModeBranch]:
        if not self.pending:
            return []
        pos = self.ctx.positions()
        out = [self._branch(p, pos) for p in self.pending]
        return sorted(out, key=lambda b: (b.line, b.column, b.kind))

    def _polarity(self, p: _Pending) -> Optional[bool]:
        test = p.node.test
        args = (p.facts.mode_locals, p.facts.assigns, self._grad_atom)
        in_train = mode_analysis.value_under_mode(test, True, *args)
        in_eval = mode_analysis.value_under_mode(test, False, *args)
        if in_train is not None and in_eval is not None:
            return in_train if in_train != in_eval else None
        if in_train is not None:
            return in_train  # only training can take arm `in_train`; the other arm is eval's
        if in_eval is not None:
            return not in_eval
        return None

    def _branch(self, p: _Pending, pos) -> ModeBranch:
        node = p.node
        test = node.test
        trange = pos[test]
        condition = " ".join(self.ctx.module.code_for_node(test).split())
        polarity = self._polarity(p)
        measurable, note = True, ""
        if polarity is None:
            measurable, note = False, "which arm training takes cannot be told from the test"
        if isinstance(node, cst.IfExp):
            stmt_line = trange.start.line
            body, orelse = pos[node.body], pos[node.orelse]
            return ModeBranch(
                path=self.ctx.path, class_name=p.cls, method=p.method, kind="ifexp", condition=condition,
                subject=self._subject(test, p.facts) or "training",
                line=trange.start.line, column=trange.start.column + 1,
                end_line=trange.end.line, end_column=trange.end.column + 1,
                statement_line=stmt_line, header=(trange.start.line, trange.end.line),
                true_lines=(body.start.line, body.end.line), false_lines=(orelse.start.line, orelse.end.line),
                true_is_train=polarity, measurable=False,
                note="conditional expression: line coverage cannot tell its arms apart",
            )
        if_line = pos[node].start.line
        true_lines = _suite_lines(node.body, pos)
        header_end = trange.end.line
        if isinstance(node.body, cst.IndentedBlock) and true_lines is not None:
            header_end = max(header_end, true_lines[0] - 1)
        elif measurable:
            measurable, note = False, "the arm is on the same line as the test"
        false_lines: Optional[Lines] = None
        if isinstance(node.orelse, cst.Else):
            false_lines = _suite_lines(node.orelse.body, pos)
        elif isinstance(node.orelse, cst.If):
            r = pos[node.orelse]
            false_lines = (r.start.line, r.end.line)
        elif p.kind == "early-exit" and p.block is not None and p.index_in_block + 1 < len(p.block.body):
            rest = p.block.body[p.index_in_block + 1:]
            false_lines = (pos[rest[0]].start.line, pos[rest[-1]].end.line)
        return ModeBranch(
            path=self.ctx.path, class_name=p.cls, method=p.method, kind=p.kind, condition=condition,
            subject=self._subject(test, p.facts) or "training",
            line=trange.start.line, column=trange.start.column + 1,
            end_line=trange.end.line, end_column=trange.end.column + 1,
            statement_line=if_line, header=(if_line, header_end),
            true_lines=true_lines, false_lines=false_lines, true_is_train=polarity,
            measurable=measurable, note=note,
        )

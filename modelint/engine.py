"""Parse each file once, run every selected rule in one walk, apply suppressions; in parallel.

Flow for one run (`check_paths`):
1. discovery gives the files;
2. the index pass reads every file's import and class statements (cross-file facts such as
   "`Encoder` is an nn.Module because its base in `base.py` is");
3. the check pass parses each file with LibCST (skipped when a cheap text pre-filter proves that no
   selected rule can fire), walks it once dispatching to all rules, positions the reports, drops the
   suppressed ones and returns Findings.
The check pass runs in a process pool for large inputs and in-process for a handful of files.
With a cache (`modelint.cache`), files whose bytes, configuration and cross-file facts are
unchanged are not parsed at all.
"""

from __future__ import annotations

import ast
import multiprocessing
import os
import re
import sys
import tokenize
import io
import itertools
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Type

from modelint import notebook
from modelint.analysis.index import FileFacts, ProjectIndex, facts_from_source
from modelint.analysis.modules import ModuleClassifier
from modelint.catalog import catalog
from modelint.findings import Finding
from modelint.sources import MAX_FILE_BYTES, read_source  # noqa: F401 (public here too)
from modelint.suppressions import code_matches, comment_suppressions  # noqa: F401

if TYPE_CHECKING:
    from modelint.analysis.context import FileContext
    from modelint.cache import Cache  # LibCST and the rules are imported on first use: a fully cached run needs neither
    import libcst as cst

    from modelint.rules.base import Rule

# Below this many files everything runs in the calling process: a pre-commit run on three files
# must not pay for a pool.
PARALLEL_MIN_FILES = 24


@dataclass
class EngineSettings:
    """Everything the engine needs, already resolved from config and command line."""

    select: Tuple[str, ...]  # codes of the selected rules (and tool codes), sorted
    rule_options: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    module_bases: Tuple[str, ...] = ()
    # (glob, codes) pairs; globs are matched against paths relative to `root`.
    per_file_ignores: Tuple[Tuple[str, Tuple[str, ...]], ...] = ()
    root: str = "."
    jobs: int = 0  # 0 = CPU count
    prefilter: bool = True
    cache: Optional["Cache"] = None
    # Autofix: None (report only), "safe" or "unsafe" (also apply unsafe fixes).
    fix: Optional[str] = None
    # With `fix`: write the fixed files (False = only compute diffs, for --diff).
    write: bool = True


@dataclass
class CheckResult:
    findings: List[Finding]
    files_checked: int
    # Autofix results (empty unless settings.fix): applied fixes per code, and per changed file
    # its path and unified diff; `fix_errors` explains fixes that were not written.
    fixed: Dict[str, int] = field(default_factory=dict)
    diffs: List[Tuple[str, str]] = field(default_factory=list)
    fix_errors: List[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Reading


# --------------------------------------------------------------------------------------------
# Check pass (one file)

def _syntax_check(path: str, data: bytes) -> List[Finding]:
    """For files no rule needs to parse: CPython's parser (far cheaper than LibCST) still catches
    syntax errors, so a broken file is never silently passed over."""
    try:
        compile(data, path, "exec", flags=ast.PyCF_ONLY_AST, dont_inherit=True)
    except SyntaxError as exc:
        # LibCST, the parser the rules use, has the last word, so that whether a file gets MDL000
        # does not depend on the pre-filter: a file only CPython rejects (a non-ASCII bytes
        # literal, `[*a for a in b]`) is left to the interpreter. Only broken files get here.
        if not _may_be_too_deep(data):  # (LibCST could take minutes on the others)
            import libcst as cst

            try:
                cst.parse_module(data)
                return []
            except Exception:
                pass
        return [_parse_error(path, exc)]
    except (ValueError, RecursionError, MemoryError):
        pass
    return []


class _Dispatcher:
    """Calls every rule's visit_/leave_ method for each node, keeping `ctx.ancestors` current.
    A rule that raises is reported as MDL999 and dropped for the rest of the file."""

    def __init__(self, ctx: FileContext, rules: List[Rule]):
        self.ctx = ctx
        self.rules = rules
        self.failed: Dict[str, str] = {}
        self._visit: Dict[type, List[Tuple[Rule, Callable]]] = {}
        self._leave: Dict[type, List[Tuple[Rule, Callable]]] = {}

    def _methods(self, table: Dict[type, list], prefix: str, tp: type) -> list:
        found = table.get(tp)
        if found is None:
            name = prefix + tp.__name__
            found = [(r, getattr(r, name)) for r in self.rules if hasattr(r, name)]
            table[tp] = found
        return found

    def _call(self, rule: Rule, fn: Callable, node: cst.CSTNode) -> None:
        if rule.code in self.failed:
            return
        try:
            fn(node)
        except Exception as exc:  # a bug in a rule must not stop the run
            self.failed[rule.code] = f"{type(exc).__name__}: {exc}"

    def enter(self, node: cst.CSTNode) -> None:
        self.ctx.ancestors.append(node)
        for rule, fn in self._methods(self._visit, "visit_", type(node)):
            self._call(rule, fn, node)

    def leave(self, node: cst.CSTNode) -> None:
        for rule, fn in self._methods(self._leave, "leave_", type(node)):
            self._call(rule, fn, node)
        self.ctx.ancestors.pop()


# LibCST's parser takes time superlinear in the length of one operator chain (measured: a 1,000-term
# sum ~2 s, 4,000 terms ~90 s) and its code generation recurses once per nesting level, so one
# generated or hostile file could stall a whole run. Real code is shallow: the deepest syntax tree
# among the 5,004 files of the bench corpora is 54 levels. So a file with many operator tokens (the
# only way to build such a chain; about 3% of real files) is first parsed by CPython, which is ~8x
# cheaper, and is refused with MDL000 when its tree is deeper than MAX_NESTING.
MAX_NESTING = 200
_NESTING_CHECK_TOKENS = 1000
_OPERATOR_TOKENS = tuple(bytes([c]) for c in b"+-*/%|&^~@<>") + (b"not ", b" and ", b" or ", b" if ", b"lambda", b"await ")


_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"()[]{}")
_BRACKET_STEP = [0] * 256
for _c in b"([{":
    _BRACKET_STEP[_c] = 1
for _c in b")]}":
    _BRACKET_STEP[_c] = -1
_NESTING_CHECK_BRACKETS = 100


def _bracket_depth(data: bytes) -> int:
    """The deepest bracket nesting in the text, strings and comments included (a cheap upper
    estimate: CPython itself refuses more than 200 levels, LibCST accepts thousands, slowly)."""
    steps = data.translate(None, _NOT_BRACKETS)
    return max(itertools.accumulate(_BRACKET_STEP[c] for c in steps), default=0)


def _may_be_too_deep(data: bytes) -> bool:
    """Cheap text test: could this file hold a chain or nesting LibCST is slow on?"""
    return (sum(data.count(t) for t in _OPERATOR_TOKENS) >= _NESTING_CHECK_TOKENS
            or _bracket_depth(data) >= _NESTING_CHECK_BRACKETS)


def _nesting_error(path: str, data: bytes) -> Optional[Finding]:
    """MDL000 for a file nested too deeply for LibCST to parse in reasonable time, else None."""
    if not _may_be_too_deep(data):
        return None
    try:
        tree = compile(data, path, "exec", flags=ast.PyCF_ONLY_AST, dont_inherit=True)
    except RecursionError:
        return _parse_error(path, RecursionError())
    except SyntaxError as exc:
        # LibCST would reject it too (almost always), perhaps only after a long time.
        return _parse_error(path, exc)
    except (ValueError, MemoryError):
        return None
    stack = [(tree, 1, 1, 0)]
    pop, push, children = stack.pop, stack.append, ast.iter_child_nodes
    while stack:
        node, depth, line, column = pop()
        line, column = getattr(node, "lineno", line), getattr(node, "col_offset", column)  # (operators have none)
        if depth > MAX_NESTING:
            return Finding(path, line, column + 1, "MDL000",
                           f"cannot parse: code is nested more than {MAX_NESTING} levels deep (generated code?); "
                           "the file was not checked", name="parse-error", level="error")
        for child in children(node):
            push((child, depth + 1, line, column))
    return None


def _parse_error(path: str, exc: Exception, data: bytes = b"") -> Finding:
    """MDL000 at the parser's position. CPython's own message is preferred when it also rejects the
    file (it is clearer: "expected ':'"); LibCST's is used when only LibCST's grammar does."""
    def finding(line: int, column: int, message: str) -> Finding:
        return Finding(path, max(line, 1), max(column, 1), "MDL000", f"cannot parse: {message}",
                       name="parse-error", level="error")

    if isinstance(exc, RecursionError):
        return finding(1, 1, "code is nested too deeply to analyse")
    if isinstance(exc, SyntaxError):  # CPython's own verdict on these bytes: no need to parse again
        return finding(exc.lineno or 1, exc.offset or 1, exc.msg)
    if data:
        try:
            compile(data, path, "exec", flags=ast.PyCF_ONLY_AST, dont_inherit=True)
        except SyntaxError as syn:
            return finding(syn.lineno or 1, syn.offset or 1, syn.msg)
        except (ValueError, RecursionError, MemoryError):
            pass
    import libcst as cst

    if isinstance(exc, cst.ParserSyntaxError):
        message = re.sub(r"^(parser error: )?error at \d+:\d+: ", "", str(exc.message).strip().splitlines()[0])
        return finding(exc.raw_line, exc.raw_column + 1, message or "invalid syntax")
    return finding(1, 1, f"{type(exc).__name__}: {exc}")


def check_file(
    path: str,
    facts: Optional[FileFacts],
    rule_classes: Sequence[Type[Rule]],
    rule_options: Dict[str, Dict[str, Any]],
    classifier: ModuleClassifier,
    select: Sequence[str],
    prefilter: bool = True,
) -> List[Finding]:
    """All findings for one file (suppressions applied, per-file ignores not)."""
    if path.endswith(".ipynb"):
        return _check_notebook(path, facts, rule_classes, rule_options, classifier, select, prefilter)
    data, problem = read_source(Path(path))
    if data is None:
        return [Finding(path, 1, 1, "MDL000", problem, name="parse-error", level="error")]
    return check_bytes(path, data, facts, rule_classes, rule_options, classifier, select, prefilter)


def _check_notebook(path: str, facts, rule_classes, rule_options, classifier, select, prefilter,
                    data: Optional[bytes] = None) -> List[Finding]:
    """Check the joined code cells, then give each finding its cell and in-cell position (its fix's
    edits too: they are in cell coordinates, and a fix that spans cells is dropped)."""
    try:
        nb = notebook.load(Path(path).read_bytes() if data is None else data)
    except OSError as exc:
        return [Finding(path, 1, 1, "MDL000", f"cannot read file: {exc.strerror or exc}", name="parse-error", level="error")]
    except notebook.NotebookError as exc:
        return [Finding(path, 1, 1, "MDL000", str(exc), name="parse-error", level="error")]
    out = [
        Finding(path, line, column, "MDL000", f"cannot parse cell: {message}", name="parse-error", level="error",
                cell=cell.number, extra=(("json_line", notebook.json_line(cell, line)),))
        for cell, line, column, message in nb.broken
    ]
    for f in check_bytes(path, nb.source.encode("utf-8"), facts, rule_classes, rule_options, classifier, select, prefilter):
        where = nb.locate(f.line)
        if where is None:
            out.append(f)
            continue
        cell, line = where
        end = f.end_line - cell.first_line + 1 if f.end_line else 0
        out.append(replace(f, line=line, end_line=max(end, line) if end else 0, cell=cell.number,
                           extra=f.extra + (("json_line", notebook.json_line(cell, line)),),
                           fix=_cell_fix(f.fix, nb, cell)))
    return out


def _cell_fix(fx, nb, cell):
    """A fix in joined-module coordinates -> the same fix in `cell`'s own coordinates, or None if
    any edit leaves the cell or touches a masked IPython line."""
    if fx is None:
        return None
    shift = cell.first_line - 1
    n_lines = cell.source.count("\n") + 1
    masked = notebook.masked_lines(cell)
    edits = []
    for e in fx.edits:
        line, end_line = e.line - shift, e.end_line - shift
        if line < 1 or end_line > n_lines + (1 if e.end_column == 1 else 0) or any(
                n in masked for n in range(line, end_line + 1)):
            return None
        edits.append(replace(e, line=line, end_line=end_line))
    return replace(fx, edits=tuple(edits))


def check_source(
    source: str,
    path: str = "example.py",
    select: Optional[Sequence[str]] = None,
    rule_options: Optional[Dict[str, Dict[str, Any]]] = None,
    module_bases: Sequence[str] = (),
) -> List[Finding]:
    """Check one in-memory module on its own (used by tests and the rule examples)."""
    from modelint.config import resolve_selection

    select = tuple(select) if select is not None else resolve_selection(None, (), ())
    found = _check_alone(path, source.encode("utf-8"), selected_rule_classes(select), rule_options or {}, select,
                         module_bases)
    return sorted(_visible(path, found, select, (), "."))


def _check_alone(path: str, data: bytes, rule_classes, rule_options, select, module_bases: Sequence[str] = ()):
    """check_bytes on one module as its own project (its cross-file index is itself)."""
    facts = facts_from_source(data, Path(path), modname=Path(path).stem)
    index = ProjectIndex()
    if facts is not None:
        index.add(facts)
    return check_bytes(path, data, facts, rule_classes, rule_options, ModuleClassifier(index, module_bases), select)


def check_bytes(
    path: str,
    data: bytes,
    facts: Optional[FileFacts],
    rule_classes: Sequence[Type[Rule]],
    rule_options: Dict[str, Dict[str, Any]],
    classifier: ModuleClassifier,
    select: Sequence[str],
    prefilter: bool = True,
) -> List[Finding]:
    import libcst as cst

    want_unused = "MDL001" in select
    if prefilter:
        # Text pre-filter: a rule none of whose trigger words occur in the file cannot fire.
        rule_classes = [r for r in rule_classes if not r.triggers or any(t.encode() in data for t in r.triggers)]
        if not rule_classes and not (want_unused and b"modelint" in data):
            return _syntax_check(path, data)
    too_deep = _nesting_error(path, data)
    if too_deep is not None:
        return [too_deep]
    try:
        module = cst.parse_module(data)
    except Exception as exc:  # ParserSyntaxError, RecursionError, ...
        return [_parse_error(path, exc, data)]
    try:
        return _check_module(path, data, module, facts, rule_classes, rule_options, classifier, select)
    except RecursionError:  # LibCST's code generation (positions, code of a node) recurses per level
        return [_parse_error(path, RecursionError())]


def _check_module(path, data, module, facts, rule_classes, rule_options, classifier, select) -> List[Finding]:
    from modelint.analysis.context import FileContext
    from modelint.analysis.positions import syntactic_positions
    from modelint.analysis.walk import walk

    want_unused = "MDL001" in select
    if facts is None:
        facts = facts_from_source(data, Path(path))
    ctx = FileContext(path, module, facts, classifier)
    rules = [cls(ctx, rule_options.get(cls.code)) for cls in rule_classes]
    dispatcher = _Dispatcher(ctx, rules)
    walk(module, dispatcher.enter, dispatcher.leave)
    reports = [r for rule in rules for r in rule.reports]
    findings = [
        Finding(path, 1, 1, "MDL999", f"rule {code} crashed on this file ({msg}); the file was only partly checked",
                name="internal-error", level="error")
        for code, msg in sorted(dispatcher.failed.items())
    ]
    if not reports and not want_unused:
        return findings
    positions = syntactic_positions(module) if reports else {}
    suppressions = comment_suppressions(_text(data, module.encoding)) if (reports or want_unused) else {}
    used = set()
    info = catalog()
    fix_positions = _FixPositions(module, positions)
    for report in reports:
        rng = positions[report.node]
        stmt_line = positions[report.statement].start.line if report.statement is not None else rng.start.line
        suppressed = False
        for line in {rng.start.line, stmt_line}:
            for i, (kind, codes) in enumerate(suppressions.get(line, ())):
                if code_matches(report.code, codes):
                    suppressed = True
                    used.add((line, i))
        if suppressed:
            continue
        findings.append(
            Finding(
                path=path,
                line=rng.start.line,
                column=rng.start.column + 1,
                end_line=rng.end.line,
                end_column=rng.end.column + 1,
                code=report.code,
                name=info[report.code].name,
                level=getattr(report, "level", None) or info[report.code].level,
                message=report.message,
                fix=_positioned_fix(report, fix_positions),
            )
        )
    if want_unused:
        selected_static = tuple(c for c in select if c != "MDL001")
        for line, entries in sorted(suppressions.items()):
            for i, (kind, codes) in enumerate(entries):
                if kind != "modelint" or (line, i) in used:
                    continue
                # Only complain about codes we actually ran; a suppression for a rule that is not
                # selected in this run may well be needed in another.
                if codes is not None and not any(c in selected_static or any(s.startswith(c) for s in selected_static) for c in codes):
                    continue
                what = f"[{', '.join(codes)}]" if codes else ""
                findings.append(Finding(path, line, 1, "MDL001", f"unused suppression `modelint: ignore{what}`: no finding on this line",
                                        name="unused-suppression", level="info"))
    return findings


def _text(data: bytes, encoding: str) -> str:
    """The parsed file's text (what `module.code` would regenerate, without the code generation)."""
    text = data.decode(encoding, errors="replace")
    return text[1:] if text.startswith("\ufeff") else text


class _FixPositions:
    """Positions for fixes: syntactic ones (shared with the findings) for statements, and, computed
    on first need, whitespace-inclusive ones for replaced expressions (they include the node's own
    parentheses, as its generated code does)."""

    def __init__(self, module, syntactic):
        self.module = module
        self.syntactic = syntactic
        self._inclusive = None

    def inclusive(self):
        if self._inclusive is None:
            from modelint.analysis.positions import whitespace_inclusive_positions

            self._inclusive = whitespace_inclusive_positions(self.module)
        return self._inclusive


def _positioned_fix(report, where: _FixPositions):
    """The rule's node-level fix as text edits; None when it cannot be placed (never a crash: a
    fix that cannot be built is just not offered)."""
    if report.fix is None:
        return None
    from modelint.fixes import FixSpec, to_fix

    if not isinstance(report.fix, FixSpec):
        return report.fix
    try:
        return to_fix(report.fix, where.module, where.syntactic, where.inclusive)
    except Exception:
        return None


# --------------------------------------------------------------------------------------------
# Autofix (one file)


@dataclass
class FixOutcome:
    findings: List[Finding]  # what remains after fixing (already filtered like the report)
    applied: Dict[str, int] = field(default_factory=dict)
    before: str = ""
    after: str = ""
    error: Optional[str] = None


def fix_text(text: str, encode: Callable[[str], Optional[bytes]], check: Callable[[bytes], List[Finding]],
             visible: Callable[[List[Finding]], List[Finding]], unsafe: bool, label: str = "<source>") -> FixOutcome:
    """Apply fixes to `text` until none applies (at most MAX_ROUNDS rounds); pure, no I/O.

    `encode` turns text into the bytes `check` lints (None: not representable in the file's
    encoding); `check(bytes)` lints a version of the file; `visible` drops what the report would
    not show (unselected codes, per-file ignores), so such findings are never fixed. Suppressed
    findings never get here: `check` already drops them. A file with a parse error (MDL000) or a
    crashed rule (MDL999) is never changed."""
    from modelint import fixes

    data = encode(text)
    if data is None:
        return FixOutcome([], before=text, after=text, error=f"{label}: not fixed: cannot encode")
    applied: Dict[str, int] = {}
    findings = visible(check(data))
    error = None
    current = text
    for _ in range(fixes.MAX_ROUNDS):
        if any(f.code in ("MDL000", "MDL999") for f in findings):
            break
        todo = [f for f in findings if fixes.applicable(f.fix, unsafe)]
        if not todo:
            break
        by_fix = {id(f.fix): f.code for f in todo}
        new_text, used = fixes.apply_fixes(current, [f.fix for f in todo])
        if not used or new_text == current:
            break
        if not fixes.parses(new_text):
            good: list = []  # keep the fixes that do not break the file
            for fx in used:
                candidate, ok = fixes.apply_fixes(current, good + [fx])
                if len(ok) == len(good) + 1 and fixes.parses(candidate):
                    good.append(fx)
            broken = sorted({by_fix[id(fx)] for fx in used if fx not in good})
            error = f"{label}: fix for {', '.join(broken)} not applied: the fixed file would not parse"
            if not good:
                break
            used = good
            new_text, _ = fixes.apply_fixes(current, good)
        new_data = encode(new_text)
        if new_data is None:
            error = f"{label}: fixes not applied: the fixed text cannot be encoded in the file's encoding"
            break
        for fx in used:
            applied[by_fix[id(fx)]] = applied.get(by_fix[id(fx)], 0) + 1
        current = new_text
        findings = visible(check(new_data))
    return FixOutcome(findings, applied, text, current, error)


def fix_file(path: str, findings: List[Finding], check: Callable[[bytes], List[Finding]],
             visible: Callable[[List[Finding]], List[Finding]], unsafe: bool, write: bool) -> FixOutcome:
    """`fix_text` on a file, then (if `write`) an atomic write keeping encoding, BOM, newlines and
    permissions. `findings` (what the report has so far) is returned when the file cannot be read."""
    from modelint import fixes

    try:
        decoded = fixes.decode(Path(path).read_bytes())
    except (OSError, SyntaxError, UnicodeDecodeError, LookupError) as exc:
        return FixOutcome(findings, error=f"{path}: not fixed: {exc}")
    outcome = fix_text(decoded.text, lambda t: fixes.encode(decoded, t), check, visible, unsafe, label=path)
    if outcome.after != outcome.before and write:
        try:
            fixes.write_atomic(Path(path), fixes.encode(decoded, outcome.after))
        except OSError as exc:
            return FixOutcome(findings, before=outcome.before, after=outcome.before,
                              error=f"{path}: cannot write fixes: {exc.strerror or exc}")
    return outcome


def fix_source(
    source: str,
    path: str = "example.py",
    select: Optional[Sequence[str]] = None,
    unsafe: bool = False,
    rule_options: Optional[Dict[str, Dict[str, Any]]] = None,
) -> FixOutcome:
    """`check_source`'s twin: fix one in-memory module (used by tests and the rule examples)."""
    from modelint.config import resolve_selection

    select = tuple(select) if select is not None else resolve_selection(None, (), ())
    rules = selected_rule_classes(select)

    def check(data: bytes) -> List[Finding]:
        return _check_alone(path, data, rules, rule_options or {}, select)

    def visible(found: List[Finding]) -> List[Finding]:
        return sorted(_visible(path, found, select, (), "."))

    return fix_text(source, lambda t: t.encode("utf-8"), check, visible, unsafe)


# --------------------------------------------------------------------------------------------
# Orchestration

_WORKER: Dict[str, Any] = {}


def _init_worker(state: Dict[str, Any]) -> None:
    _WORKER.clear()
    _WORKER.update(state)
    _WORKER["classifier"] = ModuleClassifier(state["index"], state["module_bases"])


def _check_in_worker(path: str) -> List[Finding]:
    w = _WORKER
    facts = w["index_by_path"].get(path)
    return check_file(path, facts, w["rule_classes"], w["rule_options"], w["classifier"], w["select"], w["prefilter"])


def _pool(jobs: int, initializer=None, initargs=()) -> ProcessPoolExecutor:
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods and sys.platform != "darwin" else "spawn")
    return ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=initializer, initargs=initargs)


def selected_rule_classes(select: Iterable[str]) -> List[Type["Rule"]]:
    from modelint.rules import all_rules

    chosen = set(select)
    return [r for r in all_rules() if r.code in chosen]


def check_paths(files: Sequence[Path], settings: EngineSettings) -> CheckResult:
    paths = [str(p) for p in files]
    cache = settings.cache

    # Index pass (in-process: it reads only import and class statements).
    index = ProjectIndex()
    index_by_path: Dict[str, Optional[FileFacts]] = {}
    file_keys: Dict[str, str] = {}
    sizes: Dict[str, int] = {}
    for p in paths:
        data, _ = read_source(Path(p))
        if data is None:
            index_by_path[p] = None  # reported by the check pass
            continue
        sizes[p] = len(data)
        facts = None
        if cache is not None:
            file_keys[p] = cache.file_key(p, data)
            facts = cache.get_facts(file_keys[p])
        if facts is None:
            facts = facts_from_source(data, Path(p))
            if cache is not None:
                cache.put_facts(file_keys[p], facts)
        index_by_path[p] = facts
        index.add(facts)

    # Check pass: cached results first, then the rest, in a pool when there are many.
    per_file: Dict[str, List[Finding]] = {}
    result_keys: Dict[str, str] = {}
    if cache is not None:
        fingerprint = index.fingerprint()
        for p, key in file_keys.items():
            result_keys[p] = cache.result_key(fingerprint, key)
            cached = cache.get_findings(result_keys[p])
            if cached is not None:
                per_file[p] = cached
    todo = [p for p in paths if p not in per_file]
    state = {
        "index": index,
        "index_by_path": index_by_path,
        "module_bases": settings.module_bases,
        "rule_options": settings.rule_options,
        "select": settings.select,
        "prefilter": settings.prefilter,
        "per_file_ignores": settings.per_file_ignores,
        "root": settings.root,
        "fix": settings.fix,
        "write": settings.write,
    }
    if todo or settings.fix:
        # Loading the rules imports LibCST (~0.3 s): a run served entirely from the cache skips it.
        state["rule_classes"] = selected_rule_classes(settings.select)
    jobs = settings.jobs or os.cpu_count() or 1
    for p, found in zip(todo, _run(_check_in_worker, todo, state, jobs, [sizes.get(p, 0) for p in todo])):
        per_file[p] = found
        if cache is not None and p in result_keys:
            cache.put_findings(result_keys[p], found)

    shown = {p: _visible(p, per_file[p], settings.select, settings.per_file_ignores, settings.root) for p in paths}
    result = CheckResult(findings=[], files_checked=len(paths))
    if settings.fix:
        from modelint.fixes import applicable, unified_diff

        unsafe = settings.fix == "unsafe"
        to_fix = [p for p in paths if any(applicable(f.fix, unsafe) for f in shown[p])]
        for p, outcome in zip(to_fix, _run(_fix_in_worker, [(p, shown[p]) for p in to_fix], state, jobs)):
            shown[p] = outcome.findings
            for code, n in outcome.applied.items():
                result.fixed[code] = result.fixed.get(code, 0) + n
            if outcome.after != outcome.before:
                result.diffs.append((p, unified_diff(p, outcome.before, outcome.after)))
            if outcome.error:
                result.fix_errors.append(outcome.error)
    result.findings = sorted(f for p in paths for f in shown[p])
    return result


def _run(fn: Callable, items: Sequence, state: Dict[str, Any], jobs: int,
         weights: Optional[Sequence[int]] = None) -> List:
    """`fn` over `items` with the worker state set: in a pool for many items, else in-process.
    In the pool the heaviest items (by `weights`, e.g. file sizes) go first, a few at a time, so
    that no worker is left with a large file while the others idle (the run's wall time is set by
    the worker that finishes last)."""
    if not items:
        return []
    if jobs > 1 and len(items) >= PARALLEL_MIN_FILES:
        order = sorted(range(len(items)), key=lambda i: -weights[i]) if weights else list(range(len(items)))
        out: List[Any] = [None] * len(items)
        with _pool(jobs, _init_worker, (state,)) as pool:
            chunk = max(1, min(4, len(items) // (jobs * 16)))
            for i, result in zip(order, pool.map(fn, [items[i] for i in order], chunksize=chunk)):
                out[i] = result
        return out
    _init_worker(state)
    return [fn(item) for item in items]


def _visible(path: str, findings: List[Finding], select: Sequence[str],
             per_file_ignores: Tuple[Tuple[str, Tuple[str, ...]], ...], root: str) -> List[Finding]:
    """What the report shows of a file's findings: selected codes (tool errors always), minus
    per-file ignores."""
    ignored = _per_file_ignored(path, per_file_ignores, root)
    return [f for f in findings
            if (f.code in select or f.code in ("MDL000", "MDL999")) and not (ignored and code_matches(f.code, ignored))]


def _fix_in_worker(item: Tuple[str, List[Finding]]) -> FixOutcome:
    path, findings = item
    w = _WORKER
    facts = None  # read again from each fixed version: a fix may add an import

    def visible(found: List[Finding]) -> List[Finding]:
        return _visible(path, found, w["select"], w["per_file_ignores"], w["root"])

    if path.endswith(".ipynb"):
        from modelint.notebook_fix import fix_notebook

        def check_nb(data: bytes) -> List[Finding]:
            return _check_notebook(path, facts, w["rule_classes"], w["rule_options"], w["classifier"], w["select"],
                                   w["prefilter"], data=data)

        return fix_notebook(path, findings, check_nb, visible, w["fix"] == "unsafe", w["write"])

    def check(data: bytes) -> List[Finding]:
        return check_bytes(path, data, facts, w["rule_classes"], w["rule_options"], w["classifier"], w["select"],
                           w["prefilter"])

    return fix_file(path, findings, check, visible, w["fix"] == "unsafe", w["write"])


def _per_file_ignored(path: str, per_file_ignores, root: str) -> Optional[Tuple[str, ...]]:
    if not per_file_ignores:
        return None
    from modelint.discovery import glob_match

    codes: List[str] = []
    for pattern, pattern_codes in per_file_ignores:
        if glob_match(pattern, path, root):
            codes.extend(pattern_codes)
    return tuple(codes) if codes else None

"""Parse each file once, run every selected rule in one walk, apply suppressions; in parallel.

Flow for one run (`check_paths`):
1. discovery gives the files;
2. the index pass reads every file's import and class statements (cross-file facts such as
   "`Encoder` is an nn.Module because its base in `base.py` is");
3. the check pass parses each file with LibCST (skipped when a cheap text pre-filter proves that no
   selected rule can fire), walks it once dispatching to all rules, positions the reports, drops the
   suppressed ones and returns Findings.
It runs in a process pool for many files, in-process for a few. With a cache (`modelint.cache`),
files whose bytes, configuration and cross-file facts are unchanged are not parsed at all.
Reading and the parse guard: `sources`; suppressions: `suppressions`; the fix loop: `fixing`.
"""

from __future__ import annotations

import gc
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Type

from modelint.analysis.index import FileFacts, ProjectIndex, facts_from_source
from modelint.analysis.classbodies import attach, class_bodies, project_fingerprint, with_bodies
from modelint.analysis.modules import ModuleClassifier
from modelint.catalog import catalog
from modelint.codes import INTERNAL_ERROR, PARSE_ERROR, UNUSED_SUPPRESSION
from modelint.findings import Finding, tool_finding
from modelint.sources import (decoded_text, load_notebook, nesting_error, parse_error, read_source, syntax_check,
                              shift_columns, tabs_expanded)
from modelint.suppressions import SuppressionTracker, shown

if TYPE_CHECKING:  # (the fixer and the pool are imported when used: ~15 ms a one-file run need not pay)
    from modelint.analysis.context import FileContext
    from modelint.fixing import FixOutcome
    from modelint.cache import Cache  # LibCST, rules: imported on first use (a fully cached run needs neither)
    import libcst as cst
    from modelint.rules.base import Rule

# Front ends other than Python's, by file suffix: a module whose `check(path, data, spec)` returns
# the file's findings (suppressions applied), as `check_bytes` does for Python.
OTHER_FRONT_ENDS: Dict[str, str] = {".rs": "modelint.rust.check"}


def front_end(path: str):
    """The front-end module for a non-Python file, or None (a Python file or notebook)."""
    name = OTHER_FRONT_ENDS.get(os.path.splitext(path)[1])
    if name is None:
        return None
    import importlib

    return importlib.import_module(name)


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


@dataclass(frozen=True)
class CheckSpec:
    """How to check one file, the same for every file of a run."""

    rule_classes: Tuple[Type["Rule"], ...]
    rule_options: Mapping[str, Mapping[str, Any]]
    classifier: ModuleClassifier  # the project's "is this class an nn.Module" (cross-file)
    select: Tuple[str, ...]
    prefilter: bool = True  # skip rules whose trigger words are not in the file


def check_file(path: str, facts: Optional[FileFacts], spec: CheckSpec, data: Optional[bytes] = None) -> List[Finding]:
    """All findings for one file (suppressions applied, per-file ignores not); `data`: its bytes,
    read when None. A notebook's joined code cells are checked, then each finding gets its cell and
    in-cell position (and its fix; a fix that spans cells is dropped)."""
    if path.endswith(".ipynb"):
        nb, problem = load_notebook(Path(path), data)
        if nb is None:
            return [tool_finding(path, PARSE_ERROR, problem)]
        return nb.broken_findings(path) + nb.to_cells(check_bytes(path, nb.source.encode("utf-8"), facts, spec))
    if data is None:
        data, problem = read_source(Path(path))
        if data is None:
            return [tool_finding(path, PARSE_ERROR, problem)]
    other = front_end(path)
    if other is not None:
        return other.check(path, data, spec)
    return check_bytes(path, data, facts, spec)


def check_bytes(path: str, data: bytes, facts: Optional[FileFacts], spec: CheckSpec) -> List[Finding]:
    """All findings for one module's bytes (suppressions applied, per-file ignores not)."""
    import libcst as cst

    rule_classes = spec.rule_classes
    if spec.prefilter:
        # Text pre-filter: a rule none of whose trigger words occur in the file cannot fire.
        rule_classes = tuple(r for r in rule_classes if not r.triggers or any(t.encode() in data for t in r.triggers))
        if not rule_classes and not (UNUSED_SUPPRESSION in spec.select and b"modelint" in data):
            return syntax_check(path, data)
    too_deep = nesting_error(path, data)
    if too_deep is not None:
        return [too_deep]
    grown = None
    try:
        module = cst.parse_module(data)
    except Exception as exc:  # ParserSyntaxError, RecursionError, ...
        alt = tabs_expanded(data, path)  # indentation CPython accepts and LibCST's tokenizer does not
        try:
            module = cst.parse_module(alt[0]) if alt is not None else None
        except Exception:
            module = None
        if module is None:
            return [parse_error(path, exc, data)]
        data, grown = alt
    try:
        found = _check_module(path, data, module, facts, rule_classes, spec)
    except RecursionError:  # LibCST's code generation (positions, code of a node) recurses per level
        return [parse_error(path, RecursionError())]
    return [shift_columns(f, grown) for f in found] if grown is not None else found


class _Dispatcher:
    """Calls every rule's visit_/leave_ method for each node, keeping `ctx.ancestors` current.
    A rule that raises is reported as MDL999 and dropped for the rest of the file. `enter`/`leave`
    are closures over local names: the walk calls them for each of the ~10^5 nodes of a large file,
    mostly unhandled; methods with attribute lookups cost twice as much (0.21 s vs 0.11 s on timm).
    The closures do not hold the dispatcher: a cycle through them kept each file's syntax tree (and
    its rules and context) alive until a full collection, which then walked every such tree again
    (gen-2 collections: 6.5 of 97 CPU s on transformers, 30,000 objects left per large file)."""

    def __init__(self, ctx: FileContext, rules: List[Rule]):
        self.rules = rules
        self.failed: Dict[str, str] = {}
        self.enter, self.leave = _callbacks(ctx.ancestors, rules, self.failed)


def _handlers(rules: List[Rule], prefix: str, tp: type) -> Tuple[Tuple[Rule, Callable], ...]:
    name = prefix + tp.__name__
    return tuple((r, getattr(r, name)) for r in rules if hasattr(r, name))


def _callbacks(ancestors: List[cst.CSTNode], rules: List[Rule], failed: Dict[str, str]):
    """(enter, leave) for `walk`: push/pop `ancestors`, call the rules' handlers, note crashes in `failed`."""
    push, pop = ancestors.append, ancestors.pop
    visits: Dict[type, tuple] = {}
    leaves: Dict[type, tuple] = {}

    def call(handlers: tuple, node: cst.CSTNode) -> None:
        for rule, fn in handlers:
            if rule.code not in failed:
                try:
                    fn(node)
                except Exception as exc:  # a bug in a rule must not stop the run
                    failed[rule.code] = f"{type(exc).__name__}: {exc}"

    def enter(node: cst.CSTNode) -> None:
        push(node)
        handlers = visits.get(type(node))
        if handlers is None:
            handlers = visits[type(node)] = _handlers(rules, "visit_", type(node))
        if handlers:
            call(handlers, node)

    def leave(node: cst.CSTNode) -> None:
        handlers = leaves.get(type(node))
        if handlers is None:
            handlers = leaves[type(node)] = _handlers(rules, "leave_", type(node))
        if handlers:
            call(handlers, node)
        pop()

    return enter, leave


def _check_module(path: str, data: bytes, module: cst.Module, facts, rules: Sequence[Type[Rule]], spec) -> List[Finding]:
    """Run the rules over the parsed module in one walk; position, suppress and name the reports."""
    from modelint.analysis.context import FileContext
    from modelint.analysis.walk import walk
    from modelint.fixes import FixPlacer

    want_unused = UNUSED_SUPPRESSION in spec.select
    if facts is None:
        facts = with_bodies(facts_from_source(data, Path(path)), data)
    ctx = FileContext(path, module, facts, spec.classifier)
    rules = [cls(ctx, spec.rule_options.get(cls.code)) for cls in rules]
    dispatcher = _Dispatcher(ctx, rules)
    walk(module, dispatcher.enter, dispatcher.leave)
    reports = [r for rule in rules for r in rule.reports]
    findings = [tool_finding(path, INTERNAL_ERROR, f"rule {code} crashed on this file ({msg}); "
                             "the file was only partly checked") for code, msg in sorted(dispatcher.failed.items())]
    if not reports and not want_unused:
        return findings
    positions = ctx.positions() if reports else {}
    suppressions = SuppressionTracker(decoded_text(data, module.encoding))
    info = catalog()
    placer = FixPlacer(module, positions)
    for report in reports:
        rng = positions[report.node]
        stmt_line = positions[report.statement].start.line if report.statement is not None else rng.start.line
        if suppressions.suppresses(report.code, {rng.start.line, stmt_line}):
            continue
        findings.append(Finding(path, rng.start.line, rng.start.column + 1, report.code, report.message,
                                end_line=rng.end.line, end_column=rng.end.column + 1, name=info[report.code].name,
                                level=getattr(report, "level", None) or info[report.code].level,
                                fix=placer.place(report.fix)))
    if want_unused:
        findings += suppressions.unused(path, spec.select)
    return findings


def _resolved(select: Optional[Sequence[str]]) -> Tuple[Tuple[str, ...], Tuple[Type["Rule"], ...]]:
    from modelint.config import resolve_selection

    select = tuple(select) if select is not None else resolve_selection(None, (), ())
    return select, tuple(selected_rule_classes(select))


def _check_alone(path: str, data: bytes, select: Tuple[str, ...], rules: Tuple[Type["Rule"], ...],
                 rule_options: Optional[Mapping[str, Mapping[str, Any]]], module_bases: Sequence[str] = (),
                 index: Optional[ProjectIndex] = None) -> List[Finding]:
    """check_bytes on one module: as its own project (named by its file stem), or, with `index`,
    as the file `path` of that project (its entry there replaced by these bytes)."""
    other = front_end(path)
    if other is not None:  # another language: no Python project index
        return other.check(path, data, CheckSpec(rules, rule_options or {}, ModuleClassifier(ProjectIndex(), module_bases), select))
    facts = with_bodies(facts_from_source(data, Path(path), modname=None if index is not None else Path(path).stem), data)
    project = ProjectIndex(modules=dict(index.modules) if index is not None else {})
    if facts is not None:
        project.add(facts)
    return check_bytes(path, data, facts, CheckSpec(rules, rule_options or {}, ModuleClassifier(project, module_bases), select))


def check_source(source: str, path: str = "example.py", select: Optional[Sequence[str]] = None,
                 rule_options: Optional[Dict[str, Dict[str, Any]]] = None, module_bases: Sequence[str] = (),
                 index: Optional[ProjectIndex] = None) -> List[Finding]:
    """Check one in-memory module (tests, rule examples, editors): alone, or as the file `path` of
    the project `index` describes (cross-file facts: which imported classes are nn.Modules)."""
    select, rules = _resolved(select)
    found = _check_alone(path, source.encode("utf-8", "surrogatepass"), select, rules, rule_options, module_bases, index)
    return sorted(shown(path, found, select, (), "."))


def fix_source(source: str, path: str = "example.py", select: Optional[Sequence[str]] = None, unsafe: bool = False,
               rule_options: Optional[Dict[str, Dict[str, Any]]] = None, module_bases: Sequence[str] = (),
               index: Optional[ProjectIndex] = None) -> FixOutcome:
    """`check_source`'s twin: fix one in-memory module (used by tests and the rule examples)."""
    from modelint.fixing import fix_text

    from modelint.fixing import parser_for

    select, rules = _resolved(select)
    return fix_text(source, lambda t: t.encode("utf-8", "surrogatepass"),
                    lambda data: _check_alone(path, data, select, rules, rule_options, module_bases, index),
                    lambda found: sorted(shown(path, found, select, (), ".")), unsafe, parses=parser_for(path))


def selected_rule_classes(select: Iterable[str]) -> List[Type["Rule"]]:
    from modelint.rules import all_rules

    chosen = set(select)
    return [r for r in all_rules() if r.code in chosen]


@dataclass(frozen=True)
class _Run:
    """What every worker of a run needs, set once per process (forked workers inherit it)."""

    spec: CheckSpec
    facts: Mapping[str, Optional[FileFacts]]
    per_file_ignores: Tuple[Tuple[str, Tuple[str, ...]], ...]
    root: str
    fix: Optional[str]
    write: bool

    def visible(self, path: str, found: List[Finding]) -> List[Finding]:
        return shown(path, found, self.spec.select, self.per_file_ignores, self.root)


_RUN: List[_Run] = []  # this process's run (one element), set by _init_worker


_GC_THRESHOLD = (50_000, 20, 20)  # see `_map`


def _init_worker(run: _Run) -> None:
    _RUN[:] = [run]
    gc.set_threshold(*_GC_THRESHOLD)


def _check_in_worker(path: str) -> List[Finding]:
    run = _RUN[0]
    return check_file(path, run.facts.get(path), run.spec)


def _fix_in_worker(item: Tuple[str, List[Finding]]) -> FixOutcome:
    from modelint.fixing import fix_path

    path, findings = item
    run = _RUN[0]
    check = lambda data: check_file(path, None, run.spec, data)  # noqa: E731 (no facts: a fix may add an import)
    return fix_path(path, findings, check, lambda found: run.visible(path, found), run.fix == "unsafe", run.write)


def _index_pass(paths: Sequence[str], cache: Optional["Cache"]):
    """Every file's imports and class bases (from the cache when its bytes are unchanged): the
    project index, facts per readable path, cache keys
    per path and sizes (to send the heaviest files to the pool first)."""
    index = ProjectIndex()
    facts_by_path: Dict[str, Optional[FileFacts]] = {}
    file_keys: Dict[str, str] = {}
    sizes: Dict[str, int] = {}
    for p in paths:
        data, _ = read_source(Path(p))
        if data is None:
            continue  # reported by the check pass
        sizes[p] = len(data)
        facts = None
        if cache is not None:
            file_keys[p] = cache.file_key(p, data)
            if front_end(p) is not None:  # another language: no Python imports or classes to index
                facts_by_path[p] = None
                continue
            facts = cache.get_facts(file_keys[p])
        elif front_end(p) is not None:
            facts_by_path[p] = None
            continue
        if facts is None:
            facts = facts_from_source(data, Path(p))
            if cache is not None:
                cache.put_facts(file_keys[p], facts)
        facts_by_path[p] = _with_bodies(facts, data, cache, file_keys.get(p))
        index.add(facts)
    return index, facts_by_path, file_keys, sizes


def check_paths(files: Sequence[Path], settings: EngineSettings) -> CheckResult:
    paths = [str(p) for p in files]
    cache = settings.cache
    index, facts_by_path, file_keys, sizes = _index_pass(paths, cache)

    # Check pass: cached results first, then the rest, in a pool when there are many.
    per_file: Dict[str, List[Finding]] = {}
    result_keys: Dict[str, str] = {}
    if cache is not None:
        fingerprint = project_fingerprint(index)  # (class bodies included: mode sensitivity)
        for p, key in file_keys.items():
            result_keys[p] = cache.result_key(fingerprint, key)
            if (cached := cache.get_findings(result_keys[p])) is not None:
                per_file[p] = cached
    todo = [p for p in paths if p not in per_file]
    # Loading the rules imports LibCST (~0.3 s): a run served entirely from the cache skips it.
    rules = tuple(selected_rule_classes(settings.select)) if todo or settings.fix else ()
    spec = CheckSpec(rules, settings.rule_options, ModuleClassifier(index, settings.module_bases), settings.select,
                     settings.prefilter)
    run = _Run(spec, facts_by_path, settings.per_file_ignores, settings.root, settings.fix, settings.write)
    jobs = settings.jobs or os.cpu_count() or 1
    for p, found in zip(todo, _map(_check_in_worker, todo, run, jobs, [sizes.get(p, 0) for p in todo])):
        per_file[p] = found
        if cache is not None and p in result_keys:
            cache.put_findings(result_keys[p], found)

    visible = {p: run.visible(p, per_file[p]) for p in paths}
    result = CheckResult(findings=[], files_checked=len(paths))
    if settings.fix:
        _fix_pass(paths, visible, run, jobs, result)
    result.findings = sorted(f for p in paths for f in visible[p])
    return result


def _fix_pass(paths: Sequence[str], visible: Dict[str, List[Finding]], run: _Run, jobs: int, result: CheckResult) -> None:
    """Fix every file that has an applicable fix; `visible` gets what remains, `result` the counts,
    diffs and errors."""
    from modelint.fixes import applicable, unified_diff

    unsafe = run.fix == "unsafe"
    to_fix = [p for p in paths if any(applicable(f.fix, unsafe) for f in visible[p])]
    for p, outcome in zip(to_fix, _map(_fix_in_worker, [(p, visible[p]) for p in to_fix], run, jobs)):
        visible[p] = outcome.findings
        for code, n in outcome.applied.items():
            result.fixed[code] = result.fixed.get(code, 0) + n
        if outcome.after != outcome.before:
            result.diffs.append((p, unified_diff(p, outcome.before, outcome.after)))
        if outcome.error:
            result.fix_errors.append(outcome.error)


def _map(fn: Callable, items: Sequence, run: _Run, jobs: int, weights: Optional[Sequence[int]] = None) -> List:
    """`fn` over `items` with the run set: in a pool for many items, else in-process. In the pool
    the heaviest items (by `weights`, e.g. file sizes) go first, a few at a time, so that no worker
    is left with a large file while the others idle (the worker that finishes last sets the time)."""
    if not items:
        return []
    # What is alive now (LibCST, the rules, the index) lives through the pass: frozen, the cyclic
    # collector stops re-scanning it and forked workers stop writing to (so copying) its pages:
    # -4% CPU at -j1 and at -j2 on timm, same peak memory (measured with /usr/bin/time).
    gc.freeze()
    # Young objects are mostly syntax trees that reference counting frees with their file: with the
    # default 700-allocation generation 0, timm's cold check ran 4,066 collections for 0.58 CPU s
    # (about 5%); at 50,000 it runs 7 for 0.09 s (bench/speed.py; /usr/bin/time peak unchanged).
    # Workers forked below inherit the setting; spawned ones set it in `_init_worker`.
    threshold = gc.get_threshold()
    gc.set_threshold(*_GC_THRESHOLD)
    try:
        if jobs <= 1 or len(items) < PARALLEL_MIN_FILES:
            _init_worker(run)
            return [fn(item) for item in items]
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        order = sorted(range(len(items)), key=lambda i: -weights[i] if weights else 0)  # (stable: in order)
        out: List[Any] = [None] * len(items)
        fork = "fork" in multiprocessing.get_all_start_methods() and sys.platform != "darwin"
        context = multiprocessing.get_context("fork" if fork else "spawn")  # fork: workers inherit the run
        with ProcessPoolExecutor(jobs, mp_context=context, initializer=_init_worker, initargs=(run,)) as pool:
            chunk = max(1, min(4, len(items) // (jobs * 16)))
            for i, result in zip(order, pool.map(fn, [items[i] for i in order], chunksize=chunk)):
                out[i] = result
        return out
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()


def _with_bodies(facts: FileFacts, data: bytes, cache: Optional["Cache"], key: Optional[str]) -> FileFacts:
    """`facts` with the file's class bodies (`analysis.classbodies`), from the cache when it has them.
    Without a cache they are scanned when a rule first asks (`with_bodies`); with one, now: the
    result cache's fingerprint (`project_fingerprint`) holds every file's bodies."""
    if cache is None or not key:
        return with_bodies(facts, data)
    bodies = cache.get_bodies(key)
    if bodies is None:
        bodies = class_bodies(data, facts)
        cache.put_bodies(key, bodies)
    return attach(facts, bodies)

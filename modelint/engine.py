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
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Type

from modelint import notebook
from modelint.analysis.index import FileFacts, ProjectIndex, facts_from_source
from modelint.analysis.modules import ModuleClassifier
from modelint.catalog import catalog
from modelint.findings import Finding

if TYPE_CHECKING:
    from modelint.analysis.context import FileContext
    from modelint.cache import Cache  # LibCST and the rules are imported on first use: a fully cached run needs neither
    import libcst as cst

    from modelint.rules.base import Rule

# Below this many files everything runs in the calling process: a pre-commit run on three files
# must not pay for a pool.
PARALLEL_MIN_FILES = 24
# Larger files (generated tables, vendored bundles) are reported, not parsed: LibCST needs about
# 500 times a file's size in memory (16 MB of source took 8 GB and 9 minutes here).
MAX_FILE_BYTES = 2_000_000


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


@dataclass
class CheckResult:
    findings: List[Finding]
    files_checked: int


# --------------------------------------------------------------------------------------------
# Reading


def read_source(path: Path) -> Tuple[Optional[bytes], Optional[str]]:
    """(bytes, None) or (None, one-line problem). Checks that the text decodes in its declared
    encoding, so LibCST never sees undecodable input. A notebook gives its joined code cells."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return None, f"cannot read file: {exc.strerror or exc}"
    if len(data) > MAX_FILE_BYTES:
        return None, (f"file is {len(data) / 1e6:.1f} MB, over the {MAX_FILE_BYTES / 1e6:.0f} MB limit for analysis "
                      f"(LibCST needs ~500x a file's size in memory); exclude it if it is generated")
    if path.suffix == ".ipynb":
        try:
            return notebook.load(data).source.encode("utf-8"), None
        except notebook.NotebookError as exc:
            return None, str(exc)
    if b"\x00" in data:
        return None, "file contains NUL bytes; not Python source"
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        data.decode(encoding)
    except (SyntaxError, UnicodeDecodeError, LookupError) as exc:
        reason = exc.reason if isinstance(exc, UnicodeDecodeError) else str(exc)
        return None, f"cannot decode file: {reason}"
    return data, None


# --------------------------------------------------------------------------------------------
# Check pass (one file)

_SUPPRESS = re.compile(r"#\s*modelint\s*:\s*ignore(?:\[(?P<codes>[^\]]*)\])?", re.IGNORECASE)
_NOQA = re.compile(r"#\s*noqa(?::\s*(?P<codes>[A-Za-z]+[0-9]+(?:[\s,]+[A-Za-z]+[0-9]+)*))?", re.IGNORECASE)


def _split_codes(text: Optional[str]) -> Optional[Tuple[str, ...]]:
    if text is None:
        return None
    return tuple(c.upper() for c in re.split(r"[\s,]+", text.strip()) if c)


def comment_suppressions(source: str) -> Dict[int, List[Tuple[str, Optional[Tuple[str, ...]]]]]:
    """line -> [(kind, codes or None for "everything")] from real comments (not strings)."""
    out: Dict[int, List[Tuple[str, Optional[Tuple[str, ...]]]]] = {}
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return out
    for tok in tokens:
        if tok.type != tokenize.COMMENT:
            continue
        m = _SUPPRESS.search(tok.string)
        if m:
            out.setdefault(tok.start[0], []).append(("modelint", _split_codes(m.group("codes"))))
        m = _NOQA.search(tok.string)
        if m:
            out.setdefault(tok.start[0], []).append(("noqa", _split_codes(m.group("codes"))))
    return out


def _code_matches(code: str, patterns: Optional[Sequence[str]]) -> bool:
    return patterns is None or any(code.startswith(p) for p in patterns)


def _syntax_check(path: str, data: bytes) -> List[Finding]:
    """For files no rule needs to parse: CPython's parser (far cheaper than LibCST) still catches
    syntax errors, so a broken file is never silently passed over."""
    try:
        compile(data, path, "exec", flags=ast.PyCF_ONLY_AST, dont_inherit=True)
    except SyntaxError as exc:
        return [_parse_error(path, exc, data)]
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


def _parse_error(path: str, exc: Exception, data: bytes = b"") -> Finding:
    """MDL000 at the parser's position. CPython's own message is preferred when it also rejects the
    file (it is clearer: "expected ':'"); LibCST's is used when only LibCST's grammar does."""
    def finding(line: int, column: int, message: str) -> Finding:
        return Finding(path, max(line, 1), max(column, 1), "MDL000", f"cannot parse: {message}",
                       name="parse-error", level="error")

    if isinstance(exc, RecursionError):
        return finding(1, 1, "code is nested too deeply to analyse")
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


def _check_notebook(path: str, facts, rule_classes, rule_options, classifier, select, prefilter) -> List[Finding]:
    """Check the joined code cells, then give each finding its cell and in-cell position."""
    try:
        nb = notebook.load(Path(path).read_bytes())
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
                           extra=f.extra + (("json_line", notebook.json_line(cell, line)),)))
    return out


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
    data = source.encode("utf-8")
    facts = facts_from_source(data, Path(path), modname=Path(path).stem)
    index = ProjectIndex()
    if facts is not None:
        index.add(facts)
    classifier = ModuleClassifier(index, module_bases)
    found = check_bytes(path, data, facts, selected_rule_classes(select), rule_options or {}, classifier, select)
    return sorted(f for f in found if f.code in select or f.code in ("MDL000", "MDL999"))


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
    from libcst.metadata import MetadataWrapper, PositionProvider

    from modelint.analysis.context import FileContext
    from modelint.analysis.walk import walk

    want_unused = "MDL001" in select
    if prefilter:
        # Text pre-filter: a rule none of whose trigger words occur in the file cannot fire.
        rule_classes = [r for r in rule_classes if not r.triggers or any(t.encode() in data for t in r.triggers)]
        if not rule_classes and not (want_unused and b"modelint" in data):
            return _syntax_check(path, data)
    try:
        module = cst.parse_module(data)
    except Exception as exc:  # ParserSyntaxError, RecursionError, ...
        return [_parse_error(path, exc, data)]
    if facts is None:
        facts = facts_from_source(data, Path(path))
    ctx = FileContext(path, module, facts, classifier)
    rules = [cls(ctx, rule_options.get(cls.code)) for cls in rule_classes]
    dispatcher = _Dispatcher(ctx, rules)
    try:
        walk(module, dispatcher.enter, dispatcher.leave)
    except RecursionError:
        return [_parse_error(path, RecursionError())]
    reports = [r for rule in rules for r in rule.reports]
    findings: List[Finding] = [
        Finding(path, 1, 1, "MDL999", f"rule {code} crashed on this file ({msg}); the file was only partly checked",
                name="internal-error", level="error")
        for code, msg in sorted(dispatcher.failed.items())
    ]
    if not reports and not want_unused:
        return findings
    positions = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider) if reports else {}
    suppressions = comment_suppressions(module.code) if (reports or want_unused) else {}
    used = set()
    info = catalog()
    for report in reports:
        rng = positions[report.node]
        stmt_line = positions[report.statement].start.line if report.statement is not None else rng.start.line
        suppressed = False
        for line in {rng.start.line, stmt_line}:
            for i, (kind, codes) in enumerate(suppressions.get(line, ())):
                if _code_matches(report.code, codes):
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
                fix=report.fix,
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
    for p in paths:
        data, _ = read_source(Path(p))
        if data is None:
            index_by_path[p] = None  # reported by the check pass
            continue
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
    if todo:
        state = {
            "index": index,
            "index_by_path": index_by_path,
            "module_bases": settings.module_bases,
            "rule_classes": selected_rule_classes(settings.select),
            "rule_options": settings.rule_options,
            "select": settings.select,
            "prefilter": settings.prefilter,
        }
        jobs = settings.jobs or os.cpu_count() or 1
        if jobs > 1 and len(todo) >= PARALLEL_MIN_FILES:
            with _pool(jobs, _init_worker, (state,)) as pool:
                results = list(pool.map(_check_in_worker, todo, chunksize=max(1, len(todo) // (jobs * 8))))
        else:
            _init_worker(state)
            results = [_check_in_worker(p) for p in todo]
        for p, found in zip(todo, results):
            per_file[p] = found
            if cache is not None and p in result_keys:
                cache.put_findings(result_keys[p], found)

    findings: List[Finding] = []
    for path in paths:
        ignored = _per_file_ignored(path, settings)
        findings.extend(f for f in per_file[path] if not (ignored and _code_matches(f.code, ignored)))
    findings = [f for f in findings if f.code in settings.select or f.code in ("MDL000", "MDL999")]
    return CheckResult(findings=sorted(findings), files_checked=len(paths))


def _per_file_ignored(path: str, settings: EngineSettings) -> Optional[Tuple[str, ...]]:
    if not settings.per_file_ignores:
        return None
    from modelint.discovery import glob_match

    codes: List[str] = []
    for pattern, pattern_codes in settings.per_file_ignores:
        if glob_match(pattern, path, settings.root):
            codes.extend(pattern_codes)
    return tuple(codes) if codes else None

"""Parse each file once, run every selected rule in one walk, apply suppressions; in parallel.

Flow for one run (`check_paths`):
1. discovery gives the files;
2. the index pass reads every file with `ast` and records imports and class bases (cross-file
   facts such as "`Encoder` is an nn.Module because its base in `base.py` is");
3. the check pass parses each file with LibCST (skipped when a cheap text pre-filter proves that no
   selected rule can fire), walks it once dispatching to all rules, positions the reports, drops the
   suppressed ones and returns Findings.
Both passes run in a process pool for large inputs and in-process for a handful of files.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Type

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

from modelint.analysis.context import FileContext
from modelint.analysis.index import FileFacts, ProjectIndex, facts_from_source, module_name
from modelint.analysis.modules import ModuleClassifier
from modelint.analysis.walk import walk
from modelint.catalog import catalog
from modelint.findings import Finding
from modelint.rules import all_rules
from modelint.rules.base import Report, Rule

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


@dataclass
class CheckResult:
    findings: List[Finding]
    files_checked: int


# --------------------------------------------------------------------------------------------
# Reading


def read_source(path: Path) -> Tuple[Optional[bytes], Optional[str]]:
    """(bytes, None) or (None, one-line problem). Checks that the text decodes in its declared
    encoding, so LibCST never sees undecodable input."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return None, f"cannot read file: {exc.strerror or exc}"
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
# Index pass


def index_file(path_str: str) -> Optional[FileFacts]:
    path = Path(path_str)
    data, _ = read_source(path)
    if data is None:
        return None
    return facts_from_source(data, path)


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


def _rule_triggers(rules: Sequence[Type[Rule]]) -> Optional[Tuple[bytes, ...]]:
    """Substrings one of which must occur for any rule to fire; None when some rule always runs."""
    out: List[bytes] = []
    for rule in rules:
        if not rule.triggers:
            return None
        out.extend(t.encode() for t in rule.triggers)
    return tuple(out)


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
    data, problem = read_source(Path(path))
    if data is None:
        return [Finding(path, 1, 1, "MDL000", problem, name="parse-error", level="error")]
    return check_bytes(path, data, facts, rule_classes, rule_options, classifier, select, prefilter)


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
    want_unused = "MDL001" in select
    if prefilter and facts is not None:
        # `facts` is None when `ast` could not parse the file: let LibCST say why.
        triggers = _rule_triggers(rule_classes)
        if triggers is not None and not any(t in data for t in triggers):
            if not (want_unused and b"modelint" in data):
                return []
    try:
        module = cst.parse_module(data)
    except Exception as exc:  # ParserSyntaxError, RecursionError, ...
        return [_parse_error(path, exc, data)]
    if facts is None:
        facts = FileFacts(modname=module_name(Path(path)))
    ctx = FileContext(path, module, facts, classifier)
    rules = [cls(ctx, rule_options.get(cls.code)) for cls in rule_classes]
    dispatcher = _Dispatcher(ctx, rules)
    try:
        walk(module, dispatcher.enter, dispatcher.leave)
    except RecursionError:
        return [_parse_error(path, RecursionError())]
    reports: List[Report] = [r for rule in rules for r in rule.reports]
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
                level=info[report.code].level,
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


def selected_rule_classes(select: Iterable[str]) -> List[Type[Rule]]:
    chosen = set(select)
    return [r for r in all_rules() if r.code in chosen]


def check_paths(files: Sequence[Path], settings: EngineSettings) -> CheckResult:
    paths = [str(p) for p in files]
    jobs = settings.jobs or os.cpu_count() or 1
    parallel = jobs > 1 and len(paths) >= PARALLEL_MIN_FILES
    chunks = max(1, len(paths) // (jobs * 8))

    # Index pass.
    if parallel:
        with _pool(jobs) as pool:
            facts_list = list(pool.map(index_file, paths, chunksize=chunks))
    else:
        facts_list = [index_file(p) for p in paths]
    index = ProjectIndex()
    index_by_path: Dict[str, Optional[FileFacts]] = {}
    for p, facts in zip(paths, facts_list):
        index_by_path[p] = facts
        if facts is not None:
            index.add(facts)

    rule_classes = selected_rule_classes(settings.select)
    state = {
        "index": index,
        "index_by_path": index_by_path,
        "module_bases": settings.module_bases,
        "rule_classes": rule_classes,
        "rule_options": settings.rule_options,
        "select": settings.select,
        "prefilter": settings.prefilter,
    }
    if parallel:
        with _pool(jobs, _init_worker, (state,)) as pool:
            per_file = list(pool.map(_check_in_worker, paths, chunksize=chunks))
    else:
        _init_worker(state)
        per_file = [_check_in_worker(p) for p in paths]

    findings: List[Finding] = []
    for path, found in zip(paths, per_file):
        ignored = _per_file_ignored(path, settings)
        findings.extend(f for f in found if not (ignored and _code_matches(f.code, ignored)))
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

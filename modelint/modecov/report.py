"""Mode-branch coverage: which arms of the mode branches ran, from coverage.py branch (arc) data.

Used by the pytest plugin (`pytest --modelint-modes`, `modelint.modecov.pytest_plugin`) and, on an
existing data file, by `coverage_findings` (the `modelint coverage` command).

Arc semantics (see `modelint.analysis.branches` for what a mode branch is). coverage.py records the
executed arcs `(from_line, to_line)` of each file, raw (line numbers as the tracer saw them; a
negative `to_line` means "left the code object"). For one branch:
- the true arm ran when some arc goes from a line of the `if ...:` header to a line of the true arm;
- the false arm ran when some arc goes from a header line to a line outside the header and outside the
  true arm: the `else`/`elif` arm, the statement after the `if` (the implicit fall-through), the loop
  header when the `if` ends a loop body, or out of the function when the `if` ends it.
Arcs between two header lines (a test spread over several lines) are ignored. The train/eval roles
then follow from the branch's polarity. "Ran" means the arm executed, whatever made the test take that
value: `if self.p == 0.0 or not self.training: return x` counts its eval arm as run by a training-mode
test with `p == 0`.

Nothing here imports torch; coverage is imported only to read a data file.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple

from modelint.analysis.branches import ModeBranch, scan_files
from modelint.findings import Finding

Arc = Tuple[int, int]
CODES = {"eval": "MDL501", "train": "MDL502"}


# --------------------------------------------------------------------------------------------
# Arms


def arms_taken(branch: ModeBranch, arcs_from: Mapping[int, Iterable[int]]) -> Tuple[bool, bool]:
    """(true arm ran, false arm ran) given the executed arcs of the file, indexed by source line."""
    h0, h1 = branch.header
    true = branch.true_lines
    true_ran = false_ran = False
    for line in range(h0, h1 + 1):
        for dest in arcs_from.get(line, ()):
            if h0 <= dest <= h1:
                continue
            if true is not None and true[0] <= dest <= true[1]:
                true_ran = True
            else:
                false_ran = True
    return true_ran, false_ran


def index_arcs(arcs: Iterable[Arc]) -> Dict[int, Set[int]]:
    out: Dict[int, Set[int]] = defaultdict(set)
    for a, b in arcs:
        out[a].add(b)
    return out


@dataclass
class BranchResult:
    branch: ModeBranch
    measured: bool  # the file is in the coverage data
    true_ran: bool = False
    false_ran: bool = False

    @property
    def reached(self) -> bool:
        """The test was evaluated at least once."""
        return self.true_ran or self.false_ran

    def ran(self, role: str) -> Optional[bool]:
        """Did the train/eval arm run? None when it cannot be told."""
        b = self.branch
        if not self.measured or not b.measurable or b.true_is_train is None:
            return None
        when = b.true_is_train if role == "train" else not b.true_is_train
        return self.true_ran if when else self.false_ran


@dataclass
class ModesReport:
    results: List[BranchResult] = field(default_factory=list)
    findings: List[Finding] = field(default_factory=list)
    files_scanned: int = 0
    unmeasured: List[str] = field(default_factory=list)  # files with branches the data does not cover
    notes: List[str] = field(default_factory=list)
    selected: Tuple[str, ...] = ()


def evaluate(
    branches: Mapping[str, Sequence[ModeBranch]],
    arcs: Mapping[str, Iterable[Arc]],
    *,
    missing_means_unrun: bool = False,
) -> Tuple[List[BranchResult], List[str]]:
    """Results for every branch. `arcs` maps measured file names (any spelling: absolute, relative,
    from another machine) to executed arcs; they are matched to the branch files by real path, then
    by the longest unique common path suffix. A branch file absent from the data is unmeasured,
    unless `missing_means_unrun` (the collector measured exactly these files, so absent = never ran)."""
    mapping = match_files(list(branches), list(arcs))
    results: List[BranchResult] = []
    unmeasured: List[str] = []
    for path, found in branches.items():
        measured_name = mapping.get(path)
        if measured_name is None and not missing_means_unrun:
            unmeasured.append(path)
            results.extend(BranchResult(b, measured=False) for b in found)
            continue
        by_line = index_arcs(arcs[measured_name]) if measured_name is not None else {}
        for b in found:
            t, f = arms_taken(b, by_line)
            results.append(BranchResult(b, measured=True, true_ran=t, false_ran=f))
    return results, sorted(unmeasured)


def _real(p: str) -> str:
    return os.path.normcase(os.path.realpath(os.path.abspath(p)))


def match_files(ours: Sequence[str], measured: Sequence[str]) -> Dict[str, str]:
    """our path -> measured file name."""
    by_real = {}
    for m in measured:
        by_real.setdefault(_real(m), m)
    out: Dict[str, str] = {}
    left = []
    for p in ours:
        hit = by_real.get(_real(p))
        if hit is not None:
            out[p] = hit
        else:
            left.append(p)
    if not left:
        return out
    taken = set(out.values())
    split = {m: Path(m.replace("\\", "/")).parts[::-1] for m in measured if m not in taken}
    for p in left:
        parts = Path(_real(p)).parts[::-1]
        best, best_n, tie = None, 0, False
        for m, mparts in split.items():
            n = 0
            for x, y in zip(parts, mparts):
                if x != y:
                    break
                n += 1
            if n > best_n:
                best, best_n, tie = m, n, False
            elif n == best_n and n:
                tie = True
        if best is not None and best_n >= 2 and not tie:
            out[p] = best
    return out


# --------------------------------------------------------------------------------------------
# Findings


def _message(result: BranchResult, role: str) -> str:
    b = result.branch
    where = f"{role} arm of {b.qualname} never ran in the test suite"
    if not result.reached:
        return f"{where}: the test `{b.condition}` never ran at all"
    arm = b.arm(role)
    value = "true" if arm.when else "false"
    if role == "eval":
        how = "under `torch.no_grad()`" if b.subject == "grad" else "after `model.eval()`"
    else:
        how = "with grad enabled" if b.subject == "grad" else "in training mode (`model.train()`)"
    return f"{where}: `{b.condition}` was never {value} there; add a test that runs it {how}"


def _display(path: str, cwd: Optional[str] = None) -> str:
    cwd = cwd or os.getcwd()
    if not os.path.isabs(path):
        return path
    try:
        rel = os.path.relpath(path, cwd)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel


def build_findings(
    results: Sequence[BranchResult],
    select: Sequence[str],
    *,
    per_file_ignores: Mapping[str, Sequence[str]] = {},
    root: str = ".",
    cwd: Optional[str] = None,
) -> List[Finding]:
    """MDL501/MDL502 for the arms that never ran; honours the selection (codes or prefixes),
    `per-file-ignores` and `# modelint: ignore[...]` / `# noqa: ...` comments on the test's line or the
    `if` statement's first line."""
    from modelint.catalog import catalog
    from modelint.config import ignore_pairs
    from modelint.sources import read_source
    from modelint.suppressions import code_matches as _code_matches, comment_suppressions, per_file_ignored

    pairs = ignore_pairs(per_file_ignores)
    info = catalog()
    select = tuple(s.upper() for s in select)
    raw: List[Tuple[BranchResult, str]] = []
    for r in results:
        for role in ("eval", "train"):
            if r.ran(role) is False and _code_matches(CODES[role], select):
                raw.append((r, role))
    if not raw:
        return []
    suppressions: Dict[str, dict] = {}
    ignored: Dict[str, Tuple[str, ...]] = {}
    out: List[Finding] = []
    for r, role in raw:
        b, code = r.branch, CODES[role]
        if b.path not in suppressions:
            data, _ = read_source(Path(b.path))
            suppressions[b.path] = comment_suppressions(data.decode("utf-8", "replace")) if data else {}
            ignored[b.path] = per_file_ignored(b.path, pairs, root)
        if ignored[b.path] and _code_matches(code, ignored[b.path]):
            continue
        if any(_code_matches(code, codes) for line in {b.line, b.statement_line} for _, codes in suppressions[b.path].get(line, ())):
            continue
        arm = b.arm(role)
        extra = (
            ("class", b.class_name),
            ("method", b.method),
            ("arm", role),
            ("condition", b.condition),
            ("arm_lines", tuple(arm.lines) if arm.lines else None),
            ("implicit", arm.implicit),
            ("subject", b.subject),
        )
        out.append(
            Finding(
                path=_display(b.path, cwd), line=b.line, column=b.column, end_line=b.end_line,
                end_column=b.end_column, code=code, name=info[code].name, level=info[code].level,
                message=_message(r, role), extra=extra,
            )
        )
    return sorted(out)


def load_checked_config(start: Optional[str] = None):
    """The nearest `[tool.modelint]` config (searching upward from `start`, default the current
    folder), validated like `modelint check` does. Raises `modelint.config.ConfigError`."""
    from modelint import config as config_module

    if start is None:
        cfg = config_module.load_config()
    else:
        found = config_module.find_pyproject(Path(start))
        cfg = config_module.load_config(found) if found else config_module.load_config(search=False)
    validate = getattr(config_module, "validate_config", None)
    if validate is not None:
        validate(cfg)
    return cfg


def selection_from_config(cfg) -> Tuple[str, ...]:
    from modelint.config import resolve_selection

    return resolve_selection(cfg.select, cfg.extend_select, cfg.ignore, kinds=("coverage",))


def make_report(
    branches: Mapping[str, Sequence[ModeBranch]],
    arcs: Mapping[str, Iterable[Arc]],
    cfg,
    *,
    select: Optional[Sequence[str]] = None,
    missing_means_unrun: bool = False,
    files_scanned: int = 0,
    cwd: Optional[str] = None,
) -> ModesReport:
    """Everything the plugin and `modelint coverage` print: results, findings, notes."""
    selected = tuple(select) if select is not None else selection_from_config(cfg)
    results, unmeasured = evaluate(branches, arcs, missing_means_unrun=missing_means_unrun)
    findings = build_findings(
        results, selected, per_file_ignores=cfg.per_file_ignores, root=str(cfg.root), cwd=cwd
    )
    report = ModesReport(results=results, findings=findings, files_scanned=files_scanned,
                         unmeasured=[_display(p, cwd) for p in unmeasured], selected=selected)
    if not any(_code_matches_any(c, selected) for c in CODES.values()):
        where = f" in {cfg.path}" if cfg.path else ""
        report.notes.append(f"MDL501/MDL502 are not selected{where}; the arms that never ran are listed in the table only")
    return report


def _code_matches_any(code: str, select: Sequence[str]) -> bool:
    return any(code.startswith(s.upper()) for s in select)


# --------------------------------------------------------------------------------------------
# The summary table


def _mark(value: Optional[bool]) -> str:
    return "n/a" if value is None else ("ran" if value else "NEVER")


def render_table(report: ModesReport, cwd: Optional[str] = None, width: int = 48) -> List[str]:
    """A block per class (`Class (path)`), a row per branch: line, method, branch, train arm, eval arm
    (`ran`, `NEVER`, or why it cannot be told)."""
    by_class: Dict[Tuple[str, str], List[BranchResult]] = defaultdict(list)
    for r in report.results:
        by_class[(r.branch.path, r.branch.class_name)].append(r)
    header = ("line", "method", "branch", "train arm", "eval arm")
    blocks = []
    for (path, cls), results in sorted(by_class.items()):
        rows = []
        for r in sorted(results, key=lambda r: (r.branch.line, r.branch.column)):
            b = r.branch
            text = f"... if {b.condition} else ..." if b.kind == "ifexp" else f"{'elif' if b.kind == 'elif' else 'if'} {b.condition}"
            if len(text) > width:
                text = text[: width - 3] + "..."
            if not r.measured:
                tail = ("not measured", "")
            elif not b.measurable:
                tail = (f"n/a ({b.note})", "")
            else:
                tail = (_mark(r.ran("train")), _mark(r.ran("eval")))
            rows.append((str(b.line), b.method, text) + tail)
        blocks.append((f"{cls} ({_display(path, cwd)})", rows))
    all_rows = [header] + [row for _, rows in blocks for row in rows]
    widths = [max(len(row[i]) for row in all_rows if i < 3 or row[4]) for i in range(5)]
    def fmt(row) -> str:
        if not row[4]:  # a note instead of the two arm columns
            row = row[:3] + (row[3] + " " * widths[3],)
        cells = [c.rjust(w) if i == 0 else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))]
        return ("    " + "  ".join(cells)).rstrip()

    lines = [fmt(header)] if blocks else []
    for title, rows in blocks:
        lines.append(f"  {title}")
        lines.extend(fmt(row) for row in rows)
    return lines


def summary_line(report: ModesReport) -> str:
    measured = [r for r in report.results if r.measured and r.branch.measurable and r.branch.true_is_train is not None]
    never = {role: sum(1 for r in measured if r.ran(role) is False) for role in ("train", "eval")}
    classes = len({(r.branch.path, r.branch.class_name) for r in report.results})
    n = len(report.results)
    if not n:
        return "no mode branches in module classes"
    text = (f"{n} mode branch{'es' if n != 1 else ''} in {classes} module class{'es' if classes != 1 else ''}; "
            f"{len(measured)} measurable: eval arm never ran in {never['eval']}, train arm never ran in {never['train']}")
    shown = len(report.findings)
    return text + f" ({shown} reported)" if shown != never["eval"] + never["train"] else text


# --------------------------------------------------------------------------------------------
# An existing coverage.py data file (`modelint coverage`)


def read_arcs(data_file: str) -> Dict[str, List[Arc]]:
    """measured file -> executed arcs, from a coverage.py data file. ValueError (one line) when the
    file is missing, unreadable, empty or holds line data only."""
    path = Path(data_file)
    if not path.is_file():
        parallel = sorted(path.parent.glob(path.name + ".*")) if path.parent.is_dir() else []
        hint = (f"; found {len(parallel)} parallel data file{'s' if len(parallel) != 1 else ''} "
                f"({parallel[0].name}, ...): run `coverage combine` first") if parallel else \
            " (collect it with `pytest --cov --cov-branch` or `coverage run --branch -m pytest`)"
        raise ValueError(f"{data_file}: no coverage data file{hint}")
    try:
        from coverage import CoverageData
        from coverage.exceptions import CoverageException
    except ImportError:  # pragma: no cover - coverage is in the test extra
        raise ValueError("reading coverage data needs coverage.py: pip install 'coverage>=7.4'") from None
    try:
        data = CoverageData(basename=str(path.resolve()))
        data.read()
        files = data.measured_files()
        has_arcs = data.has_arcs()
        arcs = {f: list(data.arcs(f) or ()) for f in files} if has_arcs else {}
    except (CoverageException, OSError, Exception) as exc:  # sqlite errors surface as several types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"{data_file}: cannot read coverage data: {first}") from None
    if not files:
        raise ValueError(f"{data_file}: the coverage data file has no measured files")
    if not has_arcs:
        raise ValueError(f"{data_file}: the coverage data has lines but no branch arcs; collect it with "
                         f"branch coverage (`pytest --cov --cov-branch`, `coverage run --branch`, or "
                         f"`branch = true` in the coverage config)")
    return arcs


def _source_files(paths: Sequence[str], cfg, measured: Iterable[str]) -> List[str]:
    from modelint.config import default_exclude
    from modelint.discovery import DiscoveryError, discover

    exclude, extend_exclude = default_exclude(cfg)
    if paths:
        try:
            return [str(p) for p in discover(list(paths), exclude, extend_exclude, root=str(cfg.root),
                                             respect_gitignore=cfg.respect_gitignore)]
        except DiscoveryError as exc:
            raise ValueError(str(exc)) from None
    from modelint.gitignore import PatternList

    spec = PatternList(list(exclude) + list(extend_exclude))
    root = Path(cfg.root).resolve()
    out = []
    for m in measured:
        p = Path(m)
        if p.suffix != ".py" or not p.is_file() or {"site-packages", "dist-packages"} & set(p.parts):
            continue
        try:
            rel = p.resolve().relative_to(root).parts
        except ValueError:
            rel = p.parts[-1:]
        if any(spec.matches("/".join(rel[: i + 1]), i + 1 < len(rel)) or spec.matches(rel[i], i + 1 < len(rel))
               for i in range(len(rel))):
            continue
        out.append(_display(str(p)))
    return sorted(out)


def analyze_data_file(
    data_file: str,
    paths: Sequence[str] = (),
    *,
    select: Optional[Sequence[str]] = None,
    config=None,
) -> ModesReport:
    """`coverage_findings` with the table and notes (see there)."""
    if config is None:
        from modelint.config import ConfigError

        try:
            config = load_checked_config()
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
    arcs = read_arcs(data_file)
    files = _source_files(paths, config, arcs)
    branches = scan_files(files, module_bases=config.module_bases)
    return make_report(branches, arcs, config, select=select, files_scanned=len(files))


def coverage_findings(
    data_file: str,
    paths: List[str],
    *,
    select: Optional[Sequence[str]] = None,
    config=None,
) -> List[Finding]:
    """MDL501/MDL502 findings from an existing coverage.py data file collected with branch coverage
    (e.g. by `pytest --cov --cov-branch`), without re-running the tests.

    - `paths`: files/folders to look for mode branches in (walked like `modelint check`: excludes and
      .gitignore apply); empty: the measured files of the data that exist here (site-packages and
      excluded paths skipped). Branch files absent from the data are not measured, not reported.
    - `select`: codes or prefixes to report (e.g. the CLI's resolved selection); None: from the config
      (`select`/`extend-select`/`ignore` with kind "coverage"). `per-file-ignores` and suppression
      comments always apply.
    - `config`: a loaded `modelint.config.Config`; None: `load_config()` from the current folder.
    Raises ValueError with a one-line message when the data file is missing (with a hint when only
    parallel `.coverage.*` files exist), unreadable, has no measured files or has no arc data, when a
    path does not exist, or when the config is invalid.
    """
    return analyze_data_file(data_file, paths, select=select, config=config).findings

#!/usr/bin/env python3
"""Precision of modelint's rules on pinned real code, judged against committed verdicts.

A *set* is a list of pinned code bases (``bench/sets/SET.toml``): PyPI wheels
(``pip download --no-deps --only-binary=:all:``, unpacked by ``bench/corpus.py``'s ``fetch``) and
GitHub repositories at a full commit (the tree of that commit, taken from a local git mirror with
``--mirror DIR`` — ``DIR/OWNER+NAME/repo`` or ``DIR/OWNER+NAME`` — or else from the GitHub archive
of the commit). Everything lands in ``--cache`` (default ``~/.cache/modelint-bench/SET``), never in
this repository. Of a repository only the files modelint reads are extracted (``.py``, ``.pyi``,
``.ipynb``, ``.gitignore``); a blob missing from a partial mirror is skipped and reported.

Each code base is checked as a subprocess, ::

    python -m modelint check SRC --format json --exit-zero --no-config --no-cache [--select CODES]

with ``--modelint-root`` (default: this working tree) first on ``PYTHONPATH``, and its findings
are compared with the verdict files ``bench/verdicts/SET.tsv`` and ``SET-*.tsv`` (tab-separated, with a header)::

    codebase  code  path  line  verdict  reason

``verdict`` is ``real`` (a bug that changes results), ``deliberate`` (the code does what its
author intends and the rule's premise holds) or ``false`` (the premise is wrong); ``path`` is
relative to the code base's root (a notebook finding is ``nb.ipynb#cell=N`` with the in-cell
line); ``reason`` is one line a reviewer can check.

It prints, per rule: findings, real, deliberate, false, untriaged, precision
(real+deliberate)/triaged, and the deliberate share (of the rule's findings; the TOTAL row gives
deliberate findings over all findings of the run, which is the issue's "deliberate share of all
default findings" when no --select is given). Then the **new** findings (no verdict: to triage)
and the **disappeared** verdicts (a verdict of a code that ran on a code base that ran, with no
finding any more: a false one gone is good, a real one gone is a possible recall loss). Verdicts
of codes outside the run's selection are counted, not listed.

Usage::

    python bench/precision.py --mirror /work/.mirror          # the measuring set
    python bench/precision.py --mirror /work/.mirror nanoGPT peft
    python bench/precision.py --select MDL3 --training-only   # call-site codes, training repos
    python bench/precision.py --modelint-root /work/wt/m1-merged --json after.json
    python bench/precision.py --todo /tmp/todo.tsv            # new findings as TSV rows to fill
    python bench/precision.py --set tuning                    # bench/sets/tuning.toml, or the
                                                              # pinned wheels of corpus.py

Exit status: 0 when every code base was fetched and checked, 1 when any failed, 2 for a usage
error or an unreadable set/verdict file (one line on stderr). Untriaged findings do not fail
the run. Only the standard library is used.
"""

from __future__ import annotations

import argparse
import csv
import glob
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent))
import corpus  # noqa: E402  (bench/corpus.py: wheel fetching, the measured subprocess run)

BENCH = Path(__file__).resolve().parent
REPO_ROOT = BENCH.parent
SETS = BENCH / "sets"
VERDICT_DIR = BENCH / "verdicts"
VERDICTS = ("real", "deliberate", "false")
COLUMNS = ("codebase", "code", "path", "line", "verdict", "reason")
# The files `modelint check` reads (sources, notebooks) and the ignore files that decide which.
EXTRACT_SUFFIXES = (".py", ".pyi", ".ipynb")
EXTRACT_NAMES = (".gitignore",)


class BenchError(Exception):
    """A bad set or verdict file, or an impossible request: one line for the user, exit 2."""


# --------------------------------------------------------------------------------------------
# Sets


@dataclass(frozen=True)
class CodeBase:
    name: str
    kind: str  # "repo" or "wheel"
    field: str = ""
    training: bool = False
    repo: str = ""  # owner/name
    commit: str = ""
    package: str = ""
    version: str = ""

    @property
    def pin(self) -> str:
        if self.kind == "repo":
            return f"{self.repo}@{self.commit[:12]}"
        return f"{self.package}=={self.version}"


def _codebase(entry: dict, where: str) -> CodeBase:
    kind = entry.get("kind")
    need = {"repo": ("name", "repo", "commit"), "wheel": ("name", "package", "version")}.get(kind)
    if need is None:
        raise BenchError(f"{where}: kind must be 'repo' or 'wheel', got {kind!r}")
    missing = [k for k in need if not isinstance(entry.get(k), str) or not entry[k]]
    if missing:
        raise BenchError(f"{where}: missing {', '.join(missing)}")
    if kind == "repo" and (len(entry["commit"]) != 40 or entry["repo"].count("/") != 1):
        raise BenchError(f"{where}: a repo needs owner/name and a full 40-digit commit")
    known = {f.name for f in CodeBase.__dataclass_fields__.values()}
    return CodeBase(**{k: v for k, v in entry.items() if k in known})


def load_set(name: str) -> List[CodeBase]:
    """The code bases of bench/sets/NAME.toml; for `tuning` without a file, corpus.py's pins."""
    path = SETS / f"{name}.toml"
    if not path.is_file():
        if name == "tuning":
            return [CodeBase(n, "wheel", package=n, version=v) for n, v in corpus.PINS.items()]
        raise BenchError(f"no set file {path}")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise BenchError(f"{path.name}: {e}") from None
    out = [_codebase(e, f"{path.name} codebase {i + 1}") for i, e in enumerate(data.get("codebase", []))]
    dupes = [n for n, c in Counter(c.name for c in out).items() if c > 1]
    if dupes:
        raise BenchError(f"{path.name}: code base names repeat: {', '.join(dupes)}")
    return out


# --------------------------------------------------------------------------------------------
# Verdicts


Key = Tuple[str, str, str, int]  # codebase, code, path, line


@dataclass(frozen=True)
class Verdict:
    codebase: str
    code: str
    path: str
    line: int
    verdict: str
    reason: str
    source: str = ""  # file:line of the verdict row

    @property
    def key(self) -> Key:
        return (self.codebase, self.code, self.path, self.line)


def parse_verdicts(text: str, source: str) -> List[Verdict]:
    """Rows of one verdict TSV; BenchError names the file and line of the first bad row."""
    rows = list(csv.reader(io.StringIO(text), delimiter="\t", quoting=csv.QUOTE_NONE))
    if not rows or tuple(c.strip() for c in rows[0]) != COLUMNS:
        raise BenchError(f"{source}:1: header must be {' '.join(COLUMNS)} (tab-separated)")
    out = []
    for n, row in enumerate(rows[1:], start=2):
        if not row or not "".join(row).strip() or row[0].startswith("#"):
            continue
        where = f"{source}:{n}"
        if len(row) != len(COLUMNS):
            raise BenchError(f"{where}: expected {len(COLUMNS)} tab-separated columns, got {len(row)}")
        codebase, code, path, line, verdict, reason = (c.strip() for c in row)
        if verdict not in VERDICTS:
            raise BenchError(f"{where}: verdict must be one of {', '.join(VERDICTS)}, got {verdict!r}")
        if not line.isdigit():
            raise BenchError(f"{where}: line must be a positive integer, got {line!r}")
        if not (codebase and code and path and reason):
            raise BenchError(f"{where}: codebase, code, path and reason must not be empty")
        out.append(Verdict(codebase, code, path, int(line), verdict, reason, where))
    return out


def load_verdicts(paths: Iterable[Path]) -> Dict[Key, Verdict]:
    """All rows of the files by key; the same key twice is an error even with the same verdict."""
    out: Dict[Key, Verdict] = {}
    for p in paths:
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as e:
            raise BenchError(f"{p}: {e.strerror}") from None
        for v in parse_verdicts(text, p.name):
            if v.key in out:
                raise BenchError(f"{v.source}: {'/'.join(map(str, v.key))} already judged at {out[v.key].source}")
            out[v.key] = v
    return out


def verdict_files(set_name: str) -> List[Path]:
    """``SET.tsv`` and ``SET-*.tsv``: a bare ``SET*`` would also read ``measuring2.tsv`` for
    ``measuring``, counting another set's verdicts as this one's disappeared findings."""
    base = glob.escape(set_name)
    found = glob.glob(str(VERDICT_DIR / f"{base}.tsv")) + glob.glob(str(VERDICT_DIR / f"{base}-*.tsv"))
    return sorted(Path(p) for p in found)


# --------------------------------------------------------------------------------------------
# Comparison (pure: findings and verdicts in, counts and lists out)


def finding_key(codebase: str, f: dict) -> Key:
    """A finding's key: its path relative to the code base (a notebook's carries the cell)."""
    path = f["relpath"] + (f"#cell={f['cell']}" if f.get("cell") is not None else "")
    return (codebase, f["code"], path, int(f["line"]))


@dataclass
class RuleStats:
    findings: int = 0
    real: int = 0
    deliberate: int = 0
    false: int = 0

    @property
    def triaged(self) -> int:
        return self.real + self.deliberate + self.false

    @property
    def untriaged(self) -> int:
        return self.findings - self.triaged

    @property
    def precision(self) -> Optional[float]:
        return (self.real + self.deliberate) / self.triaged if self.triaged else None

    @property
    def deliberate_share(self) -> Optional[float]:
        return self.deliberate / self.findings if self.findings else None

    def add(self, verdict: Optional[str]) -> None:
        self.findings += 1
        if verdict is not None:
            setattr(self, verdict, getattr(self, verdict) + 1)


@dataclass
class Comparison:
    per_rule: Dict[str, RuleStats] = field(default_factory=dict)
    new: List[Tuple[Key, dict]] = field(default_factory=list)  # findings without a verdict
    disappeared: List[Verdict] = field(default_factory=list)
    not_selected: Counter = field(default_factory=Counter)  # code -> verdicts of a code not run
    not_run: int = 0  # verdicts of code bases this run did not check

    def total(self) -> RuleStats:
        t = RuleStats()
        for s in self.per_rule.values():
            for attr in ("findings", "real", "deliberate", "false"):
                setattr(t, attr, getattr(t, attr) + getattr(s, attr))
        return t


def compare(findings: Dict[str, List[dict]], verdicts: Dict[Key, Verdict], scope: Iterable[str]) -> Comparison:
    """Judge `findings` (code base -> JSON findings with `relpath`) by `verdicts`.

    `scope` is the set of codes the run selected: a verdict can only disappear when its code was
    selected and its code base was checked. Several findings on one key share its verdict."""
    scope = set(scope)
    out = Comparison()
    seen = set()
    for codebase in sorted(findings):
        for f in findings[codebase]:
            key = finding_key(codebase, f)
            seen.add(key)
            v = verdicts.get(key)
            out.per_rule.setdefault(f["code"], RuleStats()).add(v.verdict if v else None)
            if v is None:
                out.new.append((key, f))
    for key, v in sorted(verdicts.items()):
        if key in seen:
            continue
        if v.codebase not in findings:
            out.not_run += 1
        elif v.code in scope:
            out.disappeared.append(v)
        else:
            out.not_selected[v.code] += 1
    return out


def _pct(x: Optional[float]) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def render_rules(cmp: Comparison) -> str:
    head = ["rule", "findings", "real", "deliberate", "false", "untriaged", "precision", "delib. share"]

    def row(name: str, s: RuleStats) -> List[str]:
        return [name, str(s.findings), str(s.real), str(s.deliberate), str(s.false), str(s.untriaged),
                _pct(s.precision), _pct(s.deliberate_share)]

    rows = [row(c, cmp.per_rule[c]) for c in sorted(cmp.per_rule)] + [row("TOTAL", cmp.total())]
    widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
    fmt = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
    sep = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(head), sep] + [fmt(r) for r in rows[:-1]] + [sep, fmt(rows[-1])])


def render_markdown(cmp: Comparison) -> str:
    """The per-rule table as Markdown, for reports."""
    lines = ["| rule | findings | real | deliberate | false | untriaged | precision | deliberate share |",
             "|---|---|---|---|---|---|---|---|"]
    for name, s in [(c, cmp.per_rule[c]) for c in sorted(cmp.per_rule)] + [("**total**", cmp.total())]:
        lines.append(f"| {name} | {s.findings} | {s.real} | {s.deliberate} | {s.false} | {s.untriaged} "
                     f"| {_pct(s.precision)} | {_pct(s.deliberate_share)} |")
    return "\n".join(lines)


def todo_rows(cmp: Comparison, source_line) -> List[List[str]]:
    """The new findings as verdict rows to fill in: verdict `?`, reason = message | source line."""
    return [list(map(str, key)) + ["?", f"{f['message']} | {source_line(key, f)}"] for key, f in cmp.new]


# --------------------------------------------------------------------------------------------
# Fetching


def mirror_dir(mirror: Path, repo: str) -> Optional[Path]:
    base = mirror / repo.replace("/", "+")
    for d in (base / "repo", base):
        if (d / "HEAD").is_file() or (d / ".git").exists():
            return d
    return None


def _wanted(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    return name.endswith(EXTRACT_SUFFIXES) or name in EXTRACT_NAMES


def _extract_git(gitdir: Path, commit: str, dest: Path) -> List[str]:
    """Write the wanted files of `commit` below dest; return the paths whose blobs are missing."""
    git = ["git", "--git-dir", str(gitdir) if (gitdir / "HEAD").is_file() else str(gitdir / ".git")]
    listing = subprocess.run(git + ["ls-tree", "-r", "-z", commit], capture_output=True, check=False)
    if listing.returncode != 0:
        raise RuntimeError(f"commit {commit[:12]} not in {gitdir}: {listing.stderr.decode().strip()}")
    blobs = []
    for entry in listing.stdout.split(b"\0"):
        if not entry:
            continue
        meta, _, path = entry.decode("utf-8", "surrogateescape").partition("\t")
        mode, kind, sha = meta.split()
        if kind == "blob" and mode != "120000" and _wanted(path):
            blobs.append((sha, path))
    skipped = []
    proc = subprocess.Popen(git + ["cat-file", "--batch"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdin and proc.stdout
    proc.stdin.write("".join(f"{sha}\n" for sha, _ in blobs).encode())
    proc.stdin.close()
    for sha, path in blobs:
        header = proc.stdout.readline().decode().split()
        if len(header) != 3:  # "<sha> missing"
            skipped.append(path)
            continue
        data = proc.stdout.read(int(header[2]))
        proc.stdout.read(1)  # the newline after each object
        target = dest / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    proc.wait()
    return skipped


def _extract_archive(repo: str, commit: str, dest: Path) -> List[str]:
    url = f"https://github.com/{repo}/archive/{commit}.tar.gz"
    corpus.log(f"[{repo}] downloading {url}")
    with urllib.request.urlopen(url, timeout=300) as resp:
        data = resp.read()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tf:
        for member in tf.getmembers():
            top, _, path = member.name.partition("/")
            if not member.isfile() or not path or not _wanted(path) or ".." in path.split("/"):
                continue
            target = dest / path
            target.parent.mkdir(parents=True, exist_ok=True)
            src = tf.extractfile(member)
            if src is not None:
                target.write_bytes(src.read())
    return []


def fetch_repo(cb: CodeBase, cache: Path, mirror: Optional[Path]) -> Tuple[Path, List[str]]:
    """CACHE/src/OWNER+NAME-COMMIT12 (made once) and the files skipped for missing blobs."""
    src = cache / "src" / f"{cb.repo.replace('/', '+')}-{cb.commit[:12]}"
    skipped_file = src.parent / f".{src.name}.skipped"
    if src.is_dir():
        skipped = skipped_file.read_text().split("\n") if skipped_file.is_file() else []
        return src, [s for s in skipped if s]
    src.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{src.name}-", dir=src.parent))
    try:
        gitdir = mirror_dir(mirror, cb.repo) if mirror else None
        if mirror and gitdir is None:
            raise RuntimeError(f"no git mirror of {cb.repo} in {mirror} (fetch it first)")
        skipped = _extract_git(gitdir, cb.commit, tmp) if gitdir else _extract_archive(cb.repo, cb.commit, tmp)
        skipped_file.write_text("\n".join(skipped))
        tmp.rename(src)  # a half-extracted tree is never taken for a finished one
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return src, skipped


def fetch_codebase(cb: CodeBase, cache: Path, mirror: Optional[Path]) -> Tuple[Path, List[str]]:
    if cb.kind == "wheel":
        return corpus.fetch(cb.package, cb.version, cache), []
    return fetch_repo(cb, cache, mirror)


# --------------------------------------------------------------------------------------------
# Running


def selected_codes(base_cmd: Sequence[str], env: dict, select: Optional[str]) -> set:
    """The codes `modelint check` runs with this selection, from its own --show-settings."""
    cmd = list(base_cmd) + ["check", "--show-settings", "--no-config", "."] + (["--select", select] if select else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tempfile.gettempdir())
    for line in proc.stdout.splitlines():
        if line.startswith("select"):
            return {c.strip() for c in line.split(None, 1)[1].split(",") if c.strip()}
    raise BenchError(f"could not read the selected codes from `{' '.join(cmd)}`: {proc.stderr.strip()[:200]}")


def run_set(codebases: Sequence[CodeBase], args: argparse.Namespace, base_cmd, env) -> List[Tuple[CodeBase, corpus.Result, List[str]]]:
    out = []
    extra = ["--no-cache"]
    for cb in codebases:
        res = corpus.Result(cb.name, cb.version or cb.commit[:12])
        skipped: List[str] = []
        try:
            res.src_dir, skipped = fetch_codebase(cb, args.cache, args.mirror)
            res.files, res.lines = corpus.count_py(res.src_dir)
        except Exception as e:  # noqa: BLE001 - report and go on with the next code base
            res.error = f"fetch failed: {e}"
            corpus.log(f"[{cb.name}] {res.error}")
        if not res.error and not args.fetch_only:
            corpus.check(res, base_cmd, args, env, extra)
        out.append((cb, res, skipped))
    return out


def render_codebases(results) -> str:
    lines = ["code base                     pin                                       field                              files    lines  findings   cpu s"]
    for cb, res, skipped in results:
        status = str(len(res.findings)) if res.ok else "FAILED"
        lines.append(f"{cb.name[:29]:29} {cb.pin[:41]:41} {cb.field[:34]:34} {res.files:5} {res.lines:8} {status:>9} {res.cpu:7.1f}"
                     + (f"  ({len(skipped)} files skipped: blobs missing)" if skipped else ""))
    lines.append(f"{'TOTAL':29} {'':41} {'':34} {sum(r.files for _, r, _ in results):5} "
                 f"{sum(r.lines for _, r, _ in results):8} {sum(len(r.findings) for _, r, _ in results):9} "
                 f"{sum(r.cpu for _, r, _ in results):7.1f}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench/precision.py", description="Precision of modelint's rules "
                                "on a pinned set of real code bases, against committed verdicts.")
    p.add_argument("names", nargs="*", metavar="NAME", help="code bases of the set to run (default: all)")
    p.add_argument("--set", default="measuring", help="bench/sets/SET.toml and bench/verdicts/SET.tsv, SET-*.tsv (default: %(default)s)")
    p.add_argument("--cache", type=Path, metavar="DIR", help="where sources live (default: ~/.cache/modelint-bench/SET; "
                   "the tuning set shares corpus.py's cache)")
    p.add_argument("--mirror", type=Path, metavar="DIR", help="take repositories from git mirrors DIR/OWNER+NAME[/repo] "
                   "instead of GitHub archives")
    p.add_argument("--modelint-root", type=Path, default=REPO_ROOT, metavar="DIR",
                   help="the modelint source tree to measure (put first on PYTHONPATH; default: this tree)")
    p.add_argument("--select", metavar="CODES", help="passed to `modelint check --select`")
    p.add_argument("--jobs", type=int, metavar="N", help="passed to `modelint check --jobs`")
    p.add_argument("--training-only", action="store_true", help="only the code bases marked training = true")
    p.add_argument("--timeout", type=float, default=1200.0, metavar="SECONDS", help="per code base (default: %(default)g)")
    p.add_argument("--json", type=Path, metavar="OUT", help="write findings, verdicts and counts to OUT")
    p.add_argument("--todo", type=Path, metavar="OUT", help="write the new findings to OUT as verdict rows to fill in")
    p.add_argument("--markdown", action="store_true", help="also print the per-rule table as Markdown")
    p.add_argument("--fetch-only", action="store_true", help="fetch and extract, run nothing")
    p.add_argument("--findings", type=Path, metavar="JSON", help="judge the findings of an earlier --json "
                   "output instead of running modelint (its scope and code bases; sources from --cache)")
    return p


def results_from_json(path: Path, codebases: Sequence[CodeBase], cache: Path):
    """(results, scope) of an earlier --json run, for the code bases of `codebases` it holds."""
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
        ran = {c["name"]: c for c in payload["codebases"]}
        scope = set(payload["scope"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise BenchError(f"{path}: not a precision.py --json output ({e})") from None
    out = []
    for cb in codebases:
        if cb.name not in ran:
            continue
        d = ran[cb.name]
        res = corpus.Result(cb.name, d.get("version", ""), files=d.get("files", 0), lines=d.get("lines", 0),
                            cpu=d.get("cpu_seconds", 0.0), error=d.get("error", ""), findings=d.get("findings", []))
        src = Path(d["src_dir"]) if d.get("src_dir") else None
        res.src_dir = src if src and src.is_dir() else None
        out.append((cb, res, d.get("skipped", [])))
    return out, scope


def _source_line(results):
    roots = {cb.name: res.src_dir for cb, res, _ in results}
    lines = corpus.SourceLines()

    def get(key: Key, f: dict) -> str:
        if f.get("cell") is not None or roots.get(key[0]) is None:
            return ""
        return lines.get(roots[key[0]] / f["relpath"], key[3])
    return get


def report(results, cmp: Comparison, args) -> None:
    print(render_codebases(results))
    print()
    print(render_rules(cmp))
    if args.markdown:
        print()
        print(render_markdown(cmp))
    source = _source_line(results)
    print(f"\nnew findings (no verdict, to triage): {len(cmp.new)}")
    for key, f in cmp.new:
        print(f"  {key[0]}/{key[2]}:{key[3]}: {key[1]} {f['message']}\n      {source(key, f)}")
    print(f"\ndisappeared verdicts (a real one gone is a possible recall loss): {len(cmp.disappeared)}")
    for v in cmp.disappeared:
        print(f"  {v.codebase}/{v.path}:{v.line}: {v.code} [{v.verdict}] {v.reason}")
    if cmp.not_selected:
        codes = ", ".join(f"{c} {n}" for c, n in sorted(cmp.not_selected.items()))
        print(f"\nverdicts of codes this run did not select (left out or off by default): {codes}")
    if cmp.not_run:
        print(f"{cmp.not_run} verdicts of code bases this run did not check")
    if args.todo:
        with args.todo.open("w", encoding="utf-8", newline="") as fh:
            w = csv.writer(fh, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_NONE, escapechar="\\")
            w.writerow(COLUMNS)
            w.writerows([[c.replace("\t", " ") for c in r] for r in todo_rows(cmp, source)])
        corpus.log(f"wrote {len(cmp.new)} rows to {args.todo}")


def _commit(root: Path) -> str:
    """The git commit of the measured modelint tree ('' outside git), so a --json run says which code ran."""
    proc = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else ""


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        codebases = load_set(args.set)
        verdicts = load_verdicts(verdict_files(args.set))
        unknown = sorted(set(args.names) - {c.name for c in codebases})
        if unknown:
            raise BenchError(f"not in set {args.set}: {', '.join(unknown)}")
        codebases = [c for c in codebases if (not args.names or c.name in args.names)
                     and (c.training or not args.training_only)]
        default_cache = corpus.DEFAULT_CACHE if args.set == "tuning" else corpus.DEFAULT_CACHE / args.set
        args.cache = (args.cache or default_cache).expanduser().resolve()
        if args.cache.is_relative_to(REPO_ROOT):
            raise BenchError(f"--cache {args.cache} is inside the repository; third-party code stays outside it")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(args.modelint_root.resolve()), env.get("PYTHONPATH")]))
        base_cmd = [sys.executable, "-m", "modelint"]
        if args.findings:
            results, scope = results_from_json(args.findings, codebases, args.cache)
        else:
            scope = set() if args.fetch_only else selected_codes(base_cmd, env, args.select)
    except BenchError as e:
        print(f"precision.py: {e}", file=sys.stderr)
        return 2
    if not args.findings:
        results = run_set(codebases, args, base_cmd, env)
    checked = {cb.name: res.findings for cb, res, _ in results if res.ok and not args.fetch_only}
    cmp = compare(checked, verdicts, scope)
    report(results, cmp, args)
    if args.json:
        payload = {"set": args.set, "modelint_root": str(args.modelint_root), "select": args.select,
                   "modelint_commit": _commit(args.modelint_root),
                   "scope": sorted(scope), "codebases": [dict(res.to_dict(), pin=cb.pin, field=cb.field,
                   skipped=skipped) for cb, res, skipped in results],
                   "per_rule": {c: vars(s) for c, s in cmp.per_rule.items()},
                   "new": [list(k) for k, _ in cmp.new], "disappeared": [list(v.key) + [v.verdict] for v in cmp.disappeared],
                   "not_selected": dict(cmp.not_selected)}
        args.json.write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
    failed = [cb.name for cb, res, _ in results if not res.ok]
    if failed:
        corpus.log(f"failed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

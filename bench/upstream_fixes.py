#!/usr/bin/env python3
"""Recall on real mode bugs that their authors fixed upstream: run modelint before and after each fix.

A fix list (``bench/sets/FIXES.toml``) names commits of public repositories that fixed a train/eval
mode bug, each with the file, line range and function (at the parent commit) of the code that ran in
the wrong mode, and its kind::

    [[fix]]
    name = "Short"
    repo = "owner/name"
    fix_commit = "<40 hex>"
    buggy_commit = "<40 hex: the fix's parent>"
    path = "train.py"
    lines = [120, 135]
    function = "evaluate"          # "<module>" for script level
    kind = "eval-missing"          # see KIND_CODES

For every entry the trees of both commits are extracted from a local git mirror (``--mirror DIR``,
``DIR/OWNER+NAME/repo``) into the cache (never into this repository) and checked as a subprocess with
``--select`` the call-site and frozen-module codes. An entry is **caught** when a finding of one of
its kind's codes lies in the buggy file inside the buggy function (the innermost ``def`` holding the
first buggy line, found with ``ast`` in the buggy tree; the line range itself at module level), or
anywhere when its message names a call of the buggy function (`` `val(`` for ``function = "val"``:
the report sits at the caller, as MDL302's does for an evaluation routine that never switches), and
**cleared** when the fix commit has fewer such findings in that file than the buggy one. Findings of
the kind's codes elsewhere in the buggy tree are listed (``elsewhere``) for a reader to judge; they do
not count as caught.

Usage::

    python bench/upstream_fixes.py --mirror /work/.mirror                    # bench/sets/upstream17.toml
    python bench/upstream_fixes.py --mirror /work/.mirror --list bench/sets/upstream17.toml --json out.json
    python bench/upstream_fixes.py --mirror /work/.mirror --modelint-root /tmp/tree Name1 Name2

Exit status 0 when every entry was extracted and checked (whatever was caught), 1 when one failed,
2 for a usage error or an unreadable list (one line on stderr). Only the standard library is used.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Set, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent))
import precision  # noqa: E402  (tree extraction from mirrors, the cache layout)

BENCH = Path(__file__).resolve().parent
REPO_ROOT = BENCH.parent
DEFAULT_LIST = BENCH / "sets" / "upstream17.toml"
SELECT = "MDL205,MDL207,MDL3"
# Which codes report each kind of bug: the one the rule names and its close neighbours
# (a routine that starts with the wrong switch is MDL304; a whole loop in eval, MDL303).
KIND_CODES = {
    "eval-missing": ("MDL302", "MDL304"),
    "train-missing": ("MDL301", "MDL303"),
    "train-in-eval-routine": ("MDL304", "MDL302"),
    "eval-in-train-routine": ("MDL304", "MDL303", "MDL301"),
    "frozen-reset": ("MDL205", "MDL207"),
}


class ListError(Exception):
    pass


@dataclass
class Fix:
    name: str
    repo: str
    fix_commit: str
    buggy_commit: str
    path: str
    lines: Tuple[int, int]
    function: str
    kind: str

    @property
    def codes(self) -> Tuple[str, ...]:
        return KIND_CODES[self.kind]


def _fix(entry: dict, where: str) -> Fix:
    need = ("name", "repo", "fix_commit", "buggy_commit", "path", "function", "kind")
    missing = [k for k in need if not isinstance(entry.get(k), str) or not entry[k]]
    if missing:
        raise ListError(f"{where}: missing {', '.join(missing)}")
    for key in ("fix_commit", "buggy_commit"):
        if len(entry[key]) != 40:
            raise ListError(f"{where}: {key} must be a full 40-digit commit")
    lines = entry.get("lines")
    if not (isinstance(lines, list) and len(lines) == 2 and all(isinstance(n, int) for n in lines)):
        raise ListError(f"{where}: lines must be [START, END]")
    if entry["kind"] not in KIND_CODES:
        raise ListError(f"{where}: kind must be one of {', '.join(KIND_CODES)}, got {entry['kind']!r}")
    return Fix(entry["name"], entry["repo"], entry["fix_commit"], entry["buggy_commit"], entry["path"],
               (min(lines), max(lines)), entry["function"], entry["kind"])


def load_list(path: Path) -> List[Fix]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ListError(f"{path}: {exc}") from None
    fixes = [_fix(e, f"{path.name} entry {i + 1}") for i, e in enumerate(data.get("fix", []))]
    names = [f.name for f in fixes]
    if len(set(names)) != len(names):
        raise ListError(f"{path}: entry names must be unique")
    return fixes


def function_span(source: str, first: int, last: int) -> Tuple[int, int]:
    """The lines of the innermost function holding line `first`, or (first, last) at module level."""
    best: Optional[Tuple[int, int]] = None
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            start = min([node.lineno] + [d.lineno for d in node.decorator_list])
            end = node.end_lineno or node.lineno
            if start <= first <= end and (best is None or end - start < best[1] - best[0]):
                best = (start, end)
    return best or (first, last)


def check_tree(src: Path, root: Path) -> List[dict]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(root.resolve()), os.environ.get("PYTHONPATH")])))
    cmd = [sys.executable, "-m", "modelint", "check", ".", "--format", "json", "--exit-zero", "--no-config",
           "--no-cache", "--select", SELECT]
    proc = subprocess.run(cmd, cwd=src, env=env, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"modelint exited {proc.returncode}: {proc.stderr.strip()[-300:]}")
    data = json.loads(proc.stdout)
    findings = data["findings"] if isinstance(data, dict) else data
    for f in findings:
        f["path"] = os.path.relpath(os.path.join(src, f["path"]), src)  # "./a/b.py" -> "a/b.py"
    return findings


def _tree(fix: Fix, commit: str, cache: Path, mirror: Path) -> Path:
    cb = precision.CodeBase(name=fix.name, kind="repo", repo=fix.repo, commit=commit)
    src, _skipped = precision.fetch_repo(cb, cache, mirror)
    return src


def top_level_lines(source: str) -> Set[int]:
    """The lines of a file's top-level script code: every line not inside a `def` or `class`."""
    tree = ast.parse(source)
    inside = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            start = min([node.lineno] + [d.lineno for d in node.decorator_list])
            inside.update(range(start, (node.end_lineno or node.lineno) + 1))
    return set(range(1, len(source.splitlines()) + 1)) - inside


def judge(fix: Fix, buggy: List[dict], fixed: List[dict], span: Tuple[int, int],
          script: Optional[Set[int]] = None) -> dict:
    """`script`: for an entry in a file's top-level code (`function = "<module>"`), the lines of that
    code: a finding anywhere in it is inside the buggy "function", as one in a function's body is for
    a function entry (upstream18's FaceEvoLVe was reported at the script's validation calls, outside
    the training-step lines the entry names)."""
    mine = [f for f in buggy if f["code"] in fix.codes]
    inside = [f for f in mine if f["path"] == fix.path and (
        span[0] <= f["line"] <= span[1] or (script is not None and f["line"] in script))]
    # a finding at a call of the buggy routine that names it (`val(net, ...)` "... and `val()` does not
    # switch it"): the report points at the caller, the fix goes into the routine
    named = f"`{fix.function}(" if fix.function != "<module>" else None
    at_call = [f for f in mine if f not in inside and named and named in f["message"]]
    in_file = lambda fs: sum(1 for f in fs if f["code"] in fix.codes and f["path"] == fix.path)  # noqa: E731
    return {
        "name": fix.name, "repo": fix.repo, "kind": fix.kind, "path": fix.path, "span": list(span),
        "caught": bool(inside or at_call), "cleared": bool(inside or at_call) and in_file(fixed) < in_file(buggy),
        "findings": [{k: f[k] for k in ("code", "path", "line", "message")} for f in inside + at_call],
        "elsewhere": [{k: f[k] for k in ("code", "path", "line", "message")} for f in mine
                      if f not in inside and f not in at_call],
    }


def run(fixes: Sequence[Fix], args: argparse.Namespace) -> Tuple[List[dict], List[str]]:
    results, failures = [], []
    for fix in fixes:
        try:
            buggy_src = _tree(fix, fix.buggy_commit, args.cache, args.mirror)
            fixed_src = _tree(fix, fix.fix_commit, args.cache, args.mirror)
            source = (buggy_src / fix.path).read_text(encoding="utf-8", errors="replace")
            span = function_span(source, *fix.lines)
            script = top_level_lines(source) if fix.function == "<module>" else None
            results.append(judge(fix, check_tree(buggy_src, args.modelint_root),
                                 check_tree(fixed_src, args.modelint_root), span, script))
        except (RuntimeError, OSError, SyntaxError, ValueError, subprocess.SubprocessError) as exc:
            failures.append(f"{fix.name}: {exc}")
    return results, failures


def render(results: Sequence[dict]) -> str:
    rows = ["| entry | kind | caught | cleared by the fix | finding in the buggy function | elsewhere |",
            "|---|---|---|---|---|---|"]
    for r in results:
        found = "; ".join(f"{f['code']} {f['path']}:{f['line']}" for f in r["findings"]) or "-"
        rows.append(f"| {r['name']} | {r['kind']} | {'yes' if r['caught'] else 'no'} | "
                    f"{'yes' if r['cleared'] else '-'} | {found} | {len(r['elsewhere'])} |")
    by_kind: Dict[str, List[int]] = {}
    for r in results:
        k = by_kind.setdefault(r["kind"], [0, 0])
        k[0] += r["caught"]
        k[1] += 1
    rows.append("")
    rows += [f"{kind}: {c}/{n} caught" for kind, (c, n) in sorted(by_kind.items())]
    rows.append(f"total: {sum(r['caught'] for r in results)}/{len(results)} caught, "
                f"{sum(r['cleared'] for r in results)} cleared by their fix")
    return "\n".join(rows)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("names", nargs="*", help="entries to run (default: all)")
    p.add_argument("--list", type=Path, default=DEFAULT_LIST, help="the fix list (TOML)")
    p.add_argument("--mirror", type=Path, required=True, help="git mirrors: DIR/OWNER+NAME/repo")
    p.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "modelint-bench" / "upstream")
    p.add_argument("--modelint-root", type=Path, default=REPO_ROOT, help="the modelint tree to run")
    p.add_argument("--json", type=Path, help="write the results here")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        fixes = load_list(args.list)
    except ListError as exc:
        print(f"upstream_fixes: {exc}", file=sys.stderr)
        return 2
    if args.cache.resolve().is_relative_to(REPO_ROOT):
        print(f"upstream_fixes: --cache {args.cache} is inside the repository; third-party code stays outside it",
              file=sys.stderr)
        return 2
    unknown = set(args.names) - {f.name for f in fixes}
    if unknown:
        print(f"upstream_fixes: no entry named {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    chosen = [f for f in fixes if not args.names or f.name in args.names]
    results, failures = run(chosen, args)
    print(render(results))
    for line in failures:
        print(f"FAILED {line}", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps({"results": results, "failures": failures}, indent=1) + "\n")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

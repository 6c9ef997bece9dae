#!/usr/bin/env python3
"""Run `modelint check --fix` over copies of the pinned real corpora and verify the fix contract.

For every package (see bench/corpus.py for the pins and the cache), the sources are copied to a
temporary folder (the cache is never modified) and then:

1. `modelint check --fix [--unsafe-fixes] --format json --no-cache` runs once over the copy; the
   fixes applied per rule are read from its stderr summary;
2. every changed file is compared with the original: it must still parse (CPython `compile` and
   LibCST), keep its encoding and line endings, and only changed files may differ;
3. `modelint check --diff` over the fixed copy must print nothing (the fixpoint was reached and a
   second `--fix` is a no-op);
4. files with no fixable finding must be byte-identical.

Usage::

    python bench/fix_corpus.py                       # all pinned packages, safe and unsafe fixes
    python bench/fix_corpus.py timm --safe-only
    python bench/fix_corpus.py --checkpointing       # also MDL401's report-checkpointing sub-check
    python bench/fix_corpus.py --show 3              # print the first 3 diff hunks per rule

Exit status 0 when every package satisfied the contract, 1 otherwise.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parent))
import corpus  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def run(cmd: List[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)


def parses(data: bytes) -> bool:
    import libcst as cst

    try:
        compile(data, "<fixed>", "exec", flags=ast.PyCF_ONLY_AST, dont_inherit=True)
        cst.parse_module(data)
    except Exception:
        return False
    return True


def snapshot(root: Path) -> Dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in corpus.iter_py(root)}


def fixed_counts(stderr: str) -> Dict[str, int]:
    m = re.search(r"^Fixed \d+ findings? in \d+ files? \(([^)]*)\)\.$", stderr, re.MULTILINE)
    if not m:
        return {}
    return {code: int(n) for code, n in re.findall(r"(MDL\d+) x(\d+)", m.group(1))}


def one(name: str, version: str, args) -> bool:
    src = corpus.fetch(name, version, args.cache)
    ok = True
    modes = [("safe", [])] + ([] if args.safe_only else [("unsafe", ["--unsafe-fixes"])])
    for label, extra in modes:
        work = Path(tempfile.mkdtemp(prefix=f"modelint-fix-{name}-"))
        try:
            copy = work / src.name
            shutil.copytree(src, copy)
            if args.checkpointing:
                (work / "pyproject.toml").write_text('[tool.modelint.rules.MDL401]\nreport-checkpointing = true\n')
            before = snapshot(copy)
            base = [sys.executable, "-m", "modelint", "check", copy.name, "--no-cache", "--format", "json", "--exit-zero"]
            if not args.checkpointing:
                base.append("--no-config")
            t0 = time.perf_counter()
            first = run(base + ["--fix"] + extra, work)
            wall = time.perf_counter() - t0
            if first.returncode not in (0, 1):
                print(f"{name} [{label}]: modelint exited {first.returncode}: {first.stderr.strip()[:500]}")
                ok = False
                continue
            counts = fixed_counts(first.stderr)
            errors = [ln for ln in first.stderr.splitlines() if ln.startswith("modelint:")]
            after = snapshot(copy)
            changed = [p for p in before if after.get(p) != before[p]]
            broken = [p for p in changed if not parses(after[p])]
            crlf_lost = [p for p in changed if (b"\r\n" in before[p]) != (b"\r\n" in after[p])]
            second = run(base + ["--diff"] + extra, work)
            remaining = json.loads(first.stdout) if first.stdout.strip() else []
            still_fixable = [f for f in remaining if f.get("fix") and (label == "unsafe" or f["fix"]["applicability"] == "safe")]
            print(f"{name}-{version} [{label}]: {len(before)} files, {len(changed)} changed, fixes applied "
                  f"{sum(counts.values())} ({', '.join(f'{c} x{n}' for c, n in sorted(counts.items())) or 'none'}), "
                  f"unparseable after fix {len(broken)}, line endings changed {len(crlf_lost)}, "
                  f"second pass diff {'empty' if not second.stdout else str(len(second.stdout.splitlines())) + ' lines'}, "
                  f"fixable findings left {len(still_fixable)}, fixer messages {len(errors)}, {wall:.1f} s")
            for e in errors:
                print("   ", e)
            if args.show and changed:
                diff = run(["git", "diff", "--no-index", "--no-color", str(src), copy.name], work).stdout
                hunks = diff.split("\ndiff --git")[: args.show]
                print("\n".join(hunks)[:4000])
            if broken or crlf_lost or second.stdout or still_fixable:
                ok = False
                for p in broken:
                    print(f"    does not parse after fixing: {p}")
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("packages", nargs="*")
    parser.add_argument("--cache", type=Path, default=corpus.DEFAULT_CACHE)
    parser.add_argument("--safe-only", action="store_true")
    parser.add_argument("--checkpointing", action="store_true", help="enable MDL401 report-checkpointing")
    parser.add_argument("--show", type=int, default=0, metavar="N", help="print N diff hunks per package")
    args = parser.parse_args()
    packages = corpus.parse_packages(args.packages, parser) if args.packages else list(corpus.PINS.items())
    results = [one(name, version, args) for name, version in packages]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())

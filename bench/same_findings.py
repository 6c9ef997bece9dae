#!/usr/bin/env python3
"""Are the findings of two modelint trees byte-identical on the bench corpora?

A refactoring must not change behaviour; this is how that is checked. For each corpus package
(`corpus.py`'s pinned wheels, fetched into its cache) both trees run ::

    python -m modelint check SRC --format json --no-cache --no-config --exit-zero -j JOBS

and their outputs are compared byte for byte. Usage::

    python bench/same_findings.py --base /tmp/base-tree            # base tree vs this working tree
    python bench/same_findings.py --base /tmp/base-tree timm torchvision
    python bench/same_findings.py --base-out /tmp/ident/base        # reuse saved base outputs
    python bench/same_findings.py --base /tmp/base --all-codes      # default-off codes too

`--base` is a checkout of the other version (e.g. `git worktree add /tmp/base HEAD~3`); its
outputs are kept in `--out DIR/base`, this tree's in `--out DIR/new`, so a differing package can be
inspected with `diff`. Exit status 0 when every package is identical, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus import DEFAULT_CACHE, PINS  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent


def run_tree(tree: Path, src: Path, out: Path, jobs: int, extra=()) -> int:
    env = dict(os.environ, PYTHONPATH=str(tree))
    with open(out, "wb") as fh:
        done = subprocess.run([sys.executable, "-m", "modelint", "check", str(src), "--format", "json", "--no-cache",
                               "--no-config", "--exit-zero", "-j", str(jobs), *extra], stdout=fh, stderr=subprocess.PIPE,
                              env=env, cwd="/")
    if done.returncode:
        print(f"  {tree}: exit {done.returncode}: {done.stderr.decode(errors='replace').strip()[-300:]}")
    return done.returncode


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("packages", nargs="*", help="corpus package names (default: all pinned)")
    ap.add_argument("--base", type=Path, help="the other tree (a checkout with modelint/ in it)")
    ap.add_argument("--base-out", type=Path, help="a folder with saved base outputs (NAME-VERSION.json)")
    ap.add_argument("--out", type=Path, default=Path("/tmp/modelint-same-findings"))
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--jobs", "-j", type=int, default=2)
    ap.add_argument("--all-codes", action="store_true",
                    help="select every code, default-off ones included (more findings to compare)")
    args = ap.parse_args()
    if (args.base is None) == (args.base_out is None):
        ap.error("give exactly one of --base and --base-out")
    names = args.packages or list(PINS)
    (args.out / "new").mkdir(parents=True, exist_ok=True)
    (args.out / "base").mkdir(parents=True, exist_ok=True)
    different = 0
    for name in names:
        src = args.cache / "src" / f"{name}-{PINS[name]}"
        if not src.is_dir():
            print(f"{name}: not fetched (run `python bench/corpus.py --fetch-only {name}`)")
            different += 1
            continue
        extra = ("--select", "MDL") if args.all_codes else ()
        stem = src.name + ("-all" if args.all_codes else "")
        new = args.out / "new" / f"{stem}.json"
        if args.base is not None:
            base = args.out / "base" / f"{stem}.json"
            run_tree(args.base, src, base, args.jobs, extra)
        else:
            base = args.base_out / f"{stem}.json"
        run_tree(REPO_ROOT, src, new, args.jobs, extra)
        same = base.read_bytes() == new.read_bytes()
        different += not same
        print(f"{src.name}: {'identical' if same else 'DIFFERENT'} ({new.stat().st_size:,} bytes)")
    return 1 if different else 0


if __name__ == "__main__":
    sys.exit(main())

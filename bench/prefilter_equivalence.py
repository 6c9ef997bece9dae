#!/usr/bin/env python3
"""Does the text pre-filter ever lose a finding? Every cached real corpus, with it and without it.

The pre-filter (`Rule.triggers`, applied in `modelint.engine.check_bytes`) skips a rule on a file
that contains none of the rule's trigger words, and skips the LibCST parse of a file when it skips
every rule. It must be a pure optimisation. `tests/test_prefilter_real.py` checks that on a bounded
part of the installed torch package in CI; this script does it on everything `bench/corpus.py`
has cached (timm, torchvision, transformers, diffusers, pytorch-lightning, ultralytics: about
5,000 files and 2.2 M lines), and with `--torch` also on the whole installed torch package.

Each package is one project (its own cross-file index), discovered like `modelint check` does
(default excludes, .gitignore, notebooks), checked in-process through `check_paths` with every
static rule selected (default-off ones, MDL001, and the rule options that switch on optional
sub-checks), once with the pre-filter and once without (`cache=None`). It prints one row per
package: files, how many files and rule runs the pre-filter skips, findings with and without it,
differences, and the wall time of each run; then every difference (a finding only one run has),
with the rule's trigger list: a difference is a bug in that rule's `triggers`.

Usage::

    python bench/prefilter_equivalence.py                 # every cached package (~10 min on 2 cores)
    python bench/prefilter_equivalence.py timm diffusers  # some of them
    python bench/prefilter_equivalence.py --torch         # also the installed torch package
    python bench/prefilter_equivalence.py torch           # only the installed torch package
    python bench/prefilter_equivalence.py --jobs 1 --json out.json

The corpora must have been fetched (`python bench/corpus.py --fetch-only`); a missing one is
reported and skipped. Exit status: 0 when both runs agree on every package, 1 when any differs
(or a package is missing), 2 for a usage error.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(BENCH_DIR))

import corpus  # noqa: E402  (bench/corpus.py: PINS, DEFAULT_CACHE)

from modelint.config import resolve_selection  # noqa: E402
from modelint.discovery import DEFAULT_EXCLUDE, discover  # noqa: E402
from modelint.engine import EngineSettings, check_paths  # noqa: E402
from modelint.sources import read_source  # noqa: E402
from modelint.findings import Finding  # noqa: E402
from modelint.rules import all_rules  # noqa: E402

ALL = tuple(sorted(set(resolve_selection(None, (), ())) | {"MDL001"} | {r.code for r in all_rules()}))
OPTIONS = {
    "MDL101": {"report-always-on": True, "report-explicit-always-on": True},
    "MDL302": {"check-parameters": True},
    "MDL401": {"report-checkpointing": True},
    "MDL104": {"report-by-design": True},  # issue 15: objectives, noise sources, VAE posteriors
}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def key(f: Finding) -> Tuple:
    return (f.path, f.line, f.column, f.end_line, f.end_column, f.code, f.level, f.message, f.cell, repr(f.fix))


def prefilter_skips(files: Sequence[Path]) -> Tuple[int, int, int]:
    """(files whose parse the pre-filter skips, rule runs it skips, rule runs in all), computed like
    the engine does (a notebook's code cells count as its text)."""
    rules = [r for r in all_rules() if r.code in ALL]
    skipped_files = skipped_runs = runs = 0
    for p in files:
        data, _ = read_source(p)
        if data is None:
            continue
        kept = [r for r in rules if not r.triggers or any(t.encode() in data for t in r.triggers)]
        runs += len(rules)
        skipped_runs += len(rules) - len(kept)
        if not kept and b"modelint" not in data:
            skipped_files += 1
    return skipped_files, skipped_runs, runs


def check(name: str, src: Path, jobs: int, respect_gitignore: bool = True) -> Dict[str, object]:
    files = discover([str(src)], DEFAULT_EXCLUDE, (), root=str(src), respect_gitignore=respect_gitignore,
                     suffixes=(".py", ".ipynb"))
    log(f"[{name}] {len(files)} files")
    out: Dict[str, object] = {"name": name, "src": str(src), "files": len(files)}
    out["skipped_files"], out["skipped_runs"], out["runs"] = prefilter_skips(files)
    found: Dict[bool, List[Finding]] = {}
    for prefilter in (True, False):
        start = time.perf_counter()
        settings = EngineSettings(select=ALL, rule_options=OPTIONS, root=str(src), jobs=jobs, prefilter=prefilter,
                                  cache=None)
        found[prefilter] = check_paths(files, settings).findings
        out["seconds_on" if prefilter else "seconds_off"] = time.perf_counter() - start
        log(f"[{name}] pre-filter {'on ' if prefilter else 'off'}: {len(found[prefilter])} findings "
            f"in {out['seconds_on' if prefilter else 'seconds_off']:.1f}s")
    on, off = (set(map(key, found[b])) for b in (True, False))
    out["findings_on"], out["findings_off"] = len(found[True]), len(found[False])
    out["by_code_off"] = dict(sorted(Counter(f.code for f in found[False]).items()))
    out["lost"] = sorted(off - on)  # only without the pre-filter: the pre-filter lost them
    out["added"] = sorted(on - off)
    out["same_order"] = [key(f) for f in found[True]] == [key(f) for f in found[False]]
    return out


def render(rows: Sequence[Dict[str, object]]) -> str:
    head = ["package", "files", "parse skipped", "rule runs skipped", "findings on", "findings off",
            "differences", "on s", "off s"]
    body = []
    for r in rows:
        if "error" in r:
            body.append([str(r["name"]), "-", "-", "-", "-", "-", str(r["error"]), "-", "-"])
            continue
        runs = int(r["runs"]) or 1
        body.append([
            str(r["name"]), f"{r['files']:,}", f"{r['skipped_files']:,}",
            f"{r['skipped_runs']:,} ({100 * int(r['skipped_runs']) / runs:.0f}%)",
            f"{r['findings_on']:,}", f"{r['findings_off']:,}",
            str(len(r["lost"]) + len(r["added"]) + (0 if r["same_order"] else 1)),
            f"{r['seconds_on']:.1f}", f"{r['seconds_off']:.1f}",
        ])
    ok = [r for r in rows if "error" not in r]
    body.append([
        "TOTAL", f"{sum(int(r['files']) for r in ok):,}", f"{sum(int(r['skipped_files']) for r in ok):,}",
        f"{sum(int(r['skipped_runs']) for r in ok):,}", f"{sum(int(r['findings_on']) for r in ok):,}",
        f"{sum(int(r['findings_off']) for r in ok):,}",
        str(sum(len(r["lost"]) + len(r["added"]) for r in ok)),
        f"{sum(float(r['seconds_on']) for r in ok):.1f}", f"{sum(float(r['seconds_off']) for r in ok):.1f}",
    ])
    widths = [max(len(x[i]) for x in [head] + body) for i in range(len(head))]

    def fmt(cells: List[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(head), sep] + [fmt(b) for b in body[:-1]] + [sep, fmt(body[-1])])


def render_differences(rows: Sequence[Dict[str, object]]) -> str:
    triggers = {r.code: r.triggers for r in all_rules()}
    out = []
    for r in rows:
        for what in ("lost", "added"):
            for k in r.get(what, ()):
                path, line, column, _, _, code, _, message = k[:8]
                out.append(f"{what} by the pre-filter: {path}:{line}:{column}: {code} {message}\n"
                           f"    {code} triggers: {triggers.get(code, ())!r}")
        if "error" not in r and not r["same_order"] and not r["lost"] and not r["added"]:
            out.append(f"{r['name']}: same findings, different order or multiplicity")
    return "\n".join(out)


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="bench/prefilter_equivalence.py", description=__doc__.split("\n\n")[0])
    p.add_argument("packages", nargs="*", metavar="NAME", help="pinned packages to check (default: all)")
    p.add_argument("--cache", type=Path, default=corpus.DEFAULT_CACHE, metavar="DIR",
                   help="where bench/corpus.py unpacked the sources (default: %(default)s)")
    p.add_argument("--torch", action="store_true",
                   help="also check the installed torch package (not imported; ~2,300 files, ~10 min)")
    p.add_argument("--jobs", type=int, default=2, metavar="N", help="worker processes (default: %(default)s)")
    p.add_argument("--json", type=Path, metavar="OUT", help="write the results as JSON")
    args = p.parse_args(argv)
    names = args.packages or list(corpus.PINS)
    unknown = [n for n in names if n not in corpus.PINS and n != "torch"]
    if unknown:
        p.error(f"no pin for {', '.join(unknown)} (pinned: {', '.join(corpus.PINS)}; or `torch`: the installed one)")
    targets: List[Tuple[str, Optional[Path]]] = []  # (name, source folder or None when missing)
    for n in names:
        if n == "torch":
            args.torch = True
            continue
        src = args.cache.expanduser() / "src" / f"{n}-{corpus.PINS[n]}"
        targets.append((f"{n}-{corpus.PINS[n]}", src if src.is_dir() else None))
    if args.torch:
        spec = importlib.util.find_spec("torch")
        targets.append(("torch (installed)", Path(spec.origin).parent if spec and spec.origin else None))
    rows: List[Dict[str, object]] = []
    for name, src in targets:
        if src is None:
            log(f"[{name}] not found (run `python bench/corpus.py --fetch-only`, or install torch)")
            rows.append({"name": name, "error": "NOT FOUND", "lost": [], "added": [], "same_order": True})
            continue
        # The installed torch lives under the interpreter's folder, which a .gitignore higher up (pyenv's,
        # a virtualenv's) may hide from discovery: the package is walked as it is.
        rows.append(check(name, src, args.jobs, respect_gitignore=not name.startswith("torch")))
    print(render(rows))
    diffs = render_differences(rows)
    print()
    print(diffs or "No differences: the pre-filter lost no finding and added none.")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2, default=str) + "\n", encoding="utf-8")
        log(f"wrote {args.json}")
    bad = any("error" in r or r["lost"] or r["added"] or not r["same_order"] for r in rows)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

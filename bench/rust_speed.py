#!/usr/bin/env python3
"""Is a Rust file as cheap as a Python file of the same length? CPU seconds per 1,000 lines.

In one run on one machine, each as a fresh process, `--runs` times (median reported):

- `modelint check RUST_DIR --lang rust --no-cache --jobs 1` (Burn's crates, from
  `bench/burn_real.py`'s cache: `CACHE/burn-real/burn/crates`);
- `modelint check PY_DIR --lang python --no-cache --jobs 1` (timm from `bench/corpus.py`'s cache,
  else the installed `torch/nn`);
- the same on a folder holding one tiny file of each language: the start-up cost, subtracted.

CPU is user + system time of the child (`os.wait4`). It prints lines, files and CPU seconds per
1,000 lines for each language and the ratio Rust / Python (the issue's target: <= 1.0).

    python bench/rust_speed.py
    python bench/rust_speed.py --rust /tmp/burn-cache/burn/crates --python ~/.cache/modelint-bench/src/timm-1.0.31 --runs 3

Only the standard library is used (modelint's `rust` extra must be installed).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import List, Optional, Tuple

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("MODELINT_BENCH_CACHE", Path.home() / ".cache" / "modelint-bench"))


def _default_python() -> Path:
    timm = sorted((CACHE / "src").glob("timm-*"))
    if timm:
        return timm[-1]
    import importlib.util

    spec = importlib.util.find_spec("torch")
    return Path(spec.origin).parent / "nn"


def lines_and_files(folder: Path, suffix: str) -> Tuple[int, int]:
    files = [p for p in folder.rglob(f"*{suffix}") if p.is_file()]
    return sum(p.read_bytes().count(b"\n") for p in files), len(files)


def cpu_of(args: List[str]) -> float:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, "-m", "modelint", "check", *args, "--no-cache", "--no-config",
                             "--jobs", "1", "--format", "json", "--exit-zero"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"modelint {' '.join(args)} failed: {err.strip()}")
    return usage.ru_utime + usage.ru_stime


def median_cpu(args: List[str], runs: int) -> float:
    return statistics.median(cpu_of(args) for _ in range(runs))


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rust", type=Path, default=CACHE / "burn-real" / "burn" / "crates")
    ap.add_argument("--python", type=Path, default=None)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args(argv)
    py_dir = args.python or _default_python()
    for folder in (args.rust, py_dir):
        if not folder.is_dir():
            ap.error(f"{folder}: not a folder (fetch it first: bench/burn_real.py, bench/corpus.py --fetch-only)")
    with tempfile.TemporaryDirectory() as tiny:
        Path(tiny, "a.rs").write_text("fn main() {}\n")
        Path(tiny, "a.py").write_text("x = 1\n")
        start_rs = median_cpu([tiny, "--lang", "rust"], args.runs)
        start_py = median_cpu([tiny, "--lang", "python"], args.runs)
    rs_cpu = median_cpu([str(args.rust), "--lang", "rust"], args.runs) - start_rs
    py_cpu = median_cpu([str(py_dir), "--lang", "python"], args.runs) - start_py
    rs_lines, rs_files = lines_and_files(args.rust, ".rs")
    py_lines, py_files = lines_and_files(py_dir, ".py")
    rs_k, py_k = rs_cpu / rs_lines * 1000, py_cpu / py_lines * 1000
    print(f"{'corpus':48} {'files':>6} {'lines':>9} {'CPU s':>7} {'CPU s / 1k lines':>17}")
    print(f"{str(args.rust)[-48:]:48} {rs_files:6} {rs_lines:9} {rs_cpu:7.2f} {rs_k:17.4f}")
    print(f"{str(py_dir)[-48:]:48} {py_files:6} {py_lines:9} {py_cpu:7.2f} {py_k:17.4f}")
    print(f"start-up CPU subtracted: rust {start_rs:.2f} s, python {start_py:.2f} s; runs: {args.runs} (median)")
    print(f"Rust / Python CPU per 1,000 lines: {rs_k / py_k:.2f} (target <= 1.0)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

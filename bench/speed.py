#!/usr/bin/env python3
"""How fast is modelint, next to the cost of parsing the same code and next to TorchFix?

One run of this script, on one machine, does all of this:

1. fetches the pinned wheels of the corpus (default: timm) with ``bench/corpus.py``'s own fetch
   and unpack functions (``pip download --no-deps``) into ``~/.cache/modelint-bench/src``;
2. installs TorchFix (``TORCHFIX_VERSION``) in its own virtual environment,
   ``~/.cache/modelint-bench/torchfix-venv`` (TorchFix pins an older LibCST, so it must not share
   an environment with modelint; it does not need torch);
3. times, ``--runs`` times each (the median is reported), every one as a fresh subprocess so
   interpreter start and imports are always included:

   ====================  =========================================================================
   parse --workers 1/2   the floor: ``libcst.parse_module(path.read_bytes())`` for every file, with
                         the same LibCST as modelint, in-process (1) or in a fork ``Pool(2)``,
                         chunked like modelint (``len(files) // (workers * 8)``)
   cold --jobs 1/2       ``python -m modelint check DIRS --no-cache --jobs N``
   fill --jobs 2         the same with the cache on but empty: a cold run that also writes it
   warm: unchanged       the cache populated, nothing changed
   warm: mtime touched   one file's mtime changed, not its bytes (the cache keys on content)
   warm: one file edited one file's content changed (a comment line appended; restored at the end)
   one file, fresh       ``python -m modelint check ONE_FILE`` as a new process, what pre-commit
                         does: without the cache (the file was just edited), and with a cache hit
   TorchFix --jobs 2     ``torchfix --jobs 2 DIRS`` from its venv (``--torchfix-runs``, default 1:
                         it is slow)
   ====================  =========================================================================

   plus two references for the fresh-process rows: ``python -c pass`` and ``python -c 'import
   libcst'``;
4. runs ``python -X importtime -m modelint check ONE_FILE`` (without and with a cache hit) and
   reports the slowest top-level imports and whether torch (or libcst) was imported;
5. prints one table (wall time, CPU time, files/s, peak memory, ratios to the floor and of
   TorchFix to modelint), the issue's targets with their measured values (reported, never
   asserted), and the load average before and after (``/proc/loadavg``): on a shared machine
   the wall times are noisy, CPU times much less so.

modelint is this working tree's, copied at the start into a scratch folder outside the
repository (a temporary folder, removed at the end) and run from there (the copy first on
``PYTHONPATH``): the cache salt covers modelint's own source files, so an edit to the working tree
while the bench runs would otherwise turn every warm run into a cold one, and would mix two
versions in one table. It runs with ``--no-config --exit-zero`` in that scratch folder: with
``--no-config`` its cache, ``.modelint_cache/``, is made in the current folder, so the cache is
always the scratch one and never the repository's. A cache-hit row whose CPU time is more than
half that of its cold counterpart gets a note: the cache did not serve it.

Memory. Two numbers per row:
- ``peak MB``: the peak resident set size of the largest single process of the run, exact. The
  child is reaped with ``os.wait4``; on Linux its ``ru_maxrss`` is the larger of its own peak and
  that of every descendant it reaped (pool workers are reaped by the pools of modelint, of the
  parse floor and of LibCST's codemod runner).
- ``worker MB``: the largest peak among the run's other processes (the pool workers), from a
  thread that reads ``/proc/PID/stat`` (to find descendants) and ``VmHWM`` from
  ``/proc/PID/status`` every ``POLL_SECONDS``. VmHWM only grows and pool workers live until the
  pool shuts down, so the last reading is their peak up to the last 0.2 s. ``-`` when the run
  had no worker process. RSS counts pages shared copy-on-write with the forking parent, so a
  forked worker's RSS includes what it inherited.

Usage::

    python bench/speed.py                              # timm, 3 runs each, TorchFix once
    python bench/speed.py --quick                      # 1 run of everything
    python bench/speed.py --packages timm,torchvision,transformers --runs 5
    python bench/speed.py --skip-torchfix --json speed.json
    python bench/speed.py --one-file timm/models/vision_transformer.py

Several packages form one corpus (modelint and the floor get all their folders in one run).
Exit status: 0 when every run succeeded (whether or not the targets were met), 1 when a fetch,
install or timed run failed, 2 for a usage error. Only the standard library is used.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
import corpus  # noqa: E402  (bench/corpus.py: PINS, fetch, iter_py, count_py, DEFAULT_CACHE)

REPO_ROOT = BENCH_DIR.parent
TORCHFIX_VERSION = "0.7.0"  # latest on PyPI; requires libcst>=1.5,<1.6, flake8, PyYAML (no torch)
POLL_SECONDS = 0.2
# The file checked by the "one file" rows when --one-file is not given: a model file someone
# would edit. For another package, the file of median size is used.
ONE_FILE = {
    "timm": "timm/models/resnet.py",
    "torchvision": "torchvision/models/resnet.py",
    "transformers": "transformers/models/bert/modeling_bert.py",
}
TARGETS = {  # from the issue; reported, not asserted
    "cold2_over_parse2": 1.3,
    "warm_seconds": 0.5,
    "one_file_seconds": 0.4,
    "worker_mb": 250.0,
}

# The parse floor, run as `python SCRIPT WORKERS FILE_LIST`; prints "parsed N failed M".
PARSE_SCRIPT = '''\
import multiprocessing
import sys

import libcst


def parse(path):
    with open(path, "rb") as fh:
        data = fh.read()
    try:
        libcst.parse_module(data)
    except Exception:
        return 0
    return 1


def main():
    workers = int(sys.argv[1])
    with open(sys.argv[2], encoding="utf-8") as fh:
        paths = fh.read().splitlines()
    if workers <= 1:
        ok = sum(parse(p) for p in paths)
    else:
        chunk = max(1, len(paths) // (workers * 8))
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            ok = sum(pool.imap_unordered(parse, paths, chunksize=chunk))
    print(f"parsed {ok} failed {len(paths) - ok}")


if __name__ == "__main__":
    main()
'''


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def load1() -> float:
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return float("nan")


def loadavg_text() -> str:
    try:
        return Path("/proc/loadavg").read_text().strip()
    except OSError:
        return "unknown"


# --------------------------------------------------------------------------------------------
# Measuring one process tree


class TreeMemory(threading.Thread):
    """Polls the peak RSS (VmHWM) of a process and of all its descendants until stopped."""

    def __init__(self, root: int, interval: float = POLL_SECONDS):
        super().__init__(daemon=True)
        self.root = root
        self.interval = interval
        self.peaks_kb: Dict[int, int] = {}
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.sample()
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()

    @staticmethod
    def _parents() -> Dict[int, int]:
        out: Dict[int, int] = {}
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/stat", "rb") as fh:
                    stat = fh.read()
                # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
                out[int(name)] = int(stat[stat.rindex(b")") + 2:].split()[1])
            except (OSError, ValueError, IndexError):
                continue
        return out

    @staticmethod
    def _hwm_kb(pid: int) -> Optional[int]:
        try:
            with open(f"/proc/{pid}/status", "rb") as fh:
                for line in fh:
                    if line.startswith(b"VmHWM:"):
                        return int(line.split()[1])
        except (OSError, ValueError, IndexError):
            pass
        return None  # gone, or a zombie (no memory left to report)

    def sample(self) -> None:
        children: Dict[int, List[int]] = {}
        for pid, ppid in self._parents().items():
            children.setdefault(ppid, []).append(pid)
        tree, todo = [], [self.root]
        while todo:
            pid = todo.pop()
            tree.append(pid)
            todo.extend(children.get(pid, ()))
        for pid in tree:
            kb = self._hwm_kb(pid)
            if kb is not None and kb > self.peaks_kb.get(pid, 0):
                self.peaks_kb[pid] = kb

    @property
    def main_kb(self) -> int:
        return self.peaks_kb.get(self.root, 0)

    @property
    def workers(self) -> Dict[int, int]:
        return {pid: kb for pid, kb in self.peaks_kb.items() if pid != self.root}


@dataclass
class Sample:
    wall: float
    cpu: float  # user + sys of the whole tree (the reaped descendants included)
    max_rss_kb: int  # largest single process of the tree, exact (os.wait4)
    main_hwm_kb: int  # polled
    worker_hwm_kb: int  # polled, the largest worker; 0 when there was none
    workers: int
    exit_code: Optional[int]
    timed_out: bool
    load1: float  # 1-minute load average just before the run
    stdout_tail: str = ""
    stderr_tail: str = ""


def run_measured(cmd: Sequence[str], cwd: Path, env: dict, timeout: float) -> Tuple[Sample, str, str]:
    """Run cmd as a new process group; return (Sample, stdout, stderr)."""
    before = load1()
    pollers: List[TreeMemory] = []

    def watch(pid: int) -> TreeMemory:
        pollers.append(TreeMemory(pid))
        return pollers[-1]

    code, stdout, stderr, wall, cpu, max_rss_kb, timed_out = corpus.run_measured(cmd, cwd, env, timeout, watch=watch)
    poller = pollers[0]
    workers = poller.workers
    sample = Sample(
        wall=wall, cpu=cpu, max_rss_kb=max_rss_kb,
        main_hwm_kb=poller.main_kb, worker_hwm_kb=max(workers.values(), default=0),
        workers=len(workers), exit_code=code, timed_out=timed_out,
        load1=before, stdout_tail=stdout[-300:], stderr_tail=stderr[-2000:],
    )
    return sample, stdout, stderr


# --------------------------------------------------------------------------------------------
# Rows of the table


@dataclass
class Row:
    key: str
    label: str
    files: int  # files given to the command
    ref: Optional[str] = None  # key of the row this one is compared with
    samples: List[Sample] = field(default_factory=list)
    error: str = ""
    note: str = ""

    def med(self, attr: str) -> Optional[float]:
        vals = [getattr(s, attr) for s in self.samples]
        return statistics.median(vals) if vals else None

    @property
    def wall(self) -> Optional[float]:
        return self.med("wall")

    @property
    def cpu(self) -> Optional[float]:
        return self.med("cpu")

    @property
    def peak_kb(self) -> int:
        return max((s.max_rss_kb for s in self.samples), default=0)

    @property
    def worker_kb(self) -> int:
        return max((s.worker_hwm_kb for s in self.samples), default=0)

    @property
    def main_kb(self) -> int:
        return max((s.main_hwm_kb for s in self.samples), default=0)

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in ("key", "label", "files", "ref", "error", "note")}
        d.update(wall_median=self.wall, cpu_median=self.cpu, peak_kb=self.peak_kb,
                 worker_peak_kb=self.worker_kb, main_peak_kb_polled=self.main_kb,
                 samples=[asdict(s) for s in self.samples])
        return d


class Bench:
    def __init__(self, args: argparse.Namespace, files: List[Path], dirs: List[Path],
                 one_file: Path, scratch: Path):
        self.args = args
        self.files = files
        self.dirs = dirs
        self.one_file = one_file
        self.scratch = scratch
        self.rows: Dict[str, Row] = {}
        self.failed = False
        # A frozen copy of this working tree's modelint (see the module docstring).
        tree = scratch / "tree"
        shutil.copytree(REPO_ROOT / "modelint", tree / "modelint",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        # Byte-compiled, as `pip install` leaves an installed package (this machine sets
        # PYTHONDONTWRITEBYTECODE, so a source tree would be recompiled by every fresh process).
        compileall.compile_dir(str(tree / "modelint"), quiet=1)
        self.env = dict(os.environ)
        self.env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tree), self.env.get("PYTHONPATH")]))
        self.full_dir = scratch / "full"  # cwd (so cache root) of the whole-corpus runs
        self.one_dir = scratch / "one"  # cwd of the one-file runs
        for d in (self.full_dir, self.one_dir):
            d.mkdir()
        self.file_list = scratch / "files.txt"
        self.file_list.write_text("".join(f"{p}\n" for p in files), encoding="utf-8")
        self.parse_script = scratch / "bare_parse.py"
        self.parse_script.write_text(PARSE_SCRIPT, encoding="utf-8")

    def row(self, key: str, label: str, files: int, ref: Optional[str] = None) -> Row:
        if key not in self.rows:
            self.rows[key] = Row(key, label, files, ref)
        return self.rows[key]

    def modelint(self, *extra: str, paths: Optional[Sequence[Path]] = None) -> List[str]:
        paths = self.dirs if paths is None else paths
        return [sys.executable, "-m", "modelint", "check", *map(str, paths), "--no-config", "--exit-zero", *extra]

    def measure(self, row: Row, cmd: Sequence[str], cwd: Path, ok_codes=(0,)) -> Optional[str]:
        """Time cmd once into row; return its stdout, or None when it failed."""
        if row.error:
            return None
        log(f"[{row.key}] {shlex.join(cmd)}")
        sample, stdout, stderr = run_measured(cmd, cwd, self.env, self.args.timeout)
        row.samples.append(sample)
        if sample.timed_out:
            row.error = f"timed out after {self.args.timeout:g}s"
        elif sample.exit_code not in ok_codes:
            row.error = f"exit {sample.exit_code}"
        if row.error:
            self.failed = True
            log(f"[{row.key}] FAILED: {row.error}\n{stderr.rstrip()[-2000:]}")
            return None
        log(f"[{row.key}]   {sample.wall:.2f}s wall, {sample.cpu:.2f}s cpu, load {sample.load1:.2f}")
        return stdout

    def check_count(self, row: Row, stdout: Optional[str], expected: int) -> None:
        """modelint's text summary ends with "... N files checked": it must be the file count."""
        if stdout is None:
            return
        m = re.search(r"(\d[\d,]*) files? checked", stdout)
        got = int(m.group(1).replace(",", "")) if m else None
        if got != expected:
            row.note = f"modelint checked {got} files, expected {expected}"
            log(f"[{row.key}] WARNING: {row.note}")

    def check_hit(self, row: Row, cold_key: str) -> None:
        """A cache-hit row that costs like a cold one was not served by the cache: say so."""
        cold = self.rows.get(cold_key)
        if row.cpu is not None and cold is not None and cold.cpu and row.cpu > 0.5 * cold.cpu:
            row.note = (f"CPU {row.cpu:.2f} s vs {cold.cpu:.2f} s for {cold_key}: "
                        "the cache did not serve this run")
            log(f"[{row.key}] WARNING: {row.note}")

    # --- the scenarios ----------------------------------------------------------------------
    def warm_up(self) -> None:
        """Untimed: page-cache the corpus, compile modelint's bytecode, fill the one-file cache."""
        for p in self.files:
            p.read_bytes()
        for cmd in (self.modelint("--no-cache", paths=[self.one_file]),
                    self.modelint(paths=[self.one_file])):
            subprocess.run(cmd, cwd=self.one_dir, env=self.env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, check=False)

    def stateless(self, runs: int) -> None:
        """Rows that leave nothing behind: interleaved run by run so load swings hit all alike."""
        n = len(self.files)
        py = sys.executable
        for i in range(runs):
            log(f"--- run {i + 1}/{runs}: references, floor, cold, one file")
            self.measure(self.row("py", "python -c pass", 0), [py, "-c", "pass"], self.one_dir)
            self.measure(self.row("py_libcst", "python -c 'import libcst'", 0),
                         [py, "-c", "import libcst"], self.one_dir)
            for w in (1, 2):
                r = self.row(f"parse{w}", f"bare parse, {w} worker{'s' * (w > 1)} (floor)", n)
                out = self.measure(r, [py, str(self.parse_script), str(w), str(self.file_list)], self.one_dir)
                if out is not None and f"parsed {n} failed 0" not in out:
                    r.note = out.strip()
            for j in (1, 2):
                r = self.row(f"cold{j}", f"modelint cold --no-cache --jobs {j}", n, f"parse{j}")
                self.check_count(r, self.measure(r, self.modelint("--no-cache", "--jobs", str(j)), self.full_dir), n)
            r = self.row("one_cold", "one file, fresh process, --no-cache", 1)
            self.check_count(r, self.measure(r, self.modelint("--no-cache", paths=[self.one_file]), self.one_dir), 1)
            r = self.row("one_warm", "one file, fresh process, cache hit", 1)
            self.check_count(r, self.measure(r, self.modelint(paths=[self.one_file]), self.one_dir), 1)
        if "one_warm" in self.rows:
            self.check_hit(self.rows["one_warm"], "one_cold")

    def cached(self, runs: int) -> None:
        """Cache fill, then warm runs in the same scratch folder."""
        n = len(self.files)
        cache = self.full_dir / ".modelint_cache"
        fill = self.row("fill2", "modelint cold, empty cache --jobs 2 (fills it)", n, "parse2")
        for i in range(runs):
            shutil.rmtree(cache, ignore_errors=True)
            self.check_count(fill, self.measure(fill, self.modelint("--jobs", "2"), self.full_dir), n)
        if fill.error:
            return
        if not cache.is_dir():
            fill.note = f"no cache folder at {cache}"
            log(f"[fill2] WARNING: {fill.note}")
        warm = self.row("warm", "modelint warm: nothing changed", n, "cold2")
        for i in range(runs):
            self.check_count(warm, self.measure(warm, self.modelint("--jobs", "2"), self.full_dir), n)
        self.check_hit(warm, "fill2")
        target = self.one_file
        original = target.read_bytes()
        st = target.stat()
        mtime = self.row("warm_mtime", "modelint warm: one file's mtime touched", n, "cold2")
        edit = self.row("warm_edit", "modelint warm: one file edited", n, "cold2")
        try:
            for i in range(runs):
                t = time.time() + i + 1
                os.utime(target, (t, t))
                self.check_count(mtime, self.measure(mtime, self.modelint("--jobs", "2"), self.full_dir), n)
            self.check_hit(mtime, "fill2")
            for i in range(runs):
                # New bytes every run, so every run misses the cache for this file.
                target.write_bytes(original + f"\n# modelint bench edit {i} {time.time()}\n".encode())
                self.check_count(edit, self.measure(edit, self.modelint("--jobs", "2"), self.full_dir), n)
        finally:
            target.write_bytes(original)
            os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))

    def torchfix(self, venv: Path, runs: int) -> None:
        n = len(self.files)
        jobs = self.args.torchfix_jobs
        r = self.row("torchfix", f"TorchFix {TORCHFIX_VERSION} --jobs {jobs}", n, f"cold{min(jobs, 2)}")
        cmd = [str(venv / "bin" / "torchfix"), "--jobs", str(jobs), *map(str, self.dirs)]
        for i in range(runs):
            # TorchFix exits 1 when LibCST 1.5 failed on some file; that still timed a full run.
            self.measure(r, cmd, self.one_dir, ok_codes=(0, 1))
            s = r.samples[-1] if r.samples else None
            if s is not None and not r.error:
                m = re.search(r"Finished checking (\d+) files", s.stderr_tail)
                r.note = (f"checked {m.group(1)} of {n} files (it skips files without 'torch')"
                          if m else "no 'Finished checking' line")
                if s.exit_code == 1:
                    r.note += "; exit 1: some files failed to transform"


# --------------------------------------------------------------------------------------------
# TorchFix's virtual environment


def ensure_torchfix(cache: Path) -> Path:
    """CACHE/torchfix-venv with torchfix==TORCHFIX_VERSION; created once, then reused."""
    venv = cache / "torchfix-venv"
    stamp = venv / f".modelint-bench-torchfix-{TORCHFIX_VERSION}"
    if stamp.is_file() and (venv / "bin" / "torchfix").is_file():
        return venv
    shutil.rmtree(venv, ignore_errors=True)
    log(f"[torchfix] creating {venv}")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    log(f"[torchfix] pip install torchfix=={TORCHFIX_VERSION}")
    proc = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check",
         "--quiet", f"torchfix=={TORCHFIX_VERSION}"], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"pip install torchfix failed ({proc.returncode}):\n{proc.stderr.strip()}")
    stamp.write_text("installed by bench/speed.py\n")
    return venv


def venv_versions(venv: Path) -> str:
    code = ("import importlib.metadata as m\n"
            "def v(n):\n"
            "    try: return m.version(n)\n"
            "    except m.PackageNotFoundError: return 'not installed'\n"
            "print(f\"torchfix {v('torchfix')}, libcst {v('libcst')}, torch {v('torch')}\")")
    proc = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True)
    return proc.stdout.strip() or proc.stderr.strip()


# --------------------------------------------------------------------------------------------
# python -X importtime


def importtime(bench: Bench, use_cache: bool) -> dict:
    """Top-level imports of a one-file run by cumulative time; was torch / libcst imported?"""
    cmd = [sys.executable, "-X", "importtime", *bench.modelint(*(() if use_cache else ("--no-cache",)),
                                                               paths=[bench.one_file])[1:]]
    log(f"[importtime] {shlex.join(cmd)}")
    proc = subprocess.run(cmd, cwd=bench.one_dir, env=bench.env, capture_output=True, text=True)
    entries = []  # (depth, module, self us, cumulative us)
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \| ( *)(\S+)", line)
        if m:
            entries.append((len(m.group(3)) // 2, m.group(4), int(m.group(1)), int(m.group(2))))
    top = sorted((e for e in entries if e[0] == 0), key=lambda e: -e[3])
    mods = {e[1] for e in entries}
    return {
        "cache_hit": use_cache,
        "exit_code": proc.returncode,
        "modules": len(entries),
        "total_ms": sum(e[3] for e in entries if e[0] == 0) / 1000,
        "top": [{"module": e[1], "cumulative_ms": e[3] / 1000, "self_ms": e[2] / 1000} for e in top[:10]],
        "torch_imported": any(m == "torch" or m.startswith("torch.") for m in mods),
        "libcst_imported": any(m == "libcst" or m.startswith("libcst.") for m in mods),
    }


# --------------------------------------------------------------------------------------------
# Output


def fmt_table(head: List[str], rows: List[List[str]], left: int = 1) -> str:
    widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]

    def fmt(cells: List[str]) -> str:
        return "  ".join(c.ljust(w) if i < left else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return "\n".join([fmt(head), "  ".join("-" * w for w in widths)] + [fmt(r) for r in rows])


def ratio(a: Optional[float], b: Optional[float]) -> str:
    return f"{a / b:.2f}x" if a is not None and b else "-"


def render(bench: Bench) -> str:
    rows = bench.rows
    head = ["scenario", "runs", "wall s", "min-max s", "cpu s", "files/s", "peak MB", "worker MB",
            "vs", "wall ratio", "cpu ratio", "load1"]
    body = []
    for r in rows.values():
        walls = [s.wall for s in r.samples]
        ref = rows.get(r.ref) if r.ref else None
        ok = bool(r.samples) and not r.error
        body.append([
            r.label + (" FAILED" if r.error else ""),
            str(len(r.samples)),
            f"{r.wall:.3f}" if ok else "-",
            f"{min(walls):.2f}-{max(walls):.2f}" if len(walls) > 1 else "",
            f"{r.cpu:.3f}" if ok else "-",
            f"{r.files / r.wall:,.1f}" if ok and r.files and r.wall else "",
            f"{r.peak_kb / 1024:.0f}" if r.samples else "-",
            f"{r.worker_kb / 1024:.0f}" if r.worker_kb else "-",
            (ref.key if ref else ""),
            ratio(r.wall, ref.wall) if ok and ref and ref.samples and not ref.error else "",
            ratio(r.cpu, ref.cpu) if ok and ref and ref.samples and not ref.error else "",
            f"{statistics.mean(s.load1 for s in r.samples):.1f}" if r.samples else "",
        ])
    out = [fmt_table(head, body)]
    refs = [r for r in rows.values() if any(x.ref == r.key for x in rows.values())]
    out.append("vs: the row the ratios divide by: " + "; ".join(f"{r.key} = {r.label}" for r in refs))
    notes = [f"  {r.key}: {r.note or r.error}" for r in rows.values() if r.note or r.error]
    if notes:
        out.append("notes:\n" + "\n".join(notes))
    return "\n".join(out)


def render_targets(bench: Bench, imports: List[dict], corpus_label: str) -> str:
    rows = bench.rows

    def ok(key: str) -> Optional[Row]:
        r = rows.get(key)
        return r if r is not None and r.samples and not r.error else None

    lines = []

    def target(name: str, value: Optional[float], limit: float, unit: str, extra: str = "") -> None:
        if value is None:
            lines.append(f"  {name}: not measured")
            return
        verdict = "met" if value < limit or (unit == "x" and value <= limit) else "MISSED"
        shown = f"{value:.2f}x" if unit == "x" else f"{value:.3f} s" if unit == "s" else f"{value:.0f} MB"
        lim = f"{limit:g}x" if unit == "x" else f"{limit:g} {unit}"
        lines.append(f"  {name}: {shown} (target {'<=' if unit == 'x' else '<'} {lim}) {verdict}{extra}")

    c2, p2 = ok("cold2"), ok("parse2")
    target("cold --jobs 2 / bare parse 2 workers (wall)",
           c2.wall / p2.wall if c2 and p2 else None, TARGETS["cold2_over_parse2"], "x",
           f"; by CPU time {c2.cpu / p2.cpu:.2f}x" if c2 and p2 and p2.cpu else "")
    def cpu(r: Optional[Row]) -> str:
        return f"; CPU time {r.cpu:.3f} s" if r else ""

    w = ok("warm")
    target(f"warm, nothing changed ({corpus_label})", w.wall if w else None, TARGETS["warm_seconds"], "s", cpu(w))
    o = ok("one_cold")
    target("one file, fresh process, --no-cache", o.wall if o else None, TARGETS["one_file_seconds"], "s", cpu(o))
    o2 = ok("one_warm")
    target("one file, fresh process, cache hit", o2.wall if o2 else None, TARGETS["one_file_seconds"], "s", cpu(o2))
    c1 = ok("cold1")
    if c2:
        worker = c2.worker_kb / 1024 if c2.worker_kb else c2.peak_kb / 1024
        target("peak memory per worker, cold --jobs 2", worker, TARGETS["worker_mb"], "MB",
               f" (largest process of the run {c2.peak_kb / 1024:.0f} MB, polled main {c2.main_kb / 1024:.0f} MB)")
    if c1:
        target("peak memory, cold --jobs 1 (the single process)", c1.peak_kb / 1024, TARGETS["worker_mb"], "MB")
    for imp in imports:
        lines.append(f"  torch imported by a one-file run ({'cache hit' if imp['cache_hit'] else '--no-cache'}): "
                     f"{'YES (must not be)' if imp['torch_imported'] else 'no'}")
    return "targets (reported, not asserted):\n" + "\n".join(lines)


def render_imports(imp: dict) -> str:
    head = f"python -X importtime, one file, {'cache hit' if imp['cache_hit'] else '--no-cache'}: " \
           f"{imp['modules']} modules, {imp['total_ms']:.0f} ms in top-level imports; " \
           f"torch imported: {'YES' if imp['torch_imported'] else 'no'}; " \
           f"libcst imported: {'yes' if imp['libcst_imported'] else 'no'}"
    rows = [[t["module"], f"{t['cumulative_ms']:.1f}", f"{t['self_ms']:.1f}"] for t in imp["top"]]
    return head + "\n" + fmt_table(["top-level import", "cumulative ms", "self ms"], rows)


# --------------------------------------------------------------------------------------------
# Main


def pick_one_file(spec: Optional[str], srcs: List[Tuple[str, Path]], files: List[Path],
                  parser: argparse.ArgumentParser) -> Path:
    if spec:
        p = Path(spec)
        candidates = [p] if p.is_absolute() else [Path.cwd() / p] + [src / p for _, src in srcs]
        for c in candidates:
            if c.is_file():
                return c.resolve()
        parser.error(f"--one-file {spec}: no such file (relative paths are tried against the "
                     f"current folder and each package's folder)")
    name, src = srcs[0]
    if name in ONE_FILE and (src / ONE_FILE[name]).is_file():
        return src / ONE_FILE[name]
    own = sorted((p for p in files if src in p.parents), key=lambda p: (p.stat().st_size, str(p)))
    return own[len(own) // 2]


def against(base: Path, srcs: List[Path], runs: int, timeout: float) -> int:
    """`--against BASE`: the cold check (`--no-cache --no-config --jobs 1 --select MDL`) of this
    tree and of BASE run as concurrent pairs, `runs` times; prints each pair's CPU seconds, the means
    and their ratio. A pair shares the machine's load, so the ratio holds on a busy machine where
    either number alone drifts by 20% (5 sessions on 2 cores)."""
    scratch = Path(tempfile.mkdtemp(prefix="modelint-pairs-"))  # cwd: `python -m` puts it first on sys.path
    cmd = [sys.executable, "-m", "modelint", "check", *map(str, srcs), "--no-cache", "--no-config", "--jobs", "1",
           "--select", "MDL", "--exit-zero"]
    trees = {"base": base.resolve(), "this": REPO_ROOT}
    cpu: Dict[str, List[float]] = {k: [] for k in trees}
    try:
        for i in range(runs):
            before = loadavg_text()
            found: Dict[str, Sample] = {}

            def one(key: str) -> None:
                env = dict(os.environ, PYTHONPATH=str(trees[key]))
                found[key] = run_measured(cmd, scratch, env, timeout)[0]

            threads = [threading.Thread(target=one, args=(k,)) for k in trees]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            for k in trees:
                cpu[k].append(found[k].cpu)
            print(f"pair {i + 1}: base {found['base'].cpu:.2f} s, this {found['this'].cpu:.2f} s CPU "
                  f"(x{found['this'].cpu / found['base'].cpu:.3f}; peak MB {found['base'].max_rss_kb / 1024:.0f} / "
                  f"{found['this'].max_rss_kb / 1024:.0f}); load average before: {before}", flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    mb, mt = statistics.mean(cpu["base"]), statistics.mean(cpu["this"])
    print(f"mean CPU: base {mb:.2f} s ({base}), this {mt:.2f} s ({REPO_ROOT}): ratio of means {mt / mb:.3f}; "
          f"load average after: {loadavg_text()}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bench/speed.py",
        description="Time modelint (cold, warm, one file) against bare LibCST parsing and TorchFix.",
        epilog=f"Pinned packages: {', '.join(f'{k}=={v}' for k, v in corpus.PINS.items())}.",
    )
    p.add_argument("--packages", default="timm", metavar="NAMES",
                   help="comma-separated pinned packages (NAME or NAME==VERSION) that form the "
                   "corpus (default: %(default)s)")
    p.add_argument("--runs", type=int, default=3, metavar="N",
                   help="runs of each scenario; the median is reported (default: %(default)s)")
    p.add_argument("--quick", action="store_true", help="one run of everything (--runs 1)")
    p.add_argument("--skip-torchfix", action="store_true", help="neither install nor run TorchFix")
    p.add_argument("--torchfix-runs", type=int, default=1, metavar="N",
                   help="runs of TorchFix, which is slow (default: %(default)s)")
    p.add_argument("--torchfix-jobs", type=int, default=2, metavar="N",
                   help="`torchfix --jobs` (default: %(default)s)")
    p.add_argument("--one-file", metavar="PATH",
                   help="the file of the one-file and edited-file rows (default: "
                   + ", ".join(ONE_FILE.values()) + " or the median-size file)")
    p.add_argument("--cache", type=Path, default=corpus.DEFAULT_CACHE, metavar="DIR",
                   help="wheels, sources and the TorchFix venv (default: %(default)s)")
    p.add_argument("--timeout", type=float, default=3600.0, metavar="SECONDS",
                   help="kill a run after this long (default: %(default)g)")
    p.add_argument("--json", type=Path, metavar="OUT", help="also write every sample to OUT as JSON")
    p.add_argument("--against", type=Path, metavar="TREE",
                   help="only compare the cold -j1 check's CPU with another checkout (e.g. `git worktree add "
                   "/tmp/base REV`), --runs concurrent pairs")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    runs = 1 if args.quick else args.runs
    tf_runs = 1 if args.quick else args.torchfix_runs
    if runs < 1 or tf_runs < 1 or args.torchfix_jobs < 1:
        parser.error("--runs, --torchfix-runs and --torchfix-jobs must be >= 1")
    cache: Path = args.cache.expanduser().resolve()
    if cache == REPO_ROOT or REPO_ROOT in cache.parents:
        parser.error(f"--cache {cache} is inside the repository; third-party code stays outside it")
    specs = [s.strip() for s in args.packages.split(",") if s.strip()]
    packages = corpus.parse_packages(specs, parser)

    srcs: List[Tuple[str, Path]] = []
    for name, version in packages:
        try:
            srcs.append((name, corpus.fetch(name, version, cache)))
        except Exception as e:  # noqa: BLE001
            log(f"[{name}] fetch failed: {e}")
            return 1
    if args.against is not None:
        return against(args.against, [src for _, src in srcs], runs, args.timeout)
    files = [p.resolve() for _, src in srcs for p in corpus.iter_py(src)]
    lines = sum(corpus.count_py(src)[1] for _, src in srcs)
    one_file = pick_one_file(args.one_file, srcs, files, parser)
    corpus_label = "+".join(f"{n}-{v}" for n, v in packages)

    venv = None
    tf_versions = ""
    if not args.skip_torchfix:
        try:
            venv = ensure_torchfix(cache)
            tf_versions = venv_versions(venv)
        except Exception as e:  # noqa: BLE001 - report, time the rest
            log(f"[torchfix] install failed: {e}")
            tf_versions = f"install failed: {e}"

    import libcst  # only for its version: the timed runs are subprocesses
    try:
        from importlib.metadata import version
        libcst_version = version("libcst")
    except Exception:  # noqa: BLE001
        libcst_version = getattr(libcst, "__version__", "?")
    git = subprocess.run(["git", "-C", str(REPO_ROOT), "describe", "--always", "--dirty"],
                         capture_output=True, text=True).stdout.strip() or "?"
    load_start = loadavg_text()
    started = time.time()

    scratch = Path(tempfile.mkdtemp(prefix="modelint-speed-"))
    imports: List[dict] = []
    try:
        bench = Bench(args, files, [src for _, src in srcs], one_file, scratch)
        bench.warm_up()
        bench.stateless(runs)
        bench.cached(runs)
        imports = [importtime(bench, False), importtime(bench, True)]
        if venv is not None:
            bench.torchfix(venv, tf_runs)
        elif not args.skip_torchfix:
            bench.failed = True
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    load_end = loadavg_text()

    one_lines = one_file.read_bytes().count(b"\n")
    try:
        one_shown = one_file.relative_to(cache / "src")
    except ValueError:
        one_shown = one_file
    print(f"corpus: {corpus_label}: {len(files):,} files, {lines:,} lines ({cache / 'src'})")
    print(f"one file: {one_shown} ({one_lines:,} lines)")
    print(f"python {sys.version.split()[0]}, libcst {libcst_version}, modelint {git} (this working tree, copied at the start), "
          f"{os.cpu_count()} CPUs; TorchFix venv: {tf_versions or 'skipped'}")
    print(f"runs: {runs} (TorchFix {0 if venv is None else tf_runs}); wall and cpu are medians; "
          f"total bench time {time.time() - started:.0f} s")
    print(f"load average before: {load_start}")
    print(f"load average after:  {load_end}")
    print()
    print(render(bench))
    print("peak MB: largest single process, exact (os.wait4 ru_maxrss). worker MB: largest pool "
          f"worker, polled from /proc every {POLL_SECONDS:g} s (VmHWM).")
    print()
    print(render_targets(bench, imports, corpus_label))
    for imp in imports:
        print()
        print(render_imports(imp))

    if args.json:
        payload = {
            "corpus": corpus_label, "files": len(files), "lines": lines, "one_file": str(one_file),
            "python": sys.version.split()[0], "libcst": libcst_version, "modelint": git,
            "torchfix_venv": tf_versions, "cpu_count": os.cpu_count(), "runs": runs,
            "torchfix_runs": tf_runs, "loadavg_before": load_start, "loadavg_after": load_end,
            "targets": TARGETS, "rows": [r.to_dict() for r in bench.rows.values()], "importtime": imports,
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        log(f"wrote {args.json}")
    return 1 if bench.failed else 0


if __name__ == "__main__":
    sys.exit(main())

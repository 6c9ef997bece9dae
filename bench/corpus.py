#!/usr/bin/env python3
"""Run modelint over real third-party PyTorch code and report speed, memory and findings.

The corpus is a fixed set of pinned wheels from PyPI (see ``PINS``). Each wheel is fetched once
with ``pip download --no-deps --only-binary=:all:`` into ``CACHE/wheels`` and unpacked once into
``CACHE/src/NAME-VERSION/``; later runs reuse both and need no network. Nothing is ever written
into the repository: the cache defaults to ``~/.cache/modelint-bench``.

For every package the script runs, as a subprocess, ::

    python -m modelint check CACHE/src/NAME-VERSION --format json --exit-zero --no-config \\
        [--select CODES] [--jobs N]

and records its wall time, CPU time, peak RSS (largest single process of the run, from
``os.wait4``), the number of ``.py`` files and lines in the package, and its findings per code.

Usage::

    python bench/corpus.py                          # all pinned packages, print the table
    python bench/corpus.py timm diffusers           # only these packages
    python bench/corpus.py timm==1.0.20             # another version than the pin
    python bench/corpus.py --select MDL101,MDL103 --jobs 2
    python bench/corpus.py --list                   # every finding, with its source line
    python bench/corpus.py --list --codes MDL103    # only these codes in the listing
    python bench/corpus.py --json results.json      # everything, machine-readable
    python bench/corpus.py --fetch-only             # download and unpack, run nothing
    python bench/corpus.py --cache /tmp/corpus --timeout 600

``--list`` prints one finding per line as ``NAME-VERSION/relative/path.py:line:col: CODE message``
(the path is relative to ``CACHE/src``), followed by the stripped source line, so a person can
judge each finding.

By default the modelint of this working tree is measured (its root is put first on
``PYTHONPATH``); ``--modelint CMD`` measures another command instead, e.g. ``--modelint modelint``
for an installed console script.

Exit status: 0 when every package was fetched and checked, 1 when any download, unpack or
modelint run failed (a modelint exit status of 2 prints its stderr and the other packages are
still checked), 2 for a usage error.

Only the standard library is used.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

# Exact pins, looked up with `pip index versions NAME`. torchvision is held at 0.29.1 (0.29.2
# exists) because this machine's pip constraints file caps it there, and a pin pip refuses to
# download is no use. Only pure-python files are read, but torchvision's wheel is platform
# specific, so pip fetches the one for this interpreter.
PINS: Dict[str, str] = {
    "timm": "1.0.31",  # image models: many nn.Module classes, dropout/drop-path/BN
    "torchvision": "0.29.1",  # reference models and detection heads
    "transformers": "5.24.0",  # ~2,900 files of model code
    "diffusers": "0.42.1",  # UNets, VAEs, schedulers, pipelines that call .eval()
    "pytorch-lightning": "2.6.6",  # the trainer loops that switch modes (plus lightning_fabric)
    "ultralytics": "8.4.190",  # YOLO models plus its own trainer/validator loops
}

DEFAULT_CACHE = Path(os.environ.get("MODELINT_BENCH_CACHE", "~/.cache/modelint-bench")).expanduser()
REPO_ROOT = Path(__file__).resolve().parent.parent
SKIP_DIRS = {"__pycache__"}


# --------------------------------------------------------------------------------------------
# Results


@dataclass
class Result:
    name: str
    version: str
    src_dir: Optional[Path] = None
    files: int = 0
    lines: int = 0
    wall: float = 0.0
    cpu: float = 0.0
    max_rss_kb: int = 0
    exit_code: Optional[int] = None
    stderr: str = ""
    error: str = ""  # why this package failed, "" when it did not
    findings: List[dict] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.name}-{self.version}"

    @property
    def ok(self) -> bool:
        return not self.error

    def counts(self) -> Dict[str, int]:
        out: Dict[str, int] = {}
        for f in self.findings:
            out[f["code"]] = out.get(f["code"], 0) + 1
        return out

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "version": self.version,
            "src_dir": str(self.src_dir) if self.src_dir else None,
            "files": self.files,
            "lines": self.lines,
            "wall_seconds": round(self.wall, 3),
            "cpu_seconds": round(self.cpu, 3),
            "max_rss_kb": self.max_rss_kb,
            "exit_code": self.exit_code,
            "error": self.error,
            "stderr": self.stderr,
            "counts": dict(sorted(self.counts().items())),
            "findings": self.findings,
        }


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Fetching


def _norm(name: str) -> str:
    """Wheel file names spell the project name lower-case with runs of -_. as '_' (PEP 427)."""
    return re.sub(r"[-_.]+", "_", name).lower()


def find_wheel(wheels: Path, name: str, version: str) -> Optional[Path]:
    prefix = f"{_norm(name)}-{version}-"
    if not wheels.is_dir():
        return None
    for p in sorted(wheels.iterdir()):
        if p.suffix == ".whl" and p.name.lower().startswith(prefix):
            return p
    return None


def fetch(name: str, version: str, cache: Path) -> Path:
    """Return CACHE/src/NAME-VERSION, downloading and unpacking the wheel only when needed."""
    src = cache / "src" / f"{name}-{version}"
    if src.is_dir():
        return src
    wheels = cache / "wheels"
    wheel = find_wheel(wheels, name, version)
    if wheel is None:
        wheels.mkdir(parents=True, exist_ok=True)
        log(f"[{name}] pip download {name}=={version}")
        cmd = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
            "--disable-pip-version-check", "-d", str(wheels), f"{name}=={version}",
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"pip download failed ({proc.returncode}):\n{proc.stderr.strip()}")
        wheel = find_wheel(wheels, name, version)
        if wheel is None:
            raise RuntimeError(f"pip download succeeded but no {name}-{version} wheel in {wheels}")
    log(f"[{name}] unpacking {wheel.name}")
    # Unpack beside the target and rename, so an interrupted unpack is never mistaken for a done one.
    src.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{src.name}-", dir=src.parent))
    try:
        with zipfile.ZipFile(wheel) as zf:
            zf.extractall(tmp)
        tmp.rename(src)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return src


def iter_py(root: Path):
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        for fn in sorted(filenames):
            if fn.endswith(".py"):
                yield Path(dirpath, fn)


def count_py(root: Path) -> Tuple[int, int]:
    """(files, lines) over the .py files below root; a last line without a newline counts."""
    files = lines = 0
    for p in iter_py(root):
        data = p.read_bytes()
        files += 1
        lines += data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)
    return files, lines


# --------------------------------------------------------------------------------------------
# Running modelint


def run_measured(cmd: Sequence[str], cwd: Path, env: dict, timeout: float, watch=None):
    """Run cmd; return (exit code, stdout, stderr, wall s, cpu s, peak RSS kB, timed out).

    The child is reaped with os.wait4 so its rusage is its own (plus its reaped descendants',
    e.g. --jobs workers): ru_maxrss is then the peak RSS of the largest single process of the run.
    Output goes to temporary files, so large JSON output cannot fill a pipe. `watch(pid)`, if given,
    returns an observer with start()/stop() that runs for the child's lifetime (bench/speed.py
    polls worker memory with it). Workers left behind by a killed run share the child's process
    group and are ended too.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            list(cmd), cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
            start_new_session=True,
        )
        observer = watch(proc.pid) if watch else None
        if observer:
            observer.start()
        timed_out = threading.Event()

        def _kill() -> None:
            timed_out.set()
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

        timer = threading.Timer(timeout, _kill)
        timer.start()
        try:
            while True:
                try:
                    _, status, usage = os.wait4(proc.pid, 0)
                    break
                except InterruptedError:
                    continue
                except KeyboardInterrupt:
                    _kill()
                    raise
        finally:
            timer.cancel()
            wall = time.perf_counter() - start
            if observer:
                observer.stop()
        proc.returncode = os.waitstatus_to_exitcode(status)  # tell Popen it has been reaped
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode("utf-8", "replace")
        stderr = err.read().decode("utf-8", "replace")
    cpu = usage.ru_utime + usage.ru_stime
    return proc.returncode, stdout, stderr, wall, cpu, usage.ru_maxrss, timed_out.is_set()


def relativize(path: str, cwd: Path, src: Path) -> str:
    p = Path(path)
    if not p.is_absolute():
        p = cwd / p
    try:
        return p.resolve().relative_to(src.resolve()).as_posix()
    except ValueError:
        return path


def check(res: Result, base_cmd: Sequence[str], args: argparse.Namespace, env: dict,
          extra: Sequence[str] = ()) -> None:
    """Run `check` on res.src_dir; `extra` are more `check` options (precision.py: --no-cache)."""
    assert res.src_dir is not None
    cmd = list(base_cmd) + ["check", str(res.src_dir), "--format", "json", "--exit-zero", "--no-config"]
    cmd += list(extra)
    if args.select:
        cmd += ["--select", args.select]
    if args.jobs is not None:
        cmd += ["--jobs", str(args.jobs)]
    cwd = res.src_dir.parent
    log(f"[{res.name}] {shlex.join(cmd)}")
    code, stdout, stderr, wall, cpu, rss, timed_out = run_measured(cmd, cwd, env, args.timeout)
    res.exit_code, res.stderr, res.wall, res.cpu, res.max_rss_kb = code, stderr, wall, cpu, rss
    if timed_out:
        res.error = f"timed out after {args.timeout:g}s"
    elif code != 0:
        res.error = f"modelint exited {code}"
    else:
        try:
            findings = json.loads(stdout)
            if not isinstance(findings, list):
                raise ValueError(f"expected a JSON list, got {type(findings).__name__}")
        except ValueError as e:
            res.error = f"unreadable JSON output: {e}"
            findings = []
        for f in findings:
            f["relpath"] = relativize(f["path"], cwd, res.src_dir)
        res.findings = sorted(findings, key=lambda f: (f["relpath"], f["line"], f["column"], f["code"]))
    if res.error:
        log(f"[{res.name}] FAILED: {res.error}")
        if stderr.strip():
            log(f"[{res.name}] stderr:\n{stderr.rstrip()}")
    else:
        log(f"[{res.name}] {len(res.findings)} findings in {wall:.2f}s")


# --------------------------------------------------------------------------------------------
# Output


def render_table(results: Sequence[Result]) -> str:
    codes = sorted({c for r in results for c in r.counts()})
    head = ["package", "version", "files", "lines", "wall s", "cpu s", "peak MB", "findings"] + codes
    rows: List[List[str]] = []

    def row(name, version, files, lines, wall, cpu, rss_kb, counts, status="", ran=True):
        total = sum(counts.values())
        return [
            name, version, f"{files:,}", f"{lines:,}",
            f"{wall:.2f}" if ran else "-", f"{cpu:.2f}" if ran else "-",
            f"{rss_kb / 1024:.0f}" if rss_kb else "-",
            status or f"{total:,}",
        ] + [f"{counts.get(c, 0):,}" for c in codes]

    for r in results:
        ran = r.exit_code is not None
        status = "" if r.ok else ("FAILED" if ran else "NOT FETCHED")
        if r.ok and not ran:
            status = "-"
        rows.append(row(r.name, r.version, r.files, r.lines, r.wall, r.cpu, r.max_rss_kb,
                        r.counts(), status, ran))
    tot: Dict[str, int] = {}
    for r in results:
        for c, n in r.counts().items():
            tot[c] = tot.get(c, 0) + n
    rows.append(row(
        "TOTAL", "", sum(r.files for r in results), sum(r.lines for r in results),
        sum(r.wall for r in results), sum(r.cpu for r in results),
        max((r.max_rss_kb for r in results), default=0), tot,
    ))
    widths = [max(len(x[i]) for x in [head] + rows) for i in range(len(head))]

    def fmt(cells: List[str]) -> str:
        return "  ".join(
            c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))
        ).rstrip()

    sep = "  ".join("-" * w for w in widths)
    lines = [fmt(head), sep] + [fmt(x) for x in rows[:-1]] + [sep, fmt(rows[-1])]
    return "\n".join(lines)


class SourceLines:
    """Reads each file once, for the source lines shown by --list."""

    def __init__(self) -> None:
        self._files: Dict[Path, List[str]] = {}

    def get(self, path: Path, line: int) -> str:
        if path not in self._files:
            try:
                self._files[path] = path.read_text(encoding="utf-8", errors="replace").splitlines()
            except OSError:
                self._files[path] = []
        text = self._files[path]
        return text[line - 1].strip() if 1 <= line <= len(text) else ""


def render_list(results: Sequence[Result], codes: Optional[set]) -> str:
    src = SourceLines()
    out: List[str] = []
    for r in results:
        for f in r.findings:
            if codes and f["code"] not in codes:
                continue
            where = f"{r.label}/{f['relpath']}:{f['line']}:{f['column']}"
            if "cell" in f:
                where += f" (cell {f['cell']})"
            out.append(f"{where}: {f['code']} {f['message']}")
            if "cell" not in f and r.src_dir is not None:
                out.append(f"    {src.get(r.src_dir / f['relpath'], f['line'])}")
    return "\n".join(out)


# --------------------------------------------------------------------------------------------
# Main


def parse_codes(text: Optional[str]) -> Optional[set]:
    if not text:
        return None
    return {c.strip().upper() for c in text.split(",") if c.strip()}


def parse_packages(specs: Sequence[str], parser: argparse.ArgumentParser) -> List[Tuple[str, str]]:
    if not specs:
        return list(PINS.items())
    out = []
    for spec in specs:
        name, sep, version = spec.partition("==")
        name = name.strip()
        if not sep:
            pinned = {_norm(k): (k, v) for k, v in PINS.items()}.get(_norm(name))
            if pinned is None:
                parser.error(f"{name!r} has no pin; give a version as {name}==VERSION "
                             f"(pinned: {', '.join(PINS)})")
            name, version = pinned
        out.append((name, version.strip()))
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bench/corpus.py",
        description="Run modelint over pinned third-party PyTorch packages; report time, memory "
        "and findings per code.",
        epilog=f"Pinned packages: {', '.join(f'{k}=={v}' for k, v in PINS.items())}.",
    )
    p.add_argument("packages", nargs="*", metavar="NAME[==VERSION]",
                   help="packages to check (default: every pinned package)")
    p.add_argument("--cache", type=Path, default=DEFAULT_CACHE, metavar="DIR",
                   help="where wheels and unpacked sources live (default: %(default)s, "
                   "or $MODELINT_BENCH_CACHE)")
    p.add_argument("--select", metavar="CODES", help="passed to `modelint check --select`")
    p.add_argument("--jobs", type=int, metavar="N", help="passed to `modelint check --jobs`")
    p.add_argument("--list", action="store_true",
                   help="print every finding with its source line after the table")
    p.add_argument("--codes", metavar="CODES",
                   help="with --list: only list these comma-separated codes")
    p.add_argument("--json", type=Path, metavar="OUT", help="write all results to OUT as JSON")
    p.add_argument("--timeout", type=float, default=1800.0, metavar="SECONDS",
                   help="kill a modelint run after this long (default: %(default)g)")
    p.add_argument("--modelint", metavar="CMD",
                   help="command to run instead of `python -m modelint` from this working tree "
                   "(split like a shell would; `check ...` is appended)")
    p.add_argument("--fetch-only", action="store_true",
                   help="download and unpack the packages, count their lines, run nothing")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.jobs is not None and args.jobs < 0:
        parser.error("--jobs must be >= 0")
    packages = parse_packages(args.packages, parser)
    cache: Path = args.cache.expanduser().resolve()
    try:
        cache.relative_to(REPO_ROOT)
    except ValueError:
        pass
    else:
        parser.error(f"--cache {cache} is inside the repository; third-party code stays outside it")
    list_codes = parse_codes(args.codes)

    env = dict(os.environ)
    if args.modelint:
        base_cmd = shlex.split(args.modelint)
    else:
        base_cmd = [sys.executable, "-m", "modelint"]
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))

    results: List[Result] = []
    for name, version in packages:
        res = Result(name, version)
        results.append(res)
        try:
            res.src_dir = fetch(name, version, cache)
            res.files, res.lines = count_py(res.src_dir)
        except Exception as e:  # noqa: BLE001 - report and go on with the next package
            res.error = f"fetch failed: {e}"
            log(f"[{name}] {res.error}")
            continue
        if not args.fetch_only:
            check(res, base_cmd, args, env)

    print(render_table(results))
    if args.list:
        listing = render_list(results, list_codes)
        if listing:
            print()
            print(listing)
    if args.json:
        payload = {
            "command": base_cmd,
            "select": args.select,
            "jobs": args.jobs,
            "cache": str(cache),
            "python": sys.version.split()[0],
            "cpu_count": os.cpu_count(),
            "packages": [r.to_dict() for r in results],
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        log(f"wrote {args.json}")
    failed = [r.label for r in results if not r.ok]
    if failed:
        log(f"failed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

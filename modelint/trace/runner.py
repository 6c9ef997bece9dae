"""`modelint trace TARGET...`: run each target's factory in its own subprocess.

A target is `package.module:factory` or `path/to/file.py:factory`; the factory returns
`(model, inputs)` where inputs is a tensor (one positional argument), a tuple of positional
arguments, a dict of keyword arguments or a `modelint.Case` (checked by `_child.unpack_result`).
Each target runs `python -m modelint.trace._child`; the child writes its findings as JSON
(`Finding.to_dict`) to a temporary file and this process rebuilds `Finding` objects. A target
whose import or factory raises, whose process crashes or hangs, or whose forward fails in both modes
becomes one MDL600 finding; the other targets still run.

The timeout covers the factory call and the tracing: its clock starts when the child calls the
factory (the child says so through a marker file), so interpreter start-up, `import torch` and
importing the target's module (which contend for the CPU when several targets run at once) are
not counted; they get their own, generous limit (`startup_limit`). The child's stderr goes to a
file, not a pipe, and the child's whole process group is killed once it has reported: a helper
process the factory started (a data-loader worker, a server) cannot keep the runner waiting.

This module never imports torch (the children do), so the CLI stays light.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Set, Tuple

import modelint
from modelint.findings import Finding
from modelint.codes import TRACE_BY_CODE as BY_CODE

_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(modelint.__file__)))
_TRACE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_FRAME_RE = re.compile(r'^\s*File "(?P<path>[^"]+)", line (?P<line>\d+) in (?P<func>\S+)', re.M)
STDERR_TAIL = 600
POLL = 0.05  # seconds between checks on a running child
EXIT_GRACE = 2.0  # seconds a child that has written its result gets to exit by itself


def startup_limit(timeout: float) -> float:
    """Seconds allowed before the factory is called (interpreter, imports): `import torch`
    alone takes 5-20 s on a loaded machine."""
    return max(120.0, timeout)


def target_error(target: str) -> Optional[str]:
    """A one-line usage error for a malformed target spec, else None (for the CLI: exit 2)."""
    if parse_target(target) is None:
        return (f"trace target {target!r} must look like package.module:factory or "
                f"path/to/file.py:factory")
    return None


def run_targets(
    targets: List[str],
    *,
    timeout: float = 120.0,
    allow: Optional[Dict[str, Set[str]]] = None,
    cwd: Optional[str] = None,
    jobs: int = 1,
) -> List[Finding]:
    """Trace every target in its own subprocess and return all findings, sorted.

    `timeout` is per target, in seconds. `allow` maps a target string (exactly as given) to codes
    to opt out of for that target. `cwd` is the directory the children run in (module targets are
    imported from it, file targets are relative to it); default: the current directory. `jobs`
    runs that many targets at once. Finding paths are relative to the current directory when
    inside it. Never raises for a failing target.
    """
    allow = allow or {}
    base = os.path.abspath(cwd or os.getcwd())

    def one(target: str) -> List[Finding]:
        return run_target(target, timeout=timeout, allow=allow.get(target, ()), cwd=base)

    if jobs > 1 and len(targets) > 1:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            results = list(pool.map(one, targets))
    else:
        results = [one(t) for t in targets]
    return sorted(f for result in results for f in result)


def run_target(target: str, *, timeout: float = 120.0, allow: Iterable[str] = (),
               cwd: Optional[str] = None) -> List[Finding]:
    """Trace one target in a subprocess (see `run_targets`)."""
    codes = {str(c).strip().upper() for c in allow}
    found = _run(target, timeout, codes, os.path.abspath(cwd or os.getcwd()))
    return [f for f in found if f.code not in codes]


def _run(target: str, timeout: float, allow: Set[str], base: str) -> List[Finding]:
    parsed = parse_target(target)
    if parsed is None:
        return [_failure(target, Location("<trace target>", 1), target_error(target), "target")]
    source_file = _target_file(parsed, base)
    factory_loc = _factory_location(source_file, parsed[2], base) if source_file else None
    fallback = factory_loc or Location(_display(source_file, base) if source_file else
                                       (parsed[1] if parsed[0] == "file" else f"<{parsed[1]}>"), 1)
    if importlib.util.find_spec("torch") is None:
        return [_failure(target, fallback, "the runtime tracer needs PyTorch, which is not installed: "
                         "pip install 'modelint[trace]'", "torch")]

    with tempfile.TemporaryDirectory(prefix="modelint-trace-") as tmp:
        out_path = os.path.join(tmp, "result.json")
        started_path = os.path.join(tmp, "started")
        err_path = os.path.join(tmp, "stderr.txt")
        limit = startup_limit(timeout)
        cmd = [sys.executable, "-m", "modelint.trace._child", "--target", target,
               "--out", out_path, "--timeout", repr(float(timeout)), "--started", started_path,
               "--startup-timeout", repr(limit)]
        if allow:
            cmd += ["--allow", ",".join(sorted(allow))]
        env = dict(os.environ)
        if os.path.basename(_PACKAGE_PARENT) not in ("site-packages", "dist-packages"):
            # running from a source checkout: make this modelint importable in the child
            env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH"), _PACKAGE_PARENT) if p)
        env.setdefault("PYTHONFAULTHANDLER", "1")
        with open(err_path, "wb") as err_file:
            proc = subprocess.Popen(cmd, cwd=base, env=env, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=err_file,
                                    start_new_session=(os.name == "posix"))
        try:
            outcome = _wait(proc, out_path, started_path, timeout, limit)
        finally:
            _kill(proc)  # the child, if still there, and any helper process it left running
            proc.wait()
        with open(err_path, "rb") as fh:
            stderr = fh.read().decode("utf-8", "replace")
        if outcome in ("timeout", "startup"):
            hung_at = _stack_location(stderr, base)
            loc = hung_at or fallback
            where = f" (it was at {loc.path}:{loc.line} in {loc.function}())" if hung_at else ""
            if outcome == "timeout":
                what = (f"timed out after {timeout:g} s (the limit covers the factory call and the "
                        f"traced forwards, not interpreter start-up or imports)")
                hint = "raise --timeout or make the factory/forward smaller"
            else:
                what = f"did not reach its factory within {limit:g} s (interpreter start-up and imports)"
                hint = "look for an import that hangs"
            return [_failure(target, loc, f"trace target {target} {what} and was killed{where}; "
                             f"{hint}", "timeout")]
        if os.path.exists(out_path):
            try:
                with open(out_path, encoding="utf-8") as fh:
                    payload = json.load(fh)
                return _rebuild(payload, target, base)
            except (OSError, ValueError, KeyError, TypeError) as exc:
                return [_failure(target, fallback, f"trace target {target}: unreadable result "
                                 f"({type(exc).__name__}: {exc})", "crash")]
        loc = _stack_location(stderr, base) or fallback
        how = _exit_description(proc.returncode)
        tail = _tail(stderr)
        return [_failure(target, loc, f"trace target {target} crashed: the process {how} before "
                         f"reporting" + (f"; stderr ends with: {tail}" if tail else ""), "crash")]


def _wait(proc: subprocess.Popen, out_path: str, started_path: str, timeout: float,
          limit: float) -> str:
    """Wait for the child: "exited", "reported" (result written; it gets EXIT_GRACE seconds to
    exit, then the caller kills it), "timeout" (factory + tracing over `timeout` s) or "startup"
    (no factory call within `limit` s)."""
    launched = time.monotonic()
    started: Optional[float] = None
    reported: Optional[float] = None
    while True:
        if proc.poll() is not None:
            return "exited"
        now = time.monotonic()
        if reported is None and os.path.exists(out_path):
            reported = now
        if reported is not None:
            if now - reported > EXIT_GRACE:
                return "reported"
        elif started is None:
            if os.path.exists(started_path):
                started = now
            elif now - launched > limit:
                return "startup"
        elif now - started > timeout:
            return "timeout"
        time.sleep(POLL)


# ----------------------------------------------------------------------------- targets


@dataclass(frozen=True)
class Location:
    """A place in a file, its path already made relative for display."""

    path: str
    line: int
    function: str = ""


def parse_target(target: str) -> Optional[Tuple[str, str, str]]:
    """("file" | "module", file path or module name, factory name), or None if malformed."""
    head, sep, factory = target.rpartition(":")
    if not sep or not head or not factory.isidentifier():
        return None
    if head.endswith(".py") or "/" in head or os.sep in head:
        return "file", head, factory
    if all(part.isidentifier() for part in head.split(".")):
        return "module", head, factory
    return None


def _target_file(parsed: Tuple[str, str, str], base: str) -> Optional[str]:
    """The source file of a target, found without importing anything."""
    kind, name, _ = parsed
    if kind == "file":
        path = name if os.path.isabs(name) else os.path.join(base, name)
        return path if os.path.isfile(path) else None
    parts = name.split(".")
    for root in [base] + [p for p in sys.path if p and os.path.isdir(p)]:
        stem = os.path.join(root, *parts)
        for candidate in (stem + ".py", os.path.join(stem, "__init__.py")):
            if os.path.isfile(candidate):
                return candidate
    return None


def _factory_location(path: str, factory: str, base: str) -> Optional[Location]:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for number, text in enumerate(fh, 1):
                if re.match(rf"\s*(async\s+)?def\s+{re.escape(factory)}\b", text):
                    return Location(_display(path, base), number, factory)
    except OSError:
        return None
    return None


# ----------------------------------------------------------------------------- results


def _display(path: str, base: str) -> str:
    """A child's path (relative to `base`) made relative to this process's current directory."""
    absolute = path if os.path.isabs(path) else os.path.join(base, path)
    absolute = os.path.normpath(absolute)
    try:
        rel = os.path.relpath(absolute)
    except ValueError:
        return absolute
    if rel == os.pardir or rel.startswith(os.pardir + os.sep):
        return absolute
    return rel.replace(os.sep, "/")


def finding_from_dict(d: dict) -> Finding:
    """Rebuild a `Finding` from `Finding.to_dict()` output (fixes are not carried over)."""
    line = int(d.get("line") or 1)
    column = int(d.get("column") or 1)
    return Finding(
        path=str(d["path"]),
        line=line,
        column=column,
        code=str(d["code"]),
        message=str(d.get("message", "")),
        name=str(d.get("name", "")),
        level=str(d.get("level", "error")),
        end_line=int(d.get("end_line") or line),
        end_column=int(d.get("end_column") or column),
        cell=d.get("cell"),
        extra=tuple(sorted((str(k), v) for k, v in (d.get("extra") or {}).items())),
    )


def _with(finding: Finding, path: str, target: str) -> Finding:
    extra = dict(finding.extra)
    extra["target"] = target
    return Finding(path=path, line=finding.line, column=finding.column, code=finding.code,
                   message=finding.message, name=finding.name, level=finding.level,
                   end_line=finding.end_line, end_column=finding.end_column, fix=finding.fix,
                   cell=finding.cell, extra=tuple(sorted(extra.items())))


def _rebuild(payload: dict, target: str, base: str) -> List[Finding]:
    out = []
    for d in payload["findings"]:
        finding = finding_from_dict(d)
        path = finding.path if finding.path.startswith("<") else _display(finding.path, base)
        out.append(_with(finding, path, target))
    return out


def _failure(target: str, loc: Location, message: str, stage: str) -> Finding:
    info = BY_CODE["MDL600"]
    return Finding(path=loc.path, line=loc.line, column=1, code="MDL600", message=message,
                   name=info.name, level=info.level,
                   extra=(("stage", stage), ("target", target)))


def _kill(proc: subprocess.Popen) -> None:
    """Kill the child and everything it started (it leads its own session)."""
    try:
        if os.name == "posix":
            os.killpg(proc.pid, signal.SIGKILL)
        else:  # pragma: no cover
            proc.kill()
    except (ProcessLookupError, PermissionError):
        pass


def _exit_description(returncode: int) -> str:
    if returncode is not None and returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"was killed by {name}"
    return f"exited with code {returncode}"


def _tail(text: str) -> str:
    """The fatal error line faulthandler printed, else the last lines of stderr."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    fatal = [ln for ln in lines if ln.startswith("Fatal Python error:")]
    if fatal:
        return fatal[-1][-STDERR_TAIL:]
    return " | ".join(lines[-3:])[-STDERR_TAIL:]


def _is_library(path: str) -> bool:
    absolute = os.path.abspath(path)
    if absolute.startswith(_TRACE_DIR) or "site-packages" + os.sep + "torch" + os.sep in absolute:
        return True
    stdlib = sysconfig.get_paths().get("stdlib")
    return bool(stdlib) and absolute.startswith(os.path.abspath(stdlib) + os.sep) and \
        "site-packages" not in absolute


def _stack_location(stderr: str, base: str) -> Optional[Location]:
    """The innermost user frame of the last traceback faulthandler dumped (timeout or crash)."""
    blocks = re.split(r"(?m)^(?:Timeout \(|Fatal Python error)", stderr)
    for block in reversed(blocks):
        for match in _FRAME_RE.finditer(block):
            path = match.group("path")
            if path.startswith("<") or _is_library(path):
                continue
            return Location(_display(path, base), int(match.group("line")), match.group("func"))
    return None


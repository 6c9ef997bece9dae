#!/usr/bin/env python3
"""How fast does `modelint server` answer? (the issue's target: a change to a 2,000-line file
answered within 1 s, and the first open of a workspace the size of timm).

A real LSP session over stdio, the same client as tests/test_server.py, against the pinned timm
corpus of ``bench/corpus.py`` (fetched into ``~/.cache/modelint-bench`` on first use):

1. spawn the server (this working tree's modelint) and ``initialize`` with timm as the workspace
   folder: time to the initialize response;
2. ``initialized`` then, at once, ``didOpen`` of the edited file: time to its first
   ``publishDiagnostics`` -- the first open of the workspace, which includes importing LibCST and
   the rules and indexing every file of the workspace (the cross-file index);
3. ``--edits`` changes to that file's buffer (incremental ``didChange``), alternately inserting a
   line ``x = F.dropout(x, 0.1)`` at the top of its first ``forward`` (an MDL101 finding, checked
   to appear) and removing it (checked to clear): time from sending each change to receiving the
   diagnostics of that version. This includes the server's 0.1 s debounce.

The file is ``timm/models/resnet.py`` (2,303 lines, the timm file closest to 2,000 lines from
above) unless ``--file`` says otherwise. Numbers are wall seconds on a shared machine: the load
average before and after is printed. Targets are reported, never asserted.

Usage::

    python bench/server_latency.py                       # resnet.py, 10 edits
    python bench/server_latency.py --file timm/models/vision_transformer.py --edits 20
    python bench/server_latency.py --json latency.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))

import corpus  # noqa: E402  (bench/corpus.py: pins and the fetch into the cache)
from tests.test_server import Client  # noqa: E402  (one home for the LSP test client)

TARGET_SECONDS = 1.0


def loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().split(" ", 1)[0]
    except OSError:
        return "?"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (all its threads), from /proc (Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def forward_insertion(text: str) -> tuple:
    """(0-based line, text) of a buggy line at the top of the file's first `forward(self, x, ...)` body."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"(\s*)def forward\(", line)
        if not m:
            continue
        j = i
        while not lines[j].split("#")[0].rstrip().endswith(":"):  # a signature spanning lines
            j += 1
        arg = re.search(r"forward\(\s*self\s*,\s*(\w+)", " ".join(lines[i:j + 1]))
        if arg:
            return j + 1, f"{m.group(1)}    {arg.group(1)} = F.dropout({arg.group(1)}, 0.1)\n"
    raise SystemExit("no `def forward(self, x...` in the file")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--file", default="timm/models/resnet.py", help="file (relative to the timm corpus) to edit")
    ap.add_argument("--edits", type=int, default=10, help="number of changes to time (default: 10)")
    ap.add_argument("--cache", type=Path, default=corpus.DEFAULT_CACHE, help="corpus cache (as bench/corpus.py)")
    ap.add_argument("--json", type=Path, help="also write the numbers to this file")
    ap.add_argument("--log-file", type=Path, help="the server's log, with each check's own duration (--verbose)")
    args = ap.parse_args()

    root = corpus.fetch("timm", corpus.PINS["timm"], args.cache)
    path = root / args.file
    text = path.read_text(encoding="utf-8")
    n_files = sum(1 for _ in root.rglob("*.py"))
    at, bug = forward_insertion(text)
    load_before = loadavg()

    t0 = time.perf_counter()
    client = Client(cwd=Path("/"), args=["--verbose", "--log-file", str(args.log_file)] if args.log_file else [])  # configuration must come from the documents' folders
    try:
        client.request("initialize", {"processId": os.getpid(), "rootUri": root.as_uri(),
                                      "workspaceFolders": [{"uri": root.as_uri(), "name": "timm"}],
                                      "capabilities": {"textDocument": {"publishDiagnostics": {"versionSupport": True}}}})
        t_init = time.perf_counter() - t0
        uri = path.as_uri()
        t1 = time.perf_counter()
        client.notify("initialized", {})
        client.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "python", "version": 1,
                                                                "text": text}})
        first = client.wait_for("textDocument/publishDiagnostics", lambda p: p["uri"] == uri and p.get("version") == 1)
        t_open = time.perf_counter() - t1
        baseline = len(first["diagnostics"])

        changes, cpu = [], []
        for k in range(args.edits):
            version = k + 2
            inserting = k % 2 == 0
            rng = ({"start": {"line": at, "character": 0}, "end": {"line": at, "character": 0}} if inserting else
                   {"start": {"line": at, "character": 0}, "end": {"line": at + 1, "character": 0}})
            t, c = time.perf_counter(), cpu_seconds(client.proc.pid)
            client.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": version},
                                                     "contentChanges": [{"range": rng, "text": bug if inserting else ""}]})
            got = client.wait_for("textDocument/publishDiagnostics",
                                  lambda p: p["uri"] == uri and p.get("version") == version)
            changes.append(time.perf_counter() - t)
            cpu.append(cpu_seconds(client.proc.pid) - c)
            codes = [d["code"] for d in got["diagnostics"]]
            expected = baseline + (1 if inserting else 0)
            if len(codes) != expected or (inserting and "MDL101" not in codes):
                raise SystemExit(f"edit {k + 1}: expected {expected} diagnostics, got {codes}")
        client.close()
    finally:
        if client.proc.poll() is None:
            client.proc.kill()

    lines = len(text.splitlines())
    result = {
        "workspace": f"timm-{corpus.PINS['timm']}", "workspace_files": n_files, "file": args.file, "file_lines": lines,
        "initialize_s": round(t_init, 3), "first_open_s": round(t_open, 3),
        "change_median_s": round(statistics.median(changes), 3), "change_max_s": round(max(changes), 3),
        "changes_s": [round(c, 3) for c in changes], "change_cpu_median_s": round(statistics.median(cpu), 3),
        "change_cpu_max_s": round(max(cpu), 3), "load1_before": load_before, "load1_after": loadavg(),
    }
    print(f"workspace: timm {corpus.PINS['timm']} ({n_files} .py files); edited file: {args.file} ({lines} lines)")
    print(f"  spawn -> initialize response        {t_init:6.3f} s")
    print(f"  first open -> diagnostics           {t_open:6.3f} s   (imports, workspace index, first check)")
    print(f"  change -> diagnostics, median       {result['change_median_s']:6.3f} s   over {len(changes)} edits "
          f"(incl. {0.1:.1f} s debounce)")
    print(f"  change -> diagnostics, max          {result['change_max_s']:6.3f} s")
    print(f"  server CPU per change, median / max {result['change_cpu_median_s']:6.3f} / {result['change_cpu_max_s']:.3f} s"
          "   (what the wall times cost on an idle core)")
    verdict = "met" if max(changes) <= TARGET_SECONDS else "NOT met"
    print(f"target: a change answered within {TARGET_SECONDS:.0f} s: {verdict} (max {max(changes):.3f} s)")
    print(f"load1 before/after: {load_before} / {result['load1_after']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`modelint server`: a Language Server Protocol server over stdio, for squiggles in the editor.

Needs the `lsp` extra (`pygls` 2.x and `lsprotocol`). What it does:
- diagnostics for the document's in-memory text on open, change (debounced) and save, with the
  code, the message, the severity of the finding's level, and the rule's documentation (hover, and
  `codeDescription` linking a Markdown page of it);
- code actions: a finding's fix (safe fixes are preferred quick fixes; unsafe ones say so in their
  title and are never preferred), "suppress on this line" (`# modelint: ignore[CODE]`), and
  "fix all" (`source.fixAll.modelint`, the `--fix` loop, for fix-on-save);
- configuration resolved from each document's folder, as `modelint check` run on that file would
  (see `modelint.documents`), re-read on every check so an edited pyproject.toml takes effect;
- the workspace's cross-file index (import and class statements of every file the configuration
  includes), kept current from open documents, saves and the client's file-change events, so a
  class whose `nn.Module` base is in another file is recognised.

Layout: this module is the entry point and imports nothing of pygls (so a missing extra is a
one-line message); `workspace` holds what is not LSP (index, settings, docs, suppression comments);
`protocol` is the pygls server. Checking runs in one worker thread, off the event loop, so the
server keeps reading messages (a newer edit simply supersedes the check in flight); the index is
touched only from that thread. Speed: `bench/server_latency.py` (a change to a 2,000-line file,
the first open of a timm-sized workspace).
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Optional, Sequence

LSP_EXTRA = "modelint[lsp]"

log = logging.getLogger("modelint.server")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `modelint server` (shared by `main` and the `modelint` CLI's subcommand)."""
    parser.add_argument("--log-file", metavar="FILE", help="write the server's log to FILE (default: stderr)")
    parser.add_argument("--verbose", "-v", action="store_true", help="log every check and its duration")


def run(args: argparse.Namespace) -> int:
    """Serve LSP over stdin/stdout until the client exits; 2 (with one line naming the extra to
    install) when pygls / lsprotocol are missing."""
    try:
        import lsprotocol  # noqa: F401
        import pygls  # noqa: F401
    except ImportError:
        print(f"modelint: error: `modelint server` needs the lsp extra: pip install '{LSP_EXTRA}'", file=sys.stderr)
        return 2
    logging.basicConfig(filename=args.log_file, level=logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    log.setLevel(logging.INFO if args.verbose else logging.WARNING)
    from modelint.server.protocol import build_server

    build_server().start_io()
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of `modelint server` (also `python -c 'from modelint.server import main; main()'`)."""
    parser = argparse.ArgumentParser(prog="modelint server", allow_abbrev=False,
                                     description="Language Server Protocol server over stdio, for editors.")
    add_arguments(parser)
    return run(parser.parse_args(argv))

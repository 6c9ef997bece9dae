"""`modelint server`: a Language Server Protocol server over stdio, for squiggles in the editor.

Needs the `lsp` extra (`pygls` 2.x and `lsprotocol`). What it does:
- diagnostics for the document's in-memory text on open, change (debounced) and save, with the
  code, the message, the severity of the finding's level, and the rule's documentation (hover, and
  `codeDescription` linking a Markdown page of it);
- code actions: a finding's fix (safe fixes are preferred quick fixes; unsafe ones say so in their
  title and are never preferred) and "suppress on this line" (`# modelint: ignore[CODE]`);
- configuration resolved from each document's folder, as `modelint check` run on that file would
  (see `modelint.documents`), re-read on every check so an edited pyproject.toml takes effect;
- the workspace's cross-file index (import and class statements of every file the configuration
  includes), kept current from open documents, saves and the client's file-change events, so a
  class whose `nn.Module` base is in another file is recognised.

Checking runs in one worker thread, off the event loop, so the server keeps reading messages (a
newer edit simply supersedes the check in flight); the index is touched only from that thread.
Speed: `bench/server_latency.py` (a change to a 2,000-line file, the first open of a timm-sized
workspace).
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import io
import logging
import shutil
import sys
import tempfile
import time
import tokenize
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from modelint.analysis.index import FileFacts, ProjectIndex, facts_from_source
from modelint.documents import DocumentError, DocumentSettings, check_document, document_facts, document_settings
from modelint.findings import Finding

LSP_EXTRA = "modelint[lsp]"
# What the `lsp` extra installs (also the message when it is missing).
LSP_REQUIREMENTS = ("pygls>=2,<3", "lsprotocol>=2023.0.1")

# Seconds between the last keystroke and the check: long enough to skip the intermediate states of
# a burst of typing, short enough to stay well inside the 1 s response budget (a 2,000-line file
# takes 0.2-0.5 s to check here; bench/server_latency.py).
CHANGE_DELAY = 0.1
# Other open documents are re-checked when a document's imports or class bases change (their
# cross-file facts may depend on it): a bit later, as that matters less than the edited file.
DEPENDENTS_DELAY = 0.5

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
    build_server().start_io()
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of `modelint server` (also `python -c 'from modelint.server import main; main()'`)."""
    parser = argparse.ArgumentParser(prog="modelint server", allow_abbrev=False,
                                     description="Language Server Protocol server over stdio, for editors.")
    add_arguments(parser)
    return run(parser.parse_args(argv))


# --------------------------------------------------------------------------------------------
# The workspace: settings and the cross-file index (no LSP types here)


class WorkspaceIndex:
    """Facts (imports, class bases) of every file of the workspace folders, by path; open
    documents override the disk version with their in-memory text."""

    def __init__(self) -> None:
        self.on_disk: Dict[str, FileFacts] = {}
        self.open: Dict[str, FileFacts] = {}

    def scan(self, folders: Sequence[Path]) -> int:
        """Index every file `modelint check FOLDER` would read; returns the number of files."""
        from modelint.config import ConfigError, default_exclude, find_pyproject, load_config
        from modelint.discovery import DiscoveryError, discover

        for folder in folders:
            try:
                found = find_pyproject(folder)
                cfg = load_config(found, search=False) if found else load_config(search=False)
                exclude, extend_exclude = default_exclude(cfg)
                files = discover([str(folder)], exclude, extend_exclude, root=str(cfg.root if found else folder),
                                 respect_gitignore=cfg.respect_gitignore, suffixes=(".py",))
            except (ConfigError, DiscoveryError) as exc:  # the documents' diagnostics report config errors
                log.warning("not indexing %s: %s", folder, exc)
                continue
            for file in files:
                self.refresh(file)
        return len(self.on_disk)

    def refresh(self, path: Path) -> None:
        """Re-read one file from disk (after a save or a change outside the editor)."""
        from modelint.sources import read_source

        key = str(Path(path).resolve())
        data, _problem = read_source(Path(path))
        if data is None:
            self.on_disk.pop(key, None)
        else:
            self.on_disk[key] = facts_from_source(data, Path(key))

    def forget(self, path: Path) -> None:
        self.on_disk.pop(str(Path(path).resolve()), None)

    def set_open(self, path: Path, facts: Optional[FileFacts]) -> bool:
        """Record an open document's facts; True when they differ from what the index had for it."""
        key = str(Path(path).resolve())
        before = self.open.get(key) or self.on_disk.get(key)
        if facts is None:
            self.open.pop(key, None)
        else:
            self.open[key] = facts
        after = self.open.get(key) or self.on_disk.get(key)
        return _facts_key(before) != _facts_key(after)

    def project(self) -> ProjectIndex:
        index = ProjectIndex()
        for facts in self.on_disk.values():
            index.add(facts)
        for facts in self.open.values():
            index.add(facts)
        return index


def _facts_key(facts: Optional[FileFacts]) -> Any:
    if facts is None:
        return None
    return facts.modname, sorted(facts.aliases.items()), sorted((k, tuple(v)) for k, v in facts.classes.items())


@dataclass
class Checked:
    """One check of one version of a document."""

    version: Optional[int]
    text: str
    findings: List[Finding]
    error: Optional[str] = None  # a configuration problem, shown instead of findings


def check_text(text: str, path: Path, index: Optional[ProjectIndex], version: Optional[int] = None) -> Checked:
    """Check one document's text with the settings of its folder (re-read every time)."""
    try:
        settings: DocumentSettings = document_settings(path)
    except DocumentError as exc:
        return Checked(version, text, [], str(exc))
    return Checked(version, text, check_document(text, path, settings, index))


# --------------------------------------------------------------------------------------------
# Rule documentation


class RuleDocs:
    """Markdown documentation of each code, for hovers and as files `codeDescription` links to
    (there is no hosted documentation site; a local page opens in the editor, offline)."""

    def __init__(self) -> None:
        self._folder: Optional[Path] = None

    def markdown(self, code: str) -> str:
        """What `modelint rule CODE` prints (Markdown: sections, Python code blocks)."""
        from modelint.catalog import catalog
        from modelint.docs import rule_doc

        info = catalog().get(code)
        return rule_doc(info) if info is not None else code

    def uri(self, code: str) -> Optional[str]:
        """file:// URI of the code's page, written on first use; None if it cannot be written."""
        from pygls.uris import from_fs_path

        try:
            if self._folder is None:
                self._folder = Path(tempfile.mkdtemp(prefix="modelint-rules-"))
                atexit.register(shutil.rmtree, self._folder, True)
            page = self._folder / f"{code}.md"
            if not page.exists():
                page.write_text(self.markdown(code) + "\n", encoding="utf-8")
        except OSError:
            return None
        return from_fs_path(str(page))


# --------------------------------------------------------------------------------------------
# Suppression comments


def suppression_edit(text: str, line: int, code: str) -> Optional[Tuple[int, int, int, str]]:
    """Where and what to write so that `code` is suppressed on 1-based `line`: (line, start column,
    end column, new text), 0-based code-point columns; None when no comment can go on that line
    (it continues with a backslash or inside a multi-line string)."""
    lines = text.splitlines()
    if not 1 <= line <= len(lines):
        return None
    src = lines[line - 1]
    comment_at: Optional[int] = None
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.start[0] > line:
                break
            if tok.start[0] <= line < tok.end[0] and tok.type not in (tokenize.NEWLINE, tokenize.NL):
                return None  # a string (or f-string part) runs past this line's end
            if tok.type == tokenize.COMMENT and tok.start[0] == line:
                comment_at = tok.start[1]
    except (tokenize.TokenError, SyntaxError, IndentationError):
        # Mid-edit code may not tokenize; a '#' at the end of a line is still a comment.
        pass
    code_part = src if comment_at is None else src[:comment_at]
    if code_part.rstrip().endswith("\\"):
        return None
    if comment_at is not None:
        import re

        existing = re.search(r"#\s*modelint\s*:\s*ignore\[(?P<codes>[^\]]*)\]", src[comment_at:], re.IGNORECASE)
        if existing:  # add the code to the comment already there
            start, end = comment_at + existing.start("codes"), comment_at + existing.end("codes")
            codes = [c for c in (s.strip() for s in existing.group("codes").split(",")) if c]
            return line, start, end, ", ".join(codes + [code])
    end = len(src.rstrip())
    return line, end, len(src), f"  # modelint: ignore[{code}]"


# --------------------------------------------------------------------------------------------
# The LSP server


def build_server():
    """The pygls server with every feature registered (imports pygls: needs the lsp extra)."""
    from lsprotocol import types as lsp
    from pygls.lsp.server import LanguageServer
    from pygls.uris import to_fs_path
    from pygls.workspace.position_codec import ServerTextPosition, ServerTextRange

    from modelint import __version__

    server = LanguageServer("modelint", __version__, text_document_sync_kind=lsp.TextDocumentSyncKind.Incremental)
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="modelint-check")
    index = WorkspaceIndex()
    docs = RuleDocs()
    results: Dict[str, Checked] = {}  # uri -> last check published
    pending: Dict[str, asyncio.Task] = {}
    state = {"scanned": False}
    severity = {"error": lsp.DiagnosticSeverity.Error, "warning": lsp.DiagnosticSeverity.Warning,
                "info": lsp.DiagnosticSeverity.Information}

    def doc_path(uri: str) -> Optional[Path]:
        """The file a document stands for: its path, or for an unsaved (untitled) buffer a name in
        the first workspace folder, so that folder's configuration applies."""
        if uri.startswith("file:"):
            p = to_fs_path(uri)
            return Path(p) if p else None
        if uri.startswith("untitled:"):
            folders = workspace_folders()
            name = uri.split(":", 1)[1].rsplit("/", 1)[-1] or "untitled"
            return (folders[0] if folders else Path.cwd()) / (name if name.endswith(".py") else name + ".py")
        return None

    def workspace_folders() -> List[Path]:
        ws = server.workspace
        out = [Path(p) for f in ws.folders.values() if (p := to_fs_path(f.uri))]
        if not out and ws.root_path:
            out = [Path(ws.root_path)]
        return out

    def wanted(doc) -> bool:
        return doc.language_id in (None, "python") and not doc.uri.endswith(".ipynb") and doc_path(doc.uri) is not None

    # --- checking (in the worker thread) ------------------------------------------------------
    def scan_once() -> None:
        if not state["scanned"]:
            state["scanned"] = True
            n = index.scan(workspace_folders())
            log.info("indexed %d files", n)

    def run_check(uri: str, text: str, version: Optional[int]) -> Tuple[Checked, bool]:
        start = time.perf_counter()
        path = doc_path(uri)
        try:
            scan_once()
            changed = index.set_open(path, document_facts(text, path))
            checked = check_text(text, path, index.project(), version)
        except Exception as exc:  # a bug of ours: say so in the editor rather than go silent
            log.exception("checking %s failed", path)
            return Checked(version, text, [], f"modelint: internal error while checking this file: {exc!r}"), False
        log.info("checked %s v%s: %d findings in %.3f s", path, version, len(checked.findings),
                 time.perf_counter() - start)
        return checked, changed

    async def check_now(uri: str) -> Optional[Checked]:
        doc = server.workspace.get_text_document(uri)
        if not wanted(doc):
            return None
        text, version = doc.source, doc.version
        loop = asyncio.get_running_loop()
        checked, facts_changed = await loop.run_in_executor(executor, run_check, uri, text, version)
        if facts_changed:
            for other in list(results):
                if other != uri:
                    schedule(other, DEPENDENTS_DELAY)
        return checked

    async def check_later(uri: str, delay: float) -> None:
        await asyncio.sleep(delay)
        checked = await check_now(uri)
        if checked is None or uri not in server.workspace.text_documents:
            return
        if checked.version != server.workspace.get_text_document(uri).version:
            return  # the text changed meanwhile; its own check is scheduled
        results[uri] = checked
        publish(uri, checked)

    def schedule(uri: str, delay: float) -> None:
        task = pending.get(uri)
        if task is not None and not task.done():
            task.cancel()
        pending[uri] = asyncio.ensure_future(check_later(uri, delay))

    # --- conversion -----------------------------------------------------------------------
    def to_range(lines: List[str], line: int, col: int, end_line: int, end_col: int) -> "lsp.Range":
        """1-based code-point positions -> the client's position encoding (UTF-16 by default)."""
        start = ServerTextPosition(max(line - 1, 0), max(col - 1, 0))
        if end_line <= 0 or (end_line, end_col) <= (line, col):  # no extent: to the end of the line
            text = lines[start.line].rstrip("\r\n") if start.line < len(lines) else ""
            end = ServerTextPosition(start.line, max(len(text), start.character))
        else:
            end = ServerTextPosition(end_line - 1, max(end_col - 1, 0))
        return server.workspace.position_codec.range_to_client_units(lines, ServerTextRange(start, end))

    def diagnostic(f: Finding, lines: List[str]) -> "lsp.Diagnostic":
        href = docs.uri(f.code)
        return lsp.Diagnostic(
            range=to_range(lines, f.line, f.column, f.end_line, f.end_column),
            message=f.message,
            severity=severity.get(f.level, lsp.DiagnosticSeverity.Error),
            code=f.code,
            code_description=lsp.CodeDescription(href=href) if href else None,
            source="modelint",
            data={"name": f.name, "fix": f.fix.applicability if f.fix else None},
        )

    def publish(uri: str, checked: Checked) -> None:
        lines = checked.text.splitlines(keepends=True)
        if checked.error:
            diags = [lsp.Diagnostic(range=lsp.Range(lsp.Position(0, 0), lsp.Position(0, 0)),
                                    message=checked.error, severity=lsp.DiagnosticSeverity.Error, source="modelint")]
        else:
            diags = [diagnostic(f, lines) for f in checked.findings]
        server.text_document_publish_diagnostics(
            lsp.PublishDiagnosticsParams(uri=uri, version=checked.version, diagnostics=diags))

    async def current(uri: str) -> Optional[Checked]:
        """The check of the document's current version (checking it now if the last is stale)."""
        doc = server.workspace.get_text_document(uri)
        checked = results.get(uri)
        if checked is not None and checked.version == doc.version:
            return checked
        checked = await check_now(uri)
        if checked is not None:
            results[uri] = checked
            publish(uri, checked)
        return checked

    def text_edit(lines: List[str], e) -> "lsp.TextEdit":
        return lsp.TextEdit(range=server.workspace.position_codec.range_to_client_units(
            lines, ServerTextRange(ServerTextPosition(e.line - 1, e.column - 1),
                                   ServerTextPosition(e.end_line - 1, e.end_column - 1))), new_text=e.content)

    def workspace_edit(uri: str, version: Optional[int], edits: List["lsp.TextEdit"]) -> "lsp.WorkspaceEdit":
        caps = server.client_capabilities.workspace
        if caps and caps.workspace_edit and caps.workspace_edit.document_changes:
            # Versioned: the client refuses the edit if the text changed since this check.
            return lsp.WorkspaceEdit(document_changes=[lsp.TextDocumentEdit(
                text_document=lsp.OptionalVersionedTextDocumentIdentifier(uri=uri, version=version), edits=edits)])
        return lsp.WorkspaceEdit(changes={uri: edits})

    # --- features ---------------------------------------------------------------------------
    @server.feature(lsp.INITIALIZED)
    async def initialized(ls, params: lsp.InitializedParams) -> None:
        loop = asyncio.get_running_loop()
        # Import LibCST and the rules and index the workspace before the first document arrives
        # (both are paid once: ~0.5 s and ~0.15 s for timm's 304 files here).
        loop.run_in_executor(executor, warm_up)
        caps = ls.client_capabilities.workspace
        watch = caps and caps.did_change_watched_files and caps.did_change_watched_files.dynamic_registration
        if watch:
            await ls.client_register_capability_async(lsp.RegistrationParams(registrations=[lsp.Registration(
                id="modelint-watch", method=lsp.WORKSPACE_DID_CHANGE_WATCHED_FILES,
                register_options=lsp.DidChangeWatchedFilesRegistrationOptions(watchers=[
                    lsp.FileSystemWatcher(glob_pattern="**/*.py"),
                    lsp.FileSystemWatcher(glob_pattern="**/pyproject.toml")]))]))

    def warm_up() -> None:
        from modelint.catalog import catalog

        catalog()  # imports every rule, and LibCST with them
        scan_once()

    @server.feature(lsp.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls, params: lsp.DidOpenTextDocumentParams) -> None:
        schedule(params.text_document.uri, 0.0)

    @server.feature(lsp.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls, params: lsp.DidChangeTextDocumentParams) -> None:
        schedule(params.text_document.uri, CHANGE_DELAY)

    @server.feature(lsp.TEXT_DOCUMENT_DID_SAVE)
    def did_save(ls, params: lsp.DidSaveTextDocumentParams) -> None:
        uri = params.text_document.uri
        path = doc_path(uri)
        if path is not None:
            executor.submit(index.refresh, path)
        schedule(uri, 0.0)

    @server.feature(lsp.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls, params: lsp.DidCloseTextDocumentParams) -> None:
        uri = params.text_document.uri
        task = pending.pop(uri, None)
        if task is not None:
            task.cancel()
        results.pop(uri, None)
        path = doc_path(uri)
        if path is not None:
            executor.submit(index.set_open, path, None)  # the file on disk counts again
        ls.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri=uri, diagnostics=[]))

    @server.feature(lsp.WORKSPACE_DID_CHANGE_WATCHED_FILES)
    def did_change_watched(ls, params: lsp.DidChangeWatchedFilesParams) -> None:
        for change in params.changes:
            path = to_fs_path(change.uri)
            if not path:
                continue
            if path.endswith(".py"):
                if change.type == lsp.FileChangeType.Deleted:
                    executor.submit(index.forget, Path(path))
                else:
                    executor.submit(index.refresh, Path(path))
        for uri in list(results):  # settings or another file's classes may have changed
            schedule(uri, DEPENDENTS_DELAY)

    @server.feature(lsp.TEXT_DOCUMENT_HOVER)
    async def hover(ls, params: lsp.HoverParams) -> Optional[lsp.Hover]:
        checked = await current(params.text_document.uri)
        if checked is None or checked.error:
            return None
        lines = checked.text.splitlines(keepends=True)
        parts = []
        for f in checked.findings:
            rng = to_range(lines, f.line, f.column, f.end_line, f.end_column)
            if _contains(rng, params.position):
                parts.append(f"{f.message}\n\n{docs.markdown(f.code)}")
        if not parts:
            return None
        return lsp.Hover(contents=lsp.MarkupContent(kind=lsp.MarkupKind.Markdown, value="\n\n---\n\n".join(parts)))

    @server.feature(lsp.TEXT_DOCUMENT_CODE_ACTION,
                    lsp.CodeActionOptions(code_action_kinds=[lsp.CodeActionKind.QuickFix], resolve_provider=False))
    async def code_action(ls, params: lsp.CodeActionParams) -> Optional[List[lsp.CodeAction]]:
        only = params.context.only
        if only and not any(str(k).startswith(lsp.CodeActionKind.QuickFix) for k in only):
            return None
        uri = params.text_document.uri
        checked = await current(uri)
        if checked is None or checked.error:
            return None
        lines = checked.text.splitlines(keepends=True)
        fixes, suppressions = [], []
        for f in checked.findings:
            rng = to_range(lines, f.line, f.column, f.end_line, f.end_column)
            if not _overlaps(rng, params.range):
                continue
            diag = diagnostic(f, lines)
            if f.fix is not None and f.fix.edits:
                safe = f.fix.applicability == "safe"
                title = f"{f.fix.title} ({f.code})" if safe else f"{f.fix.title} ({f.code}, unsafe fix: review the change)"
                fixes.append(lsp.CodeAction(
                    title=title, kind=lsp.CodeActionKind.QuickFix, diagnostics=[diag], is_preferred=safe,
                    edit=workspace_edit(uri, checked.version, [text_edit(lines, e) for e in f.fix.edits])))
            if f.code in ("MDL000", "MDL999"):
                continue  # a parse error or a crash is not something to silence
            where = suppression_edit(checked.text, f.line, f.code)
            if where is not None:
                line, start, end, new = where
                edit = lsp.TextEdit(range=server.workspace.position_codec.range_to_client_units(
                    lines, ServerTextRange(ServerTextPosition(line - 1, start), ServerTextPosition(line - 1, end))),
                    new_text=new)
                suppressions.append(lsp.CodeAction(
                    title=f"Suppress {f.code} on this line", kind=lsp.CodeActionKind.QuickFix, diagnostics=[diag],
                    is_preferred=False, edit=workspace_edit(uri, checked.version, [edit])))
        return fixes + suppressions or None

    return server


def _contains(rng, pos) -> bool:
    return (rng.start.line, rng.start.character) <= (pos.line, pos.character) <= (rng.end.line, rng.end.character)


def _overlaps(a, b) -> bool:
    return (a.start.line, a.start.character) <= (b.end.line, b.end.character) and \
        (b.start.line, b.start.character) <= (a.end.line, a.end.character)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""The pygls language server: documents in, diagnostics, hovers and code actions out.

Positions: findings count 1-based lines and columns in code points; LSP counts 0-based, in the
encoding negotiated at `initialize` (UTF-16 unless the client offers another), converted here
with pygls' position codec against the exact text that was checked.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from lsprotocol import types as lsp
from pygls.lsp.server import LanguageServer
from pygls.uris import to_fs_path
from pygls.workspace.position_codec import ServerTextPosition, ServerTextRange

from modelint.documents import DocumentError, document_facts, document_settings, fix_document
from modelint.findings import Edit, Finding
from modelint.server.workspace import Checked, RuleDocs, WorkspaceIndex, check_text, replacement, suppression_edit

# Seconds between the last keystroke and the check: long enough to skip the intermediate states of
# a burst of typing, short enough to stay inside the 1 s response budget (a 2,303-line file costs
# the server 0.3-0.4 s of CPU per check here; bench/server_latency.py).
CHANGE_DELAY = 0.1
# Other open documents are re-checked when a document's imports or class bases change (their
# cross-file facts may depend on it): a bit later, as that matters less than the edited file.
DEPENDENTS_DELAY = 0.5

SEVERITY = {"error": lsp.DiagnosticSeverity.Error, "warning": lsp.DiagnosticSeverity.Warning,
            "info": lsp.DiagnosticSeverity.Information}
# The code action kind an editor runs on save to apply every safe fix (VS Code:
# "editor.codeActionsOnSave": {"source.fixAll.modelint": "explicit"}).
FIX_ALL = "source.fixAll.modelint"
# A parse error or a crash is not something to silence with a comment.
NOT_SUPPRESSIBLE = ("MDL000", "MDL999")

log = logging.getLogger("modelint.server")


def build_server() -> LanguageServer:
    """The server with every feature registered."""
    from modelint import __version__

    server = LanguageServer("modelint", __version__, text_document_sync_kind=lsp.TextDocumentSyncKind.Incremental)
    session = Session(server)
    features = [
        (lsp.INITIALIZED, session.initialized, None),
        (lsp.TEXT_DOCUMENT_DID_OPEN, session.did_open, None),
        (lsp.TEXT_DOCUMENT_DID_CHANGE, session.did_change, None),
        (lsp.TEXT_DOCUMENT_DID_SAVE, session.did_save, None),
        (lsp.TEXT_DOCUMENT_DID_CLOSE, session.did_close, None),
        (lsp.WORKSPACE_DID_CHANGE_WATCHED_FILES, session.did_change_watched, None),
        (lsp.TEXT_DOCUMENT_HOVER, session.hover, None),
        (lsp.TEXT_DOCUMENT_CODE_ACTION, session.code_action,
         lsp.CodeActionOptions(code_action_kinds=[lsp.CodeActionKind.QuickFix, FIX_ALL], resolve_provider=True)),
        (lsp.CODE_ACTION_RESOLVE, session.resolve_code_action, None),
    ]
    for name, method, options in features:
        server.feature(name, options)(_handler(method))
    return server


def _handler(method):
    """A plain function calling `method(params)`: pygls tags its handlers with attributes, which
    a bound method cannot carry."""
    if asyncio.iscoroutinefunction(method):
        async def handle(params):
            return await method(params)
    else:
        def handle(params):
            return method(params)
    return handle


class Session:
    """One client's session: its documents' last checks, the pending checks, the index."""

    def __init__(self, server: LanguageServer):
        self.server = server
        # One worker: checks run in order, and the index is only ever touched from this thread.
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="modelint-check")
        self.index = WorkspaceIndex()
        self.docs = RuleDocs()
        self.results: Dict[str, Checked] = {}  # uri -> last check published
        self.pending: Dict[str, asyncio.Task] = {}
        self.scanned = False

    # --- documents ----------------------------------------------------------------------------
    def doc_path(self, uri: str) -> Optional[Path]:
        """The file a document stands for: its path, or for an unsaved (untitled) buffer a name in
        the first workspace folder, so that folder's configuration applies."""
        if uri.startswith("file:"):
            p = to_fs_path(uri)
            return Path(p) if p else None
        if uri.startswith("untitled:"):
            folders = self.workspace_folders()
            name = uri.split(":", 1)[1].rsplit("/", 1)[-1] or "untitled"
            return (folders[0] if folders else Path.cwd()) / (name if name.endswith(".py") else name + ".py")
        return None  # notebook cells and other schemes: not a file modelint would check

    def workspace_folders(self) -> List[Path]:
        ws = self.server.workspace
        out = [Path(p) for f in ws.folders.values() if (p := to_fs_path(f.uri))]
        return out or ([Path(ws.root_path)] if ws.root_path else [])

    def wanted(self, doc) -> bool:
        return doc.language_id in (None, "python") and not doc.uri.endswith(".ipynb") and self.doc_path(doc.uri) is not None

    # --- checking (run_check and scan_once run in the worker thread) ----------------------------
    def scan_once(self) -> None:
        if not self.scanned:
            self.scanned = True
            start = time.perf_counter()
            n = self.index.scan(self.workspace_folders())
            log.info("indexed %d files in %.3f s", n, time.perf_counter() - start)

    def warm_up(self) -> None:
        """Import LibCST and the rules and index the workspace before the first document arrives
        (each paid once: ~0.5 s and ~0.15 s for timm's 304 files here)."""
        from modelint.catalog import catalog

        catalog()
        self.scan_once()

    def run_check(self, uri: str, text: str, version: Optional[int]) -> Tuple[Checked, bool]:
        start = time.perf_counter()
        path = self.doc_path(uri)
        try:
            self.scan_once()
            changed = self.index.set_open(path, document_facts(text, path))
            checked = check_text(text, path, self.index.project(), version)
        except Exception as exc:  # a bug of ours: say so in the editor rather than go silent
            log.exception("checking %s failed", path)
            return Checked(version, text, [], f"modelint: internal error while checking this file: {exc!r}"), False
        log.info("checked %s v%s: %d findings in %.3f s", path, version, len(checked.findings),
                 time.perf_counter() - start)
        return checked, changed

    async def check_now(self, uri: str) -> Optional[Checked]:
        doc = self.server.workspace.get_text_document(uri)
        if not self.wanted(doc):
            return None
        loop = asyncio.get_running_loop()
        checked, facts_changed = await loop.run_in_executor(self.executor, self.run_check, uri, doc.source, doc.version)
        if facts_changed:  # this document's imports or classes changed: others may read them
            for other in list(self.results):
                if other != uri:
                    self.schedule(other, DEPENDENTS_DELAY)
        return checked

    async def check_later(self, uri: str, delay: float) -> None:
        await asyncio.sleep(delay)
        checked = await self.check_now(uri)
        if checked is None or uri not in self.server.workspace.text_documents:
            return
        if checked.version != self.server.workspace.get_text_document(uri).version:
            return  # the text changed meanwhile; its own check is scheduled
        self.results[uri] = checked
        self.publish(uri, checked)

    def schedule(self, uri: str, delay: float) -> None:
        """Check `uri` after `delay` seconds, replacing a check of it not yet done (cancelling
        the asyncio side also drops its job from the worker's queue if it has not started)."""
        task = self.pending.get(uri)
        if task is not None and not task.done():
            task.cancel()
        self.pending[uri] = asyncio.ensure_future(self.check_later(uri, delay))

    async def current(self, uri: str) -> Optional[Checked]:
        """The check of the document's current version (checking it now if the last is stale)."""
        doc = self.server.workspace.get_text_document(uri)
        checked = self.results.get(uri)
        if checked is not None and checked.version == doc.version:
            return checked
        checked = await self.check_now(uri)
        if checked is not None:
            self.results[uri] = checked
            self.publish(uri, checked)
        return checked

    # --- conversion ---------------------------------------------------------------------------
    def client_range(self, lines: List[str], start: Tuple[int, int], end: Tuple[int, int]) -> lsp.Range:
        """0-based (line, code point) positions -> the client's position encoding."""
        return self.server.workspace.position_codec.range_to_client_units(
            lines, ServerTextRange(ServerTextPosition(*start), ServerTextPosition(*end)))

    def finding_range(self, lines: List[str], f: Finding) -> lsp.Range:
        start = (max(f.line - 1, 0), max(f.column - 1, 0))
        if f.end_line <= 0 or (f.end_line, f.end_column) <= (f.line, f.column):  # no extent: to the end of the line
            text = lines[start[0]].rstrip("\r\n") if start[0] < len(lines) else ""
            return self.client_range(lines, start, (start[0], max(len(text), start[1])))
        return self.client_range(lines, start, (f.end_line - 1, max(f.end_column - 1, 0)))

    def diagnostic(self, f: Finding, lines: List[str]) -> lsp.Diagnostic:
        href = self.docs.uri(f.code)
        return lsp.Diagnostic(
            range=self.finding_range(lines, f),
            message=f.message,
            severity=SEVERITY.get(f.level, lsp.DiagnosticSeverity.Error),
            code=f.code,
            code_description=lsp.CodeDescription(href=href) if href else None,
            source="modelint",
            data={"name": f.name, "fix": f.fix.applicability if f.fix else None},
        )

    def publish(self, uri: str, checked: Checked) -> None:
        lines = checked.text.splitlines(keepends=True)
        if checked.error:
            diags = [lsp.Diagnostic(range=lsp.Range(lsp.Position(0, 0), lsp.Position(0, 0)), message=checked.error,
                                    severity=lsp.DiagnosticSeverity.Error, source="modelint")]
        else:
            diags = [self.diagnostic(f, lines) for f in checked.findings]
        self.server.text_document_publish_diagnostics(
            lsp.PublishDiagnosticsParams(uri=uri, version=checked.version, diagnostics=diags))

    def text_edit(self, lines: List[str], e: Edit) -> lsp.TextEdit:
        return lsp.TextEdit(range=self.client_range(lines, (e.line - 1, e.column - 1), (e.end_line - 1, e.end_column - 1)),
                            new_text=e.content)

    def workspace_edit(self, uri: str, version: Optional[int], edits: List[lsp.TextEdit]) -> lsp.WorkspaceEdit:
        caps = self.server.client_capabilities.workspace
        if caps and caps.workspace_edit and caps.workspace_edit.document_changes:
            # Versioned: the client refuses the edit if the text changed since this check.
            return lsp.WorkspaceEdit(document_changes=[lsp.TextDocumentEdit(
                text_document=lsp.OptionalVersionedTextDocumentIdentifier(uri=uri, version=version), edits=edits)])
        return lsp.WorkspaceEdit(changes={uri: edits})

    # --- notifications ------------------------------------------------------------------------
    async def initialized(self, params: lsp.InitializedParams) -> None:
        asyncio.get_running_loop().run_in_executor(self.executor, self.warm_up)
        caps = self.server.client_capabilities.workspace
        if caps and caps.did_change_watched_files and caps.did_change_watched_files.dynamic_registration:
            await self.server.client_register_capability_async(lsp.RegistrationParams(registrations=[lsp.Registration(
                id="modelint-watch", method=lsp.WORKSPACE_DID_CHANGE_WATCHED_FILES,
                register_options=lsp.DidChangeWatchedFilesRegistrationOptions(watchers=[
                    lsp.FileSystemWatcher(glob_pattern="**/*.py"),
                    lsp.FileSystemWatcher(glob_pattern="**/pyproject.toml")]))]))

    def did_open(self, params: lsp.DidOpenTextDocumentParams) -> None:
        self.schedule(params.text_document.uri, 0.0)

    def did_change(self, params: lsp.DidChangeTextDocumentParams) -> None:
        self.schedule(params.text_document.uri, CHANGE_DELAY)

    def did_save(self, params: lsp.DidSaveTextDocumentParams) -> None:
        uri = params.text_document.uri
        path = self.doc_path(uri)
        if path is not None:
            self.executor.submit(self.index.refresh, path)
        self.schedule(uri, 0.0)

    def did_close(self, params: lsp.DidCloseTextDocumentParams) -> None:
        uri = params.text_document.uri
        task = self.pending.pop(uri, None)
        if task is not None:
            task.cancel()
        self.results.pop(uri, None)
        path = self.doc_path(uri)
        if path is not None:
            self.executor.submit(self.index.set_open, path, None)  # the file on disk counts again
        self.server.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri=uri, diagnostics=[]))

    def did_change_watched(self, params: lsp.DidChangeWatchedFilesParams) -> None:
        for change in params.changes:
            path = to_fs_path(change.uri)
            if path and path.endswith(".py"):
                forget = change.type == lsp.FileChangeType.Deleted
                self.executor.submit(self.index.forget if forget else self.index.refresh, Path(path))
        for uri in list(self.results):  # settings or another file's classes may have changed
            self.schedule(uri, DEPENDENTS_DELAY)

    # --- requests -----------------------------------------------------------------------------
    async def hover(self, params: lsp.HoverParams) -> Optional[lsp.Hover]:
        checked = await self.current(params.text_document.uri)
        if checked is None or checked.error:
            return None
        lines = checked.text.splitlines(keepends=True)
        parts = [f"{f.message}\n\n{self.docs.markdown(f.code)}" for f in checked.findings
                 if _contains(self.finding_range(lines, f), params.position)]
        if not parts:
            return None
        return lsp.Hover(contents=lsp.MarkupContent(kind=lsp.MarkupKind.Markdown, value="\n\n---\n\n".join(parts)))

    async def code_action(self, params: lsp.CodeActionParams) -> Optional[List[lsp.CodeAction]]:
        only = [str(k) for k in params.context.only or ()]
        want_quick = not only or any(k.startswith(lsp.CodeActionKind.QuickFix) for k in only)
        want_all = not only or any(FIX_ALL.startswith(k) for k in only)  # "source", "source.fixAll", ...
        if not (want_quick or want_all):
            return None
        uri = params.text_document.uri
        checked = await self.current(uri)
        if checked is None or checked.error:
            return None
        lines = checked.text.splitlines(keepends=True)
        fixes: List[lsp.CodeAction] = []
        suppressions: List[lsp.CodeAction] = []
        for f in checked.findings if want_quick else ():
            if not _overlaps(self.finding_range(lines, f), params.range):
                continue
            diag = self.diagnostic(f, lines)
            if f.fix is not None and f.fix.edits:
                fixes.append(self.fix_action(uri, checked, f, diag, lines))
            if f.code not in NOT_SUPPRESSIBLE:
                action = self.suppress_action(uri, checked, f, diag, lines)
                if action is not None:
                    suppressions.append(action)
        fix_all = await self.fix_all_action(uri, checked, explicit=bool(only)) if want_all else None
        return fixes + suppressions + ([fix_all] if fix_all else []) or None

    async def fix_all_action(self, uri: str, checked: Checked, explicit: bool) -> Optional[lsp.CodeAction]:
        """Every safe fix at once (the fix loop of `modelint check --fix`). Its edit costs a few
        checks, so it is computed on `codeAction/resolve` when the client supports that, else only
        when asked for by kind (on save), never for every cursor move."""
        if not any(f.fix is not None and f.fix.applicability == "safe" for f in checked.findings):
            return None
        action = lsp.CodeAction(title="Fix all safe modelint findings", kind=FIX_ALL,
                                data={"uri": uri, "version": checked.version})
        if self.resolves_edits():
            return action
        if not explicit:
            return None
        action.edit = await self.fix_all_edit(uri, checked)
        return action if action.edit else None

    def resolves_edits(self) -> bool:
        caps = self.server.client_capabilities.text_document
        support = caps and caps.code_action and caps.code_action.resolve_support
        return bool(support and "edit" in support.properties)

    async def resolve_code_action(self, action: lsp.CodeAction) -> lsp.CodeAction:
        data = action.data if isinstance(action.data, dict) else {}
        uri = data.get("uri")
        if action.kind != FIX_ALL or uri not in self.server.workspace.text_documents:
            return action
        checked = await self.current(uri)
        if checked is not None and not checked.error and checked.version == data.get("version"):
            action.edit = await self.fix_all_edit(uri, checked)
        return action  # without an edit when the text changed since the action was offered

    async def fix_all_edit(self, uri: str, checked: Checked) -> Optional[lsp.WorkspaceEdit]:
        loop = asyncio.get_running_loop()
        fixed = await loop.run_in_executor(self.executor, self.run_fix, uri, checked.text)
        change = replacement(checked.text, fixed) if fixed is not None else None
        if change is None:
            return None
        start, end, new = change
        lines = checked.text.splitlines(keepends=True)
        edit = lsp.TextEdit(range=self.client_range(lines, start, end), new_text=new)
        return self.workspace_edit(uri, checked.version, [edit])

    def run_fix(self, uri: str, text: str) -> Optional[str]:
        """The fixed text (worker thread); None when the settings are broken or the fix fails."""
        path = self.doc_path(uri)
        try:
            return fix_document(text, path, document_settings(path), index=self.index.project()).text
        except DocumentError:
            return None
        except Exception:  # a bug of ours: no fix-all rather than a failed request
            log.exception("fixing %s failed", path)
            return None

    def fix_action(self, uri: str, checked: Checked, f: Finding, diag: lsp.Diagnostic, lines: List[str]) -> lsp.CodeAction:
        """The finding's fix: safe ones are the preferred quick fix; unsafe ones say so and are not
        preferred (an editor applies a preferred fix on a single keystroke)."""
        safe = f.fix.applicability == "safe"
        title = f"{f.fix.title} ({f.code})" if safe else f"{f.fix.title} ({f.code}, unsafe fix: review the change)"
        edits = [self.text_edit(lines, e) for e in f.fix.edits]
        return lsp.CodeAction(title=title, kind=lsp.CodeActionKind.QuickFix, diagnostics=[diag], is_preferred=safe,
                              edit=self.workspace_edit(uri, checked.version, edits))

    def suppress_action(self, uri: str, checked: Checked, f: Finding, diag: lsp.Diagnostic,
                        lines: List[str]) -> Optional[lsp.CodeAction]:
        where = suppression_edit(checked.text, f.line, f.code)
        if where is None:
            return None
        line, start, end, new = where
        edit = lsp.TextEdit(range=self.client_range(lines, (line - 1, start), (line - 1, end)), new_text=new)
        return lsp.CodeAction(title=f"Suppress {f.code} on this line", kind=lsp.CodeActionKind.QuickFix,
                              diagnostics=[diag], is_preferred=False,
                              edit=self.workspace_edit(uri, checked.version, [edit]))


def _contains(rng: lsp.Range, pos: lsp.Position) -> bool:
    return (rng.start.line, rng.start.character) <= (pos.line, pos.character) <= (rng.end.line, rng.end.character)


def _overlaps(a: lsp.Range, b: lsp.Range) -> bool:
    return ((a.start.line, a.start.character) <= (b.end.line, b.end.character)
            and (b.start.line, b.start.character) <= (a.end.line, a.end.character))

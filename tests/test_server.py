"""The language server (`modelint server`) over a real stdio LSP session, and the in-memory
document checks it and `--stdin-filename` share (`modelint.documents`)."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence

import pytest

from modelint.analysis.index import ProjectIndex, facts_from_source
from modelint.documents import DocumentError, check_document, check_stdin, document_settings
from modelint.server.workspace import WorkspaceIndex, suppression_edit

REPO = Path(__file__).resolve().parents[1]
# Generous: the suite shares two cores with other work; a healthy server answers in well under 1 s.
TIMEOUT = 60.0

BASE = """\
from torch import nn


class Encoder(nn.Module):
    pass
"""

# The base class is in another file: only the workspace index tells that Model is an nn.Module.
BUGGY = """\
import torch.nn.functional as F

from .base import Encoder


class Model(Encoder):
    def forward(self, x):
        return F.dropout(x, 0.5)
"""

FIXED = BUGGY.replace("F.dropout(x, 0.5)", "F.dropout(x, 0.5, training=self.training)")


def make_project(root: Path, on_disk: str) -> Path:
    pkg = root / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "base.py").write_text(BASE)
    (pkg / "model.py").write_text(on_disk)
    (root / "pyproject.toml").write_text('[tool.modelint]\nper-file-ignores = { "pkg/ignored*.py" = ["MDL1"] }\n')
    return pkg / "model.py"


# --------------------------------------------------------------------------------------------
# A minimal LSP client: Content-Length framed JSON-RPC over the server's stdin/stdout


class Client:
    def __init__(self, cwd: Path, args: Sequence[str] = ()):
        env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "import sys; from modelint.server import main; sys.exit(main())", *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd, env=env)
        self.messages: "queue.Queue[Optional[dict]]" = queue.Queue()
        self.notifications: List[dict] = []
        self._next_id = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        out = self.proc.stdout
        while True:
            headers = {}
            while True:
                line = out.readline()
                if not line:
                    self.messages.put(None)
                    return
                line = line.strip()
                if not line:
                    break
                key, _, value = line.decode("ascii").partition(":")
                headers[key.strip().lower()] = value.strip()
            self.messages.put(json.loads(out.read(int(headers["content-length"]))))

    def send(self, message: dict) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode("utf-8")
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()

    def notify(self, method: str, params: Any) -> None:
        self.send({"method": method, "params": params})

    def _next(self, deadline: float) -> dict:
        try:
            message = self.messages.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError("timed out waiting for the server") from None
        if message is None:
            raise AssertionError(f"server exited: {self.proc.stderr.read().decode(errors='replace')[-2000:]}")
        if "method" in message and "id" in message:  # a request from the server: accept it
            self.send({"id": message["id"], "result": None})
        elif "method" in message:
            self.notifications.append(message)
        return message

    def request(self, method: str, params: Any) -> Any:
        self._next_id += 1
        rid = self._next_id
        self.send({"id": rid, "method": method, "params": params})
        deadline = time.monotonic() + TIMEOUT
        while True:
            message = self._next(deadline)
            if message.get("id") == rid and "method" not in message:
                assert "error" not in message, message["error"]
                return message["result"]

    def wait_for(self, method: str, accept: Callable[[dict], bool]) -> dict:
        """The first notification `method` (already received or arriving) whose params `accept`."""
        deadline = time.monotonic() + TIMEOUT
        seen = 0
        while True:
            for message in self.notifications[seen:]:
                if message["method"] == method and accept(message["params"]):
                    self.notifications.remove(message)
                    return message["params"]
            seen = len(self.notifications)
            self._next(deadline)

    def close(self) -> int:
        try:
            self.request("shutdown", None)
            self.notify("exit", None)
            return self.proc.wait(timeout=TIMEOUT)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()


def apply_edits(text: str, edits: List[dict]) -> str:
    """Apply LSP TextEdits (positions in UTF-16 units; the texts here are ASCII)."""
    lines = text.splitlines(keepends=True)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))

    def offset(pos: dict) -> int:
        return starts[min(pos["line"], len(lines))] + pos["character"]

    for e in sorted(edits, key=lambda e: offset(e["range"]["start"]), reverse=True):
        text = text[: offset(e["range"]["start"])] + e["newText"] + text[offset(e["range"]["end"]):]
    return text


def edits_of(action: dict, uri: str) -> List[dict]:
    edit = action["edit"]
    if "documentChanges" in edit:
        (change,) = edit["documentChanges"]
        assert change["textDocument"]["uri"] == uri
        return change["edits"]
    return edit["changes"][uri]


CAPABILITIES = {
    "workspace": {"workspaceEdit": {"documentChanges": True}},
    "textDocument": {"publishDiagnostics": {"versionSupport": True},
                     "codeAction": {"resolveSupport": {"properties": ["edit"]}}},
}


def start(root: Path, capabilities: dict) -> Client:
    client = Client(cwd=REPO)  # not the project: the configuration must come from the document's folder
    result = client.request("initialize", {
        "processId": os.getpid(),
        "rootUri": root.as_uri(),
        "workspaceFolders": [{"uri": root.as_uri(), "name": "ws"}],
        "capabilities": capabilities,
    })
    caps = result["capabilities"]
    assert caps["codeActionProvider"]["resolveProvider"] and caps["hoverProvider"]
    client.notify("initialized", {})
    return client


@pytest.fixture
def session(tmp_path):
    pytest.importorskip("pygls")
    path = make_project(tmp_path, on_disk=FIXED)  # the disk file is clean: diagnostics must come from the buffer
    client = start(tmp_path, CAPABILITIES)
    try:
        yield client, path
    finally:
        if client.proc.poll() is None:
            client.proc.kill()
            client.proc.wait()


def open_doc(client: Client, path: Path, text: str) -> str:
    uri = path.as_uri()
    client.notify("textDocument/didOpen",
                  {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": text}})
    return uri


def diagnostics(client: Client, uri: str, version: int) -> List[dict]:
    return client.wait_for("textDocument/publishDiagnostics",
                           lambda p: p["uri"] == uri and p.get("version") == version)["diagnostics"]


def test_session_diagnose_fix_and_clear(session):
    client, path = session
    uri = open_doc(client, path, BUGGY)
    (diag,) = diagnostics(client, uri, 1)
    assert diag["code"] == "MDL101" and diag["source"] == "modelint"
    assert diag["severity"] == 1  # MDL101 is an error
    assert diag["range"]["start"] == {"line": 7, "character": 15}
    assert "training=" in diag["message"]
    docs_page = Path(diag["codeDescription"]["href"].replace("file://", ""))
    assert "functional-dropout-ignores-mode" in docs_page.read_text()

    hover = client.request("textDocument/hover", {"textDocument": {"uri": uri}, "position": {"line": 7, "character": 20}})
    assert "MDL101" in hover["contents"]["value"] and "Use instead" in hover["contents"]["value"]

    actions = client.request("textDocument/codeAction", {
        "textDocument": {"uri": uri}, "range": diag["range"], "context": {"diagnostics": [diag]}})
    titles = [a["title"] for a in actions]
    assert "Suppress MDL101 on this line" in titles
    (fix,) = [a for a in actions if a.get("isPreferred")]
    assert fix["kind"] == "quickfix" and "unsafe" not in fix["title"]
    assert fix["edit"]["documentChanges"][0]["textDocument"]["version"] == 1
    fixed = apply_edits(BUGGY, edits_of(fix, uri))
    assert fixed == FIXED

    client.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": 2},
                                             "contentChanges": [{"text": fixed}]})
    assert diagnostics(client, uri, 2) == []
    client.notify("textDocument/didSave", {"textDocument": {"uri": uri}})
    assert diagnostics(client, uri, 2) == []  # checked again on save
    assert client.close() == 0


def test_session_other_buffers_change_the_cross_file_facts(session):
    client, path = session
    uri = open_doc(client, path, BUGGY)
    assert len(diagnostics(client, uri, 1)) == 1
    # In the editor, not on disk: Encoder stops being an nn.Module, so Model's dropout is not
    # module code any more and its diagnostic goes, without touching model.py.
    open_doc(client, path.with_name("base.py"), BASE.replace("(nn.Module)", "(object)"))
    assert diagnostics(client, uri, 1) == []
    assert client.close() == 0


def test_session_suppress_and_incremental_change(session):
    client, path = session
    uri = open_doc(client, path, BUGGY)
    (diag,) = diagnostics(client, uri, 1)
    actions = client.request("textDocument/codeAction", {
        "textDocument": {"uri": uri}, "range": diag["range"], "context": {"diagnostics": [diag]}})
    (suppress,) = [a for a in actions if a["title"].startswith("Suppress")]
    assert suppress["isPreferred"] is False
    (edit,) = edits_of(suppress, uri)
    # An incremental change: just the inserted comment.
    change = {"range": edit["range"], "text": edit["newText"]}
    client.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": 2}, "contentChanges": [change]})
    assert diagnostics(client, uri, 2) == []
    assert "# modelint: ignore[MDL101]" in apply_edits(BUGGY, [edit])

    # Back to the bug (a full change), then a second change before the first is answered: only the
    # last version's diagnostics matter.
    client.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": 3}, "contentChanges": [{"text": BUGGY}]})
    client.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": 4},
                                             "contentChanges": [{"text": BUGGY + "\n"}]})
    assert [d["code"] for d in diagnostics(client, uri, 4)] == ["MDL101"]
    client.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
    assert client.wait_for("textDocument/publishDiagnostics", lambda p: p["uri"] == uri)["diagnostics"] == []
    assert client.close() == 0


def test_session_unsafe_fix_is_marked_and_not_preferred(session):
    client, path = session
    # a literal training=True beside a call that passes the mode (MDL101 reports only that one by default)
    text = BUGGY.replace("F.dropout(x, 0.5)", "F.dropout(F.dropout(x, 0.1, training=self.training), 0.5, training=True)")
    uri = open_doc(client, path, text)
    (diag,) = diagnostics(client, uri, 1)
    actions = client.request("textDocument/codeAction", {
        "textDocument": {"uri": uri}, "range": diag["range"], "context": {"diagnostics": [diag]}})
    unsafe = [a for a in actions if "unsafe" in a["title"]]
    assert unsafe and not any(a.get("isPreferred") for a in unsafe)
    assert client.close() == 0


def test_session_positions_are_utf16(session):
    client, path = session
    # LSP counts UTF-16 code units by default: the emoji is one code point but two units.
    text = BUGGY.replace("        return F.dropout", '        s = "\U0001F600\u00e9"; return F.dropout')
    uri = open_doc(client, path, text)
    (diag,) = diagnostics(client, uri, 1)
    assert diag["range"]["start"] == {"line": 7, "character": 26}
    assert diag["range"]["end"] == {"line": 7, "character": 26 + len("F.dropout(x, 0.5)")}
    assert client.close() == 0


TWO_BUGS = BUGGY + """

class Other(Encoder):
    def forward(self, x):
        return F.dropout(x, 0.1)
"""


def fix_all_actions(client: Client, uri: str, only=("source.fixAll",)) -> List[dict]:
    everywhere = {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 0}}
    context = {"diagnostics": [], **({"only": list(only)} if only else {})}
    actions = client.request("textDocument/codeAction",
                             {"textDocument": {"uri": uri}, "range": everywhere, "context": context}) or []
    return [a for a in actions if a["kind"] == "source.fixAll.modelint"]


def test_session_fix_all_is_resolved_on_demand(session):
    client, path = session
    uri = open_doc(client, path, TWO_BUGS)
    assert len(diagnostics(client, uri, 1)) == 2
    (action,) = fix_all_actions(client, uri)
    assert "edit" not in action  # computed on resolve, not for every cursor move
    resolved = client.request("codeAction/resolve", action)
    fixed = apply_edits(TWO_BUGS, edits_of(resolved, uri))
    assert fixed == TWO_BUGS.replace("0.5)", "0.5, training=self.training)").replace(
        "0.1)", "0.1, training=self.training)")
    client.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": 2}, "contentChanges": [{"text": fixed}]})
    assert diagnostics(client, uri, 2) == []
    assert fix_all_actions(client, uri) == []  # nothing left to fix: not offered
    assert client.close() == 0


def test_session_fix_all_without_resolve_support(tmp_path):
    pytest.importorskip("pygls")
    path = make_project(tmp_path, on_disk=FIXED)
    client = start(tmp_path, {"textDocument": {"publishDiagnostics": {"versionSupport": True}}})
    try:
        uri = open_doc(client, path, TWO_BUGS)
        assert len(diagnostics(client, uri, 1)) == 2
        assert fix_all_actions(client, uri, only=None) == []  # the lightbulb does not pay for it
        (action,) = fix_all_actions(client, uri, only=["source.fixAll.modelint"])  # on save: computed at once
        assert apply_edits(TWO_BUGS, action["edit"]["changes"][uri]).count("training=self.training") == 2
        assert client.close() == 0
    finally:
        if client.proc.poll() is None:
            client.proc.kill()


def test_session_config_error_is_a_diagnostic(session):
    client, path = session
    (path.parent.parent / "pyproject.toml").write_text('[tool.modelint]\nselekt = ["MDL1"]\n')
    uri = open_doc(client, path, BUGGY)
    (diag,) = diagnostics(client, uri, 1)
    assert "unknown key tool.modelint.selekt" in diag["message"]
    assert client.close() == 0


def test_server_without_lsp_extra_says_which_extra(monkeypatch, capsys):
    from modelint import server

    monkeypatch.setitem(sys.modules, "pygls", None)  # `import pygls` now raises ImportError
    assert server.main([]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'modelint[lsp]'" in err


# --------------------------------------------------------------------------------------------
# In-memory documents (shared by the server and --stdin-filename)


def test_document_config_comes_from_the_documents_folder(tmp_path, monkeypatch):
    path = make_project(tmp_path, BUGGY)
    monkeypatch.chdir(REPO)  # a different pyproject.toml here
    settings = document_settings(path)
    assert settings.config_path == tmp_path / "pyproject.toml"
    ignored = path.with_name("ignored_model.py")  # per-file-ignores of that config apply to PATH
    index = ProjectIndex()
    index.add(facts_from_source(BASE.encode(), path.with_name("base.py")))
    assert [f.code for f in check_document(BUGGY, path, settings, index)] == ["MDL101"]
    assert check_document(BUGGY, ignored, settings, index) == []


def test_document_cross_file_base_needs_the_index(tmp_path):
    path = make_project(tmp_path, BUGGY)
    settings = document_settings(path)
    assert check_document(BUGGY, path, settings) == []  # alone, Encoder is unknown
    ws = WorkspaceIndex()
    assert ws.scan([tmp_path]) == 3
    (finding,) = check_document(BUGGY, path, settings, ws.project())
    assert finding.path == str(path) and finding.line == 8
    # `from . import base` then `base.Encoder` resolves too.
    other = BUGGY.replace("from .base import Encoder", "from . import base").replace("(Encoder)", "(base.Encoder)")
    assert [f.code for f in check_document(other, path, settings, ws.project())] == ["MDL101"]


def test_workspace_index_open_documents_override_the_disk(tmp_path):
    path = make_project(tmp_path, BUGGY)
    ws = WorkspaceIndex()
    ws.scan([tmp_path])
    base = path.with_name("base.py")
    renamed = facts_from_source(BASE.replace("Encoder", "Renamed").encode(), base)
    assert ws.set_open(base, renamed) is True  # facts changed: dependents must be re-checked
    assert ws.set_open(base, renamed) is False
    settings = document_settings(path)
    assert check_document(BUGGY, path, settings, ws.project()) == []
    ws.set_open(base, None)
    assert len(check_document(BUGGY, path, settings, ws.project())) == 1


def test_stdin_check_and_fix_keep_encoding_and_newlines(tmp_path):
    path = make_project(tmp_path, "")
    settings = document_settings(path)
    source = BUGGY.replace("from .base import Encoder", "from torch.nn import Module as Encoder")
    data = ("# -*- coding: latin-1 -*-\n# café\n" + source).replace("\n", "\r\n").encode("latin-1")
    result = check_stdin(data, "pkg/new_model.py", settings)
    assert [(f.path, f.line, f.code) for f in result.findings] == [("pkg/new_model.py", 10, "MDL101")]
    assert result.output is None
    fixed = check_stdin(data, "pkg/new_model.py", settings, fix="safe")
    assert fixed.findings == [] and fixed.applied == {"MDL101": 1}
    assert fixed.output == data.replace(b"F.dropout(x, 0.5)", b"F.dropout(x, 0.5, training=self.training)")
    # per-file-ignores: nothing is reported, and nothing is fixed either
    ignored = check_stdin(data, tmp_path / "pkg" / "ignored.py", settings, fix="safe")
    assert ignored.findings == [] and ignored.output == data


def test_stdin_fix_honours_module_bases_and_the_index(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.modelint]\nmodule-bases = ["mylib.Block"]\n')
    source = BUGGY.replace("from .base import Encoder", "from mylib import Block as Encoder")
    fixed = check_stdin(source.encode(), tmp_path / "m.py", document_settings(tmp_path / "m.py"), fix="safe")
    assert fixed.applied == {"MDL101": 1} and fixed.findings == []
    assert fixed.after == FIXED.replace("from .base import Encoder", "from mylib import Block as Encoder")
    # and through another file of the workspace (the server's index)
    (tmp_path / "ws").mkdir()
    path = make_project(tmp_path / "ws", BUGGY)
    ws = WorkspaceIndex()
    ws.scan([tmp_path / "ws"])
    from modelint.documents import fix_document

    done = fix_document(BUGGY, path, document_settings(path), index=ws.project())
    assert done.text == FIXED and done.applied == {"MDL101": 1}


def test_stdin_rejects_what_is_not_python_text(tmp_path):
    settings = document_settings(make_project(tmp_path, ""))
    with pytest.raises(DocumentError, match="NUL"):
        check_stdin(b"x = 1\x00", "a.py", settings)
    with pytest.raises(DocumentError, match="cannot decode"):
        check_stdin(b"x = '\xff'\n", "a.py", settings)
    with pytest.raises(DocumentError, match="notebooks"):
        check_stdin(b"{}", "a.ipynb", settings)


def test_stdin_parse_error_is_reported_under_path(tmp_path):
    settings = document_settings(make_project(tmp_path, ""))
    (finding,) = check_stdin(b"def f(:\n", "src/x.py", settings).findings
    assert finding.code == "MDL000" and finding.path == "src/x.py"


def test_document_bad_config_is_one_line(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.modelint]\nselect = ["XYZ9"]\n')
    with pytest.raises(DocumentError, match=r"pyproject.toml: tool.modelint.select: unknown rule code 'XYZ9'"):
        document_settings(tmp_path / "a.py")
    with pytest.raises(DocumentError, match="--ignore"):
        document_settings(tmp_path / "a.py", no_config=True, ignore=["NOPE1"])


# --------------------------------------------------------------------------------------------
# Where a suppression comment can go


@pytest.mark.parametrize("old, new", [
    ("a\nb\nc\n", "a\nB\nc\n"), ("a\nb", "a\nc"), ("a", "b"), ("", "x\n"), ("x\n", ""),
    ("a\nb\n", "a\nb\nc\n"), ("a\nb\nc", "a\nc"), ("a\r\nb\r\n", "a\r\nX\r\n"), ("a\na\n", "a\n"),
])
def test_replacement_turns_old_into_new(old, new):
    from modelint.server.workspace import replacement

    (sl, sc), (el, ec), text = replacement(old, new)
    starts = [0]
    for line in old.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    assert old[:starts[sl] + sc] + text + old[starts[el] + ec:] == new
    assert replacement(old, old) is None


@pytest.mark.parametrize("text, line, expected", [
    ("x = f(a)\n", 1, (1, 8, 8, "  # modelint: ignore[MDL101]")),
    ("x = f(a)   \n", 1, (1, 8, 11, "  # modelint: ignore[MDL101]")),
    ("x = f(a)  # modelint: ignore[MDL104]\n", 1, (1, 29, 35, "MDL104, MDL101")),
    ("x = f(a)  # note\n", 1, (1, 16, 16, "  # modelint: ignore[MDL101]")),
    ('x = f(a, """\nabc""")\n', 1, None),  # the line ends inside a string
    ("x = f(a) + \\\n    g(b)\n", 1, None),  # a comment after a backslash is a syntax error
    ("x = f(a,\n      b)\n", 1, (1, 8, 8, "  # modelint: ignore[MDL101]")),  # inside brackets a comment is fine
    ("x = f(a\n", 1, (1, 7, 7, "  # modelint: ignore[MDL101]")),  # mid-edit text that does not tokenize
])
def test_suppression_edit(text, line, expected):
    assert suppression_edit(text, line, "MDL101") == expected
    if expected is not None and not text.endswith("f(a\n"):
        line_no, start, end, new = expected
        lines = text.splitlines(keepends=True)
        lines[line_no - 1] = lines[line_no - 1][:start] + new + lines[line_no - 1][end:]
        from modelint.suppressions import comment_suppressions

        codes = comment_suppressions("".join(lines)).get(line_no, [])
        assert any("MDL101" in (c or ()) for _kind, c in codes)

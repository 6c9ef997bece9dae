"""The server's state that is not LSP: the workspace's cross-file index, checking a buffer with
its folder's settings, the rules' documentation pages, and where a suppression comment can go.
Nothing here imports pygls, so it is tested (and usable) without the `lsp` extra."""

from __future__ import annotations

import atexit
import json
import io
import logging
import re
import shutil
import tempfile
import tokenize
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from modelint.analysis.index import FileFacts, ProjectIndex, facts_from_source
from modelint.documents import DocumentError, DocumentSettings, check_document, document_settings
from modelint.findings import Finding

log = logging.getLogger("modelint.server")


# --------------------------------------------------------------------------------------------
# The cross-file index


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
    return (facts.modname, sorted(facts.aliases.items()), sorted((k, tuple(v)) for k, v in facts.classes.items()),
            sorted((k, tuple(v)) for k, v in facts.factories.items()), json.dumps(facts.functions, sort_keys=True),
            sorted(facts.fillins.items()), sorted(facts.passes.items()), tuple(facts.stars), tuple(facts.defs))


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
        try:
            if self._folder is None:
                self._folder = Path(tempfile.mkdtemp(prefix="modelint-rules-"))
                atexit.register(shutil.rmtree, self._folder, True)
            page = self._folder / f"{code}.md"
            if not page.exists():
                page.write_text(self.markdown(code) + "\n", encoding="utf-8")
        except OSError:
            return None
        return page.as_uri()


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
        existing = re.search(r"#\s*modelint\s*:\s*ignore\[(?P<codes>[^\]]*)\]", src[comment_at:], re.IGNORECASE)
        if existing:  # add the code to the comment already there
            start, end = comment_at + existing.start("codes"), comment_at + existing.end("codes")
            codes = [c for c in (s.strip() for s in existing.group("codes").split(",")) if c]
            return line, start, end, ", ".join(codes + [code])
    end = len(src.rstrip())
    return line, end, len(src), f"  # modelint: ignore[{code}]"


# --------------------------------------------------------------------------------------------
# Whole-document fixes as one edit


def replacement(old: str, new: str) -> Optional[Tuple[Tuple[int, int], Tuple[int, int], str]]:
    """One edit turning `old` into `new`: ((line, column), (line, column), text), 0-based, code
    points; only the lines between the common first and last lines are replaced, so the editor
    keeps the cursor and folds elsewhere. None when the texts are equal."""
    from modelint.fixes import common_ends, split_lines

    a, b = split_lines(old), split_lines(new)  # LSP lines end at \n, \r\n or \r only
    if a == b:
        return None
    p, q = common_ends(a, b)
    end_line = len(a) - q
    if end_line == len(a) and a and not a[-1].endswith(("\n", "\r")):
        end = (len(a) - 1, len(a[-1]))  # the text's end is on its last line, not after it
    else:
        end = (end_line, 0)
    return (p, 0), end, "".join(b[p:len(b) - q])

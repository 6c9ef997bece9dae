"""The fix-to-fixpoint loop, one for `.py` files and notebooks, and writing the result back.

A round: lint the current text, apply every applicable fix that does not overlap an earlier one
(`fixes.apply_fixes`), keep the result only if it still parses, lint again. Rounds stop when no fix
applies, nothing changes, the file gets a tool error (MDL000/MDL999: such a file is never changed)
or after `fixes.MAX_ROUNDS` rounds (normally two are enough; nested findings need one more each).

What differs between a `.py` file and a notebook is only the document: how fixes are applied to its
text, how its text becomes the bytes that are linted and written, and what "still parses" means.
A notebook's fixes are in cell coordinates (the engine maps them) and are applied to each code
cell's source on its own; only the edited cells' `source` changes, every other byte of the file
stays as it was. That is guaranteed by re-serialising only when a JSON layout is found that
reproduces the original file byte for byte (Jupyter's own: one-space indent, non-ASCII kept,
trailing newline; also 2/4-space and ASCII-escaped variants, and CRLF). A notebook in any other
layout is not fixed (the fix errors say so) rather than reformatted.
"""

from __future__ import annotations

import codecs
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple, Union

from modelint import fixes, notebook
from modelint.atomic import write_atomic
from modelint.codes import ALWAYS_SHOWN
from modelint.findings import Finding

Check = Callable[[bytes], List[Finding]]  # lint one version of the file (suppressions applied)
Visible = Callable[[List[Finding]], List[Finding]]  # what the report would show of those findings


@dataclass
class FixOutcome:
    findings: List[Finding]  # what remains after fixing (already filtered like the report)
    applied: Dict[str, int] = field(default_factory=dict)
    before: str = ""
    after: str = ""
    error: Optional[str] = None


class _TextDocument:
    """A Python module: fixes apply to its text, which `encode` turns into the file's bytes."""

    def __init__(self, label: str, encode: Callable[[str], Optional[bytes]],
                 parses: Optional[Callable[[str], bool]] = None):
        self.label = label
        self.encode = encode
        self._parses = parses or fixes.parses  # another language's parser (Rust) may be given

    def fixable(self, finding: Finding) -> bool:
        return True

    def apply(self, text: str, todo: List[Finding]) -> Tuple[str, List[Finding]]:
        by_fix = {id(f.fix): f for f in todo}
        new_text, used = fixes.apply_fixes(text, [f.fix for f in todo])
        return new_text, [by_fix[id(fx)] for fx in used]

    def parses(self, text: str) -> bool:
        return self._parses(text)


class _NotebookDocument:
    """A notebook: its text is the JSON, fixes apply to one code cell's source each."""

    def __init__(self, label: str, dump: Callable[[dict], str], bom: bool):
        self.label = label
        self.dump = dump
        self.bom = bom

    def encode(self, text: str) -> Optional[bytes]:
        try:
            return (codecs.BOM_UTF8 if self.bom else b"") + text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate
            return None

    def fixable(self, finding: Finding) -> bool:
        return finding.cell is not None

    def apply(self, text: str, todo: List[Finding]) -> Tuple[str, List[Finding]]:
        nb = json.loads(text)
        used: List[Finding] = []
        for number in sorted({f.cell for f in todo}):
            raw = nb["cells"][number - 1]
            src = raw.get("source", "")
            src = "".join(src) if isinstance(src, list) else str(src)
            padded = src if src.endswith("\n") or not src else src + "\n"
            mine = {id(f.fix): f for f in todo if f.cell == number}
            edited, applied = fixes.apply_fixes(padded, [f.fix for f in mine.values()])
            if padded is not src and edited.endswith("\n"):
                edited = edited[:-1]
            if applied and edited != src:
                raw["source"] = fixes.split_lines(edited) if isinstance(raw.get("source"), list) else edited
                used += [mine[id(fx)] for fx in applied]
        return (self.dump(nb) if used else text), used

    def parses(self, text: str) -> bool:
        try:
            loaded = notebook.load(text.encode("utf-8"))
        except notebook.NotebookError:
            return False
        return not loaded.broken and fixes.parses(loaded.source)


_Document = Union[_TextDocument, _NotebookDocument]


def _fix_loop(doc: _Document, text: str, check: Check, visible: Visible, unsafe: bool) -> FixOutcome:
    """Apply fixes to `text` until none applies (at most MAX_ROUNDS rounds); pure, no I/O.
    Suppressed findings never get here (`check` drops them); `visible` drops what the report would
    not show (unselected codes, per-file ignores), so such findings are never fixed."""
    data = doc.encode(text)
    if data is None:
        return FixOutcome([], before=text, after=text, error=f"{doc.label}: not fixed: cannot encode")
    applied: Dict[str, int] = {}
    found = visible(check(data))
    error = None
    current = text
    for _ in range(fixes.MAX_ROUNDS):
        if any(f.code in ALWAYS_SHOWN for f in found):
            break
        todo = [f for f in found if doc.fixable(f) and fixes.applicable(f.fix, unsafe)]
        if not todo:
            break
        new_text, used = doc.apply(current, todo)
        if not used or new_text == current:
            break
        if not doc.parses(new_text):
            used, new_text, error = _keep_parsing(doc, current, used)
            if not used:
                break
        new_data = doc.encode(new_text)
        if new_data is None:
            error = f"{doc.label}: fixes not applied: the fixed text cannot be encoded in the file's encoding"
            break
        for f in used:
            applied[f.code] = applied.get(f.code, 0) + 1
        current = new_text
        found = visible(check(new_data))
    return FixOutcome(found, applied, text, current, error)


def _keep_parsing(doc: _Document, text: str, used: List[Finding]) -> Tuple[List[Finding], str, str]:
    """Of fixes that together break the file, the ones that do not (tried one by one, in order),
    the text with those applied, and the error naming the codes whose fixes were dropped."""
    good: List[Finding] = []
    for f in used:
        candidate, ok = doc.apply(text, good + [f])
        if len(ok) == len(good) + 1 and doc.parses(candidate):
            good.append(f)
    kept = [g.fix for g in good]
    broken = sorted({f.code for f in used if f.fix not in kept})
    error = f"{doc.label}: fix for {', '.join(broken)} not applied: the fixed file would not parse"
    return good, (doc.apply(text, good)[0] if good else text), error


def fix_text(text: str, encode: Callable[[str], Optional[bytes]], check: Check, visible: Visible, unsafe: bool,
             label: str = "<source>", parses: Optional[Callable[[str], bool]] = None) -> FixOutcome:
    """The fix loop on a module's text. `encode` turns text into the bytes `check` lints (None: not
    representable in the file's encoding). A file with a parse error (MDL000) or a crashed rule
    (MDL999) is never changed."""
    return _fix_loop(_TextDocument(label, encode, parses), text, check, visible, unsafe)


def fix_path(path: str, findings: List[Finding], check: Check, visible: Visible, unsafe: bool,
             write: bool) -> FixOutcome:
    """The fix loop on a `.py` file or a notebook, then (if `write`) an atomic write keeping
    encoding, BOM, newlines and permissions. `findings` (what the report has so far) is returned
    when the file cannot be read or written."""
    opened = _open_notebook(path) if path.endswith(".ipynb") else _open_module(path)
    if isinstance(opened, str):
        return FixOutcome(findings, error=opened)
    doc, text = opened
    outcome = _fix_loop(doc, text, check, visible, unsafe)
    if outcome.after != outcome.before and write:
        try:
            write_atomic(Path(path), doc.encode(outcome.after))
        except OSError as exc:
            return FixOutcome(findings, before=outcome.before, after=outcome.before,
                              error=f"{path}: cannot write fixes: {exc.strerror or exc}")
    return outcome


def _open_module(path: str) -> Union[str, Tuple[_Document, str]]:
    try:
        decoded = fixes.decode(Path(path).read_bytes())
    except (OSError, SyntaxError, UnicodeDecodeError, LookupError) as exc:
        return f"{path}: not fixed: {exc}"
    return _TextDocument(path, lambda t: fixes.encode(decoded, t), parser_for(path)), decoded.text


def parser_for(path: str) -> Optional[Callable[[str], bool]]:
    """The parse check of a fixed file in another language (None: Python's)."""
    if path.endswith(".rs"):
        from modelint.rust.syntax import parses

        return parses
    return None


def _open_notebook(path: str) -> Union[str, Tuple[_Document, str]]:
    try:
        data = Path(path).read_bytes()
        text = data.decode("utf-8-sig")
        dump = _dumper(json.loads(text), text)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return f"{path}: not fixed: {exc}"
    if dump is None:
        return f"{path}: not fixed: its JSON layout cannot be reproduced exactly, and fixing would reformat the whole notebook"
    return _NotebookDocument(path, dump, data.startswith(codecs.BOM_UTF8)), text


def _dumper(nb: dict, text: str) -> Optional[Callable[[dict], str]]:
    """A `json.dumps` setting that reproduces `text` from `nb` byte for byte, or None."""
    crlf = "\r\n" in text
    final = text.endswith("\n")
    for indent in (1, 2, 4, None, "\t", 3):
        for ascii_only in (False, True):
            def dump(obj: dict, indent=indent, ascii_only=ascii_only) -> str:
                out = json.dumps(obj, indent=indent, ensure_ascii=ascii_only)
                if crlf:
                    out = out.replace("\n", "\r\n")
                return out + (("\r\n" if crlf else "\n") if final else "")
            if dump(nb) == text:
                return dump
    return None

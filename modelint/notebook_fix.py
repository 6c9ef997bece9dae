"""Writing fixes back into a notebook.

Fixes are computed on the joined code cells and mapped to cell coordinates by the engine; here
each code cell's source is edited on its own and the notebook JSON is written back. Only the
edited cells' `source` changes: outputs, metadata, cell ids and every other byte of the file stay
as they were. That is guaranteed by re-serialising only when a JSON layout is found that
reproduces the original file byte for byte (Jupyter's own: one-space indent, non-ASCII kept,
trailing newline; also 2/4-space and ASCII-escaped variants, and CRLF). A notebook in any other
layout is not fixed (the engine says so) rather than reformatted.
"""

from __future__ import annotations

import codecs
import copy
import json
from pathlib import Path
from typing import Callable, Dict, List, Optional

from modelint import fixes, notebook
from modelint.findings import Finding


def _dumper(nb: dict, text: str) -> Optional[Callable[[dict], str]]:
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


def _set_source(raw: dict, source: str) -> None:
    if isinstance(raw.get("source"), list):
        raw["source"] = fixes.split_lines(source)
    else:
        raw["source"] = source


def fix_notebook(path: str, findings: List[Finding], check: Callable[[bytes], List[Finding]],
                 visible: Callable[[List[Finding]], List[Finding]], unsafe: bool, write: bool):
    from modelint.engine import FixOutcome

    try:
        data = Path(path).read_bytes()
        bom = data.startswith(codecs.BOM_UTF8)
        text = data.decode("utf-8-sig")
        nb = json.loads(text)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return FixOutcome(findings, error=f"{path}: not fixed: {exc}")
    dump = _dumper(nb, text)
    if dump is None:
        return FixOutcome(findings, error=f"{path}: not fixed: its JSON layout cannot be reproduced exactly, and "
                                          f"fixing would reformat the whole notebook")
    current, current_text = nb, text
    applied: Dict[str, int] = {}
    error = None
    found = visible(check(data))
    for _ in range(fixes.MAX_ROUNDS):
        if any(f.code in ("MDL000", "MDL999") for f in found):
            break
        todo = [f for f in found if f.cell is not None and fixes.applicable(f.fix, unsafe)]
        if not todo:
            break
        new = copy.deepcopy(current)
        used_codes: List[str] = []
        for number in sorted({f.cell for f in todo}):
            raw = new["cells"][number - 1]
            src = raw.get("source", "")
            src = "".join(src) if isinstance(src, list) else str(src)
            padded = src if src.endswith("\n") or not src else src + "\n"
            cell_fixes = {id(f.fix): f.code for f in todo if f.cell == number}
            edited, used = fixes.apply_fixes(padded, [f.fix for f in todo if f.cell == number])
            if padded is not src and edited.endswith("\n"):
                edited = edited[:-1]
            if used and edited != src:
                _set_source(raw, edited)
                used_codes += [cell_fixes[id(fx)] for fx in used]
        if not used_codes:
            break
        new_text = dump(new)
        try:
            loaded = notebook.load(new_text.encode("utf-8"))
        except notebook.NotebookError:
            loaded = None
        if loaded is None or loaded.broken or not fixes.parses(loaded.source):
            error = f"{path}: fixes skipped: the fixed notebook's code would not parse"
            break
        for code in used_codes:
            applied[code] = applied.get(code, 0) + 1
        current, current_text = new, new_text
        found = visible(check(new_text.encode("utf-8")))
    if current_text != text and write:
        try:
            fixes.write_atomic(Path(path), (codecs.BOM_UTF8 if bom else b"") + current_text.encode("utf-8"))
        except OSError as exc:
            return FixOutcome(visible(check(data)), before=text, after=text,
                              error=f"{path}: cannot write fixes: {exc.strerror or exc}")
    return FixOutcome(found, applied, text, current_text, error)

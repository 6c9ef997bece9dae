"""Jupyter notebooks as Python modules.

The code cells are joined in notebook order into one module, so names imported in one cell resolve
in the next. IPython syntax is masked line by line so the rest parses: line magics (`%time x`),
shell escapes (`!pip install`, `files = !ls`), help (`obj?`) and automagic lines (`pip install
x`, `cd data`: a line magic written without `%`, which IPython runs when the line is not Python)
become `pass`-like placeholders of the same indentation (and the lines a `\\` at the end of such a
line continues, `!python train.py --data x \\` then `--epochs 3`, become blank); a cell magic (`%%bash`, `%%writefile`, ...) masks its whole cell, except
`%%time`, `%%timeit`, `%%capture` and friends whose body is Python. A cell that still does not parse
is reported once (MDL000 for that cell) and left out of the module.

Locations: a finding keeps the line and column inside its cell and gets `cell` = the cell's
position in the notebook (1-based, counting every cell, markdown included, as Jupyter's
interface orders them). For SARIF and GitHub annotations, which only know file lines, the
finding also carries `json_line`: the line of the notebook's JSON text that holds that source line
(when the notebook is written one source line per JSON line, as Jupyter does; else line 1).
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field, replace
from typing import List, Optional, Tuple

from modelint.codes import PARSE_ERROR
from modelint.findings import Finding, Fix, tool_finding

_PYTHON_CELL_MAGICS = {"time", "timeit", "capture", "prun", "debug", "pypy", "python", "python3"}
_LINE_MAGIC = re.compile(r"^(\s*)(?:[%!]|\w[\w.\[\], ]*\s*=\s*[%!])")
_HELP = re.compile(r"^(\s*)[\w.]+\?{1,2}\s*$")
# IPython's automagic: these line magics run without `%` (automagic is on by default). Only a line
# whose first word is one of them followed by an argument, and which is not Python by itself, is
# masked: `pip = 3`, `cd(x)` or `time.sleep(1)` stay code.
_AUTOMAGIC = re.compile(
    r"^(\s*)(?:pip|conda|mamba|cd|pwd|ls|env|load_ext|reload_ext|autoreload|matplotlib|run|time|"
    r"timeit|pushd|popd|dirs|bookmark|alias|unalias|who|whos|store|config|xmode|pdb|history)"
    r"(?:\s+\S.*)?$"
)


class NotebookError(Exception):
    """The file is not a notebook we can read (one line, for MDL000)."""


@dataclass
class Cell:
    number: int  # 1-based position among all cells
    source: str
    first_line: int = 0  # 1-based line of this cell's first line in the joined module
    json_lines: List[int] = field(default_factory=list)  # JSON text line of each source line


@dataclass
class Notebook:
    cells: List[Cell]
    source: str  # the joined, masked module
    broken: List[Tuple[Cell, int, int, str]]  # (cell, line, column, message) for cells that do not parse

    def locate(self, line: int) -> Optional[Tuple[Cell, int]]:
        """Module line -> (cell, line inside the cell)."""
        found = None
        for cell in self.cells:
            if cell.first_line and cell.first_line <= line:
                found = cell
        if found is None:
            return None
        return found, line - found.first_line + 1

    def broken_findings(self, path: str) -> List[Finding]:
        """MDL000 for each code cell that does not parse (it was left out of the module)."""
        return [tool_finding(path, PARSE_ERROR, f"cannot parse cell: {message}", line, column, cell=cell.number,
                             extra=(("json_line", json_line(cell, line)),))
                for cell, line, column, message in self.broken]

    def to_cells(self, findings: List[Finding]) -> List[Finding]:
        """Findings on the joined module -> the same findings in cell coordinates: each gets its
        cell and in-cell line, its JSON line, and its fix's edits in the cell's own coordinates."""
        out = []
        for f in findings:
            where = self.locate(f.line)
            if where is None:
                out.append(f)
                continue
            cell, line = where
            end = f.end_line - cell.first_line + 1 if f.end_line else 0
            out.append(replace(f, line=line, end_line=max(end, line) if end else 0, cell=cell.number,
                               extra=f.extra + (("json_line", json_line(cell, line)),),
                               fix=_cell_fix(f.fix, cell)))
        return out


def _cell_fix(fx: Optional[Fix], cell: Cell) -> Optional[Fix]:
    """A fix in joined-module coordinates -> the same fix in `cell`'s own coordinates, or None if
    any edit leaves the cell or touches a masked IPython line (fixes are applied cell by cell)."""
    if fx is None:
        return None
    shift = cell.first_line - 1
    n_lines = cell.source.count("\n") + 1
    masked = masked_lines(cell)
    edits = []
    for e in fx.edits:
        line, end_line = e.line - shift, e.end_line - shift
        if line < 1 or end_line > n_lines + (1 if e.end_column == 1 else 0) or any(
                n in masked for n in range(line, end_line + 1)):
            return None
        edits.append(replace(e, line=line, end_line=end_line))
    return replace(fx, edits=tuple(edits))


def _mask_line(line: str) -> str:
    m = _LINE_MAGIC.match(line) or _HELP.match(line) or _automagic(line)
    if m:
        return f"{m.group(1)}pass  # modelint: masked IPython syntax"
    return line


# `config = Config(` / `time: float = 0`: an assignment or annotation, never automagic, even when the
# statement goes on over the next lines (so the line alone does not parse)
_ASSIGNS = re.compile(r"^\s*\w+\s*(?:=(?!=)|[-+*/%&|^@]=|//=|\*\*=|>>=|<<=|:)")


def _automagic(line: str) -> Optional[re.Match]:
    m = _AUTOMAGIC.match(line)
    if m is None or _ASSIGNS.match(line):
        return None
    try:
        ast.parse(line.strip())
    except SyntaxError:
        return m
    return None  # valid Python (`ls`, `time.sleep(1)`, `pip = 3`): IPython runs it as code too


def _mask_cell(source: str) -> str:
    lines = source.split("\n")
    first = lines[0].strip()
    if first.startswith("%%"):
        magic = first[2:].split()[0] if len(first) > 2 else ""
        if magic not in _PYTHON_CELL_MAGICS:
            return "\n".join("" for _ in lines)  # not Python: keep only the line count
        lines[0] = ""
    out = []
    continued = False  # the masked line before ends with `\`: IPython's command goes on here
    for line in lines:
        if continued:
            out.append("")  # (blank: keeps the line count, parses anywhere)
        else:
            masked = _mask_line(line)
            out.append(masked)
            if masked == line:
                continue  # Python: a backslash at its end continues Python
        continued = line.rstrip().endswith("\\")
    return "\n".join(out)


def _json_source_lines(text: str, n_cells: int) -> Optional[List[List[int]]]:
    """For each cell, the JSON text line of each source line; None when the layout is unusual."""
    out: List[List[int]] = []
    decoder_scan = json.decoder.scanstring
    for m in re.finditer(r'"source"\s*:\s*(\[|")', text):
        pos = m.end(1)
        lines: List[int] = []
        if m.group(1) == '"':
            lines.append(text.count("\n", 0, pos) + 1)
        else:
            while True:
                while pos < len(text) and text[pos] in " \t\r\n,":
                    pos += 1
                if pos >= len(text) or text[pos] != '"':
                    break
                lines.append(text.count("\n", 0, pos) + 1)
                _, pos = decoder_scan(text, pos + 1)
        out.append(lines)
    return out if len(out) == n_cells else None


def load(data: bytes) -> Notebook:
    try:
        text = data.decode("utf-8-sig")
        nb = json.loads(text)
    except (UnicodeDecodeError, ValueError) as exc:
        raise NotebookError(f"not a valid notebook: {exc}") from None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise NotebookError("not a valid notebook: no list of cells")
    raw_cells = nb["cells"]
    json_lines = _json_source_lines(text, len(raw_cells))
    cells: List[Cell] = []
    broken = []
    parts: List[str] = []
    line = 1
    for i, raw in enumerate(raw_cells):
        if not isinstance(raw, dict) or raw.get("cell_type") != "code":
            continue
        src = raw.get("source", "")
        # nbformat: a string or a list of strings; anything else makes this cell (only) unreadable.
        text_ok = isinstance(src, str) or (isinstance(src, list) and all(isinstance(s, str) for s in src))
        src = "".join(src) if isinstance(src, list) and text_ok else src if text_ok else ""
        cell = Cell(number=i + 1, source=src)
        if json_lines is not None:
            cell.json_lines = json_lines[i]
        if not text_ok:
            broken.append((cell, 1, 1, "cell source is not text (nbformat: a string or a list of strings)"))
            continue
        masked = _mask_cell(src)
        try:
            ast.parse(masked)
        except SyntaxError as exc:
            broken.append((cell, exc.lineno or 1, exc.offset or 1, exc.msg))
            continue
        except (ValueError, RecursionError, MemoryError):
            broken.append((cell, 1, 1, "cannot parse cell"))
            continue
        cell.first_line = line
        cells.append(cell)
        body = masked if masked.endswith("\n") else masked + "\n"
        parts.append(body)
        line += body.count("\n")
    return Notebook(cells=cells, source="".join(parts), broken=broken)


def json_line(cell: Cell, line_in_cell: int) -> int:
    if 1 <= line_in_cell <= len(cell.json_lines):
        return cell.json_lines[line_in_cell - 1]
    return cell.json_lines[0] if cell.json_lines else 1


def masked_lines(cell: Cell) -> set:
    """1-based lines of `cell` that were masked (IPython syntax): fixes never touch them."""
    original = cell.source.split("\n")
    masked = _mask_cell(cell.source).split("\n")
    return {i + 1 for i, (a, b) in enumerate(zip(original, masked)) if a != b}

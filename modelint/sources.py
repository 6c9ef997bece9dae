"""Reading files: bytes, their declared encoding, size limits, notebooks as joined code cells; and
the parse guard: which text LibCST is not given (too deep, not Python) and the MDL000 saying why.

One home for "what text does modelint analyse for this path": the engine's index and check passes,
mode-branch coverage and the fixer all read through here, so a file they cannot read gets the same
one-line reason everywhere.
"""

from __future__ import annotations

import ast
import io
import itertools
import re
import tokenize
from dataclasses import replace
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from modelint import notebook
from modelint.codes import PARSE_ERROR
from modelint.findings import Finding, tool_finding

# Larger files (generated tables, vendored bundles) are reported, not parsed: LibCST needs about
# 500 times a file's size in memory (16 MB of source took 8 GB and 9 minutes here).
MAX_FILE_BYTES = 2_000_000


def read_source(path: Path) -> Tuple[Optional[bytes], Optional[str]]:
    """(bytes, None) or (None, one-line problem). Checks that the text decodes in its declared
    encoding, so LibCST never sees undecodable input. A notebook gives its joined code cells."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return None, f"cannot read file: {exc.strerror or exc}"
    if len(data) > MAX_FILE_BYTES:
        return None, (f"file is {len(data) / 1e6:.1f} MB, over the {MAX_FILE_BYTES / 1e6:.0f} MB limit for analysis "
                      f"(LibCST needs ~500x a file's size in memory); exclude it if it is generated")
    if path.suffix == ".ipynb":
        try:
            return notebook.load(data).source.encode("utf-8"), None
        except notebook.NotebookError as exc:
            return None, str(exc)
    if b"\x00" in data:
        return None, "file contains NUL bytes; not Python source"
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        data.decode(encoding)
    except (SyntaxError, UnicodeDecodeError, LookupError) as exc:
        reason = exc.reason if isinstance(exc, UnicodeDecodeError) else str(exc)
        return None, f"cannot decode file: {reason}"
    return data, None


def load_notebook(path: Path, data: Optional[bytes] = None) -> Tuple[Optional[notebook.Notebook], Optional[str]]:
    """(notebook, None) or (None, one-line problem); `data`: the file's bytes, read when None."""
    try:
        return notebook.load(path.read_bytes() if data is None else data), None
    except OSError as exc:
        return None, f"cannot read file: {exc.strerror or exc}"
    except notebook.NotebookError as exc:
        return None, str(exc)


def decoded_text(data: bytes, encoding: str) -> str:
    """The text of bytes LibCST parsed in `encoding` (what `module.code` would regenerate, without
    the code generation)."""
    text = data.decode(encoding, errors="replace")
    return text[1:] if text.startswith("\ufeff") else text


# --------------------------------------------------------------------------------------------
# The parse guard: text LibCST is not given, and the MDL000 that says why

# LibCST's parser takes time superlinear in the length of one operator chain (measured: a 1,000-term
# sum ~2 s, 4,000 terms ~90 s) and its code generation recurses once per nesting level, so one
# generated or hostile file could stall a whole run. Real code is shallow: the deepest syntax tree
# among the 5,004 files of the bench corpora is 54 levels. So a file with many operator tokens (the
# only way to build such a chain; about 3% of real files) is first parsed by CPython, which is ~8x
# cheaper, and is refused with MDL000 when its tree is deeper than MAX_NESTING.
MAX_NESTING = 200
_NESTING_CHECK_TOKENS = 1000
_OPERATOR_TOKENS = tuple(bytes([c]) for c in b"+-*/%|&^~@<>") + (b"not ", b" and ", b" or ", b" if ", b"lambda", b"await ")

_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"()[]{}")
_BRACKET_STEP = [0] * 256
for _c in b"([{":
    _BRACKET_STEP[_c] = 1
for _c in b")]}":
    _BRACKET_STEP[_c] = -1
_NESTING_CHECK_BRACKETS = 100


def _bracket_depth(data: bytes) -> int:
    """The deepest bracket nesting in the text, strings and comments included (a cheap upper
    estimate: CPython itself refuses more than 200 levels, LibCST accepts thousands, slowly)."""
    steps = data.translate(None, _NOT_BRACKETS)
    return max(itertools.accumulate(_BRACKET_STEP[c] for c in steps), default=0)


def _may_be_too_deep(data: bytes) -> bool:
    """Cheap text test: could this file hold a chain or nesting LibCST is slow on?"""
    return (sum(data.count(t) for t in _OPERATOR_TOKENS) >= _NESTING_CHECK_TOKENS
            or _bracket_depth(data) >= _NESTING_CHECK_BRACKETS)


def _cpython_parse(data: bytes, path: str) -> ast.Module:
    return compile(data, path, "exec", flags=ast.PyCF_ONLY_AST, dont_inherit=True)


def tabs_expanded(data: bytes, path: str) -> Optional[Tuple[bytes, Dict[int, int]]]:
    """`data` with every line's leading tabs expanded the way CPython reads them (to the next multiple
    of 8 columns), when the file indents with tabs and CPython parses it, and for each changed line
    (1-based) how many columns its indentation grew; None otherwise. LibCST's tokenizer rejects some
    indentation that mixes tabs and spaces and that CPython accepts (a block indented with a tab
    plus 4 spaces under an `if` indented with 4 spaces: set 12's ss-ood; LibCST issues #829 and
    #951), so the engine checks the expanded text instead of reporting MDL000, and moves columns
    back by the growth (`shift_columns`). Only leading whitespace changes, so line numbers hold."""
    if b"\t" not in data:
        return None
    lines = data.split(b"\n")
    grown: Dict[int, int] = {}
    for i, line in enumerate(lines):
        body = line.lstrip(b" \t")
        lead = line[: len(line) - len(body)]
        if b"\t" in lead:
            lines[i] = lead.expandtabs(8) + body
            grown[i + 1] = len(lines[i]) - len(line)
    if not grown:
        return None
    try:
        _cpython_parse(data, path)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    return b"\n".join(lines), grown


def shift_columns(finding: Finding, grown: Dict[int, int]) -> Finding:
    """A finding on text from `tabs_expanded`, in the file's own columns (and without its fix: a fix
    edits the expanded text, and would misplace the file's own tabs)."""
    def back(line: int, column: int) -> int:
        return max(1, column - grown.get(line, 0))

    return replace(finding, column=back(finding.line, finding.column),
                   end_column=back(finding.end_line, finding.end_column) if finding.end_column else 0, fix=None)


def nesting_error(path: str, data: bytes) -> Optional[Finding]:
    """MDL000 for a file nested too deeply for LibCST to parse in reasonable time, else None."""
    if not _may_be_too_deep(data):
        return None
    try:
        tree = _cpython_parse(data, path)
    except RecursionError:
        return parse_error(path, RecursionError())
    except SyntaxError as exc:
        # LibCST would reject it too (almost always), perhaps only after a long time.
        return parse_error(path, exc)
    except (ValueError, MemoryError):
        return None
    stack = [(tree, 1, 1, 0)]
    pop, push, children = stack.pop, stack.append, ast.iter_child_nodes
    while stack:
        node, depth, line, column = pop()
        line, column = getattr(node, "lineno", line), getattr(node, "col_offset", column)  # (operators have none)
        if depth > MAX_NESTING:
            return tool_finding(path, PARSE_ERROR, f"cannot parse: code is nested more than {MAX_NESTING} levels "
                                "deep (generated code?); the file was not checked", line, column + 1)
        for child in children(node):
            push((child, depth + 1, line, column))
    return None


def syntax_check(path: str, data: bytes) -> List[Finding]:
    """For files no rule needs to parse: CPython's parser (far cheaper than LibCST) still catches
    syntax errors, so a broken file is never silently passed over."""
    try:
        _cpython_parse(data, path)
    except SyntaxError as exc:
        # LibCST, the parser the rules use, has the last word, so that whether a file gets MDL000
        # does not depend on the pre-filter: a file only CPython rejects (a non-ASCII bytes
        # literal, `[*a for a in b]`) is left to the interpreter. Only broken files get here.
        if not _may_be_too_deep(data):  # (LibCST could take minutes on the others)
            import libcst as cst

            try:
                cst.parse_module(data)
                return []
            except Exception:
                pass
        return [parse_error(path, exc)]
    except (ValueError, RecursionError, MemoryError):
        pass
    return []


def parse_error(path: str, exc: Exception, data: bytes = b"") -> Finding:
    """MDL000 at the parser's position. CPython's own message is preferred when it also rejects the
    file (it is clearer: "expected ':'"); LibCST's is used when only LibCST's grammar does."""
    def finding(line: int, column: int, message: str) -> Finding:
        return tool_finding(path, PARSE_ERROR, f"cannot parse: {message}", max(line, 1), max(column, 1))

    if isinstance(exc, RecursionError):
        return finding(1, 1, "code is nested too deeply to analyse")
    if isinstance(exc, SyntaxError):  # CPython's own verdict on these bytes: no need to parse again
        return finding(exc.lineno or 1, exc.offset or 1, exc.msg)
    if data:
        try:
            _cpython_parse(data, path)
        except SyntaxError as syn:
            return finding(syn.lineno or 1, syn.offset or 1, syn.msg)
        except (ValueError, RecursionError, MemoryError):
            pass
    import libcst as cst

    if isinstance(exc, cst.ParserSyntaxError):
        message = re.sub(r"^(parser error: )?error at \d+:\d+: ", "", str(exc.message).strip().splitlines()[0])
        return finding(exc.raw_line, exc.raw_column + 1, message or "invalid syntax")
    return finding(1, 1, f"{type(exc).__name__}: {exc}")

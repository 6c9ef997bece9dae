"""Reading files: bytes, their declared encoding, size limits, notebooks as joined code cells.

One home for "what text does modelint analyse for this path": the engine's index and check passes,
mode-branch coverage and the fixer all read through here, so a file they cannot read gets the same
one-line reason everywhere.
"""

from __future__ import annotations

import io
import tokenize
from pathlib import Path
from typing import Optional, Tuple

from modelint import notebook

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

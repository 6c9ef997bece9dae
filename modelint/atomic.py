"""One way to replace a file's content: either the old or the new content is on disk, never half.

Used for fixed sources and notebooks, `--output-file` reports, the pytest plugin's report file, the
result cache and the catalogue snapshot. Imports nothing of modelint's.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path
from typing import Optional, Union

TEMP_SUFFIX = ".modelint-tmp"

_UMASK: Optional[int] = None


def _new_file_mode() -> int:
    """The mode `open(path, "w")` would give a new file (0o666 minus the umask). mkstemp's own
    0o600 would make a report or cache file unreadable to the rest of a CI job's users. The umask
    can only be read by setting it, so read it once per process."""
    global _UMASK
    if _UMASK is None:
        _UMASK = os.umask(0o022)
        os.umask(_UMASK)
    return 0o666 & ~_UMASK


def _refuse_read_only(real: Path, mode: int) -> None:
    if mode & 0o222 == 0 or not os.access(real, os.W_OK):
        raise PermissionError(errno.EACCES, f"file is read-only (mode {mode:04o}); not modified", str(real))


def write_atomic(path: Union[str, os.PathLike], data: Union[bytes, str], *, encoding: str = "utf-8",
                 fsync: bool = True) -> None:
    """Replace `path`'s content with `data` (bytes, or text encoded with `encoding`, newlines kept
    as given) through a temporary file in the same folder and a rename.

    - A symlink is written through (its target changes), not replaced by a regular file.
    - An existing file keeps its permission bits; a new one gets the umask's default.
    - An existing file the user may not write is refused (PermissionError): the rename only needs
      the folder's write permission, so without this check a 0444 file would be silently replaced.
      "May not write" is `os.access(W_OK)` false, or no write bit set at all (`mode & 0o222 == 0`):
      the second catches root, for whom `os.access` grants everything, the way `chmod a-w` is
      meant as "do not touch".
    - `fsync=False` skips flushing to disk before the rename: for the result cache, where an entry
      lost in a power cut is just a cache miss (an empty or torn entry fails to parse and is
      recomputed), and one fsync per entry would cost milliseconds per file on a cold run.
    Raises OSError (the old content is then untouched and no temporary file is left behind).
    """
    if isinstance(data, str):
        data = data.encode(encoding)
    real = Path(os.path.realpath(path))
    try:
        mode = stat.S_IMODE(real.stat().st_mode)
    except FileNotFoundError:
        mode = _new_file_mode()
    else:
        _refuse_read_only(real, mode)
    fd, tmp = tempfile.mkstemp(prefix=f".{real.name}.", suffix=TEMP_SUFFIX, dir=str(real.parent))
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            if fsync:
                out.flush()
                os.fsync(out.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, real)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise

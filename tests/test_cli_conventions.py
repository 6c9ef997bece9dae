"""CLI conventions a ruff user expects, and refusals a new user hits (issue 18)."""

from __future__ import annotations

import os
import stat

from tests.conftest import BUGGY, CLEAN


def test_fix_refuses_a_read_only_file_and_says_so(run, write):
    """The atomic rename only needs the folder's write permission, so a 0444 file used to be
    rewritten. Root (these tests) may write anything, so the refusal keys on the mode bits."""
    path = write("m.py", BUGGY)
    os.chmod(path, 0o444)
    r = run("check", "m.py", "--fix")
    assert path.read_text() == BUGGY and stat.S_IMODE(path.stat().st_mode) == 0o444
    assert "m.py: cannot write fixes: file is read-only (mode 0444); not modified" in r.err, r
    assert r.code == 1 and "MDL101" in r.out  # the finding is still reported, unfixed

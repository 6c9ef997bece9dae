"""modelint.atomic.write_atomic: the one atomic-write helper (fixes, reports, cache, snapshot)."""

import os
import stat

import pytest

from modelint.atomic import write_atomic


def test_text_and_bytes_are_written_as_given(tmp_path):
    path = tmp_path / "out.txt"
    write_atomic(path, "caf\u00e9\r\nline\n")
    assert path.read_bytes() == "caf\u00e9\r\nline\n".encode("utf-8")  # no newline translation
    write_atomic(str(path), b"\xef\xbb\xbfbytes\n")
    assert path.read_bytes() == b"\xef\xbb\xbfbytes\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_an_existing_file_keeps_its_permissions(tmp_path):
    path = tmp_path / "run.py"
    path.write_text("old\n")
    os.chmod(path, 0o751)
    write_atomic(path, "new\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o751 and path.read_text() == "new\n"


def test_a_new_file_gets_the_umask_default_not_mkstemps_0600(tmp_path):
    old = os.umask(0o027)
    try:
        import modelint.atomic as atomic

        atomic._UMASK = None  # re-read under this test's umask
        write_atomic(tmp_path / "report.json", "{}\n")
    finally:
        os.umask(old)
        atomic._UMASK = None
    assert stat.S_IMODE((tmp_path / "report.json").stat().st_mode) == 0o640


def test_a_symlink_is_written_through_not_replaced(tmp_path):
    target = tmp_path / "real.py"
    target.write_text("old\n")
    link = tmp_path / "link.py"
    link.symlink_to(target)
    write_atomic(link, "new\n")
    assert link.is_symlink() and target.read_text() == "new\n"


@pytest.mark.parametrize("data", ["new\n", b"new\n"], ids=["text", "bytes"])
def test_a_failed_write_keeps_the_old_content_and_leaves_no_temporary(tmp_path, monkeypatch, data):
    path = tmp_path / "m.py"
    path.write_text("old\n")

    def boom(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        write_atomic(path, data)
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["m.py"]


def test_a_missing_folder_is_an_oserror(tmp_path):
    with pytest.raises(OSError):
        write_atomic(tmp_path / "no" / "such" / "out.txt", "x")


def test_a_file_without_any_write_bit_is_refused_and_untouched(tmp_path):
    path = tmp_path / "frozen.py"
    path.write_text("old\n")
    os.chmod(path, 0o444)
    with pytest.raises(PermissionError, match=r"read-only \(mode 0444\)"):
        write_atomic(path, "new\n")  # refused even as root, whose os.access says yes
    assert path.read_text() == "old\n" and stat.S_IMODE(path.stat().st_mode) == 0o444
    assert [p.name for p in tmp_path.iterdir()] == ["frozen.py"]  # no temporary left


def test_a_file_the_user_cannot_write_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "theirs.py"
    path.write_text("old\n")
    os.chmod(path, 0o644)  # writable by its owner; the user here is someone else
    monkeypatch.setattr(os, "access", lambda p, m: not (m & os.W_OK))
    with pytest.raises(PermissionError, match="read-only"):
        write_atomic(path, "new\n")
    assert path.read_text() == "old\n"

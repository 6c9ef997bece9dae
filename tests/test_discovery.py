"""Which files are read: .gitignore (root, nested, info/exclude), default excludes, explicit paths."""

from __future__ import annotations

import os
from pathlib import Path

from modelint.discovery import discover
from tests.conftest import BUGGY


def rel(paths, base):
    return sorted(Path(os.path.relpath(p, base)).as_posix() for p in paths)


def test_gitignore_root_nested_and_info_exclude(write, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".git" / "info").mkdir(parents=True)
    (tmp_path / ".git" / "info" / "exclude").write_text("local_only.py\n")
    write(".gitignore", "generated/\n*.tmp.py\n")
    write("src/.gitignore", "scratch.py\n!keep.tmp.py\n")
    for name in ("src/model.py", "src/scratch.py", "src/a.tmp.py", "src/keep.tmp.py", "generated/x.py",
                 "local_only.py", "src/sub/deep.py"):
        write(name, BUGGY)
    found = rel(discover(["."]), tmp_path)
    assert found == ["src/keep.tmp.py", "src/model.py", "src/sub/deep.py"]
    # Starting below the repository root still honours the root's .gitignore.
    assert rel(discover(["src"]), tmp_path) == ["src/keep.tmp.py", "src/model.py", "src/sub/deep.py"]
    # Explicit files are always checked.
    assert rel(discover(["src/scratch.py"]), tmp_path) == ["src/scratch.py"]
    # ...and gitignore can be turned off.
    assert "generated/x.py" in rel(discover(["."], respect_gitignore=False), tmp_path)


def test_default_excludes_and_non_python(write, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in (".venv/lib/a.py", "venv/b.py", "build/c.py", "node_modules/d.py", "__pycache__/e.py",
                 ".tox/f.py", "pkg/g.py", "pkg/notes.txt", "pkg/h.pyi"):
        write(name, BUGGY)
    assert rel(discover(["."]), tmp_path) == ["pkg/g.py"]


def test_directory_named_like_a_file_and_links(write, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write("weird.py/inner.py", BUGGY)
    write("pkg/real.py", BUGGY)
    os.symlink(tmp_path / "missing.py", tmp_path / "pkg" / "broken.py")
    os.symlink(tmp_path / "pkg", tmp_path / "pkg" / "loop")
    found = rel(discover(["."]), tmp_path)
    assert found == ["pkg/real.py", "weird.py/inner.py"]


def test_output_is_sorted_and_deduplicated(write, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write("b.py", BUGGY)
    write("a.py", BUGGY)
    assert [str(p) for p in discover(["b.py", ".", "a.py", "./a.py"])] == ["a.py", "b.py"]


def test_directory_named_like_a_python_file(tmp_path):
    """A folder called `x.py` is walked as a folder (never read as a file), found or named."""
    (tmp_path / "x.py").mkdir()
    (tmp_path / "x.py" / "inner.py").write_text("x = 1\n")
    (tmp_path / "top.py").write_text("y = 2\n")
    assert rel(discover([str(tmp_path)]), tmp_path) == ["top.py", "x.py/inner.py"]
    assert rel(discover([str(tmp_path / "x.py")]), tmp_path) == ["x.py/inner.py"]

"""Content-hash result cache in `.modelint_cache/` (next to the project's pyproject.toml).

Two kinds of entries, each one small JSON file written atomically (temporary file + rename), so two
concurrent runs can share the cache: the worst case is both computing and writing the same entry.
- facts/<hash of path + file bytes>: the file's imports and class bases (the cross-file index);
- results/<hash of salt + index fingerprint + path + file bytes>: its findings.
The salt covers modelint's version and its own source files, the effective selection and rule
options, so changing a rule or the configuration never serves stale results. The index fingerprint
covers every checked file's imports and classes: a finding that depends on another file (is this
base class an nn.Module?) is recomputed when that file's imports or classes change.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, List, Optional

from modelint import __version__
from modelint.atomic import write_atomic
from modelint.codes import INTERNAL_ERROR
from modelint.analysis.index import FileFacts
from modelint.analysis.modemodel import IR_VERSION
from modelint.findings import Finding, finding_from_dict

CACHE_DIR_NAME = ".modelint_cache"
_LAYOUT = "v2"  # v2: facts carry the mode summaries of functions (analysis/modemodel.py)


def source_fingerprint() -> str:
    """modelint's own code: version plus size and mtime of each of its files (cheap `stat`s)."""
    root = Path(__file__).resolve().parent
    h = hashlib.sha256(__version__.encode())
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in sorted(filenames):
            if name.endswith(".py"):
                st = os.stat(os.path.join(dirpath, name))
                h.update(f"{dirpath}/{name}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()


def digest(*parts: Any) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part if isinstance(part, bytes) else json.dumps(part, sort_keys=True, default=str).encode())
        h.update(b"\0")
    return h.hexdigest()


class Cache:
    def __init__(self, folder: Path, salt: str):
        self.folder = Path(folder)
        self.base = self.folder / _LAYOUT
        self.salt = salt
        self.hits = 0
        self.misses = 0

    # --- storage ---------------------------------------------------------------------------
    def _entry(self, kind: str, key: str) -> Path:
        return self.base / kind / key[:2] / f"{key}.json"

    def _read(self, kind: str, key: str) -> Optional[Any]:
        try:
            with open(self._entry(kind, key), "r", encoding="utf-8") as fh:
                return json.load(fh)
        except (OSError, ValueError):
            return None

    def _write(self, kind: str, key: str, value: Any) -> None:
        path = self._entry(kind, key)
        try:
            if not (self.folder / ".gitignore").exists():
                self.folder.mkdir(parents=True, exist_ok=True)
                (self.folder / ".gitignore").write_text("# Created by modelint; safe to delete.\n*\n")
                (self.folder / "CACHEDIR.TAG").write_text("Signature: 8a477f597d28d172789f06886806bc55\n")
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, json.dumps(value, separators=(",", ":")), fsync=False)
        except OSError:
            pass  # a read-only or full disk must never fail the run: the cache is an optimisation

    # --- facts -----------------------------------------------------------------------------
    @staticmethod
    def file_key(path: str, data: bytes) -> str:
        return digest(__version__, IR_VERSION, path, data)

    def get_facts(self, file_key: str) -> Optional[FileFacts]:
        raw = self._read("facts", file_key)
        if raw is None or "stars" not in raw or "fillins" not in raw or "passes" not in raw or "defs" not in raw:
            return None  # an entry written before fill-ins, pass-throughs or star imports were indexed is a miss, not "none"
        return FileFacts(modname=raw["modname"], aliases=raw["aliases"], classes=raw["classes"],
                         factories=raw.get("factories", {}), factory_parts=raw.get("factory_parts", {}), functions=raw.get("functions", {}),
                         fillins=raw["fillins"], passes=raw["passes"], defs=raw["defs"], stars=raw["stars"])

    def put_facts(self, file_key: str, facts: FileFacts) -> None:
        self._write("facts", file_key, {"modname": facts.modname, "aliases": facts.aliases, "classes": facts.classes,
                                        "factories": facts.factories, "factory_parts": facts.factory_parts, "functions": facts.functions,
                                        "fillins": facts.fillins, "passes": facts.passes, "defs": facts.defs,
                                        "stars": facts.stars})

    # --- results ---------------------------------------------------------------------------
    def result_key(self, index_fingerprint: str, file_key: str) -> str:
        return digest(self.salt, index_fingerprint, file_key)

    def get_findings(self, key: str) -> Optional[List[Finding]]:
        raw = self._read("results", key)
        if raw is None:
            self.misses += 1
            return None
        self.hits += 1
        return [finding_from_dict(d) for d in raw]

    def put_findings(self, key: str, findings: List[Finding]) -> None:
        if any(f.code == INTERNAL_ERROR for f in findings):
            return  # never cache a crash
        self._write("results", key, [f.to_dict() for f in findings])

    # --- class bodies (analysis.classbodies: what each class builds, for mode sensitivity) ------
    # Keyed with the salt too (unlike facts): the scan is modelint code that changes more often.
    def get_bodies(self, file_key: str) -> Optional[dict]:
        """The file's class-body facts, or None when not cached."""
        from modelint.analysis.classbodies import bodies_from_json

        raw = self._read("bodies", digest(self.salt, file_key))
        return None if raw is None else bodies_from_json(raw)

    def put_bodies(self, file_key: str, bodies: dict) -> None:
        from modelint.analysis.classbodies import bodies_to_json

        self._write("bodies", digest(self.salt, file_key), bodies_to_json(bodies))


def clean(folder: Path) -> bool:
    """Remove a cache folder; True if there was one. Refuses folders that are not modelint caches."""
    folder = Path(folder)
    if not folder.exists():
        return False
    if not (folder / _LAYOUT).exists() and not (folder / "CACHEDIR.TAG").exists():
        raise OSError(f"{folder} does not look like a modelint cache; not removing it")
    shutil.rmtree(folder)
    return True

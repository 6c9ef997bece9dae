"""The static rules, one per file. Every `Rule` subclass in this package is registered by code."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Dict, List, Type

from modelint.rules.base import Rule

_REGISTRY: Dict[str, Type[Rule]] = {}


def collect(path, package: str, base: type) -> Dict[str, type]:
    """Every `base` subclass defined in a `mdl*.py` module of `package` (at `path`), by code (the
    Python rules here, the Rust rules in `modelint.rules.rust`)."""
    found: Dict[str, type] = {}
    for info in sorted(pkgutil.iter_modules(path), key=lambda m: m.name):
        if info.name.startswith("mdl"):
            mod = importlib.import_module(f"{package}.{info.name}")
            for obj in vars(mod).values():
                if isinstance(obj, type) and issubclass(obj, base) and obj is not base and obj.__module__ == mod.__name__:
                    if obj.code in found:
                        raise RuntimeError(f"duplicate rule code {obj.code}")
                    found[obj.code] = obj
    return found


def _load() -> Dict[str, Type[Rule]]:
    if not _REGISTRY:
        _REGISTRY.update(collect(__path__, __name__, Rule))
    return _REGISTRY


def all_rules() -> List[Type[Rule]]:
    return [r for _, r in sorted(_load().items())]


def get_rule(code: str) -> Type[Rule]:
    return _load()[code]

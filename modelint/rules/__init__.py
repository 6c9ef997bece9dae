"""The static rules, one per file. Every `Rule` subclass in this package is registered by code."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Dict, List, Type

from modelint.rules.base import Rule

_REGISTRY: Dict[str, Type[Rule]] = {}


def _load() -> Dict[str, Type[Rule]]:
    if not _REGISTRY:
        for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
            if info.name.startswith("mdl"):
                mod = importlib.import_module(f"{__name__}.{info.name}")
                for obj in vars(mod).values():
                    if isinstance(obj, type) and issubclass(obj, Rule) and obj is not Rule and obj.__module__ == mod.__name__:
                        if obj.code in _REGISTRY:
                            raise RuntimeError(f"duplicate rule code {obj.code}")
                        _REGISTRY[obj.code] = obj
    return _REGISTRY


def all_rules() -> List[Type[Rule]]:
    return [r for _, r in sorted(_load().items())]


def get_rule(code: str) -> Type[Rule]:
    return _load()[code]

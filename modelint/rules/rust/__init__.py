"""The Rust (Burn) rules, one `RustRule` per `mdlNNN_*.py` file, registered by code like the Python
rules of `modelint.rules` (a code may be shared with a Python rule: same bug, Burn's spelling)."""

from __future__ import annotations

from typing import Dict, List, Type

from modelint.rules import collect
from modelint.rust.rule import RustRule

_REGISTRY: Dict[str, Type[RustRule]] = {}


def rust_rules() -> List[Type[RustRule]]:
    if not _REGISTRY:
        _REGISTRY.update(collect(__path__, __name__, RustRule))
    return [r for _, r in sorted(_REGISTRY.items())]


def rust_rule(code: str) -> Type[RustRule]:
    rust_rules()
    return _REGISTRY[code]

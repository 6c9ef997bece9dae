"""Is this class an `nn.Module`?

A class is a module when one of its bases, resolved through the file's imports, is:
- a framework's module base or any public layer class (`nn.Module`, `nn.Linear`, `nn.Sequential`,
  Lightning's `LightningModule`, transformers' `PreTrainedModel`: `Profile.module_bases` and
  `Profile.is_layer_class` of every profile in `modelint.frameworks`), or one the user lists in
  `module-bases`;
- a class in the checked files that is itself a module (through the cross-file `ProjectIndex`).

Heuristics, documented because they can be wrong: a base we cannot resolve at all (star import,
dynamic base) is a module only if it is spelled `Module` or `nn.Module` (e.g. after
`from torch.nn import *`).
"""

from __future__ import annotations

from typing import FrozenSet, Iterable, Optional

from modelint.analysis.index import ProjectIndex
from modelint.frameworks import module_base, trainer_module


class ModuleClassifier:
    """Answers "is the class with this qualified name an nn.Module" with memoisation."""

    def __init__(self, index: Optional[ProjectIndex] = None, extra_bases: Iterable[str] = ()):
        self.index = index or ProjectIndex()
        self.extra: FrozenSet[str] = frozenset(extra_bases)
        self._memo: dict = {}
        self._mixins: Optional[FrozenSet[str]] = None

    def is_module_mixin(self, qualname: str) -> bool:
        """A class of the checked files that is not a module but is a base of one (`class
        RerankerBase(object)` mixed into `class Reranker(SeqModel, RerankerBase)`): its methods run
        with `self` a module. The set is built once per project, on the first question."""
        if self._mixins is None:
            found = set()
            for mod, facts in self.index.modules.items():
                for cls, bases in facts.classes.items():
                    if len(bases) > 1 and self.is_module_base(f"{mod}.{cls}"):
                        found.update(b for b in bases if b and not self.is_module_base(b))
            self._mixins = frozenset(found)
        return qualname in self._mixins and not self.is_module_base(qualname)

    def is_module_base(self, qualname: str) -> bool:
        return self._is_module(qualname, depth=0)

    def is_lightning(self, qualname: str, depth: int = 0) -> bool:
        if trainer_module(qualname):
            return True
        bases = self.index.bases_of(qualname)
        return bool(bases) and depth < 50 and any(self.is_lightning(b, depth + 1) for b in bases)

    def _is_module(self, qualname: str, depth: int) -> bool:
        if qualname in self._memo:
            return self._memo[qualname]
        self._memo[qualname] = False  # cycle guard
        result = self._compute(qualname, depth)
        self._memo[qualname] = result
        return result

    def _compute(self, qualname: str, depth: int) -> bool:
        if module_base(qualname) or qualname in self.extra or trainer_module(qualname):
            return True
        bases = self.index.bases_of(qualname)
        if bases is not None:
            return depth < 50 and any(self._is_module(b, depth + 1) for b in bases)
        # Unresolvable: the name itself is the only evidence.
        return qualname in ("Module", "nn.Module")

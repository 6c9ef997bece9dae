"""Is this class an `nn.Module`?

A class is a module when one of its bases, resolved through the file's imports, is:
- `torch.nn.Module` or any public `torch.nn.*` layer class (`nn.Linear`, `nn.Sequential`, ...);
- a well-known third-party module base (`KNOWN_MODULE_BASES`: Lightning, transformers' `PreTrainedModel`),
  or one the user lists in `module-bases`;
- a class in the checked files that is itself a module (through the cross-file `ProjectIndex`).

Heuristics, documented because they can be wrong: a base we cannot resolve at all (star import,
dynamic base) is a module only if it is spelled `Module` or `nn.Module` (e.g. after
`from torch.nn import *`).
"""

from __future__ import annotations

from typing import FrozenSet, Iterable, Optional

from modelint.analysis.index import ProjectIndex

KNOWN_MODULE_BASES = frozenset(
    {
        "torch.nn.Module",
        "pytorch_lightning.LightningModule",
        "pytorch_lightning.core.LightningModule",
        "pytorch_lightning.core.module.LightningModule",
        "lightning.LightningModule",
        "lightning.pytorch.LightningModule",
        "lightning.pytorch.core.LightningModule",
        "lightning.pytorch.core.module.LightningModule",
        "transformers.PreTrainedModel",
        "transformers.modeling_utils.PreTrainedModel",
        "diffusers.ModelMixin",
        "diffusers.models.modeling_utils.ModelMixin",
        "timm.layers.Mlp",
    }
)

LIGHTNING_BASES = frozenset(b for b in KNOWN_MODULE_BASES if b.endswith("LightningModule"))

# torch.nn names that are classes but not modules.
_TORCH_NN_NON_MODULES = frozenset(
    {
        "torch.nn.Parameter",
        "torch.nn.UninitializedParameter",
        "torch.nn.UninitializedBuffer",
        "torch.nn.Buffer",
    }
)
_TORCH_NN_NON_MODULE_PACKAGES = ("torch.nn.functional", "torch.nn.init", "torch.nn.utils", "torch.nn.attention")


def is_torch_nn_class(qualname: str) -> bool:
    """`torch.nn.Linear`, `torch.nn.modules.conv.Conv2d`, ... (not functions, not Parameter)."""
    if not qualname.startswith("torch.nn.") or qualname in _TORCH_NN_NON_MODULES:
        return False
    if qualname.startswith(_TORCH_NN_NON_MODULE_PACKAGES):
        return False
    last = qualname.rsplit(".", 1)[-1]
    return last[:1].isupper()


class ModuleClassifier:
    """Answers "is the class with this qualified name an nn.Module" with memoisation."""

    def __init__(self, index: Optional[ProjectIndex] = None, extra_bases: Iterable[str] = ()):
        self.index = index or ProjectIndex()
        self.extra: FrozenSet[str] = frozenset(extra_bases)
        self._memo: dict = {}

    def is_module_base(self, qualname: str) -> bool:
        return self._is_module(qualname, depth=0)

    def is_lightning(self, qualname: str, depth: int = 0) -> bool:
        if qualname in LIGHTNING_BASES or qualname.endswith(".LightningModule"):
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
        if qualname in KNOWN_MODULE_BASES or qualname in self.extra or is_torch_nn_class(qualname):
            return True
        if qualname.endswith(".LightningModule"):
            return True
        bases = self.index.bases_of(qualname)
        if bases is not None:
            return depth < 50 and any(self._is_module(b, depth + 1) for b in bases)
        # Unresolvable: the name itself is the only evidence.
        return qualname in ("Module", "nn.Module")

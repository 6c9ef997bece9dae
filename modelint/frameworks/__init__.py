"""Framework profiles: everything a rule needs to know about one deep-learning framework's API.

A rule never spells a framework's names itself (`"torch.nn.functional.dropout"`, `.eval()`,
`no_grad`); it asks the profile of the file it checks (`ctx.framework.dropout_calls`). One module
per framework (`torch.py` today) builds one `Profile`; adding a framework is a new module here, an
entry in `PROFILES`, and fixtures. A file's profile is chosen from its imports (`profile_for`).

Qualified names are what `FileContext.resolve` returns: the dotted name through the file's own
imports (`F.dropout` -> `torch.nn.functional.dropout`). Positions are 0-based positional indexes of
a parameter, for calls that may pass it positionally.

Fields a future profile will need beyond PyTorch's (the mode as a call argument, as in Keras'
`call(x, training=None)`) are added with a default that keeps PyTorch's behaviour.
"""

from __future__ import annotations

from typing import Dict, Mapping, Tuple

from modelint.frameworks.profile import LayerArg, Profile
from modelint.frameworks.torch import TORCH


# Every known profile; the first is the default for a file that imports none of them.
PROFILES: Tuple[Profile, ...] = (TORCH,)


def profile_for(aliases: Mapping[str, str]) -> Profile:
    """The profile of a file, from its import aliases (local name -> qualified name): the first
    profile one of whose `import_roots` the file imports; the default (PyTorch) when none is, since
    model code often imports its framework through a project module (`from .layers import nn`)."""
    roots = {q.split(".", 1)[0] for q in aliases.values()}
    for profile in PROFILES[1:]:
        if roots & profile.import_roots:
            return profile
    return PROFILES[0]


def module_base(qualname: str) -> bool:
    """Is `qualname` a module base of any framework (a known base or a layer class)? Used where no
    file is at hand (the project-wide class classifier)."""
    return any(qualname in p.module_bases or p.is_layer_class(qualname) for p in PROFILES)


def trainer_module(qualname: str) -> bool:
    return any(p.is_trainer_module(qualname) for p in PROFILES)


def union(field: str) -> Tuple[str, ...]:
    """A tuple field of every profile, merged in order without repeats (for a rule's text pre-filter,
    which is a class attribute and so cannot depend on a file's profile)."""
    out: Dict[str, None] = {}
    for profile in PROFILES:
        out.update(dict.fromkeys(getattr(profile, field)))
    return tuple(out)


__all__ = ["LayerArg", "Profile", "PROFILES", "TORCH", "profile_for", "module_base", "trainer_module", "union"]


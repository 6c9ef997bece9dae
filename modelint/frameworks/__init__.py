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

import dataclasses
import re
from typing import Dict, Mapping, Tuple

from modelint.frameworks.keras import KERAS
from modelint.frameworks.mlx import MLX
from modelint.frameworks.paddle import MINDSPORE, PADDLE
from modelint.frameworks.profile import LayerArg, Profile
from modelint.frameworks.torch import TORCH


# Every known profile; the first is the default for a file that imports none of them.
PROFILES: Tuple[Profile, ...] = (TORCH, KERAS, MLX, PADDLE, MINDSPORE)
# Every profile's methods after which the same object is in charge of the mode (`model.to(dev)`), for
# the analyses that have no file at hand (the in-file flow's `MODE_PRESERVING`, pass-through helpers).
MODE_PRESERVING_METHODS = frozenset().union(*(p.mode_preserving_methods for p in PROFILES))


def profile_for(aliases: Mapping[str, str]) -> Profile:
    """The profile of a file, from its import aliases (local name -> qualified name): the profile of
    the frameworks it imports (through `import_roots`); the default (PyTorch) when it imports none,
    since model code often imports its framework through a project module (`from .layers import nn`).

    A file that imports several (a Keras model trained by a torch loop, an MLX port next to its
    PyTorch original) gets their `merged` profile: every table keyed by a qualified name is the union
    of theirs, so each call is looked up through the file's imports in the table of the framework it
    belongs to (`mx.random.normal` is MLX's sampling op, `torch.randn` PyTorch's, in one file)."""
    roots = {q.split(".", 1)[0] for q in aliases.values()}
    found = tuple(p for p in PROFILES if roots & p.import_roots)
    if len(found) <= 1:
        return found[0] if found else PROFILES[0]
    key = tuple(p.name for p in found)
    if key not in _MERGED:
        _MERGED[key] = merged(found)
    return _MERGED[key]


_MERGED: Dict[Tuple[str, ...], Profile] = {}
# Prefix fields: a qualified name is under the merged namespace when it is under any profile's.
_PREFIX_FIELDS = ("namespace", "layers_namespace", "distributions_namespace")


def _prefixes(value) -> Tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


def merged(profiles: Tuple[Profile, ...]) -> Profile:
    """One profile answering for several frameworks: sets, tables and tuples are unions (the first
    profile wins a key both have; qualified names never collide across frameworks), prefixes become
    tuples, patterns alternate, and a scalar (the mode attribute, the switch methods' names, the
    message words) is the first profile's that is set (PyTorch's first: `PROFILES` order)."""
    values: Dict[str, object] = {"name": "+".join(p.name for p in profiles)}
    for f in dataclasses.fields(Profile):
        if not f.init or f.name in ("name", "parts"):
            continue
        vals = [getattr(p, f.name) for p in profiles]
        values[f.name] = _merge_field(f.name, vals)
    return Profile(**values, parts=profiles)  # type: ignore[arg-type]


def _merge_field(name: str, vals: list):
    first = vals[0]
    if name in _PREFIX_FIELDS:
        return tuple(dict.fromkeys(x for v in vals for x in _prefixes(v) if x != "\0"))
    if isinstance(first, frozenset):
        return frozenset().union(*vals)
    if isinstance(first, tuple):
        return tuple(dict.fromkeys(x for v in vals for x in v))
    if isinstance(first, Mapping):
        if name == "state_setters":  # state -> names: union per state
            states = {s for v in vals for s in v}
            return {s: frozenset().union(*(v.get(s, frozenset()) for v in vals)) for s in states}
        out: Dict[object, object] = {}
        for v in reversed(vals):
            out.update(v)
        return out
    if isinstance(first, re.Pattern):
        return re.compile("|".join(f"(?:{v.pattern})" for v in vals))
    return next((v for v in vals if v not in ("", "\0")), first)


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


__all__ = ["LayerArg", "Profile", "PROFILES", "MODE_PRESERVING_METHODS", "TORCH", "KERAS", "MLX", "PADDLE", "MINDSPORE", "profile_for", "merged",
           "module_base", "trainer_module", "union"]


"""Is a forward's result used only cut from the graph? (`feats = encoder(x).detach()`)

A model whose output reaches nothing but a detach method (`Profile.detach_methods`) gets no gradient
from what follows, so no training step there trains it, whatever its mode: the linear-probe protocol
puts a pretrained encoder in eval on purpose, detaches its features and steps a head on them
(CSI's `sup_CSI_linear.py` in measuring set 13, InfoGraph's probe in set 11: 3 false findings of
MDL303/MDL304). Read by `analysis.routines` (MDL304's runs with gradients) and `analysis.modeflow`
(the keys a scope forwards, MDL301/MDL303).

The result counts as detached when the call is the start of a chain of subscripts, attributes and
method calls that ends in a detach call (`net(x).detach()`, `net(x)[0].detach()`,
`net(x).logits.view(n, -1).detach()`), or when it is bound by one assignment to names (`out = net(x)`,
`_, aux = net(x)`) each of which is used at least once in the scope and only at the start of such a
chain (`aux['penultimate'].detach()`). Anything else (a use passed to a function, a loss, a
rebinding `out = out + 1`, a starred or attribute target) keeps the forward one with gradients.
"""

from __future__ import annotations

from typing import Dict, FrozenSet, List, Optional

import libcst as cst

from modelint.analysis.walk import descendants


def detached_only(scope: cst.CSTNode, call: cst.Call, parents: Dict[int, cst.CSTNode], methods: FrozenSet[str]) -> bool:
    """`call`'s result is used only through `methods` (see the module docstring); `parents`: id(node)
    -> parent for `scope`'s nodes."""
    if not methods:
        return False
    if _ends_detached(call, parents, methods):
        return True
    stmt = parents.get(id(call))
    if not isinstance(stmt, cst.Assign) or stmt.value is not call:
        return False
    targets = _target_names(stmt)
    if not targets:
        return False
    wanted = {t.value for t in targets if t.value != "_"}
    if not wanted:
        return False
    own = {id(t) for t in targets}
    seen = set()
    for node in descendants(scope):
        if not isinstance(node, cst.Name) or node.value not in wanted or id(node) in own:
            continue
        parent = parents.get(id(node))
        if isinstance(parent, cst.Attribute) and parent.attr is node or isinstance(parent, cst.Arg) and parent.keyword is node:
            continue  # `x.aux`, `f(aux=...)`: another name that is spelled the same
        if not _ends_detached(node, parents, methods):
            return False
        seen.add(node.value)
    return seen == wanted


def _target_names(stmt: cst.Assign) -> Optional[List[cst.Name]]:
    """The names of a one-target assignment (`out = ...`, `_, aux = ...`), or None for any other target."""
    if len(stmt.targets) != 1:
        return None
    target = stmt.targets[0].target
    if isinstance(target, cst.Name):
        return [target]
    if isinstance(target, (cst.Tuple, cst.List)) and all(isinstance(e.value, cst.Name) for e in target.elements) and not any(
            isinstance(e, cst.StarredElement) for e in target.elements):
        return [e.value for e in target.elements]
    return None


def _ends_detached(node: cst.CSTNode, parents: Dict[int, cst.CSTNode], methods: FrozenSet[str]) -> bool:
    """`node` starts a chain of subscripts / attributes / method calls that ends in `.<detach>()`."""
    cur = node
    while True:
        parent = parents.get(id(cur))
        if isinstance(parent, cst.Subscript) and parent.value is cur:
            cur = parent
        elif isinstance(parent, cst.Attribute) and parent.value is cur:
            above = parents.get(id(parent))
            if parent.attr.value in methods:
                return isinstance(above, cst.Call) and above.func is parent
            cur = parent
        elif isinstance(parent, cst.Call) and parent.func is cur:
            cur = parent
        else:
            return False

"""Always-on dropout as stated intent: does a scope anywhere else tie its functional dropout to the mode?

A literal `training=True` on `F.dropout(...)` (or `F.multi_head_attention_forward(...)`) is written out on
purpose more often than by mistake: a Tacotron-style prenet whose dropout stays on at inference, a Monte
Carlo dropout helper. It is a bug when the same author, in the same class (or top-level function), passes
the mode to another such call (`training=self.training`), gates one by a mode check, or makes its
probability depend on the mode: then they know the call takes the mode and forgot it once
(MDL101/MDL103, issue 15). `ties_dropout_to_mode(ctx, scope)` answers that question for a scope;
`ModeTies(ctx).here()` for the scope around the walk's current node, memoised per scope (one per rule and file).

The calls that count are the profile's mode-taking dropout calls (`dropout_calls`, the default-False
`training_default_false_calls`, `mha_call`); batch-norm calls do not (their `training=` is about running
statistics, not about dropout being always on). The walk assigns each call to its innermost function,
whose mode-derived locals decide (`analysis.mode.expr_depends_on_mode`, `mode_guard`).
"""

from __future__ import annotations

from typing import Dict, Iterator, Optional, Tuple

import libcst as cst

from modelint.analysis import mode as mode_analysis
from modelint.analysis.calls import get_arg, is_literal_bool
from modelint.analysis.walk import iter_children


def scope_of(ctx) -> Optional[cst.CSTNode]:
    """The class of a module method (methods and their nested functions), else the outermost enclosing
    function: the unit inside which one author's intent about the mode is read."""
    if ctx.in_module_method():
        classdef = ctx.enclosing_class()
        if classdef is not None:
            return classdef
    return next((a for a in ctx.ancestors if isinstance(a, cst.FunctionDef)), None)


def _calls_by_function(scope: cst.CSTNode) -> Iterator[Tuple[cst.Call, cst.FunctionDef]]:
    """Every call in `scope` with its innermost enclosing function (calls outside any function skipped)."""
    stack = [(scope, scope if isinstance(scope, cst.FunctionDef) else None)]
    while stack:
        node, fn = stack.pop()
        for child in iter_children(node):
            inner = child if isinstance(child, cst.FunctionDef) else fn
            if isinstance(child, cst.Call) and inner is not None:
                yield child, inner
            stack.append((child, inner))


def _mode_calls(fw) -> Dict[str, Tuple[Optional[int], Optional[int]]]:
    """Qualified name -> (position of `training`, position of the probability) of the mode-taking dropout calls."""
    out: Dict[str, Tuple[Optional[int], Optional[int]]] = {}
    for q, pos in {**fw.dropout_calls, **fw.training_default_false_calls}.items():
        out[q] = (pos, fw.dropout_p_position.get(q))
    if fw.mha_call:
        out[fw.mha_call] = (fw.mha_training_position, fw.mha_dropout_p_position)
    return out


def ties_dropout_to_mode(ctx, scope: Optional[cst.CSTNode]) -> bool:
    """Does some mode-taking dropout call in `scope` follow the mode: a `training=` argument that is not a
    literal and depends on the mode, a mode check around the call, or a probability that depends on the
    mode? (One walk of the scope: a rule asks once per scope and keeps the answer.)"""
    if scope is None:
        return False
    fw = ctx.framework
    calls = _mode_calls(fw)
    attrs = ctx.class_mode_attrs(scope) if isinstance(scope, cst.ClassDef) else frozenset()
    for call, fn in _calls_by_function(scope):
        func = call.func
        if not isinstance(func, (cst.Name, cst.Attribute)):
            continue
        q = ctx.resolve(func)
        if q not in calls:
            continue
        facts = ctx.function_facts(fn)
        training_pos, p_pos = calls[q]
        training = get_arg(call, fw.mode_keyword, training_pos)
        if training is not None and not is_literal_bool(training.value, True) and not is_literal_bool(training.value, False):
            if mode_analysis.expr_depends_on_mode(training.value, facts, attrs):
                return True
        if mode_analysis.mode_guard(facts.chain(call), facts.mode_locals) is not None:
            return True
        keyword = fw.attention_dropout_p_keyword if q == fw.mha_call else fw.dropout_p_keyword
        p = get_arg(call, keyword, p_pos)
        if p is not None and mode_analysis.expr_depends_on_mode(p.value, facts, attrs):
            return True
    return False


class ModeTies:
    """`ties_dropout_to_mode` for the scope around the walk's current node (`scope_of`), memoised per scope."""

    def __init__(self, ctx):
        self.ctx = ctx
        self._answers: Dict[int, bool] = {}

    def here(self) -> bool:
        scope = scope_of(self.ctx)
        key = id(scope)
        if key not in self._answers:
            self._answers[key] = ties_dropout_to_mode(self.ctx, scope)
        return self._answers[key]

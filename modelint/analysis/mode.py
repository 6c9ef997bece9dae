"""Does an expression read the training mode, and is a node guarded by a mode check?

"Reads the mode" means the expression mentions
- an attribute `.training` (or another `MODE_ATTRS` name) on anything: `self.training`,
  `self.encoder.training`, `module.training`;
- a name in `MODE_NAMES` (`training`, `is_training`, `train`, `deterministic`, ...): a parameter,
  a local or a closure variable of that name;
- a local variable of the enclosing function assigned from such an expression
  (`use_dropout = self.training and self.p > 0`, or element-wise `x, use = h, self.training`:
  `unpacked`), to a fixpoint.

A node is guarded when it is under a test that reads the mode, "under" as `analysis.guards`
defines it (an arm of an `if`/conditional expression/`while`, the right operand of `and`/`or`, after
an early exit `if <test>: return/raise/continue/break` or `assert <test>`; never across a function
boundary). `torch.is_grad_enabled()` is not a mode check
(grad mode and training mode are independent; see MDL105).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, FrozenSet, Iterable, Iterator, List, Optional, Sequence, Set, Tuple

import libcst as cst

from modelint.analysis.guards import guard_in_chain
from modelint.analysis.walk import children, descendants, preorder_and_parents

MODE_NAMES: FrozenSet[str] = frozenset(
    {
        "training",
        "is_training",
        "train",
        "deterministic",
        "is_train",
        "train_mode",
        "training_mode",
        "in_training",
        "is_eval",
        "eval_mode",
        "inference",
    }
)
MODE_ATTRS: FrozenSet[str] = frozenset(
    {"training", "is_training", "deterministic", "is_train", "train_mode", "training_mode", "in_training"}
)



def loads(expr: cst.CSTNode) -> Iterator[cst.CSTNode]:
    """Names and attributes read by an expression: skips attribute names (`x.train`), keyword
    names (`f(training=...)`) and parameter names, which are not reads."""
    stack = [expr]
    while stack:
        node = stack.pop()
        tp = type(node)  # exact tests: these classes have no subclasses, and isinstance on LibCST's ABCs is slow
        if tp is cst.Attribute:
            yield node
            stack.append(node.value)
        elif tp is cst.Name:
            yield node
        elif tp is cst.Arg:
            stack.append(node.value)
        elif tp is cst.Lambda:
            stack.append(node.body)
        else:
            stack.extend(children(node))


def reads_mode(expr: Optional[cst.CSTNode], mode_locals: FrozenSet[str] = frozenset()) -> bool:
    if expr is None:
        return False
    for node in loads(expr):
        if type(node) is cst.Attribute:
            if node.attr.value in MODE_ATTRS:
                return True
        elif node.value in MODE_NAMES or node.value in mode_locals:
            return True
    return False


@dataclass
class FunctionFacts:
    """Facts about one function, computed once on demand."""

    node: cst.CSTNode
    params: FrozenSet[str]
    parents: Dict[int, cst.CSTNode]
    # local name -> the value expressions assigned to it (tuple targets element-wise: `unpacked`)
    assigns: Dict[str, List[cst.CSTNode]] = field(default_factory=dict)
    # local name -> the assignment statements (small statements) that bind it
    assign_stmts: Dict[str, List[cst.CSTNode]] = field(default_factory=dict)
    mode_locals: FrozenSet[str] = frozenset()

    def chain(self, node: cst.CSTNode) -> List[cst.CSTNode]:
        """Ancestors of node up to (and including) the function, outermost first, node last."""
        out = [node]
        while id(out[-1]) in self.parents and out[-1] is not self.node:
            out.append(self.parents[id(out[-1])])
        out.reverse()
        return out


def _param_names(fn: cst.CSTNode) -> FrozenSet[str]:
    params = fn.params
    names = [p.name.value for p in (*params.posonly_params, *params.params, *params.kwonly_params)]
    for star in (params.star_arg, params.star_kwarg):
        if isinstance(star, cst.Param):
            names.append(star.name.value)
    return frozenset(names)


def derived_locals(
    assigns: Dict[str, List[cst.CSTNode]],
    reads: Callable[[cst.CSTNode, FrozenSet[str]], bool],
    seed: Iterable[str] = (),
) -> FrozenSet[str]:
    """Locals assigned, to a fixpoint, from an expression that `reads(expr, known_locals)` accepts
    (`use = self.training and p > 0` makes `use` a mode local; `greedy = temperature == 0` a switch)."""
    out: Set[str] = set(seed)
    changed = True
    while changed:
        changed = False
        frozen = frozenset(out)
        for name, values in assigns.items():
            if name not in out and any(reads(v, frozen) for v in values):
                out.add(name)
                changed = True
    return frozenset(out)


def unpacked(target: cst.CSTNode, value: cst.CSTNode) -> Iterator[Tuple[str, cst.CSTNode]]:
    """(name, the value it gets) for an assignment target: a name gets the whole value; a
    tuple/list target (nested, with at most one starred name) gets, element-wise, the elements of
    a tuple/list display of known length (`x, flag = h, self.training and p > 0` binds `flag` to
    `self.training and p > 0`).

    Any other right-hand side (a call, a name, a starred display `*xs, y`) yields nothing for a
    tuple target: `out, attn = layer(x, training=self.training)` says nothing about which element
    carries the mode, and taking the whole value for every name would make each `if attn is not
    None:` a mode test. A starred name (`a, *rest = ...`) yields nothing either: it holds a list,
    whose truth is its length, not its elements' values."""
    if type(target) is cst.Name:
        yield target.value, value
        return
    if type(target) not in (cst.Tuple, cst.List) or type(value) not in (cst.Tuple, cst.List):
        return
    if any(type(e) is cst.StarredElement for e in value.elements):
        return
    names, values = list(target.elements), [e.value for e in value.elements]
    stars = [i for i, e in enumerate(names) if type(e) is cst.StarredElement]
    if not stars:
        if len(names) != len(values):
            return  # a ValueError at run time: no binding to learn from
        pairs = list(zip(names, values))
    else:
        front, back = stars[0], len(names) - stars[0] - 1
        if len(stars) > 1 or len(values) < front + back:
            return
        pairs = list(zip(names[:front], values[:front]))
        pairs += list(zip(names[front + 1:], values[len(values) - back:]))
    for element, item in pairs:
        yield from unpacked(element.value, item)


def function_facts(fn: cst.CSTNode) -> FunctionFacts:
    nodes, parents = preorder_and_parents(fn)
    facts = FunctionFacts(node=fn, params=_param_names(fn), parents=parents)
    # Exact type tests (these are concrete LibCST classes): `isinstance` against LibCST's ABCs is
    # several times slower, and this loop sees every node of every function that any rule asks about.
    for node in nodes:
        tp = type(node)
        if tp is cst.Assign:
            for target in node.targets:
                for name, value in unpacked(target.target, node.value):
                    facts.assigns.setdefault(name, []).append(value)
                    facts.assign_stmts.setdefault(name, []).append(node)
        elif (tp is cst.AnnAssign or tp is cst.AugAssign) and isinstance(node.target, cst.Name):
            if node.value is not None:
                facts.assigns.setdefault(node.target.value, []).append(node.value)
                facts.assign_stmts.setdefault(node.target.value, []).append(node)
    # Locals assigned from mode-reading expressions read the mode too.
    seed = []
    if isinstance(fn, cst.FunctionDef) and fn.name.value == "train" and len(fn.params.params) >= 2:
        seed.append(fn.params.params[1].name.value)  # `def train(self, mode=True)`
    facts.mode_locals = derived_locals(facts.assigns, reads_mode, seed)
    return facts


def mode_guard(chain: Sequence[cst.CSTNode], mode_locals: FrozenSet[str] = frozenset()) -> Optional[cst.CSTNode]:
    """The node that makes chain[-1] mode-dependent (an If, IfExp, While, BooleanOperation or early-exit
    statement whose test reads the mode: `guards.guard_in_chain`), or None. `chain` runs from an outer
    node down to the node in question."""
    return guard_in_chain(chain, lambda test: reads_mode(test, mode_locals))


def expr_depends_on_mode(expr: cst.CSTNode, facts: Optional[FunctionFacts], class_mode_attrs: FrozenSet[str] = frozenset()) -> bool:
    """Does the value of `expr` depend on the training mode?

    True when it reads the mode directly, or names a local whose assignments read the mode or sit
    under a mode guard (`p = self.p` then `if not self.training: p = 0.0`), or is `self.<attr>`
    where the class assigns that attribute from the mode (`class_mode_attrs`).
    """
    mode_locals = facts.mode_locals if facts else frozenset()
    if reads_mode(expr, mode_locals):
        return True
    for node in loads(expr):
        if isinstance(node, cst.Attribute) and isinstance(node.value, cst.Name) and node.value.value == "self":
            if node.attr.value in class_mode_attrs:
                return True
        if facts is not None and isinstance(node, cst.Name) and node.value in facts.assign_stmts:
            for stmt in facts.assign_stmts[node.value]:
                if mode_guard(facts.chain(stmt), mode_locals) is not None:
                    return True
    return False


def class_mode_attributes(classdef: cst.ClassDef) -> FrozenSet[str]:
    """Attributes `self.X` that some method of the class assigns from a mode-reading expression
    or under a mode guard."""
    out: Set[str] = set()
    for item in classdef.body.body if isinstance(classdef.body, cst.IndentedBlock) else ():
        if not isinstance(item, cst.FunctionDef):
            continue
        facts = None
        for node in descendants(item):
            if isinstance(node, (cst.Assign, cst.AnnAssign, cst.AugAssign)):
                targets = [t.target for t in node.targets] if isinstance(node, cst.Assign) else [node.target]
                for t in targets:
                    if isinstance(t, cst.Attribute) and isinstance(t.value, cst.Name) and t.value.value == "self":
                        facts = facts or function_facts(item)
                        if reads_mode(node.value, facts.mode_locals) or mode_guard(facts.chain(node), facts.mode_locals):
                            out.add(t.attr.value)
    return frozenset(out)


# Names in MODE_NAMES / MODE_ATTRS whose *true* value means eval or inference (Flax's
# `deterministic=True`, `is_eval`, ...): a branch on one of them has the opposite polarity.
EVAL_NAMES: FrozenSet[str] = frozenset({"deterministic", "is_eval", "eval_mode", "inference"})


def value_under_mode(
    expr: cst.CSTNode,
    training: bool,
    mode_locals: FrozenSet[str] = frozenset(),
    assigns: Optional[Dict[str, List[cst.CSTNode]]] = None,
    atom: Optional[Callable[[cst.CSTNode], Optional[bool]]] = None,
    _depth: int = 0,
) -> Optional[bool]:
    """The truth value of a test when the module's mode is `training`, or None when it also
    depends on something else (three-valued: `self.training and self.p > 0` is None in training
    and False in eval).

    Mode atoms: a `.training`-like attribute or a `MODE_NAMES` name (true in training, or in eval for
    `EVAL_NAMES`), a mode-derived local with a single assignment (`assigns`, from `FunctionFacts`),
    and whatever `atom(node)` says is one (True: true in training, False: true in eval, None: not an
    atom). Understood connectives: `not`, `and`, `or`, and `==`/`!=`/`is`/`is not` against True/False.
    """
    if _depth > 20:
        return None
    if atom is not None:
        polarity = atom(expr)
        if polarity is not None:
            return training if polarity else not training
    if isinstance(expr, cst.Attribute) and expr.attr.value in MODE_ATTRS:
        return training != (expr.attr.value in EVAL_NAMES)
    if isinstance(expr, cst.Name):
        if expr.value in MODE_NAMES:
            return training != (expr.value in EVAL_NAMES)
        if expr.value in mode_locals and assigns and len(assigns.get(expr.value, ())) == 1:
            return value_under_mode(assigns[expr.value][0], training, mode_locals, assigns, atom, _depth + 1)
        return None
    if isinstance(expr, cst.UnaryOperation) and isinstance(expr.operator, cst.Not):
        inner = value_under_mode(expr.expression, training, mode_locals, assigns, atom, _depth + 1)
        return None if inner is None else not inner
    if isinstance(expr, cst.BooleanOperation):
        left = value_under_mode(expr.left, training, mode_locals, assigns, atom, _depth + 1)
        right = value_under_mode(expr.right, training, mode_locals, assigns, atom, _depth + 1)
        if isinstance(expr.operator, cst.And):
            if left is False or right is False:
                return False
            return True if left is True and right is True else None
        if left is True or right is True:
            return True
        return False if left is False and right is False else None
    if isinstance(expr, cst.Comparison) and len(expr.comparisons) == 1:
        target = expr.comparisons[0]
        op = target.operator
        if isinstance(op, (cst.Equal, cst.Is, cst.NotEqual, cst.IsNot)):
            for side, other in ((expr.left, target.comparator), (target.comparator, expr.left)):
                if isinstance(other, cst.Name) and other.value in ("True", "False"):
                    value = value_under_mode(side, training, mode_locals, assigns, atom, _depth + 1)
                    if value is None:
                        return None
                    same = value == (other.value == "True")
                    return same if isinstance(op, (cst.Equal, cst.Is)) else not same
    return None

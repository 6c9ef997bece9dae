from __future__ import annotations

from typing import Dict, List, Optional, Set, Tuple

import libcst as cst

from modelint.analysis.mode import mode_guard
from modelint.analysis.regions import region_of, walk_regions
from modelint.analysis.classes import first_methods, first_param
from modelint.analysis.sampling import ForwardReach
from modelint.analysis.walk import descendants
from modelint.rules.base import Rule


def _self_key(expr: cst.CSTNode, self_name: str) -> Optional[str]:
    """`self.a.b` -> "a.b"; None unless the chain is rooted at `self_name`."""
    parts: List[str] = []
    while isinstance(expr, cst.Attribute):
        parts.append(expr.attr.value)
        expr = expr.value
    if isinstance(expr, cst.Name) and expr.value == self_name and parts:
        return ".".join(reversed(parts))
    return None


def _related(write: str, read: str) -> bool:
    """Reading `self.dropout` (calling the module) reads `self.dropout.p`; reading `self.p.x` reads `self.p`."""
    return write == read or write.startswith(read + ".") or read.startswith(write + ".")


def _targets(node: cst.CSTNode) -> List[cst.CSTNode]:
    if isinstance(node, cst.Assign):
        out: List[cst.CSTNode] = []
        for t in node.targets:
            if isinstance(t.target, (cst.Tuple, cst.List)):
                out.extend(e.value for e in t.target.elements)
            else:
                out.append(t.target)
        return out
    if isinstance(node, (cst.AugAssign, cst.AnnAssign)):
        return [node.target] if not (isinstance(node, cst.AnnAssign) and node.value is None) else []
    return []


class ModeStateMutatedInForward(Rule):
    code = "MDL106"
    name = "mode-state-mutated-in-forward"
    level = "warning"
    summary = "forward changes module state only in eval mode, and training later reads the changed value."
    what = (
        "Reports an assignment to `self.<attr>` (or `self.<child>.<attr>`) made in `forward`, or in a method "
        "of the same class that `forward` calls, on a path that runs only in eval mode - the body of "
        "`if not self.training:`, the `else` of `if self.training:`, the code after "
        "`if self.training: return ...`, or the body of `if not self.training and <cond>:` - when the same "
        "attribute is read on a path that also runs in training. Not reported: the write is undone on the "
        "training path (an assignment of a fresh value there), the class's `train()` override assigns it "
        "(the cache is rebuilt or dropped when the mode changes), the attribute is only read on eval paths "
        "(an eval-only cache; make sure something drops it when training resumes, or the next evaluation "
        "uses stale fused weights), and writes under the training arm (running statistics, "
        "step counters, EMA ranges: that is how statistics flow into evaluation). `self.training` itself is "
        "MDL204's business."
    )
    why = (
        "Module state outlives the call. `if not self.training: self.dropout_p = 0.0` turns dropout off for "
        "the first evaluation - and for every training step after it, because nothing turns it back on. "
        "The same happens to capacities, thresholds and flags computed \"for eval\" and stored on `self`: "
        "after the first validation run, training silently continues with the eval value. Compute the eval "
        "value into a local, or reset the attribute in a `train(mode)` override."
    )
    example = (
        "class Attention(nn.Module):\n"
        "    def forward(self, q, k, v):\n"
        "        if not self.training:\n"
        "            self.dropout_p = 0.0\n"
        "        return F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout_p)\n"
    )
    use_instead = (
        "class Attention(nn.Module):\n"
        "    def forward(self, q, k, v):\n"
        "        p = self.dropout_p if self.training else 0.0\n"
        "        return F.scaled_dot_product_attention(q, k, v, dropout_p=p)\n"
    )
    triggers = ("train", "eval", "deterministic", "inference")
    fix_safety = (
        "No fix: the attribute may be read elsewhere; moving it into a local or resetting it in `train()` "
        "are both right in different classes."
    )

    VALID = (
        # statistics flow from training into eval: the training arm may write them
        """
import torch
import torch.nn as nn

class QuantAct(nn.Module):
    def __init__(self, momentum=0.95):
        super().__init__()
        self.momentum = momentum
        self.register_buffer("x_min", torch.zeros(1))
        self.register_buffer("x_max", torch.zeros(1))
        self.steps = 0

    def forward(self, x):
        if self.training:
            self.x_min = self.x_min * self.momentum + x.min() * (1 - self.momentum)
            self.x_max = torch.max(self.x_max, x.max())
            self.steps += 1
        return torch.clamp(x, self.x_min.item(), self.x_max.item())
""",
        # an eval-only cache, read only in eval; a cache the train() override drops; a reset value
        """
import torch.nn as nn
import torch.nn.functional as F

class RepConv(nn.Module):
    def train(self, mode=True):
        super().train(mode)
        self.fused = None                 # drop the cache: the weights are about to change
        return self

    def forward(self, x):
        if not self.training:
            if self.fused is None:
                self.fused = self._fuse()
            return self.fused(x)
        return self.conv3(x) + self.conv1(x)

class Attention(nn.Module):
    def train(self, mode=True):
        super().train(mode)
        if mode and hasattr(self, "ab"):
            del self.ab
        else:
            self.ab = self.biases[:, self.idx]
        return self

    def forward(self, q, k):
        if not self.training:
            self.ab = self.ab.to(q.device)
        return q @ k.transpose(-2, -1) + (self.biases[:, self.idx] if self.training else self.ab)

class Router(nn.Module):
    def forward(self, logits):
        if self.training:
            self.capacity = self.train_capacity
        else:
            self.capacity = self.eval_capacity
        return logits.topk(self.capacity, 0)
""",
    )
    INVALID = (
        """
import torch.nn as nn
import torch.nn.functional as F

class Attention(nn.Module):
    def forward(self, q, k, v):
        if not self.training:
            self.dropout_p = 0.0  # expect: MDL106
        return F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout_p)
""",
        # the NLLB-MoE shape: an eval capacity stored on self, kept by the training branch afterwards
        """
import math
import torch
import torch.nn as nn

class Top2Router(nn.Module):
    def route(self, probs, nb_tokens):
        if not self.training and self.eval_capacity_fraction > 0:
            self.expert_capacity = math.ceil(self.eval_capacity_fraction * nb_tokens)  # expect: MDL106
        else:
            capacity = 2 * math.ceil(nb_tokens / self.num_experts)
            self.expert_capacity = capacity if self.expert_capacity is None else self.expert_capacity
        return probs * torch.lt(probs.cumsum(0), self.expert_capacity)

    def forward(self, x):
        return self.route(self.gate(x).softmax(-1), x.shape[0])
""",
        # after an early exit, and on a child module
        """
import torch.nn as nn

class Block(nn.Module):
    def forward(self, x):
        if self.training:
            return self.mlp(self.drop(x)) > self.threshold
        self.drop.p = 0.0  # expect: MDL106
        self.threshold, scale = 0.5, 2.0  # expect: MDL106
        return self.mlp(x) * scale + self.threshold
""",
    )

    def __init__(self, ctx, options=None):
        super().__init__(ctx, options)
        self._reach: Dict[int, Optional[ForwardReach]] = {}
        self._candidates: Dict[int, int] = {}

    # --- cheap pass: assignments to self.<attr> on an eval-only path of a method forward runs --------
    def _candidate(self, node: cst.CSTNode) -> None:
        if not any(_self_key(t, "self") is not None or isinstance(t, cst.Attribute) for t in _targets(node)):
            return
        method, classdef = self.ctx.enclosing_method_and_class()
        fw = self.ctx.framework
        if method is None or method.name.value in ("__init__", fw.train_method, fw.eval_method):
            return
        key = id(classdef)
        if key not in self._reach:
            self._reach[key] = self.ctx.forward_reach(classdef) if self.ctx.is_module_class(classdef) else None
        reach = self._reach[key]
        if reach is None or method.name.value not in reach.reach(unguarded_only=False):
            return
        fn = self.ctx.enclosing_function()
        if region_of(self.ctx.ancestors, self.ctx.function_facts(fn)) == "eval":
            self._candidates[key] = self._candidates.get(key, 0) + 1

    def visit_Assign(self, node: cst.Assign) -> None:
        self._candidate(node)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self._candidate(node)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        self._candidate(node)

    # --- full pass, only for classes with a candidate ------------------------------------------------
    def leave_ClassDef(self, node: cst.ClassDef) -> None:
        if not self._candidates.pop(id(node), 0):
            return
        reach = self._reach[id(node)]
        methods = reach.methods
        reached = reach.reach(unguarded_only=False)
        own = {id(fn) for fn in first_methods(node).values()}
        writes: List[Tuple[str, cst.CSTNode, str]] = []
        reads: Set[str] = set()
        resets: Set[str] = set()
        for name in reached:
            fn = methods[name]
            self_name = first_param(fn)
            if self_name is None:
                continue
            found: List[Tuple[str, cst.CSTNode, str]] = []
            self._scan(fn, self_name, found, reads, resets)
            if id(fn) in own:  # an inherited method's writes are reported on its own class
                writes.extend(found)
        if not writes:
            return
        fw = self.ctx.framework
        train = methods.get(fw.train_method)
        handled: Set[str] = set()
        if train is not None:
            tself = first_param(train) or "self"
            for sub in descendants(train):
                for t in _targets(sub) + ([sub.target] if isinstance(sub, cst.Del) else []):
                    k = _self_key(t, tself)
                    if k:
                        handled.add(k)
        for key, target, test in writes:
            if key == fw.mode_attr or key.endswith("." + fw.mode_attr):
                continue
            if any(_related(key, h) for h in handled) or key in resets:
                continue
            if not any(_related(key, r) for r in reads):
                continue
            self.report(
                target,
                f"`self.{key}` is assigned only on the eval path (under `{test}`) but read when training too: "
                f"after the first evaluation, training keeps using the eval value; compute it into a local, "
                f"or reset it in a `train(mode)` override",
            )

    def _scan(self, fn: cst.FunctionDef, self_name: str, writes, reads: Set[str], resets: Set[str]) -> None:
        target_ids: Set[int] = set()

        def visit(node: cst.CSTNode, region: Optional[str]) -> None:
            if isinstance(node, (cst.Assign, cst.AugAssign, cst.AnnAssign)):
                for t in _targets(node):
                    key = _self_key(t, self_name)
                    if key is None:
                        continue
                    for sub in descendants(t):
                        target_ids.add(id(sub))
                    if isinstance(node, cst.AugAssign):
                        if region != "eval":
                            reads.add(key)
                        continue
                    if region == "eval":
                        writes.append((key, t, self._eval_test(fn, node)))
                    elif node.value is not None and not self._reads_key(node.value, key, self_name):
                        # a fresh value on a path that runs in training undoes the eval write, unless
                        # it is itself conditional on the attribute (`if self.cap is None: self.cap = ...`)
                        chain = self.ctx.function_facts(fn).chain(node)
                        if not any(
                            isinstance(c, (cst.If, cst.IfExp, cst.While)) and self._reads_key(c.test, key, self_name)
                            for c in chain
                        ):
                            resets.add(key)
                return
            if isinstance(node, cst.Attribute) and id(node) not in target_ids and region != "eval":
                key = _self_key(node, self_name)
                if key is not None:
                    reads.add(key)

        walk_regions(fn.body, visit, facts=self.ctx.function_facts(fn))

    @staticmethod
    def _reads_key(expr: cst.CSTNode, key: str, self_name: str) -> bool:
        for n in descendants(expr):
            if isinstance(n, cst.Attribute):
                k = _self_key(n, self_name)
                if k is not None and _related(key, k):
                    return True
        return False

    def _eval_test(self, fn: cst.FunctionDef, node: cst.CSTNode) -> str:
        """The text of the mode check that makes `node` eval-only (for the message)."""
        facts = self.ctx.function_facts(fn)
        guard = mode_guard(facts.chain(node), facts.mode_locals)
        early_exit = False
        test = None
        if isinstance(guard, (cst.If, cst.IfExp, cst.While)):
            test = guard.test
            early_exit = isinstance(guard, cst.If) and not any(d is node for d in descendants(guard.body)) and (
                guard.orelse is None or not any(d is node for d in descendants(guard.orelse))
            )
        elif isinstance(guard, cst.BooleanOperation):
            test = guard.left
        elif isinstance(guard, cst.SimpleStatementLine):
            test = next((s.test for s in guard.body if isinstance(s, cst.Assert)), None)
        if test is None:
            return "a mode check"
        text = self.ctx.module.code_for_node(test)
        text = text if len(text) <= 60 else text[:57] + "..."
        return f"if {text}: return ..." if early_exit else text

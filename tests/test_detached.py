"""`analysis.detached.detached_only`: a forward whose result is used only cut from the graph."""

import libcst as cst
import pytest

from modelint.analysis.detached import detached_only
from modelint.analysis.walk import descendants, parent_map

DETACH = frozenset({"detach"})


def _first_net_call(body: str):
    fn = cst.parse_module(f"def f(net, x, head):\n{body}").body[0]
    call = next(n for n in descendants(fn) if isinstance(n, cst.Call) and isinstance(n.func, cst.Name) and n.func.value == "net")
    return fn, call


@pytest.mark.parametrize("body", [
    "    return head(net(x).detach())\n",
    "    return head(net(x)[0].detach())\n",
    "    return head(net(x).logits.view(2, -1).detach())\n",
    "    out = net(x)\n    return head(out.detach())\n",
    "    _, aux = net(x)\n    f = aux['p'].detach()\n    return head(f, aux=1), head.aux\n",
])
def test_detached_uses(body):
    fn, call = _first_net_call(body)
    assert detached_only(fn, call, parent_map(fn), DETACH)


@pytest.mark.parametrize("body", [
    "    return head(net(x))\n",
    "    return net(x).detach\n",  # the method read, not called
    "    out = net(x)\n    a = out.detach()\n    return head(out)\n",  # one use keeps the graph
    "    out = net(x)\n",  # never used
    "    self.out = net(x)\n    return self.out.detach()\n",  # an attribute target
    "    a, *rest = net(x)\n    return a.detach()\n",  # a starred target
    "    out = net(x)\n    out = out + 1\n    return out.detach()\n",  # rebound from the result
])
def test_uses_that_keep_the_graph(body):
    fn, call = _first_net_call(body)
    assert not detached_only(fn, call, parent_map(fn), DETACH)


def test_no_detach_methods_in_the_profile():
    fn, call = _first_net_call("    return net(x).detach()\n")
    assert not detached_only(fn, call, parent_map(fn), frozenset())

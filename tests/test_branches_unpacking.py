"""A mode flag bound by tuple unpacking (`x, use_drop = h, self.training and self.p > 0`) is a
mode-derived local, element-wise: the pytest plugin's branch finder sees `if use_drop:` and the
static rules treat it as a mode guard. An opaque right-hand side (a call) binds no mode local."""

from __future__ import annotations

import textwrap

import libcst as cst
import pytest

from modelint.analysis.branches import find_mode_branches, scan_files
from modelint.analysis.mode import function_facts, unpacked
from modelint.engine import check_source

MODEL = textwrap.dedent('''
    import torch
    from torch import nn

    class Embed(nn.Module):
        def forward(self, tokens):
            x, has_token_dropout = self.emb(tokens), self.training and self.p > 0
            if has_token_dropout:
                x = x * 0.9
            return x
''')


def _facts(body: str):
    module = cst.parse_module(textwrap.dedent(body))
    return function_facts(module.body[0])


def test_the_finder_sees_a_branch_on_an_unpacked_flag():
    [b] = find_mode_branches(MODEL, "embed.py")
    assert (b.class_name, b.method, b.condition, b.subject) == ("Embed", "forward", "has_token_dropout", "training")
    # `self.training and p > 0`: true only in training, so the true arm is training's
    assert b.true_is_train is True and b.measurable and b.line == 8


def test_scan_files_sees_it_too(tmp_path):
    (tmp_path / "embed.py").write_text(MODEL)
    [(path, [b])] = scan_files([tmp_path / "embed.py"]).items()
    assert b.condition == "has_token_dropout"


def test_without_the_flag_in_the_tuple_there_is_no_branch():
    # the same code with the flag element not reading the mode: no mode branch (the test can fail)
    assert find_mode_branches(MODEL.replace("self.training and ", ""), "embed.py") == []


@pytest.mark.parametrize("body, mode, other", [
    ("def f(self):\n    a, flag = 1, self.training\n", {"flag"}, {"a"}),
    ("def f(self):\n    [a, flag] = [1, self.training]\n", {"flag"}, {"a"}),
    ("def f(self):\n    a, (b, flag) = 1, (2, not self.training)\n", {"flag"}, {"a", "b"}),
    ("def f(self):\n    first, *rest, flag = 1, 2, 3, self.training\n", {"flag"}, {"first", "rest"}),
    ("def f(self):\n    flag, *rest = self.training, 2, 3\n", {"flag"}, {"rest"}),
    # derived to a fixpoint through an unpacked local
    ("def f(self):\n    t = self.training\n    a, flag = 0, t and self.p > 0\n", {"t", "flag"}, {"a"}),
])
def test_element_wise_unpacking(body, mode, other):
    facts = _facts(body)
    assert mode <= facts.mode_locals and not (other & facts.mode_locals), facts.mode_locals


@pytest.mark.parametrize("body", [
    "def f(self):\n    out, attn = self.layer(x, training=self.training)\n",  # a call: no positions
    "def f(self):\n    out, attn = pair\n",
    "def f(self):\n    out, attn = *xs, self.training\n",  # starred display: positions unknown
    "def f(self):\n    out, attn = 1, 2, self.training\n",  # a ValueError at run time
    "def f(self):\n    *rest, = self.training,\n",  # a starred name holds a list
])
def test_no_element_wise_information(body):
    assert _facts(body).mode_locals == frozenset()


def test_unpacked_pairs_names_with_their_elements():
    stmt = cst.parse_statement("a, *b, (c, d) = 1, 2, 3, (4, 5)")
    got = [(n, cst.Module([]).code_for_node(v)) for n, v in unpacked(stmt.body[0].targets[0].target, stmt.body[0].value)]
    assert got == [("a", "1"), ("c", "4"), ("d", "5")]


GRAD = textwrap.dedent('''
    import torch
    from torch import nn

    class Block(nn.Module):
        def forward(self, x):
            h, grads = x * 2, self.training and self.p > 0
            with torch.set_grad_enabled(grads):
                return self.fc(h)
''')


def test_the_rules_see_an_unpacked_mode_flag():
    # MDL105 (reverse): `self.training` deciding `torch.set_grad_enabled(...)`, through the unpacked flag
    [f] = check_source(GRAD, select=["MDL105"])
    assert f.code == "MDL105" and f.line == 8 and "`self.training` decides" in f.message
    # not vacuous: the same flag element without the mode is no finding
    assert check_source(GRAD.replace("self.training and ", ""), select=["MDL105"]) == []

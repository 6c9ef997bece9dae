"""Issue 15: a literal `training=True` on functional dropout (MDL101) or `multi_head_attention_forward`
(MDL103) is stated intent unless the same class / top-level function ties some dropout to the mode
(`analysis.alwayson`); the options `report-explicit-always-on` / `report-always-on` move the line."""

from __future__ import annotations

import textwrap

import pytest

from modelint.engine import check_source

PRENET = """
import torch.nn.functional as F
from torch import nn

class Prenet(nn.Module):
    def forward(self, x):
        for layer in self.layers:
            x = F.dropout(F.relu(layer(x)), self.p, training=True)
        return x
"""
# the same class with one call that passes the mode: the literal is now the odd one out
MIXED = PRENET.replace("        return x\n", "        return F.dropout(x, self.p, training=self.training)\n")
MHA = """
import torch.nn.functional as F
from torch import nn

class Attn(nn.Module):
    def forward(self, q, k, v):
        return F.multi_head_attention_forward(q, k, v, self.e, self.h, self.w, self.b, None, None, False,
                                              self.p, self.ow, self.ob, training=True)[0]
"""


def lines(source: str, code: str, options=None):
    found = check_source(textwrap.dedent(source), select=[code], rule_options={code: options} if options else None)
    return [f.line for f in found if f.code == code]


def test_literal_alone_in_its_class_is_intent_unless_the_option_asks():
    assert lines(PRENET, "MDL101") == []
    assert lines(PRENET, "MDL101", {"report-explicit-always-on": True}) == [8]


def test_literal_beside_a_mode_following_call_is_reported_and_report_always_on_silences_it():
    (found,) = [f for f in check_source(textwrap.dedent(MIXED), select=["MDL101"]) if f.code == "MDL101"]
    assert found.line == 8 and "other dropout here follows the mode" in found.message
    assert lines(MIXED, "MDL101", {"report-always-on": False}) == []


@pytest.mark.parametrize("other", [
    "if self.training:\n            x = F.dropout(x, 0.1)",          # a mode check around another call
    "x = F.dropout(x, self.p if self.training else 0.0)",             # a mode-dependent probability
    "x = F.alpha_dropout(x, 0.1, training=self.training)",           # another mode-taking dropout call
])
def test_every_way_of_tying_dropout_to_the_mode_counts(other):
    src = PRENET.replace("        return x\n", f"        {other}\n        return x\n")
    assert lines(src, "MDL101") == [8]


def test_the_scope_is_the_class_not_the_file():
    """A second class of the file that passes the mode says nothing about the prenet's intent."""
    other = "\nclass Decoder(nn.Module):\n    def forward(self, x):\n        return F.dropout(x, 0.1, training=self.training)\n"
    assert lines(PRENET + other, "MDL101") == []


def test_the_omitted_argument_is_reported_whatever_the_class_does():
    src = PRENET.replace("self.p, training=True)", "self.p)")
    assert lines(src, "MDL101") == [8]


def test_mha_literal_follows_the_same_split():
    assert lines(MHA, "MDL103") == []
    assert lines(MHA, "MDL103", {"report-explicit-always-on": True}) == [7]
    tied = MHA.replace("    def forward(self, q, k, v):\n",
                       "    def forward(self, q, k, v):\n        q = F.dropout(q, 0.1, training=self.training)\n")
    assert lines(tied, "MDL103") == [8]

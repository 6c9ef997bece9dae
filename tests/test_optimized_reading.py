"""Which models an optimizer holds, read from its construction (`analysis.optimized`, and the summaries'
`params=` reading in `analysis.modemodel`)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import libcst as cst

from modelint.analysis.index import ProjectIndex, facts_from_source
from modelint.analysis.optimized import _Facts


def _facts(src: str) -> _Facts:
    return _Facts(cst.parse_module(textwrap.dedent(src)))


def test_a_list_grown_with_readable_parameters_is_read_with_its_additions():
    facts = _facts("""
        params = list(student.parameters())
        params.extend(list(hint.parameters()))
        params += list(head.parameters())
        opt = torch.optim.Adam(params=params, lr=1e-3)
        opt.step()
    """)
    assert facts.optimized == frozenset({"student", "hint", "head"})
    assert facts.by_name["opt"] == frozenset({"student", "hint", "head"})


def test_a_list_grown_with_something_unreadable_stays_unreadable():
    facts = _facts("""
        params = []
        for p in model.parameters():
            if p.requires_grad:
                params.append(p)
        opt = torch.optim.SGD(params, lr=0.1)
        opt.step()
    """)
    assert facts.optimized is None and facts.by_name["opt"] is None


def test_the_summary_reads_an_optimizer_built_with_params_as_a_keyword():
    src = textwrap.dedent("""
        import torch

        def distil(student, teacher, loader):
            opt = torch.optim.Adam(params=student.parameters(), lr=1e-3)
            for x in loader:
                loss = (student(x) - teacher(x)).pow(2).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
    """).encode()
    effects = []
    for text in (src, src.replace(b"params=student", b"student")):  # the keyword, and positional as before
        index = ProjectIndex()
        index.add(facts_from_source(text, Path("/x/kd.py"), "kd"))
        effects.append(index.effect("kd.distil"))
    keyword, positional = effects
    assert keyword.owns_optimizers and "student" in keyword.trains and "teacher" not in keyword.trains
    assert (keyword.owns_optimizers, keyword.trains) == (positional.owns_optimizers, positional.trains)

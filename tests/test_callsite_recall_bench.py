"""The mutation engine of bench/callsite_recall.py, on a synthetic training script (no network,
no modelint run): anchors are found or fail loudly, edits land where they should, the original ->
mutant line map and the sites that define "near" are right, and the bench's patterns produce
parseable mutants that contain the injected bug."""

from __future__ import annotations

import ast

import pytest

from tests.helpers import load_bench

mut = load_bench("callsite_mutations")
bench = load_bench("callsite_recall")

SCRIPT = '''\
import torch


def train(model, loader, opt):
    model.train()
    for x, y in loader:
        opt.zero_grad()
        model(x).sum().backward()
        opt.step()


@torch.no_grad()
def evaluate(model, loader):
    model.eval()
    for x, y in loader:
        out = model(x)


def main(model, loader, val_loader, opt):
    for epoch in range(3):
        train(model, loader, opt)
        evaluate(model, val_loader)
'''

SPEC = bench.Script(
    "synthetic", "example/none", "0" * 40, ("train.py",),
    epoch_loop=mut.Anchor(r"for epoch in range"),
    step=mut.Anchor(r"opt\.step\(\)", within="train"),
    train_switch=mut.Anchor(r"model\.train\(\)", within="train"),
    eval_switch=mut.Anchor(r"model\.eval\(\)", within="evaluate"),
    eval_block=(mut.Anchor(r"evaluate\(model, val_loader\)", within="main"),),
    eval_forward=mut.Anchor(r"out = model\(x\)", within="evaluate"),
    val_loader="val_loader", model="model",
    build=None,
)


def mutant() -> "mut.Mutant":
    return mut.Mutant({"train.py": mut.Doc("train.py", SCRIPT)}, "train.py")


def test_an_anchor_is_the_one_matching_line_of_its_function():
    doc = mutant().doc()
    assert doc.find(mut.Anchor(r"model\.eval\(\)")) == 14
    assert doc.find(mut.Anchor(r"model\(x\)", within="evaluate")) == 16
    assert doc.find(mut.Anchor(r"for x, y in loader", after=r"def evaluate")) == 15


@pytest.mark.parametrize("anchor", [
    mut.Anchor(r"model\.compile\(\)"),                  # missing
    mut.Anchor(r"for x, y in loader"),                  # ambiguous: two lines match
    mut.Anchor(r"model\.eval\(\)", within="train"),     # exists, but not in that function
    mut.Anchor(r"opt\.step", within="no_such_function"),
])
def test_a_missing_or_ambiguous_anchor_is_a_bench_error(anchor):
    with pytest.raises(mut.AnchorError):
        mutant().doc().find(anchor)


def test_deleting_a_statement_maps_lines_and_marks_the_site():
    m = mutant()
    doc = m.doc()
    doc.delete_stmt(doc.find(SPEC.train_switch))
    text = doc.text()
    assert "model.train()" not in text
    ast.parse(text)
    mapping = doc.new_line_of()
    assert 5 not in mapping and mapping[6] == 5 and mapping[14] == 13
    assert doc.sites() == [5]  # the line after the deletion
    assert 5 in m.windows(0)["train.py"] and 6 not in m.windows(0)["train.py"]


def test_deleting_the_only_statement_of_a_block_leaves_pass():
    doc = mut.Doc("t.py", "for i in range(3):\n    model.train()\nx = 1\n")
    doc.delete_stmt(2)
    assert doc.text() == "for i in range(3):\n    pass\nx = 1\n"


def test_insertions_take_the_anchor_indentation_and_extend_after_the_whole_statement():
    doc = mutant().doc()
    loop = doc.find(mut.Anchor(r"for x, y in loader", within="train"))
    doc.insert_after_stmt(loop, ["with torch.no_grad():", "    model(x)"])
    lines = doc.text().splitlines()
    assert lines[9:11] == ["    with torch.no_grad():", "        model(x)"]
    assert doc.sites() == [10, 11]


def test_replace_in_requires_its_text():
    doc = mutant().doc()
    line = doc.find(SPEC.eval_switch)
    doc.replace_in(line, "model.eval()", "model.train()")
    assert "    model.train()\n    for x, y in loader:\n        out" in doc.text()
    with pytest.raises(mut.AnchorError):
        doc.replace_in(line, "model.eval()", "x")


def test_add_import_goes_after_the_imports_once():
    doc = mutant().doc()
    doc.add_import("from learner import Learner")
    doc.add_import("from learner import Learner")
    assert doc.text().splitlines()[:2] == ["import torch", "from learner import Learner"]


def test_rename_counts_whole_words_only():
    doc = mut.Doc("t.py", "def evaluate(m):\n    pass\nevaluate(m)\nevaluate_all(m)\n")
    assert doc.rename("evaluate", "compute_val_loss") == 2
    assert "evaluate_all(m)" in doc.text()


def test_every_pattern_makes_a_parseable_mutant_of_the_synthetic_script():
    applied = 0
    for pattern in bench.PATTERNS:
        m = mutant()
        try:
            pattern.apply(m, SPEC)
        except bench.NotApplicable:
            continue
        m.check_parses()
        assert any(d.sites() for d in m.docs.values()), pattern.name
        applied += 1
    assert applied >= 15


def test_the_cross_file_pattern_moves_the_switch_into_a_helper_module():
    m = mutant()
    bench.p301_cross_file(m, SPEC)
    assert set(m.docs) == {"train.py", "evalmode.py"}
    text = m.doc().text()
    assert "prepare_for_eval(model)" in text and "from evalmode import prepare_for_eval" in text
    assert "model.train()" not in text
    assert "net.eval()" in m.docs["evalmode.py"].text()


def test_a_pattern_whose_anchor_is_missing_raises_instead_of_counting_a_miss():
    spec = bench.Script(**{**SPEC.__dict__, "eval_switch": mut.Anchor(r"model\.freeze\(\)")})
    with pytest.raises(mut.AnchorError):
        bench.p302_plain(mutant(), spec)


def test_judge_counts_only_new_findings_near_a_site():
    m = mutant()
    bench.p302_plain(m, SPEC)  # deletes line 14; sites: 14 (the next line) and the forward (now 15)
    p = next(p for p in bench.PATTERNS if p.name == "302-plain")
    hit = {"path": "train.py", "line": 15, "code": "MDL302", "message": "m"}
    far = {"path": "train.py", "line": 4, "code": "MDL302", "message": "m"}
    assert bench.judge(p, SPEC, m, [], [hit], 2).status == "caught"
    assert bench.judge(p, SPEC, m, [], [far], 2).status == "missed"
    # the original already reported it on the forward line (16 before, 15 after): not new
    old = {"path": "train.py", "line": 16, "code": "MDL302", "message": "m"}
    assert bench.judge(p, SPEC, m, [old], [hit], 2).status == "baseline"

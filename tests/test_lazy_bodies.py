"""Class bodies scanned on first use (`classbodies.LazyBodies`): the same mapping as the eager scan,
and no scan for what nobody asks (the point of it: 1.2 CPU s of a cold check of timm)."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from modelint.analysis import classbodies
from modelint.analysis.classbodies import TRAIN_CALLS, LazyBodies, bodies_of, class_bodies, with_bodies
from modelint.analysis.index import facts_from_source

TRAINER = b'''import torch.nn as nn
class Block(nn.Module):
    """Builds nn.Dropout(0.5) in its docstring only."""
    def __init__(self, dim, norm_layer=None):
        super().__init__()
        norm_layer = norm_layer or nn.BatchNorm2d
        self.norm = norm_layer(dim)
        self.drop = nn.Dropout(0.1)
    class Inner(nn.Module):
        def forward(self, x):
            return x if self.training else -x
def fit(model):
    model.train()
    trainer.fit(model)
'''
PLAIN = b"import torch.nn as nn\nclass Head(nn.Module):\n    def __init__(self):\n        self.fc = nn.Linear(2, 2)\n"
DOCSTRING_ONLY = b'"""Call `model.train()` before fitting."""\nclass C:\n    pass\n'
# `.training` / `.fit_transform` are not `.train(` / `.fit(`; `.train (` with a space and a blanked
# empty docstring argument are (the scan's pattern allows spaces; blanking makes them).
MODE_READ_ONLY = b"class D:\n    def f(self, x):\n        return x if self.training else scaler.fit_transform(x)\n"
SPACED = b"def run(m):\n    m.train ()\n    m.fit\t(x)\n"
BLANKED_ARG = b'def run(m):\n    m.train("""""")\n'


def _facts(data: bytes):
    return facts_from_source(data, Path("m.py"))


@pytest.mark.parametrize("data", [TRAINER, PLAIN, DOCSTRING_ONLY, MODE_READ_ONLY, SPACED, BLANKED_ARG, b"", b"x = 1\n"])
def test_same_mapping_as_the_eager_scan(data):
    facts = _facts(data)
    eager = class_bodies(data, facts)
    lazy = LazyBodies(data, facts)
    assert (TRAIN_CALLS in lazy) == (TRAIN_CALLS in eager)
    assert lazy.get(TRAIN_CALLS) == eager.get(TRAIN_CALLS)
    assert list(lazy.items()) == list(eager.items())  # same entries, same order
    assert dict(lazy) == eager and len(lazy) == len(eager)
    assert lazy.get("Missing") is None and "Missing" not in lazy


def test_nothing_is_scanned_until_asked(monkeypatch):
    calls = []
    real = classbodies.class_bodies
    monkeypatch.setattr(classbodies, "class_bodies", lambda s, f: calls.append(1) or real(s, f))
    facts = with_bodies(_facts(TRAINER), TRAINER)
    plain = with_bodies(_facts(PLAIN), PLAIN)
    assert calls == []
    assert TRAIN_CALLS not in bodies_of(plain)  # no `.train` / `.fit` in the text: answered unscanned
    assert calls == []
    assert bodies_of(facts).get("Block").calls  # first real question: one scan
    assert bodies_of(facts).get("Block.Inner").mode_lines and TRAIN_CALLS in bodies_of(facts)
    assert calls == [1]


def test_mode_reads_are_answered_unscanned(monkeypatch):
    calls = []
    real = classbodies.class_bodies
    monkeypatch.setattr(classbodies, "class_bodies", lambda s, f: calls.append(1) or real(s, f))
    assert TRAIN_CALLS not in LazyBodies(MODE_READ_ONLY, _facts(MODE_READ_ONLY))
    assert calls == []
    assert TRAIN_CALLS in LazyBodies(SPACED, _facts(SPACED)) and TRAIN_CALLS in LazyBodies(BLANKED_ARG, _facts(BLANKED_ARG))


def test_a_docstring_mention_of_train_is_still_scanned_and_not_a_call():
    lazy = LazyBodies(DOCSTRING_ONLY, _facts(DOCSTRING_ONLY))
    assert TRAIN_CALLS not in lazy  # `.train(` is in the text, but in a docstring (blanked by the scan)


def test_pickles_for_spawned_workers():
    lazy = LazyBodies(TRAINER, _facts(TRAINER))
    again = pickle.loads(pickle.dumps(lazy))
    assert dict(again) == class_bodies(TRAINER, _facts(TRAINER))

"""Pass-through helpers (`analysis.passthrough`): which functions hand back the object they are given,
and how a model built through one in another file keeps its mode sensitivity (MDL301)."""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

from modelint.analysis.index import facts_from_source
from modelint.analysis.passthrough import passed_parameter, passes_from_defs
from modelint.cache import Cache
from modelint.engine import EngineSettings, check_paths

PASSING = [
    ("def to_gpu(m):\n    return m.cuda()\n", 0),
    ("def place(m, device=None):\n    return m.to(device) if device is not None else m\n", 0),
    ("def put(device, net):\n    if device == 'cpu':\n        return net\n    return net.to(device).float()\n", 1),
    ("def cast(m, half):\n    m = m.half() if half else m.float()\n    return m\n", 0),
    ("def ident(x):\n    '''doc'''\n    return (x)\n", 0),
]
NOT_PASSING = [
    "def wrap(m):\n    return DataParallel(m)\n",  # a new object around it
    "def pick(a, b):\n    if a:\n        return b\n    return a\n",  # two parameters
    "def rebuilt(m):\n    m = Wrapper(m)\n    return m\n",  # rebound to something else
    "def last(m, ms):\n    for m in ms:\n        pass\n    return m\n",  # rebound by a loop
    "def gen(m):\n    yield m\n    return m\n",
    "def nested(m):\n    def inner():\n        return m\n    return inner\n",
    "def attr(m):\n    return m.module\n",  # a part of it
    "def maybe(m, c):\n    return m.cuda() if c else None\n",
    "def glob():\n    return model\n",  # not a parameter
]


def _fn(text: str) -> ast.FunctionDef:
    return ast.parse(textwrap.dedent(text)).body[0]


@pytest.mark.parametrize("text,position", PASSING)
def test_helpers_that_return_what_they_are_given(text, position):
    assert passed_parameter(_fn(text)) == position
    name = text.split("(")[0][4:]
    assert passes_from_defs([(name, text.encode())]) == {name: position}


@pytest.mark.parametrize("text", NOT_PASSING)
def test_near_misses_pass_nothing(text):
    assert passed_parameter(_fn(text)) is None
    assert passes_from_defs([("f", text.encode())]) == {}


def test_a_long_function_is_not_read():
    text = "def f(m):\n" + "    x = 1\n" * 20 + "    return m\n"
    assert passes_from_defs([("f", text.encode())]) == {}


def test_pass_throughs_survive_the_facts_cache_and_old_entries_are_misses(tmp_path):
    cache = Cache(tmp_path, salt="s")
    facts = facts_from_source(PASSING[0][0].encode(), Path("/x/pkg/u.py"), "pkg.u")
    assert facts.passes == {"to_gpu": 0}
    cache.put_facts("k", facts)
    assert cache.get_facts("k").passes == {"to_gpu": 0}
    entry = next(tmp_path.rglob("*.json"))
    entry.write_text(entry.read_text().replace('"passes"', '"other"'))
    assert cache.get_facts("k") is None


HELPERS = """\
import torch

def trans_to_cuda(variable):
    if torch.cuda.is_available():
        return variable.cuda()
    else:
        return variable
"""
NOT_A_PASS = HELPERS.replace("return variable\n", "return torch.nn.DataParallel(variable)\n")
MAIN = """\
import torch
from torch import nn
from helpers import *

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(100, 16)
        self.fc = nn.Linear(16, 100){extra}

    def forward(self, x):
        return self.fc(self.emb(x).mean(1))

def evaluate(model, batches):
    model.eval()
    with torch.no_grad():
        return [model(x).argmax(1) for x, _ in batches]

def main(batches):
    model = trans_to_cuda(Net())
    opt = torch.optim.Adam(model.parameters())
    for epoch in range(5):
        for x, y in batches:
            loss = nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        evaluate(model, batches)
"""
DROPOUT = "\n        self.drop = nn.Dropout(0.5)"


def _call_line(extra=""):
    return MAIN.format(extra=extra).splitlines().index("        evaluate(model, batches)") + 1


def _mdl301(tmp_path, helpers, extra="", cache=None):
    (tmp_path / "helpers.py").write_text(helpers)
    (tmp_path / "main.py").write_text(MAIN.format(extra=extra))
    paths = [str(tmp_path / "helpers.py"), str(tmp_path / "main.py")]
    result = check_paths(paths, EngineSettings(select=("MDL301",), root=str(tmp_path), jobs=1, cache=cache))
    return sorted((Path(f.path).name, f.line) for f in result.findings)


def test_a_mode_free_model_through_another_files_pass_through_is_mode_free(tmp_path):
    assert _mdl301(tmp_path, HELPERS) == []


def test_near_misses_of_the_pass_through_stay_reported(tmp_path):
    # the model holds dropout; or the helper wraps it in something the checked code does not show
    assert _mdl301(tmp_path, HELPERS, DROPOUT) == [("main.py", _call_line(DROPOUT))]
    assert _mdl301(tmp_path, NOT_A_PASS) == [("main.py", _call_line())]


def test_cache_follows_a_change_of_the_helper(tmp_path):
    cache = Cache(tmp_path / ".modelint_cache", salt="test")
    assert _mdl301(tmp_path, HELPERS, cache=cache) == []
    assert _mdl301(tmp_path, NOT_A_PASS, cache=cache) == [("main.py", _call_line())]
    assert _mdl301(tmp_path, HELPERS, cache=cache) == []
    assert cache.hits > 0

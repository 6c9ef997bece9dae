"""`modelint.analysis.positions` gives exactly LibCST's positions (it only computes them faster)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import List

import libcst as cst
import pytest
from libcst.metadata import MetadataWrapper, PositionProvider, WhitespaceInclusivePositionProvider

from modelint.analysis.positions import syntactic_positions, whitespace_inclusive_positions
from modelint.rules import all_rules

REPO = Path(__file__).resolve().parent.parent

EDGE_CASES = [
    "",
    "\n",
    "x",
    "x = 1",
    "# only a comment",
    "\n\n# comment\n\n",
    "if x:\n    pass\n",
    "def f():\n\tpass",
    "a = 1\r\nb = 2\r\n",
    "a = 1\rb = 2\r",
    "@d\n@e(1)\nclass A(B, metaclass=M):\n    '''doc'''\n    x: int = 1\n",
    "x = '''a\nb\r\nc'''\n",
    'f(\n  a,  # c\n  *b, **c)\n',
    "with (open(a) as f, open(b) as g):\n    pass\n",
    "match x:\n    case [1, *rest] if rest:\n        pass\n    case {'k': v}:\n        pass\n",
    "async def f():\n    async with a as b:\n        await c\n    return [x async for x in y]\n",
    "try:\n    pass\nexcept* E:\n    pass\nfinally:\n    pass\n",
    "lambda x, /, y=1, *a, z, **k: (x if y else z)\n",
    "x = f'{a!r:>{width}} {b}'\n",
    "class A: x = 1; y = 2\n",
    "if a: b\nelif c: d\nelse: e\n",
    "while x:\n    break\nelse:\n    continue\n",
    "global a\nnonlocal_b = (yield)\n",
    "x = a[1:2, ::3]\ndel a[0], b.c\n",
    "from . import (a as b,\n    c)\nimport d.e as f\n",
]


def sources() -> List[str]:
    out = list(EDGE_CASES)
    out += [p.read_text(encoding="utf-8") for p in sorted((REPO / "fixtures").rglob("*.py"))]
    for rule in all_rules():
        out += list(rule.VALID) + list(rule.INVALID)
    spec = importlib.util.find_spec("torch")  # a few large real files, when torch is installed (not imported)
    if spec is not None and spec.origin is not None:
        root = Path(spec.origin).parent
        for rel in ("nn/modules/dropout.py", "nn/modules/batchnorm.py", "optim/adam.py"):
            if (root / rel).is_file():
                out.append((root / rel).read_text(encoding="utf-8"))
    return out


@pytest.mark.parametrize("provider, ours", [(PositionProvider, syntactic_positions),
                                            (WhitespaceInclusivePositionProvider, whitespace_inclusive_positions)])
def test_positions_are_libcsts(provider, ours):
    checked = 0
    for source in sources():
        try:
            module = cst.parse_module(source)
        except cst.ParserSyntaxError:
            continue
        expected = MetadataWrapper(module, unsafe_skip_copy=True).resolve(provider)
        got = ours(module)
        assert len(got) == len(expected)
        for node, rng in expected.items():
            assert node in got
            assert got[node] == rng, (source[:200], type(node).__name__)
        checked += 1
    assert checked > 100


def test_lookup_of_a_foreign_node_is_a_key_error():
    got = syntactic_positions(cst.parse_module("x = 1\n"))
    other = cst.parse_module("x = 1\n").body[0]
    assert other not in got
    with pytest.raises(KeyError):
        got[other]


def test_falls_back_to_libcsts_providers_without_the_private_codegen_state(monkeypatch):
    """If a LibCST release moves its (private) CodegenState, positions still come, from LibCST."""
    import modelint.analysis.positions as positions
    from modelint import cstcompat

    module = cst.parse_module("x = 1\nif x:\n    y = f(x)  # c\n")
    fast = [positions.syntactic_positions(module)[n] for n in module.body]
    monkeypatch.setattr(cstcompat, "CodegenState", None)
    slow = [positions.syntactic_positions(module)[n] for n in module.body]
    assert fast == slow and slow[1].end.line == 3


def test_code_at_indent_without_the_private_codegen_state_gives_only_single_line_code(monkeypatch):
    """The fixes' fallback: multi-line code cannot be re-indented without LibCST's codegen state."""
    from modelint import cstcompat

    module = cst.parse_module("if x:\n    y = f(a,\n          b)\n    z = g(a)\n")
    multi = module.body[0].body.body[0].body[0].value
    single = module.body[0].body.body[1].body[0].value
    assert cstcompat.code_at_indent(module, multi, ["    "]) == "f(a,\n          b)"
    assert cstcompat.code_at_indent(module, single, ["    "]) == "g(a)"
    monkeypatch.setattr(cstcompat, "CodegenState", None)
    assert cstcompat.code_at_indent(module, multi, ["    "]) is None
    assert cstcompat.code_at_indent(module, single, ["    "]) == "g(a)"

"""Issue 15's structure patterns: module factories in the cross-file index (MDL201), "registered on
every path" (MDL201), and the own-flag restore that modelint's tracer does (MDL204).

The rule examples (`VALID` / `INVALID` in each rule file) test the rules' behaviour; these tests pin
the analysis pieces under them and the project-level cases examples cannot express (several files,
the cache, modelint's own source)."""

from __future__ import annotations

from pathlib import Path

import libcst as cst

from modelint.analysis.index import ProjectIndex, facts_from_source, factory_classes
from modelint.analysis.structure import exclusive, path_guards, runs_whenever
from modelint.cache import Cache
from modelint.engine import check_source

ROOT = Path(__file__).resolve().parent.parent

FACTORIES = b'''import torch.nn as nn
from .blocks import Block as B


def linear(d):
    return nn.Linear(d, d)


def wrapped(
    d,
):
    """A signature over several lines, a bound local returned."""
    layer = B(d)
    init(layer)
    return layer


def helper(x):
    return normalise(x)


class Net(nn.Module):
    def method(self):
        return nn.ReLU()


def after_class(flag):
    if flag:
        return Net()
    return None
'''


def test_index_records_top_level_factories_and_what_they_return():
    facts = facts_from_source(FACTORIES, Path("/x/pkg/m.py"), "pkg.m")
    assert facts.factories == {
        "linear": ["torch.nn.Linear"],
        "wrapped": ["pkg.blocks.Block"],
        "after_class": ["pkg.m.Net"],
    }  # `helper` returns no class instance; `Net.method` is a method, not a module-level factory


def test_factory_lookup_follows_package_reexports_and_enters_the_fingerprint():
    index = ProjectIndex()
    index.add(facts_from_source(FACTORIES, Path("/x/pkg/m.py"), "pkg.m"))
    before = index.fingerprint()
    index.add(facts_from_source(b"from .m import linear\n", Path("/x/pkg/__init__.py"), "pkg"))
    assert factory_classes(index, "pkg.linear") == ["torch.nn.Linear"]
    assert factory_classes(index, "pkg.m.helper") == []
    assert factory_classes(index, "elsewhere.linear") == []
    changed = ProjectIndex(modules=dict(index.modules))
    changed.add(facts_from_source(FACTORIES.replace(b"return nn.Linear", b"return make"), Path("/x/pkg/m.py"), "pkg.m"))
    assert changed.fingerprint() != index.fingerprint() != before


def test_a_sibling_imported_by_its_bare_name_inside_a_package_folder():
    """`from nets import Net` in a script of a folder that has an `__init__.py` (run from that folder):
    the index names the file `pkg.nets`; a bare `nets` is that module when exactly one checked module
    ends so and none is named `nets` itself. Ambiguous names and framework names stay as written."""
    index = ProjectIndex()
    index.add(facts_from_source(b"import torch.nn as nn\nclass Net(nn.Module):\n    pass\n", Path("/x/pkg/nets.py"), "pkg.nets"))
    index.add(facts_from_source(b"class A:\n    pass\n", Path("/x/pkg/utils.py"), "pkg.utils"))
    index.add(facts_from_source(b"class A:\n    pass\n", Path("/x/other/utils.py"), "other.utils"))
    assert index.rooted("nets.Net") == "pkg.nets.Net" and index.bases_of("nets.Net") == ["torch.nn.Module"]
    assert index.locate("nets.Net") is not None
    assert index.rooted("utils.A") == "utils.A" and index.locate("utils.A") is None  # two modules end so
    assert index.rooted("torch.nn.Module") == "torch.nn.Module"
    assert index.rooted("pkg.nets.Net") == "pkg.nets.Net"


def test_factories_survive_the_facts_cache(tmp_path):
    cache = Cache(tmp_path, salt="s")
    facts = facts_from_source(FACTORIES, Path("/x/pkg/m.py"), "pkg.m")
    cache.put_facts("k", facts)
    assert cache.get_facts("k").factories == facts.factories
    starred = facts_from_source(b"from .base import *\n", Path("/x/pkg/s.py"), "pkg.s")
    cache.put_facts("s", starred)
    assert cache.get_facts("s").stars == ["pkg.base"]
    entry = next(p for p in tmp_path.rglob("*.json") if '"pkg.s"' in p.read_text())
    entry.write_text(entry.read_text().replace('"stars"', '"other"'))
    assert cache.get_facts("s") is None  # written before star imports were indexed: a miss


def _package(tmp_path, files):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    for name, text in files.items():
        (pkg / name).write_text(text)
    index = ProjectIndex()
    for f in sorted(pkg.glob("*.py")):
        index.add(facts_from_source(f.read_bytes(), f))
    return pkg, index


MODEL = '''import torch.nn as nn
from . import make_block, make_act

class Stack(nn.Module):
    def __init__(self, d, n):
        super().__init__()
        self.blocks = [make_block(d) for _ in range(n)]
        self.acts = [make_act() for _ in range(n)]
'''


def test_a_factory_of_another_file_is_followed_through_the_index(tmp_path):
    pkg, index = _package(tmp_path, {
        "__init__.py": "from .layers import make_block, make_act\n",
        "layers.py": "import torch.nn as nn\n\ndef make_block(d):\n    return nn.Sequential(nn.Linear(d, d), nn.Dropout(0.1))\n\n"
                     "def make_act():\n    return nn.GELU()\n",
        "model.py": MODEL,
    })
    found = check_source(MODEL, path=str(pkg / "model.py"), select=["MDL201"], index=index)
    assert [(f.line, f.code) for f in found] == [(7, "MDL201")]  # stateless `make_act()` is not reported
    alone = check_source(MODEL, path="model.py", select=["MDL201"])
    assert alone == []  # without the other file nothing says make_block builds a module


def _guards_of(source: str):
    """path_guards of each `mark(...)` call, in order."""
    module = cst.parse_module(source)
    out = []

    class Walk(cst.CSTVisitor):
        def __init__(self):
            self.stack = []

        def on_visit(self, node):
            self.stack.append(node)
            if isinstance(node, cst.Call) and isinstance(node.func, cst.Name) and node.func.value == "mark":
                out.append(path_guards(list(self.stack)))
            return True

        def on_leave(self, node):
            self.stack.pop()

    module.visit(Walk())
    return out


def test_registered_on_every_path_or_on_one_branch():
    a, b, c, d, e = _guards_of(
        "def f(x, y):\n"
        "    mark(0)\n"
        "    if x:\n"
        "        mark(1)\n"
        "    else:\n"
        "        mark(2)\n"
        "    if y:\n"
        "        mark(3)\n"
        "        return\n"
        "    mark(4)\n"
    )
    assert exclusive(b, c) and exclusive(d, e) and not exclusive(a, b) and not exclusive(b, d)
    assert runs_whenever([a], b) and runs_whenever([b, c], a)  # both arms together cover every path
    assert not runs_whenever([b], a) and not runs_whenever([d], a) and not runs_whenever([b, d], a)
    assert runs_whenever([b], b)


def test_modelint_trace_state_needs_no_suppression():
    path = ROOT / "modelint" / "trace" / "state.py"
    source = path.read_text()
    assert "modelint: ignore" not in source
    assert check_source(source, path="modelint/trace/state.py", select=["MDL204"]) == []
    # the same holder that also switches its module with eval() is the bug the rule exists for
    buggy = source.replace("        self.training = module.training\n",
                           "        self.training = module.training\n        module.eval()\n", 1)
    assert buggy != source
    assert [f.code for f in check_source(buggy, path="modelint/trace/state.py", select=["MDL204"])] == ["MDL204"]

"""The package's shape, read from its source with `ast` (nothing is imported):

- no import cycles inside `modelint/` (module-level and function-level imports alike: a function
  that imports its caller's module is a cycle waiting for the first module-level import);
- no module imports a private (`_x`) name of another module, nor reaches one as `module._x`;
- only `modelint/trace/` imports torch at module level (the static checker never imports torch);
- `modelint/codes.py`, the catalogue's ground floor, imports nothing of modelint's.

Imports under `if TYPE_CHECKING:` are left out: they never run, and are the standard way to name
a type without importing its module.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Set, Tuple

PACKAGE = Path(__file__).resolve().parent.parent / "modelint"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> Dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py")) if "__pycache__" not in p.parts}


MODULES = _modules()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, module_level_only: bool = False) -> Iterator[ast.stmt]:
    """Every Import/ImportFrom that can run, skipping `if TYPE_CHECKING:` bodies; with
    `module_level_only`, not descending into function bodies (class bodies run at import)."""
    stack = list(ast.iter_child_nodes(tree))
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
            continue
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        if module_level_only and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        stack.extend(ast.iter_child_nodes(node))


def _package_of(name: str) -> str:
    return name if MODULES[name].name == "__init__.py" else name.rpartition(".")[0]


def _absolute(importer: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = _package_of(importer).split(".")
    base = base[: len(base) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def _targets(importer: str, node: ast.stmt) -> Iterator[Tuple[str, Optional[str]]]:
    """(module imported, name imported from it or None) for each name of an import statement."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield alias.name, None
        return
    module = _absolute(importer, node)
    for alias in node.names:
        yield module, alias.name


def _resolve(module: str, name: Optional[str]) -> Optional[str]:
    """The modelint module an import runs: `from a import b` is module `a.b` when that exists."""
    if name is not None and f"{module}.{name}" in MODULES:
        return f"{module}.{name}"
    return module if module in MODULES else None


def _tree(name: str) -> ast.Module:
    return ast.parse(MODULES[name].read_text(encoding="utf-8"), filename=str(MODULES[name]))


TREES = {name: _tree(name) for name in MODULES}


def import_graph() -> Dict[str, Set[str]]:
    graph: Dict[str, Set[str]] = {name: set() for name in MODULES}
    for importer, tree in TREES.items():
        for node in _imports(tree):
            for module, name in _targets(importer, node):
                target = _resolve(module, name)
                if target is not None and target != importer:
                    graph[importer].add(target)
    return graph


def cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    on_stack: Set[str] = set()
    stack: List[str] = []
    out: List[List[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return out


def _path_within(graph: Dict[str, Set[str]], component: List[str]) -> List[str]:
    """One concrete cycle through the component's first module, for the failure message."""
    members = set(component)
    start = component[0]
    parents: Dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for node in frontier:
            for child in sorted(graph[node] & members):
                if child == start:
                    path = [start]
                    while node != start:
                        path.append(node)
                        node = parents[node]
                    return [start] + path[1:][::-1] + [start]
                if child not in parents:
                    parents[child] = node
                    nxt.append(child)
        frontier = nxt
    return component


def test_the_graph_builder_sees_a_known_edge_and_a_known_cycle():
    """The checks below must be able to fail: the graph has edges the package is known to have, and
    the cycle finder finds a planted cycle."""
    graph = import_graph()
    assert "modelint.codes" in graph["modelint.catalog"]
    assert "modelint.findings" in graph["modelint.report"]
    planted = {**graph, "modelint.codes": graph["modelint.codes"] | {"modelint.catalog"}}
    assert any({"modelint.codes", "modelint.catalog"} <= set(c) for c in cycles(planted))


def test_no_import_cycles():
    graph = import_graph()
    found = [" -> ".join(_path_within(graph, c)) for c in cycles(graph)]
    assert not found, "import cycles inside modelint/:\n" + "\n".join(found)


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _own_package_module(importer: str, module: str) -> bool:
    """A private submodule of the importer's own package (`trace.runner` -> `trace._child`)."""
    return module in MODULES and module.rpartition(".")[0] == _package_of(importer)


def _dotted(node: ast.expr) -> Optional[str]:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


def _private_imports(importer: str, tree: ast.Module) -> Iterator[str]:
    aliases: Dict[str, str] = {}  # local name -> what it is bound to (a dotted path)
    for node in _imports(tree):
        for alias, (module, name) in zip(node.names, _targets(importer, node)):
            target = _resolve(module, name)
            if target is None or target == importer:
                pass
            elif name is not None and _private(name) and not (target.endswith(f".{name}") and _own_package_module(importer, target)):
                yield f"{importer} imports {name} from {module}"
            elif name is None and any(_private(p) for p in module.split(".")) and not _own_package_module(importer, target):
                yield f"{importer} imports private module {module}"
            if name is None:
                aliases[alias.asname or module.split(".")[0]] = module if alias.asname else module.split(".")[0]
            else:
                aliases[alias.asname or name] = f"{module}.{name}"
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            base = _dotted(node.value)
            if base is None or base.split(".")[0] not in aliases:
                continue
            head, _, rest = base.partition(".")
            module = aliases[head] + (f".{rest}" if rest else "")
            if module in MODULES and module != importer and f"{module}.{node.attr}" not in MODULES:
                yield f"{importer} uses {module}.{node.attr}"


def test_no_module_imports_a_private_name_of_another():
    found = sorted({v for name, tree in TREES.items() for v in _private_imports(name, tree)})
    assert not found, "private names used across modules:\n" + "\n".join(found)


def test_the_private_name_check_sees_both_spellings():
    tree = ast.parse("from modelint.catalog import _load_snapshot\nfrom modelint import engine\nengine._x()\n"
                     "import modelint.cache\nmodelint.cache._y\nfrom modelint.trace import _child\n")
    assert sorted(_private_imports("modelint.cli", tree)) == [
        "modelint.cli imports _child from modelint.trace",
        "modelint.cli imports _load_snapshot from modelint.catalog",
        "modelint.cli uses modelint.cache._y",
        "modelint.cli uses modelint.engine._x",
    ]
    own = ast.parse("from modelint.trace import _child\nfrom . import _child as c\n")
    assert list(_private_imports("modelint.trace.runner", own)) == []


def _torch_at_module_level(tree: ast.Module, importer: str) -> List[str]:
    out = []
    for node in _imports(tree, module_level_only=True):
        for module, _name in _targets(importer, node):
            if module == "torch" or module.startswith("torch."):
                out.append(f"{importer}:{node.lineno} imports {module}")
    return out


def test_only_trace_imports_torch_at_module_level():
    found = [v for name, tree in TREES.items() if not (name + ".").startswith("modelint.trace.")
             for v in _torch_at_module_level(tree, name)]
    assert not found, "torch imported at module level outside modelint/trace/:\n" + "\n".join(found)
    inside = [v for name, tree in TREES.items() if name.startswith("modelint.trace.") for v in _torch_at_module_level(tree, name)]
    assert inside, "the check found no torch import even in modelint/trace/: it cannot see one"


def test_codes_imports_nothing_of_modelint():
    found = [f"line {node.lineno}: {module}" for node in _imports(TREES["modelint.codes"])
             for module, _ in _targets("modelint.codes", node) if module == "modelint" or module.startswith("modelint.")]
    assert not found, "modelint/codes.py must import nothing of modelint's:\n" + "\n".join(found)


# --- the data flow: discovery -> engine -> rules (analysis/, frameworks/) -> findings -> report ---

def _in(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


# package -> the modelint modules it must never import (directly), and why.
FORBIDDEN = {
    "modelint.rules": (("modelint.engine", "modelint.cli", "modelint.config", "modelint.report", "modelint.cache",
                        "modelint.discovery", "modelint.sources", "modelint.atomic", "modelint.fixing",
                        "modelint.suppressions", "modelint.modecov", "modelint.trace"),
                       "a rule never reads config, prints or touches files; the engine runs it"),
    "modelint.analysis": (("modelint.rules", "modelint.engine", "modelint.cli", "modelint.config", "modelint.report",
                           "modelint.cache", "modelint.fixing", "modelint.modecov", "modelint.trace"),
                          "analysis computes facts for the rules and knows nothing above them"),
    "modelint.frameworks": (("modelint.",), "a framework profile is data: it imports only frameworks/"),
    "modelint.report": (("modelint.engine", "modelint.rules", "modelint.analysis", "modelint.cli", "modelint.config",
                         "modelint.fixing"), "a format renders findings; it runs nothing"),
    "modelint.cli": (("modelint.rules",), "the CLI never knows a rule"),
    # The Rust front end: parsing and per-file facts for the Rust rules, run by the engine's dispatch.
    "modelint.rust": (("modelint.engine", "modelint.cli", "modelint.config", "modelint.report", "modelint.cache",
                       "modelint.discovery", "modelint.fixing", "modelint.modecov", "modelint.trace"),
                      "a front end parses and runs its rules for the engine; it knows nothing above it"),
}


def _violations(graph: Dict[str, Set[str]]) -> List[str]:
    out = []
    for package, (banned, why) in FORBIDDEN.items():
        for importer, targets in graph.items():
            if not _in(importer, package):
                continue
            for target in sorted(targets):
                if _in(target, package):
                    continue
                if any(target.startswith(b) if b.endswith(".") else _in(target, b) for b in banned):
                    out.append(f"{importer} imports {target} ({why})")
    return out


def test_imports_follow_the_data_flow():
    found = _violations(import_graph())
    assert not found, "imports against the data flow:\n" + "\n".join(found)


def test_the_data_flow_check_sees_a_backward_import():
    graph = import_graph()
    rule = next(m for m in graph if m.startswith("modelint.rules.mdl"))
    planted = {**graph, rule: graph[rule] | {"modelint.config"}, "modelint.frameworks": {"modelint.codes"}}
    found = _violations(planted)
    assert f"{rule} imports modelint.config (a rule never reads config, prints or touches files; the engine runs it)" in found
    assert any(v.startswith("modelint.frameworks imports modelint.codes") for v in found)


def _calls_to(tree: ast.Module, names: Set[str]) -> List[int]:
    return [n.lineno for n in ast.walk(tree)
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in names]


def test_rules_and_analysis_never_print_or_open_files():
    """(Example programs inside strings do not count: only real calls.)"""
    found = [f"{name}:{line}" for name, tree in TREES.items()
             if _in(name, "modelint.rules") or _in(name, "modelint.analysis") or _in(name, "modelint.frameworks")
             or _in(name, "modelint.rust")
             for line in _calls_to(tree, {"print", "open", "input"})]
    assert not found, "print/open/input in rules, analysis or frameworks:\n" + "\n".join(found)
    assert _calls_to(ast.parse("x = 1\nprint(x)\n'print(y)'\n"), {"print"}) == [2]


def test_tree_sitter_is_imported_only_when_used():
    """The `rust` extra is optional: no module imports tree-sitter at module level, so modelint
    runs (and checks Python) without it."""
    found = [f"{name}:{node.lineno}" for name, tree in TREES.items() for node in _imports(tree, module_level_only=True)
             for module, _ in _targets(name, node) if module.split(".")[0] in ("tree_sitter", "tree_sitter_rust")]
    assert not found, "tree-sitter imported at module level:\n" + "\n".join(found)
    inside = [name for name, tree in TREES.items() for node in _imports(tree)
              for module, _ in _targets(name, node) if module == "tree_sitter"]
    assert inside, "the check found no tree-sitter import at all: it cannot see one"

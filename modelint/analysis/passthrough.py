"""Pass-through helpers: `def to_device(m): return m.cuda() if CUDA else m` returns the object it is given.

A model built through one (`model = trans_to_cuda(Net(...))`) is the model it was handed, so its mode
sensitivity is that model's (`keysensitivity`, `sensitivity`); without the fact a mode-free model built
this way read "unknown" and MDL301 reported it (measuring set 17's DHCN: embeddings and linear layers
only, left in eval after validation). The fact is computed once per file for the index
(`FileFacts.passes`, from `passes_from_defs`), by text like the rest of the index, for short
top-level functions only (`MAX_BODY_LINES`: such helpers are a few lines; a longer function is not
read).

A function passes its parameter `i` through when it returns on at least one path and every `return`
gives that parameter itself, or it after a chain of the profiles' methods that return their receiver
(`mode_preserving_methods`: `.cuda()`, `.to(device)`, `.float()`; `.train()` / `.eval()` too, so the
object, not its mode, is what passes) or a conditional expression of such values. A `yield`, a nested
`def` or `lambda` holding the returns, or any other returned value makes it no pass-through.
"""

from __future__ import annotations

import ast
import re
from typing import Dict, Iterable, Optional, Tuple

from modelint.frameworks import MODE_PRESERVING_METHODS

MAX_BODY_LINES = 12
_RETURNED_WORD = re.compile(rb"\breturn\b[ \t(]*(\w*)")


def _returned_name(expr: Optional[ast.expr]) -> Optional[str]:
    """The name `expr` gives back unchanged (`m`, `m.cuda()`, `m.to(d) if c else m`), else None."""
    if isinstance(expr, ast.IfExp):
        a, b = _returned_name(expr.body), _returned_name(expr.orelse)
        return a if a is not None and a == b else None
    while isinstance(expr, ast.Call) and isinstance(expr.func, ast.Attribute) and expr.func.attr in MODE_PRESERVING_METHODS:
        expr = expr.func.value
    return expr.id if isinstance(expr, ast.Name) else None


def passed_parameter(fn: ast.FunctionDef) -> Optional[int]:
    """The position of the parameter `fn` returns on every `return` (see the module doc), else None."""
    params = [a.arg for a in (*fn.args.posonlyargs, *fn.args.args)]
    names = set()
    rebound = []  # (name, value) of each binding of a plain name
    stack = list(fn.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Yield, ast.YieldFrom, ast.Lambda, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            return None
        if isinstance(node, ast.Return):
            names.add(_returned_name(node.value))
        elif isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) for t in node.targets):
            rebound += [(t.id, node.value) for t in node.targets]
            stack.append(node.value)
            continue
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            rebound.append((node.id, None))  # `for m in ...`, `with ... as m`, `m += 1`
        stack.extend(ast.iter_child_nodes(node))
    if len(names) != 1:
        return None
    name = names.pop()
    if any(n == name and (value is None or _returned_name(value) != name) for n, value in rebound):
        return None  # `m = Wrapper(m)`; `m = m.cuda()` still passes it
    return params.index(name) if name in params else None


def passes_from_defs(defs: Iterable[Tuple[str, bytes]]) -> Dict[str, int]:
    """Short top-level function (name, text of its `def`) -> the parameter it passes through; only
    the functions that do are listed."""
    out: Dict[str, int] = {}
    for name, text in defs:
        if text.count(b"\n") > MAX_BODY_LINES + 3 or b"return" not in text:
            continue  # long (+3: the signature and two blank lines after it), or returns nothing
        words = set(_RETURNED_WORD.findall(text))
        signature = text.split(b":\n", 1)[0]
        if len(words) != 1 or not re.search(rb"\b%s\b" % re.escape(next(iter(words)) or b"-"), signature):
            continue  # the returns do not all start with one parameter: no parse needed
        try:
            tree = ast.parse(text)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
        fn = tree.body[0] if tree.body else None
        if isinstance(fn, ast.FunctionDef):
            i = passed_parameter(fn)
            if i is not None:
                out[name] = i
    return out

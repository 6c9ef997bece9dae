#!/usr/bin/env python3
"""Mutation recall of MDL304 on real evaluation code (issue #14): in every function of the given
trees that switches a model to eval with a plain `X.eval()` statement and then runs `X(...)` under
`torch.no_grad()` / `inference_mode()` (or is decorated with one), replace that statement by
`X.train()` and check the file alone (no cross-file index) with MDL304 selected. Prints each site
with found / missed and the totals. The clean file must have no MDL304 finding in that function.

    python bench/mdl304_real_recall.py DIR [DIR ...]

Never imports the checked code; reads the files and checks in-memory copies.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from modelint.engine import check_source

_EVAL_STMT = re.compile(r"^(?P<indent>[ \t]+)(?P<key>[A-Za-z_][\w.]*)\.eval\(\)[ \t]*(#.*)?$")
_NO_GRAD = re.compile(r"no_grad|inference_mode")


def sites(text: str):
    """(line index, key) of `X.eval()` statements followed, within 40 lines of the same function,
    by a no-grad context and a call of X."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = _EVAL_STMT.match(line)
        if not m:
            continue
        key, indent = m.group("key"), len(m.group("indent"))
        window = []
        for later in lines[i + 1 : i + 40]:
            if later.strip() and len(later) - len(later.lstrip()) < indent:
                break
            window.append(later)
        body = "\n".join(window)
        if _NO_GRAD.search(body) and re.search(rf"(?<![\w.]){re.escape(key)}\(", body):
            yield i, key


def main(dirs):
    found = missed = 0
    for root in dirs:
        for path in sorted(Path(root).rglob("*.py")):
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            for i, key in sites(text):
                lines = text.splitlines()
                before = {f.line for f in check_source(text, path=str(path), select=["MDL304"])}
                lines[i] = lines[i].replace(f"{key}.eval()", f"{key}.train()", 1)
                after = {f.line for f in check_source("\n".join(lines) + "\n", path=str(path), select=["MDL304"])}
                hit = (i + 1) in after and (i + 1) not in before
                found += hit
                missed += not hit
                print(f"{'found ' if hit else 'MISSED'} {path}:{i + 1}: {key}.eval() -> {key}.train()")
    total = found + missed
    print(f"\n{found} of {total} injected train()-in-evaluation bugs found"
          + (f" ({100 * found / total:.0f}%)" if total else ""))


if __name__ == "__main__":
    main(sys.argv[1:] or ["."])

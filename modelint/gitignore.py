"""gitignore-style patterns (as `git` documents them), compiled to regular expressions.

Used for `.gitignore` files and for the `exclude` / `per-file-ignores` globs. Written here rather
than imported because the common library pulls in asyncio and ssl at import time, which a
pre-commit hook pays on every run.

Supported: `#` comments, `\\#`/`\\!` escapes, trailing-space trimming, `!` negation, trailing `/`
(directories only), anchoring by a leading or inner `/`, `*`, `?`, `[...]`, and `**` in leading
(`**/x`), trailing (`x/**`) and inner (`a/**/b`) positions. Within one file the last matching
pattern wins.
"""

from __future__ import annotations

import re
from typing import Iterable, List, Optional


def _translate(glob: str) -> str:
    out, i, n = [], 0, len(glob)
    while i < n:
        c = glob[i]
        if c == "*":
            if glob.startswith("**", i):
                before_ok = i == 0 or glob[i - 1] == "/"
                after = glob[i + 2 : i + 3]
                if before_ok and after == "/":
                    out.append("(?:.*/)?")  # `**/`: zero or more folders
                    i += 3
                    continue
                if before_ok and after == "":
                    out.append(".*")  # trailing `/**`: everything inside
                    i += 2
                    continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = i + 1
            if j < n and glob[j] in "!^":
                j += 1
            if j < n and glob[j] == "]":
                j += 1
            while j < n and glob[j] != "]":
                j += 1
            if j >= n:
                out.append(re.escape(c))
            else:
                body = glob[i + 1 : j]
                if body[:1] in "!^":
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = j
        elif c == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(glob[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


class Pattern:
    __slots__ = ("negate", "dir_only", "regex", "source")

    def __init__(self, line: str):
        self.source = line
        self.negate = line.startswith("!")
        if self.negate:
            line = line[1:]
        elif line.startswith("\\!") or line.startswith("\\#"):
            line = line[1:]
        self.dir_only = line.endswith("/")
        line = line.rstrip("/")
        anchored = "/" in line
        line = line.lstrip("/")
        body = _translate(line)
        prefix = "" if anchored else "(?:.*/)?"
        # A match on a folder covers everything below it.
        self.regex = re.compile(f"^{prefix}{body}(?P<below>/.*)?$", re.DOTALL)

    def match(self, rel: str, is_dir: bool) -> bool:
        m = self.regex.match(rel)
        if m is None:
            return False
        if self.dir_only and not is_dir and m.group("below") is None:
            return False
        return True


def parse_lines(lines: Iterable[str]) -> List[Pattern]:
    patterns = []
    for raw in lines:
        line = raw.rstrip("\n").rstrip("\r")
        if not line.strip() or line.startswith("#"):
            continue
        # Trailing spaces are ignored unless escaped.
        stripped = line.rstrip(" ")
        if stripped.endswith("\\") and len(stripped) < len(line):
            stripped += " "
        patterns.append(Pattern(stripped))
    return patterns


class PatternList:
    """An ordered list of patterns; `check` says ignored (True), re-included (False) or no match (None)."""

    def __init__(self, lines: Iterable[str]):
        self.patterns = parse_lines(lines)

    def check(self, rel: str, is_dir: bool = False) -> Optional[bool]:
        result: Optional[bool] = None
        for p in self.patterns:
            if p.match(rel, is_dir):
                result = not p.negate
        return result

    def matches(self, rel: str, is_dir: bool = False) -> bool:
        return bool(self.check(rel, is_dir))

    def __bool__(self) -> bool:
        return bool(self.patterns)

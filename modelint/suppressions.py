"""Suppression comments: `# modelint: ignore[CODES]` and `# noqa[: CODES]`, and code matching.

Only real comments count (found with the tokenizer), never the same text inside a string. Codes
match by prefix, as in `select`: `ignore[MDL1]` silences every MDL1xx code.
"""

from __future__ import annotations

import io
import re
import tokenize
from typing import Dict, List, Optional, Sequence, Tuple

_SUPPRESS = re.compile(r"#\s*modelint\s*:\s*ignore(?:\[(?P<codes>[^\]]*)\])?", re.IGNORECASE)
_NOQA = re.compile(r"#\s*noqa(?::\s*(?P<codes>[A-Za-z]+[0-9]+(?:[\s,]+[A-Za-z]+[0-9]+)*))?", re.IGNORECASE)
_SUPPRESSION_WORD = re.compile(r"modelint|noqa", re.IGNORECASE)

# line -> [(kind, codes or None for "everything")]; kind is "modelint" or "noqa".
Suppressions = Dict[int, List[Tuple[str, Optional[Tuple[str, ...]]]]]


def _split_codes(text: Optional[str]) -> Optional[Tuple[str, ...]]:
    if text is None:
        return None
    return tuple(c.upper() for c in re.split(r"[\s,]+", text.strip()) if c)


def comment_suppressions(source: str) -> Suppressions:
    """line -> [(kind, codes or None for "everything")] from real comments (not strings)."""
    out: Suppressions = {}
    if not _SUPPRESSION_WORD.search(source):
        return out  # the tokenizer is pure Python; most files have no suppression comment at all
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return out
    for tok in tokens:
        if tok.type != tokenize.COMMENT:
            continue
        m = _SUPPRESS.search(tok.string)
        if m:
            out.setdefault(tok.start[0], []).append(("modelint", _split_codes(m.group("codes"))))
        m = _NOQA.search(tok.string)
        if m:
            out.setdefault(tok.start[0], []).append(("noqa", _split_codes(m.group("codes"))))
    return out


def code_matches(code: str, patterns: Optional[Sequence[str]]) -> bool:
    """Does `code` fall under `patterns` (codes or prefixes; None means every code)?"""
    return patterns is None or any(code.startswith(p) for p in patterns)

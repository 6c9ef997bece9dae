"""What the report does not show: suppression comments (`# modelint: ignore[CODES]`,
`# noqa[: CODES]`), per-file ignores and unselected codes.

Only real comments count (found with the tokenizer), never the same text inside a string. Codes
match by prefix, as in `select`: `ignore[MDL1]` silences every MDL1xx code. The tool's own errors
(MDL000, MDL999) are always shown: a file that was not (fully) checked must never look clean.
"""

from __future__ import annotations

import io
import re
import tokenize
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple

from modelint.codes import ALWAYS_SHOWN, UNUSED_SUPPRESSION
from modelint.findings import Finding, tool_finding

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
    return comments_suppressions((tok.start[0], tok.string) for tok in tokens if tok.type == tokenize.COMMENT)


def comments_suppressions(comments: Iterable[Tuple[int, str]], marker: str = "#") -> Suppressions:
    """line -> entries from (line, comment text) pairs a parser found; `marker` starts a comment
    (`//` in Rust: `// modelint: ignore[MDL104]`)."""
    out: Suppressions = {}
    for line, comment in comments:
        if marker != "#" and comment.startswith(marker):
            comment = "#" + comment[len(marker):]
        m = _SUPPRESS.search(comment)
        if m:
            out.setdefault(line, []).append(("modelint", _split_codes(m.group("codes"))))
        m = _NOQA.search(comment)
        if m:
            out.setdefault(line, []).append(("noqa", _split_codes(m.group("codes"))))
    return out


def code_matches(code: str, patterns: Optional[Sequence[str]]) -> bool:
    """Does `code` fall under `patterns` (codes or prefixes; None means every code)?"""
    return patterns is None or any(code.startswith(p) for p in patterns)


class SuppressionTracker:
    """One file's suppression comments, remembering which ones silenced a finding (for MDL001)."""

    def __init__(self, source: str, by_line: Optional[Suppressions] = None):
        # `by_line`: a front end that found the comments itself (Rust) passes them instead.
        self.by_line = comment_suppressions(source) if by_line is None else by_line
        self.used: Set[Tuple[int, int]] = set()

    def suppresses(self, code: str, lines: Iterable[int]) -> bool:
        """Is `code` silenced by a comment on one of `lines` (a finding's first line and its
        statement's)? Every matching comment counts as used."""
        suppressed = False
        for line in lines:
            for i, (_kind, codes) in enumerate(self.by_line.get(line, ())):
                if code_matches(code, codes):
                    suppressed = True
                    self.used.add((line, i))
        return suppressed

    def unused(self, path: str, select: Sequence[str]) -> List[Finding]:
        """MDL001 for each `# modelint: ignore` comment that silenced nothing (`# noqa` is shared
        with other linters and never reported)."""
        selected_static = tuple(c for c in select if c != UNUSED_SUPPRESSION)
        out: List[Finding] = []
        for line, entries in sorted(self.by_line.items()):
            for i, (kind, codes) in enumerate(entries):
                if kind != "modelint" or (line, i) in self.used:
                    continue
                # Only complain about codes we actually ran; a suppression for a rule that is not
                # selected in this run may well be needed in another.
                if codes is not None and not any(c in selected_static or any(s.startswith(c) for s in selected_static)
                                                 for c in codes):
                    continue
                what = f"[{', '.join(codes)}]" if codes else ""
                out.append(tool_finding(path, UNUSED_SUPPRESSION,
                                        f"unused suppression `modelint: ignore{what}`: no finding on this line", line, 1))
        return out


def shown(path: str, findings: List[Finding], select: Sequence[str],
          per_file_ignores: Tuple[Tuple[str, Tuple[str, ...]], ...], root: str) -> List[Finding]:
    """What the report shows of a file's findings: selected codes (tool errors always), minus
    per-file ignores ((glob, codes) pairs, globs relative to `root`)."""
    ignored = per_file_ignored(path, per_file_ignores, root)
    return [f for f in findings
            if (f.code in select or f.code in ALWAYS_SHOWN) and not (ignored and code_matches(f.code, ignored))]


def per_file_ignored(path: str, per_file_ignores: Tuple[Tuple[str, Tuple[str, ...]], ...], root: str) -> Tuple[str, ...]:
    """The code patterns that `per-file-ignores` (glob, codes) pairs switch off for `path`."""
    if not per_file_ignores:
        return ()
    from modelint.discovery import glob_match

    return tuple(c for pattern, codes in per_file_ignores if glob_match(pattern, path, root) for c in codes)

"""Documentation generated from the catalogue: `modelint rule CODE` / `--all` and the README tables.

Every code describes itself (`RuleInfo`: summary, what, why, examples, options with their docs,
fix safety), so nothing here is written twice. The README's rule table and fix table sit between
marker comments and are rewritten by

    python -m modelint.docs --write README.md

`tests/test_docs.py` fails when they drift from the catalogue.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any, Dict, Iterable, Optional, Sequence

from modelint.codes import RuleInfo

REGEN_COMMAND = "python -m modelint.docs --write README.md"


# --- `modelint rule CODE` -----------------------------------------------------------------------


def toml_value(value: Any) -> str:
    """An option default as it is written in pyproject.toml (true, 0.5, "x", ["a", "b"])."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


def _header(info: RuleInfo) -> str:
    flags = f"{info.level}{', fixable' if info.fixable else ''}{'' if info.default else ', off by default'}"
    return f"{info.code} {info.name} ({flags})"


def _options_section(info: RuleInfo) -> list:
    if not info.options:
        return []
    out = [f"## Options ([tool.modelint.rules.{info.code}])"]
    for name, default in info.options.items():
        doc = info.option_docs.get(name, "")
        out.append(f"- `{name} = {toml_value(default)}`" + (f": {doc}" if doc else ""))
    return out + [""]


def rule_doc(info: RuleInfo) -> str:
    """What `modelint rule CODE` prints: header, summary, then each section that has content."""
    out = [_header(info), "", info.summary, ""]
    for title, body in (("What it does", info.what), ("Why is this bad?", info.why)):
        if body:
            out += [f"## {title}", body, ""]
    for title, body in (("Example", info.example), ("Use instead", info.use_instead)):
        if body:
            out += [f"## {title}", "```python", body.rstrip("\n"), "```", ""]
    out += _options_section(info)
    if info.fix_safety:
        out += ["## Fix safety", info.fix_safety, ""]
    return "\n".join(out).rstrip("\n")


def all_rule_docs(infos: Iterable[RuleInfo]) -> str:
    """What `modelint rule --all` prints: every code's `rule_doc`, in code order, a blank line apart."""
    return "\n\n".join(rule_doc(i) for i in infos)


# --- README tables ------------------------------------------------------------------------------


def _cell(text: str) -> str:
    """One Markdown table cell: on one line, with `|` escaped."""
    return " ".join(text.split()).replace("|", "\\|")


def rule_table(infos: Iterable[RuleInfo]) -> str:
    rows = ["| code | name | level | default | what goes wrong |", "| --- | --- | --- | --- | --- |"]
    for i in infos:
        rows.append(f"| {i.code} | {i.name} | {i.level} | {'on' if i.default else 'off'} | {_cell(i.summary)} |")
    return "\n".join(rows)


def fix_table(infos: Iterable[RuleInfo]) -> str:
    """One row per fixable code, from its `fix_safety` (what the fix changes, when it is safe)."""
    rows = ["| rule | what the fix changes, and whether it is safe |", "| --- | --- |"]
    for i in infos:
        if i.fixable:
            rows.append(f"| {i.code} {i.name} | {_cell(i.fix_safety) or '(not documented)'} |")
    return "\n".join(rows)


def undocumented(infos: Iterable[RuleInfo]) -> list:
    """'MDL101: option x has no doc'-style problems: the catalogue is not fully self-described."""
    problems = []
    for i in infos:
        if i.fixable and not i.fix_safety.strip():
            problems.append(f"{i.code}: fixable but no fix_safety")
        for name in i.options:
            if not i.option_docs.get(name, "").strip():
                problems.append(f"{i.code}: option {name} has no entry in option_docs")
        for name in set(i.option_docs) - set(i.options):
            problems.append(f"{i.code}: option_docs documents {name}, which is not an option")
    return problems


def tables(infos: Sequence[RuleInfo]) -> Dict[str, str]:
    """Generated block name -> its Markdown."""
    return {"rules": rule_table(infos), "fixes": fix_table(infos)}


def _markers(name: str):
    return f"<!-- generated: {name} ({REGEN_COMMAND}) -->", f"<!-- end generated: {name} -->"


def update_readme(text: str, blocks: Dict[str, str]) -> str:
    """`text` with each marked block replaced by its generated content. A missing or doubled
    marker pair is a ValueError: silently skipping it would let the test pass on a README
    that is no longer generated."""
    for name, body in blocks.items():
        begin, end = _markers(name)
        pattern = re.compile(re.escape(begin) + r"\n.*?" + re.escape(end), re.S)
        if len(pattern.findall(text)) != 1:
            raise ValueError(f"expected exactly one '{begin}' ... '{end}' block")
        text = pattern.sub(lambda _m: f"{begin}\n{body}\n{end}", text)
    return text


def _catalog_infos() -> list:
    from modelint.catalog import catalog

    return list(catalog().values())


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m modelint.docs", allow_abbrev=False,
                                     description="Print or rewrite the README tables generated from the catalogue.")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", metavar="README", help="rewrite the generated blocks of README in place")
    mode.add_argument("--check", metavar="README", help="exit 1 if the generated blocks of README are out of date")
    args = parser.parse_args(argv)
    blocks = tables(_catalog_infos())
    path = args.write or args.check
    if path is None:
        print("\n\n".join(blocks.values()))
        return 0
    old = Path(path).read_text(encoding="utf-8")
    try:
        new = update_readme(old, blocks)
    except ValueError as exc:
        print(f"{path}: {exc}", file=sys.stderr)
        return 2
    if args.check:
        if new != old:
            print(f"{path}: generated tables are out of date; run `{REGEN_COMMAND}`", file=sys.stderr)
            return 1
        return 0
    if new != old:
        from modelint.atomic import write_atomic

        write_atomic(path, new)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""SARIF 2.1.0, as read by GitHub code scanning (`github/codeql-action/upload-sarif`)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

from modelint import __version__
from modelint.catalog import catalog
from modelint.findings import Finding, file_line

NAME = "sarif"
SUFFIXES = (".sarif",)

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_LEVEL = {"error": "error", "warning": "warning", "info": "note"}


def _uri(path: str, root: str) -> str:
    p = Path(path)
    try:
        rel = os.path.relpath(p.resolve(), Path(root).resolve()) if p.is_absolute() else str(p)
    except ValueError:  # different drive on Windows
        rel = str(p)
    return Path(rel).as_posix()


def _rule_descriptor(info) -> dict:
    help_text = "\n\n".join(
        part
        for part in (
            info.what and f"What it does: {info.what}",
            info.why and f"Why is this bad? {info.why}",
            info.use_instead and f"Use instead:\n{info.use_instead}",
        )
        if part
    ) or info.summary
    return {
        "id": info.code,
        "name": info.name,
        "shortDescription": {"text": info.summary},
        "fullDescription": {"text": info.what or info.summary},
        "help": {"text": help_text},
        "defaultConfiguration": {"level": _LEVEL.get(info.level, "warning")},
        "properties": {"fixable": info.fixable, "tags": [info.kind]},
    }


def _fix(f: Finding, root: str) -> dict:
    """The finding's fix as a SARIF `fix` (edit positions are 1-based, end exclusive, in code
    points, as SARIF's regions under `columnKind: unicodeCodePoints`). Notebook fixes are left out:
    their positions are in cell coordinates, not in the notebook's JSON text."""
    replacements = [
        {
            "deletedRegion": {"startLine": e.line, "startColumn": e.column, "endLine": e.end_line, "endColumn": e.end_column},
            "insertedContent": {"text": e.content},
        }
        for e in f.fix.edits
    ]
    return {
        "description": {"text": f"{f.fix.title} ({f.fix.applicability} fix)"},
        "artifactChanges": [{"artifactLocation": {"uri": _uri(f.path, root), "uriBaseId": "%SRCROOT%"}, "replacements": replacements}],
        "properties": {"applicability": f.fix.applicability},
    }


def render(findings: Sequence[Finding], ctx) -> str:
    cat = catalog()
    rules = [_rule_descriptor(info) for info in cat.values()]
    index = {r["id"]: i for i, r in enumerate(rules)}
    results = []
    for f in findings:
        if f.cell is not None:  # the notebook's JSON line; the cell position is in the message
            region = {"startLine": file_line(f)}
        else:
            region = {"startLine": f.line, "startColumn": f.column}
        if f.end_line and f.cell is None:
            region["endLine"] = f.end_line
            if f.end_column:
                region["endColumn"] = f.end_column
        result = {
            "ruleId": f.code,
            "level": _LEVEL.get(f.level, "warning"),
            "message": {"text": f.message if f.cell is None else f"cell {f.cell}, line {f.line}: {f.message}"},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": _uri(f.path, ctx.root), "uriBaseId": "%SRCROOT%"},
                        "region": region,
                    }
                }
            ],
        }
        if f.code in index:
            result["ruleIndex"] = index[f.code]
        if f.cell is not None:
            result["properties"] = {"cell": f.cell, "cellLine": f.line, "cellColumn": f.column}
        elif f.fix is not None and f.fix.edits:
            result["fixes"] = [_fix(f, ctx.root)]
        results.append(result)
    doc = {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": ctx.tool_name,
                        "version": __version__,
                        "informationUri": "https://pypi.org/project/modelint/",
                        "rules": rules,
                    }
                },
                "results": results,
                "columnKind": "unicodeCodePoints",
            }
        ],
    }
    return json.dumps(doc, indent=2) + "\n"

"""A JSON list of finding objects (stable key order, sorted findings)."""

from __future__ import annotations

import json
from typing import Sequence

from modelint.findings import Finding

NAME = "json"
SUFFIXES = (".json",)


def render(findings: Sequence[Finding], ctx) -> str:
    return json.dumps([f.to_dict() for f in findings], indent=2) + "\n"

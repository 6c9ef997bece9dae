"""`modelint check fixtures/` must report exactly the `# expect:` annotations, no more, no fewer."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from modelint import notebook
from modelint.catalog import catalog
from tests.helpers import diff, expected_from_source

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"


def _static_codes():
    return {c for c, i in catalog().items() if i.kind in ("static", "tool") and i.default}


def test_fixtures_report_exactly_the_annotated_findings():
    proc = subprocess.run(
        [sys.executable, "-m", "modelint", "check", "fixtures", "--format", "json", "--jobs", "1"],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert proc.returncode in (0, 1), proc.stderr
    findings = json.loads(proc.stdout)
    codes = _static_codes()
    expected = []
    for path in sorted(FIXTURES.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        expected += [(rel, None, line, code) for line, code in expected_from_source(path.read_text(), only=codes)]
    for path in sorted(FIXTURES.rglob("*.ipynb")):
        rel = path.relative_to(ROOT).as_posix()
        nb = notebook.load(path.read_bytes())
        for cell in nb.cells:
            expected += [(rel, cell.number, line, code) for line, code in expected_from_source(cell.source, only=codes)]
    for path in sorted(FIXTURES.rglob("*.rs")):  # Rust fixtures (the `rust` extra): `// expect: CODE`
        rel = path.relative_to(ROOT).as_posix()
        expected += [(rel, None, line, code)
                     for line, code in expected_from_source(path.read_text().replace("// expect:", "# expect:"), only=codes)]
    got = sorted((Path(f["path"]).as_posix(), f.get("cell"), f["line"], f["code"]) for f in findings)
    assert got == sorted(expected), diff(sorted(expected), got)
    assert proc.returncode == (1 if expected else 0)


def test_every_rule_has_a_fixture_finding():
    """Each default static rule is exercised by at least one buggy fixture."""
    text = "\n".join(p.read_text() for p in [*FIXTURES.rglob("*.py*"), *FIXTURES.rglob("*.rs")])
    missing = [c for c, i in catalog().items() if i.kind == "static" and i.default and f"expect: {c}" not in text
               and f", {c}" not in text]
    assert not missing, f"no fixture expects {missing}"

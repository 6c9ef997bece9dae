"""Output formats: text, json, github, sarif (validated against the SARIF 2.1.0 schema)."""

from __future__ import annotations

import json

import pytest

from modelint.findings import Finding
from modelint.report import ReportContext, format_names, render
from tests.conftest import BUGGY

F1 = Finding("pkg/a.py", 7, 16, "MDL101", "dropout, 100% sure: a,b", name="functional-dropout-ignores-mode",
             level="error", end_line=7, end_column=33)
F2 = Finding("pkg/b.py", 3, 1, "MDL102", "line one\nline two", name="functional-dropout-never-active",
             level="warning", end_line=4, end_column=2)
F3 = Finding("pkg/c.ipynb", 2, 5, "MDL101", "in a cell", name="functional-dropout-ignores-mode", level="error", cell=3)


def test_text_format():
    out = render([F2, F1], "text", ReportContext(files_checked=5))
    lines = out.splitlines()
    assert lines[0] == "pkg/a.py:7:16: MDL101 dropout, 100% sure: a,b"
    assert lines[-1] == "Found 2 findings in 2 of 5 files checked."
    assert render([F3], "text", ReportContext(files_checked=1)).startswith("pkg/c.ipynb:cell 3:2:5: MDL101")


def test_json_format_fields():
    data = json.loads(render([F1], "json", ReportContext()))
    assert data == [
        {
            "code": "MDL101",
            "name": "functional-dropout-ignores-mode",
            "message": "dropout, 100% sure: a,b",
            "path": "pkg/a.py",
            "line": 7,
            "column": 16,
            "end_line": 7,
            "end_column": 33,
            "level": "error",
            "fix": None,
        }
    ]
    assert json.loads(render([F3], "json", ReportContext()))[0]["cell"] == 3


def test_github_format_escapes():
    out = render([F1, F2], "github", ReportContext()).splitlines()
    assert out[0] == (
        "::error file=pkg/a.py,line=7,col=16,endLine=7,endColumn=33,"
        "title=MDL101 functional-dropout-ignores-mode::dropout, 100%25 sure: a,b"
    )
    assert out[1].startswith("::warning file=pkg/b.py,line=3,col=1,endLine=4,title=MDL102")
    assert out[1].endswith("::line one%0Aline two")


def _sarif_schema():
    from tests.sarif_schema import load_schema

    return load_schema()


def test_sarif_is_valid_against_the_2_1_0_schema():
    jsonschema = pytest.importorskip("jsonschema")
    schema = _sarif_schema()
    doc = json.loads(render([F1, F2, F3], "sarif", ReportContext(root=".")))
    validator_cls = jsonschema.validators.validator_for(schema)
    validator_cls.check_schema(schema)
    errors = sorted(validator_cls(schema).iter_errors(doc), key=str)
    assert not errors, "\n".join(str(e) for e in errors[:3])
    # ...and an empty run is valid too
    assert not list(validator_cls(schema).iter_errors(json.loads(render([], "sarif", ReportContext()))))


def test_sarif_content():
    doc = json.loads(render([F1, F2], "sarif", ReportContext(root=".")))
    run = doc["runs"][0]
    assert doc["version"] == "2.1.0"
    rules = {r["id"]: r for r in run["tool"]["driver"]["rules"]}
    assert rules["MDL101"]["name"] == "functional-dropout-ignores-mode"
    assert rules["MDL101"]["shortDescription"]["text"] and rules["MDL101"]["help"]["text"]
    r0 = run["results"][0]
    assert r0["ruleId"] == "MDL101" and r0["level"] == "error"
    assert run["tool"]["driver"]["rules"][r0["ruleIndex"]]["id"] == "MDL101"
    loc = r0["locations"][0]["physicalLocation"]
    assert loc["artifactLocation"]["uri"] == "pkg/a.py"
    assert loc["region"] == {"startLine": 7, "startColumn": 16, "endLine": 7, "endColumn": 33}
    assert run["results"][1]["level"] == "warning"


def test_sarif_uri_is_relative_for_absolute_paths(tmp_path):
    f = Finding(str(tmp_path / "src" / "m.py"), 1, 1, "MDL101", "m", name="x")
    doc = json.loads(render([f], "sarif", ReportContext(root=str(tmp_path))))
    assert doc["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "src/m.py"


@pytest.mark.parametrize("fmt", format_names())
def test_every_format_from_the_cli(run, write, fmt):
    write("m.py", BUGGY)
    r = run("check", "m.py", "--format", fmt)
    assert r.code == 1, r
    assert "MDL101" in r.out
    if fmt in ("json", "sarif"):
        json.loads(r.out)


def test_sarif_fixes_are_valid_and_reproduce_the_fixed_file(tmp_path):
    """A finding's fix appears as a SARIF `fixes` entry (schema-valid), and applying its
    replacements to the file gives the fixed call."""
    from modelint.engine import EngineSettings, check_paths

    src = tmp_path / "m.py"
    src.write_text(
        "import torch.nn.functional as F\nimport torch.nn as nn\n\n\nclass M(nn.Module):\n"
        "    def forward(self, x):\n        return F.dropout(x, p=0.1)\n",
        encoding="utf-8",
    )
    findings = check_paths([src], EngineSettings(select=("MDL101",), jobs=1)).findings
    assert [f.code for f in findings] == ["MDL101"] and findings[0].fix is not None
    doc = json.loads(render(findings, "sarif", ReportContext(root=str(tmp_path))))
    jsonschema = pytest.importorskip("jsonschema")
    schema = _sarif_schema()
    assert not list(jsonschema.validators.validator_for(schema)(schema).iter_errors(doc))
    (fix,) = doc["runs"][0]["results"][0]["fixes"]
    assert fix["properties"]["applicability"] == "safe" and "safe fix" in fix["description"]["text"]
    (change,) = fix["artifactChanges"]
    assert change["artifactLocation"]["uri"] == "m.py"
    lines = src.read_text(encoding="utf-8").splitlines(keepends=True)
    for rep in reversed(change["replacements"]):
        r = rep["deletedRegion"]
        assert r["startLine"] == r["endLine"]
        line = lines[r["startLine"] - 1]
        lines[r["startLine"] - 1] = line[: r["startColumn"] - 1] + rep["insertedContent"]["text"] + line[r["endColumn"] - 1:]
    assert "".join(lines).endswith("return F.dropout(x, p=0.1, training=self.training)\n")


def test_formats_are_discovered_from_their_modules():
    import modelint.report as report

    names = report.format_names()
    assert names[0] == report.DEFAULT_FORMAT == "text"
    assert set(names) == {"text", "json", "sarif", "github"}
    from modelint.cli import build_parser

    check = build_parser()._subparsers._group_actions[0].choices["check"]
    assert next(a for a in check._actions if a.dest == "format").choices == names


def test_report_file_suffixes_name_their_format():
    from modelint.report import format_for_suffix

    assert [format_for_suffix(s) for s in (".sarif", ".txt", ".log", ".json", ".SARIF", ".xyz", "")] == [
        "sarif", "text", "text", "json", "sarif", None, None]


def test_a_new_format_module_is_registered_everywhere_without_a_list_to_edit(tmp_path, monkeypatch):
    """Adding a format is adding a module: the registry, the CLI's --format and the pytest plugin's
    --modelint-modes-format all see it."""
    import modelint.report as report
    from modelint.cli import build_parser
    from modelint.modecov import pytest_plugin

    (tmp_path / "csv_lines.py").write_text(
        'NAME = "csv"\nSUFFIXES = (".csv",)\n\n\ndef render(findings, ctx):\n'
        '    return "".join(f"{f.path},{f.line},{f.code}\\n" for f in findings)\n'
    )
    monkeypatch.setattr(report, "__path__", [*report.__path__, str(tmp_path)])
    monkeypatch.setattr(report, "_REGISTRY", {})
    try:
        assert "csv" in report.format_names() and report.format_for_suffix(".CSV") == "csv"
        assert render([F2, F1], "csv", ReportContext()) == "pkg/a.py,7,MDL101\npkg/b.py,3,MDL102\n"
        check = build_parser()._subparsers._group_actions[0].choices["check"]
        assert "csv" in next(a for a in check._actions if a.dest == "format").choices

        seen = {}

        class Group:
            def addoption(self, flag, **kwargs):
                seen[flag] = kwargs

        class Parser:
            def getgroup(self, *args):
                return Group()

        pytest_plugin.pytest_addoption(Parser())
        assert "csv" in seen["--modelint-modes-format"]["choices"]
        assert "csv" in seen["--modelint-modes-format"]["help"]
        assert ".csv -> csv" in seen["--modelint-modes-format"]["help"]
    finally:
        import sys

        sys.modules.pop("modelint.report.csv_lines", None)


def test_a_module_without_name_or_render_is_an_error_not_a_silently_missing_format(tmp_path, monkeypatch):
    import modelint.report as report

    (tmp_path / "half_done.py").write_text("def render(findings, ctx):\n    return ''\n")
    monkeypatch.setattr(report, "__path__", [*report.__path__, str(tmp_path)])
    monkeypatch.setattr(report, "_REGISTRY", {})
    try:
        with pytest.raises(RuntimeError, match="half_done is not a format"):
            report.format_names()
    finally:
        import sys

        sys.modules.pop("modelint.report.half_done", None)

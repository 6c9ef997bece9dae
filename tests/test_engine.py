"""Engine behaviour that is easiest to check in-process: crashes in rules, unreadable files,
the text pre-filter."""

from __future__ import annotations

from pathlib import Path

import libcst as cst
import pytest

from modelint import engine
from modelint.config import resolve_selection
from modelint.engine import EngineSettings, check_paths
from modelint.rules import get_rule
from tests.conftest import BUGGY


def _settings(**kw):
    return EngineSettings(select=resolve_selection(None, (), ()), jobs=1, **kw)


def test_rule_crash_becomes_mdl999_and_other_rules_still_run(tmp_path, monkeypatch):
    (tmp_path / "m.py").write_text(BUGGY + "\n    def g(self, x):\n        return F.alpha_dropout(x, 0.1)\n")
    rule = get_rule("MDL101")

    def boom(self, node: cst.Call) -> None:
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(rule, "visit_Call", boom)
    result = check_paths([tmp_path / "m.py"], _settings())
    codes = [(f.code, f.message) for f in result.findings]
    assert ("MDL102" in [c for c, _ in codes])
    internal = [m for c, m in codes if c == "MDL999"]
    assert internal == ["rule MDL101 crashed on this file (ZeroDivisionError: boom); the file was only partly checked"]


def test_rule_crash_exits_2(run, write):
    write("m.py", BUGGY)
    write(
        "crash.py",
        "import runpy, sys\n"
        "from modelint.rules import get_rule\n"
        "get_rule('MDL101').visit_Call = lambda self, node: 1 / 0\n"
        "from modelint.cli import main\n"
        "sys.exit(main(['check', 'm.py']))\n",
    )
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "crash.py"], cwd=write("x.py", "").parent, capture_output=True, text=True)
    assert proc.returncode == 2, proc
    assert "MDL999" in proc.stdout and "Traceback" not in proc.stderr


def test_unreadable_file_is_a_finding(tmp_path, monkeypatch):
    (tmp_path / "a.py").write_text(BUGGY)
    (tmp_path / "b.py").write_text(BUGGY)
    real = Path.read_bytes

    def read_bytes(self):
        if self.name == "a.py":
            raise PermissionError(13, "Permission denied")
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    result = check_paths([tmp_path / "a.py", tmp_path / "b.py"], _settings())
    got = [(Path(f.path).name, f.code, f.message) for f in result.findings]
    assert got[0] == ("a.py", "MDL000", "cannot read file: Permission denied")
    assert got[1][:2] == ("b.py", "MDL101")


def test_prefilter_skips_parsing_files_without_triggers(tmp_path, monkeypatch):
    (tmp_path / "plain.py").write_text("import torch\nx = torch.ones(3)\n")
    (tmp_path / "model.py").write_text(BUGGY)
    parsed = []
    real = cst.parse_module
    monkeypatch.setattr(cst, "parse_module", lambda data, *a, **k: parsed.append(data) or real(data, *a, **k))
    check_paths([tmp_path / "plain.py", tmp_path / "model.py"], _settings())
    assert len(parsed) == 1 and b"dropout" in parsed[0]
    parsed.clear()
    check_paths([tmp_path / "plain.py", tmp_path / "model.py"], _settings(prefilter=False))
    assert len(parsed) == 2


def test_prefilter_never_hides_a_parse_error(tmp_path):
    (tmp_path / "broken.py").write_text("def f(:\n")
    result = check_paths([tmp_path / "broken.py"], _settings())
    assert [f.code for f in result.findings] == ["MDL000"]


@pytest.mark.parametrize("jobs", [1, 2])
def test_check_paths_parallel_matches_serial(tmp_path, monkeypatch, jobs):
    monkeypatch.setattr(engine, "PARALLEL_MIN_FILES", 2)
    for i in range(6):
        (tmp_path / f"m{i}.py").write_text(BUGGY if i % 2 else "x = 1\n")
    files = sorted(tmp_path.glob("*.py"))
    result = check_paths(files, EngineSettings(select=resolve_selection(None, (), ()), jobs=jobs))
    assert [Path(f.path).name for f in result.findings] == ["m1.py", "m3.py", "m5.py"]
    assert result.files_checked == 6


# --- CheckSpec, suppressions, imports ----------------------------------------------------


def _spec(codes, source: bytes, prefilter=True):
    from modelint.analysis.index import ProjectIndex, facts_from_source
    from modelint.analysis.modules import ModuleClassifier

    facts = facts_from_source(source, Path("m.py"))
    index = ProjectIndex()
    index.add(facts)
    rules = tuple(engine.selected_rule_classes(codes))
    return engine.CheckSpec(rules, {}, ModuleClassifier(index), tuple(codes), prefilter), facts


def test_check_bytes_takes_one_spec_and_honours_its_selection():
    data = BUGGY.encode()
    spec, facts = _spec(["MDL101"], data)
    assert {f.code for f in engine.check_bytes("m.py", data, facts, spec)} == {"MDL101"}
    spec, facts = _spec(["MDL102"], data)
    assert "MDL101" not in {f.code for f in engine.check_bytes("m.py", data, facts, spec)}


def test_check_file_of_given_bytes_does_not_read_the_file(tmp_path):
    path = tmp_path / "m.py"
    path.write_text("x = 1\n")
    spec, _ = _spec(["MDL101"], BUGGY.encode())
    assert [f.code for f in engine.check_file(str(path), None, spec, BUGGY.encode())] == ["MDL101"]
    assert engine.check_file(str(path), None, spec) == []


def test_suppression_tracker_marks_used_comments_and_reports_the_rest():
    from modelint.suppressions import SuppressionTracker, code_matches

    source = "a = 1  # modelint: ignore[MDL101]\nb = 2  # modelint: ignore[MDL2]\nc = '# modelint: ignore'\nd = 3  # noqa\n"
    tracker = SuppressionTracker(source)
    assert sorted(tracker.by_line) == [1, 2, 4]  # a comment inside a string is not a comment
    assert tracker.suppresses("MDL101", {1}) and not tracker.suppresses("MDL101", {2})
    assert tracker.suppresses("MDL999", {4})  # bare noqa: everything
    unused = tracker.unused("m.py", ("MDL101", "MDL201"))
    assert [(f.line, f.code, f.name, f.level) for f in unused] == [(2, "MDL001", "unused-suppression", "info")]
    assert tracker.unused("m.py", ("MDL101",)) == []  # MDL2xx did not run: the comment may be needed elsewhere
    assert code_matches("MDL104", ("MDL1",)) and code_matches("MDL104", None) and not code_matches("MDL104", ("MDL2",))


def test_shown_keeps_tool_errors_and_drops_per_file_ignores():
    from modelint.findings import Finding
    from modelint.suppressions import shown

    found = [Finding("a/m.py", 1, 1, c, "x") for c in ("MDL000", "MDL101", "MDL104", "MDL999")]
    got = shown("a/m.py", found, ("MDL101", "MDL104"), (("a/*.py", ("MDL10",)),), ".")
    assert [f.code for f in got] == ["MDL000", "MDL999"]
    assert [f.code for f in shown("a/m.py", found, ("MDL104",), (), ".")] == ["MDL000", "MDL104", "MDL999"]


def test_engine_imports_neither_the_pool_nor_the_fixer_for_a_check(tmp_path):
    import subprocess
    import sys

    (tmp_path / "m.py").write_text(BUGGY)
    code = ("import sys; from pathlib import Path; from modelint import engine; from modelint.config import "
            "resolve_selection; engine.check_paths([Path('m.py')], engine.EngineSettings(select=resolve_selection("
            "None, (), ()), jobs=1)); print(sorted(m for m in ('concurrent.futures', 'multiprocessing', "
            "'modelint.fixing') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_check_source_with_a_project_index_knows_modules_defined_in_other_files(tmp_path):
    from modelint.analysis.index import ProjectIndex, facts_from_source
    from modelint.engine import check_source, fix_source

    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")  # module names come from the package layout
    base = tmp_path / "pkg" / "base.py"
    index = ProjectIndex()
    index.add(facts_from_source(b"from torch import nn\nclass Encoder(nn.Module):\n    pass\n", base))
    doc = "import torch.nn.functional as F\nfrom pkg.base import Encoder\n\n\nclass M(Encoder):\n" \
          "    def forward(self, x):\n        return F.dropout(x, 0.1)\n"
    path = str(tmp_path / "pkg" / "model.py")
    assert check_source(doc, path) == []  # alone, `Encoder` is just a name
    assert [f.code for f in check_source(doc, path, index=index)] == ["MDL101"]
    fixed = fix_source(doc, path, index=index)
    assert fixed.applied == {"MDL101": 1} and "training=self.training" in fixed.after


# A block indented with a tab plus 4 spaces under a method indented with 4: CPython reads the tab as
# 8 columns (12 > 4) and as 1 (5 > 4), so it accepts the file; LibCST's tokenizer does not (set 12's
# ss-ood, LibCST issues #829 / #951).
TAB_INDENTED = (
    "import torch.nn as nn\nimport torch.nn.functional as F\n\n"
    "class M(nn.Module):\n    def forward(self, x):\n\t    return F.dropout(x, 0.5)\n"
)


def test_indentation_only_libcst_rejects_is_checked_in_the_files_own_columns(tmp_path):
    """The file is checked on its text with leading tabs expanded (CPython's reading): the finding is
    at the file's own column (a tab counts as one), and it carries no fix (a fix edits the expanded
    text). Before, the file got MDL000 and nothing else."""
    with pytest.raises(Exception):
        cst.parse_module(TAB_INDENTED)  # (what makes the case: if LibCST learns this, the test says so)
    compile(TAB_INDENTED, "m.py", "exec")
    (tmp_path / "m.py").write_text(TAB_INDENTED)
    result = check_paths([tmp_path / "m.py"], _settings())
    assert [(f.code, f.line, f.column, f.end_column, f.fix) for f in result.findings] == [
        ("MDL101", 6, 13, 30, None)]


def test_inconsistent_tabs_that_cpython_rejects_stay_a_parse_error(tmp_path):
    (tmp_path / "m.py").write_text(TAB_INDENTED.replace("    def forward", "        def forward"))
    result = check_paths([tmp_path / "m.py"], _settings())
    assert [f.code for f in result.findings] == ["MDL000"]

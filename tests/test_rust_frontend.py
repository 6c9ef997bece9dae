"""The Rust front end end to end: discovery and `--lang`, the missing extra, suppressions, output
formats, the cache, the engine's dispatch by file kind, and mutation recall on the Burn fixtures."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

pytest.importorskip("tree_sitter_rust")

from modelint.engine import check_source  # noqa: E402
from tests.conftest import BUGGY as PY_BUGGY  # noqa: E402
from tests.helpers import expected_from_source  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BURN = ROOT / "fixtures" / "burn"

SAMPLING = """
impl<B: Backend> Policy<B> {
    pub fn forward(&self, probs: Tensor<B, 2>) -> Tensor<B, 2, Int> {
        probs.multinomial(1, true)
    }
}
"""


@pytest.fixture
def project(write):
    write("policy.rs", SAMPLING)
    write("model.py", PY_BUGGY)
    return write


@pytest.fixture(autouse=True)
def _sampling_rule_selected(tmp_path):
    """MDL104 is off by default since issue 15's measuring set; these CLI tests check the Rust front end
    on an MDL104 finding, so the project selects it, as a user would."""
    (tmp_path / "pyproject.toml").write_text('[tool.modelint]\nextend-select = ["MDL104"]\n')


def _codes(out: str):
    return sorted((Path(f["path"]).name, f["code"]) for f in json.loads(out))


def test_rust_files_are_found_when_the_extra_is_installed(run, project):
    r = run("check", ".", "--format", "json", "--no-cache")
    assert r.code == 1, r
    assert ("policy.rs", "MDL104") in _codes(r.out) and ("model.py", "MDL101") in _codes(r.out)


@pytest.mark.parametrize("lang,expected", [("python", {"model.py"}), ("rust", {"policy.rs"}),
                                           ("python,rust", {"model.py", "policy.rs"})])
def test_lang_selects_the_languages(run, project, lang, expected):
    r = run("check", ".", "--lang", lang, "--show-files")
    assert r.code == 0, r
    assert {Path(line).name for line in r.out.split()} == expected


def test_lang_from_the_config(run, project, write):
    write("pyproject.toml", '[tool.modelint]\nlang = ["rust"]\n')
    r = run("check", ".", "--show-files")
    assert [Path(line).name for line in r.out.split()] == ["policy.rs"], r


@pytest.mark.parametrize("args,config", [(("--lang", "cobol"), None), ((), 'lang = ["cobol"]')])
def test_unknown_language_is_a_one_line_usage_error(run, project, write, args, config):
    if config:
        write("pyproject.toml", f"[tool.modelint]\n{config}\n")
    r = run("check", ".", *args)
    assert r.code == 2 and len(r.err.strip().splitlines()) == 1 and "cobol" in r.err, r


SIMULATE_MISSING = """
import sys
import modelint.rust
modelint.rust.available = lambda: False
from modelint.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_missing_extra_is_a_one_line_error_when_rust_is_asked_for(project, tmp_path):
    import subprocess

    def cli(*args):
        return subprocess.run([sys.executable, "-c", SIMULATE_MISSING, *args], cwd=tmp_path, capture_output=True, text=True)

    asked = cli("check", ".", "--lang", "rust")
    assert asked.returncode == 2, asked
    assert asked.stderr.strip().count("\n") == 0 and "pip install 'modelint[rust]'" in asked.stderr
    assert "Traceback" not in asked.stderr
    # Not asked for: .rs files are simply not discovered, Python is still checked.
    default = cli("check", ".", "--show-files")
    assert default.returncode == 0 and [Path(p).name for p in default.stdout.split()] == ["model.py"], default


def test_missing_extra_in_the_engine_is_an_mdl000_not_a_traceback(monkeypatch):
    import modelint.rust.syntax as syntax

    def broken(data):
        raise ImportError("No module named 'tree_sitter'")

    monkeypatch.setattr(syntax, "parse", broken)
    found = check_source(SAMPLING, path="policy.rs", select=["MDL104"])
    assert [(f.code, "modelint[rust]" in f.message) for f in found] == [("MDL000", True)]


def test_suppressions_silence_a_rust_finding_and_unused_ones_are_reported():
    src = SAMPLING.replace("probs.multinomial(1, true)", "probs.multinomial(1, true) // modelint: ignore[MDL104]")
    assert not check_source(src, path="policy.rs", select=["MDL104"])
    assert not check_source(src.replace("ignore[MDL104]", "ignore"), path="policy.rs", select=["MDL104"])
    assert check_source(src.replace("MDL104]", "MDL401]"), path="policy.rs", select=["MDL104"])
    unused = check_source("// modelint: ignore[MDL104]\nfn main() {}\n", path="x.rs", select=["MDL104", "MDL001"])
    assert [f.code for f in unused] == ["MDL001"]
    # A `//` inside a string is not a comment.
    in_string = SAMPLING.replace("probs.multinomial(1, true)", 'probs.multinomial(1, true); let s = "// modelint: ignore"')
    assert [f.code for f in check_source(in_string, path="policy.rs", select=["MDL104"])] == ["MDL104"]


def test_json_and_sarif_on_a_rust_finding(run, write):
    write("policy.rs", SAMPLING)
    js = json.loads(run("check", "policy.rs", "--format", "json", "--no-cache").out)
    assert [(f["code"], f["line"], f["column"], f["name"]) for f in js] == [
        ("MDL104", 4, 9, "unguarded-sampling-in-forward")]
    sarif = json.loads(run("check", "policy.rs", "--format", "sarif", "--no-cache").out)
    result = sarif["runs"][0]["results"][0]
    assert result["ruleId"] == "MDL104"
    region = result["locations"][0]["physicalLocation"]["region"]
    assert (region["startLine"], region["startColumn"]) == (4, 9)
    jsonschema = pytest.importorskip("jsonschema")
    from tests.sarif_schema import load_schema

    schema = load_schema()
    assert not list(jsonschema.validators.validator_for(schema)(schema).iter_errors(sarif))


def test_columns_count_characters_not_bytes():
    src = SAMPLING.replace("        probs.multinomial", "        /* é */ probs.multinomial")
    (f,) = check_source(src, path="p.rs", select=["MDL104"])
    assert (f.line, f.column) == (4, 17)


def test_cache_serves_rust_results_and_notices_changes(run, write, tmp_path):
    write("policy.rs", SAMPLING)
    first = run("check", ".", "--format", "json", "-v")
    assert first.code == 1 and _codes(first.out) == [("policy.rs", "MDL104")]
    assert any((tmp_path / ".modelint_cache").rglob("*")), "the run wrote a cache"
    again = run("check", ".", "--format", "json")
    assert _codes(again.out) == _codes(first.out)
    write("policy.rs", SAMPLING.replace("probs.multinomial(1, true)", "probs.argmax(1)"))
    assert run("check", ".", "--format", "json").out.strip() == "[]"


def test_exit_codes_match_python(run, write):
    write("clean.rs", "fn main() {}\n")
    assert run("check", "clean.rs").code == 0
    write("policy.rs", SAMPLING)
    assert run("check", "policy.rs").code == 1
    assert run("check", "policy.rs", "--exit-zero").code == 0


def test_fix_hoists_the_mode_query_on_disk(run, write, tmp_path):
    from modelint.rules.rust import rust_rule

    before, after = rust_rule("MDL401").FIXES[0]
    write("decode.rs", before)
    r = run("check", "decode.rs", "--fix", "--select", "MDL401")
    assert r.code == 0, r
    assert (tmp_path / "decode.rs").read_text() == after.lstrip("\n") or \
        (tmp_path / "decode.rs").read_text().strip() == after.strip()


def test_engine_dispatch_knows_front_ends_not_rules():
    from modelint.engine import OTHER_FRONT_ENDS, front_end

    assert front_end("model.py") is None and front_end("nb.ipynb") is None
    assert front_end("lib.rs").__name__ == OTHER_FRONT_ENDS[".rs"]
    assert not any("MDL" in v for v in OTHER_FRONT_ENDS.values())


def test_a_file_that_is_not_rust_is_mdl000_but_a_grammar_lag_is_not():
    assert [f.code for f in check_source("def f(x):\n    return x\n", path="x.rs", select=["MDL104"])] == ["MDL000"]
    # `#[cfg]` on a struct-pattern field: valid Rust that tree-sitter-rust 0.24 does not parse.
    lag = ("fn f(s: S) -> u8 {\n    match s {\n        S {\n            a,\n            #[cfg(feature = \"x\")]\n"
           "            b: 1 | 2,\n        } => a,\n        _ => 0,\n    }\n}\n") + SAMPLING
    assert [f.code for f in check_source(lag, path="x.rs", select=["MDL104"])] == ["MDL104"]


# --- mutation recall on the fixtures --------------------------------------------------------------
CASES = [
    ("cvrp_policy.rs", "MDL104", "match B::ad_enabled() {\n            true => probs.multinomial(1, true),\n"
                                 "            false => probs.argmax(1),\n        }", "probs.multinomial(1, true)"),
    ("cvrp_policy.rs", "MDL401", "let training = B::ad_enabled();", "let training = true;", ),
    ("cvrp_policy.rs", "MDL206", "    decoder: Linear<B>,\n}", "    decoder: Linear<B>,\n    training: bool,\n}"),
    ("cvrp_policy.rs", "MDL302", "use burn::prelude::*;\n",
     "use burn::prelude::*;\nfn main() { infer::<Autodiff<Wgpu>>(Default::default()); }\n"),
    ("cvrp_policy.rs", "MDL307", "use burn::prelude::*;\n",
     "use burn::prelude::*;\nfn predict(m: CVRPModel<B>, x: X) { m.no_grad().forward(x) }\n"),
]


def _mutate_401(text: str) -> str:
    return text.replace("if training {", "if B::ad_enabled() {")


def _mutate_206(text: str) -> str:
    return text.replace("        self.select(probs)\n", "        if self.training { self.select(probs) } else { probs.argmax(1) }\n")


@pytest.mark.parametrize("name,code,old,new", CASES, ids=[c[1] for c in CASES])
def test_mutation_recall_on_the_burn_fixtures(name, code, old, new):
    clean = (BURN / name).read_text()
    assert not [f for f in check_source(clean, path=name, select=[code])], "the fixture is clean before"
    assert old in clean
    mutated = clean.replace(old, new, 1)
    mutated = {"MDL401": _mutate_401, "MDL206": _mutate_206}.get(code, lambda t: t)(mutated)
    assert [f.code for f in check_source(mutated, path=name, select=[code])] == [code]


def test_each_generation_fixture_reports_each_rule():
    for gen in ("v0_20.rs", "v0_21.rs", "v0_22.rs"):
        text = (BURN / gen).read_text()
        want = expected_from_source(text.replace("// expect:", "# expect:"))
        assert {c for _, c in want} == {"MDL104", "MDL206", "MDL302", "MDL307", "MDL401"}, gen
        got = sorted((f.line, f.code) for f in check_source(text, path=gen, select=[c for _, c in want]))
        assert got == want, gen


def test_prefilter_is_sound_on_the_fixtures():
    from modelint.rules.rust import rust_rules
    from modelint.rust.check import check

    codes = tuple(r.code for r in rust_rules())
    for path in sorted(BURN.glob("*.rs")):
        data = path.read_bytes()
        on = check(str(path), data, SimpleNamespace(select=codes, rule_options={}, prefilter=True))
        off = check(str(path), data, SimpleNamespace(select=codes, rule_options={}, prefilter=False))
        assert sorted(on) == sorted(off), path.name

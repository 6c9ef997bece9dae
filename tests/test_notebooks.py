"""Jupyter notebooks: code cells checked as one module, locations per cell, hostile notebooks."""

from __future__ import annotations

import json

import pytest

from modelint import notebook


def nb_json(*cells, indent=1):
    out = []
    for kind, src in cells:
        c = {"cell_type": kind, "metadata": {}, "source": src.splitlines(keepends=True)}
        if kind == "code":
            c.update(execution_count=None, outputs=[])
        out.append(c)
    return json.dumps({"cells": out, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}, indent=indent)


IMPORTS = ("code", "import torch.nn as nn\nimport torch.nn.functional as F\n%load_ext autoreload\n")
MODEL = ("code", "class M(nn.Module):\n    def forward(self, x):\n        !echo hi\n        return F.dropout(x, 0.1)\n")


def test_findings_are_located_per_cell(run, write):
    write("nb.ipynb", nb_json(("markdown", "# title"), IMPORTS, MODEL))
    r = run("check", ".")
    assert r.code == 1, r
    assert r.out.splitlines()[0].startswith("nb.ipynb:cell 3:4:16: MDL101 ")
    data = json.loads(run("check", "nb.ipynb", "--format", "json").out)
    assert (data[0]["cell"], data[0]["line"], data[0]["column"]) == (3, 4, 16)


def test_names_imported_in_an_earlier_cell_resolve(run, write):
    write("nb.ipynb", nb_json(IMPORTS, ("code", "x = 1"), MODEL))
    assert run("check", "nb.ipynb").code == 1


def test_broken_cell_is_reported_alone_and_the_rest_is_checked(run, write):
    write("nb.ipynb", nb_json(IMPORTS, ("code", "def broken(:\n    pass\n"), MODEL))
    data = json.loads(run("check", "nb.ipynb", "--format", "json").out)
    assert [(f["code"], f["cell"]) for f in data] == [("MDL000", 2), ("MDL101", 3)]


def test_suppression_inside_a_cell(run, write):
    model = ("code", MODEL[1].replace("F.dropout(x, 0.1)", "F.dropout(x, 0.1)  # modelint: ignore[MDL101]"))
    write("nb.ipynb", nb_json(IMPORTS, model))
    assert run("check", "nb.ipynb").code == 0


def test_cell_magics(run, write):
    bash = ("code", "%%bash\nfor f in *; do echo $f; done\n")
    timed = ("code", "%%time\n" + MODEL[1])
    write("nb.ipynb", nb_json(IMPORTS, bash, timed))
    data = json.loads(run("check", "nb.ipynb", "--format", "json").out)
    assert [(f["code"], f["cell"], f["line"]) for f in data] == [("MDL101", 3, 5)]


@pytest.mark.parametrize(
    "content,message",
    [
        ("{not json", "not a valid notebook"),
        ('{"nbformat": 4}', "not a valid notebook: no list of cells"),
        ("[1, 2]", "not a valid notebook: no list of cells"),
    ],
)
def test_hostile_notebooks(run, write, content, message):
    write("bad.ipynb", content)
    write("ok.py", "x = 1\n")
    r = run("check", ".")
    assert r.code == 1 and "Traceback" not in r.err, r
    assert f"bad.ipynb:1:1: MDL000 {message}" in r.out


@pytest.mark.parametrize("source", [[["nested"]], ["x = 1\n", 2], None, 7, {"a": 1}])
def test_cell_source_that_is_not_text_is_that_cells_mdl000(run, write, source):
    """nbformat allows a string or a list of strings; anything else (found by the fuzzer: a list
    holding a list raised TypeError) is an MDL000 for that cell, and the other cells are checked."""
    doc = json.loads(nb_json(IMPORTS, MODEL))
    doc["cells"].insert(1, {"cell_type": "code", "metadata": {}, "source": source, "outputs": [], "execution_count": None})
    write("nb.ipynb", json.dumps(doc))
    r = run("check", "nb.ipynb", "--format", "json")
    assert r.code == 1 and "Traceback" not in r.err, r
    found = sorted((f["code"], f["cell"]) for f in json.loads(r.out))
    assert found == [("MDL000", 2), ("MDL101", 3)]


def test_empty_notebook_is_clean(run, write):
    write("e.ipynb", nb_json())
    assert run("check", "e.ipynb").code == 0


def test_notebooks_can_be_turned_off(run, write):
    write("nb.ipynb", nb_json(IMPORTS, MODEL))
    write("pyproject.toml", "[tool.modelint]\nnotebooks = false\n")
    assert run("check", ".").code == 0
    assert run("check", "nb.ipynb").code == 1  # named explicitly: always checked


def test_github_and_sarif_point_at_the_json_line(run, write, tmp_path):
    text = nb_json(IMPORTS, MODEL)
    write("nb.ipynb", text)
    json_line = next(i for i, l in enumerate(text.splitlines(), 1) if "F.dropout" in l)
    gh = run("check", "nb.ipynb", "--format", "github").out
    assert gh.startswith(f"::error file=nb.ipynb,line={json_line},title=MDL101")
    assert "::cell 2, line 4: " in gh
    sarif = json.loads(run("check", "nb.ipynb", "--format", "sarif").out)
    result = sarif["runs"][0]["results"][0]
    assert result["locations"][0]["physicalLocation"]["region"] == {"startLine": json_line}
    assert result["properties"] == {"cell": 2, "cellLine": 4, "cellColumn": 16}
    from tests.sarif_schema import load_schema

    import jsonschema

    schema = load_schema()
    assert not list(jsonschema.validators.validator_for(schema)(schema).iter_errors(sarif))


def test_minified_notebook_maps_to_line_1(run, write):
    write("nb.ipynb", nb_json(IMPORTS, MODEL, indent=None))
    gh = run("check", "nb.ipynb", "--format", "github").out
    assert gh.startswith("::error file=nb.ipynb,line=1,")


def test_masking_keeps_line_numbers():
    nb = notebook.load(nb_json(IMPORTS, MODEL).encode())
    lines = nb.source.splitlines()
    assert lines[2].startswith("pass") and lines[5].strip().startswith("pass")
    assert nb.locate(7) == (nb.cells[1], 4)


def test_automagic_lines_are_masked_and_python_lines_are_not(run, write):
    """IPython runs `pip install x` (a line magic without `%`) when the line is not Python; such a
    line is not a parse error. A line that is Python by itself (`time.sleep(1)`, `pip = 3`) is kept
    and checked."""
    magic = ("code", "pip install -r requirements.txt\ncd data\nimport time\ntime.sleep(0)\n")
    write("nb.ipynb", nb_json(IMPORTS, magic, MODEL))
    data = json.loads(run("check", "nb.ipynb", "--format", "json").out)
    assert [(f["code"], f["cell"]) for f in data] == [("MDL101", 3)]
    broken = ("code", "pip install x\ndef broken(:\n")
    write("nb.ipynb", nb_json(IMPORTS, broken, MODEL))
    data = json.loads(run("check", "nb.ipynb", "--format", "json").out)
    assert [(f["code"], f["cell"]) for f in data] == [("MDL000", 2), ("MDL101", 3)]


def test_an_assignment_that_starts_with_a_magic_name_is_python(run, write):
    """`config = Config(` opens a statement that goes on over the next lines, so the line alone does not
    parse; it is an assignment, never automagic (set 15's finBERT notebook was reported unparsable)."""
    cell = ("code", "config = dict(a=1,\n               b=2)\ntime: float = 0.0\n")
    write("nb.ipynb", nb_json(IMPORTS, cell, MODEL))
    data = json.loads(run("check", "nb.ipynb", "--format", "json").out)
    assert [(f["code"], f["cell"]) for f in data] == [("MDL101", 3)]


def test_a_shell_escape_continued_with_backslashes_is_masked_whole(run, write):
    """`!python train.py --data x \\` goes on over the next lines, which IPython hands to the shell
    with it (set 16's AnimeGAN notebooks were reported unparsable); a Python line continued with a
    backslash stays Python, and a line after the command is checked."""
    cell = ("code", "!python train.py --data x\\\n        --epochs 3\\\n        --lr 0.1\ntotal = 1 + \\\n    2\n")
    write("nb.ipynb", nb_json(IMPORTS, cell, MODEL))
    data = json.loads(run("check", "nb.ipynb", "--format", "json").out)
    assert [(f["code"], f["cell"]) for f in data] == [("MDL101", 3)]
    lines = notebook._mask_cell(cell[1]).split("\n")
    assert lines[0].startswith("pass") and lines[1:3] == ["", ""] and lines[3] == "total = 1 + \\"

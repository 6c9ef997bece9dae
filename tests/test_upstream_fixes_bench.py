"""bench/upstream_fixes.py on a throw-away local git repository: a fix commit that adds the missing
`model.eval()` is caught at its parent and cleared by the fix; list errors are one line."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.helpers import load_bench

U = load_bench("upstream_fixes", "upstream_fixes_bench")

BUGGY = '''import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        return self.fc(self.drop(x))


def evaluate(model, loader):
    total = 0
    with torch.no_grad():
        for x, y in loader:
            total += (model(x).argmax(1) == y).sum().item()
    return total


def main(loader):
    model = Net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for epoch in range(3):
        model.train()
        for x, y in loader:
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        print(evaluate(model, loader))
'''
FIXED = BUGGY.replace("    total = 0\n", "    total = 0\n    model.eval()\n")


def git(cwd, *args):
    return subprocess.run(["git", "-C", str(cwd), *args], check=True, capture_output=True, text=True).stdout.strip()


def commit_file(work, text):
    (work / "train.py").write_text(text)
    git(work, "add", "-A")
    git(work, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c")
    return git(work, "rev-parse", "HEAD")


def write_list(tmp_path, buggy, fixed, **over):
    entry = dict(name="Toy", repo="owner/name", fix_commit=fixed, buggy_commit=buggy, path="train.py",
                 lines=[19, 19], function="evaluate", kind="eval-missing")
    entry.update(over)
    body = "[[fix]]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in entry.items())
    path = tmp_path / "fixes.toml"
    path.write_text(body)
    return path


@pytest.fixture
def mirror(tmp_path):
    work = tmp_path / "mirror" / "owner+name"
    work.mkdir(parents=True)
    git(tmp_path, "init", "-q", str(work))
    return work, commit_file(work, BUGGY), commit_file(work, FIXED)


def test_a_fix_is_caught_at_its_parent_and_cleared_by_the_fix(tmp_path, mirror, capsys):
    _work, buggy, fixed = mirror
    fixes = write_list(tmp_path, buggy, fixed)
    out = tmp_path / "out.json"
    argv = ["--list", str(fixes), "--mirror", str(tmp_path / "mirror"), "--cache", str(tmp_path / "cache"),
            "--json", str(out)]
    assert U.main(argv) == 0
    (result,) = json.loads(out.read_text())["results"]
    assert result["caught"] and result["cleared"] and result["span"] == [15, 20]
    assert [f["code"] for f in result["findings"]] == ["MDL302"]
    assert "total: 1/1 caught, 1 cleared by their fix" in capsys.readouterr().out


def test_a_finding_outside_the_buggy_function_is_not_a_catch(tmp_path, mirror):
    _work, buggy, fixed = mirror
    fixes = write_list(tmp_path, buggy, fixed, lines=[27, 27], function="main", kind="eval-missing")
    out = tmp_path / "out.json"
    argv = ["--list", str(fixes), "--mirror", str(tmp_path / "mirror"), "--cache", str(tmp_path / "cache"),
            "--json", str(out)]
    assert U.main(argv) == 0
    (result,) = json.loads(out.read_text())["results"]
    assert not result["caught"] and [f["line"] for f in result["elsewhere"]] == [19]


def test_the_span_is_the_innermost_function_or_the_lines_at_module_level():
    src = "def f():\n    def g():\n        return 1\n    return g\nx = 1\n"
    assert U.function_span(src, 3, 3) == (2, 3)
    assert U.function_span(src, 4, 4) == (1, 4)
    assert U.function_span(src, 5, 5) == (5, 5)


@pytest.mark.parametrize("over, says", [
    ({"kind": "typo"}, "kind must be one of"),
    ({"lines": [3]}, "lines must be [START, END]"),
    ({"fix_commit": "abc"}, "fix_commit must be a full 40-digit commit"),
    ({"path": ""}, "missing path"),
])
def test_a_bad_list_is_a_one_line_error(tmp_path, capsys, over, says):
    fixes = write_list(tmp_path, "a" * 40, "b" * 40, **over)
    assert U.main(["--list", str(fixes), "--mirror", str(tmp_path), "--cache", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert says in err and len(err.strip().splitlines()) == 1


def test_a_commit_missing_from_the_mirror_fails_the_run(tmp_path, mirror, capsys):
    _work, buggy, _fixed = mirror
    fixes = write_list(tmp_path, buggy, "c" * 40)
    argv = ["--list", str(fixes), "--mirror", str(tmp_path / "mirror"), "--cache", str(tmp_path / "cache")]
    assert U.main(argv) == 1
    assert "FAILED Toy" in capsys.readouterr().err


def test_a_finding_at_a_call_that_names_the_buggy_routine_is_a_catch():
    fix = U.Fix("T", "o/n", "a" * 40, "b" * 40, "models.py", (50, 52), "val", "eval-missing")
    at_call = {"code": "MDL302", "path": "models.py", "line": 10, "message": "`val(net, loader)` evaluates `net`"}
    other = {"code": "MDL302", "path": "models.py", "line": 12, "message": "`model(x)` runs `model`"}
    wrong_code = {"code": "MDL301", "path": "models.py", "line": 11, "message": "`val(net)` leaves `net` in eval"}
    result = U.judge(fix, [at_call, other, wrong_code], [other], (45, 60))
    assert result["caught"] and result["cleared"]
    assert [f["line"] for f in result["findings"]] == [10] and [f["line"] for f in result["elsewhere"]] == [12]


def test_a_script_entry_counts_findings_anywhere_in_the_scripts_top_level_code():
    src = "import torch\n\ndef val(net):\n    net.eval()\n\nfor epoch in range(3):\n    step()\n    val(net)\n"
    assert U.top_level_lines(src) == {1, 2, 5, 6, 7, 8}
    fix = U.Fix("S", "o/n", "a" * 40, "b" * 40, "train.py", (7, 7), "<module>", "train-missing")
    at_val = {"code": "MDL301", "path": "train.py", "line": 8, "message": "`val(net)` leaves `net` in eval"}
    in_def = {"code": "MDL301", "path": "train.py", "line": 4, "message": "`net.eval()` ..."}
    assert U.judge(fix, [at_val], [], (7, 7), U.top_level_lines(src))["caught"]
    assert not U.judge(fix, [at_val], [], (7, 7))["caught"]  # without the script's lines: the span only
    assert not U.judge(fix, [in_def], [], (7, 7), U.top_level_lines(src))["caught"]

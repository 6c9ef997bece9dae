"""MDL301 / MDL303 / MDL304 / MDL205 on the patterns of issue 14 that the first versions missed
(helper crec): which rule owns a step in eval mode (decided by paths), wrappers that own the
networks, freezes in `__init__` / at setup reset by a later `train()` reached through calls, and the
near misses that must stay silent. Hand-written examples, not copies of the recall bench's scripts."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Dict, List, Sequence

from modelint.engine import EngineSettings, check_paths, check_source
from tests.helpers import actual, diff, expected_from_source

CODES = ("MDL205", "MDL301", "MDL303", "MDL304")


def check_annotated(source: str, codes: Sequence[str] = CODES, path: str = "example.py"):
    source = textwrap.dedent(source)
    expected = expected_from_source(source, only=list(codes))
    got = actual(check_source(source, path=path, select=list(codes)), only=list(codes))
    assert got == expected, diff(expected, got)


def project(tmp_path: Path, files: Dict[str, str], codes: Sequence[str] = CODES) -> List[tuple]:
    for rel, text in files.items():
        target = tmp_path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text))
    paths = sorted(tmp_path.rglob("*.py"))
    result = check_paths(paths, EngineSettings(select=tuple(codes), root=str(tmp_path), jobs=1))
    return sorted((Path(f.path).name, f.line, f.code) for f in result.findings)


# ---------------------------------------------------------------------------------------------
# MDL301 or MDL303: decided by the paths into the step, one finding


def test_eval_on_every_path_is_mdl303_and_only_mdl303():
    check_annotated(
        """
        import torch

        def evaluate(model, loader):
            model.eval()
            with torch.no_grad():
                return sum(model(x).sum().item() for x in loader)

        def fit(model, opt, loader, val_loader, epochs):
            evaluate(model, val_loader)        # a baseline before training
            for epoch in range(epochs):
                for x in loader:
                    opt.zero_grad()
                    model(x).sum().backward()
                    opt.step()  # expect: MDL303
                evaluate(model, val_loader)
        """
    )


def test_train_mode_on_the_first_pass_is_mdl301_and_only_mdl301():
    check_annotated(
        """
        import torch

        def evaluate(model, loader):
            model.eval()
            with torch.no_grad():
                return sum(model(x).sum().item() for x in loader)

        def fit(model, opt, loader, val_loader, epochs):
            model.train()
            for epoch in range(epochs):
                for x in loader:
                    opt.zero_grad()
                    model(x).sum().backward()
                    opt.step()
                evaluate(model, val_loader)  # expect: MDL301
        """
    )


def test_eval_on_one_branch_before_the_loop_is_neither():
    # a path in training mode reaches the first step, and nothing in the loop switches: no finding
    check_annotated(
        """
        import torch

        def fit(model, opt, loader, resume, evaluate):
            model.train()
            if resume:
                model.eval()
                evaluate(model)
                model.train()
            for x in loader:
                opt.zero_grad()
                model(x).sum().backward()
                opt.step()
        """
    )

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

BUGGY = """\
import torch.nn.functional as F
from torch import nn


class Block(nn.Module):
    def forward(self, x):
        return F.dropout(x, 0.1)
"""

CLEAN = """\
import torch.nn.functional as F
from torch import nn


class Block(nn.Module):
    def forward(self, x):
        return F.dropout(x, 0.1, self.training)
"""


class Run:
    def __init__(self, proc: subprocess.CompletedProcess):
        self.code = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr

    def __repr__(self) -> str:
        return f"<exit {self.code}\nstdout:\n{self.out}\nstderr:\n{self.err}>"


@pytest.fixture
def run(tmp_path):
    """Run the CLI in a fresh process in `tmp_path` (or `cwd=`), like a user would."""

    def _run(*args, cwd=None, env=None, input=None) -> Run:
        full_env = {**os.environ, **(env or {})}
        proc = subprocess.run(
            [sys.executable, "-m", "modelint", *map(str, args)],
            cwd=cwd or tmp_path,
            capture_output=True,
            text=True,
            env=full_env,
            input=input,
            timeout=300,
        )
        return Run(proc)

    return _run


@pytest.fixture
def write(tmp_path):
    def _write(rel: str, text: str, mode: str = "w") -> Path:
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if mode == "wb":
            path.write_bytes(text)
        else:
            path.write_text(textwrap.dedent(text))
        return path

    return _write

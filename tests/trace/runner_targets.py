"""Factories for the runner tests that need a model: one that leaves a helper process running
with the inherited stderr, and a module whose import is slow (the timeout must not count it)."""

import subprocess
import sys
import time

import torch
from torch import nn

time.sleep(4.0)  # a slow import: longer than the 3 s timeout the test gives the factory


def leaves_helper():
    # inherits stdout/stderr: the runner used to wait for this pipe to close
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    return nn.Sequential(nn.Linear(4, 2), nn.Dropout(0.1)), (torch.randn(3, 4),)

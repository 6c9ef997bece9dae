"""A checked file's syntax tree is freed when its check returns, by reference counting alone: a
reference cycle through the rules' context kept every tree alive until a full collection, which
then walked each of them again (6.5 of 97 CPU s of a cold check of transformers)."""

from __future__ import annotations

import gc

from modelint.analysis.context import FileContext
from modelint.engine import check_source

SOURCE = '''import torch
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.drop = nn.Dropout(0.1)

    def forward(self, x):
        self.seen = x.shape[0]
        return self._head(F.dropout(self.fc(x), 0.5))

    def _head(self, x):
        return self.drop(x) + torch.randn_like(x)


def fit(model, loader, opt, val_loader):
    model.eval()
    for x in loader:
        model(x).sum().backward()
        opt.step()
    with torch.no_grad():
        for x in val_loader:
            model(x)
'''


def test_no_context_is_left_to_the_cyclic_collector():
    gc.collect()
    gc.disable()
    try:
        assert check_source(SOURCE, "net.py")  # (the rules ran: some finding)
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        left = [o for o in gc.garbage if isinstance(o, FileContext)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert left == []

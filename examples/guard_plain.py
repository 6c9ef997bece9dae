# Plain PyTorch: a frozen backbone, a trained head
import torch
from torch import nn

import modelint

model = nn.Sequential()
model.add_module("backbone", nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16)))
model.add_module("head", nn.Sequential(nn.Dropout(0.1), nn.Linear(16, 2)))
model.backbone.requires_grad_(False).eval()  # frozen: its running statistics must not move
optimizer = torch.optim.SGD(model.head.parameters(), lr=0.1)
loss_fn = nn.CrossEntropyLoss()
loader = [(torch.randn(4, 8), torch.randint(0, 2, (4,))) for _ in range(3)]

model.head.train()
with modelint.guard(model, optimizer, frozen=[model.backbone]) as g:
    for x, y in loader:
        loss_fn(model(x), y).backward()
        optimizer.step()          # raises modelint.ModeViolation on a mode bug
        optimizer.zero_grad()
print(g.report)

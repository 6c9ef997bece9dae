import torch.nn.functional as F
from torch import nn


class MCDropout(nn.Module):
    def forward(self, x):
        x = F.dropout(x, 0.1, training=self.training)
        x = F.dropout(x, 0.5, training=True)  # modelint: ignore[MDL101]  -- MC dropout on purpose
        x = F.dropout(x, 0.5, training=True)  # noqa: MDL101
        return x

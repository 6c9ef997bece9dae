"""How much slower is `modelint.verify_modes` than the forwards it replaces?

Baseline: one training-mode forward with autograd plus one eval-mode forward under
`torch.inference_mode()` (what a test of both modes would run by hand). verify_modes runs two of
each plus snapshots, hooks and comparisons, so about 2x is the floor; the target is <= 3x.

    python bench/trace_overhead.py [--repeats 7]

Reports the best-of-N wall time and the best-of-N process CPU time of each, and their ratios
(on a shared, loaded machine the CPU-time ratio is the steadier number). `--threads 1` pins torch
to one thread, which makes both steadier still.
"""

from __future__ import annotations

import argparse
import time
from typing import Callable, Dict, Tuple

import torch
from torch import nn

import modelint


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        )
        self.dropout = nn.Dropout(0.25)
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        return self.head(self.dropout(self.features(x).mean(dim=(2, 3))))


class TinyGPT(nn.Module):
    """A GPT-style decoder: token + position embeddings, pre-norm causal blocks, LM head."""

    def __init__(self, vocab=4096, dim=256, layers=6, heads=8, context=128):
        super().__init__()
        self.tokens = nn.Embedding(vocab, dim)
        self.positions = nn.Embedding(context, dim)
        self.drop = nn.Dropout(0.1)
        layer = nn.TransformerEncoderLayer(dim, heads, 4 * dim, dropout=0.1, batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab, bias=False)
        self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(context), persistent=False)

    def forward(self, ids):
        n = ids.shape[1]
        h = self.drop(self.tokens(ids) + self.positions(torch.arange(n, device=ids.device)))
        h = self.blocks(h, mask=self.mask[:n, :n], is_causal=True)
        return self.head(self.norm(h))


def small():
    return SmallCNN(), (torch.randn(8, 3, 32, 32),)


def mid():
    ids = torch.randint(0, 4096, (4, 128), generator=torch.Generator().manual_seed(0))
    return TinyGPT(), (ids,)


def mid_short():
    ids = torch.randint(0, 4096, (1, 16), generator=torch.Generator().manual_seed(0))
    return TinyGPT(), (ids,)


def plain_pair(model, inputs):
    model.train()
    with torch.enable_grad():
        model(*inputs)
    model.eval()
    with torch.inference_mode():
        model(*inputs)
    model.train()


def best(fn: Callable[[], object], repeats: int) -> Tuple[float, float]:
    """(best wall time, best process CPU time) over `repeats` calls."""
    walls, cpus = [], []
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    return min(walls), min(cpus)


MODELS: Dict[str, Callable] = {
    "small CNN (batch 8x3x32x32)": small,
    "mid GPT (batch 4x128 tokens)": mid,
    "mid GPT (batch 1x16 tokens)": mid_short,
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    options = parser.parse_args()
    if options.threads:
        torch.set_num_threads(options.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), best of {options.repeats}")
    header = (f"{'model':<30} {'params':>9}  {'pair wall ms':>12} {'traced wall ms':>14} {'ratio':>6}"
              f"  {'pair cpu ms':>11} {'traced cpu ms':>13} {'ratio':>6}")
    print(header)
    print("-" * len(header))
    for name, build in MODELS.items():
        torch.manual_seed(0)
        model, inputs = build()
        params = sum(p.numel() for p in model.parameters())
        report = modelint.verify_modes(model, *inputs)  # warm-up (and a sanity check)
        assert not report.findings, str(report)
        plain_pair(model, inputs)
        base_wall, base_cpu = best(lambda: plain_pair(model, inputs), options.repeats)
        traced_wall, traced_cpu = best(lambda: modelint.verify_modes(model, *inputs), options.repeats)
        print(f"{name:<30} {params:>9}  {base_wall * 1e3:>12.1f} {traced_wall * 1e3:>14.1f} "
              f"{traced_wall / base_wall:>5.2f}x  {base_cpu * 1e3:>11.1f} {traced_cpu * 1e3:>13.1f} "
              f"{traced_cpu / base_cpu:>5.2f}x")


if __name__ == "__main__":
    main()

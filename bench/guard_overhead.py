"""What does `modelint.guard` cost per training step? Target: the step pre-hook <= 2% of a step.

    python bench/guard_overhead.py [--steps 30] [--threads 2]

Two mid-size models, each trained on CPU with AdamW: a BERT encoder built from a config (4 layers,
hidden 256, 5.3M parameters, batch 8 x 128 tokens; transformers' own modules, 24 of them
mode-dependent)
and a ResNet-style CNN with batch norm and dropout (1.6M parameters, batch 16 x 3 x 32 x 32, its
first stage frozen and in eval mode, so the frozen-statistics check compares real buffers).

For each it reports
* the median step (forward + backward + optimizer step) without the guard;
* the guard's own work per step, timed directly by calling the hook's check (`Guard.check_step`)
  N times on the trained model: "hook", and "hook + re-walk" where `model.train()` is called
  before every step as the Hugging Face Trainer does (the cached module list is rebuilt then);
* the hook's share of the step (the target figure: the re-walk figure is the worst case), and, as
  a cross-check, the median guarded step minus the median unguarded one (noisy on a shared machine:
  steps are interleaved in pairs; a difference within a few percent either way is noise).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

import modelint


class Block(nn.Module):
    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.skip = (nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
                     if stride != 1 or c_in != c_out else nn.Identity())

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(h)) + self.skip(x))


class ResNetish(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 32, 3, 1, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU())
        self.stages = nn.Sequential(Block(32, 32, 1), Block(32, 64, 2), Block(64, 64, 1),
                                    Block(64, 128, 2), Block(128, 128, 1), Block(128, 256, 2))
        self.drop = nn.Dropout(0.2)
        self.head = nn.Linear(256, classes)

    def forward(self, x):
        return self.head(self.drop(self.stages(self.stem(x)).mean((2, 3))))


def cnn_case():
    torch.manual_seed(0)
    model = ResNetish()
    model.stem.requires_grad_(False)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    x, y = torch.randn(16, 3, 32, 32), torch.randint(0, 10, (16,))

    def step():
        model.train()
        model.stem.eval()
        F.cross_entropy(model(x), y).backward()
        opt.step()
        opt.zero_grad()

    return "ResNet-style CNN", model, opt, step


def bert_case():
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(vocab_size=8000, hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                        intermediate_size=1024, max_position_embeddings=128, num_labels=2)
    torch.manual_seed(0)
    model = BertForSequenceClassification(config)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    ids, labels = torch.randint(0, 8000, (8, 128)), torch.randint(0, 2, (8,))

    def step():
        model.train()
        model(input_ids=ids, labels=labels).loss.backward()
        opt.step()
        opt.zero_grad()

    return "BERT (4 x 256)", model, opt, step


def time_steps(step, n):
    out = []
    for _ in range(n):
        t = time.perf_counter()
        step()
        out.append(time.perf_counter() - t)
    return out


def hook_cost(model, opt, step, rewalk: bool, n=2000) -> float:
    """Seconds per call of the guard's step check (what its pre-hook runs), after one real step
    (modes as in training), with or without invalidating the cached module list before each call
    (what `model.train()` does; its own cost is the user's, not the guard's)."""
    with modelint.guard(model, opt, on_violation="log") as g:
        step()
        total = 0.0
        for _ in range(n):
            if rewalk:
                g.origins.generation += 1
            t = time.perf_counter()
            g.check_step(opt)
            total += time.perf_counter() - t
    return total / n


def run(case, steps: int) -> None:
    name, model, opt, step = case()
    n_params = sum(p.numel() for p in model.parameters())
    time_steps(step, 3)  # warm-up
    plain, guarded = [], []
    g = modelint.guard(model, opt, on_violation="log")
    for _ in range(steps):  # interleaved, so load changes hit both alike
        plain += time_steps(step, 1)
        with g:
            guarded += time_steps(step, 1)
    base = statistics.median(plain)
    hook = hook_cost(model, opt, step, rewalk=False)
    walk = hook_cost(model, opt, step, rewalk=True, n=300)
    print(f"{name}: {n_params / 1e6:.1f}M parameters, {len(g.entries)} mode-dependent modules, "
          f"{g.tracked_buffers} frozen statistics buffers; guarded run findings: {len(g.report.findings)}")
    print(f"  step (no guard), median of {steps}: {base * 1e3:8.1f} ms")
    print(f"  hook per step:                 {hook * 1e6:8.1f} us  = {100 * hook / base:.3f}% of a step")
    print(f"  hook + re-walk per step:       {walk * 1e6:8.1f} us  = {100 * walk / base:.3f}% of a step")
    print(f"  guarded - unguarded medians:   {(statistics.median(guarded) - base) * 1e3:8.2f} ms "
          f"({100 * (statistics.median(guarded) / base - 1):+.2f}%, noise included)")
    verdict = "PASS" if walk / base <= 0.02 else "FAIL"
    print(f"  target hook <= 2% of a step: {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    for case in (bert_case, cnn_case):
        run(case, args.steps)


if __name__ == "__main__":
    main()

"""Peak memory of `modelint.verify_modes` on a GPT-2 (transformers config, no weight download).

The tracer's snapshot keeps one byte copy of every distinct storage behind the parameters and
buffers (GPT-2's tied embedding/LM-head weight counts once); the target is an extra peak within
1.1x the model's parameter+buffer bytes over what the plain forwards need.

    python bench/trace_memory.py [--layers 8 --hidden 512 --tokens 64]

Each measurement runs in a fresh process (Linux: the peak RSS is reset through
/proc/self/clear_refs after the model is built, and read back from VmHWM), so the model's
construction does not hide the peak. Prints MiB: parameter+buffer bytes (distinct storages),
the extra peak of a plain train+eval pair, of verify_modes, and their difference.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r'''
import json, sys, gc
import torch
import transformers
from transformers import GPT2Config, GPT2LMHeadModel
transformers.logging.set_verbosity_error()
import modelint
mode, layers, hidden, tokens = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.manual_seed(0)
config = GPT2Config(n_layer=layers, n_embd=hidden, n_head=8, n_positions=max(64, tokens))
model = GPT2LMHeadModel(config)
ids = torch.randint(0, config.vocab_size, (1, tokens), generator=torch.Generator().manual_seed(0))
tensors = list(model.parameters()) + list(model.buffers())
distinct = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}
per_tensor = sum(t.numel() * t.element_size() for m in model.modules()  # tied weights per holder
                 for t in list(m._parameters.values()) + list(m._buffers.values()) if t is not None)
def rss(field):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field):
                return int(line.split()[1]) * 1024
def run():
    if mode == "plain":
        model.train()
        with torch.enable_grad():
            model(ids, use_cache=False)
        model.eval()
        with torch.inference_mode():
            model(ids, use_cache=False)
        model.train()
    else:
        report = modelint.verify_modes(model, ids, use_cache=False)
        assert not report.findings, str(report)
run()  # warm-up: allocator pools, lazy imports, kernels
gc.collect()
with open("/proc/self/clear_refs", "w") as fh:
    fh.write("5")
base = rss("VmRSS:")
run()
peak = rss("VmHWM:")
print(json.dumps({"distinct": sum(distinct.values()), "per_tensor": per_tensor,
                  "params": sum(p.numel() for p in model.parameters()), "extra": peak - base}))
'''


def measure(mode: str, options) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, mode, str(options.layers), str(options.hidden),
                          str(options.tokens)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2, help="processes per mode (best is kept)")
    options = parser.parse_args()
    mib = 2 ** 20
    plain = min((measure("plain", options) for _ in range(options.repeats)), key=lambda r: r["extra"])
    traced = min((measure("traced", options) for _ in range(options.repeats)), key=lambda r: r["extra"])
    model_bytes = traced["distinct"]
    over = traced["extra"] - plain["extra"]
    print(f"GPT-2 {options.layers} layers, hidden {options.hidden}, {options.tokens} tokens: "
          f"{traced['params'] / 1e6:.1f} M parameters")
    print(f"parameter+buffer bytes: {model_bytes / mib:.1f} MiB distinct storages "
          f"({traced['per_tensor'] / mib:.1f} MiB counted per module, tied weights per holder)")
    print(f"extra peak RSS, plain train+eval pair: {plain['extra'] / mib:.1f} MiB")
    print(f"extra peak RSS, verify_modes:          {traced['extra'] / mib:.1f} MiB")
    ratio = over / model_bytes
    print(f"verify_modes over the plain pair:      {over / mib:.1f} MiB = {ratio:.2f}x the model "
          f"(target <= 1.10x): {'ok' if ratio <= 1.10 else 'OVER'}")
    return 0 if ratio <= 1.10 else 1


if __name__ == "__main__":
    sys.exit(main())

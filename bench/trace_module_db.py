"""Run `modelint.verify_modes` over PyTorch's own module test database.

`torch.testing._internal.common_modules.module_db` lists every `torch.nn` module with sample
constructor and forward inputs (what PyTorch's module tests use). Importing it also calls
`torch.backends.disable_global_flags()`, as PyTorch-based test suites do, which the tracer must
survive. Expected: zero findings (these are PyTorch's own, correct modules) and zero crashes;
"refused" counts the samples verify_modes declines with a clear ValueError/RuntimeError of its
own (none are expected). Findings listed in EXPECTED are true ones, each with its reason (one:
nn.Transformer's decoder output depends on grad mode when only src_key_padding_mask is given).

    pip install expecttest   # needed by torch.testing._internal
    python bench/trace_module_db.py [--limit N] [--verbose]

Exits 1 on any finding or crash.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
import warnings
from collections import Counter

import torch

import modelint
from modelint import Case

try:
    from torch.testing._internal.common_modules import module_db
except ImportError as exc:  # pragma: no cover - bench only
    sys.exit(f"cannot import torch's module_db ({exc}): pip install expecttest")

OUR_REFUSALS = ("verify_modes", "meta device", "lazy modules")

# Findings that are true, each with the reason; anything else fails the bench.
EXPECTED = {
    ("nn_Transformer", "MDL608"): (
        "nn.Transformer given src_key_padding_mask but no memory_key_padding_mask: without grad the "
        "encoder's nested-tensor fast path returns zeros at the padded positions, with grad it "
        "returns values there, and the decoder attends to those memory positions in both cases, "
        "so every decoder output differs (max abs diff ~0.4): a real grad-mode dependence of "
        "PyTorch's own module, the kind MDL608 is for"),
}


def samples(info):
    """(constructor args, kwargs, forward args, kwargs) for each sample, training-mode inputs."""
    for dtype in (torch.float32,):
        if dtype not in info.dtypes:
            continue
        try:
            inputs = info.module_inputs_func(info, device="cpu", dtype=dtype, requires_grad=False,
                                             training=True)
        except Exception:  # noqa: BLE001 - sample generation is PyTorch's, not ours
            continue
        for sample in inputs:
            if sample.forward_input is None:
                continue
            yield sample


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--limit", type=int, default=0, help="at most N samples per module")
    parser.add_argument("--verbose", action="store_true")
    options = parser.parse_args()
    warnings.simplefilter("ignore")
    counts = Counter()
    modules = set()
    problems = []
    t0 = time.perf_counter()
    for info in module_db:
        for index, sample in enumerate(samples(info)):
            if options.limit and index >= options.limit:
                break
            name = f"{info.formatted_name}[{index}]"
            torch.manual_seed(0)
            try:
                model = info.module_cls(*sample.constructor_input.args, **sample.constructor_input.kwargs)
            except Exception:  # noqa: BLE001 - not constructible on CPU float32: not a sample
                counts["unconstructible"] += 1
                continue
            case = Case(args=sample.forward_input.args, kwargs=sample.forward_input.kwargs)
            counts["samples"] += 1
            modules.add(info.formatted_name)
            try:
                report = modelint.verify_modes(model, case)
            except (ValueError, RuntimeError) as exc:
                notes = " ".join(getattr(exc, "__notes__", ()))
                if "both training and eval" in notes:
                    counts["forward fails in both modes"] += 1  # the sample itself is invalid
                    problems.append(f"fails in both modes {name}: {type(exc).__name__}: "
                                    f"{str(exc).splitlines()[0][:200]}")
                elif any(word in str(exc) for word in OUR_REFUSALS):
                    counts["refused"] += 1
                    problems.append(f"refused {name}: {exc}")
                else:
                    counts["crashes"] += 1
                    problems.append(f"CRASH {name}: {type(exc).__name__}: {exc}\n{traceback.format_exc(limit=-3)}")
                continue
            except Exception as exc:  # noqa: BLE001
                counts["crashes"] += 1
                problems.append(f"CRASH {name}: {type(exc).__name__}: {exc}\n{traceback.format_exc(limit=-3)}")
                continue
            unexpected = [f for f in report.findings if (info.formatted_name, f.code) not in EXPECTED]
            expected = [f for f in report.findings if (info.formatted_name, f.code) in EXPECTED]
            if expected:
                counts["expected true findings"] += len(expected)
                for f in expected:
                    problems.append(f"expected {f.code} {name}: {EXPECTED[(info.formatted_name, f.code)]}")
            if unexpected:
                counts["samples with findings"] += 1
                counts["findings"] += len(unexpected)
                problems.append(f"FINDINGS {name}:\n{report}")
            elif options.verbose:
                print(f"ok {name}")
    elapsed = time.perf_counter() - t0
    for line in problems:
        print(line)
    print(f"torch {torch.__version__}: {counts['samples']} samples of {len(modules)} modules in {elapsed:.0f} s; "
          f"unexpected findings {counts['findings']} (in {counts['samples with findings']} samples), "
          f"expected true findings {counts['expected true findings']}, "
          f"crashes {counts['crashes']}, refused {counts['refused']}, "
          f"samples whose forward fails in both modes {counts['forward fails in both modes']}, "
          f"unconstructible {counts['unconstructible']}")
    return 1 if counts["findings"] or counts["crashes"] else 0


if __name__ == "__main__":
    sys.exit(main())

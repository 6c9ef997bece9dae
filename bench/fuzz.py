#!/usr/bin/env python3
"""The long fuzz runs: `tests/test_fuzz.py` (issue #8) and the fixer's generated-program property
test in `tests/test_fix_properties.py` (issue #6), with far larger example counts.

CI runs that harness with small bounds (60 generated programs per strategy, 240 mutated files,
60 mutated notebooks). This script runs the same tests (same oracle: no exception, no traceback,
no MDL999, no exit status 2, no impossible position, pre-filter on/off identical, MDL000 exactly
where both parsers reject the file) with the counts given here, and prints the counts and the
outcome. With `--fixer` (the default) the fixer's property (fixing never raises, leaves
unfixable modules unchanged, gives parseable output without the fixed findings, and a second pass
is a no-op) runs on `--examples` hypothesmith programs too. A failing case is printed by pytest with the program or the mutated file's path (mutated
files that broke the contract are kept in pytest's temporary folder).

Usage::

    python bench/fuzz.py                       # 1,000 programs per strategy, 4,000 mutations
    python bench/fuzz.py --examples 300 --mutations 1000 --node-examples 50 --seed 7

Exit status: pytest's (0 = zero crashes).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# The tests whose size the counts control (the others are fixed-size and run in CI anyway).
SCALED = [
    "test_grammar_generated_programs",
    "test_libcst_node_generated_programs",
    "test_model_shaped_programs",
    "test_byte_mutations_of_real_files",
    "test_notebook_mutations",
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--examples", type=int, default=1000, help="hypothesmith / model-shaped programs per strategy")
    ap.add_argument("--node-examples", type=int, default=0, help="hypothesmith.from_node programs (~1 s each)")
    ap.add_argument("--mutations", type=int, default=4000, help="mutated fixture files (notebooks: a quarter)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the mutations (hypothesis is derandomised)")
    ap.add_argument("--no-fixer", dest="fixer", action="store_false", help="skip the fixer's property test")
    args = ap.parse_args()
    env = {
        **os.environ,
        "MODELINT_FUZZ_EXAMPLES": str(args.examples),
        "MODELINT_FUZZ_NODE_EXAMPLES": str(args.node_examples),
        "MODELINT_FUZZ_MUTATIONS": str(args.mutations),
        "MODELINT_FUZZ_SEED": str(args.seed),
        "MODELINT_FIX_EXAMPLES": str(args.examples),
    }
    expr = " or ".join(SCALED)
    cmd = [sys.executable, "-m", "pytest", str(REPO / "tests" / "test_fuzz.py"), "-q", "-p", "no:cacheprovider",
           "-k", expr, "-x"]
    start = time.perf_counter()
    code = subprocess.call(cmd, cwd=REPO, env=env)
    fixer_code = None
    if args.fixer:
        fixer_code = subprocess.call([sys.executable, "-m", "pytest", str(REPO / "tests" / "test_fix_properties.py"), "-q",
                                      "-p", "no:cacheprovider", "-k", "test_generated_programs_round_trip"],
                                     cwd=REPO, env=env)
    seconds = time.perf_counter() - start
    notebooks = max(args.mutations // 4, 20)
    total = 2 * args.examples + args.node_examples + args.mutations + notebooks
    print(
        f"fuzz: {args.examples} grammar programs, {args.examples} model-shaped programs, "
        f"{args.node_examples} from_node programs, {args.mutations} mutated files, {notebooks} mutated notebooks "
        f"(seed {args.seed}): {total} inputs, {'zero crashes' if code == 0 else 'FAILED'}, {seconds:.0f} s"
    )
    if fixer_code is not None:
        print(f"fixer: {args.examples} hypothesmith programs round-tripped, {'all held' if fixer_code == 0 else 'FAILED'}")
    return code or (fixer_code or 0)


if __name__ == "__main__":
    sys.exit(main())

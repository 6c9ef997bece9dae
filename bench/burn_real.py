#!/usr/bin/env python3
"""Run modelint's Rust (Burn) rules over real Burn code at pinned commits; compare with verdicts.

The codebases (``CODEBASES``): Burn's own crates and examples (tracel-ai/burn) and public Burn
model projects. Each is materialised once (only its ``.rs`` files) into ``CACHE/NAME/``:

- with ``--mirror DIR``: from the bare git repository ``DIR/OWNER+NAME/repo`` at the pinned commit
  (``git cat-file --batch``; blobs a partial mirror lacks are skipped and counted);
- otherwise: the pinned GitHub archive ``https://codeload.github.com/OWNER/NAME/tar.gz/COMMIT``.

Then ``python -m modelint check CACHE --lang rust --format json --no-cache --no-config`` runs once
over all of them (the modelint of this working tree) and every finding is looked up in the
committed verdicts file ``bench/verdicts/burn.tsv`` (columns ``codebase code path line verdict
reason``; verdict is ``real``, ``deliberate`` or ``false``). The report lists each finding with
its verdict, findings without a verdict, verdicts without a finding, and the share that is real or
deliberate (target >= 95%).

``--mutate`` also measures mutation recall on the real files: each Rust rule's bug is injected
into every real site that fits (``INJECTORS``: e.g. MDL104 drops the mode query of a sampling
``forward``, MDL401 moves a mode query into a loop, MDL302 re-applies the bug tracel-ai/burn#2736
fixed), and the rule must report the mutated file where it did not report the original.

Usage::

    python bench/burn_real.py --mirror /work/.mirror          # check + verdicts
    python bench/burn_real.py --mirror /work/.mirror --mutate # + mutation recall
    python bench/burn_real.py --cache /tmp/burn-real          # download the pinned archives

Exit status: 0 when every finding has a verdict and the target is met (and, with --mutate, each
rule's recall is >= 90%), 1 otherwise, 2 for a usage error. Only the standard library is used
(and modelint's `rust` extra for --mutate).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Tuple

ROOT = Path(__file__).resolve().parent.parent
VERDICTS = ROOT / "bench" / "verdicts" / "burn.tsv"
VERDICT_KINDS = ("real", "deliberate", "false")


@dataclass(frozen=True)
class Codebase:
    name: str
    repo: str  # owner/name on GitHub
    commit: str


CODEBASES = (
    Codebase("burn", "tracel-ai/burn", "2c06be351006851d42fdb6df16b976f4a82d9747"),
    Codebase("burn-models", "tracel-ai/models", "cb0d97e3bc8a516db37b1b669789670b9a369574"),
    Codebase("whisper-burn", "Gadersd/whisper-burn", "432ef86ec1cb9d57406b9fab4e2a13155b10d74b"),
    Codebase("stable-diffusion-burn", "Gadersd/stable-diffusion-burn", "893fb0950d253580dd6707e2a5f14f7573bb5953"),
    Codebase("llama2-burn", "Gadersd/llama2-burn", "325240e2417559f836e826f468bc725aa04814bd"),
    Codebase("burn-rl-examples", "yunjhongwu/burn-rl-examples", "bf76ba61fdc89837cbf259a6f554a1fcec238690"),
    Codebase("burn-distributed-rl", "ten2mushi/burn_distributed_rl", "d8f0f610e6d6a71c0d214642f97a245836631a8a"),
    Codebase("birefnet-burn", "nusu-github/BiRefNet-Burn", "d13265519d10c918fbebc831394086c313512e3e"),
    Codebase("bimm", "crutcher/bimm", "297c4feefef9ba79c75e7fdaf8d8e5a7daec5a54"),
    Codebase("dqn-burn", "rootware/Reinforcement_Learning_DQN_in_Rust_using_Burn", "d7ca41955ba1d841c8c0d43827ba8ba8f403f91c"),
    Codebase("sb3-burn", "will-maclean/sb3-burn", "5e95f78c596865108ac2f1f88642f0b88587f487"),
)

# The file whose bug tracel-ai/burn#2736 fixed (inference on `Autodiff<..>`), at the fix's parent.
HISTORICAL_MDL302 = ("tracel-ai/burn", "dd0396dd5bb2d464ddf34ae8ba03664bfd7bcf94^",
                     "examples/text-classification/examples/db-pedia-infer.rs")


# --- fetching ---------------------------------------------------------------------------------------
def _mirror_dir(mirror: Path, repo: str) -> Path:
    return mirror / repo.replace("/", "+") / "repo"


def _from_mirror(git_dir: Path, commit: str, dest: Path) -> Tuple[int, int]:
    """Write the commit's .rs files under dest; (written, missing blobs)."""
    listing = subprocess.run(["git", "--git-dir", str(git_dir), "ls-tree", "-r", commit],
                             capture_output=True, text=True, check=True).stdout
    entries = []
    for line in listing.splitlines():
        meta, path = line.split("\t", 1)
        _mode, kind, sha = meta.split()
        if kind == "blob" and path.endswith(".rs"):
            entries.append((sha, path))
    proc = subprocess.run(["git", "--git-dir", str(git_dir), "cat-file", "--batch"],
                          input="".join(f"{sha}\n" for sha, _ in entries).encode(), capture_output=True, check=True)
    out, pos, written, missing = proc.stdout, 0, 0, 0
    for sha, path in entries:
        nl = out.index(b"\n", pos)
        header = out[pos:nl].split()
        pos = nl + 1
        if len(header) < 3 or header[1] != b"blob":
            missing += 1
            continue
        size = int(header[2])
        target = dest / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(out[pos:pos + size])
        pos += size + 1
        written += 1
    return written, missing


def _from_archive(repo: str, commit: str, dest: Path) -> Tuple[int, int]:
    url = f"https://codeload.github.com/{repo}/tar.gz/{commit}"
    with urllib.request.urlopen(url, timeout=300) as resp:
        data = resp.read()
    written = 0
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in tar:
            if member.isfile() and member.name.endswith(".rs"):
                rel = Path(*Path(member.name).parts[1:])  # drop the archive's top folder
                target = dest / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(tar.extractfile(member).read())
                written += 1
    return written, 0


def materialise(cb: Codebase, cache: Path, mirror: Optional[Path]) -> Path:
    dest = cache / cb.name
    stamp = dest / ".commit"
    if stamp.exists() and stamp.read_text().strip() == cb.commit:
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    if mirror is not None:
        written, missing = _from_mirror(_mirror_dir(mirror, cb.repo), cb.commit, dest)
    else:
        written, missing = _from_archive(cb.repo, cb.commit, dest)
    print(f"{cb.name}: {written} .rs files" + (f" ({missing} blobs missing from the mirror)" if missing else ""),
          file=sys.stderr)
    stamp.write_text(cb.commit + "\n")
    return dest


def historical_file(mirror: Optional[Path]) -> Optional[str]:
    repo, rev, path = HISTORICAL_MDL302
    if mirror is not None:
        proc = subprocess.run(["git", "--git-dir", str(_mirror_dir(mirror, repo)), "show", f"{rev}:{path}"],
                              capture_output=True, text=True)
        return proc.stdout if proc.returncode == 0 else None
    commit = rev.rstrip("^")
    try:  # the parent of the fix: GitHub serves `COMMIT~1` as a ref
        with urllib.request.urlopen(f"https://raw.githubusercontent.com/{repo}/{commit}~1/{path}", timeout=60) as r:
            return r.read().decode("utf-8")
    except OSError:
        return None


# --- checking and verdicts ------------------------------------------------------------------------
def run_check(cache: Path, jobs: int) -> List[dict]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-m", "modelint", "check", str(cache), "--lang", "rust", "--format",
                           "json", "--exit-zero", "--no-cache", "--no-config", "--jobs", str(jobs)],
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        sys.exit(f"modelint failed ({proc.returncode}): {proc.stderr.strip()}")
    return json.loads(proc.stdout)


def keyed(findings: List[dict], cache: Path) -> Dict[Tuple[str, str, str, int], dict]:
    out = {}
    for f in findings:
        rel = Path(f["path"]).resolve().relative_to(cache.resolve()).as_posix()
        codebase, path = rel.split("/", 1)
        out[(codebase, f["code"], path, int(f["line"]))] = f
    return out


def read_verdicts(path: Path = VERDICTS) -> Dict[Tuple[str, str, str, int], Tuple[str, str]]:
    out = {}
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            if row["verdict"] not in VERDICT_KINDS:
                sys.exit(f"{path}: unknown verdict {row['verdict']!r}")
            out[(row["codebase"], row["code"], row["path"], int(row["line"]))] = (row["verdict"], row["reason"])
    return out


def report_verdicts(found: Dict, verdicts: Dict) -> bool:
    counts = {k: 0 for k in VERDICT_KINDS}
    unjudged = []
    for key in sorted(found):
        if key in verdicts:
            verdict, reason = verdicts[key]
            counts[verdict] += 1
            print(f"{verdict:10} {key[0]}/{key[2]}:{key[3]} {key[1]}  ({reason})")
        else:
            unjudged.append(key)
            print(f"{'NO VERDICT':10} {key[0]}/{key[2]}:{key[3]} {key[1]}  {found[key]['message'][:100]}")
    stale = sorted(set(verdicts) - set(found))
    for key in stale:
        print(f"{'STALE':10} {key[0]}/{key[2]}:{key[3]} {key[1]}  (verdict without a finding)")
    total = len(found)
    good = counts["real"] + counts["deliberate"]
    share = good / total if total else 1.0
    print(f"\n{total} findings: {counts['real']} real, {counts['deliberate']} deliberate, {counts['false']} false, "
          f"{len(unjudged)} without a verdict, {len(stale)} stale verdicts; real or deliberate: {share:.0%}")
    return not unjudged and not stale and share >= 0.95


# --- mutation recall --------------------------------------------------------------------------------
Mutation = Tuple[str, str]  # (mutated text, where)


def _parse(text: str):
    from modelint.rust.facts import RustFile
    from modelint.rust.syntax import parse

    data = text.encode("utf-8")
    return RustFile("<real>", data, parse(data))


def _splice(data: bytes, edits: List[Tuple[int, int, str]]) -> str:
    for start, end, new in sorted(edits, reverse=True):
        data = data[:start] + new.encode() + data[end:]
    return data.decode("utf-8", "replace")


def inject_mdl104(text: str) -> Iterator[Mutation]:
    """Drop the mode decision of a sampling forward path: every mode query of a forward-reachable
    method that samples becomes `true` (Burn's Dropout, GaussianNoise, RRelu, models' own)."""
    f = _parse(text)
    for owner in sorted({fn.owner for fn in f.functions if fn.owner and fn.name.startswith("forward")}):
        for fn in f.forward_reach(owner):
            calls = [c for c in f.calls_in(fn.node) if f.function_of(c.node) is fn]
            queries = [c for c in calls if f.is_mode_query(c)]
            if queries and any(f.is_sampling(c) for c in calls):
                yield _splice(f.data, [(q.start, q.end, "true") for q in queries]), f"{owner}::{fn.name}"


def inject_mdl104_sample(text: str) -> Iterator[Mutation]:
    """Sample in a real forward that does not ask for the mode: its first argument `x` gets
    `let x = x.clone() * x.random_like(Distribution::Bernoulli(0.9));` (unguarded dropout)."""
    f = _parse(text)
    for fn in f.functions:
        if not (fn.owner and fn.name == "forward") or f.has_mode_query(fn.node) or fn.body is None:
            continue
        params = fn.node.child_by_field_name("parameters")
        arg = next((p.child_by_field_name("pattern") for p in (params.named_children if params else ())
                    if p.type == "parameter"), None)
        if arg is not None and arg.type == "identifier":
            x = arg.text.decode()
            line = f"\n        let {x} = {x}.clone() * {x}.random_like(Distribution::Bernoulli(0.9));"
            yield _splice(f.data, [(fn.body.start_byte + 1, fn.body.start_byte + 1, line)]), f"{fn.owner}::forward"


def inject_mdl401(text: str) -> Iterator[Mutation]:
    """Ask for the mode inside a loop: a mode query not in a loop becomes
    `{ let mut m = false; for _ in 0..n { m = QUERY; } m }`."""
    f = _parse(text)
    for q in f.mode_queries:
        if f.enclosing_loop(q.node) is None and f.function_of(q.node) is not None:
            query = q.node.text.decode("utf-8", "replace")
            new = f"{{ let mut m = false; for _ in 0..4 {{ m = {query}; }} m }}"
            yield _splice(f.data, [(q.start, q.end, new)]), f"line {q.node.start_point[0] + 1}"


def inject_mdl206(text: str) -> Iterator[Mutation]:
    """Hand-roll the mode: a `#[derive(Module)]` struct with a `forward` in the same file gets a
    `training: bool` field, and its forward gates a drop path on it."""
    f = _parse(text)
    for struct in f.nodes["struct"]:
        body = struct.child_by_field_name("body")
        name = struct.child_by_field_name("name")
        if body is None or body.type != "field_declaration_list" or name is None:
            continue
        forward = f.methods_of(name.text.decode()).get("forward")
        params = forward.node.child_by_field_name("parameters") if forward is not None else None
        arg = next((p.child_by_field_name("pattern") for p in (params.named_children if params else ())
                    if p.type == "parameter"), None)
        fbody = forward.body if forward is not None else None
        if arg is None or arg.type != "identifier" or fbody is None or not _derives_module(f, struct):
            continue
        x = arg.text.decode()
        edits = [(body.start_byte + 1, body.start_byte + 1, "\n    training: bool,"),
                 (fbody.start_byte + 1, fbody.start_byte + 1,
                  f"\n        let {x} = if self.training {{ self.drop_path({x}) }} else {{ {x} }};")]
        yield _splice(f.data, edits), name.text.decode()


def _derives_module(f, struct) -> bool:
    node = struct.prev_named_sibling
    while node is not None and node.type in ("attribute_item", "line_comment", "block_comment"):
        if node.text.startswith(b"#[derive") and b"Module" in node.text:
            return True
        node = node.prev_named_sibling
    return False


def _inference_functions(f):
    """Real inference functions: named like inference, building/loading a model and running it."""
    p = f.profile
    for fn in f.functions:
        calls = [c for c in f.calls_in(fn.node) if f.function_of(c.node) is fn]
        if p.inference_function.match(fn.name) and fn.name not in ("main", "run", "launch") \
                and any(c.kind == "method" and c.name in p.model_builders for c in calls) \
                and not f.is_training_routine(fn) and not any(c.name == p.to_inference for c in calls):
            run = next((c for c in calls if c.kind == "method" and c.name in p.model_calls), None)
            if run is not None:
                yield fn, run


def inject_mdl302(text: str) -> Iterator[Mutation]:
    """Run a real inference function on an autodiff backend: its `B: Backend` bound becomes
    `B: AutodiffBackend`."""
    f = _parse(text)
    for fn, _run in _inference_functions(f):
        tp = fn.node.child_by_field_name("type_parameters")
        if tp is not None and re.search(rb"\bB\s*:\s*Backend\b", tp.text):
            new = re.sub(r"\bB\s*:\s*Backend\b", "B: AutodiffBackend", tp.text.decode(), count=1)
            yield _splice(f.data, [(tp.start_byte, tp.end_byte, new)]), fn.name


def inject_mdl307(text: str) -> Iterator[Mutation]:
    """Prepare the model of a real inference function with `no_grad()` instead of `valid()`."""
    f = _parse(text)
    for fn, run in _inference_functions(f):
        field = run.node.child_by_field_name("function")
        if field is not None and field.type == "field_expression":
            dot = field.child_by_field_name("field").start_byte - 1
            yield _splice(f.data, [(dot, dot, ".no_grad()")]), fn.name


INJECTORS: Dict[str, Tuple[Callable[[str], Iterator[Mutation]], ...]] = {
    "MDL104": (inject_mdl104, inject_mdl104_sample), "MDL401": (inject_mdl401,), "MDL206": (inject_mdl206,),
    "MDL302": (inject_mdl302,), "MDL307": (inject_mdl307,),
}


def _codes_in(path: str, text: str, code: str) -> int:
    from types import SimpleNamespace

    from modelint.rust.check import check

    spec = SimpleNamespace(select=(code,), rule_options={}, prefilter=True)
    return sum(1 for f in check(path, text.encode("utf-8"), spec) if f.code == code)


def mutation_recall(cache: Path, mirror: Optional[Path], per_rule: int) -> bool:
    files = sorted(p for p in cache.rglob("*.rs"))
    ok = True
    for code, injectors in INJECTORS.items():
        sites = found = 0
        misses = []
        for inject in injectors:
            cap = sites + per_rule
            for path in files:
                if sites >= cap:
                    break
                text = path.read_text(encoding="utf-8", errors="replace")
                before = None
                for mutated, where in inject(text):
                    if sites >= cap:
                        break
                    if before is None:
                        before = _codes_in(str(path), text, code)
                    sites += 1
                    if _codes_in(str(path), mutated, code) > before:
                        found += 1
                    else:
                        misses.append(f"{path.relative_to(cache)} ({where})")
        if code == "MDL302":
            old = historical_file(mirror)
            if old is not None:
                sites += 1
                found += _codes_in(HISTORICAL_MDL302[2], old, code) > 0
        recall = found / sites if sites else 0.0
        ok &= sites > 0 and recall >= 0.9
        print(f"{code}: {found}/{sites} injected bugs reported ({recall:.0%})")
        for miss in misses[:5]:
            print(f"    missed: {miss}")
    return ok


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mirror", type=Path, help="folder of bare git mirrors (OWNER+NAME/repo); else download")
    ap.add_argument("--cache", type=Path, default=Path(os.environ.get("MODELINT_BENCH_CACHE",
                                                                          Path.home() / ".cache" / "modelint-bench")) / "burn-real")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--mutate", action="store_true", help="also measure mutation recall on the real files")
    ap.add_argument("--per-rule", type=int, default=60, help="at most this many injected bugs per rule and injector")
    args = ap.parse_args(argv)
    if args.mirror is not None and not args.mirror.is_dir():
        ap.error(f"--mirror {args.mirror}: not a folder")
    sys.path.insert(0, str(ROOT))
    for cb in CODEBASES:
        materialise(cb, args.cache, args.mirror)
    found = keyed(run_check(args.cache, args.jobs), args.cache)
    ok = report_verdicts(found, read_verdicts())
    if args.mutate:
        print()
        ok &= mutation_recall(args.cache, args.mirror, args.per_rule)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Run modelint over real Keras, MLX and PaddlePaddle code, judge every finding, and measure
mutation recall on real files.

The codebases are pinned (``CODEBASES``): wheels from PyPI, fetched with ``pip download --no-deps``,
and published example scripts from GitHub repositories at a fixed commit. A repository comes from
``--mirror DIR`` (a directory of bare git repositories named ``OWNER+NAME/repo``, as the project's
fetch tool lays them out) when given, else from the pinned GitHub archive
(``https://github.com/OWNER/NAME/archive/COMMIT.tar.gz``). Everything is unpacked under ``--cache``
(default ``~/.cache/modelint-bench/frameworks``); nothing is written into the repository.

Three parts, each printed as a table:

1. Findings. ``python -m modelint check SRC --format json`` on each codebase (this working tree's
   modelint). Every finding is looked up in ``bench/verdicts/frameworks.tsv`` (columns
   ``codebase code path line verdict reason``; verdict one of ``real``, ``deliberate``, ``false``).
   The table gives, per codebase and code, the findings and how many are real / deliberate / false.
   A finding without a verdict, or a verdict row whose finding is gone, makes the run fail: the
   verdict file must describe the current findings exactly.
2. Precision per rule: (real + deliberate) / judged, over all codebases of the framework.
3. Mutation recall on real files. Each bug kind of ``MUTATIONS`` is injected into real files of
   the framework it belongs to (one site per mutated copy, at most ``--per-kind`` sites per
   codebase, in path order) and the mutated file is checked as that file of its codebase (the
   project index built from the codebase, so bases in other files are known). A site counts as
   caught when the expected code is reported on the injected line. Sites where the code was
   already reported before the mutation are skipped.

Usage::

    python bench/frameworks_real.py --mirror /work/.mirror          # everything
    python bench/frameworks_real.py --list                          # every finding with its line
    python bench/frameworks_real.py --fetch-only
    python bench/frameworks_real.py --write-missing                 # append unjudged findings as `?`

Exit status: 0 when every finding has a verdict, no verdict is stale and every precision and
recall target holds (precision >= 0.95 per rule and framework, recall >= 0.9 per bug kind); 1
otherwise; 2 for a usage or fetch error.
"""

from __future__ import annotations

import argparse
import ast
import csv
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import urllib.request
import zipfile
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parent.parent
VERDICTS = ROOT / "bench" / "verdicts" / "frameworks.tsv"
VERDICT_VALUES = ("real", "deliberate", "false")
PRECISION_TARGET = 0.95
RECALL_TARGET = 0.9


@dataclass(frozen=True)
class Codebase:
    name: str
    framework: str
    wheel: Optional[Tuple[str, str]] = None  # (distribution, version)
    repo: Optional[Tuple[str, str, Tuple[str, ...]]] = None  # (owner/name, commit, sub-folders)


CODEBASES: Tuple[Codebase, ...] = (
    Codebase("keras-3.10.0", "keras", wheel=("keras", "3.10.0")),
    Codebase("keras-hub-0.21.1", "keras", wheel=("keras-hub", "0.21.1")),
    Codebase("keras-examples", "keras",
             repo=("keras-team/keras", "3422977a5e38fb2f7709aaa9a08e47f0c43d0f60", ("examples",))),
    Codebase("mlx-lm-0.26.3", "mlx", wheel=("mlx-lm", "0.26.3")),
    Codebase("mlx-examples", "mlx", repo=("ml-explore/mlx-examples", "7ddca42f4dc83ea70f4c53d1b6a917d335ab435d", ())),
    Codebase("paddleocr-2.10.0", "paddle", wheel=("paddleocr", "2.10.0")),
    Codebase("paddlenlp-2.8.1", "paddle", wheel=("paddlenlp", "2.8.1")),
)


class FetchError(Exception):
    pass


# --- fetching ----------------------------------------------------------------------------------

def fetch(cb: Codebase, cache: Path, mirror: Optional[Path]) -> Path:
    dest = cache / "src" / cb.name
    if (dest / ".complete").is_file():
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    if cb.wheel:
        _fetch_wheel(cb.wheel, cache / "wheels", dest)
    else:
        _fetch_repo(cb.repo, mirror, dest)
    (dest / ".complete").write_text("")
    return dest


def _fetch_wheel(wheel: Tuple[str, str], wheels: Path, dest: Path) -> None:
    dist, version = wheel
    wheels.mkdir(parents=True, exist_ok=True)
    stem = dist.replace("-", "_").lower()
    found = [w for w in wheels.glob("*.whl") if w.name.lower().startswith(f"{stem}-{version}-")]
    if not found:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", f"{dist}=={version}",
               "-d", str(wheels), "-q"]
        if subprocess.run(cmd).returncode != 0:
            raise FetchError(f"pip download {dist}=={version} failed")
        found = [w for w in wheels.glob("*.whl") if w.name.lower().startswith(f"{stem}-{version}-")]
    if not found:
        raise FetchError(f"no wheel for {dist}=={version} in {wheels}")
    with zipfile.ZipFile(found[0]) as zf:
        for member in zf.namelist():
            if member.endswith(".py") and ".dist-info/" not in member:
                _write(dest / member, zf.read(member))


def _fetch_repo(repo: Tuple[str, str, Tuple[str, ...]], mirror: Optional[Path], dest: Path) -> None:
    slug, commit, folders = repo
    if mirror is not None:
        gitdir = mirror / slug.replace("/", "+") / "repo"
        if not gitdir.is_dir():
            raise FetchError(f"{slug} is not in the mirror {mirror}")
        data = subprocess.run(["git", "-C", str(gitdir), "archive", "--format=tar", commit, *folders],
                              capture_output=True)
        if data.returncode != 0:
            raise FetchError(f"git archive {slug}@{commit}: {data.stderr.decode(errors='replace').strip()}")
        archive, strip = tarfile.open(fileobj=io.BytesIO(data.stdout)), 0
    else:
        url = f"https://github.com/{slug}/archive/{commit}.tar.gz"
        try:
            with urllib.request.urlopen(url, timeout=120) as resp:
                archive, strip = tarfile.open(fileobj=io.BytesIO(resp.read()), mode="r:gz"), 1
        except OSError as exc:
            raise FetchError(f"download {url}: {exc}") from exc
    with archive:
        for member in archive.getmembers():
            parts = Path(member.name).parts[strip:]
            if not member.isfile() or not parts or not member.name.endswith(".py"):
                continue
            if folders and parts[0] not in folders:
                continue
            fh = archive.extractfile(member)
            if fh is not None:
                _write(dest.joinpath(*parts), fh.read())


def _write(path: Path, data: bytes) -> None:
    if ".." in path.parts:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


# --- findings and verdicts -----------------------------------------------------------------------

def run_check(src: Path) -> List[dict]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-m", "modelint", "check", str(src), "--format", "json", "--exit-zero",
                           "--no-config", "--no-cache"], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise FetchError(f"modelint check {src} failed: {proc.stderr.strip()[-500:]}")
    found = json.loads(proc.stdout or "[]")
    for f in found:
        f["path"] = Path(f["path"]).resolve().relative_to(src.resolve()).as_posix()
    return [f for f in found if f["code"] not in ("MDL000", "MDL001", "MDL999")]


def load_verdicts(path: Path) -> Dict[Tuple[str, str, str, int], Tuple[str, str]]:
    if not path.is_file():
        return {}
    out = {}
    with path.open(newline="") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            out[(row["codebase"], row["code"], row["path"], int(row["line"]))] = (row["verdict"], row["reason"])
    return out


def source_line(src: Path, rel: str, line: int) -> str:
    try:
        return (src / rel).read_text(errors="replace").splitlines()[line - 1].strip()
    except (OSError, IndexError):
        return ""


# --- mutations on real files -----------------------------------------------------------------------

@dataclass(frozen=True)
class Mutation:
    """One bug kind: `sites(source)` yields (line, mutated source, original line) per injected bug; the
    original line is None for an inserted statement (nothing was reported there before)."""

    id: str
    framework: str
    code: str
    sites: Callable[[str], Iterator[Tuple[int, str]]]


def _regex_sites(pattern: str, repl: Callable[[re.Match], str], guard: Callable[[str], bool] = lambda s: True):
    rx = re.compile(pattern, re.M)

    def sites(source: str) -> Iterator[Tuple[int, str]]:
        if not guard(source):
            return
        for m in rx.finditer(source):
            line = source.count("\n", 0, m.start()) + 1
            yield line, source[: m.start()] + repl(m) + source[m.end():], line
    return sites


def _insert_at_method_top(method: str, statement: str, guard: Callable[[str], bool], header: str = ""):
    """Insert `statement` as the first statement of every `def <method>(self, ...)` (a one-line
    signature followed by its body's first line); `header` is prepended to the file (an import)."""
    rx = re.compile(rf"^(?P<indent>[ \t]+)def {method}\(self[^\n]*\):[ \t]*\n(?P<body>[ \t]+)(?=\S)", re.M)

    def sites(source: str) -> Iterator[Tuple[int, str]]:
        if not guard(source):
            return
        for m in rx.finditer(source):
            body = m.group("body")
            if len(body) <= len(m.group("indent")) or source[m.end():].startswith(('"""', "'''", "r\"\"\"")):
                continue  # a docstring first: inserting before it changes nothing we test, skip
            mutated = source[: m.end()] + statement + "\n" + body + source[m.end():]
            line = source.count("\n", 0, m.end()) + 1
            if header:
                mutated, line = header + "\n" + mutated, line + header.count("\n") + 1
            yield line, mutated, None
    return sites


def _site_is_code(mutated: str, line: int) -> bool:
    """The injected line is a statement of the program (not text in a docstring example) and, for an
    inserted statement, sits in a method of a class that subclasses a framework layer spelled as such
    (`layers.Layer`, `keras.Model`, `nn.Module`, `nn.Layer`, a `*Layer`/`*Model`/`*Block` base) and is not
    random by design (`Random*`, `*Augment*`: MDL104's documented exemption)."""
    try:
        tree = ast.parse(mutated)
    except SyntaxError:
        return False
    return any(isinstance(n, ast.Call) and n.lineno == line for n in ast.walk(tree))


def _in_layer_class(mutated: str, line: int) -> bool:
    tree = ast.parse(mutated)
    for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
        if not (cls.lineno <= line <= (cls.end_lineno or 0)):
            continue
        bases = [ast.unparse(b) for b in cls.bases]
        layer_base = any(re.search(r"(^|\.)(Layer|Model|Module|Cell)$|(Layer|Model|Block)$|^(layers|nn)\.[A-Z]", b)
                         for b in bases)
        random_by_design = re.match(r"_*Random|.*Augment", cls.name) is not None
        if layer_base and not random_by_design and any(
                isinstance(m, ast.FunctionDef) and m.lineno < line <= (m.end_lineno or 0) for m in cls.body):
            return True
    return False


def _imports(*needles: str) -> Callable[[str], bool]:
    return lambda s: any(n in s for n in needles)


MUTATIONS: Tuple[Mutation, ...] = (
    # Keras: drop `training=True` from a model call in a training step (MDL305)
    Mutation("keras-drop-training-True", "keras", "MDL305",
             _regex_sites(r"(\w+(?:\.\w+)*\((?:[^()\n]|\([^()\n]*\))*?),\s*training=True\)",
                          lambda m: m.group(1) + ")", _imports("GradientTape", "stateless_call"))),
    # Keras: a sublayer's `training=training` replaced by a literal (MDL107)
    Mutation("keras-sublayer-training-literal", "keras", "MDL107",
             _regex_sites(r"(self\.\w+\((?:[^()\n]|\([^()\n]*\))*?training=)training\b",
                          lambda m: m.group(1) + "True", _imports("keras"))),
    # Keras: an unguarded `keras.random` draw at the top of a layer's `call` (MDL104)
    Mutation("keras-unguarded-random-in-call", "keras", "MDL104",
             _insert_at_method_top("call", "_noise = keras.random.normal((1,))", _imports("keras"), "import keras")),
    # MLX: an unguarded `mx.random` draw at the top of `__call__` (MDL104)
    Mutation("mlx-unguarded-random-in-call", "mlx", "MDL104",
             _insert_at_method_top("__call__", "_noise = mlx.core.random.normal((1,))", _imports("mlx"),
                                   "import mlx.core")),
    # MLX: a dropout layer built inside `__call__` (MDL202)
    Mutation("mlx-dropout-built-in-call", "mlx", "MDL202",
             _insert_at_method_top("__call__", "_drop = mlx.nn.Dropout(0.1)", _imports("mlx"), "import mlx.nn")),
    # Paddle: `training=` dropped from a functional dropout (MDL101)
    Mutation("paddle-dropout-training-dropped", "paddle", "MDL101",
             _regex_sites(r"(\bdropout\((?:[^()\n]|\([^()\n]*\))*?),\s*training=self\.training\s*\)",
                          lambda m: m.group(1) + ")", _imports("paddle"))),
    # Paddle: a LayerList replaced by a plain list (MDL201)
    Mutation("paddle-layerlist-to-list", "paddle", "MDL201",
             _regex_sites(r"(self\.\w+\s*=\s*)(?:nn|paddle\.nn)\.LayerList\((\[[^\n]*\])\)\s*$",
                          lambda m: m.group(1) + m.group(2), _imports("paddle"))),
    # Paddle: an unguarded `paddle.rand` draw at the top of `forward` (MDL104)
    Mutation("paddle-unguarded-rand-in-forward", "paddle", "MDL104",
             _insert_at_method_top("forward", "_noise = paddle.rand([1])", _imports("paddle"), "import paddle")),
)


def recall(cb: Codebase, src: Path, per_kind: int) -> Dict[str, Counter]:
    sys.path.insert(0, str(ROOT))
    from modelint.analysis.index import ProjectIndex, facts_from_source
    from modelint.engine import check_source

    files = sorted(p for p in src.rglob("*.py"))
    index = ProjectIndex()
    for p in files:
        index.add(facts_from_source(p.read_bytes(), p))
    out: Dict[str, Counter] = defaultdict(Counter)
    for mut in (m for m in MUTATIONS if m.framework == cb.framework):
        for p in files:
            if out[mut.id]["injected"] + out[mut.id]["skipped"] >= per_kind:
                break
            source = p.read_text(errors="replace")
            before = None
            for line, mutated, original in mut.sites(source):
                if out[mut.id]["injected"] + out[mut.id]["skipped"] >= per_kind:
                    break
                if before is None:
                    before = {f.line for f in check_source(source, path=str(p), select=[mut.code], index=index)}
                if original in before or not _site_is_code(mutated, line) or (
                        original is None and not _in_layer_class(mutated, line)) or _known_inert(mut, source, line):
                    out[mut.id]["skipped"] += 1
                    continue
                found = check_source(mutated, path=str(p), select=[mut.code], index=index)
                out[mut.id]["injected"] += 1
                if any(f.line == line and f.code == mut.code for f in found):
                    out[mut.id]["caught"] += 1
                else:
                    MISSES.append(f"{cb.name}/{p.relative_to(src)}:{line}: {mut.id} ({mut.code})")
    return out


# Keras layers whose output `training` does not change: a literal `training=` on one is no bug (MDL107's
# documented exemption), so such a sublayer is not an injection site.
_INERT = re.compile(r"^\s*self\.(\w+)\s*=\s*[\w.]*\b(Dense|EinsumDense|Conv[123]D|Conv[123]DTranspose|"
                    r"DepthwiseConv[12]D|SeparableConv[12]D|Embedding|LayerNormalization|Activation|ReLU|"
                    r"Reshape|Flatten|Permute|ZeroPadding[123]D|\w*Pooling[123]D)\(", re.M)


def _known_inert(mut: Mutation, source: str, line: int) -> bool:
    if mut.code != "MDL107":
        return False
    called = re.search(r"self\.(\w+)\(", source.splitlines()[line - 1])
    return bool(called) and called.group(1) in {m.group(1) for m in _INERT.finditer(source)}


MISSES: List[str] = []  # every injected bug not caught, for --misses


# --- main ------------------------------------------------------------------------------------------

def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "modelint-bench" / "frameworks")
    ap.add_argument("--mirror", type=Path, help="directory of bare git repositories (OWNER+NAME/repo)")
    ap.add_argument("--verdicts", type=Path, default=VERDICTS)
    ap.add_argument("--list", action="store_true", help="print every finding with its verdict and source line")
    ap.add_argument("--fetch-only", action="store_true")
    ap.add_argument("--no-recall", action="store_true", help="skip the mutation-recall part")
    ap.add_argument("--per-kind", type=int, default=40, help="mutation sites per bug kind and codebase (default 40)")
    ap.add_argument("--misses", action="store_true", help="print every injected bug that was not caught")
    ap.add_argument("--write-missing", action="store_true", help="append unjudged findings to the verdicts file as `?`")
    ap.add_argument("codebases", nargs="*", help="only these codebases (names from CODEBASES)")
    args = ap.parse_args(argv)
    chosen = [cb for cb in CODEBASES if not args.codebases or cb.name in args.codebases]
    if args.codebases and len(chosen) != len(set(args.codebases)):
        print(f"error: unknown codebase; known: {', '.join(c.name for c in CODEBASES)}", file=sys.stderr)
        return 2
    try:
        sources = {cb.name: fetch(cb, args.cache, args.mirror) for cb in chosen}
        if args.fetch_only:
            return 0
        findings = {cb.name: run_check(sources[cb.name]) for cb in chosen}
    except FetchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    ok = report_findings(chosen, sources, findings, args)
    if not args.no_recall:
        ok = report_recall(chosen, sources, args.per_kind, args.misses) and ok
    return 0 if ok else 1


def report_findings(chosen, sources, findings, args) -> bool:
    verdicts = load_verdicts(args.verdicts)
    seen = set()
    table: Dict[Tuple[str, str], Counter] = defaultdict(Counter)
    per_rule: Dict[Tuple[str, str], Counter] = defaultdict(Counter)
    missing = []
    for cb in chosen:
        for f in findings[cb.name]:
            key = (cb.name, f["code"], f["path"], f["line"])
            seen.add(key)
            verdict = verdicts.get(key, ("?", ""))[0]
            table[(cb.name, f["code"])][verdict] += 1
            per_rule[(cb.framework, f["code"])][verdict] += 1
            if verdict not in VERDICT_VALUES:
                missing.append(key)
            if args.list:
                print(f"{cb.name}/{f['path']}:{f['line']}: {f['code']} [{verdict}] {f['message'][:160]}\n"
                      f"    {source_line(sources[cb.name], f['path'], f['line'])}")
    names = {cb.name for cb in chosen}
    stale = [k for k in verdicts if k[0] in names and k not in seen]
    print(f"\n{'codebase':<20} {'code':<7} {'found':>5} {'real':>5} {'delib':>5} {'false':>5} {'unjudged':>8}")
    for (name, code), c in sorted(table.items()):
        unjudged = sum(v for k, v in c.items() if k not in VERDICT_VALUES)
        print(f"{name:<20} {code:<7} {sum(c.values()):>5} {c['real']:>5} {c['deliberate']:>5} {c['false']:>5} {unjudged:>8}")
    ok = True
    print(f"\n{'framework':<9} {'code':<7} {'judged':>6} {'precision':>9}")
    for (fw, code), c in sorted(per_rule.items()):
        judged = c["real"] + c["deliberate"] + c["false"]
        precision = (c["real"] + c["deliberate"]) / judged if judged else 1.0
        ok = ok and precision >= PRECISION_TARGET
        print(f"{fw:<9} {code:<7} {judged:>6} {precision:>9.2f}")
    if missing:
        print(f"\n{len(missing)} findings have no verdict in {args.verdicts}")
        if args.write_missing:
            new = not args.verdicts.is_file()
            args.verdicts.parent.mkdir(parents=True, exist_ok=True)
            with args.verdicts.open("a", newline="") as fh:
                if new:
                    fh.write("codebase\tcode\tpath\tline\tverdict\treason\n")
                for k in missing:
                    fh.write(f"{k[0]}\t{k[1]}\t{k[2]}\t{k[3]}\t?\t{source_line(sources[k[0]], k[2], k[3])[:100]}\n")
    for k in stale:
        print(f"stale verdict (no such finding): {' '.join(map(str, k))}")
    return ok and not missing and not stale


def report_recall(chosen, sources, per_kind: int, show_misses: bool) -> bool:
    print(f"\n{'codebase':<20} {'bug kind':<36} {'code':<7} {'caught':>6} {'injected':>8} {'skipped':>7}")
    totals: Dict[str, Counter] = defaultdict(Counter)
    for cb in chosen:
        for kind, c in sorted(recall(cb, sources[cb.name], per_kind).items()):
            code = next(m.code for m in MUTATIONS if m.id == kind)
            totals[kind]["caught"] += c["caught"]
            totals[kind]["injected"] += c["injected"]
            print(f"{cb.name:<20} {kind:<36} {code:<7} {c['caught']:>6} {c['injected']:>8} {c['skipped']:>7}")
    if show_misses:
        print("\n".join(["", "missed injections:", *MISSES]))
    ok = True
    print(f"\n{'bug kind':<36} {'recall':>7}")
    for kind, c in sorted(totals.items()):
        r = c["caught"] / c["injected"] if c["injected"] else float("nan")
        ok = ok and (not c["injected"] or r >= RECALL_TARGET)
        print(f"{kind:<36} {c['caught']:>3}/{c['injected']:<3} {r:.2f}")
    return ok


if __name__ == "__main__":
    sys.exit(main())

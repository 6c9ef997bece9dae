"""Check an in-memory document as if it were the file at PATH (for editors: stdin and the server).

`modelint check --stdin-filename PATH -` and `modelint server` both lint text that is not (or not
yet) on disk. "As if it were PATH" means what `modelint check PATH` would do to those bytes:
- the configuration is the nearest `[tool.modelint]` above PATH's folder (not the current
  directory: an editor starts its linter from anywhere), with the same command-line overrides;
- `per-file-ignores` are matched against PATH, relative to the configuration's folder;
- findings are reported under PATH as given;
- with a project index (the language server's workspace), a class whose `nn.Module` base lives in
  another file is recognised, as in a `modelint check` of the whole folder.

Built on the engine's public one-module entry point (`check_source`) and the fix loop
(`fixing.fix_text`); the lines that adapt check_source to a project index are marked, with the
engine parameter that would remove them.
"""

from __future__ import annotations

import codecs
import io
import tokenize
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from modelint.analysis.index import FileFacts, ProjectIndex, facts_from_source
from modelint.findings import Finding, tool_finding

PathLike = Union[str, Path]


class DocumentError(Exception):
    """One line for the user (configuration problem, undecodable input)."""


@dataclass(frozen=True)
class DocumentSettings:
    """What the engine needs for one document, resolved from its configuration."""

    select: Tuple[str, ...]
    rule_options: Dict[str, Dict[str, Any]] = field(default_factory=dict, hash=False)
    module_bases: Tuple[str, ...] = ()
    per_file_ignores: Tuple[Tuple[str, Tuple[str, ...]], ...] = ()
    root: str = "."  # folder that per-file-ignores globs are relative to
    config_path: Optional[Path] = None  # the pyproject.toml / modelint.toml read, if any


def document_settings(
    path: PathLike,
    config_file: Optional[PathLike] = None,
    no_config: bool = False,
    select: Optional[Sequence[str]] = None,
    extend_select: Sequence[str] = (),
    ignore: Sequence[str] = (),
) -> DocumentSettings:
    """Settings for the file at `path` (which need not exist): the nearest `[tool.modelint]` above
    its folder unless `config_file` / `no_config` say otherwise, then the command-line overrides.
    Raises DocumentError with the configuration's one-line message."""
    from modelint.config import ConfigError, find_pyproject, load_config, resolve_selection, validate_codes, validate_config

    try:
        if no_config:
            cfg = load_config(search=False)
        elif config_file is not None:
            cfg = load_config(Path(config_file))
        else:
            found = find_pyproject(_existing_folder(Path(path)))
            cfg = load_config(found, search=False) if found else load_config(search=False)
        validate_config(cfg)
        for name, codes in (("select", select or ()), ("extend-select", extend_select), ("ignore", ignore)):
            validate_codes(codes, f"--{name}")
    except ConfigError as exc:
        raise DocumentError(str(exc)) from None
    chosen = resolve_selection(select if select is not None else cfg.select,
                               list(cfg.extend_select) + list(extend_select), list(cfg.ignore) + list(ignore))
    return DocumentSettings(
        select=chosen,
        rule_options=cfg.rule_options,
        module_bases=tuple(cfg.module_bases),
        per_file_ignores=cfg.ignore_pairs(),
        root=str(cfg.root),
        config_path=cfg.path,
    )


def _existing_folder(path: Path) -> Path:
    """The closest existing folder at or above `path`'s folder (an unsaved file's folder may not exist)."""
    folder = path.resolve().parent
    while not folder.is_dir() and folder.parent != folder:
        folder = folder.parent
    return folder


def _ignored_here(path: PathLike, settings: DocumentSettings) -> Tuple[str, ...]:
    """Code patterns that `per-file-ignores` switch off for `path`."""
    from modelint.suppressions import per_file_ignored

    return per_file_ignored(str(path), settings.per_file_ignores, settings.root)


def _effective_select(path: PathLike, settings: DocumentSettings) -> Tuple[str, ...]:
    """The selection minus what per-file-ignores turn off for this path. Not running an ignored rule
    at all (rather than hiding its findings afterwards) also keeps `fix_source` from fixing what
    the report would not show."""
    ignored = _ignored_here(path, settings)
    return tuple(c for c in settings.select if not any(c.startswith(p) for p in ignored))


def _hidden_tool_code(f: Finding, path: PathLike, settings: DocumentSettings) -> bool:
    """MDL000/MDL999 are reported whatever the selection, but per-file-ignores can still hide them."""
    return any(f.code.startswith(p) for p in _ignored_here(path, settings))


# --------------------------------------------------------------------------------------------
# Cross-file context: `check_source(..., index=)` checks the document as the file PATH of the
# workspace's project (its own index entry replaced by the editor's text), so `from .base import
# Encoder` resolves to the workspace's `pkg.base.Encoder`, nn.Module-ness and LightningModule-ness
# included.


def document_facts(text: str, path: PathLike) -> FileFacts:
    """The document's import aliases and class bases, named by its real module path."""
    return facts_from_source(text.encode("utf-8", "surrogatepass"), Path(path))


# --------------------------------------------------------------------------------------------
# Checking and fixing


def check_document(
    text: str,
    path: PathLike,
    settings: DocumentSettings,
    index: Optional[ProjectIndex] = None,
) -> List[Finding]:
    """Findings for `text` as the file `path` (sorted, suppressions and per-file-ignores applied).
    `index`: the other files of the project (the document's own entry is replaced by `text`)."""
    from modelint.engine import check_source
    from modelint.sources import MAX_FILE_BYTES

    data = text.encode("utf-8", "surrogatepass")
    if len(data) > MAX_FILE_BYTES:
        return [tool_finding(str(path), "MDL000", f"document is {len(data) / 1e6:.1f} MB, over the "
                             f"{MAX_FILE_BYTES / 1e6:.0f} MB limit for analysis (LibCST needs ~500x a file's size in memory)")]
    found = check_source(text, str(path), _effective_select(path, settings), settings.rule_options,
                         settings.module_bases, index=index if index is not None and index.modules else None)
    return [f for f in found if not _hidden_tool_code(f, path, settings)]


@dataclass
class FixedDocument:
    text: str  # the fixed text (the input when nothing applied)
    findings: List[Finding]  # what remains, as check_document reports it
    applied: Dict[str, int] = field(default_factory=dict)  # fixes applied per code
    error: Optional[str] = None  # why a fix was not applied, if one was not


def fix_document(text: str, path: PathLike, settings: DocumentSettings, unsafe: bool = False,
                 index: Optional[ProjectIndex] = None) -> FixedDocument:
    """`--fix` on an in-memory document: the fix loop `modelint check --fix` runs (fix, re-check,
    until nothing changes; a fix that would break the parse is dropped), each round checked by
    `check_document`, so module-bases, the cross-file index and per-file-ignores count as in the
    report (nothing the report would not show is fixed)."""
    from modelint.fixing import fix_text

    def check(data: bytes) -> List[Finding]:
        return check_document(data.decode("utf-8", "surrogatepass"), path, settings, index)

    outcome = fix_text(text, lambda t: t.encode("utf-8", "surrogatepass"), check, lambda found: found, unsafe,
                       label=str(path))
    return FixedDocument(outcome.after, outcome.findings, dict(outcome.applied), outcome.error)


# --------------------------------------------------------------------------------------------
# Standard input


@dataclass
class StdinSource:
    text: str
    encoding: str  # the declared (PEP 263) or default encoding
    bom: bool

    def encode(self, text: str) -> bytes:
        """`text` in the input's own encoding (and BOM): what `--fix` writes to standard output."""
        data = text.encode(self.encoding)
        return (codecs.BOM_UTF8 + data) if self.bom else data


def decode_stdin(data: bytes) -> StdinSource:
    """Bytes read from standard input as text, by their BOM / encoding cookie like a file on disk;
    newlines are kept as they are (`--fix` output changes only what the fixes change)."""
    bom = data.startswith(codecs.BOM_UTF8)
    if b"\x00" in data:
        raise DocumentError("standard input contains NUL bytes; not Python source")
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        text = data.decode(encoding)
    except (SyntaxError, UnicodeDecodeError, LookupError) as exc:
        reason = exc.reason if isinstance(exc, UnicodeDecodeError) else str(exc)
        raise DocumentError(f"cannot decode standard input: {reason}") from None
    if bom:
        text = text.lstrip("\ufeff")
        encoding = "utf-8"
    return StdinSource(text, "utf-8" if encoding == "utf-8-sig" else encoding, bom)


@dataclass
class StdinResult:
    findings: List[Finding]
    output: Optional[bytes] = None  # with fix: the fixed source, for standard output
    applied: Dict[str, int] = field(default_factory=dict)
    error: Optional[str] = None
    before: str = ""  # the decoded input and, with fix, the fixed text (for --diff)
    after: str = ""


def check_stdin(data: bytes, path: PathLike, settings: DocumentSettings, fix: Optional[str] = None) -> StdinResult:
    """`modelint check --stdin-filename PATH -`: `data` (standard input's bytes) checked as PATH;
    `fix` None, "safe" or "unsafe". Like `modelint check PATH`, the project index is the document
    alone. Raises DocumentError for input that is not Python text (a notebook, NUL bytes, an
    undecodable byte)."""
    if str(path).endswith(".ipynb"):
        raise DocumentError("--stdin-filename: notebooks cannot be read from standard input; pass the .ipynb path instead")
    source = decode_stdin(data)
    if fix is None:
        return StdinResult(check_document(source.text, path, settings), before=source.text, after=source.text)
    fixed = fix_document(source.text, path, settings, unsafe=fix == "unsafe")
    try:
        output = source.encode(fixed.text)
    except UnicodeEncodeError:  # a fix added text the declared encoding cannot hold: write the input back
        return StdinResult(check_document(source.text, path, settings), data, {},
                           f"{path}: fixes not applied: the fixed text cannot be encoded in {source.encoding}",
                           source.text, source.text)
    return StdinResult(fixed.findings, output, fixed.applied, fixed.error, source.text, fixed.text)

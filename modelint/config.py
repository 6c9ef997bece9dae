"""`[tool.modelint]` in the nearest pyproject.toml, merged with command-line overrides.

Keys (all optional):
    select = ["MDL1", "MDL201"]     # codes or prefixes; default: every default-on rule
    extend-select = ["MDL001"]      # added to select
    ignore = ["MDL102"]             # removed from the selection
    exclude = [...]                 # replaces the default excluded folders/globs
    extend-exclude = ["legacy/"]    # added to them
    per-file-ignores = {"tests/*" = ["MDL3"]}
    module-bases = ["mylib.Block"]  # extra classes to treat as nn.Module
    respect-gitignore = true
    notebooks = true                # also check .ipynb files found in folders
    lang = ["python", "rust"]       # languages to check (default: python, and rust when its extra is installed)
    [tool.modelint.rules.MDL101]    # per-rule options (see `modelint rule CODE`)
    report-always-on = false
    [tool.modelint.trace]           # runtime tracer
    targets = ["fixtures/trace/models.py:vrp_policy"]
    timeout = 120
    allow = {"pkg.mod:factory" = ["MDL601"]}
An unknown key, a value of the wrong type or an unknown code is a `ConfigError` naming the file
and the key.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from modelint.catalog import catalog, suggest
from modelint.discovery import DEFAULT_EXCLUDE, LANGUAGE_SUFFIXES


class ConfigError(Exception):
    """One line, already naming the file and key."""


_LIST_KEYS = ("select", "extend-select", "ignore", "exclude", "extend-exclude", "module-bases")
_KNOWN_KEYS = set(_LIST_KEYS) | {"per-file-ignores", "rules", "respect-gitignore", "notebooks", "trace", "cache-dir", "lang"}
_TRACE_KEYS = {"targets", "timeout", "allow"}


def ignore_pairs(per_file_ignores: Mapping[str, Sequence[str]]) -> Tuple[Tuple[str, Tuple[str, ...]], ...]:
    """{glob: codes} -> sorted (glob, upper-cased codes) pairs."""
    return tuple((g, tuple(c.upper() for c in codes)) for g, codes in sorted(per_file_ignores.items()))


@dataclass
class Config:
    path: Optional[Path] = None  # the pyproject.toml read, if any
    select: Optional[List[str]] = None
    extend_select: List[str] = field(default_factory=list)
    ignore: List[str] = field(default_factory=list)
    exclude: Optional[List[str]] = None
    extend_exclude: List[str] = field(default_factory=list)
    per_file_ignores: Dict[str, List[str]] = field(default_factory=dict)
    module_bases: List[str] = field(default_factory=list)
    respect_gitignore: bool = True
    notebooks: bool = True  # discover .ipynb files too
    rule_options: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    trace_targets: List[str] = field(default_factory=list)
    trace_timeout: Optional[float] = None
    trace_allow: Dict[str, List[str]] = field(default_factory=dict)
    cache_dir: Optional[str] = None
    lang: Optional[List[str]] = None  # None: python, plus rust when the `rust` extra is installed

    def ignore_pairs(self) -> Tuple[Tuple[str, Tuple[str, ...]], ...]:
        """`per-file-ignores` as the engine takes them: (glob, upper-cased codes) pairs, sorted."""
        return ignore_pairs(self.per_file_ignores)

    @property
    def root(self) -> Path:
        """Folder that globs and relative paths in the config are relative to."""
        return self.path.parent if self.path else Path.cwd()


def find_pyproject(start: Optional[Path] = None) -> Optional[Path]:
    """The nearest pyproject.toml with a [tool.modelint] table, searching upward."""
    start = (start or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            data = _load_toml(candidate)
            if "modelint" in data.get("tool", {}):
                return candidate
    return None


def _load_toml(path: Path) -> dict:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None


def load_config(path: Optional[Path] = None, *, search: bool = True) -> Config:
    """Read `path` (a pyproject.toml or a standalone modelint.toml) or the nearest pyproject."""
    if path is None:
        if not search:
            return Config()
        path = find_pyproject()
        if path is None:
            return Config()
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    data = _load_toml(path)
    table = data.get("tool", {}).get("modelint") if path.name == "pyproject.toml" else data.get("tool", {}).get("modelint", data)
    if table is None:
        return Config(path=path)
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [tool.modelint] must be a table")
    return _parse_table(path, table)


def _str_list(path: Path, key: str, value: Any) -> List[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{path}: tool.modelint.{key} must be a list of strings")
    return list(value)


def _parse_table(path: Path, table: Dict[str, Any]) -> Config:
    cfg = Config(path=path)
    for key, value in table.items():
        if key not in _KNOWN_KEYS:
            raise ConfigError(f"{path}: unknown key tool.modelint.{key}{suggest(key, _KNOWN_KEYS)}")
        if key in _LIST_KEYS:
            setattr(cfg, key.replace("-", "_"), _str_list(path, key, value))
        elif key in ("respect-gitignore", "notebooks"):
            if not isinstance(value, bool):
                raise ConfigError(f"{path}: tool.modelint.{key} must be true or false")
            setattr(cfg, key.replace("-", "_"), value)
        elif key == "cache-dir":
            if not isinstance(value, str):
                raise ConfigError(f"{path}: tool.modelint.cache-dir must be a string")
            cfg.cache_dir = value
        elif key == "per-file-ignores":
            if not isinstance(value, dict):
                raise ConfigError(f"{path}: tool.modelint.per-file-ignores must be a table of glob = [codes]")
            cfg.per_file_ignores = {g: _str_list(path, f"per-file-ignores.{g}", v) for g, v in value.items()}
        elif key == "lang":
            cfg.lang = _languages(_str_list(path, key, value), f"{path}: tool.modelint.lang")
        elif key == "rules":
            cfg.rule_options = _parse_rule_options(path, value)
        elif key == "trace":
            _parse_trace(path, value, cfg)
    return cfg


def _languages(names: Sequence[str], where: str) -> List[str]:
    out = [n.strip().lower() for n in names]
    for n in out:
        if n not in LANGUAGE_SUFFIXES:
            raise ConfigError(f"{where}: unknown language {n!r}{suggest(n, LANGUAGE_SUFFIXES)}")
    return out


def resolve_languages(cli: Optional[Sequence[str]], cfg: Config) -> Tuple[List[str], bool]:
    """The languages to check, and whether they were asked for (`--lang`, `lang = [...]`) rather
    than defaulted (python, plus rust when the `rust` extra is installed)."""
    if cli:
        return _languages(cli, "--lang"), True
    if cfg.lang is not None:
        return list(cfg.lang), True
    from modelint.rust import available

    return (["python", "rust"] if available() else ["python"]), False


def validate_config(cfg: Config) -> None:
    """Check every code and rule option against the catalogue (kept apart from parsing, so the
    cache location can be known before the catalogue is loaded)."""
    if cfg.path is None:
        return
    path = cfg.path
    for key in ("select", "extend_select", "ignore"):
        validate_codes(getattr(cfg, key) or [], f"{path}: tool.modelint.{key.replace('_', '-')}")
    for glob, codes in cfg.per_file_ignores.items():
        validate_codes(codes, f"{path}: tool.modelint.per-file-ignores.{glob}")
    for target, codes in cfg.trace_allow.items():
        validate_codes(codes, f"{path}: tool.modelint.trace.allow.{target}")
    _validate_rule_options(path, cfg.rule_options)


def _parse_rule_options(path: Path, value: Any) -> Dict[str, Dict[str, Any]]:
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: tool.modelint.rules must be a table of [tool.modelint.rules.CODE] tables")
    return {code: options for code, options in value.items()}


def _validate_rule_options(path: Path, value: Dict[str, Any]) -> None:
    rules = {c: i for c, i in catalog().items() if i.kind == "static"}
    for code, options in value.items():
        if code not in rules:
            raise ConfigError(f"{path}: tool.modelint.rules.{code}: unknown rule{suggest(code, rules)}")
        schema = rules[code].options
        if not isinstance(options, dict):
            raise ConfigError(f"{path}: tool.modelint.rules.{code} must be a table")
        for name, v in options.items():
            if name not in schema:
                known = ", ".join(sorted(schema)) or "none"
                raise ConfigError(f"{path}: tool.modelint.rules.{code}.{name}: unknown option (known: {known})")
            default = schema[name]
            if type(v) is not type(default) and not (isinstance(default, float) and type(v) is int):
                raise ConfigError(
                    f"{path}: tool.modelint.rules.{code}.{name} must be a {type(default).__name__}, got {type(v).__name__}"
                )


def _parse_trace(path: Path, value: Any, cfg: Config) -> None:
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: tool.modelint.trace must be a table")
    for key, v in value.items():
        if key not in _TRACE_KEYS:
            raise ConfigError(f"{path}: unknown key tool.modelint.trace.{key}")
        if key == "targets":
            cfg.trace_targets = _str_list(path, "trace.targets", v)
        elif key == "timeout":
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
                raise ConfigError(f"{path}: tool.modelint.trace.timeout must be a positive number of seconds")
            cfg.trace_timeout = float(v)
        elif key == "allow":
            if not isinstance(v, dict):
                raise ConfigError(f"{path}: tool.modelint.trace.allow must be a table of target = [codes]")
            cfg.trace_allow = {t: _str_list(path, f"trace.allow.{t}", c) for t, c in v.items()}


def validate_codes(codes: Sequence[str], where: str) -> None:
    known = catalog()
    for code in codes:
        c = code.strip().upper()
        if c == "ALL" or any(k.startswith(c) for k in known) and c.startswith("MDL"):
            continue
        raise ConfigError(f"{where}: unknown rule code {code!r}{suggest(c, known)}")


def resolve_selection(
    select: Optional[Sequence[str]],
    extend_select: Sequence[str],
    ignore: Sequence[str],
    kinds: Tuple[str, ...] = ("static", "tool"),
) -> Tuple[str, ...]:
    """Codes that are on: (select or the default-on set) + extend-select - ignore.
    A prefix such as `MDL1` stands for every code it starts."""
    known = {c: i for c, i in catalog().items() if i.kind in kinds}

    def expand(patterns: Sequence[str]) -> set:
        out = set()
        for p in patterns:
            p = p.strip().upper()
            out |= {c for c in known if p == "ALL" or c.startswith(p)}
        return out

    if select is None:
        chosen = {c for c, i in known.items() if i.default}
    else:
        chosen = expand(select) | {c for c, i in known.items() if i.kind == "tool" and i.default}
    chosen |= expand(extend_select)
    chosen -= expand(ignore)
    return tuple(sorted(chosen))


def default_exclude(cfg: Config) -> Tuple[List[str], List[str]]:
    return (list(cfg.exclude) if cfg.exclude is not None else list(DEFAULT_EXCLUDE)), list(cfg.extend_exclude)

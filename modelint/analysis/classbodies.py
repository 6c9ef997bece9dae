"""What each class body builds, read from the file's text in the index pass (for `analysis.sensitivity`).

The cross-file index (`analysis.index`) knows each class's bases; mode sensitivity also needs what a
class in *another* file constructs. The check pass parses one file per worker, so those facts have
to come from the index pass, which reads every file's text but parses only small snippets. Per
class (top level or nested, named as in `FileFacts.classes`) it records, from the class's own lines
(nested classes excluded):
- `calls`: calls whose name could build a layer or take the mode: a capitalised last name
  (`nn.Dropout(`, `Encoder(`), a call of an `__init__` parameter (`norm_layer(dim)`), a functional
  call that takes the mode (`F.dropout(`, from the profile) and `from_pretrained(`; each with its
  line, the call's text up to the matching parenthesis (parsed only when someone asks) and whether
  it is assigned to `self.<attr>` directly, and the `if <param> == "<literal>":` / `elif` right above
  it when that tests an `__init__` parameter (a construction binding another literal builds no such
  layer: `norm="instance"` against `if norm == "batch": ... nn.BatchNorm2d`);
- `refs`: names of mode-sensitive layer classes used without a call (`norm_layer = nn.BatchNorm2d`),
  outside the `__init__` signature and outside `isinstance`/`issubclass` lines;
- `mode_lines`: lines reading the module's mode (`self.training`);
- `rebinds` / `kept`: a constructor parameter rebound to a class name (`norm_layer = nn.BatchNorm2d`)
  or kept as an attribute (`self.backbone = backbone`);
- `signature`: the `__init__` signature's text (parameters, defaults and annotations are parsed
  from it on first use).

Heuristics, documented because they can be wrong: triple-quoted strings are blanked before the scan
(a layer named in a docstring is not a call); a line is a comment from its first `#`; a class body
ends at the first later line indented no deeper than its header that does not start with a closing
bracket (a wrapped expression's last line; other continuation lines, or a single-quoted string at that
depth, end it early); names are resolved later through the file's
imports, as the index does.

The facts ride on the file's `FileFacts` object (`attach` / `bodies_of`) so that no other module's
data type changes; `project_fingerprint` adds them to the index fingerprint of the result cache, so a
finding that depends on another file's class body is recomputed when that body changes.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
import zlib
from dataclasses import dataclass
from functools import cached_property
from typing import Dict, List, Mapping, Optional, Tuple

from modelint.analysis.index import FileFacts, ProjectIndex, attach, bodies_of  # noqa: F401 (re-exported)
from modelint.frameworks import Profile, profile_for


@dataclass(frozen=True)
class CallSite:
    name: str  # dotted, as written (`nn.Dropout`)
    line: int
    text: Optional[str]  # the call up to its closing parenthesis; None when not closed within the limit
    held: bool  # `self.x = <call>`: the object is kept as an attribute
    attr: Optional[str] = None  # that attribute's name (`x`)
    # the site sits directly under `if <param> == "<literal>":` / `elif ...` of an `__init__` parameter:
    # (param, literal); a construction binding another literal does not build it (`_when`); (param,
    # None) for a plain `if <param>:` / `if self.<param>:`, which a falsy literal does not enter
    when: Optional[Tuple[str, Optional[str]]] = None


@dataclass(frozen=True)
class ClassBody:
    line: int
    signature: Optional[str] = None  # `def __init__(...)` as written; None when the class has none
    calls: Tuple[CallSite, ...] = ()
    refs: Tuple[Tuple[str, int], ...] = ()
    mode_lines: Tuple[int, ...] = ()
    # `norm_layer = nn.BatchNorm2d` / `conv_block = conv_block or BasicConv2d`: a constructor
    # parameter rebound in the body to a class name (param, dotted name, line).
    rebinds: Tuple[Tuple[str, str, int], ...] = ()
    # `self.backbone = backbone`: a constructor parameter kept as an attribute (param, line).
    kept: Tuple[Tuple[str, int], ...] = ()

    @property
    def has_init(self) -> bool:
        return self.signature is not None

    @cached_property
    def _parsed(self) -> Tuple[bool, Tuple[Tuple[str, Optional[str]], ...], Dict[str, str]]:
        return _parse_signature(self.signature) if self.signature is not None else (False, (), {})

    @property
    def annotations(self) -> Dict[str, str]:
        """`__init__` parameter -> its annotation as source text."""
        return self._parsed[2]

    @property
    def params(self) -> Tuple[Tuple[str, Optional[str]], ...]:
        """`__init__`'s parameters after `self`: (name, default as source text or None)."""
        return self._parsed[1]

    @property
    def star(self) -> bool:
        """`__init__` takes `*args` / `**kwargs` (or its signature could not be read)."""
        return self._parsed[0]

    def to_json(self) -> list:
        return [self.line, self.signature, [[c.name, c.line, c.text, c.held, c.attr, c.when] for c in self.calls],
                [list(r) for r in self.refs], list(self.mode_lines), [list(r) for r in self.rebinds],
                [list(k) for k in self.kept]]

    @staticmethod
    def from_json(raw: list) -> "ClassBody":
        line, signature, calls, refs, mode_lines, rebinds, kept = raw
        return ClassBody(line, signature, tuple(CallSite(n, ln, t, h, a, tuple(w) if w else None)
                                                for n, ln, t, h, a, w in calls),
                         tuple((n, ln) for n, ln in refs), tuple(mode_lines), tuple((p, n, ln) for p, n, ln in rebinds),
                         tuple((p, ln) for p, ln in kept))


def _parse_signature(signature: str) -> Tuple[bool, Tuple[Tuple[str, Optional[str]], ...], Dict[str, str]]:
    """(takes *args/**kwargs, parameters after self, annotations) of an `__init__` signature's text."""
    try:
        fn = ast.parse(signature + ": pass").body[0]
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return True, (), {}
    args = fn.args
    positional = args.posonlyargs + args.args
    defaults: List[Optional[ast.expr]] = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    params = [(a.arg, d) for a, d in zip(positional, defaults)][1:]
    params += list(zip((a.arg for a in args.kwonlyargs), args.kw_defaults))
    shown = tuple((n, ast.unparse(d) if d is not None else None) for n, d in params)
    notes = {a.arg: ast.unparse(a.annotation) for a in positional + args.kwonlyargs if a.annotation is not None}
    return bool(args.vararg or args.kwarg), shown, notes


# --- storage on FileFacts: `index.attach` / `index.bodies_of` (re-exported here) ---------------------
class LazyBodies(Mapping):
    """A file's class bodies, scanned on first use: without a result cache nothing needs every
    file's bodies (the cache's fingerprint does), and a check of timm asks for the bodies of few
    files (the sensitivity of the models its call-site rules look at; none of timm's 304). Scanning
    them all up front cost 1.07 CPU s on timm (12.3 s on transformers' 2,912 files): with it the
    index pass of timm took 1.99 s, without it 0.77 s (ad11e30, before the mode model: 0.34-0.46 s).
    Holds the file's bytes until then, compressed (zlib level 1: transformers' 54 MB of sources
    become 14 MB for 0.4 CPU s of 70; the peak of a cold check of it was 181 MB), and whether they
    may call `.train()` (the one question every file is asked). The same mapping as
    `class_bodies(source, facts)`, entry for entry, in order."""

    __slots__ = ("_packed", "_trains", "_facts", "_bodies")

    def __init__(self, source: bytes, facts: FileFacts):
        self._packed: Optional[bytes] = zlib.compress(source, 1)
        self._trains = _may_call_train(source)
        self._facts = facts
        self._bodies: Optional[Dict[str, ClassBody]] = None

    def _all(self) -> Dict[str, ClassBody]:
        if self._bodies is None:
            self._bodies = class_bodies(zlib.decompress(self._packed), self._facts)
            self._packed = None
        return self._bodies

    def __contains__(self, name: object) -> bool:
        # `.train(` / `.fit(` matched after blanking docstrings are in the raw text too (blanking only
        # turns bytes into spaces), so a file without either has no TRAIN_CALLS entry: MDL205 asks
        # every file of the project whether it has one, which would scan them all.
        if name == TRAIN_CALLS and self._bodies is None and not self._trains:
            return False
        return name in self._all()

    def get(self, name, default=None):
        return self[name] if name in self else default

    def __getitem__(self, name: str) -> ClassBody:
        return self._all()[name]

    def __iter__(self):
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())


def bodies_to_json(bodies: Mapping[str, ClassBody]) -> dict:
    return {name: body.to_json() for name, body in bodies.items()}


def bodies_from_json(raw: dict) -> Dict[str, ClassBody]:
    return {name: ClassBody.from_json(v) for name, v in raw.items()}


def project_fingerprint(index: ProjectIndex) -> str:
    """The index fingerprint extended with every file's class bodies (the result cache's key)."""
    h = hashlib.sha256(index.fingerprint().encode())
    for mod, facts in sorted(index.modules.items()):
        h.update(mod.encode() + b"\0")
        h.update(json.dumps(bodies_to_json(bodies_of(facts)), sort_keys=True).encode())
    return h.hexdigest()


# --- the scan ------------------------------------------------------------------------------------
_CLASS = re.compile(rb"^([ \t]*)class[ \t]+([A-Za-z_]\w*)", re.MULTILINE)
_TRIPLE = re.compile(rb'"""[\s\S]*?"""|\'\'\'[\s\S]*?\'\'\'')  # (an escaped triple quote inside one: not handled)
_INIT = re.compile(rb"def[ \t]+__init__[ \t]*\(")
_HELD = re.compile(rb"self\.(\w+)[ \t]*(?::[^=]*)?=[ \t]*$")
_MAX_CALL = 4000  # bytes: a layer construction is short; a longer span is not worth parsing
_ENDS: Dict[int, "re.Pattern[bytes]"] = {}


_BLANKS = bytes(b if b == 0x0A else 0x20 for b in range(256))  # every byte but newline -> space
_BRACKETS = re.compile(rb"[()\[\]{}'\"#]")


def _blank(m: "re.Match[bytes]") -> bytes:
    return m.group().translate(_BLANKS)


def _closing(source: bytes, start: int, limit: int = _MAX_CALL) -> Optional[int]:
    """Index just past the bracket closing the one at `start`, skipping quoted strings and comments;
    None when it is not closed within `limit` bytes."""
    depth, pos, end = 0, start, min(len(source), start + limit)
    while True:
        m = _BRACKETS.search(source, pos, end)
        if m is None:
            return None
        i = m.start()
        c = source[i]
        if c in b"([{":
            depth += 1
        elif c in b")]}":
            depth -= 1
            if depth == 0:
                return i + 1
        elif c == 0x23:  # a comment runs to the end of the line
            i = source.find(b"\n", i, end)
            if i < 0:
                return None
        else:
            quote = source[i : i + 1]
            j = source.find(quote, i + 1, end)
            while j > 0 and source[j - 1] == 0x5C:
                j = source.find(quote, j + 1, end)
            if j < 0:
                return None
            i = j
        pos = i + 1


def _body_start(source: bytes, pos: int) -> int:
    """Just past the colon ending a class header whose name ends at `pos` (bases may span lines)."""
    while pos < len(source) and source[pos] in b" \t":
        pos += 1
    if source[pos : pos + 1] == b"(":
        pos = _closing(source, pos, 20000) or pos + 1
    colon = source.find(b":", pos)
    return len(source) if colon < 0 else colon + 1


def _body_end(source: bytes, start: int, indent: int) -> int:
    pattern = _ENDS.get(indent)
    if pattern is None:
        pattern = _ENDS[indent] = re.compile(rb"^[ \t]{0,%d}(?=[^ \t\r\n#)\]}])" % indent, re.MULTILINE)
    nl = source.find(b"\n", start)
    if nl < 0:
        return len(source)
    m = pattern.search(source, nl + 1)
    return m.start() if m else len(source)


def _class_spans(source: bytes) -> List[Tuple[str, int, int, int]]:
    """(dotted name, header offset, body start, body end) of each class, outer before inner."""
    spans: List[Tuple[str, int, int, int]] = []
    stack: List[Tuple[int, str]] = []  # (body end, dotted name)
    for m in _CLASS.finditer(source):
        start = m.start()
        while stack and stack[-1][0] <= start:
            stack.pop()
        name = m.group(2).decode()
        dotted = f"{stack[-1][1]}.{name}" if stack else name
        body = _body_start(source, m.end())
        end = _body_end(source, body, len(m.group(1).expandtabs(8)))
        spans.append((dotted, start, body, end))
        stack.append((end, dotted))
    return spans


def _own_segments(spans, i: int) -> List[Tuple[int, int]]:
    """The byte ranges of class `i`'s body minus the bodies of the classes nested in it."""
    _, _, start, end = spans[i]
    segments, pos = [], start
    for _, header, _, inner_end in spans[i + 1 :]:
        if header >= end:
            break
        if header >= pos:
            segments.append((pos, header))
            pos = inner_end
    segments.append((pos, end))
    return [(a, b) for a, b in segments if b > a]


_PARAM_NAME = re.compile(rb"[(,][ \t\r\n]*\**[ \t]*([A-Za-z_]\w*)[ \t\r\n]*(?=[:=,)])")


def _init_signature(source: bytes, segments) -> Tuple[Optional[str], Tuple[str, ...], Tuple[int, int]]:
    """(`def __init__(...)` text, candidate parameter names, its byte span). The names come from a
    pattern (a nested call's argument may be taken for one: it only records more calls); the exact
    parameters are parsed from the text when someone asks (`ClassBody.params`)."""
    for a, b in segments:
        m = _INIT.search(source, a, b)
        if m is None:
            continue
        close = _closing(source, m.end() - 1, 20000)
        if close is None:
            return "def __init__(*args, **kwargs)", (), (m.start(), m.end())
        raw = source[m.end() - 1 : close]
        names = tuple(dict.fromkeys(n.group(1).decode() for n in _PARAM_NAME.finditer(raw)))
        return "def __init__" + raw.decode("utf-8", "replace"), names[1:], (m.start(), close)
    return None, (), (0, 0)


_PATTERNS: Dict[str, Tuple["re.Pattern[bytes]", "re.Pattern[bytes]", "re.Pattern[bytes]"]] = {}
_DOTTED_TAIL = re.compile(rb"(?:[A-Za-z_]\w*[ \t]*\.[ \t]*)+$")


def _patterns(fw: Profile):
    """(calls worth recording, references of mode-sensitive layer classes, reads of the mode) for a
    profile, each matching the last name only (the dotted prefix is read backwards): matching every
    dotted identifier instead cost 3x more on timm."""
    found = _PATTERNS.get(fw.name)
    if found is None:
        names = set(fw.dropout_calls) | set(fw.training_default_false_calls) | set(fw.norm_training_calls) | {fw.mha_call}
        lower = sorted({n.rsplit(".", 1)[-1] for n in names} | set(fw.external_model_methods))
        calls = re.compile(rb"[A-Z]\w*[ \t]*\(|(?:%s)[ \t]*\(" % b"|".join(n.encode() for n in lower))
        layers = b"|".join(re.escape(n.encode()) for n in sorted(fw.mode_sensitive_layers, key=len, reverse=True))
        refs = re.compile(rb"(?:%s)\b(?![ \t]*\()" % layers)
        # a read, not a store: `self.training = False` sets the flag and computes nothing mode-dependent
        # (MDL204 asks whether such a module has anything the flag could disagree with)
        mode = re.compile(rb"self\." + fw.mode_attr.encode() + rb"\b(?![ \t]*=(?!=))")
        found = _PATTERNS[fw.name] = (calls, refs, mode)
    return found


# Uses of the constructor's parameters, one pattern each for all parameter names (three patterns
# compiled per distinct name were 3,369 compilations, ~1.6 s of a profiled 35 s check of timm).
_REBIND = re.compile(rb"^[ \t]*([A-Za-z_]\w*)[ \t]*=[ \t]*(?:([A-Za-z_]\w*)[ \t]+or[ \t]+)?([A-Za-z_][\w.]*)[ \t]*(?:#.*)?\r?$",
                     re.MULTILINE)
_KEEP = re.compile(rb"^[ \t]*self\.\w+[ \t]*=[ \t]*([A-Za-z_]\w*)[ \t]*(?:#.*)?\r?$", re.MULTILINE)


def _called_at(source: bytes, a: int, b: int, name: bytes):
    """Positions in source[a:b] where `name` is followed by `(` (spaces allowed), not after a `.`; the
    caller checks that the name starts a word. `bytes.find` per name: a regex over every call was 10x slower."""
    pos = source.find(name, a, b)
    while pos != -1:
        end = pos + len(name)
        while end < b and source[end] in (0x20, 0x09):
            end += 1
        if end < b and source[end] == 0x28 and source[pos - 1] != 0x2E:
            yield pos
        pos = source.find(name, pos + 1, b)


def _param_uses(source: bytes, a: int, b: int, param_names, line_of):
    """(kept as attributes, call positions, rebindings to a class name) of the parameters in source[a:b]:
    `self.x = p`, `p(...)` (not `obj.p(...)`), `p = p or Cls` / `p = Cls`; per parameter in signature
    order, then by position."""
    order = {n.encode(): i for i, n in enumerate(param_names)}
    kept = sorted(((order[m.group(1)], m.start()) for m in _KEEP.finditer(source, a, b) if m.group(1) in order))
    starts = [pos for name in order for pos in _called_at(source, a, b, name)]
    rebinds = sorted((order[m.group(1)], m.start(), m.group(3)) for m in _REBIND.finditer(source, a, b)
                     if m.group(1) in order and m.group(2) in (None, m.group(1))
                     and m.group(3) not in (b"None", m.group(1)))
    names = list(param_names)
    return ([(names[i], line_of(pos)) for i, pos in kept], starts,
            [(names[i], target.decode("ascii", "replace"), line_of(pos)) for i, pos, target in rebinds])


def _dotted_start(source: bytes, pos: int, line_start: int) -> int:
    """Start of the dotted name whose last part starts at `pos` (`nn.` before `Dropout`)."""
    if pos == 0 or source[pos - 1] not in b". \t":
        return pos
    m = _DOTTED_TAIL.search(source, line_start, pos)
    return m.start() if m and m.end() == pos else pos


def _line_prefix(source: bytes, pos: int) -> Tuple[int, bytes]:
    line_start = source.rfind(b"\n", 0, pos) + 1
    return line_start, source[line_start:pos]


def _word_start(source: bytes, pos: int) -> bool:
    """The match at `pos` starts a name (the patterns start with a literal for speed: a leading
    look-behind made them 3x slower)."""
    return pos == 0 or not (source[pos - 1 : pos].isalnum() or source[pos - 1] == 0x5F)


# `self.features = make_layers(cfg)`: a lower-case call kept as an attribute, recorded when the name is
# a factory of this file with parts (`FileFacts.factory_parts`) or an imported name (perhaps another
# file's factory).
_HELD_CALL = re.compile(rb"^[ \t]*self\.\w+[ \t]*=[ \t]*([a-z_]\w*)[ \t]*\(", re.MULTILINE)
# `self.backbone = models.resnet50(...)`: a lower-case call of a model factory namespace of the profile
# (`torchvision.models.`), kept as an attribute; recorded when the dotted head is imported from it.
_HELD_DOTTED_CALL = re.compile(rb"^[ \t]*self\.\w+[ \t]*=[ \t]*([A-Za-z_]\w*)((?:\.\w+)*\.([a-z_]\w*))[ \t]*\(", re.MULTILINE)


def factory_heads(aliases: Dict[str, str], namespaces: Tuple[str, ...]) -> frozenset:
    """Imported names whose attributes may be a model factory namespace's functions: `torchvision`,
    `models` of `from torchvision import models`, `tvm` of `import torchvision.models as tvm`."""
    return frozenset(n for n, q in aliases.items()
                     if any(ns.startswith(q + ".") or (q + ".").startswith(ns) for ns in namespaces))


def _scan_class(source: bytes, line_of, segments, fw: Profile, line: int,
                factories: frozenset = frozenset(), heads: frozenset = frozenset()) -> ClassBody:
    signature, param_names, span = _init_signature(source, segments)
    calls_re, refs_re, mode_re = _patterns(fw)
    calls: List[CallSite] = []
    refs: List[Tuple[str, int]] = []
    mode_lines: List[int] = []
    rebinds: List[Tuple[str, str, int]] = []
    kept: List[Tuple[str, int]] = []
    for a, b in segments:
        mode_lines += [line_of(m.start()) for m in mode_re.finditer(source, a, b) if _word_start(source, m.start())]
        for m in refs_re.finditer(source, a, b):
            if not _word_start(source, m.start()):
                continue
            line_start, prefix = _line_prefix(source, m.start())
            start = _dotted_start(source, m.start(), line_start)
            line_text = source[line_start : source.find(b"\n", m.start())]
            if (b"#" not in prefix and not (span[0] <= m.start() < span[1])
                    and b"isinstance" not in line_text and b"issubclass" not in line_text):
                refs.append((_name(source[start : m.end()]), line_of(m.start())))
        starts = [m.start() for m in calls_re.finditer(source, a, b)]
        if factories:
            starts += [m.start(1) for m in _HELD_CALL.finditer(source, a, b)
                       if (n := m.group(1).decode("ascii", "replace")) in factories and n not in param_names]
        if heads:
            starts += [m.start(3) for m in _HELD_DOTTED_CALL.finditer(source, a, b) if m.group(1).decode() in heads]
        if param_names:
            s_kept, s_starts, s_rebinds = _param_uses(source, a, b, param_names, line_of)
            kept += s_kept
            starts += s_starts
            rebinds += s_rebinds
        for pos in sorted(starts):
            if not _word_start(source, pos):
                continue
            line_start, _ = _line_prefix(source, pos)
            start = _dotted_start(source, pos, line_start)
            prefix = source[line_start:start]
            if b"#" in prefix or prefix.rstrip().endswith((b"def", b"class")) or source.startswith(b"self", start):
                continue
            paren = source.find(b"(", pos)
            close = _closing(source, paren)
            text = source[start:close].decode("utf-8", "replace") if close else None
            held = _HELD.search(prefix)
            calls.append(CallSite(_name(source[start:paren]), line_of(pos), text, bool(held),
                                  held.group(1).decode() if held else None,
                                  _when(source, line_start, a, param_names) if param_names else None))
    return ClassBody(line, signature, tuple(calls), tuple(refs), tuple(mode_lines), tuple(rebinds), tuple(kept))


_WHEN = re.compile(rb"""^[ \t]*(?:el)?if[ \t(]+([A-Za-z_]\w*)[ \t]*==[ \t]*(['"])([\w.+-]*)\2[ \t)]*:[ \t]*(?:#.*)?$""")
# `if use_bn:` / `if self.use_bn:` (a flag of the constructor building an optional layer)
_WHEN_TRUE = re.compile(rb"""^[ \t]*(?:el)?if[ \t(]+(?:self\.)?([A-Za-z_]\w*)[ \t)]*:[ \t]*(?:#.*)?$""")


def _when(source: bytes, line_start: int, floor: int, param_names) -> Optional[Tuple[str, Optional[str]]]:
    """(param, literal) when the nearest line above `line_start` indented less than it is
    `if param == "lit":` or `elif (param == "lit"):` (a constructor parameter choosing a layer:
    `if norm == "batch": self.norm = nn.BatchNorm2d(c)`); (param, None) when it is `if param:` or
    `if self.param:` (`if use_bn: self.bn = nn.BatchNorm1d(d)`, built only when the flag is set);
    None otherwise."""
    line_end = source.find(b"\n", line_start)
    line = source[line_start : line_end if line_end != -1 else len(source)]
    indent = len(line) - len(line.lstrip(b" \t"))
    end = line_start - 1
    while end > floor:
        start = source.rfind(b"\n", floor, end) + 1
        above = source[start:end]
        stripped = above.strip()
        if stripped and not stripped.startswith(b"#"):
            if len(above) - len(above.lstrip(b" \t")) < indent:
                m = _WHEN.match(above)
                if m and m.group(1).decode("ascii", "replace") in param_names:
                    return m.group(1).decode("ascii", "replace"), m.group(3).decode("utf-8", "replace")
                m = _WHEN_TRUE.match(above)
                if m and m.group(1).decode("ascii", "replace") in param_names:
                    return m.group(1).decode("ascii", "replace"), None
                return None
        end = start - 1
    return None


def _name(raw: bytes) -> str:
    return re.sub(rb"\s+", b"", raw).decode("ascii", "replace")


def _line_counter(source: bytes):
    """offset -> 1-based line (a C-level count: cheaper than indexing every newline of the file
    for the few dozen offsets a file's classes record)."""
    return lambda offset: source.count(b"\n", 0, offset) + 1


# `.train` / `.fit` not followed by a name character: `_TRAIN_CALL` needs `(` after them, and blanking
# only turns bytes into spaces, so a file without a match here has none after blanking either. The
# plain substrings also matched `.training` / `.fit_transform`: 633 of transformers' 2,912 files
# (each then had all its class bodies scanned for MDL205's question), this pattern 16.
_MAY_CALL_TRAIN = re.compile(rb"\.(?:train|fit)(?!\w)")


def _may_call_train(source: bytes) -> bool:
    return _MAY_CALL_TRAIN.search(source) is not None


_TRAIN_CALL = re.compile(rb"\.train[ \t]*\([ \t]*(?:True|mode[ \t]*=[ \t]*True)?[ \t]*\)|\.fit[ \t]*\(")
TRAIN_CALLS = "<train calls>"  # pseudo class name: the file calls `.train()` / `.fit(...)` somewhere


def class_bodies(source: bytes, facts: FileFacts) -> Dict[str, ClassBody]:
    """The class-body facts of one file (see the module docstring); with the pseudo entry
    `TRAIN_CALLS` when the file calls `.train()` (or `.train(True)`) or `.fit(...)` anywhere: a
    training script or trainer that switches some root module to training mode (MDL205). Its
    `refs` are (receiver as written, line) of the first 32 such calls."""
    if source.startswith(b"\xef\xbb\xbf"):
        source = source[3:]
    if b"\"\"\"" in source or b"\'\'\'" in source:
        source = _TRIPLE.sub(_blank, source)
    out = _class_bodies(source, facts) if b"class" in source else {}
    calls: List[Tuple[str, int]] = []
    for m in _TRAIN_CALL.finditer(source):
        line_start, prefix = _line_prefix(source, m.start())
        if b"#" not in prefix and len(calls) < 32:
            receiver = _name(source[_dotted_start(source, m.start() + 1, line_start) : m.start()]) if m.start() else ""
            calls.append((receiver, source.count(b"\n", 0, m.start()) + 1))
    if calls:
        out[TRAIN_CALLS] = ClassBody(calls[0][1], refs=tuple(calls))
    return out


def _class_bodies(source: bytes, facts: FileFacts) -> Dict[str, ClassBody]:
    spans = _class_spans(source)
    if not spans:
        return {}
    fw = profile_for(facts.aliases)
    line_of = _line_counter(source)
    out: Dict[str, ClassBody] = {}
    factories = frozenset(facts.factory_parts) | frozenset(n for n in facts.aliases if n[:1].islower())
    heads = factory_heads(facts.aliases, fw.model_factory_namespaces)
    for i, (name, header, _, _) in enumerate(spans):
        if name in facts.classes and name not in out:
            out[name] = _scan_class(source, line_of, _own_segments(spans, i), fw, line_of(header), factories, heads)
    return out


def with_bodies(facts: FileFacts, source: bytes) -> FileFacts:
    """`facts` with its file's class bodies attached, scanned when first asked for (`LazyBodies`)."""
    return attach(facts, LazyBodies(source, facts))

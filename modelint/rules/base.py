"""The `Rule` base class.

A rule is one small class: its code, name and docs; VALID and INVALID example programs (its spec,
run by the test suite, with `# expect: CODE` on each line that must be reported); and
`visit_<Node>` / `leave_<Node>` methods that the engine calls during its single walk over the file.
A rule reads facts through `self.ctx` (a `FileContext`; the framework's names through
`self.ctx.framework`, never spelled in the rule) and reports with `self.report(...)`; it never
prints, reads configuration or touches files. It documents itself: `fix_safety` (what its fix does
and whether it is safe, or why it has none) and `option_docs` (one line per option). Options come in through `self.options`. A fixable
rule passes `fix=` a `modelint.fixes.FixSpec` (built with `fixes.fix(...)` from node-level changes);
the engine positions it, and its FIXES / UNSAFE_FIXES examples say what the fix must produce.
"""

from __future__ import annotations

from typing import Any, ClassVar, Dict, List, Optional, Sequence, Tuple

import libcst as cst

from modelint.analysis.context import FileContext
from modelint.codes import Described
from modelint.fixes import FixSpec


class Report:
    """What a rule said, before the engine turns it into a positioned Finding."""

    __slots__ = ("code", "node", "statement", "message", "fix", "level")

    def __init__(self, code: str, node: cst.CSTNode, statement: Optional[cst.CSTNode], message: str, fix,
                 level: Optional[str] = None):
        self.code = code
        self.node = node
        self.statement = statement
        self.message = message
        self.fix = fix
        # Per-finding severity for rules whose sub-cases differ (MDL203); None = the rule's level.
        self.level = level


class Rule(Described):
    """A Python rule: its self-description (`codes.Described`) plus the examples, the pre-filter and
    the LibCST visitor methods."""

    # Text pre-filter: the rule cannot fire on a file that contains none of these substrings.
    # Empty means "always run".
    triggers: ClassVar[Tuple[str, ...]] = ()
    VALID: ClassVar[Sequence[str]] = ()
    INVALID: ClassVar[Sequence[str]] = ()
    # For fixable rules: (before, after) pairs; `after` is what `--fix` makes of `before`
    # (UNSAFE_FIXES: with `--unsafe-fixes`). Run by the test suite like VALID/INVALID.
    FIXES: ClassVar[Sequence[Tuple[str, str]]] = ()
    UNSAFE_FIXES: ClassVar[Sequence[Tuple[str, str]]] = ()

    def __init__(self, ctx: FileContext, options: Optional[Dict[str, Any]] = None):
        self.ctx = ctx
        self.options = {**self.options_schema, **(options or {})}
        self.reports: List[Report] = []

    def report(self, node: cst.CSTNode, message: str, fix: Optional["FixSpec"] = None, level: Optional[str] = None) -> None:
        """Record a finding. `level` overrides the rule's catalogue level for this one finding (for a
        rule whose sub-cases differ in severity); it must be one of "error", "warning", "info"."""
        if level is not None and level not in ("error", "warning", "info"):
            raise ValueError(f"unknown level {level!r}")
        self.reports.append(Report(self.code, node, self.ctx.statement_of(node), message, fix, level))


def measured_set6(result: str) -> str:
    """The sentence after `remeasured_2026_12_03`: what measuring set 6 gave, the held-out set of the
    end of 2026-12-03 (chosen, and later judged, by sessions that changed no rule; run once, after
    sets 4 and 5 had become tuning sets)."""
    return (" Then sets 4 and 5 tuned the call-site rules, and measuring set 6 (29 code bases no rule was "
            "developed on, all with training and evaluation code: 26 repositories and 3 packages; "
            "`bench/precision.py --set measuring6`, run once) gave " f"{result}" ". It stays off by default.")


def measured_sets_8_9(set8: str, set9: str) -> str:
    """The held-out sets of the last round of issue 14, each run once with the rules of its day."""
    return (" Measuring set 8 (16 repositories with training and evaluation code in 12 fields, held out, "
            "`bench/precision.py --set measuring8`, run once) gave " f"{set8}" "; measuring set 9 (26 code "
            "bases never used to develop it: 23 repositories with training and evaluation code and 3 packages, "
            "chosen by a session that changed no rule, `--set measuring9`, run once) gave " f"{set9}"
            ". Both have tuned the rules since. It stays off by default.")


def measured_sets_10_11(set10: str, set11: str) -> str:
    """Issue 14's held-out sets of 2026-12-04, each chosen by a session that changed no rule, judged by
    another, and run once (set 10 on e28e011, set 11 on a027d37)."""
    return (" On 2026-12-04 measuring set 10 (26 repositories with training and evaluation code, `--set "
            "measuring10`, run once) gave " f"{set10}" "; measuring set 11 (25 such repositories, `--set "
            "measuring11`, run once after set 10's false patterns were mended) gave " f"{set11}" ".")


def measured_set12(result: str, missed: str) -> str:
    """Issue 14's held-out set of 2026-12-04 (evening), chosen by a session that changed no rule, judged
    by another, and run once (on 2ed8176)."""
    return (" Measuring set 12 (25 repositories with training and evaluation code, `--set measuring12`, run "
            "once, after sets 10 and 11 had become tuning sets) gave " f"{result}" "; of the 3 mode bugs its "
            "chooser read in it, " f"{missed}" ".")


def measured_set13(result: str) -> str:
    """Issue 14's held-out set of 2026-12-05, run once (on 8bb0c52) after set 12 had become a tuning set."""
    return (" Measuring set 13 (15 repositories with training and evaluation code, `--set measuring13`, run "
            "once, after set 12 had become a tuning set) gave " f"{result}" ".")


def measured_set14(result: str) -> str:
    """Issue 14's held-out set of 2026-12-07 (chosen by a helper that changed no rule), run once on
    b18c229 after set 13 had become a tuning set."""
    return (" Measuring set 14 (23 repositories with training and evaluation code, `--set measuring14`, run "
            "once on 2026-12-07, after set 13 had become a tuning set) gave " f"{result}" ".")


def _held_out_set(number: int, repositories: int, day: str, set_text: str) -> str:
    """Issue 14's held-out sets from 17 on: chosen by a helper that ran no rule, run once after every
    earlier set had become a tuning set."""
    return (f" Measuring set {number} ({repositories} repositories, `--set measuring{number}`, run once on {day} "
            f"after sets 1-{number - 1} had become tuning sets) gave {set_text}.")


def measured_set17(set17: str) -> str:
    """Set 17 (34 repositories chosen on 2026-12-07), run once on a9aa35c."""
    return _held_out_set(17, 34, "2026-12-07", set17)


def measured_upstream17(caught: str) -> str:
    """Recall on issue 14's 18 real mode bugs fixed upstream (`bench/upstream_fixes.py`), each checked at
    the parent of its fix, in 15 repositories no rule was developed on, run once on a9aa35c."""
    return (" Of 18 real mode bugs that their authors fixed upstream, in 15 repositories no rule was "
            "developed on (`bench/upstream_fixes.py`, `bench/sets/upstream17.toml`, each checked at the "
            "parent of its fix, run once on 2026-12-07), it reported " f"{caught}" ".")


def measured_set18(set18: str) -> str:
    """Set 18 (37 repositories chosen on 2026-12-08), run once on 2f886bd."""
    return _held_out_set(18, 37, "2026-12-08", set18)


def measured_upstream18(caught: str) -> str:
    """Recall on issue 14's second list of 19 real mode bugs fixed upstream (`bench/sets/upstream18.toml`),
    in 18 repositories no rule was developed on, run once on 2f886bd."""
    return (" Of a second list of 19 real mode bugs fixed upstream, in 18 other repositories "
            "(`bench/sets/upstream18.toml`, run once on 2026-12-08), it reported " f"{caught}" ".")


def measured_set19(set19: str) -> str:
    """Set 19 (32 repositories chosen on 2026-12-08), run once on a9f396b."""
    return _held_out_set(19, 32, "2026-12-08", set19)


def _upstream_list(number: int, ordinal: str, fixes: int, repositories: int, caught: str) -> str:
    """Issue 14's lists of real bugs fixed upstream from 19 on, each run once on the rules after set
    `number - 1` (`bench/upstream_fixes.py`, each bug checked at the parent of its fix)."""
    return (f" Of a {ordinal} list of {fixes} real mode bugs fixed upstream, in {repositories} other repositories "
            f"(`bench/sets/upstream{number}.toml`, run once on 2026-12-08 on the rules after set {number - 1}), "
            f"it reported {caught}.")


def measured_upstream19(caught: str) -> str:
    """Recall on issue 14's third list of 13 real mode bugs fixed upstream (`bench/sets/upstream19.toml`),
    in 11 repositories no rule was developed on, run once on a9f396b."""
    return _upstream_list(19, "third", 13, 11, caught)


def measured_set20(set20: str) -> str:
    """Set 20 (31 repositories chosen on 2026-12-08), run once on dae79fd."""
    return _held_out_set(20, 31, "2026-12-08", set20)


def measured_upstream20(caught: str) -> str:
    """Recall on issue 14's fourth list of 14 real mode bugs fixed upstream (`bench/sets/upstream20.toml`),
    in 10 repositories no rule was developed on, run once on dae79fd."""
    return _upstream_list(20, "fourth", 14, 10, caught)


def measured_sets_15_16(set15: str, set16: str) -> str:
    """Issue 14's held-out sets 15 (23 repositories) and 16 (33 repositories) of 2026-12-07, each chosen
    by a helper that ran no rule and changed none, each run once (on 5aeca3f and on 7fcbd9b)."""
    return (" Measuring set 15 (23 repositories, `--set measuring15`, run once on 2026-12-07) gave "
            f"{set15}" "; measuring set 16 (33 repositories, `--set measuring16`, run once on 2026-12-07 after "
            "set 15 had become a tuning set) gave " f"{set16}" ".")


def remeasured_2026_12_03(set4: str, set5: str) -> str:
    """The sentence after it: what the two held-out sets of 2026-12-02/03 gave with the rules of the
    end of 2026-12-03 (each judged once by a session that changed no rule; counts only, so that the
    reasons do not steer the next change)."""
    return (" On 2026-12-03, with that day's rules, measuring set 4 (24 code bases, 21 of them "
            "repositories with training scripts) gave " f"{set4}" ", and measuring set 5 (28 repositories "
            "with training scripts) gave " f"{set5}" " (`bench/precision.py --set measuring4` / "
            "`measuring5`; both held out from every rule change; verdicts in `bench/verdicts/`).")


def remeasured_2026_12_02(set3: str, set2: str) -> str:
    """The sentence each off-by-default rule's docs end with: what measuring set 3 (held out, run once
    when the work of 2026-12-02 was done) and set 2 (no longer held out) gave with that day's rules."""
    return (" Measured again on 2026-12-02 with that day's rules: measuring set 3 (35 code bases no rule "
            "was developed on, 26 of them repositories with training scripts; `bench/precision.py --set "
            "measuring3`, verdicts in `bench/verdicts/measuring3.tsv`, run once when the work was done) "
            f"gave {set3}; measuring set 2 (no longer held out: its false findings shaped that day's "
            f"exemptions) gave {set2}. It stays off by default.")

"""The `Rule` base class.

A rule is one small class: its code, name and docs; VALID and INVALID example programs (its spec,
run by the test suite, with `# expect: CODE` on each line that must be reported); and
`visit_<Node>` / `leave_<Node>` methods that the engine calls during its single walk over the file.
A rule reads facts through `self.ctx` (a `FileContext`) and reports with `self.report(...)`; it never
prints, reads configuration or touches files. Options come in through `self.options`.
"""

from __future__ import annotations

from typing import Any, ClassVar, Dict, List, Optional, Sequence, Tuple

import libcst as cst

from modelint.analysis.context import FileContext
from modelint.catalog import RuleInfo
from modelint.findings import Fix


class Report:
    """What a rule said, before the engine turns it into a positioned Finding."""

    __slots__ = ("code", "node", "statement", "message", "fix")

    def __init__(self, code: str, node: cst.CSTNode, statement: Optional[cst.CSTNode], message: str, fix):
        self.code = code
        self.node = node
        self.statement = statement
        self.message = message
        self.fix = fix


class Rule:
    code: ClassVar[str]
    name: ClassVar[str]
    level: ClassVar[str] = "error"
    summary: ClassVar[str]
    what: ClassVar[str] = ""
    why: ClassVar[str] = ""
    example: ClassVar[str] = ""
    use_instead: ClassVar[str] = ""
    fixable: ClassVar[bool] = False
    default: ClassVar[bool] = True
    # Option name -> default value; `[tool.modelint.rules.CODE]` may override them.
    options_schema: ClassVar[Dict[str, Any]] = {}
    # Text pre-filter: the rule cannot fire on a file that contains none of these substrings.
    # Empty means "always run".
    triggers: ClassVar[Tuple[str, ...]] = ()
    VALID: ClassVar[Sequence[str]] = ()
    INVALID: ClassVar[Sequence[str]] = ()

    def __init__(self, ctx: FileContext, options: Optional[Dict[str, Any]] = None):
        self.ctx = ctx
        self.options = {**self.options_schema, **(options or {})}
        self.reports: List[Report] = []

    def report(self, node: cst.CSTNode, message: str, fix: Optional[Fix] = None) -> None:
        self.reports.append(Report(self.code, node, self.ctx.statement_of(node), message, fix))

    @classmethod
    def info(cls) -> RuleInfo:
        return RuleInfo(
            code=cls.code,
            name=cls.name,
            level=cls.level,
            summary=cls.summary,
            what=cls.what,
            why=cls.why,
            example=cls.example,
            use_instead=cls.use_instead,
            fixable=cls.fixable,
            default=cls.default,
            kind="static",
        )

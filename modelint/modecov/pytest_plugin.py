"""pytest plugin: which arms of the models' mode branches did the test suite never run?

    pytest --modelint-modes                  # report in the terminal
    pytest --modelint-modes=modes.json       # also write the findings to a file (json/sarif/text/github)
    pytest --modelint-modes-fail             # fail the session when an arm never ran (implies --modelint-modes)

Registered through the `pytest11` entry point, so this module is imported by every pytest session in
an environment where modelint is installed: at import it defines hooks and nothing else, and unless
one of the options is given it imports neither torch, coverage, LibCST nor the checker; only the
output-format registry (`modelint.report`, about 10 ms), for the `--modelint-modes-format` choices.

How it measures (see `modelint.modecov.report` for the arc semantics):
- Before the tests run it looks for mode branches (`modelint.analysis.branches`) in the rootdir (or
  the `--modelint-modes-source` paths), walked like `modelint check` (config excludes, .gitignore).
- If pytest-cov is active, its coverage data is reused at the end (it must collect branch data:
  `--cov-branch` or `branch = true`); under pytest-xdist, pytest-cov combines the workers' data and
  this plugin reads the combined result. Otherwise, if a coverage.py measurement is already running
  (`coverage run --branch -m pytest`), its data is read. Otherwise the plugin runs its own
  coverage.py collector (branch=True, no data file) restricted to the files that hold mode
  branches; under pytest-xdist each worker runs one and sends its arcs to the controller.
- At the end: one `path:line:col: MDL501/MDL502 ...` line per arm that never ran, honouring
  `[tool.modelint]` select/ignore/per-file-ignores and `# modelint: ignore[MDL501]` comments, then a
  table per class.
"""

from __future__ import annotations

import os
import sys

import pytest

_KEY = "modelint_modes"


def pytest_addoption(parser):
    from modelint.report import format_names, format_suffixes  # the formats' registry (no LibCST, no coverage)

    formats = format_names()
    by_suffix = ", ".join(f"{suffix} -> {name}" for suffix, name in format_suffixes().items())
    group = parser.getgroup("modelint", "modelint mode-branch coverage")
    group.addoption(
        "--modelint-modes",
        action="store",
        nargs="?",
        const="",
        default=None,
        dest="modelint_modes",
        metavar="FILE",
        help="report the arms of the models' train/eval mode branches that no test ran; with "
        "=FILE also write the findings to FILE (write it as --modelint-modes=FILE)",
    )
    group.addoption(
        "--modelint-modes-fail",
        action="store_true",
        default=False,
        dest="modelint_modes_fail",
        help="fail the session when a mode-branch arm never ran (implies --modelint-modes)",
    )
    group.addoption(
        "--modelint-modes-format",
        choices=formats,
        default=None,
        dest="modelint_modes_format",
        help=f"format of the findings: {', '.join(formats)} (default: text in the terminal; for "
        f"FILE, from its suffix: {by_suffix}, else json)",
    )
    group.addoption(
        "--modelint-modes-source",
        action="append",
        default=[],
        dest="modelint_modes_source",
        metavar="PATH",
        help="file or folder to look for mode branches in (repeatable; default: the rootdir)",
    )


def pytest_configure(config):
    opt = config.option
    if getattr(opt, _KEY, None) is None and not getattr(opt, "modelint_modes_fail", False):
        return
    _require_coverage()
    plugin = ModesPlugin(config)
    config.pluginmanager.register(plugin, "modelint-modes")


def _require_coverage():
    """coverage.py is an extra (`modelint[modecov]`): the plugin is registered for every pytest
    user who installs modelint, so asking for it without coverage.py is a usage error, not an
    INTERNALERROR traceback at session start."""
    try:
        import coverage  # noqa: F401
    except ImportError:
        raise pytest.UsageError(
            "--modelint-modes needs coverage.py: pip install 'modelint[modecov]' (or 'coverage>=7.4')"
        ) from None


# --------------------------------------------------------------------------------------------


def _output_file(config):
    value = getattr(config.option, _KEY, None) or None
    if value is None:
        return None
    args = [str(a) for a in config.invocation_params.args]
    for i, a in enumerate(args[:-1]):
        if a == "--modelint-modes" and args[i + 1] == value:
            raise pytest.UsageError(
                f"--modelint-modes took {value!r} as its report file; write --modelint-modes={value} for a "
                f"report file, or put --modelint-modes after the test paths"
            )
    if value.endswith(".py") or "::" in value or os.path.isdir(value):
        raise pytest.UsageError(
            f"--modelint-modes={value}: that looks like a test path, not a report file (refusing to overwrite it)"
        )
    return value


def _format(config, output):
    fmt = config.option.modelint_modes_format
    if fmt:
        return fmt
    if output is None:
        return "text"
    from modelint.report import format_for_suffix

    return format_for_suffix(os.path.splitext(output)[1]) or "json"


def _glob_escape(path):
    """A file name as a coverage.py `include` pattern that matches (at least) that file. Square
    brackets cannot be escaped in coverage's globs: they become `?` (any one character)."""
    table = {"*": "[*]", "?": "[?]", "[": "?", "]": "?"}
    return "".join(table.get(c, c) for c in path)


def _cov_plugin(config):
    """pytest-cov's plugin when it is measuring in this process, else None."""
    plugin = config.pluginmanager.get_plugin("_cov")
    if plugin is None or getattr(plugin, "_disabled", False):
        return None
    return plugin


class ModesPlugin:
    def __init__(self, config):
        self.config = config
        self.output = _output_file(config)
        self.format = _format(config, self.output)
        self.fail = config.option.modelint_modes_fail
        self.workerinput = getattr(config, "workerinput", None)
        self.cfg = None
        self.branches = None  # path -> [ModeBranch]
        self.files_scanned = 0
        self.include = []  # real paths of the files with measurable branches
        self.source = None  # "own" | "pytest-cov" | "coverage" | None
        self.cov = None  # our own or an external coverage.Coverage
        self.arcs = {}  # measured file -> set of arcs (own collector; xdist workers' data)
        self.problems = []
        self.report = None
        self.failed = False
        self._own = False  # self.cov is our collector (we stop it), not someone else's
        self.collect_errors = 0
        self.incomplete = None  # why the run cannot be judged (collection errors, stopped early, no tests)
        self._check_pytest_cov()

    # --- set up ----------------------------------------------------------------------------------
    def _check_pytest_cov(self):
        plugin = _cov_plugin(self.config)
        if plugin is None or self.workerinput is not None:
            return
        cov = getattr(getattr(plugin, "cov_controller", None), "cov", None)
        if cov is not None and not cov.config.branch:
            raise pytest.UsageError(
                "--modelint-modes reads pytest-cov's data, which has no branch arcs: add --cov-branch "
                "(or `branch = true` in the coverage config)"
            )

    def _load_config(self):
        if self.cfg is None:
            from modelint.config import ConfigError
            from modelint.modecov.report import load_checked_config

            try:
                self.cfg = load_checked_config(str(self.config.rootpath))
            except ConfigError as exc:
                raise pytest.UsageError(f"modelint: {exc}") from None
        return self.cfg

    def _scan(self):
        if self.branches is not None:
            return
        from modelint.analysis.branches import scan_files
        from modelint.config import default_exclude
        from modelint.discovery import DiscoveryError, discover

        cfg = self._load_config()
        here = str(self.config.invocation_params.dir)
        roots = self.config.option.modelint_modes_source or [str(self.config.rootpath)]
        roots = [os.path.relpath(r, here) if not os.path.relpath(os.path.abspath(r), here).startswith("..") else r
                 for r in roots]
        exclude, extend_exclude = default_exclude(cfg)
        try:
            files = discover(roots, exclude, extend_exclude, root=str(cfg.root), respect_gitignore=cfg.respect_gitignore)
        except DiscoveryError as exc:
            raise pytest.UsageError(f"--modelint-modes-source: {exc}") from None
        self.files_scanned = len(files)
        self.branches = scan_files(files, module_bases=cfg.module_bases)
        self.include = sorted(
            os.path.realpath(p) for p, found in self.branches.items() if any(b.measurable for b in found)
        )

    @pytest.hookimpl(trylast=True)
    def pytest_sessionstart(self, session):
        if self.workerinput is not None:
            info = self.workerinput.get(_KEY) or {}
            self.include = list(info.get("include", ()))
            if info.get("pytest_cov"):
                self.source = "pytest-cov"  # the controller reads pytest-cov's combined data
                return
            self._start()
            return
        self._scan()
        if _cov_plugin(self.config) is not None:
            self.source = "pytest-cov"
        elif self._distributed():
            self.source = "own"  # each worker measures; see pytest_configure_node / testnodedown
        else:
            self._start()

    def _distributed(self):
        return self.config.pluginmanager.has_plugin("dsession")

    def _start(self):
        """Measure in this process: an already running coverage.py, or our own collector."""
        import coverage

        current = coverage.Coverage.current()
        if current is not None:
            if not current.config.branch:
                self.problems.append("a coverage.py measurement without branch coverage is running; "
                                     "run it with --branch to measure mode branches")
                return
            self.cov, self.source = current, "coverage"
            return
        if sys.gettrace() is not None:
            self.problems.append(f"another trace function is active ({sys.gettrace()!r}); "
                                 "mode branches were not measured")
            return
        if not self.include:
            self.source = "own"
            return
        include = [_glob_escape(p) for p in self.include]
        cov = coverage.Coverage(data_file=None, branch=True, include=include, config_file=False)
        cov.set_option("run:disable_warnings", ["no-data-collected", "module-not-measured", "module-not-imported"])
        cov.start()
        self.cov, self.source = cov, "own"
        self._own = True

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node):
        self._scan()
        node.workerinput[_KEY] = {"include": self.include, "pytest_cov": _cov_plugin(self.config) is not None}

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node, error):
        out = getattr(node, "workeroutput", {}).get(_KEY)
        name = getattr(getattr(node, "gateway", None), "id", "?")
        if out is None:
            if _cov_plugin(self.config) is None:
                self.problems.append(f"worker {name} sent no mode-coverage data (it crashed?); its tests are not counted")
            return
        for path, arcs in out.get("arcs", {}).items():
            self.arcs.setdefault(path, set()).update(map(tuple, arcs))
        self.problems.extend(f"worker {name}: {p}" for p in out.get("problems", ()))

    # --- the end ----------------------------------------------------------------------------------
    def _collect_own(self):
        """Stop our collector (not someone else's) and take its arcs."""
        cov = self.cov
        if cov is None:
            return
        if self._own:
            cov.stop()
            self._own = False
        data = cov.get_data()
        wanted = set(self.include)
        for f in data.measured_files():
            if self.source == "own" or os.path.realpath(f) in wanted:
                self.arcs.setdefault(f, set()).update(data.arcs(f) or ())

    def pytest_unconfigure(self, config):
        if self._own:  # the test loop never ran (collection errors, an interrupt): stop tracing
            self._own = False
            self.cov.stop()

    def pytest_collectreport(self, report):
        if report.failed:
            self.collect_errors += 1

    def _incomplete(self, session, outcome):
        """Why "never ran" would be meaningless for this session, or None. A collection error
        (exit 2) or an early stop leaves tests unrun, so every arm only they reach would be
        reported as never run: a full report of false findings."""
        if self.workerinput is not None or self.config.option.collectonly:
            return None
        if self.collect_errors:
            return f"{self.collect_errors} error{'s' if self.collect_errors != 1 else ''} during collection"
        stop = session.shouldfail or session.shouldstop  # -x, --maxfail, pytest.exit()
        if stop:
            return f"the session stopped early: {stop}"
        if outcome.excinfo is not None:
            return f"the session was interrupted ({outcome.excinfo[0].__name__})"
        if not session.testscollected:
            return "no tests ran"
        return None

    @pytest.hookimpl(hookwrapper=True, tryfirst=True)
    def pytest_runtestloop(self, session):
        outcome = yield
        # pytest-cov's own wrapper (inside this one) has stopped and combined its data by now.
        self.incomplete = self._incomplete(session, outcome)
        if self.incomplete:
            return  # pytest_unconfigure stops our collector; the session already failed or ran nothing
        try:
            self._finish(session)
        except pytest.UsageError:
            raise
        except Exception as exc:  # never turn a green suite into an internal error
            self.problems.append(f"mode-branch coverage failed: {type(exc).__name__}: {exc}")
        if (self.fail and self.workerinput is None and self.report is None and self.problems
                and not self.config.option.collectonly):
            self.failed = True  # asked to check, could not: not a pass
            session.testsfailed += 1

    def _finish(self, session):
        if self.workerinput is not None:
            if self.source != "pytest-cov":
                self._collect_own()
            self.config.workeroutput[_KEY] = {
                "arcs": {f: sorted(map(list, arcs)) for f, arcs in self.arcs.items()},
                "problems": self.problems,
            }
            return
        if self.config.option.collectonly:
            return
        if self.source == "pytest-cov":
            plugin = _cov_plugin(self.config)
            cov = getattr(getattr(plugin, "cov_controller", None), "cov", None)
            if cov is None:
                self.problems.append("pytest-cov produced no data")
                return
            data = cov.get_data()
            if not data.has_arcs():
                self.problems.append("pytest-cov's data has no branch arcs (add --cov-branch)")
                return
            arcs = {f: data.arcs(f) or () for f in data.measured_files()}
            missing_means_unrun = False
        elif self.source in ("own", "coverage"):
            self._collect_own()
            arcs = self.arcs
            # Our collector measured exactly the branch files: absent from its data = never ran.
            missing_means_unrun = self.source == "own" and not self.problems
        else:
            return
        from modelint.modecov.report import make_report

        self.report = make_report(
            self.branches or {}, arcs, self._load_config(), missing_means_unrun=missing_means_unrun,
            files_scanned=self.files_scanned, cwd=str(self.config.invocation_params.dir),
        )
        if self.output:
            self._write_file()
        if self.fail and self.report.findings:
            self.failed = True
            session.testsfailed += 1

    def _render(self, fmt):
        from modelint.report import ReportContext, render

        ctx = ReportContext(files_checked=self.files_scanned, root=str(self.config.rootpath))
        return render(self.report.findings, fmt, ctx)

    def _write_file(self):
        text = self._render(self.format)
        path = os.path.join(str(self.config.invocation_params.dir), self.output)
        folder = os.path.dirname(path)
        if folder:
            os.makedirs(folder, exist_ok=True)
        from modelint.atomic import write_atomic

        write_atomic(path, text)

    def pytest_terminal_summary(self, terminalreporter):
        if self.workerinput is not None:
            return
        tr = terminalreporter
        if self.incomplete:
            tr.write_sep("=", "modelint: mode-branch coverage")
            tr.write_line(f"not reported: the run was incomplete ({self.incomplete})"
                          + (f"; {self.output} was not written" if self.output else ""), yellow=True, bold=True)
            return
        if self.report is None and not self.problems:
            return
        tr.write_sep("=", "modelint: mode-branch coverage")
        for p in self.problems:
            tr.write_line(f"WARNING: {p}", yellow=True, bold=True)
        report = self.report
        if report is None:
            if self.failed:
                tr.write_line("FAIL: mode branches were not measured (--modelint-modes-fail)", red=True, bold=True)
            return
        from modelint.modecov.report import render_table, summary_line

        if self.output is None and self.format != "text":
            tr.write(self._render(self.format))
        else:
            for f in report.findings:
                tr.write_line(f"{f.path}:{f.line}:{f.column}: {f.code} {f.message}")
            if report.findings:
                tr.write_line("")
        if report.results:
            for line in render_table(report, cwd=str(self.config.invocation_params.dir)):
                tr.write_line(line)
            tr.write_line("")
        for note in report.notes:
            tr.write_line(f"note: {note}")
        if report.unmeasured:
            shown = ", ".join(report.unmeasured[:5]) + (" ..." if len(report.unmeasured) > 5 else "")
            tr.write_line(f"note: not in the coverage data (outside pytest-cov's --cov sources?): {shown}")
        source = {"own": "own collector", "pytest-cov": "pytest-cov data", "coverage": "coverage.py data"}.get(self.source, "")
        tr.write_line(f"{summary_line(report)} [{source}, {self.files_scanned} files scanned]")
        if self.output:
            tr.write_line(f"mode-branch findings written to {self.output} ({self.format})")
        if self.failed:
            n = len(report.findings)
            tr.write_line(f"FAIL: {n} mode-branch arm{'s' if n != 1 else ''} never ran (--modelint-modes-fail)",
                          red=True, bold=True)

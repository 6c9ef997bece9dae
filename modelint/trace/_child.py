"""Subprocess entry for `modelint trace`: import one target, call its factory, verify the model.

    python -m modelint.trace._child --target pkg.mod:factory --out result.json [--allow MDL601]

Writes `{"target": ..., "findings": [Finding.to_dict(), ...], "allowed": [...]}` to `--out` and
exits 0; any failure before a report exists (import error, factory raised or returned something
unusable, forward raised in both modes) is reported as an MDL600 finding in the same file.
A crash or hang leaves no file; the parent (`modelint.trace.runner`) reports it, using the
traceback that faulthandler prints to stderr (on a fatal signal, or shortly before the timeout).
"""

from __future__ import annotations

import argparse
import faulthandler
import importlib
import importlib.util
import json
import os
import sys
import traceback
from typing import List, Optional

from modelint.findings import Finding
from modelint.codes import TRACE_BY_CODE as BY_CODE
from modelint.trace.source import Location, definition, display_path, traceback_user_frame


def _failure(loc: Optional[Location], message: str, stage: str, target: str) -> Finding:
    info = BY_CODE["MDL600"]
    loc = loc or Location("<unknown>", 1)
    return Finding(path=loc.path, line=loc.line, column=loc.column, code="MDL600", message=message,
                   name=info.name, level=info.level, extra=(("stage", stage), ("target", target)))


def _exc_text(exc: BaseException) -> str:
    first = (str(exc).strip().splitlines() or [""])[0][:300]
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def load_factory(target: str):
    """Import the target's module (or file) and return the factory callable."""
    head, _, name = target.rpartition(":")
    if head.endswith(".py") or "/" in head or os.sep in head:
        path = os.path.abspath(head)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no such file: {head}")
        directory = os.path.dirname(path)
        if directory not in sys.path:
            sys.path.insert(0, directory)
        mod_name = "_modelint_target_" + "".join(c if c.isalnum() else "_" for c in
                                                   os.path.splitext(os.path.basename(path))[0])
        spec = importlib.util.spec_from_file_location(mod_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = module
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(head)
    try:
        return getattr(module, name)
    except AttributeError:
        raise AttributeError(f"{head} has no attribute {name!r}") from None


FACTORY_CONTRACT = ("a factory must return (model, inputs): an nn.Module, and a tensor, a tuple of "
                    "positional arguments, a dict of keyword arguments or a modelint.Case")


def unpack_result(result):
    """(model, args, kwargs) from a factory's result, per FACTORY_CONTRACT; else a TypeError.

    A bare tensor is one positional argument, as in `verify_modes(model, x)`. Any other lone
    object (an int, a string, a custom batch class) is refused rather than guessed: a tuple or a
    Case says whether it is one argument or several."""
    import torch
    from torch import nn

    from modelint.trace.api import Case

    if not (isinstance(result, (tuple, list)) and len(result) == 2):
        got = (f"a {type(result).__name__} of {len(result)} items" if isinstance(result, (tuple, list))
               else type(result).__name__)
        raise TypeError(f"must return (model, inputs), got {got}; {FACTORY_CONTRACT}")
    model, inputs = result
    if not isinstance(model, nn.Module):
        raise TypeError(f"must return (model, inputs), got {type(model).__name__} as model; "
                        f"{FACTORY_CONTRACT}")
    if isinstance(inputs, Case):
        return model, inputs.args, inputs.kwargs
    if isinstance(inputs, torch.Tensor):
        return model, (inputs,), {}
    if isinstance(inputs, dict):
        return model, (), dict(inputs)
    if isinstance(inputs, (tuple, list)):
        return model, tuple(inputs), {}
    raise TypeError(f"must return (model, inputs), got {type(inputs).__name__} as inputs; "
                    f"{FACTORY_CONTRACT}")


def _on_factory_call(started: Optional[str], timeout: float) -> None:
    """Start the timeout clock: tell the parent (marker file) and re-arm faulthandler's dump to
    shortly before the parent's limit, counted from now."""
    if timeout > 0:
        faulthandler.cancel_dump_traceback_later()
        faulthandler.dump_traceback_later(max(timeout - 1.0, timeout * 0.8), exit=False, file=sys.stderr)
    if started:
        with open(started, "w", encoding="utf-8") as fh:
            fh.write("factory\n")


def trace_target(target: str, allow: List[str], started: Optional[str] = None,
                 timeout: float = 0.0) -> dict:
    """Everything for one target, as the JSON payload. Never raises for the target's faults."""
    head, _, name = target.rpartition(":")
    is_file = head.endswith(".py") or "/" in head or os.sep in head

    def fail(exc: Optional[BaseException], message: str, stage: str, loc=None) -> dict:
        if loc is None and exc is not None:
            loc = traceback_user_frame(exc)
            if isinstance(exc, SyntaxError) and exc.filename:
                loc = Location(display_path(exc.filename), exc.lineno or 1, (exc.offset or 0) + 1)
        if loc is None:  # e.g. a missing module: not inside importlib, at the target itself
            loc = Location(display_path(head), 1) if is_file else Location(f"<{head}>", 1)
        return {"target": target, "findings": [_failure(loc, message, stage, target).to_dict()],
                "allowed": []}

    try:
        factory = load_factory(target)
    except BaseException as exc:  # noqa: BLE001 - user code: anything may be raised
        if isinstance(exc, KeyboardInterrupt):
            raise
        return fail(exc, f"trace target {target}: importing {head} failed with {_exc_text(exc)}",
                    "import")
    factory_loc = definition(factory) if callable(factory) else None
    try:
        _on_factory_call(started, timeout)
        result = factory()
    except BaseException as exc:  # noqa: BLE001
        if isinstance(exc, KeyboardInterrupt):
            raise
        return fail(exc, f"trace target {target}: factory {name}() raised {_exc_text(exc)}",
                    "factory")

    try:
        from modelint.trace.api import Case, verify_modes
    except ImportError as exc:
        return fail(None, f"trace target {target}: the runtime tracer needs PyTorch ({_exc_text(exc)}): "
                    f"pip install 'modelint[trace]'", "torch", factory_loc)

    try:
        model, args, kwargs = unpack_result(result)
    except TypeError as exc:
        return fail(None, f"trace target {target}: factory {name}() {exc}", "factory", factory_loc)
    try:
        report = verify_modes(model, Case(args=args, kwargs=kwargs), allow=allow)
    except BaseException as exc:  # noqa: BLE001
        if isinstance(exc, KeyboardInterrupt):
            raise
        both = "both training and eval mode" if any(
            "both training and eval" in n for n in getattr(exc, "__notes__", ())) else "tracing"
        return fail(exc, f"trace target {target}: the forward raised {_exc_text(exc)} in {both}; "
                    f"nothing was checked", "forward", traceback_user_frame(exc) or factory_loc)
    return {"target": target, "findings": [f.to_dict() for f in report.findings],
            "allowed": [f.to_dict() for f in report.allowed]}


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m modelint.trace._child")
    parser.add_argument("--target", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--timeout", type=float, default=0.0)
    parser.add_argument("--allow", default="")
    parser.add_argument("--started", default="", help="marker file written when the factory is called")
    parser.add_argument("--startup-timeout", type=float, default=0.0)
    options = parser.parse_args(argv)
    faulthandler.enable(file=sys.stderr)
    if options.startup_timeout > 0:
        # dump every thread's stack shortly before the parent kills us, so it can say where
        # (re-armed with --timeout when the factory is called)
        faulthandler.dump_traceback_later(max(options.startup_timeout - 1.0, options.startup_timeout * 0.8),
                                          exit=False, file=sys.stderr)
    allow = [c for c in options.allow.replace(",", " ").split() if c]
    try:
        payload = trace_target(options.target, allow, options.started or None, options.timeout)
    except Exception:  # an internal error of modelint itself
        payload = {"target": options.target, "allowed": [], "findings": [_failure(
            None, f"trace target {options.target}: modelint failed internally: "
            f"{traceback.format_exc(limit=3).strip().splitlines()[-1]}", "internal",
            options.target).to_dict()]}
    faulthandler.cancel_dump_traceback_later()
    tmp = options.out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(payload, fh)
    os.replace(tmp, options.out)
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # no interpreter shutdown: threads or atexit handlers the factory left behind (a data-loader
    # pool, a server) would keep the process alive after it has reported
    os._exit(code)

"""modelint: find train/eval mode-switching bugs in PyTorch model code.

The static checker (`modelint check`) never imports torch. The runtime tracer lives in
`modelint.trace` and is imported lazily by `verify_modes` and `guard` (live training runs).
"""

__version__ = "0.1.0"

__all__ = ["__version__", "verify_modes", "Case", "guard", "ModeViolation"]


def __getattr__(name):  # PEP 562: keep `import modelint` free of torch
    if name in ("verify_modes", "Case", "ModeReport"):
        from modelint.trace import api

        return getattr(api, name)
    if name in ("guard", "ModeViolation"):
        from modelint.trace import guard as guard_module

        return getattr(guard_module, name)
    raise AttributeError(f"module 'modelint' has no attribute {name!r}")

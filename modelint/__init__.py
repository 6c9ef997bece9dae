"""modelint: find train/eval mode-switching bugs in PyTorch model code.

The static checker (`modelint check`) never imports torch. The runtime tracer lives in
`modelint.trace` and is imported lazily by `verify_modes`.
"""

__version__ = "0.1.0"

__all__ = ["__version__", "verify_modes", "Case"]


def __getattr__(name):  # PEP 562: keep `import modelint` free of torch
    if name in ("verify_modes", "Case", "ModeReport"):
        from modelint.trace import api

        return getattr(api, name)
    raise AttributeError(f"module 'modelint' has no attribute {name!r}")

"""The runtime tracer: run a model in training and eval mode and report mode-switching bugs.

`verify_modes` (in `modelint.trace.api`) runs the model in-process; `run_targets` (in
`modelint.trace.runner`) runs factories in subprocesses for `modelint trace`. This package's
`__init__` imports nothing heavy: torch is imported only by `api`, `tracer` and `_child`.
"""

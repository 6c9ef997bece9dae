"""The runtime tracer: run a model in training and eval mode and report mode-switching bugs.

`verify_modes` (in `modelint.trace.api`) runs the model in-process; `run_targets` (in
`modelint.trace.runner`) runs factories in subprocesses for `modelint trace`. This package's
`__init__` imports nothing heavy: torch is imported only by `api`, `tracer` and `_child`.

Stable building blocks (the live-training guard uses them): `tracer.ModuleWatcher` (global
module pre-hook: which modules ran, in which mode), `tracer.OpLogger` (dispatch mode locating
random ops and state writes), `state.GlobalState` / `state.rng_states` / `state.set_rng_states` /
`state.seed_all` / `state.moved_generators` (RNG and process-wide snapshot/restore),
`state.ModelState` (module and parameter/buffer snapshot/restore, one copy per storage),
`state.run_all` (independent restore steps) and `state.same_bits`.
"""

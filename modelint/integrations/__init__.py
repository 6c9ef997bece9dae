"""Callbacks that run `modelint.guard` inside training frameworks' loops.

* `modelint.integrations.lightning.ModeGuard`: a Lightning `Callback` (`lightning` or
  `pytorch_lightning`);
* `modelint.integrations.transformers.ModeGuardCallback`: a Hugging Face `TrainerCallback`.

Each module imports its framework only when its class is first used, so `import modelint` (and this
package) stays free of torch and of the frameworks.
"""

"""MDL307: `.no_grad()` / `.freeze*()` used to prepare a Burn model for inference."""

from __future__ import annotations

from modelint.rust.rule import RustRule


class NoGradForInference(RustRule):
    code = "MDL307"
    name = "no-grad-for-inference"
    level = "warning"
    summary = "`.no_grad()` / `.freeze()` prepare a Burn model for inference; only `.valid()` switches the mode."
    what = ("Reports `.no_grad()` or a `.freeze*()` call in a function named like inference (`infer`, `predict`, "
            "`evaluate`, `main`, ...) that runs the model (`forward`, `infer`) and neither trains (no optimizer "
            "step, no backward pass) nor calls `.valid()`.")
    why = ("`no_grad()`/`freeze()` only stop gradients of the parameters; the module stays on its autodiff "
           "backend, so Burn's Dropout, BatchNorm, GaussianNoise and RRelu still run their training branch: "
           "predictions are noisy and batch statistics are used instead of the running ones. Burn's docs say to "
           "use `valid()` for inference.")
    example = """pub fn infer<B: AutodiffBackend>(model: Model<B>, x: Tensor<B, 2>) -> Tensor<B, 2> {
    let model = model.no_grad();
    model.forward(x)
}"""
    use_instead = """pub fn infer<B: AutodiffBackend>(model: Model<B>, x: Tensor<B::InnerBackend, 2>) -> Tensor<B::InnerBackend, 2> {
    let model = model.valid();
    model.forward(x)
}"""
    fix_safety = ("No fix: `valid()` changes the model's backend type (`B` -> `B::InnerBackend`), so the "
                  "inputs and the return type change too.")
    triggers = ("no_grad", "freeze")
    VALID = (use_instead, """
pub fn fine_tune<B: AutodiffBackend>(model: Model<B>, x: Tensor<B, 2>, optim: &mut impl Optimizer<Model<B>, B>) {
    // Freezing the encoder while training the head is what freeze is for.
    let model = Model { encoder: model.encoder.freeze(), ..model };
    let grads = model.forward(x).backward();
}
""")
    INVALID = ("""
pub fn predict<B: AutodiffBackend>(model: Model<B>, x: Tensor<B, 2>) -> Tensor<B, 2> {
    model.freeze().forward(x) // expect: MDL307
}
""",)

    def check(self) -> None:
        f = self.file
        p = f.profile
        for fn in f.functions:
            calls = [c for c in f.calls_in(fn.node) if f.function_of(c.node) is fn]
            offs = [c for c in calls if c.kind == "method" and p.is_grad_off(c.name)]
            if not offs or f.is_training_routine(fn) or any(c.name == p.to_inference for c in calls):
                continue
            # By name only: a training step (SAC's target networks, `.no_grad().forward(..)` on a
            # frozen copy) legitimately stops gradients without an optimizer call of its own.
            if p.inference_function.match(fn.name) and any(c.kind == "method" and c.name in p.model_calls for c in calls):
                for c in offs:
                    self.report(c.node, f"`.{c.name}()` only stops gradients: on the autodiff backend Dropout and "
                                f"BatchNorm still train in `{fn.name}`; use `.valid()` to get the model for inference")

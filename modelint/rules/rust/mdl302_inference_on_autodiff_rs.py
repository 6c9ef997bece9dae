"""MDL302 in Burn: an inference path running a model on an autodiff backend (no `.valid()`)."""

from __future__ import annotations

import re

from modelint.rust.rule import RustRule
from modelint.rust.syntax import text, turbofish

# Callees that run inference (the caller's own name may be anything: `main`, `run`, `launch`).
_INFERENCE_CALLEE = re.compile(r"^(infer\w*|inference\w*|predict\w*|evaluate\w*|eval|generate\w*)$")


class InferenceOnAutodiffRs(RustRule):
    code = "MDL302"
    name = "inference-in-train-mode"
    level = "warning"
    triggers = ("Autodiff",)
    burn_note = ("an inference or evaluation path (`infer`/`predict`/`evaluate`-like, never calling an "
                 "optimizer) instantiated on an autodiff backend (`infer::<Autodiff<Wgpu>>(..)`, a generic "
                 "`B: AutodiffBackend`, `type B = Autodiff<..>`) that runs the model without `model.valid()`: "
                 "on an autodiff backend Burn's Dropout and BatchNorm train, so every run gives other results "
                 "(Burn's own text-classification inference example had this bug, fixed in tracel-ai/burn#2736).")
    VALID = ("""
pub fn launch<B: Backend>(device: B::Device) {
    infer::<B>(device, "/tmp/artifacts");
}
fn main() {
    launch::<NdArray>(NdArrayDevice::Cpu);
}
""", """
pub fn infer<B: AutodiffBackend>(device: B::Device, artifact_dir: &str) {
    let model = ModelConfig::new().init::<B>(&device).load_record(record(artifact_dir)).valid();
    let out = model.forward(batch(&device));
}
""", """
pub fn train<B: AutodiffBackend>(device: B::Device) {
    let model = ModelConfig::new().init::<B>(&device);
    let grads = model.forward(batch(&device)).backward();
    evaluate::<B>(&model);
}
""")
    INVALID = ("""
pub fn launch<B: AutodiffBackend>(device: B::Device) {
    infer::<B>(device, "/tmp/artifacts"); // expect: MDL302
}
""", """
fn main() {
    predict::<Autodiff<Wgpu>>(WgpuDevice::default()); // expect: MDL302
}
""", """
pub fn evaluate<B: AutodiffBackend>(device: B::Device, artifact_dir: &str) {
    let model = ModelConfig::new().init::<B>(&device).load_record(record(artifact_dir));
    let out = model.forward(batch(&device)); // expect: MDL302
}
""")

    def check(self) -> None:
        f = self.file
        for fn in f.functions:
            if f.is_training_routine(fn) or any(c.name == f.profile.to_inference for c in f.calls_in(fn.node)):
                continue
            autodiff = self._autodiff_generics(fn)
            for call in f.calls_in(fn.node):
                if call.kind in ("plain", "path") and _INFERENCE_CALLEE.match(call.name):
                    args = turbofish(call.node)
                    if args is not None and self._is_autodiff(args, autodiff):
                        self.report(call.node, f"`{call.name}` runs inference on an autodiff backend "
                                    f"(`{text(args)}`): Dropout and BatchNorm stay in training mode and results "
                                    "change on every run; instantiate it on the inner backend or call "
                                    "`model.valid()` before the forward pass")
            if autodiff and f.profile.inference_function.match(fn.name):
                self._model_run_in(fn)

    def _model_run_in(self, fn) -> None:
        f = self.file
        calls = f.calls_in(fn.node)
        if not any(c.kind == "method" and c.name in f.profile.model_builders for c in calls):
            return
        run = next((c for c in calls if c.kind == "method" and c.name in f.profile.model_calls), None)
        if run is not None:
            self.report(run.node, f"`{fn.name}` runs the model on an autodiff backend without `.valid()`: Dropout "
                        "and BatchNorm stay in training mode; call `model.valid()` (or build it on the inner "
                        "backend) before inference")

    def _autodiff_generics(self, fn) -> set:
        bound = re.escape(self.file.profile.autodiff_bound)
        return set(re.findall(rf"\b(\w+)\s*:\s*(?:[\w:]+\s*\+\s*)*(?:[\w:]*::)?{bound}\b", fn.generics()))

    def _is_autodiff(self, args, generics: set) -> bool:
        first = args.named_children[0] if args.named_children else None
        if first is None:
            return False
        t = text(first)
        return self.file.profile.autodiff_type + "<" in t or t in generics or t in self.file.autodiff_aliases

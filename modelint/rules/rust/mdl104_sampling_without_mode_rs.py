"""MDL104 in Burn: a `forward` path that samples without asking for the mode."""

from __future__ import annotations

from modelint.rust.rule import RustRule
from modelint.rust.syntax import text


class SamplingWithoutModeBranchRs(RustRule):
    code = "MDL104"
    name = "unguarded-sampling-in-forward"
    level = "warning"
    triggers = ("multinomial", "random", "bernoulli")
    burn_note = ("a `forward` method (or a method it calls through `self.`) that samples "
                 "(`multinomial`, `Tensor::random`, `random_like(Distribution::..)`, `bernoulli`) and "
                 "never asks for the mode (`B::ad_enabled()` <= 0.20, `B::ad_enabled(&device)` 0.21, "
                 "`device.is_autodiff()` 0.22): after `model.valid()` it still samples, so evaluation is "
                 "random. Branch on the mode: `match B::ad_enabled() { true => probs.multinomial(..), "
                 "false => probs.argmax(..) }`.")
    VALID = ("""
impl<B: Backend> Policy<B> {
    pub fn forward(&self, probs: Tensor<B, 2>) -> Tensor<B, 2, Int> {
        match B::ad_enabled() {
            true => probs.multinomial(1, true),
            false => probs.argmax(1),
        }
    }
}
""", """
impl Noise {
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        if !x.device().is_autodiff() {
            return x;
        }
        x.clone() + x.random_like(Distribution::Normal(0.0, 0.1))
    }
}
""", """
impl<B: Backend> Agent<B> {
    // Sampling outside forward (acting in an environment) is not a forward path.
    pub fn act(&self, probs: Tensor<B, 2>) -> Tensor<B, 2, Int> {
        probs.multinomial(1, true)
    }
}
""")
    INVALID = ("""
impl<B: Backend> Policy<B> {
    pub fn forward(&self, probs: Tensor<B, 2>) -> Tensor<B, 2, Int> {
        probs.multinomial(1, true) // expect: MDL104
    }
}
""", """
impl<B: Backend> Block<B> {
    pub fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        self.noise(x)
    }
    fn noise(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let n = Tensor::random(x.shape(), Distribution::Normal(0.0, 1.0), &x.device()); // expect: MDL104
        x + n
    }
}
""")

    def check(self) -> None:
        f = self.file
        spelling = f.profile.mode_query_spelling(f.data)
        for owner in sorted({fn.owner for fn in f.functions if fn.owner and fn.name.startswith("forward")}):
            for fn in f.forward_reach(owner):
                if f.has_mode_query(fn.node) or f.branches_on(fn, f.profile.training_fields):
                    continue  # decided on the mode (a hand-rolled flag is MDL206's)
                for call in f.calls_in(fn.node):
                    if f.is_sampling(call) and f.function_of(call.node) is fn:
                        self.report(call.node, f"`{_short(text(call.node))}` in `{owner}::{fn.name}` samples on every "
                                    f"call, also after `.valid()`: evaluation is random; branch on the mode "
                                    f"(`{spelling}`: sample when it is true, take the argmax/mean otherwise)")


def _short(code: str) -> str:
    """A call's text for a message: its first line, at most 50 characters."""
    line = code.splitlines()[0] if code else ""
    return line if len(line) <= 50 and line == code else line[:47].rstrip() + "..."

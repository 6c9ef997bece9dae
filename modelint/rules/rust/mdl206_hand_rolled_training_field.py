"""MDL206: a `#[derive(Module)]` struct with its own `training: bool` that gates randomness."""

from __future__ import annotations

from modelint.rust.rule import RustRule
from modelint.rust.syntax import text, walk


class HandRolledTrainingField(RustRule):
    code = "MDL206"
    name = "hand-rolled-training-field"
    level = "warning"
    summary = "A Burn module carries its own `training: bool` to gate randomness; `valid()` never changes it."
    what = ("Reports a field named like a mode flag (`training`, `is_training`, ...) of type `bool` on a "
            "`#[derive(Module)]` struct whose methods branch on it (`if self.training`, `match "
            "self.is_training`) around randomness (dropout, noise, sampling, stochastic depth).")
    why = ("Burn keeps the mode in the backend: training runs on an autodiff backend and `model.valid()` "
           "moves the module to the inner backend. Neither touches a hand-rolled field: a `bool` in a Module is "
           "a constant that `valid()` copies as it is. Set from a config default (often `#[config(default = "
           "\"false\")]`), the gated branch never runs in training (stochastic depth silently off); set to "
           "`true`, it keeps running at evaluation.")
    example = """#[derive(Module, Debug)]
pub struct Block<B: Backend> {
    training: bool,
    drop_path: f64,
    mlp: Linear<B>,
}
impl<B: Backend> Block<B> {
    pub fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        if self.training { stochastic_depth(self.mlp.forward(x), self.drop_path) } else { x }
    }
}"""
    use_instead = """#[derive(Module, Debug)]
pub struct Block<B: Backend> {
    drop_path: f64,
    mlp: Linear<B>,
}
impl<B: Backend> Block<B> {
    pub fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        if B::ad_enabled() { stochastic_depth(self.mlp.forward(x), self.drop_path) } else { x }
    }
}"""
    fix_safety = ("No fix: the field may be set on purpose elsewhere (a config, a caller); replacing it with "
                  "the backend's mode changes behaviour wherever it was set to something else.")
    triggers = ("derive",)
    VALID = (use_instead, """
#[derive(Module, Debug)]
pub struct Head<B: Backend> {
    // A flag that selects an output, not randomness.
    training: bool,
    out: Linear<B>,
}
impl<B: Backend> Head<B> {
    pub fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        if self.training { self.out.forward(x) } else { x }
    }
}
""", """
#[derive(Config, Debug)]
pub struct TrainConfig {
    // A config (not a Module) is read by the training code, not by `forward`.
    #[config(default = "false")]
    training: bool,
}
""")
    INVALID = ("""
#[derive(Config, Debug)]
pub struct SkipConfig {
    #[config(default = "false")]
    training: bool,
}
#[derive(Module, Debug)]
pub struct Skip {
    prob: f64,
    training: bool, // expect: MDL206
}
impl Skip {
    pub fn forward<B: Backend, const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        if !self.training || self.prob == 0.0 {
            return x;
        }
        let keep = Tensor::random(x.shape(), Distribution::Bernoulli(1.0 - self.prob), &x.device());
        x * keep
    }
}
""", """
#[derive(Module, Debug)]
pub struct Block<B: Backend> {
    #[module(skip)]
    is_training: bool, // expect: MDL206
    dropout: Dropout,
    mlp: Linear<B>,
}
impl<B: Backend> Block<B> {
    pub fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        match self.is_training {
            true => self.dropout.forward(self.mlp.forward(x)),
            false => self.mlp.forward(x),
        }
    }
}
""",)

    def check(self) -> None:
        f = self.file
        for struct in f.nodes["struct"]:
            if not _derives_module(struct):
                continue
            name_node = struct.child_by_field_name("name")
            owner = text(name_node) if name_node is not None else ""
            for field in _bool_fields(struct, f.profile.training_fields):
                gate = self._gated_randomness(owner, text(field.child_by_field_name("name")))
                if gate is not None:
                    line = gate.start_point[0] + 1
                    self.report(field, f"`{text(field)}` on Module `{owner}` gates randomness (line {line}) but is not "
                                "the mode: `valid()` and autodiff training never change it, so the branch runs in "
                                "both modes or in neither; branch on the backend's mode instead "
                                f"(`{f.profile.mode_query_spelling(f.data)}`)")

    def _gated_randomness(self, owner: str, field: str):
        """The first if/match of `owner`'s methods whose condition reads `self.<field>` and whose
        body does something random."""
        f = self.file
        for fn in f.methods_of(owner).values():
            for branch in f.nodes["branch"]:
                if not (fn.node.start_byte <= branch.start_byte and branch.end_byte <= fn.node.end_byte):
                    continue
                cond = f.branch_condition(branch)
                if cond is None or not _reads_self_field(cond, field):
                    continue
                end = branch.end_byte
                if b"return" in f.data[cond.end_byte:end]:  # `if !self.training { return x; }`: the rest is gated
                    end = fn.node.end_byte
                if self._random(owner, cond.end_byte, end):
                    return branch
        return None

    def _random(self, owner: str, start: int, end: int) -> bool:
        """Is something random done in bytes [start, end) of the file, directly or in a method of
        `owner` called there through `self.` (`if self.training { self.sample(p) }`)?"""
        f = self.file
        if f.profile.random_words.search(f.data[start:end].decode("utf-8", "replace").lower()):
            return True
        methods = f.methods_of(owner)
        for call in f.self_calls_between(start, end):
            target = methods.get(call.name)
            if target is not None and any(f.is_sampling(c) for c in f.calls_in(target.node)):
                return True
        return False


def _derives_module(struct) -> bool:
    node = struct.prev_named_sibling
    while node is not None and node.type in ("attribute_item", "line_comment", "block_comment"):
        t = text(node)
        if t.startswith("#[derive") and "Module" in t:
            return True
        node = node.prev_named_sibling
    return False


def _bool_fields(struct, names):
    body = struct.child_by_field_name("body")
    for field in body.named_children if body is not None else ():
        if field.type != "field_declaration":
            continue
        name, tp = field.child_by_field_name("name"), field.child_by_field_name("type")
        if name is not None and tp is not None and text(name) in names and text(tp) == "bool":
            yield field


def _reads_self_field(cond, field: str) -> bool:
    for n in walk(cond):
        if n.type == "field_expression":
            value, name = n.child_by_field_name("value"), n.child_by_field_name("field")
            if value is not None and value.type == "self" and name is not None and text(name) == field:
                return True
    return False

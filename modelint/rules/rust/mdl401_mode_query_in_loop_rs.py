"""MDL401 in Burn: asking for the mode on every iteration of a loop that cannot change it."""

from __future__ import annotations

from modelint.rust.rule import RustFix, RustRule
from modelint.rust.syntax import identifiers, text

# Ancestors between a loop and the statement before which a hoisted `let` goes that may bind names
# the query uses (`match d { Some(dev) => for .. { dev.is_autodiff() } }`): no fix through them.
_BINDERS = ("match_arm", "let_condition", "closure_expression", "for_expression", "if_let_expression")


class ModeQueryInLoopRs(RustRule):
    code = "MDL401"
    name = "mode-query-in-loop"
    level = "info"
    triggers = ("ad_enabled", "is_autodiff")
    fixable = True
    burn_note = ("`B::ad_enabled()` / `B::ad_enabled(&device)` / `device.is_autodiff()` inside a "
                 "`for`/`while`/`loop` body or a per-item iterator closure (`.map(|x| ..)`) whose "
                 "iteration rebinds none of the query's names and moves nothing to another device: the "
                 "answer is the same every time; decide once in a `let` before the loop (the fix does).")
    VALID = ("""
fn decode<B: Backend>(steps: usize, x: Tensor<B, 2>) {
    let ad = B::ad_enabled();
    for _ in 0..steps {
        if ad { sample(x.clone()); }
    }
}
""", """
fn run(items: Vec<Tensor<2>>) {
    for item in items {
        // The query reads the loop variable: each item may live on another device.
        if item.device().is_autodiff() { train(item) }
    }
}
""")
    INVALID = ("""
fn decode<B: Backend>(steps: usize, x: Tensor<B, 2>) {
    for _ in 0..steps {
        if B::ad_enabled() { sample(x.clone()); } // expect: MDL401
    }
}
""", """
fn decode(device: &Device, xs: Vec<Tensor<2>>) -> Vec<Tensor<2>> {
    xs.into_iter().map(|x| if device.is_autodiff() { noisy(x) } else { x }).collect() // expect: MDL401
}
""")
    FIXES = (("""
fn decode<B: Backend>(steps: usize, x: Tensor<B, 2>) {
    for _ in 0..steps {
        if B::ad_enabled() { sample(x.clone()); }
    }
}
""", """
fn decode<B: Backend>(steps: usize, x: Tensor<B, 2>) {
    let ad_enabled = B::ad_enabled();
    for _ in 0..steps {
        if ad_enabled { sample(x.clone()); }
    }
}
"""),)
    fix_safety = ("Safe: the query is a pure function of the backend type or of a device the loop never "
                  "rebinds or moves, so its value is computed once in a `let` placed right before the loop "
                  "statement, under a name the function does not use yet; not offered when a pattern "
                  "between that statement and the loop could bind the query's names.")

    def check(self) -> None:
        f = self.file
        for q in f.mode_queries:
            loop = f.enclosing_loop(q.node)
            if loop is None or identifiers(q.node) & f.bound_in(loop):
                continue
            if any(c.name in f.profile.device_changes for c in f.calls_in(loop)):
                continue  # the loop moves data to another device: the answer may change
            self.report(q.node, f"`{text(q.node)}` is asked on every iteration but cannot change inside this loop: "
                        "decide once in a `let` before the loop", fix=self._hoist(q, loop))

    def _hoist(self, q, loop):
        f = self.file
        stmt = loop
        while stmt.parent is not None and stmt.parent.type != "block":
            if stmt.parent.type in _BINDERS or stmt.parent.type == "function_item":
                return None
            stmt = stmt.parent
        fn = f.function_of(loop)
        name = f.profile.hoisted_function_name if q.kind == "path" else f.profile.hoisted_method_name
        if stmt.parent is None or fn is None or name in f.bound_in(fn.node):
            return None
        query = text(q.node)
        line_start = f.data.rfind(b"\n", 0, stmt.start_byte) + 1
        indent = f.data[line_start:stmt.start_byte].decode("utf-8", "replace")
        if indent.strip():
            return None  # the statement shares its line with other code: no clean place for the `let`
        edits = [(stmt.start_byte, stmt.start_byte, f"let {name} = {query};\n{indent}")]
        edits += [(c.node.start_byte, c.node.end_byte, name) for c in f.mode_queries
                  if text(c.node) == query and f.enclosing_loop(c.node) == loop]
        return RustFix(f"hoist `{query}` into `let {name}` before the loop", edits)

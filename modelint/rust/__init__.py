"""The Rust front end (Burn): parse a `.rs` file with tree-sitter, compute its facts once, run the
Rust rules (`modelint.rules.rust`), return the same `Finding`s as the Python front end.

tree-sitter and its Rust grammar are the optional `rust` extra (`pip install modelint[rust]`);
nothing here imports them at module level, so `modelint` works without them and `available()`
says whether `.rs` files can be checked.
"""

from __future__ import annotations

SUFFIXES = (".rs",)
MISSING_EXTRA = "checking Rust needs the `rust` extra: pip install 'modelint[rust]' (tree-sitter, tree-sitter-rust)"


def available() -> bool:
    """Can the Rust front end run (tree-sitter and the Rust grammar importable)?"""
    try:
        import tree_sitter  # noqa: F401
        import tree_sitter_rust  # noqa: F401
    except ImportError:
        return False
    return True

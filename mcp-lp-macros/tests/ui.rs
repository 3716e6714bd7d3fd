//! Compile-time behaviour of `#[mcp_lp::server]` and `#[tool(...)]`: what they accept, and the
//! error (message and span) for each way of getting them wrong.
//!
//! Regenerate the `.stderr` files with `TRYBUILD=overwrite cargo test -p mcp-lp-macros --test ui`
//! and review every diff.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}

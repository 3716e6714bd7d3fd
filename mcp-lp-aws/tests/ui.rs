//! Compile-time rule: a handler receives an AWS client only in a tool that declares a role.
//!
//! Regenerate the `.stderr` files with `TRYBUILD=overwrite cargo test -p mcp-lp-aws --test ui`
//! and review every diff.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}

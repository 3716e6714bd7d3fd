//! Compile-time rules for the connection handles: `PgRead` compiles only in a tool declaring a
//! database capability, `PgWrite` only in one declaring `db_write`.
//!
//! Regenerate the `.stderr` files with `TRYBUILD=overwrite cargo test -p mcp-lp-db --test ui`
//! and review every diff.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}

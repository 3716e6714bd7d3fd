//! The compile-time rule holds for a kind the core does not know: a handler that takes a
//! [`vault_kind::Secret`] without declaring one does not compile, and says what to declare.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}

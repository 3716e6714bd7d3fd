struct S;

#[mcp_lp::server]
impl S {
    /// Read a document.
    #[tool(role = "docs-read")]
    async fn read(&self) -> String {
        String::new()
    }
}

fn main() {
    let [policy] = <S as mcp_lp::ToolSet>::policies() else { panic!("one tool") };
    assert_eq!(policy.capability("aws.role").map(|c| c.name), Some("docs-read"));
    assert_eq!(policy.capability("db"), None);
    assert!(policy.requires.is_empty());
}

struct S;

#[mcp_lp::server]
impl S {
    /// Delete a document.
    #[tool(requires = "docs:delete")]
    async fn delete(&self) -> String {
        String::new()
    }
}

fn main() {
    let [policy] = <S as mcp_lp::ToolSet>::policies() else { panic!("one tool") };
    assert_eq!(policy.name, "delete");
    assert_eq!(policy.requires, ["docs:delete"]);
    assert_eq!((policy.capabilities.len(), policy.timeout), (0, None));
}

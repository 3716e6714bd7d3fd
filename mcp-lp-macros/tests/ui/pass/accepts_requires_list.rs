struct S;

#[mcp_lp::server]
impl S {
    /// Move a document.
    #[tool(requires = ["a:b", "c:d"])]
    async fn relocate(&self) -> String {
        String::new()
    }
}

fn main() {
    let [policy] = <S as mcp_lp::ToolSet>::policies() else { panic!("one tool") };
    assert_eq!(policy.requires, ["a:b", "c:d"]);
}

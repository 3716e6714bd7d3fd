struct S;

#[mcp_lp::server]
impl S {
    /// Say hello.
    #[tool]
    async fn hello(&self) -> String {
        "hello".into()
    }
}

fn main() {
    let policies = <S as mcp_lp::ToolSet>::policies();
    assert_eq!(policies, [mcp_lp::ToolPolicy::new("hello")]);
    let tools = <S as mcp_lp::ToolSet>::tool_router().list_all();
    assert_eq!(tools.len(), 1);
    assert_eq!(tools[0].name, "hello");
    assert_eq!(<S as mcp_lp::ToolSet>::instructions(), None);
}

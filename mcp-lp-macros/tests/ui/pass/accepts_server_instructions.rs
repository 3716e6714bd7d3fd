struct S;

#[mcp_lp::server(instructions = "A document store.")]
impl S {
    /// Say hello.
    #[tool]
    async fn hello(&self) -> String {
        String::new()
    }
}

fn main() {
    assert_eq!(<S as mcp_lp::ToolSet>::instructions(), Some("A document store."));
    assert_eq!(<S as mcp_lp::ToolSet>::server_info().name, env!("CARGO_PKG_NAME"));
}

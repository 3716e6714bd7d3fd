//! `#[mcp_lp::server(handler)]`: the type's own `ServerHandler` serves prompts; tools stay with
//! the checkpoint.

struct S;

#[mcp_lp::server(handler)]
impl S {
    /// A tool.
    #[tool]
    async fn t(&self) -> String {
        String::new()
    }
}

impl mcp_lp::__private::rmcp::ServerHandler for S {}

fn main() {
    fn extras_is_self<T: mcp_lp::ToolSet<Extras = T>>() {}
    extras_is_self::<S>();
}

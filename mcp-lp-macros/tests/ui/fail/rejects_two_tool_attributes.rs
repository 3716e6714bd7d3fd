struct S;

#[mcp_lp::server]
impl S {
    #[tool(role = "docs-read")]
    #[tool(timeout = "5s")]
    async fn t(&self) -> String {
        String::new()
    }
}

fn main() {}

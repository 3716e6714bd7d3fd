struct S;

#[mcp_lp::server]
impl S {
    #[tool(rol = "docs-read")]
    async fn t(&self) -> String {
        String::new()
    }
}

fn main() {}

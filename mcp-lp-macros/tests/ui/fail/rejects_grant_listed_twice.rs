struct S;

#[mcp_lp::server]
impl S {
    #[tool(requires = ["docs:read", "docs:read"])]
    async fn t(&self) -> String {
        String::new()
    }
}

fn main() {}

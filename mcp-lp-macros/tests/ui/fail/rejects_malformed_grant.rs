struct S;

#[mcp_lp::server]
impl S {
    #[tool(requires = "docs delete")]
    async fn t(&self) -> String {
        String::new()
    }
}

fn main() {}

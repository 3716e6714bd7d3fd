struct S;

#[mcp_lp::server]
impl S {
    #[tool(requires = [])]
    async fn t(&self) -> String {
        String::new()
    }
}

fn main() {}

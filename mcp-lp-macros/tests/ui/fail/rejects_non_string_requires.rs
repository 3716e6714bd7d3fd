struct S;

#[mcp_lp::server]
impl S {
    #[tool(requires = 5)]
    async fn t(&self) -> String {
        String::new()
    }
}

fn main() {}

struct S;

#[mcp_lp::server]
impl S {
    #[tool(role = "a", role = "b")]
    async fn t(&self) -> String {
        String::new()
    }
}

fn main() {}

struct S;

#[mcp_lp::server]
impl S {
    #[tool(role = "")]
    async fn t(&self) -> String {
        String::new()
    }
}

fn main() {}

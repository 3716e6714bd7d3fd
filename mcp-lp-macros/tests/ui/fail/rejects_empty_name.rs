struct S;

#[mcp_lp::server]
impl S {
    #[tool(name = "")]
    async fn t(&self) -> String {
        String::new()
    }
}

fn main() {}

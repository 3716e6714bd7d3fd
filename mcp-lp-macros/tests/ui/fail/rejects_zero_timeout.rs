struct S;

#[mcp_lp::server]
impl S {
    #[tool(timeout = "0s")]
    async fn t(&self) -> String {
        String::new()
    }
}

fn main() {}

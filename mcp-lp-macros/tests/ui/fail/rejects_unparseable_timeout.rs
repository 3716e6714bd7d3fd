struct S;

#[mcp_lp::server]
impl S {
    #[tool(timeout = "soon")]
    async fn t(&self) -> String {
        String::new()
    }
}

fn main() {}

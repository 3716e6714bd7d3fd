struct S;

#[mcp_lp::server]
impl S {
    #[tool(role = "Docs_Read")]
    async fn t(&self) -> String {
        String::new()
    }
}

fn main() {}

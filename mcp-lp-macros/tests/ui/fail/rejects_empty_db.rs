struct S;

#[mcp_lp::server]
impl S {
    #[tool(db = "")]
    async fn t(&self) -> String {
        String::new()
    }
}

fn main() {}

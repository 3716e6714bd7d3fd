struct S;

#[mcp_lp::server]
impl S {
    #[tool(colour = 1)]
    async fn t(&self) -> String {
        String::new()
    }
}

fn main() {}

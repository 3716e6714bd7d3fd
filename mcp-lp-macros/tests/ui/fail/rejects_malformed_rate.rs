struct S;

#[mcp_lp::server]
impl S {
    #[tool(rate = "0/min")]
    async fn none(&self) -> String {
        String::new()
    }

    #[tool(rate = "60 per minute")]
    async fn prose(&self) -> String {
        String::new()
    }
}

fn main() {}

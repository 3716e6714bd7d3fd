struct S;

#[mcp_lp::server]
impl S {
    #[tool]
    async fn read(&self) -> String {
        String::new()
    }

    #[tool(name = "read")]
    async fn read_again(&self) -> String {
        String::new()
    }
}

fn main() {}

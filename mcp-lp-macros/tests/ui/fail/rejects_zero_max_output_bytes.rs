struct S;

#[mcp_lp::server]
impl S {
    #[tool(max_output_bytes = 0)]
    async fn t(&self) -> String {
        String::new()
    }
}

fn main() {}

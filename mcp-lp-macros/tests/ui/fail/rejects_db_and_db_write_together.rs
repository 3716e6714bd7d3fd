struct S;

#[mcp_lp::server]
impl S {
    #[tool(db = "records", db_write = "records")]
    async fn t(&self) -> String {
        String::new()
    }
}

fn main() {}

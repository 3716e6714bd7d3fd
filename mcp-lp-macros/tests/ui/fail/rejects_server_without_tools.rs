struct S;

#[mcp_lp::server]
impl S {
    async fn t(&self) -> String {
        String::new()
    }
}

fn main() {}

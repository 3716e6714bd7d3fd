struct S;

trait Tools {
    async fn t(&self) -> String;
}

#[mcp_lp::server]
impl Tools for S {
    #[tool]
    async fn t(&self) -> String {
        String::new()
    }
}

fn main() {}

use mcp_lp::prelude::tool;

struct S;

impl S {
    #[tool]
    async fn t(&self) -> String {
        String::new()
    }
}

fn main() {}

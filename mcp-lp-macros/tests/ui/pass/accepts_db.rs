struct S;

#[mcp_lp::server]
impl S {
    /// Query the catalogue.
    #[tool(db = "read")]
    async fn query(&self) -> String {
        String::new()
    }
}

fn main() {
    let [policy] = <S as mcp_lp::ToolSet>::policies() else { panic!("one tool") };
    assert_eq!(policy.capability("db").map(|c| c.name), Some("read"));
    assert_eq!(policy.capability("aws.role"), None);
}

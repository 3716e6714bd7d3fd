struct S;

#[mcp_lp::server]
impl S {
    #[tool(
        name = "readDocument",
        description = "Read one document.",
        annotations(read_only_hint = true),
        role = "docs-read"
    )]
    async fn read_document(&self) -> String {
        String::new()
    }
}

fn main() {
    let [policy] = <S as mcp_lp::ToolSet>::policies() else { panic!("one tool") };
    assert_eq!(policy.name, "readDocument");
    assert_eq!(policy.capability("aws.role").map(|c| c.name), Some("docs-read"));
    let [tool] = &<S as mcp_lp::ToolSet>::tool_router().list_all()[..] else { panic!("one tool") };
    assert_eq!(tool.name, "readDocument");
    assert_eq!(tool.description.as_deref(), Some("Read one document."));
    let annotations = tool.annotations.as_ref().expect("annotations");
    assert_eq!(annotations.read_only_hint, Some(true));
}

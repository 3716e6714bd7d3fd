//! The crate also depends on rmcp and names it in the module holding the server.
#![allow(unused_imports)]

use rmcp;
use rmcp::model::Tool;

struct S;

#[mcp_lp::server]
impl S {
    /// Say hello.
    #[tool(annotations(read_only_hint = true))]
    async fn hello(&self) -> String {
        String::new()
    }
}

mod nested {
    use rmcp::handler::server::router::tool::ToolRouter;

    pub(crate) struct T;

    #[mcp_lp::server]
    impl T {
        /// Say goodbye.
        #[tool]
        async fn goodbye(&self) -> String {
            String::new()
        }
    }

    pub(crate) fn router() -> ToolRouter<T> {
        <T as mcp_lp::ToolSet>::tool_router()
    }
}

fn tools() -> Vec<rmcp::model::Tool> {
    <S as mcp_lp::ToolSet>::tool_router().list_all()
}

fn main() {
    let tools: Vec<Tool> = tools();
    assert_eq!(tools[0].name, "hello");
    assert_eq!(<S as mcp_lp::ToolSet>::policies()[0].name, "hello");
    assert_eq!(nested::router().list_all()[0].name, "goodbye");
}

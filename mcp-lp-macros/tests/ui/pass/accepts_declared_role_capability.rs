use mcp_lp::__private::rmcp::handler::server::common::{AsRequestContext, FromContextPart};

/// Stands in for an AWS client bound to the tool's role.
struct FakeRoleClient;

impl mcp_lp::capability::Capability for FakeRoleClient {
    type Requirement = mcp_lp_aws::AwsRole;
}

impl<C: AsRequestContext> FromContextPart<C> for FakeRoleClient {
    fn from_context_part(_: &mut C) -> Result<Self, mcp_lp::__private::rmcp::ErrorData> {
        Ok(FakeRoleClient)
    }
}

struct S;

#[mcp_lp::server]
impl S {
    /// Read a document with the tool's role.
    #[tool(role = "x")]
    async fn read(&self, _client: FakeRoleClient) -> String {
        String::new()
    }
}

fn main() {
    let [policy] = <S as mcp_lp::ToolSet>::policies() else { panic!("one tool") };
    assert_eq!(policy.capability("aws.role").map(|c| c.name), Some("x"));
}

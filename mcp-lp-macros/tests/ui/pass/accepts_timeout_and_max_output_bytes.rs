use std::time::Duration;

struct S;

#[mcp_lp::server]
impl S {
    /// Summarise.
    #[tool(timeout = "5s", max_output_bytes = 1024)]
    async fn summarise(&self) -> String {
        String::new()
    }

    /// Summarise briefly.
    #[tool(timeout = "1m 500ms")]
    async fn brief(&self) -> String {
        String::new()
    }

    /// Summarise overnight: a day is 24 hours, as in configuration.
    #[tool(timeout = "1d 2h")]
    async fn overnight(&self) -> String {
        String::new()
    }
}

fn main() {
    let [summarise, brief, overnight] = <S as mcp_lp::ToolSet>::policies() else { panic!("three tools") };
    assert_eq!(summarise.timeout, Some(Duration::from_secs(5)));
    assert_eq!(summarise.max_output_bytes, Some(1024));
    assert_eq!(brief.timeout, Some(Duration::from_millis(60_500)));
    assert_eq!(brief.max_output_bytes, None);
    assert_eq!(overnight.timeout, Some(Duration::from_secs(26 * 3600)));
}

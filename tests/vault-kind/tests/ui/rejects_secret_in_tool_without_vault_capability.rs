struct Billing;

#[mcp_lp::server]
impl Billing {
    /// Declares nothing, but takes a secret.
    #[tool]
    async fn key_length(&self, secret: vault_kind::Secret) -> String {
        secret.name().to_owned()
    }
}

fn main() {}

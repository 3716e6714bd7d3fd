//! A server with one tool of the made-up kind, for the command-line half of the seam's tests:
//! `inventory`, `check`, `approve` and `review` run here as they do for any server.

use secrecy::ExposeSecret as _;
use vault_kind::{Secret, Vault};

#[derive(Debug, Clone)]
struct Billing;

#[mcp_lp::server]
impl Billing {
    /// Say how long the billing API key is, without showing it.
    #[tool(capability(kind = vault_kind::VaultSecret, name = "billing"))]
    async fn key_length(&self, secret: Secret) -> String {
        secret.value().expose_secret().len().to_string()
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    mcp_lp::cli::run(|config| async move {
        let vault = Vault::from_config(&config)?;
        Ok(mcp_lp::Server::new(Billing).provide(vault))
    })
    .await
}

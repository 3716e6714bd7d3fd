//! A kind of capability the core has never heard of, served by this crate through the public
//! API alone, is covered like AWS roles and databases: the audit event, the approved manifest
//! (drift on change), `inventory`, `check` and `review`, revocation, and configuration checks.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mcp_lp::manifest::{MANIFEST_FILE, Manifest};
use mcp_lp::revocation::{Evict as _, Revocation, RevocationList, Target};
use mcp_lp::{Checkpoint, Config, Principal, ToolSet};
use mcp_lp_tests::Recorder;
use secrecy::ExposeSecret as _;
use vault_kind::{Secret, Vault};

const KEY: &str = "sk-live-0123456789";

#[derive(Debug, Clone)]
struct Billing;

#[mcp_lp::server]
impl Billing {
    /// Say how long the billing API key is, without showing it.
    #[tool(capability(kind = vault_kind::VaultSecret, name = "billing"))]
    async fn key_length(&self, secret: Secret) -> String {
        format!("{} {}", secret.name(), secret.value().expose_secret().len())
    }
}

/// The same tool, its secret renamed.
#[derive(Debug, Clone)]
struct BillingRenamed;

#[mcp_lp::server]
impl BillingRenamed {
    /// Say how long the billing API key is, without showing it.
    #[tool(capability(kind = vault_kind::VaultSecret, name = "billing-v2"))]
    async fn key_length(&self, secret: Secret) -> String {
        format!("{} {}", secret.name(), secret.value().expose_secret().len())
    }
}

/// A directory with the secret files and a configuration whose secret `name` is read from
/// `file`, plus `extra` TOML.
fn deployment(name: &str, file: &str, extra: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::create_dir(dir.path().join("secrets")).expect("the secrets directory");
    std::fs::write(
        dir.path().join("secrets/billing-api-key"),
        format!("{KEY}\n"),
    )
    .expect("a secret file");
    std::fs::write(dir.path().join("secrets/other-key"), "sk-other\n").expect("a secret file");
    let path = write_config(dir.path(), name, file, extra);
    (dir, path)
}

fn write_config(dir: &Path, name: &str, file: &str, extra: &str) -> PathBuf {
    let path = dir.join("mcp-lp.toml");
    std::fs::write(
        &path,
        format!(
            "{extra}\n[vault]\ndir = \"secrets\"\n\n[vault.secrets.{name}]\nfile = \"{file}\"\n"
        ),
    )
    .expect("the configuration written");
    path
}

fn refusal<S: ToolSet + Clone>(service: S, config: &Config) -> String {
    let vault = Vault::from_config(config).expect("the vault configured");
    match Checkpoint::new(
        mcp_lp::Server::new(service).provide(vault),
        config,
        Principal::new("ops"),
    ) {
        Ok(_) => panic!("the server started"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn records_made_up_kind_in_the_audit_event_and_hands_the_tool_its_secret() {
    let recorder = Recorder::global();
    let (_dir, path) = deployment("billing", "billing-api-key", "");
    let config = Config::load(&path).unwrap();
    let vault = Vault::from_config(&config).unwrap();
    let principal = "vault-audit@example.com";
    let connection = mcp_lp_tests::connect_with(
        mcp_lp::Server::new(Billing).provide(vault),
        &config,
        Principal::new(principal),
        rmcp::service::ClientLifecycleMode::Initialize,
    )
    .await;
    let (failed, text) = connection.text("key_length", serde_json::json!({})).await;
    assert!(!failed, "{text}");
    assert_eq!(text, format!("billing {}", KEY.len()));
    let events = recorder.audit_events_of(principal);
    let call = events
        .iter()
        .find(|e| e["tool"] == "key_length")
        .expect("an audit event of the call");
    assert_eq!(call["outcome"], "ok", "{call}");
    assert_eq!(
        call["capabilities"],
        serde_json::json!(["vault.secret:read:billing"])
    );
    assert!(!recorder.text().contains(KEY), "the secret reached a log");
}

#[test]
fn refuses_start_when_made_up_capability_changed() {
    let (dir, path) = deployment("billing", "billing-api-key", "");
    let config = Config::load(&path).unwrap();
    Manifest::of::<Billing>(
        &config,
        "alice",
        "2026-12-01T00:00:00Z",
        "billing-team",
        "2099-01-01",
    )
    .write(&dir.path().join(MANIFEST_FILE))
    .unwrap();
    let config = Config::load(&path).unwrap();
    let vault = Vault::from_config(&config).unwrap();
    Checkpoint::new(
        mcp_lp::Server::new(Billing).provide(vault),
        &config,
        Principal::new("ops"),
    )
    .expect("the approved server starts");

    // The configuration points the secret at another file.
    write_config(dir.path(), "billing", "other-key", "");
    let message = refusal(Billing, &Config::load(&path).unwrap());
    assert!(
        message.contains(
            "\n  tool key_length: capability vault.secret billing: file billing-api-key -> other-key\n"
        ),
        "{message}"
    );

    // The code declares another secret.
    write_config(dir.path(), "billing-v2", "billing-api-key", "");
    let message = refusal(BillingRenamed, &Config::load(&path).unwrap());
    assert!(
        message.contains("\n  tool key_length: capability vault.secret billing -> billing-v2\n"),
        "{message}"
    );
}

#[test]
fn refuses_made_up_kind_table_no_tool_declares() {
    let (_dir, path) = deployment(
        "billing",
        "billing-api-key",
        "[vault.secrets.payroll]\nfile = \"other-key\"\n",
    );
    let config = Config::load(&path).unwrap();
    let message = refusal(Billing, &config);
    assert!(message.contains("vault.secrets.payroll"), "{message}");
    assert!(
        message.contains("no tool declares vault.secret `payroll`"),
        "{message}"
    );
}

#[test]
fn refuses_made_up_kind_declared_without_its_table() {
    let (_dir, path) = deployment("billing-v2", "billing-api-key", "");
    let message = refusal(Billing, &Config::load(&path).unwrap());
    assert!(
        message.contains(
            "tool `key_length` declares vault.secret `billing`, but the configuration has no [vault.secrets.billing] table"
        ),
        "{message}"
    );
}

#[test]
fn refuses_secret_file_outside_the_vault_directory() {
    let (_dir, path) = deployment("billing", "../mcp-lp.toml", "");
    let error = Vault::from_config(&Config::load(&path).unwrap()).unwrap_err();
    assert_eq!(error.key.as_deref(), Some("vault.secrets.billing.file"));
    assert!(error.to_string().contains("mcp-lp.toml"), "{error}");
}

#[tokio::test]
async fn drops_held_secrets_of_a_revoked_tool() {
    let (_dir, path) = deployment("billing", "billing-api-key", "");
    let config = Config::load(&path).unwrap();
    let vault = Vault::from_config(&config).unwrap();
    let connection = mcp_lp_tests::connect_with(
        mcp_lp::Server::new(Billing).provide(vault.clone()),
        &config,
        Principal::new("vault-evict@example.com"),
        rmcp::service::ClientLifecycleMode::Initialize,
    )
    .await;
    connection.text("key_length", serde_json::json!({})).await;
    assert_eq!(vault.held(), 1);
    // Another tool's revocation leaves the secret held.
    let other = RevocationList::new(vec![Revocation::now(
        Target::Tool("export".into()),
        "test",
        "ops",
    )]);
    vault.evict(&other, Billing::policies());
    assert_eq!(vault.held(), 1);
    let list = RevocationList::new(vec![Revocation::now(
        Target::Tool("key_length".into()),
        "leaked key",
        "ops",
    )]);
    vault.evict(&list, Billing::policies());
    assert_eq!(vault.held(), 0);
}

fn vault_server(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vault-server"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env("USER", "alice")
        .output()
        .expect("vault-server runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn lists_made_up_kind_in_inventory_check_and_review() {
    let (dir, path) = deployment("billing", "billing-api-key", "");
    let inventory = vault_server(&path, &["inventory"]);
    assert!(inventory.status.success(), "{}", stderr(&inventory));
    let listed: serde_json::Value = serde_json::from_str(&stdout(&inventory)).unwrap();
    let tool = listed["tools"]
        .as_array()
        .and_then(|tools| tools.iter().find(|t| t["name"] == "key_length"))
        .unwrap_or_else(|| panic!("key_length in {listed}"));
    assert_eq!(
        tool["capabilities"],
        serde_json::json!([{"kind": "vault.secret", "name": "billing", "access": "read"}])
    );

    let approved = vault_server(
        &path,
        &[
            "approve",
            "--owner",
            "billing-team",
            "--review-by",
            "2099-01-01",
        ],
    );
    assert!(approved.status.success(), "{}", stderr(&approved));
    let pinned = std::fs::read_to_string(dir.path().join(MANIFEST_FILE)).unwrap();
    assert!(pinned.contains("\"vault.secret\""), "{pinned}");

    let review = vault_server(&path, &["review"]);
    assert!(review.status.success(), "{}", stderr(&review));
    assert!(
        stdout(&review).contains("tool key_length\n  capability vault.secret billing (read)\n"),
        "{}",
        stdout(&review)
    );

    let check = vault_server(&path, &["check"]);
    assert!(check.status.success(), "{}", stderr(&check));
    write_config(dir.path(), "billing", "other-key", "");
    let check = vault_server(&path, &["check"]);
    assert!(!check.status.success());
    assert!(
        stderr(&check)
            .contains("capability vault.secret billing: file billing-api-key -> other-key"),
        "{}",
        stderr(&check)
    );
}

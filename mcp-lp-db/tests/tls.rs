//! TLS (the `tls` feature) against the local PostgreSQL, which `scripts/postgres.sh start`
//! serves with a certificate signed by its own test CA.
#![cfg(feature = "tls")]

mod common;

use std::path::PathBuf;

use common::{Fixture, Sandbox, serve, values};
use mcp_lp::{Principal, Server};
use mcp_lp_db::StartupError;
use serde_json::json;

fn tls_file(variable: &str, name: &str) -> String {
    let path = std::env::var_os(variable).map_or_else(
        || {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../.cache/pg/tls")
                .join(name)
        },
        PathBuf::from,
    );
    assert!(
        path.is_file(),
        "{} is missing: run `scripts/postgres.sh start`",
        path.display()
    );
    path.display().to_string()
}

#[tokio::test]
async fn accepts_tls_connection_verified_against_configured_ca() {
    let sandbox = Sandbox::new("tls").await;
    let (reader, writer) = (sandbox.reader().await, sandbox.writer().await);
    let ca = tls_file("MCP_LP_PG_CA_FILE", "ca.pem");
    let config = sandbox.fixture_config(&reader, &writer, &format!("tls = {{ ca_file = {ca:?} }}"));
    let databases = sandbox.connect(&config).await.expect("starts over TLS");
    let conn = serve(
        Server::new(Fixture::default()).provide(databases),
        &config,
        Principal::new("alice@example.com"),
    )
    .await;
    let result = conn
        .call(
            "read_script",
            json!({"statements": ["SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()"]}),
        )
        .await
        .unwrap();
    assert_eq!(values(&result), json!(["true"]));
    drop(conn);
    sandbox.cleanup().await;
}

#[tokio::test]
async fn rejects_tls_server_the_configured_ca_did_not_sign() {
    let sandbox = Sandbox::new("tlsbad").await;
    let (reader, writer) = (sandbox.reader().await, sandbox.writer().await);
    let ca = tls_file("MCP_LP_PG_UNTRUSTED_CA_FILE", "untrusted-ca.pem");
    let config = sandbox.fixture_config(&reader, &writer, &format!("tls = {{ ca_file = {ca:?} }}"));
    let error = sandbox.connect(&config).await.unwrap_err();
    assert!(matches!(error, StartupError::Connect { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("TLS"), "{message}");
    assert!(message.contains("UnknownIssuer"), "{message}");
    sandbox.cleanup().await;
}

#[tokio::test]
async fn rejects_tls_ca_file_holding_no_certificate() {
    let sandbox = Sandbox::new("tlsnone").await;
    let (reader, writer) = (sandbox.reader().await, sandbox.writer().await);
    let empty = sandbox.dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    let config = sandbox.fixture_config(
        &reader,
        &writer,
        &format!("tls = {{ ca_file = {:?} }}", empty.display().to_string()),
    );
    let error = sandbox.connect(&config).await.unwrap_err();
    assert!(matches!(error, StartupError::Tls { .. }), "{error:?}");
    assert!(
        error.to_string().contains("key `db.reader.tls.ca_file`"),
        "{error}"
    );
    assert!(
        error.to_string().contains("holds no certificate"),
        "{error}"
    );
    sandbox.cleanup().await;
}

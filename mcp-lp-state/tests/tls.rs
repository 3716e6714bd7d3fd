//! The store over TLS (the `tls` feature) against the local PostgreSQL, which
//! `scripts/postgres.sh start` serves with a certificate signed by its own test CA.
#![cfg(feature = "tls")]

mod common;

use std::path::PathBuf;

use common::AuditDb;
use mcp_lp_state::{StateError, StateStore};

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

/// How many connections of `role` use TLS now.
async fn tls_connections(db: &AuditDb, role: &str) -> i64 {
    db.admin
        .query_one(
            "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid)
             WHERE usename = $1 AND ssl",
            &[&role],
        )
        .await
        .expect("count")
        .get(0)
}

#[tokio::test]
async fn accepts_state_over_tls_verified_against_configured_ca() {
    let db = AuditDb::new().await;
    let ca = tls_file("MCP_LP_PG_CA_FILE", "ca.pem");
    let config = db.config_with(&format!("[state.tls]\nca_file = {ca:?}\n"));
    let store = StateStore::connect(&config).await.expect("starts over TLS");
    // The revocation list's listening connection goes over TLS too.
    let revocations = store.revocations(&config).await.expect("follows");
    assert!(revocations.current().is_empty());
    // The pool's connection, and the listener once its task has connected.
    let started = std::time::Instant::now();
    while tls_connections(&db, &db.writer).await < 2 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "the pool and the listener do not both connect over TLS"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let plain: i64 = db
        .admin
        .query_one(
            "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid)
             WHERE usename = $1 AND NOT ssl",
            &[&db.writer],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(plain, 0, "a connection of the store went without TLS");
}

#[tokio::test]
async fn rejects_state_server_the_configured_ca_did_not_sign() {
    let db = AuditDb::new().await;
    let ca = tls_file("MCP_LP_PG_UNTRUSTED_CA_FILE", "untrusted-ca.pem");
    let config = db.config_with(&format!("[state.tls]\nca_file = {ca:?}\n"));
    let error = StateStore::connect(&config).await.unwrap_err();
    assert!(matches!(error, StateError::Connect { .. }), "{error:?}");
    assert!(error.to_string().contains("UnknownIssuer"), "{error}");
}

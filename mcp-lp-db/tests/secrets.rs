//! Passwords never reach logs, even at TRACE with the driver's own `log` records captured, nor
//! error messages, nor `Debug` output.
//!
//! Installs the process-wide log recorder, so it is its own test binary.

mod common;

use common::{Fixture, Sandbox, error_text, pg, serve, writer_principal};
use mcp_lp::Server;
use mcp_lp_tests::Recorder;
use serde_json::json;

#[tokio::test]
async fn rejects_passwords_in_trace_logs_errors_and_debug_output() {
    let recorder = Recorder::global();
    tracing_log::LogTracer::init().expect("the only log bridge in this process");

    let sandbox = Sandbox::new("secrets").await;
    let (reader, writer) = (sandbox.reader().await, sandbox.writer().await);
    let admin_password = pg()
        .admin_url
        .parse::<tokio_postgres::Config>()
        .unwrap()
        .get_password()
        .map(|p| String::from_utf8(p.to_vec()).unwrap())
        .unwrap();
    let wrong = "wrong-password-c0ffee";
    let mut said = Vec::new();

    let config = sandbox.fixture_config(&reader, &writer, "");
    let databases = sandbox.connect(&config).await.expect("starts");
    said.push(format!("{databases:?}"));
    let conn = serve(
        Server::new(Fixture::default()).provide(databases),
        &config,
        writer_principal("alice@example.com"),
    )
    .await;
    conn.call("insert_title", json!({"title": "x"}))
        .await
        .unwrap();
    conn.call("titles", json!({})).await.unwrap();
    for statements in [
        json!(["INSERT INTO records (title) VALUES ('y')"]),
        json!(["SELEC nonsense"]),
        json!(["COMMIT"]),
    ] {
        let result = conn
            .call("read_script", json!({"statements": statements}))
            .await
            .unwrap();
        said.push(error_text(&result));
    }

    // A wrong password: the server refuses to start.
    let bad_reader = sandbox.role("badreader", "").await;
    let url = std::fs::read_to_string(&bad_reader.url_file).unwrap();
    std::fs::write(
        &bad_reader.url_file,
        url.replace(&bad_reader.password, wrong),
    )
    .unwrap();
    let config = sandbox.fixture_config(&bad_reader, &writer, "");
    let error = sandbox.connect(&config).await.unwrap_err();
    said.push(error.to_string());
    said.push(format!("{error:?}"));
    drop(conn);

    let logs = recorder.text();
    // The capture works at every level and includes the driver's `log` records.
    assert!(
        logs.contains("database capability ready"),
        "no mcp-lp-db event captured"
    );
    assert!(
        logs.contains("\"level\":\"TRACE\""),
        "no TRACE event captured"
    );
    assert!(logs.contains("tokio_postgres"), "no driver record captured");
    for password in [
        &reader.password,
        &writer.password,
        &bad_reader.password,
        &admin_password,
        &wrong.to_owned(),
    ] {
        assert!(
            !logs.contains(password.as_str()),
            "a password is in the logs"
        );
        for text in &said {
            assert!(
                !text.contains(password.as_str()),
                "a password is in: {text}"
            );
        }
    }
    sandbox.cleanup().await;
}

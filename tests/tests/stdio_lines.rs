//! The stdio line transport under hostile bytes and failing pipes: a line that is not UTF-8 is
//! answered `-32700` and the server keeps reading; a failed read is an error, not a clean end.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use mcp_lp::transport::LineTransport;
use mcp_lp::{Checkpoint, Config, Principal};
use mcp_lp_tests::Fixture;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncRead, AsyncWriteExt as _, BufReader, ReadBuf};

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"0"}}}"#;
const INITIALIZED: &str = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;

fn checkpoint() -> Checkpoint<Fixture> {
    Checkpoint::new(
        Fixture::default(),
        &Config::defaults(),
        Principal::new("stdio@example.com"),
    )
    .expect("checkpoint")
}

#[tokio::test]
async fn rejects_line_that_is_not_utf8_and_keeps_reading() {
    let (client, server) = tokio::io::duplex(1 << 16);
    let (read, write) = tokio::io::split(server);
    let serving = tokio::spawn(checkpoint().serve_lines(LineTransport::new(read, write)));
    let (client_read, mut client_write) = tokio::io::split(client);
    let mut replies = BufReader::new(client_read).lines();
    let mut next = async || -> Value {
        let line = replies.next_line().await.unwrap().expect("a reply");
        serde_json::from_str(&line).unwrap()
    };

    for line in [INITIALIZE, INITIALIZED] {
        client_write.write_all(line.as_bytes()).await.unwrap();
        client_write.write_all(b"\n").await.unwrap();
    }
    assert_eq!(next().await["id"], 1);
    client_write
        .write_all(b"{\"jsonrpc\":\"2.0\",\"id\":12,\"method\":\"ping\",\"x\":\"\xff\xfe\"}\n")
        .await
        .unwrap();
    let refused = next().await;
    assert_eq!(refused["error"]["code"], -32700, "{refused}");
    assert_eq!(refused["id"], Value::Null, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("UTF-8"),
        "{refused}"
    );

    client_write
        .write_all(b"{\"jsonrpc\":\"2.0\",\"id\":13,\"method\":\"ping\"}\n")
        .await
        .unwrap();
    let pong = next().await;
    assert_eq!(pong, json!({"jsonrpc": "2.0", "id": 13, "result": {}}));

    drop(client_write);
    drop(replies);
    serving
        .await
        .unwrap()
        .expect("the end of input is a clean end");
}

#[tokio::test]
async fn rejects_tools_call_with_unreadable_params_and_keeps_reading() {
    let recorder = mcp_lp_tests::Recorder::global();
    let (client, server) = tokio::io::duplex(1 << 16);
    let (read, write) = tokio::io::split(server);
    let checkpoint = Checkpoint::new(
        Fixture::default(),
        &Config::defaults(),
        Principal::new("stdio-params@example.com"),
    )
    .expect("checkpoint");
    let serving = tokio::spawn(checkpoint.serve_lines(LineTransport::new(read, write)));
    let (client_read, mut client_write) = tokio::io::split(client);
    let mut replies = BufReader::new(client_read).lines();
    let mut next = async || -> Value {
        let line = replies.next_line().await.unwrap().expect("a reply");
        serde_json::from_str(&line).unwrap()
    };
    for line in [INITIALIZE, INITIALIZED] {
        client_write.write_all(line.as_bytes()).await.unwrap();
        client_write.write_all(b"\n").await.unwrap();
    }
    assert_eq!(next().await["id"], 1);

    for (id, line) in [
        (
            14,
            r#"{"jsonrpc":"2.0","id":14,"method":"tools/call","params":{"name":["echo"]}}"#,
        ),
        (
            15,
            r#"{"jsonrpc":"2.0","id":15,"method":"tools/call","params":{"name":"echo","name":"whoami"}}"#,
        ),
        (
            16,
            r#"{"jsonrpc":"2.0","id":16,"method":"tools/call","params":{"name":"echo","arguments":[]}}"#,
        ),
    ] {
        client_write.write_all(line.as_bytes()).await.unwrap();
        client_write.write_all(b"\n").await.unwrap();
        let refused = next().await;
        assert_eq!(refused["id"], id, "{refused}");
        assert_eq!(refused["error"]["code"], -32602, "{line}: {refused}");
    }

    client_write
        .write_all(b"{\"jsonrpc\":\"2.0\",\"id\":17,\"method\":\"ping\"}\n")
        .await
        .unwrap();
    assert_eq!(
        next().await,
        json!({"jsonrpc": "2.0", "id": 17, "result": {}})
    );

    let outcomes: Vec<_> = recorder
        .audit_events_of("stdio-params@example.com")
        .iter()
        .map(|e| e["outcome"].clone())
        .collect();
    assert_eq!(outcomes, vec![json!("invalid_params"); 3]);

    drop(client_write);
    drop(replies);
    serving.await.unwrap().expect("a clean end");
}

/// Yields `data`, then fails every read.
struct FailingAfter {
    data: Vec<u8>,
    at: usize,
}

impl AsyncRead for FailingAfter {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.at < self.data.len() {
            let n = buf.remaining().min(self.data.len() - self.at);
            let at = self.at;
            buf.put_slice(&self.data[at..at + n]);
            self.at += n;
            return Poll::Ready(Ok(()));
        }
        Poll::Ready(Err(io::Error::other("the pipe broke")))
    }
}

#[tokio::test]
async fn refuses_to_report_a_failed_read_as_a_clean_end() {
    let data = format!("{INITIALIZE}\n{INITIALIZED}\n").into_bytes();
    let reader = FailingAfter { data, at: 0 };
    let outcome = checkpoint()
        .serve_lines(LineTransport::new(reader, tokio::io::sink()))
        .await;
    let error = outcome.expect_err("a failed read must be an error");
    assert!(error.to_string().contains("the pipe broke"), "{error}");
}

#[tokio::test]
async fn accepts_end_of_input_as_a_clean_end() {
    let data = format!("{INITIALIZE}\n{INITIALIZED}\n").into_bytes();
    let outcome = checkpoint()
        .serve_lines(LineTransport::new(io::Cursor::new(data), tokio::io::sink()))
        .await;
    assert!(outcome.is_ok(), "{outcome:?}");
}

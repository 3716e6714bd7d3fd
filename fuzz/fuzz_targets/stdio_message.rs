//! The stdio transport's message parse and the transport itself.
//!
//! - The fast `tools/call` parse gives exactly what rmcp's own parse gives, message or error.
//! - A line answered `-32602` carries a string or number id.
//! - Run whole over the input: the transport never fails on content (only the input's end ends
//!   it), answers each line at most once, and every answer is a JSON-RPC 2.0 error of the kinds
//!   the transport sends.
#![no_main]

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};

use libfuzzer_sys::fuzz_target;
use mcp_lp::__fuzz::parse_line;
use mcp_lp::transport::LineTransport;
use rmcp::transport::Transport as _;
use serde_json::Value;
use tokio::io::AsyncWrite;

/// A writer whose bytes the target reads back once the transport is done.
#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl AsyncWrite for Sink {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime")
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(line) = std::str::from_utf8(data) {
        let parsed = parse_line(line);
        assert_eq!(
            parsed.fast, parsed.rmcp,
            "the fast parse differs from rmcp's"
        );
        if let Some((id, reason)) = &parsed.invalid_call {
            assert!(id.is_string() || id.is_number(), "{id}");
            assert!(reason.starts_with("tools/call"), "{reason}");
        }
    }

    let sink = Sink::default();
    let mut transport = LineTransport::new(io::Cursor::new(data.to_vec()), sink.clone());
    let failure = transport.failure();
    let messages = runtime().block_on(async {
        let mut messages = 0usize;
        while transport.receive().await.is_some() {
            messages += 1;
        }
        messages
    });
    assert_eq!(failure.take(), None, "the transport failed on content");
    let written = sink.0.lock().unwrap().clone();
    let answers = written
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .count();
    let lines = data.split(|&b| b == b'\n').count();
    assert!(
        messages + answers <= lines,
        "{messages} messages and {answers} answers from {lines} lines"
    );
    for answer in written.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let answer: Value = serde_json::from_slice(answer).expect("every answer is JSON");
        assert_eq!(answer["jsonrpc"], "2.0");
        let code = answer["error"]["code"].as_i64().expect("an error code");
        assert!([-32700, -32600, -32602].contains(&code), "{code}");
        let id = &answer["id"];
        assert!(id.is_null() || id.is_string() || id.is_number(), "{id}");
    }
});

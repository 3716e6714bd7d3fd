//! Newline-delimited JSON-RPC over a byte stream (stdio), answering bad input instead of
//! dropping it.
//!
//! rmcp's own stdio transport ignores a line that is not JSON and drops an oversized one
//! silently, so a client waits forever for an answer. This transport replies as JSON-RPC 2.0
//! asks: `-32700 Parse error` with a null id for a line that is not JSON, `-32600 Invalid
//! Request` (with the request's id when it can be read) for JSON that is not a message or is
//! over [`MAX_MESSAGE_BYTES`]. A line that is not UTF-8 is a parse error too. A notification (no
//! id) is never answered. Either way the connection stays open for the next line.
//!
//! Only the end of input ends the connection cleanly. A failure to read or write is kept, and
//! `Checkpoint::serve_lines` reports it as an error, so the process exits non-zero.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex as StdMutex};

use futures::StreamExt as _;
use rmcp::RoleServer;
use rmcp::model::{CallToolRequest, ClientRequest, JsonRpcMessage, JsonRpcRequest};
use rmcp::service::{RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;
use serde::de::IgnoredAny;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _};
use tokio::sync::Mutex;
use tokio_util::codec::FramedRead;

use super::line_codec::{Line, LineCodec};

/// The largest message accepted, in bytes. A longer line is discarded and answered with an
/// error; it is never buffered whole.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;
const INVALID_PARAMS: i64 = -32602;

/// A server transport reading one JSON-RPC message per line from `R` and writing to `W`.
pub struct LineTransport<R, W> {
    lines: FramedRead<R, LineCodec>,
    writer: Arc<Mutex<W>>,
    failure: TransportFailure,
    /// Who a malformed `tools/call` is audited as: the principal calls run for.
    principal: Arc<str>,
}

/// Why a [`LineTransport`] stopped, when it was not the end of its input: shared with whoever
/// serves it, so that a failed transport is reported as a failure.
#[derive(Debug, Clone, Default)]
pub struct TransportFailure(Arc<FailureRecord>);

#[derive(Debug, Default)]
struct FailureRecord {
    /// Checked before every read, so kept apart from the message.
    failed: AtomicBool,
    message: StdMutex<Option<String>>,
}

impl TransportFailure {
    fn record(&self, what: &str, error: &io::Error) {
        tracing::error!(%error, "{what} failed");
        if let Ok(mut slot) = self.0.message.lock() {
            slot.get_or_insert_with(|| format!("{what} failed: {error}"));
        }
        self.0.failed.store(true, Ordering::Release);
    }

    fn is_set(&self) -> bool {
        self.0.failed.load(Ordering::Acquire)
    }

    /// The first failure, if the transport failed.
    pub fn take(&self) -> Option<String> {
        if !self.is_set() {
            return None;
        }
        match self.0.message.lock() {
            Ok(mut slot) => slot.take(),
            Err(_) => Some("the transport's failure record was poisoned".into()),
        }
    }
}

impl LineTransport<ThreadStdin, tokio::io::Stdout> {
    /// The transport over this process's stdin and stdout.
    pub fn stdio() -> Self {
        Self::new(ThreadStdin::spawn(), tokio::io::stdout())
    }
}

/// This process's stdin, read by a thread of its own.
///
/// A blocking read of stdin cannot be cancelled. `tokio::io::Stdin` reads on the runtime's
/// blocking pool, which the runtime waits for when it shuts down, so a server stopped by SIGTERM
/// would stay up until its client closed stdin. Nothing waits for a plain thread.
pub struct ThreadStdin {
    chunks: tokio::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    chunk: Vec<u8>,
    read: usize,
}

impl ThreadStdin {
    const CHUNK_BYTES: usize = 64 * 1024;

    fn spawn() -> Self {
        let (sender, chunks) = tokio::sync::mpsc::channel(4);
        let reader = sender.clone();
        let spawned = std::thread::Builder::new()
            .name("mcp-lp-stdin".into())
            .spawn(move || {
                use std::io::Read as _;
                let mut stdin = io::stdin().lock();
                loop {
                    let mut chunk = vec![0; Self::CHUNK_BYTES];
                    let read = match stdin.read(&mut chunk) {
                        Ok(0) => return,
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => {
                            let _ = reader.blocking_send(Err(e));
                            return;
                        }
                    };
                    chunk.truncate(read);
                    // The receiver is gone once the transport is: nothing left to read for.
                    if reader.blocking_send(Ok(chunk)).is_err() {
                        return;
                    }
                }
            });
        if let Err(e) = spawned {
            let _ = sender.try_send(Err(e));
        }
        Self {
            chunks,
            chunk: Vec::new(),
            read: 0,
        }
    }
}

impl AsyncRead for ThreadStdin {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        use std::task::Poll;
        let this = &mut *self;
        if this.read == this.chunk.len() {
            match this.chunks.poll_recv(cx) {
                Poll::Pending => return Poll::Pending,
                // The thread ended: end of input.
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e)),
                Poll::Ready(Some(Ok(chunk))) => {
                    this.chunk = chunk;
                    this.read = 0;
                }
            }
        }
        let n = buf.remaining().min(this.chunk.len() - this.read);
        buf.put_slice(&this.chunk[this.read..this.read + n]);
        this.read += n;
        Poll::Ready(Ok(()))
    }
}

impl<R: AsyncRead, W: AsyncWrite> LineTransport<R, W> {
    /// A transport reading from `reader` and writing to `writer`.
    pub fn new(reader: R, writer: W) -> Self {
        Self {
            lines: FramedRead::new(reader, LineCodec::new(MAX_MESSAGE_BYTES)),
            writer: Arc::new(Mutex::new(writer)),
            failure: TransportFailure::default(),
            principal: Arc::from(""),
        }
    }

    /// Audit `tools/call` requests whose parameters cannot be read as calls by `principal`.
    pub(crate) fn auditing_as(mut self, principal: &str) -> Self {
        self.principal = Arc::from(principal);
        self
    }

    /// Where a failure to read or write is recorded.
    pub fn failure(&self) -> TransportFailure {
        self.failure.clone()
    }
}

impl<R, W> LineTransport<R, W>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send + 'static,
{
    async fn write_line(writer: &Mutex<W>, mut bytes: Vec<u8>) -> io::Result<()> {
        bytes.push(b'\n');
        let mut writer = writer.lock().await;
        writer.write_all(&bytes).await?;
        writer.flush().await
    }

    async fn reply_error(
        writer: &Mutex<W>,
        id: Value,
        code: i64,
        message: String,
    ) -> io::Result<()> {
        let reply =
            json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}});
        Self::write_line(writer, reply.to_string().into_bytes()).await
    }

    /// Decide what a line that is not a valid message deserves: an error reply, or silence for a
    /// notification.
    async fn answer_bad_line(
        writer: &Mutex<W>,
        line: &str,
        error: &serde_json::Error,
    ) -> io::Result<()> {
        match serde_json::from_str::<Value>(line) {
            Err(_) => {
                tracing::warn!(error = %error, "received a line that is not JSON");
                Self::reply_error(
                    writer,
                    Value::Null,
                    PARSE_ERROR,
                    format!("Parse error: {error}"),
                )
                .await
            }
            Ok(value) => {
                let id = value.get("id").cloned();
                let Some(id) = id.filter(|id| id.is_string() || id.is_number()) else {
                    if value.get("id").is_none() && value.get("method").is_some() {
                        tracing::debug!(error = %error, "ignoring a notification that is not understood");
                        return Ok(());
                    }
                    return Self::reply_error(
                        writer,
                        Value::Null,
                        INVALID_REQUEST,
                        format!("Invalid Request: {error}"),
                    )
                    .await;
                };
                tracing::warn!(error = %error, "received JSON that is not a valid message");
                Self::reply_error(
                    writer,
                    id,
                    INVALID_REQUEST,
                    format!("Invalid Request: {error}"),
                )
                .await
            }
        }
    }
}

impl<R, W> Transport<RoleServer> for LineTransport<R, W>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send + 'static,
{
    type Error = io::Error;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleServer>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let writer = Arc::clone(&self.writer);
        let failure = self.failure.clone();
        let bytes = serde_json::to_vec(&item).map_err(io::Error::other);
        async move {
            let written = Self::write_line(&writer, bytes?).await;
            if let Err(error) = &written {
                failure.record("stdout", error);
            }
            written
        }
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleServer>> {
        loop {
            // A failed write ends the connection too: no answer could reach the client.
            if self.failure.is_set() {
                return None;
            }
            let bad = match self.lines.next().await? {
                Ok(Line::Text(line)) => Ok(line),
                Ok(Line::TooLong) => {
                    tracing::warn!(limit = MAX_MESSAGE_BYTES, "discarded an oversized message");
                    Err((
                        INVALID_REQUEST,
                        format!("Invalid Request: message exceeds {MAX_MESSAGE_BYTES} bytes"),
                    ))
                }
                Ok(Line::NotUtf8) => {
                    tracing::warn!("received a line that is not UTF-8");
                    Err((
                        PARSE_ERROR,
                        "Parse error: the line is not valid UTF-8".to_owned(),
                    ))
                }
                Err(error) => {
                    self.failure.record("stdin", &error);
                    return None;
                }
            };
            let line = match bad {
                Ok(line) => line,
                Err((code, message)) => {
                    let replied = Self::reply_error(&self.writer, Value::Null, code, message).await;
                    if let Err(error) = replied {
                        self.failure.record("stdout", &error);
                        return None;
                    }
                    continue;
                }
            };
            let line = line.trim_start_matches('\u{feff}').trim_end_matches('\r');
            if line.trim().is_empty() {
                continue;
            }
            let parsed = parse(line);
            if let Some((id, reason)) = malformed_call(line, &parsed) {
                tracing::warn!(%reason, "received a tools/call whose parameters cannot be read");
                let id_text = match &id {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                crate::audit::invalid_call(&id_text, &self.principal, &reason);
                let message = format!("Invalid params: {reason}");
                if let Err(error) =
                    Self::reply_error(&self.writer, id, INVALID_PARAMS, message).await
                {
                    self.failure.record("stdout", &error);
                    return None;
                }
                continue;
            }
            match parsed {
                Ok(message) => return Some(message),
                Err(error) => {
                    if let Err(error) = Self::answer_bad_line(&self.writer, line, &error).await {
                        self.failure.record("stdout", &error);
                        return None;
                    }
                }
            }
        }
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        self.writer.lock().await.flush().await
    }
}

/// A `tools/call` request (with an id) whose parameters cannot be read, and why: rmcp would
/// answer it `-32601 Method not found` (as a request of a method it does not know) or `-32600`,
/// where the fault is the parameters. Only looked at when the fast parse of a call failed.
pub(crate) fn malformed_call(
    line: &str,
    parsed: &serde_json::Result<RxJsonRpcMessage<RoleServer>>,
) -> Option<(Value, String)> {
    if let Ok(JsonRpcMessage::Request(request)) = parsed
        && !matches!(request.request, ClientRequest::CustomRequest(_))
    {
        return None;
    }
    if matches!(parsed, Ok(JsonRpcMessage::Notification(_))) {
        return None;
    }
    #[derive(serde::Deserialize)]
    struct Peek {
        method: Option<String>,
        id: Option<Value>,
    }
    let peek: Peek = serde_json::from_str(line).ok()?;
    let id = peek.id.filter(|id| id.is_string() || id.is_number())?;
    if peek.method.as_deref() != Some("tools/call") {
        return None;
    }
    type CallOnly = JsonRpcMessage<CallToolRequest, IgnoredAny, IgnoredAny>;
    let reason = match serde_json::from_str::<CallOnly>(line) {
        Err(error) => format!("tools/call: {error}"),
        Ok(_) => "tools/call: the parameters cannot be read".to_owned(),
    };
    Some((id, reason))
}

/// Parse one message. A `tools/call`, most of the traffic, is read straight into its type
/// first: rmcp's client request is an untagged enum, whose general parse tries each kind of
/// request in turn and builds an error message for every kind that does not match, which costs
/// more instructions than the checkpoint itself. The first attempt still goes through rmcp's
/// own message parse, with its check that a request carries no `result` or `error`. Anything
/// but a `tools/call` request takes the general parse, so the result and any error are rmcp's.
pub(crate) fn parse(line: &str) -> serde_json::Result<RxJsonRpcMessage<RoleServer>> {
    type CallOnly = JsonRpcMessage<CallToolRequest, IgnoredAny, IgnoredAny>;
    if let Ok(JsonRpcMessage::Request(call)) = serde_json::from_str::<CallOnly>(line) {
        let request = ClientRequest::CallToolRequest(call.request);
        return Ok(JsonRpcMessage::Request(JsonRpcRequest::new(
            call.id, request,
        )));
    }
    serde_json::from_str(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn general(line: &str) -> serde_json::Result<RxJsonRpcMessage<RoleServer>> {
        serde_json::from_str(line)
    }

    #[test]
    fn parses_tools_call_exactly_as_rmcp_does() {
        for line in [
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi","n":[1,{"b":2}]}}}"#,
            r#"{"id":"req-7","method":"tools/call","jsonrpc":"2.0","params":{"name":"echo"}}"#,
            r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":{},"_meta":{"progressToken":"p1","other":true}}}"#,
        ] {
            let fast = parse(line).unwrap();
            let slow = general(line).unwrap();
            assert!(
                matches!(&fast, JsonRpcMessage::Request(r) if matches!(r.request, ClientRequest::CallToolRequest(_))),
                "{line}"
            );
            assert_eq!(
                serde_json::to_value(&fast).unwrap(),
                serde_json::to_value(&slow).unwrap(),
                "{line}"
            );
        }
    }

    #[test]
    fn parses_other_messages_as_rmcp_does() {
        for line in [
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}"#,
            r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}"#,
        ] {
            assert_eq!(
                serde_json::to_value(parse(line).unwrap()).unwrap(),
                serde_json::to_value(general(line).unwrap()).unwrap(),
                "{line}"
            );
        }
    }

    fn outcome(
        parsed: serde_json::Result<RxJsonRpcMessage<RoleServer>>,
    ) -> Result<serde_json::Value, String> {
        parsed
            .map(|message| serde_json::to_value(message).unwrap())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn falls_back_to_rmcp_for_malformed_tools_call() {
        for line in [
            "[]",
            r#"["tools/call", 1]"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"arguments":{}}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":7}}"#,
            r#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"echo"}}"#,
        ] {
            assert_eq!(outcome(parse(line)), outcome(general(line)), "{line}");
        }
    }

    #[test]
    fn rejects_tools_call_that_is_also_a_response() {
        for line in [
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"},"result":{}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"},"error":{"code":1,"message":"m"}}"#,
        ] {
            let fast = outcome(parse(line));
            assert!(fast.is_err(), "{line}");
            assert_eq!(fast, outcome(general(line)), "{line}");
        }
    }
}

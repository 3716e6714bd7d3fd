//! Entry points for the fuzz targets in `fuzz/`, behind the `fuzzing` feature. Each calls the
//! crate's own private parser, never a copy of it, and turns what it returns into plain values
//! a target can assert on.

use serde_json::Value;
use tokio_util::bytes::BytesMut;
use tokio_util::codec::Decoder as _;

use crate::transport::line_codec::{Line, LineCodec};

/// One line the stdio line splitter produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineRead {
    /// A line of text, without its `\n` (or `\r\n`).
    Text(String),
    /// A line that is not valid UTF-8.
    NotUtf8,
    /// A line over the length limit.
    TooLong,
}

/// Split `input` into lines of at most `max_length` bytes as the stdio transport does, handing
/// it to the splitter in pieces of the sizes `pieces` gives in turn (`0` counts as `1`; when
/// `pieces` runs out, the rest arrives at once), then ending the input.
pub fn split_lines(input: &[u8], max_length: usize, pieces: &[usize]) -> Vec<LineRead> {
    let mut codec = LineCodec::new(max_length);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut rest = input;
    let mut sizes = pieces.iter();
    while !rest.is_empty() {
        let size = sizes.next().map_or(rest.len(), |&s| s.clamp(1, rest.len()));
        let (piece, after) = rest.split_at(size);
        rest = after;
        buf.extend_from_slice(piece);
        while let Some(line) = codec.decode(&mut buf).unwrap_or(None) {
            out.push(line.into());
        }
    }
    while let Some(line) = codec.decode_eof(&mut buf).unwrap_or(None) {
        out.push(line.into());
    }
    out
}

impl From<Line> for LineRead {
    fn from(line: Line) -> Self {
        match line {
            Line::Text(text) => Self::Text(text),
            Line::NotUtf8 => Self::NotUtf8,
            Line::TooLong => Self::TooLong,
        }
    }
}

/// What the stdio transport makes of one line: its fast parse, rmcp's own general parse of the
/// same line, and whether it is answered as a `tools/call` with unreadable parameters.
#[derive(Debug)]
pub struct ParsedLine {
    /// The transport's parse, as JSON, or its error message.
    pub fast: Result<Value, String>,
    /// rmcp's parse, as JSON, or its error message.
    pub rmcp: Result<Value, String>,
    /// The id and reason of a `-32602` answer, when the line gets one.
    pub invalid_call: Option<(Value, String)>,
}

/// Parse `line` as the stdio transport does, and as rmcp alone would.
pub fn parse_line(line: &str) -> ParsedLine {
    use crate::transport::stdio::{malformed_call, parse};
    let as_json = |parsed: &serde_json::Result<_>| match parsed {
        Ok(message) => serde_json::to_value(message).map_err(|e| e.to_string()),
        Err(error) => Err(error.to_string()),
    };
    let fast = parse(line);
    let general: serde_json::Result<rmcp::service::RxJsonRpcMessage<rmcp::RoleServer>> =
        serde_json::from_str(line);
    ParsedLine {
        fast: as_json(&fast),
        rmcp: as_json(&general),
        invalid_call: malformed_call(line, &fast),
    }
}

#[cfg(feature = "http")]
pub use self::http::{BearerCheck, GateCheck};

#[cfg(feature = "http")]
mod http {
    use std::sync::Arc;

    use rmcp::transport::streamable_http_server::StreamableHttpService;
    use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;

    use crate::checkpoint::{Checkpoint, Server};
    use crate::config::{AuthSection, Config, ConfigError};
    use crate::policy::ToolSet;
    use crate::principal::Principal;
    use crate::transport::http::JwksError;
    use crate::transport::http::bearer::{BearerValidator, TokenError};
    use crate::transport::http::gate::{Gate, opens_session};
    use crate::transport::http::sessions::SessionOwners;

    /// The HTTP gate's look at a POST body, for a server of tools `S`.
    pub struct GateCheck<S: ToolSet> {
        gate: Gate<S>,
    }

    impl<S: ToolSet> GateCheck<S> {
        /// A gate for `server` as `config` configures it.
        pub fn new(server: impl Into<Server<S>>, config: &Config) -> Result<Self, ConfigError> {
            let checkpoint = Checkpoint::for_bearer(server, config)?;
            let per_session = checkpoint.clone();
            let manager = Arc::new(LocalSessionManager::default());
            let mcp = StreamableHttpService::new(
                move || Ok(per_session.clone()),
                Arc::clone(&manager),
                Default::default(),
            );
            let gate = Gate {
                mcp,
                validator: None,
                checkpoint,
                sessions: SessionOwners::new(manager),
                resource_metadata: "http://127.0.0.1/.well-known/oauth-protected-resource".into(),
                max_request_bytes: usize::MAX,
            };
            Ok(Self { gate })
        }

        /// The gate's answer to a POST of `body` by `principal` before rmcp sees it: `None`
        /// when it passes on to rmcp, else the status, headers and body of the answer.
        pub fn precheck(
            &self,
            principal: &Principal,
            body: &[u8],
        ) -> Option<(u16, http::HeaderMap, Vec<u8>)> {
            let mut extensions = http::Extensions::new();
            let response = self
                .gate
                .refuse_out_of_scope(principal, body, &mut extensions);
            let response = futures::executor::block_on(response)?;
            let (parts, body) = response.into_parts();
            let bytes = futures::executor::block_on(axum::body::to_bytes(body, usize::MAX))
                .map(|b| b.to_vec())
                .unwrap_or_default();
            Some((parts.status.as_u16(), parts.headers, bytes))
        }

        /// Whether the gate takes `body` for an `initialize` request, which may open a session.
        pub fn opens_session(body: &[u8]) -> bool {
            opens_session(body)
        }
    }

    /// The bearer-token validator of the HTTP transport.
    pub struct BearerCheck {
        validator: BearerValidator,
    }

    impl BearerCheck {
        /// A validator for tokens for `audience`, with the issuer's keys loaded.
        pub async fn start(auth: &AuthSection, audience: String) -> Result<Self, JwksError> {
            Ok(Self {
                validator: BearerValidator::start(auth, audience).await?,
            })
        }

        /// Validate `token` as the gate does.
        pub async fn validate(&self, token: &str) -> Result<Arc<Principal>, TokenError> {
            self.validator.validate(token).await
        }
    }
}

/// The lines of a chain sealed with `key`: a `start` event, then one `tools/call` event for each
/// of `principals`, each also naming it as its request id.
pub fn sealed_chain(key: &crate::audit::ChainKey, principals: &[&str]) -> Vec<String> {
    let mut chain = crate::audit::chain::Chain::new("i-fuzz".into(), key.clone());
    let mut lines = vec![chain.seal(&crate::audit::Record::new("start")).line];
    for principal in principals {
        let record = crate::audit::Record::new("tools/call")
            .str("principal", principal)
            .str("request_id", principal)
            .int("args_bytes", principal.len() as u64);
        lines.push(chain.seal(&record).line);
    }
    lines
}

/// The revocation list file's text as [`crate::revocation::FileRevocations`] reads it.
pub fn read_revocation_list(text: &str) -> Result<Vec<crate::revocation::Revocation>, String> {
    crate::revocation::parse_list(text)
}

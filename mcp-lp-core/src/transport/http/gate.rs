//! The gate in front of the MCP endpoint: authenticate the bearer token, keep each session to
//! the principal it was issued to, and answer a call the token's scopes do not cover with
//! `403 insufficient_scope` so the client can step up.

use std::borrow::Cow;
use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::response::{IntoResponse as _, Response};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use rmcp::transport::streamable_http_server::StreamableHttpService;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::bearer::BearerValidator;
use super::sessions::SessionOwners;
use crate::audit::Record;
use crate::checkpoint::{Checkpoint, Refusal};
use crate::config::ANONYMOUS;
use crate::policy::ToolSet;
use crate::principal::Principal;

/// The header rmcp names sessions with.
const SESSION_HEADER: &str = "mcp-session-id";

/// rmcp's streamable HTTP service for the checkpoint, one session manager per server.
pub(crate) type McpService<S> = StreamableHttpService<Checkpoint<S>, LocalSessionManager>;

pub(crate) struct Gate<S: ToolSet> {
    /// What a request that passes the gate goes on to; called in place, not cloned per request.
    pub(crate) mcp: McpService<S>,
    /// `None` only when `[dev] allow_unauthenticated_http` is set.
    pub(crate) validator: Option<Arc<BearerValidator>>,
    pub(crate) checkpoint: Checkpoint<S>,
    pub(crate) sessions: SessionOwners,
    /// The URL of this resource's protected resource metadata (RFC 9728).
    pub(crate) resource_metadata: String,
    pub(crate) max_request_bytes: usize,
}

/// The MCP endpoint: every request passes the gate, then goes to rmcp.
pub(crate) async fn gate<S: ToolSet>(
    State(gate): State<Arc<Gate<S>>>,
    request: Request,
) -> Response {
    let principal = match gate.authenticate(request.headers()).await {
        Ok(principal) => principal,
        Err(response) => return response,
    };
    let session = request
        .headers()
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let Some(session) = &session
        && !gate.sessions.owned_by(session, principal.id())
    {
        tracing::warn!(
            principal = principal.id(),
            "refused a session id not issued to this principal"
        );
        // The id is another principal's: the trail keeps its digest, not the id.
        let digest = crate::audit::ArgumentDigest::of_text(session);
        crate::audit::record(
            &Record::new("session_refused")
                .warn()
                .str("principal", principal.id())
                .int("http_status", 404)
                .str("session_sha256", &digest)
                .str("reason", "session id not issued to this principal"),
        );
        return json_error(
            StatusCode::NOT_FOUND,
            None,
            json!({"error": "session not found"}),
        );
    }

    let (mut parts, body) = request.into_parts();
    super::bearer::strip_credentials(&mut parts.headers);
    let Ok(bytes) = to_bytes(body, gate.max_request_bytes).await else {
        let message = format!(
            "the request body is over the limit of {} bytes",
            gate.max_request_bytes
        );
        return json_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            None,
            json!({"error": message}),
        );
    };
    // Only `initialize` opens a session; a 2026-07-28 request, which carries no session id
    // either, must neither pay for the capacity check nor evict anyone's session.
    if session.is_none()
        && parts.method == Method::POST
        && opens_session(&bytes)
        && let Err(retry_after) = gate.sessions.make_room(principal.id()).await
    {
        return too_many_sessions(retry_after);
    }
    if parts.method == Method::POST
        && let Some(response) = gate
            .refuse_out_of_scope(&principal, &bytes, &mut parts.extensions)
            .await
    {
        return response;
    }
    let deleting = parts.method == Method::DELETE;
    parts.extensions.insert(Arc::clone(&principal));
    let response = gate
        .mcp
        .handle(Request::from_parts(parts, Body::from(bytes)))
        .await
        .map(Body::new);

    match &session {
        None => {
            if let Some(issued) = response
                .headers()
                .get(SESSION_HEADER)
                .and_then(|v| v.to_str().ok())
            {
                gate.sessions.bind(issued, principal.id());
            }
        }
        Some(session) if deleting && response.status().is_success() => {
            gate.sessions.unbind(session)
        }
        Some(_) => {}
    }
    response
}

impl<S: ToolSet> Gate<S> {
    async fn authenticate(&self, headers: &HeaderMap) -> Result<Arc<Principal>, Response> {
        let Some(validator) = &self.validator else {
            return Ok(Arc::new(Principal::new(ANONYMOUS)));
        };
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            });
        let Some(token) = token else {
            // RFC 6750 §3.1: no error code when the request carried no credentials.
            let challenge = format!("Bearer resource_metadata=\"{}\"", self.resource_metadata);
            crate::audit::record(
                &Record::new("auth_refused")
                    .warn()
                    .int("http_status", 401)
                    .str("check", "missing_token")
                    .str("reason", "a bearer token is required"),
            );
            return Err(json_error(
                StatusCode::UNAUTHORIZED,
                Some(challenge),
                json!({"error": "invalid_request", "error_description": "a bearer token is required"}),
            ));
        };
        validator.validate(token).await.map_err(|error| {
            let description = quoted(&error.to_string());
            tracing::warn!(%error, issuer = validator.issuer(), "refused a bearer token");
            let reason = error.to_string();
            crate::audit::record(
                &Record::new("auth_refused")
                    .warn()
                    .int("http_status", 401)
                    .str("check", "invalid_token")
                    .str("issuer", validator.issuer())
                    .str("reason", &reason),
            );
            let challenge = format!(
                "Bearer error=\"invalid_token\", error_description=\"{description}\", resource_metadata=\"{}\"",
                self.resource_metadata
            );
            json_error(
                StatusCode::UNAUTHORIZED,
                Some(challenge),
                json!({"error": "invalid_token", "error_description": description}),
            )
        })
    }

    /// `403` for a `tools/call` the principal's grants do not cover, `429` for one over the tool's
    /// rate limit, decided (and audited) by the checkpoint's own steps, in their order.
    pub(crate) async fn refuse_out_of_scope(
        &self,
        principal: &Principal,
        body: &[u8],
        extensions: &mut http::Extensions,
    ) -> Option<Response> {
        // Every POST passes through here, so only the method and tool name are read; the
        // arguments are parsed only for the audit event of a refusal. Derived deserializers
        // would also read a JSON array positionally, so only objects are read at all: anything
        // else is refused unless rmcp can read it.
        let Some(message) =
            object(body).and_then(|b| serde_json::from_slice::<CallPeek<'_>>(b).ok())
        else {
            return super::malformed::unreadable_body(body);
        };
        if message.method.as_deref() != Some("tools/call") {
            return None;
        }
        let params = message.params.map(RawValue::get);
        let params = match params
            .filter(|p| object(p.as_bytes()).is_some())
            .map(serde_json::from_str::<ParamsPeek<'_>>)
        {
            Some(Ok(params))
                if params
                    .arguments
                    .is_none_or(|a| object(a.get().as_bytes()).is_some()) =>
            {
                params
            }
            Some(Err(error)) => {
                let reason = format!("tools/call: {error}");
                return Some(super::malformed::invalid_call(
                    principal, message.id, &reason,
                ));
            }
            _ => {
                let reason = "tools/call: `params` must be an object with a string `name` and object `arguments`";
                return Some(super::malformed::invalid_call(
                    principal, message.id, reason,
                ));
            }
        };
        let mut id = Value::Null;
        let refusal = self.checkpoint.precheck(principal, &params.name, || {
            id = message
                .id
                .and_then(|raw| serde_json::from_str(raw.get()).ok())
                .unwrap_or(Value::Null);
            let request_id = match &id {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let arguments = params
                .arguments
                .and_then(|raw| serde_json::from_str(raw.get()).ok());
            (request_id, arguments)
        });
        let refusal = match refusal.await {
            Ok(counted) => {
                extensions.insert(counted?);
                return None;
            }
            Err(refusal) => refusal,
        };
        let status = StatusCode::from_u16(refusal.http_status()).unwrap_or(StatusCode::FORBIDDEN);
        let message = refusal.message();
        let (tool, scope, retry_after) = match &refusal {
            Refusal::Denied { tool, denial, .. } => {
                (*tool, denial.lacking().collect::<Vec<_>>().join(" "), None)
            }
            Refusal::RateLimited { tool, limited, .. } => {
                (*tool, String::new(), Some(limited.retry_after_secs()))
            }
            _ => (refusal.tool().unwrap_or_default(), String::new(), None),
        };
        let error = match refusal.into_response() {
            Err(error) => error,
            Ok(_) => return None,
        };
        let body = json!({"jsonrpc": "2.0", "id": id, "error": error});
        if let Some(retry_after) = retry_after {
            return Some(too_many_requests(retry_after, body));
        }
        if status != StatusCode::FORBIDDEN {
            return Some(json_error(status, None, body));
        }
        let request_id = match &id {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        crate::audit::record(
            &Record::new("step_up_required")
                .warn()
                .str("principal", principal.id())
                .str("tool", tool)
                .str("request_id", &request_id)
                .int("http_status", 403)
                .str("scope", &scope),
        );
        let challenge = format!(
            "Bearer error=\"insufficient_scope\", scope=\"{scope}\", resource_metadata=\"{}\", error_description=\"{}\"",
            self.resource_metadata,
            quoted(&message)
        );
        Some(json_error(StatusCode::FORBIDDEN, Some(challenge), body))
    }
}

/// The parts of a JSON-RPC message the scope pre-check reads, borrowed from the body.
#[derive(Deserialize)]
struct CallPeek<'a> {
    #[serde(borrow)]
    method: Option<Cow<'a, str>>,
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    params: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ParamsPeek<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow)]
    arguments: Option<&'a RawValue>,
}

/// Whether `body` is an `initialize` request, the one request that opens a session. A body that
/// cannot be read as one is not: rmcp refuses it without opening a session.
pub(crate) fn opens_session(body: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct MethodPeek<'a> {
        #[serde(borrow)]
        method: Option<Cow<'a, str>>,
    }
    object(body)
        .and_then(|b| serde_json::from_slice::<MethodPeek<'_>>(b).ok())
        .is_some_and(|peek| peek.method.as_deref() == Some("initialize"))
}

/// `json` if it is a JSON object, judged by its first non-blank byte.
fn object(json: &[u8]) -> Option<&[u8]> {
    (json.trim_ascii_start().first() == Some(&b'{')).then_some(json)
}

/// Text safe inside a quoted header parameter: RFC 6750 allows visible ASCII but `"` and `\\`
/// in `error_description`, and a client may drop a header with other bytes. The JSON body
/// carries the exact text.
fn quoted(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '"' | '\\' => '\'',
            ' '..='~' => c,
            _ => '?',
        })
        .collect()
}

/// `503 Service Unavailable` for a new session while the server is full of sessions in use.
fn too_many_sessions(retry_after: std::time::Duration) -> Response {
    let secs = retry_after.as_secs().max(1);
    let mut response = json_error(
        StatusCode::SERVICE_UNAVAILABLE,
        None,
        json!({"error": format!("the server holds as many sessions as it may; retry after {secs} s")}),
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, secs.into());
    response
}

/// `429 Too Many Requests` with `Retry-After` in whole seconds.
fn too_many_requests(retry_after_secs: u64, body: Value) -> Response {
    let mut response = json_error(StatusCode::TOO_MANY_REQUESTS, None, body);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, retry_after_secs.into());
    response
}

fn json_error(status: StatusCode, challenge: Option<String>, body: Value) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    if let Some(value) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

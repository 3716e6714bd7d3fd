//! Answers to request bodies rmcp cannot read: `400 Bad Request` with a JSON-RPC error (rmcp
//! answers them `415 Unsupported Media Type`, or a malformed `tools/call` `-32601 Method not
//! found`), and an audit event for a `tools/call` whose parameters cannot be read.

use axum::response::{IntoResponse as _, Response};
use http::StatusCode;
use rmcp::model::ClientJsonRpcMessage;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::principal::Principal;

const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;
const INVALID_PARAMS: i64 = -32602;

fn bad_request(id: Value, code: i64, message: String) -> Response {
    let body = json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}});
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}

/// `400` with `-32700` for a body that is not JSON, `-32600` for JSON that is not a JSON-RPC
/// message; `None` when rmcp can read it after all. Only asked when the gate's quick look at
/// the body failed, so a well-formed request is never parsed twice.
pub(super) fn unreadable_body(body: &[u8]) -> Option<Response> {
    if serde_json::from_slice::<ClientJsonRpcMessage>(body).is_ok() {
        return None;
    }
    tracing::warn!("refused a request body that is not a JSON-RPC message");
    Some(match serde_json::from_slice::<IgnoredAny>(body) {
        Err(error) => bad_request(Value::Null, PARSE_ERROR, format!("Parse error: {error}")),
        Ok(_) => bad_request(
            Value::Null,
            INVALID_REQUEST,
            "Invalid Request: the body is not a JSON-RPC message".to_owned(),
        ),
    })
}

/// `400` with `-32602` for a `tools/call` whose parameters cannot be read, audited as called by
/// `principal`.
pub(super) fn invalid_call(principal: &Principal, id: Option<&RawValue>, reason: &str) -> Response {
    let id: Value = id
        .and_then(|raw| serde_json::from_str(raw.get()).ok())
        .unwrap_or(Value::Null);
    let request_id = match &id {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    tracing::warn!(%reason, "refused a tools/call whose parameters cannot be read");
    crate::audit::invalid_call(&request_id, principal.id(), reason);
    bad_request(id, INVALID_PARAMS, format!("Invalid params: {reason}"))
}

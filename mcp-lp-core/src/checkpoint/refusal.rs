//! [`Refusal`]: every way the checkpoint refuses a call before its handler runs, each mapped
//! once to its audit outcome, its JSON-RPC answer (with a stable `data.code`) and the HTTP
//! status the gate answers with when it refuses before rmcp.

use rmcp::ErrorData;
use rmcp::model::{
    CallToolResponse, ElicitRequest, ElicitRequestParams, ErrorCode, InputRequest,
    InputRequiredResult,
};
use serde_json::json;

use super::{FORBIDDEN, RATE_LIMITED, URL_ELICITATION_REQUIRED};
use crate::approval::ApprovalError;
use crate::audit::Outcome;
use crate::authorize::Denial;
use crate::rate::RateLimited;
use crate::revocation::Refused;
use crate::sealed_state::StateRejected;

/// Why a call did not run. Every check of the checkpoint refuses with one of these; each knows
/// its audit outcome ([`Refusal::outcome`]), the stable code a client or a test matches
/// ([`Refusal::code`], `data.code` of the JSON-RPC error), and the HTTP status the gate answers
/// with when it refuses before rmcp ([`Refusal::http_status`]).
#[derive(Debug)]
#[non_exhaustive]
pub enum Refusal {
    /// The transport identified no principal.
    NoPrincipal,
    /// The audit trail cannot record calls: nothing runs unrecorded.
    AuditUnavailable {
        /// Why.
        reason: String,
    },
    /// No tool has the name; the name is as sent, cut and escaped.
    UnknownTool {
        /// The name.
        name: String,
    },
    /// A revocation covers the call, or the revocation store has been out of reach too long.
    Revoked {
        /// The tool.
        tool: &'static str,
        /// Who called.
        principal: String,
        /// The revocation, or the unreachable store.
        refused: Refused,
    },
    /// The principal lacks a grant the tool requires.
    Denied {
        /// The tool.
        tool: &'static str,
        /// Who called.
        principal: String,
        /// What is lacking.
        denial: Denial,
    },
    /// Over the tool's rate limit.
    RateLimited {
        /// The tool.
        tool: &'static str,
        /// Who called.
        principal: String,
        /// The limit and when to retry.
        limited: RateLimited,
    },
    /// The arguments (with a retry's answers and state) are over the size limit.
    ArgumentsTooLarge {
        /// The tool.
        tool: &'static str,
        /// Their size.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// The `requestState` brought back was refused.
    StateRejected {
        /// The tool.
        tool: &'static str,
        /// Which check it failed.
        rejected: StateRejected,
        /// Whether the tool needs approval (other arguments then mean "not these").
        approval: bool,
    },
    /// The call waits for a person's approval: the answer says where.
    ApprovalRequired {
        /// The tool.
        tool: &'static str,
        /// The approval's id.
        id: String,
        /// What the caller reads: who must approve, where, until when.
        message: String,
        /// When the approval lapses.
        expires_at: String,
        /// How the answer reaches the caller (boxed: the refusal travels in every step's
        /// `Result`, and this is its largest part).
        answer: Box<ParkedAnswer>,
    },
    /// The approval the call brought did not let it run.
    ApprovalRefused {
        /// The tool.
        tool: &'static str,
        /// The approval, when one was named.
        id: Option<String>,
        /// Why.
        error: ApprovalError,
        /// The approval's page, when the server serves one.
        page: Option<String>,
    },
}

/// How a parked call is answered, by what the caller can do.
#[derive(Debug)]
#[non_exhaustive]
pub enum ParkedAnswer {
    /// A 2026-07-28 client: an `InputRequiredResult` with a URL elicitation to the page and the
    /// sealed `requestState` naming the approval.
    Elicitation {
        /// The approval page.
        url: String,
        /// The sealed state.
        state: String,
    },
    /// A 2025-11-25 client: `-32042` with the elicitation in its data.
    UrlRequired {
        /// The approval page.
        url: String,
    },
    /// No page (stdio): `-32003` with the approval's id; a person approves out of band.
    OutOfBand,
}

impl Refusal {
    /// The audit event's outcome.
    pub fn outcome(&self) -> Outcome {
        match self {
            Self::NoPrincipal | Self::Denied { .. } => Outcome::Denied,
            Self::AuditUnavailable { .. } => Outcome::AuditUnavailable,
            Self::UnknownTool { .. } => Outcome::UnknownTool,
            Self::Revoked { .. } => Outcome::Revoked,
            Self::RateLimited { .. } => Outcome::RateLimited,
            Self::ArgumentsTooLarge { .. } => Outcome::ArgumentsTooLarge,
            Self::StateRejected { .. } => Outcome::StateRejected,
            Self::ApprovalRequired { .. } => Outcome::ApprovalRequired,
            Self::ApprovalRefused {
                error: ApprovalError::TooManyPending { .. },
                ..
            } => Outcome::RateLimited,
            Self::ApprovalRefused { .. } => Outcome::ApprovalRefused,
        }
    }

    /// The stable code of the refusal, `data.code` of its JSON-RPC error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NoPrincipal => "no_principal",
            Self::AuditUnavailable { .. } => "audit_unavailable",
            Self::UnknownTool { .. } => "unknown_tool",
            Self::Revoked { .. } => "revoked",
            Self::Denied { .. } => "missing_grant",
            Self::RateLimited { .. } => "rate_limited",
            Self::ArgumentsTooLarge { .. } => "arguments_too_large",
            Self::StateRejected { .. } => "state_rejected",
            Self::ApprovalRequired { .. } => "approval_required",
            Self::ApprovalRefused {
                error: ApprovalError::TooManyPending { .. },
                ..
            } => "too_many_pending",
            Self::ApprovalRefused {
                error: ApprovalError::Store { .. },
                ..
            } => "approval_store_unavailable",
            Self::ApprovalRefused { .. } => "approval_refused",
        }
    }

    /// The HTTP status of the answer: what the gate answers with when it refuses before rmcp
    /// (`401`, `403` to step up, `429` to wait, `503`), else `200`, the refusal travelling as a
    /// JSON-RPC error in the body.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::NoPrincipal => 401,
            Self::Denied { .. } => 403,
            Self::RateLimited { .. } => 429,
            Self::AuditUnavailable { .. } => 503,
            Self::UnknownTool { .. }
            | Self::Revoked { .. }
            | Self::ArgumentsTooLarge { .. }
            | Self::StateRejected { .. }
            | Self::ApprovalRequired { .. }
            | Self::ApprovalRefused { .. } => 200,
        }
    }

    /// The tool refused, when the call named a known one.
    pub fn tool(&self) -> Option<&'static str> {
        match self {
            Self::NoPrincipal | Self::AuditUnavailable { .. } | Self::UnknownTool { .. } => None,
            Self::Revoked { tool, .. }
            | Self::Denied { tool, .. }
            | Self::RateLimited { tool, .. }
            | Self::ArgumentsTooLarge { tool, .. }
            | Self::StateRejected { tool, .. }
            | Self::ApprovalRequired { tool, .. }
            | Self::ApprovalRefused { tool, .. } => Some(tool),
        }
    }

    /// The approval the refusal names, if any: for the audit event.
    pub fn approval(&self) -> Option<&str> {
        match self {
            Self::ApprovalRequired { id, .. } => Some(id),
            Self::ApprovalRefused { id, .. } => id.as_deref(),
            _ => None,
        }
    }

    /// The explanation, as the caller and the audit event read it.
    pub fn message(&self) -> String {
        match self {
            Self::NoPrincipal => {
                "no authenticated principal: the transport did not identify this request".into()
            }
            Self::AuditUnavailable { reason } => reason.clone(),
            Self::UnknownTool { name } => format!("unknown tool `{name}`"),
            Self::Revoked {
                tool,
                principal,
                refused,
            } => format!("tool `{tool}` is refused for {principal}: {refused}"),
            Self::Denied {
                tool,
                principal,
                denial,
            } => denial.explain(tool, principal),
            Self::RateLimited {
                tool,
                principal,
                limited,
            } => limited.explain(tool, principal),
            Self::ArgumentsTooLarge { tool, bytes, limit } => format!(
                "arguments to tool `{tool}` are {bytes} bytes, over the limit of {limit} bytes"
            ),
            Self::StateRejected {
                tool,
                rejected: StateRejected::OtherArguments,
                approval: true,
            } => format!(
                "tool `{tool}` did not run: arguments differ from those approved; call it again without requestState to ask for approval of these"
            ),
            Self::StateRejected { tool, rejected, .. } => format!(
                "the requestState sent to tool `{tool}` was refused: {rejected}; call the tool again without it"
            ),
            Self::ApprovalRequired { message, .. } => message.clone(),
            Self::ApprovalRefused { tool, error, .. } => {
                format!("tool `{tool}` did not run: {error}")
            }
        }
    }

    /// What the audit event gives as the reason: the message, or for a parked call its id.
    pub(crate) fn reason(&self) -> String {
        match self {
            Self::ApprovalRequired { tool, id, .. } => format!("tool `{tool}` needs approval {id}"),
            other => other.message(),
        }
    }

    /// The answer to the caller: the JSON-RPC error carrying `data.code` and what the refusal
    /// knows, or for a 2026-07-28 client parked for approval, the `InputRequiredResult`.
    pub fn into_response(self) -> Result<CallToolResponse, ErrorData> {
        let message = self.message();
        let code = self.code();
        let (error_code, mut data) = match &self {
            Self::NoPrincipal => (FORBIDDEN, json!({})),
            Self::AuditUnavailable { .. } => (ErrorCode::INTERNAL_ERROR, json!({})),
            Self::UnknownTool { name } => (ErrorCode::INVALID_PARAMS, json!({ "tool": name })),
            Self::Revoked { tool, refused, .. } => {
                let revoked = match refused {
                    Refused::Revoked(r) => json!({
                        "kind": r.target.kind(),
                        "name": r.target.name(),
                        "reason": r.reason,
                        "by": r.by,
                        "at": r.at.to_string(),
                    }),
                    Refused::StoreUnreachable { store, .. } => {
                        json!({ "store_unreachable": store })
                    }
                };
                (FORBIDDEN, json!({ "tool": tool, "revoked": revoked }))
            }
            Self::Denied { tool, denial, .. } => (
                FORBIDDEN,
                json!({ "tool": tool, "missing_grants": denial.lacking().collect::<Vec<_>>() }),
            ),
            Self::RateLimited { tool, limited, .. } => (
                RATE_LIMITED,
                json!({
                    "tool": tool,
                    "rate": limited.rate.to_string(),
                    "retry_after_secs": limited.retry_after_secs(),
                    "retry_after_ms": u64::try_from(limited.retry_after.as_millis()).unwrap_or(u64::MAX),
                }),
            ),
            Self::ArgumentsTooLarge { tool, bytes, limit } => (
                ErrorCode::INVALID_PARAMS,
                json!({ "tool": tool, "bytes": bytes, "limit": limit }),
            ),
            Self::StateRejected { tool, rejected, .. } => (
                ErrorCode::INVALID_PARAMS,
                json!({ "tool": tool, "request_state": rejected.code() }),
            ),
            Self::ApprovalRequired {
                tool,
                id,
                expires_at,
                answer,
                ..
            } => match answer.as_ref() {
                ParkedAnswer::Elicitation { url, state } => {
                    let question = InputRequest::Elicitation(ElicitRequest::new(
                        ElicitRequestParams::UrlElicitationParams {
                            meta: None,
                            message,
                            url: url.clone(),
                            elicitation_id: id.clone(),
                        },
                    ));
                    let requests = [("approval".to_owned(), question)].into_iter().collect();
                    return Ok(
                        InputRequiredResult::new(Some(requests), Some(state.clone())).into(),
                    );
                }
                ParkedAnswer::UrlRequired { url } => (
                    URL_ELICITATION_REQUIRED,
                    json!({
                        "elicitations": [{
                            "mode": "url",
                            "elicitationId": id,
                            "url": url,
                            "message": message,
                        }],
                        "approval": { "id": id, "url": url, "expires_at": expires_at },
                    }),
                ),
                ParkedAnswer::OutOfBand => (
                    FORBIDDEN,
                    json!({ "tool": tool, "approval": { "id": id, "expires_at": expires_at } }),
                ),
            },
            Self::ApprovalRefused {
                tool,
                id,
                error,
                page,
            } => {
                let error_code = match error {
                    ApprovalError::TooManyPending { .. } => RATE_LIMITED,
                    ApprovalError::Store { .. } => ErrorCode::INTERNAL_ERROR,
                    _ => FORBIDDEN,
                };
                (
                    error_code,
                    json!({
                        "tool": tool,
                        "approval": { "id": id, "status": error.code(), "url": page },
                    }),
                )
            }
        };
        if let Some(object) = data.as_object_mut() {
            object.insert("code".into(), code.into());
        }
        Err(ErrorData::new(error_code, message, Some(data)))
    }
}

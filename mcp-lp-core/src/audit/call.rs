//! The audit event of one `tools/call`: what was called, by whom, what the checkpoint decided
//! and how the call ended.

use std::time::Instant;

use super::digest::HexDigest;
use super::{ArgumentDigest, Record, Recorded};

/// What the checkpoint decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The handler ran.
    Allow,
    /// The handler did not run.
    Deny,
}

impl Decision {
    fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
        }
    }
}

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// The handler returned a result.
    Ok,
    /// The handler returned an error result (`isError: true`).
    ToolError,
    /// The handler or the router returned a JSON-RPC error.
    Error,
    /// The caller lacks a required grant.
    Denied,
    /// No tool has that name.
    UnknownTool,
    /// The arguments are over the size limit.
    ArgumentsTooLarge,
    /// The handler did not finish in time and was cancelled.
    Timeout,
    /// The handler's output was over the cap and was withheld.
    OutputTooLarge,
    /// The handler panicked.
    Panicked,
    /// The handler asked the client for input (a multi-round-trip `InputRequiredResult`); the
    /// client retries with its answers.
    InputRequired,
    /// The `requestState` the client brought back failed its seal or its binding to this
    /// principal, tool and arguments.
    StateRejected,
    /// The principal called the tool more often than its rate limit allows.
    RateLimited,
    /// The audit trail could not record calls, so the call did not run.
    AuditUnavailable,
    /// The call needs approval and has none yet: it was parked and the caller told where to
    /// get it approved.
    ApprovalRequired,
    /// The approval the call brought was refused: pending, denied, expired, used, or for other
    /// arguments.
    ApprovalRefused,
    /// A revocation covers the call, or the revocation store has been out of reach too long
    /// for a privileged tool.
    Revoked,
    /// The `tools/call` request's parameters could not be read (a `name` that is not a string,
    /// a repeated key, arguments that are not an object).
    InvalidParams,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::ToolError => "tool_error",
            Self::Error => "error",
            Self::Denied => "denied",
            Self::UnknownTool => "unknown_tool",
            Self::ArgumentsTooLarge => "arguments_too_large",
            Self::Timeout => "timeout",
            Self::OutputTooLarge => "output_too_large",
            Self::Panicked => "panicked",
            Self::InputRequired => "input_required",
            Self::StateRejected => "state_rejected",
            Self::RateLimited => "rate_limited",
            Self::InvalidParams => "invalid_params",
            Self::Revoked => "revoked",
            Self::ApprovalRequired => "approval_required",
            Self::ApprovalRefused => "approval_refused",
            Self::AuditUnavailable => "audit_unavailable",
        }
    }
}

/// Audit a `tools/call` refused because its parameters could not be read: no tool is known,
/// so the event names none, and no arguments could be digested.
pub(crate) fn invalid_call(request_id: &str, principal: &str, reason: &str) -> Recorded {
    let arguments = ArgumentDigest::of(None);
    let mut event = AuditEvent::start(request_id, principal, &arguments, Instant::now());
    event.reason = Some(reason);
    event.finish(Outcome::InvalidParams)
}

/// One audit event, emitted by [`AuditEvent::finish`] with how the call ended: there is no
/// default outcome to forget to set.
#[derive(Debug)]
pub(crate) struct AuditEvent<'a> {
    pub(crate) request_id: &'a str,
    pub(crate) principal: &'a str,
    pub(crate) tool: &'a str,
    /// The capabilities the tool declares, `kind:access:name` each.
    pub(crate) capabilities: &'a [&'a str],
    /// The required grants, joined by spaces.
    pub(crate) requires: &'a str,
    pub(crate) decision: Decision,
    pub(crate) reason: Option<&'a str>,
    pub(crate) arguments: &'a ArgumentDigest,
    /// What a multi-round-trip retry adds: `inputResponses` and `requestState`.
    pub(crate) round: Option<&'a ArgumentDigest>,
    pub(crate) output_bytes: Option<usize>,
    pub(crate) started: Instant,
    /// The approval the call was parked under, or ran on.
    pub(crate) approval: Option<&'a str>,
    /// Who approved the call that ran, in order.
    pub(crate) approvers: Option<&'a [&'a str]>,
}

impl<'a> AuditEvent<'a> {
    /// An event for a call not yet decided: denied until the checkpoint says otherwise.
    pub(crate) fn start(
        request_id: &'a str,
        principal: &'a str,
        arguments: &'a ArgumentDigest,
        started: Instant,
    ) -> Self {
        Self {
            request_id,
            principal,
            tool: "",
            capabilities: &[],
            requires: "",
            decision: Decision::Deny,
            reason: None,
            arguments,
            round: None,
            output_bytes: None,
            started,
            approval: None,
            approvers: None,
        }
    }

    /// Record the event, ended with `outcome`, in the process's trail, timed from its start.
    pub(crate) fn finish(&self, outcome: Outcome) -> Recorded {
        let duration_us = u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let args_sha256 = self.arguments.hex();
        let round_sha256 = self.round.map(ArgumentDigest::hex);
        let mut record = Record::new("tools/call")
            .str("request_id", self.request_id)
            .str("principal", self.principal)
            .str("tool", self.tool)
            .list("capabilities", self.capabilities)
            .str("requires", self.requires)
            .str("decision", self.decision.as_str())
            .opt_str("reason", self.reason)
            .str("args_sha256", args_sha256.as_str())
            .int("args_bytes", self.arguments.bytes() as u64)
            .opt_str("input_sha256", round_sha256.as_ref().map(HexDigest::as_str))
            .opt_int("input_bytes", self.round.map(|r| r.bytes() as u64))
            .opt_int("output_bytes", self.output_bytes.map(|b| b as u64))
            .int("duration_us", duration_us)
            .opt_str("approval", self.approval)
            .str("outcome", outcome.as_str());
        if let Some(approvers) = self.approvers {
            record = record.list("approvers", approvers);
        }
        if self.decision == Decision::Deny {
            record = record.warn();
        }
        super::trail().record(&record)
    }
}

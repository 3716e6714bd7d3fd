//! Why an approval was refused, or could not be reached.

/// Why an approval was refused, or could not be reached. The messages are what a caller or an
/// approver reads; [`ApprovalError::code`] is what programs match.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApprovalError {
    /// No approval has that id.
    #[error("no approval `{0}`")]
    Unknown(String),
    /// Not enough approvals yet.
    #[error("approval pending ({have} of {need} approvals)")]
    Pending {
        /// Approvals so far that still count.
        have: u32,
        /// Needed.
        need: u32,
    },
    /// Someone denied it.
    #[error("denied by {by}")]
    Denied {
        /// Who.
        by: String,
    },
    /// Past its window.
    #[error("expired")]
    Expired,
    /// The retry's arguments are not the approved ones.
    #[error("arguments differ from those approved")]
    ArgumentsDiffer,
    /// The tool's definition changed since the approval was asked for.
    #[error("the tool's definition changed since the approval was asked for")]
    DefinitionChanged,
    /// The approval is another principal's or another tool's.
    #[error("the approval is for another call")]
    OtherCall,
    /// Already run once.
    #[error("already used")]
    AlreadyUsed,
    /// The requester tried to approve their own call.
    #[error("the requester may not approve their own call")]
    Requester,
    /// The approver lacks the approver grant.
    #[error("approving needs grant `{0}`")]
    LacksGrant(String),
    /// The approver, or the approver grant, is revoked.
    #[error("the approver is revoked: {0}")]
    Revoked(String),
    /// The approver's name cannot name a person.
    #[error("approver `{id}` is refused: {problem}")]
    InvalidApprover {
        /// The name as given, with invisible characters escaped.
        id: String,
        /// Why.
        problem: String,
    },
    /// A second verdict from one operating-system account.
    #[error("the account `{0}` already gave a verdict on this call: one account counts once")]
    SameAccount(String),
    /// The command-line verdict's signature does not check out.
    #[error("the verdict's signature is refused: {0}")]
    Signature(String),
    /// The call is no longer open to this verdict.
    #[error("{0}")]
    Decided(String),
    /// The stored record does not carry a seal of this deployment's governance key: it was
    /// written or edited outside mcp-lp.
    #[error(
        "the record of approval `{0}` is not sealed by this deployment's governance key: it was changed in the store; nothing runs on it"
    )]
    Tampered(String),
    /// A round's state of an approved run was brought back a second time.
    #[error("this round's requestState was already used; each round's state runs once")]
    RoundReplayed,
    /// Too many calls of this principal and tool wait for approval already.
    #[error(
        "{open} calls of tool `{tool}` by {principal} already wait for approval, the most allowed ({max}); approve, deny or let them expire first"
    )]
    TooManyPending {
        /// The requester.
        principal: String,
        /// The tool.
        tool: String,
        /// Open calls.
        open: u32,
        /// The cap.
        max: u32,
    },
    /// The audit trail cannot record the verdict: it does not take effect.
    #[error("the audit trail cannot record the verdict, so it does not take effect: {0}")]
    Unrecorded(String),
    /// No randomness for a new id: nothing is parked under a guessable one.
    #[error("the operating system's random source failed ({0}); no approval id is made without it")]
    NoRandomness(String),
    /// The store cannot be reached; nothing runs.
    #[error("the approval store {store} cannot be used: {reason}")]
    Store {
        /// The store.
        store: String,
        /// Why.
        reason: String,
    },
}

impl ApprovalError {
    /// A short stable code for error data and audit events.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unknown(_) => "unknown",
            Self::Pending { .. } => "pending",
            Self::Denied { .. } => "denied",
            Self::Expired => "expired",
            Self::ArgumentsDiffer => "arguments_differ",
            Self::DefinitionChanged => "definition_changed",
            Self::OtherCall => "other_call",
            Self::AlreadyUsed => "already_used",
            Self::Requester => "requester",
            Self::LacksGrant(_) => "lacks_grant",
            Self::Revoked(_) => "revoked",
            Self::InvalidApprover { .. } => "invalid_approver",
            Self::SameAccount(_) => "same_account",
            Self::Signature(_) => "bad_signature",
            Self::Decided(_) => "decided",
            Self::Tampered(_) => "tampered",
            Self::RoundReplayed => "round_replayed",
            Self::TooManyPending { .. } => "too_many_pending",
            Self::Unrecorded(_) => "unrecorded",
            Self::NoRandomness(_) => "no_randomness",
            Self::Store { .. } => "store_unavailable",
        }
    }
}

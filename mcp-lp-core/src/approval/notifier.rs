//! Telling approvers that a call waits for them, and that it was decided: a chat message, a
//! page, a ticket. A new approval channel is a crate that implements [`ApprovalNotifier`] and
//! is given to the server with [`Server::notify_approvals`](crate::Server::notify_approvals);
//! the verdict itself still goes through [`Approvals`](super::Approvals), which alone decides
//! who may give one.

use futures::future::BoxFuture;

use super::PendingCall;

/// What happened to a call waiting for approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Notice {
    /// The call was parked and waits for approvers.
    Waiting,
    /// An approver approved it (it may need more approvals before it runs).
    Approved,
    /// An approver denied it.
    Denied,
}

impl Notice {
    /// The notice's name in the audit trail.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Waiting => "waiting",
            Self::Approved => "approved",
            Self::Denied => "denied",
        }
    }
}

/// Told of each call that waits for approval and of each verdict on it, after the store has
/// recorded it. Notices are sent in the background: a slow or failing notifier never delays
/// or refuses a call; a failure is logged and recorded in the trail
/// (`approval_notice_failed`).
///
/// The call carries its arguments, which the approval page shows only to holders of the
/// approver grant: a notifier that posts to a wider audience should send the call's id, tool
/// and requester, and a link, rather than the arguments.
pub trait ApprovalNotifier: Send + Sync + 'static {
    /// The notifier, for messages and the trail: "slack #approvals".
    fn describe(&self) -> String;

    /// Tell the approvers `notice` about `call`.
    fn notify(&self, notice: Notice, call: PendingCall) -> BoxFuture<'_, Result<(), String>>;
}

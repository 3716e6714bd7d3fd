//! The approval step: a tool that needs approval runs only on an approval of this very call,
//! used once, and each later round of that run only once, on the same approval. What may run
//! is [`Approvals`](crate::approval::Approvals)' to decide; this step parks, finds and
//! consumes, and says how the caller is answered.

use rmcp::RoleServer;
use rmcp::model::{CallToolRequestParams, ProtocolVersion};
use rmcp::service::RequestContext;

use super::refusal::{ParkedAnswer, Refusal};
use super::{Checkpoint, ToolEntry};
use crate::approval::{ApprovalError, ApprovalRule, CallKey, PendingCall, RoundState};
use crate::audit::Record;
use crate::policy::ToolSet;
use crate::sealed_state::Binding;

impl<S: ToolSet> Checkpoint<S> {
    /// Park a call that needs approval, or let it through on an approval of this very call.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn approval_gate(
        &self,
        entry: &ToolEntry,
        rule: &ApprovalRule,
        key: CallKey<'_>,
        binding: &Binding<'_>,
        request: &CallToolRequestParams,
        context: &RequestContext<RoleServer>,
        mut approval_id: Option<String>,
    ) -> Result<PendingCall, Refusal> {
        let tool = entry.policy.name;
        let Some(approvals) = &self.shared.approvals else {
            return Err(self.refused_approval(
                tool,
                key.principal,
                None,
                ApprovalError::Store {
                    store: "none".into(),
                    reason: "the server keeps no approvals".into(),
                },
            ));
        };
        let modern = context
            .protocol_version()
            .is_some_and(|v| v.as_str() >= ProtocolVersion::V_2026_07_28.as_str());
        // Without a page to send a 2026-07-28 client to, or for a 2025-11-25 client, the retry
        // is the same call without state: it is found by what it is.
        let by_state = modern && self.shared.approval_page.is_some();
        if approval_id.is_none() && !by_state {
            approval_id = approvals.find(key).await.map_err(|refused| {
                // A record the index names that is not this deployment's is refused as a
                // retry naming it would be.
                let id = match &refused {
                    ApprovalError::Tampered(id) => Some(id.clone()),
                    _ => None,
                };
                self.refused_approval(tool, key.principal, id, refused)
            })?;
        }
        if let Some(id) = approval_id {
            return approvals
                .consume(&id, key)
                .await
                .map_err(|refused| self.refused_approval(tool, key.principal, Some(id), refused));
        }

        let arguments = serde_json::Value::Object(request.arguments.clone().unwrap_or_default());
        let mut why = entry.description.clone();
        if why.is_empty() {
            why = format!("tool `{tool}` changes what it is given");
        }
        let call = approvals
            .park(key, rule, &arguments, &why)
            .await
            .map_err(|refused| self.refused_approval(tool, key.principal, None, refused))?;
        let (id, expires_at) = (call.id, call.expires_at);
        crate::audit::record(
            &Record::new("approval_requested")
                .str("approval", &id)
                .str("tool", tool)
                .str("principal", key.principal)
                .str("args_sha256", key.arguments_sha256)
                .str("definition_sha256", key.definition_sha256)
                .str("grant", &rule.grant)
                .int("min", u64::from(rule.min))
                .str("expires_at", &expires_at),
        );
        let page = self.page_of(&id);
        // The model reads this message: it says that a person must approve, not how to.
        let message = match &page {
            Some(url) => format!(
                "Tool `{tool}` needs approval of this call by a person holding `{}`: open {url} to review it. It expires at {expires_at}.",
                rule.grant
            ),
            None => format!(
                "Tool `{tool}` needs approval of this call by a person holding `{}`, given outside this conversation; then call the tool again with the same arguments. It expires at {expires_at}.",
                rule.grant
            ),
        };
        let answer = match page {
            Some(url) if by_state => ParkedAnswer::Elicitation {
                url,
                state: self.shared.sealer.seal(binding, &RoundState::parked(&id)),
            },
            Some(url) => ParkedAnswer::UrlRequired { url },
            None => ParkedAnswer::OutOfBand,
        };
        Err(Refusal::ApprovalRequired {
            tool,
            id,
            message,
            expires_at,
            answer: Box::new(answer),
        })
    }

    /// Let a later round of the approved run `id` continue, once per `nonce`.
    pub(super) async fn continue_round(
        &self,
        entry: &ToolEntry,
        key: CallKey<'_>,
        id: String,
        nonce: &str,
    ) -> Result<PendingCall, Refusal> {
        let tool = entry.policy.name;
        let expires = jiff::Timestamp::now()
            .checked_add(
                jiff::SignedDuration::try_from(self.shared.sealer.ttl()).unwrap_or_default(),
            )
            .unwrap_or_else(|_| jiff::Timestamp::now());
        let continued = match &self.shared.approvals {
            Some(approvals) => approvals.continue_round(&id, nonce, key, expires).await,
            None => Err(ApprovalError::Unknown(id.clone())),
        };
        continued.map_err(|refused| self.refused_approval(tool, key.principal, Some(id), refused))
    }

    /// The refusal of a call whose approval did not let it run; an expired one is recorded.
    fn refused_approval(
        &self,
        tool: &'static str,
        principal: &str,
        id: Option<String>,
        error: ApprovalError,
    ) -> Refusal {
        if let (ApprovalError::Expired, Some(id)) = (&error, &id) {
            crate::audit::record(
                &Record::new("approval_expired")
                    .str("approval", id)
                    .str("tool", tool)
                    .str("principal", principal),
            );
        }
        let page = id.as_deref().and_then(|id| self.page_of(id));
        Refusal::ApprovalRefused {
            tool,
            id,
            error,
            page,
        }
    }

    /// The approval page of `id`, when the server serves one.
    fn page_of(&self, id: &str) -> Option<String> {
        self.shared
            .approval_page
            .as_ref()
            .map(|page| format!("{page}{id}"))
    }
}

//! The steps every `tools/call` passes, in order, each refusing with a [`Refusal`]:
//!
//! 1. who calls (the transport's principal);
//! 2. the audit trail can record the call;
//! 3. the tool exists;
//! 4. no revocation covers it;
//! 5. the principal holds its grants;
//! 6. its rate limit;
//! 7. the size of the arguments;
//! 8. the `requestState` brought back, if any;
//! 9. approval, when the tool needs it.
//!
//! Then the handler runs, and one audit event records the call, refused or run. The HTTP gate
//! runs steps 3 to 6 itself, through [`Checkpoint::precheck`], to answer `403` and `429`
//! before rmcp parses the request.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

#[cfg(feature = "http")]
use rmcp::model::JsonObject;
use rmcp::model::{CallToolRequestParams, CallToolResponse};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer};

use super::refusal::Refusal;
use super::{Checkpoint, Identity, ToolEntry, echo};
use crate::approval::{CallKey, PendingCall, RoundState};
use crate::audit::{ArgumentDigest, AuditEvent, Decision, Recorded};
use crate::authorize::authorize;
use crate::policy::ToolSet;
use crate::principal::Principal;
#[cfg(feature = "http")]
use crate::rate::Counted;
use crate::sealed_state::Binding;

/// A call that passed every step: what running it needs. Only [`Checkpoint::admit`] makes
/// one, so holding one is the proof that the call may run.
pub(super) struct Admitted<'a> {
    principal: Arc<Principal>,
    entry: &'a ToolEntry,
    request: CallToolRequestParams,
    context: RequestContext<RoleServer>,
    /// The approval the call runs on, when the tool needs one.
    approved: Option<PendingCall>,
}

/// What the steps learned, for the audit event of a refused call too.
#[derive(Default)]
struct Seen<'a> {
    principal: Option<Arc<Principal>>,
    entry: Option<&'a ToolEntry>,
    /// The tool name as sent, escaped, when no tool has it.
    unknown: Option<String>,
}

impl<S: ToolSet> Checkpoint<S> {
    /// Decide, run and audit one `tools/call`: its response and its audit event.
    pub(super) async fn decide(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> (Result<CallToolResponse, ErrorData>, Recorded) {
        let started = Instant::now();
        let request_id = context.id.to_string();
        let arguments = ArgumentDigest::of(request.arguments.as_ref());
        // A multi-round-trip retry also carries the client's answers and the state it echoes.
        let round = ArgumentDigest::of_round(
            request.input_responses.as_ref(),
            request.request_state.as_deref(),
        );
        let mut seen = Seen::default();
        let admitted = self
            .admit(&mut seen, &arguments, round.as_ref(), request, context)
            .await;
        let principal_id = seen.principal.as_deref().map_or("", Principal::id);
        let mut event = AuditEvent::start(&request_id, principal_id, &arguments, started);
        event.round = round.as_ref();
        if let Some(entry) = seen.entry {
            event.tool = entry.policy.name;
            event.capabilities = entry.capabilities;
            event.requires = &entry.requires;
        } else if let Some(name) = &seen.unknown {
            event.tool = name;
        }
        let admitted = match admitted {
            Ok(admitted) => admitted,
            Err(refusal) => {
                let reason = refusal.reason();
                event.reason = Some(&reason);
                event.approval = refusal.approval();
                let recorded = event.finish(refusal.outcome());
                return (refusal.into_response(), recorded);
            }
        };

        let Admitted {
            principal,
            entry,
            request,
            context,
            approved,
        } = admitted;
        let approvers: Option<Vec<&str>> = approved.as_ref().map(|call| {
            self.shared
                .approvals
                .as_ref()
                .map(|a| a.approvers(call))
                .unwrap_or_default()
        });
        event.approval = approved.as_ref().map(|call| call.id.as_str());
        event.approvers = approvers.as_deref();

        let (outcome, output_bytes, mut response) = self
            .run(
                entry.policy,
                Arc::clone(&principal),
                entry.limits,
                request,
                context,
            )
            .await;
        if let Ok(CallToolResponse::InputRequired(result)) = &mut response
            && let Some(state) = result.request_state.take()
        {
            // A round of an approved run carries the approval and a nonce of its own.
            let state = match &approved {
                Some(call) => RoundState::round(&call.id, &state),
                None => Ok(state),
            };
            let binding = Binding::request_state(
                &self.shared.resource,
                principal.id(),
                entry.policy.name,
                &arguments,
            );
            match state {
                Ok(state) => result.request_state = Some(self.shared.sealer.seal(&binding, &state)),
                Err(e) => {
                    response = Err(ErrorData::internal_error(
                        format!(
                            "tool `{}` asked for input, and its state cannot be sealed: {e}",
                            entry.policy.name
                        ),
                        None,
                    ));
                }
            }
        }
        self.shared
            .last_used
            .note(entry.policy.name, principal.id());
        event.decision = Decision::Allow;
        event.output_bytes = output_bytes;
        let recorded = event.finish(outcome);
        (response, recorded)
    }

    /// Steps 1 to 9, in order: the call as admitted, or the first refusal.
    async fn admit<'a>(
        &'a self,
        seen: &mut Seen<'a>,
        arguments: &ArgumentDigest,
        round: Option<&ArgumentDigest>,
        mut request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<Admitted<'a>, Refusal> {
        let principal = self.principal_of(&context).ok_or(Refusal::NoPrincipal)?;
        seen.principal = Some(Arc::clone(&principal));
        crate::audit::trail()
            .admits_calls()
            .map_err(|unavailable| Refusal::AuditUnavailable {
                reason: unavailable.to_string(),
            })?;
        let entry = self.entry(&request.name).inspect_err(|_| {
            seen.unknown = Some(echo(&request.name));
        })?;
        seen.entry = Some(entry);
        self.grants_and_rate(&principal, entry, |tool| {
            self.counted_upstream(&context, tool)
        })?;

        let bytes = arguments.bytes() + round.map_or(0, ArgumentDigest::bytes);
        if bytes > entry.limits.max_argument_bytes {
            return Err(Refusal::ArgumentsTooLarge {
                tool: entry.policy.name,
                bytes,
                limit: entry.limits.max_argument_bytes,
            });
        }

        // The state a client brings back is attacker-controlled: the tool sees it only once the
        // seal shows it was issued by this server for this principal, this tool and these
        // arguments.
        let binding = Binding::request_state(
            &self.shared.resource,
            principal.id(),
            entry.policy.name,
            arguments,
        );
        let mut approval_id: Option<String> = None;
        let mut round_of: Option<(String, String)> = None;
        if let Some(sealed) = request.request_state.take() {
            let state = self
                .shared
                .sealer
                .open(&binding, &sealed)
                .map_err(|rejected| Refusal::StateRejected {
                    tool: entry.policy.name,
                    rejected,
                    approval: entry.approval.is_some(),
                })?;
            match (RoundState::of(&state), &entry.approval) {
                // The state this checkpoint handed out when it parked the call: the client's
                // answer to the approval page is no input for the tool.
                (RoundState::Parked(id), Some(_)) => {
                    approval_id = Some(id.to_owned());
                    request.input_responses = None;
                }
                // A later round of an approved run: it continues on that approval, once.
                (RoundState::Round { id, nonce, state }, Some(_)) => {
                    round_of = Some((id.to_owned(), nonce.to_owned()));
                    request.request_state = Some(state.to_owned());
                }
                // State that names no approval (sealed before the tool needed one) never lets
                // a call past the gate: the call is asked for again.
                (RoundState::Unbound, Some(_)) => request.input_responses = None,
                (RoundState::Round { state, .. }, None) => {
                    request.request_state = Some(state.to_owned());
                }
                (_, None) => request.request_state = Some(state),
            }
        }

        let arguments_sha256 = arguments.hex();
        let key = CallKey {
            principal: principal.id(),
            tool: entry.policy.name,
            arguments_sha256: arguments_sha256.as_str(),
            definition_sha256: &entry.definition_sha256,
        };
        let approved = match (&entry.approval, round_of) {
            (None, _) => None,
            (Some(_), Some((id, nonce))) => {
                Some(self.continue_round(entry, key, id, &nonce).await?)
            }
            (Some(rule), None) => Some(
                self.approval_gate(entry, rule, key, &binding, &request, &context, approval_id)
                    .await?,
            ),
        };
        Ok(Admitted {
            principal,
            entry,
            request,
            context,
            approved,
        })
    }

    /// Step 3: the tool.
    fn entry(&self, name: &str) -> Result<&ToolEntry, Refusal> {
        self.shared
            .tools
            .get(name)
            .ok_or_else(|| Refusal::UnknownTool { name: echo(name) })
    }

    /// Steps 4 to 6 for `principal` calling `entry`: revocation, grants, rate. `counted`
    /// says whether the HTTP gate already counted this request against the rate limit.
    fn grants_and_rate(
        &self,
        principal: &Principal,
        entry: &ToolEntry,
        counted: impl FnOnce(&str) -> bool,
    ) -> Result<(), Refusal> {
        let tool = entry.policy.name;
        self.shared
            .revocations
            .check(principal.id(), entry.policy)
            .map_err(|refused| Refusal::Revoked {
                tool,
                principal: principal.id().to_owned(),
                refused,
            })?;
        authorize(entry.policy, principal, SystemTime::now()).map_err(|denial| {
            Refusal::Denied {
                tool,
                principal: principal.id().to_owned(),
                denial,
            }
        })?;
        if let Some(limiter) = &entry.rate
            && !counted(tool)
        {
            limiter
                .check(principal.id())
                .map_err(|limited| Refusal::RateLimited {
                    tool,
                    principal: principal.id().to_owned(),
                    limited,
                })?;
        }
        Ok(())
    }

    /// Whether the HTTP layer already counted this request's call of `tool` against its rate
    /// limit (see [`Checkpoint::precheck`]).
    fn counted_upstream(&self, context: &RequestContext<RoleServer>, tool: &str) -> bool {
        match &self.identity {
            Identity::Operator(_) => {
                let _ = (context, tool);
                false
            }
            #[cfg(feature = "http")]
            Identity::Bearer => context
                .extensions
                .get::<http::request::Parts>()
                .and_then(|parts| parts.extensions.get::<Counted>())
                .is_some_and(|counted| counted.tool == tool),
        }
    }

    /// Steps 3 to 6 for the HTTP gate, before rmcp parses the request, so that it can answer a
    /// missing scope with `403` and a rate limit with `429`: the same checks in the same order
    /// as [`Checkpoint::decide`]. A refusal is recorded, and answered only once its event is
    /// as durable as the trail's policy asks. `Ok(Some(_))` when the call was counted against
    /// the rate limit, which the checkpoint then does not count again; `Ok(None)` when the gate
    /// passes the request on without counting it: the tool is unknown, has no rate limit, or
    /// the call is refused by a step the checkpoint answers itself (revocation, with the
    /// JSON-RPC error in the body).
    ///
    /// `call` gives the request id and arguments for the audit event; it runs only on refusal.
    #[cfg(feature = "http")]
    pub(crate) async fn precheck(
        &self,
        principal: &Principal,
        tool: &str,
        call: impl FnOnce() -> (String, Option<JsonObject>),
    ) -> Result<Option<Counted>, Refusal> {
        let started = Instant::now();
        let Ok(entry) = self.entry(tool) else {
            return Ok(None);
        };
        if self
            .shared
            .revocations
            .check(principal.id(), entry.policy)
            .is_err()
        {
            return Ok(None);
        }
        let refusal = match self.grants_and_rate(principal, entry, |_| false) {
            Ok(_) => {
                return Ok(entry.rate.as_ref().map(|_| Counted {
                    tool: entry.policy.name,
                }));
            }
            Err(refusal) => refusal,
        };
        let (request_id, arguments) = call();
        let arguments = ArgumentDigest::of(arguments.as_ref());
        let mut event = AuditEvent::start(&request_id, principal.id(), &arguments, started);
        event.tool = entry.policy.name;
        event.capabilities = entry.capabilities;
        event.requires = &entry.requires;
        let reason = refusal.reason();
        event.reason = Some(&reason);
        let recorded = event.finish(refusal.outcome());
        if let Err(unavailable) = recorded.durable().await {
            tracing::error!(error = %unavailable, seq = recorded.seq(), "audit event of a refusal not recorded");
            return Err(Refusal::AuditUnavailable {
                reason: unavailable.to_string(),
            });
        }
        Err(refusal)
    }
}

/// Answer a call once its audit event is recorded as the trail's failure policy asks, with a
/// receipt in the result's `_meta` when the trail gives them. A result whose event could not be
/// recorded is withheld: the caller learns that the call's outcome is not on record.
pub(crate) async fn acknowledge(
    response: Result<CallToolResponse, ErrorData>,
    recorded: Recorded,
) -> Result<CallToolResponse, ErrorData> {
    if let Err(unavailable) = recorded.durable().await {
        tracing::error!(error = %unavailable, seq = recorded.seq(), "audit event not recorded");
        return Err(ErrorData::internal_error(
            format!("{unavailable}; the call's result is withheld"),
            None,
        ));
    }
    let mut response = response;
    if crate::audit::trail().receipts()
        && let Ok(CallToolResponse::Complete(result)) = &mut response
    {
        let receipt = serde_json::json!({
            "instance": recorded.instance(),
            "seq": recorded.seq(),
            "hash": recorded.hash(),
        });
        result
            .meta
            .get_or_insert_with(Default::default)
            .insert(crate::audit::RECEIPT_META_KEY.to_owned(), receipt);
    }
    response
}

//! The one place that decides about approvals: parking a call, who may give a verdict, whether
//! a call may run on its approval, and whether a later round of an approved run may continue.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::signers::CliApprovers;
use super::{
    ApprovalError, ApprovalNotifier, ApprovalRule, ApprovalStore, CallKey, DEFAULT_APPROVAL_WINDOW,
    DEFAULT_MAX_PENDING, Door, Notice, PendingCall, Standing, Verdict, random_hex,
};
use crate::audit::{AuditTrail, Record};
use crate::config::{Config, ConfigError};
use crate::governance_key::GovernanceKeys;
use crate::principal::Principal;
use crate::revocation::{Revocations, Target};
use crate::visible::{escape_invisible, id_problem, os_user_is, same_person};

/// How often at most a park also forgets the calls whose window closed long ago.
const FORGET_EVERY: Duration = Duration::from_secs(60);

/// The prefix of the `requestState` that names a parked call.
const PARKED_PREFIX: &str = "mcp-lp-approval:";

/// The prefix of the `requestState` of a later round of an approved run: the approval's id, a
/// nonce spent when the round runs, then the tool's own state.
const ROUND_PREFIX: &str = "mcp-lp-round:";

/// Someone giving a verdict, as the door they came through established them, and the
/// verdict they give.
#[derive(Debug, Clone)]
pub struct Approver {
    /// Who, with the grants the door found: a token's scopes, a signed-in session's, or the
    /// command line's configured approver grants.
    pub principal: Principal,
    /// The verdict, by `principal`: through which door, when, why; on the command line also
    /// the account and the signature.
    pub verdict: Verdict,
}

impl Approver {
    /// `principal` deciding now through `door` (the JSON API or the page), for `reason`.
    pub fn new(principal: Principal, door: Door, reason: String) -> Self {
        let verdict = Verdict {
            by: principal.id().to_owned(),
            at: super::now_string(),
            reason,
            door,
            os_user: None,
            signature: None,
        };
        Self { principal, verdict }
    }
}

/// What the checkpoint finds inside a `requestState` it sealed for a tool that needs approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoundState<'a> {
    /// The state handed out when the call was parked: retry it on approval `id`.
    Parked(&'a str),
    /// A later round of the approved run `id`, single-use by `nonce`, with the tool's state.
    Round {
        /// The approval the run was made on.
        id: &'a str,
        /// Spent when the round runs.
        nonce: &'a str,
        /// The tool's own state.
        state: &'a str,
    },
    /// State that names no approval: it never lets a call past the approval gate.
    Unbound,
}

impl<'a> RoundState<'a> {
    /// What `state` names.
    pub fn of(state: &'a str) -> Self {
        if let Some(id) = state.strip_prefix(PARKED_PREFIX) {
            return Self::Parked(id);
        }
        if let Some(rest) = state.strip_prefix(ROUND_PREFIX)
            && let Some((id, rest)) = rest.split_once(':')
            && let Some((nonce, state)) = rest.split_once(':')
        {
            return Self::Round { id, nonce, state };
        }
        Self::Unbound
    }

    /// The state to seal for a parked call.
    pub fn parked(id: &str) -> String {
        format!("{PARKED_PREFIX}{id}")
    }

    /// The state to seal for a round of the approved run `id` that the tool asked for with
    /// `state`, with a fresh nonce.
    pub fn round(id: &str, state: &str) -> Result<String, ApprovalError> {
        let nonce = random_hex(getrandom::fill)?;
        Ok(format!("{ROUND_PREFIX}{id}:{nonce}:{state}"))
    }
}

/// Approvals over a store: the policy, the seal, and the memory of what this process used.
pub struct Approvals {
    store: Arc<dyn ApprovalStore>,
    keys: GovernanceKeys,
    revocations: Option<Revocations>,
    signers: Option<Arc<CliApprovers>>,
    max_pending: u32,
    keep_expired: Duration,
    /// Approvals this process used, until their window closes: a record rolled back in the
    /// store to before its use still runs nothing here.
    consumed: Mutex<HashMap<String, jiff::Timestamp>>,
    last_forget: Mutex<Option<Instant>>,
    /// Where verdicts are recorded; the process's trail unless given.
    trail: Option<AuditTrail>,
    /// Told of each parked call and each verdict.
    notifiers: Vec<Arc<dyn ApprovalNotifier>>,
}

impl std::fmt::Debug for Approvals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Approvals")
            .field("store", &self.store.describe())
            .field("sealing_key", &self.keys.sealing_key())
            .finish_non_exhaustive()
    }
}

impl Approvals {
    /// Approvals kept in `store`, sealed with `keys`.
    pub fn new(store: Arc<dyn ApprovalStore>, keys: GovernanceKeys) -> Self {
        Self {
            store,
            keys,
            revocations: None,
            signers: None,
            max_pending: DEFAULT_MAX_PENDING,
            keep_expired: DEFAULT_APPROVAL_WINDOW,
            consumed: Mutex::new(HashMap::new()),
            last_forget: Mutex::new(None),
            trail: None,
            notifiers: Vec::new(),
        }
    }

    /// Tell `notifier` of each call parked here and of each verdict on one.
    #[must_use]
    pub fn with_notifier(mut self, notifier: Arc<dyn ApprovalNotifier>) -> Self {
        self.notifiers.push(notifier);
        self
    }

    /// Send `notice` about `call` to every notifier, in the background.
    fn tell(&self, notice: Notice, call: &PendingCall) {
        if self.notifiers.is_empty() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(approval = %call.id, "no runtime to send approval notices on");
            return;
        };
        for notifier in &self.notifiers {
            let notifier = Arc::clone(notifier);
            let call = call.clone();
            let trail = self.trail().clone();
            runtime.spawn(async move {
                let id = call.id.clone();
                if let Err(reason) = notifier.notify(notice, call).await {
                    let name = notifier.describe();
                    tracing::warn!(approval = %id, notifier = %name, %reason, "approval notice failed");
                    trail.record(
                        &Record::new("approval_notice_failed")
                            .warn()
                            .str("approval", &id)
                            .str("notice", notice.as_str())
                            .str("notifier", &name)
                            .str("reason", &reason),
                    );
                }
            });
        }
    }

    /// Record verdicts in `trail` rather than the process's.
    #[must_use]
    pub fn with_trail(mut self, trail: AuditTrail) -> Self {
        self.trail = Some(trail);
        self
    }

    fn trail(&self) -> &AuditTrail {
        self.trail.as_ref().unwrap_or_else(|| crate::audit::trail())
    }

    /// Approvals kept in `store` as `config` says: sealed with its governance keys, at most
    /// `[governance] max_pending_per_caller` open per principal and tool, command-line verdicts
    /// from its `[approvers]`, and approvers checked against `revocations`.
    pub fn from_config(
        store: Arc<dyn ApprovalStore>,
        config: &Config,
        revocations: Option<Revocations>,
    ) -> Result<Self, ConfigError> {
        let mut approvals =
            Self::new(store, config.governance_keys()?).max_pending(config.max_pending());
        approvals.revocations = revocations;
        approvals.signers = config.cli_approvers().cloned();
        Ok(approvals)
    }

    /// Refuse verdicts, and stop counting approvals, of approvers `revocations` revokes (the
    /// principal, the approver grant, or everything).
    #[must_use]
    pub fn with_revocations(mut self, revocations: Revocations) -> Self {
        self.revocations = Some(revocations);
        self
    }

    /// Accept command-line verdicts signed by the approvers `signers` allows.
    #[must_use]
    pub fn with_signers(mut self, signers: Arc<CliApprovers>) -> Self {
        self.signers = Some(signers);
        self
    }

    /// How many calls of one principal and tool may wait at once.
    #[must_use]
    pub fn max_pending(mut self, max: u32) -> Self {
        self.max_pending = max;
        self
    }

    /// How long after its window closes a call is still kept (to answer `expired` rather than
    /// `unknown`) before it is forgotten.
    #[must_use]
    pub fn keep_expired_for(mut self, keep: Duration) -> Self {
        self.keep_expired = keep;
        self
    }

    /// The store, for messages.
    pub fn describe(&self) -> String {
        self.store.describe()
    }

    /// The command-line approvers, when configured.
    pub fn signers(&self) -> Option<&Arc<CliApprovers>> {
        self.signers.as_ref()
    }

    /// Park the call `key` for approval under `rule`, with a fresh id: `arguments` are what
    /// approvers read, `why` why the tool needs approval. Refused when the principal has
    /// [`Approvals::max_pending`] calls of the tool open already.
    pub async fn park(
        &self,
        key: CallKey<'_>,
        rule: &ApprovalRule,
        arguments: &serde_json::Value,
        why: &str,
    ) -> Result<PendingCall, ApprovalError> {
        self.park_with(key, rule, arguments, why, getrandom::fill)
            .await
    }

    async fn park_with(
        &self,
        key: CallKey<'_>,
        rule: &ApprovalRule,
        arguments: &serde_json::Value,
        why: &str,
        fill: impl FnOnce(&mut [u8]) -> Result<(), getrandom::Error>,
    ) -> Result<PendingCall, ApprovalError> {
        let now = jiff::Timestamp::now();
        self.forget_now_and_then(now).await;
        let open = self.store.open_count(key.principal, key.tool, now).await?;
        if open >= self.max_pending {
            return Err(ApprovalError::TooManyPending {
                principal: key.principal.to_owned(),
                tool: key.tool.to_owned(),
                open,
                max: self.max_pending,
            });
        }
        let window = jiff::SignedDuration::try_from(rule.window)
            .unwrap_or(jiff::SignedDuration::from_secs(600));
        let mut pending = PendingCall {
            id: random_hex(fill)?,
            principal: key.principal.to_owned(),
            tool: key.tool.to_owned(),
            arguments_sha256: key.arguments_sha256.to_owned(),
            definition_sha256: key.definition_sha256.to_owned(),
            arguments: arguments.clone(),
            why: why.to_owned(),
            grant: rule.grant.clone(),
            min: rule.min,
            self_approve: rule.self_approve,
            requested_at: now.to_string(),
            expires_at: now.checked_add(window).unwrap_or(now).to_string(),
            approvals: Vec::new(),
            denial: None,
            used_at: None,
            revision: 0,
            key_id: String::new(),
            mac: String::new(),
        };
        pending.seal(&self.keys);
        self.store.insert(pending.clone()).await?;
        self.tell(Notice::Waiting, &pending);
        Ok(pending)
    }

    /// Forget calls whose window closed longer than `keep_expired` ago, at most once a minute.
    async fn forget_now_and_then(&self, now: jiff::Timestamp) {
        {
            let Ok(mut last) = self.last_forget.lock() else {
                return;
            };
            if last.is_some_and(|at| at.elapsed() < FORGET_EVERY) {
                return;
            }
            *last = Some(Instant::now());
        }
        if let Err(e) = self.forget_expired(now).await {
            tracing::warn!(error = %e, "could not forget expired approvals");
        }
    }

    /// Forget the calls (and spent nonces) whose window closed longer than `keep_expired`
    /// before `now`; how many calls went.
    pub async fn forget_expired(&self, now: jiff::Timestamp) -> Result<u64, ApprovalError> {
        let keep = jiff::SignedDuration::try_from(self.keep_expired).unwrap_or_default();
        let before = now.checked_sub(keep).unwrap_or(now);
        if let Ok(mut consumed) = self.consumed.lock() {
            consumed.retain(|_, expires| *expires >= before);
        }
        self.store.forget_expired(before).await
    }

    /// The call `id`, when its record carries this deployment's seal and is the record of `id`.
    pub async fn get(&self, id: &str) -> Result<PendingCall, ApprovalError> {
        let call = self.store.get(id).await?;
        self.verified(id, call)
    }

    fn verified(&self, id: &str, call: PendingCall) -> Result<PendingCall, ApprovalError> {
        if call.id != id || !call.verifies(&self.keys) {
            let id: String = escape_invisible(id).chars().take(40).collect();
            tracing::error!(approval = %id, store = %self.store.describe(), "an approval record does not carry the governance key's seal");
            self.trail().record(
                &Record::new("approval_tampered")
                    .warn()
                    .str("approval", &id)
                    .str("store", &self.store.describe()),
            );
            return Err(ApprovalError::Tampered(id));
        }
        Ok(call)
    }

    /// Every sealed call not yet used, newest first; records that do not verify are left out
    /// (and reported).
    pub async fn list(&self) -> Result<Vec<PendingCall>, ApprovalError> {
        let calls = self.store.list(1000).await?;
        Ok(calls
            .into_iter()
            .filter_map(|call| self.verified(&call.id.clone(), call).ok())
            .collect())
    }

    /// The id of the newest open call of `key` (a retry without state). The record the index
    /// names must carry the seal and be that id's: a record copied there is refused, not
    /// passed over.
    pub async fn find(&self, key: CallKey<'_>) -> Result<Option<String>, ApprovalError> {
        let Some(id) = self.store.find(key).await? else {
            return Ok(None);
        };
        let call = self.get(&id).await?;
        Ok((call.principal == key.principal
            && call.tool == key.tool
            && call.arguments_sha256 == key.arguments_sha256
            && !call.expired(jiff::Timestamp::now()))
        .then_some(call.id))
    }

    /// Give `approver`'s verdict on the call `id`. It takes effect only once the audit trail
    /// recorded it (`approved` or `denied`, naming the approver and the door), and only when
    /// the approver may decide: holds the grant, is not revoked, is not the requester (unless
    /// the rule allows) and has not decided already; on the command line, also a different
    /// account from every earlier verdict, with a signature the allowed signers check.
    pub async fn decide(
        &self,
        id: &str,
        approver: &Approver,
        approve: bool,
    ) -> Result<PendingCall, ApprovalError> {
        let verdict = &approver.verdict;
        if let Some(problem) = id_problem(&verdict.by) {
            return Err(ApprovalError::InvalidApprover {
                id: escape_invisible(&verdict.by).into_owned(),
                problem: problem.to_owned(),
            });
        }
        if verdict.by != approver.principal.id() {
            return Err(ApprovalError::InvalidApprover {
                id: escape_invisible(&verdict.by).into_owned(),
                problem: "the verdict names another principal than the door established".into(),
            });
        }
        self.trail()
            .admits_calls()
            .map_err(|e| ApprovalError::Unrecorded(e.0))?;
        for _attempt in 0..3 {
            let call = self.get(id).await?;
            let now = jiff::Timestamp::now();
            self.may_decide(&call, approver, approve, now)?;
            let mut next = call.clone();
            if approve {
                next.approvals.push(verdict.clone());
            } else {
                next.denial = Some(verdict.clone());
            }
            next.revision = call.revision + 1;
            next.seal(&self.keys);
            let kind = if approve { "approved" } else { "denied" };
            let recorded = self.trail().record(
                &Record::new(kind)
                    .str("approval", id)
                    .str("by", &verdict.by)
                    .str("door", verdict.door.as_str())
                    .opt_str("os_user", verdict.os_user.as_deref())
                    .str("tool", &call.tool)
                    .str("principal", &call.principal)
                    .str("args_sha256", &call.arguments_sha256)
                    .opt_str(
                        "reason",
                        (!verdict.reason.is_empty()).then_some(verdict.reason.as_str()),
                    ),
            );
            recorded
                .durable()
                .await
                .map_err(|e| ApprovalError::Unrecorded(e.0))?;
            if self.store.replace(call.revision, next.clone()).await? {
                self.tell(
                    if approve {
                        Notice::Approved
                    } else {
                        Notice::Denied
                    },
                    &next,
                );
                return Ok(next);
            }
            // Another writer changed the record between the read and the write: the event
            // above stands for a verdict that did not take; say so, then look again.
            self.trail().record(
                &Record::new("verdict_not_applied")
                    .warn()
                    .str("approval", id)
                    .str("by", &verdict.by)
                    .str("reason", "the record changed meanwhile; checked again"),
            );
        }
        Err(ApprovalError::Store {
            store: self.store.describe(),
            reason: "the record kept changing under the verdict".into(),
        })
    }

    /// Whether `approver` may give `verdict` on `call` at `now`.
    fn may_decide(
        &self,
        call: &PendingCall,
        approver: &Approver,
        approve: bool,
        now: jiff::Timestamp,
    ) -> Result<(), ApprovalError> {
        let verdict = &approver.verdict;
        match self.standing(call, now) {
            Standing::Pending { .. } => {}
            Standing::Approved => return Err(ApprovalError::Decided("already approved".into())),
            Standing::Denied(v) => return Err(ApprovalError::Denied { by: v.by }),
            Standing::Expired => return Err(ApprovalError::Expired),
            Standing::Used => return Err(ApprovalError::AlreadyUsed),
        }
        if verdict.door == Door::Cli {
            let Some(signers) = &self.signers else {
                return Err(ApprovalError::Signature(
                    "this configuration names no command-line approvers ([approvers] allowed_signers)"
                        .into(),
                ));
            };
            signers.check(call, verdict, approve)?;
        }
        if !approver
            .principal
            .holds(&call.grant, std::time::SystemTime::now())
        {
            return Err(ApprovalError::LacksGrant(call.grant.clone()));
        }
        self.not_revoked(&verdict.by, &call.grant)?;
        if approve {
            self.counts_as_approver(call, verdict, &self.counting(call))?;
        }
        Ok(())
    }

    /// Where `call` stands at `now`, counting only the approvals that still count: one whose
    /// approver has since been revoked, or whose key was taken off the allowed signers, leaves
    /// the call pending again, for another approver to decide.
    pub fn standing(&self, call: &PendingCall, now: jiff::Timestamp) -> Standing {
        match call.standing(now) {
            Standing::Approved => {
                let have = u32::try_from(self.counting(call).len()).unwrap_or(u32::MAX);
                if have >= call.min {
                    Standing::Approved
                } else {
                    Standing::Pending {
                        have,
                        need: call.min,
                    }
                }
            }
            other => other,
        }
    }

    /// Whether `verdict` may count as one more approval of `call` beside `earlier`.
    fn counts_as_approver(
        &self,
        call: &PendingCall,
        verdict: &Verdict,
        earlier: &[&Verdict],
    ) -> Result<(), ApprovalError> {
        if let Some(problem) = id_problem(&verdict.by) {
            return Err(ApprovalError::InvalidApprover {
                id: escape_invisible(&verdict.by).into_owned(),
                problem: problem.to_owned(),
            });
        }
        if !call.self_approve
            && (same_person(&verdict.by, &call.principal)
                || verdict
                    .os_user
                    .as_deref()
                    .is_some_and(|user| os_user_is(user, &call.principal)))
        {
            return Err(ApprovalError::Requester);
        }
        if earlier.iter().any(|v| same_person(&v.by, &verdict.by)) {
            return Err(ApprovalError::Decided(format!(
                "{} already approved it",
                escape_invisible(&verdict.by)
            )));
        }
        if let Some(user) = &verdict.os_user
            && earlier
                .iter()
                .filter_map(|v| v.os_user.as_deref())
                .any(|other| same_person(other, user))
        {
            return Err(ApprovalError::SameAccount(
                escape_invisible(user).into_owned(),
            ));
        }
        Ok(())
    }

    /// Refuse an approver the revocation list names, or whose approver grant it revokes.
    fn not_revoked(&self, by: &str, grant: &str) -> Result<(), ApprovalError> {
        let Some(revocations) = &self.revocations else {
            return Ok(());
        };
        let list = revocations.current();
        let revoked = list.entries().iter().find(|r| match &r.target {
            Target::All => true,
            Target::Principal(p) => same_person(p, by),
            Target::Grant(g) => g == grant,
            Target::Tool(_) => false,
        });
        match revoked {
            Some(r) => Err(ApprovalError::Revoked(format!(
                "{}: {} (by {})",
                r.target, r.reason, r.by
            ))),
            None => Ok(()),
        }
    }

    /// The approvals of `call` that still count now: each checked again as when it was
    /// given, against today's revocations and allowed signers.
    fn counting<'c>(&self, call: &'c PendingCall) -> Vec<&'c Verdict> {
        let mut counted: Vec<&Verdict> = Vec::new();
        for verdict in &call.approvals {
            let still = self.counts_as_approver(call, verdict, &counted).is_ok()
                && self.not_revoked(&verdict.by, &call.grant).is_ok()
                && match verdict.door {
                    Door::Cli => self
                        .signers
                        .as_ref()
                        .is_some_and(|s| s.check(call, verdict, true).is_ok()),
                    Door::Api | Door::Page => true,
                };
            if still {
                counted.push(verdict);
            }
        }
        counted
    }

    /// Whether `call` stands approved now, counting only approvals that still count.
    fn approved(&self, call: &PendingCall) -> Result<(), ApprovalError> {
        let have = u32::try_from(self.counting(call).len()).unwrap_or(u32::MAX);
        if have < call.min {
            return Err(ApprovalError::Pending {
                have,
                need: call.min,
            });
        }
        Ok(())
    }

    /// Use the approval `id` for the call `key`, once: the record must carry the seal, be
    /// bound to this call, stand approved by approvers who still count, be unexpired and
    /// unused; it is marked used in the same compare-and-swap that checks it is not.
    pub async fn consume(&self, id: &str, key: CallKey<'_>) -> Result<PendingCall, ApprovalError> {
        for _attempt in 0..3 {
            let call = self.get(id).await?;
            let now = jiff::Timestamp::now();
            call.check_key(key)?;
            match self.standing(&call, now) {
                Standing::Approved => {}
                Standing::Pending { have, need } => {
                    return Err(ApprovalError::Pending { have, need });
                }
                Standing::Denied(v) => return Err(ApprovalError::Denied { by: v.by }),
                Standing::Expired => return Err(ApprovalError::Expired),
                Standing::Used => return Err(ApprovalError::AlreadyUsed),
            }
            self.approved(&call)?;
            if self
                .consumed
                .lock()
                .map_or(true, |consumed| consumed.contains_key(id))
            {
                return Err(ApprovalError::AlreadyUsed);
            }
            let mut next = call.clone();
            next.used_at = Some(now.to_string());
            next.revision = call.revision + 1;
            next.seal(&self.keys);
            if self.store.replace(call.revision, next.clone()).await? {
                let expires = call.expires_at.parse().unwrap_or(now);
                if let Ok(mut consumed) = self.consumed.lock() {
                    consumed.insert(id.to_owned(), expires);
                }
                return Ok(next);
            }
        }
        Err(ApprovalError::AlreadyUsed)
    }

    /// Let a later round of the run approved by `id` continue, once per `nonce`: the record
    /// must carry the seal, be bound to this call, have been used, and its approvers must
    /// still count. The nonce is spent in the store, which every replica shares, and kept
    /// until `expires`.
    pub async fn continue_round(
        &self,
        id: &str,
        nonce: &str,
        key: CallKey<'_>,
        expires: jiff::Timestamp,
    ) -> Result<PendingCall, ApprovalError> {
        let call = self.get(id).await?;
        call.check_key(key)?;
        if call.used_at.is_none() {
            return Err(ApprovalError::OtherCall);
        }
        self.approved(&call)?;
        if !self.spend_nonce(nonce, expires).await? {
            return Err(ApprovalError::RoundReplayed);
        }
        Ok(call)
    }

    /// Spend `nonce` once, in the store every replica shares, kept until `expires`: what makes
    /// a round's state or the approval page's sign-in single-use. `Ok(false)` when it was
    /// spent already.
    pub async fn spend_nonce(
        &self,
        nonce: &str,
        expires: jiff::Timestamp,
    ) -> Result<bool, ApprovalError> {
        self.store.spend_nonce(nonce, expires).await
    }

    /// The approvers of `call` that count, for the audit event.
    pub fn approvers<'c>(&self, call: &'c PendingCall) -> Vec<&'c str> {
        self.counting(call).iter().map(|v| v.by.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use super::super::MemoryApprovals;
    use super::*;
    use crate::governance_key::GovernanceKey;
    use crate::grant::Grant;

    fn keys() -> GovernanceKeys {
        GovernanceKeys::new(vec![
            GovernanceKey::new(
                "g1",
                &SecretString::from("0123456789abcdef0123456789abcdef".to_owned()),
            )
            .unwrap(),
        ])
        .unwrap()
    }

    const RULE: ApprovalRule = ApprovalRule {
        grant: String::new(),
        min: 1,
        window: Duration::from_secs(60),
        self_approve: false,
    };

    fn rule() -> ApprovalRule {
        ApprovalRule {
            grant: "items:approve".into(),
            ..RULE
        }
    }

    fn key(principal: &str) -> CallKey<'_> {
        CallKey {
            principal,
            tool: "delete_item",
            arguments_sha256: "aa",
            definition_sha256: "dd",
        }
    }

    fn approver(id: &str) -> Approver {
        Approver::new(
            Principal::new(id).with_grant(Grant::new("items:approve").unwrap()),
            Door::Api,
            String::new(),
        )
    }

    #[tokio::test]
    async fn refuses_to_park_without_randomness() {
        let approvals = Approvals::new(Arc::new(MemoryApprovals::new()), keys());
        let arguments = serde_json::json!({});
        let rule = rule();
        let refused = approvals
            .park_with(key("alice"), &rule, &arguments, "Delete.", |_| {
                Err(getrandom::Error::UNSUPPORTED)
            })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), "no_randomness");
        assert!(approvals.list().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn accepts_another_approver_once_the_first_is_revoked() {
        let store: Arc<dyn ApprovalStore> = Arc::new(MemoryApprovals::new());
        let arguments = serde_json::json!({});
        let before = Approvals::new(Arc::clone(&store), keys());
        let call = before
            .park(key("alice"), &rule(), &arguments, "Delete.")
            .await
            .unwrap();
        before
            .decide(&call.id, &approver("bob@example.com"), true)
            .await
            .unwrap();
        let mut revoked = crate::revocation::Revocation::now(
            crate::revocation::Target::Principal("bob@example.com".into()),
            "left the team",
            "ops",
        );
        revoked.seal(&keys());
        let after = Approvals::new(Arc::clone(&store), keys())
            .with_revocations(Revocations::fixed(vec![revoked], keys()));
        // Bob's approval no longer counts: the call is pending again, not "already approved".
        let call = after.get(&call.id).await.unwrap();
        assert_eq!(
            after.standing(&call, jiff::Timestamp::now()),
            Standing::Pending { have: 0, need: 1 }
        );
        let refused = after.consume(&call.id, key("alice")).await.unwrap_err();
        assert_eq!(refused.code(), "pending");
        after
            .decide(&call.id, &approver("carol@example.com"), true)
            .await
            .unwrap();
        after.consume(&call.id, key("alice")).await.unwrap();
    }

    #[tokio::test]
    async fn refuses_new_pending_call_over_the_per_principal_cap() {
        let approvals = Approvals::new(Arc::new(MemoryApprovals::new()), keys()).max_pending(2);
        let arguments = serde_json::json!({});
        let rule = rule();
        approvals
            .park(key("alice"), &rule, &arguments, "Delete.")
            .await
            .unwrap();
        approvals
            .park(key("alice"), &rule, &arguments, "Delete.")
            .await
            .unwrap();
        let refused = approvals
            .park(key("alice"), &rule, &arguments, "Delete.")
            .await
            .unwrap_err();
        assert_eq!(refused.code(), "too_many_pending");
        // Another principal has a cap of its own.
        approvals
            .park(key("bob"), &rule, &arguments, "Delete.")
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn forgets_expired_pending_calls() {
        let store = Arc::new(MemoryApprovals::new());
        let approvals =
            Approvals::new(store.clone(), keys()).keep_expired_for(Duration::from_secs(0));
        let arguments = serde_json::json!({});
        let short = ApprovalRule {
            window: Duration::from_millis(10),
            ..rule()
        };
        let call = approvals
            .park(key("alice"), &short, &arguments, "Delete.")
            .await
            .unwrap();
        let kept = approvals
            .park(key("alice"), &rule(), &arguments, "Delete.")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(
            approvals.forget_expired(jiff::Timestamp::now()).await,
            Ok(1)
        );
        assert_eq!(
            approvals.get(&call.id).await.unwrap_err(),
            ApprovalError::Unknown(call.id.clone())
        );
        assert!(approvals.get(&kept.id).await.is_ok());
    }

    #[tokio::test]
    async fn refuses_verdict_when_the_trail_cannot_record_it() {
        use crate::audit::{FileSink, FileSinkOptions, FsyncPolicy, TrailOptions};
        // A durable sink on a full disk, failing closed.
        let sink = FileSink::open(FileSinkOptions {
            path: "/dev/full".into(),
            rotate_bytes: None,
            rotate_every: None,
            fsync: FsyncPolicy::EveryEvent,
        })
        .unwrap();
        let trail = AuditTrail::start(
            TrailOptions {
                write_timeout: Duration::from_millis(200),
                ..TrailOptions::default()
            },
            vec![Box::new(sink)],
        );
        let approvals =
            Approvals::new(Arc::new(MemoryApprovals::new()), keys()).with_trail(trail.clone());
        let arguments = serde_json::json!({});
        let rule = rule();
        let call = approvals
            .park(key("alice"), &rule, &arguments, "Delete.")
            .await
            .unwrap();
        let refused = approvals
            .decide(&call.id, &approver("bob@example.com"), true)
            .await
            .unwrap_err();
        assert_eq!(refused.code(), "unrecorded");
        // The verdict did not take: the call is still pending, and stays so while the trail
        // refuses.
        assert_eq!(
            approvals
                .get(&call.id)
                .await
                .unwrap()
                .standing(jiff::Timestamp::now()),
            Standing::Pending { have: 0, need: 1 }
        );
        let again = approvals
            .decide(&call.id, &approver("bob@example.com"), true)
            .await
            .unwrap_err();
        assert_eq!(again.code(), "unrecorded");
    }

    #[tokio::test]
    async fn rejects_self_approval_by_a_lookalike_principal() {
        let approvals = Approvals::new(Arc::new(MemoryApprovals::new()), keys());
        let arguments = serde_json::json!({});
        let rule = rule();
        let call = approvals
            .park(key("alice@example.com"), &rule, &arguments, "Delete.")
            .await
            .unwrap();
        for lookalike in [
            "ALICE@example.com",
            "alice@EXAMPLE.com",
            "ａｌｉｃｅ@example.com",
        ] {
            assert_eq!(
                approvals
                    .decide(&call.id, &approver(lookalike), true)
                    .await
                    .unwrap_err(),
                ApprovalError::Requester,
                "{lookalike}"
            );
        }
        for invisible in [" alice@example.com", "alice@exam\u{200b}ple.com"] {
            assert_eq!(
                approvals
                    .decide(&call.id, &approver(invisible), true)
                    .await
                    .unwrap_err()
                    .code(),
                "invalid_approver",
                "{invisible:?}"
            );
        }
        approvals
            .decide(&call.id, &approver("bob@example.com"), true)
            .await
            .unwrap();
    }
}

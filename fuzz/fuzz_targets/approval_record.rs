//! The approval store's records: `PendingCall` as a store hands it back (a file of the
//! approvals directory, a row of `[state]`), with its seal.
//!
//! Any text read as a record is refused or parsed, never a panic. A record parsed from hostile
//! text does not carry this deployment's seal (nobody outside holds the key), and every check
//! on it (its standing, its binding to a call, what a later round names) answers without
//! panicking. A record sealed here verifies, reads back from its own JSON unchanged and still
//! verifies, and the same record with any one field changed (a verdict added, its use cleared,
//! another id, other arguments) does not.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use mcp_lp::approval::{CallKey, Door, PendingCall, RoundState, Verdict};
use mcp_lp::governance_key::{GovernanceKey, GovernanceKeys};

fn keys() -> &'static GovernanceKeys {
    static KEYS: OnceLock<GovernanceKeys> = OnceLock::new();
    KEYS.get_or_init(|| {
        GovernanceKeys::new(vec![
            GovernanceKey::new("g1", &"fuzz-governance-key-at-least-32-bytes".into()).unwrap(),
        ])
        .unwrap()
    })
}

fn key(call: &PendingCall) -> CallKey<'_> {
    CallKey {
        principal: &call.principal,
        tool: &call.tool,
        arguments_sha256: &call.arguments_sha256,
        definition_sha256: &call.definition_sha256,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let now = jiff::Timestamp::now();
    let _ = RoundState::of(text);
    let Ok(mut call) = serde_json::from_str::<PendingCall>(text) else {
        return;
    };
    // Hostile: no seal of ours, unless the input is a record this very target sealed (the
    // seeds hold one).
    let hostile_verifies = call.verifies(keys());
    let _ = call.standing(now);
    let _ = call.expired(now);
    let _ = call.check_key(key(&call));

    // Sealed here: verifies, round-trips, and any change undoes it.
    call.seal(keys());
    assert!(call.verifies(keys()));
    let again: PendingCall = serde_json::from_str(&serde_json::to_string(&call).unwrap()).unwrap();
    assert!(again.verifies(keys()), "a sealed record read back does not verify: {again:?}");
    if hostile_verifies {
        // Only an unchanged sealed record verified as it came.
        assert_eq!(serde_json::to_value(&again).unwrap(), serde_json::from_str::<serde_json::Value>(text).unwrap());
    }

    let mut approved = call.clone();
    approved.approvals.push(Verdict {
        by: "mallory@example.com".into(),
        at: now.to_string(),
        reason: String::new(),
        door: Door::Api,
        os_user: None,
        signature: None,
    });
    assert!(!approved.verifies(keys()));
    let mut cleared = call.clone();
    cleared.used_at = match cleared.used_at {
        Some(_) => None,
        None => Some(now.to_string()),
    };
    assert!(!cleared.verifies(keys()));
    let mut moved = call.clone();
    moved.id.push('0');
    assert!(!moved.verifies(keys()));
    let mut widened = call.clone();
    widened.arguments_sha256.push('0');
    assert!(!widened.verifies(keys()));
});

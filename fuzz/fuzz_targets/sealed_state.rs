//! The sealed-state decoder, `StateSealer::open`.
//!
//! The input is split on `\n` into a mode, a principal, a tool, the call's arguments (JSON) and
//! a state (or a sealed state to open). Properties:
//! - any text opened as sealed state is refused, unless it opens under the very binding it was
//!   sealed for: then changing the principal, the tool or the arguments refuses it by name;
//! - state sealed for a call opens for that call with the same content, and for no other: not
//!   at another server (resource), and not as a cookie (another purpose's key);
//! - altered, it does not open (or opens to the very same state: an encoding that decodes to
//!   the same sealed bytes is no forgery); sealed under a key this server does not hold, it is
//!   refused as such; over the size limit it is refused before anything is read.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use mcp_lp::audit::ArgumentDigest;
use mcp_lp::sealed_state::{
    Binding, DEFAULT_STATE_TTL, MAX_SEALED_STATE_BYTES, Purpose, SealingKey, StateRejected,
    StateSealer,
};

fn key(id: &str, secret: &str) -> SealingKey {
    SealingKey {
        id: id.into(),
        secret: secret.to_owned().into(),
    }
}

/// This server's sealer (two keys, the first seals) and another server's.
fn sealers() -> &'static (StateSealer, StateSealer) {
    static SEALERS: OnceLock<(StateSealer, StateSealer)> = OnceLock::new();
    SEALERS.get_or_init(|| {
        let ours = StateSealer::new(
            &[
                key("k2", "fuzz-sealing-key-two-at-least-32-bytes"),
                key("k1", "fuzz-sealing-key-one-at-least-32-bytes"),
            ],
            DEFAULT_STATE_TTL,
        )
        .unwrap();
        let theirs = StateSealer::new(
            &[key("k9", "another-servers-key-at-least-32-bytes!")],
            DEFAULT_STATE_TTL,
        )
        .unwrap();
        (ours, theirs)
    })
}

fn rejected(result: Result<String, StateRejected>) -> Option<StateRejected> {
    result.err()
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.splitn(5, '\n');
    let (Some(mode), Some(principal), Some(tool), Some(arguments), Some(state)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return;
    };
    let arguments: serde_json::Value = serde_json::from_str(arguments).unwrap_or_default();
    let digest = ArgumentDigest::of(arguments.as_object());
    let other_digest = ArgumentDigest::of(Some(&{
        let mut other = arguments.as_object().cloned().unwrap_or_default();
        other.insert("\u{0}other".into(), true.into());
        other
    }));
    let binding = Binding::request_state("https://fuzz.example/mcp", principal, tool, &digest);
    let other_principal = format!("{principal}\u{0}");
    let other_tool = format!("{tool}\u{0}");
    let for_principal = Binding {
        principal: &other_principal,
        ..binding
    };
    let for_tool = Binding {
        tool: &other_tool,
        ..binding
    };
    let for_arguments = Binding {
        arguments: &other_digest,
        ..binding
    };
    let for_resource = Binding {
        resource: "https://other.example/mcp",
        ..binding
    };
    let as_cookie = Binding {
        purpose: Purpose::SessionCookie,
        ..binding
    };
    let (ours, theirs) = sealers();

    // Whatever comes back from a client.
    match ours.open(&binding, state) {
        Ok(opened) => {
            assert_eq!(
                rejected(ours.open(&for_principal, state)),
                Some(StateRejected::OtherPrincipal)
            );
            assert_eq!(
                rejected(ours.open(&for_tool, state)),
                Some(StateRejected::OtherTool)
            );
            assert_eq!(
                rejected(ours.open(&for_arguments, state)),
                Some(StateRejected::OtherArguments)
            );
            assert_eq!(ours.open(&binding, state), Ok(opened));
        }
        Err(StateRejected::TooLong) => assert!(state.len() > MAX_SEALED_STATE_BYTES),
        Err(_) => {}
    }

    if mode.starts_with('s') {
        let sealed = ours.seal(&binding, state);
        assert_eq!(ours.open(&binding, &sealed).as_deref(), Ok(state));
        assert_eq!(
            rejected(ours.open(&for_principal, &sealed)),
            Some(StateRejected::OtherPrincipal)
        );
        assert_eq!(
            rejected(ours.open(&for_tool, &sealed)),
            Some(StateRejected::OtherTool)
        );
        assert_eq!(
            rejected(ours.open(&for_arguments, &sealed)),
            Some(StateRejected::OtherArguments)
        );
        assert_eq!(
            rejected(ours.open(&for_resource, &sealed)),
            Some(StateRejected::OtherResource)
        );
        assert_eq!(
            rejected(ours.open(&as_cookie, &sealed)),
            Some(StateRejected::Tampered)
        );
        assert_eq!(
            rejected(theirs.open(&binding, &sealed)),
            Some(StateRejected::UnknownKey)
        );
        let foreign = theirs.seal(&binding, state);
        assert_eq!(
            rejected(ours.open(&binding, &foreign)),
            Some(StateRejected::UnknownKey)
        );

        // Alter one character, at a place and to a value the mode chooses.
        let bytes = mode.as_bytes();
        let at = bytes.get(1).map_or(0, |&b| usize::from(b)) * 7 % sealed.len().max(1);
        let to = bytes.get(2).copied().unwrap_or(b'A');
        let mut altered = sealed.clone().into_bytes();
        if to.is_ascii() && altered.get(at).is_some_and(|&b| b != to) {
            altered[at] = to;
            let altered = String::from_utf8(altered).unwrap();
            match ours.open(&binding, &altered) {
                Err(_) => {}
                Ok(opened) => assert_eq!(opened, state, "an altered state opened to other content"),
            }
        }
    }
});

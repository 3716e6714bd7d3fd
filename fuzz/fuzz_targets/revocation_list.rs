//! The revocation list file (`mcp-lp.revocations.json`), as `FileRevocations` reads it.
//!
//! Any text is a list or a refusal naming why, never a panic. A list read back from its own
//! JSON is the same list. What the list refuses is consistent: an entry that refuses a tool
//! for every caller refuses each caller; `all` refuses everything; an entry not sealed with
//! this deployment's key does not verify, and one sealed here does until any field changes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_lp::ToolPolicy;
use mcp_lp::__fuzz::read_revocation_list;
use mcp_lp::governance_key::{GovernanceKey, GovernanceKeys};
use mcp_lp::revocation::{RevocationList, Target};

const TOOLS: [ToolPolicy; 3] = [
    ToolPolicy::new("read_note"),
    ToolPolicy::new("delete_note").with_requires(&["notes:delete"]),
    ToolPolicy::new("purge").with_requires(&["notes:delete", "notes:admin"]),
];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let entries = match read_revocation_list(text) {
        Ok(entries) => entries,
        Err(refusal) => {
            assert!(refusal.starts_with("not a revocation list"), "{refusal}");
            return;
        }
    };
    let written = serde_json::to_string(&serde_json::json!({ "revocations": entries })).unwrap();
    assert_eq!(read_revocation_list(&written).unwrap(), entries);

    let list = RevocationList::new(entries.clone());
    let everything = list.entries().iter().any(|e| e.target == Target::All);
    for tool in &TOOLS {
        for principal in ["alice@example.com", "bob@example.com", ""] {
            let refused = list.refusing(principal, tool).is_some();
            if list.refusing_tool(tool).is_some() || everything {
                assert!(refused, "{tool:?} is out for everyone, but not for {principal}");
            }
            if list.refuses_principal(principal) {
                assert!(refused);
            }
        }
    }

    let keys = GovernanceKeys::new(vec![
        GovernanceKey::new("g1", &"fuzz-governance-key-at-least-32-bytes".into()).unwrap(),
    ])
    .unwrap();
    for mut entry in entries {
        let _ = entry.verifies(&keys);
        entry.seal(&keys);
        assert!(entry.verifies(&keys));
        entry.reason.push('!');
        assert!(!entry.verifies(&keys));
    }
});

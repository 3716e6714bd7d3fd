//! The audit chain and `audit verify`.
//!
//! Whatever strings a client controls (principal, request id), a sealed chain verifies with its
//! key and its lines hold no raw line break; a line changed in any byte, whether or not it still
//! parses to the same content, fails verification (the verifier accepts only the one spelling
//! the chain writes); and no input to the verifier panics it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_lp::__fuzz::sealed_chain;
use mcp_lp::audit::ChainKey;
use mcp_lp::audit::verify::{TrailLine, Verifier, lines_of};

fn trail(lines: &[String]) -> Vec<TrailLine> {
    lines_of("fuzz", &lines.join("\n"))
}

fuzz_target!(|data: &[u8]| {
    let key = ChainKey::new("fuzz", &"fuzz-audit-key-0123456789abcdef0123".into()).unwrap();
    let verifier = Verifier::new([key.clone()]);

    // Hostile trail text: a report, never a panic.
    let text = String::from_utf8_lossy(data);
    let _ = verifier.verify(&lines_of("fuzz", &text), &[]);

    // Client-chosen strings in a sealed chain.
    let (flip, rest) = data.split_first().unwrap_or((&0, &[]));
    let text = String::from_utf8_lossy(rest);
    let principals: Vec<&str> = text.split('\0').take(8).collect();
    let lines = sealed_chain(&key, &principals);
    for line in &lines {
        assert!(!line.contains('\n') && !line.contains('\r'), "{line}");
    }
    let report = verifier.verify(&trail(&lines), &[]);
    assert!(report.passed(), "{report}\n{lines:?}");
    assert_eq!(report.events, lines.len() as u64);

    // One byte changed: the chain fails, whatever the line now says.
    let index = usize::from(*flip) % lines.len();
    let mut bytes = lines[index].clone().into_bytes();
    let at = (usize::from(*flip) * 31) % bytes.len();
    bytes[at] ^= 1 << (flip % 7);
    if let Ok(changed) = String::from_utf8(bytes) {
        let mut edited = lines.clone();
        edited[index] = changed;
        let report = verifier.verify(&trail(&edited), &[]);
        assert!(!report.passed(), "an edit went unnoticed: {:?}", edited[index]);
    }
    // A field written twice is refused, whichever value a reader would keep.
    let doubled = lines[index].replacen('{', "{\"outcome\":\"ok\",", 1);
    let mut edited = lines.clone();
    edited[index] = doubled;
    assert!(!verifier.verify(&trail(&edited), &[]).passed());
});

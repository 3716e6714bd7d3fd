//! Argument canonicalisation and digest (`ArgumentDigest`).
//!
//! For any JSON object: the digest is the SHA-256 of its canonical form (compact, object keys
//! sorted bytewise at every depth) computed independently here, its length is that form's
//! length, the same object written with other whitespace or another key order digests the
//! same, and an object with another canonical form digests differently.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_lp::audit::ArgumentDigest;
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};

/// The canonical form, written here without the crate's code.
fn canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (key, value)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(key).unwrap());
                out.push(':');
                canonical(value, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&serde_json::to_string(scalar).unwrap()),
    }
}

/// The same value with every object's entries inserted in reverse order.
fn reversed(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut out = Map::new();
            for (key, value) in map.iter().rev() {
                out.insert(key.clone(), reversed(value));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(reversed).collect()),
        scalar => scalar.clone(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let Some(object) = value.as_object() else {
        return;
    };
    let digest = ArgumentDigest::of(Some(object));
    let mut form = String::new();
    canonical(&value, &mut form);
    assert_eq!(
        digest.sha256_hex(),
        hex(&Sha256::digest(form.as_bytes())),
        "{form}"
    );
    assert_eq!(digest.bytes(), form.len());

    // Equal canonical JSON, equal digest: other whitespace, other key order.
    let pretty: Value =
        serde_json::from_str(&serde_json::to_string_pretty(&value).unwrap()).unwrap();
    assert_eq!(ArgumentDigest::of(pretty.as_object()), digest);
    let reordered = reversed(&value);
    assert_eq!(ArgumentDigest::of(reordered.as_object()), digest);
    let reparsed: Value = serde_json::from_str(&form).unwrap();
    assert_eq!(ArgumentDigest::of(reparsed.as_object()), digest);

    // Another canonical form, another digest.
    let mut other = object.clone();
    match other.get_mut("\u{0}") {
        Some(v) => *v = Value::Array(vec![v.take()]),
        None => {
            other.insert("\u{0}".into(), Value::Null);
        }
    }
    assert_ne!(ArgumentDigest::of(Some(&other)), digest);
    assert_ne!(ArgumentDigest::of(None), ArgumentDigest::of(Some(&other)));

    // What a retry round adds digests as that object would.
    if let Some(Value::String(state)) = object.get("requestState") {
        if object.len() == 1 {
            assert_eq!(ArgumentDigest::of_round(None, Some(state)), Some(digest));
        }
    }
});

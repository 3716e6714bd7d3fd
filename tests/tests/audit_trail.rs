//! The audit trail on a real file: a chain written through the file sink, with anchors, then
//! edited, cut, reordered, forged and spliced the way an attacker with write access to the file
//! would; `audit verify` must name the first bad `seq` and why each time.

use std::path::{Path, PathBuf};
use std::time::Duration;

use mcp_lp::audit::anchor::Anchor;
use mcp_lp::audit::verify::{FailureKind, Report, TrailLine, Verifier, lines_of, parse_anchors};
use mcp_lp::audit::{
    AnchorOptions, AuditTrail, ChainKey, FailurePolicy, FileSink, FileSinkOptions, FsyncPolicy,
    Record, TrailOptions,
};
use secrecy::SecretString;

fn key(id: &str) -> ChainKey {
    ChainKey::new(
        id,
        &SecretString::from(format!("{id}-0123456789abcdef0123456789abcdef")),
    )
    .expect("test setup")
}

struct Written {
    trail: PathBuf,
    anchors: PathBuf,
}

/// A trail of `calls` tool calls in `dir`, sealed with `key`, anchored at shutdown.
async fn write_trail(dir: &Path, name: &str, key: ChainKey, calls: usize) -> Written {
    let trail_path = dir.join(format!("{name}.jsonl"));
    let anchors = dir.join(format!("{name}-anchors.jsonl"));
    let sink = FileSink::open(FileSinkOptions {
        path: trail_path.clone(),
        rotate_bytes: None,
        rotate_every: None,
        fsync: FsyncPolicy::EveryEvent,
    })
    .expect("test setup");
    let trail = AuditTrail::start(
        TrailOptions {
            key,
            anchors: Some(AnchorOptions {
                path: anchors.clone(),
                every: Duration::from_secs(3600),
            }),
            ..TrailOptions::default()
        },
        vec![Box::new(sink)],
    );
    trail.record(&Record::new("start").str("server", "test"));
    for i in 0..calls {
        let request_id = i.to_string();
        let principal = if i % 2 == 0 { "alice" } else { "bob" };
        let recorded = trail.record(
            &Record::new("tools/call")
                .str("request_id", &request_id)
                .str("principal", principal)
                .str("tool", "echo")
                .str("outcome", "ok"),
        );
        recorded.durable().await.expect("test setup");
    }
    trail.shutdown("test over").await;
    Written {
        trail: trail_path,
        anchors,
    }
}

fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .expect("test setup")
        .lines()
        .map(str::to_owned)
        .collect()
}

fn verify_lines(lines: &[String], anchors: &Path, keys: &[ChainKey]) -> Report {
    let trail: Vec<TrailLine> = lines_of("trail.jsonl", &lines.join("\n"));
    let anchors: Vec<(String, Anchor)> = parse_anchors(
        "anchors.jsonl",
        &std::fs::read_to_string(anchors).unwrap_or_default(),
    )
    .expect("test setup");
    Verifier::new(keys.iter().cloned()).verify(&trail, &anchors)
}

fn failure(report: &Report) -> (FailureKind, Option<u64>) {
    let failure = report
        .failure
        .as_ref()
        .unwrap_or_else(|| panic!("verification passed:\n{report}"));
    (failure.kind, failure.seq)
}

/// The line of event `seq` (the file holds only events, in order).
fn seq_of(line: &str) -> u64 {
    serde_json::from_str::<serde_json::Value>(line).expect("test setup")["seq"]
        .as_u64()
        .expect("test setup")
}

#[tokio::test]
async fn accepts_untouched_trail_with_its_anchor() {
    let dir = tempfile::tempdir().expect("test setup");
    let written = write_trail(dir.path(), "t", key("k1"), 10).await;
    let report = verify_lines(&read_lines(&written.trail), &written.anchors, &[key("k1")]);
    assert!(report.passed(), "{report}");
    // start, 10 calls, shutdown.
    assert_eq!(report.events, 12);
    assert_eq!(report.anchors, 1);
    assert_eq!(report.by_outcome["ok"], 10);
    assert_eq!(report.by_principal["alice"], 5);
    assert!(report.instances[0].1.shut_down);
}

#[tokio::test]
async fn verify_rejects_edited_event() {
    let dir = tempfile::tempdir().expect("test setup");
    let written = write_trail(dir.path(), "t", key("k1"), 10).await;
    let mut lines = read_lines(&written.trail);
    lines[4] = lines[4].replace("\"principal\":\"bob\"", "\"principal\":\"mallory\"");
    assert!(lines[4].contains("mallory"), "{}", lines[4]);
    let report = verify_lines(&lines, &written.anchors, &[key("k1")]);
    assert_eq!(
        failure(&report),
        (FailureKind::Modified, Some(4)),
        "{report}"
    );
}

#[tokio::test]
async fn verify_rejects_event_edited_into_another_kind_of_line() {
    let dir = tempfile::tempdir().expect("test setup");
    let written = write_trail(dir.path(), "t", key("k1"), 3).await;
    let mut lines = read_lines(&written.trail);
    // The last event made to look like an ordinary log line, so that a reader passing over
    // log lines would drop it.
    let last = lines.len() - 1;
    lines[last] = lines[last].replace(
        "\"target\":\"mcp_lp::audit\"",
        "\"target\":\"mcp_lp::auditx\"",
    );
    let none = dir.path().join("none");
    let report = verify_lines(&lines, &none, &[key("k1")]);
    assert_eq!(
        failure(&report),
        (FailureKind::Modified, Some(4)),
        "{report}"
    );
    let mut lines = read_lines(&written.trail);
    lines[last] = "{\"level\":\"INFO\",\"message\":\"nothing to see\"}".to_owned();
    let report = verify_lines(&lines, &none, &[key("k1")]);
    assert_eq!(failure(&report).0, FailureKind::Modified, "{report}");

    // Captured stderr holds other logs between the events: passed over when asked.
    let mut mixed = read_lines(&written.trail);
    mixed.insert(
        2,
        "{\"level\":\"INFO\",\"target\":\"mcp_lp::cli\",\"message\":\"serving\"}".to_owned(),
    );
    mixed.insert(0, "plain text from a panic".to_owned());
    let trail = lines_of("stderr", &mixed.join("\n"));
    let report = Verifier::new([key("k1")])
        .allowing_other_lines()
        .verify(&trail, &[]);
    assert!(report.passed(), "{report}");
    let report = Verifier::new([key("k1")]).verify(&trail, &[]);
    assert!(!report.passed(), "{report}");
}

#[tokio::test]
async fn verify_rejects_deleted_event() {
    let dir = tempfile::tempdir().expect("test setup");
    let written = write_trail(dir.path(), "t", key("k1"), 10).await;
    let mut lines = read_lines(&written.trail);
    lines.remove(6);
    let report = verify_lines(&lines, &written.anchors, &[key("k1")]);
    // The event after the gap is the first that cannot stand: event 6 is missing.
    assert_eq!(
        failure(&report),
        (FailureKind::Missing, Some(7)),
        "{report}"
    );
    assert!(
        report
            .failure
            .expect("test setup")
            .detail
            .contains("event 6 is missing"),
        "names the missing event"
    );
}

#[tokio::test]
async fn verify_rejects_inserted_event() {
    let dir = tempfile::tempdir().expect("test setup");
    let written = write_trail(dir.path(), "t", key("k1"), 10).await;
    let mut lines = read_lines(&written.trail);
    // Forged without the key: a copy of event 5 made to read as another call, put before the
    // real event 5, with its seq and prev as a forger would set them.
    let forged = lines[5].replace("\"request_id\":\"4\"", "\"request_id\":\"forged\"");
    assert_ne!(forged, lines[5]);
    lines.insert(5, forged);
    let report = verify_lines(&lines, &written.anchors, &[key("k1")]);
    assert_eq!(
        failure(&report),
        (FailureKind::Inserted, Some(5)),
        "{report}"
    );

    // A line re-signed with a key the verifier does not trust is no better.
    let mut lines = read_lines(&written.trail);
    let mut value: serde_json::Value = serde_json::from_str(&lines[5]).expect("test setup");
    value["key_id"] = "attacker".into();
    lines.insert(5, value.to_string());
    let report = verify_lines(&lines, &written.anchors, &[key("k1")]);
    assert_eq!(
        failure(&report),
        (FailureKind::UnknownKey, Some(5)),
        "{report}"
    );
}

#[tokio::test]
async fn verify_rejects_reordered_events() {
    let dir = tempfile::tempdir().expect("test setup");
    let written = write_trail(dir.path(), "t", key("k1"), 10).await;
    let mut lines = read_lines(&written.trail);
    lines.swap(3, 4);
    assert_eq!(seq_of(&lines[3]), 4);
    let report = verify_lines(&lines, &written.anchors, &[key("k1")]);
    assert_eq!(
        failure(&report),
        (FailureKind::Reordered, Some(4)),
        "{report}"
    );
}

#[tokio::test]
async fn verify_rejects_truncated_tail() {
    let dir = tempfile::tempdir().expect("test setup");
    let written = write_trail(dir.path(), "t", key("k1"), 10).await;
    let mut lines = read_lines(&written.trail);
    lines.truncate(lines.len() - 3);
    // Without the anchor the cut cannot be told from a server that stopped there...
    let no_anchors = dir.path().join("none.jsonl");
    let report = verify_lines(&lines, &no_anchors, &[key("k1")]);
    assert!(report.passed(), "{report}");
    assert!(!report.instances[0].1.shut_down);
    // ...with it, the cut is reported at the first missing seq.
    let report = verify_lines(&lines, &written.anchors, &[key("k1")]);
    assert_eq!(
        failure(&report),
        (FailureKind::TruncatedTail, Some(9)),
        "{report}"
    );
}

#[tokio::test]
async fn verify_rejects_spliced_chain() {
    let dir = tempfile::tempdir().expect("test setup");
    let a = write_trail(dir.path(), "a", key("k1"), 10).await;
    let b = write_trail(dir.path(), "b", key("k1"), 10).await;
    let mut lines = read_lines(&a.trail);
    let other = read_lines(&b.trail);
    // Events 3 to 5 of another instance's chain, sealed with the same key, put in place of
    // this chain's own.
    lines.splice(3..6, other[3..6].iter().cloned());
    let report = verify_lines(&lines, &a.anchors, &[key("k1")]);
    assert_eq!(
        failure(&report),
        (FailureKind::Spliced, Some(3)),
        "{report}"
    );
}

#[tokio::test]
async fn verify_rejects_trail_sealed_with_a_withdrawn_key() {
    let dir = tempfile::tempdir().expect("test setup");
    let written = write_trail(dir.path(), "t", key("old"), 3).await;
    let report = verify_lines(&read_lines(&written.trail), &written.anchors, &[key("new")]);
    assert_eq!(
        failure(&report),
        (FailureKind::UnknownKey, Some(0)),
        "{report}"
    );
    // The same id with another secret is a different key: every hash fails.
    let impostor = ChainKey::new(
        "old",
        &SecretString::from("another-secret-0123456789abcdef0123"),
    )
    .expect("test setup");
    let report = verify_lines(&read_lines(&written.trail), &written.anchors, &[impostor]);
    assert_eq!(
        failure(&report),
        (FailureKind::Modified, Some(0)),
        "{report}"
    );
}

#[tokio::test]
async fn accepts_key_rotation_recorded_in_the_chain() {
    let dir = tempfile::tempdir().expect("test setup");
    let path = dir.path().join("rotating.jsonl");
    let sink = FileSink::open(FileSinkOptions {
        path: path.clone(),
        rotate_bytes: None,
        rotate_every: None,
        fsync: FsyncPolicy::EveryEvent,
    })
    .expect("test setup");
    let trail = AuditTrail::start(
        TrailOptions {
            key: key("k1"),
            ..TrailOptions::default()
        },
        vec![Box::new(sink)],
    );
    trail.record(&Record::new("start"));
    trail.rotate_key(key("k2"));
    trail.record(&Record::new("tools/call").str("principal", "alice"));
    trail.shutdown("test over").await;
    let lines = read_lines(&path);
    let events: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).expect("test setup"))
        .collect();
    assert_eq!(events[1]["event"], "key_rotated");
    assert_eq!(events[1]["key_id"], "k1");
    assert_eq!(events[2]["key_id"], "k2");
    let none = dir.path().join("none");
    assert!(verify_lines(&lines, &none, &[key("k1"), key("k2")]).passed());
    // Without the old key, the events it sealed cannot be checked.
    let report = verify_lines(&lines, &none, &[key("k2")]);
    assert_eq!(
        failure(&report),
        (FailureKind::UnknownKey, Some(0)),
        "{report}"
    );
}

#[tokio::test]
async fn accepts_chain_across_rotated_files() {
    let dir = tempfile::tempdir().expect("test setup");
    let path = dir.path().join("trail.jsonl");
    let sink = FileSink::open(FileSinkOptions {
        path: path.clone(),
        rotate_bytes: Some(2_000),
        rotate_every: None,
        fsync: FsyncPolicy::Every(Duration::from_millis(20)),
    })
    .expect("test setup");
    let trail = AuditTrail::start(
        TrailOptions {
            key: key("k1"),
            ..TrailOptions::default()
        },
        vec![Box::new(sink)],
    );
    trail.record(&Record::new("start"));
    for i in 0..40 {
        let id = i.to_string();
        let recorded = trail.record(&Record::new("tools/call").str("request_id", &id));
        recorded.durable().await.expect("test setup");
    }
    trail.shutdown("test over").await;

    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .expect("test setup")
        .map(|e| e.expect("test setup").path())
        .filter(|p| p != &path)
        .collect();
    files.sort();
    assert!(files.len() >= 3, "rotated into {files:?}");
    files.push(path);
    let mut lines = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("test setup");
        lines.extend(lines_of(&file.display().to_string(), &text));
    }
    let report = Verifier::new([key("k1")]).verify(&lines, &[]);
    assert!(report.passed(), "{report}");
    assert_eq!(report.events, 42);
    // Each rotated file after the first opens with the previous file's last hash.
    let second = std::fs::read_to_string(&files[1]).expect("test setup");
    let header: serde_json::Value =
        serde_json::from_str(second.lines().next().expect("test setup")).expect("test setup");
    assert!(
        header["file_start"]["previous_hash"].is_string(),
        "{header}"
    );

    // Leaving a middle file out is a gap in the chain.
    let without_middle: Vec<TrailLine> = lines
        .iter()
        .filter(|l| !l.location.starts_with(&files[1].display().to_string()))
        .cloned()
        .collect();
    let report = Verifier::new([key("k1")]).verify(&without_middle, &[]);
    assert_eq!(failure(&report).0, FailureKind::Missing, "{report}");
}

/// A sink on `/dev/full`: every write fails with ENOSPC, as on a full disk.
fn full_disk() -> Box<FileSink> {
    Box::new(
        FileSink::open(FileSinkOptions {
            path: PathBuf::from("/dev/full"),
            rotate_bytes: None,
            rotate_every: None,
            fsync: FsyncPolicy::EveryEvent,
        })
        .expect("test setup"),
    )
}

#[tokio::test]
async fn refuses_calls_while_the_durable_sink_fails_when_failing_closed() {
    let trail = AuditTrail::start(
        TrailOptions {
            write_timeout: Duration::from_millis(300),
            ..TrailOptions::default()
        },
        vec![full_disk()],
    );
    assert!(trail.admits_calls().is_ok());
    let recorded = trail.record(&Record::new("tools/call").str("principal", "alice"));
    let refused = recorded.durable().await.unwrap_err();
    assert!(refused.0.contains("/dev/full"), "{refused}");
    let refused = trail.admits_calls().unwrap_err();
    assert!(refused.0.contains("is failing"), "{refused}");
}

#[tokio::test]
async fn refuses_calls_once_the_buffer_is_full() {
    let trail = AuditTrail::start(
        TrailOptions {
            policy: FailurePolicy::Buffer,
            buffer_events: 3,
            ..TrailOptions::default()
        },
        vec![full_disk()],
    );
    for _ in 0..3 {
        assert!(trail.admits_calls().is_ok());
        let recorded = trail.record(&Record::new("tools/call"));
        // Buffered: the call is answered while its event waits.
        recorded.durable().await.expect("test setup");
    }
    let refused = trail.admits_calls().unwrap_err();
    assert!(refused.0.contains("3 events waiting"), "{refused}");
}

/// `lines` from `from` on sealed again with `secret` under `key_id`, the chain recomputed as
/// whoever holds that secret (the empty one for `unkeyed`) would: each event's `prev` is the
/// new hash of the one before, and the line is written in the chain's own form.
fn reseal(lines: &[String], from: usize, key_id: &str, secret: &[u8]) -> Vec<String> {
    use hmac::{Hmac, Mac as _};
    let mut out = lines.to_vec();
    let mut prev: Option<String> = None;
    for line in out.iter_mut().skip(from) {
        let mut value: serde_json::Value = serde_json::from_str(line).expect("test setup");
        let event = value.as_object_mut().expect("test setup");
        event.remove("hash");
        event.insert("key_id".into(), key_id.into());
        if let Some(prev) = &prev {
            event.insert("prev".into(), prev.clone().into());
        }
        let canonical = serde_json_canonicalizer::to_vec(&value).expect("test setup");
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).expect("test setup");
        mac.update(&canonical);
        let hash: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        value["hash"] = hash.clone().into();
        // serde_json writes the object's names in byte order, as the chain does.
        *line = value.to_string();
        prev = Some(hash);
    }
    out
}

#[tokio::test]
async fn rejects_unkeyed_events_when_keys_are_given() {
    let dir = tempfile::tempdir().expect("test setup");
    let written = write_trail(dir.path(), "t", key("k1"), 5).await;
    // Whoever can write the file rewrites every line, sealed without a key.
    let mut forged = read_lines(&written.trail);
    forged[3] = forged[3].replace("\"principal\":\"bob\"", "\"principal\":\"mallory\"");
    let forged = reseal(&forged, 0, "unkeyed", b"");
    let none = dir.path().join("none");
    let report = verify_lines(&forged, &none, &[key("k1")]);
    assert_eq!(
        failure(&report),
        (FailureKind::Unkeyed, Some(0)),
        "{report}"
    );
    // A keyless deployment opts in, and the report says what that does not prove.
    let trail = lines_of("trail.jsonl", &forged.join("\n"));
    let report = Verifier::new([key("k1")])
        .allowing_unkeyed()
        .verify(&trail, &[]);
    assert!(report.passed(), "{report}");
    assert_eq!(report.unkeyed, 7);
    assert!(report.to_string().contains("WARNING"), "{report}");
}

#[tokio::test]
async fn rejects_unkeyed_anchor_when_keys_are_given() {
    let dir = tempfile::tempdir().expect("test setup");
    let written = write_trail(dir.path(), "t", key("k1"), 5).await;
    let lines = read_lines(&written.trail);
    let text = std::fs::read_to_string(&written.anchors).expect("test setup");
    let (_, anchor) = parse_anchors("anchors.jsonl", &text)
        .expect("test setup")
        .remove(0);
    // An anchor placed by whoever can write the anchor file: sealed without a key.
    let unkeyed = ChainKey::unkeyed();
    let forged = Anchor {
        key_id: unkeyed.id().to_owned(),
        mac: String::new(),
        ..anchor
    };
    let canonical = serde_json_canonicalizer::to_vec(&forged).expect("test setup");
    let mac = {
        use hmac::{Hmac, Mac as _};
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"").expect("test setup");
        mac.update(&canonical);
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let forged = Anchor { mac, ..forged };
    let anchors = vec![("anchors.jsonl:1".to_owned(), forged)];
    let trail = lines_of("trail.jsonl", &lines.join("\n"));
    let report = Verifier::new([key("k1")]).verify(&trail, &anchors);
    assert_eq!(
        failure(&report),
        (FailureKind::Unkeyed, Some(6)),
        "{report}"
    );
    let report = Verifier::new([key("k1")])
        .allowing_unkeyed()
        .verify(&trail, &anchors);
    assert!(report.passed(), "{report}");
}

#[tokio::test]
async fn rejects_key_change_without_key_rotated() {
    let dir = tempfile::tempdir().expect("test setup");
    let written = write_trail(dir.path(), "t", key("k1"), 8).await;
    // The tail rewritten by someone who holds another key the verifier trusts, such as one
    // withdrawn from sealing but still given to check older trails.
    let k2 = format!("{}-0123456789abcdef0123456789abcdef", "k2");
    let forged = reseal(&read_lines(&written.trail), 5, "k2", k2.as_bytes());
    let none = dir.path().join("none");
    let report = verify_lines(&forged, &none, &[key("k1"), key("k2")]);
    assert_eq!(
        failure(&report),
        (FailureKind::KeyChanged, Some(5)),
        "{report}"
    );
    // The untouched trail names its server and its one key.
    let report = verify_lines(&read_lines(&written.trail), &none, &[key("k1"), key("k2")]);
    assert!(report.passed(), "{report}");
    assert_eq!(report.instances[0].1.server.as_deref(), Some("test"));
    assert_eq!(report.instances[0].1.keys, ["k1"]);
    assert!(
        report.to_string().contains("server test, keys k1"),
        "{report}"
    );
}

#[tokio::test]
async fn rejects_event_with_duplicate_key() {
    let dir = tempfile::tempdir().expect("test setup");
    let written = write_trail(dir.path(), "t", key("k1"), 5).await;
    let mut lines = read_lines(&written.trail);
    // A reader keeping the first value sees another outcome; the hash covers the last one.
    assert!(lines[3].starts_with('{'));
    lines[3] = lines[3].replacen('{', "{\"outcome\":\"denied\",", 1);
    let report = verify_lines(&lines, &written.anchors, &[key("k1")]);
    let failed = report.failure.clone().expect("refused");
    assert_eq!(failed.kind, FailureKind::Modified, "{report}");
    assert_eq!(failed.location, "trail.jsonl:4", "{report}");
    assert!(
        failed.detail.contains("repeats the field `outcome`"),
        "{report}"
    );
}

#[tokio::test]
async fn rejects_event_not_in_the_form_the_chain_writes() {
    let dir = tempfile::tempdir().expect("test setup");
    let written = write_trail(dir.path(), "t", key("k1"), 5).await;
    let mut lines = read_lines(&written.trail);
    // The same values, spelled otherwise: the hash still verifies, the line is refused.
    lines[2] = lines[2].replacen("\"principal\":", "\"principal\" : ", 1);
    let report = verify_lines(&lines, &written.anchors, &[key("k1")]);
    assert_eq!(failure(&report), (FailureKind::Modified, None), "{report}");
    assert!(
        report
            .to_string()
            .contains("not written as the chain writes it"),
        "{report}"
    );
}

#[tokio::test]
async fn accepts_lists_and_counts_refused_field_names() {
    let dir = tempfile::tempdir().expect("test setup");
    let path = dir.path().join("lists.jsonl");
    let sink = FileSink::open(FileSinkOptions {
        path: path.clone(),
        rotate_bytes: None,
        rotate_every: None,
        fsync: FsyncPolicy::EveryEvent,
    })
    .expect("test setup");
    let trail = AuditTrail::start(
        TrailOptions {
            key: key("k1"),
            ..TrailOptions::default()
        },
        vec![Box::new(sink)],
    );
    let approvers = ["bob example", "carol\u{202e}"];
    trail.record(
        &Record::new("tools/call")
            .list("approvers", &approvers)
            .str("\u{e9}t\u{e9}", "dropped"),
    );
    trail.shutdown("test over").await;
    let lines = read_lines(&path);
    let event: serde_json::Value = serde_json::from_str(&lines[0]).expect("test setup");
    assert_eq!(
        event["approvers"],
        serde_json::json!(["bob example", "carol\u{202e}"])
    );
    assert_eq!(event["dropped_fields"], 1);
    assert!(!lines[0].contains('\u{202e}'), "{}", lines[0]);
    let none = dir.path().join("none");
    let report = verify_lines(&lines, &none, &[key("k1")]);
    assert!(report.passed(), "{report}");
}

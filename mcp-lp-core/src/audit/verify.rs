//! `audit verify`: check a trail's chains with their keys, and its anchors, reporting the first
//! bad event and why.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};

use super::AUDIT_TARGET;
use super::anchor::{Anchor, constant_time_eq};
use super::chain::{ChainKey, GENESIS, UNKEYED, expected_line};
use super::record::{FieldValue, MAX_EXACT_INT, valid_name};

/// Why a trail failed verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureKind {
    /// An event's content does not match its hash, or a line is not an event.
    Modified,
    /// Events are missing between two that are present.
    Missing,
    /// An event that the key did not seal, or a copy of an event, sits in the chain.
    Inserted,
    /// Events are out of order.
    Reordered,
    /// The trail ends before an anchored event.
    TruncatedTail,
    /// An event is sealed with a key that was not given.
    UnknownKey,
    /// An event of another chain, or that does not follow its predecessor, sits in the trail.
    Spliced,
    /// An event or anchor is sealed without a key (`unkeyed`) where keys were given.
    Unkeyed,
    /// An instance's key changes without a `key_rotated` event naming the new key.
    KeyChanged,
}

impl FailureKind {
    /// The kind's name in reports: `modified`, `missing`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Modified => "modified",
            Self::Missing => "missing",
            Self::Inserted => "inserted",
            Self::Reordered => "reordered",
            Self::TruncatedTail => "truncated tail",
            Self::UnknownKey => "unknown key",
            Self::Spliced => "spliced",
            Self::Unkeyed => "unkeyed",
            Self::KeyChanged => "key changed",
        }
    }
}

/// The first problem found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// What is wrong.
    pub kind: FailureKind,
    /// The instance whose chain is broken, when known.
    pub instance: Option<String>,
    /// The first bad sequence number, when known.
    pub seq: Option<u64>,
    /// Where: `file:line`, or the anchor.
    pub location: String,
    /// The explanation.
    pub detail: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind.as_str())?;
        if let Some(seq) = self.seq {
            write!(f, " at seq {seq}")?;
        }
        if let Some(instance) = &self.instance {
            write!(f, " of instance {instance}")?;
        }
        write!(f, " ({}): {}", self.location, self.detail)
    }
}

/// One instance's chain as verified.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InstanceSummary {
    /// The server that wrote it, as its `start` event names it.
    pub server: Option<String>,
    /// The keys that sealed it, in order: a change is a recorded rotation.
    pub keys: Vec<String>,
    /// Events seen.
    pub events: u64,
    /// The last sequence number verified.
    pub last_seq: Option<u64>,
    /// Whether the chain ends with its `shutdown` event.
    pub shut_down: bool,
}

/// What verification found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Report {
    /// Events verified.
    pub events: u64,
    /// Per instance, in order of first appearance.
    pub instances: Vec<(String, InstanceSummary)>,
    /// Events per kind (`tools/call`, `start`, ...).
    pub by_event: BTreeMap<String, u64>,
    /// `tools/call` events per outcome.
    pub by_outcome: BTreeMap<String, u64>,
    /// Events per principal.
    pub by_principal: BTreeMap<String, u64>,
    /// Anchors checked.
    pub anchors: usize,
    /// Events and anchors accepted without a key, which `--allow-unkeyed` allows: they prove
    /// the trail undamaged, not unforged.
    pub unkeyed: u64,
    /// The first problem, if any.
    pub failure: Option<Failure>,
}

impl Report {
    /// Whether the trail verified.
    pub fn passed(&self) -> bool {
        self.failure.is_none()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.failure {
            Some(failure) => writeln!(f, "FAILED: {failure}")?,
            None => writeln!(
                f,
                "ok: {} events in {} chains verified, {} anchors checked",
                self.events,
                self.instances.len(),
                self.anchors
            )?,
        }
        if self.unkeyed > 0 {
            writeln!(
                f,
                "  WARNING: {} events and anchors were sealed without a key and accepted (--allow-unkeyed): they show the trail undamaged, not unforged; anyone who can write the trail can rewrite them",
                self.unkeyed
            )?;
        }
        for (instance, summary) in &self.instances {
            let last = summary
                .last_seq
                .map_or_else(|| "none".to_owned(), |s| s.to_string());
            let end = if summary.shut_down {
                "ends with shutdown"
            } else {
                "no shutdown (running, or stopped without one)"
            };
            let server = summary.server.as_deref().unwrap_or("unnamed");
            writeln!(
                f,
                "  instance {instance}: server {server}, keys {}, {} events, last seq {last}, {end}",
                summary.keys.join(" -> "),
                summary.events
            )?;
        }
        if self.anchors == 0 {
            writeln!(
                f,
                "  no anchors given: a cut-off tail cannot be told from an idle server"
            )?;
        }
        for (title, counts) in [
            ("events", &self.by_event),
            ("outcomes", &self.by_outcome),
            ("principals", &self.by_principal),
        ] {
            if !counts.is_empty() {
                let items: Vec<_> = counts.iter().map(|(k, n)| format!("{k} {n}")).collect();
                writeln!(f, "  {title}: {}", items.join(", "))?;
            }
        }
        Ok(())
    }
}

/// One line of a trail with where it came from.
#[derive(Debug, Clone)]
pub struct TrailLine {
    /// `file:line` or a row id.
    pub location: String,
    /// The line.
    pub text: String,
}

/// Checks trails with a set of keys.
#[derive(Debug, Default)]
pub struct Verifier {
    keys: HashMap<String, ChainKey>,
    /// Whether lines that are not audit events (other logs) may stand between events.
    mixed: bool,
    /// Whether events and anchors sealed without a key are accepted.
    allow_unkeyed: bool,
}

struct Entry {
    location: String,
    event: Map<String, Value>,
    instance: String,
    seq: u64,
}

#[derive(Default)]
struct ChainState {
    next: u64,
    last_hash: String,
    /// The key that sealed the last event, and whether that event rotated to another.
    key_id: String,
    rotated_to: Option<String>,
    summary: InstanceSummary,
}

impl Verifier {
    /// A verifier knowing `keys`. An event or anchor sealed without a key (`unkeyed`) is
    /// refused: whoever can write a trail can seal it so. See
    /// [`Verifier::allowing_unkeyed`].
    pub fn new(keys: impl IntoIterator<Item = ChainKey>) -> Self {
        let keys = keys.into_iter().map(|k| (k.id().to_owned(), k)).collect();
        Self {
            keys,
            mixed: false,
            allow_unkeyed: false,
        }
    }

    /// Accept events and anchors sealed without a key, for a deployment that configures none.
    /// The report counts them and says what they do not prove.
    #[must_use]
    pub fn allowing_unkeyed(mut self) -> Self {
        self.allow_unkeyed = true;
        self.keys.insert(UNKEYED.to_owned(), ChainKey::unkeyed());
        self
    }

    /// Pass over lines that are not audit events, as a captured stderr holds other logs
    /// between them. By default every line of a trail must be an audit event (or a rotated
    /// file's header, on its first line): an event edited into something else is a
    /// modification, not a line to skip.
    #[must_use]
    pub fn allowing_other_lines(mut self) -> Self {
        self.mixed = true;
        self
    }

    /// Verify `lines` (the trail's files in order, or its table in insertion order) and
    /// `anchors`.
    pub fn verify(&self, lines: &[TrailLine], anchors: &[(String, Anchor)]) -> Report {
        let mut report = Report::default();
        match self.check(lines, anchors, &mut report) {
            Ok(()) => {}
            Err(failure) => report.failure = Some(failure),
        }
        report
    }

    fn check(
        &self,
        lines: &[TrailLine],
        anchors: &[(String, Anchor)],
        report: &mut Report,
    ) -> Result<(), Failure> {
        let entries = parse(lines, self.mixed)?;
        let anchored: HashSet<(&str, u64)> = anchors
            .iter()
            .map(|(_, a)| (a.instance.as_str(), a.seq))
            .collect();
        let mut anchored_hashes: HashMap<(String, u64), String> = HashMap::new();
        let mut chains: HashMap<String, ChainState> = HashMap::new();
        let mut order: Vec<String> = Vec::new();
        let mut seen: HashMap<(String, u64), String> = HashMap::new();

        for (i, entry) in entries.iter().enumerate() {
            let fail = |kind, detail: String| Failure {
                kind,
                instance: Some(entry.instance.clone()),
                seq: Some(entry.seq),
                location: entry.location.clone(),
                detail,
            };
            let text_field = |name: &str| entry.event.get(name).and_then(Value::as_str);
            let (Some(prev), Some(hash), Some(key_id)) =
                (text_field("prev"), text_field("hash"), text_field("key_id"))
            else {
                return Err(fail(
                    FailureKind::Modified,
                    "the event lacks `prev`, `hash` or `key_id`".into(),
                ));
            };
            if key_id == UNKEYED && !self.allow_unkeyed {
                return Err(fail(
                    FailureKind::Unkeyed,
                    "sealed without a key, which anyone who can write the trail can do; give --allow-unkeyed only for a deployment that configures no [audit] keys".into(),
                ));
            }
            let Some(key) = self.keys.get(key_id) else {
                return Err(fail(
                    FailureKind::UnknownKey,
                    format!("sealed with key `{key_id}`, which was not given"),
                ));
            };
            let mut unsealed = entry.event.clone();
            unsealed.remove("hash");
            let canonical = serde_json_canonicalizer::to_vec(&unsealed).unwrap_or_default();
            let sealed_here = constant_time_eq(key.mac_hex(&canonical).as_bytes(), hash.as_bytes());
            let state = chains.get(&entry.instance);

            if !sealed_here {
                let follows = entries[i + 1..]
                    .iter()
                    .find(|e| e.instance == entry.instance);
                let real_follows = follows.is_some_and(|next| {
                    next.seq == entry.seq
                        || state.is_some_and(|s| {
                            next.event.get("prev").and_then(Value::as_str)
                                == Some(s.last_hash.as_str())
                        })
                });
                return Err(if real_follows {
                    fail(
                        FailureKind::Inserted,
                        "an event the key did not seal stands where the next event belongs".into(),
                    )
                } else {
                    fail(
                        FailureKind::Modified,
                        "the event's hash does not match its content".into(),
                    )
                });
            }

            match state {
                None if entry.seq == 0 && prev == GENESIS => {}
                None => {
                    return Err(fail(
                        FailureKind::Spliced,
                        format!(
                            "an event of instance {}, whose chain does not start in this trail, stands here",
                            entry.instance
                        ),
                    ));
                }
                Some(state) if entry.seq == state.next && prev == state.last_hash => {}
                Some(state) if entry.seq == state.next => {
                    return Err(fail(
                        FailureKind::Spliced,
                        format!(
                            "the event does not follow event {} of its chain",
                            state.next.saturating_sub(1)
                        ),
                    ));
                }
                Some(state) if entry.seq > state.next => {
                    let expected = state.next;
                    let later = entries[i + 1..]
                        .iter()
                        .any(|e| e.instance == entry.instance && e.seq == expected);
                    return Err(if later {
                        fail(
                            FailureKind::Reordered,
                            format!("event {} comes before event {expected}", entry.seq),
                        )
                    } else {
                        fail(
                            FailureKind::Missing,
                            if entry.seq - expected == 1 {
                                format!("event {expected} is missing")
                            } else {
                                format!("events {expected} to {} are missing", entry.seq - 1)
                            },
                        )
                    });
                }
                Some(state) => {
                    let copy =
                        seen.get(&(entry.instance.clone(), entry.seq)) == Some(&hash.to_owned());
                    return Err(if copy {
                        fail(
                            FailureKind::Inserted,
                            format!(
                                "a copy of event {} stands after event {}",
                                entry.seq,
                                state.next - 1
                            ),
                        )
                    } else {
                        fail(
                            FailureKind::Reordered,
                            format!("event {} comes after event {}", entry.seq, state.next - 1),
                        )
                    });
                }
            }

            if let Some(state) = state
                && state.key_id != key_id
                && state.rotated_to.as_deref() != Some(key_id)
            {
                return Err(fail(
                    FailureKind::KeyChanged,
                    format!(
                        "sealed with key `{key_id}` after key `{}`, and the event before it is no `key_rotated` to `{key_id}`",
                        state.key_id
                    ),
                ));
            }

            if !chains.contains_key(&entry.instance) {
                order.push(entry.instance.clone());
            }
            let kind = text_field("event").unwrap_or("");
            let state = chains.entry(entry.instance.clone()).or_default();
            state.next = entry.seq.saturating_add(1);
            state.last_hash = hash.to_owned();
            if state.key_id != key_id {
                state.summary.keys.push(key_id.to_owned());
                state.key_id = key_id.to_owned();
            }
            state.rotated_to = (kind == "key_rotated" && text_field("from") == Some(key_id))
                .then(|| text_field("to").unwrap_or_default().to_owned());
            if kind == "start" && state.summary.server.is_none() {
                state.summary.server = text_field("server").map(str::to_owned);
            }
            if key_id == UNKEYED {
                report.unkeyed += 1;
            }
            state.summary.events += 1;
            state.summary.last_seq = Some(entry.seq);
            state.summary.shut_down = kind == "shutdown";
            seen.insert((entry.instance.clone(), entry.seq), hash.to_owned());
            if anchored.contains(&(entry.instance.as_str(), entry.seq)) {
                anchored_hashes.insert((entry.instance.clone(), entry.seq), hash.to_owned());
            }
            report.events += 1;
            *report.by_event.entry(kind.to_owned()).or_default() += 1;
            if kind == "tools/call"
                && let Some(outcome) = text_field("outcome")
            {
                *report.by_outcome.entry(outcome.to_owned()).or_default() += 1;
            }
            if let Some(principal) = text_field("principal") {
                *report.by_principal.entry(principal.to_owned()).or_default() += 1;
            }
        }

        report.instances = order
            .iter()
            .map(|id| (id.clone(), chains[id].summary.clone()))
            .collect();

        for (location, anchor) in anchors {
            let fail = |kind, seq, detail: String| Failure {
                kind,
                instance: Some(anchor.instance.clone()),
                seq,
                location: location.clone(),
                detail,
            };
            if anchor.key_id == UNKEYED && !self.allow_unkeyed {
                return Err(fail(
                    FailureKind::Unkeyed,
                    Some(anchor.seq),
                    "the anchor is sealed without a key, which anyone who can write the anchor file can do".into(),
                ));
            }
            let sealed = self
                .keys
                .get(&anchor.key_id)
                .is_some_and(|key| anchor.verifies_with(key));
            if !sealed {
                return Err(fail(
                    FailureKind::Modified,
                    Some(anchor.seq),
                    format!(
                        "the anchor is not sealed by a given key (`{}`)",
                        anchor.key_id
                    ),
                ));
            }
            match chains.get(&anchor.instance) {
                None => {
                    return Err(fail(
                        FailureKind::TruncatedTail,
                        Some(0),
                        format!(
                            "instance {} was anchored at seq {}, but none of its events are in the trail",
                            anchor.instance, anchor.seq
                        ),
                    ));
                }
                Some(state) if state.next <= anchor.seq => {
                    return Err(fail(
                        FailureKind::TruncatedTail,
                        Some(state.next),
                        format!(
                            "the trail ends at seq {}, but the chain was anchored at seq {}",
                            state.next.saturating_sub(1),
                            anchor.seq
                        ),
                    ));
                }
                Some(_) => {
                    let key = (anchor.instance.clone(), anchor.seq);
                    if anchored_hashes.get(&key) != Some(&anchor.hash) {
                        return Err(fail(
                            FailureKind::Modified,
                            Some(anchor.seq),
                            "the event's hash differs from the one anchored".into(),
                        ));
                    }
                }
            }
            if anchor.key_id == UNKEYED {
                report.unkeyed += 1;
            }
            report.anchors += 1;
        }
        Ok(())
    }
}

/// The audit events of `lines`. A rotated file's header (`file_start`) is passed over on the
/// first line of its file; other lines are passed over only when `mixed`, else they are
/// modifications. A line carrying any of the chain's fields is an event, whatever its `target`.
fn parse(lines: &[TrailLine], mixed: bool) -> Result<Vec<Entry>, Failure> {
    const CHAIN: &[&str] = &["seq", "prev", "hash", "instance", "key_id"];
    let mut entries = Vec::with_capacity(lines.len());
    for line in lines {
        let text = line.text.trim_end_matches(['\r', '\n']);
        if text.trim().is_empty() {
            continue;
        }
        let unreadable = |detail: &str| Failure {
            kind: FailureKind::Modified,
            instance: None,
            seq: None,
            location: line.location.clone(),
            detail: detail.to_owned(),
        };
        let fields = match serde_json::from_str::<Fields>(text) {
            Ok(fields) => fields.0,
            Err(e) if e.to_string().contains(DUPLICATE) => {
                return Err(unreadable(&format!(
                    "the line {e}: a reader keeping either value would see another event"
                )));
            }
            Err(_) => {
                if mixed {
                    continue;
                }
                return Err(unreadable("the line is not a JSON object"));
            }
        };
        let event: Map<String, Value> = fields.iter().cloned().collect();
        let is_event = event.get("target").and_then(Value::as_str) == Some(AUDIT_TARGET)
            || CHAIN.iter().any(|field| event.contains_key(*field));
        if !is_event {
            let header = event.len() == 1
                && event.contains_key("file_start")
                && line.location.ends_with(":1");
            if header || mixed {
                continue;
            }
            return Err(unreadable("the line is not an audit event"));
        }
        if let Some(problem) = not_canonical(&fields, text) {
            return Err(unreadable(&problem));
        }
        let (Some(instance), Some(seq)) = (
            event.get("instance").and_then(Value::as_str),
            event.get("seq").and_then(Value::as_u64),
        ) else {
            return Err(unreadable("the event's `instance` or `seq` is unreadable"));
        };
        entries.push(Entry {
            location: line.location.clone(),
            instance: instance.to_owned(),
            seq,
            event,
        });
    }
    Ok(entries)
}

/// What the duplicate-name error says, to tell it from a line that is not JSON.
const DUPLICATE: &str = "repeats the field";

/// A JSON object's fields in the order written, refusing a name given twice: serde_json keeps
/// the last value of a repeated name, another reader may keep the first.
struct Fields(Vec<(String, Value)>);

impl<'de> serde::Deserialize<'de> for Fields {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Object;
        impl<'de> Visitor<'de> for Object {
            type Value = Fields;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields, A::Error> {
                let mut fields: Vec<(String, Value)> = Vec::new();
                let mut names = HashSet::new();
                while let Some((name, value)) = map.next_entry::<String, Value>()? {
                    if !names.insert(name.clone()) {
                        return Err(de::Error::custom(format!(
                            "{DUPLICATE} `{}`",
                            name.escape_debug()
                        )));
                    }
                    fields.push((name, value));
                }
                Ok(Fields(fields))
            }
        }
        deserializer.deserialize_map(Object)
    }
}

/// Why the event `text` (parsed into `fields`) is not exactly the line the chain writes for
/// its fields, if it is not: a name outside printable ASCII, a value of a type the chain never
/// writes, or any other spelling of the same values. A hash covers values, not spelling; the
/// line must be the one spelling a reader cannot take two ways.
fn not_canonical(fields: &[(String, Value)], text: &str) -> Option<String> {
    if let Some((name, _)) = fields.iter().find(|(name, _)| !valid_name(name)) {
        return Some(format!(
            "field name `{}` is not printable ASCII, which the chain never writes",
            name.escape_debug()
        ));
    }
    let hash = fields
        .iter()
        .find(|(name, _)| name == "hash")
        .and_then(|(_, value)| value.as_str())?;
    let mut sorted: Vec<&(String, Value)> = fields.iter().filter(|(n, _)| n != "hash").collect();
    sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    // The lists' items first, so that the values below can borrow them.
    let mut lists: Vec<Vec<&str>> = Vec::new();
    for (name, value) in &sorted {
        if let Value::Array(items) = value {
            match items.iter().map(Value::as_str).collect::<Option<Vec<_>>>() {
                Some(items) => lists.push(items),
                None => return Some(format!("field `{name}` is a list of other than strings")),
            }
        }
    }
    let mut lists = lists.iter();
    let mut values = Vec::with_capacity(sorted.len());
    for (name, value) in &sorted {
        let value = match value {
            Value::String(text) => FieldValue::Str(text),
            Value::Bool(b) => FieldValue::Bool(*b),
            Value::Number(n) => match n.as_u64().filter(|n| *n <= MAX_EXACT_INT) {
                Some(n) => FieldValue::Int(n),
                None => return Some(format!("field `{name}` is not an integer the chain writes")),
            },
            Value::Array(_) => FieldValue::List(lists.next().map_or(&[], Vec::as_slice)),
            _ => {
                return Some(format!(
                    "field `{name}` is of a type the chain never writes"
                ));
            }
        };
        values.push((name.as_str(), value));
    }
    let expected = expected_line(&values, hash);
    (expected != text).then(|| {
        "the line is not written as the chain writes it (field order, spacing or escaping differs)"
            .to_owned()
    })
}

/// Read anchors from `text`, one per line; `source` names the file in locations.
pub fn parse_anchors(source: &str, text: &str) -> Result<Vec<(String, Anchor)>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            let location = format!("{source}:{}", i + 1);
            serde_json::from_str::<Anchor>(line)
                .map(|anchor| (location.clone(), anchor))
                .map_err(|e| format!("{location}: not an anchor: {e}"))
        })
        .collect()
}

/// The lines of `text` with their `source:line` locations.
pub fn lines_of(source: &str, text: &str) -> Vec<TrailLine> {
    text.lines()
        .enumerate()
        .map(|(i, line)| TrailLine {
            location: format!("{source}:{}", i + 1),
            text: line.to_owned(),
        })
        .collect()
}

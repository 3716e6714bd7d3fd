//! What one audit event says, before the chain seals it: its kind, its level and its fields.

/// A field's value. Numbers are integers: a chained event is hashed in its RFC 8785 canonical
/// form, where an integer above 2^53 would lose precision, so larger values are capped there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValue<'a> {
    /// A string.
    Str(&'a str),
    /// A non-negative integer.
    Int(u64),
    /// A boolean.
    Bool(bool),
    /// A list of strings, such as the approvers of a call: a JSON array, so that no value can
    /// be mistaken for two.
    List(&'a [&'a str]),
}

/// The largest integer an RFC 8785 reader gets back exactly.
pub(crate) const MAX_EXACT_INT: u64 = (1 << 53) - 1;

/// Field names the chain writes itself; a record cannot set them.
pub(crate) const CHAIN_FIELDS: &[&str] = &[
    "event",
    "hash",
    "instance",
    "key_id",
    "level",
    "message",
    "prev",
    "seq",
    "target",
    "timestamp",
];

/// One audit event: `tools/call`, `start`, `auth_refused`, ... with its fields. The trail adds
/// the chain's fields (`seq`, `prev`, `hash`, `instance`, `key_id`, `timestamp`) when it
/// records it.
///
/// ```
/// use mcp_lp::audit::Record;
///
/// let record = Record::new("secret_resolved")
///     .str("name", "db.read.url")
///     .str("reference", "{ file = \"/vault/secrets/db-read\" }");
/// assert_eq!(record.event(), "secret_resolved");
/// ```
#[derive(Debug, Clone)]
pub struct Record<'a> {
    event: &'a str,
    warn: bool,
    fields: Vec<(&'a str, FieldValue<'a>)>,
    /// Fields refused for their name (reserved, or not ASCII); the chain counts them in
    /// `dropped_fields` so that their loss is on record.
    dropped: u64,
}

impl<'a> Record<'a> {
    /// An event of kind `event`, at level INFO.
    pub fn new(event: &'a str) -> Self {
        Self {
            event,
            warn: false,
            fields: Vec::with_capacity(16),
            dropped: 0,
        }
    }

    /// The event's kind.
    pub fn event(&self) -> &str {
        self.event
    }

    /// Mark the event a refusal or failure: level WARN.
    #[must_use]
    pub fn warn(mut self) -> Self {
        self.warn = true;
        self
    }

    /// Whether the event is at level WARN.
    pub fn is_warn(&self) -> bool {
        self.warn
    }

    /// Add a string field.
    #[must_use]
    pub fn str(mut self, name: &'a str, value: &'a str) -> Self {
        self.push(name, FieldValue::Str(value));
        self
    }

    /// Add a string field when there is a value.
    #[must_use]
    pub fn opt_str(self, name: &'a str, value: Option<&'a str>) -> Self {
        match value {
            Some(value) => self.str(name, value),
            None => self,
        }
    }

    /// Add an integer field.
    #[must_use]
    pub fn int(mut self, name: &'a str, value: u64) -> Self {
        self.push(name, FieldValue::Int(value));
        self
    }

    /// Add an integer field when there is a value.
    #[must_use]
    pub fn opt_int(self, name: &'a str, value: Option<u64>) -> Self {
        match value {
            Some(value) => self.int(name, value),
            None => self,
        }
    }

    /// Add a boolean field.
    #[must_use]
    pub fn bool(mut self, name: &'a str, value: bool) -> Self {
        self.push(name, FieldValue::Bool(value));
        self
    }

    /// Add a list of strings, written as a JSON array.
    #[must_use]
    pub fn list(mut self, name: &'a str, values: &'a [&'a str]) -> Self {
        self.push(name, FieldValue::List(values));
        self
    }

    /// How many fields were refused for their name.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    pub(crate) fn push(&mut self, name: &'a str, value: FieldValue<'a>) {
        // Kept in RFC 8785 key order as fields arrive, so sealing merges them with the chain's
        // own fields without sorting. RFC 8785 orders names by UTF-16 code units, which equals
        // byte order only for ASCII: a name outside printable ASCII is refused rather than put
        // in an order a verifier would recompute differently. A repeated name replaces the
        // earlier value; the chain's own names are refused.
        if !valid_name(name) || CHAIN_FIELDS.contains(&name) {
            tracing::error!(field = %name.escape_debug(), "audit field refused: reserved, or not printable ASCII");
            self.dropped += 1;
            return;
        }
        match self
            .fields
            .binary_search_by(|(n, _)| n.as_bytes().cmp(name.as_bytes()))
        {
            Ok(at) => self.fields[at].1 = value,
            Err(at) => self.fields.insert(at, (name, value)),
        }
    }

    pub(crate) fn fields(&self) -> &[(&'a str, FieldValue<'a>)] {
        &self.fields
    }
}

/// Whether `name` may name an audit field: 1 to 64 printable ASCII characters, no quote or
/// backslash.
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| (0x21..0x7f).contains(&b) && b != b'"' && b != b'\\')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_non_ascii_audit_field_names() {
        let record = Record::new("tools/call")
            .str("principal", "alice")
            .str("\u{e9}t\u{e9}", "summer")
            .str("na\u{ef}ve", "x")
            .str("seq", "7");
        assert_eq!(record.dropped(), 3);
        let names: Vec<&str> = record.fields().iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["principal"]);
    }
}

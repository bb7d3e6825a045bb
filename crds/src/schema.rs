//! OpenAPI schema pieces the derive cannot express alone: Kubernetes quantities, calendar dates,
//! condition lists, and the regular expressions shared by several kinds.

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};

use crate::conditions::Condition;

/// A non-negative Kubernetes quantity (`500m`, `2`, `1.5Gi`, `100M`), as controller-gen writes it.
pub const QUANTITY_PATTERN: &str = r"^(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$";

/// A DNS label (RFC 1123): the shape of a namespace or service name.
pub const DNS_LABEL_PATTERN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";

/// Whether `name` matches [`DNS_LABEL_PATTERN`] and has at most 63 characters.
pub fn is_dns_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    (1..=63).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first() != Some(&b'-')
        && bytes.last() != Some(&b'-')
}

/// A DNS subdomain (RFC 1123): the shape of most Kubernetes object names.
pub const DNS_SUBDOMAIN_PATTERN: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

/// A plain e-mail address: something, one `@`, a domain with a dot.
pub const EMAIL_PATTERN: &str = r"^[^@\s]+@[^@\s]+\.[^@\s]+$";

/// One line of text for people (a brand, a contract holder, a contact's name) that may reach
/// an e-mail: no control characters (C0 with CR, LF and NUL; DEL; C1), which could forge a
/// header, and no bidirectional overrides or isolates (U+202A–U+202E, U+2066–U+2069), which
/// could disguise what a reader sees. Go and Rust regular expressions both read `\x{..}`.
pub const SINGLE_LINE_TEXT_PATTERN: &str =
    r"^[^\x00-\x1F\x7F-\x9F\x{202A}-\x{202E}\x{2066}-\x{2069}]*$";

/// Text of several lines for people (an incident's cause): as [`SINGLE_LINE_TEXT_PATTERN`]
/// but line feeds and tabs are allowed (carriage returns are not).
pub const MULTI_LINE_TEXT_PATTERN: &str =
    r"^[^\x00-\x08\x0B-\x1F\x7F-\x9F\x{202A}-\x{202E}\x{2066}-\x{2069}]*$";

/// A lower-case RFC 1123 host name with at least two labels, e.g. `www.example.jp`, whose
/// top-level label starts with a letter (as every top-level domain does), so that an IP
/// address such as `192.0.2.1` is not taken for a domain name.
pub const HOSTNAME_PATTERN: &str =
    r"^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)+[a-z]([-a-z0-9]{0,61}[a-z0-9])?$";

/// Schema of a Kubernetes quantity: an integer or a string in quantity notation.
pub fn quantity(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "x-kubernetes-int-or-string": true,
        "pattern": QUANTITY_PATTERN,
    })
}

/// Schema of a calendar date written `YYYY-MM-DD`.
pub fn date(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "format": "date",
        "maxLength": 10,
    })
}

/// Schema of a set of calendar dates (no duplicates), at most a year's worth.
pub fn date_set(generator: &mut SchemaGenerator) -> Schema {
    let items = date(generator);
    json_schema!({
        "type": "array",
        "items": items,
        "maxItems": 366,
        "x-kubernetes-list-type": "set",
    })
}

/// Schema of the `conditions` list: a list-map keyed by `type`, so server-side apply merges
/// conditions one by one.
pub fn conditions(generator: &mut SchemaGenerator) -> Schema {
    let mut schema = Vec::<Condition>::json_schema(generator);
    schema.insert("maxItems".into(), 16.into());
    schema.insert("x-kubernetes-list-type".into(), "map".into());
    schema.insert(
        "x-kubernetes-list-map-keys".into(),
        serde_json::json!(["type"]),
    );
    schema
}

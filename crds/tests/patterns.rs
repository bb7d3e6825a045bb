//! Patterns the API server applies, webhooks or not, with the field named: free text that
//! reaches e-mails (brand, contract name, contact names, course name, an incident's cause and
//! deferral reason) refuses control characters and bidirectional overrides; an end user's
//! domains are host names, not IP addresses.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray,
};
use regex::Regex;

/// The schema of `path` (`spec.contacts[].name`) in the CRD of `kind`.
fn field(kind: &str, path: &str) -> JSONSchemaProps {
    let crds: Vec<CustomResourceDefinition> = oem_crds::all_crds();
    let crd = crds
        .into_iter()
        .find(|c| c.spec.names.kind == kind)
        .expect("kind exists");
    let mut schema = crd.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.clone())
        .expect("schema");
    for step in path.split('.') {
        let (name, item) = match step.strip_suffix("[]") {
            Some(name) => (name, true),
            None => (step, false),
        };
        schema = schema.properties.as_ref().expect("properties")[name].clone();
        if item {
            schema = match schema.items {
                Some(JSONSchemaPropsOrArray::Schema(items)) => *items,
                _ => panic!("{path}: {name} is not a list"),
            };
        }
    }
    schema
}

const SINGLE_LINE: [(&str, &str); 4] = [
    ("Reseller", "spec.displayName"),
    ("Reseller", "spec.contacts[].name"),
    ("Course", "spec.displayName"),
    ("EndUser", "spec.contractName"),
];
const MULTI_LINE: [(&str, &str); 2] = [
    ("Incident", "spec.cause"),
    ("Incident", "spec.reportDeferral.reason"),
];

/// CR, NUL, ESC, DEL, a C1 control, each bidi override and isolate.
const ALWAYS_REFUSED: [char; 14] = [
    '\r', '\0', '\u{1b}', '\u{7f}', '\u{85}', '\u{202a}', '\u{202b}', '\u{202c}', '\u{202d}',
    '\u{202e}', '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}',
];

fn pattern(kind: &str, path: &str) -> Regex {
    let schema = field(kind, path);
    let pattern = schema
        .pattern
        .unwrap_or_else(|| panic!("{kind} {path} has no pattern"));
    Regex::new(&pattern).expect("the pattern compiles")
}

#[test]
fn names_and_brands_refuse_control_characters_and_bidi_overrides() {
    for (kind, path) in SINGLE_LINE {
        let re = pattern(kind, path);
        assert!(
            re.is_match("さくらウェブ Co., Ltd. (東京)"),
            "{kind} {path}"
        );
        for c in ALWAYS_REFUSED.iter().chain(&['\n', '\t']) {
            let text = format!("Sakura{c}Web");
            assert!(
                !re.is_match(&text),
                "{kind} {path} accepts U+{:04X}",
                *c as u32
            );
        }
    }
}

#[test]
fn incident_texts_keep_their_lines_but_refuse_other_controls() {
    for (kind, path) in MULTI_LINE {
        let re = pattern(kind, path);
        assert!(re.is_match("電源障害。\n\t復旧済み"), "{kind} {path}");
        for c in ALWAYS_REFUSED {
            let text = format!("cause{c}text");
            assert!(
                !re.is_match(&text),
                "{kind} {path} accepts U+{:04X}",
                c as u32
            );
        }
    }
}

#[test]
fn an_ip_address_is_not_an_end_user_domain() {
    let re = pattern("EndUser", "spec.domains[]");
    for domain in [
        "shop.example.jp",
        "xn--r8jz45g.jp",
        "1and1.example.com",
        "a.b2",
    ] {
        assert!(re.is_match(domain), "{domain}");
    }
    for ip in ["192.0.2.1", "10.0.0.1", "127.0.0.1", "1.2"] {
        assert!(!re.is_match(ip), "{ip}");
    }
}

//! The invalid manifests of `e2e/manifests/invalid/` are well-formed test cases: numbered,
//! one per file, each naming the error the API server must print, and for updates starting
//! from an object the types accept.

use std::path::PathBuf;

use oem_crds::{Course, EndUser, Incident, Reseller};
use serde::Deserialize;
use serde_json::Value;

fn manifests() -> Vec<(String, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../e2e/manifests/invalid");
    let mut files: Vec<(String, String)> = std::fs::read_dir(dir)
        .expect("e2e/manifests/invalid exists")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| {
            let name = p
                .file_name()
                .expect("file name")
                .to_string_lossy()
                .into_owned();
            (name, std::fs::read_to_string(&p).expect("readable"))
        })
        .collect();
    files.sort();
    files
}

fn documents(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|doc| Value::deserialize(doc).expect("valid YAML"))
        .filter(|doc| !doc.is_null())
        .collect()
}

#[test]
fn there_are_at_least_28_numbered_cases() {
    let files = manifests();
    assert!(files.len() >= 28, "only {} invalid manifests", files.len());
    let mut numbers: Vec<&str> = files.iter().map(|(name, _)| &name[..2]).collect();
    assert!(
        numbers
            .iter()
            .all(|n| n.chars().all(|c| c.is_ascii_digit()))
    );
    numbers.dedup();
    assert_eq!(numbers.len(), files.len(), "numbers are unique");
}

#[test]
fn each_case_starts_with_what_the_api_server_must_say() {
    for (name, text) in manifests() {
        let first = text.lines().next().unwrap_or_default();
        let expect = first.strip_prefix("# expect: ").unwrap_or_default();
        assert!(
            !expect.trim().is_empty(),
            "{name} does not start with '# expect: <message>'"
        );
    }
}

#[test]
fn each_case_lives_where_the_e2e_test_expects_it() {
    for (name, text) in manifests() {
        for doc in documents(&text) {
            let metadata = &doc["metadata"];
            if doc["kind"] == "Reseller" {
                let reseller = metadata["name"].as_str().unwrap_or_default();
                assert!(
                    reseller.starts_with("invalid-"),
                    "{name}: reseller names start with invalid-"
                );
            } else {
                assert_eq!(metadata["namespace"], "reseller-invalid-test", "{name}");
            }
        }
    }
}

#[test]
fn update_cases_change_a_valid_object() {
    for (name, text) in manifests() {
        let docs = documents(&text);
        let update = text.lines().any(|l| l.trim() == "# mode: update");
        assert_eq!(
            docs.len(),
            if update { 2 } else { 1 },
            "{name}: one document, or two for an update"
        );
        if !update {
            continue;
        }
        let (before, after) = (&docs[0], &docs[1]);
        assert_eq!(before["kind"], after["kind"], "{name}");
        assert_eq!(before["metadata"], after["metadata"], "{name}");
        let parsed = match before["kind"].as_str() {
            Some("Reseller") => serde_json::from_value::<Reseller>(before.clone()).map(drop),
            Some("Course") => serde_json::from_value::<Course>(before.clone()).map(drop),
            Some("EndUser") => serde_json::from_value::<EndUser>(before.clone()).map(drop),
            Some("Incident") => serde_json::from_value::<Incident>(before.clone()).map(drop),
            other => panic!("{name}: unknown kind {other:?}"),
        };
        assert!(
            parsed.is_ok(),
            "{name}: the first document must be valid: {parsed:?}"
        );
    }
}

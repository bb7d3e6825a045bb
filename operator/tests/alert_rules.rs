//! The chart's alert rules pass `promtool check rules` and their unit tests
//! (`alert-rules.test.yaml`, `promtool test rules`). promtool comes with Debian's prometheus
//! package (`e2e/daemons/install.sh`); without it this test fails, it never skips.

use std::path::PathBuf;
use std::process::Command;

fn files() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../charts/oem-hosting/files")
}

fn promtool(args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(files())
        .output()
        .unwrap_or_else(|e| panic!("promtool is needed (apt-get install prometheus): {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

#[test]
fn the_rules_file_is_valid() {
    let out = promtool(&["check", "rules", "alert-rules.yaml"]);
    assert!(out.contains("SUCCESS: 14 rules found"), "{out}");
}

#[test]
fn the_rules_behave_as_their_unit_tests_say() {
    let out = promtool(&["test", "rules", "alert-rules.test.yaml"]);
    assert!(out.contains("SUCCESS"), "{out}");
}

#[test]
fn a_time_scaled_render_is_valid_too() {
    let values = [
        ("serviceDownFor", "8s"),
        ("hostDownFor", "8s"),
        ("massMailWindow", "20s"),
        ("massMailFor", "0s"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let text = oem_operator::alerting::rules::render(
        oem_operator::alerting::rules::DEFAULT_RULES,
        &values,
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scaled.yaml");
    std::fs::write(&path, text).unwrap();
    let out = promtool(&["check", "rules", &path.to_string_lossy()]);
    assert!(out.contains("SUCCESS"), "{out}");
}

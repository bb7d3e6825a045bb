//! The alert rules file (`charts/oem-hosting/files/alert-rules.yaml`) as the operator knows it:
//! the names of the alerts that become Incidents, and the renderer of its parameters (a line
//! ending in `# param: NAME=DEFAULT` gets DEFAULT replaced by the value given for NAME), used
//! by the end-to-end harness to scale time and by anyone rendering the file outside Helm.

use std::collections::BTreeMap;

use oem_crds::incident::IncidentKind;

/// A service of an end user failing for `serviceDownFor` (10 m).
pub const SERVICE_DOWN: &str = "HostingServiceDown";
/// The end user's host not answering ping for `hostDownFor` (10 m).
pub const HOST_DOWN: &str = "HostingHostDown";
/// Mail sent above the course's rate.
pub const MASS_MAIL: &str = "HostingMassMail";

/// The rules file as committed (the default render).
pub const DEFAULT_RULES: &str = include_str!("../../../charts/oem-hosting/files/alert-rules.yaml");

/// The incident kind an alert opens, if it opens one.
pub fn incident_kind(alertname: &str) -> Option<IncidentKind> {
    match alertname {
        SERVICE_DOWN => Some(IncidentKind::ServiceDown),
        HOST_DOWN => Some(IncidentKind::HostDown),
        MASS_MAIL => Some(IncidentKind::MassMail),
        _ => None,
    }
}

/// The parameters a rules text declares, with their defaults, in order of appearance.
pub fn parameters(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(param_of)
        .map(|(_, name, default)| (name.to_owned(), default.to_owned()))
        .collect()
}

/// Splits a parameterised line into (the part before the comment, name, default).
fn param_of(line: &str) -> Option<(&str, &str, &str)> {
    let (head, comment) = line.split_once("# param:")?;
    let (name, default) = comment.trim().split_once('=')?;
    Some((head, name.trim(), default.trim()))
}

/// Renders `text` with `values` (NAME → value); a parameter not given keeps its default. Every
/// occurrence of the default before the comment is replaced, as the chart's template does.
/// Fails on a name the text does not declare, so a typo cannot leave a test unscaled.
pub fn render(text: &str, values: &BTreeMap<String, String>) -> Result<String, String> {
    let declared = parameters(text);
    if let Some(unknown) = values.keys().find(|k| !declared.contains_key(*k)) {
        return Err(format!("the rules declare no parameter {unknown:?}"));
    }
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        match param_of(line) {
            Some((head, name, default)) if values.contains_key(name) => {
                if !head.contains(default) {
                    return Err(format!("parameter {name}: {default:?} is not on its line"));
                }
                out.push_str(&head.replace(default, &values[name]));
                out.push_str(&line[head.len()..]);
            }
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_file_declares_the_time_parameters() {
        let params = parameters(DEFAULT_RULES);
        assert_eq!(params["serviceDownFor"], "10m");
        assert_eq!(params["hostDownFor"], "10m");
        assert_eq!(params["massMailWindow"], "1h");
    }

    #[test]
    fn rendering_replaces_only_the_named_values() {
        let values = BTreeMap::from([
            ("serviceDownFor".to_owned(), "8s".to_owned()),
            ("massMailWindow".to_owned(), "20s".to_owned()),
        ]);
        let text = render(DEFAULT_RULES, &values).unwrap();
        assert!(
            text.contains("for: 8s  # param: serviceDownFor=10m"),
            "{text}"
        );
        assert!(text.contains("rate(oem_mail_sent_total[20s])"));
        assert!(
            text.contains("increase(oem_mail_refused_total[20s])"),
            "every occurrence on the line: {text}"
        );
        assert!(text.contains("for: 10m  # param: hostDownFor=10m"));
        let parsed: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        // Tenants, operator, availability (each sample) and availability (30 days).
        assert!(parsed["groups"].as_sequence().is_some_and(|g| g.len() == 4));
    }

    #[test]
    fn an_unknown_parameter_is_refused() {
        let values = BTreeMap::from([("serviceDownFour".to_owned(), "8s".to_owned())]);
        assert!(
            render(DEFAULT_RULES, &values)
                .unwrap_err()
                .contains("serviceDownFour")
        );
    }

    #[test]
    fn every_incident_alert_of_the_file_is_known() {
        for name in [SERVICE_DOWN, HOST_DOWN, MASS_MAIL] {
            assert!(DEFAULT_RULES.contains(&format!("alert: {name}")), "{name}");
            assert!(incident_kind(name).is_some());
        }
        assert_eq!(incident_kind("HostingCertExpiring"), None);
    }
}

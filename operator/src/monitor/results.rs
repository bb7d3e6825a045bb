//! The last result of each probe target, kept once under the engine's own key of the target
//! and written at a scrape as three gauge families: `oem_probe_success`,
//! `oem_probe_duration_seconds` and `oem_tls_cert_expiry_seconds`. As gauges with their labels
//! joined in a string, the first two were 2.2 MB at 2,000 end users (14,032 targets); here a
//! target's result is a pointer to its key and 32 bytes.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use super::targets::TargetKey;
use crate::gauges::{Exposed, write_family};

/// Labels of the per-target probe series: never anything secret.
pub const PROBE_LABELS: [&str; 4] = ["reseller", "enduser", "service", "host"];

const SUCCESS: (&str, &str) = (
    "oem_probe_success",
    "1 when the last probe of the target succeeded, else 0",
);
const DURATION: (&str, &str) = (
    "oem_probe_duration_seconds",
    "Duration of the last probe of the target",
);
const CERT_EXPIRY: (&str, &str) = (
    "oem_tls_cert_expiry_seconds",
    "Seconds until the target's TLS certificate expires (negative once expired)",
);

/// What the last probe of a target found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Last {
    pub up: bool,
    pub seconds: f64,
    /// Seconds until its certificate expires, as last seen (a probe that saw none keeps it).
    pub cert_expiry: Option<f64>,
}

/// Every target's last result. Cheap to clone (shared).
#[derive(Clone, Default)]
pub struct ProbeResults {
    table: Arc<Mutex<BTreeMap<Arc<TargetKey>, Last>>>,
}

impl ProbeResults {
    fn table(&self) -> std::sync::MutexGuard<'_, BTreeMap<Arc<TargetKey>, Last>> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a probe of `key`: up or not, how long it took, and the certificate's time
    /// left when it saw one.
    pub fn set(&self, key: &Arc<TargetKey>, up: bool, seconds: f64, cert_expiry: Option<f64>) {
        let mut table = self.table();
        let kept = table.get(&**key).and_then(|last| last.cert_expiry);
        let last = Last {
            up,
            seconds,
            cert_expiry: cert_expiry.or(kept),
        };
        table.insert(key.clone(), last);
    }

    /// Forgets the targets no longer probed.
    pub fn retain(&self, mut probed: impl FnMut(&TargetKey) -> bool) {
        self.table().retain(|key, _| probed(key));
    }

    /// The last result of `key`.
    pub fn get(&self, key: &TargetKey) -> Option<Last> {
        self.table().get(key).copied()
    }

    pub fn len(&self) -> usize {
        self.table().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Exposed for ProbeResults {
    fn names(&self) -> &'static [&'static str] {
        &[SUCCESS.0, DURATION.0, CERT_EXPIRY.0]
    }

    fn write_text(&self, out: &mut String) {
        let table = self.table();
        let family = |(name, help): (&'static str, &'static str)| (name, help, &PROBE_LABELS[..]);
        write_family(
            out,
            family(SUCCESS),
            table
                .iter()
                .map(|(key, last)| (key.labels(), if last.up { 1.0 } else { 0.0 })),
        );
        write_family(
            out,
            family(DURATION),
            table.iter().map(|(key, last)| (key.labels(), last.seconds)),
        );
        write_family(
            out,
            family(CERT_EXPIRY),
            table
                .iter()
                .filter_map(|(key, last)| Some((key.labels(), last.cert_expiry?))),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gauges::Families;
    use crate::monitor::probes::ServiceName;

    fn key(enduser: &str, service: ServiceName) -> Arc<TargetKey> {
        Arc::new(TargetKey::EndUser {
            reseller: "acme".into(),
            namespace: "reseller-acme".into(),
            enduser: enduser.into(),
            service,
        })
    }

    #[test]
    fn each_targets_last_result_is_written_as_three_families() {
        let results = ProbeResults::default();
        let families = Families::default();
        families.expose(Arc::new(results.clone())).unwrap();
        let (https, node) = (
            key("alice", ServiceName::Https),
            Arc::new(TargetKey::Node { node: "n1".into() }),
        );
        results.set(&https, true, 0.25, Some(86_400.0));
        results.set(&node, false, 3.0, None);
        // A failed probe saw no certificate: the time left stays as last seen.
        results.set(&https, false, 0.5, None);
        let mut out = String::new();
        families.write_text(&mut out);
        let user = r#"reseller="acme",enduser="alice",service="https",host="""#;
        let host = r#"reseller="",enduser="",service="ping",host="n1""#;
        for line in [
            format!("oem_probe_success{{{user}}} 0"),
            format!("oem_probe_success{{{host}}} 0"),
            format!("oem_probe_duration_seconds{{{user}}} 0.5"),
            format!("oem_probe_duration_seconds{{{host}}} 3"),
            format!("oem_tls_cert_expiry_seconds{{{user}}} 86400"),
        ] {
            assert!(out.lines().any(|l| l == line), "{line} in\n{out}");
        }
        assert!(!out.contains(&format!("oem_tls_cert_expiry_seconds{{{host}}}")));
        assert_eq!(out.matches("# TYPE").count(), 3, "{out}");
        results.retain(|k| matches!(k, TargetKey::Node { .. }));
        assert_eq!(results.len(), 1);
        assert_eq!(results.get(&https), None);
        assert!(
            families.gauges("oem_probe_success", "again", &[]).is_err(),
            "one name, one family"
        );
    }
}

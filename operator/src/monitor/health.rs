//! What the monitor knows of each end user's services (pure), and so what it writes to
//! `EndUser.status.services`: a service's entry changes state (and `since`) only when a probe
//! finds it in another state than before, and only then is the status written.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use oem_crds::enduser::{EndUser, HealthState, ServiceHealth, ServiceName};

use super::probes::ProbeOutcome;

/// The longest message kept (the CRD's limit).
const MAX_MESSAGE: usize = 1024;

/// An end user: its namespace and name.
pub type EndUserId = (String, String);

/// The services of every monitored end user, each end user's in the order of their names (a
/// sorted vector: a handful of entries, where a map's node would hold room for eleven).
#[derive(Debug, Default)]
pub struct HealthBook {
    endusers: HashMap<EndUserId, Vec<ServiceHealth>>,
}

/// The entry of `service` in `services` (sorted by name), or where it would go.
fn position(services: &[ServiceHealth], service: ServiceName) -> Result<usize, usize> {
    services.binary_search_by(|h| h.service.cmp(&service))
}

impl HealthBook {
    /// Starts from what the end user's status already says (after an operator restart, or a
    /// new end user), so an unchanged state is not written again and `since` is kept.
    pub fn seed(&mut self, id: &EndUserId, enduser: &EndUser) {
        if self.endusers.contains_key(id) {
            return;
        }
        let mut known: Vec<ServiceHealth> = enduser
            .status
            .as_ref()
            .map(|s| s.services.clone())
            .unwrap_or_default();
        // Sorted by name, the first entry of a name kept (a map built from the list kept the
        // last; a status holds one entry a service).
        known.sort_by_key(|h| h.service);
        known.dedup_by(|a, b| a.service == b.service);
        known.shrink_to_fit();
        self.endusers.insert(id.clone(), known);
    }

    /// Records a probe result. Returns true when the service's state changed (the status must
    /// be written).
    pub fn observe(
        &mut self,
        id: &EndUserId,
        service: ServiceName,
        up: bool,
        reason: &str,
        now: Timestamp,
    ) -> bool {
        let state = if up {
            HealthState::Up
        } else {
            HealthState::Down
        };
        let services = self.endusers.entry(id.clone()).or_default();
        let message = Some(truncate(reason));
        let fresh = ServiceHealth {
            service,
            state,
            since: Some(Time(now)),
            last_probe: Some(Time(now)),
            message,
        };
        match position(services, service) {
            Ok(at) if services[at].state == state => {
                let health = &mut services[at];
                health.last_probe = fresh.last_probe;
                health.message = fresh.message;
                false
            }
            Ok(at) => {
                services[at] = fresh;
                true
            }
            Err(at) => {
                services.insert(at, fresh);
                true
            }
        }
    }

    /// The end user's services as written to its status, in a stable order.
    pub fn services(&self, id: &EndUserId) -> Vec<ServiceHealth> {
        self.endusers.get(id).cloned().unwrap_or_default()
    }

    /// Whether the stored status disagrees with what the monitor found (another writer put an
    /// older list back): compares services and states only.
    pub fn differs(&self, id: &EndUserId, enduser: &EndUser) -> bool {
        let Some(known) = self.endusers.get(id) else {
            return false;
        };
        let stored: BTreeMap<ServiceName, HealthState> = enduser
            .status
            .as_ref()
            .map(|s| s.services.iter().map(|h| (h.service, h.state)).collect())
            .unwrap_or_default();
        let ours: BTreeMap<ServiceName, HealthState> =
            known.iter().map(|h| (h.service, h.state)).collect();
        stored != ours
    }

    /// Keeps only the monitored end users and, of each, the services still monitored.
    /// Returns the end users whose list lost a service (their status must be written).
    pub fn retain(
        &mut self,
        monitored: &HashMap<EndUserId, BTreeSet<ServiceName>>,
    ) -> Vec<EndUserId> {
        self.endusers.retain(|id, _| monitored.contains_key(id));
        let mut changed = Vec::new();
        for (id, services) in &mut self.endusers {
            let before = services.len();
            if let Some(wanted) = monitored.get(id) {
                services.retain(|h| wanted.contains(&h.service));
            }
            if services.len() != before {
                changed.push(id.clone());
            }
        }
        changed
    }
}

/// What `status.services[].message` says of a probe: a fixed sentence per kind of outcome,
/// never the server's own text (a greeting, an error line, a header, a version). The endpoint
/// may be one the reseller named, anywhere the allow-list lets probes go, and its answer is not
/// the operator's to copy into status, incidents or e-mails; the full reason goes to the
/// operator's log only.
pub fn status_message(outcome: &ProbeOutcome) -> &'static str {
    if outcome.up {
        return "answering";
    }
    match outcome.failure.unwrap_or_default() {
        "invalid_target" => "the endpoint is not a valid address",
        "dns" => "the name does not resolve",
        "not_allowed" => "the address is outside the networks probes may reach",
        "other_tenant" => "refused: the address belongs to another tenant",
        "control_plane" => "refused: the address belongs to the control plane",
        "connect" => "the connection failed",
        "timeout" => "no answer in time",
        "closed" => "the server closed the connection",
        "io" => "the connection broke",
        "oversized" => "the answer was too long",
        "protocol" => "the answer was not the expected protocol",
        "refused" => "the server answered with an error",
        "tls" => "the TLS handshake failed",
        "ping" => "no answer to ping",
        _ => "not answering",
    }
}

fn truncate(reason: &str) -> String {
    if reason.len() <= MAX_MESSAGE {
        return reason.to_owned();
    }
    let mut end = MAX_MESSAGE - 3;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &reason[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn id() -> EndUserId {
        ("reseller-acme".into(), "alice".into())
    }

    fn outcome(up: bool, reason: &str, failure: Option<&'static str>) -> ProbeOutcome {
        ProbeOutcome {
            service: crate::monitor::probes::ServiceName::Smtp,
            up,
            reason: reason.to_owned(),
            failure,
            duration: std::time::Duration::from_millis(5),
            address: None,
            tls_cert_expiry: None,
            server_version: Some("internal-mta 9.9 secret-host".into()),
            ping_method: None,
        }
    }

    #[test]
    fn the_status_message_never_carries_the_servers_text() {
        let banner = "554 internal.corp.example relay denied, token=abc";
        for (up, failure) in [
            (true, None),
            (false, Some("refused")),
            (false, Some("protocol")),
            (false, Some("tls")),
            (false, Some("something new")),
        ] {
            let message = status_message(&outcome(up, banner, failure));
            assert!(
                !message.contains("internal") && !message.contains("554"),
                "{message}"
            );
        }
        assert_eq!(
            status_message(&outcome(false, banner, Some("refused"))),
            "the server answered with an error"
        );
    }

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap()
    }

    #[test]
    fn the_first_result_and_each_change_are_written_repeats_are_not() {
        let mut book = HealthBook::default();
        assert!(book.observe(&id(), ServiceName::Imap, true, "* OK", at(1)));
        assert!(!book.observe(&id(), ServiceName::Imap, true, "* OK", at(2)));
        assert!(book.observe(&id(), ServiceName::Imap, false, "refused", at(3)));
        assert!(!book.observe(&id(), ServiceName::Imap, false, "refused", at(4)));
        let services = book.services(&id());
        assert_eq!(services.len(), 1);
        assert_eq!(services[0].state, HealthState::Down);
        assert_eq!(services[0].since, Some(Time(at(3))));
        assert_eq!(services[0].last_probe, Some(Time(at(4))));
    }

    #[test]
    fn a_known_status_is_not_written_again_after_a_restart() {
        let enduser: EndUser = serde_json::from_value(json!({
            "apiVersion": "hosting.oem.dev/v1alpha1", "kind": "EndUser",
            "metadata": {"name": "alice", "namespace": "reseller-acme"},
            "spec": {"loginId": "alice", "contractName": "A", "contactEmail": "a@example.com",
                "courseRef": {"name": "c"}, "contractDate": "2026-01-01", "startDate": "2026-01-01"},
            "status": {"services": [{"service": "http", "state": "Up", "since": "2026-01-01T00:00:00Z"}]}
        }))
        .unwrap();
        let mut book = HealthBook::default();
        book.seed(&id(), &enduser);
        assert!(!book.differs(&id(), &enduser));
        assert!(!book.observe(&id(), ServiceName::Http, true, "HTTP 200", at(9)));
        assert_eq!(
            book.services(&id())[0].since,
            Some(Time("2026-01-01T00:00:00Z".parse().unwrap()))
        );
        assert!(book.observe(&id(), ServiceName::Http, false, "refused", at(10)));
        assert!(book.differs(&id(), &enduser));
    }

    #[test]
    fn services_no_longer_monitored_are_dropped() {
        let mut book = HealthBook::default();
        book.observe(&id(), ServiceName::Http, true, "", at(1));
        book.observe(&id(), ServiceName::Mysql, true, "", at(1));
        book.observe(
            &("reseller-acme".into(), "bob".into()),
            ServiceName::Http,
            true,
            "",
            at(1),
        );
        let monitored = HashMap::from([(id(), BTreeSet::from([ServiceName::Http]))]);
        assert_eq!(book.retain(&monitored), vec![id()]);
        assert_eq!(book.services(&id()).len(), 1);
        assert!(
            book.services(&("reseller-acme".into(), "bob".into()))
                .is_empty()
        );
    }

    #[test]
    fn services_are_listed_in_the_order_of_their_names_whatever_order_they_come_in() {
        let mut book = HealthBook::default();
        for service in [ServiceName::Smtp, ServiceName::Http, ServiceName::Mysql] {
            book.observe(&id(), service, true, "", at(1));
        }
        book.observe(&id(), ServiceName::Http, false, "", at(2));
        let mut sorted = vec![ServiceName::Smtp, ServiceName::Http, ServiceName::Mysql];
        sorted.sort();
        let listed: Vec<ServiceName> = book.services(&id()).iter().map(|h| h.service).collect();
        assert_eq!(listed, sorted);
        assert_eq!(
            book.services(&id()).len(),
            3,
            "a change replaces, never adds"
        );
    }

    #[test]
    fn long_messages_are_cut_to_the_schema_limit() {
        let long = "é".repeat(1000);
        assert!(truncate(&long).len() <= MAX_MESSAGE);
    }
}

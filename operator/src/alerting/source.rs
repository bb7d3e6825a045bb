//! Where alerts come from, in one shape: what is failing now (with the time of its first
//! failure) and what recovered (with when). Three sources: the monitor's own history
//! (embedded, `embedded.rs`), Prometheus's `/api/v1/alerts` (pending alerts included, so an
//! incident opens on the first failure, not ten minutes later), and Alertmanager's webhook
//! (`inbox`, fed by the operator's HTTP server).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use oem_crds::enduser::ServiceName;
use oem_crds::incident::IncidentKind;
use serde::Deserialize;

use super::notify::redact_url;
use super::rules;
use crate::naming;

/// One outage: which end user, service and kind. One open Incident per key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AlertKey {
    /// The end user's (the reseller's) namespace.
    pub namespace: String,
    pub enduser: String,
    pub service: ServiceName,
    pub kind: IncidentKind,
}

impl AlertKey {
    pub fn reseller(&self) -> &str {
        naming::reseller_of_namespace(&self.namespace).unwrap_or_default()
    }
}

/// What a source saw at one look.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observation {
    /// Failing now, since when (the first failure).
    pub active: HashMap<AlertKey, Timestamp>,
    /// Recovered, and when; only what the source knows (the embedded source knows when each
    /// service came back, Alertmanager tells `endsAt`).
    pub recovered: HashMap<AlertKey, Timestamp>,
    /// The source lists every failing key, so a key it does not list has recovered
    /// (Prometheus, embedded). Alertmanager only tells changes.
    pub complete: bool,
}

/// Why a look at a source failed.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// `url` is the source's base URL as [`redact_url`] shows it (never its credentials).
    #[error("reading alerts from {source_name} {url}: {source}")]
    Http {
        source_name: &'static str,
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("Prometheus at {url} answered {status}")]
    Status { url: String, status: String },
}

/// The key an alert's labels name, if the alert opens incidents and its labels are whole.
pub fn key_of(alertname: &str, labels: &HashMap<String, String>) -> Option<AlertKey> {
    let kind = rules::incident_kind(alertname)?;
    let reseller = labels.get("reseller").filter(|r| !r.is_empty())?;
    let enduser = labels.get("enduser").filter(|e| !e.is_empty())?.clone();
    let service: ServiceName = match kind {
        IncidentKind::MassMail => ServiceName::Smtp,
        IncidentKind::HostDown => ServiceName::Ping,
        IncidentKind::ServiceDown => {
            let name = labels.get("service")?;
            serde_json::from_value(serde_json::Value::String(name.clone())).ok()?
        }
    };
    if kind == IncidentKind::ServiceDown && service == ServiceName::Ping {
        return None;
    }
    Some(AlertKey {
        namespace: naming::reseller_namespace(reseller),
        enduser,
        service,
        kind,
    })
}

#[derive(Deserialize)]
struct PromAlerts {
    status: String,
    #[serde(default)]
    data: Option<PromData>,
}

#[derive(Deserialize)]
struct PromData {
    alerts: Vec<PromAlert>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromAlert {
    labels: HashMap<String, String>,
    state: String,
    active_at: Option<String>,
}

/// GETs `base` + `path` (within 10 s) as JSON; errors name the source and its URL without its
/// credentials.
async fn get_json<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    source_name: &'static str,
    base: &str,
    path: &str,
) -> Result<T, SourceError> {
    let http_error = |source: reqwest::Error| SourceError::Http {
        source_name,
        url: redact_url(base),
        source: source.without_url(),
    };
    http.get(format!("{}{path}", base.trim_end_matches('/')))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(http_error)?
        .json()
        .await
        .map_err(http_error)
}

/// Reads `/api/v1/alerts`. Service and host alerts count from `pending` (their `activeAt` is
/// the first failed scrape); mass mail only once firing (its `for` is the tolerance).
pub async fn prometheus(
    http: &reqwest::Client,
    base: &str,
    now: Timestamp,
) -> Result<Observation, SourceError> {
    let shown = redact_url(base);
    let body: PromAlerts = get_json(http, "Prometheus", base, "/api/v1/alerts").await?;
    if body.status != "success" {
        return Err(SourceError::Status {
            url: shown,
            status: body.status,
        });
    }
    let mut seen = Observation {
        complete: true,
        ..Observation::default()
    };
    for alert in body.data.map(|d| d.alerts).unwrap_or_default() {
        let name = alert.labels.get("alertname").cloned().unwrap_or_default();
        let Some(key) = key_of(&name, &alert.labels) else {
            continue;
        };
        let counts = match key.kind {
            IncidentKind::MassMail => alert.state == "firing",
            _ => alert.state == "pending" || alert.state == "firing",
        };
        if !counts {
            continue;
        }
        let since = alert
            .active_at
            .as_deref()
            .and_then(|t| t.parse::<Timestamp>().ok())
            .unwrap_or(now);
        let entry = seen.active.entry(key).or_insert(since);
        *entry = (*entry).min(since);
    }
    Ok(seen)
}

/// Reads Alertmanager's alerts that notify now (`GET /api/v2/alerts`: active, neither silenced
/// nor inhibited) — the whole picture, where the webhook tells only changes — as one
/// notification of firing alerts for [`AlertInbox::sync`].
pub async fn alertmanager(
    http: &reqwest::Client,
    base: &str,
) -> Result<PushedNotification, SourceError> {
    let path = "/api/v2/alerts?active=true&silenced=false&inhibited=false";
    let listed: Vec<ListedAlert> = get_json(http, "Alertmanager", base, path).await?;
    Ok(PushedNotification {
        alerts: listed
            .into_iter()
            .map(|a| PushedAlert {
                status: "firing".to_owned(),
                labels: a.labels,
                starts_at: a.starts_at,
                ends_at: None,
            })
            .collect(),
    })
}

/// One alert as Alertmanager's API v2 lists it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListedAlert {
    #[serde(default)]
    labels: HashMap<String, String>,
    starts_at: Option<String>,
}

/// One alert of an Alertmanager webhook notification (version 4).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PushedAlert {
    pub status: String,
    #[serde(default)]
    pub labels: HashMap<String, String>,
    pub starts_at: Option<String>,
    pub ends_at: Option<String>,
}

/// An Alertmanager webhook notification.
#[derive(Debug, Deserialize)]
pub struct PushedNotification {
    #[serde(default)]
    pub alerts: Vec<PushedAlert>,
}

#[derive(Debug, Clone, Copy)]
struct InboxEntry {
    since: Timestamp,
    recovered: Option<Timestamp>,
}

/// What Alertmanager pushed, kept until the alert resolves and the controller has seen it.
/// Shared by the HTTP receiver and the alert controller.
#[derive(Debug, Clone, Default)]
pub struct AlertInbox {
    entries: Arc<Mutex<HashMap<AlertKey, InboxEntry>>>,
}

impl AlertInbox {
    /// Takes in one notification. Alertmanager's `startsAt` is when the alert began firing,
    /// after its `for:`; the outage began `alert_for` earlier. Returns the keys of the alerts
    /// taken (those that open incidents).
    pub fn receive(
        &self,
        note: &PushedNotification,
        alert_for: Duration,
        now: Timestamp,
    ) -> HashSet<AlertKey> {
        let back = SignedDuration::try_from(alert_for).unwrap_or(SignedDuration::ZERO);
        let mut taken = HashSet::new();
        let Ok(mut entries) = self.entries.lock() else {
            return taken;
        };
        for alert in &note.alerts {
            let name = alert.labels.get("alertname").cloned().unwrap_or_default();
            let Some(key) = key_of(&name, &alert.labels) else {
                continue;
            };
            let parse = |t: &Option<String>| t.as_deref().and_then(|t| t.parse::<Timestamp>().ok());
            let fired = parse(&alert.starts_at).unwrap_or(now);
            let since = match key.kind {
                IncidentKind::MassMail => fired,
                _ => fired.checked_sub(back).unwrap_or(fired),
            };
            let recovered =
                (alert.status == "resolved").then(|| parse(&alert.ends_at).unwrap_or(now).min(now));
            let entry = entries
                .entry(key.clone())
                .or_insert(InboxEntry { since, recovered });
            entry.since = entry.since.min(since);
            entry.recovered = recovered;
            taken.insert(key);
        }
        taken
    }

    /// Takes in Alertmanager's whole list of firing alerts (`alertmanager`): those it lists are
    /// taken as pushed, and any entry it no longer lists recovered at `now` — a resolve that
    /// was pushed while the operator was down, or never pushed, is not lost. Returns the
    /// observation, complete: a key neither listed nor recovered has no outage.
    pub fn sync(
        &self,
        listed: &PushedNotification,
        alert_for: Duration,
        now: Timestamp,
    ) -> Observation {
        let listed_keys = self.receive(listed, alert_for, now);
        if let Ok(mut entries) = self.entries.lock() {
            for (key, entry) in entries.iter_mut() {
                if entry.recovered.is_none() && !listed_keys.contains(key) {
                    entry.recovered = Some(now);
                }
            }
        }
        Observation {
            complete: true,
            ..self.observe()
        }
    }

    /// What is firing and what recovered; recovered entries are handed out once.
    pub fn observe(&self) -> Observation {
        let mut seen = Observation::default();
        let Ok(mut entries) = self.entries.lock() else {
            return seen;
        };
        entries.retain(|key, entry| match entry.recovered {
            Some(at) => {
                seen.recovered.insert(key.clone(), at);
                false
            }
            None => {
                seen.active.insert(key.clone(), entry.since);
                true
            }
        });
        seen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn prometheus_credentials_never_appear_in_an_error() {
        // Nothing listens on the discard port: the request fails, naming the server.
        let base = "http://reader:s3cret@127.0.0.1:9/prom?token=t0ken";
        let error = prometheus(&reqwest::Client::new(), base, Timestamp::UNIX_EPOCH)
            .await
            .expect_err("nothing listens there");
        let text = format!("{error} {error:?}");
        assert!(text.contains("127.0.0.1:9"), "{text}");
        for secret in ["reader", "s3cret", "t0ken"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn alerts_map_to_keys_by_their_labels() {
        let l = labels(&[
            ("reseller", "sakura"),
            ("enduser", "shop"),
            ("service", "imap"),
        ]);
        let key = key_of(rules::SERVICE_DOWN, &l).unwrap();
        assert_eq!(key.namespace, "reseller-sakura");
        assert_eq!(key.service, ServiceName::Imap);
        assert_eq!(key.kind, IncidentKind::ServiceDown);
        assert_eq!(key.reseller(), "sakura");
        let host = key_of(
            rules::HOST_DOWN,
            &labels(&[("reseller", "sakura"), ("enduser", "shop")]),
        );
        assert_eq!(host.unwrap().service, ServiceName::Ping);
        assert!(key_of("HostingCertExpiring", &l).is_none());
        assert!(key_of(rules::SERVICE_DOWN, &labels(&[("reseller", "sakura")])).is_none());
        let node = labels(&[("reseller", ""), ("enduser", ""), ("service", "ping")]);
        assert!(key_of(rules::HOST_DOWN, &node).is_none());
    }

    #[test]
    fn alertmanager_alerts_count_from_the_first_failure_and_resolve_once() {
        let inbox = AlertInbox::default();
        let note: PushedNotification = serde_json::from_value(serde_json::json!({
            "version": "4", "status": "firing",
            "alerts": [{"status": "firing", "startsAt": "2026-03-02T01:10:00Z",
                "labels": {"alertname": "HostingServiceDown", "reseller": "sakura",
                           "enduser": "shop", "service": "imap"}}]
        }))
        .unwrap();
        let now: Timestamp = "2026-03-02T01:10:05Z".parse().unwrap();
        assert_eq!(inbox.receive(&note, Duration::from_secs(600), now).len(), 1);
        let seen = inbox.observe();
        assert_eq!(
            seen.active.values().next().unwrap().to_string(),
            "2026-03-02T01:00:00Z"
        );
        assert!(!seen.complete);
        let resolved: PushedNotification = serde_json::from_value(serde_json::json!({
            "alerts": [{"status": "resolved", "startsAt": "2026-03-02T01:10:00Z",
                "endsAt": "2026-03-02T01:20:00Z",
                "labels": {"alertname": "HostingServiceDown", "reseller": "sakura",
                           "enduser": "shop", "service": "imap"}}]
        }))
        .unwrap();
        inbox.receive(&resolved, Duration::from_secs(600), now);
        let seen = inbox.observe();
        assert!(seen.active.is_empty());
        assert_eq!(seen.recovered.len(), 1);
        assert!(inbox.observe().recovered.is_empty(), "handed out once");
    }

    fn firing(enduser: &str, service: &str) -> serde_json::Value {
        serde_json::json!({"status": "firing", "startsAt": "2026-03-02T01:10:00Z",
            "labels": {"alertname": "HostingServiceDown", "reseller": "sakura",
                       "enduser": enduser, "service": service}})
    }

    #[test]
    fn alertmanagers_list_completes_the_inbox_across_a_restart_and_a_lost_resolve() {
        let (alert_for, now) = (
            Duration::from_secs(600),
            "2026-03-02T01:15:00Z".parse::<Timestamp>().unwrap(),
        );
        let inbox = AlertInbox::default();
        let pushed: PushedNotification = serde_json::from_value(
            serde_json::json!({"alerts": [firing("shop", "imap"), firing("blog", "http")]}),
        )
        .unwrap();
        inbox.receive(&pushed, alert_for, now);
        // Alertmanager now lists only shop's imap: blog's resolve was never pushed.
        let listed: PushedNotification =
            serde_json::from_value(serde_json::json!({"alerts": [firing("shop", "imap")]}))
                .unwrap();
        let seen = inbox.sync(&listed, alert_for, now);
        assert!(seen.complete);
        let names = |m: &HashMap<AlertKey, Timestamp>| {
            let mut v: Vec<String> = m.keys().map(|k| k.enduser.clone()).collect();
            v.sort();
            v
        };
        assert_eq!(names(&seen.active), ["shop"]);
        assert_eq!(names(&seen.recovered), ["blog"]);
        assert_eq!(seen.recovered.values().next(), Some(&now));

        // A restarted operator's empty inbox learns shop's outage, from its first failure.
        let fresh = AlertInbox::default();
        let seen = fresh.sync(&listed, alert_for, now);
        assert!(seen.complete);
        assert_eq!(
            seen.active.values().next().unwrap().to_string(),
            "2026-03-02T01:00:00Z"
        );
        // Nothing listed at all: everything it knew recovered, once.
        let empty = PushedNotification { alerts: Vec::new() };
        let seen = fresh.sync(&empty, alert_for, now);
        assert!(seen.active.is_empty());
        assert_eq!(names(&seen.recovered), ["shop"]);
        assert!(fresh.sync(&empty, alert_for, now).recovered.is_empty());
    }
}

//! The Kubernetes Events the operator publishes (`events.k8s.io/v1`). The same event again
//! within [`REMEMBERED`] (same object, type, reason, action and note) is counted as a series
//! of the first, a patch of its `series`, as kube's recorder and client-go do.
//!
//! What is remembered of each event is the hash of what makes it the same, its name and its
//! series: about 100 bytes. kube's recorder keeps the whole event and its key (3.5 KB), and
//! forgets them only when it publishes again: after 2,000 end users turned Active it held
//! 6.9 MB. Old events are forgotten at each publish, and at most [`KEPT`] are remembered.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::compact;

/// How long an event is remembered to count a repeat as a series of it (kube's and
/// client-go's six minutes).
pub const REMEMBERED: std::time::Duration = std::time::Duration::from_secs(6 * 60);
/// The most events remembered: past it, the oldest are forgotten (a repeat of one of them
/// becomes an event of its own).
pub const KEPT: usize = 10_000;

/// Publishes events as one reporting controller (and instance).
pub struct Publisher {
    client: kube::Client,
    controller: String,
    instance: String,
    recent: Mutex<HashMap<u64, Recent>>,
}

/// One event published within [`REMEMBERED`].
#[derive(Debug, Clone)]
struct Recent {
    namespace: Box<str>,
    name: Box<str>,
    count: i32,
    last: Timestamp,
}

/// What one publish sends.
#[derive(Debug, PartialEq)]
enum Outgoing {
    Create(Box<Event>),
    /// A patch of the named event's series.
    Repeat {
        namespace: String,
        name: String,
        series: EventSeries,
    },
}

/// An event to publish about an object.
pub struct Said<'a> {
    pub regarding: &'a ObjectReference,
    pub warning: bool,
    pub reason: &'a str,
    pub action: &'a str,
    pub note: String,
}

impl Said<'_> {
    fn key(&self) -> u64 {
        let r = self.regarding;
        compact::hash_of((
            (&r.api_version, &r.kind, &r.namespace, &r.name, &r.uid),
            (self.warning, self.reason, self.action, &self.note),
        ))
    }

    fn namespace(&self) -> String {
        self.regarding
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned())
    }
}

impl Publisher {
    pub fn new(client: kube::Client, controller: &str, instance: Option<String>) -> Self {
        Self {
            client,
            controller: controller.to_owned(),
            instance: instance.unwrap_or_else(|| controller.to_owned()),
            recent: Mutex::new(HashMap::new()),
        }
    }

    /// Publishes `said`: a new event, or a repeat of one published within [`REMEMBERED`] (a
    /// repeat whose event is gone, expired by the API server, is published anew).
    pub async fn publish(&self, said: &Said<'_>) -> Result<(), kube::Error> {
        let now = Timestamp::now();
        let key = said.key();
        let send = self.decide(said, key, now);
        let events: Api<Event> = Api::namespaced(self.client.clone(), &said.namespace());
        match send {
            Outgoing::Create(event) => {
                events.create(&PostParams::default(), &event).await?;
            }
            Outgoing::Repeat { name, series, .. } => {
                let patch = json!({ "series": series });
                match events
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    Err(kube::Error::Api(status)) if status.code == 404 => {
                        self.forget(key);
                        if let Outgoing::Create(event) = self.decide(said, key, now) {
                            events.create(&PostParams::default(), &event).await?;
                        }
                    }
                    other => {
                        other?;
                    }
                }
            }
        }
        Ok(())
    }

    /// What publishing `said` (hashed to `key`) at `now` sends, remembered as sent.
    fn decide(&self, said: &Said<'_>, key: u64, now: Timestamp) -> Outgoing {
        let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        let remembered = jiff::SignedDuration::try_from(REMEMBERED).unwrap_or_default();
        recent.retain(|_, r| r.last + remembered > now);
        if let Some(r) = recent.get_mut(&key) {
            r.count += 1;
            r.last = now;
            return Outgoing::Repeat {
                namespace: r.namespace.to_string(),
                name: r.name.to_string(),
                series: EventSeries {
                    count: r.count,
                    last_observed_time: MicroTime(now),
                },
            };
        }
        if recent.len() >= KEPT
            && let Some(oldest) = recent.iter().min_by_key(|(_, r)| r.last).map(|(k, _)| *k)
        {
            recent.remove(&oldest);
        }
        let event = self.event(said, now);
        let namespace = said.namespace();
        let name = event.metadata.name.clone().unwrap_or_default();
        recent.insert(
            key,
            Recent {
                namespace: namespace.into_boxed_str(),
                name: name.into_boxed_str(),
                count: 1,
                last: now,
            },
        );
        Outgoing::Create(Box::new(event))
    }

    fn forget(&self, key: u64) {
        let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        recent.remove(&key);
    }

    /// The event first published for `said` at `now`.
    fn event(&self, said: &Said<'_>, now: Timestamp) -> Event {
        let owner = said.regarding.name.as_deref().unwrap_or(&self.controller);
        Event {
            metadata: ObjectMeta {
                namespace: Some(said.namespace()),
                name: Some(format!("{owner}.{:x}", now.as_nanosecond())),
                ..ObjectMeta::default()
            },
            action: Some(said.action.to_owned()),
            reason: Some(said.reason.to_owned()),
            note: Some(said.note.clone()),
            event_time: Some(MicroTime(now)),
            regarding: Some(said.regarding.clone()),
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            type_: Some(if said.warning { "Warning" } else { "Normal" }.to_owned()),
            ..Event::default()
        }
    }

    /// How many events are remembered.
    pub fn remembered(&self) -> usize {
        self.recent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use http::{Request, Response};
    use kube::client::Body;

    use super::*;

    fn alice() -> ObjectReference {
        ObjectReference {
            api_version: Some("hosting.oem.dev/v1alpha1".into()),
            kind: Some("EndUser".into()),
            namespace: Some("reseller-acme".into()),
            name: Some("alice".into()),
            uid: Some("u-1".into()),
            ..ObjectReference::default()
        }
    }

    fn said<'a>(regarding: &'a ObjectReference, note: &str) -> Said<'a> {
        Said {
            regarding,
            warning: true,
            reason: "Degraded",
            action: "Probe",
            note: note.to_owned(),
        }
    }

    /// A publisher whose client answers nothing (these tests only decide).
    fn publisher() -> Publisher {
        let (service, _handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        Publisher::new(kube::Client::new(service, "default"), "oem-test", None)
    }

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    #[tokio::test]
    async fn a_repeat_within_six_minutes_is_a_series_of_the_first_and_later_a_new_event() {
        let p = publisher();
        let object = alice();
        let first = said(&object, "web down");
        let Outgoing::Create(event) = p.decide(&first, first.key(), at(0)) else {
            panic!("the first is created");
        };
        assert_eq!(event.metadata.namespace.as_deref(), Some("reseller-acme"));
        assert_eq!(event.type_.as_deref(), Some("Warning"));
        assert_eq!(event.reporting_instance.as_deref(), Some("oem-test"));
        let name = event.metadata.name.clone().unwrap();
        assert!(name.starts_with("alice."), "{name}");
        match p.decide(&first, first.key(), at(60)) {
            Outgoing::Repeat {
                name: repeated,
                series,
                ..
            } => {
                assert_eq!(repeated, name);
                assert_eq!(series.count, 2);
                assert_eq!(series.last_observed_time, MicroTime(at(60)));
            }
            other => panic!("a repeat, not {other:?}"),
        }
        // Another note is another event.
        let other = said(&object, "db down");
        assert!(matches!(
            p.decide(&other, other.key(), at(61)),
            Outgoing::Create(_)
        ));
        assert_eq!(p.remembered(), 2);
        // Six minutes after both: forgotten, published anew.
        let later = at(61 + REMEMBERED.as_secs() as i64);
        assert!(matches!(
            p.decide(&first, first.key(), later),
            Outgoing::Create(_)
        ));
        assert_eq!(p.remembered(), 1, "the other was forgotten too");
    }

    #[tokio::test]
    async fn the_same_reason_on_another_object_is_another_event() {
        let p = publisher();
        let (a, mut b) = (alice(), alice());
        b.name = Some("bob".into());
        b.uid = Some("u-2".into());
        assert!(matches!(
            p.decide(&said(&a, "x"), said(&a, "x").key(), at(0)),
            Outgoing::Create(_)
        ));
        assert!(matches!(
            p.decide(&said(&b, "x"), said(&b, "x").key(), at(1)),
            Outgoing::Create(_)
        ));
    }

    #[tokio::test]
    async fn at_most_kept_events_are_remembered() {
        let p = publisher();
        let object = alice();
        for i in 0..KEPT + 3 {
            let s = said(&object, &format!("note {i}"));
            p.decide(&s, s.key(), at(i as i64 / 100));
        }
        assert_eq!(p.remembered(), KEPT);
    }

    /// A repeat whose event the API server no longer has is created anew.
    #[tokio::test]
    async fn a_repeat_of_an_expired_event_is_created_anew() {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let p = Publisher::new(kube::Client::new(service, "default"), "oem-test", None);
        let server = tokio::spawn(async move {
            let mut methods = Vec::new();
            for code in [201, 404, 201] {
                let (request, send) = handle.next_request().await.expect("a request");
                methods.push(request.method().to_string());
                let body = request.into_body().collect_bytes().await.unwrap();
                let body = if code == 404 {
                    serde_json::to_vec(&json!({"kind": "Status", "apiVersion": "v1",
                        "status": "Failure", "reason": "NotFound", "code": 404, "message": "gone"}))
                    .unwrap()
                } else {
                    body.to_vec()
                };
                send.send_response(
                    Response::builder()
                        .status(code)
                        .body(Body::from(body))
                        .unwrap(),
                );
            }
            methods
        });
        let object = alice();
        p.publish(&said(&object, "web down")).await.unwrap();
        p.publish(&said(&object, "web down")).await.unwrap();
        assert_eq!(server.await.unwrap(), ["POST", "PATCH", "POST"]);
        assert_eq!(p.remembered(), 1);
    }
}

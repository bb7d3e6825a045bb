//! What every reconcile shares: the client, the configuration, the clock, metrics and the
//! event publisher.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::rbac::v1::Subject;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

use crate::clock::SharedClock;
use crate::config::Config;
use crate::metrics::Metrics;

pub struct Context {
    pub client: kube::Client,
    pub config: Config,
    pub clock: SharedClock,
    pub metrics: Metrics,
    /// The operator's own RBAC subject (`identity.rs`): what its per-namespace Secret
    /// RoleBindings bind.
    pub identity: Subject,
    events: Mutex<Events>,
    reporter: Reporter,
}

/// How long kube's event recorder keeps an event it published (to count a repeat as a series
/// of it): its `CACHE_TTL`.
pub const EVENTS_REMEMBERED: Duration = Duration::from_secs(6 * 60);

/// The event publisher and when it last published. kube's recorder forgets its old events only
/// when it publishes again, so after a burst (2,000 end users provisioned, an event or two
/// each) an idle operator held every one of them; a recorder idle for longer than it remembers
/// is replaced by a new one ([`Context::forget_old_events`]).
struct Events {
    recorder: Recorder,
    last: Option<Instant>,
}

impl Context {
    pub fn new(
        client: kube::Client,
        config: Config,
        clock: SharedClock,
        metrics: Metrics,
        identity: Subject,
    ) -> Arc<Self> {
        let reporter = Reporter {
            controller: "oem-hosting-operator".into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Arc::new(Self {
            events: Mutex::new(Events {
                recorder: Recorder::new(client.clone(), reporter.clone()),
                last: None,
            }),
            reporter,
            client,
            config,
            clock,
            metrics,
            identity,
        })
    }

    /// Publishes a Kubernetes Event on `object`. Failing to publish is logged, never fatal:
    /// events are for people, the status is the record.
    pub async fn event(
        &self,
        object: &ObjectReference,
        warning: bool,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let event = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.into(),
            note: Some(note),
            action: action.into(),
            secondary: None,
        };
        let recorder = {
            let mut events = self.events.lock().unwrap_or_else(PoisonError::into_inner);
            events.last = Some(Instant::now());
            events.recorder.clone()
        };
        if let Err(error) = recorder.publish(&event, object).await {
            tracing::warn!(%error, reason, "publishing an event failed");
        }
    }

    /// Replaces the event recorder when nothing was published for `idle` (at least
    /// [`EVENTS_REMEMBERED`] in use: it would have forgotten them all at its next publish);
    /// true when it did.
    pub fn forget_old_events(&self, idle: Duration) -> bool {
        let mut events = self.events.lock().unwrap_or_else(PoisonError::into_inner);
        if events.last.is_none_or(|last| last.elapsed() < idle) {
            return false;
        }
        *events = Events {
            recorder: Recorder::new(self.client.clone(), self.reporter.clone()),
            last: None,
        };
        true
    }

    /// The "event memory" part: every minute, forgets the published events once idle for
    /// [`EVENTS_REMEMBERED`].
    pub async fn forget_events(self: Arc<Self>, stop: oem_supervisor::Stop) -> Result<(), String> {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(60)) => {}
                _ = stop.requested() => return Ok(()),
            }
            if self.forget_old_events(EVENTS_REMEMBERED) {
                tracing::debug!("forgot the events published more than six minutes ago");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use http::{Request, Response};
    use kube::client::Body;

    use super::*;
    use crate::clock::SystemClock;

    /// A burst of events is forgotten once the publisher was idle for as long as kube's
    /// recorder remembers them, not before, and not when nothing was published.
    #[tokio::test]
    async fn the_event_recorder_is_replaced_only_after_an_idle_spell() {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let ctx = Context::new(
            kube::Client::new(service, "default"),
            Config::default(),
            Arc::new(SystemClock),
            Metrics::register(&prometheus::Registry::new()).unwrap(),
            crate::identity::subject_of("system:serviceaccount:test:operator"),
        );
        assert!(
            !ctx.forget_old_events(Duration::ZERO),
            "nothing published yet"
        );
        let server = tokio::spawn(async move {
            let (request, send) = handle.next_request().await.expect("the event is posted");
            assert_eq!(request.method().as_str(), "POST", "{}", request.uri());
            // The event back, as the API server stores it.
            let body = request.into_body().collect_bytes().await.unwrap();
            send.send_response(
                Response::builder()
                    .status(201)
                    .body(Body::from(body.to_vec()))
                    .unwrap(),
            );
        });
        let object = ObjectReference {
            namespace: Some("reseller-acme".into()),
            name: Some("alice".into()),
            ..ObjectReference::default()
        };
        ctx.event(&object, false, "Provisioned", "Apply", "ready".into())
            .await;
        server.await.unwrap();
        assert!(
            !ctx.forget_old_events(EVENTS_REMEMBERED),
            "published a moment ago"
        );
        assert!(
            ctx.forget_old_events(Duration::ZERO),
            "idle for long enough"
        );
        assert!(
            !ctx.forget_old_events(Duration::ZERO),
            "the new recorder published nothing"
        );
    }
}

//! What every reconcile shares: the client, the configuration, the clock, metrics and the
//! event publisher.

use std::sync::Arc;

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
    recorder: Recorder,
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
            recorder: Recorder::new(client.clone(), reporter),
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
        if let Err(error) = self.recorder.publish(&event, object).await {
            tracing::warn!(%error, reason, "publishing an event failed");
        }
    }
}

//! What every reconcile shares: the client, the configuration, the clock, metrics and the
//! event publisher.

use std::sync::Arc;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::rbac::v1::Subject;

use crate::clock::SharedClock;
use crate::config::Config;
use crate::events::{Publisher, Said};
use crate::metrics::Metrics;

pub struct Context {
    pub client: kube::Client,
    pub config: Config,
    pub clock: SharedClock,
    pub metrics: Metrics,
    /// The operator's own RBAC subject (`identity.rs`): what its per-namespace Secret
    /// RoleBindings bind.
    pub identity: Subject,
    events: Publisher,
}

impl Context {
    pub fn new(
        client: kube::Client,
        config: Config,
        clock: SharedClock,
        metrics: Metrics,
        identity: Subject,
    ) -> Arc<Self> {
        Arc::new(Self {
            events: Publisher::new(
                client.clone(),
                "oem-hosting-operator",
                std::env::var("POD_NAME").ok(),
            ),
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
        let said = Said {
            regarding: object,
            warning,
            reason,
            action,
            note,
        };
        if let Err(error) = self.events.publish(&said).await {
            tracing::warn!(%error, reason, "publishing an event failed");
        }
    }
}

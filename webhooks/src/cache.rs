//! The cluster as the webhooks see it: reflector caches of Course, EndUser and Reseller, and a
//! bounded direct GET of the one password Secret a request names (Secret values are never
//! cached, and a metadata-only watch could not see the keys).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::civil::Date;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use oem_crds::{Course, EndUser, Reseller};
use serde::de::DeserializeOwned;

use crate::lookup::{Lookup, SecretKeys};
use crate::policy::SecurityPolicy;

/// The reflector stores and what a lookup needs besides them.
#[derive(Clone)]
pub struct Caches {
    client: Client,
    courses: Store<Course>,
    end_users: Store<EndUser>,
    resellers: Store<Reseller>,
    policy: Arc<SecurityPolicy>,
    secret_timeout: Duration,
    max_maintenance_window: jiff::SignedDuration,
}

fn watch<K>(api: Api<K>) -> Store<K>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync,
{
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(api, watcher::Config::default()))
        .default_backoff()
        .touched_objects();
    tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            if let Err(e) = event {
                tracing::warn!(error = %e, "watch error; retrying");
            }
        }
    });
    reader
}

impl Caches {
    /// Starts the watches (cluster-wide); [`Caches::ready`] waits for their first lists.
    pub fn start(client: Client, policy: SecurityPolicy, secret_timeout: Duration) -> Self {
        Self {
            courses: watch(Api::<Course>::all(client.clone())),
            end_users: watch(Api::<EndUser>::all(client.clone())),
            resellers: watch(Api::<Reseller>::all(client.clone())),
            client,
            policy: Arc::new(policy),
            secret_timeout,
            max_maintenance_window: crate::rules::maintenance::DEFAULT_MAX_WINDOW,
        }
    }

    /// The longest maintenance window the provider allows (`--max-maintenance-window`).
    pub fn with_max_maintenance_window(mut self, max: jiff::SignedDuration) -> Self {
        self.max_maintenance_window = max;
        self
    }

    /// Resolves when every cache has listed once.
    pub async fn ready(&self) -> anyhow::Result<()> {
        self.courses.wait_until_ready().await?;
        self.end_users.wait_until_ready().await?;
        self.resellers.wait_until_ready().await?;
        Ok(())
    }

    /// A lookup for one request, with the named password Secret's keys fetched first, and
    /// the named course read when the cache does not show it (yet: a GitOps sync applies a
    /// course and its end users together, and the watch lags the write by a moment).
    pub async fn view(
        &self,
        secret: Option<(String, String)>,
        course: Option<(String, String)>,
    ) -> ClusterView {
        let secret = match secret {
            Some((ns, name)) => {
                let keys = self.secret_keys(&ns, &name).await;
                Some((ns, name, keys))
            }
            None => None,
        };
        let course = match course {
            Some((ns, name)) if self.cached_course(&ns, &name).is_none() => {
                self.read_course(&ns, &name).await
            }
            _ => None,
        };
        ClusterView {
            caches: self.clone(),
            secret,
            course,
            today: jiff::Timestamp::now()
                .to_zoned(jiff::tz::TimeZone::UTC)
                .date(),
        }
    }

    fn cached_course(&self, namespace: &str, name: &str) -> Option<Arc<Course>> {
        self.courses.get(&ObjectRef::new(name).within(namespace))
    }

    /// One course read from the API server; `None` when absent or not answered in time (the
    /// rule then refuses as for a course that does not exist).
    async fn read_course(&self, namespace: &str, name: &str) -> Option<Arc<Course>> {
        let api: Api<Course> = Api::namespaced(self.client.clone(), namespace);
        match tokio::time::timeout(self.secret_timeout, api.get_opt(name)).await {
            Ok(Ok(found)) => found.map(Arc::new),
            Ok(Err(error)) => {
                tracing::warn!(%error, namespace, course = name, "reading a course failed");
                None
            }
            Err(_) => {
                tracing::warn!(
                    namespace,
                    course = name,
                    "reading a course: no answer in time"
                );
                None
            }
        }
    }

    async fn secret_keys(&self, namespace: &str, name: &str) -> SecretKeys {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        match tokio::time::timeout(self.secret_timeout, api.get_opt(name)).await {
            Err(_) => SecretKeys::Unknown(format!(
                "no answer within {}s",
                self.secret_timeout.as_secs_f64()
            )),
            Ok(Err(e)) => SecretKeys::Unknown(format!("API error: {e}")),
            Ok(Ok(None)) => SecretKeys::Missing,
            // Only the key names leave this function; the values are dropped here.
            Ok(Ok(Some(secret))) => SecretKeys::Found(
                secret
                    .data
                    .into_iter()
                    .flat_map(|d| d.into_keys())
                    .chain(secret.string_data.into_iter().flat_map(|d| d.into_keys()))
                    .collect(),
            ),
        }
    }
}

/// The caches plus the one Secret and the one course read for this request.
pub struct ClusterView {
    caches: Caches,
    secret: Option<(String, String, SecretKeys)>,
    /// The course the request names, read because the cache did not show it.
    course: Option<Arc<Course>>,
    today: Date,
}

impl Lookup for ClusterView {
    fn course(&self, namespace: &str, name: &str) -> Option<Arc<Course>> {
        self.caches.cached_course(namespace, name).or_else(|| {
            self.course
                .clone()
                .filter(|c| c.namespace().as_deref() == Some(namespace) && c.name_any() == name)
        })
    }

    fn end_users(&self) -> Vec<Arc<EndUser>> {
        self.caches.end_users.state()
    }

    fn reseller(&self, name: &str) -> Option<Arc<Reseller>> {
        self.caches.resellers.get(&ObjectRef::new(name))
    }

    fn secret_keys(&self, namespace: &str, name: &str) -> SecretKeys {
        match &self.secret {
            Some((ns, n, keys)) if ns == namespace && n == name => keys.clone(),
            _ => SecretKeys::Unknown("not fetched".into()),
        }
    }

    fn policy(&self) -> &SecurityPolicy {
        &self.caches.policy
    }

    fn today(&self) -> Date {
        self.today
    }

    fn max_maintenance_window(&self) -> jiff::SignedDuration {
        self.caches.max_maintenance_window
    }
}

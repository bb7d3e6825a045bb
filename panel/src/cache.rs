//! What the panel reads, from one watch per kind: EndUsers, Courses, Resellers, Incidents and
//! maintenance windows (both kinds) in full (managed fields dropped), Secrets as metadata only (their resourceVersion says when a
//! password changed; their values are read only when needed, never kept). Pages are served from
//! these stores, never with an API call per request.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use oem_crds::enduser::ServiceName;
use oem_crds::maintenance::{ClusterMaintenance, Maintenance, MaintenancePhase, MaintenanceReason};
use oem_crds::reseller::NAMESPACE_PREFIX;
use oem_crds::{Course, EndUser, Incident, Reseller};
use serde::de::DeserializeOwned;

/// The stores every page reads.
#[derive(Clone)]
pub struct Caches {
    pub endusers: Store<EndUser>,
    pub courses: Store<Course>,
    pub resellers: Store<Reseller>,
    pub incidents: Store<Incident>,
    pub maintenances: Store<Maintenance>,
    pub cluster_maintenances: Store<ClusterMaintenance>,
    pub secrets: Store<PartialObjectMeta<Secret>>,
}

/// The writers that fill [`Caches`]; tests fill them by hand.
pub struct Writers {
    pub endusers: reflector::store::Writer<EndUser>,
    pub courses: reflector::store::Writer<Course>,
    pub resellers: reflector::store::Writer<Reseller>,
    pub incidents: reflector::store::Writer<Incident>,
    pub maintenances: reflector::store::Writer<Maintenance>,
    pub cluster_maintenances: reflector::store::Writer<ClusterMaintenance>,
    pub secrets: reflector::store::Writer<PartialObjectMeta<Secret>>,
}

/// Empty stores and their writers.
pub fn stores() -> (Caches, Writers) {
    let (endusers, enduser_writer) = reflector::store();
    let (courses, course_writer) = reflector::store();
    let (resellers, reseller_writer) = reflector::store();
    let (incidents, incident_writer) = reflector::store();
    let (maintenances, maintenance_writer) = reflector::store();
    let (cluster_maintenances, cluster_maintenance_writer) = reflector::store();
    let (secrets, secret_writer) = reflector::store();
    (
        Caches {
            endusers,
            courses,
            resellers,
            incidents,
            maintenances,
            cluster_maintenances,
            secrets,
        },
        Writers {
            endusers: enduser_writer,
            courses: course_writer,
            resellers: reseller_writer,
            incidents: incident_writer,
            maintenances: maintenance_writer,
            cluster_maintenances: cluster_maintenance_writer,
            secrets: secret_writer,
        },
    )
}

fn drop_managed_fields<K: Resource>(object: &mut K) {
    object.meta_mut().managed_fields = None;
}

/// Keeps who owns what of the object itself (the resellers' panel shows a field another
/// applier owns as theirs and leaves it alone), drops the status writers' entries.
fn keep_spec_managers<K: Resource>(object: &mut K) {
    if let Some(fields) = object.meta_mut().managed_fields.as_mut() {
        fields.retain(|entry| entry.subresource.as_deref().is_none_or(str::is_empty));
    }
}

async fn reflect<K>(client: Client, writer: reflector::store::Writer<K>)
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    reflect_with(client, writer, drop_managed_fields).await
}

async fn reflect_with<K>(client: Client, writer: reflector::store::Writer<K>, trim: fn(&mut K))
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let api: Api<K> = Api::all(client);
    watcher(api, watcher::Config::default())
        .default_backoff()
        .modify(trim)
        .reflect(writer)
        .for_each(|event| async move {
            if let Err(error) = event {
                tracing::warn!(kind = %K::kind(&()), %error, "watch failed; retrying");
            }
        })
        .await;
}

/// Runs every watch; returns only if one of them ends (it should not: they retry).
pub async fn run(client: Client, writers: Writers) {
    let secrets = async {
        // An Api of PartialObjectMeta asks for metadata only: values never reach the panel.
        let api: Api<PartialObjectMeta<Secret>> = Api::all(client.clone());
        watcher(api, watcher::Config::default())
            .default_backoff()
            .modify(drop_managed_fields)
            .reflect(writers.secrets)
            .for_each(|event| async move {
                if let Err(error) = event {
                    tracing::warn!(kind = "Secret", %error, "watch failed; retrying");
                }
            })
            .await;
    };
    tokio::select! {
        _ = reflect_with(client.clone(), writers.endusers, keep_spec_managers) => {}
        _ = reflect_with(client.clone(), writers.courses, keep_spec_managers) => {}
        _ = reflect(client.clone(), writers.resellers) => {}
        _ = reflect(client.clone(), writers.incidents) => {}
        _ = reflect(client.clone(), writers.maintenances) => {}
        _ = reflect(client.clone(), writers.cluster_maintenances) => {}
        _ = secrets => {}
    }
}

impl Caches {
    /// Waits until every store holds its first full list.
    pub async fn wait_ready(&self) -> Result<(), reflector::store::WriterDropped> {
        self.endusers.wait_until_ready().await?;
        self.courses.wait_until_ready().await?;
        self.resellers.wait_until_ready().await?;
        self.incidents.wait_until_ready().await?;
        self.maintenances.wait_until_ready().await?;
        self.cluster_maintenances.wait_until_ready().await?;
        self.secrets.wait_until_ready().await
    }

    pub fn reseller(&self, name: &str) -> Option<Arc<Reseller>> {
        self.resellers.get(&ObjectRef::new(name))
    }

    /// The reseller whose namespace `namespace` is.
    pub fn reseller_of(&self, namespace: &str) -> Option<Arc<Reseller>> {
        self.reseller(namespace.strip_prefix(NAMESPACE_PREFIX)?)
    }

    pub fn enduser(&self, namespace: &str, name: &str) -> Option<Arc<EndUser>> {
        self.endusers.get(&ObjectRef::new(name).within(namespace))
    }

    /// The end user of `reseller` with this login ID (unique within a reseller).
    pub fn enduser_by_login(&self, reseller: &str, login_id: &str) -> Option<Arc<EndUser>> {
        let namespace = format!("{NAMESPACE_PREFIX}{reseller}");
        self.endusers.state().into_iter().find(|eu| {
            eu.namespace().as_deref() == Some(namespace.as_str()) && eu.spec.login_id == login_id
        })
    }

    pub fn course(&self, namespace: &str, name: &str) -> Option<Arc<Course>> {
        self.courses.get(&ObjectRef::new(name).within(namespace))
    }

    /// The incidents of one end user, newest first.
    pub fn incidents_of(&self, namespace: &str, enduser: &str) -> Vec<Arc<Incident>> {
        let mut found = self.incidents_in(namespace);
        found.retain(|i| i.spec.end_user == enduser);
        found
    }

    /// The maintenance windows not yet ended that name this end user (its reseller's) or every
    /// end user (the provider's), soonest first. The provider's node windows are not shown:
    /// which node an end user's pods run on is not the end user's concern.
    pub fn maintenance_for(
        &self,
        namespace: &str,
        enduser: &str,
        now: jiff::Timestamp,
    ) -> Vec<PlannedWork> {
        let ended = |end: jiff::Timestamp, phase: Option<MaintenancePhase>| {
            end <= now || phase == Some(MaintenancePhase::Ended)
        };
        let mut found: Vec<PlannedWork> = Vec::new();
        for window in self.maintenances.state() {
            let phase = window.status.as_ref().and_then(|s| s.phase);
            if window.namespace().as_deref() != Some(namespace) || ended(window.spec.end.0, phase) {
                continue;
            }
            for target in window.spec.targets.iter().filter(|t| t.end_user == enduser) {
                found.push(PlannedWork::new(
                    &window.spec.reason,
                    window.spec.start.0,
                    window.spec.end.0,
                    &target.services,
                    now,
                ));
            }
        }
        for window in self.cluster_maintenances.state() {
            let phase = window.status.as_ref().and_then(|s| s.phase);
            if ended(window.spec.end.0, phase) {
                continue;
            }
            for target in window.spec.targets.iter().filter(|t| t.all_end_users) {
                found.push(PlannedWork::new(
                    &window.spec.reason,
                    window.spec.start.0,
                    window.spec.end.0,
                    &target.services,
                    now,
                ));
            }
        }
        found.sort_by_key(|w| (w.start, w.end));
        found
    }

    /// A reseller's end users, by name.
    pub fn endusers_in(&self, namespace: &str) -> Vec<Arc<EndUser>> {
        by_name(in_namespace(&self.endusers, namespace))
    }

    /// A reseller's courses, by name.
    pub fn courses_in(&self, namespace: &str) -> Vec<Arc<Course>> {
        by_name(in_namespace(&self.courses, namespace))
    }

    /// A reseller's incidents, newest first.
    pub fn incidents_in(&self, namespace: &str) -> Vec<Arc<Incident>> {
        let mut found = in_namespace(&self.incidents, namespace);
        found.sort_by(|a, b| started_at(b).cmp(&started_at(a)));
        found
    }

    pub fn incident(&self, namespace: &str, name: &str) -> Option<Arc<Incident>> {
        self.incidents.get(&ObjectRef::new(name).within(namespace))
    }

    /// The resourceVersion of a Secret, if it exists.
    pub fn secret_version(&self, namespace: &str, name: &str) -> Option<String> {
        self.secrets
            .get(&ObjectRef::new(name).within(namespace))
            .and_then(|s| s.resource_version())
    }
}

fn started_at(
    incident: &Incident,
) -> Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time> {
    incident.status.as_ref().and_then(|s| s.started_at.as_ref())
}

/// The objects of `store` in `namespace`.
fn in_namespace<K>(store: &Store<K>, namespace: &str) -> Vec<Arc<K>>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    store
        .state()
        .into_iter()
        .filter(|o| o.meta().namespace.as_deref() == Some(namespace))
        .collect()
}

/// Sorted by name (compared in place, not copied per comparison).
fn by_name<K: Resource>(mut objects: Vec<Arc<K>>) -> Vec<Arc<K>> {
    objects.sort_by(|a, b| a.meta().name.cmp(&b.meta().name));
    objects
}

/// A maintenance window as the end user is told of it.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedWork {
    pub start: jiff::Timestamp,
    pub end: jiff::Timestamp,
    /// Empty: every service.
    pub services: Vec<ServiceName>,
    pub reason_ja: Option<String>,
    pub reason_en: Option<String>,
    /// Under way now.
    pub open: bool,
}

impl PlannedWork {
    fn new(
        reason: &MaintenanceReason,
        start: jiff::Timestamp,
        end: jiff::Timestamp,
        services: &[ServiceName],
        now: jiff::Timestamp,
    ) -> Self {
        Self {
            start,
            end,
            services: services.to_vec(),
            reason_ja: reason.ja.clone(),
            reason_en: reason.en.clone(),
            open: start <= now,
        }
    }
}

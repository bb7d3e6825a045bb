//! The one place children are written ([`Applier`], used by the EndUser and Reseller
//! controllers alike): server-side apply with the operator's field manager, only when what the
//! operator owns differs from what is there (a no-op reconcile writes nothing; a hand edit of
//! an owned field is put back), and the managed objects no longer desired removed.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Mutex;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::ResourceQuota;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::compact::{self, hash_of};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::naming;

use oem_crds::quantity;

use crate::naming::FIELD_MANAGER;

/// What `apply` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The object was created or changed.
    Written,
    /// Everything the operator owns was already as desired.
    Unchanged,
}

/// The live state of one object, as a cache knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Live {
    /// Not in the cache: absent, or created so recently that its event has not arrived.
    Absent,
    /// Cached: the version that moves when its content does (its store's
    /// [`LiveStore::version`]).
    Meta(String),
    /// Not cached at all: read it before deciding.
    Unknown,
}

/// A store that can say how an object of kind `K` stands.
pub trait LiveStore<K: Resource> {
    fn live(&self, namespace: Option<&str>, name: &str) -> Live;
    /// Names of the cached objects in `namespace`.
    fn names_in(&self, namespace: &str) -> Vec<String>;
    /// The version [`LiveStore::live`] gives for `object`: its resourceVersion, unless the
    /// store knows a version that status writes do not move.
    fn version(object: &K) -> Option<String>
    where
        Self: Sized,
    {
        object.resource_version()
    }
}

/// A kind cached whole (or nearly) whose status is written often by someone else: its store
/// tells a change of what the operator owns by a version that status writes do not move, so a
/// status write costs no read at the next reconcile.
pub trait ContentVersion {
    fn content_version(&self) -> Option<String>;
}

/// Its generation (every change of its spec moves it) with its labels, annotations and
/// owners; the pod template need not be cached to compare (its status moves at each pod's
/// start and stop).
impl ContentVersion for StatefulSet {
    fn content_version(&self) -> Option<String> {
        let meta = &self.metadata;
        let generation = meta.generation?;
        let metadata =
            fingerprint(&(&meta.labels, &meta.annotations, &meta.owner_references)).ok()?;
        Some(format!("{generation}/{metadata:x}"))
    }
}

/// Its spec, labels, annotations and owners (it has no generation; the quota controller writes
/// its usage at each pod's start and stop).
impl ContentVersion for ResourceQuota {
    fn content_version(&self) -> Option<String> {
        let meta = &self.metadata;
        let content = (
            &meta.labels,
            &meta.annotations,
            &meta.owner_references,
            &self.spec,
        );
        fingerprint(&content).ok().map(|f| format!("{f:x}"))
    }
}

fn object_ref<K: Resource<DynamicType = ()>>(namespace: Option<&str>, name: &str) -> ObjectRef<K> {
    let r = ObjectRef::new(name);
    match namespace {
        Some(ns) => r.within(ns),
        None => r,
    }
}

/// The names of a store's objects in `namespace`.
fn names_in<T>(store: &Store<T>, namespace: &str) -> Vec<String>
where
    T: Resource<DynamicType = ()> + Clone,
{
    store
        .state()
        .iter()
        .filter(|o| o.namespace().as_deref() == Some(namespace))
        .map(|o| o.name_any())
        .collect()
}

impl<K> LiveStore<K> for Store<PartialObjectMeta<K>>
where
    K: Resource<DynamicType = ()> + Clone,
{
    fn live(&self, namespace: Option<&str>, name: &str) -> Live {
        match self.get(&object_ref(namespace, name)) {
            Some(meta) => Live::Meta(meta.resource_version().unwrap_or_default()),
            None => Live::Absent,
        }
    }

    fn names_in(&self, namespace: &str) -> Vec<String> {
        names_in(self, namespace)
    }
}

impl<K> LiveStore<K> for Store<K>
where
    K: ContentVersion + Resource<DynamicType = ()> + Clone,
{
    fn live(&self, namespace: Option<&str>, name: &str) -> Live {
        match self.get(&object_ref(namespace, name)) {
            Some(object) => Live::Meta(object.content_version().unwrap_or_default()),
            None => Live::Absent,
        }
    }

    fn names_in(&self, namespace: &str) -> Vec<String> {
        names_in(self, namespace)
    }

    fn version(object: &K) -> Option<String> {
        object.content_version()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    kind: Cow<'static, str>,
    namespace: String,
    name: String,
}

impl Key {
    /// A check's key (see [`Applier::checked`]).
    fn check(kind: &'static str, namespace: &str, name: &str) -> Self {
        Self {
            kind: Cow::Borrowed(kind),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }

    fn of<K: Resource<DynamicType = ()>>(object: &K) -> Self {
        Self {
            kind: K::kind(&()),
            namespace: object.namespace().unwrap_or_default(),
            name: object.name_any(),
        }
    }

    /// Where this key's record sorts among its namespace's: by kind, then name.
    fn sort(&self) -> (u64, u64) {
        (hash_of(&*self.kind), hash_of(self.name.as_str()))
    }
}

/// What was verified of one object of a namespace, in 24 bytes and no allocation: hashes of
/// its kind, of its name, and of the resourceVersion it was verified at with what was wanted
/// then. Names and versions are kept by the stores already; here one end user's score of
/// records took 2.5 MB at 2,000 end users as strings. A hash that matched by accident would
/// skip one write: 2^-64 for a given check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Record {
    kind: u64,
    name: u64,
    state: u64,
}

/// What a record says was verified: the version and the wanted state, together.
fn state(resource_version: &str, wanted: u64) -> u64 {
    hash_of((resource_version, wanted))
}

/// The records by namespace, each namespace's sorted by kind and name (a reseller's namespace
/// holds one per end user, so they are found by halving).
type Records = HashMap<Box<str>, Vec<Record>>;

fn position(records: &[Record], (kind, name): (u64, u64)) -> Result<usize, usize> {
    records.binary_search_by(|r| (r.kind, r.name).cmp(&(kind, name)))
}

fn record<'a>(records: &'a Records, key: &Key) -> Option<&'a Record> {
    let records = records.get(key.namespace.as_str())?;
    let at = position(records, key.sort()).ok()?;
    Some(&records[at])
}

/// A fingerprint of what was wanted: the same desired object gives the same number within
/// one process (the record is never persisted).
pub fn fingerprint<T: Serialize>(wanted: &T) -> Result<u64> {
    let text = serde_json::to_string(wanted).map_err(|source| Error::Serialize {
        what: "fingerprint",
        source,
    })?;
    Ok(hash_of(text))
}

/// Writes children: the one place a controller's objects are applied and its stale ones
/// removed. It remembers, per object, the resourceVersion it last verified and what was wanted
/// then, so a reconcile that finds an object as it left it sends no request.
#[derive(Default)]
pub struct Applier {
    /// Namespace → (kind, name) → (resourceVersion, fingerprint of what was wanted), hashed,
    /// at the last time the object was checked or written.
    verified: Mutex<Records>,
}

impl Applier {
    /// Whether `key` was verified at `resource_version` for the same wanted state.
    fn is_verified(&self, key: &Key, resource_version: &str, wanted: u64) -> bool {
        self.verified
            .lock()
            .map(|v| record(&v, key).is_some_and(|r| r.state == state(resource_version, wanted)))
            .unwrap_or(false)
    }

    fn has_record(&self, key: &Key) -> bool {
        self.verified
            .lock()
            .map(|v| record(&v, key).is_some())
            .unwrap_or(false)
    }

    fn remember(&self, key: Key, resource_version: Option<String>, wanted: u64) {
        let Ok(mut verified) = self.verified.lock() else {
            return;
        };
        let (kind, name) = key.sort();
        let records = verified.entry(key.namespace.as_str().into()).or_default();
        match (resource_version, position(records, (kind, name))) {
            (Some(rv), Ok(at)) => records[at].state = state(&rv, wanted),
            (Some(rv), Err(at)) => {
                // A hosting namespace's score of records, or a reseller namespace's one per
                // end user, without a doubled vector's empty half.
                let state = state(&rv, wanted);
                compact::insert_growing(records, at, Record { kind, name, state });
            }
            (None, Ok(at)) => {
                records.remove(at);
            }
            (None, Err(_)) => {}
        }
        if records.is_empty() {
            verified.remove(key.namespace.as_str());
        }
    }

    /// Forgets everything recorded about `namespace` (it is being deleted): what is in it,
    /// and the namespace object itself.
    pub fn forget_namespace(&self, namespace: &str) {
        if let Ok(mut verified) = self.verified.lock() {
            verified.remove(namespace);
            if let Some(cluster) = verified.get_mut("") {
                let name = hash_of(namespace);
                cluster.retain(|r| r.name != name);
            }
        }
    }

    /// A check recorded under `kind`/`namespace`/`name` (not an object this controller
    /// writes whole): true when it was made at `resource_version` for the same `wanted`.
    pub fn checked(
        &self,
        kind: &'static str,
        namespace: &str,
        name: &str,
        resource_version: &str,
        wanted: u64,
    ) -> bool {
        let key = Key::check(kind, namespace, name);
        self.is_verified(&key, resource_version, wanted)
    }

    /// Whether any check is recorded under `kind`/`namespace`/`name`, at whatever version.
    pub fn recorded(&self, kind: &'static str, namespace: &str, name: &str) -> bool {
        self.has_record(&Key::check(kind, namespace, name))
    }

    /// Records a check (see [`Applier::checked`]).
    pub fn record_check(
        &self,
        kind: &'static str,
        namespace: &str,
        name: &str,
        resource_version: Option<String>,
        wanted: u64,
    ) {
        let key = Key::check(kind, namespace, name);
        self.remember(key, resource_version, wanted);
    }

    /// Makes the live object contain `desired`: nothing is sent when the object is as it was
    /// last verified for the same wanted state; otherwise the live object is compared (read
    /// from the cache when whole there, else fetched) and written only when it differs.
    pub async fn ensure<K>(
        &self,
        ctx: &Context,
        api: &Api<K>,
        desired: &K,
        live: Live,
    ) -> Result<Applied>
    where
        K: Resource<DynamicType = ()> + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
    {
        self.ensure_versioned(ctx, api, desired, live, &|o: &K| o.resource_version())
            .await
    }

    /// [`Applier::ensure`], recording the version `version` gives (the one the object's
    /// store tells it by).
    async fn ensure_versioned<K>(
        &self,
        ctx: &Context,
        api: &Api<K>,
        desired: &K,
        live: Live,
        version: &(dyn Fn(&K) -> Option<String> + Sync),
    ) -> Result<Applied>
    where
        K: Resource<DynamicType = ()> + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
    {
        let key = Key::of(desired);
        let wanted = fingerprint(desired)?;
        let kind = key.kind.clone();
        let name = desired.name_any();
        let failed = |action: &'static str| {
            let name = format!("{kind}/{name}");
            move |source| Error::Kube {
                action,
                kind: "child",
                name,
                source,
            }
        };
        let current = match live {
            // Written here but not yet seen by the cache (a reconcile woken by the write of
            // another child before this one's event came back), or deleted since: a read
            // tells which, where a write would send it again.
            Live::Absent if self.has_record(&key) => api
                .get_opt(&desired.name_any())
                .await
                .map_err(failed("get"))?,
            Live::Absent => None,
            Live::Unknown => api
                .get_opt(&desired.name_any())
                .await
                .map_err(failed("get"))?,
            Live::Meta(seen) => {
                if self.is_verified(&key, &seen, wanted) {
                    return Ok(Applied::Unchanged);
                }
                api.get_opt(&desired.name_any())
                    .await
                    .map_err(failed("get"))?
            }
        };
        let (applied, after) = apply_over(api, desired, current.as_ref(), version)
            .await
            .map_err(failed("apply"))?;
        self.remember(key.clone(), after, wanted);
        if applied == Applied::Written {
            ctx.metrics.writes.with_label_values(&[&key.kind]).inc();
            tracing::info!(kind = %key.kind, name = %key.name, namespace = %key.namespace, "applied");
        }
        Ok(applied)
    }

    /// Ensures every desired object of one kind in `namespace` and deletes the managed ones
    /// of that kind not desired (a service dropped from the course takes its objects along).
    pub async fn converge<K, S>(
        &self,
        ctx: &Context,
        store: &S,
        namespace: &str,
        desired: Vec<K>,
    ) -> Result<()>
    where
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
            + Clone
            + Serialize
            + DeserializeOwned
            + std::fmt::Debug,
        S: LiveStore<K>,
    {
        let api: Api<K> = Api::namespaced(ctx.client.clone(), namespace);
        let mut wanted = std::collections::BTreeSet::new();
        for object in &desired {
            let name = object.name_any();
            let live = store.live(Some(namespace), &name);
            self.ensure_versioned(ctx, &api, object, live, &S::version)
                .await?;
            wanted.insert(name);
        }
        let kind = K::kind(&()).into_owned();
        for stale in store
            .names_in(namespace)
            .into_iter()
            .filter(|n| !wanted.contains(n))
        {
            match api.delete(&stale, &DeleteParams::background()).await {
                Ok(_) => tracing::info!(%kind, name = %stale, %namespace, "removed"),
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(Error::kube("delete", "child", format!("{kind}/{stale}"))(e)),
            }
        }
        Ok(())
    }
}

/// The managed objects of one kind in one namespace as listed now (metadata): what
/// [`Applier::converge`] compares with when no cache holds the kind.
pub struct Listed {
    namespace: String,
    versions: HashMap<String, String>,
}

impl Listed {
    /// Lists the operator's objects of kind `K` in `namespace` (by the managed-by label).
    pub async fn managed<K>(client: &kube::Client, namespace: &str) -> Result<Listed>
    where
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + Debug,
    {
        let api: Api<K> = Api::namespaced(client.clone(), namespace);
        let selector = format!("{}={}", naming::LABEL_MANAGED_BY, naming::MANAGED_BY);
        let list = api
            .list_metadata(&ListParams::default().labels(&selector))
            .await
            .map_err(Error::kube(
                "list",
                "child",
                format!("{}/{namespace}", K::kind(&())),
            ))?;
        Ok(Listed {
            namespace: namespace.to_owned(),
            versions: list
                .items
                .iter()
                .map(|o| (o.name_any(), o.resource_version().unwrap_or_default()))
                .collect(),
        })
    }
}

impl<K: Resource> LiveStore<K> for Listed {
    fn live(&self, namespace: Option<&str>, name: &str) -> Live {
        if namespace != Some(self.namespace.as_str()) {
            return Live::Unknown;
        }
        match self.versions.get(name) {
            Some(version) => Live::Meta(version.clone()),
            None => Live::Absent,
        }
    }

    fn names_in(&self, namespace: &str) -> Vec<String> {
        if namespace == self.namespace {
            self.versions.keys().cloned().collect()
        } else {
            Vec::new()
        }
    }
}

/// Applies `desired` unless `current`, the live object (`None`: absent, or not seen yet),
/// already contains it. `api` must be scoped to the object's namespace (or cluster-wide).
/// Returns what it did and the object's `version` afterwards.
async fn apply_over<K>(
    api: &Api<K>,
    desired: &K,
    current: Option<&K>,
    version: &(dyn Fn(&K) -> Option<String> + Sync),
) -> std::result::Result<(Applied, Option<String>), kube::Error>
where
    K: Resource + Clone + Serialize + DeserializeOwned + Debug,
{
    if let Some(current) = current {
        let want = serde_json::to_value(desired).map_err(kube::Error::SerdeError)?;
        let have = serde_json::to_value(current).map_err(kube::Error::SerdeError)?;
        if contains(&have, &want) {
            return Ok((Applied::Unchanged, version(current)));
        }
    }
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let written = api
        .patch(&desired.name_any(), &params, &Patch::Apply(desired))
        .await?;
    Ok((Applied::Written, version(&written)))
}

/// True when every field set in `want` has the same value in `have`. Maps may hold more keys
/// (defaults the API server added, fields of other managers); lists must match element by
/// element; quantities compare by value ("1Gi" equals "1073741824", "0.5" equals "500m").
pub fn contains(have: &Value, want: &Value) -> bool {
    match (have, want) {
        (_, Value::Null) => true,
        (Value::Object(h), Value::Object(w)) => w.iter().all(|(k, wv)| {
            if matches!(k.as_str(), "status" | "resourceVersion" | "managedFields") {
                return true;
            }
            match h.get(k) {
                Some(hv) => contains(hv, wv),
                None => is_empty(wv),
            }
        }),
        (Value::Array(h), Value::Array(w)) => {
            h.len() == w.len() && h.iter().zip(w).all(|(hv, wv)| contains(hv, wv))
        }
        (Value::String(h), Value::String(w)) => {
            h == w
                || matches!((quantity::value(h), quantity::value(w)), (Some(a), Some(b)) if same(a, b))
        }
        (Value::Number(h), Value::Number(w)) => h.as_f64() == w.as_f64(),
        (h, w) => h == w,
    }
}

/// An empty map or list the server dropped is not a difference.
fn is_empty(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.values().all(is_empty),
        Value::Array(a) => a.is_empty(),
        Value::Null => true,
        _ => false,
    }
}

fn same(a: f64, b: f64) -> bool {
    (a - b).abs() <= f64::EPSILON * a.abs().max(b.abs()).max(1.0) * 4.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_record_is_kept_by_namespace_kind_and_name_and_forgotten_with_its_namespace() {
        let applier = Applier::default();
        applier.record_check("Check", "h-a", "data", Some("7".into()), 1);
        applier.record_check("Other", "h-a", "data", Some("8".into()), 2);
        applier.record_check("Namespace", "", "h-a", Some("3".into()), 0);
        applier.record_check("Namespace", "", "h-b", Some("4".into()), 0);
        assert!(applier.checked("Check", "h-a", "data", "7", 1));
        assert!(
            !applier.checked("Check", "h-a", "data", "8", 1),
            "another version"
        );
        assert!(
            !applier.checked("Check", "h-a", "data", "7", 2),
            "another wish"
        );
        assert!(
            applier.checked("Other", "h-a", "data", "8", 2),
            "kinds apart"
        );
        applier.record_check("Check", "h-a", "data", Some("9".into()), 1);
        assert!(applier.checked("Check", "h-a", "data", "9", 1), "replaced");
        applier.record_check("Other", "h-a", "data", None, 2);
        assert!(
            !applier.recorded("Other", "h-a", "data"),
            "no version: forgotten"
        );
        applier.forget_namespace("h-a");
        assert!(!applier.recorded("Check", "h-a", "data"));
        assert!(
            !applier.recorded("Namespace", "", "h-a"),
            "the namespace object too"
        );
        assert!(applier.recorded("Namespace", "", "h-b"));
    }

    #[test]
    fn a_reseller_namespace_keeps_one_record_per_end_user_each_found_and_forgotten_alone() {
        let applier = Applier::default();
        let name = |i: usize| format!("user-{i}");
        for i in 0..300 {
            applier.record_check("Status", "reseller-a", &name(i), Some(format!("{i}")), 5);
        }
        let capacity = applier.verified.lock().unwrap()["reseller-a"].capacity();
        assert!(
            capacity <= 300 + 300 / 8 + 1,
            "grown by an eighth: {capacity}"
        );
        for i in (0..300).step_by(3) {
            applier.record_check("Status", "reseller-a", &name(i), None, 5);
        }
        for i in 0..300 {
            let kept = i % 3 != 0;
            assert_eq!(
                applier.recorded("Status", "reseller-a", &name(i)),
                kept,
                "{i}"
            );
            assert_eq!(
                applier.checked("Status", "reseller-a", &name(i), &format!("{i}"), 5),
                kept,
                "{i}"
            );
        }
        assert_eq!(applier.verified.lock().unwrap()["reseller-a"].len(), 200);
    }

    #[test]
    fn quantities_compare_by_value() {
        assert_eq!(quantity::value("1Gi"), Some(1073741824.0));
        assert_eq!(quantity::value("100M"), Some(1e8));
        assert_eq!(quantity::value("250m"), Some(0.25));
        assert_eq!(quantity::value("1e3"), Some(1000.0));
        assert_eq!(quantity::value("nginx:1.27"), None);
        assert_eq!(quantity::value("M"), None);
        assert!(contains(&json!("500m"), &json!("0.5")));
        assert!(!contains(&json!("1Gi"), &json!("1G")));
    }

    #[test]
    fn defaults_added_by_the_server_are_not_a_difference() {
        let have = json!({"spec": {"replicas": 1, "revisionHistoryLimit": 10,
            "template": {"spec": {"containers": [{"name": "web", "image": "a", "imagePullPolicy": "IfNotPresent"}]}}}});
        let want = json!({"spec": {"replicas": 1,
            "template": {"spec": {"containers": [{"name": "web", "image": "a"}]}}}});
        assert!(contains(&have, &want));
    }

    #[test]
    fn a_changed_owned_field_is_a_difference() {
        let have = json!({"spec": {"replicas": 0}});
        let want = json!({"spec": {"replicas": 1}});
        assert!(!contains(&have, &want));
    }

    #[test]
    fn a_missing_list_element_is_a_difference() {
        let have = json!({"ports": [{"port": 80}]});
        let want = json!({"ports": [{"port": 80}, {"port": 443}]});
        assert!(!contains(&have, &want));
    }

    #[test]
    fn empty_maps_the_server_dropped_are_not_a_difference() {
        let have = json!({"spec": {}});
        let want = json!({"spec": {"podSelector": {}}});
        assert!(contains(&have, &want));
        let want_label = json!({"metadata": {"labels": {"a": "b"}}});
        assert!(!contains(&json!({"metadata": {}}), &want_label));
    }
}

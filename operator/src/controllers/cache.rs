//! What the EndUser controller knows without asking: one watch per kind it reads or writes,
//! each feeding a store and waking the end user a change belongs to, plus a record of what the
//! controller last verified. A reconcile that finds everything as it left it sends
//! no request at all; one that finds a changed object (a hand edit, a status update) looks at
//! that object only.
//!
//! Children are known by name and resourceVersion only (`versions.rs`: a version says whether
//! anything changed), except StatefulSets, known by their content version, readiness and
//! volume templates (`sets.rs`: their status tells whether the end user is Active), and
//! ResourceQuotas, known by their content version, owner and grant (`quotas.rs`). Secret values are never
//! cached: only the names, versions and DKIM public keys of the operator's own Secrets.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Arc;

use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};
use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    LimitRange, Namespace, PersistentVolumeClaim, ResourceQuota, Secret, Service,
};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use oem_crds::DomainClaim;
use oem_crds::course::Course;
use oem_crds::enduser::EndUser;
use oem_crds::reseller::Reseller;
use serde::de::DeserializeOwned;

use super::namespaces::NamespaceEntry;
use super::quotas::QuotaEntry;
use super::sets::SetEntry;
use crate::apply::Applier;
use crate::hosting::TLS_SECRET;
use crate::hosting::certificate::Certificate;
use crate::hosting::dkim::ANNOTATION_PUBLIC_KEY;
use crate::versions::{self, Feeder, Keep, Versions, versions};
use crate::view::{self, Feed, SpecChanges, View};
use crate::{naming, slim};

/// The caches, the record of verified objects, and the end users to wake.
pub struct Caches {
    pub courses: Store<Course>,
    pub resellers: Store<Reseller>,
    /// Every namespace: its version and owner labels (`namespaces.rs`).
    pub namespaces: Versions<Namespace, NamespaceEntry>,
    pub role_bindings: Versions<RoleBinding>,
    /// Their content version (the quota controller writes their status at each pod's start
    /// and stop), owner and grant (`quotas.rs`).
    pub quotas: Versions<ResourceQuota, QuotaEntry>,
    pub limit_ranges: Versions<LimitRange>,
    pub network_policies: Versions<NetworkPolicy>,
    pub services: Versions<Service>,
    pub ingresses: Versions<Ingress>,
    /// The operator's Secrets, with the DKIM key's public half (its annotation).
    pub secrets: Versions<Secret>,
    /// The hosting namespaces' `tls` Secrets (whoever made them: cert-manager, the provider),
    /// as metadata: their resourceVersion rolls the workloads that present the certificate.
    pub tls_secrets: Versions<Secret>,
    /// The end users' cert-manager Certificates, watched only when an issuer is configured
    /// (`certificates.issuer`; without one the cluster need not have cert-manager at all).
    pub certificates: Option<Versions<Certificate>>,
    /// The data volumes' claims, with their service group (label).
    pub claims: Versions<PersistentVolumeClaim>,
    /// What the phase and the volume templates need of each set (`sets.rs`).
    pub stateful_sets: Versions<StatefulSet, SetEntry>,
    /// Every DomainClaim (cluster-scoped, one per domain): who holds a domain, without a
    /// request per reconcile. A claim deleted wakes the end users that list its domain.
    pub domain_claims: Store<DomainClaim>,
    /// Writes the children, remembering what it verified.
    pub applier: Applier,
    /// The addresses last read from each public Service's status, by namespace and name, with
    /// the version they were read at (`hosting/public.rs`): read again only when it moves.
    pub public_addresses: std::sync::Mutex<AddressMemo>,
}

/// Addresses by (namespace, Service name), with the version they were read at.
pub type AddressMemo = HashMap<(String, String), (String, Vec<IpAddr>)>;

type Wake = UnboundedSender<ObjectRef<EndUser>>;
/// One watch or waker of the caches, run as a task of the EndUser controller's part: it ends
/// only when the controller is gone (its wake channel closed), and the part fails if one ends
/// while it runs.
pub type Driver = futures::future::BoxFuture<'static, ()>;
/// Names the end users to wake for a changed object (`true`: it was deleted).
type Mapper<T> = Box<dyn Fn(&T, bool) -> Vec<ObjectRef<EndUser>> + Send>;

/// One reflector (its driver pushed to `drivers`), waking the end users `map` names for each
/// change.
fn reflector_of<T, S>(
    stream: S,
    slim: fn(&mut T),
    wake: Wake,
    map: Mapper<T>,
    drivers: &mut Vec<Driver>,
) -> Store<T>
where
    T: Resource + Clone + Send + Sync + 'static,
    T::DynamicType: Eq + Hash + Clone + Default,
    S: Stream<Item = std::result::Result<watcher::Event<T>, watcher::Error>> + Send + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = stream.default_backoff().modify(slim).reflect(writer);
    drivers.push(Box::pin(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            for enduser in woken(&event, &map) {
                if wake.unbounded_send(enduser).is_err() {
                    return;
                }
            }
        }
    }));
    reader
}

/// The end users one event of a watch wakes (`map` of the object, told whether it went).
fn woken<O>(
    event: &std::result::Result<watcher::Event<O>, watcher::Error>,
    map: &Mapper<O>,
) -> Vec<ObjectRef<EndUser>> {
    match event {
        Ok(watcher::Event::Apply(object) | watcher::Event::InitApply(object)) => map(object, false),
        Ok(watcher::Event::Delete(object)) => map(object, true),
        Ok(watcher::Event::Init | watcher::Event::InitDone) => Vec::new(),
        Err(error) => {
            tracing::debug!(%error, "watch error; retrying");
            Vec::new()
        }
    }
}

/// Wakes the end users `map` names for each object of a view's feed whose spec changed or that
/// went, or whose `milestone` turned ([`SpecChanges::or_milestone`]): the rest of a Course's
/// or Reseller's status means nothing to its end users, and waking every end user of a course
/// for each count would cost a reconcile each.
fn waker_of<T>(
    feed: Feed<T>,
    store: Store<T>,
    milestone: fn(&T) -> bool,
    wake: Wake,
    map: fn(&Store<EndUser>, &T) -> Vec<ObjectRef<EndUser>>,
    endusers: Store<EndUser>,
) -> Driver
where
    T: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    Box::pin(async move {
        let mut changes = std::pin::pin!(SpecChanges::or_milestone(feed, store, milestone));
        while let Some(object) = changes.next().await {
            for enduser in map(&endusers, object.as_ref()) {
                if wake.unbounded_send(enduser).is_err() {
                    return;
                }
            }
        }
    })
}

/// The end users on `course`.
fn on_course(endusers: &Store<EndUser>, course: &Course) -> Vec<ObjectRef<EndUser>> {
    let ns = course.namespace();
    endusers
        .state()
        .iter()
        .filter(|eu| eu.namespace() == ns && eu.spec.course_ref.name == course.name_any())
        .map(|eu| ObjectRef::from_obj(eu.as_ref()))
        .collect()
}

/// The end users of `reseller` (its admins are in every end user's tenant-viewer binding).
fn of_reseller(endusers: &Store<EndUser>, reseller: &Reseller) -> Vec<ObjectRef<EndUser>> {
    let ns = naming::reseller_namespace(&reseller.name_any());
    endusers
        .state()
        .iter()
        .filter(|eu| eu.namespace().as_deref() == Some(ns.as_str()))
        .map(|eu| ObjectRef::from_obj(eu.as_ref()))
        .collect()
}

fn owner_of<K: Resource>(child: &K, _deleted: bool) -> Vec<ObjectRef<EndUser>> {
    owner_in(child.labels())
}

/// The end user that `labels` (a child's or a namespace's) name.
fn owner_in(labels: &std::collections::BTreeMap<String, String>) -> Vec<ObjectRef<EndUser>> {
    match (
        labels.get(naming::LABEL_ENDUSER),
        labels.get(naming::LABEL_ENDUSER_NAMESPACE),
    ) {
        (Some(name), Some(ns)) => vec![ObjectRef::new(name).within(ns)],
        _ => Vec::new(),
    }
}

/// A kind's children known by name and version ([`Versions`], keeping `keep`), from a
/// metadata watch of the managed ones, waking their end users.
fn children<K>(
    client: &kube::Client,
    keep: Keep,
    wake: &Wake,
    drivers: &mut Vec<Driver>,
) -> Versions<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync,
    K: 'static,
{
    let stream = watcher(
        Api::<PartialObjectMeta<K>>::all(client.clone()),
        view::watch_managed(),
    );
    versions_of(stream, keep, wake.clone(), Box::new(owner_of), drivers)
}

/// A kind's children known by what `extract` keeps of each (its status read, or a version its
/// status does not move), from a watch of the whole managed objects, waking their end users.
fn children_kept<K, V>(
    client: &kube::Client,
    extract: fn(&K) -> V,
    wake: &Wake,
    drivers: &mut Vec<Driver>,
) -> Versions<K, V>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync,
    K: 'static,
    V: Send + Sync + 'static,
{
    let (store, feeder) = versions::store(extract);
    feed(
        watcher(Api::<K>::all(client.clone()), view::watch_managed()),
        feeder,
        wake.clone(),
        Box::new(owner_of),
        drivers,
    );
    store
}

/// A [`Versions`] store fed by `stream` (its driver pushed to `drivers`), waking the end users
/// `map` names for each change.
fn versions_of<K, S>(
    stream: S,
    keep: Keep,
    wake: Wake,
    map: Mapper<PartialObjectMeta<K>>,
    drivers: &mut Vec<Driver>,
) -> Versions<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync,
    K: 'static,
    S: Stream<Item = std::result::Result<watcher::Event<PartialObjectMeta<K>>, watcher::Error>>
        + Send
        + 'static,
{
    let (store, feeder) = versions::<K>(keep);
    feed(stream, feeder, wake, map, drivers);
    store
}

/// Drives `feeder` from `stream` (a driver pushed to `drivers`), waking the end users `map`
/// names for each change.
fn feed<O, V, S>(
    stream: S,
    feeder: Feeder<O, V>,
    wake: Wake,
    map: Mapper<O>,
    drivers: &mut Vec<Driver>,
) where
    O: Resource + Send + Sync + 'static,
    V: Send + Sync + 'static,
    S: Stream<Item = std::result::Result<watcher::Event<O>, watcher::Error>> + Send + 'static,
{
    drivers.push(Box::pin(async move {
        let mut stream = std::pin::pin!(stream.default_backoff());
        while let Some(event) = stream.next().await {
            if let Ok(event) = &event {
                feeder.apply(event);
            }
            for enduser in woken(&event, &map) {
                if wake.unbounded_send(enduser).is_err() {
                    return;
                }
            }
        }
    }));
}

impl Caches {
    /// The watches of the children, to be run (the returned drivers). Changes wake end users
    /// through the returned stream; courses, resellers and end users are the view's (its feeds
    /// of courses and resellers wake their end users). `issue_certificates`: also watch the
    /// end users' cert-manager Certificates.
    pub fn start(
        client: &kube::Client,
        view: &View,
        course_feed: Feed<Course>,
        reseller_feed: Feed<Reseller>,
        issue_certificates: bool,
    ) -> (
        Arc<Caches>,
        UnboundedReceiver<ObjectRef<EndUser>>,
        Vec<Driver>,
    ) {
        let (wake, woken) = unbounded();
        let mut drivers = Vec::new();
        let endusers = view.endusers.clone();
        let courses = view.courses.clone();
        drivers.push(waker_of(
            course_feed,
            courses.clone(),
            |_| false,
            wake.clone(),
            on_course,
            endusers.clone(),
        ));
        let resellers = view.resellers.clone();
        drivers.push(waker_of(
            reseller_feed,
            resellers.clone(),
            // An end user applied with its reseller waits for it to be set up.
            Reseller::is_set_up,
            wake.clone(),
            of_reseller,
            endusers.clone(),
        ));
        let quotas = children_kept(client, QuotaEntry::of, &wake, &mut drivers);
        let stateful_sets = children_kept(client, SetEntry::of, &wake, &mut drivers);
        // Every namespace, not only the operator's: a new end user's namespace is then known
        // absent (or someone else's) without a read.
        let (namespaces, feeder) = versions::store(NamespaceEntry::of);
        feed(
            watcher(
                Api::<PartialObjectMeta<Namespace>>::all(client.clone()),
                view::watch_all(),
            ),
            feeder,
            wake.clone(),
            Box::new(owner_of),
            &mut drivers,
        );
        // A `tls` Secret carries no label of ours: its end user is its namespace's owner.
        let owners = namespaces.clone();
        let tls_secrets = versions_of(
            watcher(
                Api::<PartialObjectMeta<Secret>>::all(client.clone()),
                view::watch_all().fields(&format!("metadata.name={TLS_SECRET}")),
            ),
            Keep::Nothing,
            wake.clone(),
            Box::new(move |secret: &PartialObjectMeta<Secret>, _deleted| {
                let Some(ns) = secret.namespace() else {
                    return Vec::new();
                };
                owners
                    .get(versions::CLUSTER, &ns)
                    .map(|namespace| owner_in(&namespace.labels()))
                    .unwrap_or_default()
            }),
            &mut drivers,
        );
        let listing = endusers;
        let domain_claims = reflector_of(
            watcher(Api::<DomainClaim>::all(client.clone()), view::watch_all()),
            slim::claim,
            wake.clone(),
            Box::new(move |claim: &DomainClaim, deleted| {
                if !deleted {
                    return Vec::new();
                }
                let domain = claim.name_any();
                listing
                    .state()
                    .iter()
                    .filter(|eu| super::domains::normalised(&eu.spec.domains).contains(&domain))
                    .map(|eu| ObjectRef::from_obj(eu.as_ref()))
                    .collect()
            }),
            &mut drivers,
        );
        let caches = Caches {
            courses,
            resellers,
            namespaces,
            role_bindings: children(client, Keep::Nothing, &wake, &mut drivers),
            quotas,
            limit_ranges: children(client, Keep::Nothing, &wake, &mut drivers),
            network_policies: children(client, Keep::Nothing, &wake, &mut drivers),
            services: children(client, Keep::Nothing, &wake, &mut drivers),
            ingresses: children(client, Keep::Nothing, &wake, &mut drivers),
            secrets: children(
                client,
                Keep::Annotation(ANNOTATION_PUBLIC_KEY),
                &wake,
                &mut drivers,
            ),
            tls_secrets,
            certificates: issue_certificates
                .then(|| children(client, Keep::Nothing, &wake, &mut drivers)),
            claims: children(
                client,
                Keep::Label(naming::LABEL_SERVICE_GROUP),
                &wake,
                &mut drivers,
            ),
            stateful_sets,
            domain_claims,
            applier: Applier::default(),
            public_addresses: Default::default(),
        };
        (Arc::new(caches), woken, drivers)
    }

    /// Waits until every store holds its first full list, so that nothing is taken for
    /// absent merely because it was not listed yet. False when a watch task ended first.
    /// (Courses and resellers are the view's: waited for with it.)
    pub async fn ready(&self) -> bool {
        macro_rules! all_ready {
            ($($store:ident),*) => {
                $(self.$store.wait_until_ready().await.is_ok())&&*
            };
        }
        macro_rules! all_listed {
            ($($store:ident),*) => {
                $(self.$store.wait_until_ready().await)&&*
            };
        }
        all_ready!(domain_claims)
            && all_listed!(
                namespaces,
                quotas,
                stateful_sets,
                role_bindings,
                limit_ranges,
                network_policies,
                services,
                ingresses,
                secrets,
                tls_secrets,
                claims
            )
            && match &self.certificates {
                Some(store) => store.wait_until_ready().await,
                None => true,
            }
    }

    pub fn course(&self, namespace: &str, name: &str) -> Option<Arc<Course>> {
        self.courses.get(&ObjectRef::new(name).within(namespace))
    }

    pub fn reseller(&self, name: &str) -> Option<Arc<Reseller>> {
        self.resellers.get(&ObjectRef::new(name))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::future::Future;
    use std::time::Duration;

    use http::{Request, Response};
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::client::Body;
    use kube::runtime::watcher::Event;
    use serde_json::{Value, json};
    use tower_test::mock::{self, Handle};

    use super::*;
    use crate::apply::{Applied, Live, fingerprint};
    use crate::clock::SystemClock;
    use crate::config::Config;
    use crate::context::Context;
    use crate::metrics::Metrics;

    /// Caches with no watch behind them; `sets` are put in the StatefulSet store.
    pub fn detached(sets: Vec<StatefulSet>) -> Caches {
        fn empty<T>() -> Store<T>
        where
            T: kube::runtime::reflector::Lookup + Clone + 'static,
            T::DynamicType: Eq + Hash + Clone + Default,
        {
            reflector::store().0
        }
        let (stateful_sets, feeder) = versions::store(SetEntry::of);
        for set in sets {
            feeder.apply(&Event::Apply(set));
        }
        Caches {
            courses: empty(),
            resellers: empty(),
            namespaces: versions::store(NamespaceEntry::of).0,
            role_bindings: versions(Keep::Nothing).0,
            quotas: versions::store(QuotaEntry::of).0,
            limit_ranges: versions(Keep::Nothing).0,
            network_policies: versions(Keep::Nothing).0,
            services: versions(Keep::Nothing).0,
            ingresses: versions(Keep::Nothing).0,
            secrets: versions(Keep::Nothing).0,
            tls_secrets: versions(Keep::Nothing).0,
            certificates: None,
            claims: versions(Keep::Nothing).0,
            stateful_sets,
            domain_claims: empty(),
            applier: Applier::default(),
            public_addresses: Default::default(),
        }
    }

    pub type ApiHandle = Handle<Request<Body>, Response<Body>>;

    /// A context whose client talks to a mock API server.
    pub fn context() -> (Arc<Context>, ApiHandle) {
        let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
        let client = kube::Client::new(service, "default");
        let metrics = Metrics::register(&prometheus::Registry::new()).unwrap();
        let ctx = Context::new(
            client,
            Config::default(),
            Arc::new(SystemClock),
            metrics,
            crate::identity::subject_of("system:serviceaccount:test:operator"),
        );
        (ctx, handle)
    }

    /// Runs `call` while answering exactly the requests in `answers` (method, body), and
    /// fails if any other request is sent.
    pub async fn serving<T>(
        handle: &mut ApiHandle,
        call: impl Future<Output = T>,
        answers: Vec<(&str, Value)>,
    ) -> T {
        let serve = async {
            for (method, body) in answers {
                let (request, send) = handle.next_request().await.expect("a request");
                assert_eq!(request.method().as_str(), method, "{}", request.uri());
                send.send_response(
                    Response::builder()
                        .body(Body::from(serde_json::to_vec(&body).unwrap()))
                        .unwrap(),
                );
            }
            let extra = tokio::time::timeout(Duration::from_millis(100), handle.next_request());
            if let Ok(Some((request, _))) = extra.await {
                panic!("unexpected request {} {}", request.method(), request.uri());
            }
        };
        tokio::join!(call, serve).0
    }

    fn config_map(value: &str, version: Option<&str>) -> Value {
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "site", "namespace": "h-a", "resourceVersion": version},
            "data": {"php": value}
        })
    }

    #[tokio::test]
    async fn an_object_found_as_it_was_verified_costs_no_request() {
        let (ctx, mut handle) = context();
        let caches = detached(Vec::new());
        let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), "h-a");
        let desired: ConfigMap = serde_json::from_value(config_map("8.4", None)).unwrap();
        let ensure = |live| caches.applier.ensure(&ctx, &api, &desired, live);

        // Not cached: applied without a read.
        let first = serving(
            &mut handle,
            ensure(Live::Absent),
            vec![("PATCH", config_map("8.4", Some("7")))],
        )
        .await;
        assert_eq!(first.unwrap(), Applied::Written);
        // The cache shows the version the write returned: nothing is sent.
        let again = serving(&mut handle, ensure(Live::Meta("7".into())), vec![]).await;
        assert_eq!(again.unwrap(), Applied::Unchanged);
        // Someone else changed it (a label, a status): read once, found as wanted.
        let changed = serving(
            &mut handle,
            ensure(Live::Meta("9".into())),
            vec![("GET", config_map("8.4", Some("9")))],
        )
        .await;
        assert_eq!(changed.unwrap(), Applied::Unchanged);
        let settled = serving(&mut handle, ensure(Live::Meta("9".into())), vec![]).await;
        assert_eq!(settled.unwrap(), Applied::Unchanged);
        // A hand edit of an owned field: read, then put back.
        let edited = serving(
            &mut handle,
            ensure(Live::Meta("10".into())),
            vec![
                ("GET", config_map("7.4", Some("10"))),
                ("PATCH", config_map("8.4", Some("11"))),
            ],
        )
        .await;
        assert_eq!(edited.unwrap(), Applied::Written);
    }

    #[tokio::test]
    async fn a_changed_wish_is_compared_again_at_the_same_version() {
        let (ctx, mut handle) = context();
        let caches = detached(Vec::new());
        let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), "h-a");
        let old: ConfigMap = serde_json::from_value(config_map("8.2", None)).unwrap();
        let new: ConfigMap = serde_json::from_value(config_map("8.4", None)).unwrap();
        let first = serving(
            &mut handle,
            caches.applier.ensure(&ctx, &api, &old, Live::Absent),
            vec![("PATCH", config_map("8.2", Some("3")))],
        )
        .await;
        assert_eq!(first.unwrap(), Applied::Written);
        let upgraded = serving(
            &mut handle,
            caches
                .applier
                .ensure(&ctx, &api, &new, Live::Meta("3".into())),
            vec![
                ("GET", config_map("8.2", Some("3"))),
                ("PATCH", config_map("8.4", Some("4"))),
            ],
        )
        .await;
        assert_eq!(upgraded.unwrap(), Applied::Written);
    }

    fn stateful_set(generation: i64, version: &str, ready: i32) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "web", "namespace": "h-a", "generation": generation,
                "resourceVersion": version},
            "spec": {"replicas": 1, "serviceName": "web",
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "php", "image": "php:8.4"}]}}},
            "status": {"replicas": 1, "readyReplicas": ready}
        })
    }

    /// A StatefulSet is known by its content version (`sets.rs`): its status changing (a new
    /// resourceVersion) costs no read; its spec changing (a new generation) is read and put back.
    #[tokio::test]
    async fn a_stateful_set_is_read_again_only_when_its_content_changed() {
        let (ctx, mut handle) = context();
        let (store, feeder) = versions::store::<StatefulSet, StatefulSet, SetEntry>(SetEntry::of);
        let mut writer = feeder;
        let cache = |writer: &mut Feeder<StatefulSet, SetEntry>, v: Value| {
            let set: StatefulSet = serde_json::from_value(v).unwrap();
            writer.apply(&Event::Apply(set));
        };
        let mut desired: StatefulSet = serde_json::from_value(stateful_set(0, "", 0)).unwrap();
        desired.metadata.generation = None;
        desired.metadata.resource_version = None;
        desired.status = None;
        cache(&mut writer, stateful_set(1, "5", 0));
        let applier = Arc::new(Applier::default());
        let run = |applier: &Arc<Applier>| {
            let (applier, desired) = (applier.clone(), desired.clone());
            let (store, ctx) = (store.clone(), ctx.clone());
            async move { applier.converge(&ctx, &store, "h-a", vec![desired]).await }
        };
        // First sight: read whole once and found as wanted.
        serving(
            &mut handle,
            run(&applier),
            vec![("GET", stateful_set(1, "5", 0))],
        )
        .await
        .unwrap();
        // Its pod became ready: a new resourceVersion, the same generation: nothing is sent.
        cache(&mut writer, stateful_set(1, "6", 1));
        serving(&mut handle, run(&applier), vec![]).await.unwrap();
        // Someone changed its spec: read, found different, put back.
        cache(&mut writer, stateful_set(2, "7", 1));
        let mut edited = stateful_set(2, "7", 1);
        edited["spec"]["template"]["spec"]["containers"][0]["image"] = json!("php:7.4");
        serving(
            &mut handle,
            run(&applier),
            vec![("GET", edited), ("PATCH", stateful_set(3, "8", 1))],
        )
        .await
        .unwrap();
        cache(&mut writer, stateful_set(3, "8", 1));
        serving(&mut handle, run(&applier), vec![]).await.unwrap();
    }

    #[test]
    fn fingerprints_follow_the_content() {
        let a = fingerprint(&json!({"a": 1})).unwrap();
        assert_eq!(a, fingerprint(&json!({"a": 1})).unwrap());
        assert_ne!(a, fingerprint(&json!({"a": 2})).unwrap());
    }
}

//! One view of the cluster. Each kind is watched once, started when this replica begins to
//! lead: a reflector (managed fields dropped), or for the hosting pods and Services, what the
//! loops read of each kept by namespace and name (`versions.rs`). The Reseller, Course and
//! EndUser controllers are driven by the view's shared streams of their kinds (and of the end
//! users they count), and the monitor, the usage reporter and the alert controller read its
//! stores; none of them LISTs on a timer, so their API reads do not grow with the number of
//! end users or incidents.
//!
//! Watched: Resellers, Courses, EndUsers, Incidents, Maintenances, ClusterMaintenances, the
//! operator's hosting pods, managed Services, Nodes, and the `default/kubernetes` Service. The
//! windows' kinds may not be installed: their stores stay empty then (a window must never hide
//! an outage by accident of a missing kind), and the other loops do not wait for them.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};
use futures::{Stream, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use kube::runtime::reflector::{self, Lookup, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource};
use oem_crds::incident::Incident;
use oem_crds::maintenance::{ClusterMaintenance, Maintenance};
use oem_crds::{Course, EndUser, Reseller};
use oem_supervisor::{Stop, Supervisor};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use crate::compact;
use crate::naming;
use crate::slim::{self, HostingPod, ServiceAddresses};
use crate::versions::{self, Versions};

/// Objects per page of a watch's (re)list. The pages are parsed whole, and every watch lists
/// at once when a replica starts to lead: at 500 (kube's default) the lists of 300 end users'
/// pods and StatefulSets held 54 MB at the start's peak, several times what the stores keep.
pub const PAGE_SIZE: u32 = 50;

/// A watch of every object of its kind, listed [`PAGE_SIZE`] at a time.
pub fn watch_all() -> watcher::Config {
    watcher::Config::default().page_size(PAGE_SIZE)
}

/// A watch of the operator's own objects (its managed-by label), listed [`PAGE_SIZE`] at a time.
pub fn watch_managed() -> watcher::Config {
    watch_all().labels(&format!(
        "{}={}",
        naming::LABEL_MANAGED_BY,
        naming::MANAGED_BY
    ))
}

/// The operator's hosting pods, by namespace and name.
pub type Pods = Versions<Pod, Arc<HostingPod>>;

/// The stores, shared by the loops.
#[derive(Clone)]
pub struct View {
    pub resellers: Store<Reseller>,
    pub courses: Store<Course>,
    pub endusers: Store<EndUser>,
    pub incidents: Store<Incident>,
    pub maintenances: Store<Maintenance>,
    pub cluster_maintenances: Store<ClusterMaintenance>,
    /// The operator's hosting pods (its managed-by label), by namespace and name.
    pub pods: Pods,
    /// The operator's Services (its managed-by label), by namespace and name.
    pub services: Versions<Service, Arc<ServiceAddresses>>,
    pub nodes: Store<Node>,
    /// `default/kubernetes`, whose addresses the monitor never probes.
    pub api_server: Store<ServiceAddresses>,
    /// True once the kinds every loop needs were listed once. One waiter watches the stores
    /// and tells the rest here: a store's own readiness wakes a single waiter only.
    filled: watch::Receiver<bool>,
}

/// A consumer's stream of one kind's changes: each object applied or deleted, and after each
/// full list every object listed. Sent after the view's store took the change in, so a
/// controller reading the store finds what it was woken for.
pub type Feed<K> = UnboundedReceiver<Arc<K>>;

/// The streams of the controllers' kinds, one per consumer, each taken by the controller it
/// names. (Not kube's shared-store subscriptions: a subscriber woken for an object deleted
/// before it read it stops being woken at all, and a full one holds the watch back.)
pub struct Triggers {
    /// The EndUser controller's own.
    pub endusers: Feed<EndUser>,
    /// The Course controller's, to count a course's end users.
    pub endusers_of_courses: Feed<EndUser>,
    /// The Reseller controller's, to count a reseller's end users.
    pub endusers_of_resellers: Feed<EndUser>,
    /// The Course controller's own.
    pub courses: Feed<Course>,
    /// The EndUser controller's, to wake a course's end users.
    pub courses_of_endusers: Feed<Course>,
    /// The Reseller controller's own.
    pub resellers: Feed<Reseller>,
    /// The EndUser controller's, to wake a reseller's end users.
    pub resellers_of_endusers: Feed<Reseller>,
}

/// Passes an object on when its spec changed (a new generation) or it went, not for a status
/// change. A Course or Reseller's status (counts written by its own controller) means nothing
/// to its end users; an end user's status (its services' health, its phase) changes nothing a
/// Course or Reseller counts. Each would cost a reconcile per status write.
#[derive(Default)]
pub struct SpecChanges {
    /// A hash of (namespace, name) → generation and milestone last passed on. The names are
    /// the stores' to keep: two copies of every end user's were 0.6 MB at 2,000. Two objects
    /// whose hashes met (2^-64 a pair) could hide one first sight of the later.
    seen: Mutex<HashMap<u64, (Option<i64>, bool)>>,
}

impl SpecChanges {
    fn changed<K: Resource>(&self, object: &K, milestone: bool, deleted: bool) -> bool {
        let meta = object.meta();
        let key = compact::hash_of((meta.namespace.as_deref(), meta.name.as_deref()));
        let Ok(mut seen) = self.seen.lock() else {
            return true;
        };
        if deleted {
            seen.remove(&key);
            return true;
        }
        let now = (object.meta().generation, milestone);
        seen.insert(key, now) != Some(now)
    }

    /// The objects of `feed` whose spec changed or that went (gone from `store`, which took
    /// the change in before it was fed).
    pub fn of<K>(feed: Feed<K>, store: Store<K>) -> impl Stream<Item = Arc<K>> + Send + 'static
    where
        K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
    {
        Self::or_milestone(feed, store, |_| false)
    }

    /// As [`SpecChanges::of`], and also when `milestone` (a fact of the status others wait
    /// for, e.g. a reseller set up) turns true or false.
    pub fn or_milestone<K>(
        feed: Feed<K>,
        store: Store<K>,
        milestone: fn(&K) -> bool,
    ) -> impl Stream<Item = Arc<K>> + Send + 'static
    where
        K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
    {
        let specs = SpecChanges::default();
        feed.filter(move |object| {
            let deleted = store.get(&ObjectRef::from_obj(object.as_ref())).is_none();
            let reached = milestone(object);
            std::future::ready(specs.changed(object.as_ref(), reached, deleted))
        })
    }
}

/// Adds a part that keeps `K`'s store filled from a watch until the stop; returns the store.
fn watch<K>(
    supervisor: &mut Supervisor,
    name: &'static str,
    api: Api<K>,
    config: watcher::Config,
    slim: fn(&mut K),
) -> Store<K>
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let keep = move |mut object: K| {
        slim(&mut object);
        object
    };
    watch_feeding(supervisor, name, api, config, keep, Vec::new())
}

/// Adds a part that keeps a store of `C`, what `compact` makes of each `K`, filled from a watch
/// until the stop; returns the store.
fn watch_compact<K, C>(
    supervisor: &mut Supervisor,
    name: &'static str,
    api: Api<K>,
    config: watcher::Config,
    compact: fn(K) -> C,
) -> Store<C>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
    C: Lookup<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    watch_feeding(supervisor, name, api, config, compact, Vec::new())
}

/// Adds a part that keeps what `extract` takes of each of the operator's objects of kind `K`
/// (its managed-by label) by namespace and name, in sorted lists (`versions.rs`), until the
/// stop; returns the store. A reflector's store keeps a hash table keyed by each object's
/// reference beside the objects: for 4,000 hosting pods, 8,192 buckets of 104 bytes and two
/// more names each.
fn watch_kept<K, V>(
    supervisor: &mut Supervisor,
    name: &'static str,
    api: Api<K>,
    extract: fn(&K) -> V,
) -> Versions<K, V>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
    V: Clone + Send + Sync + 'static,
{
    let (store, feeder) = versions::store(extract);
    let stop = supervisor.stop();
    supervisor.add(name, async move {
        let events = watcher(api, watch_managed()).default_backoff();
        follow(name, events, |event| feeder.apply(&event), stop).await
    });
    store
}

/// Takes each event of a watch until the stop; an error is logged and the watch retried (it
/// backs off), while the watch ending is the part's failure.
async fn follow<E>(
    name: &'static str,
    events: impl Stream<Item = Result<E, watcher::Error>>,
    mut take: impl FnMut(E),
    stop: Stop,
) -> Result<(), String> {
    let stream = events.for_each(|event| {
        match event {
            Ok(event) => take(event),
            Err(error) => {
                tracing::debug!(%error, part = name, "watch error; retrying");
            }
        }
        std::future::ready(())
    });
    tokio::select! {
        _ = stream => Err("the watch ended".to_owned()),
        _ = stop.requested() => Ok(()),
    }
}

/// Like [`watch`], and feeds every change to `N` consumers; returns the store and their
/// feeds (made before the watch starts, so none misses the first list).
fn watch_shared<K, const N: usize>(
    supervisor: &mut Supervisor,
    name: &'static str,
    api: Api<K>,
) -> (Store<K>, [Feed<K>; N])
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (senders, feeds): (Vec<UnboundedSender<Arc<K>>>, Vec<Feed<K>>) =
        (0..N).map(|_| unbounded()).unzip();
    let keep = |mut object: K| {
        slim::managed_fields(&mut object);
        object
    };
    let store = watch_feeding(supervisor, name, api, watch_all(), keep, senders);
    let feeds: [Feed<K>; N] = feeds
        .try_into()
        .unwrap_or_else(|_| unreachable!("N feeds were made"));
    (store, feeds)
}

/// What one watch event (already taken into `store`) feeds the consumers: the object applied
/// or deleted; after a (re)list, every object of the store, as kube's own controllers are
/// woken after one; nothing while a list is under way.
fn fed<K: Lookup<DynamicType = ()> + Clone>(
    event: watcher::Event<K>,
    store: &Store<K>,
) -> Vec<Arc<K>> {
    match event {
        watcher::Event::Apply(object) | watcher::Event::Delete(object) => vec![Arc::new(object)],
        watcher::Event::InitDone => store.state(),
        watcher::Event::Init | watcher::Event::InitApply(_) => Vec::new(),
    }
}

/// One watch event with its object made into what the store keeps.
fn kept<K, C>(event: watcher::Event<K>, keep: impl Fn(K) -> C) -> watcher::Event<C> {
    match event {
        watcher::Event::Apply(object) => watcher::Event::Apply(keep(object)),
        watcher::Event::Delete(object) => watcher::Event::Delete(keep(object)),
        watcher::Event::Init => watcher::Event::Init,
        watcher::Event::InitApply(object) => watcher::Event::InitApply(keep(object)),
        watcher::Event::InitDone => watcher::Event::InitDone,
    }
}

/// The part that runs one watch into a store of what `keep` makes of each object until the
/// stop, feeding each change to `feeds`.
fn watch_feeding<K, C>(
    supervisor: &mut Supervisor,
    name: &'static str,
    api: Api<K>,
    config: watcher::Config,
    keep: impl Fn(K) -> C + Copy + Send + 'static,
    feeds: Vec<UnboundedSender<Arc<C>>>,
) -> Store<C>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
    C: Lookup<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let store = reader.clone();
    let stop = supervisor.stop();
    supervisor.add(name, async move {
        let feed = |object: Arc<C>| {
            for consumer in &feeds {
                // A consumer gone (its part ended) stops the whole leadership anyway.
                let _ = consumer.unbounded_send(object.clone());
            }
        };
        let events = watcher(api, config)
            .default_backoff()
            .map_ok(move |event| kept(event, keep));
        let events = reflector::reflector(writer, events);
        let take = |event| fed(event, &store).into_iter().for_each(&feed);
        follow(name, events, take, stop).await
    });
    reader
}

impl View {
    /// Starts one watch per kind as parts of `supervisor`; returns the view and the
    /// controllers' shared streams.
    pub fn start(client: &kube::Client, supervisor: &mut Supervisor) -> (View, Triggers) {
        let (filled, filled_rx) = watch::channel(false);
        let (resellers, [resellers_own, resellers_of_endusers]) =
            watch_shared(supervisor, "view: resellers", Api::all(client.clone()));
        let (courses, [courses_own, courses_of_endusers]) =
            watch_shared(supervisor, "view: courses", Api::all(client.clone()));
        let (endusers, [endusers_own, endusers_of_courses, endusers_of_resellers]) =
            watch_shared(supervisor, "view: end users", Api::all(client.clone()));
        let triggers = Triggers {
            endusers: endusers_own,
            endusers_of_courses,
            endusers_of_resellers,
            courses: courses_own,
            courses_of_endusers,
            resellers: resellers_own,
            resellers_of_endusers,
        };
        let view = View {
            resellers,
            courses,
            endusers,
            incidents: watch(
                supervisor,
                "view: incidents",
                Api::all(client.clone()),
                watch_all(),
                slim::managed_fields,
            ),
            maintenances: watch(
                supervisor,
                "view: maintenances",
                Api::all(client.clone()),
                watch_all(),
                slim::managed_fields,
            ),
            cluster_maintenances: watch(
                supervisor,
                "view: cluster maintenances",
                Api::all(client.clone()),
                watch_all(),
                slim::managed_fields,
            ),
            pods: watch_kept(
                supervisor,
                "view: hosting pods",
                Api::all(client.clone()),
                |pod| Arc::new(HostingPod::of(pod)),
            ),
            services: watch_kept(
                supervisor,
                "view: services",
                Api::all(client.clone()),
                |service| Arc::new(ServiceAddresses::of(service)),
            ),
            nodes: watch(
                supervisor,
                "view: nodes",
                Api::all(client.clone()),
                watch_all(),
                slim::node,
            ),
            api_server: watch_compact(
                supervisor,
                "view: default/kubernetes",
                Api::namespaced(client.clone(), "default"),
                watcher::Config::default().fields("metadata.name=kubernetes"),
                |service| ServiceAddresses::of(&service),
            ),
            filled: filled_rx,
        };
        supervisor.add("view: filled", view.clone().fill(filled, supervisor.stop()));
        (view, triggers)
    }

    /// The "view: filled" part: tells every loop once the stores were listed, then waits for
    /// the stop.
    async fn fill(self, filled: watch::Sender<bool>, stop: Stop) -> Result<(), String> {
        tokio::select! {
            _ = self.listed() => {
                let _ = filled.send(true);
            }
            _ = stop.requested() => return Ok(()),
        }
        stop.requested().await;
        Ok(())
    }

    /// Resolves once the kinds every loop needs were listed once (the windows' kinds are not
    /// waited for). The only waiter on the stores themselves: the "view: filled" part.
    async fn listed(&self) {
        // An error means the writer is gone: its part ended and the supervisor stops all.
        let _ = self.resellers.wait_until_ready().await;
        let _ = self.courses.wait_until_ready().await;
        let _ = self.endusers.wait_until_ready().await;
        let _ = self.incidents.wait_until_ready().await;
        let _ = self.pods.wait_until_ready().await;
        let _ = self.services.wait_until_ready().await;
        let _ = self.nodes.wait_until_ready().await;
    }

    /// Resolves once the view is filled (at once if it is), or never.
    pub fn ready(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut filled = self.filled.clone();
        async move {
            if filled.wait_for(|f| *f).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Waits for [`View::ready`] until `stop`; false when the stop came first.
    pub async fn wait_ready(&self, stop: &Stop, part: &str) -> bool {
        let started = std::time::Instant::now();
        tokio::select! {
            _ = self.ready() => {
                tracing::debug!(part, took = ?started.elapsed(), "the view is filled");
                true
            }
            _ = stop.requested() => false,
        }
    }

    /// The objects of a store, shared (a look at 2,000 end users must not copy them all: the
    /// copies were 8.6 MB of the 44.6 MB peak at 300).
    pub fn all<K: Lookup<DynamicType = ()> + Clone>(store: &Store<K>) -> Vec<Arc<K>> {
        store.state()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use kube::ResourceExt;
    use kube::runtime::reflector::store::Writer;

    use super::*;

    fn store<K>() -> (Store<K>, Writer<K>)
    where
        K: Lookup<DynamicType = ()> + Clone + 'static,
    {
        let (reader, writer) = reflector::store();
        (reader, writer)
    }

    fn named(name: &str) -> Node {
        Node {
            metadata: kube::api::ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            ..Node::default()
        }
    }

    /// A consumer is fed every change after the store took it in, and the whole list after a
    /// (re)list, never the objects of a list still under way.
    #[test]
    fn a_feed_carries_each_change_and_the_whole_list_once_it_is_in() {
        let (store, mut writer) = store::<Node>();
        let names = |objects: Vec<Arc<Node>>| {
            let mut names: Vec<String> = objects.iter().map(|o| o.name_any()).collect();
            names.sort();
            names
        };
        for event in [
            watcher::Event::Init,
            watcher::Event::InitApply(named("a")),
            watcher::Event::InitApply(named("b")),
        ] {
            writer.apply_watcher_event(&event);
            assert!(fed(event, &store).is_empty(), "nothing while listing");
        }
        writer.apply_watcher_event(&watcher::Event::InitDone);
        assert_eq!(names(fed(watcher::Event::InitDone, &store)), ["a", "b"]);
        let applied = watcher::Event::Apply(named("c"));
        writer.apply_watcher_event(&applied);
        assert_eq!(names(fed(applied, &store)), ["c"]);
        let deleted = watcher::Event::Delete(named("a"));
        writer.apply_watcher_event(&deleted);
        assert_eq!(names(fed(deleted, &store)), ["a"], "a deletion is fed too");
        assert!(store.get(&reflector::ObjectRef::new("a")).is_none());
    }

    #[test]
    fn only_a_new_generation_a_milestone_or_a_deletion_passes() {
        let specs = SpecChanges::default();
        let mut object = named("basic");
        object.meta_mut().generation = Some(1);
        assert!(specs.changed(&object, false, false), "first sight");
        object.meta_mut().resource_version = Some("2".into());
        assert!(!specs.changed(&object, false, false), "a status change");
        assert!(specs.changed(&object, true, false), "a milestone reached");
        assert!(!specs.changed(&object, true, false), "and still reached");
        object.meta_mut().generation = Some(2);
        assert!(specs.changed(&object, true, false), "a spec change");
        assert!(specs.changed(&object, true, true), "gone");
        assert!(specs.changed(&object, true, false), "back again");
        let mut other = named("premium");
        other.meta_mut().generation = Some(2);
        assert!(specs.changed(&other, true, false), "another object apart");
        assert!(!specs.changed(&object, true, false), "the first one kept");
    }

    /// The loops all wait for the view at once; each must wake when the stores are listed
    /// (a store's own readiness wakes only one of them).
    #[tokio::test]
    async fn every_loop_waiting_for_the_view_wakes_once_it_is_listed() {
        let (resellers, mut w1) = store();
        let (courses, mut w2) = store();
        let (endusers, mut w3) = store();
        let (incidents, mut w4) = store();
        let (pods, w5) = versions::store(|pod: &Pod| Arc::new(HostingPod::of(pod)));
        let (services, w6) = versions::store(|s: &Service| Arc::new(ServiceAddresses::of(s)));
        let (nodes, mut w7) = store();
        let (filled, filled_rx) = watch::channel(false);
        let view = View {
            resellers,
            courses,
            endusers,
            incidents,
            maintenances: store().0,
            cluster_maintenances: store().0,
            pods,
            services,
            nodes,
            api_server: store().0,
            filled: filled_rx,
        };
        tokio::spawn(view.clone().fill(filled, Stop::never()));
        let waiters: Vec<_> = (0..3).map(|_| tokio::spawn(view.ready())).collect();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            waiters.iter().all(|w| !w.is_finished()),
            "ready before any list"
        );
        w1.apply_watcher_event(&watcher::Event::InitDone);
        w2.apply_watcher_event(&watcher::Event::InitDone);
        w3.apply_watcher_event(&watcher::Event::InitDone);
        w4.apply_watcher_event(&watcher::Event::InitDone);
        w5.apply(&watcher::Event::InitDone);
        w6.apply(&watcher::Event::InitDone);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            waiters.iter().all(|w| !w.is_finished()),
            "ready before the nodes"
        );
        w7.apply_watcher_event(&watcher::Event::InitDone);
        for waiter in waiters {
            tokio::time::timeout(Duration::from_secs(2), waiter)
                .await
                .expect("every waiter wakes")
                .unwrap();
        }
        // A loop that starts later finds it filled at once.
        tokio::time::timeout(Duration::from_secs(1), view.ready())
            .await
            .unwrap();
    }
}

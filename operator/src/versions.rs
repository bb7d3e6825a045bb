//! The children a reconcile only asks "is it there, and has it changed?" of, known by name and
//! resourceVersion alone (and, per kind, the one label or annotation something reads), kept by
//! namespace: about a tenth of a cached metadata object's memory, and a namespace's children
//! found without scanning every namespace's. Cluster-scoped objects are kept under
//! [`CLUSTER`]. Fed by a metadata watch (`cache.rs`); a re-list
//! replaces the whole content once it is complete, as a reflector does.

use std::marker::PhantomData;
use std::sync::{Arc, PoisonError, RwLock};

use kube::core::PartialObjectMeta;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use tokio::sync::watch;

use crate::apply::{Live, LiveStore};
use crate::compact;

/// What a store keeps of each object of kind `K`: at least the version that says whether it
/// changed.
pub trait Kept<K>: Clone {
    fn version(&self) -> &str;
    /// The version the store will show for `object` (what a write of it is recorded at): its
    /// resourceVersion, unless the entry keeps one that status writes do not move.
    fn version_of(object: &K) -> Option<String>;
}

/// What is kept of one child.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub version: Box<str>,
    /// The value of the kind's kept label or annotation ([`Keep`]), when it has one.
    pub kept: Option<Box<str>>,
}

/// The one label or annotation of a kind something reads, if any.
#[derive(Debug, Clone, Copy, Default)]
pub enum Keep {
    #[default]
    Nothing,
    Label(&'static str),
    Annotation(&'static str),
}

impl<K: Resource> Kept<K> for Entry {
    fn version(&self) -> &str {
        &self.version
    }

    fn version_of(object: &K) -> Option<String> {
        object.resource_version()
    }
}

impl Entry {
    /// The entry of a child (its metadata, or the whole object) keeping `keep`.
    pub fn of<O: Resource>(object: &O, keep: Keep) -> Self {
        let kept = match keep {
            Keep::Nothing => None,
            Keep::Label(key) => object.labels().get(key),
            Keep::Annotation(key) => object.annotations().get(key),
        };
        Self {
            version: object
                .resource_version()
                .unwrap_or_default()
                .into_boxed_str(),
            kept: kept.map(|v| v.clone().into_boxed_str()),
        }
    }
}

/// The namespace cluster-scoped objects (namespaces) are kept under.
pub const CLUSTER: &str = "";

/// Values by name in a vector sorted by name, found by halving: a namespace's children (one
/// to three of a kind in a hosting namespace, where a map took 212 bytes before any name; at
/// 2,000 end users the stores' maps held 5 MB), and the namespaces of a store (a hash table of
/// 2,000 namespaces kept 4,096 buckets: 2 MB over the dozen stores at 2,000 end users). It
/// grows by an eighth, not by doubling.
struct Sorted<V>(Vec<(Box<str>, V)>);

impl<V> Default for Sorted<V> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<V> Sorted<V> {
    fn position(&self, name: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(n, _)| (**n).cmp(name))
    }

    fn get(&self, name: &str) -> Option<&V> {
        let at = self.position(name).ok()?;
        Some(&self.0[at].1)
    }

    fn get_mut(&mut self, name: &str) -> Option<&mut V> {
        let at = self.position(name).ok()?;
        Some(&mut self.0[at].1)
    }

    fn insert_at(&mut self, at: usize, name: &str, value: V) -> &mut V {
        compact::insert_growing(&mut self.0, at, (name.into(), value));
        &mut self.0[at].1
    }

    /// The value of `name`, put there by `new` if there was none.
    fn entry(&mut self, name: &str, new: impl FnOnce() -> V) -> &mut V {
        match self.position(name) {
            Ok(at) => &mut self.0[at].1,
            Err(at) => self.insert_at(at, name, new()),
        }
    }

    /// Makes `value` the value of `name`.
    fn put(&mut self, name: &str, value: V) {
        match self.position(name) {
            Ok(at) => self.0[at].1 = value,
            Err(at) => {
                self.insert_at(at, name, value);
            }
        }
    }

    fn remove(&mut self, name: &str) {
        if let Ok(at) = self.position(name) {
            self.0.remove(at);
        }
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn iter(&self) -> impl Iterator<Item = (&str, &V)> {
        self.0.iter().map(|(name, value)| (&**name, value))
    }
}

type ByNamespace<V> = Sorted<Sorted<V>>;

struct Content<V> {
    current: ByNamespace<V>,
    /// A re-list in progress: what it found so far.
    relist: Option<ByNamespace<V>>,
}

/// What is kept (`V`) of one kind's (`K`) children, by namespace and name; cheap to clone
/// (shared).
pub struct Versions<K, V = Entry> {
    content: Arc<RwLock<Content<V>>>,
    listed: watch::Receiver<bool>,
    _kind: PhantomData<fn() -> K>,
}

impl<K, V> Clone for Versions<K, V> {
    fn clone(&self) -> Self {
        Self {
            content: self.content.clone(),
            listed: self.listed.clone(),
            _kind: PhantomData,
        }
    }
}

/// Feeds a [`Versions`] from the events of a watch of `O` (the kind's metadata, or the kind).
pub struct Feeder<O, V = Entry> {
    content: Arc<RwLock<Content<V>>>,
    extract: Box<dyn Fn(&O) -> V + Send + Sync>,
    listed: watch::Sender<bool>,
}

/// An empty store of names and versions (and `keep`) and what feeds it from a metadata watch.
pub fn versions<K: Resource>(keep: Keep) -> (Versions<K>, Feeder<PartialObjectMeta<K>>) {
    store(move |object: &PartialObjectMeta<K>| Entry::of(object, keep))
}

/// An empty store keeping what `extract` takes of each object, and what feeds it.
pub fn store<K, O, V>(
    extract: impl Fn(&O) -> V + Send + Sync + 'static,
) -> (Versions<K, V>, Feeder<O, V>) {
    let content = Arc::new(RwLock::new(Content {
        current: ByNamespace::default(),
        relist: None,
    }));
    let (tx, rx) = watch::channel(false);
    (
        Versions {
            content: content.clone(),
            listed: rx,
            _kind: PhantomData,
        },
        Feeder {
            content,
            extract: Box::new(extract),
            listed: tx,
        },
    )
}

fn put<V>(map: &mut ByNamespace<V>, (namespace, name, value): (&str, &str, V)) {
    map.entry(namespace, Sorted::default).put(name, value);
}

impl<O: Resource, V> Feeder<O, V> {
    fn entry_of<'a>(&self, object: &'a O) -> Option<(&'a str, &'a str, V)> {
        let meta = object.meta();
        let namespace = meta.namespace.as_deref().unwrap_or(CLUSTER);
        Some((namespace, meta.name.as_deref()?, (self.extract)(object)))
    }

    /// Takes one event of the watch in.
    pub fn apply(&self, event: &watcher::Event<O>) {
        let mut content = self.content.write().unwrap_or_else(PoisonError::into_inner);
        match event {
            watcher::Event::Apply(object) => {
                if let Some(found) = self.entry_of(object) {
                    put(&mut content.current, found);
                }
            }
            watcher::Event::Delete(object) => {
                let meta = object.meta();
                let namespace = meta.namespace.as_deref().unwrap_or(CLUSTER);
                if let Some(name) = &meta.name
                    && let Some(names) = content.current.get_mut(namespace)
                {
                    names.remove(name);
                    if names.is_empty() {
                        content.current.remove(namespace);
                    }
                }
            }
            watcher::Event::Init => content.relist = Some(ByNamespace::default()),
            watcher::Event::InitApply(object) => {
                if let Some(found) = self.entry_of(object)
                    && let Some(relist) = content.relist.as_mut()
                {
                    put(relist, found);
                }
            }
            watcher::Event::InitDone => {
                if let Some(relist) = content.relist.take() {
                    content.current = relist;
                }
                drop(content);
                self.listed.send_replace(true);
            }
        }
    }
}

impl<K, V: Clone> Versions<K, V> {
    /// Waits until the first list is in; false when its feeder is gone first.
    pub async fn wait_until_ready(&self) -> bool {
        let mut listed = self.listed.clone();
        listed.wait_for(|done| *done).await.is_ok()
    }

    /// The children in `namespace`: name and entry.
    pub fn in_namespace(&self, namespace: &str) -> Vec<(String, V)> {
        let content = self.content.read().unwrap_or_else(PoisonError::into_inner);
        content
            .current
            .get(namespace)
            .map(|names| {
                names
                    .iter()
                    .map(|(name, entry)| (name.to_string(), entry.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Calls `f` with every child's namespace, name and entry (under the store's lock: `f`
    /// must not read this store).
    pub fn each(&self, mut f: impl FnMut(&str, &str, &V)) {
        let content = self.content.read().unwrap_or_else(PoisonError::into_inner);
        for (namespace, names) in content.current.iter() {
            for (name, entry) in names.iter() {
                f(namespace, name, entry);
            }
        }
    }

    /// Every entry, by namespace and name.
    pub fn values(&self) -> Vec<V> {
        let content = self.content.read().unwrap_or_else(PoisonError::into_inner);
        let namespaces = content.current.iter();
        namespaces
            .flat_map(|(_, names)| names.iter().map(|(_, entry)| entry.clone()))
            .collect()
    }

    /// One child's entry.
    pub fn get(&self, namespace: &str, name: &str) -> Option<V> {
        let content = self.content.read().unwrap_or_else(PoisonError::into_inner);
        content.current.get(namespace)?.get(name).cloned()
    }
}

impl<K: Resource, V: Kept<K>> LiveStore<K> for Versions<K, V> {
    fn live(&self, namespace: Option<&str>, name: &str) -> Live {
        match self.get(namespace.unwrap_or(CLUSTER), name) {
            Some(entry) => Live::Meta(entry.version().into()),
            None => Live::Absent,
        }
    }

    fn version(object: &K) -> Option<String> {
        V::version_of(object)
    }

    fn names_in(&self, namespace: &str) -> Vec<String> {
        self.in_namespace(namespace)
            .into_iter()
            .map(|(name, _)| name)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Secret;

    use super::*;

    fn secret(ns: &str, name: &str, version: &str) -> PartialObjectMeta<Secret> {
        let mut meta = PartialObjectMeta::<Secret>::default();
        meta.metadata.namespace = Some(ns.into());
        meta.metadata.name = Some(name.into());
        meta.metadata.resource_version = Some(version.into());
        meta.metadata.annotations = Some([("key".to_owned(), format!("note {version}"))].into());
        meta.metadata.labels = Some([("group".to_owned(), "web".to_owned())].into());
        meta
    }

    #[tokio::test]
    async fn children_are_known_by_namespace_name_and_version() {
        let (store, feeder) = versions::<Secret>(Keep::Annotation("key"));
        let ready = {
            let store = store.clone();
            tokio::spawn(async move { store.wait_until_ready().await })
        };
        let feed = |event: watcher::Event<PartialObjectMeta<Secret>>| feeder.apply(&event);
        feed(watcher::Event::Init);
        feed(watcher::Event::InitApply(secret("a", "tls", "1")));
        feed(watcher::Event::InitApply(secret("b", "tls", "2")));
        assert_eq!(
            store.live(Some("a"), "tls"),
            Live::Absent,
            "not before the list is whole"
        );
        feed(watcher::Event::InitDone);
        assert!(ready.await.unwrap());
        assert_eq!(store.live(Some("a"), "tls"), Live::Meta("1".into()));
        assert_eq!(
            store.get("b", "tls").unwrap().kept.as_deref(),
            Some("note 2")
        );
        feed(watcher::Event::Apply(secret("a", "dkim", "3")));
        let mut names = store.names_in("a");
        names.sort();
        assert_eq!(names, ["dkim", "tls"]);
        feed(watcher::Event::Delete(secret("a", "tls", "1")));
        assert_eq!(store.names_in("a"), ["dkim"]);
        assert_eq!(
            store.live(None, "dkim"),
            Live::Absent,
            "children live in namespaces"
        );
        // A re-list replaces everything: what it did not find is gone.
        feed(watcher::Event::Init);
        feed(watcher::Event::InitApply(secret("b", "tls", "4")));
        feed(watcher::Event::InitDone);
        assert!(store.names_in("a").is_empty());
        assert_eq!(store.live(Some("b"), "tls"), Live::Meta("4".into()));
    }

    /// Many objects of one namespace (every namespace sits under [`CLUSTER`]), applied in any
    /// order, changed and deleted: each found by name, each once.
    #[test]
    fn many_names_in_one_namespace_are_each_found_once() {
        let (store, feeder) = versions::<Secret>(Keep::Nothing);
        let names: Vec<String> = (0..300)
            .map(|i| format!("n-{}", (i * 7919) % 300))
            .collect();
        for (i, name) in names.iter().enumerate() {
            feeder.apply(&watcher::Event::Apply(secret("", name, &i.to_string())));
        }
        feeder.apply(&watcher::Event::Apply(secret("", "n-42", "changed")));
        feeder.apply(&watcher::Event::Delete(secret("", "n-7", "")));
        assert_eq!(store.names_in("").len(), 299);
        assert_eq!(store.live(None, "n-42"), Live::Meta("changed".into()));
        assert_eq!(store.live(None, "n-7"), Live::Absent);
        let at = names.iter().position(|n| n == "n-299").unwrap();
        assert_eq!(store.live(None, "n-299"), Live::Meta(at.to_string()));
    }

    /// Many namespaces, filled in any order: each namespace's children found by name, a
    /// namespace whose last child went is gone, and the list grows by an eighth.
    #[test]
    fn many_namespaces_are_each_found_and_an_emptied_one_dropped() {
        let (store, feeder) = versions::<Secret>(Keep::Nothing);
        let namespace = |i: usize| format!("h-{}", (i * 7919) % 400);
        for i in 0..400 {
            feeder.apply(&watcher::Event::Apply(secret(&namespace(i), "tls", "1")));
            feeder.apply(&watcher::Event::Apply(secret(&namespace(i), "dkim", "2")));
        }
        let capacity = store.content.read().unwrap().current.0.capacity();
        assert!(capacity <= 400 + 400 / 8 + 1, "{capacity}");
        feeder.apply(&watcher::Event::Delete(secret("h-7", "tls", "")));
        feeder.apply(&watcher::Event::Delete(secret("h-7", "dkim", "")));
        feeder.apply(&watcher::Event::Delete(secret("h-8", "dkim", "")));
        let mut seen = 0;
        store.each(|_, _, _| seen += 1);
        assert_eq!(seen, 797);
        assert!(store.content.read().unwrap().current.get("h-7").is_none());
        assert_eq!(store.names_in("h-8"), ["tls"]);
        assert_eq!(store.live(Some("h-399"), "dkim"), Live::Meta("2".into()));
    }

    #[test]
    fn a_label_is_kept_when_asked() {
        let (store, feeder) = versions::<Secret>(Keep::Label("group"));
        feeder.apply(&watcher::Event::Apply(secret("a", "data", "1")));
        assert_eq!(store.get("a", "data").unwrap().kept.as_deref(), Some("web"));
        let (bare, feeder) = versions::<Secret>(Keep::Nothing);
        feeder.apply(&watcher::Event::Apply(secret("a", "data", "1")));
        assert_eq!(bare.get("a", "data").unwrap().kept, None);
    }
}

//! The children a reconcile only asks "is it there, and has it changed?" of, known by name and
//! resourceVersion alone (and, per kind, the one label or annotation something reads), kept by
//! namespace: about a tenth of a cached metadata object's memory, and a namespace's children
//! found without scanning every namespace's. Fed by a metadata watch (`cache.rs`); a re-list
//! replaces the whole content once it is complete, as a reflector does.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, PoisonError, RwLock};

use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use tokio::sync::watch;

use crate::apply::{Live, LiveStore};

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

type ByNamespace = HashMap<Box<str>, HashMap<Box<str>, Entry>>;

#[derive(Default)]
struct Content {
    current: ByNamespace,
    /// A re-list in progress: what it found so far.
    relist: Option<ByNamespace>,
}

/// Names and versions of one kind's children; cheap to clone (shared).
pub struct Versions<K> {
    content: Arc<RwLock<Content>>,
    keep: Keep,
    listed: watch::Receiver<bool>,
    _kind: PhantomData<fn() -> K>,
}

impl<K> Clone for Versions<K> {
    fn clone(&self) -> Self {
        Self {
            content: self.content.clone(),
            keep: self.keep,
            listed: self.listed.clone(),
            _kind: PhantomData,
        }
    }
}

/// Feeds a [`Versions`] from its watch's events.
pub struct Feeder<K> {
    content: Arc<RwLock<Content>>,
    keep: Keep,
    listed: watch::Sender<bool>,
    _kind: PhantomData<fn() -> K>,
}

/// An empty store and what feeds it.
pub fn versions<K>(keep: Keep) -> (Versions<K>, Feeder<K>) {
    let content = Arc::new(RwLock::new(Content::default()));
    let (tx, rx) = watch::channel(false);
    (
        Versions {
            content: content.clone(),
            keep,
            listed: rx,
            _kind: PhantomData,
        },
        Feeder {
            content,
            keep,
            listed: tx,
            _kind: PhantomData,
        },
    )
}

fn entry_of<K: Resource>(object: &K, keep: Keep) -> Option<(Box<str>, Box<str>, Entry)> {
    let namespace = object.namespace()?.into_boxed_str();
    let name = object.meta().name.clone()?.into_boxed_str();
    let kept = match keep {
        Keep::Nothing => None,
        Keep::Label(key) => object.labels().get(key),
        Keep::Annotation(key) => object.annotations().get(key),
    };
    let entry = Entry {
        version: object
            .resource_version()
            .unwrap_or_default()
            .into_boxed_str(),
        kept: kept.map(|v| v.clone().into_boxed_str()),
    };
    Some((namespace, name, entry))
}

fn put(map: &mut ByNamespace, (namespace, name, entry): (Box<str>, Box<str>, Entry)) {
    map.entry(namespace).or_default().insert(name, entry);
}

impl<K> Feeder<K> {
    /// Takes one event of the watch in (of `K`'s metadata, or of `K` itself).
    pub fn apply<O: Resource>(&self, event: &watcher::Event<O>) {
        let mut content = self.content.write().unwrap_or_else(PoisonError::into_inner);
        match event {
            watcher::Event::Apply(object) => {
                if let Some(found) = entry_of(object, self.keep) {
                    put(&mut content.current, found);
                }
            }
            watcher::Event::Delete(object) => {
                if let (Some(namespace), Some(name)) = (object.namespace(), &object.meta().name) {
                    let emptied =
                        content
                            .current
                            .get_mut(namespace.as_str())
                            .is_some_and(|names| {
                                names.remove(name.as_str());
                                names.is_empty()
                            });
                    if emptied {
                        content.current.remove(namespace.as_str());
                    }
                }
            }
            watcher::Event::Init => content.relist = Some(ByNamespace::new()),
            watcher::Event::InitApply(object) => {
                if let (Some(found), Some(relist)) =
                    (entry_of(object, self.keep), content.relist.as_mut())
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

impl<K> Versions<K> {
    /// Waits until the first list is in; false when its feeder is gone first.
    pub async fn wait_until_ready(&self) -> bool {
        let mut listed = self.listed.clone();
        listed.wait_for(|done| *done).await.is_ok()
    }

    /// The children in `namespace`: name and entry.
    pub fn in_namespace(&self, namespace: &str) -> Vec<(String, Entry)> {
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

    /// One child's entry.
    pub fn get(&self, namespace: &str, name: &str) -> Option<Entry> {
        let content = self.content.read().unwrap_or_else(PoisonError::into_inner);
        content.current.get(namespace)?.get(name).cloned()
    }
}

impl<K: Resource> LiveStore<K> for Versions<K> {
    fn live(&self, namespace: Option<&str>, name: &str) -> Live {
        match namespace.and_then(|ns| self.get(ns, name)) {
            Some(entry) => Live::Meta(entry.version.into()),
            None => Live::Absent,
        }
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
    use kube::core::PartialObjectMeta;

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

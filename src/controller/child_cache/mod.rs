//! One kind of child (pods, or services) as the controller sees it: a [`ChildCache`] owns the
//! reflector's store, its [`index`] by job, what it knows of our own writes the watch has not
//! delivered yet ([`own_writes`]) and how far the watch has delivered. A reconcile asks
//! [`ChildCache::children_of`] and gets the job's children with our writes laid over them; the
//! applier tells it what it wrote; the watch tells it what it delivered ([`ChildCache::observe`]).

mod index;
mod own_writes;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use k8s_openapi::api::core::v1::{Pod, Service};
use kube::Resource;
use kube::core::NamespaceResourceScope;
use kube::runtime::reflector::{self, ObjectRef, Store, store::Writer};
use kube::runtime::watcher;
use serde::Serialize;
use serde::de::DeserializeOwned;

use self::index::JobIndex;
use self::own_writes::OwnWrites;
pub use self::own_writes::parse_revision;
use self::own_writes::revision;
use crate::api::{ChildPod, ChildService, ObservedChild};

/// A kind of child, in the form the cache keeps it.
///
/// The API server's answers to our writes are decoded straight into this form: a created pod
/// comes back with its whole spec, `TF_CONFIG` included, which is never built here.
pub trait Child:
    ObservedChild
    + Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
    /// The API type it is created from.
    type Full: Serialize + Resource + Send + Sync;
    /// The API kind (`Pod`, `Service`).
    const KIND: &'static str;
}

impl Child for ChildPod {
    type Full = Pod;
    const KIND: &'static str = "Pod";
}

impl Child for ChildService {
    type Full = Service;
    const KIND: &'static str = "Service";
}

/// The cache of one kind of child (see the module docs).
pub struct ChildCache<K: Child> {
    store: Store<K>,
    index: JobIndex,
    /// The highest resourceVersion the watch has delivered.
    seen: AtomicU64,
    /// Our writes the watch may not have delivered yet, by job UID.
    writes: Mutex<HashMap<String, OwnWrites<K>>>,
}

impl<K: Child> ChildCache<K> {
    /// An empty cache, and the writer the watch fills its store with (pass the watch's events
    /// through [`ChildCache::observe`] too).
    pub fn new() -> (Arc<Self>, Writer<K>) {
        let (store, writer) = reflector::store();
        let cache = Self {
            store,
            index: JobIndex::default(),
            seen: AtomicU64::new(0),
            writes: Mutex::default(),
        };
        (Arc::new(cache), writer)
    }

    /// Takes in one event of the watch, after the store has: the index follows it, and the
    /// revision it delivered is noted.
    pub fn observe(&self, event: &watcher::Event<K>) {
        self.index.observe(event);
        if let watcher::Event::Apply(obj)
        | watcher::Event::Delete(obj)
        | watcher::Event::InitApply(obj) = event
            && let Some(rv) = revision(obj)
        {
            self.seen.fetch_max(rv, Ordering::Relaxed);
        }
    }

    /// Waits until the watch has finished its initial list; false if it failed before that.
    pub async fn ready(&self) -> bool {
        self.store.wait_until_ready().await.is_ok()
    }

    /// Objects in the store.
    pub fn len(&self) -> usize {
        self.store.len()
    }

    fn writes(&self) -> MutexGuard<'_, HashMap<String, OwnWrites<K>>> {
        // A panic while holding the lock leaves plain data behind: keep using it.
        self.writes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The children of job `name` (UID `uid`) in `namespace`: those in the store that carry its
    /// name label, corrected by our writes the watch has not delivered yet.
    pub fn children_of(&self, namespace: &str, name: &str, uid: &str) -> Vec<Arc<K>> {
        let cached = self.cached_children(namespace, name);
        let seen = self.seen.load(Ordering::Relaxed);
        let mut writes = self.writes();
        let Some(ours) = writes.get_mut(uid) else {
            return cached;
        };
        let shown = ours.overlay(cached, seen);
        if ours.is_empty() {
            writes.remove(uid);
        }
        shown
    }

    /// The children of job `name` in the store (those still labelled with its name).
    fn cached_children(&self, namespace: &str, name: &str) -> Vec<Arc<K>> {
        self.index
            .children(namespace, name)
            .into_iter()
            .filter_map(|child| self.store.get(&ObjectRef::new(&child).within(namespace)))
            // The store takes a watch event just before the index does: a child relabelled
            // in between is still listed under its old job here.
            .filter(|obj| obj.lineage().job_name.as_deref() == Some(name))
            .collect()
    }

    /// Remembers a child of job `job_uid` we created (or adopted), as the API server returned it.
    pub fn created(&self, job_uid: &str, obj: K) {
        self.writes()
            .entry(job_uid.to_string())
            .or_default()
            .stored(obj);
    }

    /// Remembers the answer to our delete of child `name` (UID `uid`) of job `job_uid`:
    /// `returned` is the object while it is still stored, None once it is gone.
    pub fn deleted(&self, job_uid: &str, name: &str, uid: Option<String>, returned: Option<K>) {
        self.writes()
            .entry(job_uid.to_string())
            .or_default()
            .deleted(name, uid, returned);
    }

    /// Forgets our writes for job `job_uid` (it is gone).
    pub fn forget(&self, job_uid: &str) {
        self.writes().remove(job_uid);
    }

    /// Jobs with writes the watch has not confirmed yet.
    #[cfg(test)]
    pub fn jobs_with_pending_writes(&self) -> usize {
        self.writes().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Lineage;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use kube::ResourceExt;
    use watcher::Event;

    fn pod(name: &str, job: &str, uid: &str, rv: u64) -> ChildPod {
        ChildPod {
            metadata: ObjectMeta {
                namespace: Some("ns".into()),
                name: Some(name.into()),
                uid: Some(uid.into()),
                resource_version: Some(rv.to_string()),
                ..ObjectMeta::default()
            },
            lineage: Lineage {
                job_name: Some(job.into()),
                ..Lineage::default()
            },
            ..ChildPod::default()
        }
    }

    /// A cache and its writer, fed as the watch would feed them.
    struct Watched {
        cache: Arc<ChildCache<ChildPod>>,
        writer: Writer<ChildPod>,
    }

    impl Watched {
        fn new() -> Self {
            let (cache, writer) = ChildCache::new();
            Self { cache, writer }
        }

        fn deliver(&mut self, event: &Event<ChildPod>) {
            self.writer.apply_watcher_event(event);
            self.cache.observe(event);
        }

        fn names(&self, job: &str, uid: &str) -> Vec<String> {
            let mut names: Vec<String> = self
                .cache
                .children_of("ns", job, uid)
                .iter()
                .map(|p| p.name_any())
                .collect();
            names.sort();
            names
        }
    }

    #[test]
    fn a_create_shows_under_its_job_until_the_watch_delivers_it_then_the_cache_answers() {
        let mut w = Watched::new();
        w.deliver(&Event::Apply(pod("j-ps-0", "j", "p0", 10)));
        w.cache.created("job-j", pod("j-worker-0", "j", "w0", 11));
        assert_eq!(w.names("j", "job-j"), ["j-ps-0", "j-worker-0"]);
        assert!(
            w.names("k", "job-k").is_empty(),
            "another job sees none of it"
        );
        // Delivered: the index has it, and the entry of our write is gone.
        w.deliver(&Event::Apply(pod("j-worker-0", "j", "w0", 11)));
        assert_eq!(w.names("j", "job-j"), ["j-ps-0", "j-worker-0"]);
        assert_eq!(w.cache.jobs_with_pending_writes(), 0);
    }

    #[test]
    fn a_delete_hides_the_child_until_the_watch_removes_it_from_store_and_index() {
        let mut w = Watched::new();
        w.deliver(&Event::Apply(pod("j-worker-0", "j", "w0", 10)));
        w.deliver(&Event::Apply(pod("j-worker-1", "j", "w1", 11)));
        w.cache
            .deleted("job-j", "j-worker-0", Some("w0".into()), None);
        assert_eq!(
            w.names("j", "job-j"),
            ["j-worker-1"],
            "hidden on every look"
        );
        assert_eq!(w.names("j", "job-j"), ["j-worker-1"]);
        w.deliver(&Event::Delete(pod("j-worker-0", "j", "w0", 12)));
        assert_eq!(w.names("j", "job-j"), ["j-worker-1"]);
        // A new pod of that name is shown at once (another UID).
        w.deliver(&Event::Apply(pod("j-worker-0", "j", "w0-new", 13)));
        assert_eq!(w.names("j", "job-j"), ["j-worker-0", "j-worker-1"]);
        assert_eq!(w.cache.jobs_with_pending_writes(), 0);
    }

    #[test]
    fn a_create_the_watch_went_past_is_not_resurrected() {
        let mut w = Watched::new();
        w.cache.created("job-j", pod("j-worker-0", "j", "w0", 11));
        // Created and deleted by someone else before we looked: the watch went past both.
        w.deliver(&Event::Apply(pod("other", "x", "o", 20)));
        assert!(w.names("j", "job-j").is_empty());
        assert_eq!(w.cache.jobs_with_pending_writes(), 0);
    }

    #[test]
    fn a_relabelled_child_leaves_its_old_job_and_a_relist_replaces_the_index() {
        let mut w = Watched::new();
        w.deliver(&Event::Apply(pod("j-worker-0", "j", "w0", 10)));
        w.deliver(&Event::Apply(pod("j-worker-0", "k", "w0", 11)));
        assert!(w.names("j", "job-j").is_empty());
        assert_eq!(w.names("k", "job-k"), ["j-worker-0"]);
        w.deliver(&Event::Init);
        w.deliver(&Event::InitApply(pod("j-ps-0", "j", "p0", 30)));
        w.deliver(&Event::InitDone);
        assert_eq!(w.names("j", "job-j"), ["j-ps-0"]);
        assert!(w.names("k", "job-k").is_empty(), "gone in the relist");
    }

    #[test]
    fn forgetting_a_job_drops_its_writes_only() {
        let w = Watched::new();
        w.cache.created("job-j", pod("j-worker-0", "j", "w0", 11));
        w.cache.created("job-k", pod("k-worker-0", "k", "k0", 12));
        w.cache.forget("job-j");
        assert!(w.names("j", "job-j").is_empty());
        assert_eq!(w.names("k", "job-k"), ["k-worker-0"]);
    }
}

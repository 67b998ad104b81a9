//! Our own pod and service writes that the watch caches may not show yet.
//!
//! A reconcile that runs before the watch delivers the effect of the previous one would see a
//! pod it just deleted as still running (and delete it again) or miss one it just created (and
//! create it again). Upstream keeps "expectations" for this; we keep the objects the API server
//! returned and lay them over the cache until the watch has caught up with them.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{Resource, ResourceExt};

use super::cache::{slim_pod, slim_service};

/// Own writes of both kinds of children.
pub struct ChildWrites {
    /// Pods created or deleted.
    pub pods: OwnWrites<Pod>,
    /// Services created or deleted.
    pub services: OwnWrites<Service>,
}

impl ChildWrites {
    /// Overlays over the stores whose progress `pods` and `services` track.
    pub fn new(pods: SeenRevision, services: SeenRevision) -> Self {
        Self {
            pods: OwnWrites::new(pods, slim_pod),
            services: OwnWrites::new(services, slim_service),
        }
    }

    /// Forgets everything about a job (it is gone).
    pub fn forget(&self, job_uid: &str) {
        self.pods.forget(job_uid);
        self.services.forget(job_uid);
    }
}

/// A resourceVersion as a number (an etcd revision), when it is one. Only used to tell which of
/// two copies of an object is newer; anything else falls back to trusting the cache.
pub fn parse_revision(rv: Option<&str>) -> Option<u64> {
    rv?.parse().ok()
}

/// An object's resourceVersion as a number, when it is one.
pub fn revision<K: Resource>(obj: &K) -> Option<u64> {
    parse_revision(obj.meta().resource_version.as_deref())
}

/// The highest resource version a watch has delivered to its store.
#[derive(Clone, Default)]
pub struct SeenRevision(Arc<AtomicU64>);

impl SeenRevision {
    /// Notes that the store now reflects `obj`.
    pub fn observe<K: Resource>(&self, obj: &K) {
        if let Some(rv) = revision(obj) {
            self.0.fetch_max(rv, Ordering::Relaxed);
        }
    }

    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// What we last did to one child.
enum Written<K> {
    /// Created, or deleted gracefully: the object as the API server returned it.
    Stored(Arc<K>),
    /// Deleted outright (the API server returned a Status).
    Gone { uid: Option<String> },
}

struct Entry<K> {
    written: Written<K>,
    at: Instant,
}

/// Entries older than this are dropped even if the watch never confirmed them: after that the
/// cache is trusted again, as it would be without this overlay.
const MAX_AGE: Duration = Duration::from_secs(60);

/// Own writes of one kind of child, per TFJob UID and child name.
pub struct OwnWrites<K> {
    seen: SeenRevision,
    /// Drops what the planner does not read, as the cache does.
    slim: fn(&mut K),
    entries: Mutex<HashMap<String, HashMap<String, Entry<K>>>>,
}

impl<K: Resource + Clone> OwnWrites<K> {
    /// An empty overlay for the store whose progress `seen` tracks and whose objects are
    /// trimmed by `slim`.
    pub fn new(seen: SeenRevision, slim: fn(&mut K)) -> Self {
        Self {
            seen,
            slim,
            entries: Mutex::default(),
        }
    }

    fn record(&self, job_uid: &str, name: String, mut written: Written<K>) {
        if let Written::Stored(obj) = &mut written
            && let Some(obj) = Arc::get_mut(obj)
        {
            (self.slim)(obj);
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.entry(job_uid.to_string()).or_default().insert(
            name,
            Entry {
                written,
                at: Instant::now(),
            },
        );
    }

    /// Records an object as created or updated (the API server's response).
    pub fn stored(&self, job_uid: &str, obj: K) {
        let name = obj.name_any();
        self.record(job_uid, name, Written::Stored(Arc::new(obj)));
    }

    /// Records the answer to a delete: the object when it is still terminating, else gone.
    pub fn deleted(&self, job_uid: &str, name: &str, uid: Option<String>, returned: Option<K>) {
        let written = match returned {
            Some(mut obj) => {
                // Deleted at once or terminating: either way it must not count as live.
                obj.meta_mut()
                    .deletion_timestamp
                    .get_or_insert(Time(Timestamp::now()));
                Written::Stored(Arc::new(obj))
            }
            None => Written::Gone { uid },
        };
        self.record(job_uid, name.to_string(), written);
    }

    /// Forgets everything about a job (it is gone).
    pub fn forget(&self, job_uid: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.remove(job_uid);
    }

    /// Jobs with unconfirmed writes.
    #[cfg(test)]
    fn pending_jobs(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// The job's children as the cache shows them, corrected by our writes the cache has not
    /// caught up with yet. Confirmed writes are dropped from the overlay.
    pub fn overlay(&self, job_uid: &str, cached: Vec<Arc<K>>) -> Vec<Arc<K>> {
        let mut all = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let Some(entries) = all.get_mut(job_uid) else {
            return cached;
        };
        let seen = self.seen.get();
        entries.retain(|_, e| e.at.elapsed() < MAX_AGE);
        let mut result = Vec::with_capacity(cached.len() + entries.len());
        let mut in_cache = HashSet::new();
        for obj in cached {
            let name = obj.name_any();
            let Some(entry) = entries.get(&name) else {
                result.push(obj);
                continue;
            };
            in_cache.insert(name.clone());
            match &entry.written {
                Written::Stored(ours) => {
                    let ours_rv = revision(ours.as_ref());
                    if revision(obj.as_ref()) >= ours_rv || obj.uid() != ours.uid() {
                        // The cache has caught up (or shows a newer object of that name).
                        entries.remove(&name);
                        result.push(obj);
                    } else {
                        result.push(ours.clone());
                    }
                }
                Written::Gone { uid } => {
                    if obj.uid() == *uid {
                        // Still cached, but we know it is gone.
                    } else {
                        entries.remove(&name);
                        result.push(obj);
                    }
                }
            }
        }
        // What is left was not in the cache: created and not delivered yet, or gone since.
        entries.retain(|name, e| {
            if in_cache.contains(name) {
                // Decided above: still ahead of the cache, or still hidden.
                return true;
            }
            match &e.written {
                Written::Stored(ours) if revision(ours.as_ref()).is_some_and(|rv| rv > seen) => {
                    result.push(ours.clone());
                    true
                }
                // Delivered and since removed, or confirmed gone.
                _ => false,
            }
        });
        if entries.is_empty() {
            all.remove(job_uid);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;

    fn pod(name: &str, uid: &str, rv: u64) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = Some(name.into());
        p.metadata.uid = Some(uid.into());
        p.metadata.resource_version = Some(rv.to_string());
        p
    }

    fn names(pods: &[Arc<Pod>]) -> Vec<String> {
        let mut n: Vec<String> = pods.iter().map(|p| p.name_any()).collect();
        n.sort();
        n
    }

    #[test]
    fn a_created_pod_shows_until_the_watch_delivers_it() {
        let seen = SeenRevision::default();
        let writes = OwnWrites::new(seen.clone(), |_| {});
        seen.observe(&pod("other", "o", 10));
        writes.stored("job", pod("a", "a1", 11));
        assert_eq!(names(&writes.overlay("job", vec![])), ["a"]);
        // Delivered: the cache copy wins and the entry is gone.
        let cached = Arc::new(pod("a", "a1", 12));
        seen.observe(cached.as_ref());
        let out = writes.overlay("job", vec![cached]);
        assert_eq!(revision(out[0].as_ref()), Some(12));
        assert_eq!(writes.pending_jobs(), 0);
    }

    #[test]
    fn a_created_pod_deleted_before_we_looked_is_not_resurrected() {
        let seen = SeenRevision::default();
        let writes = OwnWrites::new(seen.clone(), |_| {});
        writes.stored("job", pod("a", "a1", 11));
        // The watch went past its creation (and its deletion): it is not in the cache.
        seen.observe(&pod("other", "o", 20));
        assert!(writes.overlay("job", vec![]).is_empty());
        assert_eq!(writes.pending_jobs(), 0);
    }

    #[test]
    fn a_deleted_pod_is_terminating_until_the_cache_agrees() {
        let seen = SeenRevision::default();
        let writes = OwnWrites::new(seen.clone(), |_| {});
        let cached = Arc::new(pod("a", "a1", 11));
        writes.deleted("job", "a", Some("a1".into()), Some(pod("a", "a1", 15)));
        let out = writes.overlay("job", vec![cached.clone()]);
        assert!(out[0].metadata.deletion_timestamp.is_some());
        // Deleted outright: hidden while the cache still has it, on every look.
        writes.deleted("job", "a", Some("a1".into()), None);
        assert!(writes.overlay("job", vec![cached.clone()]).is_empty());
        assert!(writes.overlay("job", vec![cached.clone()]).is_empty());
        // A new pod of the same name is shown, and ends the entry.
        let recreated = Arc::new(pod("a", "a2", 30));
        assert_eq!(
            writes.overlay("job", vec![recreated])[0].uid().as_deref(),
            Some("a2")
        );
        assert_eq!(writes.pending_jobs(), 0);
    }

    #[test]
    fn our_newer_copy_wins_over_a_stale_cache_on_every_look() {
        let writes = OwnWrites::new(SeenRevision::default(), |_| {});
        writes.stored("job", pod("b", "b1", 40));
        let stale = Arc::new(pod("b", "b1", 39));
        for _ in 0..2 {
            let out = writes.overlay("job", vec![stale.clone()]);
            assert_eq!(revision(out[0].as_ref()), Some(40));
        }
        writes.overlay("job", vec![Arc::new(pod("b", "b1", 40))]);
        assert_eq!(writes.pending_jobs(), 0, "caught up");
    }

    #[test]
    fn other_jobs_are_untouched() {
        let writes = OwnWrites::new(SeenRevision::default(), |_| {});
        writes.stored("job", pod("a", "a1", 11));
        let cached = Arc::new(pod("b", "b1", 5));
        assert_eq!(names(&writes.overlay("other", vec![cached])), ["b"]);
    }
}

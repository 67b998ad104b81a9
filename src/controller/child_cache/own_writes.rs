//! Our own pod and service writes that the watch caches may not show yet.
//!
//! A reconcile that runs before the watch delivers the effect of the previous one would see a
//! pod it just deleted as still running (and delete it again) or miss one it just created (and
//! create it again). Upstream keeps "expectations" for this; we keep the objects the API server
//! returned and lay them over the cache until the watch has caught up with them.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{Resource, ResourceExt};

use crate::controller::timing::OWN_WRITE_TRUSTED_FOR;

/// A resourceVersion as a number (an etcd revision), when it is one. Only used to tell which of
/// two copies of an object is newer; anything else falls back to trusting the cache.
pub fn parse_revision(rv: Option<&str>) -> Option<u64> {
    rv?.parse().ok()
}

/// An object's resourceVersion as a number, when it is one.
pub(super) fn revision<K: Resource>(obj: &K) -> Option<u64> {
    parse_revision(obj.meta().resource_version.as_deref())
}

/// What we last did to one child.
#[derive(Debug)]
enum Written<K> {
    /// Created, or deleted gracefully: the object as the API server returned it.
    Stored(Arc<K>),
    /// Deleted outright (the API server returned a Status).
    Gone { uid: Option<String> },
}

#[derive(Debug)]
struct Entry<K> {
    written: Written<K>,
    at: Instant,
}

/// Our writes of one kind of child of one job, by child name.
#[derive(Debug)]
pub(super) struct OwnWrites<K> {
    entries: HashMap<String, Entry<K>>,
}

impl<K> Default for OwnWrites<K> {
    fn default() -> Self {
        Self {
            entries: HashMap::new(),
        }
    }
}

impl<K: Resource + Clone> OwnWrites<K> {
    fn record(&mut self, name: String, written: Written<K>) {
        let entry = Entry {
            written,
            at: Instant::now(),
        };
        self.entries.insert(name, entry);
    }

    /// Records an object as created (the API server's response, trimmed like the cache).
    pub(super) fn stored(&mut self, obj: K) {
        let name = obj.name_any();
        self.record(name, Written::Stored(Arc::new(obj)));
    }

    /// Records the answer to a delete: the object when it is still terminating, else gone.
    pub(super) fn deleted(&mut self, name: &str, uid: Option<String>, returned: Option<K>) {
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
        self.record(name.to_string(), written);
    }

    /// Whether nothing is waiting for the cache to catch up.
    pub(super) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The job's children as the cache shows them, corrected by our writes the cache has not
    /// caught up with yet (`seen`: how far the watch has delivered). Confirmed writes are
    /// dropped.
    pub(super) fn overlay(&mut self, cached: Vec<Arc<K>>, seen: u64) -> Vec<Arc<K>> {
        if self.entries.is_empty() {
            return cached;
        }
        self.entries
            .retain(|_, e| e.at.elapsed() < OWN_WRITE_TRUSTED_FOR);
        let mut result = Vec::with_capacity(cached.len() + self.entries.len());
        let mut in_cache = HashSet::new();
        for obj in cached {
            let name = obj.name_any();
            if !self.entries.contains_key(&name) {
                result.push(obj);
                continue;
            }
            if let Some(shown) = self.over_cached(&name, obj) {
                result.push(shown);
            }
            in_cache.insert(name);
        }
        // What is left was not in the cache: created and not delivered yet, or gone since.
        self.entries.retain(|name, e| {
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
        result
    }

    /// What to show for the cached copy of a child we wrote: ours while the cache lags behind,
    /// nothing while it still shows one we deleted outright. Ends the entry once the cache
    /// has caught up.
    fn over_cached(&mut self, name: &str, cached: Arc<K>) -> Option<Arc<K>> {
        let entry = self.entries.get(name)?;
        let shown = match &entry.written {
            Written::Stored(ours) => {
                let lagging = revision(cached.as_ref()) < revision(ours.as_ref());
                if lagging && cached.uid() == ours.uid() {
                    return Some(ours.clone());
                }
                // The cache has caught up (or shows a newer object of that name).
                Some(cached)
            }
            // Still cached, but we know it is gone.
            Written::Gone { uid } if cached.uid() == *uid => return None,
            Written::Gone { .. } => Some(cached),
        };
        self.entries.remove(name);
        shown
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
        let mut writes = OwnWrites::default();
        writes.stored(pod("a", "a1", 11));
        assert_eq!(names(&writes.overlay(vec![], 10)), ["a"]);
        // Delivered: the cache copy wins and the entry is gone.
        let cached = Arc::new(pod("a", "a1", 12));
        let out = writes.overlay(vec![cached], 12);
        assert_eq!(revision(out[0].as_ref()), Some(12));
        assert!(writes.is_empty());
    }

    #[test]
    fn a_created_pod_deleted_before_we_looked_is_not_resurrected() {
        let mut writes = OwnWrites::default();
        writes.stored(pod("a", "a1", 11));
        // The watch went past its creation (and its deletion): it is not in the cache.
        assert!(writes.overlay(vec![], 20).is_empty());
        assert!(writes.is_empty());
    }

    #[test]
    fn a_deleted_pod_is_terminating_until_the_cache_agrees() {
        let mut writes = OwnWrites::default();
        let cached = Arc::new(pod("a", "a1", 11));
        writes.deleted("a", Some("a1".into()), Some(pod("a", "a1", 15)));
        let out = writes.overlay(vec![cached.clone()], 11);
        assert!(out[0].metadata.deletion_timestamp.is_some());
        // Deleted outright: hidden while the cache still has it, on every look.
        writes.deleted("a", Some("a1".into()), None);
        assert!(writes.overlay(vec![cached.clone()], 11).is_empty());
        assert!(writes.overlay(vec![cached.clone()], 11).is_empty());
        // A new pod of the same name is shown, and ends the entry.
        let recreated = Arc::new(pod("a", "a2", 30));
        assert_eq!(
            writes.overlay(vec![recreated], 30)[0].uid().as_deref(),
            Some("a2")
        );
        assert!(writes.is_empty());
    }

    #[test]
    fn our_newer_copy_wins_over_a_stale_cache_on_every_look() {
        let mut writes = OwnWrites::default();
        writes.stored(pod("b", "b1", 40));
        let stale = Arc::new(pod("b", "b1", 39));
        for _ in 0..2 {
            let out = writes.overlay(vec![stale.clone()], 39);
            assert_eq!(revision(out[0].as_ref()), Some(40));
        }
        writes.overlay(vec![Arc::new(pod("b", "b1", 40))], 40);
        assert!(writes.is_empty(), "caught up");
    }
}

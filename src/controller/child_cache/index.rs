//! A child cache's index by the job its objects belong to (their job-name label), so that a
//! reconcile finds its job's children without scanning every cached object: the lookup costs
//! the job's own children, whether the cache holds 30 objects or 30,000.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::runtime::watcher;

use crate::api::ObservedChild;

/// A namespace and a name.
type Key = (String, String);

/// Which cached children carry which job's name label, kept up to date from the watch events
/// that fill the cache.
#[derive(Default)]
pub(super) struct JobIndex {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    live: Entries,
    /// The entries of a relist in progress (watch events `Init` .. `InitDone`), swapped in when
    /// it completes, as the reflector's store does.
    relist: Option<Entries>,
}

#[derive(Default)]
struct Entries {
    /// (namespace, job name) -> the names of its children.
    by_job: HashMap<Key, BTreeSet<String>>,
    /// (namespace, child name) -> (namespace, job name).
    job_of: HashMap<Key, Key>,
}

impl Entries {
    fn insert<K: ObservedChild>(&mut self, obj: &K) {
        let child = child_key(obj.meta());
        self.remove(&child);
        if let Some(job) = job_label(obj) {
            let job = (child.0.clone(), job.to_string());
            self.by_job
                .entry(job.clone())
                .or_default()
                .insert(child.1.clone());
            self.job_of.insert(child, job);
        }
    }

    fn remove(&mut self, child: &Key) {
        let Some(job) = self.job_of.remove(child) else {
            return;
        };
        if let Some(names) = self.by_job.get_mut(&job) {
            names.remove(&child.1);
            if names.is_empty() {
                self.by_job.remove(&job);
            }
        }
    }
}

/// The job a child belongs to, by its job-name label.
fn job_label<K: ObservedChild>(obj: &K) -> Option<&str> {
    obj.lineage().job_name.as_deref()
}

fn child_key(meta: &ObjectMeta) -> Key {
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

impl JobIndex {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind: keep using it.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes in one event of the watch that fills the cache.
    pub(super) fn observe<K: ObservedChild>(&self, event: &watcher::Event<K>) {
        let mut state = self.state();
        match event {
            watcher::Event::Init => state.relist = Some(Entries::default()),
            watcher::Event::InitApply(obj) => {
                state
                    .relist
                    .get_or_insert_with(Entries::default)
                    .insert(obj);
            }
            watcher::Event::InitDone => {
                if let Some(entries) = state.relist.take() {
                    state.live = entries;
                }
            }
            watcher::Event::Apply(obj) => state.live.insert(obj),
            watcher::Event::Delete(obj) => state.live.remove(&child_key(obj.meta())),
        }
    }

    /// The names of the children of job `job` in `namespace`.
    pub(super) fn children(&self, namespace: &str, job: &str) -> Vec<String> {
        let key = (namespace.to_string(), job.to_string());
        self.state()
            .live
            .by_job
            .get(&key)
            .map(|names| names.iter().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ChildPod, Lineage};
    use watcher::Event;

    fn pod(ns: &str, name: &str, job: Option<&str>) -> ChildPod {
        ChildPod {
            metadata: ObjectMeta {
                namespace: Some(ns.into()),
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            lineage: Lineage {
                job_name: job.map(Box::from),
                ..Lineage::default()
            },
            ..ChildPod::default()
        }
    }

    #[test]
    fn children_are_found_by_namespace_and_job_and_follow_label_changes_and_deletes() {
        let index = JobIndex::default();
        index.observe(&Event::Apply(pod("a", "j-worker-0", Some("j"))));
        index.observe(&Event::Apply(pod("a", "j-ps-0", Some("j"))));
        index.observe(&Event::Apply(pod("b", "j-worker-0", Some("j"))));
        index.observe(&Event::Apply(pod("a", "stray", None)));
        assert_eq!(index.children("a", "j"), vec!["j-ps-0", "j-worker-0"]);
        assert_eq!(index.children("b", "j"), vec!["j-worker-0"]);
        // Relabelled to another job: moves.
        index.observe(&Event::Apply(pod("a", "j-ps-0", Some("k"))));
        assert_eq!(index.children("a", "j"), vec!["j-worker-0"]);
        assert_eq!(index.children("a", "k"), vec!["j-ps-0"]);
        index.observe(&Event::Delete(pod("a", "j-worker-0", Some("j"))));
        assert!(index.children("a", "j").is_empty());
        assert_eq!(index.state().live.by_job.len(), 2, "empty jobs are dropped");
    }

    #[test]
    fn a_relist_replaces_the_index_when_it_completes() {
        let index = JobIndex::default();
        index.observe(&Event::Apply(pod("a", "gone-0", Some("j"))));
        index.observe(&Event::<ChildPod>::Init);
        index.observe(&Event::InitApply(pod("a", "new-0", Some("j"))));
        // Until the relist is complete, lookups answer from the last complete one.
        assert_eq!(index.children("a", "j"), vec!["gone-0"]);
        index.observe(&Event::<ChildPod>::InitDone);
        assert_eq!(index.children("a", "j"), vec!["new-0"]);
    }
}

//! Reading what the cluster reports about a job's pods and services: which of the observed
//! objects the job owns, and what a pod's phase, exit code and restarts say.

use std::collections::BTreeMap;
use std::sync::Arc;

use kube::ResourceExt;

use crate::api::{ChildPod, ChildService, ControllerRef, ObservedChild, ReplicaType};

/// Exit code upstream reports when the tensorflow container has no terminated state
/// (e.g. the pod was evicted); it counts as retryable.
pub const UNKNOWN_EXIT_CODE: i32 = 0xbeef;

/// Whether an object is controlled by the owner with `uid`.
pub fn controlled_by<K: ObservedChild>(obj: &K, uid: &str) -> bool {
    obj.lineage().controlled_by(uid)
}

/// The pods and services a job controls (by UID), picked out of those observed with its labels.
pub struct OwnedChildren<'a> {
    /// The job's pods, terminating ones included.
    pub pods: Vec<&'a ChildPod>,
    /// The job's services, terminating ones included.
    pub services: Vec<&'a ChildService>,
    /// Live pods with the job's labels and no controller: the job adopts them.
    pub orphan_pods: Vec<&'a ChildPod>,
    /// Live services with the job's labels and no controller: the job adopts them.
    pub orphan_services: Vec<&'a ChildService>,
    /// Objects with the job's labels controlled by something else: never touched.
    pub foreign: Vec<Foreign>,
}

/// An object with a job's labels that another controller owns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Foreign {
    /// "Pod" or "Service".
    pub kind: &'static str,
    /// Its name.
    pub name: String,
    /// Its controller, as "Kind/name".
    pub owner: String,
}

impl<'a> OwnedChildren<'a> {
    /// The objects of `pods` and `services` controlled by the job with UID `job_uid` (what its
    /// deletion deletes).
    pub fn of(job_uid: &str, pods: &'a [Arc<ChildPod>], services: &'a [Arc<ChildService>]) -> Self {
        Self {
            pods: controlled(pods, job_uid),
            services: controlled(services, job_uid),
            orphan_pods: Vec::new(),
            orphan_services: Vec::new(),
            foreign: Vec::new(),
        }
    }

    /// What a live job may claim: its own objects and, as Kubernetes' ControllerRefManager
    /// does, live objects with its labels and no controller (adopted: counted as its own from
    /// now on); objects controlled by others are listed in `foreign`.
    pub fn claim(
        job_uid: &str,
        pods: &'a [Arc<ChildPod>],
        services: &'a [Arc<ChildService>],
    ) -> Self {
        let mut claimed = Self::of(job_uid, pods, services);
        claimed.orphan_pods = orphans(pods);
        claimed.orphan_services = orphans(services);
        claimed.pods.extend(&claimed.orphan_pods);
        claimed.services.extend(&claimed.orphan_services);
        claimed.foreign = foreign("Pod", pods, job_uid);
        claimed
            .foreign
            .extend(foreign("Service", services, job_uid));
        claimed
    }

    /// Pods not being deleted yet.
    pub fn live_pods(&self) -> impl Iterator<Item = &'a ChildPod> + '_ {
        self.pods
            .iter()
            .copied()
            .filter(|pod| !is_terminating(*pod))
    }

    /// Services not being deleted yet.
    pub fn live_services(&self) -> impl Iterator<Item = &'a ChildService> + '_ {
        self.services
            .iter()
            .copied()
            .filter(|svc| !is_terminating(*svc))
    }

    /// The live service named `name`, if any.
    pub fn live_service(&self, name: &str) -> Option<&'a ChildService> {
        self.live_services().find(|svc| svc.name_any() == name)
    }

    /// The pods of replica type `rtype`, by index (names are deterministic: one per index).
    pub fn pods_of(&self, rtype: ReplicaType) -> BTreeMap<i32, &'a ChildPod> {
        by_index(&self.pods, rtype)
    }

    /// The services of replica type `rtype`, by index.
    pub fn services_of(&self, rtype: ReplicaType) -> BTreeMap<i32, &'a ChildService> {
        by_index(&self.services, rtype)
    }
}

fn controlled<'a, K: ObservedChild>(objs: &'a [Arc<K>], uid: &str) -> Vec<&'a K> {
    objs.iter()
        .map(AsRef::as_ref)
        .filter(|obj| controlled_by(*obj, uid))
        .collect()
}

/// The controller of an object, if any.
fn controller<K: ObservedChild>(obj: &K) -> Option<&ControllerRef> {
    obj.lineage().controller.as_ref()
}

fn orphans<K: ObservedChild>(objs: &[Arc<K>]) -> Vec<&K> {
    objs.iter()
        .map(AsRef::as_ref)
        .filter(|obj| controller(*obj).is_none() && !is_terminating(*obj))
        .collect()
}

fn foreign<K: ObservedChild>(kind: &'static str, objs: &[Arc<K>], uid: &str) -> Vec<Foreign> {
    objs.iter()
        .filter_map(|obj| {
            let owner = controller(obj.as_ref()).filter(|o| &*o.uid != uid)?;
            Some(Foreign {
                kind,
                name: obj.name_any(),
                owner: format!("{}/{}", owner.kind, owner.name),
            })
        })
        .collect()
}

/// Objects of one replica type keyed by their index label; the first of each index wins.
fn by_index<'a, K: ObservedChild>(objs: &[&'a K], rtype: ReplicaType) -> BTreeMap<i32, &'a K> {
    let mut found = BTreeMap::new();
    for obj in objs {
        if let Some((t, index)) = replica_of(*obj)
            && t == rtype
        {
            found.entry(index).or_insert(*obj);
        }
    }
    found
}

/// Replica type and index from an object's labels.
pub fn replica_of<K: ObservedChild>(obj: &K) -> Option<(ReplicaType, i32)> {
    obj.lineage().replica
}

/// Pod phase (`Pending`, `Running`, `Succeeded`, `Failed`, `Unknown`).
pub fn phase(pod: &ChildPod) -> &str {
    pod.state.phase.as_deref().unwrap_or("Pending")
}

/// Whether the pod is being deleted.
pub fn is_terminating<K: kube::Resource>(obj: &K) -> bool {
    obj.meta().deletion_timestamp.is_some()
}

/// The exit code of the terminated tensorflow container, else [`UNKNOWN_EXIT_CODE`].
pub fn exit_code(pod: &ChildPod) -> i32 {
    pod.state.exit_code.unwrap_or(UNKNOWN_EXIT_CODE)
}

/// Exit codes 128 and above mean the process was killed by a signal: worth a retry.
pub fn is_retryable_exit_code(code: i32) -> bool {
    code >= 128
}

/// How messages name a pod of a replica: "Worker 1 (pod mnist-worker-1)", or "pod x" when its
/// labels name no replica.
pub fn replica_and_pod(pod: &ChildPod) -> String {
    let name = kube::ResourceExt::name_any(pod);
    match pod.lineage.replica {
        Some((rtype, index)) => format!("{} {index} (pod {name})", rtype.canonical()),
        None => format!("pod {name}"),
    }
}

/// Container and init-container restarts of a pod.
pub fn restart_count(pod: &ChildPod) -> i32 {
    pod.state.restarts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::builder::tfjob;
    use crate::plan::desired::{JobIdentity, desired_pod};

    fn pod(index: i32, owner: &str) -> Arc<ChildPod> {
        let job = tfjob("j").workers(3).build();
        let spec = crate::api::defaults::normalize(&job.spec, crate::api::CleanPodPolicy::Running)
            .expect("valid");
        let id = JobIdentity {
            name: "j".into(),
            namespace: "ns".into(),
            uid: owner.into(),
        };
        Arc::new(
            desired_pod(
                &id,
                &spec,
                &spec.replicas[&ReplicaType::Worker],
                index,
                None,
            )
            .into(),
        )
    }

    #[test]
    fn only_the_jobs_own_pods_count_and_they_are_found_by_index() {
        let pods = [pod(0, "uid"), pod(2, "uid"), pod(1, "someone-else")];
        let owned = OwnedChildren::of("uid", &pods, &[]);
        assert_eq!(owned.pods.len(), 2);
        let by_index = owned.pods_of(ReplicaType::Worker);
        assert_eq!(by_index.keys().copied().collect::<Vec<_>>(), vec![0, 2]);
        assert!(owned.pods_of(ReplicaType::Ps).is_empty());
    }

    #[test]
    fn exit_codes_from_signals_are_retryable() {
        assert!(is_retryable_exit_code(137));
        assert!(is_retryable_exit_code(UNKNOWN_EXIT_CODE));
        assert!(!is_retryable_exit_code(1));
        assert!(!is_retryable_exit_code(0));
        assert_eq!(exit_code(&ChildPod::default()), UNKNOWN_EXIT_CODE);
    }
}

//! Reading what the cluster reports about a job's pods and services.

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

use crate::api::ReplicaType;
use crate::api::defaults::TF_CONTAINER;
use crate::api::labels::{REPLICA_INDEX_LABEL, REPLICA_TYPE_LABEL};

/// Exit code upstream reports when the tensorflow container has no terminated state
/// (e.g. the pod was evicted); it counts as retryable.
pub const UNKNOWN_EXIT_CODE: i32 = 0xbeef;

/// Whether an object is controlled by the owner with `uid`.
pub fn controlled_by<K: kube::Resource>(obj: &K, uid: &str) -> bool {
    obj.owner_references()
        .iter()
        .any(|o| o.controller == Some(true) && o.uid == uid)
}

/// Replica type and index from an object's labels.
pub fn replica_of<K: kube::Resource>(obj: &K) -> Option<(ReplicaType, i32)> {
    let labels = obj.labels();
    let rtype = ReplicaType::parse(labels.get(REPLICA_TYPE_LABEL)?)?;
    let index = labels.get(REPLICA_INDEX_LABEL)?.parse().ok()?;
    Some((rtype, index))
}

/// Pod phase (`Pending`, `Running`, `Succeeded`, `Failed`, `Unknown`).
pub fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

/// Whether the pod is being deleted.
pub fn is_terminating<K: kube::Resource>(obj: &K) -> bool {
    obj.meta().deletion_timestamp.is_some()
}

/// The exit code of the terminated tensorflow container, else [`UNKNOWN_EXIT_CODE`].
pub fn exit_code(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.name == TF_CONTAINER))
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.terminated.as_ref())
        .map(|t| t.exit_code)
        .unwrap_or(UNKNOWN_EXIT_CODE)
}

/// Exit codes 128 and above mean the process was killed by a signal: worth a retry.
pub fn is_retryable_exit_code(code: i32) -> bool {
    code >= 128
}

/// Container and init-container restarts of a pod.
pub fn restart_count(pod: &Pod) -> i32 {
    let Some(s) = pod.status.as_ref() else {
        return 0;
    };
    let sum = |v: &Option<Vec<k8s_openapi::api::core::v1::ContainerStatus>>| {
        v.as_ref()
            .map(|cs| cs.iter().map(|c| c.restart_count).sum::<i32>())
            .unwrap_or(0)
    };
    sum(&s.container_statuses) + sum(&s.init_container_statuses)
}

//! Trimming objects on their way into the watch caches: only what the planner reads is kept.
//! The caches are most of the operator's memory, so everything else is dropped.

use k8s_openapi::api::core::v1::{Pod, Service};
use kube::ResourceExt;

use crate::api::TFJob;

/// A pod keeps its metadata (labels, owner, deletion), phase and container states.
pub fn trim_pod(p: &mut Pod) {
    p.managed_fields_mut().clear();
    p.annotations_mut().clear();
    p.spec = None;
    if let Some(st) = p.status.as_mut() {
        st.conditions = None;
        st.pod_ips = None;
        st.host_ips = None;
    }
}

/// A service keeps its metadata only.
pub fn trim_service(s: &mut Service) {
    s.managed_fields_mut().clear();
    s.annotations_mut().clear();
    s.spec = None;
    s.status = None;
}

/// A TFJob loses managedFields and kubectl's last-applied copy of the spec, which would double
/// the cache and are never read.
pub fn trim_tfjob(j: &mut TFJob) {
    j.managed_fields_mut().clear();
    j.annotations_mut()
        .remove("kubectl.kubernetes.io/last-applied-configuration");
}

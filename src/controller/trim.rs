//! Trimming TFJobs on their way into the watch cache. (Pods and services are decoded straight
//! into [`crate::api::ChildPod`] and [`crate::api::ChildService`], which keep only what the
//! planner reads.)

use kube::ResourceExt;

use crate::api::TFJob;

/// A TFJob loses managedFields and kubectl's last-applied copy of the spec, which would double
/// the cache and are never read.
pub fn trim_tfjob(j: &mut TFJob) {
    j.managed_fields_mut().clear();
    j.annotations_mut()
        .remove("kubectl.kubernetes.io/last-applied-configuration");
}

//! Our finalizer on TFJobs: added before anything is created for a job, released once the
//! cleanup plan says nothing of the job is left ([`super::deletion`] is the only caller of
//! [`release`] in the controller).

use json_patch::PatchOperation;
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};

use super::error::{Error, is_not_found};
use super::json_patch_ops as ops;
use crate::api::TFJob;
pub use crate::plan::cleanup::FINALIZER;

/// Whether the job (or its metadata) carries our finalizer.
pub fn is_ours<K: Resource>(job: &K) -> bool {
    job.finalizers().iter().any(|f| f == FINALIZER)
}

const FINALIZERS: [&str; 2] = ["metadata", "finalizers"];

/// Adds our finalizer; the patch fails (and the job is looked at again) if the list changed
/// since we read it. Returns the job as the API server stored it (None: it is gone).
pub async fn add(api: &Api<TFJob>, job: &TFJob) -> Result<Option<TFJob>, Error> {
    let ops = if job.finalizers().is_empty() {
        vec![
            ops::test(&FINALIZERS, Value::Null),
            ops::add(&FINALIZERS, json!([FINALIZER])),
        ]
    } else {
        vec![
            ops::test(&FINALIZERS, json!(job.finalizers())),
            ops::add(&["metadata", "finalizers", "-"], json!(FINALIZER)),
        ]
    };
    patch(api, job, ops, "adding the finalizer to").await
}

/// Removes our finalizer from `obj` (a TFJob, or its metadata), if it still has it; the API
/// server then deletes the job.
pub async fn release<K: Resource>(api: &Api<TFJob>, obj: &K) -> Result<(), Error> {
    let Some(index) = obj.finalizers().iter().position(|f| f == FINALIZER) else {
        return Ok(());
    };
    // Test-then-remove by index, so a concurrent change of the list is never clobbered.
    let index = index.to_string();
    let ours = ["metadata", "finalizers", index.as_str()];
    let ops = vec![ops::test(&ours, json!(FINALIZER)), ops::remove(&ours)];
    patch(api, obj, ops, "removing the finalizer of")
        .await
        .map(drop)
}

/// The JSON patch `ops` of `job`; the job as stored after it, None when it is gone.
async fn patch<K: Resource>(
    api: &Api<TFJob>,
    job: &K,
    ops: Vec<PatchOperation>,
    what: &str,
) -> Result<Option<TFJob>, Error> {
    let name = job.name_any();
    let patch = Patch::<TFJob>::Json(json_patch::Patch(ops));
    match api.patch(&name, &PatchParams::default(), &patch).await {
        Ok(stored) => Ok(Some(stored)),
        // Gone already: nothing to hold or release.
        Err(e) if is_not_found(&e) => Ok(None),
        Err(source) => Err(Error::api(
            format!(
                "{what} TFJob {}/{name}",
                job.namespace().unwrap_or_default()
            ),
            source,
        )),
    }
}

//! Our finalizer on TFJobs: added before anything is created for a job, released once the
//! cleanup plan says nothing of the job is left ([`super::deletion`] is the only caller of
//! [`release`] in the controller).

use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, PatchOperation, RemoveOperation, TestOperation};
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

use super::error::{Error, is_not_found};
use crate::api::TFJob;
pub use crate::plan::cleanup::FINALIZER;

/// Whether the job carries our finalizer.
pub fn is_ours(job: &TFJob) -> bool {
    job.finalizers().iter().any(|f| f == FINALIZER)
}

/// The JSON pointer `/metadata/finalizers[/last]`.
fn finalizers_path(last: Option<&str>) -> PointerBuf {
    let mut tokens = vec!["metadata", "finalizers"];
    tokens.extend(last);
    PointerBuf::from_tokens(tokens)
}

fn test(path: PointerBuf, value: Value) -> PatchOperation {
    PatchOperation::Test(TestOperation { path, value })
}

/// Adds our finalizer; the patch fails (and the job is looked at again) if the list changed
/// since we read it.
pub async fn add(api: &Api<TFJob>, job: &TFJob) -> Result<(), Error> {
    let ops = if job.finalizers().is_empty() {
        vec![
            test(finalizers_path(None), Value::Null),
            PatchOperation::Add(AddOperation {
                path: finalizers_path(None),
                value: json!([FINALIZER]),
            }),
        ]
    } else {
        vec![
            test(finalizers_path(None), json!(job.finalizers())),
            PatchOperation::Add(AddOperation {
                path: finalizers_path(Some("-")),
                value: json!(FINALIZER),
            }),
        ]
    };
    patch(api, job, ops, "adding the finalizer to").await
}

/// Removes our finalizer, if the job still has it; the API server then deletes the job.
pub async fn release(api: &Api<TFJob>, job: &TFJob) -> Result<(), Error> {
    let Some(index) = job.finalizers().iter().position(|f| f == FINALIZER) else {
        return Ok(());
    };
    // Test-then-remove by index, so a concurrent change of the list is never clobbered.
    let index = index.to_string();
    let ops = vec![
        test(finalizers_path(Some(&index)), json!(FINALIZER)),
        PatchOperation::Remove(RemoveOperation {
            path: finalizers_path(Some(&index)),
        }),
    ];
    patch(api, job, ops, "removing the finalizer of").await
}

async fn patch(
    api: &Api<TFJob>,
    job: &TFJob,
    ops: Vec<PatchOperation>,
    what: &str,
) -> Result<(), Error> {
    let name = job.name_any();
    let patch = Patch::<TFJob>::Json(json_patch::Patch(ops));
    match api.patch(&name, &PatchParams::default(), &patch).await {
        Ok(_) => Ok(()),
        // Gone already: nothing to hold or release.
        Err(e) if is_not_found(&e) => Ok(()),
        Err(source) => Err(Error::Api {
            action: format!(
                "{what} TFJob {}/{name}",
                job.namespace().unwrap_or_default()
            ),
            source,
        }),
    }
}

//! `tfjob-operator release-finalizers`: removes our finalizer from every TFJob, so that
//! uninstalling the operator never strands TFJobs (or their namespaces) in Terminating.

use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use tracing::info;

use super::error::{Error, is_status};
use crate::api::TFJob;
use crate::plan::cleanup::FINALIZER;

/// Removes the finalizer from the TFJobs of `namespace` (all namespaces when None).
/// Returns how many TFJobs were released.
pub async fn release_finalizers(client: Client, namespace: Option<&str>) -> Result<usize, Error> {
    let api: Api<TFJob> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let list = api
        .list_metadata(&ListParams::default())
        .await
        .map_err(|source| Error::Api {
            action: "listing TFJobs".into(),
            source,
        })?;
    let mut released = 0;
    for job in list.items {
        let Some(idx) = job.finalizers().iter().position(|f| f == FINALIZER) else {
            continue;
        };
        let ns = job.namespace().unwrap_or_default();
        let name = job.name_any();
        let ns_api: Api<TFJob> = Api::namespaced(client.clone(), &ns);
        // Test-then-remove by index, so a concurrent change of the list is never clobbered.
        let patch: json_patch::Patch = serde_json::from_value(json!([
            {"op": "test", "path": format!("/metadata/finalizers/{idx}"), "value": FINALIZER},
            {"op": "remove", "path": format!("/metadata/finalizers/{idx}")}
        ]))
        .expect("static JSON patch");
        match ns_api
            .patch(&name, &PatchParams::default(), &Patch::<TFJob>::Json(patch))
            .await
        {
            Ok(_) => {
                info!(namespace = %ns, name = %name, "released finalizer");
                released += 1;
            }
            Err(e) if is_status(&e, 404) => {}
            Err(source) => {
                return Err(Error::Api {
                    action: format!("removing the finalizer of TFJob {ns}/{name}"),
                    source,
                });
            }
        }
    }
    Ok(released)
}

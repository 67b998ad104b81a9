//! `tfjob-operator release-finalizers`: removes our finalizer from every TFJob, so that
//! uninstalling the operator never strands TFJobs (or their namespaces) in Terminating.

use kube::api::{Api, ListParams};
use kube::core::PartialObjectMeta;
use kube::{Client, ResourceExt};
use tracing::info;

use super::error::Error;
use super::finalizer::{self, FINALIZER};
use crate::api::TFJob;

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
    for meta in list.items.iter().filter(|m| has_ours(m)) {
        let ns = meta.namespace().unwrap_or_default();
        let job = TFJob {
            metadata: meta.metadata.clone(),
            spec: Default::default(),
            status: None,
        };
        finalizer::release(&Api::namespaced(client.clone(), &ns), &job).await?;
        info!(namespace = %ns, name = %job.name_any(), "released finalizer");
        released += 1;
    }
    Ok(released)
}

fn has_ours(meta: &PartialObjectMeta<TFJob>) -> bool {
    meta.finalizers().iter().any(|f| f == FINALIZER)
}

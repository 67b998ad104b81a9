//! `tfjob-operator release-finalizers`: removes our finalizer from every TFJob, so that
//! uninstalling the operator never strands TFJobs (or their namespaces) in Terminating.

use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use tracing::info;

use super::error::Error;
use super::finalizer;
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
        .map_err(|source| Error::api("listing TFJobs", source))?;
    let mut released = 0;
    for meta in list.items.iter().filter(|m| finalizer::is_ours(*m)) {
        let ns = meta.namespace().unwrap_or_default();
        finalizer::release(&Api::namespaced(client.clone(), &ns), meta).await?;
        info!(namespace = %ns, name = %meta.name_any(), "released finalizer");
        released += 1;
    }
    Ok(released)
}

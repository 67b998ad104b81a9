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

/// How many times [`release_until_none_left`] looks again.
const MAX_ROUNDS: usize = 5;
/// How long it waits before it looks again: longer than a leader takes to see that it lost
/// its Lease and stop writing.
const SETTLE: std::time::Duration = std::time::Duration::from_secs(2);

/// Releases the finalizers of the TFJobs in `scopes` (None: all namespaces), then looks again
/// until a pass finds none to release (at most [`MAX_ROUNDS`] passes): a reconcile that was in
/// flight when the operator was stopped may have added one back. Returns how many releases
/// were made.
pub async fn release_until_none_left(
    client: Client,
    scopes: &[Option<&str>],
) -> Result<usize, Error> {
    let mut total = 0;
    for round in 0..MAX_ROUNDS {
        if round > 0 {
            tokio::time::sleep(SETTLE).await;
        }
        let mut released = 0;
        for scope in scopes {
            released += release_finalizers(client.clone(), *scope).await?;
        }
        total += released;
        if released == 0 {
            break;
        }
    }
    Ok(total)
}

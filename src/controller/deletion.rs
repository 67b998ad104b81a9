//! Reconciling a job being deleted: delete its pods and services, wait until they are gone
//! (forcing pods stuck on lost nodes), then release the finalizer — here and only here.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::controller::Action as Requeue;
use tracing::debug;

use super::context::Context;
use super::error::Error;
use super::{act, finalizer};
use crate::api::TFJob;
use crate::plan::cleanup::plan_cleanup;

/// How often a deletion waiting for its children is looked at even without watch events.
const RECHECK: Duration = Duration::from_secs(10);

/// One step of a job's deletion: release it if nothing is left, else delete what is and look
/// again when the deletes come through (their watch events), or at the latest after [`RECHECK`].
pub(super) async fn cleanup(job: Arc<TFJob>, ctx: &Context) -> Result<Requeue, Error> {
    let uid = job.uid().ok_or(Error::MissingMetadata("uid"))?;
    let (pods, services) = ctx.children_of(&job);
    let decision = plan_cleanup(
        &uid,
        job.finalizers(),
        &pods,
        &services,
        Timestamp::now(),
        ctx.config.force_delete_after,
    );
    if decision.done {
        debug!("children gone; releasing the TFJob");
        if let Err(err) = finalizer::release(&ctx.jobs_api(&job)?, job.as_ref()).await {
            if let Some(webhook) = err.unreachable_webhook() {
                let event = crate::plan::cleanup::release_blocked(webhook);
                act::publish(&ctx.recorder(), &job, vec![event]).await;
            }
            return Err(err);
        }
        ctx.memory.forget(&uid);
        return Ok(Requeue::await_change());
    }
    debug!(
        pods = pods.len(),
        services = services.len(),
        "waiting for children to go"
    );
    let recorder = ctx.recorder();
    act::publish(&recorder, &job, decision.events).await;
    ctx.execute(&recorder, &job, decision.actions).await?;
    let recheck = decision.requeue_after.map_or(RECHECK, |d| d.min(RECHECK));
    Ok(Requeue::requeue(recheck))
}

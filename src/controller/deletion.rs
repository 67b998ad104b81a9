//! Reconciling a job being deleted: delete its pods and services, wait until they are gone
//! (forcing pods stuck on lost nodes), then release the finalizer — here and only here.

use std::sync::Arc;
use std::time::Instant;

use jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::controller::Action as Requeue;
use tracing::debug;

use super::context::Context;
use super::error::Error;
use super::timing::DELETION_RECHECK;
use super::{act, events, finalizer};
use crate::api::TFJob;
use crate::api::podgroup::ObservedPodGroup;
use crate::plan::announce::Announce;
use crate::plan::cleanup::{CleanupPlan, plan_cleanup};
use crate::plan::{Change, ChildRef};

/// One step of a job's deletion: delete what is left of it; release it when nothing is. The
/// answers to the deletes say which children are gone at once (services, finished and
/// unscheduled pods): when that is all of them the job is released in the same reconcile. Else
/// it is looked at again when the rest go (their watch events), at the latest after [`DELETION_RECHECK`].
pub(super) async fn cleanup(job: Arc<TFJob>, ctx: &Context) -> Result<Requeue, Error> {
    let uid = job.uid().ok_or(Error::MissingMetadata("uid"))?;
    if ctx.memory.was_released(&uid, Instant::now()) {
        // Released already; the TFJob cache has not yet seen it go.
        return Ok(Requeue::await_change());
    }
    let mut decision = decide(&job, &uid, ctx);
    let orphaning = job.finalizers().iter().any(|f| f == "orphan");
    if let Some(group) = ctx.pod_group_of(&job).filter(|_| !orphaning) {
        decision.changes.extend(pod_group_cleanup(&group, &uid));
        decision.done &= decision.changes.is_empty();
    }
    if !decision.done {
        let recorder = ctx.recorder();
        events::publish(&recorder, &job, std::mem::take(&mut decision.events)).await;
        let deletes = std::mem::take(&mut decision.changes);
        act::apply(ctx, &recorder, &job, deletes, Announce::FailuresOnly).await?;
        // What the deletes left, as their answers (laid over the caches) show it.
        decision = decide(&job, &uid, ctx);
    }
    if !decision.done {
        debug!("waiting for children to go");
        let recheck = decision
            .requeue_after
            .map_or(DELETION_RECHECK, |d| d.min(DELETION_RECHECK));
        return Ok(Requeue::requeue(recheck));
    }
    debug!("children gone; releasing the TFJob");
    if let Err(err) = finalizer::release(&ctx.jobs_api(&job)?, job.as_ref()).await {
        if let Some(webhook) = err.unreachable_webhook() {
            let event = crate::plan::cleanup::release_blocked(webhook);
            events::publish(&ctx.recorder(), &job, vec![event]).await;
        }
        return Err(err);
    }
    ctx.released(&uid);
    Ok(Requeue::await_change())
}

/// The delete of the job's PodGroup, if it controls one still there (it has no finalizers:
/// once the delete is answered it is gone).
fn pod_group_cleanup(group: &ObservedPodGroup, uid: &str) -> Option<Change> {
    let ours = group.controller.as_ref().is_some_and(|c| &*c.uid == uid);
    (ours && !group.deleting).then(|| {
        Change::DeletePodGroup(ChildRef {
            name: group.name.clone(),
            uid: group.uid.clone(),
            resource_version: None,
        })
    })
}

/// The cleanup plan for `job` over its children as observed now.
fn decide(job: &TFJob, uid: &str, ctx: &Context) -> CleanupPlan {
    let (pods, services) = ctx.children_of(job);
    plan_cleanup(
        uid,
        job.finalizers(),
        &pods,
        &services,
        Timestamp::now(),
        ctx.config.force_delete_after,
    )
}

//! Reconciling a live job: plan from what the caches show, apply the changes, write the
//! status, publish the events, count the outcomes.

use std::sync::Arc;

use jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::controller::Action as Requeue;

use super::context::{Context, key};
use super::error::Error;
use super::status::{self, StatusWrite};
use super::timing::DEADLINE_SLACK;
use super::{act, events};
use crate::api::TFJob;
use crate::plan;
use crate::plan::announce::Announce;

/// Plans per reconcile at most: the first, and one per 409 on the status write.
const MAX_PLANS: usize = 3;

/// Plans and acts for `job` once; after a 409 on the status write, plans again from the stored
/// version against the same observation of pods, so that decisions taken in this pass (e.g. a
/// restart counted towards backoffLimit) are not lost. Repeating an action is harmless:
/// creates tolerate AlreadyExists and deletes NotFound.
pub(super) async fn apply(job: Arc<TFJob>, ctx: &Context) -> Result<Requeue, Error> {
    let (pods, services) = ctx.children_of(&job);
    let pod_group = ctx.pod_group_of(&job);
    let recorder = ctx.recorder();
    let mut job = ctx.memory.with_our_status(job);
    for _ in 0..MAX_PLANS {
        let now = Timestamp::now();
        let cfg = &ctx.config.plan;
        let decision =
            plan::plan_with_pod_group(&job, &pods, &services, pod_group.as_ref(), now, cfg);
        act::apply(ctx, &recorder, &job, decision.changes, Announce::Everything).await?;
        let mut requeue_after = decision.requeue_after;
        match status::write_or_wait(ctx, &job, decision.status, decision.status_may_wait).await? {
            StatusWrite::Conflict => {
                job = Arc::new(status::read_stored(ctx, &job).await?);
                continue;
            }
            StatusWrite::Waiting(wait) => requeue_after = Some(plan::sooner(requeue_after, wait)),
            StatusWrite::Unchanged | StatusWrite::Written | StatusWrite::Gone => {}
        }
        let namespace = job.namespace().unwrap_or_default();
        ctx.metrics.count_outcomes(&namespace, &decision.outcomes);
        events::publish(&recorder, &job, decision.events).await;
        return Ok(match requeue_after {
            Some(after) => Requeue::requeue(after + DEADLINE_SLACK),
            None => Requeue::await_change(),
        });
    }
    Err(Error::Conflict(key(&job)))
}

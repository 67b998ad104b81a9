//! One reconcile of one TFJob: wait for complete caches, pick the step the job needs (a pure
//! decision, [`next_step`]), run it. Errors requeue the job with a per-job backoff.

use std::sync::Arc;

use kube::ResourceExt;
use kube::runtime::controller::Action as Requeue;
use tracing::{Instrument, debug, info_span, warn};

use super::context::{Context, key};
use super::error::Error;
use super::timing::{CACHES_LISTING_RETRY, CACHES_READY_WAIT, WEBHOOK_RETRY};
use super::{apply, deletion, finalizer};
use crate::api::defaults::effective_run_policy;
use crate::api::{CleanPodPolicy, TFJob};
use crate::runtime::metrics::ErrorLabels;

/// What a job needs next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing: another controller manages it, or it is being deleted without our finalizer.
    Ignore,
    /// Our finalizer first (before anything is created for the job).
    AddFinalizer,
    /// Plan and act on the live job.
    Apply,
    /// Clean up the deleted job, then release it.
    Cleanup,
}

/// The step `job` needs, from its finalizers, deletion mark and `managedBy`.
pub fn next_step(job: &TFJob, default_clean_pod_policy: CleanPodPolicy) -> Step {
    let ours = finalizer::is_ours(job);
    let deleting = job.metadata.deletion_timestamp.is_some();
    let managed_elsewhere =
        effective_run_policy(&job.spec, default_clean_pod_policy).managed_elsewhere();
    match (deleting, ours) {
        (true, true) => Step::Cleanup,
        (true, false) => Step::Ignore,
        (false, true) => Step::Apply,
        (false, false) if managed_elsewhere => Step::Ignore,
        (false, false) => Step::AddFinalizer,
    }
}

/// Numbers reconciles, for the logs (`reconcile_id` in the reconcile span).
static RECONCILE_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Reconciles one TFJob.
pub(super) async fn reconcile(job: Arc<TFJob>, ctx: Arc<Context>) -> Result<Requeue, Error> {
    let _timer = ctx.metrics.reconcile_timer();
    let id = RECONCILE_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let span = info_span!("reconcile", job_namespace = %job.namespace().unwrap_or_default(), job_name = %job.name_any(), reconcile_id = id);
    let result = run_step(&job, &ctx).instrument(span).await;
    if result.is_ok() {
        ctx.memory.succeeded(&job.uid().unwrap_or_default());
    }
    result
}

/// Runs the step the job needs, once the caches are complete.
pub(super) async fn run_step(job: &Arc<TFJob>, ctx: &Context) -> Result<Requeue, Error> {
    // Never decide on a partial view: right after (re)start the pod and service caches may
    // still be listing, and an empty cache would look like "all children gone". Waiting is
    // bounded so the controller keeps polling the watches that fill the caches.
    match tokio::time::timeout(CACHES_READY_WAIT, ctx.caches_ready()).await {
        Ok(true) => {}
        Ok(false) => return Err(Error::CacheNotReady),
        Err(_) => {
            debug!("caches still listing; looking again shortly");
            return Ok(Requeue::requeue(CACHES_LISTING_RETRY));
        }
    }
    if !ctx.gate.may_act() {
        // A standby (or a leader whose Lease ran out): every job is reconciled again when this
        // replica takes the Lease. The client would refuse its writes anyway; this spares the
        // work.
        return Ok(Requeue::await_change());
    }
    let policy = ctx.config.plan.default_clean_pod_policy;
    match next_step(job, policy) {
        Step::Ignore => Ok(Requeue::await_change()),
        Step::AddFinalizer => match finalizer::add(&ctx.jobs_api(job)?, job).await? {
            // The job as stored with our finalizer: act on it now rather than a watch event
            // and a debounce later (one reconcile less per job, and its pods sooner).
            Some(stored) if next_step(&stored, policy) == Step::Apply => {
                apply::apply(Arc::new(stored), ctx).await
            }
            _ => Ok(Requeue::await_change()),
        },
        Step::Apply => apply::apply(job.clone(), ctx).await,
        Step::Cleanup => deletion::cleanup(job.clone(), ctx).await,
    }
}

/// After a failed reconcile: count it, and look again after the job's backoff delay.
#[allow(clippy::needless_pass_by_value)] // the signature kube-runtime calls
pub(super) fn error_policy(job: Arc<TFJob>, err: &Error, ctx: Arc<Context>) -> Requeue {
    let category = err.category().to_string();
    ctx.metrics
        .reconcile_errors
        .get_or_create(&ErrorLabels { category })
        .inc();
    let mut delay = ctx.memory.failed(&job.uid().unwrap_or_default());
    if err.unreachable_webhook().is_some() {
        // A webhook that is down (e.g. Kueue's while Kueue restarts) comes back on its own:
        // look again soon, not after a backoff grown through the whole outage.
        delay = delay.min(WEBHOOK_RETRY);
    }
    if err.is_expected() {
        debug!(job = %key(&job), error = %err, ?delay, "requeue");
    } else {
        warn!(job = %key(&job), error = %err, category = err.category(), ?delay, "reconcile failed");
    }
    Requeue::requeue(delay)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::builder::tfjob;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    #[test]
    fn the_step_follows_finalizer_deletion_and_manager() {
        let new = tfjob("a").workers(1).build();
        let mut ours = new.clone();
        ours.metadata.finalizers = Some(vec![finalizer::FINALIZER.into()]);
        let mut deleting = ours.clone();
        deleting.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::UNIX_EPOCH));
        let mut released = deleting.clone();
        released.metadata.finalizers = Some(vec!["other".into()]);
        let elsewhere = tfjob("a")
            .workers(1)
            .managed_by("kueue.x-k8s.io/multikueue")
            .build();
        let step = |j: &TFJob| next_step(j, CleanPodPolicy::Running);
        assert_eq!(step(&new), Step::AddFinalizer);
        assert_eq!(step(&ours), Step::Apply);
        assert_eq!(step(&deleting), Step::Cleanup);
        assert_eq!(step(&released), Step::Ignore);
        assert_eq!(step(&elsewhere), Step::Ignore);
    }
}

//! Writing a job's status: at once, or later when the planner says it only reports progress
//! (batching); with optimistic concurrency, so a 409 means our view was stale and the job is
//! planned again from the stored version instead of being overwritten.

use std::time::{Duration, Instant};

use kube::ResourceExt;
use kube::api::PostParams;

use super::context::{Context, key};
use super::error::{Error, is_conflict, is_not_found};
use crate::api::{TFJob, TFJobStatus};

/// What became of a planned status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum StatusWrite {
    /// The plan did not change the status.
    Unchanged,
    /// Progress only: it may wait this long for more to write with it.
    Waiting(Duration),
    /// Written.
    Written,
    /// The job was deleted meanwhile: nothing left to report on.
    Gone,
    /// Our copy was stale (409): plan again from the stored version.
    Conflict,
}

/// Writes `status` for `job` now, or lets it wait when `may_wait` and the batch allows.
pub(super) async fn write_or_wait(
    ctx: &Context,
    job: &TFJob,
    status: Option<TFJobStatus>,
    may_wait: bool,
) -> Result<StatusWrite, Error> {
    let uid = job.uid().unwrap_or_default();
    let Some(status) = status else {
        ctx.memory.nothing_to_write(&uid);
        return Ok(StatusWrite::Unchanged);
    };
    if let Some(wait) = ctx.memory.status_due_in(&uid, may_wait, Instant::now()) {
        return Ok(StatusWrite::Waiting(wait));
    }
    write(ctx, job, status).await
}

/// Replaces the status of `job` (at its resourceVersion) and remembers what was stored.
async fn write(ctx: &Context, job: &TFJob, status: TFJobStatus) -> Result<StatusWrite, Error> {
    let api = ctx.jobs_api(job)?;
    let mut updated = job.clone();
    updated.status = Some(status);
    updated.metadata.managed_fields = None;
    match api
        .replace_status(&job.name_any(), &PostParams::default(), &updated)
        .await
    {
        Ok(stored) => {
            ctx.memory.status_written(&stored);
            Ok(StatusWrite::Written)
        }
        Err(e) if is_conflict(&e) => Ok(StatusWrite::Conflict),
        Err(e) if is_not_found(&e) => Ok(StatusWrite::Gone),
        Err(e) => Err(Error::api(
            format!("writing status of TFJob {}", key(job)),
            e,
        )),
    }
}

/// The job as stored now (after a 409).
pub(super) async fn read_stored(ctx: &Context, job: &TFJob) -> Result<TFJob, Error> {
    let api = ctx.jobs_api(job)?;
    api.get(&job.name_any())
        .await
        .map_err(|source| Error::api(format!("reading TFJob {}", key(job)), source))
}

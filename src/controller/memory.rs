//! What the controller remembers about each job between reconciles, in one place keyed by the
//! job's UID, forgotten in one call ([`JobMemory::forget`]) when the job is gone:
//!
//! - our last status write, to plan from it while the TFJob cache still shows an older copy
//!   (planning from the older one would end in a 409 on the next write);
//! - since when a progress-only status change has been waiting to be written (batching);
//! - consecutive failed reconciles, for the error backoff;
//! - which jobs were released lately (tombstones).
//!
//! Our pod and service writes are remembered by the child caches
//! ([`super::child_cache::ChildCache`]), with the objects they concern.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use kube::ResourceExt;

use super::child_cache::parse_revision;
use super::timing::{ERROR_BACKOFF_FIRST, ERROR_BACKOFF_MAX, RELEASE_REMEMBERED_FOR};
use crate::api::{TFJob, TFJobStatus};

/// Everything remembered about one job.
#[derive(Debug, Default)]
pub struct Remembered {
    /// resourceVersion and status returned by our last status write.
    last_status: Option<(String, TFJobStatus)>,
    /// Since when a progress-only status change has been waiting.
    batch_since: Option<Instant>,
    /// Consecutive failed reconciles.
    failures: u32,
}

impl Remembered {
    fn is_empty(&self) -> bool {
        self.last_status.is_none() && self.batch_since.is_none() && self.failures == 0
    }
}

/// Removes the entry of `uid` if nothing is left in it.
fn drop_if_empty(jobs: &mut HashMap<String, Remembered>, uid: &str) {
    if jobs.get(uid).is_some_and(Remembered::is_empty) {
        jobs.remove(uid);
    }
}

/// The controller's memory of every job, by UID.
#[derive(Debug)]
pub struct JobMemory {
    jobs: Mutex<HashMap<String, Remembered>>,
    /// How long a progress-only status change may wait.
    batch_period: Duration,
    /// Jobs whose finalizer we removed lately.
    released: Mutex<Released>,
}

/// The UIDs of jobs released within [`RELEASE_REMEMBERED_FOR`], oldest first.
#[derive(Debug, Default)]
struct Released {
    order: std::collections::VecDeque<(Instant, String)>,
    uids: std::collections::HashSet<String>,
}

impl Released {
    /// Forgets the releases older than [`RELEASE_REMEMBERED_FOR`] at `now`.
    fn expire(&mut self, now: Instant) {
        while let Some((at, uid)) = self.order.front() {
            if now.saturating_duration_since(*at) < RELEASE_REMEMBERED_FOR {
                break;
            }
            self.uids.remove(uid);
            self.order.pop_front();
        }
    }
}

impl JobMemory {
    /// An empty memory; progress-only status changes wait at most `batch`.
    pub fn new(batch: Duration) -> Self {
        Self {
            jobs: Mutex::default(),
            batch_period: batch,
            released: Mutex::default(),
        }
    }

    fn jobs(&self) -> MutexGuard<'_, HashMap<String, Remembered>> {
        // A panic while holding the lock leaves plain data behind: keep using it.
        self.jobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs `f` on the job's memory, made if needed, dropping the entry if nothing is left in it.
    fn with<T>(&self, uid: &str, f: impl FnOnce(&mut Remembered) -> T) -> T {
        let mut jobs = self.jobs();
        let result = f(jobs.entry(uid.to_string()).or_default());
        drop_if_empty(&mut jobs, uid);
        result
    }

    /// Runs `f` on the job's memory if there is any: the lookups every reconcile makes neither
    /// allocate nor insert for the many jobs with nothing remembered.
    fn with_existing<T>(&self, uid: &str, f: impl FnOnce(&mut Remembered) -> T) -> Option<T> {
        let mut jobs = self.jobs();
        let result = f(jobs.get_mut(uid)?);
        drop_if_empty(&mut jobs, uid);
        Some(result)
    }

    /// Forgets everything about the job with `uid` (it is gone).
    pub fn forget(&self, uid: &str) {
        self.jobs().remove(uid);
    }

    /// The job with `uid` was released (our finalizer removed): forgets it, and remembers the
    /// release for a while ([`JobMemory::was_released`]).
    pub fn released(&self, uid: &str, now: Instant) {
        self.forget(uid);
        let mut released = self.released_jobs();
        released.expire(now);
        if released.uids.insert(uid.to_string()) {
            released.order.push_back((now, uid.to_string()));
        }
    }

    /// Whether the job with `uid` was released lately: the TFJob cache may still show it with
    /// our finalizer, but there is nothing left to do for it.
    pub fn was_released(&self, uid: &str, now: Instant) -> bool {
        let mut released = self.released_jobs();
        released.expire(now);
        released.uids.contains(uid)
    }

    fn released_jobs(&self) -> MutexGuard<'_, Released> {
        self.released
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Jobs with something remembered.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.jobs().len()
    }

    /// Whether nothing is remembered about any job.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    // --- our last status write ---------------------------------------------------------------

    /// `job` with our last status write laid over it when that write is newer than the copy.
    pub fn with_our_status(&self, job: Arc<TFJob>) -> Arc<TFJob> {
        let Some(uid) = job.uid() else { return job };
        let cached_rv = job.metadata.resource_version.clone();
        let ours = self.with_existing(&uid, |m| {
            let newer = m.last_status.as_ref().is_some_and(|(rv, _)| {
                parse_revision(Some(rv)) > parse_revision(cached_rv.as_deref())
                    && parse_revision(cached_rv.as_deref()).is_some()
            });
            if newer {
                m.last_status.clone()
            } else {
                // The cache has caught up with our write.
                m.last_status = None;
                None
            }
        });
        let Some((rv, status)) = ours.flatten() else {
            return job;
        };
        let mut fresher = (*job).clone();
        fresher.metadata.resource_version = Some(rv);
        fresher.status = Some(status);
        Arc::new(fresher)
    }

    /// Remembers the TFJob the API server returned for our status write.
    pub fn status_written(&self, stored: &TFJob) {
        let (Some(uid), Some(rv), Some(status)) = (
            stored.uid(),
            stored.metadata.resource_version.clone(),
            stored.status.clone(),
        ) else {
            return;
        };
        self.with(&uid, |m| {
            m.last_status = Some((rv, status));
            m.batch_since = None;
        });
    }

    // --- batching of progress-only status changes -------------------------------------------

    /// For a job with a status change to write at `now`: `None` to write it now, or how long it
    /// may still wait. `may_wait` is the planner's verdict; a change that may not wait, or one
    /// that has waited a full batch period, is due and ends the batch.
    pub fn status_due_in(&self, uid: &str, may_wait: bool, now: Instant) -> Option<Duration> {
        let period = self.batch_period;
        self.with(uid, |m| {
            if !may_wait {
                m.batch_since = None;
                return None;
            }
            let since = *m.batch_since.get_or_insert(now);
            let left = period.saturating_sub(now.saturating_duration_since(since));
            if left.is_zero() {
                m.batch_since = None;
                None
            } else {
                Some(left)
            }
        })
    }

    /// The job has no status change waiting.
    pub fn nothing_to_write(&self, uid: &str) {
        self.with_existing(uid, |m| m.batch_since = None);
    }

    // --- error backoff -----------------------------------------------------------------------

    /// Records a failed reconcile and returns how long to wait before the next: doubling from
    /// 0.5 s with each consecutive failure, at most 5 minutes.
    pub fn failed(&self, uid: &str) -> Duration {
        self.with(uid, |m| {
            let delay = ERROR_BACKOFF_FIRST.saturating_mul(1u32 << m.failures.min(16));
            m.failures = m.failures.saturating_add(1);
            delay.min(ERROR_BACKOFF_MAX)
        })
    }

    /// A reconcile succeeded: the backoff starts over.
    pub fn succeeded(&self, uid: &str) {
        self.with_existing(uid, |m| m.failures = 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn memory() -> JobMemory {
        JobMemory::new(SECOND)
    }

    fn job(uid: &str, rv: &str, active: i32) -> TFJob {
        let mut job = crate::api::builder::tfjob("a").uid(uid).build();
        job.metadata.resource_version = Some(rv.into());
        let mut status = TFJobStatus::default();
        status.replica_statuses.insert(
            "Worker".into(),
            crate::api::ReplicaStatus {
                active,
                ..Default::default()
            },
        );
        job.status = Some(status);
        job
    }

    #[test]
    fn our_status_write_wins_until_the_cache_catches_up() {
        let m = memory();
        m.status_written(&job("u", "12", 3));
        let stale = Arc::new(job("u", "10", 0));
        let seen = m.with_our_status(stale.clone());
        assert_eq!(seen.metadata.resource_version.as_deref(), Some("12"));
        assert_eq!(
            seen.status
                .as_ref()
                .map(|s| s.replica_statuses["Worker"].active),
            Some(3)
        );
        let caught_up = Arc::new(job("u", "12", 3));
        assert!(Arc::ptr_eq(
            &m.with_our_status(caught_up.clone()),
            &caught_up
        ));
        assert!(m.is_empty(), "nothing left to remember");
    }

    #[test]
    fn progress_waits_one_period_from_the_first_change() {
        let m = memory();
        let t0 = Instant::now();
        assert_eq!(m.status_due_in("a", true, t0), Some(SECOND));
        // A later change does not restart the clock.
        let later = t0 + Duration::from_millis(600);
        assert_eq!(
            m.status_due_in("a", true, later),
            Some(Duration::from_millis(400))
        );
        assert_eq!(m.status_due_in("a", true, t0 + SECOND), None);
        assert!(m.is_empty(), "written: the next change starts a new batch");
        // An urgent change is due at once and ends the batch; jobs are batched apart.
        m.status_due_in("a", true, t0);
        assert_eq!(m.status_due_in("b", true, t0 + SECOND), Some(SECOND));
        assert_eq!(m.status_due_in("a", false, t0), None);
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn backoff_doubles_caps_and_resets() {
        let m = memory();
        assert_eq!(m.failed("a"), Duration::from_millis(500));
        assert_eq!(m.failed("a"), Duration::from_secs(1));
        assert_eq!(m.failed("b"), Duration::from_millis(500));
        for _ in 0..20 {
            m.failed("a");
        }
        assert_eq!(m.failed("a"), Duration::from_secs(300));
        m.succeeded("a");
        assert_eq!(m.failed("a"), Duration::from_millis(500));
    }

    #[test]
    fn a_release_is_remembered_for_a_while_then_forgotten() {
        let m = memory();
        let t0 = Instant::now();
        m.failed("u");
        m.released("u", t0);
        assert!(m.is_empty(), "everything else about the job is forgotten");
        assert!(m.was_released("u", t0 + Duration::from_secs(1)));
        assert!(!m.was_released("other", t0));
        m.released("v", t0 + Duration::from_secs(20));
        assert!(!m.was_released("u", t0 + RELEASE_REMEMBERED_FOR));
        assert!(m.was_released("v", t0 + RELEASE_REMEMBERED_FOR));
        assert_eq!(
            m.released_jobs().order.len(),
            1,
            "expired entries are dropped"
        );
    }

    #[test]
    fn forget_drops_every_kind_of_memory_of_that_job_only() {
        let m = memory();
        m.status_written(&job("u", "12", 1));
        m.status_due_in("u", true, Instant::now());
        m.failed("u");
        m.failed("other");
        m.forget("u");
        assert_eq!(m.len(), 1);
    }
}

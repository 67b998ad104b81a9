//! Stage 4, limits: `backoffLimit` and `activeDeadlineSeconds`. A job past either fails at
//! once, and its pods are then cleaned by its `cleanPodPolicy` like any finished job's (as
//! upstream v1.9.4 does since kubeflow/trainer#3420; before, every pod went, `None` or not);
//! a job with a deadline is looked at again when it passes, without waiting for another event.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::EventKind;
use super::conditions::reason;
use super::pass::Pass;
use crate::api::TFJobStatus;
use crate::api::defaults::EffectiveRunPolicy;

/// Which limit a job went past.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Exceeded {
    /// More restarts than `backoffLimit` allows.
    BackoffLimit,
    /// Running for longer than `activeDeadlineSeconds`.
    Deadline,
}

/// When the job's active deadline passes, if it has one (counted from its start time).
pub(super) fn deadline(run_policy: &EffectiveRunPolicy, status: &TFJobStatus) -> Option<Timestamp> {
    let secs = run_policy.active_deadline_seconds?;
    let start = status.start_time.as_ref()?.0;
    Some(
        start
            .checked_add(SignedDuration::from_secs(secs))
            .unwrap_or(Timestamp::MAX),
    )
}

/// The limit the job is past at `now`, if any; the backoff limit is checked first.
pub(super) fn exceeded(
    backoff_exceeded: bool,
    deadline: Option<Timestamp>,
    now: Timestamp,
) -> Option<Exceeded> {
    if backoff_exceeded {
        Some(Exceeded::BackoffLimit)
    } else if deadline.is_some_and(|d| now >= d) {
        Some(Exceeded::Deadline)
    } else {
        None
    }
}

/// Fails the job for going past `limit`: `Failed=True`, no replica active. Its pods are left
/// to the finish stage (cleanPodPolicy).
pub(super) fn fail(pass: &mut Pass<'_>, limit: Exceeded) {
    let now = pass.now;
    pass.status.completion_time.get_or_insert(Time(now));
    pass.no_replica_active();
    let name = &pass.id.name;
    let message = match limit {
        Exceeded::BackoffLimit => {
            format!("Job {name} has failed because it has reached the specified backoff limit")
        }
        Exceeded::Deadline => {
            format!("Job {name} has failed because it was active longer than specified deadline")
        }
    };
    pass.fail(reason::FAILED, EventKind::Normal, message);
}

/// Time from `now` until `at` (zero when it has passed).
pub(super) fn until(now: Timestamp, at: Timestamp) -> Duration {
    let millis = at.as_millisecond().saturating_sub(now.as_millisecond());
    Duration::from_millis(u64::try_from(millis).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).expect("valid")
    }

    #[test]
    fn the_deadline_counts_from_the_start_and_saturates() {
        let policy = EffectiveRunPolicy {
            clean_pod_policy: crate::api::CleanPodPolicy::Running,
            ttl_seconds_after_finished: None,
            active_deadline_seconds: Some(5),
            backoff_limit: None,
            suspend: false,
            managed_by: None,
            overridden_legacy_fields: vec![],
        };
        let mut status = TFJobStatus::default();
        assert_eq!(deadline(&policy, &status), None, "not started");
        status.start_time = Some(Time(at(0)));
        let d = deadline(&policy, &status);
        assert_eq!(d, Some(at(5)));
        assert_eq!(exceeded(false, d, at(4)), None);
        assert_eq!(exceeded(false, d, at(5)), Some(Exceeded::Deadline));
        assert_eq!(exceeded(true, d, at(5)), Some(Exceeded::BackoffLimit));
        let forever = EffectiveRunPolicy {
            active_deadline_seconds: Some(i64::MAX),
            ..policy
        };
        assert_eq!(deadline(&forever, &status), Some(Timestamp::MAX));
    }

    #[test]
    fn until_is_never_negative() {
        assert_eq!(until(at(10), at(3)), Duration::ZERO);
        assert_eq!(until(at(3), at(10)), Duration::from_secs(7));
    }
}

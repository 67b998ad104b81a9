//! TFJob conditions with upstream's rules: newest last, Running and Restarting exclude each
//! other, a finished job flips Running to False, and nothing changes once the job has Failed.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::{JobCondition, TFJobStatus};

/// Condition types.
pub mod kind {
    /// The job was accepted.
    pub const CREATED: &str = "Created";
    /// The deciding replicas are running.
    pub const RUNNING: &str = "Running";
    /// Failed replicas are being restarted.
    pub const RESTARTING: &str = "Restarting";
    /// The job completed successfully.
    pub const SUCCEEDED: &str = "Succeeded";
    /// The job failed.
    pub const FAILED: &str = "Failed";
    /// The job is suspended.
    pub const SUSPENDED: &str = "Suspended";
}

/// Condition and event reasons (upstream's `TFJob` + verb).
pub mod reason {
    /// Created.
    pub const CREATED: &str = "TFJobCreated";
    /// Running.
    pub const RUNNING: &str = "TFJobRunning";
    /// Restarting.
    pub const RESTARTING: &str = "TFJobRestarting";
    /// Succeeded.
    pub const SUCCEEDED: &str = "TFJobSucceeded";
    /// Failed.
    pub const FAILED: &str = "TFJobFailed";
    /// Suspended.
    pub const SUSPENDED: &str = "TFJobSuspended";
    /// Resumed.
    pub const RESUMED: &str = "TFJobResumed";
    /// The spec is invalid (something the CRD validation could not catch).
    pub const INVALID_SPEC: &str = "TFJobInvalidSpec";
    /// A pod or service the job needs is held by another controller.
    pub const CHILD_CONFLICT: &str = "TFJobChildConflict";
    /// The job asks for more pods than the operator's `--max-replicas-per-job`.
    pub const TOO_MANY_REPLICAS: &str = "TFJobTooManyReplicas";
}

/// The condition of `type_` if it exists.
pub fn get<'a>(status: &'a TFJobStatus, type_: &str) -> Option<&'a JobCondition> {
    status.conditions.iter().find(|c| c.type_ == type_)
}

/// Whether a condition of `type_` exists with status True.
pub fn is_true(status: &TFJobStatus, type_: &str) -> bool {
    get(status, type_).is_some_and(|c| c.status == "True")
}

/// The job's state word (`status.state`): the type of its newest condition that is True.
/// Upstream's `State` column prints the newest condition whatever its status, so a resumed job
/// (newest: `Suspended=False`) read `Suspended` there (kubeflow/trainer#3666).
pub fn state(status: &TFJobStatus) -> Option<String> {
    current(status).map(|c| c.type_.clone())
}

/// The reason of the condition [`state`] names.
pub fn state_reason(status: &TFJobStatus) -> Option<String> {
    current(status).and_then(|c| c.reason.clone())
}

/// The job's current condition: its newest that is True.
fn current(status: &TFJobStatus) -> Option<&JobCondition> {
    status.conditions.iter().rev().find(|c| c.status == "True")
}

/// Whether the job has Succeeded or Failed.
pub fn is_finished(status: &TFJobStatus) -> bool {
    is_true(status, kind::SUCCEEDED) || is_true(status, kind::FAILED)
}

/// Sets a condition as upstream's `setCondition` does. Returns whether anything changed.
pub fn set(
    status: &mut TFJobStatus,
    type_: &str,
    state: bool,
    reason: &str,
    message: String,
    now: Timestamp,
) -> bool {
    if is_true(status, kind::FAILED) {
        return false;
    }
    let state = if state { "True" } else { "False" };
    let mut transition = Some(Time(now));
    if let Some(existing) = get(status, type_) {
        if existing.status == state && existing.reason.as_deref() == Some(reason) {
            return false;
        }
        if existing.status == state {
            transition = existing.last_transition_time.clone();
        }
    }
    let finishing = type_ == kind::SUCCEEDED || type_ == kind::FAILED;
    status.conditions.retain(|c| {
        c.type_ != type_
            && !(type_ == kind::RUNNING && c.type_ == kind::RESTARTING)
            && !(type_ == kind::RESTARTING && c.type_ == kind::RUNNING)
    });
    if finishing && state == "True" {
        for c in &mut status.conditions {
            if c.type_ == kind::RUNNING && c.status == "True" {
                c.status = "False".into();
            }
        }
    }
    status.conditions.push(JobCondition {
        type_: type_.to_string(),
        status: state.to_string(),
        reason: Some(reason.to_string()),
        message: Some(message),
        last_update_time: Some(Time(now)),
        last_transition_time: transition,
    });
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    fn types(s: &TFJobStatus) -> Vec<(String, String)> {
        s.conditions
            .iter()
            .map(|c| (c.type_.clone(), c.status.clone()))
            .collect()
    }

    #[test]
    fn newest_last_and_running_flips_on_success() {
        let mut s = TFJobStatus::default();
        assert!(set(
            &mut s,
            kind::CREATED,
            true,
            reason::CREATED,
            "c".into(),
            t(0)
        ));
        assert!(set(
            &mut s,
            kind::RUNNING,
            true,
            reason::RUNNING,
            "r".into(),
            t(1)
        ));
        assert!(!set(
            &mut s,
            kind::RUNNING,
            true,
            reason::RUNNING,
            "other".into(),
            t(2)
        ));
        assert!(set(
            &mut s,
            kind::SUCCEEDED,
            true,
            reason::SUCCEEDED,
            "s".into(),
            t(3)
        ));
        assert_eq!(
            types(&s),
            vec![
                ("Created".into(), "True".into()),
                ("Running".into(), "False".into()),
                ("Succeeded".into(), "True".into())
            ]
        );
        // The message of an unchanged condition is not rewritten.
        assert_eq!(
            get(&s, kind::RUNNING).unwrap().message.as_deref(),
            Some("r")
        );
    }

    #[test]
    fn running_and_restarting_exclude_each_other() {
        let mut s = TFJobStatus::default();
        set(
            &mut s,
            kind::RUNNING,
            true,
            reason::RUNNING,
            "r".into(),
            t(0),
        );
        set(
            &mut s,
            kind::RESTARTING,
            true,
            reason::RESTARTING,
            "x".into(),
            t(1),
        );
        assert_eq!(types(&s), vec![("Restarting".into(), "True".into())]);
        set(
            &mut s,
            kind::RUNNING,
            true,
            reason::RUNNING,
            "r".into(),
            t(2),
        );
        assert_eq!(types(&s), vec![("Running".into(), "True".into())]);
    }

    #[test]
    fn nothing_changes_after_failed() {
        let mut s = TFJobStatus::default();
        set(&mut s, kind::FAILED, true, reason::FAILED, "f".into(), t(0));
        assert!(!set(
            &mut s,
            kind::RUNNING,
            true,
            reason::RUNNING,
            "r".into(),
            t(1)
        ));
        assert!(!set(
            &mut s,
            kind::SUCCEEDED,
            true,
            reason::SUCCEEDED,
            "s".into(),
            t(1)
        ));
        assert_eq!(types(&s), vec![("Failed".into(), "True".into())]);
    }

    #[test]
    fn transition_time_kept_when_status_unchanged() {
        let mut s = TFJobStatus::default();
        set(
            &mut s,
            kind::RUNNING,
            false,
            reason::SUSPENDED,
            "a".into(),
            t(0),
        );
        set(
            &mut s,
            kind::RUNNING,
            false,
            reason::RESUMED,
            "b".into(),
            t(5),
        );
        let c = get(&s, kind::RUNNING).unwrap();
        assert_eq!(c.last_transition_time, Some(Time(t(0))));
        assert_eq!(c.last_update_time, Some(Time(t(5))));
    }
}

//! Stage 2, suspend: `runPolicy.suspend` deletes the job's pods and services and keeps the job
//! (as Kueue expects when it suspends a job it has not admitted, or preempts it); resuming
//! restarts the clock of `activeDeadlineSeconds`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::EventKind;
use super::conditions::{self, kind, reason};
use super::pass::Pass;

/// Suspends the job: no pods, no services, `Suspended=True`, `Running=False`.
pub(super) fn suspend(pass: &mut Pass<'_>) {
    pass.delete_all_children();
    pass.no_replica_active();
    let message = format!("TFJob {} is suspended.", pass.id.name);
    let now = pass.now;
    let status = &mut pass.status;
    if conditions::is_true(status, kind::RUNNING) {
        conditions::set(
            status,
            kind::RUNNING,
            false,
            reason::SUSPENDED,
            message.clone(),
            now,
        );
    }
    if !conditions::is_true(status, kind::SUSPENDED)
        && conditions::set(
            status,
            kind::SUSPENDED,
            true,
            reason::SUSPENDED,
            message.clone(),
            now,
        )
    {
        pass.plan
            .event(EventKind::Normal, reason::SUSPENDED, message);
    }
}

/// A job that was suspended and no longer is: `Suspended=False`, and a new start time.
pub(super) fn resume_if_suspended(pass: &mut Pass<'_>) {
    if !conditions::is_true(&pass.status, kind::SUSPENDED) {
        return;
    }
    let message = format!("TFJob {} is resumed.", pass.id.name);
    let now = pass.now;
    conditions::set(
        &mut pass.status,
        kind::SUSPENDED,
        false,
        reason::RESUMED,
        message.clone(),
        now,
    );
    pass.status.start_time = Some(Time(now));
    pass.plan.event(EventKind::Normal, reason::RESUMED, message);
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::Timestamp;

    use crate::api::builder::tfjob;

    #[test]
    fn suspend_then_resume_flips_the_condition_and_restarts_the_clock() {
        let job = tfjob("a").workers(1).build();
        let mut pass = Pass::start(&job, &[], &[], Timestamp::UNIX_EPOCH);
        suspend(&mut pass);
        assert!(conditions::is_true(&pass.status, kind::SUSPENDED));
        assert_eq!(pass.plan.events.len(), 1);
        let later = Timestamp::from_second(100).expect("valid");
        let mut suspended = job.clone();
        suspended.status = Some(pass.status.clone());
        let mut pass = Pass::start(&suspended, &[], &[], later);
        resume_if_suspended(&mut pass);
        assert!(!conditions::is_true(&pass.status, kind::SUSPENDED));
        assert_eq!(pass.status.start_time, Some(Time(later)));
        assert_eq!(pass.plan.events[0].reason, reason::RESUMED);
    }

    #[test]
    fn a_job_never_suspended_is_not_resumed() {
        let job = tfjob("a").workers(1).build();
        let mut pass = Pass::start(&job, &[], &[], Timestamp::UNIX_EPOCH);
        resume_if_suspended(&mut pass);
        assert!(pass.plan.events.is_empty() && pass.status.start_time.is_none());
    }
}

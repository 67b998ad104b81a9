//! Stage 2, suspend: `runPolicy.suspend` deletes the job's pods and services and keeps the job
//! (as Kueue expects when it suspends a job it has not admitted, or preempts it); resuming
//! restarts the clock of `activeDeadlineSeconds`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::EventKind;
use super::conditions::{self, kind, reason};
use super::pass::Pass;
use crate::api::ReplicaType;

/// The label that puts a job in a Kueue LocalQueue.
pub const KUEUE_QUEUE_LABEL: &str = "kueue.x-k8s.io/queue-name";

/// Suspends the job: no pods, no services, `Suspended=True`, `Running=False`. `keys` are the
/// job's `tfReplicaSpecs` keys as written: when one is not spelled as Kueue reads it, the
/// suspension says so (a queue may be what suspended it, and may never admit it). A job in a
/// Kueue `queue` says that it waits for Kueue to admit it.
pub(super) fn suspend<'k>(
    pass: &mut Pass<'_>,
    keys: impl Iterator<Item = &'k String>,
    queue: Option<&str>,
) {
    pass.delete_all_children();
    pass.no_replica_active();
    let mut message = format!("TFJob {} is suspended.", pass.id.name);
    if let Some(queue) = queue {
        message.push_str(&format!(
            " Waiting: in Kueue LocalQueue {queue}, until Kueue admits it (its reason: kubectl get workloads -n {} -o wide).",
            pass.id.namespace
        ));
    }
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
        if let Some(warning) = unreadable_by_kueue(keys) {
            pass.plan
                .event(EventKind::Warning, "ReplicaKeysUnreadableByKueue", warning);
        }
    }
}

/// The warning for replica-type keys Kueue would not read ("Ps", "worker"): Kueue looks up
/// exactly `PS`, `Worker`, `Chief`, `Master` and `Evaluator`. None when all are spelled so.
fn unreadable_by_kueue<'k>(keys: impl Iterator<Item = &'k String>) -> Option<String> {
    let respell: Vec<String> = keys
        .filter_map(|key| {
            let canonical = ReplicaType::parse(key)?.canonical();
            (key != canonical).then(|| format!("{key} as {canonical}"))
        })
        .collect();
    if respell.is_empty() {
        return None;
    }
    Some(format!(
        "If Kueue queues this job: Kueue reads only the replica types PS, Worker, Chief, Master \
         and Evaluator, spelled so, and leaves the others out of its quota, or never admits the \
         job when it can read none. Spell {}.",
        respell.join(", ")
    ))
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
        suspend(&mut pass, std::iter::empty(), None);
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

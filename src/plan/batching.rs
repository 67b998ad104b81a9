//! Stage 7, batching: may the new status wait to be written together with what follows?
//! Only a change that reports progress (replica counts, `Running`) while some pod is still on
//! its way up may; restarts, failures and completion are written at once, and so is a pass
//! that announces a new waiting cause (`waiting`: its Warning is said once, against the stored
//! message). The controller keeps the clock (`--status-batch-ms`).

use super::conditions::{self, kind};
use super::replicas::Replicas;
use crate::api::TFJobStatus;
use crate::api::defaults::NormalizedSpec;

/// Whether the change from `stored` to `new` may wait for the job's other pods.
pub(super) fn may_wait(
    stored: &TFJobStatus,
    new: &TFJobStatus,
    spec: &NormalizedSpec,
    replicas: &Replicas,
) -> bool {
    !stored.conditions.is_empty() && only_progress(stored, new) && !all_started(spec, replicas)
}

/// Whether every replica has a pod that is running or done: no pod still on its way up whose
/// start could share the next status write.
fn all_started(spec: &NormalizedSpec, replicas: &Replicas) -> bool {
    spec.replicas.values().all(|r| {
        replicas
            .statuses
            .get(&r.rtype)
            .is_some_and(|s| s.active + s.succeeded + s.failed >= r.replicas)
    })
}

/// Whether `new` differs from `stored` only in how many replicas are running, succeeded or
/// failed, and possibly in the Running condition.
fn only_progress(stored: &TFJobStatus, new: &TFJobStatus) -> bool {
    if conditions::is_finished(new) {
        return false;
    }
    let without_progress = |status: &TFJobStatus| {
        let mut status = status.clone();
        status.conditions.retain(|c| c.type_ != kind::RUNNING);
        for replica in status.replica_statuses.values_mut() {
            (replica.active, replica.succeeded, replica.failed) = (0, 0, 0);
        }
        status
    };
    without_progress(stored) == without_progress(new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ReplicaStatus;
    use jiff::Timestamp;

    fn status(active: i32, restarts: i32, running: bool) -> TFJobStatus {
        let mut s = TFJobStatus::default();
        let now = Timestamp::UNIX_EPOCH;
        conditions::set(&mut s, kind::CREATED, true, "c", String::new(), now);
        if running {
            conditions::set(&mut s, kind::RUNNING, true, "r", String::new(), now);
        }
        let replica = ReplicaStatus {
            active,
            restarts,
            ..ReplicaStatus::default()
        };
        s.replica_statuses.insert("Worker".into(), replica);
        s
    }

    #[test]
    fn counts_and_running_are_progress_restarts_are_not() {
        assert!(only_progress(&status(0, 0, false), &status(1, 0, true)));
        assert!(!only_progress(&status(1, 0, true), &status(1, 1, true)));
        let mut done = status(1, 0, false);
        conditions::set(
            &mut done,
            kind::SUCCEEDED,
            true,
            "s",
            String::new(),
            Timestamp::UNIX_EPOCH,
        );
        assert!(!only_progress(&status(1, 0, true), &done));
    }
}

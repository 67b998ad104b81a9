//! Stage 6, finish: a job that has Succeeded or Failed gets its pods cleaned by
//! `cleanPodPolicy`, its books closed (active replicas of a succeeded job count as succeeded),
//! and is deleted `ttlSecondsAfterFinished` after it finished.

use kube::ResourceExt;

use super::conditions::{self, kind};
use super::limits::until;
use super::observed::phase;
use super::pass::Pass;
use super::{Change, ChildRef, Outcome};
use crate::api::CleanPodPolicy;
use crate::api::defaults::EffectiveRunPolicy;

/// Cleans a finished job's pods, closes its books and plans its TTL.
pub(super) fn finished(pass: &mut Pass<'_>, run_policy: &EffectiveRunPolicy) {
    clean_pods(pass, run_policy.clean_pod_policy);
    if conditions::is_true(&pass.status, kind::SUCCEEDED) {
        for replica in pass.status.replica_statuses.values_mut() {
            replica.succeeded += replica.active;
            replica.active = 0;
        }
    }
    ttl(pass, run_policy);
}

/// Deletes pods (and their services) by `policy`.
fn clean_pods(pass: &mut Pass<'_>, policy: CleanPodPolicy) {
    match policy {
        CleanPodPolicy::None => {}
        CleanPodPolicy::All => pass.delete_all_children(),
        CleanPodPolicy::Running => {
            let mut deletes = Vec::new();
            let unfinished = pass
                .children
                .live_pods()
                .filter(|pod| matches!(phase(pod), "Running" | "Pending"));
            for pod in unfinished {
                deletes.push(Change::DeletePod(ChildRef::of(pod)));
                if let Some(svc) = pass.children.live_service(&pod.name_any()) {
                    deletes.push(Change::DeleteService(ChildRef::of(svc)));
                }
            }
            pass.plan.changes.extend(deletes);
        }
    }
}

/// Deletes the job once `ttlSecondsAfterFinished` has passed since it finished, or looks again
/// then. A suspended job is never deleted by its TTL.
pub(super) fn ttl(pass: &mut Pass<'_>, run_policy: &EffectiveRunPolicy) {
    let Some(ttl) = run_policy.ttl_seconds_after_finished else {
        return;
    };
    if run_policy.suspend {
        return;
    }
    let finished_at = pass
        .status
        .completion_time
        .as_ref()
        .map_or(pass.now, |t| t.0);
    let expiry = finished_at
        .checked_add(jiff::SignedDuration::from_secs(i64::from(ttl)))
        .unwrap_or(jiff::Timestamp::MAX);
    if pass.now >= expiry {
        pass.plan.changes.push(Change::DeleteJob);
        pass.plan.outcomes.push(Outcome::TtlDeleted);
    } else {
        pass.plan.requeue(until(pass.now, expiry));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::builder::tfjob;
    use crate::api::defaults::effective_run_policy;
    use jiff::Timestamp;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use std::time::Duration;

    #[test]
    fn the_ttl_deletes_on_time_and_requeues_before() {
        let job = tfjob("a").workers(1).ttl_seconds_after_finished(10).build();
        let rp = effective_run_policy(&job.spec, CleanPodPolicy::Running);
        let done = Timestamp::from_second(1_000).expect("valid");
        let mut finished_job = job.clone();
        finished_job.status = Some(crate::api::TFJobStatus {
            completion_time: Some(Time(done)),
            ..Default::default()
        });
        let early = done + jiff::SignedDuration::from_secs(4);
        let mut pass = Pass::start(&finished_job, &[], &[], early);
        ttl(&mut pass, &rp);
        assert_eq!(pass.plan.requeue_after, Some(Duration::from_secs(6)));
        assert!(pass.plan.outcomes.is_empty());
        let late = done + jiff::SignedDuration::from_secs(10);
        let mut pass = Pass::start(&finished_job, &[], &[], late);
        ttl(&mut pass, &rp);
        assert_eq!(pass.plan.changes, vec![Change::DeleteJob]);
        assert_eq!(pass.plan.outcomes, vec![Outcome::TtlDeleted]);
    }
}

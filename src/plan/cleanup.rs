//! What the finalizer does when a TFJob is deleted: delete its pods and services, wait until
//! they are gone, force pods stuck on lost nodes, then let the TFJob go.

use std::sync::Arc;
use std::time::Duration;

use crate::api::{ChildPod, ChildService};
use jiff::Timestamp;
use kube::Resource;

use super::observed::{OwnedChildren, is_terminating};
use super::{Change, ChildRef, EventKind, JobEvent};

/// The finalizer that guards every TFJob this operator manages.
pub const FINALIZER: &str = "kubeflow.org/tfjob-cleanup";
/// The finalizer the API server sets for `propagationPolicy: Orphan`.
pub const ORPHAN_FINALIZER: &str = "orphan";

/// The cleanup decision for a TFJob being deleted.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CleanupPlan {
    /// Deletes to issue.
    pub changes: Vec<Change>,
    /// Warning events (forced deletions).
    pub events: Vec<JobEvent>,
    /// True when nothing of the job is left (or it is orphaning): remove the finalizer.
    pub done: bool,
    /// When to look again if no watch event arrives (force-delete deadline).
    pub requeue_after: Option<Duration>,
}

/// Decides the cleanup of a deleted TFJob with UID `uid` and finalizers `finalizers`.
/// `force_after` is how long a pod may stay terminating before it is force-deleted.
pub fn plan_cleanup(
    uid: &str,
    finalizers: &[String],
    pods: &[Arc<ChildPod>],
    services: &[Arc<ChildService>],
    now: Timestamp,
    force_after: Duration,
) -> CleanupPlan {
    let mut plan = CleanupPlan::default();
    if finalizers.iter().any(|f| f == ORPHAN_FINALIZER) {
        // The garbage collector orphans the children; we only let go of the job.
        plan.done = true;
        return plan;
    }
    let OwnedChildren { pods, services, .. } = OwnedChildren::of(uid, pods, services);
    if pods.is_empty() && services.is_empty() {
        plan.done = true;
        return plan;
    }
    for pod in pods {
        cleanup_pod(&mut plan, pod, now, force_after);
    }
    for svc in services.into_iter().filter(|s| !is_terminating(*s)) {
        plan.changes
            .push(Change::DeleteService(ChildRef::exactly(svc)));
    }
    plan
}

/// Deletes a pod (as observed: if the garbage collector orphaned it meanwhile, the delete fails
/// and the next pass sees it is not ours); one stuck terminating for `force_after` past its grace period (its node is
/// lost) is deleted with grace period 0 and a Warning, else looked at again when that time is up.
fn cleanup_pod(plan: &mut CleanupPlan, pod: &ChildPod, now: Timestamp, force_after: Duration) {
    let child = ChildRef::of(pod);
    let Some(since) = pod.meta().deletion_timestamp.as_ref() else {
        plan.changes.push(Change::DeletePod(ChildRef::exactly(pod)));
        return;
    };
    // The deletionTimestamp is when the grace period ends: time past it is time stuck.
    let stuck_ms = now
        .as_millisecond()
        .saturating_sub(since.0.as_millisecond());
    let force_ms = i64::try_from(force_after.as_millis()).unwrap_or(i64::MAX);
    match u64::try_from(force_ms.saturating_sub(stuck_ms)) {
        Ok(left_ms) if left_ms > 0 => {
            let left = Duration::from_millis(left_ms);
            plan.requeue_after = Some(super::sooner(plan.requeue_after, left));
        }
        _ => {
            plan.events.push(JobEvent {
                kind: EventKind::Warning,
                reason: "ForceDeletePod".into(),
                message: format!(
                    "Pod {} was still terminating after {}s (node lost?); deleting it with grace period 0",
                    child.name,
                    force_after.as_secs()
                ),
                related: Some(("Pod", child.name.clone())),
            });
            plan.changes.push(Change::ForceDeletePod(child));
        }
    }
}

/// The Warning for a deleted job whose children are gone but whose finalizer cannot be
/// removed, because the API server cannot reach `webhook`, an admission webhook that fails
/// closed on TFJob updates (Kueue's `vtfjob.kb.io` while Kueue is down). The job stays until
/// the webhook answers or is scoped away from jobs being deleted.
pub fn release_blocked(webhook: &str) -> JobEvent {
    JobEvent {
        kind: EventKind::Warning,
        reason: "FinalizerBlocked".into(),
        message: format!(
            "pods and services are deleted, but removing finalizer {FINALIZER} is refused: the \
             API server cannot call admission webhook \"{webhook}\", which covers TFJob updates \
             and fails closed. The TFJob is deleted once the webhook answers. For Kueue, exempt \
             TFJobs being deleted from its webhook (README, \"Using Kueue\")."
        ),
        related: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ControllerRef, Lineage};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    const UID: &str = "job-uid";

    fn now() -> Timestamp {
        Timestamp::from_second(1_800_000_000).unwrap()
    }

    fn meta(name: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            uid: Some(format!("uid-{name}")),
            resource_version: Some("7".into()),
            ..Default::default()
        }
    }

    fn owned_by(owner: &str) -> Lineage {
        Lineage {
            controller: Some(ControllerRef {
                uid: owner.into(),
                ..Default::default()
            }),
            has_owners: true,
            ..Default::default()
        }
    }

    fn pod(name: &str, owner: &str, terminating_since: Option<i64>) -> Arc<ChildPod> {
        let mut m = meta(name);
        m.deletion_timestamp =
            terminating_since.map(|s| Time(Timestamp::from_second(1_800_000_000 - s).unwrap()));
        Arc::new(ChildPod {
            metadata: m,
            lineage: owned_by(owner),
            ..Default::default()
        })
    }

    fn svc(name: &str) -> Arc<ChildService> {
        Arc::new(ChildService {
            metadata: meta(name),
            lineage: owned_by(UID),
        })
    }

    const FORCE: Duration = Duration::from_secs(30);

    #[test]
    fn a_blocked_release_names_the_webhook_and_the_way_out() {
        let e = release_blocked("vtfjob.kb.io");
        assert_eq!(
            (e.kind, e.reason.as_str()),
            (EventKind::Warning, "FinalizerBlocked")
        );
        assert!(e.message.contains("\"vtfjob.kb.io\""), "{}", e.message);
        assert!(e.message.contains(FINALIZER), "{}", e.message);
        assert!(e.message.contains("Using Kueue"), "{}", e.message);
    }

    #[test]
    fn orphan_propagation_and_no_children_release_at_once() {
        let fins = vec![FINALIZER.to_string(), ORPHAN_FINALIZER.to_string()];
        let p = plan_cleanup(
            UID,
            &fins,
            &[pod("a", UID, None)],
            &[svc("a")],
            now(),
            FORCE,
        );
        assert!(p.done && p.changes.is_empty());
        let p = plan_cleanup(UID, &[FINALIZER.into()], &[], &[], now(), FORCE);
        assert!(p.done && p.changes.is_empty());
        // Objects of another owner do not hold the job.
        let foreign = [pod("x", "other", None)];
        assert!(plan_cleanup(UID, &[], &foreign, &[], now(), FORCE).done);
    }

    #[test]
    fn children_are_deleted_and_the_job_waits() {
        let p = plan_cleanup(UID, &[], &[pod("a", UID, None)], &[svc("a")], now(), FORCE);
        assert!(!p.done);
        assert_eq!(
            p.changes,
            vec![
                Change::DeletePod(ChildRef {
                    name: "a".into(),
                    uid: Some("uid-a".into()),
                    resource_version: Some("7".into()),
                }),
                Change::DeleteService(ChildRef {
                    name: "a".into(),
                    uid: Some("uid-a".into()),
                    resource_version: Some("7".into()),
                }),
            ]
        );
    }

    #[test]
    fn pods_stuck_terminating_are_forced_after_the_grace() {
        // 10 s past its deletion time: wait the remaining 20 s.
        let p = plan_cleanup(UID, &[], &[pod("a", UID, Some(10))], &[], now(), FORCE);
        assert!(p.changes.is_empty() && !p.done);
        assert_eq!(p.requeue_after, Some(Duration::from_secs(20)));
        // 30 s past: force it, with a Warning event.
        let p = plan_cleanup(UID, &[], &[pod("a", UID, Some(30))], &[], now(), FORCE);
        assert_eq!(
            p.changes,
            vec![Change::ForceDeletePod(ChildRef {
                name: "a".into(),
                uid: Some("uid-a".into()),
                resource_version: None,
            })]
        );
        assert_eq!(p.events[0].kind, EventKind::Warning);
        assert_eq!(p.events[0].reason, "ForceDeletePod");
    }
}

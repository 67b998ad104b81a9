//! What a failed pod means under its replica's restartPolicy, and the job's restart budget
//! (`backoffLimit`): pods recreated so far plus container restarts of restartable pods.

use crate::api::ChildPod;

use super::observed::{OwnedChildren, is_retryable_exit_code, replica_of, restart_count};
use crate::api::RestartPolicy;
use crate::api::defaults::NormalizedSpec;
use crate::api::{ReplicaType, TFJobStatus};

/// The verdict on a pod in phase Failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum FailedPod {
    /// Delete it so it is recreated.
    Restart,
    /// It stays failed and counts against the job; `by_exit_code` when the ExitCode policy
    /// judged its exit code permanent (upstream words that failure differently).
    Fail {
        /// Failed because ExitCode judged the code not retryable.
        by_exit_code: bool,
    },
}

/// The verdict on a pod of a replica with `policy` whose tensorflow container exited `code`.
pub(super) fn failed_pod(policy: RestartPolicy, code: i32) -> FailedPod {
    match policy {
        RestartPolicy::Always | RestartPolicy::OnFailure => FailedPod::Restart,
        RestartPolicy::ExitCode if is_retryable_exit_code(code) => FailedPod::Restart,
        RestartPolicy::ExitCode => FailedPod::Fail { by_exit_code: true },
        RestartPolicy::Never => FailedPod::Fail {
            by_exit_code: false,
        },
    }
}

/// How many restarts the job has used and may still use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct RestartBudget {
    used: i32,
    limit: Option<i32>,
    exceeded: bool,
}

impl RestartBudget {
    /// The budget of a job with `limit` (None: unlimited): recreations recorded in its status
    /// plus container restarts of its live pods whose restartPolicy restarts them.
    pub fn of(
        status: &TFJobStatus,
        spec: &NormalizedSpec,
        children: &OwnedChildren<'_>,
        limit: Option<i32>,
    ) -> Self {
        let recreated: i32 = status.replica_statuses.values().map(|r| r.restarts).sum();
        let restarted: i32 = children
            .live_pods()
            .filter(|pod| restarts_in_place(spec, pod))
            .map(restart_count)
            .sum();
        let used = recreated.saturating_add(restarted);
        Self {
            used,
            limit,
            exceeded: limit.is_some_and(|l| used > l),
        }
    }

    /// Spends one restart if the limit allows it. A refused spend exhausts the budget.
    pub fn try_spend(&mut self) -> bool {
        let next = self.used.saturating_add(1);
        if self.limit.is_some_and(|l| next > l) {
            self.exceeded = true;
            return false;
        }
        self.used = next;
        true
    }

    /// Whether the job has used more restarts than its backoffLimit allows.
    pub fn exceeded(&self) -> bool {
        self.exceeded
    }
}

/// Whether the pod's replica restarts containers in place (anything but Never).
fn restarts_in_place(spec: &NormalizedSpec, pod: &ChildPod) -> bool {
    replica_of(pod)
        .and_then(|(rtype, _): (ReplicaType, i32)| spec.replicas.get(&rtype))
        .is_some_and(|r| r.restart_policy != RestartPolicy::Never)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_policy_by_exit_code() {
        use FailedPod::{Fail, Restart};
        use RestartPolicy::{Always, ExitCode, Never, OnFailure};
        // (policy, exit code, verdict), as upstream's status tests tabulate them.
        let table = [
            (Always, 1, Restart),
            (OnFailure, 1, Restart),
            (OnFailure, 137, Restart),
            (
                Never,
                137,
                Fail {
                    by_exit_code: false,
                },
            ),
            (
                Never,
                0,
                Fail {
                    by_exit_code: false,
                },
            ),
            (ExitCode, 1, Fail { by_exit_code: true }),
            (ExitCode, 127, Fail { by_exit_code: true }),
            (ExitCode, 128, Restart),
            (ExitCode, 137, Restart),
            (ExitCode, 143, Restart),
            (ExitCode, super::super::observed::UNKNOWN_EXIT_CODE, Restart),
        ];
        for (policy, code, verdict) in table {
            assert_eq!(failed_pod(policy, code), verdict, "{policy:?} exit {code}");
        }
    }

    #[test]
    fn the_budget_allows_exactly_the_limit() {
        let mut budget = RestartBudget {
            used: 1,
            limit: Some(2),
            exceeded: false,
        };
        assert!(budget.try_spend());
        assert!(!budget.exceeded());
        assert!(!budget.try_spend());
        assert!(budget.exceeded());
        let mut unlimited = RestartBudget {
            used: i32::MAX,
            limit: None,
            exceeded: false,
        };
        assert!(unlimited.try_spend(), "saturates, never overflows");
    }
}

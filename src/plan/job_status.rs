//! Stage 5, job status: the conditions upstream derives from the replica counts. The Chief or
//! Master decides success and Running when the job has one, else the workers do (worker 0
//! completing, or all of them under `successPolicy: AllWorkers`); a failed replica fails the
//! job; a restarted one makes it `Restarting`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::conditions::{self, kind, reason};
use super::pass::Pass;
use super::replicas::Replicas;
use super::{EventKind, Outcome};
use crate::api::defaults::NormalizedSpec;
use crate::api::{ReplicaStatus, ReplicaType, SuccessPolicy};

/// Records the replica counts in the status and sets the conditions they imply.
pub(super) fn update(pass: &mut Pass<'_>, spec: &NormalizedSpec, replicas: &Replicas) {
    for (rtype, counts) in &replicas.statuses {
        pass.status
            .replica_statuses
            .insert(rtype.canonical().to_string(), counts.clone());
    }
    if pass.status.start_time.is_none() {
        pass.status.start_time = Some(Time(pass.now));
    }
    for rtype in ReplicaType::ALL {
        let Some(replica) = spec.replicas.get(&rtype) else {
            continue;
        };
        let counts = replicas.statuses.get(&rtype).cloned().unwrap_or_default();
        if decides(spec, rtype) {
            success_or_running(pass, spec, replicas, replica.replicas, &counts);
        }
        if counts.failed > 0 && !(spec.dynamic_worker && rtype == ReplicaType::Worker) {
            failed(
                pass,
                rtype,
                &counts,
                replicas.exit_code_failures.contains(&rtype),
                replicas.causes.get(&rtype),
            );
        }
    }
    if let Some(&rtype) = replicas.restarting.first() {
        restarting(pass, rtype, replicas.causes.get(&rtype));
    }
}

/// Whether replicas of `rtype` decide the job's success and Running.
fn decides(spec: &NormalizedSpec, rtype: ReplicaType) -> bool {
    if spec.has_chief_or_master() {
        rtype.is_chief_or_master()
    } else {
        rtype == ReplicaType::Worker
    }
}

/// For the deciding replica type: `Succeeded` when it is done, else `Running` while a pod runs.
fn success_or_running(
    pass: &mut Pass<'_>,
    spec: &NormalizedSpec,
    replicas: &Replicas,
    wanted: i32,
    counts: &ReplicaStatus,
) {
    let all_done = wanted - counts.succeeded == 0;
    let succeeded = all_done
        || (!spec.has_chief_or_master()
            && replicas.worker0_completed
            && spec.success_policy != SuccessPolicy::AllWorkers);
    let now = pass.now;
    let job = pass.key();
    if succeeded {
        let message = format!("TFJob {job} successfully completed.");
        if conditions::set(
            &mut pass.status,
            kind::SUCCEEDED,
            true,
            reason::SUCCEEDED,
            message.clone(),
            now,
        ) {
            pass.status.completion_time.get_or_insert(Time(now));
            pass.plan
                .event(EventKind::Normal, reason::SUCCEEDED, message);
            pass.plan.outcomes.push(Outcome::Succeeded);
        }
    } else if let Some(taken) = replicas.blocked.first() {
        let message = format!(
            "TFJob {job} cannot run all its replicas: {} {} is controlled by {}.",
            taken.kind, taken.name, taken.owner
        );
        conditions::set(
            &mut pass.status,
            kind::RUNNING,
            false,
            reason::CHILD_CONFLICT,
            message,
            now,
        );
    } else if counts.active > 0 {
        let message = format!("TFJob {job} is running.");
        conditions::set(
            &mut pass.status,
            kind::RUNNING,
            true,
            reason::RUNNING,
            message,
            now,
        );
    }
}

/// Upstream's `message`, followed by what ended the pod (`cause`) when it is known.
fn with_cause(message: String, cause: Option<&String>) -> String {
    match cause {
        Some(cause) => format!("{message} {cause}."),
        None => message,
    }
}

/// `Failed` because replicas of `rtype` failed, with a Warning naming the replica, its pod, its
/// exit code and reason (upstream's text first, then `cause`).
fn failed(
    pass: &mut Pass<'_>,
    rtype: ReplicaType,
    counts: &ReplicaStatus,
    by_exit_code: bool,
    cause: Option<&String>,
) {
    let message = if by_exit_code {
        format!(
            "job \"{}\" is failing because \"{rtype}\" replica(s) failed.",
            pass.id.name
        )
    } else {
        format!(
            "TFJob {} has failed because {} {rtype} replica(s) failed.",
            pass.key(),
            counts.failed
        )
    };
    pass.fail(
        reason::FAILED,
        EventKind::Warning,
        with_cause(message, cause),
    );
}

/// `Restarting` because a pod of `rtype` is being recreated.
fn restarting(pass: &mut Pass<'_>, rtype: ReplicaType, cause: Option<&String>) {
    let message = format!(
        "job {} is restarting because {rtype} replica(s) failed.",
        pass.id.name
    );
    let message = with_cause(message, cause);
    let now = pass.now;
    if conditions::set(
        &mut pass.status,
        kind::RESTARTING,
        true,
        reason::RESTARTING,
        message.clone(),
        now,
    ) {
        pass.plan
            .event(EventKind::Warning, reason::RESTARTING, message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::CleanPodPolicy;
    use crate::api::builder::tfjob;
    use crate::api::defaults::normalize;
    use crate::plan::replicas::CreateBudget;
    use crate::plan::restarts::RestartBudget;
    use jiff::Timestamp;
    use std::collections::BTreeMap;

    /// Runs the stage on a job with the given counts per type; returns the last condition.
    fn last_condition(
        job: &crate::api::TFJob,
        counts: &[(ReplicaType, i32, i32, i32)],
        worker0_completed: bool,
    ) -> (String, String) {
        let spec = normalize(&job.spec, CleanPodPolicy::Running).expect("valid");
        let statuses: BTreeMap<_, _> = counts
            .iter()
            .map(|&(t, active, succeeded, failed)| {
                let status = ReplicaStatus {
                    active,
                    succeeded,
                    failed,
                    ..ReplicaStatus::default()
                };
                (t, status)
            })
            .collect();
        let mut pass = Pass::start(job, &[], &[], Timestamp::UNIX_EPOCH);
        let budget = RestartBudget::of(&pass.status, &spec, &pass.children, None);
        let mut replicas = Replicas::new(budget, CreateBudget::none());
        replicas.statuses = statuses;
        replicas.worker0_completed = worker0_completed;
        update(&mut pass, &spec, &replicas);
        let c = pass.status.conditions.last().cloned().unwrap_or_default();
        (c.type_, c.status)
    }

    #[test]
    fn who_decides_success_and_running() {
        use ReplicaType::{Chief, Ps, Worker};
        let t = |s: &str| (s.to_string(), "True".to_string());
        let chief_job = || tfjob("a").chief(1).workers(2).build();
        let workers_job = || tfjob("a").ps(1).workers(3).build();
        let all_workers = || {
            tfjob("a")
                .workers(3)
                .success_policy(SuccessPolicy::AllWorkers)
                .build()
        };
        // (job, counts (type, active, succeeded, failed), worker 0 completed, last condition)
        let table = [
            (
                chief_job(),
                vec![(Chief, 0, 1, 0), (Worker, 2, 0, 0)],
                false,
                t("Succeeded"),
            ),
            (
                chief_job(),
                vec![(Chief, 1, 0, 0), (Worker, 0, 2, 0)],
                true,
                t("Running"),
            ),
            (
                chief_job(),
                vec![(Chief, 1, 0, 0), (Worker, 1, 0, 1)],
                false,
                t("Failed"),
            ),
            (
                workers_job(),
                vec![(Ps, 1, 0, 0), (Worker, 2, 1, 0)],
                true,
                t("Succeeded"),
            ),
            (
                workers_job(),
                vec![(Ps, 1, 0, 0), (Worker, 3, 0, 0)],
                false,
                t("Running"),
            ),
            (
                workers_job(),
                vec![(Ps, 0, 0, 1), (Worker, 3, 0, 0)],
                false,
                t("Failed"),
            ),
            (all_workers(), vec![(Worker, 2, 1, 0)], true, t("Running")),
            (all_workers(), vec![(Worker, 0, 3, 0)], true, t("Succeeded")),
        ];
        for (i, (job, counts, worker0, expected)) in table.into_iter().enumerate() {
            assert_eq!(last_condition(&job, &counts, worker0), expected, "row {i}");
        }
    }
}

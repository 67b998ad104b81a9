//! The reconcile decision for one TFJob, as a pipeline of named stages (upstream's
//! ReconcileJobs / ReconcilePods / UpdateJobStatus, minus its known bugs). Each stage lives in
//! its own module and is tested there; `pipeline_tests.rs` runs whole scenarios through here.

use std::sync::Arc;

use crate::api::{ChildPod, ChildService};
use jiff::Timestamp;
use kube::ResourceExt;

use super::pass::Pass;
use super::restarts::RestartBudget;
use super::{Plan, PlanConfig};
use super::{
    accept, batching, conditions, finish, gang, job_status, limits, replicas, suspend, waiting,
};
use crate::api::TFJob;
use crate::api::defaults::effective_run_policy;
use crate::api::podgroup::ObservedPodGroup;

/// Decides what to do for `job`, given the pods and services observed with its labels (and no
/// PodGroup: see [`plan_with_pod_group`]).
pub fn plan(
    job: &TFJob,
    pods: &[Arc<ChildPod>],
    services: &[Arc<ChildService>],
    now: Timestamp,
    cfg: &PlanConfig,
) -> Plan {
    plan_with_pod_group(job, pods, services, None, now, cfg)
}

/// Decides what to do for `job`, given the pods and services observed with its labels and,
/// with gang scheduling, the PodGroup of its name.
pub fn plan_with_pod_group(
    job: &TFJob,
    pods: &[Arc<ChildPod>],
    services: &[Arc<ChildService>],
    pod_group: Option<&ObservedPodGroup>,
    now: Timestamp,
    cfg: &PlanConfig,
) -> Plan {
    let run_policy = effective_run_policy(&job.spec, cfg.default_clean_pod_policy);
    if run_policy.managed_elsewhere() {
        // Another controller (e.g. MultiKueue) owns this job: hands off, no status.
        return Plan::default();
    }
    let mut pass = Pass::start(job, pods, services, now);
    accept::first_look(&mut pass, &job.spec, &run_policy);
    let Some(spec) = accept::runnable_spec(&mut pass, &job.spec, cfg) else {
        return pass.into_plan(false);
    };
    pass.track_replica_types(&spec);
    pass.adopt_orphans();
    if conditions::is_finished(&pass.status) {
        finish::finished(&mut pass, &run_policy);
        gang::remove(&mut pass, pod_group);
        return pass.into_plan(false);
    }
    if run_policy.suspend {
        gang::remove(&mut pass, pod_group);
        let queue = job.labels().get(suspend::KUEUE_QUEUE_LABEL);
        suspend::suspend(
            &mut pass,
            job.spec.tf_replica_specs.keys(),
            queue.map(String::as_str),
        );
        return pass.into_plan(false);
    }
    suspend::resume_if_suspended(&mut pass);

    let budget = RestartBudget::of(
        &pass.status,
        &spec,
        &pass.children,
        run_policy.backoff_limit,
    );
    let mut replicas = replicas::reconcile(&pass, &spec, cfg, budget);
    let deadline = limits::deadline(&run_policy, &pass.status);
    if let Some(limit) = limits::exceeded(replicas.budget.exceeded(), deadline, now) {
        limits::fail(&mut pass, limit);
        finish::finished(&mut pass, &run_policy);
        gang::remove(&mut pass, pod_group);
        return pass.into_plan(false);
    }
    if let Some(at) = deadline {
        pass.plan.requeue(limits::until(now, at));
    }
    pass.take_decisions_of(&mut replicas);
    job_status::update(&mut pass, &spec, &replicas);
    if conditions::is_finished(&pass.status) {
        // Finished in this pass: nothing new is created for it (a replica missing because an
        // earlier pass cleaned it up just before a crash stays missing), and it is cleaned up
        // and its books closed now rather than in another reconcile (one status write fewer).
        pass.plan.changes.retain(|a| !a.is_create());
        finish::finished(&mut pass, &run_policy);
        gang::remove(&mut pass, pod_group);
        return pass.into_plan(false);
    }
    let gang_wait = gang::live(&mut pass, &spec, job, cfg, pod_group);
    let announced = waiting::explain(&mut pass, gang_wait);
    let may_wait = !announced && batching::may_wait(&pass.stored, &pass.status, &spec, &replicas);
    pass.into_plan(may_wait)
}

#[cfg(test)]
#[path = "pipeline_tests.rs"]
mod tests;

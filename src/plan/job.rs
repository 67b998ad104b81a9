//! The reconcile decision for one TFJob: upstream's ReconcileJobs / ReconcilePods /
//! UpdateJobStatus, minus its known bugs (see the module docs of each step).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

use super::children::{JobIdentity, desired_pod, desired_service};
use super::conditions::{self, kind, reason};
use super::observed::{
    controlled_by, exit_code, is_retryable_exit_code, is_terminating, phase, replica_of,
    restart_count,
};
use super::{Action, ChildRef, EventKind, Plan, PlanConfig};
use crate::api::defaults::{EffectiveRunPolicy, NormalizedSpec, effective_run_policy, normalize};
use crate::api::{
    CleanPodPolicy, ReplicaStatus, ReplicaType, RestartPolicy, SuccessPolicy, TFJob, TFJobStatus,
};

fn until(now: Timestamp, at: Timestamp) -> Duration {
    let secs = at.as_millisecond() - now.as_millisecond();
    Duration::from_millis(secs.max(0) as u64)
}

/// The job's own objects (controlled by its UID), split out of the observed pods and services.
pub(super) struct Children<'a> {
    pub(super) pods: Vec<&'a Pod>,
    pub(super) services: Vec<&'a Service>,
}

impl<'a> Children<'a> {
    pub(super) fn new(uid: &str, pods: &'a [Arc<Pod>], services: &'a [Arc<Service>]) -> Self {
        Self {
            pods: pods
                .iter()
                .map(|p| p.as_ref())
                .filter(|p| controlled_by(*p, uid))
                .collect(),
            services: services
                .iter()
                .map(|s| s.as_ref())
                .filter(|s| controlled_by(*s, uid))
                .collect(),
        }
    }

    fn delete_all(&self, plan: &mut Plan) {
        for p in self.pods.iter().filter(|p| !is_terminating(**p)) {
            plan.actions.push(Action::DeletePod(ChildRef::of(*p)));
        }
        for s in self.services.iter().filter(|s| !is_terminating(**s)) {
            plan.actions.push(Action::DeleteService(ChildRef::of(*s)));
        }
    }

    fn service_named(&self, name: &str) -> Option<&'a Service> {
        self.services
            .iter()
            .copied()
            .find(|s| s.name_any() == name && !is_terminating(*s))
    }
}

/// Decides what to do for `job`, given the pods and services observed with its labels.
pub fn plan(
    job: &TFJob,
    pods: &[Arc<Pod>],
    services: &[Arc<Service>],
    now: Timestamp,
    cfg: &PlanConfig,
) -> Plan {
    let mut p = Plan::default();
    let run_policy = effective_run_policy(&job.spec, cfg.default_clean_pod_policy);
    if run_policy.managed_elsewhere() {
        // Another controller (e.g. MultiKueue) owns this job: hands off, no status.
        return p;
    }
    let id = JobIdentity {
        name: job.name_any(),
        namespace: job.namespace().unwrap_or_default(),
        uid: job.uid().unwrap_or_default(),
    };
    let old = job.status.clone().unwrap_or_default();
    let mut st = old.clone();

    if st.conditions.is_empty() {
        conditions::set(
            &mut st,
            kind::CREATED,
            true,
            reason::CREATED,
            format!("TFJob {} is created.", id.name),
            now,
        );
        let overridden: Vec<&str> = job
            .spec
            .tf_replica_specs
            .iter()
            .filter(|(_, rs)| {
                rs.template
                    .as_ref()
                    .and_then(|t| t.spec.as_ref())
                    .is_some_and(|s| s.restart_policy.is_some())
            })
            .map(|(key, _)| key.as_str())
            .collect();
        if !overridden.is_empty() {
            p.event(
                EventKind::Warning,
                "SetPodTemplateRestartPolicy",
                format!(
                    "Restart policy in pod template will be overwritten by restart policy in replica spec ({})",
                    overridden.join(", ")
                ),
            );
        }
        for field in &run_policy.overridden_legacy_fields {
            p.event(
                EventKind::Warning,
                "LegacyFieldIgnored",
                format!(
                    "{field} is ignored because spec.runPolicy sets the same field; remove one of them"
                ),
            );
        }
    }

    let spec = match normalize(&job.spec, cfg.default_clean_pod_policy) {
        Ok(spec) => spec,
        Err(e) => {
            let msg = format!(
                "TFJob {}/{} has an invalid spec: {e}",
                id.namespace, id.name
            );
            if conditions::set(
                &mut st,
                kind::FAILED,
                true,
                reason::INVALID_SPEC,
                msg.clone(),
                now,
            ) {
                st.completion_time.get_or_insert(Time(now));
                p.event(EventKind::Warning, reason::INVALID_SPEC, msg);
            }
            p.status = (st != old).then_some(st);
            return p;
        }
    };
    let children = Children::new(&id.uid, pods, services);
    for t in spec.replicas.keys() {
        st.replica_statuses
            .entry(t.canonical().to_string())
            .or_default();
    }

    if conditions::is_finished(&st) {
        finished(&mut p, &mut st, &spec, &children, now);
        p.status = (st != old).then_some(st);
        return p;
    }

    if run_policy.suspend {
        children.delete_all(&mut p);
        for rs in st.replica_statuses.values_mut() {
            rs.active = 0;
        }
        let msg = format!("TFJob {} is suspended.", id.name);
        if conditions::is_true(&st, kind::RUNNING) {
            conditions::set(
                &mut st,
                kind::RUNNING,
                false,
                reason::SUSPENDED,
                msg.clone(),
                now,
            );
        }
        if !conditions::is_true(&st, kind::SUSPENDED)
            && conditions::set(
                &mut st,
                kind::SUSPENDED,
                true,
                reason::SUSPENDED,
                msg.clone(),
                now,
            )
        {
            p.event(EventKind::Normal, reason::SUSPENDED, msg);
        }
        p.status = (st != old).then_some(st);
        return p;
    }
    if conditions::is_true(&st, kind::SUSPENDED) {
        let msg = format!("TFJob {} is resumed.", id.name);
        conditions::set(
            &mut st,
            kind::SUSPENDED,
            false,
            reason::RESUMED,
            msg.clone(),
            now,
        );
        st.start_time = Some(Time(now));
        p.event(EventKind::Normal, reason::RESUMED, msg);
    }

    // Replica pods and services, counting what we see.
    let mut pass = reconcile_replicas(&id, &spec, &run_policy, &children, &st, cfg);

    // Limits: the restart budget and the active deadline, both enforced without waiting for
    // another event (the deadline is requeued below).
    let deadline = run_policy
        .active_deadline_seconds
        .zip(st.start_time.as_ref())
        .map(|(secs, start)| {
            start
                .0
                .checked_add(jiff::SignedDuration::from_secs(secs))
                .unwrap_or(Timestamp::MAX)
        });
    let past_deadline = deadline.is_some_and(|d| now >= d);
    if pass.past_backoff_limit || past_deadline {
        st.completion_time.get_or_insert(Time(now));
        children.delete_all(&mut p);
        let msg = if pass.past_backoff_limit {
            format!(
                "Job {} has failed because it has reached the specified backoff limit",
                id.name
            )
        } else {
            format!(
                "Job {} has failed because it was active longer than specified deadline",
                id.name
            )
        };
        for rs in st.replica_statuses.values_mut() {
            rs.active = 0;
        }
        if conditions::set(
            &mut st,
            kind::FAILED,
            true,
            reason::FAILED,
            msg.clone(),
            now,
        ) {
            p.event(EventKind::Normal, reason::FAILED, msg);
        }
        ttl(&mut p, &st, &run_policy, now);
        p.status = (st != old).then_some(st);
        return p;
    }
    if let Some(d) = deadline {
        p.requeue(until(now, d));
    }

    p.actions.append(&mut pass.actions);
    p.events.append(&mut pass.events);
    for (t, rs) in &pass.statuses {
        st.replica_statuses
            .insert(t.canonical().to_string(), rs.clone());
    }
    update_job_status(&mut p, &mut st, &id, &spec, &pass, now);
    if conditions::is_finished(&st) {
        // Finished in this pass: clean up and close the books now rather than in another
        // reconcile (one status write fewer per job).
        finished(&mut p, &mut st, &spec, &children, now);
    }
    if st != old {
        p.status_may_wait =
            !old.conditions.is_empty() && only_progress(&old, &st) && !all_started(&spec, &pass);
        p.status = Some(st);
    }
    p
}

/// Whether every replica has a pod that is running or done: no pod still on its way up whose
/// start could share the next status write.
fn all_started(spec: &NormalizedSpec, pass: &ReplicaPass) -> bool {
    spec.replicas.values().all(|r| {
        pass.statuses
            .get(&r.rtype)
            .is_some_and(|rs| rs.active + rs.succeeded + rs.failed >= r.replicas)
    })
}

/// Whether `new` differs from `old` only in how many replicas are running, succeeded or failed,
/// and possibly in the Running condition: progress that may be batched with what follows, as
/// opposed to restarts, failures and completion, which are written at once.
fn only_progress(old: &TFJobStatus, new: &TFJobStatus) -> bool {
    if conditions::is_finished(new) {
        return false;
    }
    let without_progress = |st: &TFJobStatus| {
        let mut st = st.clone();
        st.conditions.retain(|c| c.type_ != kind::RUNNING);
        for rs in st.replica_statuses.values_mut() {
            (rs.active, rs.succeeded, rs.failed) = (0, 0, 0);
        }
        st
    };
    without_progress(old) == without_progress(new)
}

/// Result of one pass over the replicas.
#[derive(Default)]
struct ReplicaPass {
    actions: Vec<Action>,
    events: Vec<super::JobEvent>,
    statuses: BTreeMap<ReplicaType, ReplicaStatus>,
    /// Types with a pod being recreated after a retryable failure.
    restarting: Vec<ReplicaType>,
    /// Types with a pod that failed with a non-retryable code under ExitCode.
    exit_code_failures: Vec<ReplicaType>,
    /// Whether worker 0 completed with exit code 0.
    worker0_completed: bool,
    past_backoff_limit: bool,
}

fn reconcile_replicas(
    id: &JobIdentity,
    spec: &NormalizedSpec,
    run_policy: &EffectiveRunPolicy,
    children: &Children<'_>,
    st: &TFJobStatus,
    cfg: &PlanConfig,
) -> ReplicaPass {
    let mut pass = ReplicaPass {
        worker0_completed: !spec.replicas.contains_key(&ReplicaType::Worker),
        ..Default::default()
    };
    // Restart budget: recreations so far plus in-place container restarts.
    let mut restarts: i32 = st.replica_statuses.values().map(|rs| rs.restarts).sum();
    for pod in &children.pods {
        let restartable = replica_of(*pod)
            .and_then(|(t, _)| spec.replicas.get(&t))
            .is_some_and(|r| r.restart_policy != RestartPolicy::Never);
        if restartable && !is_terminating(*pod) {
            restarts += restart_count(pod);
        }
    }
    let limit = run_policy.backoff_limit;
    if limit.is_some_and(|l| restarts > l) {
        pass.past_backoff_limit = true;
    }

    for replica in spec.replicas.values() {
        let t = replica.rtype;
        let mut rs = ReplicaStatus {
            restarts: st
                .replica_statuses
                .get(t.canonical())
                .map(|r| r.restarts)
                .unwrap_or(0),
            ..Default::default()
        };
        let mut by_index: BTreeMap<i32, Vec<&Pod>> = BTreeMap::new();
        for pod in &children.pods {
            if let Some((pt, i)) = replica_of(*pod)
                && pt == t
            {
                by_index.entry(i).or_default().push(pod);
            }
        }
        for index in 0..replica.replicas {
            if !by_index.contains_key(&index) {
                pass.actions.push(Action::CreatePod(Box::new(desired_pod(
                    id,
                    spec,
                    replica,
                    index,
                    cfg.cluster_domain.as_deref(),
                ))));
            }
        }
        for (&index, pods) in &by_index {
            // Names are deterministic, so there is at most one pod per index.
            let Some(pod) = pods.first().copied() else {
                continue;
            };
            if is_terminating(pod) {
                // Going away: neither active nor failed (upstream counts it as failed, #2124).
                continue;
            }
            if index >= replica.replicas {
                pass.actions.push(Action::DeletePod(ChildRef::of(pod)));
                continue;
            }
            match phase(pod) {
                "Running" => rs.active += 1,
                "Succeeded" => {
                    rs.succeeded += 1;
                    if t == ReplicaType::Worker && index == 0 && exit_code(pod) == 0 {
                        pass.worker0_completed = true;
                    }
                }
                "Failed" => {
                    let code = exit_code(pod);
                    let retry = match replica.restart_policy {
                        RestartPolicy::Always | RestartPolicy::OnFailure => true,
                        RestartPolicy::ExitCode => is_retryable_exit_code(code),
                        RestartPolicy::Never => false,
                    };
                    pass.events.push(super::JobEvent {
                        kind: EventKind::Normal,
                        reason: "ExitedWithCode".into(),
                        message: format!(
                            "Pod: {}.{} exited with code {code}",
                            id.namespace,
                            pod.name_any()
                        ),
                        related: Some(("Pod", pod.name_any())),
                    });
                    if retry && limit.is_some_and(|l| restarts + 1 > l) {
                        pass.past_backoff_limit = true;
                        rs.failed += 1;
                    } else if retry {
                        restarts += 1;
                        rs.restarts += 1;
                        pass.actions.push(Action::DeletePod(ChildRef::of(pod)));
                        if !pass.restarting.contains(&t) {
                            pass.restarting.push(t);
                        }
                    } else {
                        rs.failed += 1;
                        if replica.restart_policy == RestartPolicy::ExitCode {
                            pass.exit_code_failures.push(t);
                        }
                    }
                }
                _ => {}
            }
        }
        // Services: one per index; never updated, deleted on scale-down.
        let mut have: BTreeMap<i32, bool> = BTreeMap::new();
        for svc in &children.services {
            if let Some((st_, i)) = replica_of(*svc)
                && st_ == t
            {
                have.insert(i, true);
                if i >= replica.replicas && !is_terminating(*svc) {
                    pass.actions.push(Action::DeleteService(ChildRef::of(*svc)));
                }
            }
        }
        for index in 0..replica.replicas {
            if !have.contains_key(&index) {
                pass.actions
                    .push(Action::CreateService(Box::new(desired_service(
                        id, replica, index,
                    ))));
            }
        }
        pass.statuses.insert(t, rs);
    }
    pass
}

fn update_job_status(
    p: &mut Plan,
    st: &mut TFJobStatus,
    id: &JobIdentity,
    spec: &NormalizedSpec,
    pass: &ReplicaPass,
    now: Timestamp,
) {
    if st.start_time.is_none() {
        st.start_time = Some(Time(now));
    }
    let job = format!("{}/{}", id.namespace, id.name);
    let has_chief = spec.has_chief_or_master();
    for t in ReplicaType::ALL {
        let Some(replica) = spec.replicas.get(&t) else {
            continue;
        };
        let rs = pass.statuses.get(&t).cloned().unwrap_or_default();
        let expected = replica.replicas - rs.succeeded;
        let decides = if has_chief {
            t.is_chief_or_master()
        } else {
            t == ReplicaType::Worker
        };
        if decides {
            let succeeded = if has_chief {
                expected == 0
            } else {
                expected == 0
                    || (pass.worker0_completed && spec.success_policy != SuccessPolicy::AllWorkers)
            };
            if succeeded {
                let msg = format!("TFJob {job} successfully completed.");
                if conditions::set(
                    st,
                    kind::SUCCEEDED,
                    true,
                    reason::SUCCEEDED,
                    msg.clone(),
                    now,
                ) {
                    st.completion_time.get_or_insert(Time(now));
                    p.event(EventKind::Normal, reason::SUCCEEDED, msg);
                }
            } else if rs.active > 0 {
                conditions::set(
                    st,
                    kind::RUNNING,
                    true,
                    reason::RUNNING,
                    format!("TFJob {job} is running."),
                    now,
                );
            }
        }
        if rs.failed > 0 {
            if spec.dynamic_worker && t == ReplicaType::Worker {
                continue;
            }
            let msg = if pass.exit_code_failures.contains(&t) {
                format!(
                    "job \"{}\" is failing because \"{}\" replica(s) failed.",
                    id.name, t
                )
            } else {
                format!(
                    "TFJob {job} has failed because {} {t} replica(s) failed.",
                    rs.failed
                )
            };
            if conditions::set(st, kind::FAILED, true, reason::FAILED, msg.clone(), now) {
                st.completion_time.get_or_insert(Time(now));
                let k = if pass.exit_code_failures.contains(&t) {
                    EventKind::Warning
                } else {
                    EventKind::Normal
                };
                p.event(k, reason::FAILED, msg);
            }
        }
    }
    if let Some(t) = pass.restarting.first() {
        let msg = format!(
            "job {} is restarting because {} replica(s) failed.",
            id.name, t
        );
        if conditions::set(
            st,
            kind::RESTARTING,
            true,
            reason::RESTARTING,
            msg.clone(),
            now,
        ) {
            p.event(EventKind::Warning, reason::RESTARTING, msg);
        }
    }
}

/// A finished job: clean pods by policy, close the books, then the TTL.
fn finished(
    p: &mut Plan,
    st: &mut TFJobStatus,
    spec: &NormalizedSpec,
    children: &Children<'_>,
    now: Timestamp,
) {
    match spec.run_policy.clean_pod_policy {
        CleanPodPolicy::None => {}
        CleanPodPolicy::All => children.delete_all(p),
        CleanPodPolicy::Running => {
            for pod in children.pods.iter().filter(|p| !is_terminating(**p)) {
                if matches!(phase(pod), "Running" | "Pending") {
                    p.actions.push(Action::DeletePod(ChildRef::of(*pod)));
                    if let Some(svc) = children.service_named(&pod.name_any()) {
                        p.actions.push(Action::DeleteService(ChildRef::of(svc)));
                    }
                }
            }
        }
    }
    if conditions::is_true(st, kind::SUCCEEDED) {
        for rs in st.replica_statuses.values_mut() {
            rs.succeeded += rs.active;
            rs.active = 0;
        }
    }
    ttl(p, st, &spec.run_policy, now);
}

fn ttl(p: &mut Plan, st: &TFJobStatus, rp: &EffectiveRunPolicy, now: Timestamp) {
    let Some(ttl) = rp.ttl_seconds_after_finished else {
        return;
    };
    if rp.suspend {
        return;
    }
    let done = st.completion_time.as_ref().map(|t| t.0).unwrap_or(now);
    let expiry = done
        .checked_add(jiff::SignedDuration::from_secs(i64::from(ttl)))
        .unwrap_or(Timestamp::MAX);
    if now >= expiry {
        p.actions.push(Action::DeleteJob);
    } else {
        p.requeue(until(now, expiry));
    }
}

#[cfg(test)]
#[path = "job_tests.rs"]
mod tests;

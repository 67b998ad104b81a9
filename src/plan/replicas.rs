//! Stage 3, replicas: for each replica type, the pods and services it should have against
//! those observed — create what is missing, delete what scaled away, restart what failed
//! (as [`super::restarts`] decides) — and count active, succeeded and failed replicas.

use std::cell::OnceCell;
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;

use crate::api::ChildPod;
use kube::ResourceExt;

use super::desired::{desired_pod, desired_service};
use super::gang;
use super::observed::{Foreign, exit_code, is_terminating, phase, replica_and_pod};
use super::pass::Pass;
use super::restarts::{FailedPod, RestartBudget, failed_pod};
use super::tf_config::{ClusterSpec, JobAddress, is_distributed};
use super::{Change, ChildRef, EventKind, JobEvent, PlanConfig};
use crate::api::defaults::{NormalizedSpec, Replica};
use crate::api::labels::replica_name;
use crate::api::{ReplicaStatus, ReplicaType, RestartPolicy};

/// What the pass over the replicas found and decided.
pub(super) struct Replicas {
    /// Creates and deletes of pods and services.
    pub changes: Vec<Change>,
    /// `ExitedWithCode` events of failed pods.
    pub events: Vec<JobEvent>,
    /// Counts per replica type (restarts included).
    pub statuses: BTreeMap<ReplicaType, ReplicaStatus>,
    /// Replica types with a pod deleted to be recreated, in order.
    pub restarting: Vec<ReplicaType>,
    /// Pods deleted to be recreated.
    pub restarted_pods: u32,
    /// Replica types with a pod that ExitCode judged permanently failed.
    pub exit_code_failures: Vec<ReplicaType>,
    /// Whether worker 0 completed with exit code 0 (true when the job has no workers).
    pub worker0_completed: bool,
    /// The restart budget after this pass.
    pub budget: RestartBudget,
    /// What this pass may still create.
    pub creates: CreateBudget,
    /// The job's cluster for `TF_CONFIG`, built by the first pod create of the pass.
    cluster: OnceCell<Option<ClusterSpec>>,
    /// Objects holding a name the job needs, controlled by something else.
    pub blocked: Vec<Foreign>,
    /// What ended the first failed (or disrupted) pod of each replica type, in words
    /// ([`failure_cause`]): the condition messages name it.
    pub causes: BTreeMap<ReplicaType, String>,
}

impl Replicas {
    /// Nothing found or decided yet, with these budgets.
    pub fn new(budget: RestartBudget, creates: CreateBudget) -> Self {
        Self {
            changes: Vec::new(),
            events: Vec::new(),
            statuses: BTreeMap::new(),
            restarting: Vec::new(),
            restarted_pods: 0,
            exit_code_failures: Vec::new(),
            worker0_completed: true,
            budget,
            creates,
            cluster: OnceCell::new(),
            blocked: Vec::new(),
            causes: BTreeMap::new(),
        }
    }

    /// Whether the name of `kind` `index` of `replica` is free to create; if another
    /// controller's object holds it, a Warning says so and the object is left alone.
    fn name_free(&mut self, pass: &Pass<'_>, kind: &str, replica: &Replica, index: i32) -> bool {
        if pass.children.foreign.is_empty() {
            return true;
        }
        let name = replica_name(&pass.id.name, replica.rtype, index);
        let Some(taken) = pass
            .children
            .foreign
            .iter()
            .find(|f| f.kind == kind && f.name == name)
        else {
            return true;
        };
        self.events.push(JobEvent {
            kind: EventKind::Warning,
            reason: format!("FailedCreate{kind}"),
            message: format!(
                "{kind} {}/{name} already exists and is controlled by {}; it is left alone: delete it, or rename this TFJob, so the job can create its own",
                pass.id.namespace, taken.owner
            ),
            related: Some((taken.kind, name)),
        });
        self.blocked.push(taken.clone());
        false
    }
}

/// How much one pass may still create: at most `max_creates_per_pass` objects and, counting
/// each pod's template and `TF_CONFIG`, `max_create_bytes_per_pass` bytes (the first create of
/// a pass is always allowed). Desired pods of a pass are all held until they are sent, and a
/// 10,000-worker job's `TF_CONFIG` alone is ~330 KB per pod.
#[derive(Clone, Copy, Debug)]
pub(super) struct CreateBudget {
    objects: usize,
    bytes: usize,
    first: bool,
}

impl CreateBudget {
    /// The budget of one pass under `cfg`.
    pub fn of(cfg: &PlanConfig) -> Self {
        Self {
            objects: cfg.max_creates_per_pass,
            bytes: cfg.max_create_bytes_per_pass,
            first: true,
        }
    }

    /// A budget that allows nothing.
    #[cfg(test)]
    pub fn none() -> Self {
        Self {
            objects: 0,
            bytes: 0,
            first: false,
        }
    }

    /// Whether nothing more may be created.
    pub fn is_spent(&self) -> bool {
        self.objects == 0
    }

    /// Takes one object of `bytes` from the budget, if it allows it.
    fn take(&mut self, bytes: usize) -> bool {
        let fits = self.first || bytes <= self.bytes;
        if self.objects == 0 || !fits {
            self.objects = 0;
            return false;
        }
        self.objects -= 1;
        self.bytes = self.bytes.saturating_sub(bytes);
        self.first = false;
        true
    }
}

/// Reconciles every replica type of `spec` against what `pass` observed.
pub(super) fn reconcile(
    pass: &Pass<'_>,
    spec: &NormalizedSpec,
    cfg: &PlanConfig,
    budget: RestartBudget,
) -> Replicas {
    let mut out = Replicas::new(budget, CreateBudget::of(cfg));
    out.worker0_completed = !spec.replicas.contains_key(&ReplicaType::Worker);
    for replica in spec.replicas.values() {
        let status = reconcile_pods(&mut out, pass, spec, replica, cfg);
        reconcile_services(&mut out, pass, replica);
        out.statuses.insert(replica.rtype, status);
    }
    out
}

/// Creates missing pods of `replica`, deletes those past its count, and counts the rest.
fn reconcile_pods(
    out: &mut Replicas,
    pass: &Pass<'_>,
    spec: &NormalizedSpec,
    replica: &Replica,
    cfg: &PlanConfig,
) -> ReplicaStatus {
    let rtype = replica.rtype;
    let stored_restarts = pass
        .status
        .replica_statuses
        .get(rtype.canonical())
        .map_or(0, |r| r.restarts);
    let mut status = ReplicaStatus {
        restarts: stored_restarts,
        ..ReplicaStatus::default()
    };
    let pods = pass.children.pods_of(rtype);
    let missing = (0..replica.replicas).filter(|i| !pods.contains_key(i));
    let mut template_bytes = None;
    for index in missing {
        if out.creates.is_spent() {
            break;
        }
        if !out.name_free(pass, "Pod", replica, index) {
            continue;
        }
        let cluster = out
            .cluster
            .get_or_init(|| cluster_of(pass, spec, cfg))
            .as_ref();
        let mut pod = desired_pod(&pass.id, spec, replica, index, cluster);
        if let Some(scheduler) = &cfg.gang {
            gang::decorate(&mut pod, scheduler, &pass.id.name, replica.rtype);
        }
        let template = *template_bytes.get_or_insert_with(|| json_len(&replica.template));
        if out.creates.take(template + tf_config_len(&pod)) {
            out.changes.push(Change::CreatePod(Box::new(pod)));
        }
    }
    for (&index, &pod) in &pods {
        if is_terminating(pod) {
            // Going away: neither active nor failed (upstream counts it as failed, #2124).
            continue;
        }
        if index >= replica.replicas {
            out.changes.push(Change::DeletePod(ChildRef::of(pod)));
            continue;
        }
        count_pod(out, &mut status, pass, replica, index, pod);
    }
    status
}

/// Counts one live pod of `replica` by its phase; a failed pod is restarted or counted failed.
fn count_pod(
    out: &mut Replicas,
    status: &mut ReplicaStatus,
    pass: &Pass<'_>,
    replica: &Replica,
    index: i32,
    pod: &ChildPod,
) {
    match phase(pod) {
        "Running" => status.active += 1,
        "Succeeded" => {
            status.succeeded += 1;
            if replica.rtype == ReplicaType::Worker && index == 0 && exit_code(pod) == 0 {
                out.worker0_completed = true;
            }
        }
        "Failed" => failed(out, status, pass, replica, pod),
        _ => {}
    }
}

/// A pod in phase Failed: an `ExitedWithCode` event, then a restart if the policy and the
/// budget allow it, else a failed replica. A disrupted pod is recreated without spending the
/// budget, unless its replica's policy is Never ([`disrupted`]).
fn failed(
    out: &mut Replicas,
    status: &mut ReplicaStatus,
    pass: &Pass<'_>,
    replica: &Replica,
    pod: &ChildPod,
) {
    out.causes
        .entry(replica.rtype)
        .or_insert_with(|| failure_cause(pod));
    if let Some(why) = &pod.state.disrupted
        && replica.restart_policy != RestartPolicy::Never
    {
        disrupted(out, pass, replica, pod, why);
        return;
    }
    let code = exit_code(pod);
    let name = pod.name_any();
    out.events.push(JobEvent {
        kind: EventKind::Normal,
        reason: "ExitedWithCode".into(),
        message: format!("Pod: {}.{name} exited with code {code}", pass.id.namespace),
        related: Some(("Pod", name)),
    });
    match failed_pod(replica.restart_policy, code) {
        FailedPod::Restart if out.budget.try_spend() => {
            status.restarts += 1;
            out.restarted_pods += 1;
            out.changes.push(Change::DeletePod(ChildRef::of(pod)));
            if !out.restarting.contains(&replica.rtype) {
                out.restarting.push(replica.rtype);
            }
        }
        // Over the backoff limit: the limits stage fails the job.
        FailedPod::Restart => status.failed += 1,
        FailedPod::Fail { by_exit_code } => {
            status.failed += 1;
            if by_exit_code {
                out.exit_code_failures.push(replica.rtype);
            }
        }
    }
}

/// What ended a failed pod, in the words users look for: "Worker 1 (pod mnist-worker-1)
/// exited with code 137 (OOMKilled)", "PS 0 (pod mnist-ps-0) was disrupted (Evicted)".
pub(super) fn failure_cause(pod: &ChildPod) -> String {
    let who = replica_and_pod(pod);
    if let Some(why) = &pod.state.disrupted {
        return format!("{who} was disrupted ({why})");
    }
    match (pod.state.exit_code, pod.state.exit_reason.as_deref()) {
        (Some(code), Some(reason)) => format!("{who} exited with code {code} ({reason})"),
        (Some(code), None) => format!("{who} exited with code {code}"),
        (None, Some(reason)) => format!("{who} failed ({reason})"),
        (None, None) => format!("{who} failed"),
    }
}

/// A pod that ended because it was disrupted (evicted, preempted, its node shut down or
/// lost): recreated, with a Warning that says so, and not counted towards `backoffLimit` or in
/// `restarts` — the program did not fail. Under `Never` a disrupted pod fails its replica as
/// any failed pod does: Never is the policy that promises a replica never runs twice.
fn disrupted(out: &mut Replicas, pass: &Pass<'_>, replica: &Replica, pod: &ChildPod, why: &str) {
    let name = pod.name_any();
    out.events.push(JobEvent {
        kind: EventKind::Warning,
        reason: "PodDisrupted".into(),
        message: format!(
            "Pod: {}.{name} was disrupted ({why}); recreating it (disruptions do not count \
             towards backoffLimit)",
            pass.id.namespace
        ),
        related: Some(("Pod", name)),
    });
    out.changes.push(Change::DeletePod(ChildRef::of(pod)));
    if !out.restarting.contains(&replica.rtype) {
        out.restarting.push(replica.rtype);
    }
}

/// One headless service per index: created when missing, deleted past the replica count,
/// never updated.
fn reconcile_services(out: &mut Replicas, pass: &Pass<'_>, replica: &Replica) {
    let services = pass.children.services_of(replica.rtype);
    for (&index, &svc) in &services {
        if index >= replica.replicas && !is_terminating(svc) {
            out.changes.push(Change::DeleteService(ChildRef::of(svc)));
        }
    }
    let missing = (0..replica.replicas).filter(|i| !services.contains_key(i));
    for index in missing {
        if out.creates.is_spent() {
            break;
        }
        if out.name_free(pass, "Service", replica, index) && out.creates.take(0) {
            let svc = desired_service(&pass.id, replica, index);
            out.changes.push(Change::CreateService(Box::new(svc)));
        }
    }
}

/// The job's cluster for `TF_CONFIG`, if it is distributed.
fn cluster_of(pass: &Pass<'_>, spec: &NormalizedSpec, cfg: &PlanConfig) -> Option<ClusterSpec> {
    let addr = JobAddress {
        name: &pass.id.name,
        namespace: &pass.id.namespace,
        cluster_domain: cfg.cluster_domain.as_deref(),
    };
    is_distributed(spec).then(|| ClusterSpec::new(spec, &addr))
}

/// Length of `TF_CONFIG` in a desired pod.
fn tf_config_len(pod: &Pod) -> usize {
    pod.spec
        .iter()
        .flat_map(|s| &s.containers)
        .flat_map(|c| c.env.iter().flatten())
        .filter(|e| e.name == "TF_CONFIG")
        .filter_map(|e| e.value.as_ref())
        .map(String::len)
        .sum()
}

fn json_len(value: &impl serde::Serialize) -> usize {
    serde_json::to_vec(value).map_or(0, |v| v.len())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use jiff::Timestamp;
    use k8s_openapi::api::core::v1::PodStatus;

    use super::*;
    use crate::api::builder::tfjob;
    use crate::api::defaults::normalize;
    use crate::api::{CleanPodPolicy, RestartPolicy};

    /// Runs the stage over a job of `workers` workers whose cache holds `phases`, one per index.
    fn run(workers: i32, phases: &[&str], limit: Option<i32>) -> Replicas {
        let job = tfjob("j")
            .uid("u")
            .workers(workers)
            .restart(RestartPolicy::OnFailure)
            .build();
        let spec = normalize(&job.spec, CleanPodPolicy::Running).expect("valid");
        let cfg = crate::settings::RunSettings::defaults()
            .controller_config()
            .plan;
        let probe = Pass::start(&job, &[], &[], Timestamp::UNIX_EPOCH);
        let replica = &spec.replicas[&ReplicaType::Worker];
        let pods: Vec<Arc<ChildPod>> = (0..)
            .zip(phases)
            .map(|(index, phase)| {
                let mut pod = desired_pod(&probe.id, &spec, replica, index, None);
                pod.metadata.uid = Some(format!("pod-{index}"));
                pod.status = Some(PodStatus {
                    phase: Some((*phase).into()),
                    ..PodStatus::default()
                });
                Arc::new(pod.into())
            })
            .collect();
        let pass = Pass::start(&job, &pods, &[], Timestamp::UNIX_EPOCH);
        let budget = RestartBudget::of(&pass.status, &spec, &pass.children, limit);
        reconcile(&pass, &spec, &cfg, budget)
    }

    fn pod_actions(r: &Replicas) -> Vec<String> {
        r.changes
            .iter()
            .filter_map(|a| match a {
                Change::CreatePod(p) => Some(format!("create {}", p.name_any())),
                Change::DeletePod(c) => Some(format!("delete {}", c.name)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn missing_pods_are_created_and_extra_ones_deleted() {
        let r = run(2, &["Running", "Pending", "Running"], None);
        assert_eq!(pod_actions(&r), vec!["delete j-worker-2"]);
        assert_eq!(r.statuses[&ReplicaType::Worker].active, 1);
        let r = run(3, &["Running"], None);
        assert_eq!(
            pod_actions(&r),
            vec!["create j-worker-1", "create j-worker-2"]
        );
        let services = r
            .changes
            .iter()
            .filter(|a| matches!(a, Change::CreateService(_)));
        assert_eq!(services.count(), 3, "no service observed: one per index");
    }

    /// The pods a first pass over a job of `workers` workers creates with `max_bytes`.
    fn first_creates(workers: i32, max_bytes: usize) -> Vec<usize> {
        let job = tfjob("j").uid("u").ps(1).workers(workers).build();
        let spec = normalize(&job.spec, CleanPodPolicy::Running).expect("valid");
        let mut cfg = crate::settings::RunSettings::defaults()
            .controller_config()
            .plan;
        cfg.max_create_bytes_per_pass = max_bytes;
        let pass = Pass::start(&job, &[], &[], Timestamp::UNIX_EPOCH);
        let budget = RestartBudget::of(&pass.status, &spec, &pass.children, None);
        reconcile(&pass, &spec, &cfg, budget)
            .changes
            .iter()
            .filter_map(|a| match a {
                Change::CreatePod(p) => Some(tf_config_len(p)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_pass_creates_pods_up_to_the_byte_budget_and_always_one() {
        // 2,000 workers: each TF_CONFIG names all of them (~50 KB).
        let sizes = first_creates(2000, 1 << 20);
        let each = sizes[0];
        assert!(each > 45_000, "TF_CONFIG of {each} bytes");
        assert!(sizes.iter().sum::<usize>() <= 1 << 20);
        assert!(sizes.len() >= (1 << 20) / (each + 1_000) && sizes.len() < 100);
        assert_eq!(
            first_creates(2000, 1).len(),
            1,
            "a pass always makes progress"
        );
        // Small jobs are bounded by the count only.
        assert_eq!(first_creates(3, 1 << 20).len(), 4);
    }

    #[test]
    fn failed_pods_restart_within_the_budget_and_fail_past_it() {
        let r = run(2, &["Failed", "Failed"], Some(1));
        assert_eq!(pod_actions(&r), vec!["delete j-worker-0"]);
        assert_eq!(r.restarted_pods, 1);
        let worker = &r.statuses[&ReplicaType::Worker];
        assert_eq!((worker.restarts, worker.failed), (1, 1));
        assert!(r.budget.exceeded());
        assert_eq!(r.restarting, vec![ReplicaType::Worker]);
    }
}

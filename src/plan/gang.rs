//! Stage 5a, gang: with `--gang-scheduler-name`, a job's pods are scheduled all together or not
//! at all, through a PodGroup the job owns. This stage decides the PodGroup (created, updated
//! only when its spec changes, deleted when the job finishes or is suspended), the scheduler's
//! marks on each pod, whether pods may be created yet (Volcano: once it admitted the group),
//! and why the gang waits.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::core::ObjectMeta;

use super::pass::Pass;
use super::waiting::GangWait;
use super::{Change, ChildRef, EventKind, PlanConfig};
use crate::api::defaults::NormalizedSpec;
use crate::api::podgroup::{
    COSCHEDULING_GROUP_LABEL, GangScheduler, ObservedPodGroup, PodGroupSpec, VOLCANO_DEFAULT_QUEUE,
    VOLCANO_GROUP_ANNOTATION, VOLCANO_TASK_ANNOTATION, pod_group_object,
};
use crate::api::quantity;
use crate::api::{ReplicaType, SchedulingPolicy, TFJob};

/// Marks `pod` (of replica type `rtype`) for `scheduler` and the job's PodGroup `group`: the
/// scheduler name unless the template names one, and the annotations or label the scheduler
/// reads.
pub fn decorate(pod: &mut Pod, scheduler: &GangScheduler, group: &str, rtype: ReplicaType) {
    if let Some(spec) = pod.spec.as_mut()
        && spec.scheduler_name.is_none()
    {
        spec.scheduler_name = Some(scheduler.scheduler_name().to_string());
    }
    let meta = &mut pod.metadata;
    match scheduler {
        GangScheduler::Volcano => {
            let annotations = meta.annotations.get_or_insert_with(BTreeMap::new);
            annotations.insert(VOLCANO_GROUP_ANNOTATION.into(), group.into());
            annotations.insert(
                VOLCANO_TASK_ANNOTATION.into(),
                rtype.canonical().to_lowercase(),
            );
        }
        GangScheduler::Coscheduling(_) => {
            let labels = meta.labels.get_or_insert_with(BTreeMap::new);
            labels.insert(COSCHEDULING_GROUP_LABEL.into(), group.into());
        }
    }
}

/// Replica types whose template names a scheduler other than `scheduler`'s (left alone).
pub fn other_schedulers(spec: &NormalizedSpec, scheduler: &GangScheduler) -> Vec<ReplicaType> {
    spec.replicas
        .values()
        .filter(|r| {
            r.template
                .spec
                .as_ref()
                .and_then(|s| s.scheduler_name.as_deref())
                .is_some_and(|name| name != scheduler.scheduler_name())
        })
        .map(|r| r.rtype)
        .collect()
}

/// The PodGroup spec the job wants: `minMember` is `minAvailable`, else every replica;
/// `minResources` as given, else what the first `minMember` pods request (see
/// [`min_resources`]). Volcano's queue is the job's, else an existing group's, else `default`.
pub fn desired_spec(
    spec: &NormalizedSpec,
    policy: Option<&SchedulingPolicy>,
    observed: Option<&ObservedPodGroup>,
) -> PodGroupSpec {
    let total = i32::try_from(spec.total_replicas()).unwrap_or(i32::MAX);
    let min_member = policy
        .and_then(|p| p.min_available)
        .filter(|n| *n > 0)
        .unwrap_or(total);
    let min_resources = policy
        .and_then(|p| p.min_resources.clone())
        .unwrap_or_else(|| min_resources(spec, min_member));
    let queue = policy
        .and_then(|p| p.queue.clone())
        .filter(|q| !q.is_empty())
        .or_else(|| observed.and_then(|o| o.spec.queue.clone()))
        .unwrap_or_else(|| VOLCANO_DEFAULT_QUEUE.to_string());
    PodGroupSpec {
        min_member,
        queue: Some(queue),
        priority_class_name: policy.and_then(|p| p.priority_class.clone()),
        min_resources,
        schedule_timeout_seconds: policy.and_then(|p| p.schedule_timeout_seconds),
    }
}

/// What the first `min_member` pods request, summed per resource: replica types in a fixed
/// order (Chief, Master, PS, Worker, Evaluator — upstream orders them by their priority class,
/// with ties at random), every container's `requests`, or its `limits` where it requests
/// nothing. Init containers and pod overhead are not counted, as upstream does not.
pub fn min_resources(spec: &NormalizedSpec, min_member: i32) -> BTreeMap<String, Quantity> {
    let mut left = i64::from(min_member.max(0));
    let mut sums: BTreeMap<String, i128> = BTreeMap::new();
    for replica in spec.replicas.values() {
        let pods = left.min(i64::from(replica.replicas.max(0)));
        left -= pods;
        let containers = replica.template.spec.iter().flat_map(|s| &s.containers);
        for (name, nanos) in containers.flat_map(container_requests) {
            let sum = sums.entry(name).or_default();
            *sum = sum.saturating_add(nanos.saturating_mul(i128::from(pods)));
        }
    }
    sums.into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(name, n)| (name, quantity::format(n)))
        .collect()
}

/// A container's requests, or its limits when it requests nothing, in nano-units.
fn container_requests(container: &Container) -> Vec<(String, i128)> {
    let resources = container.resources.as_ref();
    let requests = resources
        .and_then(|r| r.requests.as_ref())
        .filter(|r| !r.is_empty());
    let wanted = requests.or_else(|| resources.and_then(|r| r.limits.as_ref()));
    wanted
        .into_iter()
        .flatten()
        .filter_map(|(name, q)| Some((name.clone(), quantity::nanos(q)?)))
        .collect()
}

/// The PodGroup `pass`'s job controls, if any: one controlled by another object is not ours to
/// change.
fn ours<'a>(
    pass: &Pass<'_>,
    observed: Option<&'a ObservedPodGroup>,
) -> Option<&'a ObservedPodGroup> {
    observed.filter(|g| {
        g.controller
            .as_ref()
            .is_some_and(|c| *c.uid == *pass.id.uid)
    })
}

/// Deletes the job's PodGroup (finished or suspended).
pub(super) fn remove(pass: &mut Pass<'_>, observed: Option<&ObservedPodGroup>) {
    if let Some(group) = ours(pass, observed).filter(|g| !g.deleting) {
        pass.plan.changes.push(Change::DeletePodGroup(ChildRef {
            name: group.name.clone(),
            uid: group.uid.clone(),
            resource_version: None,
        }));
    }
}

/// A live job under gang scheduling (`cfg.gang`): its PodGroup kept as it should be
/// ([`ensure`]), and a Warning on its first pass if a template names another scheduler.
/// Returns why the gang waits, if it does.
pub(super) fn live(
    pass: &mut Pass<'_>,
    spec: &NormalizedSpec,
    job: &TFJob,
    cfg: &PlanConfig,
    observed: Option<&ObservedPodGroup>,
) -> Option<GangWait> {
    let scheduler = cfg.gang.as_ref()?;
    warn_other_schedulers(pass, spec, scheduler);
    let policy = job.spec.run_policy.as_ref();
    let policy = policy.and_then(|p| p.scheduling_policy.as_ref());
    let annotations = job.metadata.annotations.as_ref();
    ensure(pass, spec, policy, annotations, scheduler, observed)
}

/// Creates or updates the job's PodGroup, and, with Volcano, holds the job's creates until the
/// group is admitted. Returns why the gang waits, if it does.
fn ensure(
    pass: &mut Pass<'_>,
    spec: &NormalizedSpec,
    policy: Option<&SchedulingPolicy>,
    annotations: Option<&BTreeMap<String, String>>,
    scheduler: &GangScheduler,
    observed: Option<&ObservedPodGroup>,
) -> Option<GangWait> {
    // As the scheduler's PodGroup holds it (only the fields it reads), to compare like with like.
    let want = desired_spec(spec, policy, observed);
    let want = PodGroupSpec::from_json(&want.to_json(scheduler), scheduler);
    match (observed, ours(pass, observed)) {
        (None, _) => {
            let meta = ObjectMeta {
                name: Some(pass.id.name.clone()),
                namespace: Some(pass.id.namespace.clone()),
                annotations: annotations.cloned().filter(|a| !a.is_empty()),
                owner_references: Some(vec![pass.id.owner_reference()]),
                ..ObjectMeta::default()
            };
            let group = pod_group_object(scheduler, meta, &want);
            pass.plan
                .changes
                .insert(0, Change::CreatePodGroup(Box::new(group)));
        }
        (Some(_), Some(group)) if !group.deleting && group.spec != want => {
            pass.plan.changes.insert(
                0,
                Change::UpdatePodGroup {
                    name: group.name.clone(),
                    spec: Box::new(want.to_json(scheduler)),
                },
            );
        }
        _ => {}
    }
    let admitted = observed.is_some_and(|g| !g.deleting && g.is_admitted());
    if scheduler.admits_before_pods() && !admitted {
        let held = pass.plan.changes.iter().any(Change::is_create);
        pass.plan.changes.retain(|c| !c.is_create());
        let reason = observed.and_then(|g| g.unschedulable.clone());
        return Some(GangWait::not_admitted(
            &pass.id.name,
            want.min_member,
            held,
            reason,
        ));
    }
    let group = observed?;
    group
        .unschedulable
        .as_ref()
        .filter(|_| !matches!(group.phase.as_str(), "Running"))
        .map(|message| GangWait::unschedulable(&group.name, message))
}

/// The Warning for replica types whose template names another scheduler: upstream's words.
fn warn_other_schedulers(pass: &mut Pass<'_>, spec: &NormalizedSpec, scheduler: &GangScheduler) {
    if pass.is_first() && !other_schedulers(spec, scheduler).is_empty() {
        pass.plan.event(
            EventKind::Warning,
            "SetPodTemplateSchedulerName",
            "Another scheduler is specified when gang-scheduling is enabled and it will not be overwritten",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::CleanPodPolicy;
    use crate::api::builder::tfjob;
    use crate::api::defaults::normalize;
    use k8s_openapi::api::core::v1::ResourceRequirements;

    fn spec_with(cpu_ps: &str, cpu_worker: Option<&str>) -> NormalizedSpec {
        let job = tfjob("j").ps(1).workers(3).build();
        let mut spec = normalize(&job.spec, CleanPodPolicy::Running).expect("valid");
        for replica in spec.replicas.values_mut() {
            let cpu = match replica.rtype {
                ReplicaType::Ps => Some(cpu_ps),
                _ => cpu_worker,
            };
            if let (Some(cpu), Some(pod)) = (cpu, replica.template.spec.as_mut()) {
                pod.containers[0].resources = Some(ResourceRequirements {
                    requests: Some([("cpu".into(), Quantity(cpu.into()))].into()),
                    limits: Some([("memory".into(), Quantity("1Gi".into()))].into()),
                    ..ResourceRequirements::default()
                });
            }
        }
        spec
    }

    #[test]
    fn min_resources_sum_the_first_min_member_pods_deterministically() {
        let spec = spec_with("500m", Some("1"));
        let all = min_resources(&spec, 4);
        assert_eq!(all.get("cpu"), Some(&Quantity("3500m".into())));
        assert_eq!(
            all.get("memory"),
            None,
            "limits count only where nothing is requested"
        );
        // minAvailable 2: the PS (first in the fixed order) and one worker.
        assert_eq!(
            min_resources(&spec, 2).get("cpu"),
            Some(&Quantity("1500m".into()))
        );
    }

    #[test]
    fn a_container_without_requests_counts_its_limits() {
        let spec = spec_with("1", None);
        let mut spec = spec;
        for replica in spec.replicas.values_mut() {
            if let Some(pod) = replica.template.spec.as_mut()
                && replica.rtype == ReplicaType::Worker
            {
                pod.containers[0].resources = Some(ResourceRequirements {
                    limits: Some([("nvidia.com/gpu".into(), Quantity("1".into()))].into()),
                    ..ResourceRequirements::default()
                });
            }
        }
        let sums = min_resources(&spec, 4);
        assert_eq!(sums.get("nvidia.com/gpu"), Some(&Quantity("3".into())));
        assert_eq!(sums.get("cpu"), Some(&Quantity("1".into())));
    }

    #[test]
    fn the_job_sets_min_member_queue_and_priority() {
        let spec = spec_with("1", Some("1"));
        let policy = SchedulingPolicy {
            min_available: Some(2),
            queue: Some("research".into()),
            priority_class: Some("high".into()),
            ..SchedulingPolicy::default()
        };
        let want = desired_spec(&spec, Some(&policy), None);
        assert_eq!(want.min_member, 2);
        assert_eq!(want.queue.as_deref(), Some("research"));
        assert_eq!(want.priority_class_name.as_deref(), Some("high"));
        let plain = desired_spec(&spec, None, None);
        assert_eq!(plain.min_member, 4);
        assert_eq!(plain.queue.as_deref(), Some("default"));
    }

    #[test]
    fn pods_are_marked_for_their_scheduler_unless_the_template_names_another() {
        let mut pod = Pod {
            spec: Some(Default::default()),
            ..Pod::default()
        };
        decorate(&mut pod, &GangScheduler::Volcano, "j", ReplicaType::Ps);
        let annotations = pod.metadata.annotations.clone().unwrap_or_default();
        assert_eq!(
            annotations
                .get(VOLCANO_GROUP_ANNOTATION)
                .map(String::as_str),
            Some("j")
        );
        assert_eq!(
            annotations.get(VOLCANO_TASK_ANNOTATION).map(String::as_str),
            Some("ps")
        );
        assert_eq!(
            pod.spec.as_ref().and_then(|s| s.scheduler_name.as_deref()),
            Some("volcano")
        );

        let mut mine = Pod {
            spec: Some(k8s_openapi::api::core::v1::PodSpec {
                scheduler_name: Some("my-scheduler".into()),
                ..Default::default()
            }),
            ..Pod::default()
        };
        let cosched = GangScheduler::Coscheduling("scheduler-plugins-scheduler".into());
        decorate(&mut mine, &cosched, "j", ReplicaType::Worker);
        assert_eq!(
            mine.spec.as_ref().and_then(|s| s.scheduler_name.as_deref()),
            Some("my-scheduler")
        );
        let labels = mine.metadata.labels.unwrap_or_default();
        assert_eq!(
            labels.get(COSCHEDULING_GROUP_LABEL).map(String::as_str),
            Some("j")
        );
    }
}

#[cfg(test)]
#[path = "gang_tests.rs"]
mod scenarios;

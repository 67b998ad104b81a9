//! Gang scheduling through the whole planner: the PodGroup's life beside the job's, Volcano's
//! admission holding the pods, and what the job says while its gang waits.

use std::sync::Arc;

use jiff::Timestamp;
use kube::api::DynamicObject;
use serde_json::json;

use super::super::{Change, EventKind, Plan, PlanConfig, plan_with_pod_group};
use crate::api::builder::tfjob;
use crate::api::podgroup::{GangScheduler, ObservedPodGroup};
use crate::api::{ChildPod, TFJob};

const UID: &str = "uid-1";

fn now() -> Timestamp {
    Timestamp::from_second(1_800_000_000).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn cfg(scheduler: GangScheduler) -> PlanConfig {
    let mut cfg = crate::settings::RunSettings::defaults()
        .controller_config()
        .plan;
    cfg.gang = Some(scheduler);
    cfg
}

fn job() -> TFJob {
    tfjob("j").namespace("ns").uid(UID).ps(1).workers(3).build()
}

/// The PodGroup the planner asked for in `p`, as the API server would store it, in `phase`
/// with Volcano's `unschedulable` message.
fn stored_group(
    p: &Plan,
    scheduler: &GangScheduler,
    phase: &str,
    unschedulable: Option<&str>,
) -> ObservedPodGroup {
    let created = p
        .changes
        .iter()
        .find_map(|c| match c {
            Change::CreatePodGroup(g) => Some(g.as_ref().clone()),
            _ => None,
        })
        .expect("a PodGroup create");
    let mut group: DynamicObject = created;
    group.metadata.uid = Some("pg-uid".into());
    let conditions = unschedulable.map_or_else(
        || json!([]),
        |m| json!([{"type": "Unschedulable", "status": "True", "message": m, "lastTransitionTime": "2026-12-06T10:00:00Z"}]),
    );
    group.data["status"] = json!({"phase": phase, "conditions": conditions});
    ObservedPodGroup::of(&group, scheduler)
}

fn pod_creates(p: &Plan) -> usize {
    p.changes.iter().filter(|c| c.is_create()).count()
}

fn message(p: &Plan) -> String {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.last())
        .and_then(|c| c.message.clone())
        .unwrap_or_default()
}

#[test]
fn with_volcano_the_group_comes_first_and_pods_wait_for_its_admission() {
    let volcano = cfg(GangScheduler::Volcano);
    let j = job();
    let first = plan_with_pod_group(&j, &[], &[], None, now(), &volcano);
    assert!(matches!(
        first.changes.first(),
        Some(Change::CreatePodGroup(_))
    ));
    assert_eq!(
        pod_creates(&first),
        0,
        "no pod or service before Volcano admits the group"
    );
    assert_eq!(
        message(&first),
        "TFJob j is created. Waiting: the gang (PodGroup j, 4 pods) is not admitted by the scheduler yet; its pods are created once it is."
    );
    let warning = first
        .events
        .iter()
        .find(|e| e.reason == "PodGroupNotAdmitted")
        .expect("a Warning");
    assert_eq!(warning.kind, EventKind::Warning);
    assert_eq!(warning.related, Some(("PodGroup", "j".to_string())));

    let scheduler = GangScheduler::Volcano;
    let mut stored = j.clone();
    stored.status = first.status.clone();
    let pending = stored_group(
        &first,
        &scheduler,
        "Pending",
        Some("0/4 tasks in gang unschedulable: pod group is not ready, 4 minAvailable"),
    );
    let waiting = plan_with_pod_group(&stored, &[], &[], Some(&pending), now(), &volcano);
    assert!(
        waiting.changes.is_empty(),
        "the group is as wanted: {:?}",
        waiting.changes
    );
    assert!(
        message(&waiting).ends_with("Waiting: the gang (PodGroup j, 4 pods) is not admitted by the scheduler yet: 0/4 tasks in gang unschedulable: pod group is not ready, 4 minAvailable; its pods are created once it is."),
        "{}",
        message(&waiting)
    );
    assert!(
        !waiting.events.iter().any(|e| e.kind == EventKind::Warning),
        "the cause was announced already"
    );
}

#[test]
fn once_volcano_admits_the_group_the_pods_come_marked_for_it() {
    let (volcano, scheduler) = (cfg(GangScheduler::Volcano), GangScheduler::Volcano);
    let mut stored = job();
    let first = plan_with_pod_group(&stored, &[], &[], None, now(), &volcano);
    stored.status = first.status.clone();
    let inqueue = stored_group(&first, &scheduler, "Inqueue", None);
    let admitted = plan_with_pod_group(&stored, &[], &[], Some(&inqueue), now(), &volcano);
    assert_eq!(pod_creates(&admitted), 8, "4 pods and 4 services");
    let pod = admitted
        .changes
        .iter()
        .find_map(|c| match c {
            Change::CreatePod(p) => Some(p),
            _ => None,
        })
        .expect("a pod");
    let annotations = pod.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(
        annotations
            .get("scheduling.k8s.io/group-name")
            .map(String::as_str),
        Some("j")
    );
    assert_eq!(
        pod.spec.as_ref().and_then(|s| s.scheduler_name.as_deref()),
        Some("volcano")
    );
    assert!(
        !message(&admitted).contains("Waiting"),
        "{}",
        message(&admitted)
    );
}

#[test]
fn the_group_is_written_only_when_the_job_wants_another() {
    let scheduler = GangScheduler::Coscheduling("scheduler-plugins-scheduler".into());
    let cosched = cfg(scheduler.clone());
    let mut j = job();
    let first = plan_with_pod_group(&j, &[], &[], None, now(), &cosched);
    assert_eq!(
        pod_creates(&first),
        8,
        "Coscheduling holds pods at Permit, not here"
    );
    let group = stored_group(&first, &scheduler, "Scheduling", None);
    j.status = first.status.clone();
    let again = plan_with_pod_group(&j, &[], &[], Some(&group), now(), &cosched);
    assert!(
        !again
            .changes
            .iter()
            .any(|c| matches!(c, Change::UpdatePodGroup { .. } | Change::CreatePodGroup(_))),
        "unchanged: not rewritten"
    );
    j.spec
        .run_policy
        .get_or_insert_default()
        .scheduling_policy
        .get_or_insert_default()
        .min_available = Some(2);
    let smaller = plan_with_pod_group(&j, &[], &[], Some(&group), now(), &cosched);
    let update = smaller.changes.iter().find_map(|c| match c {
        Change::UpdatePodGroup { spec, .. } => Some(spec),
        _ => None,
    });
    assert_eq!(update.map(|s| s["minMember"].clone()), Some(json!(2)));
}

#[test]
fn a_finished_or_suspended_job_deletes_its_group_and_a_foreign_one_is_left_alone() {
    let scheduler = GangScheduler::Volcano;
    let volcano = cfg(scheduler.clone());
    let mut j = job();
    let first = plan_with_pod_group(&j, &[], &[], None, now(), &volcano);
    let group = stored_group(&first, &scheduler, "Running", None);
    j.status = first.status.clone();
    j.spec.run_policy.get_or_insert_default().suspend = Some(true);
    let suspended = plan_with_pod_group(&j, &[], &[], Some(&group), now(), &volcano);
    assert!(
        suspended
            .changes
            .iter()
            .any(|c| matches!(c, Change::DeletePodGroup(r) if r.name == "j"))
    );

    let mut foreign = group.clone();
    if let Some(c) = foreign.controller.as_mut() {
        c.uid = "someone-else".into();
    }
    let left = plan_with_pod_group(&j, &[], &[], Some(&foreign), now(), &volcano);
    assert!(
        !left
            .changes
            .iter()
            .any(|c| matches!(c, Change::DeletePodGroup(_)))
    );

    // A job whose status says it succeeded.
    let mut done = job();
    done.status = first.status.clone();
    if let Some(status) = done.status.as_mut() {
        crate::plan::conditions::set(
            status,
            "Succeeded",
            true,
            "TFJobSucceeded",
            "done".to_string(),
            now(),
        );
    }
    let finished = plan_with_pod_group(
        &done,
        &[] as &[Arc<ChildPod>],
        &[],
        Some(&group),
        now(),
        &volcano,
    );
    assert!(
        finished
            .changes
            .iter()
            .any(|c| matches!(c, Change::DeletePodGroup(_)))
    );
}

#[test]
fn an_admitted_gang_that_cannot_be_placed_says_so_with_volcanos_words() {
    let scheduler = GangScheduler::Volcano;
    let volcano = cfg(scheduler.clone());
    let mut j = job();
    let first = plan_with_pod_group(&j, &[], &[], None, now(), &volcano);
    j.status = first.status.clone();
    let said = "2/4 tasks in gang unschedulable: pod group is not ready, 4 Pending, 4 minAvailable";
    let group = stored_group(&first, &scheduler, "Inqueue", Some(said));
    let p = plan_with_pod_group(&j, &[], &[], Some(&group), now(), &volcano);
    assert!(
        message(&p).contains(&format!(
            "the gang (PodGroup j) cannot be scheduled together: {said}"
        )),
        "{}",
        message(&p)
    );
    assert!(p.events.iter().any(|e| e.reason == "GangUnschedulable"));
}

#[test]
fn a_template_naming_another_scheduler_keeps_it_with_upstreams_warning() {
    let volcano = cfg(GangScheduler::Volcano);
    let own = |s: &mut k8s_openapi::api::core::v1::PodSpec| {
        s.scheduler_name = Some("my-scheduler".into());
    };
    let j = tfjob("j")
        .namespace("ns")
        .uid(UID)
        .workers(2)
        .pod_spec(own)
        .build();
    let first = plan_with_pod_group(&j, &[], &[], None, now(), &volcano);
    let warning = first
        .events
        .iter()
        .find(|e| e.reason == "SetPodTemplateSchedulerName")
        .expect("upstream's Warning");
    assert_eq!(
        warning.message,
        "Another scheduler is specified when gang-scheduling is enabled and it will not be overwritten"
    );
    let scheduler = GangScheduler::Volcano;
    let mut stored = j.clone();
    stored.status = first.status.clone();
    let group = stored_group(&first, &scheduler, "Inqueue", None);
    let admitted = plan_with_pod_group(&stored, &[], &[], Some(&group), now(), &volcano);
    let names: Vec<Option<String>> = admitted
        .changes
        .iter()
        .filter_map(|c| match c {
            Change::CreatePod(p) => Some(p.spec.as_ref().and_then(|s| s.scheduler_name.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        names,
        [
            Some("my-scheduler".to_string()),
            Some("my-scheduler".to_string())
        ]
    );
    assert!(
        !admitted
            .events
            .iter()
            .any(|e| e.reason == "SetPodTemplateSchedulerName"),
        "said once"
    );
}

//! Hermetic tests of what only the controller layer decides, against a fake API server:
//! conflicts on the status write, jobs deleted meanwhile, terminating namespaces, batching of
//! progress-only writes, and our own writes hiding stale cache entries.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, PodStatus, Service};
use kube::runtime::controller::Action as Requeue;
use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher;
use serde_json::{Value, json};

use super::apply::apply;
use super::child_cache::ChildCache;
use super::config::ControllerConfig;
use super::context::Context;
use super::fake_api::{self, Answer, Call, Calls};
use super::finalizer::FINALIZER;
use crate::api::builder::tfjob;
use crate::api::{ChildPod, ChildService, RestartPolicy, TFJob};
use crate::plan::{self, Change};
use crate::runtime::metrics::Metrics;

const JOB_PATH: &str = "/namespaces/ns/tfjobs/j";
const STATUS_PATH: &str = "/namespaces/ns/tfjobs/j/status";

/// A job of 1 PS + 2 workers that has been through its first pass (Created, with finalizer).
fn job(policy: RestartPolicy) -> TFJob {
    let mut job = tfjob("j")
        .namespace("ns")
        .uid("job-uid")
        .ps(1)
        .workers(2)
        .restart(policy)
        .build();
    job.metadata.finalizers = Some(vec![FINALIZER.into()]);
    job.metadata.resource_version = Some("10".into());
    let first = plan::plan(&job, &[], &[], jiff::Timestamp::now(), &config().plan);
    job.status = first.status;
    job
}

fn config() -> ControllerConfig {
    ControllerConfig {
        // Long enough that no test depends on how fast it runs.
        status_batch: Duration::from_secs(60),
        ..ControllerConfig::default()
    }
}

/// The job's pods and services as the planner would create them, in the cache with `phases`
/// (ps-0, worker-0, worker-1).
fn children(job: &TFJob, phases: [&str; 3]) -> (Vec<Pod>, Vec<Service>) {
    let mut fresh = job.clone();
    fresh.status = None;
    let decision = plan::plan(&fresh, &[], &[], jiff::Timestamp::now(), &config().plan);
    let (mut pods, mut services) = (Vec::new(), Vec::new());
    for action in decision.changes {
        match action {
            Change::CreatePod(pod) => pods.push(*pod),
            Change::CreateService(svc) => services.push(*svc),
            _ => {}
        }
    }
    for (pod, phase) in pods.iter_mut().zip(phases) {
        pod.metadata.uid = pod.metadata.name.as_ref().map(|n| format!("uid-{n}"));
        pod.metadata.resource_version = Some("5".into());
        pod.status = Some(PodStatus {
            phase: Some(phase.into()),
            ..PodStatus::default()
        });
    }
    for svc in &mut services {
        svc.metadata.uid = svc.metadata.name.as_ref().map(|n| format!("uid-{n}"));
        svc.metadata.resource_version = Some("5".into());
    }
    (pods, services)
}

/// The controller's world: a context over caches the test fills, and the fake API's record.
struct World {
    ctx: Context,
    calls: Calls,
    /// What the pod and service "watches" write the caches' stores with.
    writers: (Writer<ChildPod>, Writer<ChildService>),
}

impl World {
    fn new(handler: impl FnMut(&Call) -> Answer + Send + 'static) -> Self {
        Self::with_gate(handler, crate::runtime::leader::LeaderGate::always_open())
    }

    fn with_gate(
        handler: impl FnMut(&Call) -> Answer + Send + 'static,
        gate: crate::runtime::leader::LeaderGate,
    ) -> Self {
        let (client, calls) = fake_api::client(handler, gate.clone());
        let (pods, pod_writer) = ChildCache::new();
        let (services, svc_writer) = ChildCache::new();
        let ctx = Context::new(
            client,
            config(),
            Arc::new(Metrics::new()),
            (pods, services),
            gate,
        );
        Self {
            ctx,
            calls,
            writers: (pod_writer, svc_writer),
        }
    }

    /// Puts objects in the caches, as their watch would deliver them.
    fn cache(&mut self, children: (Vec<Pod>, Vec<Service>)) {
        self.deliver(children, false);
    }

    /// Removes objects from the caches, as their watch would deliver their deletion.
    fn uncache(&mut self, children: (Vec<Pod>, Vec<Service>)) {
        self.deliver(children, true);
    }

    fn deliver(&mut self, (pods, services): (Vec<Pod>, Vec<Service>), deleted: bool) {
        fn event<K>(obj: K, deleted: bool) -> watcher::Event<K> {
            if deleted {
                watcher::Event::Delete(obj)
            } else {
                watcher::Event::Apply(obj)
            }
        }
        for pod in pods {
            let event = event(ChildPod::from(pod), deleted);
            self.writers.0.apply_watcher_event(&event);
            self.ctx.pods.observe(&event);
        }
        for svc in services {
            let event = event(ChildService::from(svc), deleted);
            self.writers.1.apply_watcher_event(&event);
            self.ctx.services.observe(&event);
        }
    }
}

/// An API server that accepts every write (resourceVersions counting up from 100).
fn accepting() -> impl FnMut(&Call) -> Answer + Send + 'static {
    let rv = AtomicU64::new(100);
    move |call| match call.method.as_str() {
        "DELETE" => fake_api::deleted(),
        "GET" => fake_api::refused(404, "NotFound"),
        _ => fake_api::stored(call, rv.fetch_add(1, Ordering::Relaxed)),
    }
}

fn methods_and_paths(calls: &[Call]) -> Vec<(String, String)> {
    calls
        .iter()
        .map(|c| (c.method.clone(), c.path.clone()))
        .collect()
}

#[tokio::test]
async fn a_conflict_on_the_status_write_reads_the_job_once_and_plans_again() {
    let stored = job(RestartPolicy::Never);
    let mut newer = serde_json::to_value(&stored).unwrap_or(Value::Null);
    // Another writer recorded a restart meanwhile: the re-planned write must keep it.
    newer["metadata"]["resourceVersion"] = json!("11");
    newer["status"]["replicaStatuses"]["Worker"]["restarts"] = json!(1);
    let mut accept = accepting();
    let mut status_writes = 0;
    let mut world = World::new(move |call| {
        if call.is("PUT", STATUS_PATH) {
            status_writes += 1;
            if status_writes == 1 {
                return fake_api::refused(409, "Conflict");
            }
        }
        if call.is("GET", JOB_PATH) {
            return (200, newer.clone());
        }
        accept(call)
    });
    world.cache(children(&stored, ["Running", "Running", "Running"]));
    let requeue = apply(Arc::new(stored), &world.ctx)
        .await
        .expect("reconciled");
    assert_eq!(requeue, Requeue::await_change());
    let writes = world.calls.writes();
    let status_path = format!("/apis/kubeflow.org/v1{STATUS_PATH}");
    let job_path = format!("/apis/kubeflow.org/v1{JOB_PATH}");
    assert_eq!(
        methods_and_paths(&writes),
        vec![
            ("PUT".into(), status_path.clone()),
            ("GET".into(), job_path),
            ("PUT".into(), status_path),
        ]
    );
    let second = &writes[2].body;
    assert_eq!(second["metadata"]["resourceVersion"], "11");
    assert_eq!(second["status"]["replicaStatuses"]["Worker"]["restarts"], 1);
    assert_eq!(second["status"]["replicaStatuses"]["Worker"]["active"], 2);
    assert_eq!(second["status"]["conditions"][1]["type"], "Running");
}

#[tokio::test]
async fn a_job_deleted_before_its_status_write_is_left_alone() {
    let stored = job(RestartPolicy::Never);
    let mut accept = accepting();
    let mut world = World::new(move |call| {
        if call.is("PUT", STATUS_PATH) {
            return fake_api::refused(404, "NotFound");
        }
        accept(call)
    });
    world.cache(children(&stored, ["Running", "Running", "Running"]));
    let result = apply(Arc::new(stored), &world.ctx).await;
    assert_eq!(result.expect("not an error"), Requeue::await_change());
    assert_eq!(world.calls.count("PUT", STATUS_PATH), 1, "no retry");
    assert_eq!(world.calls.count("GET", JOB_PATH), 0);
}

#[tokio::test]
async fn creates_refused_in_a_terminating_namespace_are_skipped_quietly() {
    let stored = job(RestartPolicy::Never);
    let mut accept = accepting();
    let world = World::new(move |call| {
        if call.method == "POST" {
            return fake_api::namespace_terminating();
        }
        accept(call)
    });
    let result = apply(Arc::new(stored), &world.ctx).await;
    assert!(result.is_ok(), "no error, so no backoff: {result:?}");
    assert_eq!(
        world.calls.count("POST", "/namespaces/ns/pods"),
        3,
        "each tried once"
    );
    assert_eq!(world.calls.count("POST", "/namespaces/ns/services"), 3);
    let reasons = world.calls.event_reasons();
    assert!(
        !reasons.iter().any(|r| r.starts_with("Failed")),
        "no failure events: {reasons:?}"
    );
}

#[tokio::test]
async fn a_new_job_gets_its_finalizer_and_then_its_children_in_the_same_reconcile() {
    let mut new = job(RestartPolicy::Never);
    new.metadata.finalizers = None;
    new.status = None;
    let mut with_finalizer = new.clone();
    with_finalizer.metadata.finalizers = Some(vec![FINALIZER.into()]);
    with_finalizer.metadata.resource_version = Some("11".into());
    let answer = serde_json::to_value(&with_finalizer).unwrap_or(Value::Null);
    let mut accept = accepting();
    let mut world = World::new(move |call: &Call| match call.method.as_str() {
        // The finalizer's JSON patch, answered with the job as stored after it.
        "PATCH" => (200, answer.clone()),
        _ => accept(call),
    });
    world
        .writers
        .0
        .apply_watcher_event(&watcher::Event::InitDone);
    world
        .writers
        .1
        .apply_watcher_event(&watcher::Event::InitDone);
    super::reconcile::run_step(&Arc::new(new), &world.ctx)
        .await
        .expect("reconciled");
    let calls = world.calls.all();
    let first = calls.first().map(|c| (c.method.as_str(), c.path.as_str()));
    let job_path = format!("/apis/kubeflow.org/v1{JOB_PATH}");
    assert_eq!(
        first,
        Some(("PATCH", job_path.as_str())),
        "the finalizer first"
    );
    assert_eq!(world.calls.count("POST", "/namespaces/ns/pods"), 3);
    assert_eq!(world.calls.count("POST", "/namespaces/ns/services"), 3);
    assert_eq!(world.calls.count("PUT", STATUS_PATH), 1, "Created written");
}

#[tokio::test]
async fn progress_waits_and_is_written_once_with_the_last_pod_up() {
    let stored = job(RestartPolicy::Never);
    let mut world = World::new(accepting());
    world.cache(children(&stored, ["Running", "Running", "Pending"]));
    let first = apply(Arc::new(stored.clone()), &world.ctx)
        .await
        .expect("reconciled");
    assert_eq!(world.calls.count("PUT", STATUS_PATH), 0, "progress waits");
    assert_ne!(
        first,
        Requeue::await_change(),
        "looked at again when the batch is due"
    );
    world.cache(children(&stored, ["Running", "Running", "Running"]));
    apply(Arc::new(stored), &world.ctx)
        .await
        .expect("reconciled");
    let puts = world.calls.matching("PUT", STATUS_PATH);
    assert_eq!(puts.len(), 1, "one write for all three pods");
    assert_eq!(
        puts[0].body["status"]["replicaStatuses"]["Worker"]["active"],
        2
    );
    assert_eq!(puts[0].body["status"]["replicaStatuses"]["PS"]["active"], 1);
}

#[tokio::test]
async fn own_creates_hide_a_stale_cache_so_nothing_is_created_twice() {
    let stored = job(RestartPolicy::Never);
    let world = World::new(accepting());
    // The caches never catch up in this test: both passes see no pods and no services.
    apply(Arc::new(stored.clone()), &world.ctx)
        .await
        .expect("reconciled");
    apply(Arc::new(stored), &world.ctx)
        .await
        .expect("reconciled");
    assert_eq!(world.calls.count("POST", "/namespaces/ns/pods"), 3);
    assert_eq!(world.calls.count("POST", "/namespaces/ns/services"), 3);
}

#[tokio::test]
async fn own_deletes_hide_a_stale_cache_so_a_restart_is_counted_once() {
    let stored = job(RestartPolicy::OnFailure);
    let mut world = World::new(accepting());
    world.cache(children(&stored, ["Running", "Failed", "Running"]));
    apply(Arc::new(stored.clone()), &world.ctx)
        .await
        .expect("reconciled");
    // The cache still shows the failed pod; our delete hides it, and our status write (one
    // restart) is planned from instead of the cached copy.
    apply(Arc::new(stored), &world.ctx)
        .await
        .expect("reconciled");
    assert_eq!(
        world
            .calls
            .count("DELETE", "/namespaces/ns/pods/j-worker-0"),
        1
    );
    let puts = world.calls.matching("PUT", STATUS_PATH);
    let last = puts.last().map_or(Value::Null, |c| c.body.clone());
    assert_eq!(last["status"]["replicaStatuses"]["Worker"]["restarts"], 1);
    let text = world.ctx.metrics.encode();
    assert!(
        text.contains("training_operator_jobs_restarted_total{job_namespace=\"ns\",framework=\"tensorflow\"} 1"),
        "{text}"
    );
}

/// A job of `stored`'s shape being deleted (our finalizer still on it).
fn being_deleted(stored: &TFJob) -> TFJob {
    let mut job = stored.clone();
    job.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        jiff::Timestamp::now(),
    ));
    job
}

/// The API server's answer to the patch that removes our finalizer: the job, without it.
fn released() -> Answer {
    let mut job = being_deleted(&job(RestartPolicy::Never));
    job.metadata.finalizers = None;
    (200, serde_json::to_value(&job).unwrap_or(Value::Null))
}

/// The API server's answer to a DELETE of a child: the object; a pod named in `terminating`
/// with a grace period of 30 s to run, any other pod deleted with grace period 0.
fn delete_answer(call: &Call, terminating: &[&str]) -> Answer {
    let name = call.path.rsplit('/').next().unwrap_or_default();
    let owner = json!({"apiVersion": "kubeflow.org/v1", "kind": "TFJob", "name": "j",
        "uid": "job-uid", "controller": true, "blockOwnerDeletion": true});
    let mut obj = json!({"apiVersion": "v1", "metadata": {
        "name": name, "namespace": "ns", "uid": format!("uid-{name}"), "resourceVersion": "200",
        "ownerReferences": [owner]}});
    if call.path.contains("/pods/") {
        obj["kind"] = json!("Pod");
        let grace = if terminating.contains(&name) { 30 } else { 0 };
        // The deletionTimestamp is when the grace period ends.
        let ends = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(grace);
        obj["metadata"]["deletionTimestamp"] = json!(ends.to_string());
        obj["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
    } else {
        obj["kind"] = json!("Service");
    }
    (200, obj)
}

/// An API server for a job's cleanup: deletes answered as [`delete_answer`] does, the finalizer
/// patch with the released job, everything else accepted.
fn deleting(terminating: &'static [&'static str]) -> impl FnMut(&Call) -> Answer + Send + 'static {
    let mut accept = accepting();
    move |call| match call.method.as_str() {
        "DELETE" => delete_answer(call, terminating),
        "PATCH" => released(),
        _ => accept(call),
    }
}

#[tokio::test]
async fn a_deleted_job_whose_children_go_at_once_is_released_in_the_same_reconcile() {
    let stored = job(RestartPolicy::Never);
    let mut world = World::new(deleting(&[]));
    world.cache(children(&stored, ["Succeeded", "Succeeded", "Failed"]));
    let requeue = super::deletion::cleanup(Arc::new(being_deleted(&stored)), &world.ctx)
        .await
        .expect("cleaned up");
    assert_eq!(requeue, Requeue::await_change());
    let calls = world.calls.all();
    let deletes = calls.iter().filter(|c| c.method == "DELETE").count();
    assert_eq!(deletes, 6, "three pods and three services");
    let last = calls.last().map(|c| (c.method.as_str(), c.path.as_str()));
    let job_path = format!("/apis/kubeflow.org/v1{JOB_PATH}");
    assert_eq!(last, Some(("PATCH", job_path.as_str())), "released last");
    assert!(
        world.calls.event_reasons().is_empty(),
        "no events about a job going away: {:?}",
        world.calls.event_reasons()
    );
    // The children's deletions reach their watches before the job's removal reaches the TFJob
    // cache: the job is looked at again, and left alone.
    let again = super::deletion::cleanup(Arc::new(being_deleted(&stored)), &world.ctx)
        .await
        .expect("nothing to do");
    assert_eq!(again, Requeue::await_change());
    assert_eq!(
        world.calls.all().len(),
        calls.len(),
        "no request for a released job"
    );
}

#[tokio::test]
async fn a_deleted_job_waits_for_a_terminating_pod_before_its_release() {
    let stored = job(RestartPolicy::Never);
    let mut world = World::new(deleting(&["j-ps-0"]));
    world.cache(children(&stored, ["Running", "Succeeded", "Succeeded"]));
    let deleted = Arc::new(being_deleted(&stored));
    let requeue = super::deletion::cleanup(deleted.clone(), &world.ctx)
        .await
        .expect("cleaned up");
    assert_ne!(requeue, Requeue::await_change(), "looked at again");
    assert_eq!(world.calls.count("PATCH", JOB_PATH), 0, "held");
    // The terminating pod is not deleted again; once the watch shows it gone, the job goes.
    super::deletion::cleanup(deleted.clone(), &world.ctx)
        .await
        .expect("cleaned up");
    assert_eq!(world.calls.count("DELETE", "/pods/j-ps-0"), 1);
    assert_eq!(world.calls.count("PATCH", JOB_PATH), 0, "still held");
    // The watch delivers the deletions (at revisions past our deletes' answers).
    let (mut pods, mut services) = children(&stored, ["Running", "Succeeded", "Succeeded"]);
    for pod in &mut pods {
        pod.metadata.resource_version = Some("201".into());
    }
    for svc in &mut services {
        svc.metadata.resource_version = Some("201".into());
    }
    world.uncache((pods, services));
    let requeue = super::deletion::cleanup(deleted, &world.ctx)
        .await
        .expect("released");
    assert_eq!(requeue, Requeue::await_change());
    assert_eq!(world.calls.count("PATCH", JOB_PATH), 1);
}

/// An API server that accepts every write as `answer` does, and takes the Lease away from
/// `gate` while it handles the first write matching `lost_on` (method and path suffix): the
/// reconcile that sent it is still running. Returns where in the calls that write is.
fn losing_the_lease_on(
    lost_on: (&'static str, &'static str),
    gate: crate::runtime::leader::LeaderGate,
    mut answer: impl FnMut(&Call) -> Answer + Send + 'static,
) -> (
    impl FnMut(&Call) -> Answer + Send + 'static,
    Arc<std::sync::OnceLock<usize>>,
) {
    let lost_at = Arc::new(std::sync::OnceLock::new());
    let mark = lost_at.clone();
    let mut seen = 0;
    let handler = move |call: &Call| {
        if call.is(lost_on.0, lost_on.1) && mark.get().is_none() {
            gate.revoke();
            let _ = mark.set(seen);
        }
        seen += 1;
        answer(call)
    };
    (handler, lost_at)
}

/// The calls that reached the API server after the one during which the Lease was lost, as
/// "METHOD path"; only reads may be among them.
fn after_the_loss(world: &World, lost_at: &std::sync::OnceLock<usize>) -> Vec<String> {
    let at = *lost_at.get().expect("the Lease was lost mid-reconcile");
    world
        .calls
        .all()
        .iter()
        .skip(at + 1)
        .map(|c| format!("{} {}", c.method, c.path))
        .collect()
}

/// A leader's gate, open.
fn leading() -> crate::runtime::leader::LeaderGate {
    let gate = crate::runtime::leader::LeaderGate::for_election();
    gate.open_for_test();
    gate
}

#[tokio::test]
async fn a_lease_lost_mid_creation_lets_no_further_create_event_or_status_write_out() {
    let stored = job(RestartPolicy::Never);
    let gate = leading();
    let (handler, lost_at) = losing_the_lease_on(("POST", "/pods"), gate.clone(), accepting());
    let world = World::with_gate(handler, gate);
    let result = apply(Arc::new(stored), &world.ctx).await;
    assert!(
        matches!(result, Err(super::Error::NotLeader(_))),
        "{result:?}"
    );
    let after = after_the_loss(&world, &lost_at);
    assert!(after.iter().all(|c| c.starts_with("GET ")), "{after:?}");
    assert_eq!(world.calls.count("POST", "/namespaces/ns/pods"), 1);
}

#[tokio::test]
async fn a_lease_lost_during_a_restart_lets_neither_its_event_nor_the_status_write_out() {
    let stored = job(RestartPolicy::OnFailure);
    let gate = leading();
    let (handler, lost_at) =
        losing_the_lease_on(("DELETE", "/pods/j-worker-0"), gate.clone(), accepting());
    let mut world = World::with_gate(handler, gate);
    world.cache(children(&stored, ["Running", "Failed", "Running"]));
    let result = apply(Arc::new(stored), &world.ctx).await;
    assert!(
        matches!(result, Err(super::Error::NotLeader(_))),
        "{result:?}"
    );
    assert_eq!(after_the_loss(&world, &lost_at), Vec::<String>::new());
    assert_eq!(world.calls.count("PUT", STATUS_PATH), 0);
    assert!(world.calls.event_reasons().is_empty());
}

#[tokio::test]
async fn a_lease_lost_during_a_cleanup_keeps_the_finalizer_on_the_job() {
    let stored = job(RestartPolicy::Never);
    let gate = leading();
    let (handler, lost_at) =
        losing_the_lease_on(("DELETE", "/pods/j-ps-0"), gate.clone(), deleting(&[]));
    let mut world = World::with_gate(handler, gate);
    // What is left of the job: one pod, which goes at once.
    let (pods, _) = children(&stored, ["Succeeded", "Succeeded", "Succeeded"]);
    world.cache((pods.into_iter().take(1).collect(), Vec::new()));
    let result = super::deletion::cleanup(Arc::new(being_deleted(&stored)), &world.ctx).await;
    assert!(
        matches!(result, Err(super::Error::NotLeader(_))),
        "{result:?}"
    );
    assert_eq!(after_the_loss(&world, &lost_at), Vec::<String>::new());
    assert_eq!(world.calls.count("PATCH", JOB_PATH), 0, "still held");
}

#[tokio::test]
async fn a_cleanup_deletes_children_only_as_it_saw_them() {
    // The garbage collector orphaned the services (propagationPolicy: Orphan) just before the
    // job's cleanup ran, and the cache does not show it yet: the deletes carry the revision the
    // cache showed, and the API server refuses them (409) instead of deleting orphans.
    let stored = job(RestartPolicy::Never);
    let mut answer = deleting(&[]);
    let mut world = World::new(move |call| {
        if call.method == "DELETE" && call.path.contains("/services/") {
            return fake_api::refused(409, "Conflict");
        }
        answer(call)
    });
    world.cache(children(&stored, ["Succeeded", "Succeeded", "Succeeded"]));
    let result = super::deletion::cleanup(Arc::new(being_deleted(&stored)), &world.ctx).await;
    assert!(
        result.is_ok(),
        "a refused delete is not an error: {result:?}"
    );
    let deletes = world.calls.matching("DELETE", "");
    assert_eq!(deletes.len(), 6);
    for call in &deletes {
        assert_eq!(
            call.body["preconditions"]["resourceVersion"], "5",
            "{}",
            call.path
        );
    }
    assert_eq!(
        world.calls.count("PATCH", JOB_PATH),
        0,
        "services still held it"
    );
}

#[tokio::test]
async fn render_shows_byte_for_byte_what_the_operator_creates_for_the_seed_job() {
    let manifest: serde_json::Value =
        serde_json::from_str(include_str!("../../tests/fixtures/tfjob-seed.json"))
            .expect("the seed fixture is JSON");
    let mut stored: TFJob = serde_json::from_value(manifest.clone()).expect("the seed is a TFJob");
    stored.metadata.uid = Some("seed-uid".into());
    stored.metadata.finalizers = Some(vec![FINALIZER.into()]);
    stored.metadata.resource_version = Some("1".into());
    let world = World::new(accepting());
    apply(Arc::new(stored), &world.ctx)
        .await
        .expect("reconciled");

    let mut submitted = manifest;
    submitted["metadata"]["uid"] = "seed-uid".into();
    let rendered =
        crate::render::render(&submitted, "default", &config().plan).expect("the seed renders");
    let sent = |suffix: &str| -> Vec<Vec<u8>> {
        world
            .calls
            .matching("POST", suffix)
            .into_iter()
            .map(|c| c.raw)
            .collect()
    };
    let pods = sent("/namespaces/kube-test/pods");
    let services = sent("/namespaces/kube-test/services");
    assert!(
        !pods.is_empty() && !services.is_empty(),
        "the operator created the seed's children"
    );
    let rendered_pods: Vec<Vec<u8>> = rendered
        .pods
        .iter()
        .map(|p| serde_json::to_vec(p).expect("a pod serializes"))
        .collect();
    let rendered_services: Vec<Vec<u8>> = rendered
        .services
        .iter()
        .map(|s| serde_json::to_vec(s).expect("a service serializes"))
        .collect();
    assert_eq!(rendered_pods, pods, "pods");
    assert_eq!(rendered_services, services, "services");
}

//! Our operator under the real Kueue (v0.17.0, `tests/cluster/kueue.sh`; issue 15): jobs queued
//! within a quota run one at a time on the flavor's nodes, a higher-priority job preempts a
//! running one, which resumes later, and the Workloads finish. MultiKueue: a job submitted to a
//! manager cluster runs on a worker cluster, its status comes back, and deleting it on the
//! manager removes it on the worker.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::cluster::{TestNs, client_for, has_condition, pod_phase, wait_for};
use common::cluster::{quick_retry, wait_job};
use common::fixtures::merge_patch;
use common::kueue::{ClusterObjects, MULTIKUEUE, PRIORITY_LABEL, QUEUE_LABEL};
use common::kueue::{api, apply, create_namespace, kueue_condition, kueue_dir, name_of};
use common::kueue::{wait_object, worker_dir};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event, Pod, PodSpec, ResourceRequirements, Secret};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use serde_json::json;
use tfjob_operator::api::builder::tfjob;
use tfjob_operator::api::{CleanPodPolicy, TFJob};

const JOB_NAME_LABEL: &str = "training.kubeflow.org/job-name";
const TIMEOUT: Duration = Duration::from_secs(60);

/// A job of 1 PS and 2 Workers, 1 CPU and 256 MiB each, queued in LocalQueue `lq`. Its pods
/// are deleted when it ends (`cleanPodPolicy: Running`, the chart's default): with `None`, the
/// PS and the other workers would run on after Kueue released the job's quota.
fn queued_job(name: &str) -> tfjob_operator::api::builder::TFJobBuilder {
    let requests = |spec: &mut PodSpec| {
        spec.containers[0].resources = Some(ResourceRequirements {
            requests: Some(
                [
                    ("cpu".to_string(), Quantity("1".into())),
                    ("memory".to_string(), Quantity("256Mi".into())),
                ]
                .into(),
            ),
            ..ResourceRequirements::default()
        });
    };
    tfjob(name)
        .ps(1)
        .pod_spec(requests)
        .workers(2)
        .pod_spec(requests)
        .clean_pod_policy(CleanPodPolicy::Running)
        .label(QUEUE_LABEL, "lq")
}

/// A flavor, a ClusterQueue of 3 CPU (one job) for this test's namespace only, and LocalQueue
/// `lq` in it. `node_labels` go on the flavor; the fields of `queue_policy` (e.g.
/// `preemption`, `admissionChecksStrategy`) on the ClusterQueue's spec.
async fn quota_for_one_job(
    t: &TestNs,
    objects: &mut ClusterObjects,
    node_labels: serde_json::Value,
    queue_policy: serde_json::Value,
) -> String {
    let (flavor, cq) = (format!("{}-flavor", t.ns), format!("{}-cq", t.ns));
    objects
        .apply(
            &t.client,
            json!({"kind": "ResourceFlavor", "metadata": {"name": flavor},
                   "spec": {"nodeLabels": node_labels}}),
        )
        .await;
    let mut spec = json!({
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": t.ns}},
        "resourceGroups": [{"coveredResources": ["cpu", "memory"], "flavors": [{
            "name": flavor,
            "resources": [{"name": "cpu", "nominalQuota": "3"},
                          {"name": "memory", "nominalQuota": "3Gi"}]}]}]});
    merge_patch(&mut spec, &queue_policy);
    objects
        .apply(
            &t.client,
            json!({"kind": "ClusterQueue", "metadata": {"name": cq}, "spec": spec}),
        )
        .await;
    apply(
        &t.client,
        json!({"kind": "LocalQueue", "metadata": {"name": "lq", "namespace": t.ns},
               "spec": {"clusterQueue": cq}}),
    )
    .await;
    cq
}

/// A queued job not admitted yet: Suspended, saying it waits for Kueue, without pods.
async fn waits_suspended_without_pods(t: &TestNs, waiting: &str) {
    let job = t.jobs().get(waiting).await.expect("job");
    assert!(has_condition(&job, "Suspended"), "{waiting} is Suspended");
    let said = job
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Suspended"))
        .and_then(|c| c.message.clone())
        .unwrap_or_default();
    assert_eq!(
        said,
        format!(
            "TFJob {waiting} is suspended. Waiting: in Kueue LocalQueue lq, until Kueue admits it (its reason: kubectl get workloads -n {} -o wide).",
            t.ns
        )
    );
    assert!(
        pods_of(t, waiting).await.is_empty(),
        "{waiting} has no pods"
    );
}

/// Whether a pod counts against the quota: not finished and not being deleted.
fn is_live(p: &Pod) -> bool {
    matches!(pod_phase(p), "Pending" | "Running") && p.metadata.deletion_timestamp.is_none()
}

fn job_of(p: &Pod) -> String {
    p.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(JOB_NAME_LABEL))
        .cloned()
        .unwrap_or_default()
}

/// Watches the namespace's pods for the whole test and records the most jobs that had live pods
/// at the same time, in every state the watch showed.
fn record_concurrent_jobs(t: &TestNs) -> (Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let most = Arc::new(AtomicUsize::new(0));
    let (store, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(t.pods(), watcher::Config::default()))
        .backoff(quick_retry());
    let seen = most.clone();
    let task = tokio::spawn(async move {
        futures::pin_mut!(stream);
        while stream.next().await.is_some() {
            let jobs: BTreeSet<String> = store
                .state()
                .iter()
                .filter(|p| is_live(p))
                .map(|p| job_of(p))
                .collect();
            seen.fetch_max(jobs.len(), Ordering::SeqCst);
        }
    });
    (most, task)
}

/// Waits until 3 pods run, all of one job, and returns that job's name.
async fn the_running_job(t: &TestNs) -> String {
    let pods = t.running_pods(3, TIMEOUT).await;
    let jobs: BTreeSet<String> = pods
        .iter()
        .filter(|p| is_live(p))
        .map(|p| job_of(p))
        .collect();
    assert_eq!(
        jobs.len(),
        1,
        "the running pods belong to one job: {jobs:?}"
    );
    jobs.into_iter().next().unwrap_or_default()
}

/// Waits until `job`'s 3 pods are the only live pods.
async fn runs_alone(t: &TestNs, job: &str) {
    wait_for(t.pods(), &format!("{job} running alone"), TIMEOUT, |pods| {
        let live: Vec<_> = pods.iter().filter(|p| is_live(p)).collect();
        live.len() == 3
            && live
                .iter()
                .all(|p| pod_phase(p) == "Running" && job_of(p) == job)
    })
    .await;
}

async fn pods_of(t: &TestNs, job: &str) -> Vec<Pod> {
    t.pods()
        .list(&ListParams::default().labels(&format!("{JOB_NAME_LABEL}={job}")))
        .await
        .expect("list pods")
        .items
}

/// Ends `job` (its worker-0 exits 0) and waits until it Succeeded.
async fn finish_job(t: &TestNs, job: &str) {
    t.exit_pod(&format!("{job}-worker-0"), 0).await;
    wait_job(t, job, &format!("{job} Succeeded"), TIMEOUT, |j| {
        has_condition(j, "Succeeded")
    })
    .await;
}

async fn pod_uids(t: &TestNs, job: &str) -> BTreeSet<String> {
    pods_of(t, job)
        .await
        .into_iter()
        .filter_map(|p| p.metadata.uid)
        .collect()
}

/// Every Workload in the namespace is Finished, and the ClusterQueue uses nothing any more.
async fn quota_released(t: &TestNs, cq: &str, jobs: usize) {
    let workloads = api(&t.client, "Workload", Some(&t.ns))
        .list(&ListParams::default())
        .await
        .expect("list workloads");
    assert_eq!(workloads.items.len(), jobs, "one Workload per job");
    for w in &workloads.items {
        wait_object(
            api(&t.client, "Workload", Some(&t.ns)),
            &name_of(w),
            "Workload Finished",
            TIMEOUT,
            |w| kueue_condition(w, "Finished"),
        )
        .await;
    }
    wait_object(
        api(&t.client, "ClusterQueue", None),
        cq,
        "ClusterQueue with nothing admitted and no usage",
        TIMEOUT,
        |q| {
            let status = &q.data["status"];
            let usage_zero = status["flavorsUsage"].as_array().is_none_or(|fs| {
                fs.iter().all(|f| {
                    f["resources"].as_array().is_none_or(|rs| {
                        rs.iter()
                            .all(|r| r["total"].as_str().is_none_or(|t| t == "0"))
                    })
                })
            });
            status["admittedWorkloads"] == 0 && usage_zero
        },
    )
    .await;
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn queued_jobs_run_one_at_a_time_within_the_quota_on_the_flavors_node() {
    let t = TestNs::new_in(kueue_dir(), "kueue-fifo").await;
    let mut objects = ClusterObjects::new(t.dir.clone());
    let node = "kwok-node-1";
    let cq = quota_for_one_job(
        &t,
        &mut objects,
        json!({"kubernetes.io/hostname": node}),
        json!({}),
    )
    .await;
    let op = t.operator();
    let (most_at_once, recorder) = record_concurrent_jobs(&t);
    let names = ["first", "second", "third"];
    for name in names {
        t.create_job(queued_job(name).build()).await;
    }

    let mut finished: Vec<String> = Vec::new();
    for _ in names {
        let running = the_running_job(&t).await;
        // The pods carry the node selector Kueue injected for the flavor, and run there.
        for p in pods_of(&t, &running).await {
            let spec = p.spec.expect("pod spec");
            let selector = spec.node_selector.unwrap_or_default();
            assert_eq!(
                selector.get("kubernetes.io/hostname").map(String::as_str),
                Some(node)
            );
            assert_eq!(spec.node_name.as_deref(), Some(node));
        }
        // Every job not yet run waits Suspended, without pods.
        for waiting in names
            .iter()
            .filter(|n| **n != running && !finished.iter().any(|f| f == *n))
        {
            waits_suspended_without_pods(&t, waiting).await;
        }
        finish_job(&t, &running).await;
        finished.push(running);
    }
    let order: BTreeSet<&String> = finished.iter().collect();
    assert_eq!(order.len(), 3, "each job ran once: {finished:?}");
    quota_released(&t, &cq, 3).await;
    recorder.abort();
    assert_eq!(
        most_at_once.load(Ordering::SeqCst),
        1,
        "at most one job had live pods at any time"
    );
    t.finish(op).await;
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn a_higher_priority_job_preempts_a_running_one_which_resumes_later() {
    let t = TestNs::new_in(kueue_dir(), "kueue-prio").await;
    let mut objects = ClusterObjects::new(t.dir.clone());
    for (class, value) in [("low", 100), ("high", 1000)] {
        objects
            .apply(
                &t.client,
                json!({"kind": "WorkloadPriorityClass",
                       "metadata": {"name": format!("{}-{class}", t.ns)}, "value": value}),
            )
            .await;
    }
    let cq = quota_for_one_job(
        &t,
        &mut objects,
        json!({}),
        json!({"preemption": {"withinClusterQueue": "LowerPriority"}}),
    )
    .await;
    let op = t.operator();
    let priority = |class: &str| format!("{}-{class}", t.ns);
    let low = queued_job("low").label(PRIORITY_LABEL, &priority("low"));
    t.create_job(low.build()).await;
    runs_alone(&t, "low").await;
    let first_pods = pod_uids(&t, "low").await;

    let high = queued_job("high").label(PRIORITY_LABEL, &priority("high"));
    t.create_job(high.build()).await;
    // Kueue suspends the low job; we delete its pods and say so; the high one runs alone.
    runs_alone(&t, "high").await;
    assert!(
        pod_uids(&t, "low").await.is_empty(),
        "the preempted job's pods are gone"
    );
    wait_job(&t, "low", "low Suspended", TIMEOUT, |j| {
        has_condition(j, "Suspended")
    })
    .await;

    finish_job(&t, "high").await;
    // Readmitted: new pods, and the job runs to its end.
    runs_alone(&t, "low").await;
    wait_job(&t, "low", "low resumed", TIMEOUT, |j| {
        has_condition(j, "Running") && !has_condition(j, "Suspended")
    })
    .await;
    let resumed = pod_uids(&t, "low").await;
    assert!(
        resumed.is_disjoint(&first_pods),
        "pods are new after resuming"
    );
    finish_job(&t, "low").await;
    quota_released(&t, &cq, 2).await;
    t.finish(op).await;
}

/// The manager's side of MultiKueue: the worker's kubeconfig in a Secret of Kueue's namespace,
/// a MultiKueueCluster, MultiKueueConfig and AdmissionCheck, and a quota that uses the check.
async fn dispatch_to_worker(
    manager: &TestNs,
    objects: &mut ClusterObjects,
    worker_kubeconfig: String,
) {
    let name = manager.ns.clone();
    let secrets: Api<Secret> = Api::namespaced(manager.client.clone(), "kueue-system");
    let secret = serde_json::from_value(json!({
        "metadata": {"name": name},
        "stringData": {"kubeconfig": worker_kubeconfig}
    }))
    .expect("secret");
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("worker kubeconfig Secret");
    for doc in [
        json!({"kind": "MultiKueueCluster", "metadata": {"name": name}, "spec": {"clusterSource":
               {"kubeConfig": {"locationType": "Secret", "location": name}}}}),
        json!({"kind": "MultiKueueConfig", "metadata": {"name": name},
               "spec": {"clusters": [name]}}),
        json!({"kind": "AdmissionCheck", "metadata": {"name": name}, "spec": {
               "controllerName": MULTIKUEUE,
               "parameters": {"apiGroup": "kueue.x-k8s.io", "kind": "MultiKueueConfig", "name": name}}}),
    ] {
        objects.apply(&manager.client, doc).await;
    }
    wait_object(
        api(&manager.client, "MultiKueueCluster", None),
        &name,
        "MultiKueueCluster Active",
        TIMEOUT,
        |c| kueue_condition(c, "Active"),
    )
    .await;
    let queue_policy = json!({"admissionChecksStrategy": {"admissionChecks": [{"name": name}]}});
    quota_for_one_job(manager, objects, json!({}), queue_policy).await;
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn multikueue_runs_a_job_on_the_worker_and_brings_its_status_back() {
    let (manager, worker, _objects) = multikueue_pair().await;
    let manager_op = manager.operator();
    let worker_op = worker.operator();

    manager
        .create_job(queued_job("remote").managed_by(MULTIKUEUE).build())
        .await;
    // The worker runs it with our operator; the manager has no pods and no finalizer of ours.
    assert_eq!(the_running_job(&worker).await, "remote");
    let copy: TFJob = worker.jobs().get("remote").await.expect("copy");
    let managed_by = copy.spec.run_policy.and_then(|r| r.managed_by);
    assert_eq!(managed_by, None, "the worker's copy is ours to run");
    finish_job(&worker, "remote").await;
    let on_manager = wait_job(
        &manager,
        "remote",
        "Succeeded on the manager",
        TIMEOUT,
        |j| has_condition(j, "Succeeded"),
    )
    .await;
    assert_eq!(
        manager.children_left().await,
        0,
        "nothing ran on the manager"
    );
    let finalizers = on_manager.metadata.finalizers.unwrap_or_default();
    assert!(
        !finalizers.iter().any(|f| f.starts_with("kubeflow.org/")),
        "the manager's operator left the job alone: {finalizers:?}"
    );

    manager
        .jobs()
        .delete("remote", &DeleteParams::default())
        .await
        .expect("delete on the manager");
    wait_for(worker.jobs(), "the copy deleted", TIMEOUT, |j| j.is_empty()).await;
    wait_for(worker.pods(), "its pods deleted", TIMEOUT, |p| p.is_empty()).await;
    worker.finish(worker_op).await;
    manager.finish(manager_op).await;
}

/// A namespace of the same name on the manager and the worker, the worker's queue and the
/// manager's MultiKueue set-up; the cluster-scoped objects go when the last value is dropped.
async fn multikueue_pair() -> (TestNs, TestNs, (ClusterObjects, ClusterObjects)) {
    let manager = TestNs::new_in(kueue_dir(), "multikueue").await;
    let worker_dir = worker_dir();
    let worker_client = client_for(&worker_dir).await;
    create_namespace(&worker_client, &manager.ns).await;
    let worker = TestNs::adopt(worker_dir.clone(), worker_client, manager.ns.clone());
    let mut manager_objects = ClusterObjects::new(manager.dir.clone());
    let mut worker_objects = ClusterObjects::new(worker_dir.clone());
    // The worker: a plain queue of the same names, so the copied job is admitted there.
    quota_for_one_job(&worker, &mut worker_objects, json!({}), json!({})).await;
    let kubeconfig = std::fs::read_to_string(worker_dir.join("inline.kubeconfig"))
        .expect("inline.kubeconfig (written by tests/cluster/kueue.sh)");
    dispatch_to_worker(&manager, &mut manager_objects, kubeconfig).await;
    (manager, worker, (manager_objects, worker_objects))
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn a_job_kueue_cannot_read_is_not_left_suspended_without_a_word() {
    // No admission policy on this cluster (the chart's `kueue.canonicalReplicaKeys` refuses
    // such a job at `kubectl apply`): Kueue suspends it and finds no replica type it reads.
    let t = TestNs::new_in(kueue_dir(), "kueue-keys").await;
    let mut objects = ClusterObjects::new(t.dir.clone());
    quota_for_one_job(&t, &mut objects, json!({}), json!({})).await;
    let op = t.operator();
    let job = tfjob("lower")
        .replicas("ps", 1)
        .replicas("worker", 1)
        .label(QUEUE_LABEL, "lq")
        .build();
    t.create_job(job).await;
    let events: Api<Event> = t.api();
    let warned = wait_for(events, "a warning about the keys", TIMEOUT, |es| {
        es.iter()
            .any(|e| e.reason.as_deref() == Some("ReplicaKeysUnreadableByKueue"))
    })
    .await;
    let message = warned
        .iter()
        .find_map(|e| e.message.clone().filter(|m| m.contains("Spell")))
        .unwrap_or_default();
    assert!(
        message.contains("Spell ps as PS, worker as Worker."),
        "{message}"
    );
    let job = t.jobs().get("lower").await.expect("job");
    assert!(has_condition(&job, "Suspended"), "Kueue keeps it suspended");
    assert_eq!(t.children_left().await, 0);
    t.finish(op).await;
}

//! Finalizer-guarded deletion on the real control plane: single deletes, collection deletes with
//! label and field selectors, namespace deletion, orphaning, operator restarts, lost nodes, and
//! `release-finalizers`.

mod common;

use std::time::{Duration, Instant};

use common::cluster::{TestNs, has_condition, names, pod_phase, wait_for, wait_job};
use futures::future::join_all;
use k8s_openapi::api::core::v1::{Namespace, Toleration};
use kube::api::{Api, DeleteParams, ListParams, PropagationPolicy};
use kube::{Resource, ResourceExt};
use tfjob_operator::api::builder::{TFJobBuilder, tfjob};
use tfjob_operator::controller::ControllerConfig;
use tfjob_operator::plan::cleanup::FINALIZER;

const T: Duration = Duration::from_secs(90);

/// A job of `workers` workers, labelled `team`.
fn job(name: &str, team: &str, workers: i32) -> TFJobBuilder {
    tfjob(name).label("team", team).workers(workers)
}

async fn create_many(t: &TestNs, prefix: &str, team: &str, n: usize) {
    for chunk in (0..n).collect::<Vec<_>>().chunks(25) {
        join_all(
            chunk
                .iter()
                .map(|i| t.create_job(job(&format!("{prefix}-{i}"), team, 1))),
        )
        .await;
    }
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn single_delete_waits_for_children_and_the_name_is_reusable_at_once() {
    let t = TestNs::new("del-one").await;
    let op = t.operator();
    t.create_job(job("one", "a", 2)).await;
    t.running_pods(2, T).await;
    let j = wait_job(&t, "one", "finalizer added", T, |j| {
        j.finalizers().iter().any(|f| f == FINALIZER)
    })
    .await;
    let first_uid = j.uid().unwrap();
    t.jobs()
        .delete("one", &DeleteParams::default())
        .await
        .unwrap();
    wait_for(t.jobs(), "the TFJob gone", T, |jobs| jobs.is_empty()).await;
    // The finalizer was only removed once the children were gone.
    assert!(
        t.pods()
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty(),
        "pods left behind"
    );
    assert!(
        t.services()
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty(),
        "services left behind"
    );
    // Same name, right away: no clash with old pods.
    t.create_job(job("one", "a", 2)).await;
    t.running_pods(2, T).await;
    let j = wait_job(&t, "one", "Running", T, |j| has_condition(j, "Running")).await;
    assert_ne!(j.uid().unwrap(), first_uid);
    let pods = t.pods().list(&ListParams::default()).await.unwrap().items;
    assert!(
        pods.iter()
            .all(|p| p.owner_references()[0].uid == j.uid().unwrap())
    );
    t.finish(op).await;
}

/// UIDs of the pods whose names start with `prefix`, sorted.
async fn pod_uids(t: &TestNs, prefix: &str) -> Vec<String> {
    let pods = t
        .pods()
        .list(&ListParams::default())
        .await
        .expect("list pods");
    let mut uids: Vec<String> = pods
        .iter()
        .filter(|p| p.name_any().starts_with(prefix))
        .filter_map(ResourceExt::uid)
        .collect();
    uids.sort();
    uids
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn collection_delete_by_label_removes_only_the_selected_jobs() {
    let t = TestNs::new("del-coll").await;
    let n_a: usize = std::env::var("TFJOB_TEST_COLLECTION_SIZE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let op = t.operator();
    create_many(&t, "a", "a", n_a).await;
    create_many(&t, "b", "b", 20).await;
    t.running_pods(n_a + 20, T).await;
    wait_for(t.jobs(), "every job has the finalizer", T, |jobs| {
        jobs.len() == n_a + 20
            && jobs
                .iter()
                .all(|j| j.finalizers().iter().any(|f| f == FINALIZER))
    })
    .await;
    let b_pods_before = pod_uids(&t, "b-").await;
    let start = Instant::now();
    t.jobs()
        .delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels("team=a"),
        )
        .await
        .expect("collection delete accepted");
    wait_for(t.jobs(), "team=a TFJobs gone", T, |jobs| {
        jobs.len() == 20 && jobs.iter().all(|j| j.labels()["team"] == "b")
    })
    .await;
    let jobs_gone = start.elapsed();
    wait_for(t.pods(), "team=a pods gone", T, |p| p.len() == 20).await;
    wait_for(t.services(), "team=a services gone", T, |s| s.len() == 20).await;
    eprintln!(
        "collection delete of {n_a} TFJobs: all TFJobs gone after {jobs_gone:?}, pods and services after {:?}",
        start.elapsed()
    );
    // team=b is untouched: same pods, still running, no deletion timestamps.
    assert_eq!(pod_uids(&t, "").await, b_pods_before);
    let b_pods = t.pods().list(&ListParams::default()).await.unwrap().items;
    assert!(
        b_pods
            .iter()
            .all(|p| p.metadata.deletion_timestamp.is_none() && pod_phase(p) == "Running")
    );
    let b_jobs = t.jobs().list(&ListParams::default()).await.unwrap().items;
    assert!(
        b_jobs
            .iter()
            .all(|j| j.metadata.deletion_timestamp.is_none())
    );
    t.finish(op).await;
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn collection_delete_by_field_selector() {
    let t = TestNs::new("del-field").await;
    let op = t.operator();
    for name in ["x", "y"] {
        t.create_job(job(name, "a", 1)).await;
    }
    t.running_pods(2, T).await;
    wait_for(t.jobs(), "finalizers", T, |jobs| {
        jobs.iter().all(|j| !j.finalizers().is_empty())
    })
    .await;
    t.jobs()
        .delete_collection(
            &DeleteParams::default(),
            &ListParams::default().fields("metadata.name=x"),
        )
        .await
        .unwrap();
    wait_for(t.jobs(), "only y left", T, |jobs| names(jobs) == vec!["y"]).await;
    wait_for(t.pods(), "only y's pod left", T, |p| {
        names(p) == vec!["y-worker-0"]
    })
    .await;
    t.finish(op).await;
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn deleting_the_namespace_finishes() {
    let t = TestNs::new("del-ns").await;
    let op = t.operator();
    for i in 0..5 {
        t.create_job(job(&format!("j{i}"), "a", 2)).await;
    }
    t.running_pods(10, T).await;
    wait_for(t.jobs(), "finalizers", T, |jobs| {
        jobs.len() == 5 && jobs.iter().all(|j| !j.finalizers().is_empty())
    })
    .await;
    let namespaces: Api<Namespace> = Api::all(t.client.clone());
    namespaces
        .delete(&t.ns, &DeleteParams::default())
        .await
        .unwrap();
    let ns = t.ns.clone();
    wait_for(namespaces, "the namespace gone", T, |all| {
        all.iter().all(|n| n.name_any() != ns)
    })
    .await;
    op.stop().await;
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn orphan_propagation_leaves_pods_and_services_ownerless() {
    let t = TestNs::new("del-orphan").await;
    let op = t.operator();
    t.create_job(job("orph", "a", 2)).await;
    t.running_pods(2, T).await;
    // Every child first: the garbage collector orphans only the dependents it knows of, and
    // collects a service created just before the delete (still pointing at the job) with it.
    wait_for(t.services(), "both services", T, |s| s.len() == 2).await;
    wait_for(t.jobs(), "finalizer", T, |jobs| {
        jobs.iter().all(|j| !j.finalizers().is_empty())
    })
    .await;
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Orphan),
        ..Default::default()
    };
    t.jobs().delete("orph", &dp).await.unwrap();
    wait_for(t.jobs(), "the TFJob gone", T, |jobs| jobs.is_empty()).await;
    let pods = wait_for(t.pods(), "pods ownerless", T, |p| {
        p.len() == 2 && p.iter().all(|p| p.owner_references().is_empty())
    })
    .await;
    assert!(
        pods.iter()
            .all(|p| p.metadata.deletion_timestamp.is_none() && pod_phase(p) == "Running")
    );
    wait_for(t.services(), "services ownerless", T, |s| {
        s.len() == 2 && s.iter().all(|s| s.owner_references().is_empty())
    })
    .await;
    t.finish(op).await;
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn cleanup_resumes_after_an_operator_restart() {
    let t = TestNs::new("del-restart").await;
    let op = t.operator();
    create_many(&t, "r", "a", 30).await;
    t.running_pods(30, T).await;
    wait_for(t.jobs(), "finalizers", T, |jobs| {
        jobs.len() == 30 && jobs.iter().all(|j| !j.finalizers().is_empty())
    })
    .await;
    op.stop().await;
    t.jobs()
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await
        .unwrap();
    // Without the operator nothing is released.
    let jobs = t.jobs().list(&ListParams::default()).await.unwrap().items;
    assert_eq!(jobs.len(), 30);
    assert!(jobs.iter().all(|j| j.meta().deletion_timestamp.is_some()));
    let op = t.operator();
    wait_for(t.jobs(), "all TFJobs gone", T, |jobs| jobs.is_empty()).await;
    assert_eq!(t.children_left().await, 0, "pods or services left behind");
    t.finish(op).await;
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn release_finalizers_unblocks_deletion_without_the_operator() {
    let t = TestNs::new("del-release").await;
    let op = t.operator();
    t.create_job(job("stuck", "a", 1)).await;
    t.running_pods(1, T).await;
    wait_for(t.jobs(), "finalizer", T, |jobs| {
        jobs.iter().all(|j| !j.finalizers().is_empty())
    })
    .await;
    op.stop().await;
    t.jobs()
        .delete("stuck", &DeleteParams::default())
        .await
        .unwrap();
    let j = t.jobs().get("stuck").await.unwrap();
    assert!(
        j.meta().deletion_timestamp.is_some(),
        "held by the finalizer"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tfjob-operator"))
        .args(["release-finalizers", "--namespace", &t.ns])
        .env("KUBECONFIG", t.dir.join("kubeconfig"))
        .output()
        .expect("binary runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("released the finalizer of 1 TFJob(s)"));
    wait_for(t.jobs(), "the TFJob gone", T, |jobs| jobs.is_empty()).await;
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn pods_stuck_on_a_lost_node_are_force_deleted() {
    let t = TestNs::new("del-lost").await;
    let op = t.operator_with(ControllerConfig {
        force_delete_after: Duration::from_secs(2),
        ..Default::default()
    });
    let j = job("lost", "a", 1).pod_spec(|pod| {
        pod.node_name = Some("kwok-lost-node".into());
        pod.termination_grace_period_seconds = Some(1);
        pod.tolerations = Some(vec![Toleration {
            key: Some("tfjob-operator.io/lost".into()),
            operator: Some("Exists".into()),
            ..Toleration::default()
        }]);
    });
    t.create_job(j).await;
    t.running_pods(1, T).await;
    wait_for(t.jobs(), "finalizer", T, |jobs| {
        jobs.iter().all(|j| !j.finalizers().is_empty())
    })
    .await;
    let start = Instant::now();
    t.jobs()
        .delete("lost", &DeleteParams::default())
        .await
        .unwrap();
    wait_for(t.jobs(), "the TFJob gone", T, |jobs| jobs.is_empty()).await;
    eprintln!(
        "lost-node pod force-deleted; TFJob gone after {:?}",
        start.elapsed()
    );
    assert!(
        start.elapsed() >= Duration::from_secs(2),
        "force deletion waited for the pod's grace period and ours"
    );
    assert!(
        t.pods()
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    t.finish(op).await;
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn jobs_managed_elsewhere_get_no_finalizer_and_no_pods() {
    let t = TestNs::new("del-managed").await;
    let op = t.operator();
    let j = job("mk", "a", 1).managed_by("kueue.x-k8s.io/multikueue");
    t.create_job(j).await;
    t.create_job(job("ours", "a", 1)).await;
    // Once our own job is running, the operator has certainly seen both.
    t.running_pods(1, T).await;
    let mk = t.jobs().get("mk").await.unwrap();
    assert!(mk.finalizers().is_empty());
    assert!(mk.status.is_none());
    assert_eq!(
        names(&wait_for(t.pods(), "one pod", T, |p| p.len() == 1).await),
        vec!["ours-worker-0"]
    );
    t.finish(op).await;
}

/// A pod of no job: on a node or never schedulable, with a finalizer or not.
fn plain_pod(name: &str, schedulable: bool, finalizer: bool) -> k8s_openapi::api::core::v1::Pod {
    let selector = if schedulable {
        serde_json::json!({})
    } else {
        serde_json::json!({"no-such": "node"})
    };
    let finalizers: &[&str] = if finalizer {
        &["example.com/hold"]
    } else {
        &[]
    };
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "finalizers": finalizers},
        "spec": {"containers": [{"name": "tensorflow", "image": "tf"}], "nodeSelector": selector}
    }))
    .expect("a pod")
}

/// A headless service of no job.
fn plain_service(name: &str) -> k8s_openapi::api::core::v1::Service {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "spec": {"clusterIP": "None", "selector": {"a": "b"}, "ports": [{"port": 2222}]}
    }))
    .expect("a service")
}

/// The rule the operator reads a DELETE answer by (`act::is_still_stored`), checked against
/// the real API server: what it says is gone is gone, what it says is stored is still there.
#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn delete_answers_say_truly_whether_the_object_is_still_stored() {
    use kube::api::{Patch, PatchParams, PostParams};
    use tfjob_operator::controller::is_still_stored;

    let t = TestNs::new("del-answer").await;
    let pods = t.pods();
    let pp = PostParams::default();
    for (name, schedulable, held) in [
        ("running", true, false),
        ("unscheduled", false, false),
        ("held", false, true),
    ] {
        let pod = plain_pod(name, schedulable, held);
        pods.create(&pp, &pod).await.unwrap();
    }
    t.services()
        .create(&pp, &plain_service("headless"))
        .await
        .unwrap();
    t.running_pods(1, T).await;

    let dp = DeleteParams::default();
    let mut verdicts = Vec::new();
    for name in ["running", "unscheduled", "held"] {
        let answer = pods
            .delete(name, &dp)
            .await
            .unwrap()
            .left()
            .expect("the pod");
        let stored = pods.get_opt(name).await.unwrap().is_some();
        verdicts.push((name, is_still_stored(&answer), stored));
    }
    let answer = t.services().delete("headless", &dp).await.unwrap();
    let answer = answer.left().expect("the service");
    let stored = t.services().get_opt("headless").await.unwrap().is_some();
    verdicts.push(("headless", is_still_stored(&answer), stored));
    let said: Vec<(&str, bool)> = verdicts.iter().map(|&(n, said, _)| (n, said)).collect();
    assert_eq!(
        said,
        vec![
            ("running", true),
            ("unscheduled", false),
            ("held", true),
            ("headless", false),
        ],
        "a running pod has its grace period, a held pod its finalizer; the others go at once"
    );
    for (name, said_stored, found) in verdicts {
        // A running pod may be gone by the time of the GET (the kubelet, here kwok, stops it
        // at once); nothing said to be gone may still be found.
        assert!(said_stored || !found, "{name}: said gone, still found");
    }
    assert!(pods.get_opt("held").await.unwrap().is_some(), "held");
    let release = serde_json::json!({"metadata": {"finalizers": null}});
    pods.patch("held", &PatchParams::default(), &Patch::Merge(&release))
        .await
        .unwrap();
    // Gone already, or terminating for its grace period.
    let _ = pods
        .delete("running", &DeleteParams::default().grace_period(0))
        .await;
    wait_for(pods, "the test's pods gone", T, |p| p.is_empty()).await;
}

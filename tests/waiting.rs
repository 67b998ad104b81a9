//! Issue 31 (part): a job whose pods cannot start says why — the scheduler's own message for an
//! unschedulable pod, the kubelet's for an image that cannot be pulled (kwok cannot pull, so
//! the status is patched as the kubelet writes it) — in the message of its current condition
//! and in one Warning per cause, and forgets it when the cause goes.

mod common;

use common::cluster::condition_message as message;

use std::time::Duration;

use common::cluster::{TestNs, has_condition, wait_for, wait_job};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;
use tfjob_operator::api::builder::tfjob;

const T: Duration = Duration::from_secs(90);

/// Warning events on the namespace's TFJobs with `reason`.
async fn warnings(t: &TestNs, reason: &str) -> Vec<String> {
    let events = t
        .api::<Event>()
        .list(&Default::default())
        .await
        .expect("events");
    events
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .filter(|e| e.regarding.as_ref().and_then(|r| r.kind.as_deref()) == Some("TFJob"))
        .filter_map(|e| e.note)
        .collect()
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn an_unschedulable_pod_is_named_with_the_schedulers_message_until_a_node_fits() {
    let t = TestNs::new("waiting").await;
    let op = t.operator();
    let label = format!("tfjob-test/pool-{}", t.ns);
    let selector = label.clone();
    t.create_job(tfjob("w").workers(1).pod_spec(move |s| {
        s.node_selector = Some([(selector, "true".into())].into());
    }))
    .await;
    let job = wait_job(&t, "w", "the cause in the message", T, |j| {
        message(j).contains("Waiting: Worker 0 (pod w-worker-0) cannot be scheduled: 0/")
    })
    .await;
    eprintln!("message: {}", message(&job));
    assert!(message(&job).starts_with("TFJob w is created. Waiting: "));
    assert!(message(&job).contains("didn't match Pod's node affinity/selector"));
    // Status writes and reconciles go on (the scheduler retries, the pod is patched): the
    // Warning is said once while the cause stays.
    for i in 0..5 {
        let touch = json!({"metadata": {"annotations": {"touch": i.to_string()}}});
        t.pods()
            .patch("w-worker-0", &PatchParams::default(), &Patch::Merge(&touch))
            .await
            .expect("touched");
    }
    wait_for(t.api::<Event>(), "the Warning", T, |events| {
        events
            .iter()
            .any(|e| e.reason.as_deref() == Some("Unschedulable"))
    })
    .await;
    // A node that fits: the pod runs and the words go.
    let node_name = format!("kwok-{}", t.ns);
    let node: Node = serde_json::from_value(json!({
        "metadata": {"name": node_name,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {"type": "kwok", "kubernetes.io/hostname": node_name, label: "true"}},
    }))
    .expect("node");
    let nodes: kube::Api<Node> = kube::Api::all(t.client.clone());
    nodes
        .create(&PostParams::default(), &node)
        .await
        .expect("node");
    let job = wait_job(&t, "w", "Running, the cause gone", T, |j| {
        !message(j).contains("Waiting:") && message(j).ends_with("is running.")
    })
    .await;
    let created = job
        .status
        .as_ref()
        .and_then(|s| s.conditions.first())
        .cloned();
    assert_eq!(
        created.and_then(|c| c.message).as_deref(),
        Some("TFJob w is created.")
    );
    let said = warnings(&t, "Unschedulable").await;
    assert_eq!(said.len(), 1, "one Warning for the cause: {said:?}");
    let _ = nodes.delete(&node_name, &Default::default()).await;
    t.finish(op).await;
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn an_image_that_cannot_be_pulled_is_named_and_forgotten_when_it_runs() {
    let t = TestNs::new("waiting-image").await;
    let op = t.operator();
    t.create_job(tfjob("img").workers(1)).await;
    t.running_pods(1, T).await;
    // Running stored first, so the cause is a change of the Running condition's message alone
    // (a change that batching could let wait; its Warning must still be said once).
    wait_job(&t, "img", "Running", T, |j| has_condition(j, "Running")).await;
    // As the kubelet writes it, when the image of a recreated pod is gone (kwok pulls nothing).
    let back_off = json!({"status": {"phase": "Pending", "containerStatuses": [{
        "name": "tensorflow", "image": "tensorflow/tensorflow:2.15.0", "imageID": "",
        "ready": false, "restartCount": 0,
        "state": {"waiting": {"reason": "ImagePullBackOff",
            "message": "Back-off pulling image \"tensorflow/tensorflow:2.15.0\""}}}]}});
    t.pods()
        .patch_status(
            "img-worker-0",
            &PatchParams::default(),
            &Patch::Merge(&back_off),
        )
        .await
        .expect("status patched");
    let job = wait_job(&t, "img", "the cause in the message", T, |j| {
        message(j).contains("cannot start (ImagePullBackOff)")
    })
    .await;
    assert!(
        message(&job).ends_with(
            "Waiting: Worker 0 (pod img-worker-0) cannot start (ImagePullBackOff): \
             Back-off pulling image \"tensorflow/tensorflow:2.15.0\"."
        ),
        "{}",
        message(&job)
    );
    let running = json!({"status": {"phase": "Running", "containerStatuses": [{
        "name": "tensorflow", "image": "tensorflow/tensorflow:2.15.0", "imageID": "",
        "ready": true, "restartCount": 0,
        "state": {"running": {"startedAt": "2026-12-06T00:00:00Z"}}}]}});
    t.pods()
        .patch_status(
            "img-worker-0",
            &PatchParams::default(),
            &Patch::Merge(&running),
        )
        .await
        .expect("status patched");
    wait_job(&t, "img", "the cause gone", T, |j| {
        !message(j).contains("Waiting:")
    })
    .await;
    assert_eq!(warnings(&t, "ImagePullBackOff").await.len(), 1);
    t.finish(op).await;
}

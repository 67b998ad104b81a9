//! One bad TFJob must never hurt the others, and nothing fails silently (issue 13), on the real
//! control plane.

mod common;

use std::time::Duration;

use common::cluster::{TestNs, has_condition, wait_for, wait_job};
use k8s_openapi::api::core::v1::{ConfigMap, EnvVar, Pod};
use k8s_openapi::api::events::v1::Event;
use kube::ResourceExt;
use kube::api::PostParams;
use serde_json::json;
use tfjob_operator::api::ReplicaType;
use tfjob_operator::api::builder::tfjob;
use tfjob_operator::api::labels::replica_labels;
use tfjob_operator::controller::ControllerConfig;

const T: Duration = Duration::from_secs(90);

fn config(edit: impl FnOnce(&mut ControllerConfig)) -> ControllerConfig {
    let mut config = ControllerConfig::default();
    edit(&mut config);
    config
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn a_job_over_the_replica_limit_fails_and_the_others_run() {
    let t = TestNs::new("rel-limit").await;
    let op = t.operator_with(config(|c| c.plan.max_replicas_per_job = 5));
    t.create_job(tfjob("huge").ps(1).workers(5)).await;
    t.create_job(tfjob("small").ps(1).workers(1)).await;
    let huge = wait_job(&t, "huge", "Failed", T, |j| has_condition(j, "Failed")).await;
    let failed = huge
        .status
        .as_ref()
        .and_then(|s| s.conditions.last().cloned())
        .expect("a condition");
    assert_eq!(failed.reason.as_deref(), Some("TFJobTooManyReplicas"));
    assert!(
        failed
            .message
            .as_deref()
            .is_some_and(|m| m.contains("asks for 6 pods, more than this operator's limit of 5")),
        "{failed:?}"
    );
    wait_job(&t, "small", "Running", T, |j| has_condition(j, "Running")).await;
    let pods = t.listed_pods().await;
    assert!(
        pods.iter().all(|p| p.name_any().starts_with("small-")),
        "no pod of the refused job"
    );
    wait_for(t.api::<Event>(), "the Warning event", T, |events| {
        events
            .iter()
            .any(|e| e.reason.as_deref() == Some("TFJobTooManyReplicas"))
    })
    .await;
    t.finish(op).await;
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn pods_of_a_large_job_are_created_over_several_passes() {
    let t = TestNs::new("rel-batch").await;
    let op = t.operator_with(config(|c| c.plan.max_creates_per_pass = 4));
    t.create_job(tfjob("wide").ps(1).workers(12)).await;
    t.create_job(tfjob("narrow").workers(1)).await;
    t.running_pods(14, T).await;
    wait_job(&t, "wide", "Running", T, |j| {
        has_condition(j, "Running")
            && j.status.as_ref().is_some_and(|s| {
                s.replica_statuses
                    .get("Worker")
                    .is_some_and(|w| w.active == 12)
            })
    })
    .await;
    wait_for(t.services(), "one service per pod", T, |s| s.len() == 14).await;
    t.finish(op).await;
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn a_long_api_error_still_reaches_the_user_as_an_event() {
    let t = TestNs::new("rel-event").await;
    let op = t.operator();
    // Sixty invalid environment variable names ('=' is never allowed): the API server refuses
    // every pod with a message far longer than an event note may be.
    let env: Vec<EnvVar> = (0..60)
        .map(|i| EnvVar {
            name: format!("NOT={i}"),
            value: Some("x".into()),
            value_from: None,
        })
        .collect();
    let job = tfjob("noisy").workers(1).pod_spec(|pod| {
        pod.containers[0].env = Some(env);
    });
    t.create_job(job).await;
    let events = wait_for(t.api::<Event>(), "a FailedCreatePod event", T, |events| {
        events
            .iter()
            .any(|e| e.reason.as_deref() == Some("FailedCreatePod"))
    })
    .await;
    let note = events
        .iter()
        .find(|e| e.reason.as_deref() == Some("FailedCreatePod"))
        .and_then(|e| e.note.clone())
        .unwrap_or_default();
    assert!(note.len() <= 1024, "{} bytes", note.len());
    assert!(note.starts_with("Error creating pod"), "{note}");
    assert!(note.ends_with("[... message truncated]"), "{note}");
    t.finish(op).await;
}

/// A pod named and labelled as worker `index` of `job` would be, with `owner` as its
/// controller (none when None), created directly.
async fn pod_like_workers(t: &TestNs, job: &str, index: i32, owner: Option<&ConfigMap>) -> Pod {
    let labels = replica_labels(job, ReplicaType::Worker, index);
    let owners: Vec<serde_json::Value> = owner
        .map(|o| {
            json!({"apiVersion": "v1", "kind": "ConfigMap", "name": o.name_any(),
                   "uid": o.uid().unwrap_or_default(), "controller": true})
        })
        .into_iter()
        .collect();
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": format!("{job}-worker-{index}"), "labels": labels,
                     "ownerReferences": owners},
        "spec": {"containers": [{"name": "tensorflow", "image": "tf"}]}
    }))
    .expect("a pod");
    t.pods()
        .create(&PostParams::default(), &pod)
        .await
        .expect("pod created")
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn a_pod_with_the_jobs_labels_and_no_controller_is_adopted() {
    let t = TestNs::new("rel-adopt").await;
    let orphan = pod_like_workers(&t, "adopt", 0, None).await;
    let op = t.operator();
    let job = t.create_job(tfjob("adopt").workers(1)).await;
    wait_job(&t, "adopt", "Running", T, |j| has_condition(j, "Running")).await;
    let pods = wait_for(t.pods(), "the orphan adopted", T, |pods| {
        pods.iter().any(|p| {
            p.owner_references()
                .iter()
                .any(|o| o.controller == Some(true) && Some(&o.uid) == job.uid().as_ref())
        })
    })
    .await;
    assert_eq!(pods.len(), 1, "adopted, not recreated");
    assert_eq!(pods[0].uid(), orphan.uid(), "the same pod");
    t.finish(op).await;
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn a_pod_controlled_by_another_is_left_alone_and_the_job_says_so() {
    let t = TestNs::new("rel-squat").await;
    let owner: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "squatter"}})).expect("a config map");
    let owner = t
        .api::<ConfigMap>()
        .create(&PostParams::default(), &owner)
        .await
        .expect("owner created");
    let squatter = pod_like_workers(&t, "squat", 0, Some(&owner)).await;
    let op = t.operator();
    t.create_job(tfjob("squat").workers(2)).await;
    let job = wait_job(&t, "squat", "Running=False (conflict)", T, |j| {
        j.status.as_ref().is_some_and(|s| {
            s.conditions.iter().any(|c| {
                c.type_ == "Running"
                    && c.status == "False"
                    && c.reason.as_deref() == Some("TFJobChildConflict")
            })
        })
    })
    .await;
    assert!(!has_condition(&job, "Running"), "not reported Running");
    wait_for(
        t.api::<Event>(),
        "a warning naming the owner",
        T,
        |events| {
            events.iter().any(|e| {
                e.reason.as_deref() == Some("FailedCreatePod")
                    && e.note
                        .as_deref()
                        .is_some_and(|n| n.contains("ConfigMap/squatter"))
            })
        },
    )
    .await;
    let now = t.pods().get("squat-worker-0").await.expect("still there");
    assert_eq!(now.uid(), squatter.uid(), "never deleted");
    assert_eq!(now.owner_references().len(), 1, "never adopted");
    t.finish(op).await;
}

//! The reconciler on the real control plane: kwok runs the pods, tests choose exit codes.

mod common;

use std::time::Duration;

use common::cluster::{
    TestNs, condition_types, has_condition, names, pod_phase, wait_for, wait_job,
};
use common::fixtures::fixture_job;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Patch, PatchParams};
use serde_json::json;
use tfjob_operator::api::builder::tfjob;
use tfjob_operator::api::{RestartPolicy, SuccessPolicy};

const T: Duration = Duration::from_secs(60);

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn seed_job_runs_with_two_pods_two_services_and_upstream_tf_config() {
    let t = TestNs::new("seed-run").await;
    let op = t.operator();
    t.create_job(fixture_job("tfjob-seed.json")).await;
    let job = wait_job(&t, "tfjob-test", "Running", T, |j| {
        has_condition(j, "Running")
    })
    .await;
    assert_eq!(
        condition_types(&job),
        vec![
            ("Created".into(), "True".into()),
            ("Running".into(), "True".into())
        ]
    );
    let pods = t.running_pods(2, T).await;
    assert_eq!(names(&pods), vec!["tfjob-test-ps-0", "tfjob-test-worker-0"]);
    let svcs = wait_for(t.services(), "2 services", T, |s| s.len() == 2).await;
    assert_eq!(names(&svcs), vec!["tfjob-test-ps-0", "tfjob-test-worker-0"]);
    let worker = pods
        .iter()
        .find(|p| p.name_any() == "tfjob-test-worker-0")
        .unwrap();
    let env = worker.spec.as_ref().unwrap().containers[0]
        .env
        .clone()
        .unwrap();
    let tf_config = env
        .iter()
        .find(|e| e.name == "TF_CONFIG")
        .unwrap()
        .value
        .clone()
        .unwrap();
    assert_eq!(
        tf_config,
        format!(
            r#"{{"cluster":{{"ps":["tfjob-test-ps-0.{ns}.svc:2222"],"worker":["tfjob-test-worker-0.{ns}.svc:2222"]}},"task":{{"type":"worker","index":0}},"environment":"cloud"}}"#,
            ns = t.ns
        )
    );
    let labels = worker.labels();
    assert_eq!(labels["training.kubeflow.org/job-role"], "master");
    assert_eq!(labels["training.kubeflow.org/replica-type"], "worker");
    let job = t.jobs().get("tfjob-test").await.unwrap();
    let rs = &job.status.unwrap().replica_statuses;
    assert_eq!((rs["PS"].active, rs["Worker"].active), (1, 1));
    t.finish(op).await;
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn worker0_success_succeeds_the_job_and_cleans_the_ps() {
    let t = TestNs::new("success").await;
    let op = t.operator();
    t.create_job(tfjob("mnist").ps(1).workers(2)).await;
    t.running_pods(3, T).await;
    wait_job(&t, "mnist", "Running", T, |j| has_condition(j, "Running")).await;
    t.exit_pod("mnist-worker-0", 0).await;
    let job = wait_job(&t, "mnist", "Succeeded", T, |j| {
        has_condition(j, "Succeeded")
    })
    .await;
    assert_eq!(
        condition_types(&job),
        vec![
            ("Created".into(), "True".into()),
            ("Running".into(), "False".into()),
            ("Succeeded".into(), "True".into())
        ]
    );
    assert!(job.status.as_ref().unwrap().completion_time.is_some());
    // cleanPodPolicy Running (our default): the PS and worker-1 go, the completed worker-0 stays.
    let pods = wait_for(t.pods(), "only the completed worker left", T, |pods| {
        names(pods) == vec!["mnist-worker-0"]
    })
    .await;
    assert_eq!(pod_phase(&pods[0]), "Succeeded");
    wait_for(t.services(), "only worker-0's service left", T, |s| {
        names(s) == vec!["mnist-worker-0"]
    })
    .await;
    t.finish(op).await;
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn chief_decides_success() {
    let t = TestNs::new("chief").await;
    let op = t.operator();
    t.create_job(tfjob("cj").chief(1).workers(1)).await;
    t.running_pods(2, T).await;
    t.exit_pod("cj-worker-0", 0).await;
    wait_for(t.pods(), "worker done", T, |p| {
        p.iter()
            .any(|p| p.name_any() == "cj-worker-0" && pod_phase(p) == "Succeeded")
    })
    .await;
    let j = t.jobs().get("cj").await.unwrap();
    assert!(
        !has_condition(&j, "Succeeded"),
        "worker-0 must not decide when a chief exists"
    );
    t.exit_pod("cj-chief-0", 0).await;
    wait_job(&t, "cj", "Succeeded", T, |j| has_condition(j, "Succeeded")).await;
    t.finish(op).await;
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn all_workers_success_policy_waits_for_every_worker() {
    let t = TestNs::new("allworkers").await;
    let op = t.operator();
    let j = tfjob("aw")
        .workers(2)
        .success_policy(SuccessPolicy::AllWorkers);
    t.create_job(j).await;
    t.running_pods(2, T).await;
    t.exit_pod("aw-worker-0", 0).await;
    wait_for(t.pods(), "worker-0 done", T, |p| {
        p.iter()
            .any(|p| p.name_any() == "aw-worker-0" && pod_phase(p) == "Succeeded")
    })
    .await;
    assert!(!has_condition(
        &t.jobs().get("aw").await.unwrap(),
        "Succeeded"
    ));
    t.exit_pod("aw-worker-1", 0).await;
    wait_job(&t, "aw", "Succeeded", T, |j| has_condition(j, "Succeeded")).await;
    t.finish(op).await;
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn never_policy_exit_1_fails_the_job() {
    let t = TestNs::new("never").await;
    let op = t.operator();
    t.create_job(
        tfjob("nv")
            .ps(1)
            .restart(RestartPolicy::Never)
            .workers(1)
            .restart(RestartPolicy::Never),
    )
    .await;
    t.running_pods(2, T).await;
    t.exit_pod("nv-ps-0", 1).await;
    let j = wait_job(&t, "nv", "Failed", T, |j| has_condition(j, "Failed")).await;
    let last = j.status.unwrap().conditions.last().cloned().unwrap();
    assert_eq!(last.reason.as_deref(), Some("TFJobFailed"));
    assert_eq!(
        last.message.unwrap(),
        format!(
            "TFJob {}/nv has failed because 1 PS replica(s) failed. \
             PS 0 (pod nv-ps-0) exited with code 1 (Error).",
            t.ns
        )
    );
    t.finish(op).await;
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn exit_code_137_recreates_the_pod_then_runs_again() {
    let t = TestNs::new("exit137").await;
    let op = t.operator();
    t.create_job(tfjob("ec").workers(1).restart(RestartPolicy::ExitCode))
        .await;
    let first = t.running_pods(1, T).await[0].uid().unwrap();
    wait_job(&t, "ec", "Running", T, |j| has_condition(j, "Running")).await;
    t.exit_pod("ec-worker-0", 137).await;
    let j = wait_job(&t, "ec", "Restarting", T, |j| {
        has_condition(j, "Restarting")
    })
    .await;
    assert_eq!(
        j.status.as_ref().unwrap().replica_statuses["Worker"].restarts,
        1
    );
    let pods = wait_for(t.pods(), "a new worker-0 running", T, |pods| {
        pods.iter().any(|p| {
            p.name_any() == "ec-worker-0" && p.uid().unwrap() != first && pod_phase(p) == "Running"
        })
    })
    .await;
    assert_eq!(pods.len(), 1);
    let j = wait_job(&t, "ec", "Running again", T, |j| {
        has_condition(j, "Running")
    })
    .await;
    assert!(!has_condition(&j, "Restarting") && !has_condition(&j, "Failed"));
    t.finish(op).await;
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn exit_code_1_fails_the_job() {
    let t = TestNs::new("exit1").await;
    let op = t.operator();
    t.create_job(tfjob("ef").workers(2).restart(RestartPolicy::ExitCode))
        .await;
    t.running_pods(2, T).await;
    t.exit_pod("ef-worker-1", 1).await;
    let j = wait_job(&t, "ef", "Failed", T, |j| has_condition(j, "Failed")).await;
    assert_eq!(
        j.status
            .unwrap()
            .conditions
            .last()
            .unwrap()
            .message
            .as_deref(),
        Some(
            "job \"ef\" is failing because \"Worker\" replica(s) failed. \
             Worker 1 (pod ef-worker-1) exited with code 1 (Error)."
        )
    );
    t.finish(op).await;
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn backoff_limit_reached_fails_with_upstream_message() {
    let t = TestNs::new("backoff").await;
    let op = t.operator();
    let j = tfjob("bo").workers(1).restart(RestartPolicy::ExitCode);
    let j = j.backoff_limit(1);
    t.create_job(j).await;
    t.running_pods(1, T).await;
    t.exit_pod("bo-worker-0", 137).await; // first retry: allowed
    wait_job(&t, "bo", "1 restart", T, |j| {
        j.status.as_ref().is_some_and(|s| {
            s.replica_statuses
                .get("Worker")
                .is_some_and(|w| w.restarts == 1)
        })
    })
    .await;
    let pods = wait_for(t.pods(), "the recreated worker running", T, |pods| {
        pods.iter().any(|p| {
            pod_phase(p) == "Running"
                && p.metadata
                    .annotations
                    .as_ref()
                    .is_none_or(|a| !a.contains_key("test.tfjob-operator.io/exit-code"))
        })
    })
    .await;
    assert_eq!(pods.len(), 1);
    t.exit_pod("bo-worker-0", 137).await; // second failure: over the limit
    let j = wait_job(&t, "bo", "Failed", T, |j| has_condition(j, "Failed")).await;
    assert_eq!(
        j.status
            .unwrap()
            .conditions
            .last()
            .unwrap()
            .message
            .as_deref(),
        Some("Job bo has failed because it has reached the specified backoff limit")
    );
    // cleanPodPolicy Running (the default here) deletes running pods only: the failed worker
    // stays, with its logs (upstream v1.9.4, kubeflow/trainer#3419; before, every pod went).
    let pods = t.listed_pods().await;
    let phases: Vec<&str> = pods.iter().map(pod_phase).collect();
    assert_eq!(phases, ["Failed"]);
    t.finish(op).await;
}

/// Marks pod `name` Failed as the kubelet marks a pod it evicted (kwok cannot evict).
async fn evict(t: &TestNs, name: &str) {
    let status = serde_json::json!({"status": {
        "phase": "Failed", "reason": "Evicted",
        "message": "The node was low on resource: memory.",
        "conditions": [{"type": "DisruptionTarget", "status": "True",
                        "reason": "TerminationByKubelet", "lastTransitionTime": "2026-12-06T00:00:00Z"}]}});
    t.pods()
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap_or_else(|e| panic!("evicting {name}: {e}"));
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn an_evicted_pod_is_recreated_without_spending_the_backoff_limit() {
    let t = TestNs::new("evicted").await;
    let op = t.operator();
    for (name, policy) in [
        ("of", RestartPolicy::OnFailure),
        ("ec", RestartPolicy::ExitCode),
    ] {
        let job = tfjob(name).workers(1).restart(policy).backoff_limit(0);
        t.create_job(job).await;
    }
    t.running_pods(2, T).await;
    let first = |pods: &[std::sync::Arc<Pod>], name: &str| {
        pods.iter()
            .find(|p| p.metadata.name.as_deref() == Some(name))
            .and_then(|p| p.metadata.uid.clone())
    };
    let before = t.pods().list(&Default::default()).await.expect("pods");
    let before: Vec<std::sync::Arc<Pod>> = before.items.into_iter().map(Into::into).collect();
    for name in ["of", "ec"] {
        evict(&t, &format!("{name}-worker-0")).await;
    }
    // Recreated (a new UID), Running again, the job not failed and no restart counted.
    wait_for(t.pods(), "both pods recreated and running", T, |pods| {
        ["of", "ec"].iter().all(|name| {
            let pod = format!("{name}-worker-0");
            pods.iter().any(|p| {
                p.metadata.name.as_deref() == Some(pod.as_str())
                    && pod_phase(p) == "Running"
                    && p.metadata.uid != first(&before, &pod)
            })
        })
    })
    .await;
    for name in ["of", "ec"] {
        let job = wait_job(&t, name, "Running again", T, |j| {
            has_condition(j, "Running")
        })
        .await;
        let status = job.status.expect("status");
        let failed = tfjob_operator::plan::conditions::is_true(&status, "Failed");
        assert!(!failed, "{name}");
        assert_eq!(status.replica_statuses["Worker"].restarts, 0, "{name}");
    }
    // A failure of the program itself still counts: at backoffLimit 0 the job fails.
    t.exit_pod("of-worker-0", 1).await;
    wait_job(&t, "of", "Failed", T, |j| has_condition(j, "Failed")).await;
    t.finish(op).await;
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn active_deadline_fails_the_job_on_time_without_other_events() {
    let t = TestNs::new("deadline").await;
    let op = t.operator();
    let j = tfjob("dl").workers(1);
    let j = j.active_deadline_seconds(5);
    t.create_job(j).await;
    t.running_pods(1, T).await;
    let j = wait_job(&t, "dl", "Failed", Duration::from_secs(30), |j| {
        has_condition(j, "Failed")
    })
    .await;
    let st = j.status.unwrap();
    let failed = st.conditions.last().unwrap();
    assert_eq!(
        failed.message.as_deref(),
        Some("Job dl has failed because it was active longer than specified deadline")
    );
    let start = st.start_time.unwrap().0;
    let at = failed.last_transition_time.clone().unwrap().0;
    let late = at.as_millisecond() - start.as_millisecond() - 5000;
    eprintln!("deadline enforced {late} ms after it passed");
    assert!(
        (0..=2000).contains(&late),
        "deadline enforced {late} ms late"
    );
    t.finish(op).await;
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn ttl_deletes_the_finished_job_on_time() {
    let t = TestNs::new("ttl").await;
    let op = t.operator();
    let j = tfjob("tt").workers(1);
    let j = j.ttl_seconds_after_finished(3);
    t.create_job(j).await;
    t.running_pods(1, T).await;
    t.exit_pod("tt-worker-0", 0).await;
    let done = wait_job(&t, "tt", "Succeeded", T, |j| has_condition(j, "Succeeded")).await;
    let completed = done.status.unwrap().completion_time.unwrap().0;
    wait_for(
        t.jobs(),
        "the TFJob deleted by its TTL",
        Duration::from_secs(30),
        <[_]>::is_empty,
    )
    .await;
    let after = jiff::Timestamp::now().as_millisecond() - completed.as_millisecond();
    eprintln!("TTL 3 s: job gone {after} ms after completion");
    assert!(
        (3000..=6000).contains(&after),
        "job deleted {after} ms after completion"
    );
    t.finish(op).await;
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn suspend_deletes_pods_and_resume_recreates_them() {
    let t = TestNs::new("suspend").await;
    let op = t.operator();
    t.create_job(tfjob("sp").ps(1).workers(1)).await;
    t.running_pods(2, T).await;
    wait_job(&t, "sp", "Running", T, |j| has_condition(j, "Running")).await;
    let patch = |v: bool| Patch::Merge(json!({"spec": {"runPolicy": {"suspend": v}}}));
    t.jobs()
        .patch("sp", &PatchParams::default(), &patch(true))
        .await
        .unwrap();
    let j = wait_job(&t, "sp", "Suspended", T, |j| has_condition(j, "Suspended")).await;
    assert_eq!(
        condition_types(&j),
        vec![
            ("Created".into(), "True".into()),
            ("Running".into(), "False".into()),
            ("Suspended".into(), "True".into())
        ]
    );
    wait_for(t.pods(), "no pods while suspended", T, <[_]>::is_empty).await;
    wait_for(t.services(), "no services while suspended", T, |s| {
        s.is_empty()
    })
    .await;
    t.jobs()
        .patch("sp", &PatchParams::default(), &patch(false))
        .await
        .unwrap();
    t.running_pods(2, T).await;
    let j = wait_job(&t, "sp", "Running after resume", T, |j| {
        has_condition(j, "Running")
    })
    .await;
    let suspended = j
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Suspended")
        .unwrap();
    assert_eq!(
        (suspended.status.as_str(), suspended.reason.as_deref()),
        ("False", Some("TFJobResumed"))
    );
    t.finish(op).await;
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn scaling_workers_down_deletes_the_highest_indices() {
    let t = TestNs::new("scale").await;
    let op = t.operator();
    t.create_job(tfjob("sc").workers(3)).await;
    t.running_pods(3, T).await;
    t.jobs()
        .patch(
            "sc",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"tfReplicaSpecs": {"Worker": {"replicas": 1}}}})),
        )
        .await
        .unwrap();
    wait_for(t.pods(), "only worker-0", T, |p| {
        names(p) == vec!["sc-worker-0"]
    })
    .await;
    wait_for(t.services(), "only worker-0's service", T, |s| {
        names(s) == vec!["sc-worker-0"]
    })
    .await;
    t.finish(op).await;
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn restarting_the_operator_creates_no_duplicates_and_keeps_status() {
    let t = TestNs::new("restart").await;
    let op = t.operator();
    t.create_job(
        tfjob("rs")
            .ps(1)
            .workers(2)
            .restart(RestartPolicy::ExitCode),
    )
    .await;
    let before = t.running_pods(3, T).await;
    t.exit_pod("rs-worker-1", 137).await;
    wait_job(&t, "rs", "a restart recorded", T, |j| {
        j.status.as_ref().is_some_and(|s| {
            s.replica_statuses
                .get("Worker")
                .is_some_and(|w| w.restarts == 1)
        })
    })
    .await;
    op.kill();
    let op = t.operator();
    t.running_pods(3, T).await;
    let j = wait_job(&t, "rs", "Running", T, |j| has_condition(j, "Running")).await;
    let st = j.status.unwrap();
    assert_eq!(
        st.replica_statuses["Worker"].restarts, 1,
        "restart count survives the restart"
    );
    assert_eq!(st.conditions[0].type_, "Created");
    let pods = t.listed_pods().await;
    assert_eq!(pods.len(), 3, "no duplicate pods");
    let ps_uid = before
        .iter()
        .find(|p| p.name_any() == "rs-ps-0")
        .unwrap()
        .uid();
    assert_eq!(
        pods.iter()
            .find(|p| p.name_any() == "rs-ps-0")
            .unwrap()
            .uid(),
        ps_uid,
        "untouched pods are kept"
    );
    t.finish(op).await;
}

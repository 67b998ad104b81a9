//! Issue 32: the seed's `fieldSelector`, made useful. The CRD declares `selectableFields`
//! (`status.state`, `spec.runPolicy.schedulingPolicy.queue`, `spec.runPolicy.managedBy`), so
//! `kubectl get/delete tfjobs --field-selector` works on them; the operator keeps
//! `status.state` with the conditions. (The raw `DELETE .../tfjobs?fieldSelector=` from the
//! Python kubernetes client is in `tests/compat/test_sdk.py`.)

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Output};
use std::time::Duration;

use common::cluster::{TestNs, names, wait_for, wait_job};
use kube::api::{Patch, PatchParams};
use serde_json::json;
use tfjob_operator::api::builder::tfjob;
use tfjob_operator::api::{CleanPodPolicy, SchedulingPolicy, TFJob};

const T: Duration = Duration::from_secs(90);

/// The job's state word.
fn state(job: &TFJob) -> &str {
    job.status
        .as_ref()
        .and_then(|s| s.state.as_deref())
        .unwrap_or("")
}

/// `kubectl ARGS -n <ns>` on the test's control plane, off the test's runtime (the operator
/// runs on it, and `kubectl delete` waits for it to release the jobs).
async fn kubectl(t: &TestNs, args: &[&str]) -> Output {
    let mut command = Command::new(t.dir.join("bin/kubectl"));
    command
        .arg("--kubeconfig")
        .arg(t.dir.join("kubeconfig"))
        .args(args)
        .args(["-n", &t.ns]);
    tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("joined")
        .expect("kubectl runs")
}

/// The job names `kubectl get tfjobs --field-selector SELECTOR` prints, sorted.
async fn selected(t: &TestNs, selector: &str) -> Vec<String> {
    let out = kubectl(
        t,
        &["get", "tfjobs", "--field-selector", selector, "-o", "name"],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut jobs: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim_start_matches("tfjob.kubeflow.org/").to_string())
        .collect();
    jobs.sort();
    jobs
}

/// `kubectl get tfjobs -o wide`: each job's row by column header.
async fn wide_columns(t: &TestNs) -> BTreeMap<String, BTreeMap<String, String>> {
    let out = kubectl(t, &["get", "tfjobs", "-o", "wide"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mut lines = text.lines();
    let header: Vec<String> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .map(String::from)
        .collect();
    assert_eq!(
        header,
        [
            "NAME",
            "STATE",
            "AGE",
            "ACTIVE",
            "SUCCEEDED",
            "FAILED",
            "RESTARTS",
            "REASON"
        ],
        "{text}"
    );
    lines
        .map(|line| {
            let cells: Vec<String> = line.split_whitespace().map(String::from).collect();
            let row = header.iter().cloned().zip(cells.iter().cloned()).collect();
            (cells[0].clone(), row)
        })
        .collect()
}

/// Waits until every job in `expected` (name -> state word) shows that word.
async fn wait_states(t: &TestNs, expected: &BTreeMap<&str, &str>) {
    wait_for(t.jobs(), &format!("states {expected:?}"), T, |jobs| {
        expected.iter().all(|(name, word)| {
            jobs.iter()
                .any(|j| j.metadata.name.as_deref() == Some(*name) && state(j) == *word)
        })
    })
    .await;
}

/// The UIDs of the pods whose names start with `prefix`.
async fn pod_uids(t: &TestNs, prefix: &str) -> Vec<String> {
    let pods = t.pods().list(&Default::default()).await.expect("pods");
    let mut uids: Vec<String> = pods
        .items
        .into_iter()
        .filter(|p| {
            p.metadata
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with(prefix))
        })
        .filter_map(|p| p.metadata.uid)
        .collect();
    uids.sort();
    uids
}

/// Creates a job in every state the selectors are tried on, and waits until each shows its
/// word: `created` (its pods cannot be scheduled), `running` (in queue `team-a`), `suspended`,
/// `done-a` and `done-b` (Succeeded), `failed`. The finished ones keep their pods
/// (cleanPodPolicy None): the delete must remove them.
async fn jobs_in_every_state(t: &TestNs) {
    let unschedulable = |s: &mut k8s_openapi::api::core::v1::PodSpec| {
        s.node_selector = Some([("tfjob-test/no-such-node".into(), "true".into())].into());
    };
    let queued = |s: &mut tfjob_operator::api::TFJobSpec| {
        s.run_policy.get_or_insert_default().scheduling_policy = Some(SchedulingPolicy {
            queue: Some("team-a".into()),
            ..SchedulingPolicy::default()
        });
    };
    t.create_job(tfjob("created").workers(1).pod_spec(unschedulable))
        .await;
    t.create_job(tfjob("running").ps(1).workers(1).spec(queued))
        .await;
    t.create_job(tfjob("suspended").workers(1).suspend(true))
        .await;
    for (name, team) in [("done-a", "a"), ("done-b", "b"), ("failed", "a")] {
        let job = tfjob(name)
            .ps(1)
            .workers(1)
            .clean_pod_policy(CleanPodPolicy::None);
        t.create_job(job.label("team", team)).await;
    }
    t.running_pods(8, T).await;
    t.exit_pod("done-a-worker-0", 0).await;
    t.exit_pod("done-b-worker-0", 0).await;
    t.exit_pod("failed-worker-0", 1).await;
    let every_state = BTreeMap::from([
        ("created", "Created"),
        ("running", "Running"),
        ("suspended", "Suspended"),
        ("done-a", "Succeeded"),
        ("done-b", "Succeeded"),
        ("failed", "Failed"),
    ]);
    wait_states(t, &every_state).await;
}

/// `kubectl delete tfjobs ARGS` deletes exactly `deleted` (it waits until they are gone).
async fn delete_selected(t: &TestNs, args: &[&str], deleted: &str) {
    let mut all = vec!["delete", "tfjobs"];
    all.extend(args);
    let out = kubectl(t, &all).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let ns = &t.ns;
    assert_eq!(
        said,
        format!("tfjob.kubeflow.org \"{deleted}\" deleted from {ns} namespace")
    );
}

/// Waits until no pod and no service of job `job` is left.
async fn children_gone(t: &TestNs, job: &str) {
    let prefix = format!("{job}-");
    let ours = |name: Option<&String>| name.is_some_and(|n| n.starts_with(&prefix));
    wait_for(t.pods(), &format!("pods of {job} gone"), T, |pods| {
        !pods.iter().any(|p| ours(p.metadata.name.as_ref()))
    })
    .await;
    wait_for(
        t.services(),
        &format!("services of {job} gone"),
        T,
        |svcs| !svcs.iter().any(|s| ours(s.metadata.name.as_ref())),
    )
    .await;
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn jobs_are_listed_by_state_and_queue_and_undeclared_fields_are_refused() {
    let t = TestNs::new("select-get").await;
    let op = t.operator();
    jobs_in_every_state(&t).await;
    assert_eq!(
        selected(&t, "status.state=Succeeded").await,
        ["done-a", "done-b"]
    );
    assert_eq!(
        selected(&t, "status.state!=Succeeded,status.state!=Failed").await,
        ["created", "running", "suspended"]
    );
    assert_eq!(
        selected(&t, "spec.runPolicy.schedulingPolicy.queue=team-a").await,
        ["running"]
    );
    let wide = wide_columns(&t).await;
    let row = |job: &str| -> Vec<&str> {
        let cols = &wide[job];
        [
            "STATE",
            "ACTIVE",
            "SUCCEEDED",
            "FAILED",
            "RESTARTS",
            "REASON",
        ]
        .iter()
        .map(|c| cols[*c].as_str())
        .collect()
    };
    assert_eq!(
        row("running"),
        ["Running", "2", "0", "0", "0", "TFJobRunning"]
    );
    assert_eq!(
        row("done-a"),
        ["Succeeded", "0", "2", "0", "0", "TFJobSucceeded"]
    );
    assert_eq!(
        row("failed"),
        ["Failed", "1", "0", "1", "0", "TFJobFailed"],
        "its PS still runs: cleanPodPolicy None"
    );
    assert_eq!(row("suspended")[0], "Suspended");
    assert_eq!(row("suspended")[5], "TFJobSuspended");
    let undeclared = "spec.runPolicy.backoffLimit=3";
    let refused = kubectl(&t, &["get", "tfjobs", "--field-selector", undeclared]).await;
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        stderr.contains("field label not supported: spec.runPolicy.backoffLimit"),
        "{stderr}"
    );
    t.finish(op).await;
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn a_field_selector_deletes_exactly_the_finished_jobs_with_their_children() {
    let t = TestNs::new("select-delete").await;
    let op = t.operator();
    jobs_in_every_state(&t).await;
    let running_pods = pod_uids(&t, "running-").await;
    // Label and field selectors combined: team b's finished job only.
    let team_b = ["-l", "team=b", "--field-selector", "status.state=Succeeded"];
    delete_selected(&t, &team_b, "done-b").await;
    // Then every finished job that is left: field selectors take =, == and != only, so one
    // call per state.
    delete_selected(
        &t,
        &["--field-selector", "status.state=Succeeded"],
        "done-a",
    )
    .await;
    delete_selected(&t, &["--field-selector", "status.state=Failed"], "failed").await;
    let jobs = wait_for(t.jobs(), "the finished jobs gone", T, |jobs| {
        jobs.len() == 3
    })
    .await;
    assert_eq!(names(&jobs), ["created", "running", "suspended"]);
    for job in ["done-a", "done-b", "failed"] {
        children_gone(&t, job).await;
    }
    assert_eq!(
        pod_uids(&t, "running-").await,
        running_pods,
        "running pods untouched"
    );
    t.finish(op).await;
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn a_resumed_job_says_running_again_not_suspended() {
    let t = TestNs::new("resume-state").await;
    let op = t.operator();
    t.create_job(tfjob("r").workers(1).suspend(true)).await;
    wait_job(&t, "r", "Suspended", T, |j| state(j) == "Suspended").await;
    assert_eq!(selected(&t, "status.state=Suspended").await, ["r"]);
    let resume = json!({"spec": {"runPolicy": {"suspend": false}}});
    t.jobs()
        .patch("r", &PatchParams::default(), &Patch::Merge(&resume))
        .await
        .expect("resumed");
    let job = wait_job(&t, "r", "Running again", T, |j| state(j) == "Running").await;
    let last = job
        .status
        .as_ref()
        .and_then(|s| s.conditions.last())
        .map(|c| (c.type_.clone(), c.status.clone()));
    eprintln!(
        "newest condition after the resume: {last:?}; state: {}",
        state(&job)
    );
    assert_eq!(selected(&t, "status.state=Running").await, ["r"]);
    // The State column reads the state word.
    let out = kubectl(&t, &["get", "tfjob", "r", "--no-headers"]).await;
    let line = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(line.split_whitespace().nth(1), Some("Running"), "{line}");
    t.finish(op).await;
}

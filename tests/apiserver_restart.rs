//! Recovery after an API server outage (issue 13): jobs in flight finish within seconds of the
//! API server being back. Its own test binary, because it restarts the shared API server.

mod common;

use std::time::{Duration, Instant};

use common::cluster::{TestNs, has_condition, restart_api_server, wait_for, wait_settled};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Patch, PatchParams};
use serde_json::json;
use tfjob_operator::api::builder::tfjob;

const T: Duration = Duration::from_secs(90);
const JOBS: usize = 10;
/// How long the watches may go on failing after the API server is ready again: a restarted
/// API server answers some watches with errors (429 while its watch caches fill, 410 for
/// revisions it no longer has) for a while, longer on a control plane holding the objects of
/// the tests before this one. `/readyz` fails while they do, by design.
const WATCHES_SETTLE: Duration = Duration::from_secs(60);

/// The watch error counters of `/metrics`, one per line.
fn watch_errors(op: &common::cluster::Operator) -> String {
    let text = op.metrics.encode();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("tfjob_operator_watch_errors_total{"))
        .collect();
    lines.join("\n")
}

/// Ends worker 0 of `job` with exit code 0 by writing its status directly (no kwok involved:
/// only the operator's recovery is measured).
async fn succeed_worker0(t: &TestNs, job: &str) {
    let status = json!({"status": {"phase": "Succeeded", "containerStatuses": [{
        "name": "tensorflow", "image": "tf", "imageID": "", "ready": false, "restartCount": 0,
        "state": {"terminated": {"exitCode": 0, "reason": "Completed",
            "startedAt": "2026-01-01T00:00:00Z", "finishedAt": "2026-01-01T00:00:01Z"}}}]}});
    t.api::<Pod>()
        .patch_status(
            &format!("{job}-worker-0"),
            &PatchParams::default(),
            &Patch::Merge(status),
        )
        .await
        .expect("pod status patched");
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn jobs_in_flight_finish_within_seconds_of_the_api_server_coming_back() {
    // The operator's watch errors in the test's output, shown if it fails.
    let _ = tracing_subscriber::fmt()
        .with_env_filter("tfjob_operator::controller::watch=warn")
        .with_test_writer()
        .try_init();
    let t = TestNs::new("apirestart").await;
    let op = t.operator();
    for i in 0..JOBS {
        t.create_job(tfjob(&format!("r{i}")).workers(1)).await;
    }
    t.running_pods(JOBS, T).await;
    wait_for(t.jobs(), "all Running", T, |jobs| {
        jobs.len() == JOBS && jobs.iter().all(|j| has_condition(j, "Running"))
    })
    .await;
    // Eight seconds without an API server (plus its start): long enough for kube-runtime's
    // default backoffs to grow past it.
    restart_api_server(&t.dir, 8);
    let back = Instant::now();
    for i in 0..JOBS {
        succeed_worker0(&t, &format!("r{i}")).await;
    }
    wait_for(t.jobs(), "all Succeeded", T, |jobs| {
        jobs.iter()
            .filter(|j| has_condition(j, "Succeeded"))
            .count()
            == JOBS
    })
    .await;
    let took = back.elapsed();
    eprintln!("all {JOBS} jobs Succeeded {took:?} after the API server was ready again");
    assert!(took < Duration::from_secs(2), "recovery took {took:?}");
    // The watches failed moments ago: /readyz says so, then recovers by itself once they
    // have been quiet for a while.
    assert!(!op.metrics.is_ready(), "not ready right after watch errors");
    assert!(
        !watch_errors(&op).is_empty(),
        "the watch errors counted in /metrics"
    );
    let unready_since = Instant::now();
    while !op.metrics.is_ready() {
        assert!(
            unready_since.elapsed() < WATCHES_SETTLE,
            "not ready again {WATCHES_SETTLE:?} later; watch errors:\n{}",
            watch_errors(&op)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "ready again {:?} later; watch errors:\n{}",
        unready_since.elapsed(),
        watch_errors(&op)
    );
    // The controller manager, the scheduler and kwok reconnect at their own pace: leave the
    // control plane serving new namespaces and pods again for the tests that follow.
    wait_settled(&t.dir);
    t.create_job(tfjob("after").workers(1)).await;
    wait_for(t.pods(), "a new pod running after the restart", T, |pods| {
        pods.iter().any(|p| {
            p.metadata.name.as_deref() == Some("after-worker-0")
                && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
        })
    })
    .await;
    t.finish(op).await;
}

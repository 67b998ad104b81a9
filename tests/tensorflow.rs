//! Issue 30: real distributed TensorFlow under the operator. On the real node (`make test`'s
//! extras cluster, with the image of tests/images/build-tensorflow.sh), the examples of
//! examples/tensorflow/ train with the TF_CONFIG the operator injects: TensorFlow finds its
//! cluster, places its variables, and the loss falls. The jobs are the examples as they are,
//! placed on the real node; a test changes a replica's args or restart policy only where it
//! says so.

mod common;

use std::time::{Duration, Instant};

use common::cluster::condition_message as message;
use common::cluster::{TestNs, has_condition, wait_for, wait_job};
use common::real_node::{
    FollowedLog, args_of, container_id, container_id_of, real_ns, sigkill, tensorflow_example,
};
use serde_json::{Value, json};
use tfjob_operator::api::TFJob;

/// Pods pull nothing (the image is on the node), but five TensorFlow processes starting at
/// once on two shared cores take a while.
const T: Duration = Duration::from_secs(300);

/// One TensorFlow job at a time: timings (a kill mid-training) stay meaningful on 2 cores.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn job(value: Value) -> TFJob {
    serde_json::from_value(value).expect("the example is a TFJob")
}

/// `trained: loss A -> B in N steps (S s)`, the scripts' last line: (A, B).
fn losses(line: &str) -> (f64, f64) {
    let rest = line.strip_prefix("trained: loss ").expect("a trained line");
    let mut numbers = rest.split([' ', '-', '>']).filter(|s| !s.is_empty());
    let mut next = || -> f64 {
        numbers
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("losses in {line:?}"))
    };
    (next(), next())
}

/// Waits until the job has finished; prints `log` (the replica whose log tells most) and how
/// long after `created` it finished, then asserts it Succeeded.
async fn succeeded(t: &TestNs, name: &str, created: Instant, log: &FollowedLog) {
    let job = wait_job(t, name, &format!("{name} finished"), T, |j| {
        has_condition(j, "Succeeded") || has_condition(j, "Failed")
    })
    .await;
    let took = created.elapsed().as_secs_f64();
    log.ended(T).await;
    eprintln!("{}:\n{}", log.pod(), log.text());
    eprintln!("{name}: {} {took:.1} s after it was created", message(&job));
    assert!(has_condition(&job, "Succeeded"), "{}", message(&job));
}

#[tokio::test]
#[ignore = "needs a control plane with a real node and the TensorFlow image: run `make test`"]
async fn multi_worker_mirrored_strategy_trains_across_both_workers() {
    let _one = SERIAL.lock().await;
    let t = real_ns("tf-mwms").await;
    let op = t.operator();
    let created = Instant::now();
    t.create_job(job(tensorflow_example("multi-worker-mirrored.yaml")))
        .await;
    let name = "multi-worker-mirrored";
    let logs = [0, 1].map(|i| FollowedLog::start(t.pods(), &format!("{name}-worker-{i}"), T));
    succeeded(&t, name, created, &logs[0]).await;

    let ns = &t.ns;
    let cluster = format!(
        r#"cluster: {{"worker": ["{name}-worker-0.{ns}.svc:2222", "{name}-worker-1.{ns}.svc:2222"]}}"#
    );
    for (i, log) in logs.iter().enumerate() {
        let lines = log.ended(T).await;
        for expected in [
            cluster.clone(),
            format!("task: worker:{i}, 2 replicas in sync"),
            format!("variable w1:0 on /job:worker/replica:0/task:{i}/device:CPU:0"),
        ] {
            assert!(lines.contains(&expected), "worker {i} lacks {expected:?}");
        }
        let trained = log.line(T, |l| l.starts_with("trained: loss ")).await;
        let (first, last) = losses(&trained);
        assert!(last < first / 10.0, "worker {i}: the loss fell: {trained}");
    }
    t.finish(op).await;
}

/// What the kubeflow-training SDK's `TrainingClient.get_job_logs` returns for job `name`
/// (tests/compat/sdk_job_logs.py, in the venv of tests/compat/sdk-venv.sh that `make test`
/// names in TFJOB_SDK_VENV).
async fn sdk_job_logs(t: &TestNs, name: &str) -> String {
    let venv = std::env::var_os("TFJOB_SDK_VENV").expect(
        "TFJOB_SDK_VENV: the kubeflow-training SDK's venv (tests/compat/sdk-venv.sh prints it); run `make test`",
    );
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/compat/sdk_job_logs.py");
    let mut command = std::process::Command::new(std::path::Path::new(&venv).join("bin/python"));
    command
        .env("KUBECONFIG", t.dir.join("kubeconfig"))
        .args([script, name, &t.ns]);
    let out = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("joined")
        .expect("the SDK's python runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
#[ignore = "needs a control plane with a real node and the TensorFlow image: run `make test`"]
async fn parameter_server_strategy_keeps_variables_on_the_ps_and_cleans_up_running_pods() {
    let _one = SERIAL.lock().await;
    let t = real_ns("tf-ps").await;
    let op = t.operator();
    let created = Instant::now();
    t.create_job(job(tensorflow_example("parameter-server.yaml")))
        .await;
    let name = "parameter-server";
    let chief = FollowedLog::start(t.pods(), &format!("{name}-chief-0"), T);
    let ps = FollowedLog::start(t.pods(), &format!("{name}-ps-1"), T);
    succeeded(&t, name, created, &chief).await;

    let ns = &t.ns;
    let at = |r: &str| format!(r#""{name}-{r}.{ns}.svc:2222""#);
    let cluster = format!(
        r#"cluster: {{"chief": [{}], "ps": [{}, {}], "worker": [{}, {}]}}"#,
        at("chief-0"),
        at("ps-0"),
        at("ps-1"),
        at("worker-0"),
        at("worker-1")
    );
    chief.line(T, |l| l == cluster).await;
    ps.line(T, |l| l.starts_with("ps 1: serving the coordinator"))
        .await;
    // The variables live on both PS tasks, not on the chief.
    for task in [0, 1] {
        let on = format!(" on /job:ps/replica:0/task:{task}/device:CPU:0");
        chief
            .line(T, |l| l.starts_with("variable ") && l.ends_with(&on))
            .await;
    }
    // Both workers ran steps the chief scheduled.
    for worker in [0, 1] {
        let host = format!("{name}-worker-{worker}: ");
        chief
            .line(T, |l| l.starts_with("epoch ") && l.contains(&host))
            .await;
    }
    let trained = chief.line(T, |l| l.starts_with("trained: loss ")).await;
    let (first, last) = losses(&trained);
    assert!(last < first / 10.0, "the loss fell: {trained}");

    // The Python SDK reads the chief's training output through the API server.
    let sdk = sdk_job_logs(&t, name).await;
    assert!(
        sdk.contains(&format!("== {name}-chief-0\n")) && sdk.contains(&trained),
        "the SDK's get_job_logs:\n{sdk}"
    );

    // cleanPodPolicy: Running: the PS and workers that still served are deleted; the chief,
    // Succeeded, stays with its log.
    let chief_only = format!("{name}-chief-0");
    wait_for(t.pods(), "only the chief left", T, |pods| {
        pods.len() == 1 && pods[0].metadata.name.as_deref() == Some(chief_only.as_str())
    })
    .await;
    t.finish(op).await;
}

#[tokio::test]
#[ignore = "needs a control plane with a real node and the TensorFlow image: run `make test`"]
async fn a_worker_killed_mid_training_restarts_and_the_coordinator_carries_on() {
    let _one = SERIAL.lock().await;
    let t = real_ns("tf-kill").await;
    let op = t.operator();
    let mut example = tensorflow_example("parameter-server.yaml");
    // Long enough that the killed worker is back before the chief is done.
    *args_of(&mut example, "Chief") = vec![json!("--epochs=80"), json!("--steps-per-epoch=50")];
    let created = Instant::now();
    t.create_job(job(example)).await;
    let name = "parameter-server";
    let chief = FollowedLog::start(t.pods(), &format!("{name}-chief-0"), T);
    let worker = format!("{name}-worker-0");
    chief.line(T, |l| l.starts_with("epoch 2 ")).await;

    let id = container_id(t.pods(), &worker, T).await;
    sigkill(&t.dir, &id);
    let killed_at = chief.text().lines().count();
    eprintln!("killed {worker}'s container after the chief's line {killed_at}");
    // The operator recreates the pod (restartPolicy: ExitCode, 137 is retryable).
    let recreated = wait_for(t.pods(), &format!("{worker} recreated"), T, |pods| {
        pods.iter().any(|p| {
            p.metadata.name.as_deref() == Some(worker.as_str())
                && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
                && container_id_of(p).is_some_and(|c| c != id)
        })
    })
    .await;
    eprintln!(
        "{worker} recreated: {:?}",
        recreated
            .iter()
            .map(|p| p.metadata.uid.clone())
            .collect::<Vec<_>>()
    );
    succeeded(&t, name, created, &chief).await;
    // The coordinator carried on: epochs ran after the kill. Whether it gives the recreated
    // worker steps again is TensorFlow's business (it did in most runs here); it is printed.
    let after_kill: Vec<String> = chief
        .text()
        .lines()
        .skip(killed_at)
        .filter(|l| l.starts_with("epoch ") && l.contains(" loss "))
        .map(String::from)
        .collect();
    assert!(after_kill.len() > 10, "epochs ran after the kill");
    let back = format!("{worker}: ");
    let rejoined = after_kill.iter().filter(|l| l.contains(&back)).count();
    eprintln!(
        "after the kill: {} epochs, {rejoined} of them with steps by the recreated {worker}",
        after_kill.len()
    );

    // Counted once: the worker's restart, nothing else.
    let job = t.jobs().get(name).await.expect("the job");
    let status = job.status.expect("status");
    let workers = &status.replica_statuses["Worker"];
    assert_eq!((workers.restarts, workers.failed), (1, 0), "{status:?}");
    assert_eq!(status.replica_totals.map(|r| r.restarts), Some(1));
    t.finish(op).await;
}

#[tokio::test]
#[ignore = "needs a control plane with a real node and the TensorFlow image: run `make test`"]
async fn a_training_script_that_fails_fails_the_job_naming_the_replica() {
    let _one = SERIAL.lock().await;
    let t = real_ns("tf-fail").await;
    let op = t.operator();
    let mut example = tensorflow_example("multi-worker-mirrored.yaml");
    example["spec"]["tfReplicaSpecs"]["Worker"]["restartPolicy"] = json!("Never");
    args_of(&mut example, "Worker")
        .extend([json!("--fail-task=worker:1"), json!("--fail-at-step=20")]);
    t.create_job(job(example)).await;
    let name = "multi-worker-mirrored";
    let failing = FollowedLog::start(t.pods(), &format!("{name}-worker-1"), T);
    let failed = wait_job(&t, name, &format!("{name} Failed"), T, |j| {
        has_condition(j, "Failed")
    })
    .await;
    let said = message(&failed);
    eprintln!("{name}: {said}");
    // Worker 1 fails on purpose; worker 0, left alone in a collective, may exit 1 first.
    let named = [0, 1].iter().any(|i| {
        said.contains(&format!(
            "Worker {i} (pod {name}-worker-{i}) exited with code 1 (Error)"
        ))
    });
    assert!(named, "{said}");
    failing
        .line(T, |l| l.contains("worker:1 fails on purpose at step 20"))
        .await;
    t.finish(op).await;
}

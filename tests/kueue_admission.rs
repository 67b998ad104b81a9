//! The chart's admission policy for TFJobs queued by Kueue (issue 15): a replica-type key Kueue
//! would not read is refused at `kubectl apply`, naming the spelling to write; unqueued jobs and
//! canonical keys are accepted. Checked against the real API server with dry-run creates.

mod common;

use common::cluster::TestNs;
use common::policy::{Scope, applied, install};
use kube::api::PostParams;
use tfjob_operator::api::builder::tfjob;
use tfjob_operator::api::{CleanPodPolicy, TFJob};

const POLICY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/charts/tfjob-operator/files/kueue-replica-keys-policy.yaml"
);
const WARNING_POLICY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/charts/tfjob-operator/files/kueue-clean-pod-policy-warning.yaml"
);
const QUEUE_LABEL: &str = "kueue.x-k8s.io/queue-name";

/// A job of 1 PS and 1 Worker under `keys`, queued when `queued`.
fn job(name: &str, keys: (&str, &str), queued: bool) -> TFJob {
    let mut builder = tfjob(name).replicas(keys.0, 1).replicas(keys.1, 1);
    if queued {
        builder = builder.label(QUEUE_LABEL, "team-a");
    }
    builder.build()
}

/// The API server's answer to a dry-run create: None when accepted, else its message.
async fn refusal(t: &TestNs, job: &TFJob) -> Option<String> {
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    match t.jobs().create(&dry_run, job).await {
        Ok(_) => None,
        Err(kube::Error::Api(status)) => Some(status.message),
        Err(e) => panic!("dry-run create of {:?}: {e}", job.metadata.name),
    }
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn jobs_queued_by_kueue_must_spell_replica_types_as_kueue_reads_them() {
    let t = TestNs::new("kueue-keys").await;
    install(&t.client, &t.ns, POLICY, Scope::Cluster).await;
    // The API server picks a new policy up from its own watch: wait until it is enforced.
    let seed_style = job("seed", ("Ps", "Worker"), true);
    let message = applied("the policy refuses a misspelled key", || {
        refusal(&t, &seed_style)
    })
    .await;
    assert!(
        message.contains("spec.tfReplicaSpecs.Ps must be spelled PS in a job queued by Kueue"),
        "{message}"
    );
    let lower = refusal(&t, &job("lower", ("ps", "worker"), true)).await;
    let lower = lower.expect("lower-case keys refused");
    assert!(
        lower.contains("spec.tfReplicaSpecs.ps must be spelled PS")
            || lower.contains("spec.tfReplicaSpecs.worker must be spelled Worker"),
        "{lower}"
    );
    assert_eq!(
        refusal(&t, &job("canonical", ("PS", "Worker"), true)).await,
        None
    );
    assert_eq!(
        refusal(&t, &job("unqueued", ("Ps", "worker"), false)).await,
        None,
        "jobs Kueue does not queue keep every spelling"
    );
}

/// The warnings `kubectl create --dry-run=server` prints for `job` (JSON on stdin).
fn warnings_for(t: &TestNs, job: &TFJob) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new(t.dir.join("bin/kubectl"))
        .arg("--kubeconfig")
        .arg(t.dir.join("kubeconfig"))
        .args(["create", "--dry-run=server", "-n", &t.ns, "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl");
    let json = serde_json::to_vec(job).expect("job JSON");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&json)
        .expect("write");
    let out = child.wait_with_output().expect("kubectl ran");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn a_queued_job_that_keeps_its_pods_after_finishing_is_warned_about_the_quota() {
    let t = TestNs::new("kueue-clean").await;
    install(&t.client, &t.ns, WARNING_POLICY, Scope::Cluster).await;
    let keeps_pods = tfjob("keeps")
        .workers(1)
        .label(QUEUE_LABEL, "team-a")
        .clean_pod_policy(CleanPodPolicy::None)
        .build();
    let warning = applied("the policy warns", || {
        let stderr = warnings_for(&t, &keeps_pods);
        std::future::ready(stderr.contains("Warning").then_some(stderr))
    })
    .await;
    assert!(
        warning.contains("cleanPodPolicy None in a job queued by Kueue"),
        "{warning}"
    );
    let legacy = tfjob("legacy")
        .workers(1)
        .label(QUEUE_LABEL, "team-a")
        .spec(|s| s.clean_pod_policy = Some(CleanPodPolicy::None))
        .build();
    assert!(
        warnings_for(&t, &legacy).contains("Warning"),
        "the legacy field too"
    );
    let cleaned = tfjob("cleaned")
        .workers(1)
        .label(QUEUE_LABEL, "team-a")
        .clean_pod_policy(CleanPodPolicy::Running)
        .build();
    assert!(!warnings_for(&t, &cleaned).contains("Warning"));
    let unqueued = tfjob("unqueued")
        .workers(1)
        .clean_pod_policy(CleanPodPolicy::None)
        .build();
    assert!(!warnings_for(&t, &unqueued).contains("Warning"));
}

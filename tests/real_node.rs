//! Issue 29: real containers. On a real kubelet node (containerd, runc, a CNI bridge, CoreDNS;
//! `TFJOB_CLUSTER_REAL_NODE=1 tests/cluster/up.sh`): a job's replicas reach each other at the
//! addresses TF_CONFIG gives them, through the headless Services; and failures kwok cannot make
//! — an image that cannot be pulled, a container over its memory limit, one killed by SIGKILL,
//! one that keeps crashing — are named on the TFJob.

mod common;

use common::cluster::condition_message as message;

use std::time::Duration;

use common::cluster::{TestNs, has_condition, wait_job};
use common::real_node::{BUSYBOX, container_id, on_real_node, real_ns, sigkill};
use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::LogParams;
use tfjob_operator::api::builder::tfjob;
use tfjob_operator::api::{CleanPodPolicy, RestartPolicy};

const T: Duration = Duration::from_secs(120);

/// Each replica serves its pod name on port 2222 (noting who asked), then asks every member
/// of the cluster in TF_CONFIG, by the host names there, for theirs and prints what it got.
/// Worker 0 ends the job (upstream's success policy) once every member has asked it too; the
/// others serve on, as a PS does.
const REACH_PEERS: &str = r#"
trap 'exit 0' TERM
me=$(hostname)
(while true; do echo "hello from $me" | nc -l -p 2222 >> /tmp/asked-by; done) &
peers=$(echo "$TF_CONFIG" | grep -o '"[a-z0-9.-]*:[0-9][0-9]*"' | tr -d '"')
for peer in $peers; do
  host=${peer%:*}; port=${peer#*:}; reply=""
  for i in $(seq 240); do
    reply=$(echo "$me" | nc -w 1 "$host" "$port" 2>/dev/null) && [ -n "$reply" ] && break
    sleep 0.5
  done
  echo "$peer -> $reply"
done
case "$me" in
  *-worker-0)
    until [ "$(sort -u /tmp/asked-by | wc -l)" -ge "$(echo $peers | wc -w)" ]; do sleep 0.5; done
    exit 0 ;;
  *) wait ;;
esac
"#;

#[tokio::test]
#[ignore = "needs a control plane with a real node: run `make test`"]
async fn replicas_reach_each_other_at_their_tf_config_addresses() {
    let t = real_ns("real-net").await;
    let op = t.operator();
    let job = tfjob("net")
        .clean_pod_policy(CleanPodPolicy::None)
        .ps(1)
        .pod_spec(on_real_node(BUSYBOX, REACH_PEERS))
        .workers(2)
        .pod_spec(on_real_node(BUSYBOX, REACH_PEERS));
    t.create_job(job).await;
    wait_job(&t, "net", "net Succeeded", T, |j| {
        has_condition(j, "Succeeded")
    })
    .await;
    let ns = &t.ns;
    for replica in ["net-ps-0", "net-worker-0", "net-worker-1"] {
        let lines: Vec<String> = ["net-ps-0", "net-worker-0", "net-worker-1"]
            .iter()
            .map(|peer| format!("{peer}.{ns}.svc:2222 -> hello from {peer}"))
            .collect();
        log_shows(&t, replica, &lines).await;
    }
    t.finish(op).await;
}

/// Follows pod `pod`'s log (through the API server and the kubelet) until it has every line
/// of `lines`.
async fn log_shows(t: &TestNs, pod: &str, lines: &[String]) {
    use futures::{AsyncBufReadExt, TryStreamExt};
    let params = LogParams {
        follow: true,
        ..LogParams::default()
    };
    let stream = t
        .pods()
        .log_stream(pod, &params)
        .await
        .expect("the kubelet serves the log");
    let mut seen = Vec::new();
    let all = tokio::time::timeout(T, async {
        let mut log = stream.lines();
        while let Some(line) = log.try_next().await.expect("log line") {
            seen.push(line);
            if lines.iter().all(|l| seen.contains(l)) {
                return;
            }
        }
    })
    .await;
    assert!(
        all.is_ok() && lines.iter().all(|l| seen.contains(l)),
        "{pod} lacks some of {lines:?}:\n{seen:?}"
    );
}

/// Waits until job `name`'s condition message contains `words`, and returns it.
async fn says(t: &TestNs, name: &str, words: &str) -> String {
    let job = wait_job(t, name, &format!("{name} says {words:?}"), T, |j| {
        message(j).contains(words)
    })
    .await;
    message(&job)
}

#[tokio::test]
#[ignore = "needs a control plane with a real node: run `make test`"]
async fn real_failures_are_named_on_the_job() {
    let t = real_ns("real-fail").await;
    let op = t.operator();
    let absent = on_real_node("tfjob-test.local/absent:1", "true");
    t.create_job(tfjob("pull").workers(1).pod_spec(absent))
        .await;
    let hog = "x=$(head -c 400000000 /dev/zero | tr '\\0' a); echo ${#x}";
    let small = |s: &mut k8s_openapi::api::core::v1::PodSpec| {
        on_real_node(BUSYBOX, hog)(s);
        s.containers[0].resources = Some(ResourceRequirements {
            limits: Some([("memory".to_string(), Quantity("32Mi".into()))].into()),
            ..ResourceRequirements::default()
        });
    };
    t.create_job(tfjob("oom").workers(1).pod_spec(small)).await;
    t.create_job(
        tfjob("killed")
            .workers(1)
            .pod_spec(on_real_node(BUSYBOX, "sleep 3600")),
    )
    .await;
    let crash = tfjob("crash")
        .workers(1)
        .restart(RestartPolicy::OnFailure)
        .pod_spec(on_real_node(BUSYBOX, "echo starting; exit 3"));
    t.create_job(crash).await;

    let pulled = says(&t, "pull", "Waiting: Worker 0 (pod pull-worker-0) cannot start (ErrImagePull): failed to pull and unpack image \"tfjob-test.local/absent:1\"").await;
    eprintln!("pull: {pulled}");
    let oom = says(&t, "oom", "exited with code 137").await;
    eprintln!("oom: {oom}");
    assert!(
        oom.contains("Worker 0 (pod oom-worker-0) exited with code 137 (OOMKilled)"),
        "{oom}"
    );

    let id = container_id(t.pods(), "killed-worker-0", T).await;
    sigkill(&t.dir, &id);
    let killed = says(&t, "killed", "exited with code 137").await;
    eprintln!("killed: {killed}");
    assert!(
        killed.contains("Worker 0 (pod killed-worker-0) exited with code 137 (Error)"),
        "{killed}"
    );

    let crashed = says(
        &t,
        "crash",
        "Waiting: Worker 0 (pod crash-worker-0) cannot start (CrashLoopBackOff): back-off ",
    )
    .await;
    eprintln!("crash: {crashed}");
    t.finish(op).await;
}

/// `helm ARGS` against the test's control plane, off the test's runtime.
async fn helm(t: &TestNs, args: Vec<String>) -> std::process::Output {
    let mut command = std::process::Command::new(t.dir.join("bin/helm"));
    command
        .arg("--kubeconfig")
        .arg(t.dir.join("kubeconfig"))
        .args(args);
    tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("joined")
        .expect("helm runs")
}

/// `helm install op` of the chart into `t`'s namespace, watching it, with the operator's image
/// on the real node; waits until its Deployment is available.
async fn install_chart(t: &TestNs) {
    let chart = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/tfjob-operator");
    let ns = t.ns.clone();
    let values = [
        "image.repository=tfjob-operator.local/tfjob-operator".to_string(),
        "image.tag=dev".into(),
        "image.pullPolicy=Never".into(),
        format!("watchNamespace={ns}"),
        "tolerations[0].key=tfjob-operator.io/real-node".into(),
        "tolerations[0].operator=Exists".into(),
        "tolerations[0].effect=NoSchedule".into(),
    ];
    let mut args: Vec<String> = [
        "install",
        "op",
        chart,
        "-n",
        &ns,
        "--skip-crds",
        "--wait",
        "--timeout",
        "120s",
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    for value in values {
        args.push("--set".into());
        args.push(value);
    }
    args.push("--set-string".into());
    args.push("nodeSelector.tfjob-operator\\.io/real-node=true".into());
    let installed = helm(t, args).await;
    assert!(
        installed.status.success(),
        "{}",
        String::from_utf8_lossy(&installed.stderr)
    );
}

/// Both replicas Ready through their real probes, non-root on a read-only root filesystem, one
/// of them holding the Lease.
async fn two_ready_non_root_replicas_one_leading(t: &TestNs) {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::coordination::v1::Lease;
    let deployment: Deployment = t.api().get("op-tfjob-operator").await.expect("deployment");
    let status = deployment.status.expect("status");
    assert_eq!((status.replicas, status.ready_replicas), (Some(2), Some(2)));
    let pods = t.listed_pods().await;
    let operators: Vec<_> = pods
        .iter()
        .filter(|p| {
            p.metadata
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with("op-tfjob-operator"))
        })
        .collect();
    assert_eq!(operators.len(), 2);
    for pod in &operators {
        let spec = pod.spec.as_ref().expect("spec");
        assert_eq!(spec.node_name.as_deref(), Some("real-node-0"));
        let security = spec.containers[0]
            .security_context
            .as_ref()
            .expect("securityContext");
        assert_eq!(security.run_as_user, Some(65532));
        assert_eq!(security.read_only_root_filesystem, Some(true));
        assert_eq!(security.run_as_non_root, Some(true));
    }
    let lease: Lease = t
        .api()
        .get("tfjob-operator.kubeflow.org")
        .await
        .expect("the Lease");
    let holder = lease
        .spec
        .and_then(|s| s.holder_identity)
        .unwrap_or_default();
    assert!(
        operators.iter().any(|p| p
            .metadata
            .name
            .as_deref()
            .is_some_and(|n| holder.starts_with(n))),
        "one of the replicas leads: {holder}"
    );
}

#[tokio::test]
#[ignore = "needs a control plane with a real node: run `make test`"]
async fn the_chart_runs_the_operator_from_its_image_on_the_node() {
    let t = real_ns("real-chart").await;
    install_chart(&t).await;
    two_ready_non_root_replicas_one_leading(&t).await;
    let ns = t.ns.clone();
    // It reconciles from inside the cluster, as the chart's ServiceAccount.
    let job = tfjob("trained")
        .workers(1)
        .pod_spec(on_real_node(BUSYBOX, "echo trained; exit 0"));
    t.create_job(job).await;
    wait_job(&t, "trained", "trained Succeeded", T, |j| {
        has_condition(j, "Succeeded")
    })
    .await;
    let kept = tfjob("kept")
        .workers(1)
        .pod_spec(on_real_node(BUSYBOX, "sleep 3600"));
    let stored = t.create_job(kept).await;
    assert_eq!(
        stored.metadata.finalizers.unwrap_or_default(),
        [tfjob_operator::plan::cleanup::FINALIZER],
        "stored with the finalizer by the chart's MutatingAdmissionPolicy"
    );
    wait_job(&t, "kept", "kept Running", T, |j| {
        has_condition(j, "Running")
    })
    .await;

    // Uninstalled: its hook releases every finalizer, so the TFJob left behind can go.
    let removed = helm(
        &t,
        ["uninstall", "op", "-n", &ns, "--wait", "--timeout", "120s"]
            .iter()
            .map(ToString::to_string)
            .collect(),
    )
    .await;
    assert!(
        removed.status.success(),
        "{}",
        String::from_utf8_lossy(&removed.stderr)
    );
    let kept = t.jobs().get("kept").await.expect("kept stays");
    assert!(
        kept.metadata.finalizers.unwrap_or_default().is_empty(),
        "finalizer released"
    );
}

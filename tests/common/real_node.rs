//! The real node in the cluster tests: the control plane `make test` starts with a kubelet,
//! containerd and CoreDNS (`TFJOB_CLUSTER_REAL_NODE=1 tests/cluster/up.sh`), and jobs whose pods
//! run there as real containers of the images tests/images/build.sh and
//! tests/images/build-tensorflow.sh make.

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, PodSpec, Toleration};
use kube::Api;
use kube::api::LogParams;
use serde_json::{Value, json};
use tokio::sync::watch;

/// The label and taint of the real node (tests/cluster/realnode.sh).
pub const REAL_NODE: &str = "tfjob-operator.io/real-node";
/// The tests' small image (busybox), present on the node.
pub const BUSYBOX: &str = "tfjob-test.local/busybox:1";
/// The operator's image, present on the node.
pub const OPERATOR_IMAGE: &str = "tfjob-operator.local/tfjob-operator";

/// The control plane with a real node.
pub fn real_node_dir() -> PathBuf {
    match std::env::var_os("TFJOB_REAL_NODE_CLUSTER") {
        Some(d) => PathBuf::from(d),
        None => panic!(
            "this test needs a control plane with a real node: run `make test`, or set \
             TFJOB_REAL_NODE_CLUSTER to a directory printed by `TFJOB_CLUSTER_REAL_NODE=1 tests/cluster/up.sh DIR`"
        ),
    }
}

/// A fresh test namespace on the control plane with the real node, its CRD installed.
pub async fn real_ns(prefix: &str) -> super::cluster::TestNs {
    let dir = real_node_dir();
    super::cluster::install_crd(&super::cluster::client_for(&dir).await).await;
    super::cluster::TestNs::new_in(dir, prefix).await
}

/// Puts a pod on the real node: its label as node selector, a toleration of its taint.
pub fn place_on_real_node(s: &mut PodSpec) {
    s.node_selector = Some([(REAL_NODE.to_string(), "true".to_string())].into());
    s.tolerations = Some(vec![Toleration {
        key: Some(REAL_NODE.into()),
        operator: Some("Exists".into()),
        effect: Some("NoSchedule".into()),
        ..Toleration::default()
    }]);
}

/// A pod spec edit: on the real node, the container running `script` with `sh -c` in `image`.
pub fn on_real_node(image: &str, script: &str) -> impl FnOnce(&mut PodSpec) {
    let (image, script) = (image.to_string(), script.to_string());
    move |s: &mut PodSpec| {
        place_on_real_node(s);
        if let Some(c) = s.containers.first_mut() {
            c.image = Some(image);
            c.image_pull_policy = Some("IfNotPresent".into());
            c.command = Some(vec!["sh".into(), "-c".into(), script]);
        }
    }
}

/// The TFJob of `examples/tensorflow/<file>` as it is, as JSON, with every replica's pod placed
/// on the real node (the only change).
pub fn tensorflow_example(file: &str) -> Value {
    let path = format!("{}/examples/tensorflow/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut job: Value = serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    let specs = job["spec"]["tfReplicaSpecs"]
        .as_object_mut()
        .expect("tfReplicaSpecs");
    for spec in specs.values_mut() {
        let pod = &mut spec["template"]["spec"];
        pod["nodeSelector"] = json!({ REAL_NODE: "true" });
        pod["tolerations"] =
            json!([{"key": REAL_NODE, "operator": "Exists", "effect": "NoSchedule"}]);
    }
    job
}

/// The `tensorflow` container's args of replica type `rtype` in a TFJob as JSON.
pub fn args_of<'a>(job: &'a mut Value, rtype: &str) -> &'a mut Vec<Value> {
    let container = &mut job["spec"]["tfReplicaSpecs"][rtype]["template"]["spec"]["containers"][0];
    if container.get("args").is_none() {
        container["args"] = json!([]);
    }
    container["args"].as_array_mut().expect("args")
}

/// A pod's log, followed from its first line through the API server and the kubelet while the
/// test goes on: it starts once the container has, and ends when the container does (or the
/// pod is deleted).
pub struct FollowedLog {
    pod: String,
    lines: watch::Receiver<Vec<String>>,
    ended: watch::Receiver<bool>,
}

impl FollowedLog {
    /// Starts following pod `pod`'s log; `timeout` bounds the wait for its container to start.
    pub fn start(pods: Api<Pod>, pod: &str, timeout: Duration) -> Self {
        let (lines_tx, lines) = watch::channel(Vec::new());
        let (ended_tx, ended) = watch::channel(false);
        let name = pod.to_string();
        tokio::spawn(async move {
            let params = LogParams {
                follow: true,
                ..LogParams::default()
            };
            let deadline = tokio::time::Instant::now() + timeout;
            let stream = loop {
                // Refused while the pod does not exist yet or its container is still starting.
                match pods.log_stream(&name, &params).await {
                    Ok(stream) => break Some(stream),
                    Err(_) if tokio::time::Instant::now() < deadline => {
                        tokio::time::sleep(Duration::from_millis(250)).await;
                    }
                    Err(_) => break None,
                }
            };
            if let Some(stream) = stream {
                use futures::{AsyncBufReadExt, TryStreamExt};
                let mut log = stream.lines();
                while let Ok(Some(line)) = log.try_next().await {
                    lines_tx.send_modify(|l| l.push(line));
                }
            }
            let _ = ended_tx.send(true);
        });
        Self {
            pod: pod.to_string(),
            lines,
            ended,
        }
    }

    /// Waits until a line satisfies `pred` and returns it; panics after `timeout` with the log.
    pub async fn line(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        let mut lines = self.lines.clone();
        let found = tokio::time::timeout(timeout, lines.wait_for(|l| l.iter().any(|x| pred(x))))
            .await
            .ok()
            .and_then(Result::ok)
            .and_then(|l| l.iter().find(|x| pred(x)).cloned());
        found.unwrap_or_else(|| panic!("{}'s log lacks the line:\n{}", self.pod, self.text()))
    }

    /// Waits until the log has ended (the container exited or the pod is gone), at most
    /// `timeout`; returns every line.
    pub async fn ended(&self, timeout: Duration) -> Vec<String> {
        let mut ended = self.ended.clone();
        let done = tokio::time::timeout(timeout, ended.wait_for(|e| *e)).await;
        assert!(
            done.is_ok(),
            "{}'s log did not end:\n{}",
            self.pod,
            self.text()
        );
        self.lines.borrow().clone()
    }

    /// The pod whose log this is.
    pub fn pod(&self) -> &str {
        &self.pod
    }

    /// Every line so far, one per line.
    pub fn text(&self) -> String {
        self.lines.borrow().join("\n")
    }
}

/// The containerd ID of the running container of pod `name`.
pub async fn container_id(pods: Api<Pod>, name: &str, timeout: Duration) -> String {
    let running = super::cluster::wait_for(pods, &format!("{name} running"), timeout, |pods| {
        pods.iter().any(|p| {
            p.metadata.name.as_deref() == Some(name)
                && p.status
                    .iter()
                    .flat_map(|s| s.container_statuses.iter().flatten())
                    .any(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
        })
    })
    .await;
    running
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some(name))
        .and_then(|p| container_id_of(p))
        .expect("a containerd container ID")
}

/// The containerd ID of a pod's (first) container, once it has one.
pub fn container_id_of(pod: &Pod) -> Option<String> {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.first())
        .and_then(|c| c.container_id.as_ref())
        .and_then(|id| id.strip_prefix("containerd://").map(String::from))
}

/// Sends SIGKILL to a container's process through the node's containerd (the cluster in
/// `dir`), as the OOM killer or an operator at the machine would.
pub fn sigkill(dir: &std::path::Path, id: &str) {
    let socket = dir.join("realnode/run/containerd.sock");
    let out = std::process::Command::new("ctr")
        .arg("-a")
        .arg(&socket)
        .args(["-n", "k8s.io", "tasks", "kill", "-s", "SIGKILL", id])
        .output()
        .expect("ctr runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

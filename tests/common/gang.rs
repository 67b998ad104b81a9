//! Gang scheduling in the cluster tests: the control plane `make test` starts with Volcano and
//! scheduler-plugins (`TFJOB_CLUSTER_GANG=1 tests/cluster/up.sh`), kwok nodes of a size a test
//! chooses, the jobs the tests run on them, and a watch that records whether two jobs ever hold
//! nodes at the same time.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{
    Node, Pod, PodSchedulingGate, PodSpec, ResourceRequirements, Toleration,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;
use tfjob_operator::api::builder::{TFJobBuilder, tfjob};
use tfjob_operator::api::podgroup::GangScheduler;
use tfjob_operator::controller::ControllerConfig;

use super::cluster::{TestNs, clean_up_from_drop, quick_retry, wait_for};

/// The label Volcano's `--node-selector` reads (tests/cluster/gang.sh): the nodes it sees.
pub const GANG_NODE_LABEL: &str = "tfjob-test/gang";
/// The label (and taint) that keeps a test's nodes for its own pods.
pub const POOL: &str = "tfjob-test/pool";
/// The scheduler-plugins profile running Coscheduling (tests/cluster/gang.sh).
pub const COSCHEDULING: &str = "scheduler-plugins-scheduler";

/// One gang test at a time: Volcano admits against every node labelled for it, so two tests'
/// nodes would be one pool.
pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The control plane with the gang schedulers.
pub fn gang_dir() -> PathBuf {
    match std::env::var_os("TFJOB_GANG_CLUSTER") {
        Some(d) => PathBuf::from(d),
        None => panic!(
            "this test needs a control plane with Volcano and scheduler-plugins: run `make test`, \
             or set TFJOB_GANG_CLUSTER to a directory printed by `TFJOB_CLUSTER_GANG=1 tests/cluster/up.sh DIR`"
        ),
    }
}

/// The operator's configuration for `scheduler`.
pub fn gang_config(scheduler: Option<GangScheduler>) -> ControllerConfig {
    let mut config = ControllerConfig::default();
    config.plan.gang = scheduler;
    config
}

/// kwok nodes of `cpu` CPUs each, only for the pods of `t`'s namespace (labelled and tainted
/// for it); deleted when dropped.
pub struct Nodes {
    dir: PathBuf,
    ns: String,
    names: Vec<String>,
}

impl Nodes {
    /// No nodes yet.
    pub fn none(t: &TestNs) -> Self {
        Self {
            dir: t.dir.clone(),
            ns: t.ns.clone(),
            names: Vec::new(),
        }
    }

    /// Adds a node of `cpu` CPUs, Ready from its creation, and waits until it is seen so. Its
    /// status is part of the create (as a kubelet registers its node): kwok's node-initialize
    /// stage, which would write its own capacity (1k CPUs), is for nodes not Ready, so it never
    /// applies. Patching the capacity after kwok made the node Ready raced with a second
    /// initialize kwok had queued (from the node's events before Ready), and Volcano once saw
    /// room for both gangs.
    pub async fn add(&mut self, t: &TestNs, cpu: u32) {
        let name = format!("{}-{}", t.ns, self.names.len());
        let nodes: Api<Node> = Api::all(t.client.clone());
        let now = jiff::Timestamp::now().to_string();
        let size =
            json!({"cpu": cpu.to_string(), "memory": "64Gi", "pods": "110", "nvidia.com/gpu": "0"});
        let node = json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {
                "name": name,
                "annotations": {"node.alpha.kubernetes.io/ttl": "0", "kwok.x-k8s.io/node": "fake"},
                "labels": {"kubernetes.io/hostname": name, "type": "kwok", GANG_NODE_LABEL: "true", POOL: t.ns},
            },
            "spec": {"taints": [{"key": POOL, "value": t.ns, "effect": "NoSchedule"}]},
            "status": {
                "capacity": size, "allocatable": size, "phase": "Running",
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                    "message": "kwok", "lastHeartbeatTime": now, "lastTransitionTime": now}],
                "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": name}],
                "nodeInfo": {"architecture": "amd64", "operatingSystem": "linux", "kubeletVersion": "kwok",
                    "kernelVersion": "kwok", "containerRuntimeVersion": "kwok", "osImage": "", "machineID": "",
                    "systemUUID": "", "bootID": "", "kubeProxyVersion": ""},
            },
        });
        let node: Node = serde_json::from_value(node).expect("a node");
        nodes
            .create(&PostParams::default(), &node)
            .await
            .expect("node created");
        self.names.push(name.clone());
        let cpus = Quantity(cpu.to_string());
        wait_for(
            nodes.clone(),
            &format!("node {name} Ready with {cpu} CPUs"),
            Duration::from_secs(60),
            |all| {
                all.iter().any(|n| {
                    n.metadata.name.as_deref() == Some(&name)
                        && is_ready(n)
                        && n.status
                            .as_ref()
                            .and_then(|s| s.allocatable.as_ref()?.get("cpu"))
                            == Some(&cpus)
                })
            },
        )
        .await;
    }
}

fn is_ready(node: &Node) -> bool {
    node.status
        .iter()
        .flat_map(|s| s.conditions.iter().flatten())
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

impl Drop for Nodes {
    /// Deletes the namespace's pods at once, then the nodes: a pod left on a deleted node
    /// would keep its node's capacity in Volcano's view until the pod garbage collector comes
    /// (40 s), and the next test would find it there.
    fn drop(&mut self) {
        let names = std::mem::take(&mut self.names);
        let ns = self.ns.clone();
        clean_up_from_drop(self.dir.clone(), move |client| async move {
            let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
            let _ = pods
                .delete_collection(
                    &DeleteParams::default().grace_period(0),
                    &Default::default(),
                )
                .await;
            let nodes: Api<Node> = Api::all(client);
            for name in names {
                let _ = nodes.delete(&name, &DeleteParams::default()).await;
            }
        });
    }
}

/// The hold a test puts on a job's pods (a scheduling gate) to choose the order the default
/// scheduler sees them in.
pub const HOLD: &str = "tfjob-test/hold";

/// A job of 1 PS and 3 Workers, one CPU each, on `t`'s nodes; `held`: its pods wait for the
/// test to lift [`HOLD`].
pub fn gang_job(t: &TestNs, name: &str, held: bool) -> TFJobBuilder {
    tfjob(name)
        .ps(1)
        .pod_spec(on_pool(&t.ns, held))
        .workers(3)
        .pod_spec(on_pool(&t.ns, held))
}

/// A pod spec edit: one CPU, on `pool`'s nodes, held or not.
fn on_pool(pool: &str, held: bool) -> impl FnOnce(&mut PodSpec) {
    let pool = pool.to_string();
    move |s: &mut PodSpec| {
        s.node_selector = Some([(POOL.to_string(), pool.clone())].into());
        s.tolerations = Some(vec![Toleration {
            key: Some(POOL.into()),
            operator: Some("Equal".into()),
            value: Some(pool),
            effect: Some("NoSchedule".into()),
            ..Toleration::default()
        }]);
        if let Some(container) = s.containers.first_mut() {
            container.resources = Some(ResourceRequirements {
                requests: Some([("cpu".to_string(), Quantity("1".into()))].into()),
                ..ResourceRequirements::default()
            });
        }
        if held {
            s.scheduling_gates = Some(vec![PodSchedulingGate { name: HOLD.into() }]);
        }
    }
}

/// Lifts [`HOLD`] from pod `name`: the scheduler sees it from now on.
pub async fn lift_hold(t: &TestNs, name: &str) {
    let lifted = Patch::Merge(json!({"spec": {"schedulingGates": null}}));
    t.pods()
        .patch(name, &PatchParams::default(), &lifted)
        .await
        .unwrap_or_else(|e| panic!("lifting the hold on {name}: {e}"));
}

/// What a pod holds: whether it is bound to a node and not finished or being deleted.
fn holds_a_node(pod: &Pod) -> bool {
    let bound = pod.spec.as_ref().is_some_and(|s| s.node_name.is_some());
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    bound
        && !matches!(phase, Some("Succeeded" | "Failed"))
        && pod.metadata.deletion_timestamp.is_none()
}

/// Watches `t`'s pods and records when each was first seen bound to a node. Stops when
/// dropped.
pub struct Binds {
    seen: Arc<Mutex<Vec<(Instant, String, String)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Binds {
    pub fn watch(t: &TestNs) -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let pods: Api<Pod> = t.pods();
        let task = tokio::spawn(async move {
            let events = watcher(pods, watcher::Config::default())
                .backoff(quick_retry())
                .applied_objects();
            futures::pin_mut!(events);
            let mut bound = std::collections::BTreeSet::new();
            while let Some(Ok(pod)) = events.next().await {
                let name = pod.metadata.name.clone().unwrap_or_default();
                if pod.spec.as_ref().is_some_and(|s| s.node_name.is_some())
                    && bound.insert(name.clone())
                    && let Ok(mut s) = record.lock()
                {
                    s.push((Instant::now(), job_of(&pod).to_string(), name));
                }
            }
        });
        Self { seen, task }
    }

    /// The pods of `job` first seen bound before `at`.
    pub fn bound_before(&self, job: &str, at: Instant) -> Vec<String> {
        let seen = self.seen.lock().map(|s| s.clone()).unwrap_or_default();
        seen.into_iter()
            .filter(|(when, j, _)| j == job && *when < at)
            .map(|(_, _, pod)| pod)
            .collect()
    }
}

impl Drop for Binds {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The TFJob a pod belongs to, by its label.
pub fn job_of(pod: &Pod) -> &str {
    pod.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("training.kubeflow.org/job-name"))
        .map_or("", String::as_str)
}

/// Waits until `api` lists nothing (its watch says so), or panics after `timeout` with `what`.
pub async fn wait_none_left(api: Api<DynamicObject>, what: &str, timeout: Duration) {
    let events = watcher(api, watcher::Config::default()).backoff(quick_retry());
    futures::pin_mut!(events);
    let mut names = std::collections::BTreeSet::new();
    let mut listing = std::collections::BTreeSet::new();
    let emptied = tokio::time::timeout(timeout, async {
        while let Some(event) = events.next().await {
            match event {
                Ok(watcher::Event::Init) => listing.clear(),
                Ok(watcher::Event::InitApply(o)) => {
                    listing.insert(o.metadata.name.unwrap_or_default());
                }
                Ok(watcher::Event::InitDone) => names = std::mem::take(&mut listing),
                Ok(watcher::Event::Apply(o)) => {
                    names.insert(o.metadata.name.unwrap_or_default());
                }
                Ok(watcher::Event::Delete(o)) => {
                    names.remove(&o.metadata.name.unwrap_or_default());
                }
                Err(_) => continue,
            }
            if names.is_empty() && listing.is_empty() {
                return;
            }
        }
    })
    .await;
    assert!(
        emptied.is_ok(),
        "timed out after {timeout:?} waiting for {what}: {names:?} left"
    );
}

//! Kueue in the cluster tests: the Kueue-enabled control planes `make test` starts
//! (`TFJOB_CLUSTER_KUEUE=1 tests/cluster/up.sh`), Kueue's objects as plain JSON applied with
//! server-side apply, and waits on them.

use std::path::PathBuf;
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch};
use kube::api::{PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource};
use serde_json::{Value, json};

use super::cluster::{clean_up_from_drop, quick_retry};

/// The label that queues a job in a LocalQueue.
pub const QUEUE_LABEL: &str = "kueue.x-k8s.io/queue-name";
/// The label that gives a job a WorkloadPriorityClass.
pub const PRIORITY_LABEL: &str = "kueue.x-k8s.io/priority-class";
/// `spec.runPolicy.managedBy` of a job MultiKueue dispatches.
pub const MULTIKUEUE: &str = "kueue.x-k8s.io/multikueue";

fn dir_from(var: &str) -> PathBuf {
    match std::env::var_os(var) {
        Some(d) => PathBuf::from(d),
        None => panic!(
            "this test needs a control plane with Kueue: run `make test`, or set {var} to a \
             directory printed by `TFJOB_CLUSTER_KUEUE=1 tests/cluster/up.sh DIR`"
        ),
    }
}

/// The Kueue-enabled control plane (the MultiKueue manager in the MultiKueue test).
pub fn kueue_dir() -> PathBuf {
    dir_from("TFJOB_KUEUE_CLUSTER")
}

/// A second Kueue-enabled control plane: the MultiKueue worker.
pub fn worker_dir() -> PathBuf {
    dir_from("TFJOB_KUEUE_WORKER_CLUSTER")
}

/// Kueue's resource for `kind` (kueue.x-k8s.io/v1beta2).
pub fn resource(kind: &str) -> ApiResource {
    let plural = match kind {
        "WorkloadPriorityClass" => "workloadpriorityclasses".to_string(),
        other => format!("{}s", other.to_lowercase()),
    };
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("kueue.x-k8s.io", "v1beta2", kind),
        &plural,
    )
}

/// The API of Kueue's `kind`, namespaced when `ns` is given.
pub fn api(client: &Client, kind: &str, ns: Option<&str>) -> Api<DynamicObject> {
    let ar = resource(kind);
    match ns {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    }
}

/// Applies a Kueue object given as JSON (`kind`, `metadata.name`, optional
/// `metadata.namespace`, `spec`...), server-side.
pub async fn apply(client: &Client, mut doc: Value) {
    let kind = doc["kind"].as_str().expect("kind").to_string();
    doc["apiVersion"] = json!("kueue.x-k8s.io/v1beta2");
    let name = doc["metadata"]["name"].as_str().expect("name").to_string();
    let ns = doc["metadata"]["namespace"].as_str().map(str::to_string);
    api(client, &kind, ns.as_deref())
        .patch(
            &name,
            &PatchParams::apply("tfjob-operator-tests").force(),
            &Patch::Apply(&doc),
        )
        .await
        .unwrap_or_else(|e| panic!("applying {kind} {name}: {e}"));
}

/// Watches the objects of `api` until `pred` holds for the one named `name`, or panics after
/// `timeout` naming `what` and the object's last state.
pub async fn wait_object(
    api: Api<DynamicObject>,
    name: &str,
    what: &str,
    timeout: Duration,
    pred: impl Fn(&DynamicObject) -> bool,
) -> DynamicObject {
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let stream = watcher(api, config)
        .applied_objects()
        .backoff(quick_retry());
    futures::pin_mut!(stream);
    let mut last = None;
    let found = tokio::time::timeout(timeout, async {
        while let Some(item) = stream.next().await {
            if let Ok(obj) = item {
                if pred(&obj) {
                    return Some(obj);
                }
                last = Some(obj);
            }
        }
        None
    })
    .await;
    match found {
        Ok(Some(obj)) => obj,
        _ => panic!(
            "timed out after {timeout:?} waiting for {what}; last seen: {}",
            last.map(|o| serde_json::to_string(&o.data).unwrap_or_default())
                .unwrap_or_default()
        ),
    }
}

/// Whether a Kueue object's status has condition `type_` with status True.
pub fn kueue_condition(obj: &DynamicObject, type_: &str) -> bool {
    obj.data["status"]["conditions"]
        .as_array()
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == type_ && c["status"] == "True")
        })
}

/// Cluster-scoped Kueue objects of one test (ClusterQueues, flavors, priority classes...),
/// deleted when dropped, also when the test fails.
pub struct ClusterObjects {
    dir: PathBuf,
    created: Vec<(String, String)>,
}

impl ClusterObjects {
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            created: Vec::new(),
        }
    }

    /// Applies `doc` (see [`apply`]) and remembers it for deletion.
    pub async fn apply(&mut self, client: &Client, doc: Value) {
        let kind = doc["kind"].as_str().expect("kind").to_string();
        let name = doc["metadata"]["name"].as_str().expect("name").to_string();
        apply(client, doc).await;
        self.created.push((kind, name));
    }
}

impl Drop for ClusterObjects {
    fn drop(&mut self) {
        let created = std::mem::take(&mut self.created);
        clean_up_from_drop(self.dir.clone(), move |client| async move {
            // Last created first: queues before the flavors they name.
            for (kind, name) in created.iter().rev() {
                let _ = api(&client, kind, None)
                    .delete(name, &DeleteParams::default())
                    .await;
            }
        });
    }
}

/// Creates namespace `ns` on the cluster of `client` (for the MultiKueue worker, which must
/// have the manager's namespace).
pub async fn create_namespace(client: &Client, ns: &str) {
    let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let namespace = serde_json::from_value(json!({"metadata": {"name": ns}})).expect("namespace");
    match api.create(&PostParams::default(), &namespace).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.is_already_exists() => {}
        Err(e) => panic!("creating namespace {ns}: {e}"),
    }
}

/// The name of an object, for messages.
pub fn name_of<K: Resource>(obj: &K) -> String {
    obj.meta().name.clone().unwrap_or_default()
}

//! The local control plane is a real one: the garbage collector and the namespace controller run.

mod common;

use std::time::Duration;

use common::cluster::{TestNs, wait_for};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn garbage_collector_deletes_dependents_of_a_deleted_owner() {
    let t = TestNs::new("gc").await;
    let cms: Api<ConfigMap> = t.api();
    let owner = cms
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "owner"}})).unwrap(),
        )
        .await
        .unwrap();
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "dependent", "ownerReferences": [{
            "apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.uid().unwrap()
        }]},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}
    }))
    .unwrap();
    t.pods().create(&PostParams::default(), &pod).await.unwrap();
    cms.delete("owner", &DeleteParams::background())
        .await
        .unwrap();
    wait_for(
        t.pods(),
        "the dependent pod to be garbage-collected",
        Duration::from_secs(60),
        |pods| pods.iter().all(|p| p.name_any() != "dependent"),
    )
    .await;
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn namespace_deletion_completes() {
    let t = TestNs::new("nsdel").await;
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}
    }))
    .unwrap();
    t.pods().create(&PostParams::default(), &pod).await.unwrap();
    let namespaces: Api<Namespace> = Api::all(t.client.clone());
    namespaces
        .delete(&t.ns, &DeleteParams::default())
        .await
        .unwrap();
    let ns = t.ns.clone();
    wait_for(
        namespaces,
        "the namespace to be gone",
        Duration::from_secs(90),
        |all| all.iter().all(|n| n.name_any() != ns),
    )
    .await;
}

//! The CRD against a real API server: the admission table (CEL and OpenAPI rules), the seed
//! manifest stored without pruning, `kubectl explain`-able docs and the printer columns.

mod common;

use common::cluster::TestNs;
use common::fixtures::{admission_cases, fixture_value};
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use serde_json::Value;
use tfjob_operator::api::TFJob;

fn dynamic(t: &TestNs) -> Api<DynamicObject> {
    Api::namespaced_with(t.client.clone(), &t.ns, &ApiResource::erase::<TFJob>(&()))
}

fn object(mut v: Value, ns: &str) -> DynamicObject {
    v["metadata"]["namespace"] = Value::String(ns.into());
    serde_json::from_value(v).expect("object JSON")
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn api_server_accepts_and_rejects_the_admission_table() {
    let t = TestNs::new("admission").await;
    let api = dynamic(&t);
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let mut failures = Vec::new();
    for (case, manifest) in admission_cases() {
        let result = api.create(&dry, &object(manifest, &t.ns)).await;
        match (case.accepted(), result) {
            (true, Ok(_)) => {}
            (true, Err(e)) => failures.push(format!("{}: rejected: {e}", case.name)),
            (false, Ok(_)) => failures.push(format!(
                "{}: accepted, expected {:?}",
                case.name, case.expect
            )),
            (false, Err(kube::Error::Api(s))) => {
                if !(s.code == 422 && s.message.contains(&case.expect)) {
                    failures.push(format!(
                        "{}: got {} {:?}, expected {:?}",
                        case.name, s.code, s.message, case.expect
                    ));
                }
            }
            (false, Err(e)) => failures.push(format!("{}: unexpected error {e}", case.name)),
        }
    }
    assert!(
        failures.is_empty(),
        "admission table mismatches:\n{}",
        failures.join("\n")
    );
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn seed_manifest_is_stored_with_its_legacy_fields() {
    let t = TestNs::new("seed").await;
    let api = dynamic(&t);
    let seed = fixture_value("tfjob-seed.json");
    api.create(&PostParams::default(), &object(seed.clone(), &t.ns))
        .await
        .expect("seed accepted");
    let stored = api.get("tfjob-test").await.unwrap();
    let spec = &stored.data["spec"];
    assert_eq!(
        spec["backoffLimit"], 6,
        "spec.backoffLimit must not be pruned"
    );
    assert_eq!(
        spec["tfReplicaSpecs"]["Ps"], seed["spec"]["tfReplicaSpecs"]["Ps"],
        "the Ps key and template are kept as written"
    );
    // The typed client reads it back too.
    let typed = t.jobs().get("tfjob-test").await.unwrap();
    assert_eq!(typed.spec.backoff_limit, Some(6));
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn managed_by_is_immutable_on_the_server() {
    let t = TestNs::new("immutable").await;
    let (_, mut manifest) = admission_cases().remove(0);
    manifest["spec"]["runPolicy"] = serde_json::json!({"managedBy": "kueue.x-k8s.io/multikueue"});
    let api = dynamic(&t);
    api.create(&PostParams::default(), &object(manifest, &t.ns))
        .await
        .unwrap();
    let patch =
        serde_json::json!({"spec": {"runPolicy": {"managedBy": "kubeflow.org/training-operator"}}});
    let err = api
        .patch(
            "valid",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(patch),
        )
        .await
        .expect_err("managedBy change rejected");
    assert!(
        err.to_string()
            .contains("spec.runPolicy.managedBy is immutable"),
        "{err}"
    );
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn kubectl_shows_state_column_and_explains_fields() {
    let t = TestNs::new("kubectl").await;
    let kubectl = t.dir.join("bin/kubectl");
    let kubeconfig = t.dir.join("kubeconfig");
    // The API server publishes the CRD's OpenAPI a moment after it is Established; there is no
    // watch for that, so poll (bounded).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let out = loop {
        let out = std::process::Command::new(&kubectl)
            .args(["--kubeconfig"])
            .arg(&kubeconfig)
            .args(["explain", "tfjob.spec.runPolicy.cleanPodPolicy"])
            .output()
            .expect("kubectl runs");
        if out.status.success() || std::time::Instant::now() > deadline {
            break out;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("Which pods to delete once the job has finished"),
        "{text}"
    );
    let out = std::process::Command::new(&kubectl)
        .args(["--kubeconfig"])
        .arg(&kubeconfig)
        .args(["get", "tfjobs", "-n", &t.ns])
        .output()
        .unwrap();
    assert!(out.status.success());
}

//! `tfjob-operator render`: the admission table refused and accepted as the API server does it,
//! and the CLI's output and exit codes. (That a rendering is byte-equal to the operator's own
//! creates is shown in the controller's tests, where its requests can be read.)

mod common;

use std::process::{Command, Output};

use common::fixtures::{admission_cases, fixture_path};
use tfjob_operator::render::{Refusal, render};
use tfjob_operator::settings::RunSettings;

fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tfjob-operator"))
        .arg("render")
        .args(args)
        .output()
        .expect("the binary runs")
}

#[test]
fn the_admission_table_is_refused_and_accepted_with_the_api_servers_messages() {
    let cfg = RunSettings::defaults().controller_config().plan;
    let mut checked = 0;
    for (case, manifest) in admission_cases() {
        checked += 1;
        let result = render(&manifest, "default", &cfg);
        if case.accepted() {
            assert!(
                !matches!(result, Err(Refusal::ApiServer(_))),
                "{}: the API server accepts it, render refused: {result:?}",
                case.name
            );
        } else {
            let refusal = result.expect_err(&case.name);
            assert!(
                matches!(refusal, Refusal::ApiServer(_)),
                "{}: {refusal:?}",
                case.name
            );
            assert!(
                refusal.to_string().contains(&case.expect),
                "{}: expected {:?} in {refusal}",
                case.name,
                case.expect
            );
        }
    }
    assert!(checked >= 25, "only {checked} cases");
}

#[test]
fn the_cli_prints_services_then_pods_with_tf_config() {
    let seed = fixture_path("tfjob-seed.json");
    let out = cli(&["-f", seed.to_str().expect("utf-8 path"), "-o", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON List");
    let items = list["items"].as_array().expect("items");
    let kinds_and_names: Vec<String> = items
        .iter()
        .map(|i| {
            format!(
                "{}/{}",
                i["kind"].as_str().unwrap_or(""),
                i["metadata"]["name"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(
        kinds_and_names,
        [
            "Service/tfjob-test-ps-0",
            "Service/tfjob-test-worker-0",
            "Pod/tfjob-test-ps-0",
            "Pod/tfjob-test-worker-0",
        ]
    );
    let env = &items[3]["spec"]["containers"][0]["env"];
    let tf_config = env
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["name"] == "TF_CONFIG")
        .and_then(|e| e["value"].as_str())
        .expect("TF_CONFIG on the worker");
    let tf_config: serde_json::Value = serde_json::from_str(tf_config).expect("TF_CONFIG is JSON");
    assert_eq!(
        tf_config["task"],
        serde_json::json!({"type": "worker", "index": 0})
    );
    assert_eq!(
        tf_config["cluster"]["ps"],
        serde_json::json!(["tfjob-test-ps-0.kube-test.svc:2222"])
    );
}

#[test]
fn the_cli_says_who_refuses_and_exits_1() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        "apiVersion: kubeflow.org/v1\nkind: TFJob\nmetadata: {name: bad}\nspec:\n  tfReplicaSpecs:\n    Worker: {replicas: 1, restartPolicy: Sometimes, template: {spec: {containers: [{name: tensorflow, image: tf}]}}}\n",
    )
    .expect("written");
    let out = cli(&["-f", path.to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the API server would refuse this TFJob")
            && stderr.contains(
                "spec.tfReplicaSpecs.Worker.restartPolicy: Unsupported value: \"Sometimes\""
            ),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "nothing rendered");
}

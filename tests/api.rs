//! The TFJob API without a cluster: wire-format round trips, the generated CRD, and the CEL
//! admission rules evaluated client-side.

mod common;

use common::fixtures::{admission_cases, fixture_path, fixture_value};
use serde_json::Value;
use tfjob_operator::api::{ReplicaType, TFJob, crd, defaults};

fn round_trip(original: &Value) -> Value {
    let job: TFJob = serde_json::from_value(original.clone()).expect("deserialises as TFJob");
    serde_json::to_value(&job).expect("serialises")
}

#[test]
fn seed_manifest_round_trips_unchanged() {
    let seed = fixture_value("tfjob-seed.json");
    assert_eq!(round_trip(&seed), seed);
    let job: TFJob = serde_json::from_value(seed).unwrap();
    assert_eq!(job.spec.backoff_limit, Some(6));
    let n = defaults::normalize(&job.spec, tfjob_operator::api::CleanPodPolicy::Running).unwrap();
    assert!(n.replicas.contains_key(&ReplicaType::Ps));
    assert_eq!(n.run_policy.backoff_limit, Some(6));
}

#[test]
fn upstream_full_tfjob_round_trips_unchanged() {
    let full = fixture_value("tfjob-full.yaml");
    assert_eq!(round_trip(&full), full);
}

#[test]
fn seed_list_response_round_trips() {
    let list = fixture_value("tfjoblist-seed-response.json");
    for item in list["items"].as_array().expect("items") {
        let mut expected = item.clone();
        // `selfLink` is gone from Kubernetes' ObjectMeta (removed in 1.20) and is not modelled.
        expected["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("selfLink");
        assert_eq!(round_trip(&expected), expected);
    }
}

#[test]
fn checked_in_crd_is_in_sync() {
    let path = fixture_path("../../crds/kubeflow.org_tfjobs.yaml");
    let generated = crd::crd_yaml();
    if std::env::var_os("UPDATE_CRDS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "crds/kubeflow.org_tfjobs.yaml is out of date; regenerate it with `make crd` \
         (or `cargo run -- crd > crds/kubeflow.org_tfjobs.yaml`)"
    );
}

#[test]
fn helm_chart_ships_the_same_crd() {
    let path = fixture_path("../../charts/tfjob-operator/crds/kubeflow.org_tfjobs.yaml");
    let generated = crd::crd_yaml();
    if std::env::var_os("UPDATE_CRDS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let shipped = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        shipped == generated,
        "charts/tfjob-operator/crds/kubeflow.org_tfjobs.yaml is out of date; run `make crd`"
    );
}

#[test]
fn crd_is_small_enough_for_client_side_apply() {
    let compact = serde_json::to_string(&crd::crd()).unwrap();
    // kubectl apply stores the object in an annotation limited to 256 KiB.
    assert!(compact.len() < 128 * 1024, "CRD is {} bytes", compact.len());
    // ...while still validating the pod template structurally.
    let v: Value = serde_json::from_str(&compact).unwrap();
    let template = &v["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
        ["tfReplicaSpecs"]["additionalProperties"]["properties"]["template"];
    assert_eq!(
        template["properties"]["spec"]["required"],
        serde_json::json!(["containers"])
    );
}

#[test]
fn crd_names_columns_and_subresources() {
    let c = crd::crd();
    assert_eq!(c.metadata.name.as_deref(), Some("tfjobs.kubeflow.org"));
    assert_eq!(c.spec.names.kind, "TFJob");
    assert_eq!(c.spec.scope, "Namespaced");
    assert_eq!(c.spec.names.categories, Some(vec!["kubeflow".to_string()]));
    let v = &c.spec.versions[0];
    assert!(v.subresources.as_ref().unwrap().status.is_some());
    let cols = v.additional_printer_columns.as_ref().unwrap();
    assert_eq!(cols[0].name, "State");
    assert_eq!(cols[0].json_path, ".status.state");
    assert_eq!(cols[1].name, "Age");
    let wide: Vec<(&str, &str, Option<i32>)> = cols[2..]
        .iter()
        .map(|c| (c.name.as_str(), c.json_path.as_str(), c.priority))
        .collect();
    assert_eq!(
        wide,
        [
            ("Active", ".status.replicaTotals.active", Some(1)),
            ("Succeeded", ".status.replicaTotals.succeeded", Some(1)),
            ("Failed", ".status.replicaTotals.failed", Some(1)),
            ("Restarts", ".status.replicaTotals.restarts", Some(1)),
            ("Reason", ".status.reason", Some(1)),
        ],
        "-o wide only"
    );
    let selectable: Vec<&str> = v
        .selectable_fields
        .iter()
        .flatten()
        .map(|f| f.json_path.as_str())
        .collect();
    assert_eq!(
        selectable,
        [
            ".status.state",
            ".spec.runPolicy.schedulingPolicy.queue",
            ".spec.runPolicy.managedBy"
        ]
    );
}

fn crd_schema() -> Value {
    serde_json::to_value(crd::crd()).expect("the CRD serializes")["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        .clone()
}

#[test]
fn cel_rules_accept_and_reject_the_admission_table() {
    let schema = crd_schema();
    let mut checked = 0;
    for (case, object) in admission_cases() {
        if case.kind != "cel" {
            continue;
        }
        checked += 1;
        let result = kube_cel::validate(&schema, &object, None);
        if case.accepted() {
            assert!(
                result.is_ok(),
                "{}: expected accepted, got {result:?}",
                case.name
            );
        } else {
            let errors = result.expect_err(&format!("{}: expected a rejection", case.name));
            let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
            assert!(
                text.iter().any(|t| t.contains(&case.expect)),
                "{}: expected {:?} in {text:?}",
                case.name,
                case.expect
            );
        }
    }
    assert!(checked >= 10, "only {checked} CEL cases");
}

#[test]
fn seed_passes_the_cel_rules() {
    let seed = fixture_value("tfjob-seed.json");
    kube_cel::validate(&crd_schema(), &seed, None).expect("seed is valid");
}

#[test]
fn managed_by_is_immutable() {
    let (_, mut old) = admission_cases().remove(0);
    old["spec"]["runPolicy"] = serde_json::json!({"managedBy": "kueue.x-k8s.io/multikueue"});
    let mut new = old.clone();
    new["spec"]["runPolicy"]["managedBy"] = "kubeflow.org/training-operator".into();
    let errors = kube_cel::validate(&crd_schema(), &new, Some(&old)).unwrap_err();
    assert!(
        errors
            .iter()
            .any(|e| e.to_string().contains("managedBy is immutable"))
    );
    kube_cel::validate(&crd_schema(), &old, Some(&old)).expect("unchanged is fine");
}

#[test]
fn examples_parse_and_pass_the_cel_rules() {
    let dirs = [
        fixture_path("../../examples"),
        fixture_path("../../examples/tensorflow"),
    ];
    let mut n = 0;
    for entry in dirs.iter().flat_map(|d| std::fs::read_dir(d).unwrap()) {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let value: Value = serde_saphyr::from_str(&text).unwrap();
        let job: TFJob = serde_json::from_value(value.clone())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        defaults::normalize(&job.spec, tfjob_operator::api::CleanPodPolicy::Running)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        kube_cel::validate(&crd_schema(), &value, None)
            .unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
        n += 1;
    }
    assert!(n >= 7, "only {n} examples");
}

/// Every `description` in the schema, with its JSON path.
fn descriptions(value: &Value, path: &str, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                match child {
                    Value::String(text) if key == "description" => {
                        out.push((path.to_string(), text.clone()));
                    }
                    other => descriptions(other, &format!("{path}.{key}"), out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| descriptions(i, path, out)),
        _ => {}
    }
}

#[test]
fn kubectl_explain_text_has_no_line_breaks_inside_paragraphs() {
    let mut all = Vec::new();
    descriptions(&crd_schema(), "", &mut all);
    assert!(all.len() > 20, "the schema documents its fields");
    for (path, text) in all {
        let lines: Vec<&str> = text.split('\n').collect();
        for pair in lines.windows(2) {
            let (before, after) = (pair[0], pair[1]);
            assert!(
                before.is_empty() || after.is_empty() || after.starts_with("- "),
                "{path}: a line break inside a paragraph: {before:?} / {after:?}"
            );
        }
    }
}

#[test]
fn run_policy_is_defaulted_so_generated_clients_can_read_every_job() {
    let schema = crd_schema();
    assert_eq!(
        schema["properties"]["spec"]["properties"]["runPolicy"]["default"],
        serde_json::json!({})
    );
}

#[test]
fn the_grafana_dashboard_queries_only_metrics_the_operator_exports() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("charts/tfjob-operator/files/grafana-dashboard.json");
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("dashboard")).expect("JSON");
    // One sample in every family, so that each is encoded.
    use tfjob_operator::plan::Outcome;
    use tfjob_operator::runtime::metrics::{ErrorLabels, Metrics};
    let metrics = Metrics::new();
    let outcomes = [
        Outcome::Created,
        Outcome::Restarted { pods: 1 },
        Outcome::Succeeded,
        Outcome::Failed,
        Outcome::TtlDeleted,
    ];
    metrics.count_outcomes("ns", &outcomes);
    metrics.count_request("GET".into(), "200".into());
    metrics.watch_failed("Pod", "410".into());
    metrics.set_cached("Pod", None, 1);
    metrics.set_leader(true);
    let category = "api".to_string();
    metrics
        .reconcile_errors
        .get_or_create(&ErrorLabels { category })
        .inc();
    drop(metrics.reconcile_timer());
    let exported = metrics.encode();
    let mut queried = std::collections::BTreeSet::new();
    for expr in dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t["expr"].as_str().map(String::from))
    {
        let words = expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'));
        for word in words
            .filter(|w| w.starts_with("tfjob_operator_") || w.starts_with("training_operator_"))
        {
            queried.insert(word.to_string());
        }
    }
    assert!(queried.len() >= 10, "{queried:?}");
    for name in &queried {
        let family = ["_bucket", "_sum", "_count", "_total"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(name);
        assert!(
            exported.contains(&format!("# TYPE {family} ")),
            "the dashboard queries {name}, which the operator does not export:\n{exported}"
        );
    }
}

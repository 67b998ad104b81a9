//! Test fixtures shared by unit-level and cluster tests: manifests and the admission table.

use std::path::PathBuf;

use serde::Deserialize;
use serde_json::Value;

/// Path of a file under `tests/fixtures/`.
pub fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A fixture parsed from YAML or JSON into a JSON value.
pub fn fixture_value(name: &str) -> Value {
    let text = std::fs::read_to_string(fixture_path(name))
        .unwrap_or_else(|e| panic!("reading fixture {name}: {e}"));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("parsing fixture {name}: {e}"))
}

/// A TFJob fixture.
pub fn fixture_job(name: &str) -> tfjob_operator::api::TFJob {
    serde_json::from_value(fixture_value(name))
        .unwrap_or_else(|e| panic!("fixture {name} is not a TFJob: {e}"))
}

/// RFC 7386 JSON merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(Default::default());
            }
            let t = target.as_object_mut().expect("object");
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// One row of `validation-cases.yaml`.
#[derive(Deserialize, Debug)]
pub struct AdmissionCase {
    pub name: String,
    pub kind: String,
    pub expect: String,
    pub patch: Value,
    /// Paths set to null after the patch (a merge patch cannot: null deletes).
    #[serde(default)]
    pub nulls: Vec<Vec<String>>,
}

impl AdmissionCase {
    pub fn accepted(&self) -> bool {
        self.expect == "accepted"
    }
}

#[derive(Deserialize)]
struct AdmissionTable {
    base: Value,
    cases: Vec<AdmissionCase>,
}

/// The admission table: each case with its full manifest.
pub fn admission_cases() -> Vec<(AdmissionCase, Value)> {
    let table: AdmissionTable = serde_json::from_value(fixture_value("validation-cases.yaml"))
        .expect("validation-cases.yaml has base and cases");
    table
        .cases
        .into_iter()
        .map(|c| {
            let mut obj = table.base.clone();
            merge_patch(&mut obj, &c.patch);
            for path in &c.nulls {
                if let Some(target) = path.iter().try_fold(&mut obj, |v, k| v.get_mut(k)) {
                    *target = Value::Null;
                }
            }
            (c, obj)
        })
        .collect()
}

//! What the API server would refuse, decided offline from the CRD this binary generates: the
//! structural schema (types, enums, minimums, sizes, unknown fields as `kubectl apply`'s strict
//! field validation reports them) and the CRD's CEL rules (evaluated by kube-cel). Used by
//! `tfjob-operator render`, so a manifest is checked against exactly the rules the cluster
//! will apply, with the same messages.

use std::sync::LazyLock;

use kube_cel::CompiledSchema;
use serde_json::{Map, Value};

use super::crd;

/// Deepest nesting checked; a manifest nested deeper is refused (the API server refuses far
/// less deep objects than this in practice, and the walk must stay bounded).
const MAX_DEPTH: usize = 64;
/// Most refusals reported for one manifest; the rest are summarised in one line.
const MAX_REFUSALS: usize = 20;

/// Fields of every object that the API server checks itself, outside the CRD's schema.
const ROOT_FIELDS: &[&str] = &["apiVersion", "kind", "metadata", "status"];

/// The CRD's `openAPIV3Schema`, and its CEL rules compiled once.
static SCHEMA: LazyLock<(Value, CompiledSchema)> = LazyLock::new(|| {
    let crd = serde_json::to_value(crd::crd()).unwrap_or_default();
    let schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone();
    let compiled = kube_cel::compile_schema(&schema);
    (schema, compiled)
});

/// Every reason the API server would give for refusing `manifest` (empty: it would accept it).
/// Messages follow the API server's `<field>: <reason>` form.
pub fn refusals(manifest: &Value) -> Vec<String> {
    let (schema, compiled) = &*SCHEMA;
    let mut found = Vec::new();
    check_root(manifest, &mut found);
    structural(schema, manifest, "", 0, &mut found);
    if found.is_empty() {
        let defaulted = kube_cel::apply_defaults(schema, manifest);
        if let Err(errors) = kube_cel::validate_compiled(compiled, &defaulted, None) {
            found.extend(errors.iter().map(ToString::to_string));
        }
    }
    if found.len() > MAX_REFUSALS {
        let more = found.len() - MAX_REFUSALS;
        found.truncate(MAX_REFUSALS);
        found.push(format!("... and {more} more"));
    }
    found
}

/// The object's identity: what every request needs before the schema is looked at.
fn check_root(manifest: &Value, found: &mut Vec<String>) {
    let api_version = manifest.get("apiVersion").and_then(Value::as_str);
    let kind = manifest.get("kind").and_then(Value::as_str);
    if api_version != Some("kubeflow.org/v1") || kind != Some("TFJob") {
        found.push(format!(
            "apiVersion/kind: expected kubeflow.org/v1 TFJob, got {} {}",
            api_version.unwrap_or("(none)"),
            kind.unwrap_or("(none)")
        ));
    }
    let name = manifest.pointer("/metadata/name").and_then(Value::as_str);
    let generate = manifest
        .pointer("/metadata/generateName")
        .and_then(Value::as_str);
    if name.is_none() && generate.is_none() {
        found.push("metadata.name: Required value: name or generateName is required".into());
    }
}

/// The OpenAPI checks the API server makes on a custom resource, for the keywords our CRD uses.
fn structural(schema: &Value, value: &Value, path: &str, depth: usize, found: &mut Vec<String>) {
    if found.len() > MAX_REFUSALS {
        return;
    }
    if depth > MAX_DEPTH {
        found.push(format!("{}: nested too deeply", shown(path)));
        return;
    }
    if value.is_null() {
        // A null where the schema allows none is left to the type check below (the API server
        // drops nulls of nullable fields); a null map value is the CEL rules' to refuse.
        if schema.get("nullable").and_then(Value::as_bool) == Some(true) || depth > 0 {
            return;
        }
    }
    if !type_matches(schema, value) {
        let expected = schema.get("type").and_then(Value::as_str).unwrap_or("");
        found.push(format!(
            "{}: Invalid value: \"{}\": {} in body must be of type {expected}: \"{}\"",
            shown(path),
            json_type(value),
            shown(path),
            json_type(value)
        ));
        return;
    }
    bounds(schema, value, path, found);
    match value {
        Value::Object(map) => object(schema, map, path, depth, found),
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    structural(item_schema, item, &format!("{path}[{i}]"), depth + 1, found);
                }
            }
        }
        _ => {}
    }
}

/// Properties, required fields, map values and unknown fields of an object.
fn object(
    schema: &Value,
    map: &Map<String, Value>,
    path: &str,
    depth: usize,
    found: &mut Vec<String>,
) {
    let properties = schema.get("properties").and_then(Value::as_object);
    for required in schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if !map.contains_key(required) {
            found.push(format!("{}: Required value", join(path, required)));
        }
    }
    let additional = schema.get("additionalProperties").filter(|a| a.is_object());
    let open = schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true);
    for (key, child) in map {
        let child_path = join(path, key);
        if let Some(child_schema) = properties.and_then(|p| p.get(key)) {
            structural(child_schema, child, &child_path, depth + 1, found);
        } else if let Some(child_schema) = additional {
            structural(child_schema, child, &child_path, depth + 1, found);
        } else if !(open || depth == 0 && ROOT_FIELDS.contains(&key.as_str())) {
            found.push(format!(
                "strict decoding error: unknown field \"{child_path}\""
            ));
        }
    }
}

/// `enum`, `minimum`, `maximum`, `minLength`, `maxLength`, `maxItems`, `minProperties` and
/// `maxProperties`.
fn bounds(schema: &Value, value: &Value, path: &str, found: &mut Vec<String>) {
    let at = shown(path);
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
        found.push(format!(
            "{at}: Unsupported value: {value}: supported values: {}",
            list.join(", ")
        ));
    }
    number_bounds(schema, value, at, found);
    size_bounds(schema, value, at, found);
}

/// `minimum` and `maximum`.
fn number_bounds(schema: &Value, value: &Value, at: &str, found: &mut Vec<String>) {
    let Some(n) = value.as_f64() else {
        return;
    };
    if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
        && n < min
    {
        found.push(format!(
            "{at}: Invalid value: {value}: {at} in body should be greater than or equal to {min}"
        ));
    }
    if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
        && n > max
    {
        found.push(format!(
            "{at}: Invalid value: {value}: {at} in body should be less than or equal to {max}"
        ));
    }
}

/// `minLength`, `maxLength`, `maxItems`, `minProperties` and `maxProperties`.
fn size_bounds(schema: &Value, value: &Value, at: &str, found: &mut Vec<String>) {
    let size = |key: &str| schema.get(key).and_then(Value::as_u64);
    if let (Some(min), Some(s)) = (size("minLength"), value.as_str())
        && (s.chars().count() as u64) < min
    {
        found.push(format!(
            "{at}: Invalid value: {value}: {at} in body should be at least {min} chars long"
        ));
    }
    if let (Some(max), Some(s)) = (size("maxLength"), value.as_str())
        && s.len() as u64 > max
    {
        found.push(format!("{at}: Too long: may not be more than {max} bytes"));
    }
    if let (Some(max), Some(items)) = (size("maxItems"), value.as_array())
        && items.len() as u64 > max
    {
        found.push(format!(
            "{at}: Too many: {}: must have at most {max} items",
            items.len()
        ));
    }
    if let Some(map) = value.as_object() {
        if let Some(min) = size("minProperties")
            && (map.len() as u64) < min
        {
            found.push(format!(
                "{at}: Invalid value: {}: {at} in body should have at least {min} properties",
                map.len()
            ));
        }
        if let Some(max) = size("maxProperties")
            && map.len() as u64 > max
        {
            found.push(format!(
                "{at}: Too many: {}: must have at most {max} items",
                map.len()
            ));
        }
    }
}

/// Whether `value` has the schema's `type` (int-or-string fields take either).
fn type_matches(schema: &Value, value: &Value) -> bool {
    if schema
        .get("x-kubernetes-int-or-string")
        .and_then(Value::as_bool)
        == Some(true)
    {
        return value.is_string() || value.is_i64() || value.is_u64();
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("object") => value.is_object(),
        Some("array") => value.is_array(),
        Some("string") => value.is_string(),
        Some("boolean") => value.is_boolean(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("number") => value.is_number(),
        _ => true,
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn shown(path: &str) -> &str {
    if path.is_empty() { "<root>" } else { path }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(spec: &Value) -> Value {
        json!({"apiVersion": "kubeflow.org/v1", "kind": "TFJob", "metadata": {"name": "a"}, "spec": spec})
    }

    fn worker(extra: &Value) -> Value {
        let mut w =
            json!({"template": {"spec": {"containers": [{"name": "tensorflow", "image": "tf"}]}}});
        if let (Some(w), Some(e)) = (w.as_object_mut(), extra.as_object()) {
            w.extend(e.clone());
        }
        w
    }

    #[test]
    fn a_plain_job_is_accepted() {
        let found = refusals(&job(
            &json!({"tfReplicaSpecs": {"Worker": worker(&json!({}))}}),
        ));
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn types_enums_minimums_and_unknown_fields_are_refused() {
        let found = refusals(&job(&json!({
            "tfReplicaSpecs": {"Worker": worker(&json!({"replicas": "two", "restartPolicy": "Sometimes"}))},
            "runPolicy": {"backoffLimit": -1},
            "colour": "blue"
        })));
        let text = found.join("\n");
        assert!(text.contains("spec.tfReplicaSpecs.Worker.replicas: Invalid value: \"string\": spec.tfReplicaSpecs.Worker.replicas in body must be of type integer"), "{text}");
        assert!(text.contains("Unsupported value: \"Sometimes\""), "{text}");
        assert!(
            text.contains(
                "spec.runPolicy.backoffLimit in body should be greater than or equal to 0"
            ),
            "{text}"
        );
        assert!(text.contains("unknown field \"spec.colour\""), "{text}");
    }

    #[test]
    fn cel_rules_run_once_the_schema_holds() {
        let found = refusals(&job(
            &json!({"tfReplicaSpecs": {"Boss": worker(&json!({}))}}),
        ));
        assert!(
            found
                .iter()
                .any(|f| f.contains("tfReplicaSpecs keys must be replica types")),
            "{found:?}"
        );
    }

    #[test]
    fn deep_nesting_is_bounded() {
        let mut deep = json!(1);
        for _ in 0..200 {
            deep = json!([deep]);
        }
        let found = refusals(&job(
            &json!({"tfReplicaSpecs": {"Worker": worker(&json!({})) }, "x": deep}),
        ));
        assert!(!found.is_empty());
        assert!(found.len() <= MAX_REFUSALS + 1);
    }
}

//! The CustomResourceDefinition: the derived schema plus what the derive cannot express —
//! a compact pod-template schema and the CEL validation rules that replace upstream's webhook.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use schemars::{Schema, SchemaGenerator};
use serde_json::{Map, Value, json};

use super::types::TFJob;

/// Longest Pod / Service name Kubernetes accepts (a DNS-1035 label for Services).
pub const MAX_CHILD_NAME_LEN: usize = 63;
/// Upper bound on containers per pod template; lets the API server bound the cost of the CEL
/// rules that walk `containers`.
pub const MAX_CONTAINERS: u64 = 64;

/// The most pods one replica type may ask for at admission. A hard ceiling on what a TFJob can
/// make the operator (and the API server) do; the operator's `--max-replicas-per-job` may be
/// lower.
pub const MAX_REPLICAS_PER_TYPE: i32 = 50_000;

/// A CEL rule with the message the API server returns when it fails.
#[derive(Clone, Copy, Debug)]
pub struct CelRule {
    /// The CEL expression; `self` is the object the rule is attached to.
    pub rule: &'static str,
    /// What the user sees when the rule fails.
    pub message: &'static str,
    /// A CEL expression for a message naming the offending field; `message` is the fallback.
    pub message_expression: Option<&'static str>,
}

impl CelRule {
    const fn new(rule: &'static str, message: &'static str) -> Self {
        Self {
            rule,
            message,
            message_expression: None,
        }
    }

    const fn naming(self, message_expression: &'static str) -> Self {
        Self {
            message_expression: Some(message_expression),
            ..self
        }
    }
}

/// Rules on the whole TFJob (`self` is the object, so `self.metadata.name` is visible).
pub const JOB_RULES: &[CelRule] = &[
    CelRule::new(
        "self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",
        "metadata.name must be a DNS-1035 label (lower case letters, digits and '-', starting with a letter and ending with a letter or digit), because it is used in Service names",
    ),
    CelRule::new(
        "self.spec.tfReplicaSpecs.all(k, self.spec.tfReplicaSpecs[k] == null || size(self.metadata.name) + size(k) + 2 + size(string(has(self.spec.tfReplicaSpecs[k].replicas) && self.spec.tfReplicaSpecs[k].replicas > 1 ? self.spec.tfReplicaSpecs[k].replicas - 1 : 0)) <= 63)",
        "metadata.name is too long: the pod and service names <name>-<replica type>-<index> must fit in 63 characters; shorten the job name",
    ),
];

/// Rules on `spec.tfReplicaSpecs` (`self` is the map; CEL macros iterate its keys).
pub const REPLICA_SPECS_RULES: &[CelRule] = &[
    CelRule::new(
        "self.all(k, k.lowerAscii() in ['ps', 'worker', 'chief', 'master', 'evaluator'])",
        "tfReplicaSpecs keys must be replica types PS, Worker, Chief, Master or Evaluator (case-insensitive)",
    ),
    CelRule::new(
        "['ps', 'worker', 'chief', 'master', 'evaluator'].all(t, self.filter(k, k.lowerAscii() == t).size() <= 1)",
        "each replica type may appear only once in tfReplicaSpecs; keys are case-insensitive, so e.g. \"ps\" and \"PS\" are the same type",
    ),
    CelRule::new(
        "self.filter(k, k.lowerAscii() in ['chief', 'master']).size() <= 1",
        "tfReplicaSpecs must not have more than 1 Chief or Master role",
    ),
    CelRule::new(
        "self.all(k, self[k] != null)",
        "a replica type in tfReplicaSpecs is null: give it replicas and a template, or remove it",
    )
    .naming(
        "'tfReplicaSpecs.' + self.filter(k, self[k] == null)[0] + ' is null: give it replicas and a template, or remove it'",
    ),
    CelRule::new(
        "self.all(k, !(k.lowerAscii() in ['chief', 'master']) || self[k] == null || !has(self[k].replicas) || self[k].replicas <= 1)",
        "a Chief or Master must have at most 1 replica: a job has one chief",
    )
    .naming(
        "'tfReplicaSpecs.' + self.filter(k, k.lowerAscii() in ['chief', 'master'])[0] + '.replicas must be 0 or 1: a job has one chief'",
    ),
    CelRule::new(
        "self.exists(k, k.lowerAscii() in ['worker', 'chief', 'master'])",
        "tfReplicaSpecs needs a Worker, Chief or Master: they run the training and decide when the job has succeeded",
    ),
];

/// Rules on a pod template's `containers` (`self` is the list).
///
/// Each rule is written against the smallest schema that holds what it reads: the API server
/// evaluates every rule on every write of a TFJob (status writes and finalizer patches too), and
/// each field a rule reads copies the property list of the object it is read from. A rule on
/// the replica spec that reads `self.template.spec.containers` copies the pod spec's ~40
/// properties several times per write; this one only reads `name` of each container. What the
/// schema can say itself (an image on every container, at most 50000 replicas, a template with
/// a spec) it says with `required`, `minLength` and `maximum`, which cost no CEL at all.
pub const CONTAINERS_RULES: &[CelRule] = &[CelRule::new(
    "self.exists_one(c, c.name == 'tensorflow')",
    "template.spec.containers must have exactly one container named tensorflow",
)];

/// The schema of `tfReplicaSpecs[*].template`: the full `PodTemplateSpec` validation, without
/// descriptions (they would make the CRD too large for client-side `kubectl apply`), with the
/// embedded metadata trimmed to what a template may carry, a `spec` required, every container
/// required to have a non-empty image, and bounds on `containers` so the CEL rule that walks it
/// ([`CONTAINERS_RULES`]) has a bounded cost.
pub fn pod_template_schema(generator: &mut SchemaGenerator) -> Schema {
    let mut value = generator.subschema_for::<PodTemplateSpec>().to_value();
    strip_descriptions(&mut value);
    if let Some(props) = value.get_mut("properties").and_then(Value::as_object_mut) {
        props.insert("metadata".into(), template_metadata_schema());
        if let Some(containers) = props
            .get_mut("spec")
            .and_then(|s| s.get_mut("properties"))
            .and_then(|p| p.get_mut("containers"))
            .and_then(Value::as_object_mut)
        {
            containers.insert("maxItems".into(), json!(MAX_CONTAINERS));
            attach_rules(containers, CONTAINERS_RULES);
            if let Some(container) = containers.get_mut("items") {
                require(container, "image");
                let props = &mut container["properties"];
                props["name"]["maxLength"] = json!(MAX_CHILD_NAME_LEN);
                props["image"]["minLength"] = json!(1);
            }
        }
    }
    require(&mut value, "spec");
    if let Some(obj) = value.as_object_mut() {
        obj.insert(
            "description".into(),
            json!("Pod template of this replica type (a core/v1 PodTemplateSpec; see `kubectl explain pod.spec`)."),
        );
    }
    Schema::try_from(value).expect("PodTemplateSpec schema is an object")
}

fn template_metadata_schema() -> Value {
    let string_map = json!({"type": "object", "additionalProperties": {"type": "string"}});
    json!({
        "type": "object",
        "description": "Labels and annotations copied to every pod of this replica type.",
        "properties": {
            "annotations": string_map,
            "labels": string_map,
            "finalizers": {"type": "array", "items": {"type": "string"}},
            "name": {"type": "string"},
            "namespace": {"type": "string"},
        }
    })
}

/// Removes `description` texts from a schema tree (not properties that happen to be called so).
fn strip_descriptions(schema: &mut Value) {
    let Some(obj) = schema.as_object_mut() else {
        return;
    };
    if obj.get("description").is_some_and(Value::is_string) {
        obj.remove("description");
    }
    if let Some(props) = obj.get_mut("properties").and_then(Value::as_object_mut) {
        props.values_mut().for_each(strip_descriptions);
    }
    for key in ["items", "additionalProperties", "not"] {
        if let Some(sub) = obj.get_mut(key) {
            strip_descriptions(sub);
        }
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        if let Some(list) = obj.get_mut(key).and_then(Value::as_array_mut) {
            list.iter_mut().for_each(strip_descriptions);
        }
    }
}

fn rules_value(rules: &[CelRule]) -> Value {
    Value::Array(
        rules
            .iter()
            .map(|r| {
                let mut rule = json!({"rule": r.rule, "message": r.message});
                if let Some(expression) = r.message_expression {
                    rule["messageExpression"] = json!(expression);
                }
                rule
            })
            .collect(),
    )
}

fn attach_rules(schema: &mut Map<String, Value>, rules: &[CelRule]) {
    schema.insert("x-kubernetes-validations".into(), rules_value(rules));
}

/// Adds `field` to the `required` list of the object schema `schema`.
fn require(schema: &mut Value, field: &str) {
    let Some(obj) = schema.as_object_mut() else {
        return;
    };
    let required = obj.entry("required").or_insert_with(|| json!([]));
    if let Some(list) = required.as_array_mut()
        && !list.iter().any(|f| f == field)
    {
        list.push(json!(field));
    }
}

/// Joins the lines of every description in `schema` into paragraphs. Descriptions come from
/// Rust doc comments, wrapped at 100 columns; `kubectl explain` wraps text itself, and a line
/// break kept in the middle of a sentence shows as a ragged line there.
fn unwrap_descriptions(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                match value {
                    Value::String(text) if key == "description" => *text = unwrap_lines(text),
                    other => unwrap_descriptions(other),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(unwrap_descriptions),
        _ => {}
    }
}

/// `text` with single line breaks turned into spaces; blank lines (paragraphs) and line
/// breaks before list items (`- `) stay.
fn unwrap_lines(text: &str) -> String {
    let paragraphs: Vec<String> = text
        .split("\n\n")
        .map(|paragraph| {
            let mut out = String::new();
            for line in paragraph.lines().map(str::trim) {
                if !out.is_empty() {
                    out.push(if line.starts_with("- ") { '\n' } else { ' ' });
                }
                out.push_str(line);
            }
            out
        })
        .collect();
    paragraphs.join("\n\n")
}

/// The TFJob CRD as installed by `kubectl apply -f crds/` and the Helm chart.
pub fn crd() -> CustomResourceDefinition {
    let mut value = serde_json::to_value(TFJob::crd()).expect("a derived CRD serialises");
    let schema = &mut value["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    if let Some(root) = schema.as_object_mut() {
        attach_rules(root, JOB_RULES);
    }
    let replica_specs = &mut schema["properties"]["spec"]["properties"]["tfReplicaSpecs"];
    if let Some(map) = replica_specs.as_object_mut() {
        attach_rules(map, REPLICA_SPECS_RULES);
    }
    let replica = &mut replica_specs["additionalProperties"];
    require(replica, "template");
    if let Some(replica) = replica.as_object_mut() {
        // Nullable, so that REPLICA_SPECS_RULES can name a null replica type instead of the API server
        // silently dropping it (and the job waiting forever for replicas it will never have).
        replica.insert("nullable".into(), Value::Bool(true));
    }
    unwrap_descriptions(schema);
    serde_json::from_value(value).expect("the patched CRD is still a CRD")
}

/// The CRD rendered as YAML, exactly as checked in under `crds/`.
pub fn crd_yaml() -> String {
    let body = serde_saphyr::to_string(&crd()).expect("a CRD renders as YAML");
    format!(
        "# Generated by `tfjob-operator crd`; do not edit. Regenerate with `make crd`.\n---\n{body}"
    )
}

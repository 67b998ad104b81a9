//! Which TFJob fields a CRD's schema keeps, read without building the schema: the preflight
//! compares the installed CRD with ours to find fields the API server would prune.
//!
//! Both CRDs embed the pod template schema, thousands of nested objects that are never compared;
//! decoding them (as `CustomResourceDefinition`, or generating ours with schemars) took
//! megabytes at every start. [`FieldTree`] is decoded straight from the JSON or YAML: it keeps
//! field names only, and skips `template` subtrees without building them.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// Our CRD as this release ships it (`crds/`; a test keeps it equal to the Rust types).
const OUR_CRD: &str = include_str!("../../crds/kubeflow.org_tfjobs.yaml");

/// Schemas nested deeper than this are not compared (a TFJob's own fields are at most ~8 deep).
const MAX_DEPTH: usize = 12;

/// The field names of a schema node and of the nodes below it.
#[derive(Debug, Default, PartialEq, Deserialize)]
pub struct FieldTree {
    /// The object's fields (`template` ones are kept as empty trees: never compared).
    #[serde(default, deserialize_with = "fields_without_templates")]
    properties: BTreeMap<String, FieldTree>,
    /// The schema of a map's values (none when it is `true`/`false`).
    #[serde(
        default,
        rename = "additionalProperties",
        deserialize_with = "schema_or_other"
    )]
    additional_properties: Option<Box<FieldTree>>,
    /// The schema of a list's items.
    #[serde(default, deserialize_with = "schema_or_other")]
    items: Option<Box<FieldTree>>,
    /// Unknown fields are kept below this node: nothing is pruned there.
    #[serde(default, rename = "x-kubernetes-preserve-unknown-fields")]
    preserve_unknown: bool,
}

#[derive(Deserialize)]
struct Crd {
    spec: CrdSpec,
}

#[derive(Deserialize)]
struct CrdSpec {
    versions: Vec<CrdVersion>,
}

#[derive(Deserialize)]
struct CrdVersion {
    name: String,
    schema: Option<CrdSchema>,
}

#[derive(Deserialize)]
struct CrdSchema {
    #[serde(rename = "openAPIV3Schema")]
    open_api_v3_schema: Option<FieldTree>,
}

impl FieldTree {
    /// The v1 schema of a TFJob CRD in JSON (an API server's answer); `None` if it has none.
    pub fn of_crd_json(json: &str) -> Option<Self> {
        v1_schema(serde_json::from_str(json).ok()?)
    }

    /// The v1 schema of the CRD this release ships.
    pub fn ours() -> Option<Self> {
        v1_schema(serde_saphyr::from_str(OUR_CRD).ok()?)
    }
}

fn v1_schema(crd: Crd) -> Option<FieldTree> {
    let v1 = crd.spec.versions.into_iter().find(|v| v.name == "v1")?;
    v1.schema?.open_api_v3_schema
}

/// Field paths of `ours` (below `spec` and `status`, not inside pod templates) that
/// `installed` would prune: absent, and not under `x-kubernetes-preserve-unknown-fields`.
pub fn missing_fields(ours: &FieldTree, installed: &FieldTree) -> Vec<String> {
    let mut missing = Vec::new();
    walk(ours, installed, "", &mut missing, 0);
    missing
}

fn walk(
    ours: &FieldTree,
    installed: &FieldTree,
    path: &str,
    missing: &mut Vec<String>,
    depth: usize,
) {
    if depth > MAX_DEPTH || installed.preserve_unknown {
        return;
    }
    for (name, schema) in &ours.properties {
        if name == "template" || (depth == 0 && name != "spec" && name != "status") {
            continue;
        }
        let child = if path.is_empty() {
            name.clone()
        } else {
            format!("{path}.{name}")
        };
        match installed.properties.get(name) {
            Some(theirs) => walk(schema, theirs, &child, missing, depth + 1),
            None => missing.push(child),
        }
    }
    let nested = [
        (
            &ours.additional_properties,
            &installed.additional_properties,
        ),
        (&ours.items, &installed.items),
    ];
    for (ours, theirs) in nested {
        if let (Some(ours), Some(theirs)) = (ours, theirs) {
            walk(ours, theirs, path, missing, depth + 1);
        }
    }
}

/// `properties`, with the value of each `template` field skipped unread.
fn fields_without_templates<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, FieldTree>, D::Error> {
    struct Fields;
    impl<'de> Visitor<'de> for Fields {
        type Value = BTreeMap<String, FieldTree>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a map of field schemas")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut fields = BTreeMap::new();
            while let Some(name) = map.next_key::<String>()? {
                let tree = if name == "template" {
                    map.next_value::<IgnoredAny>()?;
                    FieldTree::default()
                } else {
                    map.next_value()?
                };
                fields.insert(name, tree);
            }
            Ok(fields)
        }
    }
    d.deserialize_map(Fields)
}

/// A schema, or anything else in its place (`additionalProperties: true`, a list of `items`
/// schemas): none.
fn schema_or_other<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Box<FieldTree>>, D::Error> {
    struct SchemaOrOther;
    impl<'de> Visitor<'de> for SchemaOrOther {
        type Value = Option<Box<FieldTree>>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a schema, a boolean or a list of schemas")
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            FieldTree::deserialize(de::value::MapAccessDeserializer::new(map))
                .map(|tree| Some(Box::new(tree)))
        }
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    d.deserialize_any(SchemaOrOther)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::crd::crd;
    use serde_json::{Value, json};

    /// Our CRD generated from the Rust types, as the API server would send it.
    fn generated() -> Value {
        serde_json::to_value(crd()).expect("serializes")
    }

    fn tree(crd: &Value) -> FieldTree {
        FieldTree::of_crd_json(&crd.to_string()).expect("a v1 schema")
    }

    fn run_policy(crd: &mut Value) -> &mut Value {
        &mut crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
            ["runPolicy"]
    }

    #[test]
    fn the_shipped_crd_reads_as_the_generated_one_and_keeps_every_field() {
        let ours = FieldTree::ours().expect("the shipped CRD has a v1 schema");
        assert_eq!(ours, tree(&generated()));
        assert!(missing_fields(&ours, &ours).is_empty());
        let spec = &ours.properties["spec"].properties;
        assert!(spec.contains_key("runPolicy") && spec.contains_key("tfReplicaSpecs"));
        let replica = spec["tfReplicaSpecs"].additional_properties.as_ref();
        let template = replica.map(|r| &r.properties["template"]);
        assert_eq!(
            template,
            Some(&FieldTree::default()),
            "templates are not read"
        );
    }

    #[test]
    fn fields_an_older_crd_would_prune_are_named() {
        let ours = FieldTree::ours().expect("ours");
        let mut older = generated();
        let policy = run_policy(&mut older);
        policy["properties"]
            .as_object_mut()
            .map(|p| p.remove("managedBy"));
        assert_eq!(
            missing_fields(&ours, &tree(&older)),
            vec!["spec.runPolicy.managedBy"]
        );
        run_policy(&mut older)["x-kubernetes-preserve-unknown-fields"] = Value::Bool(true);
        assert!(
            missing_fields(&ours, &tree(&older)).is_empty(),
            "kept, not pruned"
        );
    }

    #[test]
    fn schemas_in_place_of_booleans_or_lists_are_read_as_none() {
        let crd = json!({"spec": {"versions": [{"name": "v1", "schema": {"openAPIV3Schema": {
            "properties": {"spec": {"additionalProperties": true, "items": [{}, {}],
                                    "properties": {"a": {"additionalProperties": {
                                        "properties": {"b": {}}}}}}}}}}]}});
        let tree = tree(&crd);
        let spec = &tree.properties["spec"];
        assert!(spec.additional_properties.is_none() && spec.items.is_none());
        let a = spec.properties["a"].additional_properties.as_ref();
        assert!(a.is_some_and(|a| a.properties.contains_key("b")));
        assert_eq!(
            FieldTree::of_crd_json(r#"{"spec": {"versions": []}}"#),
            None
        );
    }
}

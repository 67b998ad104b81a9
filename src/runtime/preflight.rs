//! Checks before the controllers start, each failing with one line that says what to do: the
//! TFJob CRD is served, and the operator may do everything it will do (asked with
//! SelfSubjectAccessReviews, so a missing permission is named instead of showing up later as a
//! watch that retries forever).

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ListParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::Value;

use crate::api::TFJob;
use crate::api::crd::crd;

/// What the operator does: (API group, resource, verbs). The Helm chart's ClusterRole grants
/// exactly these.
pub const PERMISSIONS: &[(&str, &str, &[&str])] = &[
    (
        "kubeflow.org",
        "tfjobs",
        &["get", "list", "watch", "patch", "delete"],
    ),
    ("kubeflow.org", "tfjobs/status", &["update"]),
    ("", "pods", &["list", "watch", "create", "patch", "delete"]),
    (
        "",
        "services",
        &["list", "watch", "create", "patch", "delete"],
    ),
    ("events.k8s.io", "events", &["create"]),
];

/// Runs the checks for the watched `namespaces` (empty: all); the errors, one line each.
pub async fn check(client: &Client, namespaces: &[String]) -> Vec<String> {
    if let Some(missing) = crd_missing(client, namespaces.first()).await {
        return vec![missing];
    }
    if let Some(outdated) = crd_outdated(client).await {
        return vec![outdated];
    }
    let scopes: Vec<Option<&str>> = if namespaces.is_empty() {
        vec![None]
    } else {
        namespaces.iter().map(|ns| Some(ns.as_str())).collect()
    };
    let mut errors = Vec::new();
    for scope in scopes {
        for (group, resource, verbs) in PERMISSIONS {
            for verb in *verbs {
                match allowed(client, scope, group, resource, verb).await {
                    Ok(true) => {}
                    Ok(false) => errors.push(format!(
                        "no permission to {verb} {resource}{} {}: grant it to the operator's user or ServiceAccount (the Helm chart's ClusterRole has it)",
                        if group.is_empty() { String::new() } else { format!(".{group}") },
                        scope.map_or("cluster-wide".to_string(), |ns| format!("in namespace {ns}")),
                    )),
                    Err(e) => errors.push(format!(
                        "cannot check permissions (SelfSubjectAccessReview): {e}"
                    )),
                }
            }
        }
    }
    errors.dedup();
    errors
}

/// What listing TFJobs says about the cluster: no such resource (the CRD is not installed), or
/// credentials refused.
async fn crd_missing(client: &Client, namespace: Option<&String>) -> Option<String> {
    let api: Api<TFJob> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    // The API server answers an unknown resource with a plain "404 page not found".
    match api.list_metadata(&ListParams::default().limit(1)).await {
        Err(kube::Error::Api(status)) if status.code == 401 => Some(
            "the API server refused the credentials (401 Unauthorized): check the kubeconfig's user or the ServiceAccount token".into(),
        ),
        Err(kube::Error::Api(status)) if status.code == 404 => Some(
            "the TFJob CRD (tfjobs.kubeflow.org, v1) is not installed: run `kubectl apply --server-side -f crds/` or install the Helm chart".into(),
        ),
        _ => None,
    }
}

/// Whether the installed TFJob CRD lacks fields of ours (an older release's, or upstream's):
/// the API server would silently drop them from every TFJob. Skipped when the CRD cannot be
/// read (the chart grants `get` on it; a plain kubeconfig may not).
async fn crd_outdated(client: &Client) -> Option<String> {
    let ours = crd();
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let installed = api.get_opt(&ours.name_any()).await.ok()??;
    let missing = missing_fields(&schema_of(&ours)?, &schema_of(&installed)?);
    if missing.is_empty() {
        return None;
    }
    let shown: Vec<&str> = missing.iter().take(5).map(String::as_str).collect();
    Some(format!(
        "the installed TFJob CRD lacks fields this operator uses ({}{}): it is from an older release or from Kubeflow; run `kubectl apply --server-side -f crds/` from this release",
        shown.join(", "),
        if missing.len() > shown.len() {
            ", ..."
        } else {
            ""
        },
    ))
}

/// The v1 schema of a TFJob CRD, as JSON.
fn schema_of(crd: &CustomResourceDefinition) -> Option<Value> {
    let v1 = crd.spec.versions.iter().find(|v| v.name == "v1")?;
    serde_json::to_value(v1.schema.as_ref()?.open_api_v3_schema.as_ref()?).ok()
}

/// Field paths of `ours` (below `spec` and `status`, not inside pod templates) that
/// `installed` would prune: absent, and not under `x-kubernetes-preserve-unknown-fields`.
pub fn missing_fields(ours: &Value, installed: &Value) -> Vec<String> {
    let mut missing = Vec::new();
    walk(ours, installed, "", &mut missing, 0);
    missing
}

fn walk(ours: &Value, installed: &Value, path: &str, missing: &mut Vec<String>, depth: usize) {
    if depth > 12 || installed["x-kubernetes-preserve-unknown-fields"] == true {
        return;
    }
    let children = ["properties", "additionalProperties", "items"];
    for key in children {
        match (&ours[key], &installed[key]) {
            (Value::Object(fields), theirs) if key == "properties" => {
                for (name, schema) in fields {
                    if name == "template" || (depth == 0 && name != "spec" && name != "status") {
                        continue;
                    }
                    let child = format!("{path}{}{name}", if path.is_empty() { "" } else { "." });
                    match theirs.get(name) {
                        Some(their) => walk(schema, their, &child, missing, depth + 1),
                        None => missing.push(child),
                    }
                }
            }
            (Value::Object(_), their @ Value::Object(_)) => {
                walk(&ours[key], their, path, missing, depth + 1);
            }
            _ => {}
        }
    }
}

async fn allowed(
    client: &Client,
    namespace: Option<&str>,
    group: &str,
    resource: &str,
    verb: &str,
) -> Result<bool, kube::Error> {
    let (resource, subresource) = match resource.split_once('/') {
        Some((r, s)) => (r, Some(s.to_string())),
        None => (resource, None),
    };
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                group: Some(group.into()),
                resource: Some(resource.into()),
                subresource,
                verb: Some(verb.into()),
                namespace: namespace.map(Into::into),
                ..ResourceAttributes::default()
            }),
            ..SelfSubjectAccessReviewSpec::default()
        },
        ..SelfSubjectAccessReview::default()
    };
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let answer = api.create(&PostParams::default(), &review).await?;
    Ok(answer.status.is_some_and(|s| s.allowed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_an_older_crd_would_prune_are_named() {
        let ours = schema_of(&crd()).expect("our schema");
        assert!(missing_fields(&ours, &ours).is_empty());
        let mut older = ours.clone();
        let run_policy = &mut older["properties"]["spec"]["properties"]["runPolicy"]["properties"];
        run_policy.as_object_mut().map(|p| p.remove("managedBy"));
        assert_eq!(
            missing_fields(&ours, &older),
            vec!["spec.runPolicy.managedBy"]
        );
        let mut open = older.clone();
        open["properties"]["spec"]["properties"]["runPolicy"]["x-kubernetes-preserve-unknown-fields"] =
            Value::Bool(true);
        assert!(missing_fields(&ours, &open).is_empty(), "kept, not pruned");
    }
}

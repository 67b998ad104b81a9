//! Checks before the controllers start, each failing with one line that says what to do: the
//! TFJob CRD is served, and the operator may do everything it will do (asked with
//! SelfSubjectAccessReviews, so a missing permission is named instead of showing up later as a
//! watch that retries forever).

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::api::{DynamicObject, ListParams, PostParams};
use kube::{Api, Client, Resource};

use super::crd_fields::{FieldTree, missing_fields};
use crate::api::TFJob;
use crate::api::podgroup::GangScheduler;

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

/// What gang scheduling adds: the PodGroups of the chosen scheduler.
const POD_GROUP_VERBS: &[&str] = &["get", "list", "watch", "create", "patch", "delete"];

/// Runs the checks for the watched `namespaces` (empty: all) and the `gang` scheduler, if any;
/// the errors, one line each.
pub async fn check(
    client: &Client,
    namespaces: &[String],
    gang: Option<&GangScheduler>,
) -> Vec<String> {
    if let Some(missing) = crd_missing(client, namespaces.first()).await {
        return vec![missing];
    }
    if let Some(outdated) = crd_outdated(client).await {
        return vec![outdated];
    }
    if let Some(scheduler) = gang
        && let Some(missing) = pod_group_crd_missing(client, scheduler).await
    {
        return vec![missing];
    }
    let pod_groups = gang.map(|scheduler| {
        let resource = scheduler.api_resource();
        (resource.group, resource.plural)
    });
    let gang_permissions = pod_groups
        .iter()
        .map(|(group, plural)| (group.as_str(), plural.as_str(), POD_GROUP_VERBS));
    let scopes: Vec<Option<&str>> = if namespaces.is_empty() {
        vec![None]
    } else {
        namespaces.iter().map(|ns| Some(ns.as_str())).collect()
    };
    let mut errors = Vec::new();
    for scope in scopes {
        let all = PERMISSIONS.iter().copied().chain(gang_permissions.clone());
        for (group, resource, verbs) in all {
            for verb in verbs {
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

/// Whether `scheduler`'s PodGroup CRD is not served: the scheduler is not installed.
async fn pod_group_crd_missing(client: &Client, scheduler: &GangScheduler) -> Option<String> {
    let resource = scheduler.api_resource();
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
    match api.list_metadata(&ListParams::default().limit(1)).await {
        Err(kube::Error::Api(status)) if status.code == 404 => Some(format!(
            "--gang-scheduler-name={}: the PodGroup CRD ({}.{}, {}) is not installed: install {} first, or remove the flag",
            scheduler.scheduler_name(),
            resource.plural,
            resource.group,
            resource.version,
            match scheduler {
                GangScheduler::Volcano => "Volcano",
                GangScheduler::Coscheduling(_) => "scheduler-plugins (Coscheduling)",
            }
        )),
        _ => None,
    }
}

/// Whether the installed TFJob CRD lacks fields of ours (an older release's, or upstream's):
/// the API server would silently drop them from every TFJob. Skipped when the CRD cannot be
/// read (the chart grants `get` on it; a plain kubeconfig may not).
async fn crd_outdated(client: &Client) -> Option<String> {
    let name = format!("{}.{}", TFJob::plural(&()), TFJob::group(&()));
    let request = http::Request::get(format!(
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"
    ))
    .body(Vec::new())
    .ok()?;
    let installed = FieldTree::of_crd_json(&client.request_text(request).await.ok()?)?;
    let ours = FieldTree::ours()?;
    let missing = missing_fields(&ours, &installed);
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

//! The chart's admission policies (`charts/tfjob-operator/files/*.yaml`), installed on a test
//! control plane under names of their own, so they never collide with the chart's copy (the e2e
//! suite installs the chart on the same control plane) or with another test's.

use kube::api::{DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::discovery::{ApiResource, pinned_kind};
use serde_json::{Value, json};

use super::cluster::TestNs;

/// Where the policy's binding applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every namespace (as the file ships); names get the suffix `-test`.
    Cluster,
    /// Only the test's namespace; names get the namespace as suffix, so tests may run at once.
    Namespace,
}

/// The objects one [`install`] created, to [`Installed::remove`] them.
pub struct Installed {
    client: kube::Client,
    objects: Vec<(ApiResource, String)>,
}

/// Applies every document of the policy file `file` (server-side apply: idempotent), renamed
/// and scoped as `scope` says.
pub async fn install(t: &TestNs, file: &str, scope: Scope) -> Installed {
    let text = std::fs::read_to_string(file).expect("policy file");
    let suffix = match scope {
        Scope::Cluster => "test".to_string(),
        Scope::Namespace => t.ns.clone(),
    };
    let mut objects = Vec::new();
    for mut doc in serde_saphyr::from_multiple::<Value>(&text).expect("YAML") {
        let renamed = format!(
            "{}-{suffix}",
            doc["metadata"]["name"].as_str().expect("name")
        );
        doc["metadata"]["name"] = renamed.clone().into();
        if doc["spec"]["policyName"].is_string() {
            doc["spec"]["policyName"] = renamed.into();
            if scope == Scope::Namespace {
                doc["spec"]["matchResources"] = json!({"namespaceSelector": {"matchLabels": {
                    "kubernetes.io/metadata.name": t.ns}}});
            }
        }
        let object: DynamicObject = serde_json::from_value(doc).expect("object");
        let types = object.types.clone().expect("types");
        let gvk = GroupVersionKind::try_from(&types).expect("gvk");
        let (resource, _) = pinned_kind(&t.client, &gvk).await.expect("discovered");
        let api: kube::Api<DynamicObject> = kube::Api::all_with(t.client.clone(), &resource);
        let name = object.metadata.name.clone().expect("name");
        api.patch(
            &name,
            &PatchParams::apply("tfjob-operator-tests").force(),
            &Patch::Apply(&object),
        )
        .await
        .expect("policy applied");
        objects.push((resource, name));
    }
    Installed {
        client: t.client.clone(),
        objects,
    }
}

impl Installed {
    /// Deletes what [`install`] applied, bindings first.
    pub async fn remove(self) {
        for (resource, name) in self.objects.iter().rev() {
            let api: kube::Api<DynamicObject> = kube::Api::all_with(self.client.clone(), resource);
            let _gone = api.delete(name, &DeleteParams::default()).await;
        }
    }
}

//! The chart's admission policies (`charts/tfjob-operator/files/*.yaml`), installed on a test
//! control plane under names of their own, so they never collide with the chart's copy (the e2e
//! suite installs the chart on the same control plane) or with another test's. The scale bench
//! uses it too (`#[path]`), so it depends on nothing else of the test support.

use std::future::Future;
use std::time::{Duration, Instant};

use kube::Client;
use kube::api::{DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::discovery::{ApiResource, pinned_kind};
use serde_json::{Value, json};

/// Where the policy's binding applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every namespace (as the file ships); names get the suffix `-test`.
    Cluster,
    /// Only the namespace given; names get it as suffix, so tests may run at once.
    Namespace,
}

/// The objects one [`install`] created, to [`Installed::remove`] them.
pub struct Installed {
    client: Client,
    objects: Vec<(ApiResource, String)>,
}

/// Applies every document of the policy file `file` (server-side apply: idempotent), renamed
/// and scoped as `scope` says (`ns`: the namespace of [`Scope::Namespace`]).
pub async fn install(client: &Client, ns: &str, file: &str, scope: Scope) -> Installed {
    let text = std::fs::read_to_string(file).expect("policy file");
    let suffix = match scope {
        Scope::Cluster => "test",
        Scope::Namespace => ns,
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
                    "kubernetes.io/metadata.name": ns}}});
            }
        }
        let object: DynamicObject = serde_json::from_value(doc).expect("object");
        let types = object.types.clone().expect("types");
        let gvk = GroupVersionKind::try_from(&types).expect("gvk");
        let (resource, _) = pinned_kind(client, &gvk).await.expect("discovered");
        let api: kube::Api<DynamicObject> = kube::Api::all_with(client.clone(), &resource);
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
        client: client.clone(),
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

/// Polls `check` every 200 ms until it gives a value, and returns it: the API server picks a
/// new policy up from its own watch, a moment after the policy is applied. Panics after 30 s,
/// naming `what` it waited for.
pub async fn applied<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "never applied: {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

//! `tfjob-operator render`: the pods and services a TFJob would get, decided offline by the
//! operator's own planner (the same [`plan`](crate::plan::plan) call a reconcile makes, for a
//! job seen for the first time), after the checks the API server ([`admission`]) and the
//! operator (the planner's `TFJobInvalidSpec` and limits) would make.

use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::DynamicObject;
use serde_json::Value;

use crate::api::TFJob;
use crate::api::admission;
use crate::api::defaults::MANAGED_BY_US;
use crate::api::podgroup::ObservedPodGroup;
use crate::plan::conditions::kind;
use crate::plan::{Change, EventKind, PlanConfig, plan, plan_with_pod_group};

/// The uid a rendered job's owner references carry (the API server assigns the real one).
pub const PLACEHOLDER_UID: &str = "00000000-0000-0000-0000-000000000000";

/// What `render` shows for a job the cluster would accept.
#[derive(Debug, Default)]
pub struct Rendered {
    /// The headless Services, in the order the operator creates them.
    pub services: Vec<Service>,
    /// The Pods, in the order the operator creates them.
    pub pods: Vec<Pod>,
    /// The Warning events the operator would publish on its first pass.
    pub warnings: Vec<String>,
    /// With gang scheduling, the job's PodGroup.
    pub pod_group: Option<DynamicObject>,
}

impl Rendered {
    /// The objects as a `v1 List`'s items: the PodGroup if any, the Services, then the Pods,
    /// each with its kind.
    fn items(&self) -> Result<Vec<Value>, serde_json::Error> {
        let group = self.pod_group.iter().map(serde_json::to_value);
        let services = self.services.iter().map(|s| typed(s, "Service"));
        let pods = self.pods.iter().map(|p| typed(p, "Pod"));
        group.chain(services).chain(pods).collect()
    }

    /// YAML documents, separated by `---`.
    pub fn to_yaml(&self) -> Result<String, String> {
        let items = self.items().map_err(|e| e.to_string())?;
        serde_saphyr::to_string_multiple(&items).map_err(|e| e.to_string())
    }

    /// One `v1 List`, pretty-printed JSON.
    pub fn to_json(&self) -> Result<String, String> {
        let items = self.items().map_err(|e| e.to_string())?;
        let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items});
        serde_json::to_string_pretty(&list)
            .map(|t| t + "\n")
            .map_err(|e| e.to_string())
    }
}

/// `object` as JSON with `apiVersion: v1` and `kind` first, as `kubectl get -o yaml` shows it.
fn typed<T: serde::Serialize>(object: &T, kind: &str) -> Result<Value, serde_json::Error> {
    let mut out = serde_json::Map::new();
    out.insert("apiVersion".into(), "v1".into());
    out.insert("kind".into(), kind.into());
    if let Value::Object(fields) = serde_json::to_value(object)? {
        out.extend(fields);
    }
    Ok(Value::Object(out))
}

/// Who refuses a manifest, and why.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The API server would refuse it: schema or CEL rules, one message each.
    ApiServer(Vec<String>),
    /// The API server would store it, and the operator would fail the job: its condition's
    /// reason and message.
    Operator {
        /// The `Failed` condition's reason, e.g. `TFJobInvalidSpec`.
        reason: String,
        /// The `Failed` condition's message.
        message: String,
    },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::ApiServer(reasons) => {
                writeln!(f, "the API server would refuse this TFJob:")?;
                for reason in reasons {
                    writeln!(f, "  {reason}")?;
                }
                Ok(())
            }
            Refusal::Operator { reason, message } => {
                writeln!(
                    f,
                    "the operator would fail this TFJob ({reason}): {message}"
                )
            }
        }
    }
}

/// Everything the operator would create for `manifest` in `namespace` (the manifest's own
/// namespace wins), with `cfg`'s settings; every create in one pass, where the operator may
/// spread a huge job over several.
pub fn render(manifest: &Value, namespace: &str, cfg: &PlanConfig) -> Result<Rendered, Refusal> {
    let refusals = admission::refusals(manifest);
    if !refusals.is_empty() {
        return Err(Refusal::ApiServer(refusals));
    }
    let mut job: TFJob = serde_json::from_value(manifest.clone())
        .map_err(|e| Refusal::ApiServer(vec![format!("cannot be handled as a TFJob: {e}")]))?;
    let notes = as_submitted(&mut job);
    let meta = &mut job.metadata;
    meta.namespace.get_or_insert_with(|| namespace.to_string());
    meta.uid.get_or_insert_with(|| PLACEHOLDER_UID.to_string());
    if meta.name.is_none() {
        meta.name = meta.generate_name.clone();
    }
    let cfg = PlanConfig {
        max_creates_per_pass: usize::MAX,
        max_create_bytes_per_pass: usize::MAX,
        ..cfg.clone()
    };
    let now = jiff::Timestamp::now();
    let first = plan(&job, &[], &[], now, &cfg);
    if let Some(refusal) = failed_by_operator(&first) {
        return Err(refusal);
    }
    // With gang scheduling the first pass plans the PodGroup; Volcano's pods wait for its
    // admission, so the pods are those of the pass after it.
    let pod_group = first.changes.iter().find_map(|c| match c {
        Change::CreatePodGroup(group) => Some(group.as_ref().clone()),
        _ => None,
    });
    let decided = match (&pod_group, &cfg.gang) {
        (Some(group), Some(scheduler)) => {
            let mut admitted = group.clone();
            admitted.data["status"] = serde_json::json!({"phase": "Inqueue"});
            let observed = ObservedPodGroup::of(&admitted, scheduler);
            plan_with_pod_group(&job, &[], &[], Some(&observed), now, &cfg)
        }
        _ => first,
    };
    let mut rendered = Rendered {
        pod_group,
        ..Rendered::default()
    };
    for change in decided.changes {
        match change {
            Change::CreatePod(pod) => rendered.pods.push(*pod),
            Change::CreateService(service) => rendered.services.push(*service),
            _ => {}
        }
    }
    rendered.warnings = notes;
    rendered.warnings.extend(
        decided
            .events
            .into_iter()
            .filter(|e| e.kind == EventKind::Warning)
            .map(|e| format!("{}: {}", e.reason, e.message)),
    );
    Ok(rendered)
}

/// The operator's refusal, if its first pass fails the job: the `Failed` condition.
fn failed_by_operator(first: &crate::plan::Plan) -> Option<Refusal> {
    let failed = first
        .status
        .iter()
        .flat_map(|s| &s.conditions)
        .find(|c| c.type_ == kind::FAILED && c.status == "True")?;
    Some(Refusal::Operator {
        reason: failed.reason.clone().unwrap_or_default(),
        message: failed.message.clone().unwrap_or_default(),
    })
}

/// The job as a create stores it (a status in the manifest is ignored), made runnable by this
/// operator: a suspended job, or one managed by another controller, is rendered as this
/// operator would create it once resumed or handed over, with a note that says so.
fn as_submitted(job: &mut TFJob) -> Vec<String> {
    job.status = None;
    let mut notes = Vec::new();
    if let Some(policy) = job.spec.run_policy.as_mut() {
        if policy.suspend == Some(true) {
            policy.suspend = None;
            notes.push("spec.runPolicy.suspend is true: nothing is created until it is false; shown is what is created then".to_string());
        }
        if let Some(other) = policy.managed_by.take_if(|m| m != MANAGED_BY_US) {
            notes.push(format!("spec.runPolicy.managedBy is {other}: this operator leaves the job to that controller; shown is what it would create itself"));
        }
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::RunSettings;
    use serde_json::json;

    fn cfg() -> PlanConfig {
        RunSettings::defaults().controller_config().plan
    }

    fn manifest(workers: i64) -> Value {
        json!({
            "apiVersion": "kubeflow.org/v1", "kind": "TFJob", "metadata": {"name": "mnist"},
            "spec": {"tfReplicaSpecs": {
                "PS": {"replicas": 1, "template": {"spec": {"containers": [{"name": "tensorflow", "image": "tf"}]}}},
                "Worker": {"replicas": workers, "template": {"spec": {"containers": [{"name": "tensorflow", "image": "tf"}]}}}
            }}
        })
    }

    #[test]
    fn every_pod_and_service_of_a_job_in_one_rendering() {
        let rendered = render(&manifest(3), "team-a", &cfg()).expect("renders");
        let names: Vec<_> = rendered
            .pods
            .iter()
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        assert_eq!(
            names,
            [
                "mnist-ps-0",
                "mnist-worker-0",
                "mnist-worker-1",
                "mnist-worker-2"
            ]
        );
        assert_eq!(rendered.services.len(), 4);
        assert!(
            rendered
                .pods
                .iter()
                .all(|p| p.metadata.namespace.as_deref() == Some("team-a"))
        );
    }

    #[test]
    fn a_suspended_job_is_rendered_as_it_resumes_and_says_so() {
        let mut suspended = manifest(1);
        suspended["spec"]["runPolicy"] = json!({"suspend": true});
        suspended["status"] = json!({"conditions": [{"type": "Succeeded", "status": "True"}]});
        let rendered = render(&suspended, "default", &cfg()).expect("renders");
        assert_eq!(rendered.pods.len(), 2);
        assert!(rendered.warnings[0].starts_with("spec.runPolicy.suspend is true"));
    }

    #[test]
    fn with_volcano_the_pod_group_comes_first_and_the_pods_are_marked_for_it() {
        let mut settings = RunSettings::defaults();
        settings.job.gang_scheduler_name = "volcano".into();
        let rendered =
            render(&manifest(3), "team-a", &settings.controller_config().plan).expect("renders");
        let group = rendered.pod_group.as_ref().expect("a PodGroup");
        assert_eq!(group.data["spec"]["minMember"], 4);
        assert_eq!(rendered.pods.len(), 4, "as Volcano admits them");
        assert!(rendered.pods.iter().all(|p| {
            p.spec.as_ref().and_then(|s| s.scheduler_name.as_deref()) == Some("volcano")
        }));
        assert!(rendered.warnings.is_empty(), "{:?}", rendered.warnings);
        let yaml = rendered.to_yaml().expect("prints");
        assert!(
            yaml.starts_with("apiVersion: scheduling.volcano.sh/v1beta1\nkind: PodGroup\n"),
            "{yaml}"
        );
    }

    #[test]
    fn the_operators_own_limits_refuse_with_its_condition() {
        let mut settings = RunSettings::defaults();
        settings.job.max_replicas_per_job = 2;
        let refusal = render(&manifest(3), "default", &settings.controller_config().plan)
            .expect_err("too many replicas");
        assert!(
            matches!(&refusal, Refusal::Operator { reason, .. } if reason == "TFJobTooManyReplicas"),
            "{refusal:?}"
        );
    }

    #[test]
    fn the_api_servers_rules_refuse_first() {
        let mut bad = manifest(1);
        bad["spec"]["tfReplicaSpecs"]["Worker"]["replicas"] = json!(-1);
        let refusal = render(&bad, "default", &cfg()).expect_err("negative replicas");
        assert!(
            refusal
                .to_string()
                .contains("should be greater than or equal to 0"),
            "{refusal}"
        );
    }
}

//! The `TFJob` custom resource (`kubeflow.org/v1`): spec and status as stored in the API server.
//!
//! Field docs here become `kubectl explain tfjob...` text. The wire format matches Kubeflow's
//! training-operator v1.9, plus the legacy top-level run-policy fields of tf-operator v1.0.

use std::collections::BTreeMap;

use super::template::PodTemplate;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The desired state of a TFJob: its replicas and the policies that apply to them.
// Each printcolumn repeats `type_` and `priority`; clippy reads them as one attribute repeated.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "kubeflow.org",
    version = "v1",
    kind = "TFJob",
    plural = "tfjobs",
    singular = "tfjob",
    namespaced,
    status = "TFJobStatus",
    category = "kubeflow",
    doc = "A TFJob runs a distributed TensorFlow training job: a Pod and a headless Service per replica of each replica type (PS, Worker, Chief, Master, Evaluator), with TF_CONFIG describing the cluster to every TensorFlow process.",
    derive = "PartialEq",
    selectable = ".status.state",
    selectable = ".spec.runPolicy.schedulingPolicy.queue",
    selectable = ".spec.runPolicy.managedBy",
    printcolumn(name = "State", type_ = "string", json_path = ".status.state"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "Active",
        type_ = "integer",
        json_path = ".status.replicaTotals.active",
        priority = 1
    ),
    printcolumn(
        name = "Succeeded",
        type_ = "integer",
        json_path = ".status.replicaTotals.succeeded",
        priority = 1
    ),
    printcolumn(
        name = "Failed",
        type_ = "integer",
        json_path = ".status.replicaTotals.failed",
        priority = 1
    ),
    printcolumn(
        name = "Restarts",
        type_ = "integer",
        json_path = ".status.replicaTotals.restarts",
        priority = 1
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.reason",
        priority = 1
    )
)]
#[serde(rename_all = "camelCase")]
pub struct TFJobSpec {
    /// Policies that apply to the whole job: pod cleanup, time limits, restart budget,
    /// gang scheduling, suspension. Values here win over the legacy fields directly under spec.
    // Defaulted to {} by the API server: clients generated from upstream's OpenAPI (the
    // kubeflow-training Python SDK) refuse a TFJob without runPolicy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = {}))]
    pub run_policy: Option<RunPolicy>,

    /// When the job counts as succeeded if it has no Chief or Master: "" (default) means when
    /// worker 0 completes; "AllWorkers" means when every worker completes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_policy: Option<SuccessPolicy>,

    /// The replicas of the job, keyed by replica type: PS, Worker, Chief, Master or Evaluator.
    /// Keys are case-insensitive ("ps" and "Ps" mean PS); each type may appear once, and at most
    /// one of Chief and Master may be given.
    // Boxed: a map node reserves room for eleven values; boxing keeps the node small.
    #[schemars(extend("maxProperties" = 5, "minProperties" = 1))]
    pub tf_replica_specs: BTreeMap<String, Box<ReplicaSpec>>,

    /// Run workers as dynamic members: each worker gets a sparse TF_CONFIG naming only itself
    /// and the PS replicas, and worker failures do not fail the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_dynamic_worker: Option<bool>,

    /// Legacy (tf-operator v1.0) place of runPolicy.backoffLimit. Honoured when
    /// runPolicy.backoffLimit is not set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub backoff_limit: Option<i32>,

    /// Legacy (tf-operator v1.0) place of runPolicy.cleanPodPolicy. Honoured when
    /// runPolicy.cleanPodPolicy is not set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clean_pod_policy: Option<CleanPodPolicy>,

    /// Legacy (tf-operator v1.0) place of runPolicy.activeDeadlineSeconds. Honoured when
    /// runPolicy.activeDeadlineSeconds is not set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub active_deadline_seconds: Option<i64>,

    /// Legacy (tf-operator v1.0) place of runPolicy.ttlSecondsAfterFinished. Honoured when
    /// runPolicy.ttlSecondsAfterFinished is not set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub ttl_seconds_after_finished: Option<i32>,
}

/// The pods of one replica type.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaSpec {
    /// Number of pods of this type, indexed 0..replicas-1 (at most 50000). Defaults to 1.
    /// Changing it on a running job creates or deletes pods by index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = crate::api::crd::MAX_REPLICAS_PER_TYPE))]
    pub replicas: Option<i32>,

    /// The pod template of this replica type. It must have a container named "tensorflow" with
    /// an image; that container gets the TF_CONFIG environment variable and the "tfjob-port"
    /// (2222 unless given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::api::crd::pod_template_schema")]
    pub template: Option<PodTemplate>,

    /// What happens when a pod of this type fails: Never (default; a failure fails the job),
    /// OnFailure and Always (the pod is restarted), ExitCode (the pod is recreated when its
    /// exit code is 128 or more, i.e. killed by a signal; other codes fail the job). Overrides
    /// the template's restartPolicy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<RestartPolicy>,
}

/// What happens when a pod of this type fails: Never (default; a failure fails the job),
/// OnFailure and Always (the container is restarted in place), ExitCode (the pod is recreated
/// when its exit code is 128 or more, i.e. killed by a signal; other codes fail the job).
/// Overrides the pod template's restartPolicy.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum RestartPolicy {
    /// Restart the container in place (pod restartPolicy Always).
    Always,
    /// Restart the container in place after a failure (pod restartPolicy OnFailure).
    OnFailure,
    /// Never restart; a failed pod fails the job.
    #[default]
    Never,
    /// Recreate the pod if its exit code is retryable (>= 128), otherwise fail the job.
    ExitCode,
}

/// Which pods to delete once the job has finished: Running (this operator's default: pods still
/// running or pending, e.g. parameter servers, with their services), All (every pod and service),
/// or None (keep everything until the TFJob is deleted; Kubeflow's default).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum CleanPodPolicy {
    /// Delete every pod and service of the job.
    All,
    /// Delete pods still Running or Pending, with their services.
    Running,
    /// Delete nothing; pods stay until the TFJob is deleted.
    None,
}

impl std::str::FromStr for CleanPodPolicy {
    type Err = String;

    /// Parses `All`, `Running` or `None`, in any case (as flags and environment variables
    /// spell them).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "all" => Ok(Self::All),
            "running" => Ok(Self::Running),
            "none" => Ok(Self::None),
            _ => Err(format!(
                "unknown cleanPodPolicy {s:?}: expected All, Running or None"
            )),
        }
    }
}

/// When a job without Chief or Master succeeds: "" (default) when worker 0 completes,
/// "AllWorkers" when every worker has completed.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum SuccessPolicy {
    /// The job succeeds when worker 0 completes.
    #[default]
    #[serde(rename = "")]
    Default,
    /// The job succeeds when every worker completes.
    AllWorkers,
}

/// Policies for the whole job.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunPolicy {
    /// Which pods to delete once the job has finished: Running (this operator's default:
    /// running and pending pods, e.g. parameter servers), All, or None.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clean_pod_policy: Option<CleanPodPolicy>,

    /// Delete the TFJob this many seconds after it finished (succeeded or failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub ttl_seconds_after_finished: Option<i32>,

    /// Fail the job once it has been running this many seconds since it started (or resumed);
    /// all its pods are deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub active_deadline_seconds: Option<i64>,

    /// Fail the job once its pods have been restarted or recreated after failures this many
    /// times in total.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub backoff_limit: Option<i32>,

    /// Gang-scheduling settings, passed to the gang scheduler's PodGroup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduling_policy: Option<SchedulingPolicy>,

    /// Suspend the job: its pods and services are deleted and it keeps the Suspended
    /// condition until suspend is set back to false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,

    /// The controller that manages this job: unset or "kubeflow.org/training-operator" for this
    /// operator, "kueue.x-k8s.io/multikueue" to hand the job to MultiKueue. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = [{"rule": "self == oldSelf", "message": "spec.runPolicy.managedBy is immutable"}]))]
    pub managed_by: Option<String>,
}

/// Gang-scheduling settings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SchedulingPolicy {
    /// Minimum number of pods that must be schedulable together (defaults to all replicas).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_available: Option<i32>,

    /// The scheduler queue to submit the PodGroup to. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = [{"rule": "self == oldSelf", "message": "spec.runPolicy.schedulingPolicy.queue is immutable"}]))]
    pub queue: Option<String>,

    /// Minimum resources the gang needs, e.g. {"cpu": "4", "memory": "8Gi"}.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_resources: Option<BTreeMap<String, Quantity>>,

    /// PriorityClass of the PodGroup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class: Option<String>,

    /// Seconds the gang may wait to be scheduled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_timeout_seconds: Option<i32>,
}

/// The observed state of a TFJob.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TFJobStatus {
    /// The job's state in one word: Created, Running, Restarting, Succeeded, Failed or
    /// Suspended — the type of its newest condition that is True (so a resumed job says Running
    /// again once its pods run, not Suspended). Written with the conditions. Selectable:
    /// `kubectl get tfjobs --field-selector status.state=Running`, or delete every finished job
    /// with `kubectl delete tfjobs --field-selector status.state=Succeeded`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,

    /// The reason of the condition `state` names, e.g. TFJobRunning or TFJobFailed (the
    /// condition's message says more). Shown by `kubectl get tfjobs -o wide`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,

    /// The pod counts of `replicaStatuses`, every replica type added up. Shown by
    /// `kubectl get tfjobs -o wide`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica_totals: Option<ReplicaTotals>,

    /// The job's conditions (Created, Running, Restarting, Succeeded, Failed, Suspended), the
    /// newest last.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<JobCondition>,

    /// Pod counts per replica type, keyed by canonical type (PS, Worker, Chief, Master,
    /// Evaluator).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub replica_statuses: BTreeMap<String, ReplicaStatus>,

    /// When the job started (or was last resumed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,

    /// When the job finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,

    /// When the job was last reconciled while waiting for gang scheduling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reconcile_time: Option<Time>,
}

/// One condition of a TFJob.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobCondition {
    /// Created, Running, Restarting, Succeeded, Failed or Suspended.
    #[serde(rename = "type")]
    pub type_: String,
    /// "True", "False" or "Unknown".
    pub status: String,
    /// A machine-readable reason, e.g. TFJobRunning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A human-readable message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the condition was last updated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update_time: Option<Time>,
    /// When the condition last changed its status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}

/// Pod counts of every replica type together.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaTotals {
    /// Pods running.
    pub active: i32,
    /// Pods that succeeded.
    pub succeeded: i32,
    /// Pods that failed.
    pub failed: i32,
    /// Pods recreated after a failure so far.
    pub restarts: i32,
}

impl ReplicaTotals {
    /// The sums over `replicas` (saturating: counts are bounded by the replica limit anyway).
    pub fn of<'a>(replicas: impl IntoIterator<Item = &'a ReplicaStatus>) -> Self {
        replicas.into_iter().fold(Self::default(), |t, r| Self {
            active: t.active.saturating_add(r.active),
            succeeded: t.succeeded.saturating_add(r.succeeded),
            failed: t.failed.saturating_add(r.failed),
            restarts: t.restarts.saturating_add(r.restarts),
        })
    }
}

/// Pod counts of one replica type.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaStatus {
    /// Pods running.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub active: i32,
    /// Pods that succeeded.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub succeeded: i32,
    /// Pods that failed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failed: i32,
    /// Pods of this type recreated after a failure so far (a tfjob-operator extension; container
    /// restarts are counted from the pods). Counts towards runPolicy.backoffLimit.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub restarts: i32,
    /// Deprecated: use selector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<LabelSelector>,
    /// A label selector (string form) of this type's pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
}

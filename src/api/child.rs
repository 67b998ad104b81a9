//! What the operator keeps of each pod and service it watches: only the fields the planner
//! reads. A TFJob's pod carries a `TF_CONFIG` that lists every replica (hundreds of KB in a
//! 10,000-worker job), a full spec and managedFields; none of it is kept, and none of it is even
//! built while decoding a watch event (serde skips every field these types do not name).
//!
//! Labels and ownerReferences are read once, at decoding, into a [`Lineage`]: the job and
//! replica they name and the controller. `metadata` keeps neither (a three-label map and one
//! ownerReference take about 1 KB per object; the lineage a tenth of that).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ContainerStatus, Pod, PodStatus, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use serde::Deserialize;

use super::defaults::TF_CONTAINER;
use super::labels::{JOB_NAME_LABEL, REPLICA_INDEX_LABEL, REPLICA_TYPE_LABEL};
use super::replica_type::ReplicaType;

/// A pod as the operator keeps it: identity, deletion, its lineage, and the state of its
/// `tensorflow` container.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(from = "RawPod")]
pub struct ChildPod {
    /// Name, namespace, UID, resourceVersion, deletion (timestamp, grace period) and
    /// finalizers; no labels or owners (see `lineage`).
    pub metadata: ObjectMeta,
    /// The job, replica and controller its labels and ownerReferences name.
    pub lineage: Lineage,
    /// What the pod's status says about the training process.
    pub state: PodState,
}

impl ControllerRef {
    /// The owner reference with `controller: true` among `owners`, if any.
    pub fn among(owners: &[OwnerReference]) -> Option<Self> {
        owners
            .iter()
            .find(|o| o.controller == Some(true))
            .map(|o| Self {
                kind: o.kind.as_str().into(),
                name: o.name.as_str().into(),
                uid: o.uid.as_str().into(),
            })
    }
}

/// What ties a pod or service to a job, read from its labels and ownerReferences.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lineage {
    /// The `training.kubeflow.org/job-name` label.
    pub job_name: Option<Box<str>>,
    /// The replica-type and replica-index labels, when both are present and valid.
    pub replica: Option<(ReplicaType, i32)>,
    /// The ownerReference with `controller: true`, if any.
    pub controller: Option<ControllerRef>,
    /// Whether `metadata.ownerReferences` has any entry (an adoption appends to the list, or
    /// creates it).
    pub has_owners: bool,
}

/// The controller of a pod or service, from its ownerReference.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ControllerRef {
    /// Its kind (`TFJob` for ours).
    pub kind: Box<str>,
    /// Its name.
    pub name: Box<str>,
    /// Its UID: whose object this is.
    pub uid: Box<str>,
}

impl Lineage {
    /// The lineage `labels` and `owners` describe.
    pub fn of(
        labels: Option<&BTreeMap<String, String>>,
        owners: Option<&[OwnerReference]>,
    ) -> Self {
        let label = |key: &str| labels.and_then(|l| l.get(key)).map(String::as_str);
        let replica = label(REPLICA_TYPE_LABEL)
            .and_then(ReplicaType::parse)
            .zip(label(REPLICA_INDEX_LABEL).and_then(|i| i.parse().ok()));
        let owners = owners.unwrap_or_default();
        Self {
            job_name: label(JOB_NAME_LABEL).map(Box::from),
            replica,
            controller: ControllerRef::among(owners),
            has_owners: !owners.is_empty(),
        }
    }

    /// Whether the controller is the object with `uid`.
    pub fn controlled_by(&self, uid: &str) -> bool {
        self.controller.as_ref().is_some_and(|c| &*c.uid == uid)
    }
}

/// A pod or service as the operator keeps it.
pub trait ObservedChild: kube::Resource {
    /// What ties it to a job.
    fn lineage(&self) -> &Lineage;
}

impl ObservedChild for ChildPod {
    fn lineage(&self) -> &Lineage {
        &self.lineage
    }
}

impl ObservedChild for ChildService {
    fn lineage(&self) -> &Lineage {
        &self.lineage
    }
}

/// The part of a pod's status the planner decides on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodState {
    /// `Pending`, `Running`, `Succeeded`, `Failed` or `Unknown`; none before the first status.
    pub phase: Option<String>,
    /// Exit code of the terminated `tensorflow` container, if it has terminated.
    pub exit_code: Option<i32>,
    /// Why it ended: the terminated `tensorflow` container's reason (`OOMKilled`, `Error`,
    /// `ContainerCannotRun`, ...), else the pod's (`DeadlineExceeded`, `Evicted`, ...).
    pub exit_reason: Option<String>,
    /// Restarts of all containers and init containers.
    pub restarts: i32,
    /// Why the pod was disrupted, when it was: the reason of its `DisruptionTarget` condition
    /// (`EvictionByEvictionAPI`, `PreemptionByScheduler`, `DeletionByTaintManager`,
    /// `TerminationByKubelet`, `DeletionByPodGC`) or the kubelet's `Evicted`.
    pub disrupted: Option<String>,
    /// Why the pod cannot start, while it cannot: the scheduler's `Unschedulable` message, or
    /// a container waiting with `ImagePullBackOff`, `ErrImagePull`, `CrashLoopBackOff`,
    /// `CreateContainerConfigError` (a missing ConfigMap or Secret) or `CreateContainerError`.
    pub waiting: Option<Waiting>,
}

/// Why a pod cannot start: a reason and the message that came with it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Waiting {
    /// `Unschedulable`, or the container's waiting reason.
    pub reason: String,
    /// The scheduler's or the kubelet's message.
    pub message: String,
}

/// Container waiting reasons that mean the pod will not start by itself.
const STUCK_REASONS: [&str; 5] = [
    "ImagePullBackOff",
    "ErrImagePull",
    "CrashLoopBackOff",
    "CreateContainerConfigError",
    "CreateContainerError",
];

/// A service as the operator keeps it: its metadata and lineage only.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(from = "RawService")]
pub struct ChildService {
    /// Name, namespace, UID, resourceVersion, deletion (timestamp, grace period) and
    /// finalizers; no labels or owners (see `lineage`).
    pub metadata: ObjectMeta,
    /// The job, replica and controller its labels and ownerReferences name.
    pub lineage: Lineage,
}

impl From<Pod> for ChildPod {
    fn from(pod: Pod) -> Self {
        RawPod {
            metadata: pod.metadata.into(),
            status: pod.status.map(Into::into),
        }
        .into()
    }
}

impl From<Service> for ChildService {
    fn from(svc: Service) -> Self {
        RawService {
            metadata: svc.metadata.into(),
        }
        .into()
    }
}

/// The wire form of a pod, reduced to what [`ChildPod`] keeps.
#[derive(Deserialize)]
struct RawPod {
    #[serde(default)]
    metadata: RawMeta,
    #[serde(default)]
    status: Option<RawPodStatus>,
}

#[derive(Deserialize)]
struct RawService {
    #[serde(default)]
    metadata: RawMeta,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawMeta {
    name: Option<String>,
    namespace: Option<String>,
    uid: Option<String>,
    resource_version: Option<String>,
    labels: Option<BTreeMap<String, String>>,
    owner_references: Option<Vec<OwnerReference>>,
    deletion_timestamp: Option<Time>,
    deletion_grace_period_seconds: Option<i64>,
    finalizers: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawPodStatus {
    phase: Option<String>,
    reason: Option<String>,
    conditions: Option<Vec<RawPodCondition>>,
    container_statuses: Option<Vec<RawContainerStatus>>,
    init_container_statuses: Option<Vec<RawContainerStatus>>,
}

#[derive(Deserialize)]
struct RawPodCondition {
    #[serde(rename = "type")]
    type_: String,
    status: String,
    reason: Option<String>,
    message: Option<String>,
}

impl RawPodStatus {
    /// Why the pod cannot start, if it cannot (see [`PodState::waiting`]).
    fn waiting(&self) -> Option<Waiting> {
        let unschedulable = self.conditions.iter().flatten().find(|c| {
            c.type_ == "PodScheduled"
                && c.status == "False"
                && c.reason.as_deref() == Some("Unschedulable")
        });
        if let Some(c) = unschedulable {
            return Some(Waiting {
                reason: "Unschedulable".into(),
                message: c.message.clone().unwrap_or_default(),
            });
        }
        let containers = self.container_statuses.iter().flatten();
        let init = self.init_container_statuses.iter().flatten();
        init.chain(containers).find_map(|c| {
            let w = c.state.as_ref()?.waiting.as_ref()?;
            let reason = w.reason.as_deref()?;
            STUCK_REASONS.contains(&reason).then(|| Waiting {
                reason: reason.to_string(),
                message: w.message.clone().unwrap_or_default(),
            })
        })
    }

    /// Why the pod was disrupted, if it was (see [`PodState::disrupted`]).
    fn disruption(&self) -> Option<String> {
        let target = self
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "DisruptionTarget" && c.status == "True");
        match target {
            Some(c) => Some(
                c.reason
                    .clone()
                    .unwrap_or_else(|| "DisruptionTarget".into()),
            ),
            None => self.reason.clone().filter(|r| r == "Evicted"),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawContainerStatus {
    name: String,
    #[serde(default)]
    restart_count: i32,
    state: Option<RawContainerState>,
}

#[derive(Deserialize)]
struct RawContainerState {
    terminated: Option<RawTerminated>,
    waiting: Option<RawWaiting>,
}

#[derive(Deserialize)]
struct RawWaiting {
    reason: Option<String>,
    message: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawTerminated {
    exit_code: i32,
    reason: Option<String>,
}

impl From<ObjectMeta> for RawMeta {
    fn from(meta: ObjectMeta) -> Self {
        Self {
            name: meta.name,
            namespace: meta.namespace,
            uid: meta.uid,
            resource_version: meta.resource_version,
            labels: meta.labels,
            owner_references: meta.owner_references,
            deletion_timestamp: meta.deletion_timestamp,
            deletion_grace_period_seconds: meta.deletion_grace_period_seconds,
            finalizers: meta.finalizers,
        }
    }
}

impl From<PodStatus> for RawPodStatus {
    fn from(status: PodStatus) -> Self {
        let raw = |cs: Option<Vec<ContainerStatus>>| {
            cs.map(|cs| cs.into_iter().map(RawContainerStatus::from).collect())
        };
        let conditions = status.conditions.map(|cs| {
            cs.into_iter()
                .map(|c| RawPodCondition {
                    type_: c.type_,
                    status: c.status,
                    reason: c.reason,
                    message: c.message,
                })
                .collect()
        });
        Self {
            phase: status.phase,
            reason: status.reason,
            conditions,
            container_statuses: raw(status.container_statuses),
            init_container_statuses: raw(status.init_container_statuses),
        }
    }
}

impl From<ContainerStatus> for RawContainerStatus {
    fn from(c: ContainerStatus) -> Self {
        let (terminated, waiting) = c
            .state
            .map(|s| (s.terminated, s.waiting))
            .unwrap_or_default();
        Self {
            name: c.name,
            restart_count: c.restart_count,
            state: Some(RawContainerState {
                terminated: terminated.map(|t| RawTerminated {
                    exit_code: t.exit_code,
                    reason: t.reason,
                }),
                waiting: waiting.map(|w| RawWaiting {
                    reason: w.reason,
                    message: w.message,
                }),
            }),
        }
    }
}

impl RawMeta {
    /// The kept metadata, and the lineage its labels and owners describe.
    fn split(self) -> (ObjectMeta, Lineage) {
        let lineage = Lineage::of(self.labels.as_ref(), self.owner_references.as_deref());
        let meta = ObjectMeta {
            name: self.name,
            namespace: self.namespace,
            uid: self.uid,
            resource_version: self.resource_version,
            deletion_timestamp: self.deletion_timestamp,
            deletion_grace_period_seconds: self.deletion_grace_period_seconds,
            finalizers: self.finalizers,
            ..ObjectMeta::default()
        };
        (meta, lineage)
    }
}

impl From<RawPod> for ChildPod {
    fn from(raw: RawPod) -> Self {
        let state = raw.status.map(|s| {
            let disrupted = s.disruption();
            let waiting = s.waiting();
            let containers = s.container_statuses.unwrap_or_default();
            let init = s.init_container_statuses.unwrap_or_default();
            let restarts = |cs: &[RawContainerStatus]| {
                cs.iter()
                    .map(|c| c.restart_count)
                    .fold(0, i32::saturating_add)
            };
            let terminated = containers
                .iter()
                .find(|c| c.name == TF_CONTAINER)
                .and_then(|c| c.state.as_ref()?.terminated.as_ref());
            PodState {
                phase: s.phase,
                exit_code: terminated.map(|t| t.exit_code),
                exit_reason: terminated
                    .and_then(|t| t.reason.clone())
                    .or_else(|| s.reason.clone()),
                restarts: restarts(&containers).saturating_add(restarts(&init)),
                disrupted,
                waiting,
            }
        });
        let (metadata, lineage) = raw.metadata.split();
        Self {
            metadata,
            lineage,
            state: state.unwrap_or_default(),
        }
    }
}

impl From<RawService> for ChildService {
    fn from(raw: RawService) -> Self {
        let (metadata, lineage) = raw.metadata.split();
        Self { metadata, lineage }
    }
}

impl k8s_openapi::Resource for ChildPod {
    const API_VERSION: &'static str = "v1";
    const GROUP: &'static str = "";
    const KIND: &'static str = "Pod";
    const VERSION: &'static str = "v1";
    const URL_PATH_SEGMENT: &'static str = "pods";
    type Scope = k8s_openapi::NamespaceResourceScope;
}

impl k8s_openapi::Metadata for ChildPod {
    type Ty = ObjectMeta;

    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl k8s_openapi::Resource for ChildService {
    const API_VERSION: &'static str = "v1";
    const GROUP: &'static str = "";
    const KIND: &'static str = "Service";
    const VERSION: &'static str = "v1";
    const URL_PATH_SEGMENT: &'static str = "services";
    type Scope = k8s_openapi::NamespaceResourceScope;
}

impl k8s_openapi::Metadata for ChildService {
    type Ty = ObjectMeta;

    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pod as the API server sends it, with fields the operator must not keep.
    const POD_JSON: &str = r#"{
      "apiVersion": "v1", "kind": "Pod",
      "metadata": {
        "name": "j-worker-0", "namespace": "ns", "uid": "p1", "resourceVersion": "42",
        "labels": {"training.kubeflow.org/job-name": "j",
                   "training.kubeflow.org/replica-type": "worker",
                   "training.kubeflow.org/replica-index": "0",
                   "training.kubeflow.org/operator-name": "tfjob-controller"},
        "annotations": {"a": "b"},
        "managedFields": [{"manager": "x", "fieldsV1": {"f:spec": {}}}],
        "ownerReferences": [{"apiVersion": "kubeflow.org/v1", "kind": "TFJob", "name": "j",
                             "uid": "u", "controller": true}],
        "deletionTimestamp": "2026-01-01T00:00:00Z"
      },
      "spec": {"containers": [{"name": "tensorflow", "image": "tf",
                               "env": [{"name": "TF_CONFIG", "value": "{}"}]}]},
      "status": {
        "phase": "Failed",
        "podIPs": [{"ip": "10.0.0.1"}],
        "initContainerStatuses": [{"name": "init", "restartCount": 1, "image": "i",
                                   "imageID": "", "ready": true}],
        "containerStatuses": [
          {"name": "sidecar", "restartCount": 2, "image": "s", "imageID": "", "ready": false,
           "state": {"terminated": {"exitCode": 9}}},
          {"name": "tensorflow", "restartCount": 3, "image": "tf", "imageID": "", "ready": false,
           "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}
        ]
      }
    }"#;

    #[test]
    fn a_decoded_pod_keeps_only_what_the_planner_reads() {
        let pod: ChildPod = serde_json::from_str(POD_JSON).expect("decodes");
        let full: Pod = serde_json::from_str(POD_JSON).expect("decodes");
        assert_eq!(pod, ChildPod::from(full), "decoding and converting agree");
        let meta = &pod.metadata;
        assert_eq!(meta.name.as_deref(), Some("j-worker-0"));
        assert_eq!(meta.resource_version.as_deref(), Some("42"));
        assert!(meta.labels.is_none() && meta.owner_references.is_none());
        assert!(meta.annotations.is_none() && meta.managed_fields.is_none());
        assert!(meta.deletion_timestamp.is_some());
        let lineage = Lineage {
            job_name: Some("j".into()),
            replica: Some((ReplicaType::Worker, 0)),
            controller: Some(ControllerRef {
                kind: "TFJob".into(),
                name: "j".into(),
                uid: "u".into(),
            }),
            has_owners: true,
        };
        assert_eq!(pod.lineage, lineage);
        let state = PodState {
            phase: Some("Failed".into()),
            exit_code: Some(137),
            exit_reason: Some("OOMKilled".into()),
            restarts: 6,
            disrupted: None,
            waiting: None,
        };
        assert_eq!(pod.state, state);
    }

    #[test]
    fn a_lineage_names_a_replica_only_when_both_labels_are_valid_and_a_controller_only_if_marked() {
        let labels = |rtype: &str, index: &str| {
            BTreeMap::from([
                (REPLICA_TYPE_LABEL.to_string(), rtype.to_string()),
                (REPLICA_INDEX_LABEL.to_string(), index.to_string()),
            ])
        };
        let replica = |l: BTreeMap<String, String>| Lineage::of(Some(&l), None).replica;
        assert_eq!(replica(labels("PS", "2")), Some((ReplicaType::Ps, 2)));
        assert_eq!(replica(labels("worker", "x")), None);
        assert_eq!(replica(labels("driver", "0")), None);
        let owner = OwnerReference {
            kind: "ReplicaSet".into(),
            uid: "rs".into(),
            ..OwnerReference::default()
        };
        let not_controller = Lineage::of(None, Some(std::slice::from_ref(&owner)));
        assert!(not_controller.has_owners && !not_controller.controlled_by("rs"));
        assert_eq!(not_controller.controller, None);
        let controller = OwnerReference {
            controller: Some(true),
            ..owner
        };
        let controlled = Lineage::of(None, Some(&[controller]));
        assert!(controlled.controlled_by("rs") && !controlled.controlled_by("other"));
        assert_eq!(Lineage::of(None, None), Lineage::default());
    }

    /// The state of a pod with `status` (JSON), decoded as the watch and as our writes' answers
    /// decode it (both must agree).
    fn state_of(status: &str) -> PodState {
        let json = format!(r#"{{"metadata": {{"name": "p"}}, "status": {status}}}"#);
        let pod: ChildPod = serde_json::from_str(&json).expect("decodes");
        let full: Pod = serde_json::from_str(&json).expect("decodes");
        assert_eq!(
            ChildPod::from(full).state,
            pod.state,
            "both decodings agree"
        );
        pod.state
    }

    #[test]
    fn a_disruption_is_read_from_the_condition_or_the_kubelets_eviction() {
        let state = |status: &str| state_of(status).disrupted;
        let preempted = r#"{"phase": "Failed", "conditions": [{"type": "DisruptionTarget",
            "status": "True", "reason": "PreemptionByScheduler"}]}"#;
        assert_eq!(state(preempted).as_deref(), Some("PreemptionByScheduler"));
        let evicted = r#"{"phase": "Failed", "reason": "Evicted", "message": "low on memory"}"#;
        assert_eq!(state(evicted).as_deref(), Some("Evicted"));
        let cleared = r#"{"phase": "Failed", "conditions": [{"type": "DisruptionTarget",
            "status": "False", "reason": "PreemptionByScheduler"}]}"#;
        assert_eq!(state(cleared), None);
        assert_eq!(state(r#"{"phase": "Failed", "reason": "OOMKilled"}"#), None);
    }

    #[test]
    fn why_a_pod_cannot_start_is_read_from_the_scheduler_or_a_waiting_container() {
        let waiting = |status: &str| state_of(status).waiting.map(|w| (w.reason, w.message));
        let unschedulable = r#"{"phase": "Pending", "conditions": [{"type": "PodScheduled",
            "status": "False", "reason": "Unschedulable", "message": "0/3 nodes are available"}]}"#;
        let said = |r: &str, m: &str| Some((r.to_string(), m.to_string()));
        assert_eq!(
            waiting(unschedulable),
            said("Unschedulable", "0/3 nodes are available")
        );
        let config = r#"{"phase": "Pending", "containerStatuses": [{"name": "tensorflow",
            "image": "i", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": "CreateContainerConfigError",
                                  "message": "configmap \"c\" not found"}}}]}"#;
        assert_eq!(
            waiting(config),
            said("CreateContainerConfigError", "configmap \"c\" not found")
        );
        let creating = r#"{"phase": "Pending", "containerStatuses": [{"name": "tensorflow",
            "image": "i", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": "ContainerCreating"}}}]}"#;
        assert_eq!(waiting(creating), None, "on its way, not stuck");
    }

    #[test]
    fn a_pod_without_status_is_pending_with_no_exit_code() {
        let pod: ChildPod = serde_json::from_str(r#"{"metadata": {"name": "p"}}"#).expect("ok");
        assert_eq!(pod.state, PodState::default());
    }

    #[test]
    fn a_service_keeps_its_metadata_only() {
        let json = r#"{"metadata": {"name": "s", "annotations": {"a": "b"}},
                       "spec": {"clusterIP": "None", "ports": [{"port": 2222}]}}"#;
        let svc: ChildService = serde_json::from_str(json).expect("decodes");
        assert_eq!(svc.metadata.name.as_deref(), Some("s"));
        assert!(svc.metadata.annotations.is_none());
    }
}

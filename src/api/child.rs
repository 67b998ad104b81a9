//! What the operator keeps of each pod and service it watches: only the fields the planner
//! reads. A TFJob's pod carries a `TF_CONFIG` that lists every replica (hundreds of KB in a
//! 10,000-worker job), a full spec and managedFields; none of it is kept, and none of it is even
//! built while decoding a watch event (serde skips every field these types do not name).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ContainerStatus, Pod, PodStatus, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use serde::Deserialize;

use super::defaults::TF_CONTAINER;
use super::labels::{JOB_NAME_LABEL, REPLICA_INDEX_LABEL, REPLICA_TYPE_LABEL};

/// The labels the operator reads; the others are dropped.
const KEPT_LABELS: [&str; 3] = [JOB_NAME_LABEL, REPLICA_TYPE_LABEL, REPLICA_INDEX_LABEL];

/// A pod as the operator keeps it: identity, labels it reads, owners, deletion, and the state
/// of its `tensorflow` container.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(from = "RawPod")]
pub struct ChildPod {
    /// Name, namespace, UID, resourceVersion, the job and replica labels, owners, deletion
    /// (timestamp, grace period) and finalizers.
    pub metadata: ObjectMeta,
    /// What the pod's status says about the training process.
    pub state: PodState,
}

/// The part of a pod's status the planner decides on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodState {
    /// `Pending`, `Running`, `Succeeded`, `Failed` or `Unknown`; none before the first status.
    pub phase: Option<String>,
    /// Exit code of the terminated `tensorflow` container, if it has terminated.
    pub exit_code: Option<i32>,
    /// Restarts of all containers and init containers.
    pub restarts: i32,
}

/// A service as the operator keeps it: its metadata only.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(from = "RawService")]
pub struct ChildService {
    /// Name, namespace, UID, resourceVersion, the job and replica labels, owners, deletion
    /// (timestamp, grace period) and finalizers.
    pub metadata: ObjectMeta,
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

fn kept_labels(mut labels: BTreeMap<String, String>) -> BTreeMap<String, String> {
    labels.retain(|key, _| KEPT_LABELS.contains(&key.as_str()));
    labels
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
    container_statuses: Option<Vec<RawContainerStatus>>,
    init_container_statuses: Option<Vec<RawContainerStatus>>,
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
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawTerminated {
    exit_code: i32,
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
        Self {
            phase: status.phase,
            container_statuses: raw(status.container_statuses),
            init_container_statuses: raw(status.init_container_statuses),
        }
    }
}

impl From<ContainerStatus> for RawContainerStatus {
    fn from(c: ContainerStatus) -> Self {
        let exit_code = c.state.and_then(|s| s.terminated).map(|t| t.exit_code);
        Self {
            name: c.name,
            restart_count: c.restart_count,
            state: Some(RawContainerState {
                terminated: exit_code.map(|exit_code| RawTerminated { exit_code }),
            }),
        }
    }
}

impl From<RawMeta> for ObjectMeta {
    fn from(raw: RawMeta) -> Self {
        ObjectMeta {
            name: raw.name,
            namespace: raw.namespace,
            uid: raw.uid,
            resource_version: raw.resource_version,
            labels: raw.labels.map(kept_labels),
            owner_references: raw.owner_references,
            deletion_timestamp: raw.deletion_timestamp,
            deletion_grace_period_seconds: raw.deletion_grace_period_seconds,
            finalizers: raw.finalizers,
            ..ObjectMeta::default()
        }
    }
}

impl From<RawPod> for ChildPod {
    fn from(raw: RawPod) -> Self {
        let state = raw.status.map(|s| {
            let containers = s.container_statuses.unwrap_or_default();
            let init = s.init_container_statuses.unwrap_or_default();
            let restarts = |cs: &[RawContainerStatus]| {
                cs.iter()
                    .map(|c| c.restart_count)
                    .fold(0, i32::saturating_add)
            };
            PodState {
                phase: s.phase,
                exit_code: containers
                    .iter()
                    .find(|c| c.name == TF_CONTAINER)
                    .and_then(|c| c.state.as_ref()?.terminated.as_ref())
                    .map(|t| t.exit_code),
                restarts: restarts(&containers).saturating_add(restarts(&init)),
            }
        });
        Self {
            metadata: raw.metadata.into(),
            state: state.unwrap_or_default(),
        }
    }
}

impl From<RawService> for ChildService {
    fn from(raw: RawService) -> Self {
        Self {
            metadata: raw.metadata.into(),
        }
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
        assert_eq!(meta.labels.as_ref().map(BTreeMap::len), Some(3));
        assert!(meta.annotations.is_none() && meta.managed_fields.is_none());
        assert_eq!(meta.owner_references.as_ref().map(Vec::len), Some(1));
        assert!(meta.deletion_timestamp.is_some());
        let state = PodState {
            phase: Some("Failed".into()),
            exit_code: Some(137),
            restarts: 6,
        };
        assert_eq!(pod.state, state);
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

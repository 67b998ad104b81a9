//! Pure decisions. Given a TFJob, the pods and services it owns and the current time, decide
//! what to create, what to delete, which status to write and which events to emit. No I/O: the
//! controller executes the [`Plan`].

pub mod children;
pub mod cleanup;
pub mod conditions;
pub mod job;
pub mod observed;
pub mod tf_config;

use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Service};

use crate::api::{CleanPodPolicy, TFJobStatus};

pub use job::plan;

/// Operator-wide settings the planner needs.
#[derive(Clone, Debug)]
pub struct PlanConfig {
    /// cleanPodPolicy when a job sets none (`Running` unless configured; upstream uses `None`).
    pub default_clean_pod_policy: CleanPodPolicy,
    /// Cluster domain appended to host names in TF_CONFIG (upstream's `CUSTOM_CLUSTER_DOMAIN`).
    pub cluster_domain: Option<String>,
}

impl Default for PlanConfig {
    fn default() -> Self {
        Self {
            default_clean_pod_policy: CleanPodPolicy::Running,
            cluster_domain: None,
        }
    }
}

/// A child object to delete, by name, guarded by its UID so a newer object of the same name is
/// never deleted by mistake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildRef {
    /// Object name.
    pub name: String,
    /// Object UID (delete precondition).
    pub uid: Option<String>,
}

impl ChildRef {
    /// The reference to an observed object.
    pub fn of<K: kube::Resource>(obj: &K) -> Self {
        Self {
            name: kube::ResourceExt::name_any(obj),
            uid: obj.meta().uid.clone(),
        }
    }
}

/// The sooner of an already planned requeue and `after`.
pub fn sooner(current: Option<Duration>, after: Duration) -> Duration {
    current.map_or(after, |existing| existing.min(after))
}

/// One change to make in the cluster.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Create this pod (AlreadyExists counts as done).
    CreatePod(Box<Pod>),
    /// Create this service (AlreadyExists counts as done).
    CreateService(Box<Service>),
    /// Delete a pod (NotFound counts as done).
    DeletePod(ChildRef),
    /// Delete a pod stuck terminating with grace period 0.
    ForceDeletePod(ChildRef),
    /// Delete a service (NotFound counts as done).
    DeleteService(ChildRef),
    /// Delete the TFJob itself (TTL after finishing).
    DeleteJob,
}

/// Event severity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// Normal.
    Normal,
    /// Warning.
    Warning,
}

/// An event to publish on the TFJob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobEvent {
    /// Normal or Warning.
    pub kind: EventKind,
    /// Upstream reason, e.g. `TFJobRestarting`.
    pub reason: String,
    /// Human-readable message.
    pub message: String,
    /// The child the event is about (kind, name), e.g. ("Pod", "job-worker-0"). Events about
    /// different children are kept apart instead of being folded into one series.
    pub related: Option<(&'static str, String)>,
}

/// What the planner decided for one job.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// Changes to make, in order.
    pub actions: Vec<Action>,
    /// The new status, if it differs from the stored one.
    pub status: Option<TFJobStatus>,
    /// The new status only reports progress (replica counts, Running) while other pods are
    /// still starting, and may be written a little later together with them instead of one
    /// write per pod.
    pub status_may_wait: bool,
    /// Events to publish.
    pub events: Vec<JobEvent>,
    /// When to look at the job again even if nothing changes (deadline, TTL).
    pub requeue_after: Option<Duration>,
}

impl Plan {
    fn event(&mut self, kind: EventKind, reason: &str, message: impl Into<String>) {
        self.events.push(JobEvent {
            kind,
            reason: reason.to_string(),
            message: message.into(),
            related: None,
        });
    }

    fn requeue(&mut self, after: Duration) {
        self.requeue_after = Some(sooner(self.requeue_after, after));
    }
}

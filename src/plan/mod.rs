//! Pure decisions. Given a TFJob, the pods and services it owns and the current time, decide
//! what to create, what to delete, which status to write, which events to emit and which
//! job-level outcomes to count. No I/O: the controller executes the [`Plan`].
//!
//! [`plan`] is a pipeline of named stages, one module each, read top to bottom in
//! [`pipeline`]: `accept` (first look, spec check) → `suspend` → `replicas` (pods and services
//! per replica, with `restarts` deciding what a failed pod means) → `limits` (backoffLimit,
//! activeDeadlineSeconds) → `job_status` (conditions) → `waiting` (why pods cannot start) or
//! `finish` (cleanPodPolicy, TTL) → `batching` (may the status write wait?). [`cleanup`] decides a deletion.
//!
//! How the controller sends a plan is decided here too: [`slow_start`] (in which batches) and
//! [`announce`] (which events say what became of each change).

mod accept;
pub mod announce;
mod batching;
pub mod cleanup;
pub mod conditions;
pub mod desired;
mod finish;
pub mod gang;
mod job_status;
mod limits;
pub mod observed;
mod pass;
pub mod pipeline;
#[cfg(test)]
mod properties;
mod replicas;
mod restarts;
pub mod slow_start;
mod suspend;
pub mod tf_config;
mod waiting;

use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Service};

use crate::api::podgroup::GangScheduler;
use crate::api::{CleanPodPolicy, TFJobStatus};

pub use pipeline::{plan, plan_with_pod_group};

/// Operator-wide settings the planner needs.
#[derive(Clone, Debug)]
pub struct PlanConfig {
    /// The gang scheduler the job's pods go to, with a PodGroup each (`--gang-scheduler-name`).
    pub gang: Option<GangScheduler>,
    /// cleanPodPolicy when a job sets none (`Running` unless configured; upstream uses `None`).
    pub default_clean_pod_policy: CleanPodPolicy,
    /// Cluster domain appended to host names in TF_CONFIG (upstream's `CUSTOM_CLUSTER_DOMAIN`).
    pub cluster_domain: Option<String>,
    /// Most pods one job may have; a larger job fails with `TFJobTooManyReplicas`.
    pub max_replicas_per_job: u32,
    /// Most pods and services created for one job in one pass; the rest follow in the next
    /// passes, so a huge job never holds all its desired pods (each with a TF_CONFIG naming
    /// every replica) at once.
    pub max_creates_per_pass: usize,
    /// Most bytes of pods (template and `TF_CONFIG`) created for one job in one pass.
    pub max_create_bytes_per_pass: usize,
}

/// A child object to delete, by name, guarded by its UID so a newer object of the same name is
/// never deleted by mistake.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChildRef {
    /// Object name.
    pub name: String,
    /// Object UID (delete precondition).
    pub uid: Option<String>,
    /// The resourceVersion it was decided on, when the delete must fail (409) if the object
    /// changed since: a deleted job's cleanup, where the garbage collector may have just
    /// orphaned it (`propagationPolicy: Orphan`) and the cache not shown it yet.
    pub resource_version: Option<String>,
}

impl ChildRef {
    /// The reference to an observed object.
    pub fn of<K: kube::Resource>(obj: &K) -> Self {
        Self {
            name: kube::ResourceExt::name_any(obj),
            uid: obj.meta().uid.clone(),
            resource_version: None,
        }
    }

    /// The reference to an observed object as it was observed: deleting it fails if it changed.
    pub fn exactly<K: kube::Resource>(obj: &K) -> Self {
        Self {
            resource_version: obj.meta().resource_version.clone(),
            ..Self::of(obj)
        }
    }
}

/// An orphan to adopt: which object, and whether it already has (non-controller) owners.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Adoption {
    /// The object (its UID is checked by the patch).
    pub child: ChildRef,
    /// Whether `metadata.ownerReferences` exists (append to it) or not (create it).
    pub has_owners: bool,
}

impl Adoption {
    /// The adoption of `obj`.
    pub fn of<K: crate::api::ObservedChild>(obj: &K) -> Self {
        Self {
            child: ChildRef::of(obj),
            has_owners: obj.lineage().has_owners,
        }
    }
}

/// The sooner of an already planned requeue and `after`.
pub fn sooner(current: Option<Duration>, after: Duration) -> Duration {
    current.map_or(after, |existing| existing.min(after))
}

/// One change to make in the cluster.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
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
    /// Make the job the controller of a pod with its labels and no controller.
    AdoptPod(Adoption),
    /// Create the job's PodGroup (AlreadyExists counts as done).
    CreatePodGroup(Box<kube::api::DynamicObject>),
    /// Set the spec of the job's PodGroup (a merge patch).
    UpdatePodGroup {
        /// The PodGroup's name (the job's).
        name: String,
        /// Its new spec, as the scheduler's PodGroup writes it.
        spec: Box<serde_json::Value>,
    },
    /// Delete the job's PodGroup (NotFound counts as done).
    DeletePodGroup(ChildRef),
    /// Make the job the controller of a service with its labels and no controller.
    AdoptService(Adoption),
}

impl Change {
    /// Whether this creates a pod or service.
    pub fn is_create(&self) -> bool {
        matches!(self, Change::CreatePod(_) | Change::CreateService(_))
    }
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

/// A job-level change a pass made: what the `training_operator_jobs_*_total` counters count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The job was seen for the first time (its `Created` condition is set).
    Created,
    /// Failed pods deleted to be recreated, as their restart policy allows.
    Restarted {
        /// How many pods (each counts once, as upstream counts them).
        pods: u32,
    },
    /// The job succeeded.
    Succeeded,
    /// The job failed (replicas failed, a limit was reached, or its spec is invalid).
    Failed,
    /// `ttlSecondsAfterFinished` expired: the job itself is deleted.
    TtlDeleted,
}

/// What the planner decided for one job.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// Changes to make, in order.
    pub changes: Vec<Change>,
    /// The new status, if it differs from the stored one.
    pub status: Option<TFJobStatus>,
    /// The new status only reports progress (replica counts, Running) while other pods are
    /// still starting, and may be written a little later together with them instead of one
    /// write per pod.
    pub status_may_wait: bool,
    /// Events to publish.
    pub events: Vec<JobEvent>,
    /// Job-level outcomes of this pass, counted by the controller once the status recording
    /// them is written (or, for [`Outcome::TtlDeleted`], once the job is deleted).
    pub outcomes: Vec<Outcome>,
    /// When to look at the job again even if nothing changes (deadline, TTL).
    pub requeue_after: Option<Duration>,
}

impl Plan {
    /// Adds an event about the job itself.
    fn event(&mut self, kind: EventKind, reason: &str, message: impl Into<String>) {
        self.events.push(JobEvent {
            kind,
            reason: reason.to_string(),
            message: message.into(),
            related: None,
        });
    }

    /// Looks at the job again after `after` at the latest.
    fn requeue(&mut self, after: Duration) {
        self.requeue_after = Some(sooner(self.requeue_after, after));
    }
}

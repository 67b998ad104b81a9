//! What every reconcile shares: the client, the caches of our pods and services (observe), the
//! memory of each job, configuration and metrics.

use std::sync::Arc;
use std::time::Instant;

use kube::api::{Api, DynamicObject};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, ResourceExt};

use super::child_cache::ChildCache;
use super::config::ControllerConfig;
use super::error::Error;
use super::memory::JobMemory;
use crate::api::podgroup::ObservedPodGroup;
use crate::api::{ChildPod, ChildService, TFJob};
use crate::runtime::leader::LeaderGate;
use crate::runtime::metrics::Metrics;

/// Shared state of all reconciles.
pub(super) struct Context {
    /// The client; its writes pass only while this replica leads (`runtime::client`).
    pub(super) client: Client,
    reporter: Reporter,
    /// Our pods, as the watch and our own writes show them.
    pub(super) pods: Arc<ChildCache<ChildPod>>,
    /// Our services, as the watch and our own writes show them.
    pub(super) services: Arc<ChildCache<ChildService>>,
    /// What is remembered about each job between reconciles.
    pub(super) memory: JobMemory,
    /// Whether this replica may act (leader election): asked before a reconcile starts, so a
    /// standby does no work whose writes the client would refuse anyway.
    pub(super) gate: LeaderGate,
    pub(super) config: ControllerConfig,
    pub(super) metrics: Arc<Metrics>,
    /// With gang scheduling, the PodGroups the watch shows.
    pod_groups: Option<Store<DynamicObject>>,
}

impl Context {
    /// A context over the child caches `pods` and `services`.
    pub(super) fn new(
        client: Client,
        config: ControllerConfig,
        metrics: Arc<Metrics>,
        (pods, services): (Arc<ChildCache<ChildPod>>, Arc<ChildCache<ChildService>>),
        gate: LeaderGate,
    ) -> Self {
        Self {
            client,
            reporter: Reporter::from("tfjob-controller"),
            pods,
            services,
            memory: JobMemory::new(config.status_batch),
            gate,
            config,
            metrics,
            pod_groups: None,
        }
    }

    /// The same context, reading PodGroups from `store` (gang scheduling).
    pub(super) fn with_pod_groups(self, store: Store<DynamicObject>) -> Self {
        Self {
            pod_groups: Some(store),
            ..self
        }
    }

    /// Observe: the PodGroup of the job's name, if gang scheduling is on and it exists.
    pub(super) fn pod_group_of(&self, job: &TFJob) -> Option<ObservedPodGroup> {
        let scheduler = self.config.plan.gang.as_ref()?;
        let store = self.pod_groups.as_ref()?;
        let key = ObjectRef::new_with(&job.name_any(), scheduler.api_resource())
            .within(&job.namespace().unwrap_or_default());
        store
            .get(&key)
            .map(|group| ObservedPodGroup::of(&group, scheduler))
    }

    /// Waits until both caches have finished their initial list; false if a watch failed
    /// before that.
    pub(super) async fn caches_ready(&self) -> bool {
        self.pods.ready().await && self.services.ready().await
    }

    /// An event recorder for one reconcile. kube-runtime's Recorder keeps every event it
    /// published for six minutes to fold repeats into a series; shared across all jobs that
    /// cache was a third of the operator's memory at 1000 jobs, so each reconcile gets its own
    /// (repeats within a reconcile are still folded).
    pub(super) fn recorder(&self) -> Recorder {
        Recorder::new(self.client.clone(), self.reporter.clone())
    }

    /// The TFJob API of the job's namespace.
    pub(super) fn jobs_api(&self, job: &TFJob) -> Result<Api<TFJob>, Error> {
        let ns = job.namespace().ok_or(Error::MissingMetadata("namespace"))?;
        Ok(Api::namespaced(self.client.clone(), &ns))
    }

    /// Observe: the job's pods and services (those carrying its name label; ownership is
    /// checked by the planner), with our own writes the caches have not caught up with laid
    /// over them.
    pub(super) fn children_of(&self, job: &TFJob) -> (Vec<Arc<ChildPod>>, Vec<Arc<ChildService>>) {
        let ns = job.namespace().unwrap_or_default();
        let name = job.name_any();
        let uid = job.uid().unwrap_or_default();
        (
            self.pods.children_of(&ns, &name, &uid),
            self.services.children_of(&ns, &name, &uid),
        )
    }

    /// The job with `uid` was released (our finalizer removed): everything remembered about
    /// it is forgotten, and the release itself remembered for a while.
    pub(super) fn released(&self, uid: &str) {
        self.memory.released(uid, Instant::now());
        self.pods.forget(uid);
        self.services.forget(uid);
    }
}

/// `namespace/name` of a job, for logs and errors.
pub(super) fn key(job: &TFJob) -> String {
    format!("{}/{}", job.namespace().unwrap_or_default(), job.name_any())
}

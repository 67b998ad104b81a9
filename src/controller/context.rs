//! What every reconcile shares: the client, the caches of our pods and services (observe), the
//! memory of each job, configuration and metrics.

use std::sync::Arc;

use kube::api::Api;
use kube::runtime::events::{Recorder, Reporter};
use kube::{Client, ResourceExt};

use super::act;
use super::config::ControllerConfig;
use super::error::Error;
use super::index::IndexedStore;
use super::memory::JobMemory;
use crate::api::{ChildPod, ChildService, TFJob};
use crate::plan::Action;
use crate::runtime::leader::LeaderGate;
use crate::runtime::metrics::Metrics;

/// Shared state of all reconciles.
pub struct Context {
    pub(super) client: Client,
    reporter: Reporter,
    pods: IndexedStore<ChildPod>,
    services: IndexedStore<ChildService>,
    /// What is remembered about each job between reconciles.
    pub(super) memory: JobMemory,
    /// Whether this replica may act (leader election).
    pub(super) gate: LeaderGate,
    pub(super) config: ControllerConfig,
    pub(super) metrics: Arc<Metrics>,
}

impl Context {
    /// A context over the pod and service caches `pods` and `services`.
    pub fn new(
        client: Client,
        config: ControllerConfig,
        metrics: Arc<Metrics>,
        (pods, services): (IndexedStore<ChildPod>, IndexedStore<ChildService>),
        memory: JobMemory,
        gate: LeaderGate,
    ) -> Self {
        Self {
            client,
            reporter: Reporter::from("tfjob-controller"),
            pods,
            services,
            memory,
            gate,
            config,
            metrics,
        }
    }

    /// Waits until both caches have finished their initial list; false if a watch failed
    /// before that.
    pub(super) async fn caches_ready(&self) -> bool {
        self.pods.store.wait_until_ready().await.is_ok()
            && self.services.store.wait_until_ready().await.is_ok()
    }

    /// Objects in the pod and service caches.
    pub(super) fn cache_sizes(&self) -> (usize, usize) {
        (self.pods.store.len(), self.services.store.len())
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

    /// Observe: the pods and services in the caches that carry the job's name label (found
    /// through the caches' index by job; ownership is checked by the planner), with our own
    /// writes the caches have not caught up with laid over them.
    pub(super) fn children_of(&self, job: &TFJob) -> (Vec<Arc<ChildPod>>, Vec<Arc<ChildService>>) {
        let ns = job.namespace().unwrap_or_default();
        let name = job.name_any();
        let uid = job.uid().unwrap_or_default();
        (
            self.memory.overlay(&uid, self.pods.children_of(&ns, &name)),
            self.memory
                .overlay(&uid, self.services.children_of(&ns, &name)),
        )
    }

    /// Act: executes a plan's actions for `job`, remembering our writes over the caches, and
    /// publishes the events `announce` asks for.
    pub(super) async fn execute(
        &self,
        recorder: &Recorder,
        job: &TFJob,
        actions: Vec<Action>,
        announce: act::Announce,
    ) -> Result<(), Error> {
        if !self.gate.may_act() {
            return Err(Error::NotLeader);
        }
        act::execute(&self.client, &self.memory, recorder, job, actions, announce).await
    }
}

/// `namespace/name` of a job, for logs and errors.
pub(super) fn key(job: &TFJob) -> String {
    format!("{}/{}", job.namespace().unwrap_or_default(), job.name_any())
}

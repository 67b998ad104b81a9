//! What every reconcile shares: the client, the caches of our pods and services (observe), the
//! memory of each job, configuration and metrics.

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::Api;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::Store;
use kube::{Client, Resource, ResourceExt};

use super::act;
use super::config::ControllerConfig;
use super::error::Error;
use super::memory::JobMemory;
use crate::api::labels::JOB_NAME_LABEL;
use crate::api::{ChildPod, ChildService, TFJob};
use crate::plan::Action;
use crate::runtime::leader::LeaderGate;
use crate::runtime::metrics::Metrics;

/// Shared state of all reconciles.
pub struct Context {
    pub(super) client: Client,
    reporter: Reporter,
    pods: Store<ChildPod>,
    services: Store<ChildService>,
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
        (pods, services): (Store<ChildPod>, Store<ChildService>),
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
        self.pods.wait_until_ready().await.is_ok() && self.services.wait_until_ready().await.is_ok()
    }

    /// Objects in the pod and service caches.
    pub(super) fn cache_sizes(&self) -> (usize, usize) {
        (self.pods.len(), self.services.len())
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

    /// Observe: the pods and services in the caches that carry the job's name label (ownership
    /// is checked by the planner), with our own writes the caches have not caught up with
    /// laid over them.
    pub(super) fn children_of(&self, job: &TFJob) -> (Vec<Arc<ChildPod>>, Vec<Arc<ChildService>>) {
        let ns = job.namespace();
        let name = job.name_any();
        let labelled = |meta: &ObjectMeta| {
            meta.namespace == ns
                && meta
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(JOB_NAME_LABEL))
                    .is_some_and(|n| *n == name)
        };
        let pods = self.pods.state().into_iter().filter(|p| labelled(p.meta()));
        let services = self
            .services
            .state()
            .into_iter()
            .filter(|s| labelled(s.meta()));
        let uid = job.uid().unwrap_or_default();
        (
            self.memory.overlay(&uid, pods.collect()),
            self.memory.overlay(&uid, services.collect()),
        )
    }

    /// Act: executes a plan's actions for `job`, remembering our writes over the caches.
    pub(super) async fn execute(
        &self,
        recorder: &Recorder,
        job: &TFJob,
        actions: Vec<Action>,
    ) -> Result<(), Error> {
        if !self.gate.may_act() {
            return Err(Error::NotLeader);
        }
        act::execute(&self.client, &self.memory, recorder, job, actions).await
    }
}

/// `namespace/name` of a job, for logs and errors.
pub(super) fn key(job: &TFJob) -> String {
    format!("{}/{}", job.namespace().unwrap_or_default(), job.name_any())
}

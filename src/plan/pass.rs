//! The working state of one planning pass: who the job is, what was observed, the status as
//! stored, the status being built, and the plan so far. Every stage reads and extends it.

use std::sync::Arc;

use crate::api::{ChildPod, ChildService};
use jiff::Timestamp;
use kube::ResourceExt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::conditions::{self, kind};
use super::desired::JobIdentity;
use super::observed::OwnedChildren;
use super::replicas::Replicas;
use super::{Adoption, Change, ChildRef, EventKind, Outcome, Plan};
use crate::api::defaults::NormalizedSpec;
use crate::api::{ReplicaTotals, TFJob, TFJobStatus};

/// One pass over one job.
pub(super) struct Pass<'a> {
    /// The job's name, namespace and UID.
    pub id: JobIdentity,
    /// The time every decision of this pass is taken at.
    pub now: Timestamp,
    /// The status as stored (what the new one is compared with).
    pub stored: TFJobStatus,
    /// The status being built.
    pub status: TFJobStatus,
    /// The pods and services the job controls.
    pub children: OwnedChildren<'a>,
    /// Actions, events, outcomes and requeue decided so far.
    pub plan: Plan,
}

impl<'a> Pass<'a> {
    /// Starts a pass over `job` with the pods and services observed with its labels.
    pub fn start(
        job: &TFJob,
        pods: &'a [Arc<ChildPod>],
        services: &'a [Arc<ChildService>],
        now: Timestamp,
    ) -> Self {
        let id = JobIdentity {
            name: job.name_any(),
            namespace: job.namespace().unwrap_or_default(),
            uid: job.uid().unwrap_or_default(),
        };
        let stored = job.status.clone().unwrap_or_default();
        Self {
            children: OwnedChildren::claim(&id.uid, pods, services),
            status: stored.clone(),
            stored,
            id,
            now,
            plan: Plan::default(),
        }
    }

    /// `namespace/name`, as upstream's messages name the job.
    pub fn key(&self) -> String {
        format!("{}/{}", self.id.namespace, self.id.name)
    }

    /// Whether the job has never been looked at (no condition stored yet).
    pub fn is_first(&self) -> bool {
        self.stored.conditions.is_empty()
    }

    /// Deletes every live pod and service of the job.
    pub fn delete_all_children(&mut self) {
        let pods = self.children.live_pods().map(ChildRef::of);
        let services = self.children.live_services().map(ChildRef::of);
        let deletes: Vec<Change> = pods
            .map(Change::DeletePod)
            .chain(services.map(Change::DeleteService))
            .collect();
        self.plan.changes.extend(deletes);
    }

    /// Gives every replica type of `spec` a status entry, so it shows before any pod does.
    pub fn track_replica_types(&mut self, spec: &NormalizedSpec) {
        for rtype in spec.replicas.keys() {
            let key = rtype.canonical().to_string();
            self.status.replica_statuses.entry(key).or_default();
        }
    }

    /// Adopts the live pods and services with the job's labels and no controller (they are
    /// counted as the job's from this pass on).
    pub fn adopt_orphans(&mut self) {
        let pods = self
            .children
            .orphan_pods
            .iter()
            .map(|p| Change::AdoptPod(Adoption::of(*p)));
        let services = self
            .children
            .orphan_services
            .iter()
            .map(|s| Change::AdoptService(Adoption::of(*s)));
        let adoptions: Vec<Change> = pods.chain(services).collect();
        self.plan.changes.extend(adoptions);
    }

    /// Takes the replicas stage's changes, events and restarts into the plan.
    pub fn take_decisions_of(&mut self, replicas: &mut Replicas) {
        self.plan.changes.append(&mut replicas.changes);
        self.plan.events.append(&mut replicas.events);
        if replicas.restarted_pods > 0 {
            let pods = replicas.restarted_pods;
            self.plan.outcomes.push(Outcome::Restarted { pods });
        }
    }

    /// Marks the job Failed, once: the condition, its completion time, an event of `severity`
    /// with `reason`, and the outcome.
    pub fn fail(&mut self, reason: &str, severity: EventKind, message: String) {
        let now = self.now;
        let failed = kind::FAILED;
        if conditions::set(&mut self.status, failed, true, reason, message.clone(), now) {
            self.status.completion_time.get_or_insert(Time(now));
            self.plan.event(severity, reason, message);
            self.plan.outcomes.push(Outcome::Failed);
        }
    }

    /// Sets every replica type's active count to 0 (the job stopped running).
    pub fn no_replica_active(&mut self) {
        for replica in self.status.replica_statuses.values_mut() {
            replica.active = 0;
        }
    }

    /// The plan, with the status if it changed (its state word follows its conditions).
    /// `may_wait` is the batching verdict for it.
    pub fn into_plan(mut self, may_wait: bool) -> Plan {
        self.status.state = conditions::state(&self.status);
        self.status.reason = conditions::state_reason(&self.status);
        self.status.replica_totals = (!self.status.replica_statuses.is_empty())
            .then(|| ReplicaTotals::of(self.status.replica_statuses.values()));
        if self.status != self.stored {
            self.plan.status_may_wait = may_wait;
            self.plan.status = Some(self.status);
        }
        self.plan
    }
}

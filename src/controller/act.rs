//! The applier: sends a plan's changes (creates, deletes and adoptions of pods and services,
//! the TTL delete of the job) and reports what became of each. It decides nothing: the batches
//! come from [`plan::slow_start`], the events from [`plan::announce`]; it tells the child caches
//! what it wrote, so the next pass sees it before the watches do.

use futures::future::join_all;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::events::Recorder;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::debug;

use super::child_cache::{Child, ChildCache};
use super::context::Context;
use super::error::{
    Error, is_already_exists, is_conflict, is_invalid, is_namespace_terminating, is_not_found,
    is_refused_write,
};
use super::events;
use super::json_patch_ops as ops;
use crate::api::TFJob;
use crate::plan::announce::{self, Announce, Applied, Effect, Verb};
use crate::plan::desired::JobIdentity;
use crate::plan::{Adoption, Change, ChildRef, slow_start};

/// The kind events and logs name a PodGroup by.
const POD_GROUP: &str = "PodGroup";

/// What became of one change, and the error to report for it.
struct Sent {
    applied: Applied,
    error: Option<Error>,
}

/// Where one job's changes go.
struct Applier<'a> {
    ctx: &'a Context,
    job: &'a TFJob,
    ns: String,
    job_uid: String,
}

/// Sends `changes` for `job` in the batches [`slow_start`] gives, tells the caches what was
/// written, and publishes the events [`announce`] derives (those `announce` asks for). Returns
/// the first error after every batch that was sent.
pub(super) async fn apply(
    ctx: &Context,
    recorder: &Recorder,
    job: &TFJob,
    changes: Vec<Change>,
    announce: Announce,
) -> Result<(), Error> {
    if changes.is_empty() {
        return Ok(());
    }
    let applier = Applier {
        ctx,
        job,
        ns: job.namespace().ok_or(Error::MissingMetadata("namespace"))?,
        job_uid: job.uid().unwrap_or_default(),
    };
    debug!(count = changes.len(), "applying changes");
    let mut batches = slow_start::batches(changes);
    let (mut applied, mut first_error, mut last_failed) = (Vec::new(), None, false);
    while let Some(batch) = batches.next(last_failed) {
        let sent = join_all(batch.into_iter().map(|c| applier.send(c))).await;
        last_failed = sent.iter().any(|s| s.error.is_some());
        for s in sent {
            first_error = first_error.or(s.error);
            applied.push(s.applied);
        }
    }
    events::publish(recorder, job, announce::events(&applied, announce)).await;
    first_error.map_or(Ok(()), Err)
}

impl Applier<'_> {
    async fn send(&self, change: Change) -> Sent {
        let (pods, services) = (&*self.ctx.pods, &*self.ctx.services);
        match change {
            Change::CreatePod(pod) => self.create(pods, &pod).await,
            Change::CreateService(svc) => self.create(services, &svc).await,
            Change::DeletePod(child) => self.delete(pods, &child, None).await,
            Change::ForceDeletePod(child) => self.delete(pods, &child, Some(0)).await,
            Change::DeleteService(child) => self.delete(services, &child, None).await,
            Change::AdoptPod(orphan) => self.adopt(pods, &orphan).await,
            Change::AdoptService(orphan) => self.adopt(services, &orphan).await,
            Change::DeleteJob => self.delete_job().await,
            Change::CreatePodGroup(group) => self.create_pod_group(&group).await,
            Change::UpdatePodGroup { name, spec } => self.update_pod_group(&name, *spec).await,
            Change::DeletePodGroup(child) => self.delete_pod_group(&child).await,
        }
    }

    /// The PodGroup API of the job's namespace; None without gang scheduling (the planner
    /// plans no PodGroup then).
    fn pod_groups(&self) -> Option<Api<DynamicObject>> {
        let scheduler = self.ctx.config.plan.gang.as_ref()?;
        Some(Api::namespaced_with(
            self.ctx.client.clone(),
            &self.ns,
            &scheduler.api_resource(),
        ))
    }

    async fn create_pod_group(&self, group: &DynamicObject) -> Sent {
        let name = group.name_any();
        let Some(api) = self.pod_groups() else {
            return self.report(Verb::Create, POD_GROUP, &name, Effect::Settled);
        };
        match api.create(&PostParams::default(), group).await {
            Ok(_) => self.report(Verb::Create, POD_GROUP, &name, Effect::Done),
            Err(e) if is_already_exists(&e) => {
                self.report(Verb::Create, POD_GROUP, &name, Effect::Settled)
            }
            Err(e) => self.refused(Verb::Create, POD_GROUP, &name, e),
        }
    }

    async fn update_pod_group(&self, name: &str, spec: serde_json::Value) -> Sent {
        let Some(api) = self.pod_groups() else {
            return self.report(Verb::Update, POD_GROUP, name, Effect::Settled);
        };
        let patch = Patch::Merge(json!({ "spec": spec }));
        match api.patch(name, &PatchParams::default(), &patch).await {
            Ok(_) => self.report(Verb::Update, POD_GROUP, name, Effect::Done),
            Err(e) if is_not_found(&e) => {
                self.report(Verb::Update, POD_GROUP, name, Effect::Settled)
            }
            Err(e) => self.refused(Verb::Update, POD_GROUP, name, e),
        }
    }

    async fn delete_pod_group(&self, child: &ChildRef) -> Sent {
        let name = &child.name;
        let Some(api) = self.pod_groups() else {
            return self.report(Verb::Delete, POD_GROUP, name, Effect::Settled);
        };
        match api.delete(name, &delete_params(child, None)).await {
            Ok(_) => self.report(Verb::Delete, POD_GROUP, name, Effect::Done),
            Err(e) if is_not_found(&e) || is_conflict(&e) => {
                self.report(Verb::Delete, POD_GROUP, name, Effect::Settled)
            }
            Err(e) => self.refused(Verb::Delete, POD_GROUP, name, e),
        }
    }

    fn api<K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>>(
        &self,
    ) -> Api<K> {
        Api::namespaced(self.ctx.client.clone(), &self.ns)
    }

    /// The report of `verb` on `kind`/`name` with `effect`.
    fn report(&self, verb: Verb, kind: &'static str, name: &str, effect: Effect) -> Sent {
        let applied = Applied {
            verb,
            kind,
            namespace: self.ns.clone(),
            name: name.to_string(),
            effect,
        };
        Sent {
            applied,
            error: None,
        }
    }

    /// The report of a change the API server (or the leader gate) refused.
    fn refused(&self, verb: Verb, kind: &'static str, name: &str, e: kube::Error) -> Sent {
        let what = announce::describe(verb, kind, &self.ns, name);
        if is_namespace_terminating(&e) {
            // The namespace controller is deleting everything here, this job included.
            debug!(%what, "namespace is terminating; skipped");
            return self.report(verb, kind, name, Effect::NamespaceTerminating);
        }
        let effect = if is_refused_write(&e) {
            Effect::NotSent
        } else {
            Effect::Failed(e.to_string())
        };
        let mut sent = self.report(verb, kind, name, effect);
        sent.error = Some(Error::api(what, e));
        sent
    }

    async fn create<K: Child>(&self, cache: &ChildCache<K>, obj: &K::Full) -> Sent {
        let name = obj.name_any();
        match post::<K>(&self.api(), obj).await {
            Ok(created) => {
                cache.created(&self.job_uid, created);
                self.report(Verb::Create, K::KIND, &name, Effect::Done)
            }
            // Deterministic names: it was created by an earlier pass.
            Err(e) if is_already_exists(&e) => {
                self.report(Verb::Create, K::KIND, &name, Effect::Settled)
            }
            Err(e) => self.refused(Verb::Create, K::KIND, &name, e),
        }
    }

    async fn delete<K: Child>(
        &self,
        cache: &ChildCache<K>,
        child: &ChildRef,
        grace: Option<u32>,
    ) -> Sent {
        let name = &child.name;
        let uid = child.uid.clone();
        match self
            .api::<K>()
            .delete(name, &delete_params(child, grace))
            .await
        {
            Ok(answer) => {
                let still_stored = answer.left().filter(is_still_stored);
                cache.deleted(&self.job_uid, name, uid, still_stored);
                self.report(Verb::Delete, K::KIND, name, Effect::Done)
            }
            Err(e) if is_not_found(&e) => {
                cache.deleted(&self.job_uid, name, uid, None);
                self.report(Verb::Delete, K::KIND, name, Effect::Settled)
            }
            // Replaced by a newer object of the same name, or changed since we looked (the
            // preconditions failed): the next pass decides on what it is now.
            Err(e) if is_conflict(&e) => self.report(Verb::Delete, K::KIND, name, Effect::Settled),
            Err(e) => self.refused(Verb::Delete, K::KIND, name, e),
        }
    }

    /// Makes the job the controller of an orphan, guarded by its UID (a newer object of that
    /// name is left alone).
    async fn adopt<K: Child>(&self, cache: &ChildCache<K>, orphan: &Adoption) -> Sent {
        let name = &orphan.child.name;
        let owner = JobIdentity {
            name: self.job.name_any(),
            namespace: self.ns.clone(),
            uid: self.job_uid.clone(),
        }
        .owner_reference();
        let claim = if orphan.has_owners {
            ops::add(&["metadata", "ownerReferences", "-"], json!(owner))
        } else {
            ops::add(&["metadata", "ownerReferences"], json!([owner]))
        };
        let guard = ops::test(&["metadata", "uid"], json!(orphan.child.uid));
        let patch = Patch::<()>::Json(json_patch::Patch(vec![guard, claim]));
        match self
            .api::<K>()
            .patch(name, &PatchParams::default(), &patch)
            .await
        {
            Ok(adopted) => {
                cache.created(&self.job_uid, adopted);
                self.report(Verb::Adopt, K::KIND, name, Effect::Done)
            }
            // Gone, replaced, or claimed by someone else meanwhile: the next pass sees which.
            Err(e) if is_not_found(&e) || is_conflict(&e) || is_invalid(&e) => {
                self.report(Verb::Adopt, K::KIND, name, Effect::Settled)
            }
            Err(e) => self.refused(Verb::Adopt, K::KIND, name, e),
        }
    }

    async fn delete_job(&self) -> Sent {
        let name = self.job.name_any();
        let kind = "TFJob";
        match self
            .api::<TFJob>()
            .delete(&name, &DeleteParams::background())
            .await
        {
            Ok(_) => self.report(Verb::Delete, kind, &name, Effect::Done),
            Err(e) if is_not_found(&e) => self.report(Verb::Delete, kind, &name, Effect::Settled),
            Err(e) => self.refused(Verb::Delete, kind, &name, e),
        }
    }
}

/// POSTs `obj` and decodes the answer straight into the cache's form `K` (kube's `Api::create`
/// would decode it as the full type, allocating the whole spec back).
async fn post<K: Child>(api: &Api<K>, obj: &K::Full) -> Result<K, kube::Error> {
    let body = serde_json::to_vec(obj).map_err(kube::Error::SerdeError)?;
    let mut request = kube::core::Request::new(api.resource_url())
        .create(&PostParams::default(), body)
        .map_err(kube::Error::BuildRequest)?;
    request.extensions_mut().insert("create");
    api.clone().into_client().request::<K>(request).await
}

fn delete_params(child: &ChildRef, grace: Option<u32>) -> DeleteParams {
    DeleteParams {
        grace_period_seconds: grace,
        preconditions: child.uid.clone().map(|uid| Preconditions {
            uid: Some(uid),
            resource_version: child.resource_version.clone(),
        }),
        ..DeleteParams::background()
    }
}

/// Whether an object the API server returned for our DELETE is still stored: terminating (its
/// grace period runs) or held by finalizers. The answer is the object in both cases; one removed
/// at once has no finalizers and no grace period left (a Service no deletion timestamp at all, a
/// pod deleted with grace period 0, as every unscheduled or finished pod is, a
/// `deletionGracePeriodSeconds` of 0).
pub fn is_still_stored<K: Resource>(obj: &K) -> bool {
    let meta = obj.meta();
    let held = meta.finalizers.as_ref().is_some_and(|f| !f.is_empty());
    let grace_left =
        meta.deletion_timestamp.is_some() && meta.deletion_grace_period_seconds != Some(0);
    held || grace_left
}

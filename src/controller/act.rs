//! Executing a plan's actions: creating and deleting pods, services and (by TTL) TFJobs, and
//! publishing events. Status writes are in `status.rs`, finalizer patches in `finalizer.rs`.

use futures::future::join_all;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::{debug, warn};

use super::error::{
    Error, is_already_exists, is_conflict, is_invalid, is_namespace_terminating, is_not_found,
};
use super::json_patch_ops as ops;
use super::memory::{Child, JobMemory};
use crate::api::{ChildPod, ChildService, TFJob};
use crate::plan::desired::JobIdentity;
use crate::plan::{Action, Adoption, ChildRef, EventKind, JobEvent};

/// The longest event note the API server accepts (events.k8s.io/v1 `note`, in bytes); a longer
/// one makes it refuse the whole event.
pub const MAX_NOTE_BYTES: usize = 1024;
const CUT_MARK: &str = " [... message truncated]";

/// `message` cut to what the API server accepts: its start, and a mark that it was cut.
pub fn fit_note(message: String) -> String {
    if message.len() <= MAX_NOTE_BYTES {
        return message;
    }
    let mut end = MAX_NOTE_BYTES - CUT_MARK.len();
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{CUT_MARK}", &message[..end])
}

/// Publishes events on a TFJob, all at once; failures are logged, never fatal.
pub async fn publish(recorder: &Recorder, job: &TFJob, events: Vec<JobEvent>) {
    let reference = job.object_ref(&());
    let ns = job.namespace().unwrap_or_default();
    let events: Vec<Event> = events
        .into_iter()
        .map(|e| Event {
            type_: match e.kind {
                EventKind::Normal => EventType::Normal,
                EventKind::Warning => EventType::Warning,
            },
            action: e.reason.clone(),
            reason: e.reason,
            note: Some(fit_note(e.message)),
            secondary: e.related.map(|(kind, name)| ObjectReference {
                api_version: Some(
                    if kind == "TFJob" {
                        "kubeflow.org/v1"
                    } else {
                        "v1"
                    }
                    .into(),
                ),
                kind: Some(kind.into()),
                name: Some(name),
                namespace: Some(ns.clone()),
                ..Default::default()
            }),
        })
        .collect();
    let results = join_all(events.iter().map(|ev| recorder.publish(ev, &reference))).await;
    for (ev, result) in events.iter().zip(results) {
        match result {
            Ok(()) => {}
            Err(err) if is_namespace_terminating(&err) => {
                debug!(reason = %ev.reason, "namespace is terminating; event dropped");
            }
            Err(err) => warn!(error = %err, reason = %ev.reason, "could not publish event"),
        }
    }
}

fn delete_params(child: &ChildRef, grace: Option<u32>) -> DeleteParams {
    DeleteParams {
        grace_period_seconds: grace,
        preconditions: child.uid.clone().map(|uid| Preconditions {
            uid: Some(uid),
            resource_version: None,
        }),
        ..DeleteParams::background()
    }
}

/// Outcome of one action: an event to publish and/or an error.
struct Outcome {
    event: Option<JobEvent>,
    error: Option<Error>,
}

fn ok(event: Option<JobEvent>) -> Outcome {
    Outcome { event, error: None }
}

fn normal(reason: &str, message: String, related: (&'static str, &str)) -> Option<JobEvent> {
    Some(JobEvent {
        kind: EventKind::Normal,
        reason: reason.into(),
        message,
        related: Some((related.0, related.1.to_string())),
    })
}

fn failed(reason: &str, action: String, source: kube::Error) -> Outcome {
    if is_namespace_terminating(&source) {
        // The namespace controller is deleting everything here, this job included.
        debug!(%action, "namespace is terminating; skipped");
        return ok(None);
    }
    Outcome {
        event: Some(JobEvent {
            kind: EventKind::Warning,
            reason: reason.into(),
            message: format!("Error {action}: {source}"),
            related: None,
        }),
        error: Some(Error::Api { action, source }),
    }
}

/// How events and messages name a kind of child.
#[derive(Clone, Copy)]
struct ChildKind {
    /// API kind, also the suffix of event reasons (`SuccessfulCreatePod`).
    kind: &'static str,
    /// Lower-case noun for messages (`Created pod: ...`).
    noun: &'static str,
}

const POD: ChildKind = ChildKind {
    kind: "Pod",
    noun: "pod",
};
const SERVICE: ChildKind = ChildKind {
    kind: "Service",
    noun: "service",
};

/// Where a child is written: its API, and the memory of writes the cache may not show yet.
struct Target<'a, K: Child> {
    api: Api<K>,
    memory: &'a JobMemory,
    ns: &'a str,
    job_uid: &'a str,
    kind: ChildKind,
}

/// POSTs `obj` and decodes the answer as `K` (kube's `Api::create` would decode it as the full
/// type, allocating the whole spec back).
async fn post<K: Child>(api: &Api<K>, obj: &K::Full) -> Result<K, kube::Error> {
    let body = serde_json::to_vec(obj).map_err(kube::Error::SerdeError)?;
    let mut request = kube::core::Request::new(api.resource_url())
        .create(&PostParams::default(), body)
        .map_err(kube::Error::BuildRequest)?;
    request.extensions_mut().insert("create");
    api.clone().into_client().request::<K>(request).await
}

async fn create_child<K: Child>(to: Target<'_, K>, obj: &K::Full) -> Outcome {
    let (ns, kind) = (to.ns, to.kind);
    let name = obj.name_any();
    match post(&to.api, obj).await {
        Ok(created) => {
            to.memory.created(to.job_uid, created);
            ok(normal(
                &format!("SuccessfulCreate{}", kind.kind),
                format!("Created {}: {name}", kind.noun),
                (kind.kind, &name),
            ))
        }
        // Deterministic names: it was created by an earlier pass.
        Err(e) if is_already_exists(&e) => ok(None),
        Err(e) => failed(
            &format!("FailedCreate{}", kind.kind),
            format!("creating {} {ns}/{name}", kind.noun),
            e,
        ),
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

async fn delete_child<K: Child>(
    to: Target<'_, K>,
    child: &ChildRef,
    grace: Option<u32>,
) -> Outcome {
    let (ns, kind) = (to.ns, to.kind);
    match to
        .api
        .delete(&child.name, &delete_params(child, grace))
        .await
    {
        Ok(answer) => {
            let still_stored = answer.left().filter(is_still_stored);
            to.memory
                .deleted(to.job_uid, &child.name, child.uid.clone(), still_stored);
            ok(normal(
                &format!("SuccessfulDelete{}", kind.kind),
                format!("Deleted {}: {}", kind.noun, child.name),
                (kind.kind, &child.name),
            ))
        }
        Err(e) if is_not_found(&e) => {
            to.memory
                .deleted::<K>(to.job_uid, &child.name, child.uid.clone(), None);
            ok(None)
        }
        // Replaced by a newer object of the same name (the UID precondition failed).
        Err(e) if is_conflict(&e) => ok(None),
        Err(e) => failed(
            &format!("FailedDelete{}", kind.kind),
            format!("deleting {} {ns}/{}", kind.noun, child.name),
            e,
        ),
    }
}

/// Makes `job` the controller of an orphan, guarded by its UID (a newer object of that name is
/// left alone); remembers the answer so the next pass sees it adopted before the watch does.
async fn adopt_child<K: Child>(to: Target<'_, K>, job: &TFJob, orphan: &Adoption) -> Outcome {
    let (ns, kind) = (to.ns, to.kind);
    let name = &orphan.child.name;
    let owner = JobIdentity {
        name: job.name_any(),
        namespace: ns.to_string(),
        uid: to.job_uid.to_string(),
    }
    .owner_reference();
    let claim = if orphan.has_owners {
        ops::add(&["metadata", "ownerReferences", "-"], json!(owner))
    } else {
        ops::add(&["metadata", "ownerReferences"], json!([owner]))
    };
    let guard = ops::test(&["metadata", "uid"], json!(orphan.child.uid));
    let patch = Patch::<()>::Json(json_patch::Patch(vec![guard, claim]));
    match to.api.patch(name, &PatchParams::default(), &patch).await {
        Ok(adopted) => {
            to.memory.created(to.job_uid, adopted);
            ok(normal(
                &format!("Adopted{}", kind.kind),
                format!(
                    "Adopted {} {name}, which had the job's labels and no controller",
                    kind.noun
                ),
                (kind.kind, name),
            ))
        }
        // Gone, replaced, or claimed by someone else meanwhile: the next pass sees which.
        Err(e) if is_not_found(&e) || is_conflict(&e) || is_invalid(&e) => ok(None),
        Err(e) => failed(
            &format!("FailedAdopt{}", kind.kind),
            format!("adopting {} {ns}/{name}", kind.noun),
            e,
        ),
    }
}

async fn run_one(
    client: &kube::Client,
    memory: &JobMemory,
    job: &TFJob,
    ns: &str,
    action: Action,
) -> Outcome {
    let job_uid = job.meta().uid.as_deref().unwrap_or_default();
    let pods = || Target::<ChildPod> {
        api: Api::namespaced(client.clone(), ns),
        memory,
        ns,
        job_uid,
        kind: POD,
    };
    let services = || Target::<ChildService> {
        api: Api::namespaced(client.clone(), ns),
        memory,
        ns,
        job_uid,
        kind: SERVICE,
    };
    match action {
        Action::CreatePod(pod) => create_child(pods(), &pod).await,
        Action::CreateService(svc) => create_child(services(), &svc).await,
        Action::DeletePod(child) => delete_child(pods(), &child, None).await,
        Action::ForceDeletePod(child) => delete_child(pods(), &child, Some(0)).await,
        Action::DeleteService(child) => delete_child(services(), &child, None).await,
        Action::AdoptPod(orphan) => adopt_child(pods(), job, &orphan).await,
        Action::AdoptService(orphan) => adopt_child(services(), job, &orphan).await,
        Action::DeleteJob => {
            let jobs: Api<TFJob> = Api::namespaced(client.clone(), ns);
            let name = job.name_any();
            match jobs.delete(&name, &DeleteParams::background()).await {
                Ok(_) => ok(normal(
                    "SuccessfulDeleteJob",
                    format!("Deleted job: {name}"),
                    ("TFJob", &name),
                )),
                Err(e) if is_not_found(&e) => ok(None),
                Err(e) => failed("FailedDeleteJob", format!("deleting TFJob {ns}/{name}"), e),
            }
        }
    }
}

/// Which events of the executed actions are published.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Announce {
    /// Every event: creates, deletes and adoptions (`SuccessfulCreatePod`, ...) and failures.
    Everything,
    /// Failures only. A deleted job's cleanup: Normal events about a job that is going away
    /// would cost a request per child and tell nobody anything.
    FailuresOnly,
}

/// Executes `actions` for `job`, remembers what was written in `memory` and publishes their
/// events (those `announce` asks for). Deletes run all at once; creates run in slow-start
/// batches of 1, 2, 4, ... as the Job controller's do: a batch with a failed create stops the
/// batches after it, so a job whose pods cannot be created costs one failed request per pass,
/// not one per pod. Returns the first error after the attempted actions.
pub async fn execute(
    client: &kube::Client,
    memory: &JobMemory,
    recorder: &Recorder,
    job: &TFJob,
    actions: Vec<Action>,
    announce: Announce,
) -> Result<(), Error> {
    if actions.is_empty() {
        return Ok(());
    }
    let ns = job.namespace().ok_or(Error::MissingMetadata("namespace"))?;
    debug!(count = actions.len(), "executing actions");
    let run = |a| run_one(client, memory, job, &ns, a);
    let (creates, others): (Vec<Action>, Vec<Action>) =
        actions.into_iter().partition(Action::is_create);
    let mut outcomes = join_all(others.into_iter().map(run)).await;
    let mut creates = creates.into_iter();
    let mut batch_size = 1;
    loop {
        let batch: Vec<Action> = creates.by_ref().take(batch_size).collect();
        if batch.is_empty() {
            break;
        }
        let done = join_all(batch.into_iter().map(run)).await;
        let failed = done.iter().any(|o| o.error.is_some());
        outcomes.extend(done);
        if failed {
            break;
        }
        batch_size = batch_size.saturating_mul(2);
    }
    let mut events = Vec::new();
    let mut first_error = None;
    for o in outcomes {
        let failed = o.error.is_some();
        events.extend(
            o.event
                .filter(|_| failed || announce == Announce::Everything),
        );
        if first_error.is_none() {
            first_error = o.error;
        }
    }
    publish(recorder, job, events).await;
    first_error.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_notes_keep_their_start_and_say_they_were_cut() {
        let short = "Created pod: a".to_string();
        assert_eq!(fit_note(short.clone()), short);
        let exact = "x".repeat(MAX_NOTE_BYTES);
        assert_eq!(fit_note(exact.clone()), exact);
        // Multi-byte characters are never split.
        let long = format!("Error creating pod: {}", "é".repeat(2000));
        let fitted = fit_note(long);
        assert!(fitted.len() <= MAX_NOTE_BYTES, "{} bytes", fitted.len());
        assert!(fitted.starts_with("Error creating pod: é"));
        assert!(fitted.ends_with(CUT_MARK));
    }
}

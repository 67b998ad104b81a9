//! Executing a plan: the only place that writes pods, services, TFJobs and events.

use futures::future::join_all;
use k8s_openapi::api::core::v1::{ObjectReference, Pod, Service};
use kube::api::{Api, DeleteParams, PostParams, Preconditions};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Resource, ResourceExt};
use tracing::{debug, warn};

use super::error::{Error, is_namespace_terminating, is_status};
use crate::api::TFJob;
use crate::plan::{Action, ChildRef, EventKind, JobEvent};
use crate::runtime::metrics::Metrics;

/// Publishes events on a TFJob; failures are logged, never fatal.
pub async fn publish(recorder: &Recorder, metrics: &Metrics, job: &TFJob, events: Vec<JobEvent>) {
    let reference = job.object_ref(&());
    let ns = job.namespace().unwrap_or_default();
    for e in events {
        metrics.count_event(&ns, &e.reason);
        let ev = Event {
            type_: match e.kind {
                EventKind::Normal => EventType::Normal,
                EventKind::Warning => EventType::Warning,
            },
            action: e.reason.clone(),
            reason: e.reason,
            note: Some(e.message),
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
        };
        match recorder.publish(&ev, &reference).await {
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

async fn run_one(client: &kube::Client, job: &TFJob, ns: &str, action: Action) -> Outcome {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    match action {
        Action::CreatePod(pod) => {
            let name = pod.name_any();
            match pods.create(&PostParams::default(), &pod).await {
                Ok(_) => ok(normal(
                    "SuccessfulCreatePod",
                    format!("Created pod: {name}"),
                    ("Pod", &name),
                )),
                // Deterministic names: it was created by an earlier pass.
                Err(e) if is_status(&e, 409) => ok(None),
                Err(e) => failed("FailedCreatePod", format!("creating pod {ns}/{name}"), e),
            }
        }
        Action::CreateService(svc) => {
            let name = svc.name_any();
            match services.create(&PostParams::default(), &svc).await {
                Ok(_) => ok(normal(
                    "SuccessfulCreateService",
                    format!("Created service: {name}"),
                    ("Service", &name),
                )),
                Err(e) if is_status(&e, 409) => ok(None),
                Err(e) => failed(
                    "FailedCreateService",
                    format!("creating service {ns}/{name}"),
                    e,
                ),
            }
        }
        Action::DeletePod(child) => delete_pod(&pods, ns, &child, None).await,
        Action::ForceDeletePod(child) => delete_pod(&pods, ns, &child, Some(0)).await,
        Action::DeleteService(child) => {
            match services
                .delete(&child.name, &delete_params(&child, None))
                .await
            {
                Ok(_) => ok(normal(
                    "SuccessfulDeleteService",
                    format!("Deleted service: {}", child.name),
                    ("Service", &child.name),
                )),
                // Gone already, or replaced by a newer object of the same name.
                Err(e) if is_status(&e, 404) || is_status(&e, 409) => ok(None),
                Err(e) => failed(
                    "FailedDeleteService",
                    format!("deleting service {ns}/{}", child.name),
                    e,
                ),
            }
        }
        Action::DeleteJob => {
            let jobs: Api<TFJob> = Api::namespaced(client.clone(), ns);
            let name = job.name_any();
            match jobs.delete(&name, &DeleteParams::background()).await {
                Ok(_) => ok(normal(
                    "SuccessfulDeleteJob",
                    format!("Deleted job: {name}"),
                    ("TFJob", &name),
                )),
                Err(e) if is_status(&e, 404) => ok(None),
                Err(e) => failed("FailedDeleteJob", format!("deleting TFJob {ns}/{name}"), e),
            }
        }
    }
}

async fn delete_pod(pods: &Api<Pod>, ns: &str, child: &ChildRef, grace: Option<u32>) -> Outcome {
    match pods.delete(&child.name, &delete_params(child, grace)).await {
        Ok(_) => ok(normal(
            "SuccessfulDeletePod",
            format!("Deleted pod: {}", child.name),
            ("Pod", &child.name),
        )),
        Err(e) if is_status(&e, 404) || is_status(&e, 409) => ok(None),
        Err(e) => failed(
            "FailedDeletePod",
            format!("deleting pod {ns}/{}", child.name),
            e,
        ),
    }
}

/// Executes `actions` for `job` concurrently and publishes their events. Returns the first
/// error after every action has been attempted.
pub async fn execute(
    client: &kube::Client,
    recorder: &Recorder,
    metrics: &Metrics,
    job: &TFJob,
    actions: Vec<Action>,
) -> Result<(), Error> {
    if actions.is_empty() {
        return Ok(());
    }
    let ns = job.namespace().ok_or(Error::MissingMetadata("namespace"))?;
    debug!(count = actions.len(), "executing actions");
    let outcomes = join_all(actions.into_iter().map(|a| run_one(client, job, &ns, a))).await;
    let mut events = Vec::new();
    let mut first_error = None;
    for o in outcomes {
        events.extend(o.event);
        if first_error.is_none() {
            first_error = o.error;
        }
    }
    publish(recorder, metrics, job, events).await;
    first_error.map_or(Ok(()), Err)
}

//! Publishing the planner's events on a TFJob, as `events.k8s.io/v1` Events through kube's
//! Recorder. Failures are logged, never fatal: an event is worth less than the reconcile.

use futures::future::join_all;
use k8s_openapi::api::core::v1::{ObjectReference, Pod, Service};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Resource, ResourceExt};
use tracing::{debug, warn};

use super::error::{is_namespace_terminating, is_refused_write};
use crate::api::TFJob;
use crate::plan::{EventKind, JobEvent};

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

/// The reference to the object an event is about besides the job (its `related` object).
fn related(kind: &'static str, name: String, namespace: &str) -> ObjectReference {
    let api_version = match kind {
        "Pod" => Pod::api_version(&()),
        "Service" => Service::api_version(&()),
        _ => TFJob::api_version(&()),
    };
    ObjectReference {
        api_version: Some(api_version.into_owned()),
        kind: Some(kind.into()),
        name: Some(name),
        namespace: Some(namespace.to_string()),
        ..Default::default()
    }
}

/// The Event kube publishes for `event` on a job in `namespace`.
fn to_event(event: JobEvent, namespace: &str) -> Event {
    Event {
        type_: match event.kind {
            EventKind::Normal => EventType::Normal,
            EventKind::Warning => EventType::Warning,
        },
        action: event.reason.clone(),
        reason: event.reason,
        note: Some(fit_note(event.message)),
        secondary: event
            .related
            .map(|(kind, name)| related(kind, name, namespace)),
    }
}

/// Publishes `events` on `job`, all at once.
pub async fn publish(recorder: &Recorder, job: &TFJob, events: Vec<JobEvent>) {
    if events.is_empty() {
        return;
    }
    let reference = job.object_ref(&());
    let ns = job.namespace().unwrap_or_default();
    let events: Vec<Event> = events.into_iter().map(|e| to_event(e, &ns)).collect();
    let results = join_all(events.iter().map(|ev| recorder.publish(ev, &reference))).await;
    for (ev, result) in events.iter().zip(results) {
        match result {
            Ok(()) => {}
            Err(err) if is_namespace_terminating(&err) => {
                debug!(reason = %ev.reason, "namespace is terminating; event dropped");
            }
            Err(err) if is_refused_write(&err) => {
                debug!(reason = %ev.reason, "not the leader; event dropped");
            }
            Err(err) => warn!(error = %err, reason = %ev.reason, "could not publish event"),
        }
    }
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

    #[test]
    fn related_objects_carry_their_kinds_api_version() {
        let event = |kind| JobEvent {
            kind: EventKind::Normal,
            reason: "R".into(),
            message: "m".into(),
            related: Some((kind, "x".into())),
        };
        let version = |kind| {
            to_event(event(kind), "ns")
                .secondary
                .and_then(|r| r.api_version)
        };
        assert_eq!(version("Pod").as_deref(), Some("v1"));
        assert_eq!(version("Service").as_deref(), Some("v1"));
        assert_eq!(version("TFJob").as_deref(), Some("kubeflow.org/v1"));
    }
}

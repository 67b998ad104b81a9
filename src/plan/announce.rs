//! What the controller says about the changes it sent: the events upstream publishes for them
//! (`SuccessfulCreatePod`, `FailedDeleteService`, ...), from the applier's report of what became
//! of each change, filtered by what the caller wants announced.
//!
//! Changes that went through are announced together: one event per verb and kind and pass
//! (`Created pods: j-ps-0, j-worker-0, j-worker-1`), with upstream's reason, and upstream's very
//! words when there is one object. A replica's pod and its Service share a name, and are mostly
//! created (and deleted) in the same pass: then one event says both, with the pod's reason
//! (`Created pods and their services: j-ps-0, j-worker-0`). Every failure keeps an event of its
//! own: each says what failed and why.

use super::{EventKind, JobEvent};

/// What was done to a child (or to the job itself).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    /// Created.
    Create,
    /// Deleted (gracefully or forced).
    Delete,
    /// Made the job its controller.
    Adopt,
    /// Changed its spec (a PodGroup's).
    Update,
}

/// What became of one change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// The API server made it.
    Done,
    /// Nothing to do: done already (AlreadyExists, NotFound) or overtaken (the object was
    /// replaced or claimed meanwhile); the next pass sees which.
    Settled,
    /// Not sent or refused quietly: the namespace is being deleted, with everything in it.
    NamespaceTerminating,
    /// Not sent: this replica is not the leader (any more).
    NotSent,
    /// Refused, with the API server's (or the client's) message.
    Failed(String),
}

/// The applier's report on one change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// What was asked.
    pub verb: Verb,
    /// The API kind of the object (`Pod`, `Service`, `TFJob`).
    pub kind: &'static str,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// What became of it.
    pub effect: Effect,
}

/// Which events of the applied changes are published.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Announce {
    /// Every event: creates, deletes and adoptions (`SuccessfulCreatePod`, ...) and failures.
    Everything,
    /// Failures only. A deleted job's cleanup: Normal events about a job that is going away
    /// would cost a request per child and tell nobody anything.
    FailuresOnly,
}

/// The most names one event about several objects lists; the others are counted.
pub const NAMES_PER_EVENT: usize = 10;

/// The events to publish for `applied`: one per verb and kind of the changes done (in the order
/// of their first), then one per failure (in order).
pub fn events(applied: &[Applied], announce: Announce) -> Vec<JobEvent> {
    let mut together: Vec<Vec<&Applied>> = Vec::new();
    if announce == Announce::Everything {
        for a in applied.iter().filter(|a| a.effect == Effect::Done) {
            match together
                .iter_mut()
                .find(|g| g[0].verb == a.verb && g[0].kind == a.kind)
            {
                Some(group) => group.push(a),
                None => together.push(vec![a]),
            }
        }
    }
    let failures = applied.iter().filter_map(|a| match &a.effect {
        Effect::Failed(error) => Some(failed(a, error)),
        _ => None,
    });
    // A group of services named as a group of pods of the same verb is said by the pods' event.
    let pods_saying: Vec<Option<usize>> = (0..together.len())
        .map(|i| pods_named_as(&together, i))
        .collect();
    let done = together.iter().enumerate().filter_map(|(i, group)| {
        let with_services = pods_saying.contains(&Some(i));
        pods_saying[i]
            .is_none()
            .then(|| done_together(group, with_services))
    });
    done.chain(failures).collect()
}

/// The group of pods with the same verb and the very names of the group of services
/// `together[i]`, if it is one.
fn pods_named_as(together: &[Vec<&Applied>], i: usize) -> Option<usize> {
    let services = &together[i];
    if services[0].kind != "Service" {
        return None;
    }
    together.iter().position(|pods| {
        pods[0].kind == "Pod"
            && pods[0].verb == services[0].verb
            && sorted_names(pods) == sorted_names(services)
    })
}

fn sorted_names<'a>(group: &[&'a Applied]) -> Vec<&'a str> {
    let mut names: Vec<&str> = group.iter().map(|a| a.name.as_str()).collect();
    names.sort_unstable();
    names
}

/// One event for changes of one verb and kind: upstream's for one object, the same reason with
/// the objects' names (at most [`NAMES_PER_EVENT`] of them) for several. `with_services`: the
/// pods' Services of the same names had the same change, and the message says so.
fn done_together(group: &[&Applied], with_services: bool) -> JobEvent {
    let event = done(group[0]);
    let one = group.len() == 1;
    if one && !with_services {
        return event;
    }
    let (_, noun) = names(group[0].kind);
    let objects = match (one, with_services) {
        (true, _) => format!("{noun} and its service"),
        (false, true) => format!("{noun}s and their services"),
        (false, false) => format!("{noun}s"),
    };
    let listed: Vec<&str> = group
        .iter()
        .take(NAMES_PER_EVENT)
        .map(|a| a.name.as_str())
        .collect();
    let listed = listed.join(", ");
    let more = match group.len().saturating_sub(NAMES_PER_EVENT) {
        0 => String::new(),
        n => format!(" and {n} more"),
    };
    let message = match group[0].verb {
        Verb::Create => format!("Created {objects}: {listed}{more}"),
        Verb::Delete => format!("Deleted {objects}: {listed}{more}"),
        Verb::Adopt => {
            format!(
                "Adopted {objects} {listed}{more}, which had the job's labels and no controller"
            )
        }
        Verb::Update => format!("Updated {objects}: {listed}{more}"),
    };
    JobEvent {
        message,
        related: if one { event.related } else { None },
        ..event
    }
}

/// How upstream's events name a kind: the suffix of reasons, and the noun in messages.
fn names(kind: &'static str) -> (&'static str, String) {
    match kind {
        "TFJob" => ("Job", "job".into()),
        other => (other, other.to_lowercase()),
    }
}

fn done(a: &Applied) -> JobEvent {
    let (suffix, noun) = names(a.kind);
    let name = &a.name;
    let (reason, message) = match a.verb {
        Verb::Create => (
            format!("SuccessfulCreate{suffix}"),
            format!("Created {noun}: {name}"),
        ),
        Verb::Delete => (
            format!("SuccessfulDelete{suffix}"),
            format!("Deleted {noun}: {name}"),
        ),
        Verb::Adopt => (
            format!("Adopted{suffix}"),
            format!("Adopted {noun} {name}, which had the job's labels and no controller"),
        ),
        Verb::Update => (
            format!("SuccessfulUpdate{suffix}"),
            format!("Updated {noun}: {name}"),
        ),
    };
    JobEvent {
        kind: EventKind::Normal,
        reason,
        message,
        related: Some((a.kind, name.clone())),
    }
}

/// What was tried, as messages and logs say it: "creating pod ns/j-worker-0",
/// "deleting TFJob ns/j".
pub fn describe(verb: Verb, kind: &str, namespace: &str, name: &str) -> String {
    let doing = match verb {
        Verb::Create => "creating",
        Verb::Delete => "deleting",
        Verb::Adopt => "adopting",
        Verb::Update => "updating",
    };
    let noun = if kind == "TFJob" {
        kind.to_string()
    } else {
        kind.to_lowercase()
    };
    format!("{doing} {noun} {namespace}/{name}")
}

fn failed(a: &Applied, error: &str) -> JobEvent {
    let (suffix, _) = names(a.kind);
    JobEvent {
        kind: EventKind::Warning,
        reason: format!("Failed{:?}{suffix}", a.verb),
        message: format!(
            "Error {}: {error}",
            describe(a.verb, a.kind, &a.namespace, &a.name)
        ),
        related: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(verb: Verb, kind: &'static str, name: &str, effect: Effect) -> Applied {
        Applied {
            verb,
            kind,
            namespace: "ns".into(),
            name: name.into(),
            effect,
        }
    }

    #[test]
    fn every_change_done_is_announced_as_upstream_names_it() {
        let report = [
            applied(Verb::Create, "Pod", "j-worker-0", Effect::Done),
            applied(Verb::Delete, "Service", "j-ps-0", Effect::Done),
            applied(Verb::Adopt, "Pod", "j-ps-0", Effect::Done),
            applied(Verb::Delete, "TFJob", "j", Effect::Done),
        ];
        let said: Vec<(String, String)> = events(&report, Announce::Everything)
            .into_iter()
            .map(|e| (e.reason, e.message))
            .collect();
        let expected = [
            ("SuccessfulCreatePod", "Created pod: j-worker-0"),
            ("SuccessfulDeleteService", "Deleted service: j-ps-0"),
            (
                "AdoptedPod",
                "Adopted pod j-ps-0, which had the job's labels and no controller",
            ),
            ("SuccessfulDeleteJob", "Deleted job: j"),
        ];
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(r, m)| (r.to_string(), m.to_string()))
            .collect();
        assert_eq!(said, expected);
        let first = &events(&report, Announce::Everything)[0];
        assert_eq!(first.related, Some(("Pod", "j-worker-0".to_string())));
    }

    #[test]
    fn changes_of_one_verb_and_kind_are_announced_in_one_event_naming_them() {
        let mut report = vec![
            applied(Verb::Create, "Pod", "j-ps-0", Effect::Done),
            applied(Verb::Create, "Service", "j-ps-0", Effect::Done),
            applied(Verb::Create, "Pod", "j-worker-0", Effect::Done),
            applied(
                Verb::Create,
                "Pod",
                "j-worker-1",
                Effect::Failed("quota".into()),
            ),
            applied(Verb::Create, "Service", "j-evaluator-0", Effect::Done),
            applied(Verb::Delete, "Pod", "j-worker-9", Effect::Done),
        ];
        let said: Vec<(String, String)> = events(&report, Announce::Everything)
            .into_iter()
            .map(|e| (e.reason, e.message))
            .collect();
        let expected = [
            ("SuccessfulCreatePod", "Created pods: j-ps-0, j-worker-0"),
            (
                "SuccessfulCreateService",
                "Created services: j-ps-0, j-evaluator-0",
            ),
            ("SuccessfulDeletePod", "Deleted pod: j-worker-9"),
            ("FailedCreatePod", "Error creating pod ns/j-worker-1: quota"),
        ];
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(r, m)| (r.to_string(), m.to_string()))
            .collect();
        assert_eq!(said, expected);

        // Many: the first names, and a count of the others.
        report = (0..25)
            .map(|i| applied(Verb::Delete, "Pod", &format!("j-worker-{i}"), Effect::Done))
            .collect();
        let said = events(&report, Announce::Everything);
        assert_eq!(said.len(), 1);
        assert_eq!(
            said[0].message,
            "Deleted pods: j-worker-0, j-worker-1, j-worker-2, j-worker-3, j-worker-4, \
             j-worker-5, j-worker-6, j-worker-7, j-worker-8, j-worker-9 and 15 more"
        );
        assert_eq!(said[0].related, None);
    }

    /// What a pass's events say: reason, message, related object's name.
    fn pass(report: &[Applied]) -> Vec<(String, String, Option<String>)> {
        events(report, Announce::Everything)
            .into_iter()
            .map(|e| (e.reason, e.message, e.related.map(|(_, n)| n)))
            .collect()
    }

    fn said(
        reason: &str,
        message: &str,
        related: Option<&str>,
    ) -> (String, String, Option<String>) {
        (reason.into(), message.into(), related.map(String::from))
    }

    fn done_to(verb: Verb, kind: &'static str, name: &str) -> Applied {
        applied(verb, kind, name, Effect::Done)
    }

    #[test]
    fn pods_and_their_services_changed_alike_in_one_pass_are_announced_in_one_event() {
        // Several pods and the services of the very same names: one event, the pod's reason.
        let report = [
            done_to(Verb::Create, "Pod", "j-ps-0"),
            done_to(Verb::Create, "Pod", "j-worker-0"),
            done_to(Verb::Create, "Service", "j-worker-0"),
            done_to(Verb::Create, "Service", "j-ps-0"),
        ];
        let both = "Created pods and their services: j-ps-0, j-worker-0";
        assert_eq!(pass(&report), [said("SuccessfulCreatePod", both, None)]);
        // One of each: the event is about the pod.
        let report = [
            done_to(Verb::Delete, "Pod", "j-worker-1"),
            done_to(Verb::Delete, "Service", "j-worker-1"),
        ];
        let both = "Deleted pod and its service: j-worker-1";
        assert_eq!(
            pass(&report),
            [said("SuccessfulDeletePod", both, Some("j-worker-1"))]
        );
    }

    #[test]
    fn services_not_changed_as_their_pods_keep_their_own_events() {
        // Not the same names, or not the same verb.
        let report = [
            done_to(Verb::Create, "Pod", "j-worker-0"),
            done_to(Verb::Create, "Service", "j-worker-1"),
            done_to(Verb::Delete, "Service", "j-worker-0"),
        ];
        let expected = [
            (
                "SuccessfulCreatePod",
                "Created pod: j-worker-0",
                "j-worker-0",
            ),
            (
                "SuccessfulCreateService",
                "Created service: j-worker-1",
                "j-worker-1",
            ),
            (
                "SuccessfulDeleteService",
                "Deleted service: j-worker-0",
                "j-worker-0",
            ),
        ];
        let expected: Vec<_> = expected
            .iter()
            .map(|(r, m, n)| said(r, m, Some(n)))
            .collect();
        assert_eq!(pass(&report), expected);
        // A service that failed keeps its warning; the pod's event says only the pod.
        let report = [
            done_to(Verb::Create, "Pod", "j-worker-0"),
            applied(
                Verb::Create,
                "Service",
                "j-worker-0",
                Effect::Failed("quota".into()),
            ),
        ];
        let warning = "Error creating service ns/j-worker-0: quota";
        assert_eq!(
            pass(&report),
            [
                said(
                    "SuccessfulCreatePod",
                    "Created pod: j-worker-0",
                    Some("j-worker-0")
                ),
                said("FailedCreateService", warning, None),
            ]
        );
    }

    #[test]
    fn failures_are_warnings_that_say_what_failed_and_are_always_announced() {
        let report = [
            applied(Verb::Create, "Pod", "a", Effect::Done),
            applied(Verb::Create, "Pod", "b", Effect::Failed("quota".into())),
            applied(Verb::Delete, "TFJob", "j", Effect::Failed("gone".into())),
            applied(Verb::Delete, "Pod", "c", Effect::Settled),
            applied(Verb::Create, "Pod", "d", Effect::NamespaceTerminating),
        ];
        let said = events(&report, Announce::FailuresOnly);
        assert_eq!(said.len(), 2, "{said:?}");
        assert_eq!(said[0].kind, EventKind::Warning);
        assert_eq!(said[0].reason, "FailedCreatePod");
        assert_eq!(said[0].message, "Error creating pod ns/b: quota");
        assert_eq!(said[1].reason, "FailedDeleteJob");
        assert_eq!(said[1].message, "Error deleting TFJob ns/j: gone");
        assert_eq!(events(&report, Announce::Everything).len(), 3);
    }
}

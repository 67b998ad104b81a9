//! Stage 5b, waiting: why the job's pods cannot start. While a live pod cannot be scheduled or
//! its container cannot start (an image that cannot be pulled, a crash loop, a missing
//! ConfigMap or Secret), the message of the job's current condition (its newest True one) says
//! so after upstream's words, and a Warning names the pod and the cause the first time the
//! stored message does not show that pod with that cause — so no event repeats while the cause
//! stays, even when its message changes (the scheduler counts nodes in it). The words go when
//! the cause goes.

use kube::ResourceExt;

use super::observed::{phase, replica_and_pod};
use super::pass::Pass;
use super::{EventKind, JobEvent};
use crate::api::{ChildPod, Waiting};

/// What separates upstream's message from the causes.
const WAITING_MARK: &str = " Waiting: ";
/// Pods named in the message at most; the rest are counted.
const MAX_PODS_NAMED: usize = 3;
/// Characters of a scheduler's or kubelet's message kept per pod.
const MAX_CAUSE_CHARS: usize = 300;

/// Sets the waiting causes in the current condition's message, with a Warning per new cause.
pub(super) fn explain(pass: &mut Pass<'_>) {
    let mut waiting: Vec<(&ChildPod, &Waiting)> = pass
        .children
        .live_pods()
        .filter(|p| !matches!(phase(p), "Succeeded" | "Failed"))
        .filter_map(|p| Some((p, p.state.waiting.as_ref()?)))
        .collect();
    waiting.sort_by_key(|(p, _)| p.name_any());
    let causes: Vec<Cause> = waiting
        .iter()
        .take(MAX_PODS_NAMED)
        .map(|(p, w)| cause(p, w))
        .collect();
    let Some(at) = pass
        .status
        .conditions
        .iter()
        .rposition(|c| c.status == "True")
    else {
        return;
    };
    let type_ = pass.status.conditions[at].type_.clone();
    let stored = pass
        .stored
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .and_then(|c| c.message.clone())
        .unwrap_or_default();
    for cause in causes.iter().filter(|c| !stored.contains(c.key.as_str())) {
        pass.plan.events.push(JobEvent {
            kind: EventKind::Warning,
            reason: cause.reason.clone(),
            message: cause.line.clone(),
            related: Some(("Pod", cause.pod.clone())),
        });
    }
    // Causes shown on an earlier condition go with it: only the current one says why.
    for condition in &mut pass.status.conditions {
        if let Some(message) = &mut condition.message
            && let Some(cut) = message.find(WAITING_MARK)
        {
            message.truncate(cut);
        }
    }
    let mut lines: Vec<String> = causes.into_iter().map(|c| c.line).collect();
    if waiting.len() > MAX_PODS_NAMED {
        lines.push(format!("and {} more pods", waiting.len() - MAX_PODS_NAMED));
    }
    if !lines.is_empty()
        && let Some(message) = &mut pass.status.conditions[at].message
    {
        message.push_str(&format!("{WAITING_MARK}{}.", lines.join("; ")));
    }
}

/// One pod's cause: which pod, which cause (`key`, what says whether it was announced), and
/// the line the message shows.
struct Cause {
    /// The pod's name.
    pod: String,
    /// `Unschedulable`, or the container's waiting reason: the Warning's reason.
    reason: String,
    /// "Worker 0 (pod j-worker-0) cannot be scheduled", "PS 0 (pod j-ps-0) cannot start
    /// (ImagePullBackOff)".
    key: String,
    /// The key, then the scheduler's or the kubelet's message.
    line: String,
}

fn cause(pod: &ChildPod, waiting: &Waiting) -> Cause {
    let who = replica_and_pod(pod);
    let key = match waiting.reason.as_str() {
        "Unschedulable" => format!("{who} cannot be scheduled"),
        reason => format!("{who} cannot start ({reason})"),
    };
    let message: String = waiting.message.chars().take(MAX_CAUSE_CHARS).collect();
    let line = format!("{key}: {}", message.trim_end_matches('.'));
    Cause {
        pod: pod.name_any(),
        reason: waiting.reason.clone(),
        key,
        line,
    }
}

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

/// Why a gang waits: its PodGroup not admitted yet (Volcano), or not placeable together.
pub(super) struct GangWait(Cause);

impl GangWait {
    /// The scheduler has not admitted PodGroup `group` of `min_member` pods; `held`: pods are
    /// held back until it does; `reason`: the scheduler's words, when it gave any.
    pub(super) fn not_admitted(
        group: &str,
        min_member: i32,
        held: bool,
        reason: Option<String>,
    ) -> Self {
        let key = format!(
            "the gang (PodGroup {group}, {min_member} pods) is not admitted by the scheduler yet"
        );
        let then = if held {
            "its pods are created once it is"
        } else {
            "it is admitted once its resources are free"
        };
        let line = match reason {
            Some(reason) => format!("{key}: {}; {then}", clip(&reason)),
            None => format!("{key}; {then}"),
        };
        Self(Cause {
            related: ("PodGroup", group.to_string()),
            reason: "PodGroupNotAdmitted".into(),
            key,
            line,
        })
    }

    /// The scheduler cannot place PodGroup `group`'s pods together, and says why.
    pub(super) fn unschedulable(group: &str, message: &str) -> Self {
        let key = format!("the gang (PodGroup {group}) cannot be scheduled together");
        Self(Cause {
            related: ("PodGroup", group.to_string()),
            reason: "GangUnschedulable".into(),
            line: format!("{key}: {}", clip(message)),
            key,
        })
    }
}

/// At most [`MAX_CAUSE_CHARS`] of a scheduler's or kubelet's message, without its final period.
fn clip(message: &str) -> String {
    let kept: String = message.chars().take(MAX_CAUSE_CHARS).collect();
    kept.trim_end_matches('.').to_string()
}

/// Sets the waiting causes in the current condition's message, with a Warning per new cause:
/// the gang's first, if it waits, then the pods'. Returns whether it announced a new cause:
/// that status is then written at once, since the stored message is what keeps the Warning
/// from being said again.
pub(super) fn explain(pass: &mut Pass<'_>, gang: Option<GangWait>) -> bool {
    let mut waiting: Vec<(&ChildPod, &Waiting)> = pass
        .children
        .live_pods()
        .filter(|p| !matches!(phase(p), "Succeeded" | "Failed"))
        .filter_map(|p| Some((p, p.state.waiting.as_ref()?)))
        .collect();
    waiting.sort_by_key(|(p, _)| p.name_any());
    let causes: Vec<Cause> = gang
        .map(|g| g.0)
        .into_iter()
        .chain(
            waiting
                .iter()
                .take(MAX_PODS_NAMED)
                .map(|(p, w)| cause(p, w)),
        )
        .collect();
    let Some(at) = pass
        .status
        .conditions
        .iter()
        .rposition(|c| c.status == "True")
    else {
        return false;
    };
    let type_ = pass.status.conditions[at].type_.clone();
    let stored = pass
        .stored
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .and_then(|c| c.message.clone())
        .unwrap_or_default();
    let mut announced = false;
    for cause in causes.iter().filter(|c| !stored.contains(c.key.as_str())) {
        announced = true;
        pass.plan.events.push(JobEvent {
            kind: EventKind::Warning,
            reason: cause.reason.clone(),
            message: cause.line.clone(),
            related: Some((cause.related.0, cause.related.1.clone())),
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
    announced
}

/// One cause: what it is about, which cause (`key`, what says whether it was announced), and
/// the line the message shows.
struct Cause {
    /// The kind and name of what it is about: the pod, or the gang's PodGroup.
    related: (&'static str, String),
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
    let line = format!("{key}: {}", clip(&waiting.message));
    Cause {
        related: ("Pod", pod.name_any()),
        reason: waiting.reason.clone(),
        key,
        line,
    }
}

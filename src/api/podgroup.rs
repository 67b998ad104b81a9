//! Gang scheduling's PodGroups, as the two schedulers Kubeflow supports define them: Volcano's
//! (`scheduling.volcano.sh/v1beta1`) and the scheduler-plugins Coscheduling plugin's
//! (`scheduling.x-k8s.io/v1alpha1`). Plain data: the spec the operator wants, what it keeps of
//! an observed PodGroup, and the object it sends. No I/O.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::core::ObjectMeta;
use serde_json::{Value, json};

use super::child::ControllerRef;

/// Volcano's scheduler name, and the flag value that selects its PodGroups (any case).
pub const VOLCANO: &str = "volcano";
/// The pod annotation naming a pod's Volcano PodGroup.
pub const VOLCANO_GROUP_ANNOTATION: &str = "scheduling.k8s.io/group-name";
/// The pod annotation naming a pod's Volcano task (the replica type, lower case).
pub const VOLCANO_TASK_ANNOTATION: &str = "volcano.sh/task-spec";
/// The pod label naming a pod's scheduler-plugins PodGroup.
pub const COSCHEDULING_GROUP_LABEL: &str = "scheduling.x-k8s.io/pod-group";
/// The queue a Volcano PodGroup gets when the job names none.
pub const VOLCANO_DEFAULT_QUEUE: &str = "default";

/// Which gang scheduler the operator makes PodGroups for (`--gang-scheduler-name`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GangScheduler {
    /// Volcano: pods get `schedulerName: volcano`.
    Volcano,
    /// scheduler-plugins' Coscheduling: pods get this scheduler name (the profile that runs
    /// Coscheduling, e.g. `scheduler-plugins-scheduler`).
    Coscheduling(String),
}

impl GangScheduler {
    /// The scheduler for a `--gang-scheduler-name` value, as upstream reads it: `volcano` in any
    /// case is Volcano, any other non-empty name a scheduler-plugins profile; empty is none.
    pub fn from_flag(name: &str) -> Option<Self> {
        let name = name.trim();
        if name.is_empty() {
            None
        } else if name.eq_ignore_ascii_case(VOLCANO) {
            Some(Self::Volcano)
        } else {
            Some(Self::Coscheduling(name.to_string()))
        }
    }

    /// The `schedulerName` the job's pods get (unless their template names one).
    pub fn scheduler_name(&self) -> &str {
        match self {
            Self::Volcano => VOLCANO,
            Self::Coscheduling(name) => name,
        }
    }

    /// The PodGroup API this scheduler reads.
    pub fn api_resource(&self) -> ApiResource {
        let gvk = match self {
            Self::Volcano => GroupVersionKind::gvk("scheduling.volcano.sh", "v1beta1", "PodGroup"),
            Self::Coscheduling(_) => {
                GroupVersionKind::gvk("scheduling.x-k8s.io", "v1alpha1", "PodGroup")
            }
        };
        ApiResource::from_gvk_with_plural(&gvk, "podgroups")
    }

    /// Whether pods wait for the PodGroup to be admitted before they are created (Volcano's
    /// `Inqueue`); Coscheduling holds pods at its Permit stage instead.
    pub fn admits_before_pods(&self) -> bool {
        matches!(self, Self::Volcano)
    }
}

/// The spec of a PodGroup, the fields either scheduler reads.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PodGroupSpec {
    /// Pods that must be placeable together before any is bound.
    pub min_member: i32,
    /// Volcano's queue.
    pub queue: Option<String>,
    /// Volcano's priority class of the group.
    pub priority_class_name: Option<String>,
    /// Resources the whole gang needs (Volcano admits the group only when they are free).
    pub min_resources: BTreeMap<String, Quantity>,
    /// Coscheduling: seconds a gang may wait at Permit before it is rejected and retried.
    pub schedule_timeout_seconds: Option<i32>,
}

impl PodGroupSpec {
    /// The spec as `scheduler`'s PodGroup writes it (each keeps only the fields it reads).
    pub fn to_json(&self, scheduler: &GangScheduler) -> Value {
        let mut spec = serde_json::Map::new();
        spec.insert("minMember".into(), json!(self.min_member));
        if !self.min_resources.is_empty() {
            spec.insert("minResources".into(), json!(self.min_resources));
        }
        match scheduler {
            GangScheduler::Volcano => {
                if let Some(queue) = &self.queue {
                    spec.insert("queue".into(), json!(queue));
                }
                if let Some(class) = &self.priority_class_name {
                    spec.insert("priorityClassName".into(), json!(class));
                }
            }
            GangScheduler::Coscheduling(_) => {
                if let Some(timeout) = self.schedule_timeout_seconds {
                    spec.insert("scheduleTimeoutSeconds".into(), json!(timeout));
                }
            }
        }
        Value::Object(spec)
    }

    /// The spec a PodGroup's JSON holds, read back for `scheduler`.
    pub fn from_json(spec: &Value, scheduler: &GangScheduler) -> Self {
        let text = |key: &str| spec.get(key).and_then(Value::as_str).map(String::from);
        let number = |key: &str| {
            spec.get(key)
                .and_then(Value::as_i64)
                .and_then(|n| i32::try_from(n).ok())
        };
        let min_resources = spec
            .get("minResources")
            .and_then(|r| serde_json::from_value(r.clone()).ok())
            .unwrap_or_default();
        let volcano = matches!(scheduler, GangScheduler::Volcano);
        Self {
            min_member: number("minMember").unwrap_or_default(),
            queue: text("queue").filter(|_| volcano),
            priority_class_name: text("priorityClassName").filter(|_| volcano),
            min_resources,
            schedule_timeout_seconds: number("scheduleTimeoutSeconds").filter(|_| !volcano),
        }
    }
}

/// A PodGroup as the operator keeps it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObservedPodGroup {
    /// Its name (the job's).
    pub name: String,
    /// Its UID.
    pub uid: Option<String>,
    /// Its controller, if any.
    pub controller: Option<ControllerRef>,
    /// Whether it is being deleted.
    pub deleting: bool,
    /// Its spec.
    pub spec: PodGroupSpec,
    /// `status.phase`: Pending, Inqueue, Running, Unknown (Volcano); Pending, Scheduling,
    /// Scheduled, Running, Finished, Failed (Coscheduling); empty before the scheduler saw it.
    pub phase: String,
    /// The scheduler's reason the gang cannot be placed: the message of its newest condition
    /// when that is `Unschedulable` (Volcano).
    pub unschedulable: Option<String>,
}

impl ObservedPodGroup {
    /// What the operator keeps of `obj`, a PodGroup of `scheduler`.
    pub fn of(obj: &DynamicObject, scheduler: &GangScheduler) -> Self {
        let meta = &obj.metadata;
        let status = obj.data.get("status");
        let newest = status
            .and_then(|s| s.get("conditions"))
            .and_then(Value::as_array)
            .and_then(|c| newest_condition(c));
        let unschedulable = newest
            .filter(|c| c.get("type").and_then(Value::as_str) == Some("Unschedulable"))
            .filter(|c| c.get("status").and_then(Value::as_str) == Some("True"))
            .and_then(|c| c.get("message").and_then(Value::as_str))
            .map(String::from);
        Self {
            name: meta.name.clone().unwrap_or_default(),
            uid: meta.uid.clone(),
            controller: ControllerRef::among(meta.owner_references.as_deref().unwrap_or_default()),
            deleting: meta.deletion_timestamp.is_some(),
            spec: PodGroupSpec::from_json(obj.data.get("spec").unwrap_or(&Value::Null), scheduler),
            phase: status
                .and_then(|s| s.get("phase"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            unschedulable,
        }
    }

    /// Whether Volcano has admitted the group: its pods may be created.
    pub fn is_admitted(&self) -> bool {
        !matches!(self.phase.as_str(), "" | "Pending")
    }
}

/// The newest of a PodGroup's conditions (by `lastTransitionTime`, the later in the list on a
/// tie): Volcano keeps an old `Unschedulable` beside a newer `Scheduled`.
fn newest_condition(conditions: &[Value]) -> Option<&Value> {
    // RFC 3339 times in UTC order as strings; `max_by_key` keeps the last of equals.
    conditions.iter().max_by_key(|c| {
        c.get("lastTransitionTime")
            .and_then(Value::as_str)
            .unwrap_or_default()
    })
}

/// The PodGroup object to create: `metadata` (name, namespace, owner, annotations) and `spec`.
pub fn pod_group_object(
    scheduler: &GangScheduler,
    metadata: ObjectMeta,
    spec: &PodGroupSpec,
) -> DynamicObject {
    let mut obj = DynamicObject::new("", &scheduler.api_resource());
    obj.metadata = metadata;
    obj.data = json!({ "spec": spec.to_json(scheduler) });
    obj
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_selects_the_scheduler_as_upstream_reads_it() {
        assert_eq!(
            GangScheduler::from_flag("Volcano"),
            Some(GangScheduler::Volcano)
        );
        assert_eq!(
            GangScheduler::from_flag("scheduler-plugins-scheduler"),
            Some(GangScheduler::Coscheduling(
                "scheduler-plugins-scheduler".into()
            ))
        );
        assert_eq!(GangScheduler::from_flag(" "), None);
    }

    #[test]
    fn each_scheduler_keeps_only_the_fields_it_reads() {
        let spec = PodGroupSpec {
            min_member: 4,
            queue: Some("research".into()),
            priority_class_name: Some("high".into()),
            min_resources: [("cpu".to_string(), Quantity("4".into()))].into(),
            schedule_timeout_seconds: Some(60),
        };
        let volcano = spec.to_json(&GangScheduler::Volcano);
        assert_eq!(
            volcano,
            json!({"minMember": 4, "minResources": {"cpu": "4"}, "queue": "research", "priorityClassName": "high"})
        );
        let cosched = GangScheduler::Coscheduling("sp".into());
        assert_eq!(
            spec.to_json(&cosched),
            json!({"minMember": 4, "minResources": {"cpu": "4"}, "scheduleTimeoutSeconds": 60})
        );
        let back = PodGroupSpec::from_json(&volcano, &GangScheduler::Volcano);
        assert_eq!(back.queue.as_deref(), Some("research"));
        assert_eq!(back.schedule_timeout_seconds, None);
    }

    #[test]
    fn the_newest_condition_says_whether_the_gang_is_unschedulable() {
        let group = |conditions: Value, phase: &str| {
            let mut obj = DynamicObject::new("j", &GangScheduler::Volcano.api_resource());
            obj.data = json!({"spec": {"minMember": 4}, "status": {"phase": phase, "conditions": conditions}});
            ObservedPodGroup::of(&obj, &GangScheduler::Volcano)
        };
        let waiting = group(
            json!([{"type": "Unschedulable", "status": "True", "message": "2/4 tasks in gang unschedulable", "lastTransitionTime": "2026-12-06T10:00:00Z"}]),
            "Inqueue",
        );
        assert_eq!(
            waiting.unschedulable.as_deref(),
            Some("2/4 tasks in gang unschedulable")
        );
        assert!(waiting.is_admitted());
        let placed = group(
            json!([
                {"type": "Unschedulable", "status": "True", "message": "old", "lastTransitionTime": "2026-12-06T10:00:00Z"},
                {"type": "Scheduled", "status": "True", "lastTransitionTime": "2026-12-06T10:00:05Z"}
            ]),
            "Running",
        );
        assert_eq!(placed.unschedulable, None);
        let same_second = group(
            json!([
                {"type": "Scheduled", "status": "True", "lastTransitionTime": "2026-12-06T10:00:05Z"},
                {"type": "Unschedulable", "status": "True", "message": "later in the list", "lastTransitionTime": "2026-12-06T10:00:05Z"}
            ]),
            "Inqueue",
        );
        assert_eq!(
            same_second.unschedulable.as_deref(),
            Some("later in the list")
        );
        assert!(!group(json!([]), "Pending").is_admitted());
        assert!(!group(json!([]), "").is_admitted());
    }
}

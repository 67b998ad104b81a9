//! Defaulting and normalisation: the view of a TFJob spec that the planner works on.
//!
//! Nothing here is written back to the API server; like upstream, defaults are applied in memory
//! on every reconcile, so the stored spec keeps exactly what the user wrote.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ContainerPort, PodTemplateSpec};
use thiserror::Error;

use super::replica_type::ReplicaType;
use super::types::{CleanPodPolicy, RestartPolicy, RunPolicy, SuccessPolicy, TFJobSpec};

/// Name of the container that runs TensorFlow and receives `TF_CONFIG`.
pub const TF_CONTAINER: &str = "tensorflow";
/// Name of the port used for the TensorFlow cluster.
pub const TF_PORT_NAME: &str = "tfjob-port";
/// Default TensorFlow port.
pub const TF_PORT: i32 = 2222;
/// `managedBy` value meaning "this operator".
pub const MANAGED_BY_US: &str = "kubeflow.org/training-operator";

/// A spec problem the CRD's validation did not (or could not) catch.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SpecError {
    /// A `tfReplicaSpecs` key is not one of the five replica types.
    #[error(
        "unknown replica type {0:?} in spec.tfReplicaSpecs: use PS, Worker, Chief, Master or Evaluator"
    )]
    UnknownReplicaType(String),
    /// Two keys name the same type in different case.
    #[error(
        "spec.tfReplicaSpecs has both {0:?} and {1:?}, which name the same replica type; keep one"
    )]
    DuplicateReplicaType(String, String),
    /// Both Chief and Master are present.
    #[error("spec.tfReplicaSpecs must not have more than 1 Chief or Master role")]
    ChiefAndMaster,
    /// Negative replica count.
    #[error("spec.tfReplicaSpecs[{0}].replicas must be 0 or more, got {1}")]
    NegativeReplicas(ReplicaType, i32),
    /// More than one Chief or Master pod.
    #[error("spec.tfReplicaSpecs[{0}].replicas must be 0 or 1, got {1}: a job has at most one {0}")]
    TooManyChiefs(ReplicaType, i32),
    /// More than one container named `tensorflow` (every pod create would fail).
    #[error(
        "spec.tfReplicaSpecs[{0}].template.spec.containers has more than one container named tensorflow; keep one"
    )]
    DuplicateTensorflowContainer(ReplicaType),
    /// No replica type that runs the training and decides success.
    #[error(
        "spec.tfReplicaSpecs needs a Worker, Chief or Master: they run the training and decide when the job has succeeded"
    )]
    NoDecidingReplica,
    /// No `tensorflow` container.
    #[error(
        "spec.tfReplicaSpecs[{0}].template.spec.containers must have a container named tensorflow"
    )]
    NoTensorflowContainer(ReplicaType),
    /// A container without an image.
    #[error("spec.tfReplicaSpecs[{0}].template.spec.containers[{1}] has no image")]
    MissingImage(ReplicaType, String),
    /// No replicas at all.
    #[error("spec.tfReplicaSpecs is empty: give at least one replica type")]
    NoReplicaSpecs,
    /// The template as cached cannot be read back (a bug of ours, never of the job's).
    #[error("spec.tfReplicaSpecs[{0}].template cannot be read: {1}")]
    UnreadableTemplate(ReplicaType, String),
}

/// One replica type after defaulting.
#[derive(Clone, Debug, PartialEq)]
pub struct Replica {
    /// Canonical type.
    pub rtype: ReplicaType,
    /// Number of pods (default 1).
    pub replicas: i32,
    /// Restart policy (default Never).
    pub restart_policy: RestartPolicy,
    /// Pod template with the `tfjob-port` defaulted on the tensorflow container.
    pub template: PodTemplateSpec,
}

impl Replica {
    /// The `tfjob-port` of this replica's tensorflow container (2222 unless given).
    pub fn port(&self) -> i32 {
        tf_port(&self.template).unwrap_or(TF_PORT)
    }
}

/// The run policy in force, after merging the legacy top-level fields.
#[derive(Clone, Debug, PartialEq)]
pub struct EffectiveRunPolicy {
    /// Which pods to delete when the job finishes.
    pub clean_pod_policy: CleanPodPolicy,
    /// Seconds after finishing until the TFJob is deleted.
    pub ttl_seconds_after_finished: Option<i32>,
    /// Seconds the job may run before it fails.
    pub active_deadline_seconds: Option<i64>,
    /// Restarts and recreations allowed before the job fails.
    pub backoff_limit: Option<i32>,
    /// Whether the job is suspended.
    pub suspend: bool,
    /// Who manages the job (None = us).
    pub managed_by: Option<String>,
    /// Legacy fields that were ignored because `runPolicy` also sets them (for a Warning event).
    pub overridden_legacy_fields: Vec<&'static str>,
}

impl EffectiveRunPolicy {
    /// Whether another controller (e.g. MultiKueue) manages this job.
    pub fn managed_elsewhere(&self) -> bool {
        self.managed_by
            .as_deref()
            .is_some_and(|m| m != MANAGED_BY_US)
    }
}

/// A TFJob spec after defaulting and normalisation.
#[derive(Clone, Debug, PartialEq)]
pub struct NormalizedSpec {
    /// Replica types present, keyed canonically.
    pub replicas: BTreeMap<ReplicaType, Replica>,
    /// Effective run policy.
    pub run_policy: EffectiveRunPolicy,
    /// Success policy.
    pub success_policy: SuccessPolicy,
    /// Whether dynamic workers are enabled.
    pub dynamic_worker: bool,
}

impl NormalizedSpec {
    /// Whether a Chief or Master replica decides the job.
    pub fn has_chief_or_master(&self) -> bool {
        self.replicas.keys().any(|t| t.is_chief_or_master())
    }

    /// Total replicas over all types (as i64: five types of up to i32::MAX pods cannot
    /// overflow it); TF_CONFIG is only set when this is not 1.
    pub fn total_replicas(&self) -> i64 {
        self.replicas.values().map(|r| i64::from(r.replicas)).sum()
    }
}

/// Normalises replica keys ("Ps" -> PS), applies defaults and merges the legacy run-policy
/// fields. `default_clean_pod_policy` is the operator's default (Running unless configured).
pub fn normalize(
    spec: &TFJobSpec,
    default_clean_pod_policy: CleanPodPolicy,
) -> Result<NormalizedSpec, SpecError> {
    if spec.tf_replica_specs.is_empty() {
        return Err(SpecError::NoReplicaSpecs);
    }
    let mut replicas: BTreeMap<ReplicaType, Replica> = BTreeMap::new();
    let mut keys: BTreeMap<ReplicaType, &str> = BTreeMap::new();
    for (key, rs) in &spec.tf_replica_specs {
        let rtype =
            ReplicaType::parse(key).ok_or_else(|| SpecError::UnknownReplicaType(key.clone()))?;
        if let Some(first) = keys.insert(rtype, key) {
            return Err(SpecError::DuplicateReplicaType(
                first.to_string(),
                key.clone(),
            ));
        }
        let count = rs.replicas.unwrap_or(1);
        if count < 0 {
            return Err(SpecError::NegativeReplicas(rtype, count));
        }
        if rtype.is_chief_or_master() && count > 1 {
            return Err(SpecError::TooManyChiefs(rtype, count));
        }
        let mut template = match &rs.template {
            Some(t) => t
                .spec()
                .map_err(|e| SpecError::UnreadableTemplate(rtype, e.to_string()))?,
            None => PodTemplateSpec::default(),
        };
        validate_containers(rtype, &template)?;
        default_port(&mut template);
        replicas.insert(
            rtype,
            Replica {
                rtype,
                replicas: count,
                restart_policy: rs.restart_policy.unwrap_or_default(),
                template,
            },
        );
    }
    if replicas.contains_key(&ReplicaType::Chief) && replicas.contains_key(&ReplicaType::Master) {
        return Err(SpecError::ChiefAndMaster);
    }
    if !replicas
        .keys()
        .any(|t| t.is_chief_or_master() || *t == ReplicaType::Worker)
    {
        return Err(SpecError::NoDecidingReplica);
    }
    Ok(NormalizedSpec {
        replicas,
        run_policy: effective_run_policy(spec, default_clean_pod_policy),
        success_policy: spec.success_policy.unwrap_or_default(),
        dynamic_worker: spec.enable_dynamic_worker.unwrap_or(false),
    })
}

fn validate_containers(rtype: ReplicaType, template: &PodTemplateSpec) -> Result<(), SpecError> {
    let containers = template
        .spec
        .as_ref()
        .map(|s| s.containers.as_slice())
        .unwrap_or_default();
    match containers.iter().filter(|c| c.name == TF_CONTAINER).count() {
        0 => return Err(SpecError::NoTensorflowContainer(rtype)),
        1 => {}
        _ => return Err(SpecError::DuplicateTensorflowContainer(rtype)),
    }
    if let Some(c) = containers
        .iter()
        .find(|c| c.image.as_deref().unwrap_or_default().is_empty())
    {
        return Err(SpecError::MissingImage(rtype, c.name.clone()));
    }
    Ok(())
}

/// Appends `tfjob-port: 2222` to the tensorflow container (container 0 if none has that name)
/// unless a port of that name exists.
pub fn default_port(template: &mut PodTemplateSpec) {
    let Some(spec) = template.spec.as_mut() else {
        return;
    };
    let idx = spec
        .containers
        .iter()
        .position(|c| c.name == TF_CONTAINER)
        .unwrap_or(0);
    let Some(container) = spec.containers.get_mut(idx) else {
        return;
    };
    let ports = container.ports.get_or_insert_with(Vec::new);
    if !ports
        .iter()
        .any(|p| p.name.as_deref() == Some(TF_PORT_NAME))
    {
        ports.push(ContainerPort {
            name: Some(TF_PORT_NAME.to_string()),
            container_port: TF_PORT,
            ..Default::default()
        });
    }
}

/// The `tfjob-port` containerPort of a template's tensorflow container, if declared.
pub fn tf_port(template: &PodTemplateSpec) -> Option<i32> {
    template
        .spec
        .as_ref()?
        .containers
        .iter()
        .find(|c| c.name == TF_CONTAINER)?
        .ports
        .as_ref()?
        .iter()
        .find(|p| p.name.as_deref() == Some(TF_PORT_NAME))
        .map(|p| p.container_port)
}

/// Merges `spec.runPolicy` with the legacy fields directly under `spec`; runPolicy wins.
pub fn effective_run_policy(
    spec: &TFJobSpec,
    default_clean_pod_policy: CleanPodPolicy,
) -> EffectiveRunPolicy {
    let rp = spec.run_policy.clone().unwrap_or_default();
    let mut overridden = Vec::new();
    fn pick<T: Clone>(
        new: &Option<T>,
        legacy: &Option<T>,
        name: &'static str,
        overridden: &mut Vec<&'static str>,
    ) -> Option<T> {
        if new.is_some() && legacy.is_some() {
            overridden.push(name);
        }
        new.clone().or_else(|| legacy.clone())
    }
    let RunPolicy {
        clean_pod_policy,
        ttl_seconds_after_finished,
        active_deadline_seconds,
        backoff_limit,
        suspend,
        managed_by,
        ..
    } = rp;
    EffectiveRunPolicy {
        clean_pod_policy: pick(
            &clean_pod_policy,
            &spec.clean_pod_policy,
            "spec.cleanPodPolicy",
            &mut overridden,
        )
        .unwrap_or(default_clean_pod_policy),
        ttl_seconds_after_finished: pick(
            &ttl_seconds_after_finished,
            &spec.ttl_seconds_after_finished,
            "spec.ttlSecondsAfterFinished",
            &mut overridden,
        ),
        active_deadline_seconds: pick(
            &active_deadline_seconds,
            &spec.active_deadline_seconds,
            "spec.activeDeadlineSeconds",
            &mut overridden,
        ),
        backoff_limit: pick(
            &backoff_limit,
            &spec.backoff_limit,
            "spec.backoffLimit",
            &mut overridden,
        ),
        suspend: suspend.unwrap_or(false),
        managed_by,
        overridden_legacy_fields: overridden,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::types::ReplicaSpec;
    use k8s_openapi::api::core::v1::{Container, PodSpec};

    fn template(containers: &[(&str, &str)]) -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: None,
            spec: Some(PodSpec {
                containers: containers
                    .iter()
                    .map(|(n, i)| Container {
                        name: n.to_string(),
                        image: Some(i.to_string()),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }),
        }
    }

    fn spec(keys: &[&str]) -> TFJobSpec {
        TFJobSpec {
            tf_replica_specs: keys
                .iter()
                .map(|k| {
                    (
                        k.to_string(),
                        Box::new(ReplicaSpec {
                            template: Some(template(&[("tensorflow", "tf:2")]).into()),
                            ..Default::default()
                        }),
                    )
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn defaults_replicas_restart_policy_and_port() {
        let n = normalize(&spec(&["Worker"]), CleanPodPolicy::Running).unwrap();
        let w = &n.replicas[&ReplicaType::Worker];
        assert_eq!(w.replicas, 1);
        assert_eq!(w.restart_policy, RestartPolicy::Never);
        let ports = w.template.spec.as_ref().unwrap().containers[0]
            .ports
            .clone()
            .unwrap();
        assert_eq!(ports.len(), 1);
        assert_eq!(ports[0].name.as_deref(), Some("tfjob-port"));
        assert_eq!(ports[0].container_port, 2222);
        assert_eq!(w.port(), 2222);
        assert_eq!(n.run_policy.clean_pod_policy, CleanPodPolicy::Running);
        assert_eq!(n.success_policy, SuccessPolicy::Default);
        assert!(!n.dynamic_worker);
    }

    #[test]
    fn existing_port_is_kept_and_port_goes_to_the_tensorflow_container() {
        let mut t = template(&[("sidecar", "busybox"), ("tensorflow", "tf")]);
        t.spec.as_mut().unwrap().containers[1].ports = Some(vec![ContainerPort {
            name: Some("tfjob-port".into()),
            container_port: 3333,
            ..Default::default()
        }]);
        default_port(&mut t);
        let c = &t.spec.as_ref().unwrap().containers;
        assert!(c[0].ports.is_none());
        assert_eq!(c[1].ports.as_ref().unwrap().len(), 1);
        assert_eq!(tf_port(&t), Some(3333));

        let mut t = template(&[("sidecar", "busybox"), ("tensorflow", "tf")]);
        default_port(&mut t);
        assert!(t.spec.as_ref().unwrap().containers[0].ports.is_none());
        assert_eq!(tf_port(&t), Some(2222));
    }

    #[test]
    fn keys_are_normalised() {
        let n = normalize(&spec(&["Ps", "WORKER", "chief"]), CleanPodPolicy::Running).unwrap();
        let types: Vec<_> = n.replicas.keys().copied().collect();
        assert_eq!(
            types,
            vec![ReplicaType::Chief, ReplicaType::Ps, ReplicaType::Worker]
        );
        assert!(n.has_chief_or_master());
        assert_eq!(n.total_replicas(), 3);
    }

    #[test]
    fn bad_specs_are_explained() {
        assert_eq!(
            normalize(&spec(&["Foo"]), CleanPodPolicy::Running).unwrap_err(),
            SpecError::UnknownReplicaType("Foo".into())
        );
        assert!(matches!(
            normalize(&spec(&["PS", "ps"]), CleanPodPolicy::Running).unwrap_err(),
            SpecError::DuplicateReplicaType(_, _)
        ));
        assert_eq!(
            normalize(&spec(&["Chief", "Master"]), CleanPodPolicy::Running).unwrap_err(),
            SpecError::ChiefAndMaster
        );
        let mut s = spec(&["Worker"]);
        s.tf_replica_specs.get_mut("Worker").unwrap().template =
            Some(template(&[("main", "tf")]).into());
        assert_eq!(
            normalize(&s, CleanPodPolicy::Running).unwrap_err(),
            SpecError::NoTensorflowContainer(ReplicaType::Worker)
        );
        s.tf_replica_specs.get_mut("Worker").unwrap().template =
            Some(template(&[("tensorflow", "")]).into());
        let err = normalize(&s, CleanPodPolicy::Running).unwrap_err();
        assert_eq!(
            err.to_string(),
            "spec.tfReplicaSpecs[Worker].template.spec.containers[tensorflow] has no image"
        );
        s.tf_replica_specs.get_mut("Worker").unwrap().replicas = Some(-1);
        assert!(matches!(
            normalize(&s, CleanPodPolicy::Running).unwrap_err(),
            SpecError::NegativeReplicas(ReplicaType::Worker, -1)
        ));
    }

    #[test]
    fn legacy_fields_are_honoured_and_run_policy_wins() {
        let mut s = spec(&["Worker"]);
        s.backoff_limit = Some(6);
        s.clean_pod_policy = Some(CleanPodPolicy::All);
        s.active_deadline_seconds = Some(100);
        s.ttl_seconds_after_finished = Some(30);
        let rp = effective_run_policy(&s, CleanPodPolicy::Running);
        assert_eq!(rp.backoff_limit, Some(6));
        assert_eq!(rp.clean_pod_policy, CleanPodPolicy::All);
        assert_eq!(rp.active_deadline_seconds, Some(100));
        assert_eq!(rp.ttl_seconds_after_finished, Some(30));
        assert!(rp.overridden_legacy_fields.is_empty());

        s.run_policy = Some(RunPolicy {
            backoff_limit: Some(2),
            clean_pod_policy: Some(CleanPodPolicy::None),
            ..Default::default()
        });
        let rp = effective_run_policy(&s, CleanPodPolicy::Running);
        assert_eq!(rp.backoff_limit, Some(2));
        assert_eq!(rp.clean_pod_policy, CleanPodPolicy::None);
        assert_eq!(rp.active_deadline_seconds, Some(100));
        assert_eq!(
            rp.overridden_legacy_fields,
            vec!["spec.cleanPodPolicy", "spec.backoffLimit"]
        );
    }

    #[test]
    fn default_clean_pod_policy_is_configurable_and_managed_by() {
        let mut s = spec(&["Worker"]);
        assert_eq!(
            effective_run_policy(&s, CleanPodPolicy::None).clean_pod_policy,
            CleanPodPolicy::None
        );
        assert!(!effective_run_policy(&s, CleanPodPolicy::None).managed_elsewhere());
        s.run_policy = Some(RunPolicy {
            managed_by: Some("kueue.x-k8s.io/multikueue".into()),
            ..Default::default()
        });
        assert!(effective_run_policy(&s, CleanPodPolicy::None).managed_elsewhere());
        s.run_policy.as_mut().unwrap().managed_by = Some(MANAGED_BY_US.into());
        assert!(!effective_run_policy(&s, CleanPodPolicy::None).managed_elsewhere());
    }
}

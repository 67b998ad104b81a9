//! The desired Pod and headless Service of one replica.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{EnvVar, Pod, PodSpec, Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use super::tf_config::ClusterSpec;
use crate::api::defaults::{NormalizedSpec, Replica, TF_CONTAINER};
use crate::api::labels::{JOB_ROLE_LABEL, replica_labels, replica_name};
use crate::api::{ReplicaType, RestartPolicy};

/// Identity of the owning TFJob.
#[derive(Clone, Debug)]
pub struct JobIdentity {
    /// Name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// UID, for ownerReferences.
    pub uid: String,
}

impl JobIdentity {
    /// The controller ownerReference children carry (blocks the owner's foreground deletion).
    pub fn owner_reference(&self) -> OwnerReference {
        OwnerReference {
            api_version: "kubeflow.org/v1".into(),
            kind: "TFJob".into(),
            name: self.name.clone(),
            uid: self.uid.clone(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }
}

/// Whether replica `index` of `rtype` carries `job-role=master`: the Chief/Master, or worker 0
/// when the job has neither.
pub fn is_master_role(spec: &NormalizedSpec, rtype: ReplicaType, index: i32) -> bool {
    if spec.has_chief_or_master() {
        rtype.is_chief_or_master()
    } else {
        rtype == ReplicaType::Worker && index == 0
    }
}

/// The pod restartPolicy for a replica restartPolicy (ExitCode pods are recreated, not restarted).
pub fn pod_restart_policy(policy: RestartPolicy) -> &'static str {
    match policy {
        RestartPolicy::Always => "Always",
        RestartPolicy::OnFailure => "OnFailure",
        RestartPolicy::Never | RestartPolicy::ExitCode => "Never",
    }
}

/// The Pod of replica `index`. `cluster` is the job's cluster when it is distributed (its
/// pods get `TF_CONFIG`), none when it has a single replica.
pub fn desired_pod(
    job: &JobIdentity,
    spec: &NormalizedSpec,
    replica: &Replica,
    index: i32,
    cluster: Option<&ClusterSpec>,
) -> Pod {
    let template = &replica.template;
    let tmeta = template.metadata.clone().unwrap_or_default();
    let mut labels: BTreeMap<String, String> = tmeta.labels.unwrap_or_default();
    labels.extend(replica_labels(&job.name, replica.rtype, index));
    if is_master_role(spec, replica.rtype, index) {
        labels.insert(JOB_ROLE_LABEL.into(), "master".into());
    }
    let mut pod_spec: PodSpec = template.spec.clone().unwrap_or_default();
    pod_spec.restart_policy = Some(pod_restart_policy(replica.restart_policy).into());
    if let Some(cluster) = cluster
        && let Some(c) = pod_spec
            .containers
            .iter_mut()
            .find(|c| c.name == TF_CONTAINER)
    {
        c.env.get_or_insert_with(Vec::new).push(EnvVar {
            name: "TF_CONFIG".into(),
            value: Some(cluster.tf_config(replica.rtype, index)),
            value_from: None,
        });
    }
    Pod {
        metadata: ObjectMeta {
            name: Some(replica_name(&job.name, replica.rtype, index)),
            namespace: Some(job.namespace.clone()),
            labels: Some(labels),
            annotations: tmeta.annotations,
            finalizers: tmeta.finalizers,
            owner_references: Some(vec![job.owner_reference()]),
            ..Default::default()
        },
        spec: Some(pod_spec),
        status: None,
    }
}

/// The headless Service of replica `index`: same name as the pod, one port per port of the
/// tensorflow container.
pub fn desired_service(job: &JobIdentity, replica: &Replica, index: i32) -> Service {
    let labels = replica_labels(&job.name, replica.rtype, index);
    let ports = replica
        .template
        .spec
        .as_ref()
        .and_then(|s| s.containers.iter().find(|c| c.name == TF_CONTAINER))
        .and_then(|c| c.ports.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|p| ServicePort {
            name: p.name,
            port: p.container_port,
            ..Default::default()
        })
        .collect();
    Service {
        metadata: ObjectMeta {
            name: Some(replica_name(&job.name, replica.rtype, index)),
            namespace: Some(job.namespace.clone()),
            labels: Some(labels.clone()),
            owner_references: Some(vec![job.owner_reference()]),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            selector: Some(labels),
            ports: Some(ports),
            ..Default::default()
        }),
        status: None,
    }
}

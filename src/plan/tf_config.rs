//! The `TF_CONFIG` environment variable, byte-for-byte as Kubeflow's training-operator writes it.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::api::ReplicaType;
use crate::api::defaults::NormalizedSpec;
use crate::api::labels::replica_name;

/// Where the job lives, for host names.
#[derive(Clone, Copy, Debug)]
pub struct JobAddress<'a> {
    /// Job name.
    pub name: &'a str,
    /// Job namespace.
    pub namespace: &'a str,
    /// Cluster domain appended after `svc` (e.g. `cluster.local`), if configured.
    pub cluster_domain: Option<&'a str>,
}

#[derive(Serialize)]
struct Task<'a> {
    #[serde(rename = "type")]
    type_: &'a str,
    index: i32,
}

#[derive(Serialize)]
struct SparseCluster<'a> {
    worker: BTreeMap<String, &'a str>,
    ps: Option<&'a [String]>,
}

#[derive(Serialize)]
struct SparseTfConfig<'a> {
    cluster: SparseCluster<'a>,
    task: Task<'a>,
}

/// Whether pods of this job get `TF_CONFIG`: only when the job has more than one replica.
pub fn is_distributed(spec: &NormalizedSpec) -> bool {
    spec.total_replicas() != 1
}

fn host(addr: &JobAddress<'_>, rtype: ReplicaType, index: i32, port: i32) -> String {
    let mut h = format!(
        "{}.{}.svc",
        replica_name(addr.name, rtype, index),
        addr.namespace
    );
    if let Some(domain) = addr.cluster_domain.filter(|d| !d.is_empty()) {
        h.push('.');
        h.push_str(domain);
    }
    format!("{h}:{port}")
}

/// The job's cluster as `TF_CONFIG` lists it, built once for all the pods a pass creates: each
/// `TF_CONFIG` names every replica, so building the host list again for every pod made creating
/// a job's N pods O(N²) work (minutes of CPU at 10,000 workers).
pub struct ClusterSpec {
    form: Form,
}

enum Form {
    /// Every pod lists the whole cluster: its JSON, serialised once.
    Full { cluster_json: String },
    /// `enableDynamicWorker`: each pod lists the PS and only itself among the workers.
    Sparse {
        ps: Option<Vec<String>>,
        workers: Vec<String>,
    },
}

impl ClusterSpec {
    /// The cluster of the job with `spec`, at `addr`.
    pub fn new(spec: &NormalizedSpec, addr: &JobAddress<'_>) -> Self {
        let mut hosts: BTreeMap<&'static str, Vec<String>> = spec
            .replicas
            .values()
            .map(|r| {
                let port = r.port();
                let hosts = (0..r.replicas)
                    .map(|i| host(addr, r.rtype, i, port))
                    .collect();
                (r.rtype.lower(), hosts)
            })
            .collect();
        let form = if spec.dynamic_worker {
            Form::Sparse {
                ps: hosts.remove("ps"),
                workers: hosts.remove("worker").unwrap_or_default(),
            }
        } else {
            Form::Full {
                cluster_json: to_json(&hosts),
            }
        };
        Self { form }
    }

    /// The `TF_CONFIG` value for replica `index` of type `rtype`.
    pub fn tf_config(&self, rtype: ReplicaType, index: i32) -> String {
        let task = Task {
            type_: rtype.lower(),
            index,
        };
        match &self.form {
            Form::Full { cluster_json } => format!(
                r#"{{"cluster":{cluster_json},"task":{},"environment":"cloud"}}"#,
                to_json(&task)
            ),
            Form::Sparse { ps, workers } => to_json(&SparseTfConfig {
                cluster: sparse_cluster(ps.as_deref(), workers, rtype, index),
                task,
            }),
        }
    }
}

/// What a pod of the sparse form lists: a PS itself only, a worker all PS and itself.
fn sparse_cluster<'a>(
    ps: Option<&'a [String]>,
    workers: &'a [String],
    rtype: ReplicaType,
    index: i32,
) -> SparseCluster<'a> {
    let nth = |hosts: &'a [String]| hosts.get(usize::try_from(index).ok()?);
    let mut cluster = SparseCluster {
        worker: BTreeMap::new(),
        ps: Some(&[]),
    };
    match rtype {
        ReplicaType::Ps => {
            if let Some(h) = ps.and_then(nth) {
                cluster.ps = Some(std::slice::from_ref(h));
            }
        }
        ReplicaType::Worker => {
            cluster.ps = ps;
            if let Some(h) = nth(workers) {
                cluster.worker.insert(index.to_string(), h.as_str());
            }
        }
        _ => {}
    }
    cluster
}

fn to_json(value: &impl Serialize) -> String {
    serde_json::to_string(value).expect("TF_CONFIG is plain strings and numbers")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::defaults::normalize;
    use crate::api::{CleanPodPolicy, ReplicaSpec, TFJobSpec};
    use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};

    /// Upstream's test fixture: job `test-tfjob`, `tensorflow` container, default port.
    fn spec(counts: &[(&str, i32)], dynamic: bool) -> NormalizedSpec {
        let s = TFJobSpec {
            enable_dynamic_worker: Some(dynamic),
            tf_replica_specs: counts
                .iter()
                .map(|(k, n)| {
                    (
                        k.to_string(),
                        Box::new(ReplicaSpec {
                            replicas: Some(*n),
                            template: Some(crate::api::PodTemplate::from(PodTemplateSpec {
                                metadata: None,
                                spec: Some(PodSpec {
                                    containers: vec![Container {
                                        name: "tensorflow".into(),
                                        image: Some(
                                            "test-image-for-kubeflow-training-operator:latest"
                                                .into(),
                                        ),
                                        ..Default::default()
                                    }],
                                    ..Default::default()
                                }),
                            })),
                            ..Default::default()
                        }),
                    )
                })
                .collect(),
            ..Default::default()
        };
        normalize(&s, CleanPodPolicy::None).unwrap()
    }

    fn tf_config(s: &NormalizedSpec, a: &JobAddress<'_>, t: ReplicaType, index: i32) -> String {
        ClusterSpec::new(s, a).tf_config(t, index)
    }

    fn addr<'a>(ns: &'a str, domain: Option<&'a str>) -> JobAddress<'a> {
        JobAddress {
            name: "test-tfjob",
            namespace: ns,
            cluster_domain: domain,
        }
    }

    // The expected strings are upstream's "Test ClusterSpec" table (pod_test.go, release-1.9).
    #[test]
    fn matches_upstream_cluster_spec_table() {
        let s = spec(&[("Worker", 1)], false);
        assert!(!is_distributed(&s));
        assert_eq!(
            tf_config(&s, &addr("ns0", None), ReplicaType::Worker, 0),
            r#"{"cluster":{"worker":["test-tfjob-worker-0.ns0.svc:2222"]},"task":{"type":"worker","index":0},"environment":"cloud"}"#
        );
        assert_eq!(
            tf_config(
                &s,
                &addr("ns1", Some("tf.training.com")),
                ReplicaType::Worker,
                0
            ),
            r#"{"cluster":{"worker":["test-tfjob-worker-0.ns1.svc.tf.training.com:2222"]},"task":{"type":"worker","index":0},"environment":"cloud"}"#
        );
        let s = spec(&[("Worker", 1), ("PS", 1)], false);
        assert!(is_distributed(&s));
        assert_eq!(
            tf_config(
                &s,
                &addr("ns2", Some("tf.training.org")),
                ReplicaType::Worker,
                0
            ),
            r#"{"cluster":{"ps":["test-tfjob-ps-0.ns2.svc.tf.training.org:2222"],"worker":["test-tfjob-worker-0.ns2.svc.tf.training.org:2222"]},"task":{"type":"worker","index":0},"environment":"cloud"}"#
        );
        let s = spec(&[("Worker", 1), ("PS", 1), ("Evaluator", 1)], false);
        assert_eq!(
            tf_config(
                &s,
                &addr("ns3", Some("tf.training.io")),
                ReplicaType::Worker,
                0
            ),
            r#"{"cluster":{"evaluator":["test-tfjob-evaluator-0.ns3.svc.tf.training.io:2222"],"ps":["test-tfjob-ps-0.ns3.svc.tf.training.io:2222"],"worker":["test-tfjob-worker-0.ns3.svc.tf.training.io:2222"]},"task":{"type":"worker","index":0},"environment":"cloud"}"#
        );
    }

    #[test]
    fn chief_task_and_several_replicas() {
        let s = spec(&[("Chief", 1), ("Worker", 2), ("PS", 2)], false);
        assert_eq!(
            tf_config(&s, &addr("default", None), ReplicaType::Ps, 1),
            r#"{"cluster":{"chief":["test-tfjob-chief-0.default.svc:2222"],"ps":["test-tfjob-ps-0.default.svc:2222","test-tfjob-ps-1.default.svc:2222"],"worker":["test-tfjob-worker-0.default.svc:2222","test-tfjob-worker-1.default.svc:2222"]},"task":{"type":"ps","index":1},"environment":"cloud"}"#
        );
    }

    // Sparse form (enableDynamicWorker), as upstream's SparseTFConfig serialises.
    #[test]
    fn sparse_form_for_dynamic_workers() {
        let s = spec(&[("Worker", 2), ("PS", 2)], true);
        assert_eq!(
            tf_config(&s, &addr("ns", None), ReplicaType::Worker, 1),
            r#"{"cluster":{"worker":{"1":"test-tfjob-worker-1.ns.svc:2222"},"ps":["test-tfjob-ps-0.ns.svc:2222","test-tfjob-ps-1.ns.svc:2222"]},"task":{"type":"worker","index":1}}"#
        );
        assert_eq!(
            tf_config(&s, &addr("ns", None), ReplicaType::Ps, 0),
            r#"{"cluster":{"worker":{},"ps":["test-tfjob-ps-0.ns.svc:2222"]},"task":{"type":"ps","index":0}}"#
        );
        let s = spec(&[("Worker", 2), ("Chief", 1)], true);
        assert_eq!(
            tf_config(&s, &addr("ns", None), ReplicaType::Worker, 0),
            r#"{"cluster":{"worker":{"0":"test-tfjob-worker-0.ns.svc:2222"},"ps":null},"task":{"type":"worker","index":0}}"#
        );
        assert_eq!(
            tf_config(&s, &addr("ns", None), ReplicaType::Chief, 0),
            r#"{"cluster":{"worker":{},"ps":[]},"task":{"type":"chief","index":0}}"#
        );
    }
}

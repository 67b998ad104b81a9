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
struct TfConfig<'a> {
    cluster: BTreeMap<&'static str, Vec<String>>,
    task: Task<'a>,
    environment: &'static str,
}

#[derive(Serialize)]
struct SparseCluster {
    worker: BTreeMap<String, String>,
    ps: Option<Vec<String>>,
}

#[derive(Serialize)]
struct SparseTfConfig<'a> {
    cluster: SparseCluster,
    task: Task<'a>,
}

/// The host at `index` (none for a negative one).
fn nth(hosts: &[String], index: i32) -> Option<&String> {
    hosts.get(usize::try_from(index).ok()?)
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

fn cluster(spec: &NormalizedSpec, addr: &JobAddress<'_>) -> BTreeMap<&'static str, Vec<String>> {
    spec.replicas
        .values()
        .map(|r| {
            let port = r.port();
            let hosts = (0..r.replicas)
                .map(|i| host(addr, r.rtype, i, port))
                .collect();
            (r.rtype.lower(), hosts)
        })
        .collect()
}

/// The `TF_CONFIG` value for replica `index` of type `rtype`.
pub fn tf_config(
    spec: &NormalizedSpec,
    addr: &JobAddress<'_>,
    rtype: ReplicaType,
    index: i32,
) -> String {
    let task = Task {
        type_: rtype.lower(),
        index,
    };
    let full = cluster(spec, addr);
    let json = if spec.dynamic_worker {
        let mut sparse = SparseCluster {
            worker: BTreeMap::new(),
            ps: Some(Vec::new()),
        };
        match rtype {
            ReplicaType::Ps => {
                if let Some(h) = full.get("ps").and_then(|h| nth(h, index)) {
                    sparse.ps = Some(vec![h.clone()]);
                }
            }
            ReplicaType::Worker => {
                sparse.ps = full.get("ps").cloned();
                if let Some(h) = full.get("worker").and_then(|h| nth(h, index)) {
                    sparse.worker.insert(index.to_string(), h.clone());
                }
            }
            _ => {}
        }
        serde_json::to_string(&SparseTfConfig {
            cluster: sparse,
            task,
        })
    } else {
        serde_json::to_string(&TfConfig {
            cluster: full,
            task,
            environment: "cloud",
        })
    };
    json.expect("TF_CONFIG is plain strings and numbers")
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
                            template: Some(PodTemplateSpec {
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
                            }),
                            ..Default::default()
                        }),
                    )
                })
                .collect(),
            ..Default::default()
        };
        normalize(&s, CleanPodPolicy::None).unwrap()
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

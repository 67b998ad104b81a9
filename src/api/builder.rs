//! A TFJob builder for tests, benchmarks and programs that submit jobs:
//! `tfjob("mnist").ps(1).workers(2).restart(RestartPolicy::ExitCode).build()`.
//!
//! Every replica gets one container named `tensorflow` with [`DEFAULT_IMAGE`]; the run-policy
//! setters fill `spec.runPolicy`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};

use super::template::PodTemplate;
use super::{
    CleanPodPolicy, ReplicaSpec, RestartPolicy, RunPolicy, SuccessPolicy, TFJob, TFJobSpec,
};

/// The image every replica runs unless [`TFJobBuilder::image`] says otherwise.
pub const DEFAULT_IMAGE: &str = "tensorflow/tensorflow:2.15.0";

/// Starts a TFJob named `name` with no replicas yet.
pub fn tfjob(name: &str) -> TFJobBuilder {
    TFJobBuilder {
        job: TFJob::new(name, TFJobSpec::default()),
        last_key: None,
    }
}

/// Builds a [`TFJob`] step by step; see the module docs.
#[derive(Clone, Debug)]
pub struct TFJobBuilder {
    job: TFJob,
    /// The replica key added last: [`TFJobBuilder::restart`] and [`TFJobBuilder::pod_spec`]
    /// apply to it.
    last_key: Option<String>,
}

impl TFJobBuilder {
    /// `replicas` of the replica type spelled `key` exactly as given (e.g. "Ps", "worker").
    pub fn replicas(mut self, key: &str, replicas: i32) -> Self {
        let spec = ReplicaSpec {
            replicas: Some(replicas),
            template: Some(PodTemplate::from(PodTemplateSpec {
                metadata: None,
                spec: Some(PodSpec {
                    containers: vec![Container {
                        name: "tensorflow".into(),
                        image: Some(DEFAULT_IMAGE.into()),
                        ..Container::default()
                    }],
                    ..PodSpec::default()
                }),
            })),
            restart_policy: None,
        };
        self.job
            .spec
            .tf_replica_specs
            .insert(key.to_string(), Box::new(spec));
        self.last_key = Some(key.to_string());
        self
    }

    /// `n` parameter servers (`PS`).
    pub fn ps(self, n: i32) -> Self {
        self.replicas("PS", n)
    }

    /// `n` workers (`Worker`).
    pub fn workers(self, n: i32) -> Self {
        self.replicas("Worker", n)
    }

    /// `n` chiefs (`Chief`).
    pub fn chief(self, n: i32) -> Self {
        self.replicas("Chief", n)
    }

    /// `n` masters (`Master`).
    pub fn master(self, n: i32) -> Self {
        self.replicas("Master", n)
    }

    /// `n` evaluators (`Evaluator`).
    pub fn evaluator(self, n: i32) -> Self {
        self.replicas("Evaluator", n)
    }

    /// The restartPolicy of the replica type added last.
    pub fn restart(mut self, policy: RestartPolicy) -> Self {
        if let Some(spec) = self.last_replica() {
            spec.restart_policy = Some(policy);
        }
        self
    }

    /// Edits the pod spec of the replica type added last (node name, tolerations, ...).
    pub fn pod_spec(mut self, edit: impl FnOnce(&mut PodSpec)) -> Self {
        if let Some(template) = self.last_replica().and_then(|r| r.template.as_mut()) {
            // A template the builder made always reads back.
            let _ = template.edit(|t| {
                if let Some(spec) = t.spec.as_mut() {
                    edit(spec);
                }
            });
        }
        self
    }

    /// The image of every replica's `tensorflow` container.
    pub fn image(mut self, image: &str) -> Self {
        for spec in self.job.spec.tf_replica_specs.values_mut() {
            if let Some(template) = spec.template.as_mut() {
                let _ = template.edit(|t| {
                    let containers = t.spec.iter_mut().flat_map(|s| s.containers.iter_mut());
                    for c in containers {
                        c.image = Some(image.into());
                    }
                });
            }
        }
        self
    }

    /// The namespace.
    pub fn namespace(mut self, namespace: &str) -> Self {
        self.job.metadata.namespace = Some(namespace.into());
        self
    }

    /// The UID (as the API server would set it; for tests that never store the job).
    pub fn uid(mut self, uid: &str) -> Self {
        self.job.metadata.uid = Some(uid.into());
        self
    }

    /// A label on the TFJob.
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.job
            .metadata
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert(key.into(), value.into());
        self
    }

    /// `spec.runPolicy.cleanPodPolicy`.
    pub fn clean_pod_policy(self, policy: CleanPodPolicy) -> Self {
        self.run_policy(|r| r.clean_pod_policy = Some(policy))
    }

    /// `spec.runPolicy.backoffLimit`.
    pub fn backoff_limit(self, limit: i32) -> Self {
        self.run_policy(|r| r.backoff_limit = Some(limit))
    }

    /// `spec.runPolicy.activeDeadlineSeconds`.
    pub fn active_deadline_seconds(self, secs: i64) -> Self {
        self.run_policy(|r| r.active_deadline_seconds = Some(secs))
    }

    /// `spec.runPolicy.ttlSecondsAfterFinished`.
    pub fn ttl_seconds_after_finished(self, secs: i32) -> Self {
        self.run_policy(|r| r.ttl_seconds_after_finished = Some(secs))
    }

    /// `spec.runPolicy.suspend`.
    pub fn suspend(self, suspend: bool) -> Self {
        self.run_policy(|r| r.suspend = Some(suspend))
    }

    /// `spec.runPolicy.managedBy`.
    pub fn managed_by(self, controller: &str) -> Self {
        self.run_policy(|r| r.managed_by = Some(controller.into()))
    }

    /// `spec.successPolicy`.
    pub fn success_policy(mut self, policy: SuccessPolicy) -> Self {
        self.job.spec.success_policy = Some(policy);
        self
    }

    /// `spec.enableDynamicWorker`.
    pub fn dynamic_worker(mut self, enabled: bool) -> Self {
        self.job.spec.enable_dynamic_worker = Some(enabled);
        self
    }

    /// Edits the spec directly, for fields without a setter (e.g. the legacy top-level ones).
    pub fn spec(mut self, edit: impl FnOnce(&mut TFJobSpec)) -> Self {
        edit(&mut self.job.spec);
        self
    }

    /// The finished TFJob.
    pub fn build(self) -> TFJob {
        self.job
    }

    fn run_policy(mut self, edit: impl FnOnce(&mut RunPolicy)) -> Self {
        edit(
            self.job
                .spec
                .run_policy
                .get_or_insert_with(RunPolicy::default),
        );
        self
    }

    fn last_replica(&mut self) -> Option<&mut ReplicaSpec> {
        let key = self.last_key.as_ref()?;
        self.job
            .spec
            .tf_replica_specs
            .get_mut(key)
            .map(AsMut::as_mut)
    }
}

impl From<TFJobBuilder> for TFJob {
    fn from(builder: TFJobBuilder) -> Self {
        builder.build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_restart_and_run_policy_land_where_the_api_expects_them() {
        let job = tfjob("mnist")
            .ps(1)
            .workers(2)
            .restart(RestartPolicy::ExitCode)
            .backoff_limit(3)
            .build();
        let value = serde_json::to_value(&job).expect("serializes");
        assert_eq!(value["metadata"]["name"], "mnist");
        assert_eq!(value["spec"]["tfReplicaSpecs"]["PS"]["replicas"], 1);
        assert!(value["spec"]["tfReplicaSpecs"]["PS"]["restartPolicy"].is_null());
        assert_eq!(
            value["spec"]["tfReplicaSpecs"]["Worker"]["restartPolicy"],
            "ExitCode"
        );
        assert_eq!(
            value["spec"]["tfReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]["name"],
            "tensorflow"
        );
        assert_eq!(value["spec"]["runPolicy"]["backoffLimit"], 3);
    }
}

//! Prometheus metrics: upstream's `training_operator_jobs_*_total` counters (so existing
//! dashboards keep working) and the reconciler's own health.

use std::sync::atomic::{AtomicBool, Ordering};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of the job counters, as upstream.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabels {
    /// Namespace of the job.
    pub job_namespace: String,
    /// Always `tensorflow`.
    pub framework: String,
}

/// Label of reconcile errors.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// Error category (api, conflict, finalizer, ...).
    pub category: String,
}

/// All metrics of the operator.
pub struct Metrics {
    registry: Registry,
    /// Jobs seen for the first time.
    pub jobs_created: Family<JobLabels, Counter>,
    /// Jobs deleted by their TTL.
    pub jobs_deleted: Family<JobLabels, Counter>,
    /// Jobs that succeeded.
    pub jobs_successful: Family<JobLabels, Counter>,
    /// Jobs that failed.
    pub jobs_failed: Family<JobLabels, Counter>,
    /// Restarts of failed replicas.
    pub jobs_restarted: Family<JobLabels, Counter>,
    /// Reconciles run.
    pub reconciles: Counter,
    /// Reconciles that failed, by category.
    pub reconcile_errors: Family<ErrorLabels, Counter>,
    /// Reconcile duration in seconds.
    pub reconcile_duration: Histogram,
    ready: AtomicBool,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let m = Self {
            jobs_created: Family::default(),
            jobs_deleted: Family::default(),
            jobs_successful: Family::default(),
            jobs_failed: Family::default(),
            jobs_restarted: Family::default(),
            reconciles: Counter::default(),
            reconcile_errors: Family::default(),
            reconcile_duration: Histogram::new(exponential_buckets(0.001, 2.0, 14)),
            ready: AtomicBool::new(false),
            registry: Registry::default(),
        };
        let op = registry.sub_registry_with_prefix("training_operator");
        op.register("jobs_created", "TFJobs created", m.jobs_created.clone());
        op.register(
            "jobs_deleted",
            "TFJobs deleted by their TTL",
            m.jobs_deleted.clone(),
        );
        op.register(
            "jobs_successful",
            "TFJobs that succeeded",
            m.jobs_successful.clone(),
        );
        op.register("jobs_failed", "TFJobs that failed", m.jobs_failed.clone());
        op.register(
            "jobs_restarted",
            "Replica restarts after failures",
            m.jobs_restarted.clone(),
        );
        let own = registry.sub_registry_with_prefix("tfjob_operator");
        own.register("reconciles", "Reconciles run", m.reconciles.clone());
        own.register(
            "reconcile_errors",
            "Reconciles that failed, by category",
            m.reconcile_errors.clone(),
        );
        own.register(
            "reconcile_duration_seconds",
            "Reconcile duration",
            m.reconcile_duration.clone(),
        );
        Self { registry, ..m }
    }

    /// Counts the job-level outcome of a published event reason.
    pub fn count_event(&self, namespace: &str, reason: &str) {
        let labels = JobLabels {
            job_namespace: namespace.to_string(),
            framework: "tensorflow".into(),
        };
        let family = match reason {
            "TFJobSucceeded" => &self.jobs_successful,
            "TFJobFailed" | "TFJobInvalidSpec" => &self.jobs_failed,
            "TFJobRestarting" => &self.jobs_restarted,
            "SuccessfulDeleteJob" => &self.jobs_deleted,
            "TFJobCreated" => &self.jobs_created,
            _ => return,
        };
        family.get_or_create(&labels).inc();
    }

    /// Marks the operator ready (caches synced).
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Relaxed);
    }

    /// Whether the operator is ready.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// The metrics in Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_metric_names_and_labels() {
        let m = Metrics::new();
        m.count_event("ns1", "TFJobSucceeded");
        m.count_event("ns1", "TFJobRestarting");
        m.count_event("ns1", "SuccessfulCreatePod");
        let text = m.encode();
        assert!(text.contains(
            "training_operator_jobs_successful_total{job_namespace=\"ns1\",framework=\"tensorflow\"} 1"
        ), "{text}");
        assert!(text.contains("training_operator_jobs_restarted_total{job_namespace=\"ns1\",framework=\"tensorflow\"} 1"));
        assert!(!text.contains("SuccessfulCreatePod"));
    }
}

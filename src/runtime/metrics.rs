//! Prometheus metrics: upstream's `training_operator_jobs_*_total` counters (so existing
//! dashboards keep working) and the reconciler's own health.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::plan::Outcome;

/// Records a reconcile's duration when dropped, however the reconcile ended.
pub struct ReconcileTimer<'a> {
    histogram: &'a Histogram,
    in_flight: &'a Gauge,
    started: Instant,
}

impl Drop for ReconcileTimer<'_> {
    fn drop(&mut self) {
        self.in_flight.dec();
        self.histogram.observe(self.started.elapsed().as_secs_f64());
    }
}

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

/// Labels of an API request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// HTTP method (`GET`, `POST`, `PUT`, `PATCH`, `DELETE`).
    pub verb: String,
    /// HTTP status code, or `error` when no response came.
    pub code: String,
}

/// Labels of a watch cache.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabels {
    /// `TFJob`, `Pod` or `Service`.
    pub kind: String,
    /// The watched namespace, `""` for all.
    pub namespace: String,
}

/// Labels of a watch error.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WatchErrorLabels {
    /// `TFJob`, `Pod` or `Service`.
    pub kind: String,
    /// The API server's status code (`410`, `429`, ...), or `connection` when none came.
    pub reason: String,
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
    /// Pods recreated after failures (once per pod, as upstream).
    pub jobs_restarted: Family<JobLabels, Counter>,
    /// Reconciles run.
    pub reconciles: Counter,
    /// Reconciles that failed, by category.
    pub reconcile_errors: Family<ErrorLabels, Counter>,
    /// Reconcile duration in seconds.
    pub reconcile_duration: Histogram,
    /// 1 while this replica holds the leader Lease (always 1 without leader election).
    pub is_leader: Gauge,
    /// API requests by verb (HTTP method) and response code.
    pub api_requests: Family<RequestLabels, Counter>,
    /// Objects in each watch cache, by kind and watched namespace (`""`: all).
    pub cached_objects: Family<CacheLabels, Gauge>,
    /// Reconciles running now.
    pub reconciles_in_flight: Gauge,
    /// Watch errors by kind and reason (each one retried; `/readyz` fails for a while after).
    pub watch_errors: Family<WatchErrorLabels, Counter>,
    /// Controllers whose caches have not synced yet (one per watched namespace).
    unsynced: AtomicUsize,
    /// When the process started; watch errors are kept as milliseconds since then.
    started: Instant,
    /// Milliseconds after `started` of the latest watch error, plus one (0: none yet).
    last_watch_error: AtomicU64,
}

/// How long the caches count as possibly stale after a watch error: a watch that keeps failing
/// (an API server outage) keeps `/readyz` failing, and one that recovered makes it ready again
/// by itself this long after its last error.
pub const STALE_AFTER_WATCH_ERROR: Duration = Duration::from_secs(5);

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
            is_leader: Gauge::default(),
            api_requests: Family::default(),
            cached_objects: Family::default(),
            reconciles_in_flight: Gauge::default(),
            watch_errors: Family::default(),
            unsynced: AtomicUsize::new(1),
            started: Instant::now(),
            last_watch_error: AtomicU64::new(0),
            registry: Registry::default(),
        };
        m.register_upstream(registry.sub_registry_with_prefix("training_operator"));
        m.register_own(registry.sub_registry_with_prefix("tfjob_operator"));
        Self { registry, ..m }
    }

    /// Upstream's job counters, under upstream's names.
    fn register_upstream(&self, op: &mut Registry) {
        op.register("jobs_created", "TFJobs created", self.jobs_created.clone());
        let deleted = self.jobs_deleted.clone();
        op.register("jobs_deleted", "TFJobs deleted by their TTL", deleted);
        let successful = self.jobs_successful.clone();
        op.register("jobs_successful", "TFJobs that succeeded", successful);
        op.register(
            "jobs_failed",
            "TFJobs that failed",
            self.jobs_failed.clone(),
        );
        let restarted = self.jobs_restarted.clone();
        op.register("jobs_restarted", "Pods recreated after failures", restarted);
    }

    /// The operator's own metrics.
    fn register_own(&self, own: &mut Registry) {
        own.register("reconciles", "Reconciles run", self.reconciles.clone());
        let errors = self.reconcile_errors.clone();
        own.register(
            "reconcile_errors",
            "Reconciles that failed, by category",
            errors,
        );
        let duration = self.reconcile_duration.clone();
        own.register("reconcile_duration_seconds", "Reconcile duration", duration);
        let leader = self.is_leader.clone();
        own.register(
            "is_leader",
            "1 while this replica is the leader and acts, 0 on a standby",
            leader,
        );
        let requests = self.api_requests.clone();
        own.register(
            "api_requests",
            "Kubernetes API requests by verb and response code",
            requests,
        );
        let cached = self.cached_objects.clone();
        own.register(
            "cached_objects",
            "Objects in each watch cache, by kind and watched namespace",
            cached,
        );
        let in_flight = self.reconciles_in_flight.clone();
        own.register("reconciles_in_flight", "Reconciles running now", in_flight);
        let watch_errors = self.watch_errors.clone();
        own.register(
            "watch_errors",
            "Watch errors by kind and the API server's status code (each one retried)",
            watch_errors,
        );
    }

    /// Counts what a pass did to a job in namespace `namespace`, as upstream's counters do:
    /// a restarted job counts once per pod recreated.
    pub fn count_outcomes(&self, namespace: &str, outcomes: &[Outcome]) {
        let labels = JobLabels {
            job_namespace: namespace.to_string(),
            framework: "tensorflow".into(),
        };
        for outcome in outcomes {
            let (family, by) = match *outcome {
                Outcome::Created => (&self.jobs_created, 1),
                Outcome::Restarted { pods } => (&self.jobs_restarted, u64::from(pods)),
                Outcome::Succeeded => (&self.jobs_successful, 1),
                Outcome::Failed => (&self.jobs_failed, 1),
                Outcome::TtlDeleted => (&self.jobs_deleted, 1),
            };
            family.get_or_create(&labels).inc_by(by);
        }
    }

    /// Counts a reconcile and, when the returned guard is dropped, records its duration.
    pub fn reconcile_timer(&self) -> ReconcileTimer<'_> {
        self.reconciles.inc();
        self.reconciles_in_flight.inc();
        ReconcileTimer {
            histogram: &self.reconcile_duration,
            in_flight: &self.reconciles_in_flight,
            started: Instant::now(),
        }
    }

    /// Records how many objects the cache of `kind` for `namespace` holds.
    pub fn set_cached(&self, kind: &str, namespace: Option<&str>, objects: usize) {
        let labels = CacheLabels {
            kind: kind.into(),
            namespace: namespace.unwrap_or_default().into(),
        };
        let objects = i64::try_from(objects).unwrap_or(i64::MAX);
        self.cached_objects.get_or_create(&labels).set(objects);
    }

    /// Counts one API request.
    pub fn count_request(&self, verb: String, code: String) {
        self.api_requests
            .get_or_create(&RequestLabels { verb, code })
            .inc();
    }

    /// Records whether this replica is the leader.
    pub fn set_leader(&self, leader: bool) {
        self.is_leader.set(i64::from(leader));
    }

    /// Sets how many controllers (one per watched namespace) must sync before the operator
    /// is ready (1 unless set).
    pub fn expect_controllers(&self, n: usize) {
        self.unsynced.store(n.max(1), Ordering::Relaxed);
    }

    /// Notes that one controller's caches have synced; ready once all have.
    pub fn set_ready(&self) {
        let _ = self
            .unsynced
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    /// Notes that the watch of `kind` failed with `reason` (its cache may be stale until it
    /// has re-listed or resumed).
    pub fn watch_failed(&self, kind: &str, reason: String) {
        let labels = WatchErrorLabels {
            kind: kind.into(),
            reason,
        };
        self.watch_errors.get_or_create(&labels).inc();
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_watch_error
            .store(ms.saturating_add(1), Ordering::Relaxed);
    }

    /// Whether the operator is ready: caches synced, and no watch error in the last
    /// [`STALE_AFTER_WATCH_ERROR`].
    pub fn is_ready(&self) -> bool {
        self.is_ready_at(Instant::now())
    }

    fn is_ready_at(&self, now: Instant) -> bool {
        if self.unsynced.load(Ordering::Relaxed) > 0 {
            return false;
        }
        match self.last_watch_error.load(Ordering::Relaxed) {
            0 => true,
            at => {
                let error = self.started + Duration::from_millis(at - 1);
                now.saturating_duration_since(error) >= STALE_AFTER_WATCH_ERROR
            }
        }
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
    fn upstream_metric_names_and_labels_counted_from_outcomes() {
        let m = Metrics::new();
        m.count_outcomes("ns1", &[Outcome::Created, Outcome::Succeeded]);
        m.count_outcomes("ns1", &[Outcome::Restarted { pods: 2 }]);
        m.count_outcomes("ns1", &[Outcome::Restarted { pods: 1 }]);
        m.count_outcomes("ns2", &[Outcome::Failed, Outcome::TtlDeleted]);
        let text = m.encode();
        let has = |name: &str, ns: &str, value: u64| {
            let line = format!(
                "training_operator_jobs_{name}_total{{job_namespace=\"{ns}\",framework=\"tensorflow\"}} {value}"
            );
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        };
        has("created", "ns1", 1);
        has("successful", "ns1", 1);
        // Once per restarted pod, not once per transition into Restarting.
        has("restarted", "ns1", 3);
        has("failed", "ns2", 1);
        has("deleted", "ns2", 1);
    }

    #[test]
    fn a_watch_error_makes_it_unready_until_the_watches_have_been_quiet() {
        let m = Metrics::new();
        assert!(!m.is_ready(), "not before the caches synced");
        m.expect_controllers(2);
        m.set_ready();
        assert!(!m.is_ready(), "one of two namespaces synced");
        m.set_ready();
        assert!(m.is_ready());
        m.watch_failed("Pod", "410".into());
        let now = Instant::now();
        assert!(!m.is_ready_at(now));
        assert!(
            m.is_ready_at(now + STALE_AFTER_WATCH_ERROR),
            "ready again by itself"
        );
        let text = m.encode();
        let line = r#"tfjob_operator_watch_errors_total{kind="Pod",reason="410"} 1"#;
        assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
    }

    #[test]
    fn the_timer_records_on_drop() {
        let m = Metrics::new();
        drop(m.reconcile_timer());
        let text = m.encode();
        assert!(text.contains("tfjob_operator_reconciles_total 1"), "{text}");
        assert!(
            text.contains("tfjob_operator_reconcile_duration_seconds_count 1"),
            "{text}"
        );
    }
}

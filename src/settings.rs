//! The operator's settings: one `clap` definition (flags, environment variables, defaults) that
//! the binary parses and the library turns into a [`ControllerConfig`]. There is no second copy
//! of a default anywhere: [`ControllerConfig::default`] is these settings with no flags given.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser};

use crate::api::CleanPodPolicy;
use crate::api::podgroup::GangScheduler;
use crate::controller::ControllerConfig;
use crate::plan::PlanConfig;
use crate::runtime::client::{ClientLimits, RateLimit};

/// Settings of `tfjob-operator run`.
#[derive(Args, Clone, Debug)]
pub struct RunSettings {
    /// TFJobs reconciled at the same time (upstream: --controller-threads).
    #[arg(
        long = "controller-threads",
        alias = "concurrency",
        env = "TFJOB_CONCURRENCY",
        default_value_t = 32
    )]
    pub concurrency: u16,
    /// What decides a job's pods and services (shared with `render`).
    #[command(flatten)]
    pub job: JobSettings,
    /// Seconds a pod may stay terminating while its TFJob is deleted before it is
    /// force-deleted (node lost).
    #[arg(long, env = "TFJOB_FORCE_DELETE_AFTER_SECONDS", default_value_t = 300)]
    pub force_delete_after_seconds: u64,
    /// Watch only this namespace; repeat for several (one set of watches each). All
    /// namespaces when not given. The environment variable takes a comma-separated list.
    #[arg(long, env = "KUBEFLOW_NAMESPACE", value_delimiter = ',')]
    pub namespace: Vec<String>,
    /// Address of the /metrics, /healthz and /readyz endpoints (`:8080` is every interface).
    #[arg(
        long = "metrics-bind-address",
        alias = "http-addr",
        env = "TFJOB_HTTP_ADDR",
        default_value = ":8080",
        value_parser = parse_bind_address
    )]
    pub http_addr: SocketAddr,
    /// Address of the /healthz and /readyz endpoints alone, for the kubelet's probes.
    #[arg(
        long,
        env = "TFJOB_HEALTH_PROBE_ADDR",
        default_value = ":8081",
        value_parser = parse_bind_address
    )]
    pub health_probe_bind_address: SocketAddr,
    /// Elect a leader among the replicas on a coordination.k8s.io Lease: only the leader acts,
    /// the others keep warm caches and take over when it goes.
    #[arg(long, env = "TFJOB_LEADER_ELECT")]
    pub leader_elect: bool,
    /// Name of the leader election Lease.
    #[arg(
        long,
        env = "TFJOB_LEADER_ELECTION_ID",
        default_value = "tfjob-operator.kubeflow.org"
    )]
    pub leader_election_id: String,
    /// Namespace of the leader election Lease (default: the pod's namespace, or the
    /// kubeconfig context's).
    #[arg(long, env = "TFJOB_LEADER_ELECTION_NAMESPACE")]
    pub leader_election_namespace: Option<String>,
    /// Client-side limit on API requests per second (a token bucket, as client-go's); 0: none.
    /// Upstream's default of 20 is what makes its operator 3-9x slower at 100-500 jobs.
    #[arg(long, env = "TFJOB_KUBE_API_QPS", default_value_t = 0.0)]
    pub kube_api_qps: f64,
    /// Requests allowed at once by the client-side limit (with --kube-api-qps).
    #[arg(long, env = "TFJOB_KUBE_API_BURST", default_value_t = 30)]
    pub kube_api_burst: u32,
    /// Most API requests in flight at once (watches excluded); more wait for one to be
    /// answered. Each holds its buffers (and, over HTTP/1.1, a connection); 0: no bound.
    #[arg(long, env = "TFJOB_KUBE_API_MAX_IN_FLIGHT", default_value_t = 32)]
    pub kube_api_max_in_flight: usize,
    /// Log lines as plain text or as JSON objects (one per line).
    #[arg(long, env = "TFJOB_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Most pods and services created for one job in one pass (the rest follow as they come
    /// up); bounds the memory a huge job takes.
    #[arg(long, env = "TFJOB_MAX_CREATES_PER_PASS", default_value_t = 100)]
    pub max_creates_per_pass: usize,
    /// Most bytes of pods (template and TF_CONFIG, which names every replica) created for one
    /// job in one pass; a 10,000-worker job's pods are ~330 KB each, so they go ~50 at a time.
    #[arg(long, env = "TFJOB_MAX_CREATE_BYTES_PER_PASS", default_value_t = 16 << 20)]
    pub max_create_bytes_per_pass: usize,
    /// Milliseconds of quiet after a change before a job is reconciled (folds bursts of pod
    /// events into one pass).
    #[arg(long, env = "TFJOB_DEBOUNCE_MS", default_value_t = 100)]
    pub debounce_ms: u64,
    /// Milliseconds a progress-only status change (replica counts, Running) may wait for the
    /// job's other pods to come up, so they are reported in one write (0: write at once).
    #[arg(long, env = "TFJOB_STATUS_BATCH_MS", default_value_t = 1000)]
    pub status_batch_ms: u64,
}

/// The settings that decide which pods and services a TFJob gets: used by `run` and by
/// `render`, so a preview is made with the operator's own configuration.
#[derive(Args, Clone, Debug)]
pub struct JobSettings {
    /// Gang scheduling: `volcano` (Volcano's PodGroups, any case) or the scheduler name of a
    /// scheduler-plugins profile running Coscheduling (e.g. `scheduler-plugins-scheduler`).
    /// Each job gets a PodGroup and its pods go to that scheduler. Empty: off.
    #[arg(long, env = "TFJOB_GANG_SCHEDULER_NAME", default_value = "")]
    pub gang_scheduler_name: String,
    /// cleanPodPolicy for jobs that set none: Running, All or None (Kubeflow's default is None).
    #[arg(
        long,
        env = "TFJOB_DEFAULT_CLEAN_POD_POLICY",
        default_value = "running"
    )]
    pub default_clean_pod_policy: CleanPodPolicy,
    /// Cluster domain appended to TF_CONFIG host names (e.g. cluster.local).
    #[arg(long, env = "CUSTOM_CLUSTER_DOMAIN")]
    pub cluster_domain: Option<String>,
    /// Most pods one TFJob may have (all replica types together); a larger job fails with
    /// reason TFJobTooManyReplicas. The CRD refuses more than 50000 per replica type.
    #[arg(long, env = "TFJOB_MAX_REPLICAS_PER_JOB", default_value_t = 20_000)]
    pub max_replicas_per_job: u32,
}

impl JobSettings {
    /// The planner's configuration with these settings and the given per-pass bounds.
    pub fn plan_config(
        &self,
        max_creates_per_pass: usize,
        max_create_bytes_per_pass: usize,
    ) -> PlanConfig {
        PlanConfig {
            gang: GangScheduler::from_flag(&self.gang_scheduler_name),
            default_clean_pod_policy: self.default_clean_pod_policy,
            cluster_domain: self.cluster_domain.clone(),
            max_replicas_per_job: self.max_replicas_per_job,
            max_creates_per_pass,
            max_create_bytes_per_pass,
        }
    }
}

/// Settings of `tfjob-operator render`.
#[derive(Args, Clone, Debug)]
pub struct RenderSettings {
    /// The TFJob manifest (YAML or JSON); `-` reads standard input.
    #[arg(long, short = 'f')]
    pub filename: std::path::PathBuf,
    /// Namespace of a manifest that names none.
    #[arg(long, short = 'n', default_value = "default")]
    pub namespace: String,
    /// Output format: YAML documents, or one JSON `v1 List`.
    #[arg(long, short = 'o', value_enum, default_value_t = RenderFormat::Yaml)]
    pub output: RenderFormat,
    /// The operator's settings that shape a job's children (same flags and environment
    /// variables as `run`).
    #[command(flatten)]
    pub job: JobSettings,
}

/// How `render` prints what it renders.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum RenderFormat {
    /// YAML documents separated by `---`: the Services, then the Pods.
    Yaml,
    /// One `v1 List` holding the Services, then the Pods.
    Json,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line: timestamp, level, message, fields and the reconcile span
    /// (job namespace and name, reconcile id).
    Json,
}

/// A listen address as `host:port`, or `:port` for every interface (upstream's form).
fn parse_bind_address(s: &str) -> Result<SocketAddr, String> {
    let full = match s.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => s.to_string(),
    };
    full.parse()
        .map_err(|e| format!("{s:?} is not HOST:PORT or :PORT ({e})"))
}

/// Parses no arguments at all: every setting at its default.
#[derive(Parser)]
struct Defaults {
    #[command(flatten)]
    run: RunSettings,
}

impl RunSettings {
    /// Every setting as `tfjob-operator run` without flags has it: the defaults, or the
    /// environment variables that are set.
    pub fn defaults() -> Self {
        // Only the defaults above are read; parsing an empty command line cannot fail.
        match Defaults::try_parse_from(["tfjob-operator"]) {
            Ok(d) => d.run,
            Err(e) => unreachable!("the settings' defaults do not parse: {e}"),
        }
    }

    /// The client-side bounds on API requests: rate and requests in flight.
    pub fn client_limits(&self) -> ClientLimits {
        ClientLimits {
            rate: (self.kube_api_qps > 0.0).then_some(RateLimit {
                qps: self.kube_api_qps,
                burst: self.kube_api_burst,
            }),
            max_in_flight: (self.kube_api_max_in_flight > 0).then_some(self.kube_api_max_in_flight),
        }
    }

    /// The configuration of each controller to run: one per `--namespace`, or one for all
    /// namespaces.
    pub fn controller_configs(&self) -> Vec<ControllerConfig> {
        let all = self.controller_config();
        if self.namespace.is_empty() {
            return vec![all];
        }
        let mut namespaces = self.namespace.clone();
        namespaces.sort();
        namespaces.dedup();
        namespaces
            .into_iter()
            .map(|ns| ControllerConfig {
                namespace: Some(ns),
                ..all.clone()
            })
            .collect()
    }

    /// The reconciler's configuration (of the first namespace, when several are given).
    pub fn controller_config(&self) -> ControllerConfig {
        ControllerConfig {
            plan: self.job.plan_config(
                self.max_creates_per_pass.max(1),
                self.max_create_bytes_per_pass,
            ),
            concurrency: self.concurrency.max(1),
            force_delete_after: Duration::from_secs(self.force_delete_after_seconds),
            namespace: self.namespace.first().cloned(),
            debounce: Duration::from_millis(self.debounce_ms),
            status_batch: Duration::from_millis(self.status_batch_ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_reach_the_controller_config() {
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            run: RunSettings,
        }
        let cli = Cli::try_parse_from([
            "x",
            "--default-clean-pod-policy",
            "None",
            "--status-batch-ms",
            "0",
            "--concurrency",
            "0",
            "--metrics-bind-address",
            ":9090",
        ])
        .expect("parses");
        let c = cli.run.controller_config();
        assert_eq!(c.plan.default_clean_pod_policy, CleanPodPolicy::None);
        assert_eq!(c.status_batch, Duration::ZERO);
        assert_eq!(c.concurrency, 1, "at least one worker");
        assert_eq!(cli.run.http_addr, "0.0.0.0:9090".parse().expect("address"));
        let upstream = Cli::try_parse_from(["x", "--controller-threads", "3", "--leader-elect"])
            .expect("upstream's names parse");
        assert_eq!(upstream.run.controller_config().concurrency, 3);
        assert!(upstream.run.leader_elect);
        let two = Cli::try_parse_from([
            "x",
            "--namespace",
            "b",
            "--namespace",
            "a",
            "--namespace",
            "b",
        ])
        .expect("repeatable");
        let scopes: Vec<_> = two
            .run
            .controller_configs()
            .into_iter()
            .map(|c| c.namespace)
            .collect();
        assert_eq!(scopes, vec![Some("a".to_string()), Some("b".to_string())]);
        let all = Cli::try_parse_from(["x"]).expect("no flags");
        assert_eq!(all.run.controller_configs().len(), 1);
        assert_eq!(
            all.run.http_addr.to_string(),
            "0.0.0.0:8080",
            "upstream's default"
        );
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = ControllerConfig::default();
        assert_eq!(c.plan.default_clean_pod_policy, CleanPodPolicy::Running);
        assert_eq!(c.concurrency, 32);
        assert_eq!(c.status_batch, Duration::from_secs(1));
        assert_eq!(c.force_delete_after, Duration::from_secs(300));
    }
}

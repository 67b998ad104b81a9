//! Scale benchmark: N TFJobs through their whole life on a real control plane, against the raw
//! cost of creating and deleting the same pods and services directly.
//!
//! `cargo bench --bench scale -- --jobs 100 --cluster DIR` (DIR from tests/cluster/up.sh). The
//! operator is started as a child process with the cluster's `operator.kubeconfig`, whose user
//! is the only one recorded in the API server's audit log: that is where the API requests of the
//! operator are counted, by verb and resource.

// A measuring tool, not operator code: a failed setup step panics with its message (that is its
// error report), figures are converted between integer and float freely, and `main` is one
// long script of phases read top to bottom.
#![allow(
    clippy::unwrap_used,
    clippy::too_many_lines,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_precision_loss
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use futures::{FutureExt, StreamExt, stream};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Config, ResourceExt};
use serde_json::{Value, json};
use tfjob_operator::api::builder::tfjob;
use tfjob_operator::api::{CleanPodPolicy, TFJob};

// Shared with the tests, which use all of it.
#[allow(dead_code)]
#[path = "../tests/common/policy.rs"]
mod policy;

#[derive(Parser, Debug)]
struct Args {
    /// Number of TFJobs.
    #[arg(long, default_value_t = 100)]
    jobs: usize,
    /// PS replicas per job.
    #[arg(long, default_value_t = 1)]
    ps: i32,
    /// Worker replicas per job.
    #[arg(long, default_value_t = 2)]
    workers: i32,
    /// Jobs either operator reconciles at once (`--controller-threads`; 32 is our default).
    #[arg(long, default_value_t = 32)]
    concurrency: u16,
    /// Client requests in flight when the bench creates/annotates objects.
    #[arg(long, default_value_t = 32)]
    parallel: usize,
    /// Cluster directory printed by tests/cluster/up.sh.
    #[arg(long, env = "TFJOB_TEST_CLUSTER")]
    cluster: PathBuf,
    /// Operator binary.
    #[arg(long, default_value = "target/release/tfjob-operator")]
    operator: PathBuf,
    /// The binary at `--operator` is Kubeflow's Go training-operator (benches/go-operator/): run
    /// it with its own flags (its webhook certificates must be in
    /// /tmp/k8s-webhook-server/serving-certs, a path it hard-codes).
    #[arg(long)]
    go: bool,
    /// Write every figure as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// For ours: bind the chart's finalizer policy (charts/tfjob-operator/files/
    /// finalizer-policy.yaml) to the bench namespace, as the Helm chart installs it on a cluster
    /// that serves MutatingAdmissionPolicy. `false`: the operator adds every finalizer itself.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    finalizer_policy: bool,
    /// Delete the TFJobs in phase 4 with `propagationPolicy: Foreground` (`kubectl delete
    /// --cascade=foreground`): the API server keeps each TFJob until the garbage collector has
    /// deleted its pods and services — the guarantee our finalizer gives, asked of the garbage
    /// collector (for the Go operator, which has no finalizer).
    #[arg(long)]
    foreground_delete: bool,
    #[arg(long, hide = true)]
    bench: bool,
}

/// The chart's finalizer policy, named and bound for namespace `ns` only, as the chart binds it to
/// the namespaces the operator watches. Returns once the API server applies it (a dry-run create
/// comes back with the finalizer).
async fn bind_finalizer_policy(admin: &Client, ns: &str) -> policy::Installed {
    let file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/charts/tfjob-operator/files/finalizer-policy.yaml"
    );
    let installed = policy::install(admin, ns, file, policy::Scope::Namespace).await;
    let jobs: Api<TFJob> = Api::namespaced(admin.clone(), ns);
    let probe: TFJob = tfjob("probe").workers(1).build();
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    policy::applied("the finalizer policy", || async {
        let stored = jobs.create(&dry, &probe).await.unwrap();
        (!stored.finalizers().is_empty()).then_some(())
    })
    .await;
    installed
}

async fn client(path: &Path) -> Client {
    let kc = Kubeconfig::read_from(path).expect("kubeconfig");
    let mut cfg = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("config");
    cfg.read_timeout = Some(Duration::from_secs(300));
    Client::try_from(cfg).expect("client")
}

/// CPU seconds and peak RSS of a process, from /proc.
fn proc_usage(pid: u32) -> (f64, u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks: f64 = fields
        .get(11)
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
        + fields
            .get(12)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks / 100.0, kb("VmHWM:"), kb("VmRSS:"))
}

/// Requests of the operator's user in the audit log, between two offsets, by "verb resource";
/// and those the API server refused, by "code verb resource".
fn audit_counts(log: &Path, from: u64, to: u64) -> (BTreeMap<String, u64>, BTreeMap<String, u64>) {
    let text = std::fs::read(log).unwrap_or_default();
    let slice = &text[(from as usize).min(text.len())..(to as usize).min(text.len())];
    let mut counts = BTreeMap::new();
    let mut refused = BTreeMap::new();
    for line in slice.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let Ok(v) = serde_json::from_slice::<Value>(line) else {
            continue;
        };
        if v["stage"] != "ResponseComplete" {
            continue;
        }
        let o = &v["objectRef"];
        let mut resource = o["resource"].as_str().unwrap_or("?").to_string();
        if let Some(sub) = o["subresource"].as_str() {
            resource = format!("{resource}/{sub}");
        }
        let request = format!("{} {resource}", v["verb"].as_str().unwrap_or("?"));
        let code = v["responseStatus"]["code"].as_u64().unwrap_or(0);
        if code >= 400 {
            *refused.entry(format!("{code} {request}")).or_insert(0) += 1;
        }
        *counts.entry(request).or_insert(0) += 1;
    }
    (counts, refused)
}

/// CPU model, CPU count and memory of this machine, from /proc.
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map_or("unknown CPU", str::trim)
        .to_string();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cpus} x {model}, {mem_gib:.0} GiB")
}

fn log_len(log: &Path) -> u64 {
    std::fs::metadata(log).map_or(0, |m| m.len())
}

fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// Watches `api` until `done` holds for the whole list; calls `seen` on every applied object.
async fn watch_until<K>(api: Api<K>, mut seen: impl FnMut(&K), done: impl Fn(&[Arc<K>]) -> bool)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = kube::runtime::reflector::store();
    let s = kube::runtime::reflector(
        writer,
        watcher(api, watcher::Config::default()).default_backoff(),
    );
    futures::pin_mut!(s);
    let mut synced = false;
    while let Some(ev) = s.next().await {
        match ev {
            Ok(watcher::Event::InitDone) => synced = true,
            Ok(watcher::Event::Apply(o)) | Ok(watcher::Event::InitApply(o)) => seen(&o),
            _ => {}
        }
        if synced && done(&store.state()) {
            return;
        }
    }
}

/// One collection delete of the objects of `api` matching `labels`. The API server ends a
/// request after 60 s while it goes on deleting (15,000 pods take longer): the connection is
/// closed, and the delete is sent again for what is left, at most 10 times.
async fn delete_all<K>(api: &Api<K>, labels: &str, params: &DeleteParams)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let lp = ListParams::default().labels(labels);
    for attempt in 1..=10 {
        match api.delete_collection(params, &lp).await {
            Ok(_) => return,
            Err(e) => eprintln!("collection delete, attempt {attempt}: {e}; sending it again"),
        }
    }
    panic!("the collection delete failed 10 times");
}

/// Waits until `n` pods of `pods` are Running.
async fn all_pods_running(pods: &Api<Pod>, n: usize) {
    watch_until(
        pods.clone(),
        |_| {},
        |all| {
            all.iter()
                .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
                .count()
                == n
        },
    )
    .await;
}

/// Starts Kubeflow's Go training-operator on `ns` as the audited user, and waits until its
/// workers have started (it waits for its webhook certificates first; see
/// benches/go-operator/compare.sh for how they are provided).
async fn start_go_operator(args: &Args, ns: &str) -> std::process::Child {
    let free_port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port().to_string())
            .expect("free port")
    };
    let log = std::env::temp_dir().join(format!("tfjob-bench-go-{ns}.log"));
    let out = std::fs::File::create(&log).expect("log file");
    let child = std::process::Command::new(&args.operator)
        .args([
            "--enable-scheme=tfjob",
            "--namespace",
            ns,
            "--metrics-bind-address",
            "127.0.0.1:0",
            "--health-probe-bind-address",
            "127.0.0.1:0",
            "--webhook-server-port",
            &free_port(),
            "--controller-threads",
            &args.concurrency.to_string(),
        ])
        .env("KUBECONFIG", args.cluster.join("operator.kubeconfig"))
        .stdout(std::process::Stdio::null())
        .stderr(out)
        .spawn()
        .expect("Go operator starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("Starting workers")
    {
        assert!(
            Instant::now() < deadline,
            "the Go operator did not start its workers; see {}",
            log.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    child
}

fn has(j: &TFJob, t: &str) -> bool {
    j.status
        .as_ref()
        .is_some_and(|s| tfjob_operator::plan::conditions::is_true(s, t))
}

#[derive(Default, serde::Serialize)]
struct Phase {
    name: String,
    wall_seconds: f64,
    latency_p50_seconds: Option<f64>,
    latency_p95_seconds: Option<f64>,
    latency_max_seconds: Option<f64>,
    operator_cpu_seconds: f64,
    operator_peak_rss_mib: f64,
    operator_requests: BTreeMap<String, u64>,
    /// Requests the API server refused (conflicts, not found, throttling), by code.
    operator_refused: BTreeMap<String, u64>,
    raw_seconds: Option<f64>,
    ratio_to_raw: Option<f64>,
    /// CPU seconds of the control plane's processes in the phase (API server, etcd,
    /// controller-manager, scheduler, kwok): where the operator's requests cost.
    control_plane_cpu_seconds: BTreeMap<String, f64>,
}

/// The control plane's processes of the cluster in `dir`, by name, from its pid files.
fn control_plane(dir: &Path) -> BTreeMap<String, u32> {
    [
        "kube-apiserver",
        "etcd",
        "kube-controller-manager",
        "kube-scheduler",
        "kwok",
    ]
    .into_iter()
    .filter_map(|name| {
        let pid = std::fs::read_to_string(dir.join("pids").join(format!("{name}.pid"))).ok()?;
        Some((name.to_string(), pid.trim().parse().ok()?))
    })
    .collect()
}

/// CPU seconds used so far by each of `processes`.
fn cpu_of(processes: &BTreeMap<String, u32>) -> BTreeMap<String, f64> {
    processes
        .iter()
        .map(|(name, pid)| (name.clone(), proc_usage(*pid).0))
        .collect()
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let admin = client(&args.cluster.join("kubeconfig")).await;
    let audit = args.cluster.join("logs/audit.log");
    // The CRD, as a user installs it.
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> = Api::all(admin.clone());
    let crd = tfjob_operator::api::crd::crd();
    crds.patch(
        "tfjobs.kubeflow.org",
        &PatchParams::apply("tfjob-bench").force(),
        &Patch::Apply(&crd),
    )
    .await
    .expect("CRD applied");
    tokio::time::timeout(
        Duration::from_secs(60),
        kube::runtime::wait::await_condition(
            crds,
            "tfjobs.kubeflow.org",
            kube::runtime::wait::conditions::is_crd_established(),
        ),
    )
    .await
    .expect("CRD established")
    .expect("watch");
    let ns = format!("bench-{}", Timestamp::now().as_second());
    let nsapi: Api<Namespace> = Api::all(admin.clone());
    nsapi
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap(),
        )
        .await
        .unwrap();
    let policy = if !args.go && args.finalizer_policy {
        let installed = bind_finalizer_policy(&admin, &ns).await;
        println!("finalizer policy bound to namespace {ns}");
        Some(installed)
    } else {
        None
    };
    let pods: Api<Pod> = Api::namespaced(admin.clone(), &ns);
    let svcs: Api<Service> = Api::namespaced(admin.clone(), &ns);
    let jobs: Api<TFJob> = Api::namespaced(admin.clone(), &ns);
    let per_job = (args.ps + args.workers) as usize;
    let n_pods = args.jobs * per_job;
    println!(
        "benchmark: {} TFJobs x ({} PS + {} Worker) = {n_pods} pods + {n_pods} services, operator concurrency {}",
        args.jobs, args.ps, args.workers, args.concurrency
    );

    // Raw: the same pods and services created and deleted directly by this client.
    let raw_up = Instant::now();
    let objs: Vec<(String, String)> = (0..args.jobs)
        .flat_map(|i| (0..per_job).map(move |k| (format!("raw-{i}-{k}"), format!("raw-{i}"))))
        .collect();
    stream::iter(objs.clone())
        .for_each_concurrent(args.parallel, |(name, group)| {
            let (pods, svcs) = (pods.clone(), svcs.clone());
            async move {
                let labels = json!({"bench": "raw", "group": group, "name": name});
                let p: Pod = serde_json::from_value(json!({"metadata": {"name": name, "labels": labels},
                    "spec": {"containers": [{"name": "tensorflow", "image": "tensorflow/tensorflow:2.15.0"}]}})).unwrap();
                let s: Service = serde_json::from_value(json!({"metadata": {"name": name, "labels": labels},
                    "spec": {"clusterIP": "None", "selector": labels, "ports": [{"name": "tfjob-port", "port": 2222}]}})).unwrap();
                pods.create(&PostParams::default(), &p).await.expect("raw pod");
                svcs.create(&PostParams::default(), &s).await.expect("raw service");
            }
        })
        .await;
    all_pods_running(&pods, n_pods).await;
    let raw_up = raw_up.elapsed().as_secs_f64();
    let raw_down = Instant::now();
    delete_all(&pods, "bench=raw", &DeleteParams::default()).await;
    delete_all(&svcs, "bench=raw", &DeleteParams::default()).await;
    watch_until(pods.clone(), |_| {}, |all| all.is_empty()).await;
    watch_until(svcs.clone(), |_| {}, |all| all.is_empty()).await;
    let raw_down = raw_down.elapsed().as_secs_f64();
    println!("raw: create + Running {raw_up:.2}s, delete {raw_down:.2}s");

    // The operator, as the audited user, watching this namespace.
    let mut op = if args.go {
        start_go_operator(&args, &ns).await
    } else {
        std::process::Command::new(&args.operator)
            .args([
                "run",
                "--namespace",
                &ns,
                "--http-addr",
                "127.0.0.1:0",
                "--concurrency",
                &args.concurrency.to_string(),
            ])
            .env("KUBECONFIG", args.cluster.join("operator.kubeconfig"))
            // As an environment variable: older binaries compared against do not know the flag.
            .env("TFJOB_HEALTH_PROBE_ADDR", "127.0.0.1:0")
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("operator starts")
    };
    let pid = op.id();
    tokio::time::sleep(Duration::from_millis(500)).await; // let it list (empty) before the clock starts
    let mut phases: Vec<Phase> = Vec::new();
    let processes = control_plane(&args.cluster);
    let mut plane_mark = cpu_of(&processes);
    let mut mark = (proc_usage(pid).0, log_len(&audit));
    let mut close =
        |name: &str, wall: f64, lat: Option<Vec<f64>>, raw: Option<f64>, mark: &mut (f64, u64)| {
            let (cpu, hwm, _) = proc_usage(pid);
            let plane = cpu_of(&processes);
            let control_plane_cpu_seconds = plane
                .iter()
                .map(|(name, now)| (name.clone(), now - plane_mark.get(name).unwrap_or(now)))
                .collect();
            plane_mark = plane;
            let end = log_len(&audit);
            let (operator_requests, operator_refused) = audit_counts(&audit, mark.1, end);
            let p = Phase {
                name: name.into(),
                wall_seconds: wall,
                latency_p50_seconds: lat.clone().map(|l| percentile(l, 0.5)),
                latency_p95_seconds: lat.clone().map(|l| percentile(l, 0.95)),
                latency_max_seconds: lat.map(|l| percentile(l, 1.0)),
                operator_cpu_seconds: cpu - mark.0,
                operator_peak_rss_mib: hwm as f64 / 1024.0,
                operator_requests,
                operator_refused,
                raw_seconds: raw,
                ratio_to_raw: raw.map(|r| wall / r),
                control_plane_cpu_seconds,
            };
            *mark = (cpu, end);
            phases.push(p);
        };

    // 1. create
    let t0 = Instant::now();
    let created: Arc<std::sync::Mutex<BTreeMap<String, Instant>>> = Default::default();
    stream::iter(0..args.jobs)
        .for_each_concurrent(args.parallel, |i| {
            let (jobs, created) = (jobs.clone(), created.clone());
            // Explicit: the Go operator's default is None, ours Running.
            let j = tfjob(&format!("job-{i}"))
                .ps(args.ps)
                .workers(args.workers)
                .clean_pod_policy(CleanPodPolicy::Running)
                .build();
            async move {
                jobs.create(&PostParams::default(), &j)
                    .await
                    .expect("job created");
                created.lock().unwrap().insert(j.name_any(), Instant::now());
            }
        })
        .await;
    close(
        "1 create",
        t0.elapsed().as_secs_f64(),
        None,
        None,
        &mut mark,
    );

    // 2. all Running with every pod and service
    let mut running_at: BTreeMap<String, Instant> = BTreeMap::new();
    watch_until(
        jobs.clone(),
        |j| {
            if has(j, "Running") {
                running_at.entry(j.name_any()).or_insert_with(Instant::now);
            }
        },
        |all| all.len() == args.jobs && all.iter().all(|j| has(j, "Running")),
    )
    .await;
    all_pods_running(&pods, n_pods).await;
    watch_until(svcs.clone(), |_| {}, |all| all.len() == n_pods).await;
    let created = created.lock().unwrap().clone();
    let lat: Vec<f64> = running_at
        .iter()
        .filter_map(|(n, t)| {
            created
                .get(n)
                .map(|c| t.saturating_duration_since(*c).as_secs_f64())
        })
        .collect();
    close(
        "2 all Running",
        t0.elapsed().as_secs_f64(),
        Some(lat),
        Some(raw_up),
        &mut mark,
    );

    // Idle: every job Running, nothing changing. The window is the measurement itself.
    let idle = Instant::now();
    tokio::time::sleep(Duration::from_secs(10)).await;
    close(
        "idle 10 s",
        idle.elapsed().as_secs_f64(),
        None,
        None,
        &mut mark,
    );

    // 3. all Succeeded: worker 0 of every job exits 0
    let t2 = Instant::now();
    let exited: Arc<std::sync::Mutex<BTreeMap<String, Instant>>> = Default::default();
    stream::iter(0..args.jobs)
        .for_each_concurrent(args.parallel, |i| {
            let (pods, exited) = (pods.clone(), exited.clone());
            async move {
                let patch =
                    json!({"metadata": {"annotations": {"test.tfjob-operator.io/exit-code": "0"}}});
                pods.patch(
                    &format!("job-{i}-worker-0"),
                    &PatchParams::default(),
                    &Patch::Merge(patch),
                )
                .await
                .expect("annotate");
                exited
                    .lock()
                    .unwrap()
                    .insert(format!("job-{i}"), Instant::now());
            }
        })
        .await;
    let mut done_at: BTreeMap<String, Instant> = BTreeMap::new();
    watch_until(
        jobs.clone(),
        |j| {
            if has(j, "Succeeded") {
                done_at.entry(j.name_any()).or_insert_with(Instant::now);
            }
        },
        |all| all.iter().all(|j| has(j, "Succeeded")),
    )
    .await;
    let exited = exited.lock().unwrap().clone();
    let lat: Vec<f64> = done_at
        .iter()
        .filter_map(|(n, t)| {
            exited
                .get(n)
                .map(|c| t.saturating_duration_since(*c).as_secs_f64())
        })
        .collect();
    // Let cleanPodPolicy (Running) finish before the next phase.
    watch_until(pods.clone(), |_| {}, |all| all.len() == args.jobs).await;
    close(
        "3 all Succeeded",
        t2.elapsed().as_secs_f64(),
        Some(lat),
        None,
        &mut mark,
    );

    // 4. one collection delete
    // When the API server answered the collection delete (it marks or deletes the jobs one by
    // one before answering) and when each kind was seen all gone, watched side by side.
    let job_delete = if args.foreground_delete {
        DeleteParams::foreground()
    } else {
        DeleteParams::default()
    };
    let t3 = Instant::now();
    let since_t3 = |_| t3.elapsed().as_secs_f64();
    let (answered, jobs_gone, pods_gone, svcs_gone) = tokio::join!(
        delete_all(&jobs, "", &job_delete).map(since_t3),
        watch_until(jobs.clone(), |_| {}, |all| all.is_empty()).map(since_t3),
        watch_until(pods.clone(), |_| {}, |all| all.is_empty()).map(since_t3),
        watch_until(svcs.clone(), |_| {}, |all| all.is_empty()).map(since_t3),
    );
    println!(
        "collection delete answered after {answered:.2}s; all gone: TFJobs {jobs_gone:.2}s, pods {pods_gone:.2}s, services {svcs_gone:.2}s"
    );
    let collection_delete = json!({"answered_seconds": answered, "jobs_gone_seconds": jobs_gone,
        "pods_gone_seconds": pods_gone, "services_gone_seconds": svcs_gone});
    close(
        "4 collection delete",
        t3.elapsed().as_secs_f64(),
        None,
        Some(raw_down),
        &mut mark,
    );

    let _ = op.kill();
    let _ = op.wait();
    let _ = nsapi.delete(&ns, &DeleteParams::default()).await;
    let bound = policy.is_some();
    if let Some(installed) = policy {
        installed.remove().await;
    }

    println!(
        "\n{:<22} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>7}  requests",
        "phase", "wall s", "p50 s", "p95 s", "max s", "CPU s", "peak MiB", "x raw"
    );
    for p in &phases {
        let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}"));
        let total: u64 = p.operator_requests.values().sum();
        println!(
            "{:<22} {:>8.2} {:>8} {:>8} {:>8} {:>8.2} {:>9.1} {:>7}  {total}: {:?}",
            p.name,
            p.wall_seconds,
            f(p.latency_p50_seconds),
            f(p.latency_p95_seconds),
            f(p.latency_max_seconds),
            p.operator_cpu_seconds,
            p.operator_peak_rss_mib,
            f(p.ratio_to_raw),
            p.operator_requests
        );
    }
    for p in &phases {
        let plane: Vec<String> = p
            .control_plane_cpu_seconds
            .iter()
            .map(|(name, cpu)| format!("{name} {cpu:.1}"))
            .collect();
        println!("control plane CPU s, {}: {}", p.name, plane.join(", "));
    }
    let mut all: BTreeMap<String, u64> = BTreeMap::new();
    for p in &phases {
        for (k, v) in &p.operator_requests {
            *all.entry(k.clone()).or_default() += v;
        }
    }
    let total: u64 = all.values().sum();
    println!(
        "operator API requests per job: {:.2} ({total} in all: {all:?})",
        total as f64 / args.jobs as f64
    );
    let mut refused: BTreeMap<String, u64> = BTreeMap::new();
    for p in &phases {
        for (k, v) in &p.operator_refused {
            *refused.entry(k.clone()).or_default() += v;
        }
    }
    println!("operator requests refused by the API server: {refused:?}");
    println!("machine: {}", machine());
    if let Some(path) = &args.json {
        let out = json!({
            "jobs": args.jobs, "ps": args.ps, "workers": args.workers, "concurrency": args.concurrency,
            "finalizer_policy": bound,
            "foreground_delete": args.foreground_delete,
            "raw": {"create_running_seconds": raw_up, "delete_seconds": raw_down},
            "collection_delete": collection_delete,
            "phases": phases, "requests_total": all, "requests_per_job": total as f64 / args.jobs as f64,
            "refused_total": refused, "machine": machine(),
        });
        std::fs::write(path, serde_json::to_string_pretty(&out).unwrap()).expect("write json");
        println!("wrote {}", path.display());
    }
}

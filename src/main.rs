//! The `tfjob-operator` binary: CLI wiring only.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tfjob_operator::controller;
use tfjob_operator::runtime::http;
use tfjob_operator::runtime::leader;
use tfjob_operator::runtime::metrics::Metrics;
use tfjob_operator::settings::{LogFormat, RenderFormat, RenderSettings, RunSettings};
use tracing_subscriber::EnvFilter;

/// A Kubernetes operator for TensorFlow training jobs (TFJob, kubeflow.org/v1).
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controller.
    Run(Box<RunSettings>),
    /// Print the TFJob CustomResourceDefinition as YAML.
    Crd,
    /// Print, offline, the Services and Pods a TFJob would get (names, labels, TF_CONFIG,
    /// ports), or why the API server or the operator would refuse it (exit code 1).
    Render(RenderSettings),
    /// Remove the operator's finalizer from TFJobs (run before uninstalling the operator).
    ReleaseFinalizers {
        /// Only this namespace (repeat for several).
        #[arg(long, short = 'n', conflicts_with = "all_namespaces")]
        namespace: Vec<String>,
        /// Every namespace.
        #[arg(long, short = 'A')]
        all_namespaces: bool,
        /// First take the operator's leader election Lease of this name (for 5 minutes), so
        /// that the running operator stops and adds no finalizer back (what the Helm chart's
        /// uninstall hook does).
        #[arg(long, value_name = "LEASE")]
        hold_lease: Option<String>,
        /// Namespace of the Lease of --hold-lease (default: the kubeconfig's or the pod's).
        #[arg(long, requires = "hold_lease")]
        lease_namespace: Option<String>,
    },
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`), as text or JSON lines.
fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs
            .with_target(false)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => logs
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
}

/// A client from KUBECONFIG or the in-cluster config; None (after saying why) when neither works.
async fn client() -> Option<kube::Client> {
    match tfjob_operator::runtime::client::build_plain().await {
        Ok(c) => Some(c),
        Err(e) => {
            eprintln!(
                "error: cannot build a Kubernetes client (KUBECONFIG or in-cluster config): {e}"
            );
            None
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let term = async {
            match term.as_mut() {
                Some(t) => {
                    t.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Crd => {
            print!("{}", tfjob_operator::api::crd::crd_yaml());
            ExitCode::SUCCESS
        }
        Command::Render(settings) => render(&settings),
        Command::Run(settings) => run(*settings).await,
        Command::ReleaseFinalizers {
            namespace,
            all_namespaces,
            hold_lease,
            lease_namespace,
        } => release_finalizers(namespace, all_namespaces, hold_lease, lease_namespace).await,
    }
}

/// `render`: read the manifest, render it, print the children or the refusal.
fn render(settings: &RenderSettings) -> ExitCode {
    let text = if settings.filename.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(&settings.filename)
    };
    let manifest = match text
        .map_err(|e| e.to_string())
        .and_then(|t| serde_saphyr::from_str::<serde_json::Value>(&t).map_err(|e| e.to_string()))
    {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {}: {e}", settings.filename.display());
            return ExitCode::FAILURE;
        }
    };
    let cfg = settings.job.plan_config(usize::MAX, usize::MAX);
    let rendered = match tfjob_operator::render::render(&manifest, &settings.namespace, &cfg) {
        Ok(r) => r,
        Err(refusal) => {
            eprint!("error: {refusal}");
            return ExitCode::FAILURE;
        }
    };
    for warning in &rendered.warnings {
        eprintln!("warning: {warning}");
    }
    let printed = match settings.output {
        RenderFormat::Yaml => rendered.to_yaml(),
        RenderFormat::Json => rendered.to_json(),
    };
    match printed {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: cannot print the rendering: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The Lease this replica campaigns for, if `--leader-elect`.
fn election(settings: &RunSettings, client: &kube::Client) -> Option<leader::Election> {
    settings.leader_elect.then(|| {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "tfjob-operator".into());
        leader::Election {
            lease: settings.leader_election_id.clone(),
            namespace: settings
                .leader_election_namespace
                .clone()
                .unwrap_or_else(|| client.default_namespace().to_string()),
            identity: format!("{host}_{}", std::process::id()),
        }
    })
}

/// The gate every write of the operator's client passes: closed until this replica takes the
/// Lease with `--leader-elect`, always open without.
fn gate_for(settings: &RunSettings) -> leader::LeaderGate {
    if settings.leader_elect {
        leader::LeaderGate::for_election()
    } else {
        leader::LeaderGate::always_open()
    }
}

/// The campaign for `election`, on a client of its own without the leader gate (it writes the
/// Lease to become the leader) and without the controller's rate limit (renewals never queue
/// behind a burst of reconciles).
async fn start_campaign(
    election: leader::Election,
    gate: &leader::LeaderGate,
    metrics: &std::sync::Arc<Metrics>,
) -> Result<leader::Campaign, String> {
    let client = tfjob_operator::runtime::client::build_ungated(metrics.clone())
        .await
        .map_err(|e| e.to_string())?;
    leader::campaign(client, election, gate.clone(), metrics.clone())
        .await
        .map_err(|e| e.to_string())
}

/// Runs the campaign until the controller is `done`; a lost Lease stops the process. The task
/// answers whether the Lease was lost.
fn spawn_campaign(
    campaign: leader::Campaign,
    done: tokio::sync::oneshot::Receiver<()>,
    stop: tokio::sync::watch::Sender<bool>,
) -> tokio::task::JoinHandle<bool> {
    tokio::spawn(async move {
        let result = campaign
            .run(async move {
                let _ = done.await;
            })
            .await;
        if let Err(e) = &result {
            tracing::error!("{e}; exiting so that Kubernetes restarts this replica");
            let _ = stop.send(true);
        }
        result.is_err()
    })
}

/// A stop flag set by SIGTERM or Ctrl-C (or by whoever else holds the sender).
fn stop_on_signal() -> (
    tokio::sync::watch::Sender<bool>,
    tokio::sync::watch::Receiver<bool>,
) {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let on_signal = stop_tx.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutdown requested");
        let _ = on_signal.send(true);
    });
    (stop_tx, stop_rx)
}

/// Resolves once the stop flag is set.
async fn stopped(mut rx: tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// Runs one controller per watched namespace until the stop flag is set.
async fn run_controllers(
    settings: &RunSettings,
    client: &kube::Client,
    metrics: &std::sync::Arc<Metrics>,
    gate: &leader::LeaderGate,
    stop: &tokio::sync::watch::Receiver<bool>,
) {
    let configs = settings.controller_configs();
    metrics.expect_controllers(configs.len());
    futures::future::join_all(configs.into_iter().map(|config| {
        let (client, metrics, gate) = (client.clone(), metrics.clone(), gate.clone());
        controller::run(client, config, metrics, gate, stopped(stop.clone()))
    }))
    .await;
}

/// The operator's client (rate limit, request metrics, writes only through `gate`), once the
/// startup checks passed; None after saying, one line each, what is wrong.
async fn operator_client(
    settings: &RunSettings,
    metrics: &std::sync::Arc<Metrics>,
    gate: leader::LeaderGate,
) -> Option<kube::Client> {
    let limits = settings.client_limits();
    let client = match tfjob_operator::runtime::client::build(limits, metrics.clone(), gate).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "error: cannot build a Kubernetes client from KUBECONFIG or the in-cluster config: {e}"
            );
            return None;
        }
    };
    let gang = settings.controller_config().plan.gang;
    let problems =
        tfjob_operator::runtime::preflight::check(&client, &settings.namespace, gang.as_ref())
            .await;
    for problem in &problems {
        eprintln!("error: {problem}");
    }
    problems.is_empty().then_some(client)
}

/// Binds `addr` (before anything else starts, so a taken port fails fast), or says why not.
async fn listen(addr: std::net::SocketAddr, flag: &str) -> Option<tokio::net::TcpListener> {
    match http::bind(addr).await {
        Ok(l) => Some(l),
        Err(e) => {
            eprintln!("error: cannot listen on {addr} ({flag}): {e}; pick a free port");
            None
        }
    }
}

/// `run`: the HTTP endpoints and one controller per watched namespace, until SIGTERM or Ctrl-C
/// (or, with leader election, until this replica loses the Lease: then it exits with a failure,
/// to be restarted).
async fn run(settings: RunSettings) -> ExitCode {
    init_tracing(settings.log_format);
    let metrics = std::sync::Arc::new(Metrics::new());
    let gate = gate_for(&settings);
    let Some(client) = operator_client(&settings, &metrics, gate.clone()).await else {
        return ExitCode::FAILURE;
    };
    let Some(metrics_listener) = listen(settings.http_addr, "--metrics-bind-address").await else {
        return ExitCode::FAILURE;
    };
    let health = settings.health_probe_bind_address;
    let Some(health_listener) = listen(health, "--health-probe-bind-address").await else {
        return ExitCode::FAILURE;
    };
    let (stop_tx, stop_rx) = stop_on_signal();
    let campaign = match election(&settings, &client) {
        None => None,
        Some(election) => match start_campaign(election, &gate, &metrics).await {
            Ok(campaign) => Some(campaign),
            Err(e) => {
                eprintln!("error: cannot start leader election (--leader-elect): {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    // The Lease is released only once the controllers have stopped (in-flight reconciles done),
    // so the next leader never overlaps with this one.
    let (controllers_done, done) = tokio::sync::oneshot::channel::<()>();
    let lost = campaign.map(|c| spawn_campaign(c, done, stop_tx.clone()));
    if lost.is_none() {
        metrics.set_leader(true);
    }
    let servers = [
        (metrics_listener, http::router(metrics.clone())),
        (health_listener, http::probes(metrics.clone())),
    ]
    .map(|(listener, router)| {
        tokio::spawn(http::serve(listener, router, stopped(stop_rx.clone())))
    });
    run_controllers(&settings, &client, &metrics, &gate, &stop_rx).await;
    let _ = controllers_done.send(());
    let mut code = ExitCode::SUCCESS;
    if let Some(lost) = lost
        && lost.await.unwrap_or(true)
    {
        code = ExitCode::FAILURE;
    }
    for server in servers {
        if let Ok(Err(e)) = server.await {
            eprintln!("error: HTTP endpoints: {e}");
            code = ExitCode::FAILURE;
        }
    }
    code
}

/// `release-finalizers`: lets every TFJob of a namespace (or all) go without the operator.
async fn release_finalizers(
    namespaces: Vec<String>,
    all_namespaces: bool,
    hold_lease: Option<String>,
    lease_namespace: Option<String>,
) -> ExitCode {
    init_tracing(LogFormat::Text);
    if namespaces.is_empty() && !all_namespaces {
        eprintln!("error: give --namespace NS or --all-namespaces");
        return ExitCode::from(2);
    }
    let Some(client) = client().await else {
        return ExitCode::FAILURE;
    };
    if let Some(lease) = hold_lease {
        let ns = lease_namespace.unwrap_or_else(|| client.default_namespace().to_string());
        let holder = format!(
            "release-finalizers_{}",
            std::env::var("HOSTNAME").unwrap_or_default()
        );
        if let Err(e) = leader::seize(client.clone(), &ns, &lease, &holder, 300).await {
            eprintln!("error: cannot take the Lease {ns}/{lease} (--hold-lease): {e}");
            return ExitCode::FAILURE;
        }
        println!("holding the Lease {ns}/{lease}: the operator stops acting");
    }
    let scopes: Vec<Option<&str>> = if all_namespaces {
        vec![None]
    } else {
        namespaces.iter().map(|ns| Some(ns.as_str())).collect()
    };
    match controller::release::release_until_none_left(client, &scopes).await {
        Ok(released) => {
            println!("released the finalizer of {released} TFJob(s)");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

//! The `tfjob-operator` binary: CLI wiring only.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tfjob_operator::controller;
use tfjob_operator::runtime::http;
use tfjob_operator::runtime::leader;
use tfjob_operator::runtime::metrics::Metrics;
use tfjob_operator::settings::{LogFormat, RunSettings};
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
    Run(RunSettings),
    /// Print the TFJob CustomResourceDefinition as YAML.
    Crd,
    /// Remove the operator's finalizer from TFJobs (run before uninstalling the operator).
    ReleaseFinalizers {
        /// Only this namespace.
        #[arg(long, short = 'n', conflicts_with = "all_namespaces")]
        namespace: Option<String>,
        /// Every namespace.
        #[arg(long, short = 'A')]
        all_namespaces: bool,
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
    match kube::Client::try_default().await {
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
        Command::Run(settings) => run(settings).await,
        Command::ReleaseFinalizers {
            namespace,
            all_namespaces,
        } => release_finalizers(namespace, all_namespaces).await,
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

/// `run`: the HTTP endpoints and the controller, until SIGTERM or Ctrl-C (or, with leader
/// election, until this replica loses the Lease: then it exits with a failure, to be restarted).
async fn run(settings: RunSettings) -> ExitCode {
    init_tracing(settings.log_format);
    let Some(client) = client().await else {
        return ExitCode::FAILURE;
    };
    let http_addr = settings.http_addr;
    // Bound before anything else starts, so a taken port fails fast.
    let listener = match http::bind(http_addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {http_addr} (--metrics-bind-address): {e}");
            return ExitCode::FAILURE;
        }
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let on_signal = stop_tx.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutdown requested");
        let _ = on_signal.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let metrics = std::sync::Arc::new(Metrics::new());
    let election = election(&settings, &client);
    let (gate, campaign) = match leader::start(client.clone(), election, metrics.clone()).await {
        Ok(started) => started,
        Err(e) => {
            eprintln!("error: cannot start leader election (--leader-elect): {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut code = ExitCode::SUCCESS;
    // The Lease is released only once the controller has stopped (in-flight reconciles done),
    // so the next leader never overlaps with this one.
    let (controller_done, done) = tokio::sync::oneshot::channel::<()>();
    let lost = campaign.map(|c| spawn_campaign(c, done, stop_tx.clone()));
    if lost.is_none() {
        metrics.set_leader(true);
    }
    let server = tokio::spawn(http::serve(
        listener,
        metrics.clone(),
        stopped(stop_rx.clone()),
    ));
    let config = settings.controller_config();
    controller::run(client, config, metrics, gate, stopped(stop_rx)).await;
    let _ = controller_done.send(());
    if let Some(lost) = lost
        && lost.await.unwrap_or(true)
    {
        code = ExitCode::FAILURE;
    }
    match server.await {
        Ok(Err(e)) => {
            eprintln!("error: HTTP endpoints on {http_addr}: {e}");
            ExitCode::FAILURE
        }
        _ => code,
    }
}

/// `release-finalizers`: lets every TFJob of a namespace (or all) go without the operator.
async fn release_finalizers(namespace: Option<String>, all_namespaces: bool) -> ExitCode {
    init_tracing(LogFormat::Text);
    if namespace.is_none() && !all_namespaces {
        eprintln!("error: give --namespace NS or --all-namespaces");
        return ExitCode::from(2);
    }
    let Some(client) = client().await else {
        return ExitCode::FAILURE;
    };
    match controller::release::release_finalizers(client, namespace.as_deref()).await {
        Ok(n) => {
            println!("released the finalizer of {n} TFJob(s)");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

//! The `tfjob-operator` binary.

use clap::{Parser, Subcommand};

/// A Kubernetes operator for TensorFlow training jobs (TFJob, kubeflow.org/v1).
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the TFJob CustomResourceDefinition as YAML.
    Crd,
}

fn main() {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd => print!("{}", tfjob_operator::api::crd::crd_yaml()),
    }
}

//! tfjob-operator: a Kubernetes operator for TensorFlow training jobs (`TFJob`, `kubeflow.org/v1`).
//!
//! Data flows one way: [`api`] defines the resource, [`plan`] decides what the cluster should
//! look like (pure functions), [`controller`] observes the cluster and executes those
//! decisions, [`runtime`] serves probes and metrics, [`settings`] holds the flags.

pub mod api;
pub mod controller;
pub mod plan;
pub mod render;
pub mod runtime;
pub mod settings;

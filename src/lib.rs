//! tfjob-operator: a Kubernetes operator for TensorFlow training jobs (`TFJob`, `kubeflow.org/v1`).
//!
//! Data flows one way: [`api`] defines the resource, `plan` decides what the cluster should look
//! like, `controller` observes the cluster and executes those decisions, `runtime` wires it up.

pub mod api;
pub mod controller;
pub mod plan;
pub mod runtime;

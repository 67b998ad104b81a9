//! Wiring at the edge: HTTP endpoints and metrics.

pub mod client;
pub mod crd_fields;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod preflight;

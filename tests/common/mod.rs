//! Shared test support.
#![allow(dead_code)]
// Test support: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

pub mod audit;
pub mod cluster;
pub mod fixtures;
pub mod gang;
pub mod kueue;
pub mod policy;
pub mod process;
pub mod real_node;

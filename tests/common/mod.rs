//! Shared test support.
#![allow(dead_code)]

pub mod cluster;
pub mod fixtures;

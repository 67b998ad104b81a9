//! The controller: observe (caches of TFJobs and of our pods and services), decide
//! ([`crate::plan`]), act ([`act`]). One module per concern:
//!
//! - [`watch`]: the watches, caches and kube-runtime Controller (wiring);
//! - [`reconcile`]: one reconcile — pick the step a job needs, run it, back off on errors;
//! - [`apply`]: a live job — plan, act, write the status ([`status`]), count outcomes;
//! - [`deletion`]: a deleted job — delete its children, then release the [`finalizer`];
//! - [`context`] (shared state; the caches with their [`index`] by job), [`memory`] (what is remembered per job, with
//!   [`own_writes`]), [`trim`] (what the caches keep), [`error`], [`release`] (the
//!   `release-finalizers` command).

pub mod act;
mod apply;
pub mod config;
pub mod context;
mod deletion;
pub mod error;
pub mod finalizer;
pub mod index;
mod json_patch_ops;
pub mod memory;
pub mod own_writes;
pub mod reconcile;
pub mod release;
mod status;
pub mod trim;
pub mod watch;

#[cfg(test)]
mod fake_api;
#[cfg(test)]
mod tests;

pub use config::ControllerConfig;
pub use error::Error;
pub use watch::run;

//! The controller: observe (caches of TFJobs and of our pods and services), decide
//! ([`crate::plan`]), act. One module per concern:
//!
//! - `watch`: the watches, caches and kube-runtime Controller (wiring);
//! - `reconcile`: one reconcile — pick the step a job needs, run it, back off on errors;
//! - `apply`: a live job — plan, apply the changes (`act`), write the status (`status`),
//!   publish the events (`events`), count outcomes;
//! - `deletion`: a deleted job — delete its children, then release the `finalizer`;
//! - `child_cache`: one kind of child as the controller sees it (store, index by job, our own
//!   writes the watch has not delivered); `memory`: what is remembered per job; `context`:
//!   what every reconcile shares; `timing`: every duration the controller waits by;
//! - `trim` (what the caches keep), `error`, [`release`] (the `release-finalizers` command).
//!
//! Only what the binary and the tests outside the crate use is public: [`run`],
//! [`ControllerConfig`], [`release`] and [`is_still_stored`].

mod act;
mod apply;
mod child_cache;
mod config;
mod context;
mod deletion;
mod error;
mod events;
mod finalizer;
mod json_patch_ops;
mod memory;
mod reconcile;
pub mod release;
mod status;
mod timing;
mod trim;
mod watch;

#[cfg(test)]
mod fake_api;
#[cfg(test)]
mod tests;

pub use act::is_still_stored;
pub use config::ControllerConfig;
pub use error::Error;
pub use finalizer::FINALIZER;
pub use watch::run;

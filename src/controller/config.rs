//! The reconciler's configuration, built from the operator's settings
//! ([`crate::settings::RunSettings`], where every default is defined).

use std::time::Duration;

use crate::plan::PlanConfig;
use crate::settings::RunSettings;

/// Settings of the reconciler.
#[derive(Clone, Debug)]
pub struct ControllerConfig {
    /// Planner settings (default cleanPodPolicy, cluster domain).
    pub plan: PlanConfig,
    /// Jobs reconciled at the same time.
    pub concurrency: u16,
    /// How long a pod may stay terminating during cleanup before it is force-deleted.
    pub force_delete_after: Duration,
    /// Watch only this namespace (all when None).
    pub namespace: Option<String>,
    /// Quiet time after a change before a job is reconciled; folds bursts of pod events (and our
    /// own status write coming back) into one reconcile.
    pub debounce: Duration,
    /// How long a status change that only reports progress (replica counts, Running) while
    /// other pods are still starting may wait to be written together with them. The last pod
    /// up, restarts, failures and completion are written at once.
    pub status_batch: Duration,
}

impl Default for ControllerConfig {
    /// The configuration of `tfjob-operator run` without flags.
    fn default() -> Self {
        RunSettings::defaults().controller_config()
    }
}

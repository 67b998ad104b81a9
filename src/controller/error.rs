//! Errors of the reconciler, with messages an operator of the cluster can act on.

use thiserror::Error;

/// Why a reconcile did not complete.
#[derive(Debug, Error)]
pub enum Error {
    /// An API call failed.
    #[error("{action} failed: {source}")]
    Api {
        /// What we tried, e.g. "creating pod ns/job-worker-0".
        action: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// The status write raced with another writer; the job is reconciled again with fresh data.
    #[error(
        "status of {0} changed while reconciling (409 Conflict); retrying with the new version"
    )]
    Conflict(String),
    /// Deletion is waiting for the job's pods and services to disappear.
    #[error("waiting for {pods} pod(s) and {services} service(s) of {job} to be deleted")]
    ChildrenRemaining {
        /// Job namespace/name.
        job: String,
        /// Pods left.
        pods: usize,
        /// Services left.
        services: usize,
        /// When to look again at the latest (their delete events usually come first).
        recheck_after: std::time::Duration,
    },
    /// The pod/service caches were dropped before they finished their initial list.
    #[error(
        "the pod and service caches are not ready (watch failed to start); check RBAC for pods and services"
    )]
    CacheNotReady,
    /// The object from the cache lacks a field the API server always sets.
    #[error("TFJob is missing metadata.{0}; is the API server serving kubeflow.org/v1 correctly?")]
    MissingMetadata(&'static str),
    /// Adding or removing the finalizer failed (errors of Apply and Cleanup are unwrapped).
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
}

impl Error {
    /// A short label for metrics and logs.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Api { .. } => "api",
            Error::Conflict(_) => "conflict",
            Error::ChildrenRemaining { .. } => "cleanup_pending",
            Error::MissingMetadata(_) => "invalid_object",
            Error::CacheNotReady => "cache",
            Error::Finalizer(_) => "finalizer",
        }
    }

    /// For a deletion that is waiting on children: when to look again (no exponential backoff).
    pub fn cleanup_recheck(&self) -> Option<std::time::Duration> {
        match self {
            Error::ChildrenRemaining { recheck_after, .. } => Some(*recheck_after),
            _ => None,
        }
    }

    /// Whether this is an expected, transient state rather than a failure worth a warning log.
    pub fn is_expected(&self) -> bool {
        matches!(self, Error::Conflict(_) | Error::ChildrenRemaining { .. })
    }
}

/// Whether the API server refused a write because the namespace is being deleted (the namespace
/// controller removes everything in it; there is nothing to create there any more).
pub fn is_namespace_terminating(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(s) if s.code == 403
        && s.details.as_ref().is_some_and(|d| d.causes.iter().any(|c| c.reason == "NamespaceTerminating")))
}

/// Whether a kube error is an API status with this HTTP code.
pub fn is_status(err: &kube::Error, code: u16) -> bool {
    matches!(err, kube::Error::Api(s) if s.code == code)
}

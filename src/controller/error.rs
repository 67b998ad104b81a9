//! Errors of the reconciler, with messages an operator of the cluster can act on, and the
//! questions the controller asks of API errors.

use thiserror::Error;

pub use crate::runtime::client::is_refused_write;

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
    /// The status write kept racing with another writer; the job is reconciled again.
    #[error(
        "status of {0} changed while reconciling (409 Conflict) on every retry; reconciling again"
    )]
    Conflict(String),
    /// The pod/service caches were dropped before they finished their initial list.
    #[error(
        "the pod and service caches are not ready (watch failed to start); check RBAC for pods and services"
    )]
    CacheNotReady,
    /// This replica is not the leader (any more): the client refused to send a write.
    #[error("not the leader (any more): {0} was not sent")]
    NotLeader(String),
    /// The object from the cache lacks a field the API server always sets.
    #[error("TFJob is missing metadata.{0}; is the API server serving kubeflow.org/v1 correctly?")]
    MissingMetadata(&'static str),
}

impl Error {
    /// `action` failed with `source`; a write the leader gate kept back is [`Error::NotLeader`].
    pub fn api(action: impl Into<String>, source: kube::Error) -> Self {
        let action = action.into();
        if is_refused_write(&source) {
            return Error::NotLeader(action);
        }
        Error::Api { action, source }
    }

    /// A short label for metrics and logs.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Api { .. } => "api",
            Error::Conflict(_) => "conflict",
            Error::MissingMetadata(_) => "invalid_object",
            Error::CacheNotReady => "cache",
            Error::NotLeader(_) => "not_leader",
        }
    }

    /// Whether this is an expected, transient state rather than a failure worth a warning log.
    pub fn is_expected(&self) -> bool {
        matches!(self, Error::Conflict(_) | Error::NotLeader(_))
    }

    /// The admission webhook the API server could not call, when that is why an API call failed.
    pub fn unreachable_webhook(&self) -> Option<&str> {
        match self {
            Error::Api { source, .. } => unreachable_webhook(source),
            _ => None,
        }
    }
}

/// The API server's Status, when the error is one.
fn status(err: &kube::Error) -> Option<&kube::core::Status> {
    match err {
        kube::Error::Api(status) => Some(status),
        _ => None,
    }
}

/// Whether the object does not exist (404).
pub fn is_not_found(err: &kube::Error) -> bool {
    status(err).is_some_and(kube::core::Status::is_not_found)
}

/// Whether a create found an object of that name already there.
pub fn is_already_exists(err: &kube::Error) -> bool {
    status(err).is_some_and(kube::core::Status::is_already_exists)
}

/// Whether the API server refused a write as invalid (422; e.g. a JSON patch whose test failed).
pub fn is_invalid(err: &kube::Error) -> bool {
    status(err).is_some_and(kube::core::Status::is_invalid)
}

/// Whether a write lost a race (409 Conflict: stale resourceVersion or failed precondition).
pub fn is_conflict(err: &kube::Error) -> bool {
    status(err).is_some_and(kube::core::Status::is_conflict)
}

/// The admission webhook the API server could not call, when that is why a write failed: the
/// API server answers 500 `failed calling webhook "NAME": ...` while a webhook whose
/// `failurePolicy` is `Fail` is down (e.g. Kueue's `vtfjob.kb.io` while Kueue is stopped).
pub fn unreachable_webhook(err: &kube::Error) -> Option<&str> {
    let message = &status(err)?.message;
    let after = message.split_once("failed calling webhook \"")?.1;
    after.split_once('"').map(|(name, _)| name)
}

/// Whether the API server refused a write because the namespace is being deleted (the namespace
/// controller removes everything in it; there is nothing to create there any more).
pub fn is_namespace_terminating(err: &kube::Error) -> bool {
    status(err).is_some_and(|s| {
        s.is_forbidden()
            && s.details
                .as_ref()
                .is_some_and(|d| d.causes.iter().any(|c| c.reason == "NamespaceTerminating"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error(code: u16, message: &str) -> kube::Error {
        kube::Error::Api(Box::new(
            kube::core::Status::failure(message, "InternalError").with_code(code),
        ))
    }

    #[test]
    fn an_unreachable_webhook_is_named() {
        let refused = api_error(
            500,
            "Internal error occurred: failed calling webhook \"vtfjob.kb.io\": failed to call \
             webhook: Post \"https://127.0.0.1:1/validate-kubeflow-org-v1-tfjob?timeout=10s\": \
             dial tcp 127.0.0.1:1: connect: connection refused",
        );
        assert_eq!(unreachable_webhook(&refused), Some("vtfjob.kb.io"));
        let err = Error::Api {
            action: "removing the finalizer of TFJob a/b".into(),
            source: refused,
        };
        assert_eq!(err.unreachable_webhook(), Some("vtfjob.kb.io"));
        assert_eq!(
            unreachable_webhook(&api_error(500, "etcdserver: timeout")),
            None
        );
        assert_eq!(
            unreachable_webhook(&api_error(500, "failed calling webhook \"cut")),
            None
        );
        assert_eq!(Error::CacheNotReady.unreachable_webhook(), None);
    }
}

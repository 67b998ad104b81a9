//! The leader gate at the edge of the process: every write (POST, PUT, PATCH, DELETE) is asked
//! of the [`LeaderGate`] as it is sent, and refused with [`NotLeader`] while this replica may
//! not act. Reads (GET, LIST, WATCH) always pass: a standby keeps warm caches. So do the POSTs
//! that store nothing: access reviews (the start-up checks ask what this replica may do before
//! it leads) and dry runs.
//!
//! The check happens in `call`, after every wait of the layers above it (rate, in-flight), so a
//! write that waited through a Lease loss (a paused process, a stalled VM) is refused when it
//! would leave, not let through because it was admitted earlier.

use std::task::{Context, Poll};

use http::{Method, Request};
use tower::{Layer, Service};

use super::{BoxError, BoxFuture};
use crate::runtime::leader::LeaderGate;

/// Why a write never left this replica: it is not the leader (any more).
#[derive(Clone, Copy, Debug, thiserror::Error)]
#[error("not the leader: this replica does not hold the leader Lease, so it writes nothing")]
pub struct NotLeader;

/// Whether `err` is a write the leader gate refused (it never reached the API server).
pub fn is_refused_write(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Service(e) if e.is::<NotLeader>())
}

/// Refuses writes while the gate is closed.
#[derive(Clone)]
pub struct LeaderGateLayer {
    gate: LeaderGate,
}

impl LeaderGateLayer {
    /// The layer asking `gate`.
    pub fn new(gate: LeaderGate) -> Self {
        Self { gate }
    }
}

impl<S> Layer<S> for LeaderGateLayer {
    type Service = Gated<S>;

    fn layer(&self, inner: S) -> Gated<S> {
        Gated {
            inner,
            gate: self.gate.clone(),
        }
    }
}

/// The service of [`LeaderGateLayer`].
pub struct Gated<S> {
    inner: S,
    gate: LeaderGate,
}

/// Whether `request` changes something in the cluster.
fn is_write<B>(request: &Request<B>) -> bool {
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) {
        return false;
    }
    let path = request.uri().path();
    let review = path.starts_with("/apis/authorization.k8s.io/")
        || path.starts_with("/apis/authentication.k8s.io/");
    let dry_run = request
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|p| p == "dryRun=All"));
    !(review || dry_run)
}

impl<S, B> Service<Request<B>> for Gated<S>
where
    S: Service<Request<B>>,
    S::Response: Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = BoxFuture<Result<S::Response, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        if is_write(&request) && !self.gate.may_act() {
            return Box::pin(std::future::ready(Err(NotLeader.into())));
        }
        let response = self.inner.call(request);
        Box::pin(async move { response.await.map_err(Into::into) })
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{answer, ready_within_5s, request};
    use super::*;
    use crate::runtime::leader::LeaderGate;

    #[tokio::test]
    async fn writes_pass_only_while_the_gate_is_open_and_reads_always() {
        let (service, mut handle) = tower_test::mock::pair::<Request<()>, http::Response<()>>();
        let gate = LeaderGate::for_election();
        let mut client = LeaderGateLayer::new(gate.clone()).layer(service);
        let server = tokio::spawn(async move {
            let mut reached = Vec::new();
            while let Some((request, respond)) = handle.next_request().await {
                reached.push(format!("{} {}", request.method(), request.uri()));
                respond.send_response(answer(200));
            }
            reached
        });
        let mut send = async |method: &str, uri: &str| {
            ready_within_5s(&mut client, "ready").await;
            client.call(request(method, uri)).await
        };
        // A standby: reads pass, no write of any verb does.
        for method in ["POST", "PUT", "PATCH", "DELETE"] {
            let refused = send(method, "/api/v1/namespaces/ns/pods").await;
            assert!(refused.is_err_and(|e| e.is::<NotLeader>()), "{method}");
        }
        assert!(send("GET", "/api/v1/pods?watch=true").await.is_ok());
        // The leader writes; once its Lease is gone, it does not.
        gate.open_for_test();
        assert!(send("POST", "/api/v1/namespaces/ns/events").await.is_ok());
        gate.revoke();
        let late = send("PATCH", "/apis/kubeflow.org/v1/namespaces/ns/tfjobs/j").await;
        assert!(late.is_err_and(|e| e.is::<NotLeader>()));
        assert!(send("GET", "/api/v1/namespaces/ns/pods/p").await.is_ok());
        drop(client);
        let reached = server.await.expect("the fake server");
        assert_eq!(
            reached,
            [
                "GET /api/v1/pods?watch=true",
                "POST /api/v1/namespaces/ns/events",
                "GET /api/v1/namespaces/ns/pods/p",
            ]
        );
    }

    #[test]
    fn access_reviews_and_dry_runs_are_not_writes() {
        let review = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";
        assert!(!is_write(&request("POST", review)));
        assert!(!is_write(&request(
            "POST",
            "/api/v1/namespaces/ns/pods?dryRun=All"
        )));
        assert!(is_write(&request("POST", "/api/v1/namespaces/ns/pods")));
        assert!(is_write(&request(
            "DELETE",
            "/apis/kubeflow.org/v1/namespaces/ns/tfjobs"
        )));
        assert!(!is_write(&request("GET", "/api/v1/pods?watch=true")));
    }

    #[test]
    fn a_refused_write_is_told_from_other_client_errors() {
        assert!(is_refused_write(&kube::Error::Service(NotLeader.into())));
        let io = std::io::Error::other("reset");
        assert!(!is_refused_write(&kube::Error::Service(io.into())));
    }
}

//! A bound on requests in flight (`--kube-api-max-in-flight`), as tower's `ConcurrencyLimit`
//! (the service is ready only with a permit), except that a watch gives its permit back as it
//! is sent: it stays open for minutes. Each request in flight is a stream on the HTTP/2
//! connection with its own buffers (a connection of its own, with its TLS state, when the API
//! server answers in HTTP/1.1): without a bound, a burst of parallel creates and events from
//! every reconcile at once would hold them all at once.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::Request;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::{Layer, Service};

use super::BoxFuture;

/// Holds requests beyond a bound until one in flight is answered; without a bound, lets all
/// through.
#[derive(Clone)]
pub struct InFlightLayer {
    permits: Option<Arc<Semaphore>>,
}

impl InFlightLayer {
    /// The layer for at most `max` requests in flight (at least 1).
    pub fn new(max: Option<usize>) -> Self {
        Self {
            permits: max.map(|n| Arc::new(Semaphore::new(n.clamp(1, Semaphore::MAX_PERMITS)))),
        }
    }
}

impl<S> Layer<S> for InFlightLayer {
    type Service = InFlight<S>;

    fn layer(&self, inner: S) -> InFlight<S> {
        InFlight {
            inner,
            permits: self.permits.clone(),
            acquiring: None,
            permit: None,
        }
    }
}

/// The service of [`InFlightLayer`]: ready only with a permit.
pub struct InFlight<S> {
    inner: S,
    permits: Option<Arc<Semaphore>>,
    /// The wait for a permit, while one is pending.
    acquiring: Option<BoxFuture<Option<OwnedSemaphorePermit>>>,
    /// The permit held for the next call.
    permit: Option<OwnedSemaphorePermit>,
}

impl<S, B> Service<Request<B>> for InFlight<S>
where
    S: Service<Request<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        if let Some(permits) = &self.permits
            && self.permit.is_none()
        {
            let acquire = self.acquiring.get_or_insert_with(|| {
                let permits = permits.clone();
                Box::pin(async move { permits.acquire_owned().await.ok() })
            });
            let Poll::Ready(permit) = acquire.as_mut().poll(cx) else {
                return Poll::Pending;
            };
            self.acquiring = None;
            self.permit = permit;
        }
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let permit = self.permit.take().filter(|_| !is_watch(&request));
        let response = self.inner.call(request);
        Box::pin(async move {
            let result = response.await;
            drop(permit);
            result
        })
    }
}

/// Whether `request` opens a watch (it stays in flight for minutes: it takes no permit).
fn is_watch<B>(request: &Request<B>) -> bool {
    request
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{answer, ready_within_5s, request, stays_unready};
    use super::*;

    #[test]
    fn watches_are_told_from_other_requests() {
        let req = |uri: &str| request("GET", uri);
        assert!(is_watch(&req(
            "/api/v1/pods?labelSelector=a&watch=true&timeoutSeconds=290"
        )));
        assert!(!is_watch(&req("/api/v1/pods?labelSelector=watch%3Dtrue")));
        assert!(!is_watch(&req("/api/v1/namespaces/ns/pods")));
    }

    #[tokio::test]
    async fn requests_beyond_the_bound_wait_for_one_in_flight() {
        let (service, mut handle) = tower_test::mock::pair::<Request<()>, http::Response<()>>();
        let mut client = InFlightLayer::new(Some(2)).layer(service);
        let mut answers = Vec::new();
        // Two requests and a watch in flight: the watch holds no permit.
        for uri in ["/pods/a", "/pods?watch=true", "/pods/b"] {
            ready_within_5s(&mut client, "a permit is free").await;
            answers.push(tokio::spawn(client.call(request("GET", uri))));
        }
        let mut pending = Vec::new();
        for _ in 0..3 {
            let (request, respond) = handle.next_request().await.expect("a request");
            pending.push((request.uri().to_string(), respond));
        }
        // A third request is not let through while both permits are held ...
        assert!(
            stays_unready(&mut client).await,
            "ready with two requests in flight"
        );
        // ... and is once /pods/a is answered.
        let at = pending
            .iter()
            .position(|(uri, _)| uri == "/pods/a")
            .expect("sent");
        pending.remove(at).1.send_response(answer(200));
        ready_within_5s(&mut client, "a permit freed by the answer").await;
        answers.push(tokio::spawn(client.call(request("GET", "/pods/c"))));
        let (request, _respond) = handle.next_request().await.expect("the third");
        assert_eq!(request.uri().to_string(), "/pods/c");
        drop(pending);
        drop(answers);
    }
}

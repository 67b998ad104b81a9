//! The Kubernetes client: kube's default stack with one layer of ours in front, which
//!
//! - counts every request by verb and response code (`tfjob_operator_api_requests_total`);
//! - optionally holds requests to a client-side rate (`--kube-api-qps`, `--kube-api-burst`):
//!   a token bucket like client-go's, which kube does not have. A request waits for a token
//!   before it is sent; watches take one per (re)connect;
//! - holds requests beyond `--kube-api-max-in-flight` until one in flight is answered (as
//!   tower's `ConcurrencyLimit`: the service is ready only with a permit); a watch gives its
//!   permit back as it is sent, since it stays open for minutes. Each request in flight holds a
//!   connection of its own (HTTP/1.1), with its TLS state and buffers: without a bound, a burst
//!   of parallel creates and events from every reconcile at once opens as many connections.

use std::future::Future;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use http::{Request, Response};
use kube::client::ClientBuilder;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::{Layer, Service};

use super::metrics::Metrics;

/// A client-side rate limit: `qps` requests per second on average, up to `burst` at once.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimit {
    /// Sustained requests per second (> 0).
    pub qps: f64,
    /// Requests allowed at once after a quiet period (at least 1).
    pub burst: u32,
}

impl RateLimit {
    fn limiter(self) -> Option<DefaultDirectRateLimiter> {
        if self.qps.is_nan() || self.qps <= 0.0 {
            return None;
        }
        let period = Duration::from_secs_f64(1.0 / self.qps.min(1e9));
        let burst = NonZeroU32::new(self.burst).unwrap_or(NonZeroU32::MIN);
        Quota::with_period(period).map(|q| RateLimiter::direct(q.allow_burst(burst)))
    }
}

/// The client-side bounds on API requests.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ClientLimits {
    /// Requests per second, if limited.
    pub rate: Option<RateLimit>,
    /// Requests in flight at once (watches excluded), if limited.
    pub max_in_flight: Option<usize>,
}

/// A client from KUBECONFIG or the in-cluster config, with our layer (see the module docs).
pub async fn build(
    limits: ClientLimits,
    metrics: Arc<Metrics>,
) -> Result<kube::Client, kube::Error> {
    let config = kube::Config::infer()
        .await
        .map_err(kube::Error::InferConfig)?;
    let layer = ClientLayer {
        limiter: limits.rate.and_then(RateLimit::limiter).map(Arc::new),
        in_flight: limits
            .max_in_flight
            .map(|n| Arc::new(Semaphore::new(n.clamp(1, Semaphore::MAX_PERMITS)))),
        metrics,
    };
    Ok(ClientBuilder::try_from(config)?.with_layer(&layer).build())
}

/// The layer of [`build`].
#[derive(Clone)]
struct ClientLayer {
    limiter: Option<Arc<DefaultDirectRateLimiter>>,
    in_flight: Option<Arc<Semaphore>>,
    metrics: Arc<Metrics>,
}

impl<S> Layer<S> for ClientLayer {
    type Service = Limited<S>;

    fn layer(&self, inner: S) -> Limited<S> {
        Limited {
            inner,
            limiter: self.limiter.clone(),
            in_flight: self.in_flight.clone(),
            metrics: self.metrics.clone(),
            waiting: None,
            permitted: false,
            acquiring: None,
            permit: None,
        }
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The service of [`ClientLayer`]: ready only once the rate limit gives a token.
struct Limited<S> {
    inner: S,
    limiter: Option<Arc<DefaultDirectRateLimiter>>,
    /// Permits for requests in flight (a watch gives its permit back as it is sent).
    in_flight: Option<Arc<Semaphore>>,
    metrics: Arc<Metrics>,
    /// The wait for the next token, while one is pending.
    waiting: Option<BoxFuture<()>>,
    /// Whether a token is held for the next call.
    permitted: bool,
    /// The wait for a permit to be in flight, while one is pending.
    acquiring: Option<BoxFuture<Option<OwnedSemaphorePermit>>>,
    /// The permit held for the next call.
    permit: Option<OwnedSemaphorePermit>,
}

impl<S, B, RB> Service<Request<B>> for Limited<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Future: Send + 'static,
    S::Error: 'static,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response<RB>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        if let Some(limiter) = &self.limiter
            && !self.permitted
        {
            let wait = self.waiting.get_or_insert_with(|| {
                let limiter = limiter.clone();
                Box::pin(async move { limiter.until_ready().await })
            });
            if wait.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.waiting = None;
            self.permitted = true;
        }
        if let Some(permits) = &self.in_flight
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
        self.permitted = false;
        let verb = request.method().as_str().to_string();
        let metrics = self.metrics.clone();
        let permit = self.permit.take().filter(|_| !is_watch(&request));
        let response = self.inner.call(request);
        Box::pin(async move {
            let result = response.await;
            drop(permit);
            let code = match &result {
                Ok(r) => r.status().as_u16().to_string(),
                Err(_) => "error".to_string(),
            };
            metrics.count_request(verb, code);
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
    use super::*;

    #[test]
    fn watches_are_told_from_other_requests() {
        let req = |uri: &str| Request::get(uri).body(()).expect("a request");
        assert!(is_watch(&req(
            "/api/v1/pods?labelSelector=a&watch=true&timeoutSeconds=290"
        )));
        assert!(!is_watch(&req("/api/v1/pods?labelSelector=watch%3Dtrue")));
        assert!(!is_watch(&req("/api/v1/namespaces/ns/pods")));
    }

    /// Waits until `client` is ready to send; panics with `what` after 5 s.
    async fn ready_within_5s<S>(client: &mut S, what: &str)
    where
        S: Service<Request<()>>,
        S::Error: std::fmt::Debug,
    {
        let ready = futures::future::poll_fn(|cx| client.poll_ready(cx));
        tokio::time::timeout(Duration::from_secs(5), ready)
            .await
            .expect(what)
            .expect("ready");
    }

    #[tokio::test]
    async fn requests_beyond_the_bound_wait_for_one_in_flight() {
        let (service, mut handle) = tower_test::mock::pair::<Request<()>, Response<()>>();
        let layer = ClientLayer {
            limiter: None,
            in_flight: Some(Arc::new(Semaphore::new(2))),
            metrics: Arc::new(Metrics::new()),
        };
        let mut client = layer.layer(service);
        let mut answers = Vec::new();
        // Two requests and a watch in flight: the watch holds no permit.
        for uri in ["/pods/a", "/pods?watch=true", "/pods/b"] {
            ready_within_5s(&mut client, "a permit is free").await;
            let request = Request::get(uri).body(()).expect("a request");
            answers.push(tokio::spawn(client.call(request)));
        }
        let mut pending = Vec::new();
        for _ in 0..3 {
            let (request, respond) = handle.next_request().await.expect("a request");
            pending.push((request.uri().to_string(), respond));
        }
        // A third request is not let through while both permits are held ...
        let ready = futures::future::poll_fn(|cx| client.poll_ready(cx));
        let waited = tokio::time::timeout(Duration::from_millis(200), ready).await;
        assert!(waited.is_err(), "ready with two requests in flight");
        // ... and is once /pods/a is answered.
        let at = pending
            .iter()
            .position(|(uri, _)| uri == "/pods/a")
            .expect("sent");
        pending.remove(at).1.send_response(Response::new(()));
        ready_within_5s(&mut client, "a permit freed by the answer").await;
        let request = Request::get("/pods/c").body(()).expect("a request");
        answers.push(tokio::spawn(client.call(request)));
        let (request, _respond) = handle.next_request().await.expect("the third");
        assert_eq!(request.uri().to_string(), "/pods/c");
        drop(pending);
        drop(answers);
    }

    #[test]
    fn no_limit_unless_qps_is_positive() {
        let limit = |qps| RateLimit { qps, burst: 3 }.limiter();
        assert!(limit(0.0).is_none());
        assert!(limit(-1.0).is_none());
        assert!(limit(f64::NAN).is_none());
        let five = limit(5.0).expect("a limiter");
        let granted = (0..10).filter(|_| five.check().is_ok()).count();
        assert_eq!(granted, 3, "the burst, then one every 200 ms");
    }
}

//! A client-side rate limit: a token bucket like client-go's (`--kube-api-qps`,
//! `--kube-api-burst`). A request waits for a token before it is sent; a watch takes one per
//! (re)connect.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use http::Request;
use tower::{Layer, Service};

use super::BoxFuture;

/// `qps` requests per second on average, up to `burst` at once.
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

/// Holds requests to a rate; without one (or with a non-positive qps), lets all through.
#[derive(Clone)]
pub struct RateLayer {
    limiter: Option<Arc<DefaultDirectRateLimiter>>,
}

impl RateLayer {
    /// The layer for `limit`.
    pub fn new(limit: Option<RateLimit>) -> Self {
        Self {
            limiter: limit.and_then(RateLimit::limiter).map(Arc::new),
        }
    }
}

impl<S> Layer<S> for RateLayer {
    type Service = Rated<S>;

    fn layer(&self, inner: S) -> Rated<S> {
        Rated {
            inner,
            limiter: self.limiter.clone(),
            waiting: None,
            token: false,
        }
    }
}

/// The service of [`RateLayer`]: ready only once it holds a token.
pub struct Rated<S> {
    inner: S,
    limiter: Option<Arc<DefaultDirectRateLimiter>>,
    /// The wait for the next token, while one is pending.
    waiting: Option<BoxFuture<()>>,
    /// Whether a token is held for the next call.
    token: bool,
}

impl<S, B> Service<Request<B>> for Rated<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        if let Some(limiter) = &self.limiter
            && !self.token
        {
            let wait = self.waiting.get_or_insert_with(|| {
                let limiter = limiter.clone();
                Box::pin(async move { limiter.until_ready().await })
            });
            if wait.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.waiting = None;
            self.token = true;
        }
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> S::Future {
        self.token = false;
        self.inner.call(request)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{ready_within_5s, request, stays_unready};
    use super::*;

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

    #[tokio::test]
    async fn the_burst_passes_then_requests_wait_for_a_token() {
        let (service, mut handle) = tower_test::mock::pair::<Request<()>, http::Response<()>>();
        let limit = RateLimit { qps: 0.5, burst: 2 };
        let mut client = RateLayer::new(Some(limit)).layer(service);
        let mut sent = Vec::new();
        for uri in ["/a", "/b"] {
            ready_within_5s(&mut client, "a token of the burst").await;
            sent.push(tokio::spawn(client.call(request("GET", uri))));
        }
        for _ in 0..2 {
            handle.next_request().await.expect("sent");
        }
        // The third waits two seconds for its token.
        assert!(stays_unready(&mut client).await, "ready beyond the burst");
        drop(sent);
    }

    #[tokio::test]
    async fn without_a_limit_every_request_passes() {
        let (service, mut handle) = tower_test::mock::pair::<Request<()>, http::Response<()>>();
        let mut client = RateLayer::new(None).layer(service);
        for _ in 0..50 {
            ready_within_5s(&mut client, "no limit").await;
            drop(client.call(request("GET", "/a")));
            handle.next_request().await.expect("sent");
        }
    }
}

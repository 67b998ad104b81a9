//! Counts every request by verb and response code (`tfjob_operator_api_requests_total`):
//! `error` when no answer came, `refused` for a write the leader gate kept from the API server.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower::{Layer, Service};

use super::leader_gate::NotLeader;
use super::{BoxError, BoxFuture};
use crate::runtime::metrics::Metrics;

/// Counts requests into [`Metrics`].
#[derive(Clone)]
pub struct RequestMetricsLayer {
    metrics: Arc<Metrics>,
}

impl RequestMetricsLayer {
    /// The layer counting into `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self { metrics }
    }
}

impl<S> Layer<S> for RequestMetricsLayer {
    type Service = Counted<S>;

    fn layer(&self, inner: S) -> Counted<S> {
        Counted {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// The service of [`RequestMetricsLayer`].
pub struct Counted<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S, B, RB> Service<Request<B>> for Counted<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
{
    type Response = Response<RB>;
    type Error = BoxError;
    type Future = BoxFuture<Result<Response<RB>, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let verb = request.method().as_str().to_string();
        let metrics = self.metrics.clone();
        let response = self.inner.call(request);
        Box::pin(async move {
            let result = response.await.map_err(Into::into);
            let code = match &result {
                Ok(r) => r.status().as_u16().to_string(),
                Err(e) if e.is::<NotLeader>() => "refused".to_string(),
                Err(_) => "error".to_string(),
            };
            metrics.count_request(verb, code);
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{answer, ready_within_5s, request};
    use super::*;

    #[tokio::test]
    async fn requests_are_counted_by_verb_and_answer() {
        let metrics = Arc::new(Metrics::new());
        let (service, mut handle) = tower_test::mock::pair::<Request<()>, Response<()>>();
        let mut client = RequestMetricsLayer::new(metrics.clone()).layer(service);
        let server = tokio::spawn(async move {
            let (_, respond) = handle.next_request().await.expect("the POST");
            respond.send_response(answer(201));
            let (_, respond) = handle.next_request().await.expect("the DELETE");
            respond.send_error(NotLeader);
            let (_, respond) = handle.next_request().await.expect("the GET");
            respond.send_error(std::io::Error::other("connection reset"));
        });
        for method in ["POST", "DELETE", "GET"] {
            ready_within_5s(&mut client, "no limit").await;
            drop(client.call(request(method, "/pods")).await);
        }
        server.await.expect("answered");
        let text = metrics.encode();
        for line in [
            r#"tfjob_operator_api_requests_total{verb="POST",code="201"} 1"#,
            r#"tfjob_operator_api_requests_total{verb="DELETE",code="refused"} 1"#,
            r#"tfjob_operator_api_requests_total{verb="GET",code="error"} 1"#,
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
    }
}

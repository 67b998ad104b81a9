//! The Kubernetes client: kube's stack over one HTTP/2 connection ([`http2`]), with four small
//! layers of ours in front, each one concern and one module, in the order a request passes
//! them:
//!
//! 1. [`request_metrics`]: counts every request by verb and response code
//!    (`tfjob_operator_api_requests_total`);
//! 2. [`rate`]: holds requests to a client-side rate (`--kube-api-qps`, `--kube-api-burst`), a
//!    token bucket like client-go's, which kube does not have;
//! 3. [`in_flight`]: holds requests beyond `--kube-api-max-in-flight` until one in flight is
//!    answered (a watch gives its permit back as it is sent);
//! 4. [`leader_gate`]: refuses every write (POST, PUT, PATCH, DELETE; events included) while
//!    this replica is not the leader. It sits last, next to the wire, so a write that waited
//!    for a token or a permit is checked when it is actually sent, and no code path can
//!    forget to ask.
//!
//! The leader election itself talks to the API server through a client without the gate
//! ([`build_ungated`]): it must write the Lease to become the leader.

mod fence;
mod http2;
mod in_flight;
mod leader_gate;
mod rate;
mod request_metrics;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use leader_gate::{LeaderGateLayer, NotLeader, is_refused_write};
pub use rate::RateLimit;

use super::leader::LeaderGate;
use super::metrics::Metrics;

/// The client-side bounds on API requests.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ClientLimits {
    /// Requests per second, if limited.
    pub rate: Option<RateLimit>,
    /// Requests in flight at once (watches excluded), if limited.
    pub max_in_flight: Option<usize>,
}

/// The error every layer of ours answers with (kube's stack answers with it too).
type BoxError = tower::BoxError;

/// A boxed future, as the layers return from `call`.
type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The `User-Agent` of every request: the API server names the operator after it in audit
/// logs and in `managedFields` (kube sends none, which the API server records as `unknown`).
pub const USER_AGENT: &str = concat!("tfjob-operator/", env!("CARGO_PKG_VERSION"));

/// kube's stack over HTTP/2 ([`http2`]) for KUBECONFIG or the in-cluster config; fenced by
/// `fence` ([`fence`]) if given.
async fn stack(
    fence: Option<LeaderGate>,
) -> Result<kube::client::ClientBuilder<http2::Stack>, kube::Error> {
    let mut config = kube::Config::infer()
        .await
        .map_err(kube::Error::InferConfig)?;
    identify(&mut config);
    http2::builder(config, fence)
}

/// Sends [`USER_AGENT`] with every request, unless the configuration names another.
fn identify(config: &mut kube::Config) {
    let named = config
        .headers
        .iter()
        .any(|(name, _)| name == http::header::USER_AGENT);
    if !named {
        config.headers.push((
            http::header::USER_AGENT,
            http::HeaderValue::from_static(USER_AGENT),
        ));
    }
}

/// The operator's client from KUBECONFIG or the in-cluster config: kube's stack, with our
/// layers in front (see the module docs). Writes pass only while `gate` is open.
pub async fn build(
    limits: ClientLimits,
    metrics: Arc<Metrics>,
    gate: LeaderGate,
) -> Result<kube::Client, kube::Error> {
    let client = stack(Some(gate.clone()))
        .await?
        .with_layer(&leader_gate::LeaderGateLayer::new(gate))
        .with_layer(&in_flight::InFlightLayer::new(limits.max_in_flight))
        .with_layer(&rate::RateLayer::new(limits.rate))
        .with_layer(&request_metrics::RequestMetricsLayer::new(metrics))
        .build();
    Ok(client)
}

/// A client with none of our layers, for one-off commands (`release-finalizers`).
pub async fn build_plain() -> Result<kube::Client, kube::Error> {
    Ok(stack(None).await?.build())
}

/// A client with the request metrics only: for the leader election, which writes the Lease
/// before this replica may write anything else, and must not wait behind the controller's
/// requests to renew it.
pub async fn build_ungated(metrics: Arc<Metrics>) -> Result<kube::Client, kube::Error> {
    let client = stack(None)
        .await?
        .with_layer(&request_metrics::RequestMetricsLayer::new(metrics))
        .build();
    Ok(client)
}

#[cfg(test)]
pub(crate) mod test_support {
    //! What the layers' tests share: a mock service behind a layer, and a bounded wait.

    use std::time::Duration;

    use http::{Request, Response};
    use tower::Service;

    /// Waits until `client` is ready to send; panics with `what` after 5 s.
    pub async fn ready_within_5s<S>(client: &mut S, what: &str)
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

    /// Whether `client` stays unready for 200 ms.
    pub async fn stays_unready<S>(client: &mut S) -> bool
    where
        S: Service<Request<()>>,
    {
        let ready = futures::future::poll_fn(|cx| client.poll_ready(cx));
        tokio::time::timeout(Duration::from_millis(200), ready)
            .await
            .is_err()
    }

    /// A request with `method` to `uri`.
    pub fn request(method: &str, uri: &str) -> Request<()> {
        Request::builder()
            .method(method)
            .uri(uri)
            .body(())
            .expect("a request")
    }

    /// An empty answer with `code`.
    pub fn answer(code: u16) -> Response<()> {
        let mut response = Response::new(());
        *response.status_mut() = http::StatusCode::from_u16(code).expect("a status code");
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> kube::Config {
        kube::Config::new("https://127.0.0.1:6443".parse().expect("a URL"))
    }

    #[test]
    fn every_request_names_the_operator_unless_the_configuration_names_another() {
        let mut plain = config();
        identify(&mut plain);
        let agents: Vec<_> = plain
            .headers
            .iter()
            .filter(|(n, _)| n == http::header::USER_AGENT)
            .collect();
        assert_eq!(agents.len(), 1);
        assert_eq!(agents[0].1, USER_AGENT);
        assert!(
            USER_AGENT.starts_with("tfjob-operator/"),
            "the API server names the manager after the part before '/'"
        );

        let mut named = config();
        named.headers.push((
            http::header::USER_AGENT,
            http::HeaderValue::from_static("mine/1"),
        ));
        identify(&mut named);
        let agents: Vec<_> = named
            .headers
            .iter()
            .filter(|(n, _)| n == http::header::USER_AGENT)
            .map(|(_, v)| v.clone())
            .collect();
        assert_eq!(agents, vec![http::HeaderValue::from_static("mine/1")]);
    }
}

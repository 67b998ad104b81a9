//! kube's client stack over one HTTP/2 connection instead of a pool of HTTP/1.1 ones.
//!
//! kube's own stack speaks HTTP/1.1 only: every request in flight holds a connection with its
//! TLS state and buffers, and a busy operator kept ~40 of them (32 requests in flight and one
//! per watch). client-go, and so the Go operator, multiplexes everything over HTTP/2. This is
//! kube's stack (base URI, authentication, impersonation headers, timeouts, the retry of 429 and
//! 503 answers) over a client that negotiates `h2` and keeps one connection per API server,
//! pinging it while idle so a dead one is noticed and a quiet watch is not cut by the read
//! timeout. Like kube's stack as we build it (without kube's proxy features), it refuses a
//! kubeconfig that names a proxy.

use std::time::Duration;

use http::{Request, Response};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use kube::client::retry::RetryPolicy;
use kube::client::{Body, ClientBuilder, ConfigExt, DynBody};
use kube::{Config, Error};

use super::fence::Fenced;
use crate::runtime::leader::LeaderGate;
use tower::retry::RetryLayer;
use tower::util::BoxService;
use tower::{BoxError, ServiceBuilder, ServiceExt};

/// The stack, boxed (as kube boxes its own).
pub type Stack = BoxService<Request<Body>, Response<Box<DynBody>>, BoxError>;

/// How often an idle connection is pinged; client-go's `ReadIdleTimeout` is 30 s too.
const PING_EVERY: Duration = Duration::from_secs(30);
/// How long a ping may go unanswered before the connection is taken for dead (client-go: 15 s).
const PING_TIMEOUT: Duration = Duration::from_secs(15);

/// A [`ClientBuilder`] for `config`: kube's stack over HTTP/2; with `fence`, its connections
/// refuse to write once that gate says the Lease was lost ([`super::fence`]).
pub fn builder(config: Config, fence: Option<LeaderGate>) -> Result<ClientBuilder<Stack>, Error> {
    if let Some(proxy_url) = config.proxy_url {
        return Err(Error::ProxyProtocolDisabled {
            proxy_url: Box::new(proxy_url),
            protocol_feature: "kube/http-proxy",
        });
    }
    let mut tcp = HttpConnector::new();
    tcp.enforce_http(false);
    tcp.set_nodelay(true);
    let gate = fence.unwrap_or_else(LeaderGate::always_open);
    let tcp = tcp.map_response(move |io| Fenced::new(io, gate.clone()));
    // ALPN offers h2 first, then http/1.1 (an API server that declines h2 still works).
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config.rustls_client_config()?)
        .https_or_http()
        .enable_all_versions()
        .wrap_connector(tcp);
    let mut connector = hyper_timeout::TimeoutConnector::new(https);
    connector.set_connect_timeout(config.connect_timeout);
    connector.set_read_timeout(config.read_timeout);
    connector.set_write_timeout(config.write_timeout);
    connector.set_reset_reader_on_write(config.reset_reader_on_write);
    let client: HyperClient<_, Body> = HyperClient::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .http2_keep_alive_interval(PING_EVERY)
        .http2_keep_alive_timeout(PING_TIMEOUT)
        .http2_keep_alive_while_idle(true)
        .build(connector);
    let retry = config
        .default_retry
        .then(|| RetryLayer::new(RetryPolicy::server_retry()));
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(retry)
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .map_err(BoxError::from)
        .service(client)
        .map_response(|response: Response<hyper::body::Incoming>| {
            response.map(|body| Box::new(body.map_err(BoxError::from)) as Box<DynBody>)
        })
        .boxed();
    Ok(ClientBuilder::new(service, config.default_namespace))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_stack_builds_and_a_proxy_is_refused_as_kube_refuses_it() {
        let mut config = Config::new("https://127.0.0.1:6443".parse().expect("a URI"));
        config.accept_invalid_certs = true;
        assert!(
            builder(config.clone(), None).is_ok(),
            "the HTTP/2 stack builds"
        );
        // kube is built without its proxy features: its stack refuses a proxy, and so do we.
        config.proxy_url = Some("http://127.0.0.1:3128".parse().expect("a URI"));
        let kubes = kube::client::ClientBuilder::try_from(config.clone())
            .err()
            .map(|e| e.to_string());
        let refused = builder(config, None).err().map(|e| e.to_string());
        assert_eq!(refused, kubes);
        assert!(
            refused
                .as_deref()
                .is_some_and(|e| e.contains("kube/http-proxy")),
            "kube's answer to a proxy: {refused:?}"
        );
    }
}

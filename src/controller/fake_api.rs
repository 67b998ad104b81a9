//! A fake API server for hermetic controller tests: a kube [`Client`] whose requests reach a
//! handler the test writes (tower-test's mock service), every request recorded in order.

use std::sync::{Arc, Mutex};

use http::{Request, Response};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};
use tower::Layer;

use crate::runtime::client::LeaderGateLayer;
use crate::runtime::leader::LeaderGate;

/// One request the controller made.
#[derive(Clone, Debug)]
pub struct Call {
    /// HTTP method, e.g. "PUT".
    pub method: String,
    /// Path without the query, e.g. "/apis/kubeflow.org/v1/namespaces/ns/tfjobs/j/status".
    pub path: String,
    /// The JSON body (Null when there was none).
    pub body: Value,
    /// The body's bytes as sent.
    pub raw: Vec<u8>,
}

impl Call {
    /// Whether this is `method` on a path ending in `suffix`.
    pub fn is(&self, method: &str, suffix: &str) -> bool {
        self.method == method && self.path.ends_with(suffix)
    }

    /// Whether this published an event (the recorder's POST or PATCH).
    pub fn is_event(&self) -> bool {
        self.path.contains("/events")
    }
}

/// The requests made so far.
#[derive(Clone, Default)]
pub struct Calls(Arc<Mutex<Vec<Call>>>);

impl Calls {
    /// Every call, events included, in order.
    pub fn all(&self) -> Vec<Call> {
        self.0.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// Calls other than event writes, in order.
    pub fn writes(&self) -> Vec<Call> {
        self.all().into_iter().filter(|c| !c.is_event()).collect()
    }

    /// The calls that were `method` on a path ending in `suffix`, in order.
    pub fn matching(&self, method: &str, suffix: &str) -> Vec<Call> {
        self.all()
            .into_iter()
            .filter(|c| c.is(method, suffix))
            .collect()
    }

    /// How many calls were `method` on a path ending in `suffix`.
    pub fn count(&self, method: &str, suffix: &str) -> usize {
        self.all().iter().filter(|c| c.is(method, suffix)).count()
    }

    /// Reasons of the events published.
    pub fn event_reasons(&self) -> Vec<String> {
        self.all()
            .iter()
            .filter(|c| c.is_event())
            .filter_map(|c| c.body["reason"].as_str().map(String::from))
            .collect()
    }
}

/// What the handler answers: an HTTP status and a JSON body.
pub type Answer = (u16, Value);

/// A client backed by `handler` whose writes pass `gate` first, as the operator's client's do
/// (`runtime::client`): what the gate refuses never reaches the handler. Returns the record of
/// the calls that reached it.
pub fn client(
    mut handler: impl FnMut(&Call) -> Answer + Send + 'static,
    gate: LeaderGate,
) -> (Client, Calls) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let calls = Calls::default();
    let record = calls.clone();
    tokio::spawn(async move {
        let mut handle = Box::pin(handle);
        while let Some((request, respond)) = handle.next_request().await {
            let method = request.method().to_string();
            let path = request.uri().path().to_string();
            let bytes = request
                .into_body()
                .collect_bytes()
                .await
                .unwrap_or_default();
            let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let raw = bytes.to_vec();
            let call = Call {
                method,
                path,
                body,
                raw,
            };
            let (code, answer) = handler(&call);
            if let Ok(mut c) = record.0.lock() {
                c.push(call);
            }
            let response = Response::builder()
                .status(code)
                .body(Body::from(serde_json::to_vec(&answer).unwrap_or_default()));
            match response {
                Ok(r) => respond.send_response(r),
                Err(e) => panic!("fake API server built a bad response: {e}"),
            }
        }
    });
    let gated = LeaderGateLayer::new(gate).layer(service);
    (Client::new(gated, "default"), calls)
}

/// The API server's answer for a write that succeeded: the object as sent, with a UID and the
/// resourceVersion `rv`.
pub fn stored(call: &Call, rv: u64) -> Answer {
    let mut obj = call.body.clone();
    let meta = &mut obj["metadata"];
    if meta["uid"].is_null() {
        meta["uid"] = json!(format!("uid-{}", meta["name"].as_str().unwrap_or("x")));
    }
    meta["resourceVersion"] = json!(rv.to_string());
    (if call.method == "POST" { 201 } else { 200 }, obj)
}

/// A Status error with `code` and `reason` (e.g. 409 "Conflict").
pub fn refused(code: u16, reason: &str) -> Answer {
    let status = json!({
        "kind": "Status", "apiVersion": "v1", "status": "Failure",
        "message": format!("refused by the fake API server: {reason}"),
        "reason": reason, "code": code,
    });
    (code, status)
}

/// The NamespaceLifecycle admission refusing a create in a namespace being deleted.
pub fn namespace_terminating() -> Answer {
    let status = json!({
        "kind": "Status", "apiVersion": "v1", "status": "Failure",
        "message": "unable to create new content in namespace ns because it is being terminated",
        "reason": "Forbidden", "code": 403,
        "details": {"causes": [{"reason": "NamespaceTerminating", "field": "metadata.namespace"}]},
    });
    (403, status)
}

/// A successful delete that removed the object outright.
pub fn deleted() -> Answer {
    let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 200});
    (200, status)
}

//! Wiring: the watches (TFJobs; our pods and services, label-filtered and trimmed), the caches
//! they fill, and kube-runtime's Controller that calls [`super::reconcile`] for each changed job.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use backon::ExponentialBuilder;

use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt, TryStreamExt};
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::controller::Config as RuntimeConfig;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::utils::Backoff;
use kube::runtime::watcher::ExponentialBackoff;
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Client, Resource};
use tracing::{debug, info, warn};

use super::child_cache::{Child, ChildCache};
use super::config::ControllerConfig;
use super::context::Context;
use super::reconcile::{error_policy, reconcile};
use super::timing::{CACHE_SIZE_REPORT, SHUTDOWN_GRACE, WATCH_RETRY_FIRST, WATCH_RETRY_MAX};
use super::trim::trim_tfjob;
use crate::api::labels::MANAGED_SELECTOR;
use crate::api::podgroup::GangScheduler;
use crate::api::{ChildPod, ChildService, ObservedChild, TFJob};
use crate::runtime::leader::LeaderGate;
use crate::runtime::metrics::Metrics;

/// Objects per page of the initial LIST. A page is held in full (managedFields, pod specs)
/// until every object in it has been trimmed into the cache; kube's default of 500 made a
/// restart with 1000 running jobs peak far above the steady state.
const LIST_PAGE_SIZE: u32 = 100;

/// How long a watch waits before retrying after an error: from [`WATCH_RETRY_FIRST`], doubling,
/// at most [`WATCH_RETRY_MAX`]; any event resets it. A 410 Gone is retried at
/// once: it is what every watch gets from an API server that restarted, and the answer to it is
/// a fresh list, not a pause.
struct WatchBackoff {
    delays: ExponentialBackoff,
    gone: Arc<AtomicBool>,
}

impl WatchBackoff {
    fn new() -> Self {
        let delays = ExponentialBuilder::default()
            .with_min_delay(WATCH_RETRY_FIRST)
            .with_max_delay(WATCH_RETRY_MAX)
            .with_jitter()
            .without_max_times()
            .into();
        Self {
            delays,
            gone: Arc::default(),
        }
    }
}

/// Notes in `gone` whether the error the stream is about to back off from is a 410 Gone.
fn note_gone(gone: &AtomicBool, error: &watcher::Error) {
    let is_gone = matches!(error, watcher::Error::WatchError(status) if status.code == 410);
    gone.store(is_gone, Ordering::Relaxed);
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        if self.gone.swap(false, Ordering::Relaxed) {
            return Some(Duration::ZERO);
        }
        self.delays.next()
    }
}

impl Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.delays.reset();
    }
}

/// What a watch error was, for the error counter: the API server's status code, or
/// `connection` when no answer came (`no-resource-version` for a list without one).
fn watch_error_reason(error: &watcher::Error) -> String {
    let api_code = |e: &kube::Error| match e {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    };
    let code = match error {
        watcher::Error::WatchError(status) => Some(status.code),
        watcher::Error::InitialListFailed(e)
        | watcher::Error::WatchStartFailed(e)
        | watcher::Error::WatchFailed(e) => api_code(e),
        watcher::Error::NoResourceVersion => return "no-resource-version".into(),
    };
    code.map_or_else(|| "connection".to_string(), |c| c.to_string())
}

/// `stream` of the watch of `kind` retried after errors with a [`WatchBackoff`]. The errors
/// are logged and counted here and not passed on: kube-runtime's Controller would otherwise
/// pause every trigger stream behind its own backoff, which grows to 30 s during an API server
/// outage (that pause, not the watches, made jobs finish up to a minute late after one).
fn with_backoff<S, T>(
    kind: Cow<'static, str>,
    stream: S,
    metrics: Arc<Metrics>,
) -> impl futures::Stream<Item = Result<T, watcher::Error>>
where
    S: futures::Stream<Item = Result<T, watcher::Error>>,
{
    let backoff = WatchBackoff::new();
    let gone = backoff.gone.clone();
    stream
        .inspect_err(move |e| note_gone(&gone, e))
        .backoff(backoff)
        .filter(move |item| {
            if let Err(error) = item {
                warn!(%kind, %error, "watch error; retrying");
                metrics.watch_failed(&kind, watch_error_reason(error));
            }
            futures::future::ready(item.is_ok())
        })
}

/// The API of `K` in the watched namespace, or in all namespaces.
fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// The cache of our children of kind `K` (decoded into what the planner reads), filled by a
/// label-filtered watch, and the stream of the objects it touches (for the Controller to map to
/// their owning TFJob).
fn child_cache<K: Child>(
    api: Api<K>,
    metrics: Arc<Metrics>,
) -> (
    Arc<ChildCache<K>>,
    impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static,
) {
    let config = watcher::Config::default()
        .page_size(LIST_PAGE_SIZE)
        .labels(MANAGED_SELECTOR);
    let (cache, writer) = ChildCache::new();
    let observer = cache.clone();
    let events = reflector::reflector(writer, watcher(api, config))
        .inspect_ok(move |event| observer.observe(event));
    let stream = with_backoff(K::kind(&()), events, metrics).touched_objects();
    (cache, stream)
}

/// Runs the controller until `shutdown` resolves; in-flight reconciles finish first.
pub async fn run(
    client: Client,
    config: ControllerConfig,
    metrics: Arc<Metrics>,
    gate: LeaderGate,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let namespace = config.namespace.as_deref();
    let (pods, pod_stream) = child_cache(api::<ChildPod>(&client, namespace), metrics.clone());
    let (services, svc_stream) =
        child_cache(api::<ChildService>(&client, namespace), metrics.clone());
    let (jobs, job_writer) = reflector::store();
    let job_config = watcher::Config::default().page_size(LIST_PAGE_SIZE);
    let job_events = reflector::reflector(
        job_writer,
        watcher(api::<TFJob>(&client, namespace), job_config).modify(trim_tfjob),
    );
    let job_stream = with_backoff(TFJob::kind(&()), job_events, metrics.clone()).applied_objects();
    let (pod_groups, pod_group_stream) = pod_group_watch(&client, &config, metrics.clone());
    let mut ctx = Context::new(
        client,
        config.clone(),
        metrics.clone(),
        (pods, services),
        gate.clone(),
    );
    if let Some(store) = pod_groups {
        ctx = ctx.with_pod_groups(store);
    }
    let ctx = Arc::new(ctx);
    let ready = ctx.clone();
    tokio::spawn(async move {
        if ready.caches_ready().await {
            info!("pod and service caches synced");
            ready.metrics.set_ready();
        }
    });
    let sizes = tokio::spawn(report_cache_sizes(ctx.clone(), jobs.clone()));
    info!(concurrency = config.concurrency, namespace = ?config.namespace, "starting TFJob controller");
    let runtime = RuntimeConfig::default()
        .concurrency(config.concurrency)
        .debounce(config.debounce);
    let shutdown = shutdown.shared();
    let controller = Controller::for_stream(job_stream, jobs)
        .watches_stream(pod_stream, |pod| owning_job(&pod))
        .watches_stream(svc_stream, |svc| owning_job(&svc))
        .watches_stream_with(
            pod_group_stream,
            |group| job_of_pod_group(&group),
            pod_group_type(&config),
        )
        .reconcile_all_on(gate.acquisitions())
        .with_config(runtime)
        .graceful_shutdown_on(shutdown.clone())
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            match res {
                Ok((obj, _)) => debug!(job = %obj, "reconciled"),
                Err(kube::runtime::controller::Error::ObjectNotFound(_)) => {}
                Err(e) => debug!(error = %e, "controller event"),
            }
        });
    until_stopped(controller, shutdown).await;
    sizes.abort();
}

/// The API type of the PodGroups watched (Volcano's when gang scheduling is off: nothing of
/// that type is watched then).
fn pod_group_type(config: &ControllerConfig) -> ApiResource {
    config
        .plan
        .gang
        .clone()
        .unwrap_or(GangScheduler::Volcano)
        .api_resource()
}

/// With gang scheduling, the cache of PodGroups and the stream of those it touches; without,
/// no cache and a stream that never yields.
fn pod_group_watch(
    client: &Client,
    config: &ControllerConfig,
    metrics: Arc<Metrics>,
) -> (
    Option<Store<DynamicObject>>,
    BoxStream<'static, Result<DynamicObject, watcher::Error>>,
) {
    let Some(scheduler) = &config.plan.gang else {
        return (None, futures::stream::empty().boxed());
    };
    let resource = scheduler.api_resource();
    let api: Api<DynamicObject> = match config.namespace.as_deref() {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    let writer = reflector::store::Writer::new(resource);
    let store = writer.as_reader();
    let watch = watcher(api, watcher::Config::default().page_size(LIST_PAGE_SIZE));
    let events = reflector::reflector(writer, watch);
    let stream = with_backoff("PodGroup".into(), events, metrics).touched_objects();
    (Some(store), stream.boxed())
}

/// The TFJob controlling a PodGroup, if a TFJob does.
fn job_of_pod_group(group: &DynamicObject) -> Option<ObjectRef<TFJob>> {
    let namespace = group.metadata.namespace.as_deref()?;
    group
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true) && o.kind == *TFJob::kind(&()))
        .map(|o| ObjectRef::new(&o.name).within(namespace))
}

/// The TFJob to reconcile when a child changes: its controller, if that is a TFJob (what
/// kube-runtime's `owns` reads from ownerReferences, which the cached children do not keep).
fn owning_job<K: ObservedChild>(child: &K) -> Option<ObjectRef<TFJob>> {
    let controller = child.lineage().controller.as_ref()?;
    let namespace = child.meta().namespace.as_deref()?;
    (*controller.kind == *TFJob::kind(&()))
        .then(|| ObjectRef::new(&controller.name).within(namespace))
}

/// Sets the cache size gauges every few seconds.
async fn report_cache_sizes(ctx: Arc<Context>, jobs: Store<TFJob>) {
    let namespace = ctx.config.namespace.clone();
    let mut every = tokio::time::interval(CACHE_SIZE_REPORT);
    loop {
        every.tick().await;
        let metrics = &ctx.metrics;
        metrics.set_cached("TFJob", namespace.as_deref(), jobs.len());
        metrics.set_cached("Pod", namespace.as_deref(), ctx.pods.len());
        metrics.set_cached("Service", namespace.as_deref(), ctx.services.len());
    }
}

/// Runs `controller` until it has stopped, or until [`SHUTDOWN_GRACE`] after `shutdown`:
/// kube-runtime's graceful shutdown never ends while the TFJob watch cannot list (it waits for
/// the store it never fills).
async fn until_stopped(
    controller: impl std::future::Future<Output = ()>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let overdue = async {
        shutdown.await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        () = controller => info!("controller stopped"),
        () = overdue => warn!(grace = ?SHUTDOWN_GRACE, "controller did not stop within its grace period; stopping anyway"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ControllerRef, Lineage};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pod_controlled_by(kind: &str) -> ChildPod {
        ChildPod {
            metadata: ObjectMeta {
                name: Some("j-worker-0".into()),
                namespace: Some("ns".into()),
                ..ObjectMeta::default()
            },
            lineage: Lineage {
                controller: Some(ControllerRef {
                    kind: kind.into(),
                    name: "j".into(),
                    uid: "u".into(),
                }),
                has_owners: true,
                ..Lineage::default()
            },
            ..ChildPod::default()
        }
    }

    #[test]
    fn a_watch_error_is_counted_by_the_api_servers_code_or_as_a_connection_error() {
        let status = |code| kube::core::Status {
            code,
            ..kube::core::Status::default()
        };
        let gone = watcher::Error::WatchError(Box::new(status(410)));
        assert_eq!(watch_error_reason(&gone), "410");
        let busy = watcher::Error::InitialListFailed(kube::Error::Api(Box::new(status(429))));
        assert_eq!(watch_error_reason(&busy), "429");
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let refused = watcher::Error::WatchStartFailed(kube::Error::Service(io.into()));
        assert_eq!(watch_error_reason(&refused), "connection");
    }

    #[test]
    fn a_child_event_reconciles_the_tfjob_controlling_it_and_nothing_else() {
        let job = ObjectRef::<TFJob>::new("j").within("ns");
        assert_eq!(owning_job(&pod_controlled_by("TFJob")), Some(job));
        assert_eq!(owning_job(&pod_controlled_by("ReplicaSet")), None);
        assert_eq!(owning_job(&ChildPod::default()), None, "no controller");
    }
}

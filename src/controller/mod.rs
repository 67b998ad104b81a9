//! The kube-runtime Controller: observe (reflector stores of our pods and services), decide
//! ([`crate::plan`]), act ([`act`]). Every TFJob carries a finalizer so its children are gone
//! before it is.

pub mod act;
pub mod backoff;
pub mod cache;
pub mod error;
pub mod own_writes;
pub mod release;
pub mod status_batch;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, PostParams};
use kube::runtime::controller::{Action as Requeue, Config as ControllerRuntimeConfig};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use tracing::{Instrument, debug, info, info_span, warn};

use crate::api::TFJob;
use crate::api::defaults::effective_run_policy;
use crate::api::labels::{JOB_NAME_LABEL, MANAGED_SELECTOR};
use crate::plan::cleanup::{FINALIZER, plan_cleanup};
use crate::plan::{self, PlanConfig};
use crate::runtime::metrics::{ErrorLabels, Metrics};
use cache::{slim_pod, slim_service, slim_tfjob};
pub use error::Error;
use error::is_status;
use own_writes::{ChildWrites, SeenRevision, parse_revision};
use status_batch::StatusBatch;

/// Settings of the reconciler.
#[derive(Clone, Debug)]
pub struct ControllerConfig {
    /// Planner settings (default cleanPodPolicy, cluster domain).
    pub plan: PlanConfig,
    /// Jobs reconciled at the same time.
    pub concurrency: u16,
    /// How long a pod may stay terminating during cleanup before it is force-deleted.
    pub force_delete_after: Duration,
    /// Watch only this namespace (all when None).
    pub namespace: Option<String>,
    /// Quiet time after a change before a job is reconciled; folds bursts of pod events (and our
    /// own status write coming back) into one reconcile.
    pub debounce: Duration,
    /// How long a status change that only reports progress (replica counts, Running) while
    /// other pods are still starting may wait to be written together with them. The last pod
    /// up, restarts, failures and completion are written at once.
    pub status_batch: Duration,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self {
            plan: PlanConfig::default(),
            concurrency: 16,
            force_delete_after: Duration::from_secs(300),
            namespace: None,
            debounce: Duration::from_millis(100),
            status_batch: Duration::from_secs(1),
        }
    }
}

/// Shared state of all reconciles.
pub struct Context {
    client: Client,
    reporter: Reporter,
    pods: Store<Pod>,
    services: Store<Service>,
    /// Our pod and service writes the stores may not show yet.
    writes: ChildWrites,
    /// Progress-only status changes waiting to be written together.
    status_batch: StatusBatch,
    config: ControllerConfig,
    backoff: backoff::ErrorBackoff,
    metrics: Arc<Metrics>,
    /// The TFJob as returned by our last status write, per UID, until the watch catches up:
    /// planning from it instead of an older cached copy avoids 409s on the next write.
    written: Mutex<HashMap<String, (String, crate::api::TFJobStatus)>>,
}

/// Whether resourceVersion `a` is newer than `b`; "not newer" when either is not a number.
fn newer(a: &str, b: Option<&str>) -> bool {
    match (parse_revision(Some(a)), parse_revision(b)) {
        (Some(x), Some(y)) => x > y,
        _ => false,
    }
}

impl Context {
    /// The freshest copy we know of `job`: the cached one, or with our own last status write
    /// when that is newer than the cache.
    fn freshest(&self, job: Arc<TFJob>) -> Arc<TFJob> {
        let Some(uid) = job.uid() else { return job };
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        match written.get(&uid) {
            Some((rv, status)) if newer(rv, job.metadata.resource_version.as_deref()) => {
                let mut fresh = (*job).clone();
                fresh.metadata.resource_version = Some(rv.clone());
                fresh.status = Some(status.clone());
                Arc::new(fresh)
            }
            Some(_) => {
                written.remove(&uid);
                job
            }
            None => job,
        }
    }

    fn remember(&self, job: TFJob) {
        if let (Some(uid), Some(rv), Some(status)) =
            (job.uid(), job.metadata.resource_version.clone(), job.status)
        {
            let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
            written.insert(uid, (rv, status));
        }
    }

    fn forget(&self, job: &TFJob) {
        if let Some(uid) = job.uid() {
            let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
            written.remove(&uid);
            self.status_batch.clear(&uid);
            self.writes.forget(&uid);
        }
    }

    /// An event recorder for one reconcile. kube-runtime's Recorder keeps every event it
    /// published for six minutes to fold repeats into a series; shared across all jobs that
    /// cache was a third of the operator's memory at 1000 jobs, so each reconcile gets its own
    /// (repeats within a reconcile are still folded).
    fn recorder(&self) -> Recorder {
        Recorder::new(self.client.clone(), self.reporter.clone())
    }

    /// Executes a plan's actions for `job`, recording our writes over the caches.
    async fn execute(
        &self,
        recorder: &Recorder,
        job: &TFJob,
        actions: Vec<plan::Action>,
    ) -> Result<(), Error> {
        act::execute(
            &self.client,
            &self.writes,
            recorder,
            &self.metrics,
            job,
            actions,
        )
        .await
    }
}

/// The TFJob API of the job's namespace.
fn jobs_api(ctx: &Context, job: &TFJob) -> Result<Api<TFJob>, Error> {
    let ns = job.namespace().ok_or(Error::MissingMetadata("namespace"))?;
    Ok(Api::namespaced(ctx.client.clone(), &ns))
}

fn key(job: &TFJob) -> String {
    format!("{}/{}", job.namespace().unwrap_or_default(), job.name_any())
}

/// The pods and services in the stores that belong to `job` by label (ownership is checked by
/// the planner), with our own writes the stores have not caught up with laid over them.
fn children_of(ctx: &Context, job: &TFJob) -> (Vec<Arc<Pod>>, Vec<Arc<Service>>) {
    let ns = job.namespace();
    let name = job.name_any();
    let mine = |meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
        meta.namespace == ns
            && meta
                .labels
                .as_ref()
                .and_then(|l| l.get(JOB_NAME_LABEL))
                .is_some_and(|n| *n == name)
    };
    let pods = ctx
        .pods
        .state()
        .into_iter()
        .filter(|p| mine(p.meta()))
        .collect();
    let services = ctx
        .services
        .state()
        .into_iter()
        .filter(|s| mine(s.meta()))
        .collect();
    let uid = job.uid().unwrap_or_default();
    (
        ctx.writes.pods.overlay(&uid, pods),
        ctx.writes.services.overlay(&uid, services),
    )
}

async fn apply(job: Arc<TFJob>, ctx: &Context) -> Result<Requeue, Error> {
    let (pods, services) = children_of(ctx, &job);
    let recorder = ctx.recorder();
    let mut job = ctx.freshest(job);
    // A 409 on the status write means our cached TFJob was older than the stored one. Plan again
    // from the stored version against the same observation of pods, so that decisions taken in
    // this pass (e.g. a restart counted towards backoffLimit) are not lost. Repeating an action
    // is harmless: creates tolerate AlreadyExists and deletes NotFound.
    for attempt in 0..3 {
        let decision = plan::plan(&job, &pods, &services, Timestamp::now(), &ctx.config.plan);
        let first_pass = job.status.as_ref().is_none_or(|s| s.conditions.is_empty());
        ctx.execute(&recorder, &job, decision.actions).await?;
        let mut requeue_after = decision.requeue_after;
        match decision.status {
            Some(status) => match ctx.status_batch.due_in(
                &job.uid().unwrap_or_default(),
                decision.status_may_wait,
                Instant::now(),
            ) {
                Some(wait) => requeue_after = Some(plan::sooner(requeue_after, wait)),
                None => match write_status(ctx, &job, status).await {
                    Err(Error::Conflict(_)) if attempt < 2 => {
                        job = Arc::new(fresh(ctx, &job).await?);
                        continue;
                    }
                    other => other?,
                },
            },
            // Nothing to write: nothing is waiting either.
            None => ctx.status_batch.clear(&job.uid().unwrap_or_default()),
        }
        if first_pass {
            ctx.metrics
                .count_event(&job.namespace().unwrap_or_default(), "TFJobCreated");
        }
        act::publish(&recorder, &ctx.metrics, &job, decision.events).await;
        return Ok(match requeue_after {
            // A little slack so the deadline has surely passed when we look again.
            Some(after) => Requeue::requeue(after + Duration::from_millis(50)),
            None => Requeue::await_change(),
        });
    }
    Err(Error::Conflict(key(&job)))
}

async fn fresh(ctx: &Context, job: &TFJob) -> Result<TFJob, Error> {
    let api = jobs_api(ctx, job)?;
    api.get(&job.name_any()).await.map_err(|source| Error::Api {
        action: format!("reading TFJob {}", key(job)),
        source,
    })
}

/// Replaces the status with optimistic concurrency: a 409 means our view was stale, so the job
/// is planned again from the newer version instead of overwriting it.
async fn write_status(
    ctx: &Context,
    job: &TFJob,
    status: crate::api::TFJobStatus,
) -> Result<(), Error> {
    let api = jobs_api(ctx, job)?;
    let mut updated = job.clone();
    updated.status = Some(status);
    updated.metadata.managed_fields = None;
    match api
        .replace_status(&job.name_any(), &PostParams::default(), &updated)
        .await
    {
        Ok(stored) => {
            ctx.remember(stored);
            Ok(())
        }
        Err(e) if is_status(&e, 409) => Err(Error::Conflict(key(job))),
        // Deleted meanwhile: nothing left to report on.
        Err(e) if is_status(&e, 404) => Ok(()),
        Err(e) => Err(Error::Api {
            action: format!("writing status of TFJob {}", key(job)),
            source: e,
        }),
    }
}

/// How often a deletion waiting for its children is looked at even without watch events.
const CLEANUP_RECHECK: Duration = Duration::from_secs(10);

async fn cleanup(job: Arc<TFJob>, ctx: &Context) -> Result<Requeue, Error> {
    let uid = job.uid().ok_or(Error::MissingMetadata("uid"))?;
    let (pods, services) = children_of(ctx, &job);
    let decision = plan_cleanup(
        &uid,
        job.finalizers(),
        &pods,
        &services,
        Timestamp::now(),
        ctx.config.force_delete_after,
    );
    if decision.done {
        debug!("children gone; releasing the TFJob");
        ctx.forget(&job);
        return Ok(Requeue::await_change());
    }
    let recorder = ctx.recorder();
    act::publish(&recorder, &ctx.metrics, &job, decision.events).await;
    ctx.execute(&recorder, &job, decision.actions).await?;
    // Keep the finalizer: the pod/service delete events wake us up again.
    Err(Error::ChildrenRemaining {
        job: key(&job),
        pods: pods.len(),
        services: services.len(),
        recheck_after: decision
            .requeue_after
            .map_or(CLEANUP_RECHECK, |d| d.min(CLEANUP_RECHECK)),
    })
}

async fn reconcile(job: Arc<TFJob>, ctx: Arc<Context>) -> Result<Requeue, Error> {
    let started = std::time::Instant::now();
    ctx.metrics.reconciles.inc();
    let span = info_span!("reconcile", namespace = %job.namespace().unwrap_or_default(), name = %job.name_any());
    async move {
        // Never decide on a partial view: right after (re)start the pod and service caches may
        // still be listing, and an empty cache would look like "all children gone".
        // Waiting is bounded so the controller keeps polling the watches that fill the caches.
        let ready = async {
            ctx.pods.wait_until_ready().await.is_ok()
                && ctx.services.wait_until_ready().await.is_ok()
        };
        match tokio::time::timeout(Duration::from_millis(200), ready).await {
            Ok(true) => {}
            Ok(false) => return Err(Error::CacheNotReady),
            Err(_) => {
                debug!("caches still listing; looking again shortly");
                return Ok(Requeue::requeue(Duration::from_millis(500)));
            }
        }
        let run_policy = effective_run_policy(&job.spec, ctx.config.plan.default_clean_pod_policy);
        let ours = job.finalizers().iter().any(|f| f == FINALIZER);
        if run_policy.managed_elsewhere() && !ours {
            return Ok(Requeue::await_change());
        }
        let api = jobs_api(&ctx, &job)?;
        let result = finalizer(&api, FINALIZER, job.clone(), |event| async {
            match event {
                Finalizer::Apply(job) => apply(job, &ctx).await,
                Finalizer::Cleanup(job) => cleanup(job, &ctx).await,
            }
        })
        .await
        .map_err(|e| match e {
            kube::runtime::finalizer::Error::ApplyFailed(inner)
            | kube::runtime::finalizer::Error::CleanupFailed(inner) => inner,
            other => Error::Finalizer(Box::new(other)),
        });
        if result.is_ok() {
            ctx.backoff.succeeded(&key(&job));
        }
        ctx.metrics
            .reconcile_duration
            .observe(started.elapsed().as_secs_f64());
        result
    }
    .instrument(span)
    .await
}

fn error_policy(job: Arc<TFJob>, err: &Error, ctx: Arc<Context>) -> Requeue {
    if let Some(recheck) = err.cleanup_recheck() {
        debug!(job = %key(&job), error = %err, "cleanup pending");
        return Requeue::requeue(recheck);
    }
    ctx.metrics
        .reconcile_errors
        .get_or_create(&ErrorLabels {
            category: err.category().into(),
        })
        .inc();
    let delay = ctx.backoff.failed(&key(&job));
    if err.is_expected() {
        debug!(job = %key(&job), error = %err, ?delay, "requeue");
    } else {
        warn!(job = %key(&job), error = %err, category = err.category(), ?delay, "reconcile failed");
    }
    Requeue::requeue(delay)
}

/// Objects per page of the initial LIST. A page is held in full (managedFields, pod specs)
/// until every object in it has been trimmed into the cache; kube's default of 500 made a
/// restart with 1000 running jobs peak far above the steady state.
const LIST_PAGE_SIZE: u32 = 100;

/// Notes how far a store has caught up, after the reflector applied `event` to it.
fn observed<K: Resource>(seen: &SeenRevision, event: &watcher::Event<K>) {
    match event {
        watcher::Event::Apply(obj)
        | watcher::Event::Delete(obj)
        | watcher::Event::InitApply(obj) => seen.observe(obj),
        watcher::Event::Init | watcher::Event::InitDone => {}
    }
}

/// Runs the controller until `shutdown` resolves; in-flight reconciles finish first.
pub async fn run(
    client: Client,
    config: ControllerConfig,
    metrics: Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let (jobs, pods_api, services_api): (Api<TFJob>, Api<Pod>, Api<Service>) =
        match &config.namespace {
            Some(ns) => (
                Api::namespaced(client.clone(), ns),
                Api::namespaced(client.clone(), ns),
                Api::namespaced(client.clone(), ns),
            ),
            None => (
                Api::all(client.clone()),
                Api::all(client.clone()),
                Api::all(client.clone()),
            ),
        };
    let children = watcher::Config::default()
        .page_size(LIST_PAGE_SIZE)
        .labels(MANAGED_SELECTOR);
    let (pods_seen, services_seen) = (SeenRevision::default(), SeenRevision::default());
    let (pods, pod_writer) = reflector::store();
    let seen = pods_seen.clone();
    let pod_stream = reflector::reflector(
        pod_writer,
        watcher(pods_api, children.clone()).modify(slim_pod),
    )
    .inspect_ok(move |ev| observed(&seen, ev))
    .default_backoff()
    .touched_objects();
    let (services, svc_writer) = reflector::store();
    let seen = services_seen.clone();
    let svc_stream = reflector::reflector(
        svc_writer,
        watcher(services_api, children).modify(slim_service),
    )
    .inspect_ok(move |ev| observed(&seen, ev))
    .default_backoff()
    .touched_objects();

    let ctx = Arc::new(Context {
        reporter: Reporter::from("tfjob-controller"),
        client,
        pods,
        services,
        writes: ChildWrites::new(pods_seen, services_seen),
        status_batch: StatusBatch::new(config.status_batch),
        backoff: backoff::ErrorBackoff::new(Duration::from_millis(500), Duration::from_secs(300)),
        config: config.clone(),
        metrics: metrics.clone(),
        written: Default::default(),
    });
    let (ready_pods, ready_services) = (ctx.pods.clone(), ctx.services.clone());
    tokio::spawn(async move {
        if ready_pods.wait_until_ready().await.is_ok()
            && ready_services.wait_until_ready().await.is_ok()
        {
            info!("pod and service caches synced");
            metrics.set_ready();
        }
    });
    info!(concurrency = config.concurrency, namespace = ?config.namespace, "starting TFJob controller");
    let (job_store, job_writer) = reflector::store();
    let job_stream = reflector::reflector(
        job_writer,
        watcher(jobs, watcher::Config::default().page_size(LIST_PAGE_SIZE)).modify(slim_tfjob),
    )
    .default_backoff()
    .applied_objects();
    Controller::for_stream(job_stream, job_store)
        .owns_stream(pod_stream)
        .owns_stream(svc_stream)
        .with_config(
            ControllerRuntimeConfig::default()
                .concurrency(config.concurrency)
                .debounce(config.debounce),
        )
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            match res {
                Ok((obj, _)) => debug!(job = %obj, "reconciled"),
                Err(kube::runtime::controller::Error::ObjectNotFound(_)) => {}
                Err(e) => debug!(error = %e, "controller event"),
            }
        })
        .await;
    info!("controller stopped");
}

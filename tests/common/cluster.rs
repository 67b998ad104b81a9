//! Cluster test fixture: a namespace per test on the shared local control plane (started by
//! `tests/cluster/up.sh`, found through `TFJOB_TEST_CLUSTER`), the CRD installed, and the
//! operator run in-process, scoped to that namespace.

use std::fmt::Debug;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Client, Config, Resource};
use serde::de::DeserializeOwned;
use serde_json::json;
use tfjob_operator::api::TFJob;
use tfjob_operator::controller::{self, ControllerConfig};
use tokio::sync::{OnceCell, oneshot};

/// Annotation the kwok stages read: the pod's containers exit with this code.
pub const EXIT_CODE_ANNOTATION: &str = "test.tfjob-operator.io/exit-code";

/// Why cluster tests are `#[ignore]`d: plain `cargo test` reports them as ignored, never as
/// passed; `make test` starts a control plane and runs them with `--include-ignored`.
pub const NEEDS_CLUSTER: &str = "needs a control plane: run `make test`";

/// The cluster directory. Cluster tests are ignored unless asked for; asked for without a
/// cluster they fail with this message rather than pass.
pub fn cluster_dir() -> PathBuf {
    match std::env::var_os("TFJOB_TEST_CLUSTER") {
        Some(d) => PathBuf::from(d),
        None => panic!(
            "this cluster test needs a control plane: run `make test`, or set \
             TFJOB_TEST_CLUSTER to the directory printed by tests/cluster/up.sh"
        ),
    }
}

/// A client for the cluster in `dir` (cluster-admin).
pub async fn client_for(dir: &std::path::Path) -> Client {
    let kc = Kubeconfig::read_from(dir.join("kubeconfig")).expect("kubeconfig");
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig is valid");
    Client::try_from(config).expect("client")
}

static CRD: OnceCell<()> = OnceCell::const_new();

/// Installs `crds/kubeflow.org_tfjobs.yaml` (server-side apply) and waits until it is served.
pub async fn install_crd(client: &Client) {
    CRD.get_or_init(|| async {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("crds/kubeflow.org_tfjobs.yaml");
        let text = std::fs::read_to_string(path).expect("crds/ file");
        let crd: CustomResourceDefinition = serde_saphyr::from_str(&text).expect("CRD parses");
        let api: Api<CustomResourceDefinition> = Api::all(client.clone());
        api.patch(
            "tfjobs.kubeflow.org",
            &PatchParams::apply("tfjob-operator-tests").force(),
            &Patch::Apply(&crd),
        )
        .await
        .expect("CRD applies");
        let established = kube::runtime::wait::conditions::is_crd_established();
        tokio::time::timeout(
            Duration::from_secs(30),
            kube::runtime::wait::await_condition(api, "tfjobs.kubeflow.org", established),
        )
        .await
        .expect("CRD established in time")
        .expect("watch CRD");
    })
    .await;
}

/// One test's world: a fresh namespace and a client. Dropping it (also when the test fails)
/// releases the finalizers left in the namespace and deletes it, so no test leaves anything
/// behind for the next.
pub struct TestNs {
    pub client: Client,
    pub ns: String,
    pub dir: PathBuf,
}

impl TestNs {
    /// Creates `<prefix>-<random>` and installs the CRD.
    pub async fn new(prefix: &str) -> Self {
        let dir = cluster_dir();
        install_crd(&client_for(&dir).await).await;
        Self::new_in(dir, prefix).await
    }

    /// Creates `<prefix>-<random>` on the control plane in `dir`, whose CRD is installed
    /// already (`tests/cluster/kueue.sh` installs it with Kueue's).
    pub async fn new_in(dir: PathBuf, prefix: &str) -> Self {
        let client = client_for(&dir).await;
        let ns = format!("{prefix}-{:08x}", rand_u32());
        let api: Api<Namespace> = Api::all(client.clone());
        api.create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap(),
        )
        .await
        .expect("namespace created");
        Self { client, ns, dir }
    }

    /// The namespace `ns` that already exists on the control plane in `dir` (a second cluster's
    /// copy of another test's namespace); deleted when dropped, like one this created.
    pub fn adopt(dir: PathBuf, client: Client, ns: String) -> Self {
        Self { client, ns, dir }
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    pub fn jobs(&self) -> Api<TFJob> {
        self.api()
    }

    pub fn pods(&self) -> Api<Pod> {
        self.api()
    }

    pub fn services(&self) -> Api<Service> {
        self.api()
    }

    /// Starts the operator in-process, watching only this namespace.
    pub fn operator(&self) -> Operator {
        self.operator_with(ControllerConfig::default())
    }

    pub fn operator_with(&self, mut config: ControllerConfig) -> Operator {
        config.namespace = Some(self.ns.clone());
        Operator::start(self.client.clone(), config)
    }

    /// Creates a TFJob in our namespace.
    pub async fn create_job(&self, job: impl Into<TFJob>) -> TFJob {
        let mut job = job.into();
        job.metadata.namespace = Some(self.ns.clone());
        self.jobs()
            .create(&PostParams::default(), &job)
            .await
            .expect("TFJob created")
    }

    /// Makes a pod's containers exit with `code` (kwok's pod-exit stage).
    pub async fn exit_pod(&self, name: &str, code: i32) {
        self.pods()
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(
                    json!({"metadata": {"annotations": {EXIT_CODE_ANNOTATION: code.to_string()}}}),
                ),
            )
            .await
            .unwrap_or_else(|e| panic!("annotating pod {name}: {e}"));
    }

    /// Waits until exactly `n` pods are Running and not being deleted.
    pub async fn running_pods(&self, n: usize, timeout: Duration) -> Vec<Arc<Pod>> {
        wait_for(self.pods(), &format!("{n} running pods"), timeout, |pods| {
            pods.iter()
                .filter(|p| pod_phase(p) == "Running" && p.metadata.deletion_timestamp.is_none())
                .count()
                == n
        })
        .await
    }

    /// The namespace's pods as the API server lists them now.
    pub async fn listed_pods(&self) -> Vec<Pod> {
        self.pods()
            .list(&Default::default())
            .await
            .expect("list pods")
            .items
    }

    /// Stops the operator gracefully, then cleans up (see [`Drop`]).
    pub async fn finish(self, op: Operator) {
        op.stop().await;
    }

    /// Pods and services left in the namespace.
    pub async fn children_left(&self) -> usize {
        let lp = kube::api::ListParams::default();
        self.pods().list(&lp).await.expect("list pods").items.len()
            + self
                .services()
                .list(&lp)
                .await
                .expect("list services")
                .items
                .len()
    }
}

impl Drop for TestNs {
    /// Releases the finalizers the operator leaves behind (as `tfjob-operator
    /// release-finalizers` does), then deletes the namespace. Without the release the
    /// namespace would stay Terminating for good, and the namespace controller's retries would
    /// load the API server for every later test.
    fn drop(&mut self) {
        let ns = self.ns.clone();
        let done = clean_up_from_drop(self.dir.clone(), move |client| async move {
            if let Err(e) =
                tfjob_operator::controller::release::release_finalizers(client.clone(), Some(&ns))
                    .await
            {
                eprintln!("releasing finalizers in {ns}: {e}");
            }
            // Deleted here rather than left to the namespace controller, whose backoff can
            // grow long around an API server restart (a later suite checks no TFJob is left).
            let jobs: Api<tfjob_operator::api::TFJob> = Api::namespaced(client.clone(), &ns);
            let _ = jobs
                .delete_collection(&DeleteParams::default(), &Default::default())
                .await;
            let api: Api<Namespace> = Api::all(client);
            let _ = api.delete(&ns, &DeleteParams::default()).await;
        });
        if !done {
            eprintln!("cleaning up namespace {} failed", self.ns);
        }
    }
}

/// Runs `work` with a client for the cluster in `dir`, from a `Drop`: on its own thread and
/// runtime, since a drop cannot await and may run while the test's runtime is unwinding from a
/// panic. False if the cleanup panicked.
pub fn clean_up_from_drop<F, Fut>(dir: PathBuf, work: F) -> bool
where
    F: FnOnce(Client) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("cleanup runtime");
        runtime.block_on(async { work(client_for(&dir).await).await });
    })
    .join()
    .is_ok()
}

fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    h.write_u128(now.map_or(0, |d| d.as_nanos()));
    // The high 32 bits of the hash.
    u32::try_from(h.finish() >> 32).unwrap_or_default()
}

/// The operator running in this test process.
pub struct Operator {
    /// Its metrics and readiness, as `/metrics` and `/readyz` serve them.
    pub metrics: Arc<tfjob_operator::runtime::metrics::Metrics>,
    stop: Option<oneshot::Sender<()>>,
    handle: tokio::task::JoinHandle<()>,
}

impl Operator {
    pub fn start(client: Client, config: ControllerConfig) -> Self {
        let (tx, rx) = oneshot::channel::<()>();
        let metrics = std::sync::Arc::new(tfjob_operator::runtime::metrics::Metrics::new());
        let handle = tokio::spawn(controller::run(
            client,
            config,
            metrics.clone(),
            tfjob_operator::runtime::leader::LeaderGate::always_open(),
            async move {
                let _ = rx.await;
            },
        ));
        Self {
            metrics,
            stop: Some(tx),
            handle,
        }
    }

    /// Stops the operator (graceful shutdown) and waits until it has stopped.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if tokio::time::timeout(Duration::from_secs(20), &mut self.handle)
            .await
            .is_err()
        {
            eprintln!("operator did not stop within 20 s; aborting it");
        }
    }

    /// Kills the operator at once, as a crash would.
    pub fn kill(self) {
        self.handle.abort();
    }
}

impl Drop for Operator {
    /// A test that fails before stopping its operator kills it, so it does not act on the
    /// namespace while that is cleaned up.
    fn drop(&mut self) {
        self.handle.abort();
    }
}

/// Restarts the cluster's kube-apiserver after `down_secs` without it (tests/cluster/
/// restart-apiserver.sh); returns once it is ready again.
pub fn restart_api_server(dir: &std::path::Path, down_secs: u32) {
    run_script("restart-apiserver.sh", dir, &[down_secs.to_string()]);
}

/// Waits until the control plane serves new namespaces again after an API server restart
/// (tests/cluster/settled.sh), so that the tests after this one find it working.
pub fn wait_settled(dir: &std::path::Path) {
    run_script("settled.sh", dir, &[]);
}

/// A control plane of a test's own (tests/cluster/up.sh in a temporary directory, one fake
/// node), for what the shared one cannot show; stopped when dropped.
pub struct OwnCluster {
    pub dir: tempfile::TempDir,
}

impl OwnCluster {
    pub fn up() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = script("up.sh", dir.path(), &[])
            .env("TFJOB_CLUSTER_NODES", "1")
            .output();
        check_script("up.sh", out);
        Self { dir }
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let _ = script("down.sh", self.dir.path(), &[]).output();
    }
}

/// `tests/cluster/NAME DIR ARGS`, ready to run.
fn script(name: &str, dir: &std::path::Path, args: &[String]) -> std::process::Command {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/cluster")
        .join(name);
    let mut command = std::process::Command::new(path);
    command.arg(dir).args(args);
    command
}

fn check_script(name: &str, out: std::io::Result<std::process::Output>) {
    let out = out.unwrap_or_else(|e| panic!("running {name}: {e}"));
    assert!(
        out.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn run_script(name: &str, dir: &std::path::Path, args: &[String]) {
    check_script(name, script(name, dir, args).output());
}

/// The backoff of the tests' own watches: retry within half a second, so that a test measuring
/// how fast the operator recovers does not measure its own watch's backoff instead.
pub fn quick_retry() -> kube::runtime::watcher::ExponentialBackoff {
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(50))
        .with_max_delay(Duration::from_millis(500))
        .without_max_times()
        .into()
}

/// Watches `api` until `pred` holds for the current list of objects, or panics after `timeout`
/// with `what` and the last state.
pub async fn wait_for<K>(
    api: Api<K>,
    what: &str,
    timeout: Duration,
    pred: impl Fn(&[Arc<K>]) -> bool,
) -> Vec<Arc<K>>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (store, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(api, watcher::Config::default()))
        .backoff(quick_retry());
    futures::pin_mut!(stream);
    let check = async {
        let mut synced = false;
        loop {
            match stream.next().await {
                Some(Ok(watcher::Event::InitDone)) => synced = true,
                Some(_) => {}
                None => panic!("watch ended while waiting for {what}"),
            }
            if synced {
                let state = store.state();
                if pred(&state) {
                    return state;
                }
            }
        }
    };
    match tokio::time::timeout(timeout, check).await {
        Ok(state) => state,
        Err(_) => panic!(
            "timed out after {timeout:?} waiting for {what}; objects: {:?}",
            store
                .state()
                .iter()
                .map(|o| o.meta().name.clone().unwrap_or_default())
                .collect::<Vec<_>>()
        ),
    }
}

/// Waits until the TFJob `name` satisfies `pred`.
pub async fn wait_job(
    t: &TestNs,
    name: &str,
    what: &str,
    timeout: Duration,
    pred: impl Fn(&TFJob) -> bool,
) -> TFJob {
    let found = wait_for(t.jobs(), what, timeout, |jobs| {
        jobs.iter()
            .any(|j| j.meta().name.as_deref() == Some(name) && pred(j))
    })
    .await;
    found
        .into_iter()
        .find(|j| j.meta().name.as_deref() == Some(name))
        .map(|j| (*j).clone())
        .expect("job present")
}

/// Whether the job's condition `type_` is True.
pub fn has_condition(job: &TFJob, type_: &str) -> bool {
    job.status
        .as_ref()
        .is_some_and(|s| tfjob_operator::plan::conditions::is_true(s, type_))
}

/// The message of the job's newest condition (empty if none).
pub fn condition_message(job: &TFJob) -> String {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.last())
        .and_then(|c| c.message.clone())
        .unwrap_or_default()
}

/// Condition types in order, e.g. ["Created", "Running"].
pub fn condition_types(job: &TFJob) -> Vec<(String, String)> {
    job.status
        .as_ref()
        .map(|s| {
            s.conditions
                .iter()
                .map(|c| (c.type_.clone(), c.status.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// Names of the objects, sorted.
pub fn names<K: Resource>(objs: &[Arc<K>]) -> Vec<String> {
    let mut v: Vec<String> = objs
        .iter()
        .map(|o| o.meta().name.clone().unwrap_or_default())
        .collect();
    v.sort();
    v
}

/// Phase of a pod.
pub fn pod_phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

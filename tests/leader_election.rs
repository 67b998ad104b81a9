//! Leader election (issue 14): two operator processes with `--leader-elect`; only the leader
//! acts, a standby takes over when it is killed (no pod ever created twice), and SIGTERM hands
//! the Lease over at once. Issue 27: a leader paused past its Lease, whose Lease another holder
//! took meanwhile, writes nothing when it resumes (the audit log shows it).

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::cluster::{TestNs, has_condition, wait_for};
use common::process::OperatorProcess;
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::PostParams;
use kube::runtime::{WatchStreamExt, watcher};
use tfjob_operator::api::builder::tfjob;

const T: Duration = Duration::from_secs(90);
const LEASE: &str = "tfjob-operator-test";

/// One operator process campaigning for the test namespace's Lease.
struct Replica(OperatorProcess);

impl Replica {
    fn start(t: &TestNs) -> Self {
        Self::start_with(t, &[])
    }

    fn start_with(t: &TestNs, extra: &[&str]) -> Self {
        let mut args = vec![
            "--leader-elect",
            "--leader-election-id",
            LEASE,
            "--leader-election-namespace",
            &t.ns,
            "--namespace",
            &t.ns,
        ];
        args.extend(extra);
        Self(OperatorProcess::start(&t.dir, &args))
    }

    fn pid(&self) -> u32 {
        self.0.pid()
    }

    async fn is_leader(&self) -> Option<bool> {
        Some(self.0.metric("tfjob_operator_is_leader").await? == 1.0)
    }
}

/// The pid in the Lease's holderIdentity (`<host>_<pid>`), if held.
async fn holder(t: &TestNs) -> Option<u32> {
    let lease = t.api::<Lease>().get_opt(LEASE).await.ok()??;
    let identity = lease.spec?.holder_identity?;
    identity.rsplit('_').next()?.parse().ok()
}

/// Waits until `replica` holds the Lease; returns how long that took.
async fn wait_holder(t: &TestNs, replica: &Replica) -> Duration {
    let start = Instant::now();
    while holder(t).await != Some(replica.pid()) {
        assert!(
            start.elapsed() < T,
            "replica {} never took the Lease",
            replica.pid()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    start.elapsed()
}

/// Records every UID each pod name ever had in the namespace.
fn record_pod_uids(t: &TestNs) -> Arc<Mutex<HashMap<String, HashSet<String>>>> {
    let seen = Arc::new(Mutex::new(HashMap::<String, HashSet<String>>::new()));
    let record = seen.clone();
    let pods: Api<Pod> = t.pods();
    tokio::spawn(async move {
        let mut events = watcher(pods, watcher::Config::default())
            .default_backoff()
            .touched_objects()
            .boxed();
        while let Some(Ok(pod)) = events.next().await {
            let (Some(name), Some(uid)) = (pod.metadata.name, pod.metadata.uid) else {
                continue;
            };
            if let Ok(mut seen) = record.lock() {
                seen.entry(name).or_default().insert(uid);
            }
        }
    });
    seen
}

async fn create_jobs(t: &TestNs, range: std::ops::Range<usize>) {
    for i in range {
        t.create_job(tfjob(&format!("j{i}")).ps(1).workers(1)).await;
    }
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn a_standby_takes_over_from_a_killed_leader_and_no_pod_is_created_twice() {
    let t = TestNs::new("leader").await;
    let uids = record_pod_uids(&t);
    let a = Replica::start(&t);
    wait_holder(&t, &a).await;
    let b = Replica::start(&t);
    b.0.wait_ready(T).await;
    assert_eq!(a.is_leader().await, Some(true));
    assert_eq!(b.is_leader().await, Some(false), "a ready standby");

    create_jobs(&t, 0..10).await;
    t.running_pods(20, T).await;
    // Mid-way: the second half is being created when the leader dies.
    create_jobs(&t, 10..20).await;
    a.0.signal("-KILL");
    let failover = wait_holder(&t, &b).await;
    eprintln!("failover after SIGKILL: {:.1} s", failover.as_secs_f64());
    assert!(
        failover < Duration::from_secs(20),
        "a 15 s Lease is taken over within its duration plus a second: {failover:?}"
    );
    wait_for(t.jobs(), "20 jobs Running", T, |jobs| {
        jobs.len() == 20 && jobs.iter().all(|j| has_condition(j, "Running"))
    })
    .await;
    t.running_pods(40, T).await;
    assert_eq!(b.is_leader().await, Some(true));
    let twice: Vec<String> = uids
        .lock()
        .map(|seen| {
            seen.iter()
                .filter(|(_, uids)| uids.len() > 1)
                .map(|(name, _)| name.clone())
                .collect()
        })
        .unwrap_or_default();
    assert!(twice.is_empty(), "pods created more than once: {twice:?}");
    assert_eq!(uids.lock().map(|s| s.len()).unwrap_or_default(), 40);
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn sigterm_hands_the_lease_over_in_under_two_seconds() {
    let t = TestNs::new("handover").await;
    let mut a = Replica::start(&t);
    wait_holder(&t, &a).await;
    let b = Replica::start(&t);
    b.0.wait_ready(T).await;
    a.0.signal("-TERM");
    let handover = wait_holder(&t, &b).await;
    eprintln!("handover after SIGTERM: {:.2} s", handover.as_secs_f64());
    assert!(handover < Duration::from_secs(2), "{handover:?}");
    let exit = a.0.child.wait().expect("exit status");
    assert!(exit.success(), "a SIGTERM is a clean exit: {exit}");
    // The new leader acts.
    create_jobs(&t, 0..1).await;
    t.running_pods(2, T).await;
}

/// The operator user's writes in namespace `ns` that the API server received after `since`, as
/// "verb resource/name at time", from the audit log.
fn operator_writes_after(audit: &std::path::Path, ns: &str, since: jiff::Timestamp) -> Vec<String> {
    common::audit::operator_requests(audit, 0, ns)
        .iter()
        .filter(|e| !matches!(e["verb"].as_str(), Some("get" | "list" | "watch")))
        .filter_map(|e| {
            let at = common::audit::received(e).filter(|at| *at > since)?;
            let object = &e["objectRef"];
            Some(format!(
                "{} {}/{} at {at}",
                e["verb"].as_str().unwrap_or_default(),
                object["resource"].as_str().unwrap_or_default(),
                object["name"].as_str().unwrap_or_default()
            ))
        })
        .collect()
}

/// How many of the operator user's requests in `ns` the audit log holds so far.
fn operator_requests(audit: &std::path::Path, ns: &str) -> usize {
    common::audit::operator_requests(audit, 0, ns).len()
}

/// Waits until the API server has answered everything the (stopped) operator sent: the
/// operator's audit entries in `ns` stop growing for a second.
async fn wait_until_answered(audit: &std::path::Path, ns: &str) {
    let start = Instant::now();
    let mut count = operator_requests(audit, ns);
    let mut unchanged_since = Instant::now();
    while unchanged_since.elapsed() < Duration::from_secs(1) {
        assert!(start.elapsed() < T, "the audit log kept growing");
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = operator_requests(audit, ns);
        if now != count {
            count = now;
            unchanged_since = Instant::now();
        }
    }
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn a_leader_paused_past_its_lease_writes_nothing_once_another_holder_has_it() {
    const JOBS: usize = 30;
    let t = TestNs::new("fenced").await;
    let audit = t.dir.join("logs/audit.log");
    // The gate is asked as a request leaves the client stack, and no client-side check can
    // recall bytes already on a socket: a request that passed it just before the pause is sent
    // on resume. Four connections, opened early and kept, leave microseconds between the check
    // and the socket write; with 32 the pause caught requests that were still opening a
    // connection (3 of ~100 in flight, in one run of three).
    let mut a = Replica::start_with(&t, &["--kube-api-max-in-flight", "4"]);
    wait_holder(&t, &a).await;
    a.0.wait_ready(T).await;
    // A burst: the leader is mid-way through it when it is paused.
    create_jobs(&t, 0..JOBS).await;
    wait_for(t.pods(), "some pods created", T, |pods| pods.len() >= 10).await;
    a.0.signal("-STOP");
    wait_until_answered(&audit, &t.ns).await;
    let pods_at_pause = t.listed_pods().await.len();
    eprintln!("paused with {pods_at_pause} of {} pods created", 2 * JOBS);
    assert!(
        pods_at_pause < 2 * JOBS,
        "the burst was over before the pause"
    );

    // Another replica takes the Lease (as a standby would once it expired).
    let leases: Api<Lease> = t.api();
    let mut lease = leases.get(LEASE).await.expect("the Lease");
    let spec = lease.spec.get_or_insert_default();
    let last_renewal = spec.renew_time.clone().expect("renewed").0;
    let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(jiff::Timestamp::now());
    spec.holder_identity = Some("another-replica".into());
    spec.acquire_time = Some(now.clone());
    spec.renew_time = Some(now);
    leases
        .replace(LEASE, &PostParams::default(), &lease)
        .await
        .expect("the Lease taken over");
    let moment = jiff::Timestamp::now();

    // Paused past its Lease: by its own clock, its last renewal is older than the Lease.
    let expired = last_renewal + jiff::SignedDuration::from_secs(15);
    if let Ok(left) = Duration::try_from(expired - jiff::Timestamp::now()) {
        tokio::time::sleep(left).await;
    }
    a.0.signal("-CONT");
    let exit = tokio::task::spawn_blocking(move || a.0.child.wait())
        .await
        .expect("joined")
        .expect("exit status");
    assert!(
        !exit.success(),
        "a leader that lost its Lease exits to be restarted: {exit}"
    );
    // Every request it sent is in the audit log by the time it has exited and the log is quiet.
    wait_until_answered(&audit, &t.ns).await;
    let late = operator_writes_after(&audit, &t.ns, moment);
    assert!(
        late.is_empty(),
        "writes by the old leader after another holder took the Lease: {late:#?}"
    );
    // Nor did it clear the new holder's name on its way out.
    let lease = leases.get(LEASE).await.expect("the Lease");
    assert_eq!(
        lease.spec.and_then(|s| s.holder_identity).as_deref(),
        Some("another-replica"),
        "the Lease stays with the replica that took it"
    );
}

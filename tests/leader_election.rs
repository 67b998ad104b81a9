//! Leader election (issue 14): two operator processes with `--leader-elect`; only the leader
//! acts, a standby takes over when it is killed (no pod ever created twice), and SIGTERM hands
//! the Lease over at once.

mod common;

use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::cluster::{TestNs, has_condition, wait_for};
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::{WatchStreamExt, watcher};
use tfjob_operator::api::builder::tfjob;

const T: Duration = Duration::from_secs(90);
const LEASE: &str = "tfjob-operator-test";

/// One operator process campaigning for the test namespace's Lease.
struct Replica {
    child: Child,
    port: u16,
}

impl Replica {
    fn start(t: &TestNs) -> Self {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_tfjob-operator"))
            .args(["run", "--leader-elect", "--leader-election-id", LEASE])
            .args(["--leader-election-namespace", &t.ns, "--namespace", &t.ns])
            .args(["--metrics-bind-address", &format!("127.0.0.1:{port}")])
            .env("KUBECONFIG", t.dir.join("operator.kubeconfig"))
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("operator started");
        Self { child, port }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {signal} {}", self.pid());
    }

    /// `path` of the replica's HTTP endpoint: status code and body (a blocking loopback
    /// request of a few hundred bytes).
    async fn get(&self, path: &str) -> Option<(u16, String)> {
        use std::io::{Read, Write};
        let mut conn = std::net::TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        conn.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n");
        conn.write_all(request.as_bytes()).ok()?;
        let mut answer = String::new();
        conn.read_to_string(&mut answer).ok()?;
        let code = answer.split_whitespace().nth(1)?.parse().ok()?;
        let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
        Some((code, body.to_string()))
    }

    async fn is_leader(&self) -> Option<bool> {
        let (_, body) = self.get("/metrics").await?;
        let line = body
            .lines()
            .find(|l| l.starts_with("tfjob_operator_is_leader "))?;
        Some(line.ends_with(" 1"))
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + T;
        while self.get("/readyz").await.map(|(code, _)| code) != Some(200) {
            assert!(
                Instant::now() < deadline,
                "replica {} never ready",
                self.pid()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
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
    b.wait_ready().await;
    assert_eq!(a.is_leader().await, Some(true));
    assert_eq!(b.is_leader().await, Some(false), "a ready standby");

    create_jobs(&t, 0..10).await;
    t.running_pods(20, T).await;
    // Mid-way: the second half is being created when the leader dies.
    create_jobs(&t, 10..20).await;
    a.signal("-KILL");
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
    b.wait_ready().await;
    a.signal("-TERM");
    let handover = wait_holder(&t, &b).await;
    eprintln!("handover after SIGTERM: {:.2} s", handover.as_secs_f64());
    assert!(handover < Duration::from_secs(2), "{handover:?}");
    let exit = a.child.wait().expect("exit status");
    assert!(exit.success(), "a SIGTERM is a clean exit: {exit}");
    // The new leader acts.
    create_jobs(&t, 0..1).await;
    t.running_pods(2, T).await;
}

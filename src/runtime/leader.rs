//! Leader election on a `coordination.k8s.io/v1` Lease, with kube-lease-manager.
//!
//! Every replica runs its watches (a standby keeps warm caches); only the one holding the Lease
//! acts. The [`LeaderGate`] is what the client asks before any write leaves the process
//! (`runtime::client`'s leader gate layer), and what the controller asks before it starts a
//! reconcile:
//!
//! - it opens when this replica takes the Lease, and every renewal (seen on a watch of the
//!   Lease) keeps it open until `renewTime + LEASE_SECONDS - FENCE_MARGIN` by our own clock —
//!   the renewTime is ours, written by our clock, so no skew is involved;
//! - it closes by itself when that moment passes without a renewal (a partitioned leader stops
//!   acting before anyone else can take the Lease), and the election loop then exits with
//!   [`LostLease`] so Kubernetes restarts the pod;
//! - it closes at once when the watch of the Lease shows another holder (a leader that was
//!   paused and resumes learns it from the watch, and writes nothing meanwhile because its own
//!   clock has passed the moment above);
//! - on shutdown the Lease is released, and a standby that sees it free tries at once instead
//!   of sleeping until it would have expired: handover within about a second.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use futures::{Stream, StreamExt};
use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use tokio::sync::{Notify, watch};
use tracing::{info, warn};

use super::metrics::Metrics;

/// How long a Lease stays valid after a renewal, in seconds (controller-runtime's default).
pub const LEASE_SECONDS: u64 = 15;
/// How long before expiry the leader renews (it renews every ~10 s).
const RENEW_BEFORE_EXPIRY_SECONDS: u64 = 5;
/// How long before the Lease expires a leader that could not renew stops acting.
const FENCE_MARGIN: Duration = Duration::from_secs(2);

/// Whether this replica may act now. Without leader election it always may.
#[derive(Clone)]
pub struct LeaderGate {
    state: Arc<GateState>,
}

struct GateState {
    elect: bool,
    leader: AtomicBool,
    /// Set once this replica first took the Lease; never cleared: from then on, whenever it
    /// may not act, its connections refuse to write ([`LeaderGate::lost`]).
    led: AtomicBool,
    /// Set once the Lease was seen held by another replica; never cleared (the process exits).
    revoked: AtomicBool,
    /// Unix milliseconds until which the leader may act.
    valid_until: AtomicI64,
    /// Counts acquisitions of the Lease (the controller reconciles every job on each).
    acquired: watch::Sender<u64>,
}

impl LeaderGate {
    /// The gate of a replica that campaigns for the Lease: closed until it takes it.
    pub fn for_election() -> Self {
        Self::new(true)
    }

    fn new(elect: bool) -> Self {
        Self {
            state: Arc::new(GateState {
                elect,
                leader: AtomicBool::new(false),
                led: AtomicBool::new(false),
                revoked: AtomicBool::new(false),
                valid_until: AtomicI64::new(0),
                acquired: watch::Sender::new(0),
            }),
        }
    }

    /// The gate of a replica that runs without leader election: always open.
    pub fn always_open() -> Self {
        Self::new(false)
    }

    /// Whether this replica may write to the cluster now.
    pub fn may_act(&self) -> bool {
        if !self.state.elect {
            return true;
        }
        self.state.leader.load(Ordering::Acquire)
            && !self.is_revoked()
            && Timestamp::now().as_millisecond() < self.state.valid_until.load(Ordering::Acquire)
    }

    /// Fires each time this replica becomes the leader (never without leader election).
    pub fn acquisitions(&self) -> impl Stream<Item = ()> + Send + 'static {
        let rx = self.state.acquired.subscribe();
        futures::stream::unfold(rx, |mut rx| async move {
            rx.changed().await.ok()?;
            Some(((), rx))
        })
    }

    fn take(&self, renewed_at: Timestamp) {
        self.extend(renewed_at);
        self.state.led.store(true, Ordering::Release);
        self.state.leader.store(true, Ordering::Release);
        self.state.acquired.send_modify(|n| *n += 1);
    }

    fn extend(&self, renewed_at: Timestamp) {
        let lease = Duration::from_secs(LEASE_SECONDS).saturating_sub(FENCE_MARGIN);
        let until =
            renewed_at.as_millisecond() + i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
        self.state.valid_until.fetch_max(until, Ordering::AcqRel);
    }

    /// Closes the gate for good: the Lease names another holder. The campaign notices it on
    /// its next check and ends with [`LostLease`].
    pub fn revoke(&self) {
        self.state.revoked.store(true, Ordering::Release);
        self.state.valid_until.store(0, Ordering::Release);
    }

    /// Opens the gate as if the Lease had just been taken (tests of what the gate guards).
    #[cfg(test)]
    pub fn open_for_test(&self) {
        self.take(Timestamp::now());
    }

    /// Whether this replica led and may not act now: it lost the Lease by its own clock, had
    /// it revoked, or stepped down (the campaign ended). Nothing may leave it any more, not
    /// even the bytes of a request that passed the gate just before the process was paused
    /// and that its connection would write once it resumes. A standby that never led is not
    /// fenced: it reads to keep its caches warm.
    pub fn lost(&self) -> bool {
        self.state.elect && self.state.led.load(Ordering::Acquire) && !self.may_act()
    }

    fn step_down(&self) {
        self.state.leader.store(false, Ordering::Release);
        self.state.valid_until.store(0, Ordering::Release);
    }

    fn is_revoked(&self) -> bool {
        self.state.revoked.load(Ordering::Acquire)
    }

    fn is_leader(&self) -> bool {
        self.state.leader.load(Ordering::Acquire)
    }
}

/// Why a leader stopped: the process should exit and be restarted.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct LostLease(String);

/// Where the Lease is and who we are.
#[derive(Clone, Debug)]
pub struct Election {
    /// Lease name (`--leader-election-id`).
    pub lease: String,
    /// Lease namespace.
    pub namespace: String,
    /// This replica's identity (holderIdentity).
    pub identity: String,
}

/// The campaign for `election`, opening and closing `gate` (made with
/// [`LeaderGate::for_election`]). `client` writes the Lease: it must not be gated by `gate`.
/// The campaign fails with [`LostLease`] when a leader loses the Lease or cannot renew it.
pub async fn campaign(
    client: Client,
    election: Election,
    gate: LeaderGate,
    metrics: Arc<Metrics>,
) -> Result<Campaign, kube_lease_manager::LeaseManagerError> {
    let manager = lease_manager(&client, &election).await?;
    Ok(Campaign {
        client,
        election,
        manager,
        gate,
        metrics,
    })
}

/// A lease manager for `election`, with the Lease's current state read fresh.
async fn lease_manager(
    client: &Client,
    election: &Election,
) -> Result<LeaseManager, kube_lease_manager::LeaseManagerError> {
    LeaseManagerBuilder::new(client.clone(), &election.lease)
        .with_namespace(&election.namespace)
        .with_identity(&election.identity)
        .with_duration(LEASE_SECONDS)
        .with_grace(RENEW_BEFORE_EXPIRY_SECONDS)
        .build()
        .await
}

/// A running candidacy for the Lease.
pub struct Campaign {
    client: Client,
    election: Election,
    manager: LeaseManager,
    gate: LeaderGate,
    metrics: Arc<Metrics>,
}

/// What ended one wait of the campaign.
enum Wake {
    Shutdown,
    Changed(Result<bool, kube_lease_manager::LeaseManagerError>),
    Freed,
    Expired,
}

impl Campaign {
    /// Campaigns for the Lease and keeps it until `shutdown` (then releases it), or until it is
    /// lost or cannot be renewed (then fails: exit and be restarted).
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<(), LostLease> {
        let freed = Arc::new(Notify::new());
        let observer = tokio::spawn(observe_lease(
            self.client.clone(),
            self.election.clone(),
            self.gate.clone(),
            freed.clone(),
        ));
        let result = self.campaign(shutdown, &freed).await;
        observer.abort();
        self.gate.step_down();
        self.metrics.set_leader(false);
        // A Lease another holder has taken is theirs: kube-lease-manager's release would
        // believe its cached view (us) and clear the new holder's name.
        if !self.gate.is_revoked()
            && let Err(e) = self.manager.release().await
        {
            warn!(error = %e, "could not release the leader Lease");
        }
        result
    }

    async fn campaign(
        &mut self,
        shutdown: impl Future<Output = ()>,
        freed: &Notify,
    ) -> Result<(), LostLease> {
        tokio::pin!(shutdown);
        loop {
            match self.wait(&mut shutdown, freed).await {
                Wake::Shutdown => return Ok(()),
                Wake::Changed(result) => self.on_change(result).await?,
                // kube-lease-manager only re-reads a Lease it believes held once it expires;
                // a fresh manager reads it now and takes it if it is free.
                Wake::Freed => match lease_manager(&self.client, &self.election).await {
                    Ok(fresh) => self.manager = fresh,
                    Err(e) => warn!(error = %e, "leader election: re-reading the Lease"),
                },
                Wake::Expired if self.gate.is_revoked() => {
                    return Err(LostLease(format!(
                        "the leader Lease {}/{} names another holder; stopped acting",
                        self.election.namespace, self.election.lease
                    )));
                }
                Wake::Expired => {
                    return Err(LostLease(format!(
                        "could not renew the leader Lease {}/{} in time; stopped acting before it expired",
                        self.election.namespace, self.election.lease
                    )));
                }
            }
        }
    }

    /// Waits for the next thing the campaign must handle. The manager's `changed()` runs all
    /// along: while we lead, it is what renews the Lease.
    async fn wait(
        &self,
        shutdown: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
        freed: &Notify,
    ) -> Wake {
        let mut changed = std::pin::pin!(self.manager.changed());
        let mut check = tokio::time::interval(Duration::from_millis(250));
        loop {
            let leader = self.gate.is_leader();
            tokio::select! {
                () = shutdown.as_mut() => return Wake::Shutdown,
                result = &mut changed => return Wake::Changed(result),
                () = freed.notified(), if !leader => return Wake::Freed,
                _ = check.tick(), if leader => {
                    if !self.gate.may_act() {
                        return Wake::Expired;
                    }
                }
            }
        }
    }

    async fn on_change(
        &self,
        changed: Result<bool, kube_lease_manager::LeaseManagerError>,
    ) -> Result<(), LostLease> {
        let leader = self.gate.is_leader();
        match changed {
            Ok(true) => {
                info!(identity = %self.election.identity, lease = %self.election.lease, "became the leader");
                self.gate.take(Timestamp::now());
                self.metrics.set_leader(true);
                Ok(())
            }
            Ok(false) if leader => Err(LostLease(format!(
                "lost the leader Lease {}/{}",
                self.election.namespace, self.election.lease
            ))),
            Ok(false) => Ok(()),
            Err(e) if leader => Err(LostLease(format!(
                "cannot renew the leader Lease {}/{}: {e}",
                self.election.namespace, self.election.lease
            ))),
            Err(e) => {
                warn!(error = %e, "leader election: retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                Ok(())
            }
        }
    }
}

/// Watches the Lease: our renewals keep the gate open; a Lease that is free (released, or
/// held by nobody) wakes the campaign so a standby takes it at once.
async fn observe_lease(client: Client, election: Election, gate: LeaderGate, freed: Arc<Notify>) {
    let api: Api<Lease> = Api::namespaced(client, &election.namespace);
    let config = watcher::Config::default().fields(&format!("metadata.name={}", election.lease));
    let mut leases = watcher(api, config)
        .default_backoff()
        .applied_objects()
        .boxed();
    while let Some(event) = leases.next().await {
        let Ok(lease) = event else { continue };
        let spec = lease.spec.unwrap_or_default();
        match spec.holder_identity.as_deref() {
            Some(holder) if holder == election.identity => {
                if let Some(renewed) = spec.renew_time.filter(|_| gate.is_leader()) {
                    gate.extend(renewed.0);
                }
            }
            Some(holder) if !holder.is_empty() => {
                if gate.is_leader() {
                    warn!(%holder, "the leader Lease names another holder; writing nothing more");
                    gate.revoke();
                }
            }
            _ => freed.notify_one(),
        }
    }
}

/// Takes the Lease `name` in `namespace` for `holder` for `seconds`, whoever holds it: an
/// administrative override (`release-finalizers --hold-lease`, run before the operator is
/// uninstalled). The leader sees another holder on its Lease watch and stops writing at once;
/// no standby may lead until the Lease expires.
pub async fn seize(
    client: Client,
    namespace: &str,
    name: &str,
    holder: &str,
    seconds: i32,
) -> Result<(), kube::Error> {
    let api: Api<Lease> = Api::namespaced(client, namespace);
    let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(Timestamp::now());
    let lease = serde_json::json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": seconds,
            "acquireTime": now,
            "renewTime": now,
        },
    });
    let params = kube::api::PatchParams::apply("tfjob-operator-release-finalizers").force();
    api.patch(name, &params, &kube::api::Patch::Apply(&lease))
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate_opens_on_taking_the_lease_and_closes_when_renewals_stop() {
        let gate = LeaderGate::new(true);
        assert!(!gate.may_act(), "a standby never acts");
        gate.take(Timestamp::now());
        assert!(gate.may_act());
        let stale = Timestamp::now() - jiff::SignedDuration::from_secs(14);
        let closed = LeaderGate::new(true);
        closed.take(stale);
        assert!(
            !closed.may_act(),
            "13 s after the last renewal a 15 s Lease no longer lets us act"
        );
        gate.step_down();
        assert!(!gate.may_act());
        assert!(LeaderGate::always_open().may_act());
        let revoked = LeaderGate::new(true);
        revoked.take(Timestamp::now());
        revoked.revoke();
        revoked.extend(Timestamp::now());
        assert!(!revoked.may_act(), "another holder: closed for good");
    }

    #[test]
    fn a_replica_that_led_stays_fenced_after_it_steps_down() {
        let standby = LeaderGate::new(true);
        assert!(!standby.lost(), "a standby that never led reads as before");
        let leader = LeaderGate::new(true);
        leader.take(Timestamp::now());
        assert!(!leader.lost());
        leader.revoke();
        assert!(leader.lost(), "another holder took the Lease");
        // The campaign ends and steps down; frames that passed the gate before a pause must
        // still not leave (they did, 9 ms after, in a CI run of the paused-leader test).
        leader.step_down();
        assert!(leader.lost(), "stepped down: still nothing more leaves");
        assert!(!LeaderGate::always_open().lost());
    }
}

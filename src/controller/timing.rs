//! Every duration the controller waits by, named once, with why it is that long. The three
//! that users tune are flags (`--debounce-ms`, `--status-batch-ms`,
//! `--force-delete-after-seconds`, in [`super::ControllerConfig`]); the Lease's are in
//! `runtime::leader`.
//!
//! Four of them bridge the lag of the watch caches behind our own writes, each for a different
//! write, so a reconcile never acts on a view older than what it already did:
//!
//! | what we wrote | bridged by | until |
//! |---|---|---|
//! | a pod or service (create, delete, adopt) | the child cache's own writes | the watch delivers it, at most [`OWN_WRITE_TRUSTED_FOR`] |
//! | a job's status | `JobMemory`'s last status write | the TFJob cache shows that resourceVersion |
//! | a job's finalizer release | `JobMemory`'s release tombstone | [`RELEASE_REMEMBERED_FOR`] |
//! | a status write on a stale copy (409) | reading the job and planning again | at most `MAX_PLANS` per reconcile |

use std::time::Duration;

/// How long our own pod or service write is laid over the cache when the watch never confirms
/// it (the object was changed by someone else to a revision we cannot compare, or the watch
/// was relisting). After that the cache is trusted again, as it would be without the overlay.
/// The watch confirms a write within milliseconds on an idle control plane and within seconds
/// at N=1000 (bench): a minute leaves a wide margin and bounds the memory of a job whose writes
/// are never confirmed.
pub const OWN_WRITE_TRUSTED_FOR: Duration = Duration::from_secs(60);

/// How long a job whose finalizer we removed is remembered as released: longer than the TFJob
/// watch takes to deliver its removal, so the reconciles its children's deletions trigger
/// meanwhile make no request. Without it, a collection delete of 500 jobs sent 59 PATCHes that
/// ended in 404.
pub const RELEASE_REMEMBERED_FOR: Duration = Duration::from_secs(30);

/// How often a deletion that waits for its children looks again without a watch event (a pod
/// on a lost node sends none until it is force-deleted).
pub const DELETION_RECHECK: Duration = Duration::from_secs(10);

/// How long a reconcile waits for the pod and service caches' initial list before it lets the
/// controller poll the watches again; it then looks after [`CACHES_LISTING_RETRY`].
pub const CACHES_READY_WAIT: Duration = Duration::from_millis(200);

/// When a reconcile that found the caches still listing looks again.
pub const CACHES_LISTING_RETRY: Duration = Duration::from_millis(500);

/// Added to a deadline or TTL requeue, so that the deadline has surely passed when the job is
/// looked at again (the timer may fire a little early on a busy runtime).
pub const DEADLINE_SLACK: Duration = Duration::from_millis(50);

/// The first delay after a failed reconcile; it doubles with each consecutive failure.
pub const ERROR_BACKOFF_FIRST: Duration = Duration::from_millis(500);

/// The longest delay after failed reconciles (client-go's workqueue default is 1000 s; 5
/// minutes keeps a job whose writes keep failing from waiting a quarter of an hour).
pub const ERROR_BACKOFF_MAX: Duration = Duration::from_secs(300);

/// The longest wait before retrying a write an unreachable admission webhook refused (e.g.
/// Kueue's while Kueue restarts): it comes back on its own, so the job is looked at again soon,
/// not after a backoff grown through the whole outage.
pub const WEBHOOK_RETRY: Duration = Duration::from_secs(10);

/// The first wait of a watch after an error; doubles up to [`WATCH_RETRY_MAX`].
pub const WATCH_RETRY_FIRST: Duration = Duration::from_millis(100);

/// The longest wait of a watch after an error. kube-runtime's default grows to 30 s, and after
/// an API server outage of some seconds the caches came back up to half a minute late.
pub const WATCH_RETRY_MAX: Duration = Duration::from_secs(2);

/// How often the cache size gauges are set.
pub const CACHE_SIZE_REPORT: Duration = Duration::from_secs(5);

/// How long in-flight reconciles may take to finish once shutdown is requested (below the
/// kubelet's default 30 s before SIGKILL).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(15);

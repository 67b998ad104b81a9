//! Batching of progress-only status writes.
//!
//! While a job's pods come up one by one, every pod turning Running changes
//! `status.replicaStatuses[*].active`. Writing each change costs a status update per pod; like
//! the Job controller's one-second batch period, a change that only reports progress while
//! other pods of the job are still starting waits up to `period`, so the pods that follow are
//! reported in the same write. The change that brings the last pod up, restarts, failures and
//! completion never wait (the planner tells which may).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Since when a progress-only change has been waiting, per TFJob UID.
pub struct StatusBatch {
    period: Duration,
    waiting: Mutex<HashMap<String, Instant>>,
}

impl StatusBatch {
    /// Batches progress for up to `period`.
    pub fn new(period: Duration) -> Self {
        Self {
            period,
            waiting: Mutex::default(),
        }
    }

    /// For a job with a status change to write at `now`: `None` to write it now, or how long it
    /// may still wait. `may_wait` is the planner's verdict; a change that may not wait, or one
    /// that has waited a full period, is due and ends the batch.
    pub fn due_in(&self, uid: &str, may_wait: bool, now: Instant) -> Option<Duration> {
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        if !may_wait {
            waiting.remove(uid);
            return None;
        }
        let since = *waiting.entry(uid.to_string()).or_insert(now);
        let left = self
            .period
            .saturating_sub(now.saturating_duration_since(since));
        if left.is_zero() {
            waiting.remove(uid);
            None
        } else {
            Some(left)
        }
    }

    /// Nothing is left to write for the job (or it is gone).
    pub fn clear(&self, uid: &str) {
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        waiting.remove(uid);
    }

    /// Jobs with a change waiting.
    pub fn len(&self) -> usize {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether no change is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn progress_waits_one_period_from_the_first_change() {
        let batch = StatusBatch::new(SECOND);
        let t0 = Instant::now();
        assert_eq!(batch.due_in("a", true, t0), Some(SECOND));
        // A later change does not restart the clock.
        let later = t0 + Duration::from_millis(600);
        assert_eq!(
            batch.due_in("a", true, later),
            Some(Duration::from_millis(400))
        );
        assert_eq!(batch.due_in("a", true, t0 + SECOND), None);
        assert!(
            batch.is_empty(),
            "written: the next change starts a new batch"
        );
        assert_eq!(batch.due_in("a", true, t0 + 2 * SECOND), Some(SECOND));
    }

    #[test]
    fn urgent_changes_are_due_at_once_and_end_the_batch() {
        let batch = StatusBatch::new(SECOND);
        let t0 = Instant::now();
        batch.due_in("a", true, t0);
        assert_eq!(batch.due_in("a", false, t0), None);
        assert!(batch.is_empty());
    }

    #[test]
    fn jobs_are_batched_apart() {
        let batch = StatusBatch::new(SECOND);
        let t0 = Instant::now();
        batch.due_in("a", true, t0);
        assert_eq!(batch.due_in("b", true, t0 + SECOND), Some(SECOND));
        batch.clear("a");
        assert_eq!(batch.len(), 1);
    }

    #[test]
    fn a_zero_period_never_waits() {
        let batch = StatusBatch::new(Duration::ZERO);
        assert_eq!(batch.due_in("a", true, Instant::now()), None);
        assert!(batch.is_empty());
    }
}

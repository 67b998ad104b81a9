//! Per-object exponential backoff for failed reconciles (kube-runtime has none built in): the
//! delay doubles with each consecutive failure of the same object and resets on success.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// Failure counts per object key.
#[derive(Debug)]
pub struct ErrorBackoff {
    base: Duration,
    max: Duration,
    failures: Mutex<HashMap<String, u32>>,
}

impl ErrorBackoff {
    /// Backoff starting at `base`, capped at `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Records a failure of `key` and returns how long to wait before retrying.
    pub fn failed(&self, key: &str) -> Duration {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(key.to_string()).or_insert(0);
        let delay = self.base.saturating_mul(1u32 << (*n).min(16));
        *n = n.saturating_add(1);
        delay.min(self.max)
    }

    /// Forgets the failures of `key` after a successful reconcile.
    pub fn succeeded(&self, key: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_caps_and_resets() {
        let b = ErrorBackoff::new(Duration::from_millis(100), Duration::from_secs(1));
        assert_eq!(b.failed("a"), Duration::from_millis(100));
        assert_eq!(b.failed("a"), Duration::from_millis(200));
        assert_eq!(b.failed("a"), Duration::from_millis(400));
        assert_eq!(b.failed("b"), Duration::from_millis(100));
        for _ in 0..10 {
            b.failed("a");
        }
        assert_eq!(b.failed("a"), Duration::from_secs(1));
        b.succeeded("a");
        assert_eq!(b.failed("a"), Duration::from_millis(100));
    }
}

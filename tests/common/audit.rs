//! The API server's audit log (tests/cluster/up.sh records the operator's user only): what the
//! operator process asked of it.

use std::collections::HashSet;
use std::path::Path;

use serde_json::Value;

/// The operator user's requests about namespace `ns` in the audit log from byte `offset` on,
/// one entry per request (a request logged at several stages counts once), in log order.
pub fn operator_requests(audit: &Path, offset: usize, ns: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(audit).unwrap_or_default();
    let mut seen = HashSet::new();
    text.get(offset..)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|e| e["user"]["username"] == "tfjob-operator" && e["objectRef"]["namespace"] == ns)
        .filter(|e| seen.insert(e["auditID"].as_str().unwrap_or_default().to_string()))
        .collect()
}

/// When the API server received `entry`'s request.
pub fn received(entry: &Value) -> Option<jiff::Timestamp> {
    entry["requestReceivedTimestamp"].as_str()?.parse().ok()
}

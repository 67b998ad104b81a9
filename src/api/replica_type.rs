//! The five TensorFlow replica types and their spellings.

use std::fmt;

/// A TensorFlow replica role. Map keys in `spec.tfReplicaSpecs` are matched case-insensitively,
/// so `"Ps"`, `"ps"` and `"PS"` all mean [`ReplicaType::Ps`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ReplicaType {
    /// `Chief`: the coordinator that decides the job's success.
    Chief,
    /// `Evaluator`: evaluates checkpoints, not part of training.
    Evaluator,
    /// `Master`: the legacy name of `Chief`, behaves the same.
    Master,
    /// `PS`: parameter server.
    Ps,
    /// `Worker`: a training worker.
    Worker,
}

impl ReplicaType {
    /// All types in upstream's status-evaluation order (alphabetical by canonical name).
    pub const ALL: [ReplicaType; 5] = [
        ReplicaType::Chief,
        ReplicaType::Evaluator,
        ReplicaType::Master,
        ReplicaType::Ps,
        ReplicaType::Worker,
    ];

    /// Parses a map key case-insensitively; `None` for an unknown type.
    pub fn parse(key: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|t| t.canonical().eq_ignore_ascii_case(key))
    }

    /// The canonical spelling used as the `status.replicaStatuses` key (`PS`, `Worker`, ...).
    pub fn canonical(self) -> &'static str {
        match self {
            ReplicaType::Chief => "Chief",
            ReplicaType::Evaluator => "Evaluator",
            ReplicaType::Master => "Master",
            ReplicaType::Ps => "PS",
            ReplicaType::Worker => "Worker",
        }
    }

    /// The lower-case spelling used in pod names, labels and `TF_CONFIG` (`ps`, `worker`, ...).
    pub fn lower(self) -> &'static str {
        match self {
            ReplicaType::Chief => "chief",
            ReplicaType::Evaluator => "evaluator",
            ReplicaType::Master => "master",
            ReplicaType::Ps => "ps",
            ReplicaType::Worker => "worker",
        }
    }

    /// Chief and Master decide a job's outcome when present.
    pub fn is_chief_or_master(self) -> bool {
        matches!(self, ReplicaType::Chief | ReplicaType::Master)
    }
}

impl fmt::Display for ReplicaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.canonical())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_matched_case_insensitively() {
        assert_eq!(ReplicaType::parse("Ps"), Some(ReplicaType::Ps));
        assert_eq!(ReplicaType::parse("ps"), Some(ReplicaType::Ps));
        assert_eq!(ReplicaType::parse("PS"), Some(ReplicaType::Ps));
        assert_eq!(ReplicaType::parse("WORKER"), Some(ReplicaType::Worker));
        assert_eq!(ReplicaType::parse("chief"), Some(ReplicaType::Chief));
        assert_eq!(ReplicaType::parse("mAsTeR"), Some(ReplicaType::Master));
        assert_eq!(
            ReplicaType::parse("evaluator"),
            Some(ReplicaType::Evaluator)
        );
        assert_eq!(ReplicaType::parse("Foo"), None);
        assert_eq!(ReplicaType::parse(""), None);
    }

    #[test]
    fn spellings() {
        assert_eq!(ReplicaType::Ps.canonical(), "PS");
        assert_eq!(ReplicaType::Ps.lower(), "ps");
        assert_eq!(ReplicaType::Worker.to_string(), "Worker");
    }
}

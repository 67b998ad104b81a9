//! Names and labels of the objects a TFJob owns, as in Kubeflow's training-operator.

use std::collections::BTreeMap;

use super::replica_type::ReplicaType;

/// Label: which operator manages the object.
pub const OPERATOR_NAME_LABEL: &str = "training.kubeflow.org/operator-name";
/// Label: the owning TFJob's name.
pub const JOB_NAME_LABEL: &str = "training.kubeflow.org/job-name";
/// Label: replica type in lower case (`ps`, `worker`, ...).
pub const REPLICA_TYPE_LABEL: &str = "training.kubeflow.org/replica-type";
/// Label: replica index (`"0"`, `"1"`, ...).
pub const REPLICA_INDEX_LABEL: &str = "training.kubeflow.org/replica-index";
/// Label: `master` on the pod that decides the job (chief/master, else worker 0).
pub const JOB_ROLE_LABEL: &str = "training.kubeflow.org/job-role";
/// Value of [`OPERATOR_NAME_LABEL`].
pub const OPERATOR_NAME: &str = "tfjob-controller";
/// Label selector matching every object this operator manages.
pub const MANAGED_SELECTOR: &str = "training.kubeflow.org/operator-name=tfjob-controller";

/// The pod and service name of replica `index` of type `rtype`: `<job>-<type>-<index>`.
pub fn replica_name(job: &str, rtype: ReplicaType, index: i32) -> String {
    format!("{job}-{}-{index}", rtype.lower()).replace('/', "-")
}

/// The labels every object of a job carries.
pub fn job_labels(job: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (OPERATOR_NAME_LABEL.to_string(), OPERATOR_NAME.to_string()),
        (JOB_NAME_LABEL.to_string(), job.to_string()),
    ])
}

/// The labels of one replica's pod and service (also the service's selector).
pub fn replica_labels(job: &str, rtype: ReplicaType, index: i32) -> BTreeMap<String, String> {
    let mut labels = job_labels(job);
    labels.insert(REPLICA_TYPE_LABEL.to_string(), rtype.lower().to_string());
    labels.insert(REPLICA_INDEX_LABEL.to_string(), index.to_string());
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_upstream() {
        assert_eq!(replica_name("mnist", ReplicaType::Ps, 0), "mnist-ps-0");
        assert_eq!(
            replica_name("mnist", ReplicaType::Worker, 12),
            "mnist-worker-12"
        );
        let l = replica_labels("mnist", ReplicaType::Worker, 1);
        assert_eq!(l[REPLICA_TYPE_LABEL], "worker");
        assert_eq!(l[REPLICA_INDEX_LABEL], "1");
        assert_eq!(l[OPERATOR_NAME_LABEL], "tfjob-controller");
        assert_eq!(l[JOB_NAME_LABEL], "mnist");
        assert_eq!(
            MANAGED_SELECTOR,
            format!("{OPERATOR_NAME_LABEL}={OPERATOR_NAME}")
        );
    }
}

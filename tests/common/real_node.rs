//! The real node in the cluster tests: the control plane `make test` starts with a kubelet,
//! containerd and CoreDNS (`TFJOB_CLUSTER_REAL_NODE=1 tests/cluster/up.sh`), and jobs whose pods
//! run there as real containers of the images tests/images/build.sh makes.

use std::path::PathBuf;

use k8s_openapi::api::core::v1::{PodSpec, Toleration};

/// The label and taint of the real node (tests/cluster/realnode.sh).
pub const REAL_NODE: &str = "tfjob-operator.io/real-node";
/// The tests' small image (busybox), present on the node.
pub const BUSYBOX: &str = "tfjob-test.local/busybox:1";
/// The operator's image, present on the node.
pub const OPERATOR_IMAGE: &str = "tfjob-operator.local/tfjob-operator";

/// The control plane with a real node.
pub fn real_node_dir() -> PathBuf {
    match std::env::var_os("TFJOB_REAL_NODE_CLUSTER") {
        Some(d) => PathBuf::from(d),
        None => panic!(
            "this test needs a control plane with a real node: run `make test`, or set \
             TFJOB_REAL_NODE_CLUSTER to a directory printed by `TFJOB_CLUSTER_REAL_NODE=1 tests/cluster/up.sh DIR`"
        ),
    }
}

/// A pod spec edit: on the real node, the container running `script` with `sh -c` in `image`.
pub fn on_real_node(image: &str, script: &str) -> impl FnOnce(&mut PodSpec) {
    let (image, script) = (image.to_string(), script.to_string());
    move |s: &mut PodSpec| {
        s.node_selector = Some([(REAL_NODE.to_string(), "true".to_string())].into());
        s.tolerations = Some(vec![Toleration {
            key: Some(REAL_NODE.into()),
            operator: Some("Exists".into()),
            effect: Some("NoSchedule".into()),
            ..Toleration::default()
        }]);
        if let Some(c) = s.containers.first_mut() {
            c.image = Some(image);
            c.image_pull_policy = Some("IfNotPresent".into());
            c.command = Some(vec!["sh".into(), "-c".into(), script]);
        }
    }
}

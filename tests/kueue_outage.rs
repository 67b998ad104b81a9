//! Deleting a TFJob while Kueue is down (issue 15). Kueue's `vtfjob.kb.io` webhook covers every
//! TFJob update and fails closed, so the update that removes our finalizer is refused: the
//! operator says so with a Warning event on the job, and the exemption the README recommends
//! (`deploy/kueue-exempt-deleting-tfjobs.yaml`) lets the deletion finish without Kueue.
//!
//! Its own test binary: it stops the Kueue of the Kueue-enabled control plane and starts it
//! again, and cargo runs test binaries one after another, never beside the other Kueue tests.

mod common;

use std::path::Path;
use std::time::Duration;

use common::cluster::{TestNs, wait_for};
use common::kueue::kueue_dir;
use futures::FutureExt;
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::json;
use tfjob_operator::api::builder::tfjob;

const KUEUE_WEBHOOKS: &str = "kueue-validating-webhook-configuration";
const EXEMPTION: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/deploy/kueue-exempt-deleting-tfjobs.yaml"
);

fn kueue_pid(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("pids/kueue.pid"))
        .expect("the cluster runs Kueue (pids/kueue.pid)")
        .trim()
        .to_string()
}

/// Stops Kueue (SIGTERM) and waits until its process is gone.
async fn stop_kueue(dir: &Path) {
    let pid = kueue_pid(dir);
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(status.success(), "signalling Kueue ({pid})");
    let proc = Path::new("/proc").join(&pid);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while proc.exists() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "Kueue did not stop in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Starts Kueue again (tests/cluster/kueue.sh), for the tests after this one.
fn start_kueue(dir: &Path) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cluster/kueue.sh");
    let out = std::process::Command::new(script)
        .arg(dir)
        .output()
        .expect("kueue.sh");
    assert!(
        out.status.success(),
        "kueue.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Sets or removes the match conditions of Kueue's TFJob webhook (strategic merge by name).
async fn patch_kueue_webhook(t: &TestNs, patch: serde_json::Value) {
    let api: Api<ValidatingWebhookConfiguration> = Api::all(t.client.clone());
    api.patch(
        KUEUE_WEBHOOKS,
        &PatchParams::default(),
        &Patch::Strategic(patch),
    )
    .await
    .expect("patching Kueue's webhook configuration");
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn a_job_deleted_while_kueue_is_down_is_reported_then_released_by_the_exemption() {
    let t = TestNs::new_in(kueue_dir(), "kueue-down").await;
    // As Kueue installs it: no exemption (an earlier run of this test added one).
    patch_kueue_webhook(
        &t,
        json!({"webhooks": [{"name": "vtfjob.kb.io", "matchConditions": null}]}),
    )
    .await;
    let op = t.operator();
    // A job that never used Kueue: the webhook covers it all the same.
    t.create_job(tfjob("plain").workers(1).build()).await;
    t.running_pods(1, Duration::from_secs(60)).await;

    stop_kueue(&t.dir).await;
    let outcome = async {
        t.jobs()
            .delete("plain", &DeleteParams::default())
            .await
            .expect("delete accepted");
        let events: Api<Event> = t.api();
        let blocked = wait_for(
            events,
            "a FinalizerBlocked event",
            Duration::from_secs(60),
            |es| {
                es.iter()
                    .any(|e| e.reason.as_deref() == Some("FinalizerBlocked"))
            },
        )
        .await;
        let event = blocked
            .iter()
            .find(|e| e.reason.as_deref() == Some("FinalizerBlocked"))
            .expect("event");
        let message = event.message.clone().unwrap_or_default();
        assert!(message.contains("\"vtfjob.kb.io\""), "{message}");
        assert_eq!(event.type_.as_deref(), Some("Warning"));
        assert_eq!(
            t.children_left().await,
            0,
            "the children are deleted meanwhile"
        );
        assert!(
            t.jobs().get_opt("plain").await.expect("get").is_some(),
            "the job is held"
        );

        // The recommended exemption: the job goes without Kueue coming back.
        let text = std::fs::read_to_string(EXEMPTION).expect("exemption file");
        let patch: serde_json::Value = serde_saphyr::from_str(&text).expect("YAML");
        patch_kueue_webhook(&t, patch).await;
        wait_for(
            t.jobs(),
            "the job deleted",
            Duration::from_secs(30),
            |jobs| jobs.is_empty(),
        )
        .await;
    };
    // Kueue comes back whatever the outcome, for the tests after this one.
    let result = std::panic::AssertUnwindSafe(outcome).catch_unwind().await;
    start_kueue(&t.dir);
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
    t.finish(op).await;
}

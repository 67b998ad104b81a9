//! The chart's MutatingAdmissionPolicy (`charts/tfjob-operator/files/finalizer-policy.yaml`): a
//! TFJob is stored with the operator's finalizer from its creation, so the operator has none to
//! add and the job is never seen without it; a finalizer the user set is kept; jobs managed by
//! another controller, and namespaces the binding does not name, are left alone. Checked against
//! the real API server, with the operator running the job to its deletion.

mod common;

use std::time::Duration;

use common::cluster::{TestNs, has_condition, wait_job};
use common::policy::{Installed, Scope, applied, install};
use futures::TryStreamExt;
use kube::ResourceExt;
use kube::api::{DeleteParams, PostParams};
use kube::runtime::watcher::{self, Event};
use tfjob_operator::api::TFJob;
use tfjob_operator::api::builder::tfjob;
use tfjob_operator::plan::cleanup::FINALIZER;

const POLICY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/charts/tfjob-operator/files/finalizer-policy.yaml"
);

/// The finalizers the API server would store `job` with (a dry-run create).
async fn stored_finalizers(t: &TestNs, job: &TFJob) -> Vec<String> {
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let stored = t
        .jobs()
        .create(&dry_run, job)
        .await
        .expect("dry-run create");
    stored.finalizers().to_vec()
}

/// A test namespace with the policy bound to it, once the API server applies it.
async fn namespace_with_policy(prefix: &str) -> (TestNs, Installed) {
    let t = TestNs::new(prefix).await;
    let policy = install(&t.client, &t.ns, POLICY, Scope::Namespace).await;
    // The API server picks a new policy up from its own watch: wait until it mutates.
    let probe = tfjob("probe").workers(1).build();
    applied("the policy adds the finalizer", || async {
        (!stored_finalizers(&t, &probe).await.is_empty()).then_some(())
    })
    .await;
    (t, policy)
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn a_job_is_stored_with_the_finalizer_and_never_seen_without_it() {
    let (t, policy) = namespace_with_policy("finalizer-policy").await;

    // The finalizers of every version of the job a watcher sees, from before it is created
    // until it is gone (the watch ends at its deletion).
    let seen = tokio::spawn(
        watcher::watcher(
            t.jobs(),
            watcher::Config::default().fields("metadata.name=held"),
        )
        .try_take_while(|event| std::future::ready(Ok(!matches!(event, Event::Delete(_)))))
        .try_filter_map(|event| async move {
            Ok(match event {
                Event::Apply(job) | Event::InitApply(job) => Some(job.finalizers().to_vec()),
                _ => None,
            })
        })
        .try_collect::<Vec<_>>(),
    );
    let op = t.operator();
    let created = t.create_job(tfjob("held").workers(1)).await;
    assert_eq!(created.finalizers(), [FINALIZER], "stored with it");
    wait_job(&t, "held", "held Running", Duration::from_secs(60), |j| {
        has_condition(j, "Running")
    })
    .await;
    t.jobs()
        .delete("held", &DeleteParams::default())
        .await
        .expect("deleted");
    let seen = tokio::time::timeout(Duration::from_secs(60), seen)
        .await
        .expect("the job is gone within a minute")
        .expect("watch task")
        .expect("watch");
    assert!(seen.len() >= 2, "created, then Running: {seen:?}");
    assert!(
        seen.iter().all(|f| f[..] == [FINALIZER]),
        "every version held the finalizer, and only ours: {seen:?}"
    );
    assert_eq!(t.children_left().await, 0, "cleaned up before it went");
    policy.remove().await;
    t.finish(op).await;
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn the_users_finalizers_jobs_managed_elsewhere_and_other_namespaces_are_left_alone() {
    let (t, policy) = namespace_with_policy("finalizer-policy-alone").await;
    let mut kept = tfjob("kept").workers(1).build();
    kept.metadata.finalizers = Some(vec!["example.com/keep".into()]);
    assert_eq!(
        stored_finalizers(&t, &kept).await,
        ["example.com/keep", FINALIZER],
        "a finalizer the user set is kept"
    );
    let multikueue = tfjob("elsewhere")
        .workers(1)
        .managed_by("kueue.x-k8s.io/multikueue")
        .build();
    assert!(
        stored_finalizers(&t, &multikueue).await.is_empty(),
        "a job the operator leaves to MultiKueue gets no finalizer"
    );
    let other = TestNs::new("finalizer-policy-other").await;
    assert!(
        stored_finalizers(&other, &tfjob("probe").workers(1).build())
            .await
            .is_empty(),
        "a namespace the binding does not name is left alone"
    );
    policy.remove().await;
}

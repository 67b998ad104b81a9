//! Scenario tables for the job planner, after upstream's controller and status tests.

use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateTerminated, ContainerStatus, Pod, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::plan;
use crate::api::builder::{TFJobBuilder, tfjob};
use crate::api::{
    ChildPod, ChildService, CleanPodPolicy, ControllerRef, ReplicaType, RestartPolicy, RunPolicy,
    SuccessPolicy, TFJob, TFJobStatus,
};
use crate::plan::conditions::{get, is_true, kind};
use crate::plan::desired::{JobIdentity, desired_pod, desired_service};
use crate::plan::{Change, EventKind, Outcome, Plan, PlanConfig};

const UID: &str = "uid-1";

fn now() -> Timestamp {
    Timestamp::from_second(1_800_000_000).unwrap()
}

fn ago(secs: i64) -> Time {
    Time(Timestamp::from_second(1_800_000_000 - secs).unwrap())
}

/// The job every scenario starts from; add replicas with the builder.
fn job() -> TFJobBuilder {
    tfjob("test-tfjob").namespace("default").uid(UID)
}

fn run_policy(j: &mut TFJob) -> &mut RunPolicy {
    j.spec.run_policy.get_or_insert_with(Default::default)
}

fn cfg() -> PlanConfig {
    crate::settings::RunSettings::defaults()
        .controller_config()
        .plan
}

/// A job that already went through its first pass (Created, startTime set).
fn started(mut j: TFJob) -> TFJob {
    let first = plan(&j, &[], &[], now(), &cfg());
    j.status = first.status;
    j
}

fn id() -> JobIdentity {
    JobIdentity {
        name: "test-tfjob".into(),
        namespace: "default".into(),
        uid: UID.into(),
    }
}

/// The pod the planner would create, in a given phase and exit code.
fn pod(j: &TFJob, t: ReplicaType, index: i32, phase: &str, exit: Option<i32>) -> Arc<ChildPod> {
    let spec = crate::api::defaults::normalize(&j.spec, CleanPodPolicy::Running).unwrap();
    let mut p = desired_pod(&id(), &spec, &spec.replicas[&t], index, None);
    p.metadata.uid = Some(format!("pod-{}-{index}", t.lower()));
    p.status = Some(PodStatus {
        phase: Some(phase.into()),
        container_statuses: exit.map(|code| {
            vec![ContainerStatus {
                name: "tensorflow".into(),
                state: Some(ContainerState {
                    terminated: Some(ContainerStateTerminated {
                        exit_code: code,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }]
        }),
        ..Default::default()
    });
    Arc::new(p.into())
}

fn services(j: &TFJob) -> Vec<Arc<ChildService>> {
    let spec = crate::api::defaults::normalize(&j.spec, CleanPodPolicy::Running).unwrap();
    spec.replicas
        .values()
        .flat_map(|r| (0..r.replicas).map(move |i| (r.clone(), i)))
        .map(|(r, i)| {
            let mut s = desired_service(&id(), &r, i);
            s.metadata.uid = Some(format!("svc-{}-{i}", r.rtype.lower()));
            Arc::new(s.into())
        })
        .collect()
}

fn creates(p: &Plan) -> (Vec<String>, Vec<String>) {
    let mut pods = vec![];
    let mut svcs = vec![];
    for a in &p.changes {
        match a {
            Change::CreatePod(x) => pods.push(x.metadata.name.clone().unwrap()),
            Change::CreateService(x) => svcs.push(x.metadata.name.clone().unwrap()),
            _ => {}
        }
    }
    (pods, svcs)
}

fn deletes(p: &Plan) -> (Vec<String>, Vec<String>) {
    let mut pods = vec![];
    let mut svcs = vec![];
    for a in &p.changes {
        match a {
            Change::DeletePod(r) => pods.push(r.name.clone()),
            Change::DeleteService(r) => svcs.push(r.name.clone()),
            _ => {}
        }
    }
    (pods, svcs)
}

fn status(p: &Plan) -> &TFJobStatus {
    p.status.as_ref().expect("status changed")
}

fn last_condition(p: &Plan) -> (String, String, String) {
    let c = status(p).conditions.last().unwrap();
    (
        c.type_.clone(),
        c.reason.clone().unwrap_or_default(),
        c.message.clone().unwrap_or_default(),
    )
}

/// Conditions as (type, status, reason), in order.
fn triples(st: &TFJobStatus) -> Vec<(&str, &str, &str)> {
    st.conditions
        .iter()
        .map(|c| {
            (
                c.type_.as_str(),
                c.status.as_str(),
                c.reason.as_deref().unwrap_or_default(),
            )
        })
        .collect()
}

fn reasons(p: &Plan) -> Vec<&str> {
    p.events.iter().map(|e| e.reason.as_str()).collect()
}

#[test]
fn new_job_creates_every_pod_and_service_and_the_created_condition() {
    let j = job().replicas("Ps", 1).workers(2).build();
    let p = plan(&j, &[], &[], now(), &cfg());
    let (pods, svcs) = creates(&p);
    assert_eq!(
        pods,
        vec![
            "test-tfjob-ps-0",
            "test-tfjob-worker-0",
            "test-tfjob-worker-1"
        ]
    );
    assert_eq!(svcs, pods);
    let st = status(&p);
    assert_eq!(st.conditions.len(), 1);
    assert_eq!(st.conditions[0].type_, "Created");
    assert_eq!(st.conditions[0].reason.as_deref(), Some("TFJobCreated"));
    assert_eq!(
        st.conditions[0].message.as_deref(),
        Some("TFJob test-tfjob is created.")
    );
    assert_eq!(st.start_time, Some(Time(now())));
    assert_eq!(
        st.replica_statuses.keys().collect::<Vec<_>>(),
        vec!["PS", "Worker"]
    );
    assert!(!p.status_may_wait, "Created is written at once");
}

#[test]
fn pods_carry_names_labels_owner_restart_policy_and_tf_config() {
    let mut j = job()
        .replicas("Ps", 1)
        .workers(1)
        .restart(RestartPolicy::ExitCode)
        .build();
    j.spec
        .tf_replica_specs
        .get_mut("Ps")
        .unwrap()
        .template
        .as_mut()
        .unwrap()
        .edit(|t| t.spec.as_mut().unwrap().restart_policy = Some("OnFailure".into()))
        .unwrap();
    let p = plan(&j, &[], &[], now(), &cfg());
    assert!(reasons(&p).contains(&"SetPodTemplateRestartPolicy"));
    let pods: Vec<&Pod> = p
        .changes
        .iter()
        .filter_map(|a| match a {
            Change::CreatePod(x) => Some(x.as_ref()),
            _ => None,
        })
        .collect();
    let worker = pods
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some("test-tfjob-worker-0"))
        .unwrap();
    let labels = worker.metadata.labels.as_ref().unwrap();
    assert_eq!(
        labels["training.kubeflow.org/operator-name"],
        "tfjob-controller"
    );
    assert_eq!(labels["training.kubeflow.org/job-name"], "test-tfjob");
    assert_eq!(labels["training.kubeflow.org/replica-type"], "worker");
    assert_eq!(labels["training.kubeflow.org/replica-index"], "0");
    assert_eq!(labels["training.kubeflow.org/job-role"], "master");
    let owner = &worker.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!((owner.kind.as_str(), owner.uid.as_str()), ("TFJob", UID));
    assert_eq!(owner.controller, Some(true));
    assert_eq!(owner.block_owner_deletion, Some(true));
    let spec = worker.spec.as_ref().unwrap();
    assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
    let env = spec.containers[0].env.as_ref().unwrap();
    assert_eq!(env[0].name, "TF_CONFIG");
    assert_eq!(
        env[0].value.as_deref(),
        Some(
            r#"{"cluster":{"ps":["test-tfjob-ps-0.default.svc:2222"],"worker":["test-tfjob-worker-0.default.svc:2222"]},"task":{"type":"worker","index":0},"environment":"cloud"}"#
        )
    );
    let ps = pods
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some("test-tfjob-ps-0"))
        .unwrap();
    ps_pod_and_service(ps, &p);
}

/// The PS of `pods_carry_names_labels_owner_restart_policy_and_tf_config`: no master role, its
/// replica's restartPolicy, and a headless service selecting exactly it.
fn ps_pod_and_service(ps: &Pod, p: &Plan) {
    assert!(
        !ps.metadata
            .labels
            .as_ref()
            .unwrap()
            .contains_key("training.kubeflow.org/job-role")
    );
    assert_eq!(
        ps.spec.as_ref().unwrap().restart_policy.as_deref(),
        Some("Never")
    );
    // Services are headless, selecting exactly their pod, with the tfjob-port.
    let svc = p
        .changes
        .iter()
        .find_map(|a| match a {
            Change::CreateService(s) if s.metadata.name.as_deref() == Some("test-tfjob-ps-0") => {
                Some(s)
            }
            _ => None,
        })
        .unwrap();
    let sspec = svc.spec.as_ref().unwrap();
    assert_eq!(sspec.cluster_ip.as_deref(), Some("None"));
    assert_eq!(
        sspec.selector.as_ref().unwrap()["training.kubeflow.org/replica-type"],
        "ps"
    );
    let port = &sspec.ports.as_ref().unwrap()[0];
    assert_eq!(
        (port.name.as_deref(), port.port),
        (Some("tfjob-port"), 2222)
    );
}

#[test]
fn single_replica_gets_no_tf_config() {
    let j = job().workers(1).build();
    let p = plan(&j, &[], &[], now(), &cfg());
    let pod = p
        .changes
        .iter()
        .find_map(|a| match a {
            Change::CreatePod(x) => Some(x),
            _ => None,
        })
        .unwrap();
    assert!(pod.spec.as_ref().unwrap().containers[0].env.is_none());
}

#[test]
fn running_pods_make_the_job_running_and_a_second_pass_changes_nothing() {
    let j = started(job().ps(1).workers(2).build());
    let pods = vec![
        pod(&j, ReplicaType::Ps, 0, "Running", None),
        pod(&j, ReplicaType::Worker, 0, "Running", None),
        pod(&j, ReplicaType::Worker, 1, "Pending", None),
    ];
    let svcs = services(&j);
    let p = plan(&j, &pods, &svcs, now(), &cfg());
    assert!(p.changes.is_empty(), "{:?}", p.changes);
    assert_eq!(
        last_condition(&p),
        (
            "Running".into(),
            "TFJobRunning".into(),
            "TFJob default/test-tfjob is running.".into()
        )
    );
    assert_eq!(status(&p).replica_statuses["Worker"].active, 1);
    assert_eq!(status(&p).replica_statuses["PS"].active, 1);
    assert!(
        p.status_may_wait,
        "worker 1 is still pending: becoming Running may wait for it"
    );
    let mut j2 = j.clone();
    j2.status = p.status.clone();
    let again = plan(&j2, &pods, &svcs, now(), &cfg());
    assert_eq!(again, Plan::default(), "an unchanged world needs no write");
    // The last pod up: nothing more to wait for, the counts are written at once.
    let all_up = vec![
        pods[0].clone(),
        pods[1].clone(),
        pod(&j, ReplicaType::Worker, 1, "Running", None),
    ];
    let p = plan(&j2, &all_up, &svcs, now(), &cfg());
    assert_eq!(status(&p).replica_statuses["Worker"].active, 2);
    assert!(!p.status_may_wait);
}

#[test]
fn worker0_success_succeeds_the_job_then_running_pods_are_cleaned() {
    let j = started(job().ps(1).workers(2).build());
    let pods = vec![
        pod(&j, ReplicaType::Ps, 0, "Running", None),
        pod(&j, ReplicaType::Worker, 0, "Succeeded", Some(0)),
        pod(&j, ReplicaType::Worker, 1, "Running", None),
    ];
    let svcs = services(&j);
    let p = plan(&j, &pods, &svcs, now(), &cfg());
    assert_eq!(last_condition(&p).0, "Succeeded");
    assert_eq!(
        last_condition(&p).2,
        "TFJob default/test-tfjob successfully completed."
    );
    assert_eq!(status(&p).completion_time, Some(Time(now())));
    assert!(reasons(&p).contains(&"TFJobSucceeded"));
    assert!(!p.status_may_wait, "completion is written at once");
    // The same pass cleans up by cleanPodPolicy Running (our default): running pods + services.
    let (dp, ds) = deletes(&p);
    assert_eq!(dp, vec!["test-tfjob-ps-0", "test-tfjob-worker-1"]);
    assert_eq!(ds, dp);
    let rs = &status(&p).replica_statuses;
    assert_eq!((rs["PS"].active, rs["PS"].succeeded), (0, 1));
    // The next pass repeats the (idempotent) deletes of what is still there but writes nothing.
    let mut done = j.clone();
    done.status = p.status.clone();
    let p2 = plan(&done, &pods, &svcs, now(), &cfg());
    assert_eq!(deletes(&p2).0, dp);
    assert!(p2.status.is_none());
}

#[test]
fn clean_pod_policy_all_and_none() {
    let mut j = started(job().ps(1).workers(1).build());
    let pods = vec![
        pod(&j, ReplicaType::Ps, 0, "Running", None),
        pod(&j, ReplicaType::Worker, 0, "Succeeded", Some(0)),
    ];
    let svcs = services(&j);
    let succeeded = plan(&j, &pods, &svcs, now(), &cfg()).status;
    j.status = succeeded;
    run_policy(&mut j).clean_pod_policy = Some(CleanPodPolicy::All);
    let (dp, ds) = deletes(&plan(&j, &pods, &svcs, now(), &cfg()));
    assert_eq!((dp.len(), ds.len()), (2, 2));
    run_policy(&mut j).clean_pod_policy = Some(CleanPodPolicy::None);
    assert!(plan(&j, &pods, &svcs, now(), &cfg()).changes.is_empty());
    // The legacy field is honoured when runPolicy has none.
    j.spec.run_policy = None;
    j.spec.clean_pod_policy = Some(CleanPodPolicy::None);
    assert!(plan(&j, &pods, &svcs, now(), &cfg()).changes.is_empty());
    // Upstream's default (None) when configured so.
    j.spec.clean_pod_policy = None;
    let upstream = PlanConfig {
        default_clean_pod_policy: CleanPodPolicy::None,
        ..cfg()
    };
    assert!(plan(&j, &pods, &svcs, now(), &upstream).changes.is_empty());
}

#[test]
fn chief_decides_when_present() {
    let j = started(job().chief(1).workers(2).build());
    let svcs = services(&j);
    let worker_done = vec![
        pod(&j, ReplicaType::Chief, 0, "Running", None),
        pod(&j, ReplicaType::Worker, 0, "Succeeded", Some(0)),
        pod(&j, ReplicaType::Worker, 1, "Succeeded", Some(0)),
    ];
    assert_eq!(
        last_condition(&plan(&j, &worker_done, &svcs, now(), &cfg())).0,
        "Running"
    );
    let chief_done = vec![
        pod(&j, ReplicaType::Chief, 0, "Succeeded", Some(0)),
        pod(&j, ReplicaType::Worker, 0, "Running", None),
        pod(&j, ReplicaType::Worker, 1, "Running", None),
    ];
    assert_eq!(
        last_condition(&plan(&j, &chief_done, &svcs, now(), &cfg())).0,
        "Succeeded"
    );
    // The chief is created with job-role=master, worker-0 without.
    let role = |name: &str| {
        plan(&j, &[], &[], now(), &cfg())
            .changes
            .into_iter()
            .find_map(|a| match a {
                Change::CreatePod(p) if p.metadata.name.as_deref() == Some(name) => Some(p),
                _ => None,
            })
            .and_then(|p| p.metadata.labels?.remove("training.kubeflow.org/job-role"))
    };
    assert_eq!(role("test-tfjob-chief-0").as_deref(), Some("master"));
    assert_eq!(role("test-tfjob-worker-0"), None);
}

#[test]
fn all_workers_success_policy() {
    let mut j = job().workers(2).build();
    j.spec.success_policy = Some(SuccessPolicy::AllWorkers);
    let j = started(j);
    let svcs = services(&j);
    let one = vec![
        pod(&j, ReplicaType::Worker, 0, "Succeeded", Some(0)),
        pod(&j, ReplicaType::Worker, 1, "Running", None),
    ];
    assert_eq!(
        last_condition(&plan(&j, &one, &svcs, now(), &cfg())).0,
        "Running"
    );
    let both = vec![
        pod(&j, ReplicaType::Worker, 0, "Succeeded", Some(0)),
        pod(&j, ReplicaType::Worker, 1, "Succeeded", Some(0)),
    ];
    assert_eq!(
        last_condition(&plan(&j, &both, &svcs, now(), &cfg())).0,
        "Succeeded"
    );
}

#[test]
fn never_policy_failure_fails_the_job() {
    let j = started(job().ps(1).workers(1).build());
    let pods = vec![
        pod(&j, ReplicaType::Ps, 0, "Failed", Some(1)),
        pod(&j, ReplicaType::Worker, 0, "Running", None),
    ];
    let p = plan(&j, &pods, &services(&j), now(), &cfg());
    assert_eq!(
        last_condition(&p),
        (
            "Failed".into(),
            "TFJobFailed".into(),
            "TFJob default/test-tfjob has failed because 1 PS replica(s) failed. \
             PS 0 (pod test-tfjob-ps-0) exited with code 1."
                .into()
        )
    );
    assert_eq!(status(&p).replica_statuses["PS"].failed, 1);
    assert!(reasons(&p).contains(&"ExitedWithCode"));
    // Nothing flips back once Failed.
    assert!(!is_true(status(&p), kind::RUNNING));
}

#[test]
fn exit_code_policy_retries_signals_and_fails_on_errors() {
    let j = started(job().workers(2).restart(RestartPolicy::ExitCode).build());
    let svcs = services(&j);
    let killed = vec![
        pod(&j, ReplicaType::Worker, 0, "Failed", Some(137)),
        pod(&j, ReplicaType::Worker, 1, "Running", None),
    ];
    let p = plan(&j, &killed, &svcs, now(), &cfg());
    assert_eq!(deletes(&p).0, vec!["test-tfjob-worker-0"]);
    assert_eq!(
        last_condition(&p),
        (
            "Restarting".into(),
            "TFJobRestarting".into(),
            "job test-tfjob is restarting because Worker replica(s) failed. \
             Worker 0 (pod test-tfjob-worker-0) exited with code 137."
                .into()
        )
    );
    assert!(!is_true(status(&p), kind::RUNNING));
    assert_eq!(status(&p).replica_statuses["Worker"].restarts, 1);
    assert!(
        p.events
            .iter()
            .any(|e| e.reason == "TFJobRestarting" && e.kind == EventKind::Warning)
    );
    // The replacement is created once the old pod is gone, then Running replaces Restarting.
    let mut j2 = j.clone();
    j2.status = p.status.clone();
    let gone = vec![killed[1].clone()];
    assert_eq!(
        creates(&plan(&j2, &gone, &svcs, now(), &cfg())).0,
        vec!["test-tfjob-worker-0"]
    );
    let back = vec![
        pod(&j, ReplicaType::Worker, 0, "Running", None),
        killed[1].clone(),
    ];
    let p3 = plan(&j2, &back, &svcs, now(), &cfg());
    assert_eq!(last_condition(&p3).0, "Running");
    assert!(get(status(&p3), kind::RESTARTING).is_none());
    assert_eq!(
        status(&p3).replica_statuses["Worker"].restarts,
        1,
        "restart count is kept"
    );

    let errored = vec![
        pod(&j, ReplicaType::Worker, 0, "Failed", Some(1)),
        pod(&j, ReplicaType::Worker, 1, "Running", None),
    ];
    let p = plan(&j, &errored, &svcs, now(), &cfg());
    // The failed pod stays for inspection; the running one goes (cleanPodPolicy Running).
    assert_eq!(deletes(&p).0, vec!["test-tfjob-worker-1"]);
    assert_eq!(
        last_condition(&p),
        (
            "Failed".into(),
            "TFJobFailed".into(),
            "job \"test-tfjob\" is failing because \"Worker\" replica(s) failed. \
             Worker 0 (pod test-tfjob-worker-0) exited with code 1."
                .into()
        )
    );
}

#[test]
fn on_failure_pods_that_fail_are_recreated() {
    let j = started(job().workers(1).restart(RestartPolicy::OnFailure).build());
    let p = plan(
        &j,
        &[pod(&j, ReplicaType::Worker, 0, "Failed", Some(1))],
        &services(&j),
        now(),
        &cfg(),
    );
    assert_eq!(deletes(&p).0, vec!["test-tfjob-worker-0"]);
    assert_eq!(last_condition(&p).0, "Restarting");
    assert!(!p.status_may_wait, "a restart is counted at once");
}

#[test]
fn backoff_limit_counts_recreations_and_container_restarts() {
    let mut j = job().workers(2).restart(RestartPolicy::ExitCode).build();
    run_policy(&mut j).backoff_limit = Some(1);
    let mut j = started(j);
    let svcs = services(&j);
    // One recreation already spent: the next signal failure exceeds the limit.
    j.status
        .as_mut()
        .unwrap()
        .replica_statuses
        .get_mut("Worker")
        .unwrap()
        .restarts = 1;
    let pods = vec![
        pod(&j, ReplicaType::Worker, 0, "Failed", Some(137)),
        pod(&j, ReplicaType::Worker, 1, "Running", None),
    ];
    let p = plan(&j, &pods, &svcs, now(), &cfg());
    assert_eq!(
        last_condition(&p),
        (
            "Failed".into(),
            "TFJobFailed".into(),
            "Job test-tfjob has failed because it has reached the specified backoff limit".into()
        )
    );
    // cleanPodPolicy Running (the default here): the running worker goes, the failed one stays.
    assert_eq!(
        deletes(&p),
        (
            vec!["test-tfjob-worker-1".into()],
            vec!["test-tfjob-worker-1".into()]
        )
    );

    // In-place restarts (OnFailure) count too.
    let mut j = job().workers(1).restart(RestartPolicy::OnFailure).build();
    run_policy(&mut j).backoff_limit = Some(2);
    let j = started(j);
    let mut restarted = (*pod(&j, ReplicaType::Worker, 0, "Running", None)).clone();
    restarted.state.restarts = 3;
    let p = plan(&j, &[Arc::new(restarted)], &services(&j), now(), &cfg());
    assert_eq!(last_condition(&p).0, "Failed");
    // ...but not for Never replicas.
    let mut j = job().workers(1).build();
    run_policy(&mut j).backoff_limit = Some(0);
    let j = started(j);
    let mut restarted = (*pod(&j, ReplicaType::Worker, 0, "Running", None)).clone();
    restarted.state.restarts = 3;
    let p = plan(&j, &[Arc::new(restarted)], &services(&j), now(), &cfg());
    assert_eq!(last_condition(&p).0, "Running");
}

#[test]
fn a_job_failed_by_a_limit_keeps_or_deletes_its_pods_by_clean_pod_policy() {
    // kubeflow/trainer#3419: with cleanPodPolicy None every pod stays, for the logs.
    for (policy, pods_deleted) in [
        (CleanPodPolicy::None, 0),
        (CleanPodPolicy::Running, 1),
        (CleanPodPolicy::All, 2),
    ] {
        let mut j = job().workers(2).restart(RestartPolicy::OnFailure).build();
        run_policy(&mut j).backoff_limit = Some(0);
        run_policy(&mut j).clean_pod_policy = Some(policy);
        let j = started(j);
        let pods = vec![
            pod(&j, ReplicaType::Worker, 0, "Failed", Some(1)),
            pod(&j, ReplicaType::Worker, 1, "Running", None),
        ];
        let p = plan(&j, &pods, &services(&j), now(), &cfg());
        assert_eq!(last_condition(&p).0, "Failed", "{policy:?}");
        assert_eq!(deletes(&p).0.len(), pods_deleted, "{policy:?}");
    }
}

#[test]
fn failures_and_restarts_say_which_replica_ended_how() {
    let oom = |j: &TFJob, index, policy_code: i32| {
        let mut p = (*pod(j, ReplicaType::Worker, index, "Failed", Some(policy_code))).clone();
        p.state.exit_reason = Some("OOMKilled".into());
        Arc::new(p)
    };
    // Never: the job fails, and says which worker ended how; the event is a Warning.
    let j = started(job().workers(2).build());
    let pods = vec![
        pod(&j, ReplicaType::Worker, 0, "Running", None),
        oom(&j, 1, 137),
    ];
    let p = plan(&j, &pods, &services(&j), now(), &cfg());
    let (kind, reason, message) = last_condition(&p);
    assert_eq!((kind.as_str(), reason.as_str()), ("Failed", "TFJobFailed"));
    assert_eq!(
        message,
        "TFJob default/test-tfjob has failed because 1 Worker replica(s) failed. \
         Worker 1 (pod test-tfjob-worker-1) exited with code 137 (OOMKilled)."
    );
    let event = p
        .events
        .iter()
        .find(|e| e.reason == "TFJobFailed")
        .expect("event");
    assert_eq!(
        (event.kind, event.message.as_str()),
        (EventKind::Warning, message.as_str())
    );
    // ExitCode: the restart says the same.
    let j = started(job().workers(2).restart(RestartPolicy::ExitCode).build());
    let pods = vec![
        pod(&j, ReplicaType::Worker, 0, "Running", None),
        oom(&j, 1, 137),
    ];
    let p = plan(&j, &pods, &services(&j), now(), &cfg());
    assert_eq!(
        last_condition(&p).2,
        "job test-tfjob is restarting because Worker replica(s) failed. \
         Worker 1 (pod test-tfjob-worker-1) exited with code 137 (OOMKilled)."
    );
}

/// A pending pod that cannot start for `reason`, with `message`.
fn stuck(j: &TFJob, rtype: ReplicaType, index: i32, reason: &str, message: &str) -> Arc<ChildPod> {
    let mut p = (*pod(j, rtype, index, "Pending", None)).clone();
    p.state.waiting = Some(crate::api::Waiting {
        reason: reason.into(),
        message: message.into(),
    });
    Arc::new(p)
}

/// Warning reasons of a plan's events.
fn warnings(p: &Plan) -> Vec<&str> {
    p.events
        .iter()
        .filter(|e| e.kind == EventKind::Warning)
        .map(|e| e.reason.as_str())
        .collect()
}

#[test]
fn a_job_says_why_its_pods_cannot_start_once_per_cause() {
    let mut j = started(job().ps(1).workers(1).build());
    let unschedulable = "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.";
    let pods = vec![
        stuck(
            &j,
            ReplicaType::Ps,
            0,
            "ImagePullBackOff",
            "Back-off pulling image \"x\"",
        ),
        stuck(&j, ReplicaType::Worker, 0, "Unschedulable", unschedulable),
    ];
    let p = plan(&j, &pods, &services(&j), now(), &cfg());
    let (kind, reason, message) = last_condition(&p);
    assert_eq!(
        (kind.as_str(), reason.as_str()),
        ("Created", "TFJobCreated")
    );
    assert_eq!(
        message,
        "TFJob test-tfjob is created. Waiting: PS 0 (pod test-tfjob-ps-0) cannot start \
         (ImagePullBackOff): Back-off pulling image \"x\"; Worker 0 (pod test-tfjob-worker-0) \
         cannot be scheduled: 0/3 nodes are available: 3 Insufficient nvidia.com/gpu."
    );
    assert_eq!(warnings(&p), ["ImagePullBackOff", "Unschedulable"]);
    // The same causes on the next pass: nothing new to say, nothing to write.
    j.status = p.status.clone();
    let again = plan(&j, &pods, &services(&j), now(), &cfg());
    assert!(warnings(&again).is_empty());
    assert_eq!(again.status, None);
}

#[test]
fn a_waiting_cause_follows_its_message_quietly_and_goes_when_the_pods_run() {
    let mut j = started(job().workers(1).build());
    let pods = vec![stuck(
        &j,
        ReplicaType::Worker,
        0,
        "Unschedulable",
        "0/3 nodes are available",
    )];
    j.status = plan(&j, &pods, &services(&j), now(), &cfg()).status;
    // The scheduler's message changes (a node was added): the words follow, no new Warning.
    let more = vec![stuck(
        &j,
        ReplicaType::Worker,
        0,
        "Unschedulable",
        "0/4 nodes are available",
    )];
    let p = plan(&j, &more, &services(&j), now(), &cfg());
    assert!(warnings(&p).is_empty());
    assert!(
        last_condition(&p)
            .2
            .ends_with("cannot be scheduled: 0/4 nodes are available.")
    );
    // The cause goes: so do the words, also from the condition that said them.
    j.status = p.status.clone();
    let running = vec![pod(&j, ReplicaType::Worker, 0, "Running", None)];
    let p = plan(&j, &running, &services(&j), now(), &cfg());
    let created = get(status(&p), kind::CREATED).expect("Created");
    assert_eq!(
        created.message.as_deref(),
        Some("TFJob test-tfjob is created.")
    );
    assert_eq!(last_condition(&p).0, "Running");
}

#[test]
fn a_new_waiting_cause_is_written_at_once_so_its_warning_is_not_said_twice() {
    // Running, then its pod waits on its image: only the Running condition's message and the
    // counts change, which alone could wait for the batch, but the stored message is what
    // keeps the Warning from being said again on the next pass.
    let mut j = started(job().workers(2).build());
    let up = vec![
        pod(&j, ReplicaType::Worker, 0, "Running", None),
        pod(&j, ReplicaType::Worker, 1, "Running", None),
    ];
    let running = plan(&j, &up, &services(&j), now(), &cfg());
    assert_eq!(last_condition(&running).0, "Running");
    j.status = running.status;
    let backing_off = vec![
        up[0].clone(),
        stuck(&j, ReplicaType::Worker, 1, "ImagePullBackOff", "Back-off"),
    ];
    let p = plan(&j, &backing_off, &services(&j), now(), &cfg());
    assert_eq!(warnings(&p), ["ImagePullBackOff"]);
    assert!(!p.status_may_wait, "the cause announced is written with it");
    // Written: the next pass has nothing to say.
    j.status = p.status.clone();
    let again = plan(&j, &backing_off, &services(&j), now(), &cfg());
    assert!(warnings(&again).is_empty());
}

#[test]
fn a_disrupted_pod_is_recreated_without_spending_the_backoff_limit() {
    for policy in [
        RestartPolicy::OnFailure,
        RestartPolicy::ExitCode,
        RestartPolicy::Always,
    ] {
        let mut j = job().workers(1).restart(policy).build();
        run_policy(&mut j).backoff_limit = Some(0);
        let j = started(j);
        let mut evicted = (*pod(&j, ReplicaType::Worker, 0, "Failed", Some(137))).clone();
        evicted.state.disrupted = Some("Evicted".into());
        let p = plan(&j, &[Arc::new(evicted)], &services(&j), now(), &cfg());
        assert_eq!(deletes(&p).0, vec!["test-tfjob-worker-0"], "{policy:?}");
        assert_eq!(last_condition(&p).0, "Restarting", "{policy:?}");
        assert_eq!(status(&p).replica_statuses["Worker"].restarts, 0);
        assert!(reasons(&p).contains(&"PodDisrupted"), "{:?}", reasons(&p));
    }
    // A real failure of the program still counts, and fails the job at backoffLimit 0.
    let mut j = job().workers(1).restart(RestartPolicy::OnFailure).build();
    run_policy(&mut j).backoff_limit = Some(0);
    let j = started(j);
    let failed = vec![pod(&j, ReplicaType::Worker, 0, "Failed", Some(137))];
    let p = plan(&j, &failed, &services(&j), now(), &cfg());
    assert_eq!(last_condition(&p).0, "Failed");
    // Under Never a disrupted pod fails its replica as any failed pod does.
    let j = started(job().workers(1).build());
    let mut evicted = (*pod(&j, ReplicaType::Worker, 0, "Failed", Some(137))).clone();
    evicted.state.disrupted = Some("PreemptionByScheduler".into());
    let p = plan(&j, &[Arc::new(evicted)], &services(&j), now(), &cfg());
    assert_eq!(last_condition(&p).0, "Failed");
}

#[test]
fn active_deadline_fails_on_time_and_requeues_before() {
    let mut j = job().workers(1).build();
    run_policy(&mut j).active_deadline_seconds = Some(60);
    let mut j = started(j);
    j.status.as_mut().unwrap().start_time = Some(ago(20));
    let pods = vec![pod(&j, ReplicaType::Worker, 0, "Running", None)];
    let p = plan(&j, &pods, &services(&j), now(), &cfg());
    assert_eq!(p.requeue_after, Some(std::time::Duration::from_secs(40)));
    j.status.as_mut().unwrap().start_time = Some(ago(60));
    let p = plan(&j, &pods, &services(&j), now(), &cfg());
    assert_eq!(
        last_condition(&p).2,
        "Job test-tfjob has failed because it was active longer than specified deadline"
    );
    assert_eq!(deletes(&p).0, vec!["test-tfjob-worker-0"]);
    // The legacy top-level field works the same.
    let mut j = job().workers(1).build();
    j.spec.active_deadline_seconds = Some(5);
    let mut j = started(j);
    j.status.as_mut().unwrap().start_time = Some(ago(6));
    assert_eq!(
        last_condition(&plan(&j, &pods, &services(&j), now(), &cfg())).0,
        "Failed"
    );
}

#[test]
fn ttl_deletes_the_job_on_time() {
    let mut j = job().workers(1).build();
    run_policy(&mut j).ttl_seconds_after_finished = Some(10);
    let j = started(j);
    let done = vec![pod(&j, ReplicaType::Worker, 0, "Succeeded", Some(0))];
    let mut fin = j.clone();
    fin.status = plan(&j, &done, &services(&j), now(), &cfg()).status;
    fin.status.as_mut().unwrap().completion_time = Some(ago(4));
    let p = plan(&fin, &done, &services(&j), now(), &cfg());
    assert_eq!(p.requeue_after, Some(std::time::Duration::from_secs(6)));
    assert!(!p.changes.contains(&Change::DeleteJob));
    fin.status.as_mut().unwrap().completion_time = Some(ago(10));
    let p = plan(&fin, &done, &services(&j), now(), &cfg());
    assert!(p.changes.contains(&Change::DeleteJob));
}

#[test]
fn suspend_and_resume() {
    // Created suspended: no pods, no start time, [Created, Suspended].
    let mut j = job().workers(1).build();
    run_policy(&mut j).suspend = Some(true);
    let p = plan(&j, &[], &[], now(), &cfg());
    assert!(p.changes.is_empty());
    let st = status(&p);
    assert_eq!(st.start_time, None);
    let conds = triples(st);
    assert_eq!(
        conds,
        vec![
            ("Created", "True", "TFJobCreated"),
            ("Suspended", "True", "TFJobSuspended")
        ]
    );
    assert_eq!(
        st.conditions[1].message.as_deref(),
        Some("TFJob test-tfjob is suspended.")
    );

    // Suspended while running: pods and services deleted, Running False, startTime kept.
    let mut j = started(job().workers(1).build());
    let pods = vec![pod(&j, ReplicaType::Worker, 0, "Running", None)];
    let svcs = services(&j);
    j.status = plan(&j, &pods, &svcs, now(), &cfg()).status;
    run_policy(&mut j).suspend = Some(true);
    let p = plan(&j, &pods, &svcs, now(), &cfg());
    assert_eq!(
        deletes(&p),
        (
            vec!["test-tfjob-worker-0".into()],
            vec!["test-tfjob-worker-0".into()]
        )
    );
    let conds = triples(status(&p));
    assert_eq!(
        conds,
        vec![
            ("Created", "True", "TFJobCreated"),
            ("Running", "False", "TFJobSuspended"),
            ("Suspended", "True", "TFJobSuspended")
        ]
    );
    assert_eq!(status(&p).start_time, Some(Time(now())));

    // Resumed: Suspended False, new startTime, pods recreated.
    j.status = p.status.clone();
    run_policy(&mut j).suspend = Some(false);
    let later = now()
        .checked_add(jiff::SignedDuration::from_secs(30))
        .unwrap();
    let p = plan(&j, &[], &[], later, &cfg());
    assert_eq!(creates(&p).0, vec!["test-tfjob-worker-0"]);
    let s = get(status(&p), kind::SUSPENDED).unwrap();
    assert_eq!(
        (s.status.as_str(), s.reason.as_deref()),
        ("False", Some("TFJobResumed"))
    );
    assert_eq!(s.message.as_deref(), Some("TFJob test-tfjob is resumed."));
    assert_eq!(status(&p).start_time, Some(Time(later)));
    assert!(reasons(&p).contains(&"TFJobResumed"));
}

#[test]
fn a_resumed_job_says_running_again_not_suspended() {
    let state = |p: &Plan| status(p).state.clone().unwrap_or_default();
    let mut j = job().workers(1).build();
    run_policy(&mut j).suspend = Some(true);
    let p = plan(&j, &[], &[], now(), &cfg());
    assert_eq!(state(&p), "Suspended");
    j.status = p.status.clone();
    run_policy(&mut j).suspend = Some(false);
    let p = plan(&j, &[], &[], now(), &cfg());
    // The newest condition is Suspended=False: not the word, since it is not True.
    assert_eq!(last_condition(&p).0, "Suspended");
    assert_eq!(state(&p), "Created");
    j.status = p.status.clone();
    let running = vec![pod(&j, ReplicaType::Worker, 0, "Running", None)];
    let p = plan(&j, &running, &services(&j), now(), &cfg());
    assert_eq!(state(&p), "Running");
}

#[test]
fn the_state_word_follows_the_conditions_through_a_jobs_life() {
    let state = |p: &Plan| status(p).state.clone().unwrap_or_default();
    let mut j = job().workers(1).restart(RestartPolicy::ExitCode).build();
    let p = plan(&j, &[], &[], now(), &cfg());
    assert_eq!(state(&p), "Created");
    j.status = p.status.clone();
    let running = vec![pod(&j, ReplicaType::Worker, 0, "Running", None)];
    let p = plan(&j, &running, &services(&j), now(), &cfg());
    assert_eq!(state(&p), "Running");
    j.status = p.status.clone();
    let killed = vec![pod(&j, ReplicaType::Worker, 0, "Failed", Some(137))];
    let p = plan(&j, &killed, &services(&j), now(), &cfg());
    assert_eq!(state(&p), "Restarting");
    j.status = p.status.clone();
    let done = vec![pod(&j, ReplicaType::Worker, 0, "Succeeded", Some(0))];
    let p = plan(&j, &done, &services(&j), now(), &cfg());
    assert_eq!(state(&p), "Succeeded");
    j.status = p.status.clone();
    let mut f = job().workers(1).build();
    f.status = plan(&f, &[], &[], now(), &cfg()).status;
    let failed = vec![pod(&f, ReplicaType::Worker, 0, "Failed", Some(1))];
    let p = plan(&f, &failed, &services(&f), now(), &cfg());
    assert_eq!(state(&p), "Failed");
    // A status from an operator that wrote no state word gets one, and that alone is a write.
    let mut old = j.clone();
    if let Some(s) = old.status.as_mut() {
        s.state = None;
    }
    let p = plan(&old, &done, &services(&old), now(), &cfg());
    assert_eq!(state(&p), "Succeeded");
}

#[test]
fn scale_down_deletes_higher_indices_and_scale_up_creates() {
    let big = started(job().workers(3).build());
    let pods: Vec<_> = (0..3)
        .map(|i| pod(&big, ReplicaType::Worker, i, "Running", None))
        .collect();
    let svcs = services(&big);
    let mut small = big.clone();
    small
        .spec
        .tf_replica_specs
        .get_mut("Worker")
        .unwrap()
        .replicas = Some(1);
    let p = plan(&small, &pods, &svcs, now(), &cfg());
    let (dp, ds) = deletes(&p);
    assert_eq!(dp, vec!["test-tfjob-worker-1", "test-tfjob-worker-2"]);
    assert_eq!(ds, dp);
    let p = plan(&big, &pods[..1], &svcs[..1], now(), &cfg());
    assert_eq!(
        creates(&p).0,
        vec!["test-tfjob-worker-1", "test-tfjob-worker-2"]
    );
}

#[test]
fn dynamic_worker_failures_do_not_fail_the_job() {
    let mut j = job().ps(1).workers(2).build();
    j.spec.enable_dynamic_worker = Some(true);
    let j = started(j);
    let pods = vec![
        pod(&j, ReplicaType::Ps, 0, "Running", None),
        pod(&j, ReplicaType::Worker, 0, "Running", None),
        pod(&j, ReplicaType::Worker, 1, "Failed", Some(1)),
    ];
    let p = plan(&j, &pods, &services(&j), now(), &cfg());
    assert_eq!(last_condition(&p).0, "Running");
}

#[test]
fn terminating_pods_are_not_counted_or_replaced_yet() {
    let j = started(job().workers(1).build());
    let mut p0 = (*pod(&j, ReplicaType::Worker, 0, "Running", None)).clone();
    p0.metadata.deletion_timestamp = Some(Time(now()));
    let p = plan(&j, &[Arc::new(p0)], &services(&j), now(), &cfg());
    assert!(p.changes.is_empty());
    // Upstream counts a Running pod with a deletionTimestamp as failed (kubeflow/trainer#2124).
    assert!(p.status.as_ref().is_none_or(|s| !is_true(s, kind::FAILED)));
}

#[test]
fn foreign_pods_are_ignored() {
    let j = started(job().workers(1).build());
    let mut other = (*pod(&j, ReplicaType::Worker, 0, "Running", None)).clone();
    other.lineage.controller.as_mut().unwrap().uid = "someone-else".into();
    // Another controller's pod with the job's labels but another name: not counted as the
    // job's, and it does not keep the job from creating its own.
    other.metadata.name = Some("someone-elses-pod".into());
    let p = plan(&j, &[Arc::new(other)], &[], now(), &cfg());
    assert_eq!(creates(&p).0, vec!["test-tfjob-worker-0"]);
}

#[test]
fn managed_elsewhere_is_left_alone() {
    let mut j = job().workers(1).build();
    run_policy(&mut j).managed_by = Some("kueue.x-k8s.io/multikueue".into());
    assert_eq!(plan(&j, &[], &[], now(), &cfg()), Plan::default());
}

#[test]
fn invalid_spec_fails_with_a_clear_reason() {
    let j = job().replicas("Foo", 1).build();
    let p = plan(&j, &[], &[], now(), &cfg());
    let (t, reason, msg) = last_condition(&p);
    assert_eq!(
        (t.as_str(), reason.as_str()),
        ("Failed", "TFJobInvalidSpec")
    );
    assert!(msg.contains("unknown replica type \"Foo\""), "{msg}");
    assert!(
        p.events
            .iter()
            .any(|e| e.kind == EventKind::Warning && e.reason == "TFJobInvalidSpec")
    );
    assert!(p.changes.is_empty());
}

#[test]
fn legacy_field_overridden_by_run_policy_warns_once() {
    let mut j = job().workers(1).build();
    j.spec.backoff_limit = Some(6);
    run_policy(&mut j).backoff_limit = Some(2);
    let p = plan(&j, &[], &[], now(), &cfg());
    assert!(
        p.events
            .iter()
            .any(|e| e.reason == "LegacyFieldIgnored" && e.message.contains("spec.backoffLimit"))
    );
    let j = started(j);
    let p = plan(&j, &[], &[], now(), &cfg());
    assert!(!reasons(&p).contains(&"LegacyFieldIgnored"));
}

#[test]
fn outcomes_count_each_restarted_pod_once_and_each_transition_once() {
    let j = started(
        job()
            .ps(1)
            .workers(2)
            .restart(RestartPolicy::ExitCode)
            .build(),
    );
    assert_eq!(
        plan(&job().workers(1).build(), &[], &[], now(), &cfg()).outcomes,
        vec![Outcome::Created]
    );
    let svcs = services(&j);
    let both_killed = vec![
        pod(&j, ReplicaType::Ps, 0, "Running", None),
        pod(&j, ReplicaType::Worker, 0, "Failed", Some(137)),
        pod(&j, ReplicaType::Worker, 1, "Failed", Some(143)),
    ];
    let p = plan(&j, &both_killed, &svcs, now(), &cfg());
    assert_eq!(p.outcomes, vec![Outcome::Restarted { pods: 2 }]);
    // Already Restarting, nothing new failed: no outcome (upstream counts again on every pass).
    let mut restarting = j.clone();
    restarting.status = p.status.clone();
    let waiting = vec![both_killed[0].clone()];
    assert!(
        plan(&restarting, &waiting, &svcs, now(), &cfg())
            .outcomes
            .is_empty()
    );
    // Worker 0 succeeds: Succeeded once, not again on the next pass.
    let done = vec![
        pod(&j, ReplicaType::Ps, 0, "Running", None),
        pod(&j, ReplicaType::Worker, 0, "Succeeded", Some(0)),
        pod(&j, ReplicaType::Worker, 1, "Running", None),
    ];
    let p = plan(&j, &done, &svcs, now(), &cfg());
    assert_eq!(p.outcomes, vec![Outcome::Succeeded]);
    let mut succeeded = j.clone();
    succeeded.status = p.status;
    assert!(
        plan(&succeeded, &done, &svcs, now(), &cfg())
            .outcomes
            .is_empty()
    );
}

#[test]
fn orphans_with_the_jobs_labels_are_adopted_and_counted() {
    let j = started(job().workers(2).build());
    let mut orphan = (*pod(&j, ReplicaType::Worker, 0, "Running", None)).clone();
    orphan.lineage.controller = None;
    orphan.lineage.has_owners = false;
    let pods = vec![
        Arc::new(orphan),
        pod(&j, ReplicaType::Worker, 1, "Running", None),
    ];
    let p = plan(&j, &pods, &services(&j), now(), &cfg());
    let adopted: Vec<&str> = p
        .changes
        .iter()
        .filter_map(|a| match a {
            Change::AdoptPod(o) => Some(o.child.name.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(adopted, vec!["test-tfjob-worker-0"]);
    assert!(creates(&p).0.is_empty(), "not created again");
    assert_eq!(status(&p).replica_statuses["Worker"].active, 2);
    assert!(is_true(status(&p), kind::RUNNING));
}

#[test]
fn a_pod_controlled_by_someone_else_is_left_alone_and_named() {
    let j = started(job().workers(2).build());
    let mut foreign = (*pod(&j, ReplicaType::Worker, 0, "Running", None)).clone();
    foreign.lineage.controller = Some(ControllerRef {
        kind: "ReplicaSet".into(),
        name: "squatter".into(),
        uid: "other-uid".into(),
    });
    let pods = vec![
        Arc::new(foreign),
        pod(&j, ReplicaType::Worker, 1, "Running", None),
    ];
    let p = plan(&j, &pods, &services(&j), now(), &cfg());
    assert!(creates(&p).0.is_empty(), "its name is taken: no create");
    assert!(deletes(&p).0.is_empty(), "and it is never deleted");
    let warning = p
        .events
        .iter()
        .find(|e| e.reason == "FailedCreatePod")
        .expect("a warning");
    assert_eq!(warning.kind, EventKind::Warning);
    assert!(
        warning.message.contains("test-tfjob-worker-0")
            && warning.message.contains("ReplicaSet/squatter"),
        "{}",
        warning.message
    );
    let running = get(status(&p), kind::RUNNING).expect("Running condition");
    assert_eq!(running.status, "False");
    assert_eq!(running.reason.as_deref(), Some("TFJobChildConflict"));
}

#[test]
fn a_job_that_finishes_in_this_pass_gets_no_new_pods() {
    // The previous pass deleted the PS (cleanPodPolicy Running) and the operator died before
    // writing Succeeded: the PS is missing, worker 0 has succeeded.
    let j = started(job().ps(1).workers(1).build());
    let done = vec![pod(&j, ReplicaType::Worker, 0, "Succeeded", Some(0))];
    let p = plan(&j, &done, &services(&j), now(), &cfg());
    assert!(is_true(status(&p), kind::SUCCEEDED));
    assert!(creates(&p).0.is_empty(), "no PS created for a finished job");
}

#[test]
fn a_suspended_job_with_keys_kueue_cannot_read_says_how_to_spell_them() {
    let mut j = job().replicas("ps", 1).replicas("worker", 2).build();
    run_policy(&mut j).suspend = Some(true);
    let p = plan(&j, &[], &[], now(), &cfg());
    let warning = p
        .events
        .iter()
        .find(|e| e.reason == "ReplicaKeysUnreadableByKueue")
        .expect("a warning about the keys");
    assert_eq!(warning.kind, EventKind::Warning);
    assert!(
        warning
            .message
            .contains("Spell ps as PS, worker as Worker."),
        "{}",
        warning.message
    );
    // Said once, when the job is suspended, not on every pass while it waits.
    let mut waiting = j.clone();
    waiting.status = p.status;
    let again = plan(&waiting, &[], &[], now(), &cfg());
    assert!(!again.events.iter().any(|e| e.kind == EventKind::Warning));
    // Canonical keys: the suspension alone.
    let mut canonical = job().ps(1).workers(2).build();
    run_policy(&mut canonical).suspend = Some(true);
    let p = plan(&canonical, &[], &[], now(), &cfg());
    assert_eq!(reasons(&p), vec!["TFJobSuspended"]);
}

#[test]
fn a_job_held_by_a_kueue_queue_says_it_waits_for_admission() {
    let mut j = job()
        .workers(1)
        .label("kueue.x-k8s.io/queue-name", "team-a")
        .build();
    run_policy(&mut j).suspend = Some(true);
    let p = plan(&j, &[], &[], now(), &cfg());
    let suspended = status(&p)
        .conditions
        .iter()
        .find(|c| c.type_ == "Suspended")
        .and_then(|c| c.message.clone())
        .unwrap_or_default();
    assert_eq!(
        suspended,
        format!(
            "TFJob test-tfjob is suspended. Waiting: in Kueue LocalQueue team-a, until Kueue admits it (its reason: kubectl get workloads -n {} -o wide).",
            j.metadata.namespace.as_deref().unwrap_or_default()
        )
    );
    // Admitted: resumed, and the waiting words go with the suspension.
    j.status = p.status;
    run_policy(&mut j).suspend = Some(false);
    let resumed = plan(&j, &[], &[], now(), &cfg());
    assert!(
        !status(&resumed)
            .conditions
            .iter()
            .filter(|c| c.status == "True")
            .any(|c| c.message.as_deref().unwrap_or_default().contains("Kueue")),
        "{:?}",
        status(&resumed).conditions
    );
}

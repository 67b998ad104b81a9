//! Property tests of the whole planner: arbitrary specs and pod states never make it panic,
//! and what it decides stays within what the job asks for.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateTerminated, ContainerStatus, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use proptest::prelude::*;

use super::desired::{JobIdentity, desired_pod};
use super::{Change, PlanConfig, plan};
use crate::api::builder::tfjob;
use crate::api::defaults::normalize;
use crate::api::{ChildPod, CleanPodPolicy, RestartPolicy, TFJob};

const KEYS: [&str; 5] = ["PS", "Worker", "Chief", "Evaluator", "master"];

fn restart_policy() -> impl Strategy<Value = RestartPolicy> {
    prop_oneof![
        Just(RestartPolicy::Always),
        Just(RestartPolicy::OnFailure),
        Just(RestartPolicy::Never),
        Just(RestartPolicy::ExitCode),
    ]
}

/// A job with up to five replica types (any count, also absurd ones) and random run policy.
fn job() -> impl Strategy<Value = TFJob> {
    let replicas = prop::collection::vec(
        (
            0..KEYS.len(),
            prop_oneof![0..6i32, Just(i32::MAX), -2..0i32],
            restart_policy(),
        ),
        0..5,
    );
    let policy = (
        prop::option::of(0..4i32),
        prop::option::of(0..100i64),
        any::<bool>(),
    );
    (replicas, policy).prop_map(|(replicas, (backoff, deadline, suspend))| {
        let mut job = tfjob("p").namespace("ns").uid("job-uid");
        for (key, count, restart) in replicas {
            job = job.replicas(KEYS[key], count).restart(restart);
        }
        if let Some(limit) = backoff {
            job = job.backoff_limit(limit);
        }
        if let Some(secs) = deadline {
            job = job.active_deadline_seconds(secs);
        }
        job.suspend(suspend).build()
    })
}

/// What is observed of one replica index: nothing, or a pod in some state.
#[derive(Clone, Debug)]
struct PodState {
    phase: &'static str,
    exit_code: Option<i32>,
    restarts: i32,
    terminating: bool,
}

fn pod_state() -> impl Strategy<Value = Option<PodState>> {
    let phase = prop_oneof![
        Just("Pending"),
        Just("Running"),
        Just("Succeeded"),
        Just("Failed"),
        Just("Unknown")
    ];
    let exit = prop::option::of(prop_oneof![Just(0), Just(1), Just(137), Just(143)]);
    prop::option::of((phase, exit, 0..3i32, any::<bool>()).prop_map(
        |(phase, exit_code, restarts, terminating)| PodState {
            phase,
            exit_code,
            restarts,
            terminating,
        },
    ))
}

/// The pods the planner would have created for `job`, put into `states` (indices past the
/// spec's counts included, as after a scale-down).
fn observed(job: &TFJob, states: &[Option<PodState>]) -> Vec<Arc<ChildPod>> {
    let Ok(spec) = normalize(&job.spec, CleanPodPolicy::Running) else {
        return Vec::new();
    };
    if spec.total_replicas() > 40 {
        // A TF_CONFIG naming i32::MAX replicas cannot be built; nor would the operator build it.
        return Vec::new();
    }
    let id = JobIdentity {
        name: "p".into(),
        namespace: "ns".into(),
        uid: "job-uid".into(),
    };
    let mut pods = Vec::new();
    for (n, replica) in spec.replicas.values().enumerate() {
        for (index, state) in (0..).zip(states.iter().skip(n * 4).take(4)) {
            let Some(state) = state else { continue };
            let mut pod = desired_pod(&id, &spec, replica, index, None);
            pod.metadata.uid = Some(format!("{:?}-{index}", replica.rtype));
            if state.terminating {
                pod.metadata.deletion_timestamp = Some(Time(Timestamp::UNIX_EPOCH));
            }
            pod.status = Some(status(state));
            pods.push(Arc::new(pod.into()));
        }
    }
    pods
}

fn status(state: &PodState) -> PodStatus {
    let terminated = state.exit_code.map(|exit_code| ContainerStateTerminated {
        exit_code,
        ..ContainerStateTerminated::default()
    });
    PodStatus {
        phase: Some(state.phase.into()),
        container_statuses: Some(vec![ContainerStatus {
            name: "tensorflow".into(),
            restart_count: state.restarts,
            state: Some(ContainerState {
                terminated,
                ..ContainerState::default()
            }),
            ..ContainerStatus::default()
        }]),
        ..PodStatus::default()
    }
}

fn config(max_creates_per_pass: usize) -> PlanConfig {
    PlanConfig {
        max_replicas_per_job: 40,
        max_creates_per_pass,
        max_create_bytes_per_pass: 1 << 20,
        ..crate::settings::RunSettings::defaults()
            .controller_config()
            .plan
    }
}

proptest! {
    #[test]
    fn any_job_and_any_pods_get_a_bounded_decision(
        job in job(),
        states in prop::collection::vec(pod_state(), 0..20),
        max_creates in 1usize..8,
        second_pass in any::<bool>(),
    ) {
        let cfg = config(max_creates);
        let now = Timestamp::from_second(1_800_000_000).expect("valid");
        let mut job = job;
        if second_pass {
            // A job that has been seen before: its first status stored.
            job.status = plan(&job, &[], &[], now, &cfg).status;
        }
        let pods = observed(&job, &states);
        let decision = plan(&job, &pods, &[], now, &cfg);

        let creates: Vec<String> = decision.changes.iter().filter_map(|a| match a {
            Change::CreatePod(p) => p.metadata.name.clone(),
            _ => None,
        }).collect();
        let services = decision.changes.iter().filter(|a| matches!(a, Change::CreateService(_)));
        prop_assert!(creates.len() + services.count() <= max_creates);
        let unique: HashSet<&String> = creates.iter().collect();
        prop_assert_eq!(unique.len(), creates.len(), "a pod created twice");
        // Never more creates than replicas missing (no live pod at that index).
        if let Ok(spec) = normalize(&job.spec, CleanPodPolicy::Running) {
            let wanted: i64 = spec.replicas.values().map(|r| i64::from(r.replicas)).sum();
            prop_assert!(i64::try_from(creates.len()).unwrap_or(i64::MAX) <= wanted);
            let present: BTreeMap<String, ()> =
                pods.iter().filter_map(|p| p.metadata.name.clone()).map(|n| (n, ())).collect();
            for name in &creates {
                prop_assert!(!present.contains_key(name), "{} exists already", name);
            }
            if spec.total_replicas() > 40 {
                prop_assert!(decision.changes.is_empty(), "over the limit: nothing built");
            }
        } else {
            prop_assert!(creates.is_empty(), "an invalid spec creates nothing");
        }
        // Deletes only name the job's own pods.
        for action in &decision.changes {
            if let Change::DeletePod(child) | Change::ForceDeletePod(child) = action {
                prop_assert!(pods.iter().any(|p| p.metadata.uid == child.uid));
            }
        }
    }
}

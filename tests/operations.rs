//! Running the operator as an SRE would (issue 14): `/metrics` after a known sequence, several
//! `--namespace`s, and flags that must refuse to start.

mod common;

use std::time::Duration;

use common::cluster::{TestNs, has_condition, wait_for, wait_job};
use common::process::{OperatorProcess, run_to_exit};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use tfjob_operator::api::RestartPolicy;
use tfjob_operator::api::builder::tfjob;

const T: Duration = Duration::from_secs(90);

/// Ends worker 0 of `job` with `code` and waits until the job has condition `until`.
async fn exit_worker0(t: &TestNs, job: &str, code: i32, until: &str) {
    let pod = format!("{job}-worker-0");
    wait_for(t.pods(), &format!("{pod} Running"), T, |pods| {
        pods.iter().any(|p| {
            p.metadata.name.as_deref() == Some(pod.as_str())
                && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
        })
    })
    .await;
    t.exit_pod(&pod, code).await;
    wait_job(t, job, until, T, |j| has_condition(j, until)).await;
}

/// The UID of `name` once it is a Running pod other than `not`.
async fn running_pod_uid(t: &TestNs, name: &str, not: Option<&str>) -> String {
    let pods = wait_for(
        t.pods(),
        &format!("{name} Running anew"),
        T,
        |pods: &[std::sync::Arc<Pod>]| {
            pods.iter().any(|p| {
                p.metadata.name.as_deref() == Some(name)
                    && p.metadata.uid.as_deref() != not
                    && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
            })
        },
    )
    .await;
    pods.iter()
        .find(|p| p.metadata.name.as_deref() == Some(name) && p.metadata.uid.as_deref() != not)
        .and_then(|p| p.metadata.uid.clone())
        .unwrap_or_default()
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn job_metrics_after_a_known_sequence_match_exactly() {
    let t = TestNs::new("metrics").await;
    let op = OperatorProcess::start(&t.dir, &["--namespace", &t.ns]);
    op.wait_ready(T).await;
    for name in ["s1", "s2"] {
        t.create_job(tfjob(name).workers(1)).await;
        exit_worker0(&t, name, 0, "Succeeded").await;
    }
    t.create_job(tfjob("f1").workers(1).restart(RestartPolicy::Never))
        .await;
    exit_worker0(&t, "f1", 1, "Failed").await;
    t.create_job(tfjob("r1").workers(1).restart(RestartPolicy::ExitCode))
        .await;
    let mut uid = running_pod_uid(&t, "r1-worker-0", None).await;
    for _ in 0..2 {
        t.exit_pod("r1-worker-0", 137).await;
        uid = running_pod_uid(&t, "r1-worker-0", Some(&uid)).await;
    }
    t.create_job(tfjob("d1").workers(1).ttl_seconds_after_finished(0))
        .await;
    exit_worker0(&t, "d1", 0, "Succeeded").await;
    wait_for(t.jobs(), "d1 deleted by its TTL", T, |jobs| {
        jobs.iter()
            .all(|j| j.metadata.name.as_deref() != Some("d1"))
    })
    .await;

    let labels = format!("{{job_namespace=\"{}\",framework=\"tensorflow\"}}", t.ns);
    let expected = [
        ("created", 5.0),
        ("successful", 3.0),
        ("failed", 1.0),
        ("restarted", 2.0),
        ("deleted", 1.0),
    ];
    for (counter, value) in expected {
        let series = format!("training_operator_jobs_{counter}_total{labels}");
        assert_eq!(op.metric(&series).await, Some(value), "{series}");
    }
    assert_eq!(op.metric("tfjob_operator_is_leader").await, Some(1.0));
    // The cache gauge is refreshed every 5 s: s1, s2, f1 and r1 are left.
    let cached = format!(
        "tfjob_operator_cached_objects{{kind=\"TFJob\",namespace=\"{}\"}}",
        t.ns
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while op.metric(&cached).await != Some(4.0) {
        assert!(
            std::time::Instant::now() < deadline,
            "{cached}: {:?}",
            op.metric(&cached).await
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn namespaces_given_are_reconciled_and_others_ignored() {
    let (a, b, c) = (
        TestNs::new("ns-a").await,
        TestNs::new("ns-b").await,
        TestNs::new("ns-c").await,
    );
    let op = OperatorProcess::start(&a.dir, &["--namespace", &a.ns, "--namespace", &b.ns]);
    op.wait_ready(T).await;
    c.create_job(tfjob("j").workers(1)).await;
    for t in [&a, &b] {
        t.create_job(tfjob("j").workers(1)).await;
        wait_job(t, "j", "Running", T, |j| has_condition(j, "Running")).await;
    }
    // Both watched namespaces are done; the job in c, created first, was never touched.
    let ignored = c.jobs().get("j").await.expect("job in c");
    assert!(ignored.status.is_none(), "{:?}", ignored.status);
    assert!(ignored.metadata.finalizers.is_none());
    assert!(
        c.pods()
            .list(&Default::default())
            .await
            .expect("pods")
            .items
            .is_empty()
    );
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn a_taken_metrics_port_is_a_one_line_error() {
    let dir = common::cluster::cluster_dir();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let out = run_to_exit(
        &dir.join("operator.kubeconfig"),
        &["--metrics-bind-address", &addr],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {addr} (--metrics-bind-address)")),
        "{stderr}"
    );
}

/// Receive times of the audited operator user's requests in namespace `ns`, from `offset` on.
fn audited_requests(audit: &std::path::Path, offset: usize, ns: &str) -> Vec<jiff::Timestamp> {
    let entries = common::audit::operator_requests(audit, offset, ns);
    let mut times: Vec<jiff::Timestamp> =
        entries.iter().filter_map(common::audit::received).collect();
    times.sort();
    times
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn kube_api_qps_holds_the_operators_request_rate() {
    const QPS: f64 = 5.0;
    const BURST: usize = 5;
    let t = TestNs::new("qps").await;
    let audit = t.dir.join("logs/audit.log");
    let offset = std::fs::metadata(&audit).map_or(0, |m| usize::try_from(m.len()).unwrap_or(0));
    let op = OperatorProcess::start(
        &t.dir,
        &[
            "--namespace",
            &t.ns,
            "--kube-api-qps",
            "5",
            "--kube-api-burst",
            "5",
        ],
    );
    op.wait_ready(T).await;
    for i in 0..100 {
        t.create_job(tfjob(&format!("q{i}")).workers(1)).await;
    }
    // A 100-job burst is ~1,500 requests: the first 150 take ~30 s at 5/s.
    let deadline = std::time::Instant::now() + T;
    let times = loop {
        let times = audited_requests(&audit, offset, &t.ns);
        if times.len() >= 150 {
            break times;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} requests",
            times.len()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    // A token bucket allows at most BURST + QPS * w requests in any window of w seconds.
    for (i, start) in times.iter().enumerate() {
        let window = jiff::SignedDuration::from_secs(10);
        let within = times[i..]
            .iter()
            .take_while(|t| **t < *start + window)
            .count();
        assert!(
            within <= BURST + 50,
            "{within} requests in 10 s from {start}"
        );
    }
    let span = times[times.len() - 1]
        .duration_since(times[0])
        .as_secs_f64();
    let rate = (times.len() - BURST) as f64 / span;
    eprintln!(
        "{} requests in {span:.1} s: {rate:.2}/s after the burst",
        times.len()
    );
    assert!(rate <= QPS * 1.05, "{rate:.2} requests/s");
    let counted = op
        .metric("tfjob_operator_api_requests_total{verb=\"POST\",code=\"201\"}")
        .await;
    assert!(
        counted.is_some_and(|n| n > 0.0),
        "creates counted by verb and code: {counted:?}"
    );
}

/// A kubeconfig for ServiceAccount `sa` of `t`'s namespace, with a fresh token.
async fn service_account_kubeconfig(t: &TestNs, sa: &str) -> std::path::PathBuf {
    use k8s_openapi::api::authentication::v1::TokenRequest;
    use k8s_openapi::api::core::v1::ServiceAccount;
    let accounts: kube::Api<ServiceAccount> = t.api();
    let request: TokenRequest = serde_json::from_value(serde_json::json!({
        "spec": {"audiences": [], "expirationSeconds": 3600}
    }))
    .expect("token request");
    let token = accounts
        .create_token_request(sa, &Default::default(), &request)
        .await
        .expect("token")
        .status
        .expect("token status")
        .token
        .expect("a token");
    let admin = kube::config::Kubeconfig::read_from(t.dir.join("kubeconfig")).expect("kubeconfig");
    let cluster = admin.clusters[0].cluster.clone().expect("cluster");
    let path = std::env::temp_dir().join(format!("{}-{sa}.kubeconfig", t.ns));
    let yaml = format!(
        "apiVersion: v1\nkind: Config\nclusters: [{{name: c, cluster: {{server: {:?}, certificate-authority: {:?}}}}}]\nusers: [{{name: sa, user: {{token: {token:?}}}}}]\ncontexts: [{{name: c, context: {{cluster: c, user: sa}}}}]\ncurrent-context: c\n",
        cluster.server.unwrap_or_default(),
        cluster.certificate_authority.unwrap_or_default(),
    );
    std::fs::write(&path, yaml).expect("kubeconfig written");
    path
}

/// The `error: ` lines of an operator that refused to start (exit code 1).
fn refused_at_startup(out: &std::process::Output) -> Vec<String> {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .map(String::from)
        .collect()
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn a_missing_permission_is_named_at_startup() {
    let t = TestNs::new("rbac").await;
    // Everything the operator needs in the namespace, except watching pods.
    let rules: Vec<serde_json::Value> = tfjob_operator::runtime::preflight::PERMISSIONS
        .iter()
        .map(|(group, resource, verbs)| {
            let verbs: Vec<&str> = verbs
                .iter()
                .copied()
                .filter(|v| !(*resource == "pods" && *v == "watch"))
                .collect();
            serde_json::json!({"apiGroups": [group], "resources": [resource], "verbs": verbs})
        })
        .collect();
    let objects = [
        serde_json::json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "limited"}}),
        serde_json::json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "limited"}, "rules": rules}),
        serde_json::json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "limited"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "limited"},
            "subjects": [{"kind": "ServiceAccount", "name": "limited", "namespace": t.ns}]}),
    ];
    for object in objects {
        let object: kube::api::DynamicObject = serde_json::from_value(object).expect("object");
        let gvk = kube::api::GroupVersionKind::try_from(object.types.as_ref().expect("types"))
            .expect("gvk");
        let (resource, _) = kube::discovery::pinned_kind(&t.client, &gvk)
            .await
            .expect("discovered");
        let api: kube::Api<kube::api::DynamicObject> =
            kube::Api::namespaced_with(t.client.clone(), &t.ns, &resource);
        api.create(&Default::default(), &object)
            .await
            .expect("created");
    }
    let kubeconfig = service_account_kubeconfig(&t, "limited").await;
    let out = run_to_exit(&kubeconfig, &["--namespace", &t.ns]);
    let errors = refused_at_startup(&out);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with(&format!(
            "error: no permission to watch pods in namespace {}",
            t.ns
        )),
        "{errors:?}"
    );
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn a_missing_or_outdated_crd_is_named_at_startup() {
    // A control plane of its own: the shared one has the CRD.
    let own = common::cluster::OwnCluster::up();
    let dir = own.dir.path();
    let kubeconfig = dir.join("operator.kubeconfig");
    let missing = run_to_exit(&kubeconfig, &[]);
    // Then a CRD without a field of ours, as an older release's or upstream's would be.
    let mut older = serde_json::to_value(tfjob_operator::api::crd::crd()).expect("crd");
    let schema = &mut older["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    let run_policy = &mut schema["properties"]["spec"]["properties"]["runPolicy"]["properties"];
    run_policy.as_object_mut().map(|p| p.remove("managedBy"));
    // An older CRD selects by no field (the API server refuses one naming a missing field).
    older["spec"]["versions"][0]
        .as_object_mut()
        .map(|v| v.remove("selectableFields"));
    let client = common::cluster::client_for(dir).await;
    let crds: kube::Api<CustomResourceDefinition> = kube::Api::all(client);
    crds.create(
        &Default::default(),
        &serde_json::from_value(older).expect("crd"),
    )
    .await
    .expect("older CRD created");
    let established = kube::runtime::wait::await_condition(
        crds,
        "tfjobs.kubeflow.org",
        kube::runtime::wait::conditions::is_crd_established(),
    );
    tokio::time::timeout(T, established)
        .await
        .expect("CRD established in time")
        .expect("CRD watch");
    let outdated = run_to_exit(&kubeconfig, &[]);
    drop(own);
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert_eq!(missing.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("error: the TFJob CRD (tfjobs.kubeflow.org, v1) is not installed: run `kubectl apply --server-side -f crds/`"),
        "{stderr}"
    );
    let stderr = String::from_utf8_lossy(&outdated.stderr);
    assert_eq!(outdated.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "error: the installed TFJob CRD lacks fields this operator uses (spec.runPolicy.managedBy)"
        ),
        "{stderr}"
    );
}

#[test]
fn an_unreadable_kubeconfig_is_a_one_line_error() {
    let out = run_to_exit(std::path::Path::new("/nonexistent/kubeconfig"), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("error: cannot build a Kubernetes client from KUBECONFIG"),
        "{stderr}"
    );
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn gang_scheduling_without_its_scheduler_installed_is_named_at_startup() {
    // The shared control plane has no gang scheduler, so no PodGroup CRD.
    let t = TestNs::new("gang-missing").await;
    let kubeconfig = t.dir.join("operator.kubeconfig");
    for (flag, crd, scheduler) in [
        (
            "volcano",
            "podgroups.scheduling.volcano.sh, v1beta1",
            "Volcano",
        ),
        (
            "scheduler-plugins-scheduler",
            "podgroups.scheduling.x-k8s.io, v1alpha1",
            "scheduler-plugins (Coscheduling)",
        ),
    ] {
        let out = run_to_exit(
            &kubeconfig,
            &["--gang-scheduler-name", flag, "--namespace", &t.ns],
        );
        let errors = refused_at_startup(&out);
        assert_eq!(
            errors,
            [format!(
                "error: --gang-scheduler-name={flag}: the PodGroup CRD ({crd}) is not installed: install {scheduler} first, or remove the flag"
            )],
            "{errors:?}"
        );
    }
}

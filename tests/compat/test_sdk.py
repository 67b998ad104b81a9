"""The kubeflow-training Python SDK (TrainingClient, 1.9.4) driving tfjob-operator, as Kubeflow
users script it. Run by tests/compat/run.sh against a cluster where the operator runs; pods are
ended through kwok's exit-code annotation (tests/cluster/kwok-stages.yaml).

The tests run in file order and build on each other (one job is created, scaled, then
succeeds); the jobs they leave behind are read afterwards by the Go checker.
"""

import os
import subprocess
import time

import pytest
from kubernetes import client as k8s
from kubernetes import config as kube_config
from kubeflow.training import TrainingClient
from kubeflow.training.models import (
    KubeflowOrgV1ReplicaSpec,
    KubeflowOrgV1RunPolicy,
    KubeflowOrgV1TFJob,
    KubeflowOrgV1TFJobSpec,
)

NS = os.environ["COMPAT_NAMESPACE"]
ROOT = os.environ["COMPAT_ROOT"]
EXIT_CODE = "test.tfjob-operator.io/exit-code"
TIMEOUT = 120


@pytest.fixture(scope="module")
def tc():
    return TrainingClient(namespace=NS, job_kind="TFJob")


@pytest.fixture(scope="module")
def core():
    kube_config.load_kube_config()
    return k8s.CoreV1Api()


@pytest.fixture(scope="module")
def custom():
    kube_config.load_kube_config()
    return k8s.CustomObjectsApi()


def tf_job(name, workers, restart="Never"):
    """A TFJob built from the SDK's models: 1 PS and `workers` workers."""
    container = k8s.V1Container(name="tensorflow", image="tensorflow/tensorflow:2.15.0")
    template = k8s.V1PodTemplateSpec(spec=k8s.V1PodSpec(containers=[container]))
    return KubeflowOrgV1TFJob(
        api_version="kubeflow.org/v1",
        kind="TFJob",
        metadata=k8s.V1ObjectMeta(name=name, namespace=NS),
        spec=KubeflowOrgV1TFJobSpec(
            run_policy=KubeflowOrgV1RunPolicy(clean_pod_policy="None"),
            tf_replica_specs={
                "PS": KubeflowOrgV1ReplicaSpec(replicas=1, template=template),
                "Worker": KubeflowOrgV1ReplicaSpec(
                    replicas=workers, restart_policy=restart, template=template
                ),
            },
        ),
    )


def wait(tc, name, condition, namespace=NS):
    tc.wait_for_job_conditions(
        name,
        namespace=namespace,
        expected_conditions={condition},
        wait_timeout=TIMEOUT,
        polling_interval=1,
    )


def eventually(what, check):
    """Polls `check` (the SDK has no watch for pods) until it returns a truthy value."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}")


def running(core, pod, namespace=NS):
    return core.read_namespaced_pod(pod, namespace).status.phase == "Running"


def exit_pod(core, pod, code, namespace=NS):
    eventually(f"{pod} running", lambda: running(core, pod, namespace))
    body = {"metadata": {"annotations": {EXIT_CODE: str(code)}}}
    core.patch_namespaced_pod(pod, namespace, body)


def test_create_get_list_and_pods(tc):
    tc.create_job(job=tf_job("sdk-run", workers=2))
    wait(tc, "sdk-run", "Running")
    job = tc.get_job("sdk-run")
    assert sorted(job.spec.tf_replica_specs) == ["PS", "Worker"]
    assert job.spec.run_policy.clean_pod_policy == "None"
    assert tc.is_job_created("sdk-run") and tc.is_job_running("sdk-run")
    assert "sdk-run" in [j.metadata.name for j in tc.list_jobs()]
    assert sorted(tc.get_job_pod_names("sdk-run")) == [
        "sdk-run-ps-0",
        "sdk-run-worker-0",
        "sdk-run-worker-1",
    ]
    workers = tc.get_job_pod_names("sdk-run", replica_type="worker")
    assert sorted(workers) == ["sdk-run-worker-0", "sdk-run-worker-1"]
    masters = tc.get_job_pods("sdk-run", is_master=True)
    assert [p.metadata.name for p in masters] == ["sdk-run-worker-0"]
    ps = tc.get_job_pod_names("sdk-run", replica_type="ps", replica_index=0)
    assert ps == ["sdk-run-ps-0"]


def test_update_job_scales_workers(tc):
    # Read, modify, write back, as users do; a status write in between is a 409: read again.
    for _ in range(5):
        job = tc.get_job("sdk-run")
        job.spec.tf_replica_specs["Worker"].replicas = 3
        try:
            tc.update_job(job, "sdk-run")
            break
        except RuntimeError:
            time.sleep(0.2)
    eventually(
        "a third worker",
        lambda: len(tc.get_job_pod_names("sdk-run", replica_type="worker")) == 3,
    )


def test_worker0_exit_0_succeeds_the_job(tc, core):
    exit_pod(core, "sdk-run-worker-0", 0)
    wait(tc, "sdk-run", "Succeeded")
    assert tc.is_job_succeeded("sdk-run")
    assert not tc.is_job_failed("sdk-run")
    types = [c.type for c in tc.get_job_conditions("sdk-run")]
    assert types[0] == "Created" and types[-1] == "Succeeded"


def test_a_failed_worker_fails_the_job(tc, core):
    tc.create_job(job=tf_job("sdk-fail", workers=1))
    wait(tc, "sdk-fail", "Running")
    exit_pod(core, "sdk-fail-worker-0", 1)
    wait(tc, "sdk-fail", "Failed")
    assert tc.is_job_failed("sdk-fail")
    assert not tc.is_job_succeeded("sdk-fail")


def test_a_restart_is_read_back(tc, core, custom):
    tc.create_job(job=tf_job("sdk-restart", workers=1, restart="ExitCode"))
    wait(tc, "sdk-restart", "Running")
    exit_pod(core, "sdk-restart-worker-0", 137)

    def restarted():
        stored = custom.get_namespaced_custom_object(
            "kubeflow.org", "v1", NS, "tfjobs", "sdk-restart"
        )
        worker = stored.get("status", {}).get("replicaStatuses", {}).get("Worker", {})
        return worker.get("restarts") == 1

    eventually("the restart recorded", restarted)
    wait(tc, "sdk-restart", "Running")
    assert tc.get_job("sdk-restart").status.replica_statuses["Worker"].active == 1


def test_the_seed_yaml_without_run_policy_is_read_by_the_sdk(tc, core, custom):
    seed = os.path.join(ROOT, "examples", "tfjob-seed.yaml")
    subprocess.run(["kubectl", "apply", "-f", seed], check=True, capture_output=True)
    # Created from YAML without spec.runPolicy: the SDK refused such jobs before.
    job = tc.get_job("tfjob-test", namespace="kube-test")
    assert job.spec.run_policy is not None
    stored = custom.get_namespaced_custom_object(
        "kubeflow.org", "v1", "kube-test", "tfjobs", "tfjob-test"
    )
    assert stored["spec"]["backoffLimit"] == 6, "the legacy field is kept as written"
    assert "Ps" in stored["spec"]["tfReplicaSpecs"], "the key is kept as written"
    wait(tc, "tfjob-test", "Running", namespace="kube-test")
    exit_pod(core, "tfjob-test-worker-0", 0, namespace="kube-test")
    wait(tc, "tfjob-test", "Succeeded", namespace="kube-test")
    assert tc.is_job_succeeded("tfjob-test", namespace="kube-test")


def test_delete_job_removes_it_and_its_pods(tc):
    tc.create_job(job=tf_job("sdk-delete", workers=1))
    wait(tc, "sdk-delete", "Running")
    tc.delete_job("sdk-delete")
    eventually(
        "the job gone",
        lambda: "sdk-delete" not in [j.metadata.name for j in tc.list_jobs()],
    )
    assert tc.get_job_pod_names("sdk-delete") == []


def test_the_seeds_collection_delete_with_a_field_selector(tc, core, custom):
    """The seed's call, DELETE /apis/kubeflow.org/v1/namespaces/{ns}/tfjobs?fieldSelector=...,
    from the kubernetes client: every Succeeded job goes, with its pods; nothing else."""
    tc.create_job(job=tf_job("sdk-finished", workers=1))
    tc.create_job(job=tf_job("sdk-busy", workers=1))
    wait(tc, "sdk-busy", "Running")
    exit_pod(core, "sdk-finished-worker-0", 0)
    wait(tc, "sdk-finished", "Succeeded")
    # The SDK reads jobs that carry the state word; the raw object shows it.
    assert tc.get_job("sdk-finished").status.conditions[-1].type == "Succeeded"

    def states():
        jobs = custom.list_namespaced_custom_object("kubeflow.org", "v1", NS, "tfjobs")
        return {j["metadata"]["name"]: j.get("status", {}).get("state") for j in jobs["items"]}

    before = states()
    assert before["sdk-finished"] == "Succeeded" and before["sdk-busy"] == "Running"
    finished = {name for name, state in before.items() if state == "Succeeded"}
    busy_pods = sorted(p.metadata.uid for p in tc.get_job_pods("sdk-busy"))
    custom.delete_collection_namespaced_custom_object(
        "kubeflow.org", "v1", NS, "tfjobs", field_selector="status.state=Succeeded"
    )
    eventually("the finished jobs gone", lambda: set(states()) == set(before) - finished)
    for name in finished:
        eventually(f"the pods of {name} gone", lambda: tc.get_job_pod_names(name) == [])
    assert sorted(p.metadata.uid for p in tc.get_job_pods("sdk-busy")) == busy_pods

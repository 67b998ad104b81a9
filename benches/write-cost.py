#!/usr/bin/env python3
"""The API server's CPU per TFJob write, by kind of write, for a CRD (and, optionally, with the
chart's finalizer policy bound).

Usage: benches/write-cost.py CLUSTER_DIR CRD.yaml [--jobs N] [--rounds R] [--policy]
(Python 3 with `requests` and PyYAML.)

CLUSTER_DIR is a control plane from tests/cluster/up.sh (nothing else may run on it: the API
server's CPU is read from /proc for the whole process). For each round it creates N TFJobs of
1 PS + 2 Workers (no operator runs: they stay as written), then, one kind at a time, N finalizer
patches (skipped with --policy: the policy adds the finalizer at creation), N status writes, one
collection delete (which marks each job for deletion), and N finalizer releases (each the job's
real delete) — the writes the operator makes in a job's life — and prints the API server's CPU
milliseconds per write of each kind, one line per round. Compare two CRDs by running this for
each, interleaved, e.g. the one of an older commit: `git show REV:crds/kubeflow.org_tfjobs.yaml`.
"""
import argparse
import concurrent.futures as cf
import json
import os
import subprocess
import time

import requests
import yaml

FINALIZER = "kubeflow.org/tfjob-cleanup"
HERE = os.path.dirname(os.path.abspath(__file__))
POLICY = os.path.join(HERE, "..", "charts", "tfjob-operator", "files", "finalizer-policy.yaml")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cluster")
    ap.add_argument("crd")
    ap.add_argument("--jobs", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--policy", action="store_true")
    args = ap.parse_args()
    d = args.cluster
    kubectl = [os.path.join(d, "bin", "kubectl"), "--kubeconfig", os.path.join(d, "kubeconfig")]
    s = requests.Session()
    s.trust_env = False  # the cluster's own CA, not the environment's bundle
    s.cert = (f"{d}/pki/admin.crt", f"{d}/pki/admin.key")
    s.verify = f"{d}/pki/ca.crt"
    s.mount("https://", requests.adapters.HTTPAdapter(pool_connections=8, pool_maxsize=8))
    base = "https://127.0.0.1:" + open(f"{d}/apiserver-port").read().strip()
    apiserver = int(open(f"{d}/pids/kube-apiserver.pid").read())

    def cpu():
        fields = open(f"/proc/{apiserver}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    subprocess.run(kubectl + ["apply", "--server-side", "--force-conflicts", "-f", args.crd],
                   check=True, capture_output=True)
    subprocess.run(kubectl + ["wait", "--for=condition=Established", "crd/tfjobs.kubeflow.org"],
                   check=True, capture_output=True)
    ns = f"write-cost-{os.getpid()}"
    s.post(f"{base}/api/v1/namespaces", json={"metadata": {"name": ns}}).raise_for_status()
    jobs = f"{base}/apis/kubeflow.org/v1/namespaces/{ns}/tfjobs"
    if args.policy:
        bind_policy(kubectl, ns)
        wait_for_policy(s, jobs)

    def job(i):
        template = {"spec": {"containers": [{"name": "tensorflow", "image": "tensorflow/tensorflow:2.15.0"}]}}
        replicas = {t: {"replicas": n, "restartPolicy": "Never", "template": template}
                    for t, n in (("PS", 1), ("Worker", 2))}
        return {"apiVersion": "kubeflow.org/v1", "kind": "TFJob", "metadata": {"name": f"job-{i}"},
                "spec": {"runPolicy": {"cleanPodPolicy": "Running"}, "tfReplicaSpecs": replicas}}

    json_patch = {"Content-Type": "application/json-patch+json"}
    merge_patch = {"Content-Type": "application/merge-patch+json"}
    kinds = {
        "create": lambda i: s.post(jobs, json=job(i)),
        "finalizer patch": lambda i: s.patch(f"{jobs}/job-{i}", headers=json_patch, data=json.dumps([
            {"op": "test", "path": "/metadata/finalizers", "value": None},
            {"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]}])),
        "status write": lambda i: s.patch(f"{jobs}/job-{i}/status", headers=merge_patch, data=json.dumps({
            "status": {"conditions": [{"type": "Created", "status": "True", "reason": "TFJobCreated",
                                       "message": f"TFJob job-{i} is created.",
                                       "lastUpdateTime": "2026-12-07T00:00:00Z",
                                       "lastTransitionTime": "2026-12-07T00:00:00Z"}],
                       "replicaStatuses": {"PS": {"active": 1}}}})),
        "collection delete": None,
        "finalizer release": lambda i: s.patch(f"{jobs}/job-{i}", headers=json_patch, data=json.dumps([
            {"op": "test", "path": "/metadata/finalizers/0", "value": FINALIZER},
            {"op": "remove", "path": "/metadata/finalizers/0"}])),
    }
    if args.policy:
        del kinds["finalizer patch"]
    print(f"API server CPU ms per write, {args.jobs} jobs, {os.path.basename(args.crd)}"
          + (", finalizer policy bound" if args.policy else ""))
    try:
        for _ in range(args.rounds):
            line = []
            for name, write in kinds.items():
                before = cpu()
                if write is None:
                    s.delete(jobs).raise_for_status()
                else:
                    with cf.ThreadPoolExecutor(8) as pool:
                        for r in pool.map(write, range(args.jobs)):
                            r.raise_for_status()
                line.append(f"{name} {(cpu() - before) / args.jobs * 1000:.2f}")
            print(", ".join(line), flush=True)
            while s.get(jobs).json()["items"]:
                time.sleep(0.5)
    finally:
        s.delete(f"{base}/api/v1/namespaces/{ns}")
        if args.policy:
            subprocess.run(kubectl + ["delete", "mutatingadmissionpolicybinding,mutatingadmissionpolicy",
                                      f"write-cost-{ns}", "--ignore-not-found"], capture_output=True)


def bind_policy(kubectl, ns):
    """The chart's policy, named and bound for namespace `ns` only, as the chart binds it."""
    docs = list(yaml.safe_load_all(open(POLICY)))
    for doc in docs:
        doc["metadata"]["name"] = f"write-cost-{ns}"
        if "policyName" in doc["spec"]:
            doc["spec"]["policyName"] = f"write-cost-{ns}"
            doc["spec"]["matchResources"] = {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}}}
    subprocess.run(kubectl + ["apply", "-f", "-"], input=yaml.safe_dump_all(docs).encode(),
                   check=True, capture_output=True)


def wait_for_policy(s, jobs):
    """Until a dry-run create comes back with the finalizer: the API server applies the policy."""
    probe = {"apiVersion": "kubeflow.org/v1", "kind": "TFJob", "metadata": {"name": "probe"},
             "spec": {"tfReplicaSpecs": {"Worker": {"template": {"spec": {"containers": [
                 {"name": "tensorflow", "image": "x"}]}}}}}}
    deadline = time.time() + 30
    while FINALIZER not in s.post(jobs + "?dryRun=All", json=probe).json()["metadata"].get("finalizers", []):
        if time.time() > deadline:
            raise SystemExit("the finalizer policy was never applied")
        time.sleep(0.2)


if __name__ == "__main__":
    main()

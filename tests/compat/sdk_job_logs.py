"""Reads a TFJob's logs the way Kubeflow users do, with the kubeflow-training SDK: waits with
TrainingClient.wait_for_job_conditions until it has Succeeded, then prints what
TrainingClient.get_job_logs returns (the master pod's log: the chief's, or worker 0's), each
pod's log under a line `== POD`. The logs come from the kubelet through the API server.

    python sdk_job_logs.py NAME NAMESPACE      (KUBECONFIG names the cluster)
"""
import sys

from kubeflow.training import TrainingClient


def main():
    name, namespace = sys.argv[1], sys.argv[2]
    client = TrainingClient(job_kind="TFJob")
    client.wait_for_job_conditions(
        name, namespace, expected_conditions={"Succeeded"}, wait_timeout=300, polling_interval=1
    )
    logs, _ = client.get_job_logs(name, namespace)
    for pod, text in sorted(logs.items()):
        print(f"== {pod}")
        print(text)


if __name__ == "__main__":
    main()

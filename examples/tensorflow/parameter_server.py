"""Asynchronous training with tf.distribute.ParameterServerStrategy, the classic TFJob topology:
the Chief replica is the coordinator, PS replicas hold the variables, Worker replicas run the
steps the coordinator schedules. PS and workers serve until the job ends; the chief's training
loop decides success (the TFJob succeeds when the chief exits 0).

    python3 parameter_server.py [--epochs E] [--steps-per-epoch N] [--batch-size B]

The chief prints the cluster it found, the device each variable was placed on (/job:ps/...) and
the loss per epoch, with the steps each worker ran; it exits 1 if the loss did not fall. A worker
that dies mid-training (and is recreated: restartPolicy ExitCode) is handled by the coordinator:
the steps it lost run again on another worker, and it tries to give the worker work again once it
is back. An epoch the coordinator could not retry is run again, with new iterators (--max-retries).
"""
import argparse
import json
import os
import socket
import sys
import time
from collections import Counter

# The coordinator notices a worker that is gone at once instead of waiting on gRPC retries, and
# (as TensorFlow advises for workers that come back) does not stream its requests to them.
os.environ.setdefault("GRPC_FAIL_FAST", "use_caller")
os.environ.setdefault("TF_ENABLE_EAGER_CLIENT_STREAMING_ENQUEUE", "False")

import tensorflow as tf  # noqa: E402

from synthetic import Model, dataset  # noqa: E402


def serve(resolver):
    """A PS or worker task: a TensorFlow server for the coordinator, until the job ends."""
    print(f"{resolver.task_type} {resolver.task_id}: serving the coordinator, "
          f"cluster {json.dumps(resolver.cluster_spec().as_dict(), sort_keys=True)}", flush=True)
    server = tf.distribute.Server(resolver.cluster_spec(), job_name=resolver.task_type,
                                  task_index=resolver.task_id,
                                  protocol=resolver.rpc_layer or "grpc", start=True)
    server.join()


def wait_for_cluster(cluster, timeout):
    """Waits until every PS and worker task accepts connections at its TF_CONFIG address. Pods
    start in any order, and a task's DNS name resolves only once its pod is ready: a coordinator
    that connects before that counts the task as failed from the start."""
    start = time.monotonic()
    pending = [addr for job in ("ps", "worker") for addr in cluster.get(job, [])]
    while pending:
        if time.monotonic() - start > timeout:
            sys.exit(f"not reachable after {timeout} s: {', '.join(pending)}")
        host, _, port = pending[0].rpartition(":")
        try:
            socket.create_connection((host, int(port)), timeout=2).close()
            pending.pop(0)
        except OSError:
            time.sleep(0.5)
    print(f"every PS and worker reachable after {time.monotonic() - start:.1f} s", flush=True)


def coordinate(resolver, a):
    """The chief: places the variables on the PS tasks, schedules steps on the workers."""
    cluster = resolver.cluster_spec().as_dict()
    print(f"cluster: {json.dumps(cluster, sort_keys=True)}", flush=True)
    wait_for_cluster(cluster, a.wait_for_cluster)
    strategy = tf.distribute.ParameterServerStrategy(resolver)
    coordinator = tf.distribute.coordinator.ClusterCoordinator(strategy)
    with strategy.scope():
        model = Model()
    for v in model.trainable_variables:
        print(f"variable {v.name} on {v.device}", flush=True)

    @tf.function
    def per_worker_dataset():
        return strategy.distribute_datasets_from_function(lambda ctx: dataset(a.batch_size, ctx))

    def fresh_batches():
        # One iterator per worker, each a resource on that worker.
        return iter(coordinator.create_per_worker_dataset(per_worker_dataset))

    batches = fresh_batches()

    @tf.function
    def step(iterator):
        def replica_step(x, y):
            loss, grads = model.loss_and_gradients(x, y, a.batch_size)
            for v, g in zip(model.trainable_variables, grads):
                v.assign_sub(a.learning_rate * g)
            return loss

        x, y = next(iterator)
        loss = strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(replica_step, args=(x, y)), axis=None)
        # Read on the worker that ran the step: its host name (in a TFJob, its pod's name).
        return loss, tf.strings.strip(tf.io.read_file("/etc/hostname"))

    start, first, loss, retries = time.monotonic(), None, None, 0
    for epoch in range(a.epochs):
        while True:
            scheduled = [coordinator.schedule(step, args=(batches,)) for _ in range(a.steps_per_epoch)]
            try:
                coordinator.join()
                results = [r.fetch() for r in scheduled]
                break
            except tf.errors.OpError as e:
                # The coordinator retries a step whose worker is gone; what it cannot retry ends
                # the epoch with an error: a worker that came back without the remote state a
                # step referred to, or the coordinator's update of the cluster after it came back
                # leaving a worker's iterator or device unknown, or a task's connection to
                # another failed and backing off (TensorFlow 2.21 does all three, now and then).
                # The variables on the PS are intact: after a pause that lets the connections
                # come back (1, 2, 4, ... at most 16 s), make every worker a new iterator and run
                # the epoch again.
                retries += 1
                reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                pause = min(2 ** (retries - 1), 16)
                print(f"epoch {epoch} interrupted ({type(e).__name__}: {reason}); "
                      f"running it again in {pause} s", flush=True)
                if retries > a.max_retries:
                    sys.exit(f"more than {a.max_retries} interrupted epochs")
                time.sleep(pause)
                batches = fresh_batches()
        losses = [float(loss) for loss, _ in results]
        loss = sum(losses[-10:]) / len(losses[-10:])
        first = losses[0] if first is None else first
        by_worker = Counter(host.decode() for _, host in results)
        ran = ", ".join(f"{host}: {n}" for host, n in sorted(by_worker.items()))
        print(f"epoch {epoch} loss {loss:.4f} (steps run by {ran})", flush=True)
    steps = a.epochs * a.steps_per_epoch
    print(f"trained: loss {first:.4f} -> {loss:.4f} in {steps} steps ({time.monotonic() - start:.1f} s)", flush=True)
    if not loss < first:
        sys.exit("the loss did not fall")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--steps-per-epoch", type=int, default=50)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--learning-rate", type=float, default=0.05)
    p.add_argument("--max-retries", type=int, default=8, help="interrupted epochs the chief runs again")
    p.add_argument("--wait-for-cluster", type=int, default=600, help="seconds the chief waits for the tasks")
    a = p.parse_args()
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    if resolver.task_type in ("ps", "worker"):
        serve(resolver)
    elif resolver.task_type == "chief":
        coordinate(resolver, a)
    else:
        sys.exit(f"no part for task type {resolver.task_type!r} in this training")


if __name__ == "__main__":
    main()

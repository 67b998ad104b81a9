"""Synchronous data-parallel training with tf.distribute.MultiWorkerMirroredStrategy: every
Worker replica of the TFJob holds a copy of the model; each step all-reduces the gradients over
gRPC between the workers TF_CONFIG names. Worker 0 is the chief (no Chief replica).

    python3 multi_worker_mirrored.py [--steps N] [--batch-size B] [--fail-task worker:1 --fail-at-step K]

Prints the cluster it found, where its variables live and the loss; exits 1 if the loss did not
fall. --fail-task/--fail-at-step make one task raise an error mid-training, to show a failure.
"""
import argparse
import json
import sys
import time

import tensorflow as tf

from synthetic import Model, dataset


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=64, help="the global batch, over all workers")
    p.add_argument("--learning-rate", type=float, default=0.05)
    p.add_argument("--fail-task", default="", help="TYPE:INDEX of the task that fails on purpose")
    p.add_argument("--fail-at-step", type=int, default=-1)
    a = p.parse_args()

    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    resolver = strategy.cluster_resolver
    me = f"{resolver.task_type}:{resolver.task_id}"
    print(f"cluster: {json.dumps(resolver.cluster_spec().as_dict(), sort_keys=True)}", flush=True)
    print(f"task: {me}, {strategy.num_replicas_in_sync} replicas in sync", flush=True)

    with strategy.scope():
        model = Model(aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
    for v in model.trainable_variables:
        for local in strategy.experimental_local_results(v):
            print(f"variable {v.name} on {local.device}", flush=True)

    batches = iter(strategy.distribute_datasets_from_function(lambda ctx: dataset(a.batch_size, ctx)))

    @tf.function
    def train_step(x, y):
        def replica_step(x, y):
            loss, grads = model.loss_and_gradients(x, y, a.batch_size)
            grads = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, grads)
            for v, g in zip(model.trainable_variables, grads):
                v.assign_sub(a.learning_rate * g)
            return loss

        losses = strategy.run(replica_step, args=(x, y))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)

    start, first, loss = time.monotonic(), None, None
    for step in range(a.steps):
        if me == a.fail_task and step == a.fail_at_step:
            raise RuntimeError(f"{me} fails on purpose at step {step} (--fail-at-step)")
        loss = float(train_step(*next(batches)))
        first = loss if first is None else first
        if step % 50 == 0 or step == a.steps - 1:
            print(f"step {step} loss {loss:.4f}", flush=True)
    print(f"trained: loss {first:.4f} -> {loss:.4f} in {a.steps} steps ({time.monotonic() - start:.1f} s)", flush=True)
    if not loss < first:
        sys.exit("the loss did not fall")


if __name__ == "__main__":
    main()

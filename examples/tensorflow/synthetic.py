"""The model and the data both example trainings use: a small multilayer perceptron that learns a
fixed linear function of 8 features from synthetic, seeded batches. Real TensorFlow ops, no
download, and a loss that falls within a few hundred steps on one CPU."""
import tensorflow as tf

FEATURES = 8
HIDDEN = 32


def dataset(global_batch_size, input_context=None):
    """An endless stream of (x, y) batches. With an input context (the strategy's
    `distribute_datasets_from_function`), each input pipeline draws its own batches of its share
    of the global batch."""
    pipeline, batch = 0, global_batch_size
    if input_context is not None:
        pipeline = input_context.input_pipeline_id
        batch = input_context.get_per_replica_batch_size(global_batch_size)
    true_w = tf.random.stateless_normal([FEATURES, 1], seed=[7, 7])

    def draw(i):
        x = tf.random.stateless_normal([batch, FEATURES], seed=tf.stack([tf.cast(pipeline, tf.int64), i]))
        return x, tf.matmul(x, true_w) + 0.5

    return tf.data.Dataset.counter().map(draw).prefetch(2)


class Model(tf.Module):
    """y = relu(x·w1 + b1)·w2 + b2. Variable options (e.g. `aggregation`) go to every variable."""

    def __init__(self, **variable_options):
        super().__init__(name="mlp")
        normal = tf.random.stateless_normal
        self.w1 = tf.Variable(normal([FEATURES, HIDDEN], seed=[1, 1]) * 0.3, name="w1", **variable_options)
        self.b1 = tf.Variable(tf.zeros([HIDDEN]), name="b1", **variable_options)
        self.w2 = tf.Variable(normal([HIDDEN, 1], seed=[2, 2]) * 0.3, name="w2", **variable_options)
        self.b2 = tf.Variable(tf.zeros([1]), name="b2", **variable_options)

    def __call__(self, x):
        return tf.matmul(tf.nn.relu(tf.matmul(x, self.w1) + self.b1), self.w2) + self.b2

    def loss_and_gradients(self, x, y, global_batch_size):
        """The mean squared error over the global batch, and its gradients by variable."""
        with tf.GradientTape() as tape:
            per_example = tf.reduce_sum(tf.square(self(x) - y), axis=1)
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch_size)
        return loss, tape.gradient(loss, self.trainable_variables)

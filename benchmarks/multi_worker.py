"""Two local workers (MultiWorkerMirroredStrategy, 1 thread each) against one process (2 threads)
on the same global batches: training examples/s, the collectives' time per step, equal weights.

The model is the main job's default: a 2-layer, hidden-128 ALBERT with a SentencePiece
vocabulary trained on the bundled WordNet glosses, mean pooling, Dense(64, relu) -> Dense(64),
L2 normalisation, semi-hard loss, Adam; global batches of 16 classes x 4 glosses, each worker
reading its half (`SentenceEmbedder.distributed_batches`). The first epoch warms up (tracing, the first
collectives); the second is timed. Then, in the 2-worker run, the step's collectives alone are
timed: the all-gather of the embeddings and labels the loss mines, and the all-reduce of one
gradient per trainable variable. One box cannot show a speed-up (the two workers share its 2
cores); it shows the overhead. Writes benchmarks/results/multi_worker.md.

    python benchmarks/multi_worker.py [--steps 30]
"""

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CLASSES_PER_BATCH, SAMPLES_PER_CLASS = 16, 4


def run(steps):
    """Runs in this process: one device, or one worker when TF_CONFIG is set. Prints a JSON line."""
    from keras_siamese.cluster import cluster_task, connect

    import tensorflow as tf

    task = cluster_task()
    threads = 1 if task is not None else 2  # before the runtime starts
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    strategy = connect() if task is not None else None
    import keras
    import numpy as np
    from keras_siamese.data import class_balanced_batches, load_wordnet_glosses
    from keras_siamese.layers import AlbertEncoder
    from keras_siamese.models import TripletSemiHard

    texts, labels, _ = load_wordnet_glosses()
    keras.utils.set_random_seed(0)
    with strategy.scope() if strategy else tf.distribute.get_strategy().scope():
        encoder = AlbertEncoder.from_corpus(texts, vocabulary_size=8000, sequence_length=48)
        model = TripletSemiHard.from_encoder(encoder, output_units=64, hidden_units=(64,))
        model.compile(optimizer=keras.optimizers.Adam(1e-3))

    def batches(context=None):
        return class_balanced_batches(texts, labels, CLASSES_PER_BATCH, SAMPLES_PER_CLASS, seed=0,
                                      batches_per_epoch=steps, input_context=context)

    data = model.distributed_batches(batches) if strategy else batches()

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds = time.perf_counter() - self.started

    timer = Timer()
    model.fit(data, epochs=2, verbose=0, callbacks=[timer])
    result = {
        "examples_per_second": steps * CLASSES_PER_BATCH * SAMPLES_PER_CLASS / timer.seconds,
        "step_ms": 1000 * timer.seconds / steps,
        "weights": float(sum(np.abs(w.astype("float64")).sum() for w in model.get_weights())),
    }
    if strategy:
        result["collectives_ms"] = _collectives_ms(strategy, model, steps)
    if task is None or task.is_chief:
        print("RESULT " + json.dumps(result), flush=True)


def _collectives_ms(strategy, model, steps):
    """Milliseconds per step of the train step's collectives alone, on tensors of its sizes."""
    import tensorflow as tf

    rows = CLASSES_PER_BATCH * SAMPLES_PER_CLASS // strategy.num_replicas_in_sync
    gradients = [tf.zeros(variable.shape) for variable in model.trainable_variables]

    @tf.function
    def collectives():
        def replica_step():
            context = tf.distribute.get_replica_context()
            embeddings = context.all_gather(tf.identity(tf.zeros([rows, model.output_shape[-1]])), axis=0)
            labels = context.all_gather(tf.identity(tf.zeros([rows], tf.int32)), axis=0)
            reduced = context.all_reduce("SUM", gradients)
            return tf.reduce_sum(embeddings) + tf.cast(tf.reduce_sum(labels), tf.float32) + tf.add_n(
                [tf.reduce_sum(g) for g in reduced])
        return strategy.run(replica_step)

    collectives()  # trace
    started = time.perf_counter()
    for _ in range(steps):
        collectives()
    return 1000 * (time.perf_counter() - started) / steps


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--run", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        return run(args.steps)
    from keras_siamese.cluster import local_cluster

    command = [sys.executable, os.path.abspath(__file__), "--run", "--steps", str(args.steps)]
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    results = {}
    for name, configs in (("1 process, 2 threads", [None]), ("2 workers, 1 thread each", local_cluster(2))):
        processes = [
            subprocess.Popen(command, env=environment if config is None else {**environment, "TF_CONFIG": config},
                             stdout=subprocess.PIPE, text=True)
            for config in configs
        ]
        outputs = [process.communicate(timeout=1800)[0] for process in processes]
        (line,) = [line for output in outputs for line in output.splitlines() if line.startswith("RESULT ")]
        results[name] = json.loads(line.removeprefix("RESULT "))
        print(name, results[name], flush=True)

    one, two = results["1 process, 2 threads"], results["2 workers, 1 thread each"]
    lines = [
        f"# Multi-worker overhead ({args.steps} timed steps of {CLASSES_PER_BATCH} x {SAMPLES_PER_CLASS} WordNet glosses)",
        "",
        "| run | examples/s | ms / step | collectives ms / step |",
        "|---|---:|---:|---:|",
        f"| 1 process, 2 threads | {one['examples_per_second']:.1f} | {one['step_ms']:.0f} | — |",
        f"| 2 workers, 1 thread each | {two['examples_per_second']:.1f} | {two['step_ms']:.0f} | "
        f"{two['collectives_ms']:.1f} |",
        "",
        f"2 workers / 1 process: {two['examples_per_second'] / one['examples_per_second']:.2f}x. "
        f"Sum of |weights| after training: {one['weights']:.6f} (1 process), {two['weights']:.6f} (2 workers).",
    ]
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", "multi_worker.md"), "w") as report:
        report.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

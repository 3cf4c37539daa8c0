"""The global batch under tf.distribute: what every replica's loss sees."""

import tensorflow as tf


def is_distributed():
    """Whether this runs in the replica context of a strategy with several replicas."""
    context = tf.distribute.get_replica_context()
    return context is not None and context.num_replicas_in_sync > 1


def gather_global_batch(*values):
    """`values` concatenated over all replicas (axis 0) when called in replica context
    under a `tf.distribute` strategy with several replicas; as they are otherwise.

    In-batch losses (triplet mining, multiple-negatives ranking) then mine the
    global batch on every replica. The gradient of an all-gather sums the
    replicas' incoming gradients and Keras sums the replicas' gradients, so each
    replica's loss of the global batch is divided by the number of replicas
    (`replica_share`) and the step's gradients equal those of the whole global
    batch on one device. `None` values stay `None`.

    Example:
    >>> labels, embeddings = gather_global_batch(labels, embeddings)  # doctest: +SKIP
    """
    if not is_distributed():
        return values
    context = tf.distribute.get_replica_context()

    def gather(tensor):
        # An input from a multi-worker dataset carries no device, and the all-gather's
        # destination is its input's device: a copy made here is on this replica's device.
        return context.all_gather(tf.identity(tensor), axis=0)

    return tuple(None if value is None else tf.nest.map_structure(gather, value) for value in values)


def replica_share(loss):
    """`loss` divided by the number of replicas in sync, as Keras scales every loss it
    computes under `tf.distribute` (the replicas' gradients are summed).

    Example:
    >>> float(replica_share(tf.constant(3.0)))  # one replica
    3.0
    """
    num_replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return loss if num_replicas == 1 else loss / tf.cast(num_replicas, loss.dtype)

"""Gradient caching: a model's forward pass over a big batch, a few rows at a time, without keeping activations.

Gao et al. 2021 ("Scaling Deep Contrastive Learning Batch Size under Memory Limited
Setup"): the batch's outputs are computed `mini_batch_size` rows at a time outside
the tape; the loss and its gradient with respect to all outputs are computed at once
(so in-batch mining still sees the whole batch); then each chunk is recomputed under
a tape and back-propagates its slice of that gradient. Peak activation memory is that
of one chunk, for the price of a second forward pass.
"""

import tensorflow as tf

from keras_siamese.checks import is_integer


def check_mini_batch_size(mini_batch_size):
    """`None` or a positive integer; anything else is a ValueError."""
    if mini_batch_size is None:
        return None
    if not is_integer(mini_batch_size) or mini_batch_size < 1:
        raise ValueError(f"mini_batch_size must be a positive integer or None, got {mini_batch_size!r}.")
    return int(mini_batch_size)


def cached_call(call, inputs, mini_batch_size, random_state):
    """`call(inputs)` computed `mini_batch_size` rows at a time; its gradient recomputes each chunk.

    `call` maps a batch of `inputs` (a tensor or a nest of tensors, rows first) to
    one tensor whose rows are the inputs' rows. `random_state` are the variables that
    make `call` random (Keras' seed-generator states): they are read before each chunk
    and restored before its recomputation, so dropout replays the same masks. The
    last chunk holds the remainder; a batch smaller than `mini_batch_size` is one chunk.

    Gradients flow to the variables `call` reads, not to `inputs`.

    Example:
    >>> dense = keras.layers.Dense(2)  # doctest: +SKIP
    >>> outputs = cached_call(dense, tf.ones([10, 3]), mini_batch_size=4, random_state=[])  # doctest: +SKIP
    """
    flat_inputs = tf.nest.flatten(inputs)
    batch = tf.shape(flat_inputs[0])[0]
    num_chunks = (batch + mini_batch_size - 1) // mini_batch_size

    def chunk_of(flat, index):
        start = index * mini_batch_size
        return tf.nest.pack_sequence_as(inputs, [tensor[start : start + mini_batch_size] for tensor in flat])

    @tf.custom_gradient
    def forward(*flat):
        def forward_chunk(index, outputs, states):
            states = [saved.write(index, tf.convert_to_tensor(variable)) for saved, variable in zip(states, random_state)]
            output = tf.cast(call(chunk_of(flat, index)), tf.float32)
            return index + 1, outputs.write(index, output), states

        states = [tf.TensorArray(tf.as_dtype(variable.dtype), size=num_chunks) for variable in random_state]
        outputs = tf.TensorArray(tf.float32, size=num_chunks, infer_shape=False)
        # One chunk at a time (parallel_iterations=1): chunks in flight together would hold
        # their activations together.
        _, outputs, states = tf.while_loop(
            lambda index, *_: index < num_chunks, forward_chunk, (tf.constant(0), outputs, states),
            parallel_iterations=1,
        )
        result = outputs.concat()

        def gradient(upstream, variables=None):
            differentiable = [variable.dtype.is_floating for variable in variables]

            def backward_chunk(index, totals):
                for variable, saved in zip(random_state, states):
                    variable.assign(saved.read(index))
                start = index * mini_batch_size
                with tf.GradientTape() as tape:
                    output = tf.cast(call(chunk_of(flat, index)), tf.float32)
                grads = tape.gradient(
                    output,
                    [variable for variable, floating in zip(variables, differentiable) if floating],
                    output_gradients=upstream[start : start + mini_batch_size],
                    unconnected_gradients=tf.UnconnectedGradients.ZERO,
                )
                return index + 1, [total + tf.convert_to_tensor(grad) for total, grad in zip(totals, grads)]

            totals = [tf.zeros_like(variable) for variable, floating in zip(variables, differentiable) if floating]
            _, totals = tf.while_loop(
                lambda index, *_: index < num_chunks, backward_chunk, (tf.constant(0), totals),
                parallel_iterations=1,
            )
            totals = iter(totals)
            variable_grads = [next(totals) if floating else None for floating in differentiable]
            return [None] * len(flat), variable_grads

        return result, gradient

    return forward(*flat_inputs)


"""Matryoshka representation learning: one loss on nested prefixes of the embedding."""

import keras
import tensorflow as tf

from keras_siamese.checks import is_integer, is_number


def check_matryoshka_dims(dims, embedding_size=None):
    """`dims` sorted into a tuple of increasing positive integers, each at most `embedding_size`.

    Any order is accepted (sentence-transformers lists them largest first);
    raises `ValueError` naming the value for a non-integer, a size repeated
    or one beyond `embedding_size`.

    Example:
    >>> check_matryoshka_dims([384, 128, 64], embedding_size=384)
    (64, 128, 384)
    """
    dims = _dims_as_given(dims)
    repeated = sorted({dim for dim in dims if dims.count(dim) > 1})
    if repeated:
        raise ValueError(f"dims must list each size once, got {dims!r} ({repeated[0]} repeated).")
    dims = tuple(sorted(dims))
    if embedding_size is not None and dims[-1] > embedding_size:
        raise ValueError(f"dims {dims!r} go beyond the embedding's {embedding_size} dimensions.")
    return dims


def _dims_as_given(dims):
    """`dims` as a non-empty tuple of positive ints, in the order given; else a `ValueError`."""
    given = dims
    iterable = hasattr(dims, "__iter__") and not isinstance(dims, (str, bytes))
    dims = tuple(dims) if iterable else ()
    if not dims or not all(is_integer(dim) and dim >= 1 for dim in dims):
        raise ValueError(f"dims must be a non-empty sequence of positive integers such as (64, 128, 384), got {given!r}.")
    return tuple(int(dim) for dim in dims)


def check_truncate_dim(dim, embedding_size=None):
    """`dim` if it is a positive integer no larger than `embedding_size`; else a `ValueError` naming it.

    Example:
    >>> check_truncate_dim(64, embedding_size=384)
    64
    """
    if not is_integer(dim) or dim < 1:
        raise ValueError(f"truncate_dim must be a positive integer, got {dim!r}.")
    if embedding_size is not None and dim > embedding_size:
        raise ValueError(f"truncate_dim {dim} is larger than the embedding's {embedding_size} dimensions.")
    return int(dim)


def truncate_embeddings(embeddings, dim):
    """The first `dim` dimensions of each embedding (last axis), L2-normalised again, in float32.

    What a Matryoshka-trained model serves at a smaller size: the same as
    `keras_siamese.inference.encode(..., truncate_dim=dim)` and the SavedModel
    exported with `truncate_dim=dim`. A zero prefix stays zero.

    Example:
    >>> truncate_embeddings([[3.0, 4.0, 12.0]], 2).numpy().round(2)
    array([[0.6, 0.8]], dtype=float32)
    """
    embeddings = tf.convert_to_tensor(embeddings)
    check_truncate_dim(dim, embeddings.shape[-1])
    prefix = tf.cast(embeddings[..., :dim], tf.float32)
    return tf.math.l2_normalize(prefix, axis=-1, epsilon=1e-12)


@keras.saving.register_keras_serializable(package="keras_siamese")
class MatryoshkaLoss(keras.losses.Loss):
    """Trains nested prefixes of the embedding with any of our losses (Kusupati et al. 2022).

    The loss is `sum_i weights[i] * loss(y_true, truncate_embeddings(y_pred, dims[i]))`:
    the wrapped loss on the first `dims[i]` dimensions of every embedding,
    L2-normalised again, so the first 64 dimensions of a 384-d model are a
    64-d embedding in their own right. Serve a prefix with
    `encode(..., truncate_dim=64)`, `model.predict(..., truncate_dim=64)` or
    `export_saved_model(..., truncate_dim=64)`. This is how to make a
    pretrained encoder's embedding smaller: a random projection head starts
    far below the encoder's own embedding.

    Inputs are those of the wrapped loss: `(labels, embeddings [B, D])` for
    the triplet losses (`model.compile(loss=MatryoshkaLoss(TripletSemiHardLoss(margin=0.5), ...))`
    on a `TripletSemiHard`), `(zeros, [B, 2 + H, D])` for
    `MultipleNegativesRankingLoss` and `(labels, [B, 2, D])` for the pair
    losses on `pair_model`. Works under `mini_batch_size` (gradient
    caching) and `tf.distribute` as the wrapped loss does. Include the full
    size in `dims` to keep training it; sentence-transformers' recipe
    weights every size equally.

    Args:
        loss: a `keras_siamese.losses` loss object (or any Keras loss on embeddings).
        dims: prefix sizes in any order (sentence-transformers lists them
            largest first, `(768, 512, 256)`), each once, the largest at most
            the embedding size; kept in increasing order in `self.dims`.
        weights: one non-negative weight per size, in the order of `dims`
            (default: all 1); sorted along with their sizes.

    Example:
    >>> from keras_siamese.losses import MultipleNegativesRankingLoss
    >>> loss = MatryoshkaLoss(MultipleNegativesRankingLoss(), dims=(1, 2))
    >>> round(float(loss([0.0, 0.0], [[[1., 0.], [1., 0.]], [[-1., 1.], [-1., 1.]]])), 4)
    0.0
    """

    def __init__(self, loss, dims, weights=None, name="matryoshka_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        if isinstance(loss, dict):  # from get_config
            loss = keras.losses.deserialize(loss)
        if not callable(loss):
            raise ValueError(f"loss must be a loss object or function, got {loss!r}.")
        self.loss = loss
        given_dims = _dims_as_given(dims)
        self.dims = check_matryoshka_dims(given_dims)
        if weights is None:
            weights = (1.0,) * len(self.dims)
        given, weights = weights, tuple(weights) if hasattr(weights, "__iter__") else ()
        if len(weights) != len(self.dims) or not all(is_number(w) and 0 <= w < float("inf") for w in weights):
            raise ValueError(
                f"weights must be {len(self.dims)} finite non-negative numbers, one per dim, got {given!r}."
            )
        self.weights = tuple(float(weight) for _, weight in sorted(zip(given_dims, weights)))  # as self.dims

    def call(self, y_true, y_pred):
        y_pred = tf.convert_to_tensor(y_pred)  # Keras maps nested lists element by element
        check_matryoshka_dims(self.dims, y_pred.shape[-1])
        total = 0.0
        for dim, weight in zip(self.dims, self.weights):
            total += weight * tf.cast(self.loss(y_true, truncate_embeddings(y_pred, dim)), tf.float32)
        return total

    def get_config(self):
        return {
            **super().get_config(),
            "loss": keras.losses.serialize(self.loss),
            "dims": list(self.dims),
            "weights": list(self.weights),
        }

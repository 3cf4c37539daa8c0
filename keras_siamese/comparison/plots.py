"""PNG figures of a comparison: a 2-D map of each variant's embeddings and the training curves.

Needs matplotlib (`pip install keras-siamese[plots]`); `plots_available()`
says whether it is installed, and the rest of the package works without it.
"""

import importlib.util
import os

import numpy as np

MISSING_MATPLOTLIB = (
    "matplotlib is not installed, so the PNG figures (embedding maps, training curves) were not "
    "written; install it with `pip install keras-siamese[plots]` (or `pip install matplotlib`)."
)


def plots_available():
    """True when matplotlib can be imported."""
    return importlib.util.find_spec("matplotlib") is not None


def principal_components(embeddings, dimensions=2):
    """Projects rows onto their top principal axes (centred, SVD); float32 `[n, dimensions]`.

    Axis signs are fixed so that each axis's largest-magnitude loading is positive,
    which makes the map reproducible.

    Example:
    >>> points = principal_components(np.array([[0., 0., 1.], [2., 0., 1.], [4., 0., 1.]]))
    >>> points[:, 0].round(3).tolist()
    [-2.0, 0.0, 2.0]
    """
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"need a [n >= 2, d] array of embeddings, got shape {x.shape}.")
    x = x - x.mean(axis=0)
    _, _, axes = np.linalg.svd(x, full_matrices=False)
    axes = axes[:dimensions]
    signs = np.sign(axes[np.arange(len(axes)), np.argmax(np.abs(axes), axis=1)])
    projected = x @ (axes * signs[:, None]).T
    if projected.shape[1] < dimensions:  # d < dimensions: pad with zeros
        projected = np.pad(projected, ((0, 0), (0, dimensions - projected.shape[1])))
    return projected.astype(np.float32)


def write_figures(comparison, output_dir, max_points=3000):
    """Writes `map_<variant>.png` per variant and `curves.png`; returns their paths.

    Raises `ImportError` with install instructions when matplotlib is missing.

    Example:
    >>> write_figures(compare(encoder, texts, labels), "runs/compare")  # doctest: +SKIP
    ['runs/compare/map_frozen.png', ..., 'runs/compare/curves.png']
    """
    if not plots_available():
        raise ImportError(MISSING_MATPLOTLIB)
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    os.makedirs(output_dir, exist_ok=True)
    count = min(max_points, len(comparison.test_labels))
    chosen = np.sort(np.random.default_rng(comparison.config.seed).permutation(len(comparison.test_labels))[:count])
    labels = comparison.test_labels[chosen]
    paths = []
    for name, run in comparison.runs.items():
        points = principal_components(run.test_embeddings[chosen])
        figure, axis = pyplot.subplots(figsize=(7, 6))
        scatter = axis.scatter(points[:, 0], points[:, 1], c=labels, cmap="turbo", s=4, alpha=0.7)
        axis.set_title(f"{name}: {count} test embeddings, first two principal components")
        axis.set_xlabel("PC 1")
        axis.set_ylabel("PC 2")
        _class_legend(axis, scatter, comparison.class_names, labels)
        figure.tight_layout()
        paths.append(os.path.join(output_dir, f"map_{name}.png"))
        figure.savefig(paths[-1], dpi=110)
        pyplot.close(figure)
    paths.append(_write_curves(pyplot, comparison, os.path.join(output_dir, "curves.png")))
    return paths


def _class_legend(axis, scatter, class_names, labels):
    present = np.unique(labels)
    if len(present) > 20:  # too many to list: the colour bar says which id is which colour
        axis.figure.colorbar(scatter, ax=axis, label="class id")
        return
    handles = [
        axis.scatter([], [], color=scatter.cmap(scatter.norm(value)), s=12, label=class_names[value])
        for value in present
    ]
    axis.legend(handles=handles, fontsize=6, loc="best", markerscale=1.5)


def _write_curves(pyplot, comparison, path):
    """Training loss, held-out kNN accuracy and classifier-head loss per epoch, one line per variant."""
    panels = (
        ("loss", "encoder training loss"),
        ("monitor_knn_accuracy", "held-out kNN accuracy (monitor sample)"),
        ("head_loss", "classifier head loss"),
    )
    figure, axes = pyplot.subplots(1, len(panels), figsize=(15, 4))
    for axis, (key, title) in zip(axes, panels):
        for name, run in comparison.runs.items():
            values = run.history.get(key)
            if values:
                axis.plot(np.arange(1, len(values) + 1), values, marker="o", label=name)
        axis.set_title(title)
        axis.set_xlabel("epoch")
        if axis.lines:
            axis.legend()
        else:
            axis.text(0.5, 0.5, "no data", ha="center", va="center", transform=axis.transAxes)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    pyplot.close(figure)
    return path

"""`run_comparison`: compare, then write every result file and print the table."""

import os
import sys

from keras_siamese.comparison.plots import MISSING_MATPLOTLIB, plots_available, write_figures
from keras_siamese.comparison.protocol import ComparisonConfig, compare
from keras_siamese.comparison.report import markdown_table, write_comparison


def run_comparison(encoder, texts, labels, config=None, class_names=None, figures=True):
    """`compare`, then writes every file and prints the table; returns `(comparison, paths)`.

    Without matplotlib the figures are skipped with a message saying how to
    install it; everything else is still written.

    Example:
    >>> comparison, paths = run_comparison(encoder, texts, labels)  # doctest: +SKIP
    """
    config = config or ComparisonConfig()
    comparison = compare(encoder, texts, labels, config, class_names=class_names)
    paths = write_comparison(comparison, config.output_dir)
    if figures and plots_available():
        paths["figures"] = write_figures(comparison, config.output_dir)
    elif figures:
        print(f"[compare] {MISSING_MATPLOTLIB}", file=sys.stderr)
    print(markdown_table(comparison.metrics, len(comparison.train_labels), len(comparison.test_labels)))
    print(f"[compare] results in {os.path.abspath(config.output_dir)}")
    return comparison, paths

"""The Siamese ALBERT study as a reusable protocol: frozen vs trained vs siamese on your data.

`compare` trains the variants and scores them; `write_comparison` writes the
results table (markdown, JSON), the predictions behind it and TensorBoard
projector files; `write_figures` the PNG maps and curves (needs matplotlib).
`run_comparison` does all three, as `keras-siamese compare` does.
"""

from keras_siamese.comparison.plots import plots_available, principal_components, write_figures
from keras_siamese.comparison.protocol import (
    VARIANTS,
    Comparison,
    ComparisonConfig,
    VariantRun,
    compare,
    fit_classifier_head,
    length_bucketing,
    score_run,
)
from keras_siamese.comparison.report import markdown_table, write_comparison, write_predictions, write_projector
from keras_siamese.comparison.run import run_comparison

__all__ = [
    "Comparison",
    "ComparisonConfig",
    "VARIANTS",
    "VariantRun",
    "compare",
    "fit_classifier_head",
    "length_bucketing",
    "markdown_table",
    "plots_available",
    "principal_components",
    "run_comparison",
    "score_run",
    "write_comparison",
    "write_figures",
    "write_predictions",
    "write_projector",
]

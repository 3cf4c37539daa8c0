"""keras_siamese: sentence embeddings trained with online triplet mining, served by TF Serving."""

__version__ = "0.1.0"

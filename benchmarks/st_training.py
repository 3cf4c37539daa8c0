"""Siamese training with sentence-transformers, run in its own virtualenv: the peer of
benchmarks/quality_wordnet.py, quality_finetune.py and train_throughput.py.

The driver (`run_st_training`, imported by those scripts) writes the texts, labels and
the exact index batches to a work directory and runs this file with the python of
benchmarks/.venvs/st (benchmarks/make_peer_venvs.sh st). The worker builds
Transformer(MiniLM) -> mean Pooling -> Dense(64, relu) -> Dense(64) -> Normalize, trains
it with `BatchSemiHardTripletLoss` (Euclidean distance, as keras_siamese's "L2") and
`torch.optim.Adam` (no schedule, no weight decay, eps 1e-7 as Keras) on the given batches
in the given order, and reports the wall time of the steps after the warm-up ones. With
`encode`, it then embeds those texts (`SentenceTransformer.encode`, batch 64).

Only the standard library is imported at the top: the worker's python has no TensorFlow.
"""

import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ST_PYTHON = os.path.join(HERE, ".venvs", "st", "bin", "python")


def run_st_training(work_dir, model_dir, texts, labels, batches, learning_rate, margin,
                    warmup_steps=0, threads=2, output_units=64, hidden_units=64,
                    sequence_length=128, encode_texts=None, loss="semihard", weight_decay=0.0,
                    warmup_fraction=0.0, precision="float32"):
    """Trains the sentence-transformers peer in a subprocess; returns `(report, embeddings)`.

    `batches` is an int array `[steps, batch]` of positions in `texts`/`labels`
    (`loss="semihard"`: `BatchSemiHardTripletLoss`), or `[steps, batch, 2]` of
    (anchor, positive) positions (`loss="mnrl"`: `MultipleNegativesRankingLoss`).
    `output_units=None` trains no head (Transformer -> Pooling -> Normalize).
    `weight_decay` > 0 uses AdamW; `warmup_fraction` > 0 sentence-transformers'
    default schedule (linear warmup, then linear decay to 0). `precision="bfloat16"`
    runs the forward pass and the loss under `torch.autocast("cpu", torch.bfloat16)`
    (PyTorch's mixed precision; weights and optimizer float32). `report`
    holds `seconds` (steps after `warmup_steps`), `steps`, `examples` and `losses`;
    `embeddings` is the float32 `[len(encode_texts), output_units]` array, or None.
    """
    import numpy as np

    if not os.path.exists(ST_PYTHON):
        raise FileNotFoundError(f"{ST_PYTHON} is missing: run `bash benchmarks/make_peer_venvs.sh st`.")
    os.makedirs(work_dir, exist_ok=True)
    np.save(os.path.join(work_dir, "batches.npy"), np.asarray(batches, np.int64))
    job = {
        "model_dir": model_dir, "texts": list(texts), "labels": [int(label) for label in labels],
        "batches": os.path.join(work_dir, "batches.npy"), "learning_rate": learning_rate,
        "margin": margin, "warmup_steps": warmup_steps, "threads": threads,
        "output_units": output_units, "hidden_units": hidden_units,
        "sequence_length": sequence_length, "encode_texts": encode_texts,
        "embeddings": os.path.join(work_dir, "st_embeddings.npy"),
        "loss": loss, "weight_decay": weight_decay, "warmup_fraction": warmup_fraction, "precision": precision,
    }
    job_path = os.path.join(work_dir, "st_job.json")
    with open(job_path, "w") as file:
        json.dump(job, file)
    result = subprocess.run([ST_PYTHON, os.path.abspath(__file__), job_path], capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"the sentence-transformers worker failed:\n{result.stderr[-4000:]}")
    report = json.loads(result.stdout.strip().splitlines()[-1])
    embeddings = np.load(job["embeddings"]) if encode_texts is not None else None
    return report, embeddings


def worker(job_path):
    import time

    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer, losses, models

    with open(job_path) as file:
        job = json.load(file)
    torch.set_num_threads(job["threads"])
    torch.manual_seed(0)
    transformer = models.Transformer(job["model_dir"], max_seq_length=job["sequence_length"])
    width = transformer.get_word_embedding_dimension()
    head = []
    if job["output_units"] is not None:
        head = [
            models.Dense(width, job["hidden_units"], activation_function=torch.nn.ReLU()),
            models.Dense(job["hidden_units"], job["output_units"], activation_function=torch.nn.Identity()),
        ]
    model = SentenceTransformer(
        modules=[transformer, models.Pooling(width, pooling_mode="mean"), *head, models.Normalize()],
        device="cpu",
    )
    if job["loss"] == "mnrl":
        loss_module = losses.MultipleNegativesRankingLoss(model=model)
    else:
        loss_module = losses.BatchSemiHardTripletLoss(model=model, margin=job["margin"])
    if job["weight_decay"]:
        optimizer = torch.optim.AdamW(model.parameters(), lr=job["learning_rate"], weight_decay=job["weight_decay"])
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=job["learning_rate"], eps=1e-7)
    texts, labels = job["texts"], torch.tensor(job["labels"])
    batches = np.load(job["batches"])
    scheduler = None
    if job["warmup_fraction"]:
        from transformers import get_linear_schedule_with_warmup

        scheduler = get_linear_schedule_with_warmup(
            optimizer, int(job["warmup_fraction"] * len(batches)), len(batches)
        )
    model.train()
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=job.get("precision") == "bfloat16")
    step_losses, started = [], None
    for step, batch in enumerate(batches):
        if step == job["warmup_steps"]:
            started = time.perf_counter()
        with autocast:
            if job["loss"] == "mnrl":
                features = [model.tokenize([texts[i] for i in batch[:, column]]) for column in range(batch.shape[1])]
                loss = loss_module(features, None)
            else:
                features = model.tokenize([texts[i] for i in batch])
                loss = loss_module([features], labels[torch.from_numpy(batch)])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        step_losses.append(float(loss))
    seconds = time.perf_counter() - started if started is not None else 0.0
    timed = len(batches) - job["warmup_steps"]
    if job["encode_texts"] is not None:
        model.eval()
        np.save(job["embeddings"], model.encode(job["encode_texts"], batch_size=64).astype(np.float32))
    print(json.dumps({
        "seconds": seconds, "steps": timed, "examples": timed * batches.shape[1], "losses": step_losses,
    }))


if __name__ == "__main__":
    worker(sys.argv[1])

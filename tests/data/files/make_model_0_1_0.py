"""Writes tests/data/files/model_0_1_0.keras with keras_siamese 0.1.0 (commit f98943b) and the
embeddings that version computed for its texts (model_0_1_0_embeddings.npz)."""
import numpy as np, keras
from keras_siamese.data.wordnet import load_wordnet_glosses
from keras_siamese.layers import AlbertEncoder
from keras_siamese.models import TripletSemiHard
from keras_siamese.optimizers import fine_tuning_optimizer
from keras_siamese.data import class_balanced_batches

keras.utils.set_random_seed(0)
texts, labels, _ = load_wordnet_glosses()
rng = np.random.default_rng(0); keep = rng.choice(len(texts), 600, replace=False); texts = [texts[i] for i in keep]; labels = np.asarray(labels)[keep]
encoder = AlbertEncoder.from_corpus(texts, vocabulary_size=300, num_layers=1, num_heads=2, embedding_dim=16,
                                    hidden_dim=32, intermediate_dim=64, sequence_length=32)
model = TripletSemiHard.from_encoder(encoder, pooling="mean", output_units=16, hidden_units=(16,))
model.compile(optimizer=fine_tuning_optimizer(1e-3, 4, 0.1, 0.01))
model.fit(class_balanced_batches(texts, labels, classes_per_batch=4, samples_per_class=2, batches_per_epoch=2, seed=0), epochs=1, verbose=0)
probe = ["a small domesticated dog", "to move quickly on foot", "", "café ☕ " * 20]
model.save("tests/data/files/model_0_1_0.keras")
np.savez("tests/data/files/model_0_1_0_embeddings.npz", texts=np.array(probe), embeddings=model.predict(probe, verbose=0))
print(model.get_config()["preprocessor"])

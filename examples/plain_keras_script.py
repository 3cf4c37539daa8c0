"""A user's own training script: keras_siamese parts in plain Keras.

Run: python examples/plain_keras_script.py
Trains a small ALBERT with semi-hard triplet mining on the bundled WordNet
glosses, checkpoints it every epoch, reloads the checkpoint and exports a SavedModel for TF Serving.
"""

import keras

from keras_siamese.data import class_balanced_batches, load_wordnet_glosses
from keras_siamese.export import export_saved_model
from keras_siamese.layers import AlbertEncoder, L2Normalize, Pooling, Projection, token_inputs
from keras_siamese.models import TripletSemiHard

texts, labels, class_names = load_wordnet_glosses(source="bundled")

encoder = AlbertEncoder.from_corpus(texts, vocabulary_size=4000, sequence_length=48)
tokens = token_inputs()  # the model trains on tokens; its preprocessor makes them in tf.data
pooled = Pooling("mean")(encoder(tokens))  # from scratch; "pooled" suits a pretrained encoder
embedding = L2Normalize()(Projection(output_units=64, hidden_units=(64,))(pooled))
model = TripletSemiHard(inputs=tokens, outputs=embedding, preprocessor=encoder.preprocessor)  # a SentenceEmbedder
model.compile(optimizer=keras.optimizers.Adam(1e-3))

batches = class_balanced_batches(texts, labels, classes_per_batch=16, samples_per_class=4, seed=0,
                                 batches_per_epoch=100)
model.fit(
    batches,
    epochs=2,
    callbacks=[keras.callbacks.ModelCheckpoint("runs/example/model.keras")],
)

reloaded = keras.saving.load_model("runs/example/model.keras")
print(reloaded.encode(["a domestic dog", "to run fast"]).shape)
print("exported", export_saved_model(reloaded, "runs/example/serving/wordnet"))

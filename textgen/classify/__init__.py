"""Classify mode: labelled review folders to a classifier of raw text.

config.py (hyper-parameters) -> data.py (review folders) -> model.py (TextVectorization,
Embedding, LSTM / n-grams, Dense) -> train.py (the recipe for the shared lifecycle) ;
prediction.py (batched prediction, evaluation), metrics.py.
"""

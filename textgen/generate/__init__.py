"""Generate mode: a character model of a text, and sampling from it.

config.py (hyper-parameters) -> data.py (text, Vocabulary, windows) -> model.py (stacked
LSTM/GRU) -> train.py (the recipe for the shared lifecycle) ; sampling.py (NumPy, one step a
character), interactive.py, presets.py, evaluate.py.
"""

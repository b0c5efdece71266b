"""textgen: character-level text generation and text classification with Keras 3.

The Python API mirrors the CLI::

    from textgen import train_generator, load_sampler
    result = train_generator("corpora/othello.txt", epochs=5)
    sampler = load_sampler(result.run)
    print(sampler.generate("Her father loved me", length=200, temperature=0.8))

Importing this package does not import TensorFlow; the functions that need it do so lazily.
"""

__version__ = "0.1.0"

# Lazy re-exports keep `import textgen` (and `textgen --help`) free of TensorFlow.
_EXPORTS = {
    "train_generator": "textgen.generate.train",
    "load_sampler": "textgen.generate.sampling",
    "SamplingSettings": "textgen.generate.sampling",
    "evaluate_text": "textgen.generate.evaluate",
    "train_classifier": "textgen.classify.train",
    "evaluate_data": "textgen.classify.prediction",
    "predict_texts": "textgen.classify.prediction",
    "find_model": "textgen.runs",
    "export_model": "textgen.export",
    # what every function raises for bad input: one line saying what is wrong and what to do
    "TextgenError": "textgen.errors",
    "FieldError": "textgen.errors",
    # Ctrl-C or SIGTERM during training, after saving: its `run` resumes with resume=True
    "TrainingInterrupted": "textgen.training.fit",
}
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib
        import inspect

        from textgen.errors import user_errors
        from textgen.tf_setup import own_retracing_unsaid, random_states_kept

        # importing rich draws from Python's random: a program's own numbers stay its own
        with random_states_kept():
            value = getattr(importlib.import_module(_EXPORTS[name]), name)
        if inspect.isfunction(value):  # failures worded as the CLI words them; see the wrappers
            value = own_retracing_unsaid()(user_errors(value))
            # pickled (for a process pool) by this name, where it is this very function
            value.__module__, value.__qualname__ = __name__, name
        globals()[name] = value  # looked up once
        return value
    raise AttributeError(f"module 'textgen' has no attribute {name!r}")


def __dir__() -> list[str]:  # the lazy names too, for tab completion and help()
    return sorted({*globals(), *_EXPORTS})

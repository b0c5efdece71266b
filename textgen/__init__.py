"""textgen: character-level text generation and review classification with Keras 3.

The Python API mirrors the CLI::

    from textgen import train_generator, load_sampler
    run = train_generator("corpora/othello.txt", epochs=5)
    sampler = load_sampler(run)
    print(sampler.generate("Her father loved me", length=200, temperature=0.8))

Importing this package does not import TensorFlow; the functions that need it do so lazily.
"""

__version__ = "0.1.0"

__all__ = ["__version__", "load_sampler", "train_generator"]


def __getattr__(name: str):
    # Lazy re-exports keep `import textgen` (and `textgen --help`) free of TensorFlow.
    if name == "train_generator":
        from textgen.generate import train_generator

        return train_generator
    if name == "load_sampler":
        from textgen.sampling import load_sampler

        return load_sampler
    raise AttributeError(f"module 'textgen' has no attribute {name!r}")

"""Generate mode's object: what shared code (runs, serve, export, info, plots) asks of a
character-generator run. Imports stay light; what needs TensorFlow loads when asked."""

from __future__ import annotations

import math
import unicodedata
from typing import TYPE_CHECKING, Any

from textgen.generate.config import GeneratorConfig
from textgen.modes import Figure, Mode
from textgen.runs import Checkpoint, ModelChoice, RunDir

if TYPE_CHECKING:
    from textgen.generate.sampling import Sampler
    from textgen.generate.train import GeneratorRecipe


COMBINING_CATEGORIES = ("Mn", "Me")  # nonspacing and enclosing marks


def _shown(char: str) -> str:
    """A vocabulary character as `info` lists it: itself (é, 中) unless it is invisible, a
    backslash or a combining mark (which would merge with the character before it), then
    escaped as Python writes it (\\n, \\t, \\\\, \\u0301)."""
    visible = (char.isprintable() and char != "\\"
               and unicodedata.category(char) not in COMBINING_CATEGORIES)
    return char if visible else char.encode("unicode_escape").decode("ascii")


class GenerateMode:
    mode = Mode.generate
    train_command = "textgen train"
    use_command = "textgen sample/evaluate"
    train_function = "textgen.train_generator"
    use_function = "textgen.load_sampler or evaluate_text"
    figure = Figure("val_bits_per_char", "bits_per_char", "bits/char", per_nat=1 / math.log(2))
    config_class = GeneratorConfig
    streams = True
    meta_fields = {"corpus": (str,), "corpus_chars": (int,), "corpus_sha256": (str,),
                   "default_seed": (str,), "text_runs": (dict,), "line_starts": (str,),
                   "longest_line": (int,), "longest_word": (int,), "decoding": (dict,),
                   "base": (dict,), "preset": (str,), "glob": (str,),
                   "doc_separator": (str,)}

    @property
    def served_checkpoint(self) -> Checkpoint:
        from textgen.generate.sampling import SAMPLE_CHECKPOINT

        return SAMPLE_CHECKPOINT

    @property
    def recipe_class(self) -> type[GeneratorRecipe]:
        from textgen.generate.train import GeneratorRecipe

        return GeneratorRecipe

    def info_rows(self, run: RunDir, meta: dict) -> dict[str, Any]:
        from textgen.generate.sampling import read_vocabulary

        vocab = read_vocabulary(run, GeneratorConfig.from_dict(meta["config"], str(run.meta)))
        # the base it was fine-tuned from (name, weights' sha256, characters it added)
        base = meta.get("base") or {"name": meta.get("config", {}).get("base", "none")}
        rows = {"base": base, "vocabulary_size": len(vocab),
                "vocabulary": "".join(_shown(c) for c in vocab.chars)}
        if isinstance(meta.get("text_runs"), dict):  # a fine-tuned run's vocabulary is larger
            rows["text_characters"] = len(meta["text_runs"])
        if meta.get("preset") is not None:  # the named option set it started with
            rows["preset"] = meta["preset"]
        for key in ("longest_line", "longest_word"):  # where samples end their lines
            if meta.get(key) is not None:
                rows[key] = meta[key]
        return rows

    def load_for_serving(self, choice: ModelChoice) -> Sampler:
        from textgen.generate.sampling import load_sampler

        return load_sampler(choice.file)

    def describe_served(self, loaded: Sampler) -> dict[str, Any]:
        return {"vocab_size": len(loaded.vocab), "vocabulary": "".join(loaded.vocab.chars),
                "default_seed": loaded.default_seed}

    def export_module(self, choice: ModelChoice) -> tuple[Any, dict[str, Any]]:
        from textgen.generate.export import generator_module

        return generator_module(choice)


MODE = GenerateMode()

"""Generate mode's recipe for the training lifecycle, and `train_generator`, its Python API."""

from __future__ import annotations

import contextlib
import math
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from textgen.console import notes_console
from textgen.errors import (
    FIELD,
    FieldError,
    TextgenError,
    as_path,
    check_field,
    choice,
    default_run_name,
    written,
)
from textgen.generate.base import (
    AUTO_BASE,
    MIN_COVERAGE,
    NO_BASE,
    WORSE_THAN_EVEN_BITS,
    Base,
    bits_per_char,
    choose_base,
    describe_new_chars,
    fine_tuning_start,
    load_base,
    locate_base,
    shipped_bases,
)
from textgen.generate.config import GeneratorConfig, Precision
from textgen.generate.data import (
    Split,
    Vocabulary,
    bundled_corpus_path,
    evaluation_dataset,
    line_lengths,
    line_starts,
    longest_runs,
    split_by_position,
    steps_per_epoch,
    text_digest,
    training_dataset,
    validation_length,
)
from textgen.generate.model import LOSS, build_generator, machine_precision
from textgen.generate.presets import check_resumed_preset, preset_values
from textgen.generate.sampling import DEFAULT_SEED, read_vocabulary
from textgen.generate.stepper import check_run_weights
from textgen.modes import Mode
from textgen.reading import (
    DEFAULT_DECODING,
    DEFAULT_DOC_SEPARATOR,
    Decoding,
    collect_documents,
    read_documents,
)
from textgen.runs import ModelChoice, RunDir, load_keras_model, write_text_atomic
from textgen.training.lifecycle import (
    BYTES_PER_PARAMETER,
    Datasets,
    Notes,
    TrainResult,
    resumed_reading,
    train_run,
)
from textgen.training.options import TrainOptions, split_overrides

if TYPE_CHECKING:
    import keras

LN2 = math.log(2)
MAX_VALIDATION_WINDOWS = 2000  # validation cost stays bounded on 100 MB corpora


def generator_run_name(paths: list[Path]) -> str:
    """A new run's folder name: its (first) text's file name, or its folder's."""
    corpus = paths[0]
    return default_run_name(corpus.resolve().name if corpus.is_dir() else corpus.stem)


def percent_below(share: Fraction) -> int:
    """An exact share as a whole percentage rounded down, never up to a bar it falls short of
    (89.8% is 89, not 90)."""
    return math.floor(share * 100)


class GeneratorRecipe:
    """A character generator trained on a text: one file, or the files of folders joined."""

    mode = Mode.generate

    def __init__(self, paths: list[Path], decoding: Decoding = DEFAULT_DECODING,
                 glob: str | None = None, doc_separator: str = DEFAULT_DOC_SEPARATOR):
        docs = collect_documents(paths, glob, decoding.encoding)
        self.corpus = paths[0]
        self.text: str | None = read_documents(docs, decoding, doc_separator)
        self.vocab = Vocabulary.from_text(self.text)
        if len(self.vocab) < 2:  # every next character is certain: a softmax over one class
            raise TextgenError(f"{self.corpus}: has only one distinct character "
                               f"({self.vocab.chars[0]!r}); there is nothing to learn: give a "
                               "text with at least two")
        self.split: Split | None = None
        self.base: Base | None = None  # the base a new run fine-tunes from (choose_defaults)
        self.base_chosen = False
        self.base_bits: float | None = None  # the base's bits/char on the text (sizing's rate)
        self.start_weights: list | None = None  # the base's, over the text's vocabulary
        self.run_name = generator_run_name(paths)
        self.facts = {"corpus": str(self.corpus.resolve()), "corpus_chars": len(self.text),
                      "corpus_sha256": text_digest(self.text),
                      "default_seed": (DEFAULT_SEED if DEFAULT_SEED in self.vocab.chars
                                       else self.text[0]),
                      # the text's own characters and their longest runs (sampling keeps to
                      # them: a fine-tuned run's vocabulary is the base's)
                      "text_runs": longest_runs(self.text, self.vocab.chars),
                      "line_starts": line_starts(self.text),
                      # its longest line and word (samples end lines near it, as it does)
                      **(line_lengths(self.text, self.vocab.chars) or {}),
                      "decoding": decoding.to_dict()}
        self.data_notes = []
        if len(paths) > 1 or self.corpus.is_dir():
            self.facts.update(sources=[str(Path(p).resolve()) for p in paths],
                              documents=len(docs.files), doc_separator=doc_separator,
                              glob=glob, skipped=docs.skipped())
            skipped = ", ".join(f"{n} {why}" for why, n in docs.skipped().items())
            files = f"{len(docs.files)} file{'s' if len(docs.files) != 1 else ''}"
            self.data_notes.append(f"read {files} ({len(self.text):,} "
                                   f"characters){f'; skipped {skipped}' if skipped else ''}")

    def new_config(self, given: dict[str, Any]) -> GeneratorConfig:
        """The config (the lifecycle then checks that it fits in memory: check_batch_fits)."""
        if self.base_chosen:  # the base actually used, whatever was asked for
            given = {**given, "base": self.base.name if self.base else NO_BASE}
        return GeneratorConfig(vocab_size=len(self.vocab), **given)

    def choose_defaults(self, options: TrainOptions, given: dict[str, Any],
                        given_options: set[str], notes: Notes) -> dict[str, Any]:
        """The base to fine-tune from (textgen.generate.base), and a model sized for the text
        and, with --max-time, for the budget on this machine (textgen.generate.sizing);
        printed in one line and saved in run.json as `chosen`."""
        from textgen.generate.sizing import Machine, choose_size, window_for

        seq_length = window_for(options.max_time, given)
        held_out = validation_length(len(self.text), seq_length, options.val_split)  # checks
        train_chars = len(self.text) - held_out
        if held_out > len(self.text) * options.val_split + 1:  # raised to one whole window
            share = held_out / len(self.text)
            notes.add(f"held out the text's last {held_out:,} characters ({share:.0%}, one "
                      f"window of {seq_length}; {{asked}} asks for "
                      f"{int(len(self.text) * options.val_split):,}) to measure the model on: "
                      "it never trains on them; {none} trains on all of it",
                      {"asked": ("val_split", options.val_split), "none": ("val_split", 0.0)})
        self.base, self.base_chosen = self._usable_base(given, options, train_chars,
                                                    notes), True
        machine = None
        if options.max_time is not None:
            from textgen.generate.probe import multiply_adds_per_second

            precision = str(machine_precision(choice(
                Precision, given.get("precision", Precision.auto), "precision")))
            machine = Machine(precision, multiply_adds_per_second(precision))
        user = {**given, **{k: getattr(options, k) for k in given_options}}
        if self.base is not None:
            user = {**self.base.architecture(), **user}
        size = choose_size(train_chars, len(self.vocab), options.max_time, machine, user,
                           fine_tuning=self.base is not None, base_bits=self.base_bits)
        for key in TrainOptions.field_names() & set(size.values):
            setattr(options, key, size.values[key])
        notes.add(size.reason)
        self.facts["chosen"] = {**size.values, "reason": size.reason}
        chosen = {k: v for k, v in size.values.items() if k in GeneratorConfig.CHOSEN}
        if self.base is not None:  # the base's shape, for the options the user left out
            chosen.update({k: v for k, v in self.base.architecture().items() if k not in given})
        return chosen

    def _usable_base(self, given: dict[str, Any], options: TrainOptions, train_chars: int,
                     notes: Notes) -> Base | None:
        """The base this run fine-tunes from, or None (with a note saying why) to train from
        random weights; the vocabulary grows by the text's characters the base lacks. `auto`
        (the default) takes the shipped base that predicts the training text best."""
        name = given.get("base", GeneratorConfig.base)
        if name == NO_BASE:
            return None
        names = shipped_bases() if name == AUTO_BASE else [name]
        if not names:
            notes.add("training from scratch: this textgen ships no base")
            return None
        bases = [load_base(n, options.checkpoint_dir) for n in names]
        reasons = [self._why_not(base, given) for base in bases]
        usable = [base for base, why in zip(bases, reasons, strict=True) if why is None]
        if not usable:  # every base's reason (auto weighs them all), each once
            shared = _shared_architecture_differs(bases, given)
            whys = [shared] if shared else dict.fromkeys(why for why, _ in reasons)
            advice = dict.fromkeys(advice for _, advice in reasons)
            notes.add(f"training from scratch: {'; '.join(whys)} ({'; '.join(advice)})")
            return None
        base, why = usable[0], ""
        train_text = self.text[:train_chars]
        # each base's start, its new rows fitted to the training text (the validation unseen)
        starts = {b.name: fine_tuning_start(b, self.text, train_text) for b in usable}
        if len(usable) > 1:
            base, scores, scored = choose_base(usable, train_text, starts)
            # as many decimals as tell the best from the others (1.955 against 1.958), to 4
            places = next((p for p in (2, 3) if len({f"{bits:.{p}f}" for bits in
                                                     scores.values()}) == len(scores)), 4)
            others = ", ".join(f"{other} {bits:.{places}f}" for other, bits in scores.items()
                               if other != base.name)
            why = (f", the shipped base that predicts this text best "
                   f"({scores[base.name]:.{places}f} bits/char against {others}, over "
                   f"{scored:,} next-character predictions in windows spread over the part of "
                   "your text it trains on)")
            self.facts["base_scores"] = {"chars": scored, **{
                other: round(bits, 4) for other, bits in scores.items()}}
        else:
            scores = {base.name: bits_per_char(base, train_text, start=starts[base.name])[0]}
        from textgen.generate.sizing import LARGE_FAR_TEXT_CHARS, scratch_worth_trying

        evenly = math.log2(len(set(train_text)))  # bits/char of guessing evenly
        if name == AUTO_BASE and scores[base.name] > evenly + WORSE_THAN_EVEN_BITS:
            notes.add(f"training from scratch: the shipped base that predicts this text best, "
                      f"{base.name}, does so at {scores[base.name]:.2f} bits/char, more than "
                      f"{WORSE_THAN_EVEN_BITS:g} bit worse than guessing evenly among its "
                      f"{len(set(train_text))} characters ({evenly:.2f}); {{base}} "
                      "fine-tunes it anyway", {"base": ("base", base.name)})
            return None
        self.base_bits = scores[base.name]
        self.vocab, new = starts[base.name].vocab, starts[base.name].new
        self.start_weights = starts[base.name].weights
        scratch = written("{base} trains from scratch", {"base": ("base", NO_BASE)})
        if scratch_worth_trying(train_chars, self.base_bits):
            scratch += (f", worth a try on a text this far from the base's books and over "
                        f"{LARGE_FAR_TEXT_CHARS // 1000} kB (on code it did 0.01-0.08 better)")
        notes.add(f"fine-tuning the base {base.name} ({base.shape()}){why}; {scratch}"
                  + (f"; added {describe_new_chars(new)}" if new else ""))
        self.facts["base"] = {**base.record(), "new_chars": new}
        return base

    def _why_not(self, base: Base, given: dict[str, Any]) -> tuple[str, str] | None:
        """Why this run cannot fine-tune `base`, and the rule or advice behind it; None when
        it can."""
        differs = _architecture_differs(base, given)
        if differs:
            named = ", ".join("{" + k + "}" for k in differs)
            return (written(f"{named} {_differ(differs)} from the base {base.name}'s "
                            f"{base.shape()}", differs),
                    written("pass {base} to say so", {"base": ("base", NO_BASE)}))
        coverage = base.coverage(self.text)
        if coverage < MIN_COVERAGE:
            return (f"the base {base.name} knows only {percent_below(coverage)}% of this "
                    "text's characters",
                    f"a base helps where it knows at least {percent_below(MIN_COVERAGE)}%")
        return None

    def config_from_dict(self, saved: dict, source: str) -> GeneratorConfig:
        return GeneratorConfig.from_dict(saved, source)

    def check_resume(self, config: GeneratorConfig, run: RunDir) -> None:
        self.vocab = read_vocabulary(run, config)  # an inconsistent run folder says so first
        saved = run.read_meta()
        # folders both times: a glob or separator that differs was given (left out, they are
        # the run's own: train_generator)
        both = "sources" in saved and "sources" in self.facts
        for key in ("glob", "doc_separator") if both else ():
            if saved.get(key) != self.facts.get(key):
                had = "{saved}" if saved.get(key) is not None else "none"
                raise TextgenError(f"{{given}} differs from the run's ({had}); a resumed run "
                                   "reads its files as it did: leave it out",
                                   {"given": (key, self.facts.get(key)),
                                    "saved": (key, saved.get(key))})
        if saved.get("corpus_sha256") not in (None, self.facts["corpus_sha256"]):
            # The run's progress, its validation figures and its held-out end are the text's.
            raise TextgenError(
                f"{self.corpus}: not the text run {run.name} was trained on ("
                f"{saved.get('corpus')}, {saved.get('corpus_chars', 0):,} characters); "
                "{resume} continues on the same text: give it, or train a new run on this one "
                "that starts from this run's model ({base} {new})",
                {"resume": ("resume", True), "base": ("base", str(run.path)),
                 "new": ("run_name", "NEW")})
        if self.vocab.unknown(self.text):
            raise TextgenError(f"{self.corpus}: has characters the run's vocabulary lacks; "
                               "resume with the corpus the run was trained on")

    def prepare_data(self, config: GeneratorConfig, options: TrainOptions,
                     global_batch: int) -> int:
        self.split = split_by_position(self.vocab.encode(self.text), config.seq_length,
                                       options.val_split)
        self.text = None  # from here on the corpus lives only as ids (1 byte a character)
        return steps_per_epoch(len(self.split.train), config.seq_length, global_batch)

    def holds_out(self) -> bool:
        return self.split is not None and len(self.split.validation) > 0

    def build_model(self, config: GeneratorConfig, notes: Notes) -> keras.Model:
        if config.precision == Precision.auto:
            config.precision = machine_precision(config.precision)  # saved as resolved
            notes.add(f"precision {config.precision}: " + (
                "this CPU computes bfloat16 natively" if config.precision ==
                Precision.mixed_bfloat16 else "no native bfloat16 here") +
                " ({float32} or {bfloat16} to choose)",
                {"float32": ("precision", Precision.float32),
                 "bfloat16": ("precision", Precision.mixed_bfloat16)})
        elif config.precision == Precision.mixed_bfloat16 and (
                machine_precision(Precision.auto) != Precision.mixed_bfloat16):
            notes.add("precision mixed_bfloat16: no native bfloat16 here (no AVX512-BF16, AMX "
                      "or GPU), so it is emulated, most likely slower than {float32}",
                      {"float32": ("precision", Precision.float32)})
        model = build_generator(config)
        if self.base is not None:
            model.set_weights(self.start_weights)
        return model

    def compile_args(self, config: GeneratorConfig) -> dict[str, Any]:
        return {"loss": LOSS}

    def model_memory(self, config: GeneratorConfig) -> tuple[int, tuple[str, ...]]:
        from textgen.generate.sizing import parameters

        weights = parameters(config.layers, config.units, config.vocab_size, config.embed_dim,
                             config.cell)
        return weights * BYTES_PER_PARAMETER, ("units", "layers")

    def example_memory(self, config: GeneratorConfig) -> int:
        """Per character of a window: the one-hot target, logits, softmax and its gradient
        (4 x vocabulary), each layer's gates and states kept for backpropagation and their
        gradients, and the embedding and its gradient; float32."""
        per_char = (4 * config.vocab_size + 2 * config.layers * config.units *
                    (config.cell.gates + 3) + 2 * config.embed_dim)
        return 4 * config.seq_length * per_char

    def load_model(self, path: Path, config: GeneratorConfig, run: RunDir) -> keras.Model:
        loaded = load_keras_model(path, compile=True)
        check_run_weights(config, loaded.get_weights(), path, run)
        return loaded

    def write_files(self, run: RunDir) -> None:
        write_text_atomic(run.vocab, self.vocab.to_json())

    def datasets(self, config: GeneratorConfig, options: TrainOptions, global_batch: int,
                 skip_batches: int) -> Datasets:
        split, self.split = self.split, None  # the datasets hold their own copies as tensors
        train = training_dataset(split.train, config.seq_length, global_batch, len(self.vocab),
                                 seed=options.rng_seed, skip_batches=skip_batches)
        validation = None
        if len(split.validation):
            validation = evaluation_dataset(split.validation, config.seq_length, global_batch,
                                            len(self.vocab), max_windows=MAX_VALIDATION_WINDOWS)
        return Datasets(train, validation)

    def describe_epoch(self, logs: dict[str, float]) -> str:
        text = f"loss {logs['loss']:.4f}"
        if "val_loss" in logs:
            text += (f"  val loss {logs['val_loss']:.4f}  "
                     f"val bits/char {logs['val_bits_per_char']:.3f}")
        return text

    def extra_metrics(self, logs: dict[str, float]) -> dict[str, float]:
        """Cross-entropy in bits per character, from Keras' loss in nats."""
        out = {}
        if "loss" in logs:
            out["bits_per_char"] = logs["loss"] / LN2
        if "val_loss" in logs:
            out["val_bits_per_char"] = logs["val_loss"] / LN2
        return out

    def finish(self, result: TrainResult, config: GeneratorConfig) -> None:
        pass


def _architecture_differs(base: Base, given: dict[str, Any]) -> dict[str, tuple[str, Any]]:
    """The architecture options given that differ from the base's (each as its setting)."""
    return {k: (k, v) for k, v in given.items()
            if k in base.architecture() and v != base.architecture()[k]}


SHAPE_OPTIONS = ("layers", "units", "cell")  # what Base.shape() says: 2x512 lstm


def _shared_architecture_differs(bases: list[Base], given: dict[str, Any]) -> str | None:
    """Where several bases share one architecture that the options given differ from: that,
    said once (not the same clause per base), with the bases' own value of each option beyond
    their shape; else None."""
    architecture = bases[0].architecture()
    differs = _architecture_differs(bases[0], given)
    if len(bases) < 2 or not differs or any(b.architecture() != architecture for b in bases):
        return None
    named = ", ".join("{" + k + "}" for k in differs)
    names = " and ".join(base.name for base in bases)
    theirs = {f"base_{k}": (k, architecture[k]) for k in differs if k not in SHAPE_OPTIONS}
    values = "".join(", {" + key + "}" for key in theirs)
    return written(f"{named} {_differ(differs)} from the bases {names} "
                   f"({bases[0].shape()}{values})", {**differs, **theirs})


def _differ(options: dict) -> str:
    return "differs" if len(options) == 1 else "differ"


def _resumed_text(options: TrainOptions) -> list[Path] | None:
    """The files and folders a run resumed by name was trained on, as its run.json records
    them (`--resume --run-name NAME` and no text: the bundled speech is not its text); None
    where there is no such run, or no record."""
    if not (options.resume and options.run_name):
        return None
    with contextlib.suppress(TextgenError, OSError):
        meta = RunDir(options.checkpoint_dir / options.run_name).read_meta()
        recorded = meta.get("sources") or [meta.get("corpus")]
        if all(isinstance(p, str) and p for p in recorded):
            return [Path(p) for p in recorded]
    return None


def train_generator(corpus: str | Path | list[str | Path] | None = None, *,
                    console: Console | None = None, encoding: str | None = None,
                    decode_errors: str | None = None, glob: str | None = None,
                    doc_separator: str | None = None, preset: str | None = None,
                    **options: Any) -> TrainResult:
    """Train (or resume) a character generator on a text; returns a TrainResult (`run`,
    `summary`, `notes`, `already_finished`).

    `corpus` is a text file, a folder (its text files, recursively) or a list of both; several
    documents are joined with `doc_separator` (default: a blank line). `encoding` and
    `decode_errors` (strict, replace, ignore) say how bytes become text (default: UTF-8,
    strict); `glob` (e.g. `"*.py"`) filters the files of folders. Left out, all four are a
    resumed run's own: it reads its text as it did.
    Keyword options set fields of GeneratorConfig or TrainOptions, e.g. `epochs=5, units=128`;
    the others keep their defaults. A resumed run refuses a given architecture option that
    differs from its saved one. `preset` (e.g. `"cpu-10min"`) fills in the options not given
    for a new run; a resumed run keeps its own. With no corpus, trains on the bundled Othello
    speech, or resumes a run named by `run_name` on its own text.
    """
    console = notes_console(console)
    given, training = split_overrides(options, GeneratorConfig.option_names(), TrainOptions)
    preset_options = preset_values(preset)  # an unknown name, before anything else
    train_options = TrainOptions(**training)
    if corpus is None:
        corpus = _resumed_text(train_options) or [bundled_corpus_path()]
    paths = [as_path(p, "corpus") for p in (corpus if isinstance(corpus, list | tuple)
                                            else [corpus])]
    check_field(bool(paths), "corpus", "is an empty list; give one or more text files or "
                                       "folders (or None for the bundled speech)")
    check_field(doc_separator is None or isinstance(doc_separator, str), "doc_separator",
                f"must be a str, got {doc_separator!r}")
    check_field(glob is None or isinstance(glob, str), "glob",
                f"must be a pattern (a str such as '*.txt') or None, got {glob!r}")
    run_name = generator_run_name(paths)
    reading, meta = resumed_reading(train_options, run_name, encoding, decode_errors)
    if meta:  # a resume reads its files as the run did, where these are left out
        glob = meta.get("glob") if glob is None else glob
        doc_separator = meta.get("doc_separator") if doc_separator is None else doc_separator
    doc_separator = DEFAULT_DOC_SEPARATOR if doc_separator is None else doc_separator
    if preset is not None and meta:  # a resume: the run's own options, from its preset
        check_resumed_preset(preset, meta, str(train_options.checkpoint_dir /
                                               (train_options.run_name or run_name)))
    elif preset is not None:  # a new run: the preset fills in the options not given
        preset_given, preset_training = split_overrides(
            {k: v for k, v in preset_options.items() if k not in options},
            GeneratorConfig.option_names(), TrainOptions)
        given, training = {**preset_given, **given}, {**preset_training, **training}
        train_options = TrainOptions(**training)
    if given.get("base") not in (None, AUTO_BASE, NO_BASE):  # a wrong one, before TensorFlow
        found = locate_base(given["base"], train_options.checkpoint_dir)
        if isinstance(found, ModelChoice):  # a run, as run.json names it: its resolved folder
            given["base"] = str(found.run.path.resolve())
            target = train_options.checkpoint_dir / (train_options.run_name or run_name)
            if train_options.overwrite and found.run.path.resolve() == target.resolve():
                raise FieldError("base", f"{given['base']} is the run {{overwrite}} replaces: "
                                 "its model would be gone from under the new one; give the "
                                 "new run another {run_name}",
                                 fixes={"overwrite": ("overwrite", True),
                                        "run_name": ("run_name", FIELD)})
    recipe = GeneratorRecipe(paths, reading, glob, doc_separator)
    if preset is not None and not meta:
        recipe.facts["preset"] = preset  # a resume checks it
    return train_run(recipe, train_options, given, set(training), console)

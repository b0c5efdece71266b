"""Generate mode's commands: `textgen train`, `textgen sample`, `textgen evaluate`."""

import functools
import io
import json
import sys
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from textgen.cli.app import app, err, report_training, run_training, using_run
from textgen.cli.options import (
    DATA_PANEL,
    DEFAULT_DIR,
    LR_DECAY_HELP,
    MODEL_PANEL,
    TRAINING_PANEL,
    CheckpointDir,
    CheckpointOption,
    DecodeErrorsOption,
    EncodingOption,
    JsonOption,
    LRScheduleOption,
    ModelOption,
    TrainingArgs,
    decoding,
    given,
    help_panels,
    path_given,
    with_training_options,
)
from textgen.cli.output import json_text, shown
from textgen.console import stdout_console
from textgen.errors import INTERRUPTED_EXIT_CODE, TextgenError, option_flag
from textgen.generate.config import Cell, GeneratorConfig, Precision
from textgen.generate.presets import preset_summary
from textgen.generate.sampling import DEFAULT_SAMPLING, SAMPLE_CHECKPOINT, SamplingSettings
from textgen.generate.sizing import BUDGET_WINDOW, FINE_TUNING_EPOCHS, FINE_TUNING_PATIENCE
from textgen.modes import Mode, mode_object
from textgen.reading import unescape
from textgen.runs import Checkpoint, refuse_a_runs_own_file, write_output
from textgen.training.options import TrainOptions

# Options the sizing rule chooses when they are not given (textgen.generate.sizing).
SIZED = "chosen for the text and --max-time"
UNKNOWN_SHARE_NOTED = 0.1  # evaluate notes a text this much outside the vocabulary
LOSS_GUIDE = ("bits/char guide for English: ~4.7 = guessing letters, 3 = letter "
              "frequencies, 2 = words forming, < 1.6 = good prose. Tiny texts memorise: "
              "their validation figure stays high.")


@app.command()
@with_training_options(TrainOptions, {
    "epochs": f"{TrainOptions.epochs}; fine-tuning: chosen for the text, at most "
              f"{FINE_TUNING_EPOCHS}; with --max-time: none",
    "patience": f"off; fine-tuning: {FINE_TUNING_PATIENCE}"})
def train(
    ctx: typer.Context,
    paths: Annotated[list[Path] | None, typer.Argument(
        parser=path_given,
        help="Text files and/or folders to train on (folders: their text files, recursively, "
             "in sorted order; hidden and binary files skipped). Default: the bundled Othello "
             "speech; with --resume --run-name, the run's own text.",
        show_default=False)] = None,
    seq_length: Annotated[int, typer.Option(
        help="Characters per training window.",
        show_default=f"{GeneratorConfig.seq_length}; {BUDGET_WINDOW} with --max-time")
    ] = GeneratorConfig.seq_length,
    layers: Annotated[int, typer.Option(help="Stacked recurrent layers.", show_default=SIZED)
                      ] = GeneratorConfig.layers,
    units: Annotated[int, typer.Option(help="Units per recurrent layer.", show_default=SIZED)
                     ] = GeneratorConfig.units,
    embed_dim: Annotated[int, typer.Option(help="Size of the character embedding.")
                         ] = GeneratorConfig.embed_dim,
    dropout: Annotated[float, typer.Option(help="Dropout after each recurrent layer.",
                                           show_default=SIZED)] = GeneratorConfig.dropout,
    cell: Annotated[Cell, typer.Option(help="Recurrent cell.")] = GeneratorConfig.cell,
    layer_norm: Annotated[bool, typer.Option(
        help="Layer normalisation of each recurrent layer's output.")
    ] = GeneratorConfig.layer_norm,
    learning_rate: Annotated[float, typer.Option(help="Adam's peak learning rate.",
                                                 show_default=SIZED)
                             ] = GeneratorConfig.learning_rate,
    lr_schedule: LRScheduleOption = GeneratorConfig.lr_schedule,
    lr_decay: Annotated[float, typer.Option(help=LR_DECAY_HELP)] = GeneratorConfig.lr_decay,
    precision: Annotated[Precision, typer.Option(
        help="float32, or mixed_bfloat16 (faster on CPUs with AVX512-BF16/AMX).")
    ] = GeneratorConfig.precision,
    base: Annotated[str, typer.Option(
        help="The pretrained model to fine-tune: auto (the shipped base that predicts the "
             "text best), a base shipped with textgen (english: books; verse: then their "
             "drama and poetry), an earlier generator run (name or folder), or none to train "
             "from random weights. Architecture options that differ from the base's train "
             "from scratch.")
    ] = GeneratorConfig.base,
    glob: Annotated[str | None, typer.Option(
        help="Only files of folders whose name matches, e.g. '*.py'.")] = None,
    doc_separator: Annotated[str | None, typer.Option(
        help="Text put between documents (each without its trailing line breaks); \\n and "
             "\\t are understood. Default: a blank line (a resumed run: its own).",
        show_default=False)] = None,
    encoding: EncodingOption = None,
    decode_errors: DecodeErrorsOption = None,
    preset: Annotated[str | None, typer.Option(
        help="Named option set for a new run; options you give explicitly win (a resumed run "
             "keeps its own). cpu-10min: the best model "
             "we measured from scratch in 10 minutes on a 2-core CPU "
             f"({preset_summary('cpu-10min')}).")] = None,
    *,
    training: TrainingArgs,
) -> None:
    """Train a character model (stacked LSTM, GRU or SimpleRNN; by default fine-tuned from a
    shipped base) on a text (a file, or the files of folders) and save it under checkpoints/.

    Model options you leave out are chosen for the text's size and, with --max-time, for the
    budget on this machine (with --max-time also --batch-size and --steps-per-epoch); the
    choice is printed and saved in run.json."""
    options = {**training.given, **given(
        ctx, seq_length=seq_length, layers=layers, units=units, embed_dim=embed_dim,
        dropout=dropout, cell=cell, layer_norm=layer_norm, learning_rate=learning_rate,
        lr_schedule=lr_schedule, lr_decay=lr_decay, precision=precision, base=base)}

    def job():
        from textgen.generate.train import train_generator

        # Left out, they are a resumed run's own (train_generator), else the defaults.
        return train_generator(paths or None, console=err, encoding=encoding,
                               decode_errors=decode_errors, glob=glob,
                               doc_separator=(unescape(doc_separator)
                                              if doc_separator is not None else None),
                               preset=preset,
                               **options)

    result = run_training(job, overwrite=bool(options.get("overwrite")))
    if report_training(result, mode_object(Mode.generate).figure) and _latin_script(
            result.run):
        err.print(Text(LOSS_GUIDE, style="dim"))


def _latin_script(run) -> bool:
    """Whether most of the letters of the run's text are Latin ones (English, code, French...):
    the guide's figures are English's, and Chinese or Greek text reads otherwise. (Not the
    vocabulary's letters: a fine-tuned run's holds the base's Greek and accented ones.)"""
    chars = run.read_meta().get("text_runs")
    if not isinstance(chars, dict):  # a run from before textgen recorded them
        chars = json.loads(run.vocab.read_text(encoding="utf-8"))
    letters = [c for c in chars if c.isalpha()]
    latin = sum(unicodedata.name(c, "").startswith("LATIN") for c in letters)  # é, ß too
    return not letters or latin >= len(letters) / 2


help_panels(train, {
    **dict.fromkeys(("seq_length", "layers", "units", "embed_dim", "dropout", "cell",
                     "layer_norm", "precision", "preset"), MODEL_PANEL),
    **dict.fromkeys(("learning_rate", "lr_schedule", "lr_decay"), TRAINING_PANEL),
    **dict.fromkeys(("glob", "doc_separator", "encoding", "decode_errors"), DATA_PANEL)})


@app.command()
def sample(
    seed: Annotated[str | None, typer.Option(
        help="Text to start from; it is printed first. Default: a newline.")] = None,
    temperature: Annotated[float, typer.Option(
        help="Randomness: 0 = always the likeliest character, 1 = the model's own odds.")
    ] = DEFAULT_SAMPLING.temperature,
    length: Annotated[int, typer.Option(help="Characters to generate after the seed.")
                      ] = DEFAULT_SAMPLING.length,
    top_k: Annotated[int | None, typer.Option(help="Sample only from the k likeliest.")
                     ] = DEFAULT_SAMPLING.top_k,
    top_p: Annotated[float | None, typer.Option(
        help="Sample only from the smallest set with this much probability (0, 1].")
    ] = DEFAULT_SAMPLING.top_p,
    num_samples: Annotated[int, typer.Option(help="How many samples to print.")] = 1,
    rng_seed: Annotated[int | None, typer.Option(
        help="Seed, any whole number (taken modulo 2**64): the same seed gives the same "
             "text.")] = DEFAULT_SAMPLING.rng_seed,
    skip_unknown: Annotated[bool, typer.Option(
        help="Drop seed characters the model never saw instead of failing.")
    ] = DEFAULT_SAMPLING.skip_unknown,
    text_limits: Annotated[bool, typer.Option(
        help="Write only the training text's characters, none more times in a row than the "
             "text has it, and start lines as its lines start (a fine-tuned model's base "
             "knows more: runs of spaces, digits, indented lines...).")
    ] = DEFAULT_SAMPLING.text_limits,
    stop: Annotated[list[str] | None, typer.Option(
        metavar="<str>", help="End a sample right after it generates this text "
        "(repeatable; it may begin in the seed, but a sample never ends empty); \\n and "
        "\\t are understood, as for --doc-separator. --length stays the upper bound.")
    ] = None,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", parser=path_given,
        help="Write the samples (or the JSON) to this file, atomically, "
        "instead of stdout.")] = None,
    checkpoint: CheckpointOption = SAMPLE_CHECKPOINT,
    model: ModelOption = None,
    checkpoint_dir: CheckpointDir = DEFAULT_DIR,
    as_json: JsonOption = False,
    interactive: Annotated[bool, typer.Option(
        "--interactive", "-i", help="Load the model once, then sample from seeds typed at "
        "the prompt until EOF (Ctrl-D); :temperature 0.5 style commands change settings."
    )] = False,
) -> None:
    """Generate text from a trained model, starting with --seed."""
    from textgen.generate.sampling import load_sampler
    from textgen.reading import argument_text
    from textgen.runs import find_model

    seed = None if seed is None else argument_text(seed, "--seed")
    settings = SamplingSettings(temperature, length, top_k, top_p, rng_seed, skip_unknown,
                                tuple(unescape(argument_text(text, "--stop"))
                                      for text in stop or ()), text_limits)
    if num_samples < 1:
        raise TextgenError(f"--num-samples must be >= 1, got {num_samples}")
    if output is not None and str(output) == "-":  # stdout, as for `plot -o -`
        output = None
    if interactive:
        _check_interactive_options(seed=seed is not None, num_samples=num_samples != 1,
                                   output=output is not None, json=as_json)
        if sys.stdin is None or sys.stdin.closed:  # said before the model loads
            raise TextgenError("-i reads seeds from stdin, but stdin is closed; run it in a "
                               "terminal, or pipe seeds to it")
    if output is not None and output.is_dir():
        raise TextgenError(f"--output {output}: is a folder; give a file's name in it "
                           f"(e.g. {output / 'sample.txt'})")
    if output is not None:  # said before the sampling, not after it
        refuse_a_runs_own_file(output)
    if output is not None and not output.parent.is_dir():
        raise TextgenError(f"--output {output}: the folder {output.parent} does not exist; "
                           "create it or write elsewhere")
    chosen = find_model(model, checkpoint_dir, Mode.generate, checkpoint)
    with using_run(chosen, model is None):
        sampler = load_sampler(chosen.file)
        sampler.check_fits(num_samples, length, "num_samples")  # before any output
        if interactive:
            _interactive_session(sampler, settings)
            return
        _sample(sampler, seed, settings, num_samples, output, as_json)


def _check_interactive_options(**given: bool) -> None:
    """-i reads its seeds at the prompt and writes each sample to stdout as it comes: the
    options of a one-off sample have nothing to act on there."""
    flags = [{"output": "-o", "json": "--json"}.get(name, option_flag(name))
             for name, on in given.items() if on]
    if flags:
        raise TextgenError(f"{', '.join(flags)} cannot be used with -i, which reads seeds at "
                           "its prompt and writes each sample to stdout; leave "
                           f"{'it' if len(flags) == 1 else 'them'} out")


def _sample(sampler, seed: str | None, settings: SamplingSettings, num_samples: int,
            output: Path | None, as_json: bool) -> None:
    to_file = io.StringIO() if output is not None else None
    write = to_file.write if to_file is not None else _stream
    try:
        results = _generate_together(sampler, seed, settings, num_samples,
                                     None if as_json else write)
        if as_json:
            write(json_text({"run": str(sampler.run.path),
                              "samples": [r.text for r in results],
                              "finish_reasons": [r.finish_reason for r in results]}) + "\n")
        if to_file is not None:
            write_output(output, to_file.getvalue())
        sys.stdout.flush()
    except KeyboardInterrupt:
        raise typer.Exit(INTERRUPTED_EXIT_CODE) from None


def _generate_together(sampler, seed: str | None, settings: SamplingSettings, count: int,
                       write: Callable[[str], None] | None) -> list:
    """`count` samples generated together (Sampler.sample_many; sample i uses --rng-seed + i),
    written one after the other (_InOrder)."""
    seeded = settings.numbered(count)
    order = _InOrder(count, write) if write is not None else None
    return sampler.sample_many([seed] * count, seeded,
                               order.writers() if order else None,
                               order.ended if order else None)


class _InOrder:
    """Writes samples one after the other while they are generated together: the first as it
    comes, each next one from the moment the ones before it have ended (until then its text
    waits). Each ends with a line break, and a blank line separates them."""

    def __init__(self, count: int, write: Callable[[str], None]):
        self.count, self.write, self.current = count, write, 0
        self.pending: list[list[str]] = [[] for _ in range(count)]
        self.done = [False] * count
        self.last = [""] * count  # each sample's last character, for its closing line break

    def writers(self) -> list[Callable[[str], None]]:
        return [functools.partial(self._text, i) for i in range(self.count)]

    def _text(self, i: int, text: str) -> None:
        if text:
            self.last[i] = text[-1]
        self.write(text) if i == self.current else self.pending[i].append(text)

    def ended(self, i: int) -> None:
        self.done[i] = True
        while self.current < self.count and self.done[self.current]:
            finished = self.current
            self.write(("" if self.last[finished] == "\n" else "\n") +
                       ("\n" if finished + 1 < self.count else ""))
            self.current += 1
            if self.current < self.count:
                self.write("".join(self.pending[self.current]))
                self.pending[self.current].clear()


def _stream(text: str) -> None:
    """Text as it is generated: at once on a terminal, a line at a time into a pipe or file."""
    sys.stdout.write(text)
    if sys.stdout.isatty() or "\n" in text:
        sys.stdout.flush()


def _interactive_session(sampler, settings: SamplingSettings) -> None:
    from textgen.generate.interactive import HELP, run_session

    on_terminal = sys.stdin.isatty()
    if on_terminal:
        err.print(f"type a seed and Enter to sample; Ctrl-C stops a sample, Ctrl-D quits\n{HELP}",
                  markup=False)

    def write(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    def prompt() -> None:
        if on_terminal:
            err.print("seed> ", end="", markup=False)

    try:
        run_session(sampler, settings, iter(sys.stdin.readline, ""), write,
                    lambda message: err.print(message, markup=False, soft_wrap=True), prompt,
                    interruptible=on_terminal)
    except KeyboardInterrupt:
        raise typer.Exit(INTERRUPTED_EXIT_CODE) from None


@app.command()
def evaluate(
    file: Annotated[Path, typer.Argument(
        parser=path_given, help="Text file to score.")],
    model: ModelOption = None,
    checkpoint: CheckpointOption = Checkpoint.best,
    checkpoint_dir: CheckpointDir = DEFAULT_DIR,
    encoding: EncodingOption = None,
    decode_errors: DecodeErrorsOption = None,
    window: Annotated[int | None, typer.Option(
        help="Characters per independent window (each starts from a zero state). Default: "
             "the run's --seq-length. Give the same window to compare runs trained on "
             "different window lengths.", show_default=False)] = None,
    as_json: JsonOption = False,
) -> None:
    """Score a text with a trained model: cross-entropy in bits (and nats) per character, over
    independent windows (of the run's --seq-length, or --window) and with the state carried
    through the whole text."""
    from textgen.generate.evaluate import evaluate_text
    from textgen.runs import find_model

    if window is not None and window < 1:
        raise TextgenError(f"--window must be >= 1, got {window}")
    chosen = find_model(model, checkpoint_dir, Mode.generate, checkpoint)
    with using_run(chosen, model is None):
        scores = evaluate_text(file, chosen, window=window, decoding=decoding(
            encoding, decode_errors, chosen.meta.get("decoding")))
    if scores["unknown_chars"] > UNKNOWN_SHARE_NOTED * scores["chars"]:
        err.print(f"note: {scores['unknown_chars']:,} of the {scores['chars']:,} characters are "
                  "outside the model's vocabulary and were left out: the figures are over the "
                  "rest only, not the text", markup=False)
    if as_json:
        print(json_text(scores))
        return
    windows = f"windows of {window}" if window else "windows of --seq-length"
    table = Table(title=shown(f"{file} scored by {chosen.run.name}"), show_header=False)
    table.add_row(f"bits per character ({windows})", f"{scores['bits_per_char']:.4f}")
    table.add_row(f"nats per character ({windows})", f"{scores['nats_per_char']:.4f}")
    table.add_row("bits per character (state carried through)",
                  f"{scores['bits_per_char_stateful']:.4f}")
    table.add_row("characters", str(scores["chars"]))
    table.add_row("outside the vocabulary (skipped)", str(scores["unknown_chars"]))
    stdout_console().print(table)

"""Ship a pretrained run as textgen's English base: `textgen/bases/<name>/`.

The base is an ordinary `textgen train` run on the public-domain books of
`shared/datasets/english-pd.tar.gz` (the command is in docs/base.md). This script writes its
best model as float16 weights with a base.json that records how it was trained, what it
scores on the held-out books (the run's validation split: the end of the sorted folder), and
a greedy continuation that tests/test_base.py checks after loading.

    python -m benchmarks.base_export checkpoints/base-en --command "textgen train ..."
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from benchmarks.common import summary

BOOKS = ("198 public-domain English books (shared/datasets/english-pd.tar.gz), joined in "
         "sorted file order; the last 2% held out")
GREEDY_PROMPT = "The Duke of Venice said that "
GREEDY_CHARS = 30


def greedy_continuation(config, vocab, weights, prompt: str, chars: int) -> str:
    """The likeliest next character, `chars` times, after `prompt` (NumPy, float32)."""
    from textgen.generate.stepper import NumpyStepper

    stepper = NumpyStepper(config, weights)
    probs = None
    for i in vocab.encode(prompt):
        probs = stepper.step(int(i))
    out = []
    for _ in range(chars):
        best = int(np.argmax(probs))
        out.append(vocab.chars[best])
        probs = stepper.step(best)
    return "".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=summary(__doc__))
    parser.add_argument("run", type=Path, help="the pretraining run folder")
    parser.add_argument("--name", default="english")
    parser.add_argument("--command", required=True, help="the train command, for the record")
    parser.add_argument("--trained-on", default=BOOKS,
                        help="what the run trained on and held out, for the record")
    parser.add_argument("--steps", type=int,
                        help="steps trained in all, the base's too for a run fine-tuned from "
                             "one (default: epochs done x steps per epoch; a budget cuts the "
                             "last one)")
    args = parser.parse_args()

    from textgen.generate.base import _load_shipped, export_base
    from textgen.runs import RunDir

    run = RunDir(args.run)
    meta = run.read_meta()
    training = meta["training"]
    steps = args.steps or training["epochs_done"] * training["steps_per_epoch"]
    chars_seen = steps * training["batch_size"] * meta["config"]["seq_length"]
    best = training.get("best_logs", {})
    out = Path(__file__).resolve().parents[1] / "textgen" / "bases" / args.name
    about = {
        "trained_on": args.trained_on,
        "command": args.command,
        "epochs": training["epochs_done"],
        "steps": steps,
        "characters_seen": chars_seen,
        "held_out_bits_per_char": round(best.get("val_loss", math.nan) / math.log(2), 4),
        "textgen_version": meta.get("textgen_version"),
    }
    export_base(run.path, out, about)
    base = _load_shipped(args.name, out)
    about["greedy_check"] = {"prompt": GREEDY_PROMPT, "continuation": greedy_continuation(
        base.config, base.vocab, base.weights, GREEDY_PROMPT, GREEDY_CHARS)}
    description = json.loads((out / "base.json").read_text(encoding="utf-8"))
    description.update(about)
    (out / "base.json").write_text(json.dumps(description, indent=2, ensure_ascii=False) + "\n",
                                   encoding="utf-8")
    size = sum(p.stat().st_size for p in out.iterdir())
    print(json.dumps({**about, "folder": str(out), "bytes": size}, indent=2,
                     ensure_ascii=False))


if __name__ == "__main__":
    main()

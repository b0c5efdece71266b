"""The text limits: what `textgen sample` keeps to by default (`text_limits`), so that a
fine-tuned model's samples look like the user's text, not its base's books.

A sample never holds a character the training text lacks, never repeats a character more
times in a row than the text does, and starts each line with a character some line of the text
starts with. Its lines end near the text's longest line: past that length a space becomes a
line break (the word in progress ends the line), and a line a word longer than that (the
text's longest word; none in a text without spaces) ends at once. Hard-wrapped prose is
sampled hard-wrapped, where a fine-tuned model would write its base's paragraph-long lines.
A sample's stop texts count as text (`with_stops`): a user who stops at "\n\n" gets a blank
line from a text that has none.
A row left with nothing allowed (the model sure of a ruled-out character) keeps its own
probabilities. `Sampler` applies the rules to a batch, `Sampler._sample_alone` inline on one
row, and the export in TensorFlow; tests hold the three to the same text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from textgen.generate.data import Vocabulary, line_lengths, longest_runs

NEWLINE = "\n"
SPACE = " "
# Longest lines and words past this are no text's (a run.json edited by hand): no line rule.
# Far past any text textgen reads, and their sum stays an int64 in the export.
MAX_LINE = 2**40


@dataclass(frozen=True)
class TextLimits:
    """The limits over a vocabulary's ids."""

    # per id, the most times in a row the training text has it (0: never in the text)
    longest_runs: np.ndarray
    # per id, whether a line of the text starts with it; None: no rule (a text without line
    # breaks, or a run trained before textgen recorded them)
    line_starts: np.ndarray | None = None
    newline: int = -1  # the id of "\n"; -1 where the vocabulary has none
    # the text's longest line and longest word; 0: no line rule (as line_starts None)
    longest_line: int = 0
    longest_word: int = 0
    space: int = -1  # the id of " "; -1 where the text has none (only the word's end rule)

    @property
    def line_end(self) -> int:
        """The column at which a line ends at once (columns count from 0 after a break)."""
        return self.longest_line + self.longest_word

    @classmethod
    def of_run(cls, vocab: Vocabulary, meta: dict[str, Any]) -> TextLimits | None:
        """The limits run.json records (`text_runs`, `line_starts`); None for a run trained
        before textgen recorded them."""
        text_runs = meta.get("text_runs")
        if not isinstance(text_runs, dict):
            return None
        runs = np.array([int(text_runs.get(c, 0)) for c in vocab.chars], dtype=np.int64)
        starts = meta.get("line_starts")
        if not isinstance(starts, str) or NEWLINE not in vocab.chars:
            return cls(runs)
        line_starts = np.array([c in starts for c in vocab.chars])
        line, word = meta.get("longest_line"), meta.get("longest_word")
        # recorded since 2026-12-07; a value no text gives (run.json edited) means no rule
        if not (isinstance(line, int) and isinstance(word, int) and 1 <= line < MAX_LINE
                and 0 <= word < MAX_LINE):
            line = word = 0
        space = vocab.index[SPACE] if text_runs.get(SPACE, 0) > 0 else -1
        if space < 0:  # no word to finish (Chinese, say): a line ends at the longest
            word = 0
        return cls(runs, line_starts, vocab.index[NEWLINE], line, word, space)

    def with_stops(self, stops: Sequence[str], vocab: Vocabulary) -> TextLimits:
        """These limits widened to what the stop texts hold (their characters, runs and line
        starts), so that no stop text is ruled out."""
        ids = vocab.index
        runs, starts = self.longest_runs.copy(), self.line_starts
        starts = None if starts is None else starts.copy()
        line, word = self.longest_line, self.longest_word
        for stop in stops:
            for char, run in longest_runs(stop).items():
                if char in ids:
                    runs[ids[char]] = max(runs[ids[char]], run)
            for before, char in zip(stop, stop[1:], strict=False):
                if before == NEWLINE and starts is not None and char in ids:
                    starts[ids[char]] = True
            lengths = line_lengths(NEWLINE + stop + NEWLINE)
            if self.longest_line and lengths:
                line = max(line, lengths["longest_line"])
                if self.space >= 0:  # a text without spaces has no word to finish
                    word = max(word, lengths["longest_word"])
        widened = replace(self, longest_runs=runs, line_starts=starts, longest_line=line,
                          longest_word=word)
        return self if widened.key() == self.key() else widened

    def key(self) -> bytes:
        """The limits' content: equal keys, equal limits."""
        starts = b"" if self.line_starts is None else self.line_starts.tobytes()
        lines = f"|{self.longest_line}|{self.longest_word}".encode()
        return self.longest_runs.tobytes() + b"|" + starts + lines

    def allowed_after(self, last: int) -> np.ndarray:
        """Per id, whether it may follow `last` before the run rule: a character of the
        text, and after a line break one that starts a line of it."""
        allowed = self.longest_runs > 0
        if self.line_starts is not None and last == self.newline:
            allowed = allowed & self.line_starts
        return allowed

    def limited(self, probs: np.ndarray, lasts: Sequence[int], repeats: Sequence[int],
                columns: Sequence[int]) -> np.ndarray:
        """Rows of next-character probabilities without what the limits rule out after each
        row's last id, repeated `repeats` times at the end of its text, `columns` characters
        into its line."""
        limited = probs * (self.longest_runs > 0)
        last = np.asarray(lasts, dtype=np.intp)
        if self.line_starts is not None:
            limited[last == self.newline] *= self.line_starts
        rows = np.flatnonzero(np.asarray(repeats) >= self.longest_runs[last])
        limited[rows, last[rows]] = 0.0
        column = np.asarray(columns)
        if self.longest_line and column.max(initial=0) >= self.longest_line:
            if self.space >= 0:  # past the longest line, the word in progress ends it
                past = np.flatnonzero(column >= self.longest_line)
                limited[past, self.newline] += limited[past, self.space]
                limited[past, self.space] = 0.0
            ended = np.flatnonzero(column >= self.line_end)
            limited[ended] = 0.0
            limited[ended, self.newline] = 1.0
        empty = limited.max(axis=1) <= 0
        limited[empty] = probs[empty]
        return limited

"""A classifier's metrics on labelled examples: accuracy, per-class precision, recall and F1,
and the confusion matrix."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


def commonest_class(support: np.ndarray, class_names: list[str]) -> tuple[str, float]:
    """The class with the most examples (`support`: a count per class; the first on a tie)
    and its share: the accuracy of always answering it, which a model must beat to have
    learnt anything."""
    total = support.sum()
    top = int(np.argmax(support))
    return class_names[top], float(support[top] / total) if total else 0.0


@dataclass
class Metrics:
    """Accuracy, per-class precision/recall/F1/support and the confusion matrix."""

    class_names: list[str]
    confusion: np.ndarray  # rows: true class, columns: predicted class
    # examples without a word the model knows (their label is the model's prior); None where
    # the vocabulary is inside the graph and not counted
    without_known_words: int | None = None
    # examples of classes the model does not know, left out of the figures: label -> count
    left_out: dict[str, int] = field(default_factory=dict)
    # what the examples' source holds and was not read (Examples.unread_note), or None
    unread_note: str | None = None
    # the examples are the run's training data (its digest), validation split and all
    training_data: bool = False

    @classmethod
    def from_labels(cls, y_true: np.ndarray, y_pred: np.ndarray, class_names: list[str]
                    ) -> Metrics:
        n = len(class_names)
        confusion = np.zeros((n, n), dtype=np.int64)
        np.add.at(confusion, (np.asarray(y_true), np.asarray(y_pred)), 1)
        return cls(list(class_names), confusion)

    @property
    def accuracy(self) -> float:
        total = self.confusion.sum()
        return float(np.trace(self.confusion) / total) if total else 0.0

    @property
    def commonest(self) -> tuple[str, float]:
        """commonest_class of the examples (the confusion matrix's rows)."""
        return commonest_class(self.confusion.sum(axis=1), self.class_names)

    def per_class(self) -> dict[str, dict[str, float]]:
        out = {}
        for i, name in enumerate(self.class_names):
            tp = self.confusion[i, i]
            predicted, actual = self.confusion[:, i].sum(), self.confusion[i, :].sum()
            precision = tp / predicted if predicted else 0.0
            recall = tp / actual if actual else 0.0
            f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
            out[name] = {"precision": float(precision), "recall": float(recall),
                         "f1": float(f1), "support": int(actual)}
        return out

    @property
    def macro_f1(self) -> float:
        """F1 averaged over the classes, each weighing the same (as scikit-learn's 'macro'):
        over the classes the examples hold or the model predicted, so evaluating on a part of
        the classes does not count the others as 0."""
        seen = (self.confusion.sum(axis=0) + self.confusion.sum(axis=1)) > 0
        scores = [c["f1"] for c, s in zip(self.per_class().values(), seen, strict=True) if s]
        return float(np.mean(scores)) if scores else 0.0

    def most_confused(self, count: int = 5) -> list[dict]:
        """The largest off-diagonal cells: which true class is most often taken for which."""
        off = self.confusion.copy()
        np.fill_diagonal(off, 0)
        cells = sorted(((int(off[i, j]), i, j) for i, j in zip(*np.nonzero(off), strict=True)),
                       key=lambda cell: (-cell[0], cell[1], cell[2]))
        return [{"true": self.class_names[i], "predicted": self.class_names[j], "count": n,
                 "of": int(self.confusion[i].sum())} for n, i, j in cells[:count]]

    def left_out_note(self, shown: Callable[[str], str] = str) -> str | None:
        """What the figures leave out: the examples of classes the model does not know, the
        most common five named (each name written by `shown`); None when none was."""
        if not self.left_out:
            return None
        counts = ", ".join(f"{shown(name)} ({count})" for name, count in
                           sorted(self.left_out.items(), key=lambda item: -item[1])[:5])
        total = sum(self.left_out.values())
        return (f"{total} example{'s' if total != 1 else ''} of classes the model does not "
                f"know {'were' if total != 1 else 'was'} left out: {counts}"
                f"{', ...' if len(self.left_out) > 5 else ''}; the figures are over the "
                f"model's classes ({', '.join(map(shown, self.class_names))}) only")

    def to_dict(self) -> dict:
        commonest, share = self.commonest
        return {"accuracy": self.accuracy, "macro_f1": self.macro_f1,
                "commonest_class": commonest, "commonest_share": share,
                "examples": int(self.confusion.sum()), "classes": self.per_class(),
                "class_names": self.class_names, "confusion_matrix": self.confusion.tolist(),
                "most_confused": self.most_confused(),
                "without_known_words": self.without_known_words, "left_out": self.left_out,
                "training_data": self.training_data}

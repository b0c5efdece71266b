"""A classifier's metrics on labelled examples: accuracy, per-class precision, recall and F1,
and the confusion matrix."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Metrics:
    """Accuracy, per-class precision/recall/F1/support and the confusion matrix."""

    class_names: list[str]
    confusion: np.ndarray  # rows: true class, columns: predicted class

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

    def to_dict(self) -> dict:
        return {"accuracy": self.accuracy, "examples": int(self.confusion.sum()),
                "classes": self.per_class(), "class_names": self.class_names,
                "confusion_matrix": self.confusion.tolist()}

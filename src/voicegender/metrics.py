"""Classification metrics for two classes, female as the positive class (index 0, as in the seed).

Arrays in, numbers out; no torch, no I/O. ``y_true``/``y_pred`` hold class indices (0 = female, 1 = male) and
``p_female`` the predicted probability of class 0.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

POSITIVE = 0  # female is the positive class (the seed's F1)


@dataclass(frozen=True)
class Metrics:
    """Scores of one set of predictions. ``confusion[i][j]`` = clips of true class i predicted as j."""

    n: int  # clips scored
    accuracy: float
    error_rate: float  # 1 - accuracy (the seed's headline number)
    balanced_accuracy: float  # mean of per-class recalls (robust to the 48 M : 12 F imbalance)
    precision_female: float
    recall_female: float
    f1_female: float  # F1 with female as positive (the seed's F1)
    roc_auc: float  # area under the ROC of p_female for female; NaN when only one class is present
    confusion: list[list[int]]

    def to_dict(self) -> dict:
        return asdict(self)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int = 2) -> np.ndarray:
    """(n_classes, n_classes) int counts, rows = true class, columns = predicted class."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return cm


def _ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def precision_recall_f1(cm: np.ndarray, positive: int = POSITIVE) -> tuple[float, float, float]:
    """Precision, recall and F1 of class ``positive`` from a confusion matrix (NaN where undefined)."""
    tp = cm[positive, positive]
    precision = _ratio(tp, cm[:, positive].sum())
    recall = _ratio(tp, cm[positive, :].sum())
    f1 = _ratio(2 * tp, cm[:, positive].sum() + cm[positive, :].sum())
    return float(precision), float(recall), float(f1)


def balanced_accuracy(cm: np.ndarray) -> float:
    """Mean recall over the classes that occur (sklearn's definition)."""
    support = cm.sum(axis=1)
    recalls = [cm[i, i] / support[i] for i in range(len(cm)) if support[i]]
    return float(np.mean(recalls)) if recalls else float("nan")


def roc_auc(is_positive: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve: P(score of a random positive > that of a random negative), ties count ½.

    Computed from ranks (Mann-Whitney U) with average ranks for ties; NaN if one class is absent.
    """
    is_positive = np.asarray(is_positive, dtype=bool)
    n_pos, n_neg = int(is_positive.sum()), int((~is_positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    score = np.asarray(score, dtype=np.float64)
    order = np.argsort(score, kind="mergesort")
    sorted_scores = score[order]
    ranks = np.empty(len(score), dtype=np.float64)
    # average 1-based ranks over runs of equal scores
    boundaries = np.flatnonzero(np.diff(sorted_scores)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [len(score)]])
    for s, e in zip(starts, ends, strict=True):
        ranks[order[s:e]] = (s + 1 + e) / 2
    u = ranks[is_positive].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def roc_curve(is_positive: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates at every distinct threshold (from (0, 0) to (1, 1)), for plotting."""
    is_positive = np.asarray(is_positive, dtype=bool)
    order = np.argsort(-np.asarray(score, dtype=np.float64), kind="mergesort")
    tp = np.concatenate([[0], np.cumsum(is_positive[order])])
    fp = np.concatenate([[0], np.cumsum(~is_positive[order])])
    return fp / max(fp[-1], 1), tp / max(tp[-1], 1)


def compute_metrics(y_true: np.ndarray, p_female: np.ndarray, threshold: float = 0.5) -> Metrics:
    """All metrics of predictions ``p_female`` for labels ``y_true``; predicted female when p_female ≥ threshold
    (0.5 = the argmax for two classes, ties going to female)."""
    y_true = np.asarray(y_true, dtype=np.int64)
    p_female = np.asarray(p_female, dtype=np.float64)
    if y_true.shape != p_female.shape:
        raise ValueError(f"{y_true.shape} labels vs {p_female.shape} scores")
    y_pred = np.where(p_female >= threshold, POSITIVE, 1 - POSITIVE)
    cm = confusion_matrix(y_true, y_pred)
    n = int(len(y_true))
    accuracy = float(np.trace(cm) / n) if n else float("nan")
    precision, recall, f1 = precision_recall_f1(cm)
    return Metrics(n=n, accuracy=accuracy, error_rate=1 - accuracy, balanced_accuracy=balanced_accuracy(cm),
                   precision_female=precision, recall_female=recall, f1_female=f1,
                   roc_auc=roc_auc(y_true == POSITIVE, p_female), confusion=cm.tolist())


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0 for a single value), ignoring NaN."""
    vals = [v for v in values if not (isinstance(v, float) and math.isnan(v))]
    if not vals:
        return float("nan"), float("nan")
    return float(np.mean(vals)), float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0

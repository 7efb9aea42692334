import math

import numpy as np
import pytest

from voicegender.metrics import (
    balanced_accuracy,
    compute_metrics,
    confusion_matrix,
    mean_std,
    precision_recall_f1,
    roc_auc,
    roc_curve,
)


def _predictions(tp: int, fn: int, fp: int, tn: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels (0 = female) and P(female) realising a given confusion matrix (female positive)."""
    y = np.array([0] * (tp + fn) + [1] * (fp + tn))
    p = np.array([0.9] * tp + [0.1] * fn + [0.8] * fp + [0.2] * tn)
    return y, p


def test_known_confusion_matrix_hand_computed():
    y, p = _predictions(tp=8, fn=2, fp=1, tn=9)
    m = compute_metrics(y, p)
    assert m.confusion == [[8, 2], [1, 9]]
    assert m.n == 20
    assert m.accuracy == pytest.approx(17 / 20)
    assert m.error_rate == pytest.approx(3 / 20)
    assert m.precision_female == pytest.approx(8 / 9)
    assert m.recall_female == pytest.approx(8 / 10)
    assert m.f1_female == pytest.approx(2 * 8 / (2 * 8 + 2 + 1))  # 16/19
    assert m.balanced_accuracy == pytest.approx((8 / 10 + 9 / 10) / 2)


def test_imbalanced_all_male_predictor():
    # 48 male : 12 female, everything called male: 80 % accuracy but 50 % balanced accuracy and F1 0
    y, p = _predictions(tp=0, fn=12, fp=0, tn=48)
    m = compute_metrics(y, p)
    assert m.accuracy == pytest.approx(0.8)
    assert m.balanced_accuracy == pytest.approx(0.5)
    assert m.f1_female == 0.0
    assert math.isnan(m.precision_female)


def test_roc_auc_by_hand_ties_and_against_sklearn():
    assert roc_auc(np.array([1, 0, 1, 0], bool), np.array([0.9, 0.8, 0.7, 0.6])) == pytest.approx(0.75)
    assert roc_auc(np.array([1, 0, 1, 0], bool), np.array([0.5, 0.5, 0.5, 0.5])) == pytest.approx(0.5)
    assert math.isnan(roc_auc(np.array([1, 1], bool), np.array([0.2, 0.3])))
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    pos = rng.random(300) < 0.3
    score = np.round(rng.random(300) + 0.3 * pos, 2)  # rounded: many ties
    assert roc_auc(pos, score) == pytest.approx(roc_auc_score(pos, score))
    fpr, tpr = roc_curve(pos, score)
    assert fpr[0] == tpr[0] == 0 and fpr[-1] == tpr[-1] == 1


def test_small_helpers():
    cm = confusion_matrix(np.array([0, 0, 1, 1, 1]), np.array([0, 1, 1, 1, 0]))
    assert cm.tolist() == [[1, 1], [1, 2]]
    assert balanced_accuracy(cm) == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert precision_recall_f1(cm) == pytest.approx((0.5, 0.5, 0.5))
    assert mean_std([1.0, 2.0, 3.0]) == pytest.approx((2.0, 1.0))
    assert mean_std([0.5]) == (0.5, 0.0)
    assert mean_std([0.5, float("nan")]) == (0.5, 0.0)

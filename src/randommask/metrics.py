"""Classification metrics for GUE evaluation, in plain numpy.

The numbers match scikit-learn's `matthews_corrcoef`, `f1_score(average="macro", zero_division=0)`
and `accuracy_score` (the metrics DNABERT-2's fine-tuning script reports), without depending on
scikit-learn. Degenerate inputs never give NaN: an MCC whose denominator is zero (one class predicted
everywhere, or only one class in the truth) is 0.0, and a class with no true and no predicted sample
contributes an F1 of 0.0.

Inputs are 1-D array-likes of class labels of equal, non-zero length. Passing arrays of a different
shape or length is a programming error and raises `ValueError`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["accuracy", "classification_metrics", "confusion_matrix", "macro_f1", "mcc", "welch_t_test"]


def _pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true)
    p = np.asarray(y_pred)
    if t.ndim != 1 or p.ndim != 1:
        raise ValueError(f"y_true and y_pred must be 1-D, got shapes {t.shape} and {p.shape}")
    if t.shape[0] != p.shape[0]:
        raise ValueError(f"y_true and y_pred differ in length: {t.shape[0]} != {p.shape[0]}")
    if t.shape[0] == 0:
        raise ValueError("y_true and y_pred are empty")
    return t, p


def _encode(t: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Map the union of labels in t and p to 0..K-1 (sorted), like sklearn's LabelEncoder."""
    classes, inverse = np.unique(np.concatenate([t, p]), return_inverse=True)
    inverse = inverse.reshape(-1)
    n = t.shape[0]
    return inverse[:n].astype(np.int64), inverse[n:].astype(np.int64), int(classes.shape[0])


def _int_labels(a: np.ndarray, name: str, num_classes: int) -> np.ndarray:
    if a.dtype.kind not in "iub":
        if a.dtype.kind == "f" and np.all(np.isfinite(a)) and np.all(a == np.round(a)):
            a = a.astype(np.int64)
        else:
            raise ValueError(f"{name} must hold integer class labels, got dtype {a.dtype}")
    a = a.astype(np.int64, copy=False)
    if a.size and (a.min() < 0 or a.max() >= num_classes):
        raise ValueError(f"{name} has labels outside 0..{num_classes - 1}: min {a.min()}, max {a.max()}")
    return a


def confusion_matrix(y_true, y_pred, num_classes: int) -> np.ndarray:
    """Counts C[i, j] of samples with true class i predicted as j, classes 0..num_classes-1 (int64)."""
    if int(num_classes) < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    num_classes = int(num_classes)
    t, p = _pair(y_true, y_pred)
    t = _int_labels(t, "y_true", num_classes)
    p = _int_labels(p, "y_pred", num_classes)
    counts = np.bincount(t * num_classes + p, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).astype(np.int64)


def _matrix(y_true, y_pred, num_classes: int | None) -> np.ndarray:
    t, p = _pair(y_true, y_pred)
    if num_classes is None:
        t, p, k = _encode(t, p)
        return confusion_matrix(t, p, k)
    return confusion_matrix(t, p, num_classes)


def mcc(y_true, y_pred, num_classes: int | None = None) -> float:
    """Matthews correlation coefficient; multi-class R_K of Gorodkin (2004), as sklearn computes it.

    Without `num_classes` any labels are accepted (the union of both arrays is used); with it, labels
    must be integers in 0..num_classes-1. Classes absent from both arrays do not change the value.
    Returns 0.0 when the denominator is zero (e.g. a single class predicted for every sample).
    """
    C = _matrix(y_true, y_pred, num_classes)
    # Same float64 operations in the same order as sklearn, so results agree to the last bits.
    t_sum = C.sum(axis=1, dtype=np.float64)
    p_sum = C.sum(axis=0, dtype=np.float64)
    n_correct = np.trace(C, dtype=np.float64)
    n_samples = p_sum.sum()
    cov_ytyp = n_correct * n_samples - np.dot(t_sum, p_sum)
    cov_ypyp = n_samples**2 - np.dot(p_sum, p_sum)
    cov_ytyt = n_samples**2 - np.dot(t_sum, t_sum)
    denom = cov_ypyp * cov_ytyt
    if denom == 0:
        return 0.0
    return float(cov_ytyp / np.sqrt(denom))


def macro_f1(
    y_true,
    y_pred,
    num_classes: int | None = None,
    labels: Sequence | np.ndarray | None = None,
) -> float:
    """Unweighted mean of per-class F1 (sklearn `f1_score(average="macro", zero_division=0)`).

    The classes averaged over are, by default, the union of the labels present in y_true and
    y_pred (sklearn's default); `num_classes=K` averages over 0..K-1 and `labels` over the given
    labels instead (samples whose true and predicted label are both outside them are ignored,
    as in sklearn). A class with no true and no predicted sample scores 0.
    """
    t, p = _pair(y_true, y_pred)
    if num_classes is not None and labels is not None:
        raise ValueError("pass num_classes or labels, not both")
    if num_classes is not None:
        labels = np.arange(int(num_classes))
    if labels is None:
        t, p, k = _encode(t, p)
        C = confusion_matrix(t, p, k)
        tp = np.diag(C).astype(np.float64)
        true_sum = C.sum(axis=1).astype(np.float64)
        pred_sum = C.sum(axis=0).astype(np.float64)
    else:
        labels = np.asarray(labels).reshape(-1)
        if labels.size == 0:
            raise ValueError("labels is empty")
        tp = np.array([np.sum((t == c) & (p == c)) for c in labels], dtype=np.float64)
        true_sum = np.array([np.sum(t == c) for c in labels], dtype=np.float64)
        pred_sum = np.array([np.sum(p == c) for c in labels], dtype=np.float64)
    # F1 = 2 TP / (2 TP + FP + FN) = 2 TP / (true + predicted), as sklearn computes it.
    denom = true_sum + pred_sum
    f1 = np.zeros_like(denom)
    nz = denom != 0
    f1[nz] = 2.0 * tp[nz] / denom[nz]
    return float(np.mean(f1))


def accuracy(y_true, y_pred) -> float:
    """Fraction of samples whose predicted label equals the true one."""
    t, p = _pair(y_true, y_pred)
    return float(np.mean(t == p))


def classification_metrics(y_true, y_pred) -> dict[str, float]:
    """The GUE metrics: {"mcc", "f1" (macro), "accuracy"}, as fractions in [-1, 1] / [0, 1]."""
    return {
        "mcc": mcc(y_true, y_pred),
        "f1": macro_f1(y_true, y_pred),
        "accuracy": accuracy(y_true, y_pred),
    }


# ------------------------------------------------------------------------------------------ seeds
def welch_t_test(a: Sequence[float], b: Sequence[float]) -> tuple[float, float, float]:
    """(t, degrees of freedom, two-sided p) of Welch's t-test that the means of a and b differ.

    What decides whether a difference over a few fine-tuning seeds is a finding: ``scipy.stats.ttest_ind``
    with ``equal_var=False``, plus the two cases it leaves as NaN. Each side needs two values or more; two
    samples without any spread give p = 0 if their means differ, else 1.
    """
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.size < 2 or y.size < 2:
        raise ValueError("welch_t_test needs at least two values on each side")
    vx, vy = x.var(ddof=1) / x.size, y.var(ddof=1) / y.size
    diff = float(x.mean() - y.mean())
    if vx + vy == 0.0:
        return (math.copysign(math.inf, diff) if diff else 0.0), float(x.size + y.size - 2), (0.0 if diff else 1.0)
    from scipy.stats import ttest_ind  # scipy's Welch test (equal_var=False); imported here: only study asks

    res = ttest_ind(x, y, equal_var=False)
    df = (vx + vy) ** 2 / (vx**2 / (x.size - 1) + vy**2 / (y.size - 1))
    return float(res.statistic), float(df), float(res.pvalue)

"""randommask.metrics against scikit-learn (a test-only dependency)."""

import warnings
from pathlib import Path

import numpy as np
import pytest
import sklearn.metrics as skm
from hypothesis import given, settings
from hypothesis import strategies as st

from randommask.metrics import accuracy, classification_metrics, confusion_matrix, macro_f1, mcc

TOL = 1e-12


def _sk(y_true, y_pred, labels=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return (
            skm.matthews_corrcoef(y_true, y_pred),
            skm.f1_score(y_true, y_pred, average="macro", zero_division=0, labels=labels),
            skm.accuracy_score(y_true, y_pred),
        )


def _check(y_true, y_pred):
    sk_mcc, sk_f1, sk_acc = _sk(y_true, y_pred)
    ours = classification_metrics(y_true, y_pred)
    assert set(ours) == {"mcc", "f1", "accuracy"}
    assert all(isinstance(v, float) and np.isfinite(v) for v in ours.values())
    assert abs(ours["mcc"] - sk_mcc) <= TOL
    assert abs(ours["f1"] - sk_f1) <= TOL
    assert abs(ours["accuracy"] - sk_acc) <= TOL
    assert ours["mcc"] == mcc(y_true, y_pred)
    return ours


def pairs(k):
    return st.integers(1, 80).flatmap(
        lambda n: st.tuples(
            st.lists(st.integers(0, k - 1), min_size=n, max_size=n),
            st.lists(st.integers(0, k - 1), min_size=n, max_size=n),
        )
    )


@settings(max_examples=100, deadline=None)
@given(pairs(2))
def test_binary_matches_sklearn(yp):
    _check(np.array(yp[0]), np.array(yp[1]))


@settings(max_examples=100, deadline=None)
@given(pairs(3))
def test_three_class_matches_sklearn(yp):
    t, p = np.array(yp[0]), np.array(yp[1])
    _check(t, p)
    # Explicit class sets: 0..2 and 0..3 (class 3 absent -> F1 0 for it, as sklearn with zero_division=0).
    for k in (3, 4):
        _, sk_f1, _ = _sk(t, p, labels=list(range(k)))
        assert abs(macro_f1(t, p, num_classes=k) - sk_f1) <= TOL
        assert abs(macro_f1(t, p, labels=range(k)) - sk_f1) <= TOL
        assert abs(mcc(t, p, num_classes=k) - _sk(t, p)[0]) <= TOL


@settings(max_examples=60, deadline=None)
@given(pairs(3))
def test_confusion_matrix_matches_sklearn(yp):
    t, p = np.array(yp[0]), np.array(yp[1])
    ours = confusion_matrix(t, p, 3)
    assert ours.dtype == np.int64
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = skm.confusion_matrix(t, p, labels=[0, 1, 2])
    np.testing.assert_array_equal(ours, expected)


@pytest.mark.parametrize("k", [2, 3])
def test_degenerate_cases(k):
    rng = np.random.default_rng(k)
    t = rng.integers(0, k, 50)
    t[:k] = np.arange(k)  # every class present
    # One class predicted everywhere: MCC 0 (not NaN), as sklearn.
    for c in range(k):
        m = _check(t, np.full_like(t, c))
        assert m["mcc"] == 0.0
    # All true labels one class, predictions varied or identical.
    m = _check(np.zeros(20, dtype=int), rng.integers(0, k, 20))
    assert m["mcc"] == 0.0
    m = _check(np.zeros(20, dtype=int), np.zeros(20, dtype=int))
    assert m == {"mcc": 0.0, "f1": 1.0, "accuracy": 1.0}
    # Perfect.
    m = _check(t, t.copy())
    assert m["mcc"] == pytest.approx(1.0) and m["f1"] == 1.0 and m["accuracy"] == 1.0
    # Inverted / permuted.
    m = _check(t, (t + 1) % k)
    assert m["accuracy"] == 0.0 and m["f1"] == 0.0
    if k == 2:
        assert m["mcc"] == pytest.approx(-1.0)
    # Single sample.
    _check(np.array([1]), np.array([0]))


def test_non_integer_labels_and_mismatches():
    assert mcc(["a", "b", "b"], ["a", "b", "a"]) == pytest.approx(_sk([0, 1, 1], [0, 1, 0])[0])
    assert accuracy([0.0, 1.0], [0.0, 0.0]) == 0.5
    with pytest.raises(ValueError):
        mcc([0, 1], [0])
    with pytest.raises(ValueError):
        accuracy([], [])
    with pytest.raises(ValueError):
        confusion_matrix([0, 3], [0, 1], 2)
    with pytest.raises(ValueError):
        macro_f1([0, 1], [0, 1], num_classes=2, labels=[0, 1])


def test_no_sklearn_import():
    import ast

    import randommask.metrics as m

    tree = ast.parse(Path(m.__file__).read_text(encoding="utf-8"))
    names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert names and not any(x.split(".")[0] == "sklearn" for x in names)

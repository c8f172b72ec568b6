"""Compiled gradient-boosting predictions: the model's own numbers, bit for bit."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier

from poisonscan import boosting
from poisonscan.boosting import CompiledBoosting


def _data(n: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 6))
    X[rng.random(X.shape) < 0.05] = np.nan  # missing values take each split's side
    signal = X[:, 0] - np.nan_to_num(X[:, 1]) ** 2 + 0.5 * np.nan_to_num(X[:, 2])
    y = np.digitize(signal + rng.gumbel(size=n), np.linspace(-1, 1, classes - 1))
    return X, y


def _queries(seed: int) -> np.ndarray:
    X, _ = _data(700, 2, seed)
    X[:5, 0] = [np.inf, -np.inf, 1e300, -1e300, 0.0]  # beyond every threshold
    return X


@pytest.mark.parametrize("classes", [2, 3, 5])
def test_probabilities_are_the_models_own_bit_for_bit(classes):
    X, y = _data(1500, classes, seed=classes)
    model = HistGradientBoostingClassifier(random_state=0, max_iter=40).fit(X, y)
    compiled = CompiledBoosting(model, probe=X[:100])
    assert compiled.compiled_
    assert list(compiled.classes_) == list(model.classes_)
    Q = _queries(seed=10 + classes)
    assert np.array_equal(compiled.predict_proba(Q), model.predict_proba(Q))


@pytest.mark.parametrize("share", [0.0, 0.5, 1.0])
def test_the_lockstep_depth_changes_no_prediction(monkeypatch, share):
    """Rows walk in lockstep as deep as the leaves of ``share`` of the training rows
    (none, half, all), then one by one: every row reaches the model's leaf."""
    monkeypatch.setattr(boosting, "LOCKSTEP_SHARE", share)
    X, y = _data(1200, 3, seed=8)
    model = HistGradientBoostingClassifier(random_state=0, max_iter=30).fit(X, y)
    compiled = CompiledBoosting(model, probe=X[:0])
    steps = boosting._flatten(model)[-1]
    leaves = [p.nodes[p.nodes["is_leaf"].astype(bool)] for it in model._predictors for p in it]
    shallowest = [int(n["depth"].min()) for n in leaves]
    deepest = [int(n["depth"].max()) for n in leaves]
    if share in (0.0, 1.0):
        assert list(steps) == (shallowest if share == 0.0 else deepest)
    assert (steps >= shallowest).all() and (steps <= deepest).all()
    Q = _queries(seed=9)[:3 + 8 * 40]                 # 40 groups of rows and 3 alone
    assert np.array_equal(compiled._raw(Q), model._raw_predict(Q))


def test_a_rows_probabilities_do_not_depend_on_its_batch():
    X, y = _data(1000, 3, seed=1)
    compiled = CompiledBoosting(HistGradientBoostingClassifier(random_state=0).fit(X, y),
                                probe=X[:50])
    Q = _queries(seed=2)
    whole = compiled.predict_proba(Q)
    assert np.array_equal(np.vstack([compiled.predict_proba(Q[i:i + 1]) for i in range(40)]),
                          whole[:40])
    assert np.array_equal(compiled.predict_proba(np.asfortranarray(Q[::-1])), whole[::-1])


def test_a_layout_that_predicts_differently_falls_back_to_the_model(monkeypatch):
    X, y = _data(800, 3, seed=3)
    model = HistGradientBoostingClassifier(random_state=0, max_iter=20).fit(X, y)
    flatten = boosting._flatten

    def shifted(m):
        arrays = list(flatten(m))
        arrays[2] = arrays[2] + 0.25  # every threshold moved: other leaves are reached
        return tuple(arrays)

    monkeypatch.setattr(boosting, "_flatten", shifted)
    compiled = CompiledBoosting(model, probe=X[:200])
    assert not compiled.compiled_
    Q = _queries(seed=4)
    assert np.array_equal(compiled.predict_proba(Q), model.predict_proba(Q))


def test_categorical_splits_keep_scikit_learns_prediction():
    rng = np.random.default_rng(5)
    X = np.column_stack([rng.integers(0, 4, 600), rng.standard_normal(600)]).astype(float)
    y = (X[:, 0] == 2) ^ (X[:, 1] > 0.5)
    model = HistGradientBoostingClassifier(categorical_features=[0], random_state=0).fit(X, y)
    compiled = CompiledBoosting(model, probe=X[:50])
    assert not compiled.compiled_
    assert np.array_equal(compiled.predict_proba(X[:30]), model.predict_proba(X[:30]))


def test_nothing_to_compare_on_keeps_scikit_learns_prediction():
    X, y = _data(400, 2, seed=7)
    model = HistGradientBoostingClassifier(random_state=0, max_iter=10).fit(X, y)
    assert not CompiledBoosting(model, probe=X[:0]).compiled_


def test_wrong_feature_count_is_an_error_and_pickling_keeps_the_predictions():
    X, y = _data(600, 2, seed=6)
    compiled = CompiledBoosting(HistGradientBoostingClassifier(random_state=0).fit(X, y),
                                probe=X[:50])
    with pytest.raises(ValueError, match="features"):
        compiled.predict_proba(X[:, :5])
    copy = pickle.loads(pickle.dumps(compiled))
    assert copy.compiled_
    assert np.array_equal(copy.predict_proba(X), compiled.predict_proba(X))

"""Class probabilities of a fitted gradient-boosting classifier, row by row in compiled code.

scikit-learn's :class:`~sklearn.ensemble.HistGradientBoostingClassifier` predicts tree by
tree: each tree walks every row of the batch before the next tree starts, so a batch
larger than the cache is read from memory again for every tree (the labels family's
models have a few hundred). :class:`CompiledBoosting` walks every tree for one row before
it moves to the next row, with all the trees' nodes in a few flat arrays that stay in the
cache: about 2.5 times faster on a model the size of the labels family's
(``benchmarks/RESULTS.md``, "Speed at scale").

A walk is a chain of dependent loads (the node, the row's value of its feature, the
child), and the branch it takes is a coin toss to the processor. So rows walk each tree
:data:`LOCKSTEP_ROWS` at a time, in lockstep and without branches (a leaf leads to
itself): while one row waits for memory, the others go on. The lockstep runs as many
steps as the leaves of :data:`LOCKSTEP_SHARE` of the tree's training rows are deep; the
rows still short of a leaf then finish one by one. About 1.5 times faster again (the
same section). The leaf a row reaches, and so every number, is the same.

The raw scores are summed in scikit-learn's order (the baseline, then the trees iteration
by iteration), and the probabilities come from the model's own loss, so they are the same
numbers, bit for bit. That rests on scikit-learn's private tree layout, so it is checked:
each wrapper compares its predictions with the model's own on rows given at construction
and, should they ever differ (or the layout change), predicts with the model itself.
"""

from __future__ import annotations

import numpy as np

from .compiled import LazyKernel

#: Rows walked through a tree together, in lockstep.
LOCKSTEP_ROWS = 8
#: Share of a tree's training rows whose leaves the lockstep reaches (it runs as many
#: steps as their depth); deeper walks finish row by row.
LOCKSTEP_SHARE = 0.75


class CompiledBoosting:
    """A fitted HistGradientBoostingClassifier whose ``predict_proba`` is compiled.

    Parameters
    ----------
    model : sklearn.ensemble.HistGradientBoostingClassifier
        The fitted model (numeric splits only; a model with categorical splits keeps
        scikit-learn's prediction).
    probe : numpy.ndarray of float64, shape (n, n_features)
        Rows both predictions are compared on (a few hundred suffice; without any, the
        model predicts).

    Attributes
    ----------
    model : sklearn.ensemble.HistGradientBoostingClassifier
        The wrapped model.
    classes_ : numpy.ndarray
        The model's classes.
    compiled_ : bool
        Whether predictions are compiled (they matched the model's own on ``probe``).
    """

    def __init__(self, model, probe: np.ndarray):
        self.model = model
        self.compiled_ = False
        try:
            self._arrays = _flatten(model)
        except (AttributeError, KeyError, TypeError, ValueError):
            return  # a layout this module does not know: scikit-learn predicts
        probe = np.ascontiguousarray(probe, dtype=np.float64)
        self.compiled_ = len(probe) > 0 and bool(
            np.array_equal(self._raw(probe), model._raw_predict(probe)))

    @property
    def classes_(self) -> np.ndarray:
        return self.model.classes_

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities of each row, as ``model.predict_proba(X)`` gives them."""
        if not self.compiled_:
            return self.model.predict_proba(X)
        X = np.ascontiguousarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.model.n_features_in_:
            raise ValueError(f"X has shape {X.shape}; the model takes "
                             f"{self.model.n_features_in_} features")
        return self.model._loss.predict_proba(self._raw(X))

    def _raw(self, X: np.ndarray) -> np.ndarray:
        return _KERNEL.get()(X, *self._arrays)


def _flatten(model) -> tuple[np.ndarray, ...]:
    """The trees' nodes in flat arrays (children as absolute positions; a leaf is its own
    child, on feature 0), the position of each tree's root in predictor order, the
    baseline per output column, and each tree's lockstep steps."""
    nodes = [p.nodes for iteration in model._predictors for p in iteration]
    if not nodes or any(n["is_categorical"].any() for n in nodes):
        raise ValueError("no trees, or categorical splits")
    sizes = np.array([len(n) for n in nodes], dtype=np.int64)
    roots = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    offset = np.repeat(roots, sizes)
    flat = np.concatenate(nodes)
    baseline = np.asarray(model._baseline_prediction, dtype=np.float64).ravel()
    if len(baseline) != model.n_trees_per_iteration_:
        raise ValueError("baseline and trees per iteration disagree")
    leaf = flat["is_leaf"].astype(np.bool_)
    itself = np.flatnonzero(leaf)
    feature = flat["feature_idx"].astype(np.int64)
    left = flat["left"].astype(np.int64) + offset
    right = flat["right"].astype(np.int64) + offset
    feature[itself], left[itself], right[itself] = 0, itself, itself
    return (baseline, feature,
            np.ascontiguousarray(flat["num_threshold"], dtype=np.float64),
            left, right,
            flat["missing_go_to_left"].astype(np.bool_),
            leaf,
            np.ascontiguousarray(flat["value"], dtype=np.float64),
            roots,
            np.array([_lockstep_steps(n) for n in nodes], dtype=np.int64))


def _lockstep_steps(nodes: np.ndarray) -> int:
    """Depth within which lie the leaves of :data:`LOCKSTEP_SHARE` of a tree's training
    rows (by the nodes' ``count``)."""
    leaves = nodes[nodes["is_leaf"].astype(bool)]
    depth = leaves["depth"].astype(np.int64)
    order = np.argsort(depth, kind="stable")
    reached = np.cumsum(leaves["count"][order].astype(np.float64))
    if reached[-1] <= 0:
        return int(depth.max())
    return int(depth[order][np.searchsorted(reached, LOCKSTEP_SHARE * reached[-1])])


def _leaf(X, r, node, feature, threshold, left, right, missing_left,
          leaf):  # pragma: no cover - compiled
    """The leaf row ``r`` reaches from ``node`` (a NaN takes the node's missing side)."""
    while not leaf[node]:
        x = X[r, feature[node]]
        if np.isnan(x):
            node = left[node] if missing_left[node] else right[node]
        elif x <= threshold[node]:
            node = left[node]
        else:
            node = right[node]
    return node


def _raw_scores(X, baseline, feature, threshold, left, right, missing_left, leaf, value,
                roots, steps):  # pragma: no cover - compiled
    """Baseline plus the leaf value of every tree, per row and output column, summed
    in predictor order (tree ``t`` adds to column ``t % K``) as scikit-learn sums them."""
    n = X.shape[0]
    K = len(baseline)
    out = np.empty((n, K))
    for r in range(n):
        for k in range(K):
            out[r, k] = baseline[k]
    at = np.empty(LOCKSTEP_ROWS, np.int64)
    whole = n - n % LOCKSTEP_ROWS
    for first in range(0, whole, LOCKSTEP_ROWS):
        for t in range(len(roots)):
            for i in range(LOCKSTEP_ROWS):
                at[i] = roots[t]
            for _ in range(steps[t]):  # without branches: left unless x > threshold,
                for i in range(LOCKSTEP_ROWS):  # or x is NaN and goes right
                    node = at[i]
                    x = X[first + i, feature[node]]
                    go_left = (x <= threshold[node]) | ((x != x) & missing_left[node])
                    at[i] = left[node] if go_left else right[node]
            for i in range(LOCKSTEP_ROWS):
                node = _leaf(X, first + i, at[i], feature, threshold, left, right,
                             missing_left, leaf)
                out[first + i, t % K] += value[node]
    for r in range(whole, n):
        for t in range(len(roots)):
            node = _leaf(X, r, roots[t], feature, threshold, left, right, missing_left, leaf)
            out[r, t % K] += value[node]
    return out


#: The compiled kernel (:func:`_raw_scores`, which calls :func:`_leaf`), built on first use.
_KERNEL = LazyKernel(globals(), "_raw_scores", helpers=("_leaf",))

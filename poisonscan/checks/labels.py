"""Label consistency: cross-validated confident learning and nearest-neighbour agreement.

A row whose label disagrees with what the rest of the data says about its neighbourhood
is suspect. Two estimates of ``P(label | features)`` are learned from the row sample and
pooled; the family score is the surprise of the given label, ``-ln P(label right)``.

* **Model.** A classifier (``model``: HistGradientBoosting, logistic regression, or
  a weighted pool of both, the default) is cross-validated on the encoded sample with
  ``folds`` folds, stratified by class and assigned by a keyed hash of the row id. Every
  training row gets its out-of-fold probabilities (stored with its row id, so that it
  gets the same honest values when pass 2 meets it again, in whatever chunk). Every
  other row is scored by one of the fold models, chosen by a keyed hash of its row id:
  it was not trained on that row either, so all rows' probabilities come from the same
  distribution as the ones the fusion calibrates against.
* **Neighbours.** A class-balanced vote of the ``k``, ``2k`` and ``5k`` nearest rows of
  an index of the sample (at most ``knn_rows`` rows, searched along their ``knn_dims``
  principal axes; a row never votes for itself: sampled rows are excluded by row id).
  Each neighbour's vote is weighted by how much the model believes *its* label (its
  out-of-fold probability), so a tight cluster of flipped rows does not vouch for
  itself, and votes of a skewed class are weighted by the inverse square root of the
  class share. Each scale's vote shares out one vote's weight evenly besides, so that no
  class is ever ruled out by a vote alone.
* **Pooling.** The two models of ``hgb+logreg``, and then the model and the neighbours,
  are pooled log-linearly (a weighted geometric mean of their probabilities,
  renormalised), not averaged: an average floors a class's probability at its weighted
  least source (a model's ``1e-6`` averaged with a vote's ``0.05`` is about ``0.01``),
  and in a million rows the rows that matter lie beyond such a floor (the scale
  benchmark's needle: ``benchmarks/RESULTS.md``, "Session 19").
* **Confident learning** (Northcutt, Jiang & Chuang, 2021) on the combined
  probabilities of the training rows: per-class thresholds ``t_j`` (the mean
  probability of class ``j`` among rows labelled ``j``), the confident joint of given
  and likely true labels, calibrated to the class counts, and from it the estimated
  number of wrong labels in the whole dataset (see :meth:`LabelsCheck.describe`) and
  the noise transition matrix ``T[i, j] = P(given i | true j)``.
* **Score.** The surprise of the given label ``i``, ``-ln`` of its posterior
  probability ``p_i T[i, i] / sum_j p_j T[i, j]`` (in nats: 0 = surely right, 4.6 = a 1%
  chance): self-confidence re-weighted by the flips the data actually shows, so that a
  row labelled ``b`` that looks like an ``a`` counts more when ``a -> b`` flips are
  common (class-conditional and targeted flips). ``T`` is tempered to ``T ** kappa``,
  ``kappa`` the agreement (Cohen's) of the combined predictions with the given labels: a
  weak model's confident joint maps its own confusion more than the flips, and with
  ``kappa = 0`` the score is plain self-confidence. A logarithm, not the probability
  that the label is wrong, because the fusion calibrates each family's tail by how far
  beyond its bulk a score lies (:mod:`poisonscan.fusion`): a probability of being wrong
  is bounded by 1, and every row whose label is almost surely wrong would get one tail
  probability, however much more surely wrong one is than another. The price: where the
  labels are noisy by nature, the rows whose label the model doubts most now outrank
  moderate evidence of the other families (the quality benchmark's jointly impossible
  rows on ``attrition``; ``benchmarks/RESULTS.md``, "Session 19").

Rows without a label (reported by the ``bounds`` family), and rows whose class has
fewer than ``min_class_rows`` sampled rows (too small to cross-validate; listed in the
summary), score 0. With fewer than two checkable classes, or no encoded feature that
varies in the sample (no feature column, or only constant or empty ones), there is
nothing to check: every row scores 0 and the summary says why. Label checks are soft
evidence: ``violation`` is always false. Rows in the top ``tail`` of the sampled scores
whose combined probabilities prefer another class get a reason such as
``labels: given 'ham' p=0.02; model says 'spam' p=0.95; 9/10 neighbours 'spam'``.

Scoring never relies on BLAS matrix products of the chunk (their rounding depends on how
many rows are multiplied at once): linear models, the projection and the neighbours'
distances (:mod:`poisonscan.neighbours`, an exact search) are evaluated feature by
feature. A row's score therefore depends on the row only, never on its chunk.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import logsumexp, softmax

from ..boosting import CompiledBoosting
from ..compiled import LazyKernel
from ..config import Option
from ..encode import varies
from ..hashing import row_keys
from ..neighbours import NeighbourIndex, nearest
from ..rowwise import row_products
from ..threads import lbfgs_reentrant, map_single_threaded, single_threaded
from .base import Check, CheckScores, quote

#: Hash streams of the keyed random choices (see :func:`poisonscan.hashing.row_keys`).
_TRAIN_STREAM, _FOLD_STREAM, _PASS2_STREAM, _INDEX_STREAM = 61, 62, 63, 64
#: Models a user can choose.
MODELS = ("hgb+logreg", "hgb", "logreg")
#: Scales of the neighbour vote, in multiples of ``neighbours``.
SCALES = (1, 2, 5)
#: Floor of the noise transition matrix (no flip is deemed impossible).
_TRANSITION_FLOOR = 1e-3
#: Smallest class probability taken (its logarithm, about -690, stays finite).
_PROBA_FLOOR = 1e-300
#: Parameters of the boosting model: half of scikit-learn's 100 iterations at twice its
#: learning rate (0.1). The fit is the largest fixed cost of a scan: this halves its
#: iterations at the benchmark's 3,000 rows (no early stopping there) and cuts its CPU by
#: 60% at 20,000 (29 iterations with early stopping against 66-75). On the 241 seed-0
#: cases of the quality benchmark, 45 APs rose and 43 fell; mean 0.7535 -> 0.7530,
#: decisions unchanged (RESULTS.md, "Session 16").
BOOSTING = {"learning_rate": 0.2, "max_iter": 50}
#: Training rows a boosting model's compiled predictions are checked on against its own.
BOOSTING_PROBE_ROWS = 256
#: Most classes the check handles (beyond, the label is not a class label).
MAX_CLASSES = 200
#: Most classes for boosting in the "hgb+logreg" pool (it grows one tree per class and
#: iteration); with more, the pool is the logistic regression alone.
BLEND_MAX_CLASSES = 20


class LabelsCheck(Check):
    """Cross-validated confident learning and k-nearest-neighbour label agreement.

    Parameters
    ----------
    model : {"hgb+logreg", "hgb", "logreg"}, default "hgb+logreg"
        Classifier behind the out-of-fold probabilities: scikit-learn's
        HistGradientBoostingClassifier, a logistic regression, or a weighted pool of
        both. Boosting fits non-linear classes, but it also learns a tight cluster of
        flipped labels and then vouches for it; the linear model cannot fit such a
        cluster, so it keeps seeing its rows as wrong.
    hgb_weight : float, default 0.15
        Weight of the boosting model in "hgb+logreg" (which uses the logistic
        regression alone beyond :data:`BLEND_MAX_CLASSES` classes: boosting grows one
        tree per class and iteration). Chosen on the quality benchmark (3 seeds, 1/3/10%,
        9 datasets; ``python benchmarks/quality.py --max-rows 3000`` with and without
        ``--scan labels.hgb_weight=0.3``): against 0.3, the family's AP on targeted cluster
        flips 0.386 vs 0.360, random flips 0.726 vs 0.732, class-conditional flips 0.625
        vs 0.626.
    folds : int, default 5
        Cross-validation folds.
    model_rows : int, default 20000
        Sampled rows the classifier is trained on at most (chosen by keyed hash). The
        cross-validated fit is the largest fixed cost of a scan (about 12 s at 20,000
        rows, 88 encoded features and three classes, beside the other checks' fits on two
        cores); rows beyond it are scored, not learned.
    neighbours : int, default 10
        Base neighbour count ``k``; votes are taken at ``k``, ``2k`` and ``5k``.
    knn_rows : int, default 5000
        Sampled rows in the neighbour index at most (a subset of the training rows).
        Scoring costs one distance per row and indexed row.
    knn_dims : int, default 16
        Neighbours are searched among the principal axes of the encoded index rows
        (at most this many; 0 keeps every encoded feature).
    knn_weight : float, default 0.25
        Weight (exponent) of the neighbour vote in the pooled probabilities (the model
        has ``1 - knn_weight``).
    class_balance : float, default 0.5
        Neighbour votes of class ``c`` are weighted by ``share_c ** -class_balance``
        (0: plain vote, 1: fully balanced).
    min_class_rows : int, default 10
        Sampled rows a class needs to be checked (and cross-validated).
    tail : float, default 0.05
        Share of the most suspect sampled rows whose reasons are written (only for rows
        whose combined probabilities prefer another class than the given one).

    Attributes
    ----------
    active_ : bool
        Whether there is anything to check (at least two checkable classes, and an encoded
        feature that varies in the sample to tell them by).
    note_ : str
        Why the check is inactive, or ``""``.
    classes_ : numpy.ndarray of object
        The checked classes (text), sorted.
    sampled_counts_ : dict of str to int
        Sampled rows per label (every non-missing label).
    rare_classes_ : dict of str to int
        Labels with too few sampled rows to be checked, with their sampled counts.
    models_ : list
        The fitted fold models (one per fold, or a pair per fold for "hgb+logreg");
        boosting models are wrapped in :class:`~poisonscan.boosting.CompiledBoosting`.
    oof_rows_ : numpy.ndarray of int64
        Row ids of the training rows, sorted.
    oof_proba_ : numpy.ndarray of float64
        Their out-of-fold model probabilities, ``(len(oof_rows_), len(classes_))``.
    knn_rows_ : numpy.ndarray of int64
        Row ids of the neighbour index.
    thresholds_ : numpy.ndarray of float64
        Confident-learning threshold per class.
    joint_ : numpy.ndarray of float64
        Calibrated confident joint ``Q[given, true]`` (sums to 1).
    agreement_ : float
        Cohen's kappa of the combined out-of-fold predictions and the given labels.
    transition_ : numpy.ndarray of float64
        ``T[i, j] = P(given i | true j)``, floored, raised to the power ``agreement_``.
    reason_threshold_ : float
        Score from which a row gets a reason.
    estimated_issues_ : int
        Estimated number of wrong labels in the whole dataset.
    """

    name = "labels"
    spreads_fit = True
    requires_label = True
    parameters = (
        Option("model", "str", "hgb+logreg", "classifier behind the out-of-fold probabilities",
               choices=MODELS),
        Option("hgb_weight", "float", 0.15, "weight of boosting in the hgb+logreg pool",
               low=0.0, high=1.0),
        Option("folds", "int", 5, "cross-validation folds", low=2, high=20),
        Option("model_rows", "int", 20_000, "sampled rows the classifier is trained on at most",
               low=20),
        Option("neighbours", "int", 10, "base neighbour count k (votes at k, 2k, 5k)",
               low=1, high=100),
        Option("knn_rows", "int", 5_000, "sampled rows in the neighbour index at most",
               low=10),
        Option("knn_dims", "int", 16, "principal axes of the neighbour space (0: all features)",
               low=0),
        Option("knn_weight", "float", 0.25, "weight of the neighbour vote against the model",
               low=0.0, high=1.0),
        Option("class_balance", "float", 0.5,
               "neighbour votes weighted by class share ** -class_balance", low=0.0, high=1.0),
        Option("min_class_rows", "int", 10, "sampled rows a class needs to be checked", low=2),
        Option("tail", "float", 0.05, "share of the most suspect sampled rows given a reason",
               low=0.0, high=1.0),
    )

    # ------------------------------------------------------------------------------ fit
    def fit(self, state, profile) -> "LabelsCheck":
        """Cross-validate the model, build the neighbour index, estimate the label noise.

        Parameters
        ----------
        state : None
            The check keeps no pass-1 state of its own.
        profile : Profile
            Its label counts, row sample and shared encoder are used.
        """
        self._validate_params()
        self.seed_ = int(profile.seed)
        self.n_rows_ = int(profile.n_rows)
        sample = profile.sample_chunk()
        labels = sample.labels()
        present = np.flatnonzero(labels != None)  # noqa: E711 - elementwise on an object array
        names, counts = np.unique(labels[present].astype(str), return_counts=True)
        self.sampled_counts_ = {str(k): int(v) for k, v in zip(names, counts)}
        if len(present) > self.model_rows:  # the rows with the smallest keyed hashes
            keys = row_keys(self.seed_, sample.rows[present], _TRAIN_STREAM)
            present = np.sort(present[np.argsort(keys, kind="stable")[:self.model_rows]])
        in_training = dict(zip(*np.unique(labels[present].astype(str), return_counts=True)))
        checked = np.array([in_training.get(k, 0) >= self.min_class_rows for k in names],
                           dtype=bool)
        self.classes_ = names[checked].astype(object)
        self.rare_classes_ = {str(k): int(v) for k, v in zip(names[~checked], counts[~checked])}
        totals = profile.labels.counts if profile.labels is not None else None
        self.dataset_counts_ = {str(c): int((totals or {}).get(c, 0)) for c in self.classes_}
        self.note_ = ""
        if len(self.classes_) < 2:
            self.note_ = ("nothing to check: one class" if len(names) == 1 else
                          "nothing to check: no label" if len(names) == 0 else
                          f"nothing to check: fewer than two classes with "
                          f"{self.min_class_rows} sampled rows")
        elif len(self.classes_) > MAX_CLASSES:
            self.note_ = (f"nothing to check: {len(self.classes_)} classes (more than "
                          f"{MAX_CLASSES}; the label does not look like a class label)")
        encoder = X = None
        if not self.note_:
            encoder = profile.encoder()
            X = encoder.transform(sample) if encoder.feature_names_ else None
            if X is None or not varies(X):  # nothing tells one row from another
                self.note_ = "nothing to check: " + (
                    "no encodable feature column" if X is None
                    else "no encoded feature varies in the sample")
        self.active_ = not self.note_
        if not self.active_:
            return self

        self._encoder = encoder
        codes = self._codes(labels[present])
        usable = present[codes >= 0]
        codes = self._codes(labels)
        X_train, y_train, rows_train = X[usable], codes[usable], sample.rows[usable]
        self.n_features_ = X.shape[1]
        folds = _stratified_folds(self.seed_, rows_train, y_train, self.folds)

        held = [folds == f for f in range(self.folds)]
        self.models_ = self._fit_folds([(X_train[~h], y_train[~h]) for h in held])
        oof = np.zeros((len(usable), len(self.classes_)))
        for fitted, h in zip(self.models_, held):
            if h.any():
                oof[h] = self._predict(fitted, X_train[h])
        self.oof_rows_ = rows_train
        self.oof_proba_ = oof
        self.cv_accuracy_ = float(np.mean(oof.argmax(axis=1) == y_train))

        # neighbour index: a keyed subset of the training rows, each vote weighted by its
        # class weight and by the model's out-of-fold belief in its label
        index = np.arange(len(usable))
        if len(index) > self.knn_rows:
            keys = row_keys(self.seed_, rows_train, _INDEX_STREAM)
            index = np.sort(np.argsort(keys, kind="stable")[:self.knn_rows])
        share = np.bincount(y_train[index], minlength=len(self.classes_)) / len(index)
        weights = np.where(share > 0, np.maximum(share, 1e-12) ** -self.class_balance, 0.0)
        self.class_weights_ = weights / weights[share > 0].mean()
        self._fit_projection(X_train[index])
        self.knn_X_ = self._project(X_train[index])
        self.knn_codes_ = y_train[index]
        self.knn_rows_ = rows_train[index]
        self.knn_vote_ = self.class_weights_[self.knn_codes_] * \
            oof[index, y_train[index]]
        self.k_ = min(self.neighbours * SCALES[-1], len(index) - 1)
        self.scales_ = tuple(sorted({max(1, min(self.neighbours * s, self.k_))
                                     for s in SCALES})) if self.k_ > 0 else ()
        self._index = NeighbourIndex(self.knn_X_.T)

        # confident learning on the combined probabilities of the training rows
        proba, _ = self._combined(X_train, rows_train, y_train, oof)
        self.thresholds_, self.joint_ = _confident_joint(proba, y_train, len(self.classes_))
        given = self.joint_.sum(axis=1, keepdims=True)
        true = self.joint_.sum(axis=0, keepdims=True)
        # trust the estimated flips as far as the predictions agree with the given labels
        # beyond chance: a weak model's confident joint mostly maps its own confusion
        self.agreement_ = _kappa(y_train, proba.argmax(axis=1), len(self.classes_))
        self.transition_ = np.maximum(self.joint_ / np.where(true > 0, true, 1.0),
                                      _TRANSITION_FLOOR) ** self.agreement_
        self.issue_rate_ = 1.0 - np.diag(self.joint_) / np.where(given[:, 0] > 0,
                                                                  given[:, 0], 1.0)
        counts_all = np.array([self.dataset_counts_[c] for c in self.classes_], dtype=float)
        if counts_all.sum() == 0:  # no label counts (high-cardinality label column)
            counts_all = np.bincount(y_train, minlength=len(self.classes_)) \
                * (self.n_rows_ / max(len(sample), 1))
        self.estimated_issues_ = int(round(float((counts_all * self.issue_rate_).sum())))
        scores = _surprise(proba, y_train, self.transition_)
        self.reason_threshold_ = float(np.quantile(scores, 1.0 - self.tail)) \
            if self.tail > 0 else math.inf
        return self

    def _codes(self, labels: np.ndarray) -> np.ndarray:
        """Class index of each label; -1 for a missing or unchecked label."""
        return pd.Index(self.classes_).get_indexer(pd.Index(labels, dtype=object))

    def _fit_folds(self, parts: list[tuple[np.ndarray, np.ndarray]]) -> list[list]:
        """Each fold's models (boosting first, then the logistic regression, as chosen).

        Every classifier is fitted with OpenMP and BLAS on one thread: the fitted models
        then do not depend on the machine's core count (parallel sums of gradients round
        differently with more threads), and gradient boosting, which opens an OpenMP
        parallel region per tree node, is not slowed down by spinning threads on a busy
        machine or next to other worker processes (5-15x, measured on 2 shared cores).
        The folds' models are fitted side by side in threads, one per core
        (:func:`~poisonscan.threads.map_single_threaded`), the boosting models first (the
        longest). The logistic regressions join them where SciPy's L-BFGS-B is reentrant
        (SciPy 1.15 and later, :func:`~poisonscan.threads.lbfgs_reentrant`); with an older
        SciPy they are fitted one after the other, after the boosting models. Predictions
        and the neighbour search use the native threads they are given (one here, where
        the checks are fitted side by side, and per chunk in pass 2, whose chunks are scored
        side by side): they split the rows among threads, each row computed by one of them
        in one order.
        """
        boosted = self.model == "hgb" or (self.model == "hgb+logreg"
                                          and len(self.classes_) <= BLEND_MAX_CLASSES)
        linear = self.model in ("logreg", "hgb+logreg")
        kinds = (["boosting"] if boosted else []) + (["linear"] if linear else [])
        fit = {"boosting": self._fit_boosting, "linear": self._fit_linear}
        threaded = [k for k in kinds if k == "boosting" or lbfgs_reentrant()]
        done = map_single_threaded(lambda job: fit[job[0]](job[1]),
                                   [(k, part) for k in threaded for part in parts])
        models = {k: done[i * len(parts):(i + 1) * len(parts)] for i, k in enumerate(threaded)}
        for k in kinds:
            if k not in models:  # the logistic regressions, with a SciPy before 1.15
                with single_threaded():
                    models[k] = [fit[k](part) for part in parts]
        return [[models[k][f] for k in kinds] for f in range(len(parts))]

    def _fit_boosting(self, part: tuple[np.ndarray, np.ndarray]) -> CompiledBoosting:
        from sklearn.ensemble import HistGradientBoostingClassifier
        model = HistGradientBoostingClassifier(**BOOSTING, random_state=self.seed_).fit(*part)
        return CompiledBoosting(model, probe=part[0][:BOOSTING_PROBE_ROWS])

    @staticmethod
    def _fit_linear(part: tuple[np.ndarray, np.ndarray]):
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return LogisticRegression(max_iter=1000).fit(*part)

    def _predict(self, fitted: list, X: np.ndarray) -> np.ndarray:
        """Class probabilities of a fold's models (columns = :attr:`classes_`), pooled
        log-linearly (:func:`_pool`) with weights ``hgb_weight`` and ``1 - hgb_weight``."""
        parts = []
        for model in fitted:
            linear = hasattr(model, "coef_")
            weight = 1.0 if len(fitted) == 1 else \
                (1.0 - self.hgb_weight if linear else self.hgb_weight)
            proba = np.full((len(X), len(self.classes_)), _PROBA_FLOOR)
            proba[:, model.classes_] = _linear_proba(model, X) if linear \
                else model.predict_proba(X)
            parts.append((proba, weight))
        return _pool(parts)

    # -------------------------------------------------------------------- probabilities
    def _model_proba(self, X: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Out-of-fold probabilities for training rows, one fold model's for the others."""
        proba = np.empty((len(rows), len(self.classes_)))
        at = _positions(self.oof_rows_, rows)
        trained = at >= 0
        proba[trained] = self.oof_proba_[at[trained]]
        others = np.flatnonzero(~trained)
        if len(others):
            fold = (row_keys(self.seed_, rows[others], _PASS2_STREAM)
                    % np.uint64(self.folds)).astype(np.int64)
            for f in np.unique(fold):
                pick = others[fold == f]
                proba[pick] = self._predict(self.models_[f], X[pick])
        return proba

    def _combined(self, X: np.ndarray, rows: np.ndarray, codes: np.ndarray,
                  model_proba: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Model and neighbour probabilities pooled; also the neighbours (or None)."""
        if self.k_ <= 0 or self.knn_weight == 0:
            return model_proba, None
        neighbours = self._neighbours(self._project(X), rows)
        C = len(self.classes_)
        knn = np.zeros((len(rows), C))
        sums = _VOTE_SUMS.get()(neighbours, self.knn_vote_, self.knn_codes_,
                                np.asarray(self.scales_, dtype=np.int64), C)
        for hist in sums:  # one vote's weight spread evenly: no class is ruled out
            knn += (hist + 1.0 / C) / (hist.sum(axis=1, keepdims=True) + 1.0)
        knn /= len(self.scales_)
        return _pool([(model_proba, 1.0 - self.knn_weight), (knn, self.knn_weight)]), \
            neighbours

    # ------------------------------------------------------------------------ neighbours
    def _fit_projection(self, X: np.ndarray) -> None:
        """Principal axes of the index rows (none when there are few features already)."""
        self.knn_mean_ = X.mean(axis=0) if len(X) else np.zeros(X.shape[1])
        q = min(self.knn_dims, X.shape[1], max(len(X) - 1, 1)) if self.knn_dims else 0
        if not q or q >= X.shape[1]:
            self.knn_axes_ = None
            return
        from sklearn.decomposition import PCA
        self.knn_axes_ = PCA(n_components=q, svd_solver="full").fit(X).components_

    def _project(self, X: np.ndarray) -> np.ndarray:
        """Coordinates in the neighbour space, feature by feature (no BLAS)."""
        if self.knn_axes_ is None:
            return np.ascontiguousarray(X)
        return row_products(X, self.knn_axes_, shift=self.knn_mean_)

    def _neighbours(self, X: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Positions in the index of each row's ``k_`` nearest rows (itself excluded).

        Exact (:func:`poisonscan.neighbours.nearest`: distances summed feature by
        feature, ties broken by index position), so a row's neighbours depend on the
        row alone. Within each scale's band the positions are sorted, so that sums over
        them run in one order whatever the batch.
        """
        exclude = _positions(self.knn_rows_, rows)
        return self._canonical(nearest(X, self._index, exclude, self.k_))

    def _canonical(self, cand: np.ndarray) -> np.ndarray:
        """Sort positions within each band between consecutive scales."""
        low = 0
        for edge in self.scales_:
            cand[:, low:edge] = np.sort(cand[:, low:edge], axis=1)
            low = edge
        return cand

    # --------------------------------------------------------------------------- scoring
    def score(self, chunk) -> CheckScores:
        """Surprise of each row's label, ``-ln P(label right)`` (0 without a checkable label)."""
        n = len(chunk)
        result = CheckScores.empty(n)
        if not self.active_ or n == 0:
            return result
        codes = self._codes(chunk.labels())
        live = np.flatnonzero(codes >= 0)
        if not len(live):
            return result
        X = self._encoder.transform(chunk)
        X = X if len(live) == n else X[live]  # (no copy when every label is checkable)
        rows, y = chunk.rows[live], codes[live]
        model = self._model_proba(X, rows)
        proba, neighbours = self._combined(X, rows, y, model)
        scores = _surprise(proba, y, self.transition_)
        result.scores[live] = scores
        flagged = np.flatnonzero((scores >= self.reason_threshold_)
                                 & (proba.argmax(axis=1) != y))
        for i in flagged.tolist():
            result.reasons[live[i]] = self._reason(
                y[i], model[i], None if neighbours is None else self.knn_codes_[neighbours[i]])
        return result

    def _reason(self, given: int, model: np.ndarray, found: np.ndarray | None) -> str:
        names = self.classes_
        best = int(np.argmax(model))
        text = (f"labels: given {quote(names[given])} p={model[given]:.2f}; "
                f"model says {quote(names[best])} p={model[best]:.2f}")
        if found is not None:
            k = self.scales_[0]
            counts = np.bincount(found[:k], minlength=len(names))
            top = int(np.argmax(counts))
            text += f"; {counts[top]}/{k} neighbours {quote(names[top])}"
        return text

    def describe(self) -> dict[str, Any]:
        """What the check learned (plain JSON values for ``summary.json``)."""
        out: dict[str, Any] = {"checked": self.active_}
        if not self.active_:
            out["note"] = self.note_
            out["sampled_labels"] = dict(sorted(self.sampled_counts_.items())[:50])
            return out
        names = [str(c) for c in self.classes_]
        total = sum(self.dataset_counts_.values()) or self.n_rows_
        flips = []
        C = len(names)
        per_row = self.joint_ / np.maximum(self.joint_.sum(axis=1, keepdims=True), 1e-300)
        for i in range(C):
            for j in range(C):
                if i != j:
                    count = per_row[i, j] * (self.dataset_counts_[names[i]] or 0)
                    if count >= 0.5:
                        flips.append((-count, names[i], names[j]))
        flips.sort()
        out.update({
            "model": self.model if self.model != "hgb+logreg"
            else f"hgb+logreg ({self.hgb_weight:g}:{1 - self.hgb_weight:g})"
            if len(self.classes_) <= BLEND_MAX_CLASSES
            else f"logreg (boosting skipped: more than {BLEND_MAX_CLASSES} classes)",
            "folds": self.folds,
            "training_rows": int(len(self.oof_rows_)),
            "out_of_fold_accuracy": _r(self.cv_accuracy_),
            "agreement_kappa": _r(self.agreement_),
            "neighbour_index_rows": int(len(self.knn_rows_)),
            "neighbour_scales": list(self.scales_),
            "classes": {c: self.dataset_counts_[c] for c in names},
            "rare_classes": dict(sorted(self.rare_classes_.items())[:50]),
            "thresholds": {c: _r(t) for c, t in zip(names, self.thresholds_)},
            "estimated_label_issues": self.estimated_issues_,
            "estimated_issue_rate": _r(self.estimated_issues_ / max(total, 1)),
            "issue_rate_by_class": {c: _r(v) for c, v in zip(names, self.issue_rate_)},
            "likely_flips": {f"{t} -> {g}": int(round(-c)) for c, g, t in flips[:10]},
            "reason_threshold": _r(self.reason_threshold_),
        })
        return out


# ------------------------------------------------------------------------------ helpers

def _stratified_folds(seed: int, rows: np.ndarray, codes: np.ndarray, folds: int) -> np.ndarray:
    """Fold of each row: within each class, rows ranked by keyed hash, dealt round-robin."""
    keys = row_keys(seed, rows, _FOLD_STREAM)
    order = np.lexsort((keys, codes))
    ranked = codes[order]
    start = np.searchsorted(ranked, ranked, side="left")
    out = np.empty(len(rows), dtype=np.int64)
    out[order] = (np.arange(len(rows)) - start) % folds
    return out


def _linear_proba(model, X: np.ndarray) -> np.ndarray:
    """``predict_proba`` of a fitted logistic regression, feature by feature (no BLAS)."""
    coef = model.coef_
    z = row_products(X, coef, start=model.intercept_)
    if coef.shape[0] == 1:
        p = 1.0 / (1.0 + np.exp(-np.clip(z[:, 0], -700, 700)))
        return np.column_stack([1.0 - p, p])
    z -= z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    return z / z.sum(axis=1, keepdims=True)


def _confident_joint(proba: np.ndarray, codes: np.ndarray, C: int) -> tuple[np.ndarray,
                                                                           np.ndarray]:
    """Per-class thresholds and the calibrated confident joint ``Q[given, true]``.

    A row labelled ``i`` counts towards ``(i, j)`` when ``p_j >= t_j`` for the most
    probable such ``j``; rows are then rescaled to the given-label counts (Northcutt et
    al. 2021, section 3.1).
    """
    thresholds = np.array([proba[codes == c, c].mean() if (codes == c).any() else 1.0
                           for c in range(C)])
    above = proba >= thresholds
    true = np.where(above, proba, -1.0).argmax(axis=1)
    confident = above.any(axis=1)
    joint = np.zeros((C, C))
    np.add.at(joint, (codes[confident], true[confident]), 1.0)
    given = np.bincount(codes, minlength=C).astype(float)
    rows = joint.sum(axis=1, keepdims=True)
    joint = np.where(rows > 0, joint / np.where(rows > 0, rows, 1.0), np.eye(C)) * given[:, None]
    return thresholds, joint / max(joint.sum(), 1e-300)


def _positions(sorted_rows: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Position of each of ``rows`` in the sorted, non-empty ``sorted_rows``, or -1."""
    at = np.minimum(np.searchsorted(sorted_rows, rows), len(sorted_rows) - 1)
    return np.where(sorted_rows[at] == rows, at, -1)


def _kappa(given: np.ndarray, predicted: np.ndarray, C: int) -> float:
    """Cohen's kappa of two labelings, clipped to ``[0, 1]``."""
    observed = float(np.mean(given == predicted))
    chance = float(np.dot(np.bincount(given, minlength=C), np.bincount(predicted, minlength=C))
                   ) / max(len(given), 1) ** 2
    return float(min(max((observed - chance) / (1.0 - chance), 0.0), 1.0)) \
        if chance < 1.0 else 0.0


def _vote_sums(neighbours, vote, codes, scales, n_classes):  # pragma: no cover - compiled
    """``out[s, r, c]``: the votes of row ``r``'s first ``scales[s]`` neighbours labelled
    ``c``, added in the neighbours' order (as :func:`numpy.bincount` adds its weights)."""
    n = neighbours.shape[0]
    out = np.zeros((len(scales), n, n_classes))
    for r in range(n):
        for s in range(len(scales)):
            for j in range(scales[s]):
                p = neighbours[r, j]
                out[s, r, codes[p]] += vote[p]
    return out


#: The compiled :func:`_vote_sums`, built on first use.
_VOTE_SUMS = LazyKernel(globals(), "_vote_sums")


def _pool(parts: list[tuple[np.ndarray, float]]) -> np.ndarray:
    """Log-linear pooling: ``p_c`` proportional to ``prod_k p_kc ** w_k`` (weights sum to 1).

    Unlike a weighted average, which floors every class's probability at the weighted
    smallest of its sources (a model's ``1e-6`` averaged with a vote's ``0.05`` is about
    ``0.01``), the pool keeps how unlikely each source finds a class: the ranking's tail,
    where one row in ten thousand must stand out, stays resolved.
    """
    return softmax(sum(w * _log(p) for p, w in parts), axis=1)


def _surprise(proba: np.ndarray, codes: np.ndarray, transition: np.ndarray) -> np.ndarray:
    """``-ln P(given label right | x)`` from class probabilities and the noise transition.

    The posterior of the given label ``i`` is ``p_i T[i, i] / sum_j p_j T[i, j]``; its
    negative logarithm (in nats, 0 = surely right) is computed from logarithms, so that it
    stays finite and ordered however small the posterior.
    """
    lik = _log(proba) + np.log(transition[codes])
    return np.maximum(logsumexp(lik, axis=1) - lik[np.arange(len(codes)), codes], 0.0)


def _log(proba: np.ndarray) -> np.ndarray:
    """Natural logarithm of probabilities floored at :data:`_PROBA_FLOOR` (finite)."""
    return np.log(np.maximum(proba, _PROBA_FLOOR))


def _r(x: float) -> float:
    return float(f"{x:.6g}")

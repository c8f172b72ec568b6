"""A scikit-learn step that drops suspect rows from the training data before ``fit``.

:class:`PoisonFilter` is a meta-estimator: ``fit(X, y)`` scans ``X`` with ``y`` as the label
column, then fits a clone of the wrapped estimator on the clean rows only. Prediction is
never filtered (every row gets a prediction). It works inside a
:class:`~sklearn.pipeline.Pipeline`, with :func:`~sklearn.model_selection.cross_val_score`
and with grid searches (``poisonfilter__contamination``).

This module imports scikit-learn; ``import poisonscan`` does not load it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, MetaEstimatorMixin, clone
from sklearn.utils.metaestimators import available_if

__all__ = ["PoisonFilter"]


def _estimator_has(attr: str):
    def check(self):
        return hasattr(self.estimator_ if hasattr(self, "estimator_") else self.estimator,
                       attr)
    return check


class PoisonFilter(MetaEstimatorMixin, BaseEstimator):
    """Fit ``estimator`` on the rows of ``(X, y)`` that a poisonscan scan finds clean.

    Parameters
    ----------
    estimator : estimator object
        The model to fit on the clean rows (cloned in ``fit``).
    checks : list of str, optional
        Check families to run (default: all default-on families).
    contamination : float, optional
        Remove this fraction of rows, the highest ranked, but none that no check holds
        any evidence against (instead of the default rule: rows with a hard violation).
    max_suspects : int, optional
        Remove at most this many rows.
    family_weights : dict, optional
        Prior weight of each check family's evidence in the ranking (``{"labels": 0.3}``;
        see the scan option ``family_weights``): which rows ``contamination`` and
        ``max_suspects`` take.
    sample_rows : int, default=100000
        Rows in the seeded sample that checks are fitted on.
    seed : int, default=0
        Seed of every random choice of the scan.
    families : dict, optional
        Per-family parameters, as the tables of the config file
        (``{"bounds": {"margin": 2.0}}``).
    config : path, optional
        A poisonscan TOML config file; the parameters above win over it.
    label_name : str, default="label"
        Name of the label column in the scanned table (``y``); ``"label_"`` suffixes are
        added while it clashes with a column of ``X``.

    Attributes
    ----------
    estimator_ : estimator object
        The clone of ``estimator`` fitted on the clean rows.
    suspects_ : pandas.DataFrame
        The ranked suspects of the scan (``rank``, ``row``, ``score``, ``checks``,
        ``reason``); ``row`` is the 0-based position in ``X``.
    suspect_mask_ : numpy.ndarray of bool
        True for each removed row of ``X``.
    n_removed_ : int
        The number of rows removed before fitting.
    scan_summary_ : dict
        The scan's ``summary.json``.
    classes_ : numpy.ndarray
        The classes of ``estimator_`` (classifiers only).
    n_features_in_ : int
        The number of columns of ``X``.

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> model = make_pipeline(StandardScaler(),
    ...                       PoisonFilter(LogisticRegression(), checks=["bounds"]))
    """

    def __init__(self, estimator, *, checks=None, contamination=None, max_suspects=None,
                 family_weights=None, sample_rows=100_000, seed=0, families=None,
                 config=None, label_name="label"):
        self.estimator = estimator
        self.checks = checks
        self.contamination = contamination
        self.max_suspects = max_suspects
        self.family_weights = family_weights
        self.sample_rows = sample_rows
        self.seed = seed
        self.families = families
        self.config = config
        self.label_name = label_name

    def _frame(self, X) -> pd.DataFrame:
        if isinstance(X, pd.DataFrame):
            return X.reset_index(drop=True)
        array = np.asarray(X)
        if array.ndim != 2:
            raise ValueError(f"X must be 2-dimensional, got shape {array.shape}")
        return pd.DataFrame(array, columns=[f"x{i}" for i in range(array.shape[1])])

    def fit(self, X, y=None, **fit_params: Any) -> "PoisonFilter":
        """Scan ``X`` with ``y`` as the label, then fit the estimator on the clean rows.

        Parameters
        ----------
        X : array-like or pandas.DataFrame of shape (n_samples, n_features)
        y : array-like of shape (n_samples,), optional
            The label column of the scan; without it label-dependent checks are skipped
            and the estimator is fitted as ``fit(X_clean)`` (unsupervised estimators).
        **fit_params
            Passed to ``estimator.fit``; per-row arrays (``sample_weight``) are filtered
            like ``X``.

        Returns
        -------
        self

        Raises
        ------
        poisonscan.ConfigError, poisonscan.InputError
            Bad scan options or data the scan cannot read.
        """
        from .api import scan

        frame = self._frame(X)
        if y is None:  # unsupervised: scan X alone, label-dependent checks are skipped
            y_array, label, data = None, None, frame
        else:
            y_array = np.asarray(y)
            if len(y_array) != len(frame):
                raise ValueError(f"X has {len(frame)} rows but y has {len(y_array)}")
            label = self.label_name
            while label in frame.columns:
                label += "_"
            data = frame.assign(**{label: y_array})
        options = {k: v for k, v in (("checks", self.checks),
                                     ("contamination", self.contamination),
                                     ("max_suspects", self.max_suspects),
                                     ("family_weights", self.family_weights)) if v is not None}
        result = scan(data, label=label, config=self.config, sample_rows=self.sample_rows,
                      seed=self.seed, families=dict(self.families or {}), **options)
        scores = result.scores().sort_values("row")
        mask = scores["suspect"].to_numpy(dtype=bool)
        keep = ~mask
        X_clean = X.iloc[keep] if isinstance(X, (pd.DataFrame, pd.Series)) \
            else np.asarray(X)[keep]
        params = {k: (np.asarray(v)[keep] if np.ndim(v) and len(v) == len(frame) else v)
                  for k, v in fit_params.items()}
        if y is None:
            self.estimator_ = clone(self.estimator).fit(X_clean, **params)
        else:
            y_clean = y.iloc[keep] if isinstance(y, pd.Series) else y_array[keep]
            self.estimator_ = clone(self.estimator).fit(X_clean, y_clean, **params)
        self.suspects_ = result.suspects
        self.suspect_mask_ = mask
        self.n_removed_ = int(mask.sum())
        self.scan_summary_ = result.summary
        self.n_features_in_ = frame.shape[1]
        if hasattr(self.estimator_, "classes_"):
            self.classes_ = self.estimator_.classes_
        return self

    @available_if(_estimator_has("predict"))
    def predict(self, X):
        """Predict with the estimator fitted on the clean rows (no row is filtered)."""
        return self.estimator_.predict(X)

    @available_if(_estimator_has("predict_proba"))
    def predict_proba(self, X):
        """Class probabilities from the estimator fitted on the clean rows."""
        return self.estimator_.predict_proba(X)

    @available_if(_estimator_has("decision_function"))
    def decision_function(self, X):
        """Decision function of the estimator fitted on the clean rows."""
        return self.estimator_.decision_function(X)

    @available_if(_estimator_has("score"))
    def score(self, X, y, **kwargs):
        """The estimator's score on ``(X, y)`` (every row, none filtered)."""
        return self.estimator_.score(X, y, **kwargs)

    @property
    def _estimator_type(self):
        return getattr(self.estimator, "_estimator_type", None)

    def __sklearn_tags__(self):  # scikit-learn >= 1.6
        from sklearn.utils import get_tags

        tags = super().__sklearn_tags__()
        inner = get_tags(self.estimator)
        tags.estimator_type = inner.estimator_type
        tags.classifier_tags = inner.classifier_tags
        tags.regressor_tags = inner.regressor_tags
        return tags

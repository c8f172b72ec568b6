"""Numeric encoding of mixed-type rows, fitted once on the row sample.

Checks that need a feature matrix (outlier detectors, neighbour and model-based label
checks, class geometry, near duplicates) share one :class:`FeatureEncoder`: fitted on
the sample at fit time, applied to every chunk in pass 2 (and cached on the chunk, so
the matrix is built once per chunk whatever the number of checks).

* numeric and datetime columns: non-finite values count as missing; missing values are
  imputed with the median and flagged in an indicator column; values are robust-scaled
  (median and interquartile range) and clipped to ``±clip`` so that one absurd value
  cannot dominate a distance;
* categorical columns: one-hot of the frequent levels, rare and unseen levels share an
  "infrequent" column; missing is a level of its own;
* identifier-like columns are left out and listed in :attr:`FeatureEncoder.skipped_`:
  categorical columns whose sampled values are almost all distinct, and integer-typed
  columns that count along the rows (almost all sampled values distinct, in the rows' order:
  sequential ids such as ``1000000 + row``);
* numeric and categorical columns without a finite or present value in the sample are
  left out too.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
from sklearn.impute import SimpleImputer
from sklearn.preprocessing import OneHotEncoder, RobustScaler

from .io.chunk import Chunk
from .io.schema import CATEGORICAL

_MISSING = "\x00missing"
#: A level no column has (to find where unseen levels go).
_UNSEEN = "\x00unseen"
#: Fewest sampled values to call a numeric column a sequential id.
MIN_SEQUENTIAL_ROWS = 20


class FeatureEncoder:
    """Encode the feature columns of chunks into a dense float matrix.

    Parameters
    ----------
    max_categories : int, default 20
        One-hot columns per categorical column at most (frequent levels + "infrequent").
    min_frequency : float, default 0.005
        Levels rarer than this share of the sample go to "infrequent".
    identifier_ratio : float, default 0.5
        A categorical column whose distinct values exceed this share of the sampled rows
        is treated as an identifier and left out.
    clip : float, default 20.0
        Scaled numeric values are clipped to ``[-clip, clip]``.
    sequential_ratio : float, default 0.99
        An integer column whose sampled values are distinct (but for this share) and
        whose rank correlation with the row order is at least this is a sequential id
        and is left out (``None`` keeps such columns).

    Attributes
    ----------
    numeric_ : list of str
        Numeric and datetime columns encoded.
    categorical_ : list of str
        Categorical columns one-hot encoded.
    skipped_ : dict of str to str
        Feature columns left out, with the reason.
    feature_names_ : list of str
        Names of the output columns.
    """

    def __init__(self, *, max_categories: int = 20, min_frequency: float = 0.005,
                 identifier_ratio: float = 0.5, clip: float = 20.0,
                 sequential_ratio: float | None = 0.99):
        self.max_categories = max_categories
        self.min_frequency = min_frequency
        self.identifier_ratio = identifier_ratio
        self.clip = clip
        self.sequential_ratio = sequential_ratio

    def fit(self, sample: Chunk) -> "FeatureEncoder":
        schema = sample.schema
        n = max(len(sample), 1)
        self.skipped_ = {}
        self.numeric_, self.categorical_ = [], []
        self._levels, self._targets = [], []
        for column in schema.features:
            if schema.kinds[column] != CATEGORICAL:
                values = sample.numeric(column)
                if not np.isfinite(values).any():
                    self.skipped_[column] = "no finite value in the sample"
                elif pa.types.is_integer(schema.types[column]) \
                        and self._sequential(values, sample.rows):
                    self.skipped_[column] = "identifier-like (distinct integers counting " \
                        "along the rows)"
                else:
                    self.numeric_.append(column)
                continue
            texts = sample.strings(column)
            distinct = len(set(texts.tolist()))
            if not (texts != None).any():  # noqa: E711 - elementwise on an object array
                self.skipped_[column] = "no value in the sample"
            elif distinct > self.identifier_ratio * n and distinct > self.max_categories:
                self.skipped_[column] = f"identifier-like ({distinct} distinct of {n} sampled)"
            else:
                self.categorical_.append(column)
        names: list[str] = []
        if self.numeric_:
            X = self._numeric_matrix(sample)
            self.imputer_ = SimpleImputer(strategy="median", add_indicator=True,
                                          keep_empty_features=True).fit(X)
            self.scaler_ = RobustScaler(quantile_range=(10.0, 90.0)).fit(
                self.imputer_.transform(X)[:, :len(self.numeric_)])
            self.scaler_.scale_[self.scaler_.scale_ == 0] = 1.0
            names += self.numeric_
            indicator = self.imputer_.indicator_
            if indicator is not None:
                names += [f"{self.numeric_[i]}__missing" for i in indicator.features_]
        if self.categorical_:
            self.onehot_ = OneHotEncoder(
                handle_unknown="infrequent_if_exist", min_frequency=self.min_frequency,
                max_categories=self.max_categories, sparse_output=False, dtype=np.float64,
            ).fit(self._categorical_matrix(sample))
            names += [str(f) for f in self.onehot_.get_feature_names_out(self.categorical_)]
            self._fit_lookups(len(names) - len(self.onehot_.get_feature_names_out()))
        self.feature_names_ = names
        return self

    def _fit_lookups(self, start: int) -> None:
        """Per categorical column: its levels and the output column of each level.

        Derived from the fitted :class:`~sklearn.preprocessing.OneHotEncoder` by
        transforming probe rows, so that :meth:`transform` gives exactly its output with
        one hash lookup per value (the encoder itself checks values one by one in Python).
        The last entry of each target array is where an unseen level goes (``-1``: none).
        """
        levels = self.onehot_.categories_
        base = [lv[0] for lv in levels]
        # every column's first level sets one output; blocks follow the column order
        fixed = np.flatnonzero(self.onehot_.transform(np.array([base], dtype=object))[0])
        self._levels, self._targets = [], []
        for j, lv in enumerate(levels):
            others = set(fixed.tolist()) - {int(fixed[j])}
            probe = np.array([base] * (len(lv) + 1), dtype=object)
            probe[:, j] = list(lv) + [_UNSEEN]
            hot = self.onehot_.transform(probe)
            target = np.full(len(lv) + 1, -1, dtype=np.int64)
            for r in range(len(lv) + 1):
                mine = set(np.flatnonzero(hot[r]).tolist()) - others
                if mine:
                    target[r] = start + mine.pop()
            self._levels.append(pd.Index(list(lv), dtype=object))
            self._targets.append(target)

    def _sequential(self, values: np.ndarray, rows: np.ndarray) -> bool:
        """Whether a numeric column looks like a sequential id of the rows."""
        if self.sequential_ratio is None:
            return False
        finite = np.isfinite(values)
        values, rows = values[finite], rows[finite]
        if len(values) < MIN_SEQUENTIAL_ROWS or not np.array_equal(values, np.round(values)):
            return False
        distinct = len(np.unique(values))
        if distinct < self.sequential_ratio * len(values):
            return False
        by_value = np.argsort(np.argsort(values, kind="stable"), kind="stable")
        by_row = np.argsort(np.argsort(rows, kind="stable"), kind="stable")
        rho = np.corrcoef(by_value, by_row)[0, 1]
        return bool(np.isfinite(rho) and abs(rho) >= self.sequential_ratio)

    def transform(self, chunk: Chunk) -> np.ndarray:
        """The encoded matrix of ``chunk`` (rows x :attr:`feature_names_`), cached on it."""
        return chunk.cached("encoded", str(id(self)), lambda: self._transform(chunk))

    def _transform(self, chunk: Chunk) -> np.ndarray:
        parts = []
        if self.numeric_:
            imputed = self.imputer_.transform(self._numeric_matrix(chunk))
            k = len(self.numeric_)
            scaled = np.clip(self.scaler_.transform(imputed[:, :k]), -self.clip, self.clip)
            parts += [scaled, imputed[:, k:]]
        if not parts and not self.categorical_:
            return np.zeros((len(chunk), 0))
        out = np.zeros((len(chunk), len(self.feature_names_)))
        done = 0
        for part in parts:
            out[:, done:done + part.shape[1]] = part
            done += part.shape[1]
        rows = np.arange(len(chunk))
        for c, levels, target in zip(self.categorical_, self._levels, self._targets):
            column = target[levels.get_indexer(self._categories_of(chunk, c))]
            hot = column >= 0
            out[rows[hot], column[hot]] = 1.0
        return out

    def _numeric_matrix(self, chunk: Chunk) -> np.ndarray:
        X = np.column_stack([chunk.numeric(c) for c in self.numeric_]).astype(np.float64)
        X[~np.isfinite(X)] = np.nan
        return X

    def _categorical_matrix(self, chunk: Chunk) -> np.ndarray:
        return np.column_stack([self._categories_of(chunk, c) for c in self.categorical_])

    @staticmethod
    def _categories_of(chunk: Chunk, column: str) -> np.ndarray:
        """The column's values as text, missing as a level of its own."""
        values = chunk.strings(column).copy()
        values[values == None] = _MISSING  # noqa: E711 - elementwise on an object array
        return values

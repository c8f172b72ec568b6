"""Numeric encoding of mixed-type rows, fitted once on the row sample.

Checks that need a feature matrix (outlier detectors, neighbour and model-based label
checks, class geometry, near duplicates) share one :class:`FeatureEncoder`: fitted on
the sample at fit time, applied to every chunk in pass 2 (and cached on the chunk, so
the matrix is built once per chunk whatever the number of checks).

* numeric and datetime columns: non-finite values count as missing; missing values are
  imputed with the median and flagged in an indicator column; values are robust-scaled
  (median and interquartile range) and clipped to ``±clip`` so that one absurd value
  cannot dominate a distance; with ``log_skewed``, a skewed non-negative numeric column
  (see :func:`poisonscan.scales.log_scale_helps`) is taken on the ``log1p`` scale first,
  linear again beyond its sampled 99th percentile;
* categorical columns: one-hot of the frequent levels, rare and unseen levels share an
  "infrequent" column; missing is a level of its own;
* vector (embedding) columns — Parquet ``list`` / ``fixed_size_list`` of numbers: the
  components, or the leading ``max_vector_components`` principal components (PCA fitted on
  the sample) when the vectors are wider; see :class:`VectorEncoder`;
* free-text columns — declared (``text_columns``) or detected (categorical columns whose
  sampled values are almost all distinct and have a median of ``text_min_words`` words or
  more): hashed token counts, tf-idf and a truncated SVD fitted on the sample, plus the
  cell's length; see :class:`TextEncoder`;
* identifier-like columns are left out and listed in :attr:`FeatureEncoder.skipped_`:
  categorical columns whose sampled values are almost all distinct (and are not text), and
  integer-typed columns that count along the rows (almost all sampled values distinct, in
  the rows' order: sequential ids such as ``1000000 + row``);
* numeric and categorical columns without a finite or present value in the sample are
  left out too.
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pyarrow as pa
from sklearn.decomposition import PCA, TruncatedSVD
from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer
from sklearn.impute import SimpleImputer
from sklearn.preprocessing import OneHotEncoder, RobustScaler

from .io.chunk import Chunk
from .io.schema import CATEGORICAL, DATETIME
from .scales import log_scale_helps

_MISSING = "\x00missing"
#: A level no column has (to find where unseen levels go).
_UNSEEN = "\x00unseen"
#: Fewest sampled values to call a numeric column a sequential id.
MIN_SEQUENTIAL_ROWS = 20
#: Quantiles whose distance scales a block (as the numeric columns' robust scaler does).
_SPREAD = (10.0, 90.0)
#: Inner quantile ``q`` of the test that a column is skewed (``Q(q)``, ``Q(1 - q)``; the
#: ``bounds`` family's default).
SKEW_QUANTILE = 0.01


def standard_scale(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column means and standard deviations of an encoded matrix, with a deviation of 1
    where a column has no spread (standardising never divides by zero)."""
    scale = X.std(axis=0)
    scale[~(scale > 0)] = 1.0
    return X.mean(axis=0), scale


def varies(X: np.ndarray) -> bool:
    """Whether any column of an encoded matrix takes two values or more: a matrix that
    does not (no column, no row, or every row one point) tells no row from another."""
    return bool(X.shape[0] and X.shape[1] and (X.max(axis=0) > X.min(axis=0)).any())


def _block_scale(Z: np.ndarray) -> tuple[np.ndarray, float]:
    """Per-component medians and one common scale of a block of components.

    The scale is the root mean square over components of their 10-90% quantile distances:
    one number for the whole block keeps the block's own geometry (a component with little
    spread stays small instead of being blown up to the size of the leading ones) while the
    block as a whole is on the scale of a robust-scaled numeric column.
    """
    if not Z.shape[1] or not Z.shape[0]:
        return np.zeros(Z.shape[1]), 1.0
    lo, hi = np.percentile(Z, _SPREAD, axis=0)
    scale = float(np.sqrt(np.mean((hi - lo) ** 2)))
    return np.median(Z, axis=0), scale if np.isfinite(scale) and scale > 0 else 1.0


class VectorEncoder:
    """Encode one vector (embedding) column, fitted on the sample.

    Non-finite or null components are imputed with the component's median; vectors wider
    than ``max_components`` are projected on their leading principal components (PCA fitted
    on the sample: the user's model already made the features, the leading directions keep
    most of their variance and every check stays as fast as on a narrow table); the result
    is centred on its medians, divided by one common scale (see :func:`_block_scale`) and
    clipped to ``±clip``. A row whose vector is null or has a non-finite component is
    flagged in a ``__missing`` column (when the sample has such a row).

    Parameters
    ----------
    max_components : int, default 32
    clip : float, default 20.0

    Attributes
    ----------
    median_ : numpy.ndarray
        Component medians used for imputation.
    pca_ : sklearn.decomposition.PCA or None
    center_ : numpy.ndarray
    scale_ : float
    indicator_ : bool
        Whether the ``__missing`` column is produced.
    n_outputs_ : int
    """

    def __init__(self, *, max_components: int = 32, clip: float = 20.0):
        self.max_components = max_components
        self.clip = clip

    def fit(self, X: np.ndarray) -> "VectorEncoder":
        X = np.where(np.isfinite(X), X, np.nan)
        with np.errstate(all="ignore"):
            empty = np.isnan(X).all(axis=0)
            self.median_ = np.where(empty, 0.0, np.nanmedian(np.where(empty, 0.0, X), axis=0)) \
                if X.shape[0] else np.zeros(X.shape[1])
        filled = np.where(np.isnan(X), self.median_, X)
        self.pca_ = None
        k = min(self.max_components, X.shape[1], X.shape[0])
        if X.shape[1] > self.max_components and k >= 1:
            self.pca_ = PCA(n_components=k, svd_solver="full").fit(filled)
            filled = self.pca_.transform(filled)
        self.center_, self.scale_ = _block_scale(filled)
        self.indicator_ = bool(np.isnan(X).any())
        self.n_outputs_ = filled.shape[1] + int(self.indicator_)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        bad = ~np.isfinite(X)
        filled = np.where(bad, self.median_, X)
        if self.pca_ is not None:
            filled = self.pca_.transform(filled)
        out = np.clip((filled - self.center_) / self.scale_, -self.clip, self.clip)
        if self.indicator_:
            out = np.column_stack([out, bad.any(axis=1).astype(np.float64)])
        return out

    def names(self, column: str) -> list[str]:
        k = self.n_outputs_ - int(self.indicator_)
        stem = f"{column}__pc" if self.pca_ is not None else f"{column}__"
        return [f"{stem}{i}" for i in range(k)] + ([f"{column}__missing"] * self.indicator_)


class TextEncoder:
    """Encode one free-text column, fitted on the sample; transforms rows independently.

    Each cell is cut to its first ``max_chars`` characters (so a 1 MB cell costs no more than
    a long paragraph), tokenised (words of two or more letters or digits, lower-cased) and
    hashed into ``n_features`` counts (:class:`~sklearn.feature_extraction.text.HashingVectorizer`:
    stateless, so chunks need no shared vocabulary and unseen words need no special case);
    the counts are tf-idf weighted (sublinear term frequency; the idf fitted on the sample)
    and projected on ``n_components`` directions of a truncated SVD fitted on the sample.
    The components are centred and divided by one common scale (see :func:`_block_scale`);
    a further column holds ``log(1 + length)`` of the whole cell, robust-scaled, and a
    ``__missing`` column flags null cells when the sample has some. Empty and null cells
    have no tokens: their components are those of an empty document.

    Parameters
    ----------
    n_components : int, default 16
        (the :class:`FeatureEncoder` asks for ``text_components``, 32 by default)
    max_chars : int, default 2000
    n_features : int, default 2**18
    clip : float, default 20.0

    Attributes
    ----------
    tfidf_ : sklearn.feature_extraction.text.TfidfTransformer
    seen_ : numpy.ndarray of int
        Hashed features present in the sample (the only ones the SVD gives weight to).
    projection_ : numpy.ndarray of shape (len(seen_), n_components_)
    center_, scale_ : numpy.ndarray, float
        Of the SVD components.
    length_center_, length_scale_ : float
    indicator_ : bool
    n_outputs_ : int
    """

    def __init__(self, *, n_components: int = 16, max_chars: int = 2000,
                 n_features: int = 2 ** 18, clip: float = 20.0):
        self.n_components = n_components
        self.max_chars = max_chars
        self.n_features = n_features
        self.clip = clip

    def _counts(self, texts: np.ndarray):
        docs = ["" if t is None else t[:self.max_chars] for t in texts]
        return HashingVectorizer(n_features=self.n_features, alternate_sign=False, norm=None,
                                 dtype=np.float64).transform(docs)

    @staticmethod
    def _lengths(texts: np.ndarray) -> np.ndarray:
        return np.log1p(np.fromiter((0 if t is None else len(t) for t in texts),
                                    dtype=np.float64, count=len(texts)))

    def fit(self, texts: np.ndarray) -> "TextEncoder":
        counts = self._counts(texts)
        self.tfidf_ = TfidfTransformer(sublinear_tf=True).fit(counts)
        weighted = self.tfidf_.transform(counts).tocsc()
        self.seen_ = np.flatnonzero(np.diff(weighted.indptr))
        weighted = weighted[:, self.seen_]
        k = min(self.n_components, len(self.seen_) - 1, weighted.shape[0] - 1)
        if k >= 1:
            svd = TruncatedSVD(n_components=k, algorithm="randomized", n_iter=7,
                               random_state=0).fit(weighted.tocsr())
            self.projection_ = svd.components_.T.copy()
        else:
            self.projection_ = np.zeros((len(self.seen_), 0))
        Z = np.asarray(weighted.tocsr() @ self.projection_)
        self.center_, self.scale_ = _block_scale(Z)
        lengths = self._lengths(texts)
        lo, hi = np.percentile(lengths, _SPREAD) if len(lengths) else (0.0, 1.0)
        self.length_center_ = float(np.median(lengths)) if len(lengths) else 0.0
        self.length_scale_ = float(hi - lo) if hi > lo else 1.0
        self.indicator_ = bool(any(t is None for t in texts))
        self.n_outputs_ = self.projection_.shape[1] + 1 + int(self.indicator_)
        return self

    def transform(self, texts: np.ndarray) -> np.ndarray:
        weighted = self.tfidf_.transform(self._counts(texts)).tocsc()[:, self.seen_]
        Z = np.asarray(weighted.tocsr() @ self.projection_)
        parts = [(Z - self.center_) / self.scale_,
                 ((self._lengths(texts) - self.length_center_) / self.length_scale_)[:, None]]
        out = np.clip(np.column_stack(parts), -self.clip, self.clip)
        if self.indicator_:
            out = np.column_stack([out, np.array([t is None for t in texts], dtype=np.float64)])
        return out

    def names(self, column: str) -> list[str]:
        return [f"{column}__svd{i}" for i in range(self.projection_.shape[1])] \
            + [f"{column}__length"] + ([f"{column}__missing"] * self.indicator_)


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
    max_vector_components : int, default 32
        Vector columns wider than this are reduced to this many principal components.
    text_components : int, default 32
        SVD components per text column (32 rather than 16: on the benchmark's ``tweets``,
        fused AP 0.20 vs 0.16 on random flips and 0.13 vs 0.11 on token backdoors, mean
        of seeds 0 and 1; 64 was no better).
    text_min_words : float, default 3
        A categorical column with identifier-like cardinality whose sampled values have a
        median of at least this many words is free text (``None``: only declared columns).
    max_text_chars : int, default 2000
        Characters of a text cell that are featurised (the rest is cut; the length column
        still counts the whole cell).
    log_skewed : bool, default False
        Take the numeric columns whose sampled values are non-negative and skewed (see
        :func:`poisonscan.scales.log_scale_helps`) on the ``log1p`` scale before imputing
        and scaling them, linear again beyond their sampled 99th percentile (see
        :meth:`_fit_log_tails`); a negative value met later is mirrored (``-log1p(-x)``).

    Attributes
    ----------
    numeric_ : list of str
        Numeric and datetime columns encoded.
    log_columns_ : list of str
        Those of them taken on the ``log1p`` scale (empty without ``log_skewed``).
    linear_ : FeatureEncoder or None
        An encoder of the same sample without ``log_skewed`` (see :meth:`share`), whose
        matrix this one's differs from in the log-scaled columns only.
    categorical_ : list of str
        Categorical columns one-hot encoded.
    vectors_ : dict of str to VectorEncoder
        Vector columns encoded.
    text_ : dict of str to TextEncoder
        Free-text columns encoded.
    skipped_ : dict of str to str
        Feature columns left out, with the reason.
    feature_names_ : list of str
        Names of the output columns.
    """

    def __init__(self, *, max_categories: int = 20, min_frequency: float = 0.005,
                 identifier_ratio: float = 0.5, clip: float = 20.0,
                 sequential_ratio: float | None = 0.99, max_vector_components: int = 32,
                 text_components: int = 32, text_min_words: float | None = 3,
                 max_text_chars: int = 2000, log_skewed: bool = False):
        self.max_categories = max_categories
        self.min_frequency = min_frequency
        self.identifier_ratio = identifier_ratio
        self.clip = clip
        self.sequential_ratio = sequential_ratio
        self.max_vector_components = max_vector_components
        self.text_components = text_components
        self.text_min_words = text_min_words
        self.max_text_chars = max_text_chars
        self.log_skewed = log_skewed

    def fit(self, sample: Chunk) -> "FeatureEncoder":
        schema = sample.schema
        n = max(len(sample), 1)
        self.skipped_ = {}
        self.numeric_, self.categorical_ = [], []
        self.vectors_, self.text_ = {}, {}
        self._levels, self._targets = [], []
        for column in schema.vectors:
            if sample.missing(column).all():
                self.skipped_[column] = "no vector in the sample"
            else:
                self.vectors_[column] = VectorEncoder(
                    max_components=self.max_vector_components, clip=self.clip
                ).fit(sample.vectors(column))
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
            many = distinct > self.identifier_ratio * n and distinct > self.max_categories
            if column in schema.text or (many and self._wordy(texts)):
                self.text_[column] = TextEncoder(
                    n_components=self.text_components, max_chars=self.max_text_chars,
                    clip=self.clip).fit(texts)
            elif not (texts != None).any():  # noqa: E711 - elementwise on an object array
                self.skipped_[column] = "no value in the sample"
            elif many:
                self.skipped_[column] = f"identifier-like ({distinct} distinct of {n} sampled)"
            else:
                self.categorical_.append(column)
        names = self._fit_numeric(sample)
        self._block_slices = {}
        for column, block in self._blocks():
            start = len(names)
            names += block.names(column)
            self._block_slices[column] = slice(start, len(names))
        if self.categorical_:
            self.onehot_ = OneHotEncoder(
                handle_unknown="infrequent_if_exist", min_frequency=self.min_frequency,
                max_categories=self.max_categories, sparse_output=False, dtype=np.float64,
            ).fit(self._categorical_matrix(sample))
            names += [str(f) for f in self.onehot_.get_feature_names_out(self.categorical_)]
            self._fit_lookups(len(names) - len(self.onehot_.get_feature_names_out()))
        self.feature_names_ = names
        self.linear_ = None
        return self

    def _fit_numeric(self, sample: Chunk) -> list[str]:
        """Fit the numeric columns' log scale, imputer and scaler; their output names."""
        names: list[str] = []
        self._log = np.zeros(len(self.numeric_), dtype=bool)
        if self.numeric_:
            X = self._numeric_matrix(sample)
            if self.log_skewed:
                kinds = sample.schema.kinds
                self._log = np.array([self._skewed(X[:, j], kinds[c])
                                      for j, c in enumerate(self.numeric_)], dtype=bool)
                self._fit_log_tails(X[:, self._log])
                X = self._on_log_scale(X)
            self.imputer_ = SimpleImputer(strategy="median", add_indicator=True,
                                          keep_empty_features=True).fit(X)
            self.scaler_ = RobustScaler(quantile_range=(10.0, 90.0)).fit(
                self.imputer_.transform(X)[:, :len(self.numeric_)])
            self.scaler_.scale_[self.scaler_.scale_ == 0] = 1.0
            names += self.numeric_
            indicator = self.imputer_.indicator_
            if indicator is not None:
                names += [f"{self.numeric_[i]}__missing" for i in indicator.features_]
        self.log_columns_ = [c for c, log in zip(self.numeric_, self._log) if log]
        return names

    def log_scaled(self, sample: Chunk) -> "FeatureEncoder":
        """This fitted encoder with ``log_skewed``, built on its matrix (:meth:`share`).

        Only the numeric columns are fitted again, on ``sample`` (the sample this encoder
        was fitted on): the other blocks are this encoder's, so the sample's text SVD,
        vector PCA and one-hot levels are not learned twice. The log scale keeps missing
        values missing, so the output columns are the same. Where the sample has no skewed
        column, this encoder itself.
        """
        logged = copy.copy(self)
        logged.log_skewed = True
        logged._fit_numeric(sample)
        return logged.share(self) if logged.log_columns_ else self

    def share(self, linear: "FeatureEncoder") -> "FeatureEncoder":
        """Build on ``linear``'s matrix: fitted on the same sample with the same parameters
        but ``log_skewed``, it encodes every column as this encoder does except the
        log-scaled ones, so :meth:`transform` takes its (cached) matrix and recomputes
        those columns alone -- the same numbers as encoding the whole row again."""
        if linear.feature_names_ != self.feature_names_ or linear.log_columns_:
            raise ValueError("share() needs the linear encoder of the same sample")
        self.linear_ = linear
        return self

    @staticmethod
    def _skewed(values: np.ndarray, kind: str) -> bool:
        """Whether a numeric column's sampled values belong on the ``log1p`` scale."""
        values = values[np.isfinite(values)]
        return kind != DATETIME and values.size > 0 and bool((values >= 0).all()) \
            and log_scale_helps(values, SKEW_QUANTILE)

    def _fit_log_tails(self, X: np.ndarray) -> None:
        """Where each log-scaled column's tail turns linear again (``Q(1 - q)`` of its
        sampled values, :data:`SKEW_QUANTILE`) and the slope beyond it: the column's
        10-90% spread on the log scale over that on its own scale (at least the log
        scale's own slope there), so that a value far above every sampled one -- 235
        years at a company whose longest serving staff have 40 -- lies as many spreads
        out as on the linear scale, while the bulk keeps the log scale's shape."""
        self._log_knee = np.zeros(X.shape[1])
        self._log_slope = np.zeros(X.shape[1])
        for j in range(X.shape[1]):
            v = X[:, j][np.isfinite(X[:, j])]
            knee = float(np.quantile(v, 1 - SKEW_QUANTILE))
            lo, hi = np.quantile(v, [0.1, 0.9])
            spread_log = float(np.log1p(hi) - np.log1p(lo))
            slope = spread_log / float(hi - lo) if hi > lo else 0.0
            self._log_knee[j], self._log_slope[j] = knee, max(slope, 1.0 / (1.0 + knee))

    def _logged(self, Y: np.ndarray) -> np.ndarray:
        """The log-scaled columns' values ``Y`` on their scale: ``log1p`` up to the knee,
        linear beyond it (:meth:`_fit_log_tails`); a negative value, never sampled, is
        mirrored (``-log1p(-x)``)."""
        out = np.sign(Y) * np.log1p(np.abs(Y))
        with np.errstate(invalid="ignore"):
            beyond = Y > self._log_knee
        out[beyond] = (np.log1p(self._log_knee) + (Y - self._log_knee) * self._log_slope)[beyond]
        return out

    def _on_log_scale(self, X: np.ndarray) -> np.ndarray:
        """``X`` with the log-scaled columns (:attr:`log_columns_`) on their scale."""
        if self._log.any():
            X[:, self._log] = self._logged(X[:, self._log])
        return X

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

    def sources(self) -> list[str]:
        """The input column each output column (:attr:`feature_names_`) encodes: a
        missing-value indicator its numeric column, a one-hot level its categorical
        column, a component its vector or text column."""
        out: list[str | None] = [None] * len(self.feature_names_)
        at = 0
        if self.numeric_:
            indicator = self.imputer_.indicator_
            extra = [] if indicator is None else [self.numeric_[i] for i in indicator.features_]
            for column in list(self.numeric_) + extra:
                out[at] = column
                at += 1
        for column, block in self._blocks():
            for _ in block.names(column):
                out[at] = column
                at += 1
        for column, target in zip(self.categorical_, self._targets):
            for j in target[target >= 0].tolist():
                out[j] = column
        return [str(s) for s in out]

    def block_columns(self, column: str) -> slice:
        """The output columns of the vector or text column ``column``.

        Raises
        ------
        KeyError
            ``column`` is not an encoded vector or text column.
        """
        return self._block_slices[column]

    def _blocks(self):
        """``(column, encoder)`` of the vector and text columns, in output order."""
        return list(self.vectors_.items()) + list(self.text_.items())

    def _block_input(self, chunk: Chunk, column: str) -> np.ndarray:
        return chunk.vectors(column) if column in self.vectors_ else chunk.strings(column)

    def _wordy(self, texts: np.ndarray) -> bool:
        """Whether sampled values read as free text (median word count, present cells)."""
        if self.text_min_words is None:
            return False
        words = [len(t[:self.max_text_chars].split()) for t in texts if t is not None]
        return bool(words) and float(np.median(words)) >= self.text_min_words

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

    def transform(self, chunk: Chunk, *, owned: bool = False) -> np.ndarray:
        """The encoded matrix of ``chunk`` (rows x :attr:`feature_names_`), cached on it;
        built on the linear encoder's (:meth:`share`), a fresh copy that is not cached (its
        one user reads it once per chunk, and the sample chunk lives through the scan).

        With ``owned``, a matrix the caller may change: the fresh one as it is, the cached
        one copied.
        """
        if self.linear_ is not None and self.log_columns_:
            return self._relogged(chunk)
        encoded = chunk.cached("encoded", str(id(self)), lambda: self._transform(chunk))
        return encoded.copy() if owned else encoded

    def _transform(self, chunk: Chunk) -> np.ndarray:
        parts = []
        if self.numeric_:
            imputed = self.imputer_.transform(self._on_log_scale(self._numeric_matrix(chunk)))
            k = len(self.numeric_)
            scaled = np.clip(self.scaler_.transform(imputed[:, :k]), -self.clip, self.clip)
            parts += [scaled, imputed[:, k:]]
        parts += [block.transform(self._block_input(chunk, c)) for c, block in self._blocks()]
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

    def _relogged(self, chunk: Chunk) -> np.ndarray:
        """The linear encoder's matrix with the log-scaled columns encoded again, as the
        imputer and scaler of this encoder do it (median fill, then ``(x - centre) /
        scale``, then the clip: the same operations in the same order)."""
        out = self.linear_.transform(chunk).copy()
        at = np.flatnonzero(self._log)
        X = self._numeric_matrix(chunk, [self.numeric_[j] for j in at])
        X = np.where(np.isnan(X), self.imputer_.statistics_[at], self._logged(X))
        X -= self.scaler_.center_[at]
        X /= self.scaler_.scale_[at]
        out[:, at] = np.clip(X, -self.clip, self.clip)
        return out

    def _numeric_matrix(self, chunk: Chunk, columns: list[str] | None = None) -> np.ndarray:
        """The numeric ``columns`` (default: all encoded ones) as float64, non-finite as NaN."""
        columns = self.numeric_ if columns is None else columns
        X = np.column_stack([chunk.numeric(c) for c in columns]).astype(np.float64)
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

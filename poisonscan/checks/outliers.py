"""Outlier checks: rows outside the data's natural shape.

Rows are encoded by the shared :class:`~poisonscan.encode.FeatureEncoder` (fitted on the
row sample), skewed non-negative columns on the ``log1p`` scale (``log_skewed``, see
:mod:`poisonscan.scales`: incomes, durations and counts that span decades), and
standardised with the sample's mean and standard deviation. A small
ensemble of detectors is then fitted once on the sample and applied chunk by chunk:

* ``subspace`` — the share of a row's (centred) energy that lies outside the principal
  subspace of the sample (the components holding ``variance`` of it): the sine squared
  of the angle between the row and the data's main directions. Rows whose columns are
  each plausible but whose combination breaks the correlations of the data score high.
* ``ellipsoid`` — Mahalanobis distance to the row's class centre under a shrunk
  (Ledoit-Wolf) per-class covariance; without a label, one ellipsoid for all rows.
* ``sphere`` and ``slab`` — the per-class defences of Steinhardt, Koh & Liang (2017):
  the distance to the class centroid, and the distance along the direction between the
  class centroid and the centroid of the other classes (one-vs-rest), each in units of
  the class's own robust radius (the median over its sampled rows).
* PyOD detectors ``iforest``, ``hbos`` and ``pca``, fitted on the sample;
* ``ecod`` and ``copod`` — PyOD's ECOD and COPOD formulas, frozen against the sample's
  per-feature empirical distribution (PyOD's own classes re-rank their training data
  with every scored chunk, so a row's score would depend on its chunk);
* ``knn`` — mean cosine distance to the ``10`` nearest rows of the sample (the row
  itself excluded by its id); its cost grows with the sample, so it is not a default.
* ``pairs`` — combinations of two columns' values that the sample holds far fewer of
  than the two values' own shares predict: each encoded column cut at its sample
  deciles, a cell of two columns' bins holding ``O`` other sampled rows where
  independence predicts ``E`` scores ``ln((E + 1) / (O + 1))`` (at least 0), over the
  column pairs with the most depleted cells (see :class:`_Pairs`). Each value of the row is
  common, their combination is not (an 18-year-old with 20 years of tenure); the reason
  names both columns, where the row's values sit among the sampled ones, and the counts.

Every detector's raw score (higher = more suspect) becomes evidence ``-log p``, ``p``
its tail probability against the detector's scores on the sample (the empirical share,
or a power-law tail fitted robustly on the sample where that says more: see
:class:`TailCalibration`). The family score is the mean evidence of the detectors
(Fisher's combination; ``pairs`` adds its evidence beyond :data:`PAIRS_BEYOND`),
comparable across rows and chunks. Outliers are soft evidence: ``violation`` is always
false. Rows whose family score lies in the top ``reason_tail`` of the sample get a reason
naming the detectors that fired and, with a label, the distance to the class centroid in
class radii.

The defaults (``subspace``, ``ellipsoid`` and ``pairs``) were chosen on the
detection-quality benchmark (``benchmarks/quality.py``): on rows whose every value is in
range but whose combination is not, ``subspace`` is the strongest linear-cost detector
of every column at once by far, and the mean with ``ellipsoid`` adds the label's view and
the gross outliers; adding a third detector to the mean (``sphere``, ``iforest``,
``hbos``, ``ecod``) dilutes the agreement of the two. ``pairs`` sees what they dilute, a
relation of two columns broken, and adds only where it is sure (:data:`PAIRS_BEYOND`).
The covariances are fitted on all sampled rows of a class: trimmed or reweighted
(MCD-like) estimates ranked worse there, heavy-tailed real columns being the norm.

Class centres come from the sample, robustly (the mean of the 90% of a class's sampled
rows closest to its coordinate-wise median), not from exact pass-1 sums: the encoding
(imputation, clipping, one-hot of frequent levels) only exists after the sample is seen,
and an exact mean is what poisons move (Koh, Steinhardt & Liang 2018), while the
sampling error of a 100,000-row sample is negligible against a class radius.

Scoring never calls BLAS matrix products: their rounding depends on how many rows are
multiplied at once, which would make a row's score depend on its chunk. Products go
through :func:`numpy.einsum` (no BLAS, float32), whose result for a row depends on that
row only.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, ClassVar

import numpy as np
import pandas as pd

from ..compiled import LazyKernel
from ..config import Option
from ..encode import standard_scale, varies
from ..errors import ConfigError
from .base import Check, CheckScores, quote

#: Detectors run when the user does not choose (chosen on benchmarks/quality.py).
DEFAULT_DETECTORS: tuple[str, ...] = ("subspace", "ellipsoid", "pairs")
#: Fewest sampled rows (with at least one encoded feature) to fit anything on.
MIN_FIT_ROWS = 5
#: Fewest sampled rows a class needs to get its own centre, radius and covariance.
MIN_CLASS_ROWS = 10
#: Classes modelled at most (the largest in the sample); rows of the others are
#: measured against the nearest modelled class centre.
MAX_CLASSES = 100
#: Share of a class's sampled rows (the closest to its coordinate-wise median) that its
#: centre is the mean of.
CENTRE_SHARE = 0.9
#: Robust standard deviations from the median beyond which the ``subspace`` detector's
#: principal components do not see a value.
WINSOR = 3.0
#: Neighbours of the ``knn`` detector, and the sample rows it searches at most.
KNN_NEIGHBOURS = 10
KNN_REFERENCE = 20_000
#: Bins (sample quantiles) per encoded column of the ``pairs`` detector, at most: fewer on
#: small samples, so that a pair of bins holds ``PAIR_CELL_ROWS`` sampled rows on average.
PAIR_BINS = 10
PAIR_CELL_ROWS = 20
#: Column pairs the ``pairs`` detector scores (those whose most depleted combination is
#: the most depleted), the sampled rows it chooses them on (by keyed hash) and the
#: encoded columns it considers, at most (the first ones: numbers before categories).
PAIR_KEEP = 32
PAIR_SELECT_ROWS = 20_000
PAIR_COLUMNS = 128
#: Share of the sampled rows a cell may hold and still be evidence: one holding more is a
#: sub-population of the data (wives among the married), however depleted.
PAIR_COMMON_SHARE = 0.01
#: Evidence (``-log p``) of the ``pairs`` detector beyond which it adds to the family
#: score: a relation of two columns is one among many, which a mean with the detectors
#: of every column at once would dilute, and most rows' cells say nothing either way,
#: which a mean would add as noise (gross outliers lost most). On the quality benchmark
#: (241 seed-0 cases) the fused mean AP went 0.7534 -> 0.7608 with 3.0 and 0.7621 with
#: 2.5, against 0.758 for a plain sum; jointly impossible rows 0.41 -> 0.48 (0.50). At 2.5
#: hpc's gross outliers fell below 0.98 (0.978); at 3.0 they stay at 0.981
#: (``benchmarks/RESULTS.md``, session 17).
PAIRS_BEYOND = 3.0
#: Largest evidence of one detector (``-log p``): keeps every score finite.
MAX_EVIDENCE = 1000.0
#: Detectors named in one reason at most, and the share of sampled rows a detector's
#: score must be in the top of to be named (the strongest one is named in any case).
MAX_DETECTORS_IN_REASON = 2
REASON_DETECTOR_SHARE = 0.05


# ----------------------------------------------------------------------------- helpers

def _projected_sqnorm(a: np.ndarray, basis: np.ndarray,
                      shift: np.ndarray | None = None) -> np.ndarray:
    """``|(a - shift) @ basis|^2`` per row, whose value does not depend on the other rows
    of ``a``.

    BLAS would round a row differently depending on how many rows are multiplied at
    once; :func:`numpy.einsum` (without ``optimize``) does not call BLAS. The product is
    taken in float32 (twice as fast; ample for an outlier score), the norm summed in
    float64. ``basis`` must be float32. The difference is taken in float64 and rounded
    to float32 as it is stored (one pass, one float32 matrix).
    """
    if basis.shape[1] == 0:
        return np.zeros(len(a))
    if shift is None:
        a32 = a.astype(np.float32)
    else:
        a32 = np.subtract(a, shift, out=np.empty(a.shape, np.float32), casting="same_kind")
    projected = np.einsum("ij,jk->ik", a32, basis)
    return np.einsum("ij,ij->i", projected, projected, dtype=np.float64)


def _sqnorm(a: np.ndarray) -> np.ndarray:
    """Squared Euclidean norm of every row."""
    return np.einsum("ij,ij->i", a, a)


def _robust_centre(Z: np.ndarray) -> np.ndarray:
    """Mean of the :data:`CENTRE_SHARE` of rows closest to the coordinate-wise median."""
    median = np.median(Z, axis=0)
    distance = _sqnorm(Z - median)
    keep = distance <= np.quantile(distance, CENTRE_SHARE)
    return Z[keep].mean(axis=0)


def _winsorised(R: np.ndarray) -> np.ndarray:
    """Each column clipped to its median ± :data:`WINSOR` robust standard deviations
    (interquartile range / 1.349); columns with no interquartile spread stay as they are."""
    q25, q50, q75 = np.quantile(R, [0.25, 0.5, 0.75], axis=0)
    spread = (q75 - q25) / 1.349
    low = np.where(spread > 0, q50 - WINSOR * spread, -np.inf)
    high = np.where(spread > 0, q50 + WINSOR * spread, np.inf)
    return np.clip(R, low, high)


def _positive(x: float, fallback: float = 1.0) -> float:
    return float(x) if np.isfinite(x) and x > 0 else fallback


@dataclasses.dataclass
class _Context:
    """What a detector sees at fit time besides the standardised sample."""

    seed: int
    codes: np.ndarray           # group (class) index of every sampled row
    centres: np.ndarray         # robust centre of every group
    rows: np.ndarray            # row ids of the sampled rows
    keys: np.ndarray            # keyed hashes of the sampled rows
    features: list[str]         # name of every encoded column
    sources: list[str]          # input column of every encoded column

    def keyed(self, limit: int) -> np.ndarray:
        """Positions of the ``limit`` sampled rows with the smallest keys, in sample order:
        a reproducible subset of the sample."""
        return np.sort(np.argsort(self.keys, kind="stable")[:limit])


# --------------------------------------------------------------------------- detectors

class _Detector:
    """Internal detector protocol: ``fit(Z, ctx)`` then ``score(Z, codes, rows)``.

    ``Z`` is the standardised encoded matrix, ``codes`` the group (class) index of each
    row (rows without a modelled class are assigned to the nearest centre first) and
    ``rows`` the row ids. ``score`` returns raw suspicion, higher = more suspect, and must
    not change the detector.
    """

    needs_label: ClassVar[bool] = False

    def fit(self, Z: np.ndarray, ctx: _Context) -> "_Detector":
        raise NotImplementedError

    def score(self, Z: np.ndarray, codes: np.ndarray, rows: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {}

    def unusable(self) -> str | None:
        """Why the fitted detector has nothing to score (it is then skipped), else None."""
        return None

    def silent(self, raw: float) -> bool:
        """Whether a raw score says nothing about its row (the detector is not named)."""
        return False

    def explainer(self, Z: np.ndarray, rows: np.ndarray) -> Callable[[int], str | None]:
        """For the rows of a block that get a reason: ``explain(k)`` says in words what set
        row ``k``'s score apart (``None``: the detector's share of rows says it all). What
        the words need is worked out once for the block; the words only for rows that name
        the detector."""
        return lambda k: None


class _Subspace(_Detector):
    """Share of the centred squared norm outside the principal subspace.

    The principal components come from the sample winsorised column by column (see
    :func:`_winsorised`): gross outliers in the sample would otherwise pull components
    towards themselves and hide inside the subspace.
    """

    def __init__(self, variance: float):
        self.variance = variance

    def fit(self, Z, ctx):
        self.mean_ = Z.mean(axis=0)
        R = Z - self.mean_
        cov = np.atleast_2d(np.cov(_winsorised(R), rowvar=False, bias=True))
        values, vectors = np.linalg.eigh(cov)
        order = np.argsort(values)[::-1]
        values, vectors = np.clip(values[order], 0.0, None), vectors[:, order]
        total = values.sum()
        d = Z.shape[1]
        k = d if total <= 0 else \
            min(int(np.searchsorted(np.cumsum(values) / total, self.variance) + 1), d)
        self.n_components_ = k
        # the residual is the energy along the other (minor) components: project on
        # whichever basis is smaller
        self.inside_ = k <= d - k
        basis = vectors[:, :k] if self.inside_ else vectors[:, k:]
        self.basis_ = np.ascontiguousarray(basis, dtype=np.float32)
        return self

    def score(self, Z, codes, rows):
        R = Z - self.mean_
        total = _sqnorm(R)
        along = _projected_sqnorm(R, self.basis_)
        residual = total - along if self.inside_ else along
        return np.clip(residual, 0.0, None) / np.maximum(total, 1e-12)

    def describe(self):
        return {"components": int(self.n_components_)}


class _ClassGeometry(_Detector):
    """Shared part of the class geometry: the robust class centres of the check."""

    needs_label = True

    def fit(self, Z, ctx):
        self.centres_ = ctx.centres
        self.radii_ = np.ones(len(ctx.centres))
        return self

    def _residuals(self, Z, codes):
        return Z - self.centres_[codes]

    def _median_per_group(self, values, codes):
        for c in range(len(self.radii_)):
            inside = values[codes == c]
            self.radii_[c] = _positive(np.median(inside)) if len(inside) else 1.0


class _Sphere(_ClassGeometry):
    """Distance to the class centroid, in units of the class's median distance."""

    def fit(self, Z, ctx):
        super().fit(Z, ctx)
        self._median_per_group(np.sqrt(_sqnorm(self._residuals(Z, ctx.codes))), ctx.codes)
        return self

    def score(self, Z, codes, rows):
        return np.sqrt(_sqnorm(self._residuals(Z, codes))) / self.radii_[codes]


class _Slab(_ClassGeometry):
    """Distance along the direction between the class centroid and the others'."""

    def fit(self, Z, ctx):
        super().fit(Z, ctx)
        n_groups = len(self.radii_)
        counts = np.bincount(ctx.codes, minlength=n_groups).astype(float)
        self.directions_ = np.zeros_like(self.centres_)
        for c in range(n_groups):
            weights = counts.copy()
            weights[c] = 0.0
            if weights.sum() == 0:
                continue
            rest = (weights[:, None] * self.centres_).sum(axis=0) / weights.sum()
            direction = self.centres_[c] - rest
            norm = np.linalg.norm(direction)
            if norm > 0:
                self.directions_[c] = direction / norm
        self._median_per_group(self._along(Z, ctx.codes), ctx.codes)
        return self

    def _along(self, Z, codes):
        return np.abs(np.einsum("ij,ij->i", self._residuals(Z, codes), self.directions_[codes]))

    def score(self, Z, codes, rows):
        return self._along(Z, codes) / self.radii_[codes]


class _Ellipsoid(_ClassGeometry):
    """Mahalanobis distance to the class centre under a shrunk per-class covariance."""

    needs_label = False  # one ellipsoid for every row without a label

    def fit(self, Z, ctx):
        from sklearn.covariance import LedoitWolf

        super().fit(Z, ctx)
        d = Z.shape[1]
        n_groups = len(self.radii_)
        self.whiten_ = np.zeros((n_groups, d, d), dtype=np.float32)
        R = self._residuals(Z, ctx.codes)
        for c in range(n_groups):
            members = R[ctx.codes == c]
            if len(members) < 2:
                self.whiten_[c] = np.eye(d)
                continue
            precision = LedoitWolf(assume_centered=True).fit(members).precision_
            # precision = W W^T, so that the squared distance is |r W|^2
            values, vectors = np.linalg.eigh((precision + precision.T) / 2)
            self.whiten_[c] = vectors * np.sqrt(np.clip(values, 0.0, None))
        return self

    def score(self, Z, codes, rows):
        out = np.empty(len(Z))
        if len(self.radii_) == 1:
            out[:] = _projected_sqnorm(Z, self.whiten_[0], shift=self.centres_[0])
        else:
            for c in np.unique(codes):
                at = np.flatnonzero(codes == c)
                out[at] = _projected_sqnorm(Z[at], self.whiten_[c], shift=self.centres_[c])
        return out / max(Z.shape[1], 1)


class _PyOD(_Detector):
    """A PyOD detector fitted on the sample (one whose scoring is chunk-invariant)."""

    def __init__(self, make: Callable[[int], Any]):
        self.make = make

    def fit(self, Z, ctx):
        self.model_ = self.make(ctx.seed).fit(Z)
        return self

    def score(self, Z, codes, rows):
        return np.asarray(self.model_.decision_function(Z), dtype=np.float64)


def _iforest(seed: int):
    from pyod.models.iforest import IForest
    return IForest(n_estimators=100, random_state=seed, n_jobs=1)


def _hbos(seed: int):
    from pyod.models.hbos import HBOS
    return HBOS()


class _PyODPCA(_PyOD):
    """PyOD PCA on the components of non-zero variance (PyOD divides by each selected
    component's explained variance, which is zero for collinear one-hot columns)."""

    def __init__(self):
        super().__init__(None)

    def fit(self, Z, ctx):
        from pyod.models.pca import PCA

        values = np.linalg.eigvalsh(np.atleast_2d(np.cov(Z, rowvar=False, bias=True)))
        rank = int((values > 1e-9 * max(values.max(), 1e-300)).sum())
        self.model_ = PCA(n_components=max(rank, 1), random_state=ctx.seed).fit(Z)
        return self


class _FrozenTails(_Detector):
    """PyOD's ECOD or COPOD formula against the sample's per-feature distribution."""

    def __init__(self, kind: str):
        self.kind = kind

    def fit(self, Z, ctx):
        self.sorted_ = [np.sort(Z[:, j]) for j in range(Z.shape[1])]
        third = ((Z - Z.mean(axis=0)) ** 3).mean(axis=0)
        self.skew_sign_ = np.sign(third)
        return self

    def score(self, Z, codes, rows):
        out = np.zeros(len(Z))
        for j, ref in enumerate(self.sorted_):
            n = len(ref)
            left = -np.log((np.searchsorted(ref, Z[:, j], side="right") + 1.0) / (n + 1.0))
            right = -np.log((n - np.searchsorted(ref, Z[:, j], side="left") + 1.0) / (n + 1.0))
            skewed = right if self.skew_sign_[j] >= 0 else left
            if self.kind == "ecod":
                out += np.maximum(np.maximum(left, right), skewed)
            else:
                out += np.maximum((left + right) / 2.0, skewed)
        return out


class _KNN(_Detector):
    """Mean cosine distance to the nearest sampled rows, the row itself excluded.

    The search tree is rebuilt for every scored chunk (a fraction of the query cost):
    scikit-learn's trees count their queries, so querying a stored tree would change
    the check.
    """

    def fit(self, Z, ctx):
        keep = ctx.keyed(KNN_REFERENCE)
        self.mean_ = Z.mean(axis=0)
        self.rows_ = ctx.rows[keep]
        self.reference_ = self._unit(Z[keep])
        return self

    def _unit(self, Z):
        R = Z - self.mean_
        return R / np.maximum(np.sqrt(_sqnorm(R)), 1e-12)[:, None]

    def score(self, Z, codes, rows):
        from sklearn.neighbors import KDTree

        k = min(KNN_NEIGHBOURS, len(self.rows_) - 1)
        if k < 1:
            return np.zeros(len(Z))
        distance, index = KDTree(self.reference_).query(self._unit(Z), k=k + 1)
        own = self.rows_[index] == rows[:, None]
        # drop the row itself where it is in the reference, else the farthest neighbour
        drop = np.where(own.any(axis=1), own.argmax(axis=1), k)
        keep = np.ones_like(own)
        keep[np.arange(len(Z)), drop] = False
        chord = distance[keep].reshape(len(Z), k)
        return (chord ** 2 / 2.0).mean(axis=1)  # 1 - cos = |u - v|^2 / 2


class _Pairs(_Detector):
    """Combinations of two columns' values that the sample holds far fewer of than the
    two values' own shares predict.

    Every encoded column is cut at its sample quantiles into at most :data:`PAIR_BINS`
    bins. For two encoded columns of different input columns, a cell (a bin of each)
    holding ``O`` sampled rows where independence predicts ``E = n_a n_b / N`` scores
    ``ln((E + 1) / (O + 1))``, the row itself not counted (``O - 1`` for a sampled row).
    A row whose values are each in range but whose combination the data does not hold
    (an 18-year-old with 20 years of tenure) lands in a cell with ``O`` near 0 and a large
    ``E``. A cell holding at least ``E`` scores 0, and so does one holding more than
    :data:`PAIR_COMMON_SHARE` of the sample (a sub-population, however depleted: the wives
    among the married). A column whose cuts hold its smallest value (a mass of zeros, a
    rare 0/1 flag) is cut just above it instead. A row's score is its largest
    over the :data:`PAIR_KEEP` column pairs with the most depleted cells (chosen on
    :data:`PAIR_SELECT_ROWS` sampled rows; the counts are the whole sample's), so the
    cost of scoring is linear in rows.
    """

    def fit(self, Z, ctx):
        n = len(Z)
        bins = min(PAIR_BINS, max(2, int(math.sqrt(n / PAIR_CELL_ROWS))))
        quantiles = np.arange(1, bins) / bins
        edges, columns = {}, []
        low, high = Z.min(axis=0), Z.max(axis=0)
        for j in range(Z.shape[1]):
            cut = np.unique(np.quantile(Z[:, j], quantiles))
            if _one_bin(cut, low[j], high[j]):
                # the cuts hold the smallest value (a mass of zeros, a rare 0/1 flag):
                # cut just above it, so that the mass is a bin of its own
                cut = np.nextafter(cut, np.inf)
            if not _one_bin(cut, low[j], high[j]):
                edges[j] = cut
                columns.append(j)
            if len(columns) == PAIR_COLUMNS:
                break
        self.rows_ = np.sort(ctx.rows)
        kept = self._select(Z, ctx, columns, edges)
        used = sorted({j for pair in kept for j in pair})
        at = {j: k for k, j in enumerate(used)}
        self.columns_ = np.array(used, dtype=np.int64)
        self.edges_ = {j: edges[j] for j in used}
        self.pairs_, self.tables_, self.shares_ = kept, [], {}
        for a, b in kept:
            first, second = self._bin(Z, a), self._bin(Z, b)
            ka, kb = len(edges[a]) + 1, len(edges[b]) + 1
            count = np.bincount(first * kb + second, minlength=ka * kb).astype(np.float64)
            na = np.bincount(first, minlength=ka).astype(np.float64)
            nb = np.bincount(second, minlength=kb).astype(np.float64)
            self.tables_.append((count, np.outer(na, nb).ravel() / n))
            for j, counts in ((a, na), (b, nb)):
                self.shares_[j] = np.concatenate([[0.0], np.cumsum(counts)]) / n
        self.features_ = {j: ctx.features[j] for j in used}
        self.kinds_ = {j: _column_kind(j, Z, ctx, low, high) for j in used}
        # flat arrays for the compiled kernel: every used column's edges, every pair's
        # columns (positions in ``columns_``) and cells, for a row outside the sample and
        # for a sampled row (itself not counted)
        cuts = [edges[j] for j in used]
        self.edge_start_ = np.concatenate([[0], np.cumsum([len(c) for c in cuts])]).astype(
            np.int64)
        self.edge_values_ = np.concatenate(cuts or [np.zeros(0)])
        self.first_ = np.array([at[a] for a, _ in kept], dtype=np.int64)
        self.second_ = np.array([at[b] for _, b in kept], dtype=np.int64)
        self.table_start_ = np.concatenate(
            [[0], np.cumsum([len(c) for c, _ in self.tables_])]).astype(np.int64)
        counts = np.concatenate([c for c, _ in self.tables_] or [np.zeros(0)])
        expected = np.concatenate([e for _, e in self.tables_] or [np.zeros(0)])
        # a cell holding at least what independence predicts, or a share of the sample
        # (a sub-population, however depleted), says nothing: 0
        common = counts > PAIR_COMMON_SHARE * n
        self.outside_ = np.where(common, 0.0, np.maximum(
            np.log((expected + 1.0) / (counts + 1.0)), 0.0))
        self.inside_ = np.where(common, 0.0, np.maximum(
            np.log((expected + 1.0) / np.maximum(counts, 1.0)), 0.0))
        return self

    def unusable(self) -> str | None:
        return None if self.pairs_ else "no two input columns with two bins each"

    @staticmethod
    def _select(Z, ctx, columns, edges) -> list[tuple[int, int]]:
        """The :data:`PAIR_KEEP` column pairs of different input columns whose most
        depleted cell is the most depleted, on a keyed subset of the sampled rows (one
        sparse product counts every pair's cells at once)."""
        from scipy import sparse

        if len(columns) < 2:
            return []
        keep = ctx.keyed(PAIR_SELECT_ROWS)
        sizes = np.array([len(edges[j]) + 1 for j in columns])
        start = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        codes = np.column_stack([np.searchsorted(edges[j], Z[keep, j], side="right")
                                 for j in columns]) + start
        m, c = codes.shape
        hot = sparse.csr_matrix((np.ones(m * c, dtype=np.int64), codes.ravel(),
                                 np.arange(0, m * c + 1, c)), shape=(m, int(sizes.sum())))
        together = (hot.T @ hot).toarray().astype(np.float64)
        alone = np.diag(together)
        depletion = np.log((np.outer(alone, alone) / m + 1.0) / (together + 1.0))
        worst = np.maximum.reduceat(np.maximum.reduceat(depletion, start, axis=0),
                                    start, axis=1)
        source = np.array([ctx.sources[j] for j in columns], dtype=object)
        i, j = np.triu_indices(c, k=1)
        apart = source[i] != source[j]
        i, j = i[apart], j[apart]
        order = np.argsort(-worst[i, j], kind="stable")[:PAIR_KEEP]
        return [(columns[a], columns[b]) for a, b in zip(i[order].tolist(), j[order].tolist())]

    def _bin(self, Z, j) -> np.ndarray:
        return np.searchsorted(self.edges_[j], Z[:, j], side="right")

    def _sampled(self, rows) -> np.ndarray:
        at = np.minimum(np.searchsorted(self.rows_, rows), max(len(self.rows_) - 1, 0))
        return self.rows_[at] == rows if len(self.rows_) else np.zeros(len(rows), dtype=bool)

    def _depletion(self, Z, own) -> tuple[np.ndarray, np.ndarray]:
        """Every row's largest depletion over the kept pairs, and the first pair that
        gives it (compiled: one pass over the rows, no per-pair temporaries); ``own``:
        which rows are sampled."""
        out = np.zeros(len(Z))
        which = np.zeros(len(Z), dtype=np.int64)
        if self.pairs_:
            _PAIRS_KERNEL.get()(np.ascontiguousarray(Z, dtype=np.float64), self.columns_,
                                self.edge_values_, self.edge_start_, self.first_,
                                self.second_, self.table_start_, self.outside_,
                                self.inside_, own, out, which)
        return out, which

    def score(self, Z, codes, rows):
        return self._depletion(Z, self._sampled(rows))[0]

    def silent(self, raw):
        return not raw > 0.0

    def explainer(self, Z, rows):
        own = self._sampled(rows)
        which = self._depletion(Z, own)[1]

        def explain(k: int) -> str | None:
            if not self.pairs_:
                return None
            row = Z[k:k + 1]
            (a, b), (count, expected) = self.pairs_[which[k]], self.tables_[which[k]]
            first, second = int(self._bin(row, a)[0]), int(self._bin(row, b)[0])
            cell = first * (len(self.edges_[b]) + 1) + second
            return (f"{self._where(row, a, first)} with {self._where(row, b, second)}: "
                    f"{count[cell] - own[k]:.0f} other sampled rows, "
                    f"{expected[cell]:.3g} expected")
        return explain

    def _where(self, Z, j, k) -> str:
        """Where the one row ``Z`` sits in encoded column ``j`` (its bin ``k``), in the
        input column's terms: ``'age' at percentiles 0-10`` (of the sampled values),
        ``'tenure' missing``, ``'marital' is 'Married'``."""
        kind, source, detail = self.kinds_[j]
        if kind == "range":
            if detail is not None and Z[0, detail[0]] >= detail[1]:
                return f"{quote(source)} missing"
            low, high = 100.0 * self.shares_[j][k], 100.0 * self.shares_[j][k + 1]
            return f"{quote(source)} at percentiles {low:.0f}-{high:.0f}"
        on = Z[0, j] >= detail
        if kind == "missing":
            return f"{quote(source)} {'missing' if on else 'present'}"
        level = "a rare level" if kind == "rare" else quote(_level(self.features_[j], source))
        return f"{quote(source)} {'is' if on else 'is not'} {level}"

    def describe(self):
        return {"pairs": [[self.features_[a], self.features_[b]] for a, b in self.pairs_[:10]]}


def _pairs_depletion(Z, columns, edge_values, edge_start, first, second, table_start,
                     outside, inside, own, out, which):
    """Compiled body of :meth:`_Pairs._depletion`. Per row: each used column's bin (the
    number of its edges at or below the value, as ``searchsorted(side="right")``; NaN
    past every edge), then the largest table entry over the pairs and the first pair
    that holds it."""
    bins = np.empty(len(columns), dtype=np.int64)
    for i in range(Z.shape[0]):
        for c in range(len(columns)):
            x = Z[i, columns[c]]
            b = edge_start[c]
            end = edge_start[c + 1]
            if x != x:
                b = end
            else:
                while b < end and edge_values[b] <= x:
                    b += 1
            bins[c] = b - edge_start[c]
        table = inside if own[i] else outside
        best = -np.inf
        arg = 0
        for p in range(len(first)):
            width = edge_start[second[p] + 1] - edge_start[second[p]] + 1
            value = table[table_start[p] + bins[first[p]] * width + bins[second[p]]]
            if value > best:
                best = value
                arg = p
        out[i] = best
        which[i] = arg


def _column_kind(j: int, Z: np.ndarray, ctx: _Context, low: np.ndarray,
                 high: np.ndarray) -> tuple:
    """How a reason names encoded column ``j``: ``("missing", source, value)`` for a
    missing-value indicator, ``("level", source, value)`` or ``("rare", source, value)``
    for a one-hot level (``value``: the standardised 1), else ``("range", name,
    indicator)``: ``name`` the input column of a numeric column (the encoded column's own
    name for a text or vector component), ``indicator`` the ``(column, standardised 1)``
    of its missing-value indicator, or None."""
    name, source = ctx.features[j], ctx.sources[j]
    if name == f"{source}__missing":
        return "missing", source, float(high[j])
    if name.startswith(f"{source}_") and not name.startswith(f"{source}__") \
            and np.all((Z[:, j] == low[j]) | (Z[:, j] == high[j])):
        level = _level(name, source)
        return ("rare" if level == "infrequent_sklearn" else "level"), source, float(high[j])
    indicator = f"{source}__missing"
    if name == source and indicator in ctx.features:
        m = ctx.features.index(indicator)
        return "range", source, (m, float(high[m]))
    return "range", name, None


def _level(name: str, source: str) -> str:
    """The level of one-hot column ``name`` of categorical column ``source``."""
    return name[len(source) + 1:]


def _one_bin(cut: np.ndarray, low: float, high: float) -> bool:
    """Whether a column's smallest and largest values fall in one bin of ``cut``."""
    return bool(np.searchsorted(cut, low, side="right") == np.searchsorted(cut, high,
                                                                            side="right"))


#: The compiled :func:`_pairs_depletion`, built on first use.
_PAIRS_KERNEL = LazyKernel(globals(), "_pairs_depletion")


@dataclasses.dataclass(frozen=True)
class DetectorSpec:
    """A detector the ``detectors`` parameter can name."""

    make: Callable[["OutlierCheck"], _Detector]
    needs_label: bool
    description: str
    linear: bool = True
    added_beyond: float | None = None


#: Every detector, by name.
DETECTORS: dict[str, DetectorSpec] = {
    "subspace": DetectorSpec(lambda c: _Subspace(c.variance), False,
                             "share of the row outside the sample's principal subspace"),
    "ellipsoid": DetectorSpec(lambda c: _Ellipsoid(), False,
                              "Mahalanobis distance to the class centre (shrunk covariance)"),
    "sphere": DetectorSpec(lambda c: _Sphere(), True, "distance to the class centroid"),
    "slab": DetectorSpec(lambda c: _Slab(), True,
                         "distance along the direction between class centroids"),
    "iforest": DetectorSpec(lambda c: _PyOD(_iforest), False, "PyOD IForest"),
    "hbos": DetectorSpec(lambda c: _PyOD(_hbos), False, "PyOD HBOS"),
    "pca": DetectorSpec(lambda c: _PyODPCA(), False, "PyOD PCA"),
    "ecod": DetectorSpec(lambda c: _FrozenTails("ecod"), False,
                         "ECOD tails frozen against the sample"),
    "copod": DetectorSpec(lambda c: _FrozenTails("copod"), False,
                          "COPOD tails frozen against the sample"),
    "knn": DetectorSpec(lambda c: _KNN(), False,
                        f"mean cosine distance to the {KNN_NEIGHBOURS} nearest sampled rows",
                        linear=False),
    "pairs": DetectorSpec(lambda c: _Pairs(), False,
                          "combinations of two columns' values the sample holds far fewer of "
                          "than their shares predict", added_beyond=PAIRS_BEYOND),
}


# ------------------------------------------------------------------------- calibration

@dataclasses.dataclass(frozen=True)
class TailCalibration:
    """Evidence ``-log p`` of raw scores against the sample's scores of one detector.

    Two estimates of the tail probability ``p``, the larger evidence wins:

    * empirical: the mid-rank share ``(1 + #{s' > s} + #{s' = s} / 2) / (n + 1)`` of the
      sampled scores, interpolated linearly between sampled values (it cannot go below
      ``1 / (n + 1)``, however extreme the row);
    * a power-law tail fitted robustly on the sampled scores: on the log scale, an
      exponential above the median whose scale comes from the median and the 90th
      percentile (so up to 10% of poisons in the sample do not move it). It ranks the
      extremes by how far out they are, where ranks alone say "top 1%" for all of them,
      and extrapolates beyond the largest sampled score.
    """

    values: np.ndarray      # distinct sampled scores, increasing
    evidence: np.ndarray    # empirical evidence at each of them
    n: int
    offset: float           # scores are shifted by this before the log
    median: float           # median of the log-shifted sampled scores
    scale: float            # exponential scale of their upper tail (0: none)

    @classmethod
    def fit(cls, scores: np.ndarray) -> "TailCalibration":
        scores = np.sort(_finite(scores, nan=0.0))
        n = len(scores)
        values, counts = np.unique(scores, return_counts=True)
        above = n - np.cumsum(counts)
        tail = (1.0 + above + counts / 2.0) / (n + 1.0)
        offset = min(0.0, float(scores[0]))
        logs = _log_shifted(scores, offset)
        median, high = (float(v) for v in np.quantile(logs, [0.5, 0.9]))
        scale = (high - median) / math.log(5.0) if high > median else 0.0
        return cls(values, -np.log(tail), n, offset, median, scale)

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        scores = _finite(scores, nan=-np.inf)
        evidence = np.interp(scores, self.values, self.evidence)
        if self.scale > 0:
            logs = _log_shifted(scores, self.offset)
            np.fmax(evidence, self._tail(logs), out=evidence)
            beyond = scores > self.values[-1]
            if beyond.any():  # continue along the tail from the largest sampled score
                last = _log_shifted(self.values[-1:], self.offset)
                top = max(float(self.evidence[-1]), float(self._tail(last)[0]))
                evidence[beyond] = np.fmax(evidence[beyond],
                                           top + (logs[beyond] - last[0]) / self.scale)
        return np.minimum(evidence, MAX_EVIDENCE)

    def _tail(self, logs: np.ndarray) -> np.ndarray:
        return math.log(2.0) + (logs - self.median) / self.scale

    def share(self, score: float) -> float | None:
        """Share of sampled scores at least as high (``None``: above every one)."""
        if not score <= self.values[-1]:
            return None
        index = int(np.searchsorted(self.values, score, side="left"))
        return float(np.exp(-self.evidence[index]))


def _finite(scores, nan: float) -> np.ndarray:
    """Float64 scores with NaN replaced and infinities at the largest finite values."""
    big = np.finfo(np.float64).max
    return np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=nan, posinf=big,
                         neginf=-big)


def _log_shifted(scores: np.ndarray, offset: float) -> np.ndarray:
    """``log(score - offset)``, with scores at or below the offset far down."""
    with np.errstate(divide="ignore", invalid="ignore"):
        shifted = np.log(np.maximum(scores - offset, 0.0) + 1e-300)
    return shifted


# ------------------------------------------------------------------------------ check

class OutlierCheck(Check):
    """Ensemble of outlier detectors and per-class geometry on the encoded rows.

    Parameters
    ----------
    detectors : list of str, optional
        Detectors to run, by name (see :data:`DETECTORS`); default
        :data:`DEFAULT_DETECTORS`. Label-dependent ones are skipped without a label.
    variance : float, default 0.9
        Share of the sample's variance that the ``subspace`` detector's principal
        subspace holds.
    reason_tail : float, default 0.01
        Rows whose family score is in this top share of the sample's get a reason.
    log_skewed : bool, default True
        Encode skewed non-negative numeric columns on the ``log1p`` scale, linear again
        beyond their sampled 99th percentile. On the quality benchmark (seeds 0 and 1, 482
        cases) it raised the family's own AP on jointly impossible rows from 0.629 to 0.650
        and the fused mean AP from 0.739 to 0.741, gross outliers unchanged (0.970); the
        other families keep the linear encoding, where the log scale lowered the fused mean
        AP (0.751 to 0.736 at seed 0). See ``benchmarks/RESULTS.md``.

    Attributes
    ----------
    detectors_ : dict of str to object
        The fitted detectors, in the order given.
    calibration_ : dict of str to TailCalibration
        Each detector's sample scores, for the evidence ``-log p``.
    skipped_detectors_ : dict of str to str
        Requested detectors that could not run, with the reason.
    skipped_columns_ : dict of str to str
        Feature columns the encoder left out (identifier-like, never finite).
    encoder_ : FeatureEncoder or None
        The encoder (``None`` when the check is inactive).
    log_columns_ : list of str
        Numeric columns encoded on the ``log1p`` scale.
    mean_, scale_ : numpy.ndarray
        Standardisation of the encoded features (sample mean and standard deviation).
    classes_ : list of str
        Modelled classes (index = class code); empty without a label, in which case
        all rows form one group.
    centres_, radii_ : numpy.ndarray
        Robust centre and radius (median distance of its sampled rows) of every group.
    threshold_ : float
        Family score from which a row gets a reason.
    inactive_ : str or None
        Why nothing could be fitted (too few rows, no encoded feature or none that varies
        in the sample), else ``None``.
    """

    name = "outliers"
    parameters = (
        Option("detectors", "list", None,
               f"outlier detectors to run (default: {', '.join(DEFAULT_DETECTORS)}; "
               f"known: {', '.join(DETECTORS)})", nullable=True),
        Option("variance", "float", 0.9, "variance share of the subspace detector's subspace",
               low=0.0, high=1.0, low_open=True, high_open=True),
        Option("reason_tail", "float", 0.01, "top share of rows that get a reason",
               low=0.0, high=0.5),
        Option("log_skewed", "bool", True,
               "encode skewed non-negative numeric columns on the log1p scale"),
    )

    def _validate_params(self) -> None:
        super()._validate_params()
        self._detector_names()

    def _detector_names(self) -> tuple[str, ...]:
        """The requested detectors, validated, duplicates dropped."""
        names = self.detectors
        if names is None:
            names = DEFAULT_DETECTORS
        elif isinstance(names, str):
            names = [v.strip() for v in names.split(",") if v.strip()]
        names = tuple(names)
        if not names:
            raise ConfigError("[outliers]: detectors must name at least one detector")
        for name in names:
            if name not in DETECTORS:
                raise ConfigError(f"[outliers]: unknown detector {name!r} in detectors "
                                  f"(known: {', '.join(DETECTORS)})")
        return tuple(dict.fromkeys(names))

    # ------------------------------------------------------------------------------ fit
    def fit(self, state, profile) -> "OutlierCheck":
        self._validate_params()
        names = self._detector_names()
        self.detectors_, self.calibration_, self.skipped_detectors_ = {}, {}, {}
        self.classes_, self.class_rows_ = [], {}
        self.threshold_ = math.inf
        self.inactive_ = None
        self.encoder_ = None
        sample = profile.sample_chunk()
        encoder = profile.encoder(log_skewed=self.log_skewed)
        self.skipped_columns_ = dict(encoder.skipped_)
        self.log_columns_ = list(encoder.log_columns_)
        self.n_features_ = len(encoder.feature_names_)
        X = None
        if self.n_features_ == 0:
            self.inactive_ = "no encodable feature column"
        elif len(sample) < MIN_FIT_ROWS:
            self.inactive_ = f"{len(sample)} sampled row(s), fewer than {MIN_FIT_ROWS}"
        else:
            X = encoder.transform(sample)
            if not varies(X):  # every sampled row is one point: none is out of shape
                self.inactive_ = "no encoded feature varies in the sample"
        if self.inactive_ is not None:
            self.skipped_detectors_ = {n: self.inactive_ for n in names}
            return self
        self.encoder_ = encoder
        self.mean_, self.scale_ = standard_scale(X)
        Z = self._standardise(X)
        self._fit_groups(sample, Z)
        codes = self._codes(sample, Z)
        ctx = _Context(seed=profile.seed, codes=codes, centres=self.centres_,
                       rows=sample.rows, keys=_sample_keys(profile),
                       features=list(encoder.feature_names_), sources=encoder.sources())
        raw: dict[str, np.ndarray] = {}
        for name in names:
            spec = DETECTORS[name]
            if spec.needs_label and not self.classes_:
                self.skipped_detectors_[name] = "no label column" \
                    if profile.schema.label is None \
                    else f"no class has {MIN_CLASS_ROWS} sampled rows"
                continue
            if name == "slab" and len(self.classes_) < 2:
                self.skipped_detectors_[name] = "fewer than two modelled classes"
                continue
            detector = spec.make(self).fit(Z, ctx)
            unusable = detector.unusable()
            if unusable is not None:
                self.skipped_detectors_[name] = unusable
                continue
            self.detectors_[name] = detector
            raw[name] = detector.score(Z, codes, sample.rows)
            self.calibration_[name] = TailCalibration.fit(raw[name])
        if not self.detectors_:
            self.inactive_ = "no detector could run"
            return self
        if self.reason_tail > 0:
            family = self._combine({name: self.calibration_[name](raw[name]) for name in raw})
            self.threshold_ = float(np.quantile(family, 1.0 - self.reason_tail))
        return self

    def _standardise(self, X: np.ndarray, *, in_place: bool = False) -> np.ndarray:
        """``(X - mean_) / scale_``, C-ordered; written over ``X`` when ``in_place`` (and
        ``X`` is a C-ordered float64 matrix), so that a chunk costs one matrix, not three."""
        fits = in_place and X.dtype == np.float64 and X.flags.c_contiguous
        out = X if fits else np.empty(X.shape)
        np.subtract(X, self.mean_, out=out)
        return np.divide(out, self.scale_, out=out)

    def _fit_groups(self, sample, Z: np.ndarray) -> None:
        """Centres and radii of the largest classes with enough sampled rows.

        Without a label (or without a class of :data:`MIN_CLASS_ROWS` sampled rows) all
        rows form one group. A radius is the median distance of the group's sampled rows
        to its centre.
        """
        labels = sample.labels()
        if labels is not None:
            present = pd.Series(labels[labels != None]).value_counts()  # noqa: E711
            ordered = sorted(((str(c), int(k)) for c, k in present.items()
                              if k >= MIN_CLASS_ROWS), key=lambda kv: (-kv[1], kv[0]))
            ordered = ordered[:MAX_CLASSES]
            self.classes_ = sorted(c for c, _ in ordered)
            self.class_rows_ = dict(ordered)
        self._class_index = pd.Index(self.classes_, dtype=object)
        if self.classes_:
            known = self._class_index.get_indexer(labels)
            groups = [Z[known == c] for c in range(len(self.classes_))]
        else:
            groups = [Z]
        self.centres_ = np.stack([_robust_centre(g) for g in groups])
        self.radii_ = np.array([_positive(np.median(np.sqrt(_sqnorm(g - c))))
                                for g, c in zip(groups, self.centres_)])

    def _codes(self, chunk, Z: np.ndarray) -> np.ndarray:
        """Group index of every row: its class or, for unknown, rare or missing labels,
        the nearest class centre; ``0`` (the one group) without modelled classes."""
        if not self.classes_:
            return np.zeros(len(Z), dtype=np.int64)
        codes = self._class_index.get_indexer(chunk.labels()).astype(np.int64)
        lost = np.flatnonzero(codes < 0)
        if len(lost):
            gaps = np.stack([_sqnorm(Z[lost] - c) for c in self.centres_], axis=1)
            codes[lost] = np.argmin(gaps, axis=1)
        return codes

    # ---------------------------------------------------------------------------- score
    def _evidence(self, Z, codes, rows) -> tuple[np.ndarray, dict[str, np.ndarray],
                                                  dict[str, np.ndarray]]:
        """Family score (mean evidence), each detector's evidence and raw score."""
        raw = {name: det.score(Z, codes, rows) for name, det in self.detectors_.items()}
        per = {name: self.calibration_[name](raw[name]) for name in raw}
        return self._combine(per), per, raw

    @staticmethod
    def _combine(per: dict[str, np.ndarray]) -> np.ndarray:
        """Mean evidence of the detectors (summed in a fixed order), plus the evidence
        of each detector with an ``added_beyond`` in excess of it (where only such
        detectors run, their mean evidence)."""
        averaged = [name for name in per if DETECTORS[name].added_beyond is None] or list(per)
        family = np.zeros(len(next(iter(per.values()))))
        for name in averaged:
            family += per[name]
        family /= len(averaged)
        for name, evidence in per.items():
            if name not in averaged:
                family += np.maximum(evidence - DETECTORS[name].added_beyond, 0.0)
        return family

    def score(self, chunk) -> CheckScores:
        n = len(chunk)
        if self.inactive_ is not None or n == 0:
            return CheckScores.empty(n)
        Z = self._standardise(self.encoder_.transform(chunk, owned=True), in_place=True)
        codes = self._codes(chunk, Z)
        family, per, raw = self._evidence(Z, codes, chunk.rows)
        reasons = np.full(n, None, dtype=object)
        flagged = np.flatnonzero(family >= self.threshold_)
        if len(flagged):
            labels = chunk.labels()
            explain = {name: det.explainer(Z[flagged], chunk.rows[flagged])
                       for name, det in self.detectors_.items()}
            for k, i in enumerate(flagged.tolist()):
                reasons[i] = self._reason(i, per, raw, Z, codes, labels,
                                          lambda name, k=k: explain[name](k))
        return CheckScores(np.ascontiguousarray(family, dtype=np.float64),
                           np.zeros(n, dtype=bool), reasons)

    def _reason(self, i: int, per, raw, Z, codes, labels, said) -> str | None:
        """``outliers:subspace top 0.05% of rows; ellipsoid top 1.2% of rows; 4.1 radii
        from class 'spam' centroid`` for row ``i`` of a chunk. ``said(name)`` is what the
        detector says set the row apart, added to its part: ``pairs top 0.01% of rows
        ('age' at percentiles 0-10 with ...)``."""
        ranked = [name for name in sorted(per, key=lambda name: (-per[name][i], name))
                  if not self.detectors_[name].silent(raw[name][i])]
        if not ranked:
            return None  # no detector holds anything against the row
        shares = {name: self.calibration_[name].share(float(raw[name][i])) for name in ranked}
        named = [name for name in ranked if shares[name] is None
                 or shares[name] <= REASON_DETECTOR_SHARE][:MAX_DETECTORS_IN_REASON]
        parts = []
        for name in named or ranked[:1]:
            detail = said(name)
            parts.append(f"{name} {_share(self.calibration_[name].n, shares[name])}"
                         + (f" ({detail})" if detail else ""))
        if self.classes_:
            c = int(codes[i])
            radii = math.sqrt(float(_sqnorm(Z[i:i + 1] - self.centres_[c])[0])) / self.radii_[c]
            own = labels is not None and labels[i] is not None \
                and str(labels[i]) == self.classes_[c]
            where = "class" if own else "nearest class"
            parts.append(f"{radii:.1f} radii from {where} {quote(self.classes_[c])} centroid")
        return "outliers:" + "; ".join(parts)

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "detectors": list(getattr(self, "detectors_", {})),
            "skipped_detectors": dict(getattr(self, "skipped_detectors_", {})),
            "encoded_features": getattr(self, "n_features_", 0),
            "skipped_columns": dict(getattr(self, "skipped_columns_", {})),
            "log_scaled_columns": list(getattr(self, "log_columns_", [])),
        }
        if getattr(self, "inactive_", None):
            out["inactive"] = self.inactive_
            return out
        out["reason_tail"] = self.reason_tail
        out["reason_threshold"] = _round(self.threshold_) if math.isfinite(self.threshold_) \
            else None
        for name, det in self.detectors_.items():
            extra = det.describe()
            if extra:
                out.setdefault("detector_details", {})[name] = extra
        if self.classes_:
            out["classes"] = {c: {"sampled_rows": self.class_rows_[c],
                                  "radius": _round(float(self.radii_[k]))}
                              for k, c in enumerate(self.classes_[:20])}
        return out


def _sample_keys(profile) -> np.ndarray:
    """Keyed hashes of the sampled rows (for a reproducible sub-sample of them)."""
    keys = np.asarray(profile.sample.keys)
    return keys if len(keys) == len(profile.sample) else np.arange(len(profile.sample))


def _share(n: int, share: float | None) -> str:
    """``top 0.02% of rows`` (of the sample), or beyond every sampled row."""
    if share is None:
        return f"beyond all {n} sampled rows"
    pct = 100.0 * share
    return f"top {pct:.2g}% of rows" if pct < 10 else f"top {pct:.0f}% of rows"


def _round(x: float, digits: int = 10) -> float:
    return float(f"{x:.{digits}g}") if math.isfinite(x) else x

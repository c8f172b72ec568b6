"""The log1p scale of skewed non-negative columns (incomes, durations, counts of things).

Such a column spans decades: on its own scale a few large values set the distances, and a
range learned there reaches far beyond what the bulk suggests. On the ``log1p`` scale its
inner quantiles sit about as far from the median on either side. Two checks measure such
columns there: the ``bounds`` family fences them on it, and the ``outliers`` family encodes
them on it (see :class:`~poisonscan.encode.FeatureEncoder`'s ``log_skewed``).
"""

from __future__ import annotations

import math

import numpy as np

#: How much more symmetric (in log ratio of the quantile arms) the log1p scale must make
#: a column before it is measured there.
LOG_SCALE_GAIN = 0.25
#: Ratio of the inner upper quantile to the smallest positive value a column must span
#: before it may be measured on the log1p scale: a decade. Codes and small counts (0-9)
#: stay linear, where a log fence would admit ten times their largest value.
LOG_SCALE_SPAN = 10.0


def on_scale(values: np.ndarray, log: bool) -> np.ndarray:
    """``values`` on the ``log1p`` scale (negative values at 0) when ``log``, else as given."""
    if not log:
        return values
    with np.errstate(invalid="ignore"):
        return np.log1p(np.maximum(values, 0.0))


def asymmetry(values: np.ndarray, q: float) -> float:
    """How lopsided the inner quantiles are around the median (0 = symmetric)."""
    low, median, high = np.quantile(values, [q, 0.5, 1 - q])
    if high - median <= 0 or median - low <= 0:
        return math.inf
    return abs(math.log((high - median) / (median - low)))


def log_scale_helps(values: np.ndarray, q: float) -> bool:
    """Whether the finite, non-negative ``values`` of a column are better measured on the
    ``log1p`` scale: they span a decade (``Q(1 - q)`` at least :data:`LOG_SCALE_SPAN` times
    the smallest positive value) and the scale makes their inner quantiles ``Q(q)``,
    ``Q(1 - q)`` more symmetric around the median by at least :data:`LOG_SCALE_GAIN`."""
    positive = values[values > 0]
    return (positive.size > 0
            and float(np.quantile(values, 1 - q)) >= LOG_SCALE_SPAN * positive.min()
            and asymmetry(on_scale(values, True), q) + LOG_SCALE_GAIN < asymmetry(values, q))

"""Bound checks: values a clean row cannot hold.

Findings (each is a hard violation: the row is a suspect by default):

* a cell that does not parse as its column's type (CSV);
* NaN or ±inf in a numeric column;
* a numeric value outside the robust range learned from the data;
* a category seen almost never (in at most ``rare_fraction`` of the rows) in a
  column whose categories are otherwise well populated;
* a missing or almost never seen label.

The robust range comes from quantiles of the row sample, never from the minimum and
maximum, so that the outliers themselves do not widen it:
``[Q(q) - margin * W, Q(1 - q) + margin * W]`` with ``W = Q(1 - q) - Q(q)``. A column
whose sample is non-negative but for at most one value or 0.1%, and whose values pile up
at 0 or stay far from it, gets 0 as its lower bound. A non-negative column is fenced on the ``log1p`` scale when that makes its inner quantiles more
symmetric (right-skewed amounts such as incomes). When one value covers the inner
quantiles (a flag, a sparse count), the range is learned from the other values, or is
that single value when fewer than five others were sampled. Rows with
no finding get a soft score below 1: how far the most extreme value sits from the
median towards the bound.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..config import Option
from ..io.schema import CATEGORICAL, DATETIME
from .base import Check, CheckScores

#: Severity of a cell that is not a valid value at all (unparseable, NaN, inf, no label).
INVALID = 2.0
#: Severity of a category or label almost never seen.
RARE = 1.0
#: Findings spelled out per row before "(+N more)".
MAX_FINDINGS_IN_REASON = 3
#: Values other than the mode needed to learn the range of a column that one value dominates.
MIN_TAIL_VALUES = 5
#: How much more symmetric (in log ratio of the quantile arms) the log1p scale must make
#: a column before its range is fenced there.
LOG_SCALE_GAIN = 0.25
#: Characters of a cell value quoted in a reason.
MAX_VALUE_CHARS = 40


@dataclasses.dataclass(frozen=True)
class NumericRange:
    """Learned range of one numeric column."""

    low: float
    high: float
    median: float
    width: float  # scale used to measure how far outside a value lies


class BoundsCheck(Check):
    """Type, NaN/inf, robust-range and rare-category checks.

    Parameters
    ----------
    quantile : float, default 0.01
        Inner quantile ``q`` of the robust range.
    margin : float, default 1.0
        Allowance beyond the inner quantiles, in units of their distance.
    rare_fraction : float, default 1e-4
        A category is rare when it holds at most ``max(1, rare_fraction * rows)`` rows.
    rare_mass : float, default 0.01
        Rare categories are reported only in columns where all of them together hold at
        most this fraction of the rows (otherwise the column is long-tailed by nature).

    Attributes
    ----------
    ranges_ : dict of str to NumericRange
        Learned range per numeric or datetime column.
    rare_ : dict of str to frozenset of str
        Rare categories per categorical column (and the label, under its column name).
    counts_ : dict of str to dict of str to int
        Row counts of the rare categories (for the reasons).
    n_rows_ : int
        Rows seen in pass 1.
    """

    name = "bounds"
    parameters = (
        Option("quantile", "float", 0.01, "inner quantile of the robust range",
               low=0.0, high=0.25, low_open=True),
        Option("margin", "float", 1.0, "allowance beyond the inner quantiles", low=0.0),
        Option("rare_fraction", "float", 1e-4, "share of rows under which a category is rare",
               low=0.0, high=0.5),
        Option("rare_mass", "float", 0.01, "max share of rows in rare categories per column",
               low=0.0, high=1.0),
    )

    def fit(self, state, profile) -> "BoundsCheck":
        self._validate_params()
        schema = profile.schema
        sample = profile.sample_chunk()
        self.n_rows_ = profile.n_rows
        self.ranges_ = {}
        for column in schema.features:
            if schema.kinds[column] != CATEGORICAL:
                values = sample.numeric(column)
                values = values[np.isfinite(values)]
                if values.size:
                    self.ranges_[column] = self._range(values)
        self.rare_, self.counts_ = {}, {}
        stats = {c: profile.columns[c] for c in schema.of_kind(CATEGORICAL)}
        if profile.labels is not None:
            stats[schema.label] = profile.labels
        for column, st in stats.items():
            rare = self._rare(st.counts, profile.n_rows) if st.counts is not None else {}
            if rare:
                self.rare_[column] = frozenset(rare)
                self.counts_[column] = rare
        self._kinds = dict(schema.kinds)
        self._label = schema.label
        return self

    def _range(self, values: np.ndarray) -> NumericRange:
        q = self.quantile
        median = float(np.quantile(values, 0.5))
        uniques, counts = np.unique(values, return_counts=True)
        mode = float(uniques[np.argmax(counts)])
        never_negative = (values < 0).sum() <= max(1.0, 0.001 * values.size)
        if counts.max() >= (1 - 2 * q) * values.size:
            # One value covers the inner quantiles (a flag, a sparse count): learn the
            # range from the other values; with too few of them, only the mode is normal.
            others = values[values != mode]
            if others.size >= MIN_TAIL_VALUES:
                low, high = self._fence(others)
                low, high = min(low, mode), max(high, mode)
            else:
                low = high = mode
        elif never_negative and _asymmetry(np.log1p(np.maximum(values, 0)), q) + LOG_SCALE_GAIN \
                < _asymmetry(values, q):
            # right-skewed amounts (incomes, durations): fence on the log scale
            low, high = (float(v) for v in np.expm1(self._fence(np.log1p(np.maximum(values, 0)))))
        else:
            low, high = self._fence(values)
        if never_negative and _zero_is_a_wall(values, high - low):
            low = max(low, 0.0)  # a column (almost) never negative: a sign is a bound
        width = high - low
        return NumericRange(low, high, median, width if width > 0 else max(abs(low), 1.0))

    def _fence(self, values: np.ndarray) -> tuple[float, float]:
        """``(Q(q) - margin * W, Q(1 - q) + margin * W)`` with ``W = Q(1 - q) - Q(q)``."""
        low, high = (float(v) for v in np.quantile(values, [self.quantile, 1 - self.quantile]))
        pad = self.margin * (high - low)
        return low - pad, high + pad

    def _rare(self, counts: dict[str, int], n_rows: int) -> dict[str, int]:
        limit = max(1.0, self.rare_fraction * n_rows)
        rare = {value: n for value, n in counts.items() if n <= limit}
        if sum(rare.values()) > self.rare_mass * n_rows:
            return {}
        return rare

    # ------------------------------------------------------------------------- scoring
    def score(self, chunk) -> CheckScores:
        n = len(chunk)
        severity = np.zeros(n)
        soft = np.zeros(n)
        findings: list[tuple[np.ndarray, np.ndarray, Any]] = []  # (positions, severity, text)

        def add(positions, sev, text):
            positions = np.asarray(positions, dtype=np.int64)
            if positions.size:
                sev = np.broadcast_to(np.asarray(sev, dtype=np.float64), positions.shape)
                np.add.at(severity, positions, sev)
                findings.append((positions, sev, text))

        for column in chunk.schema.features:
            kind = chunk.schema.kinds[column]
            errors = chunk.errors.get(column)
            if errors is not None and len(errors.positions):
                add(errors.positions, INVALID,
                    lambda i, j, c=column, e=errors: f"bounds:{c} unparseable {_quote(e.values[j])}")
            if kind == CATEGORICAL:
                self._score_rare(chunk, column, add)
            else:
                self._score_numeric(chunk, column, add, soft)
        if self._label is not None:
            labels = chunk.table.column(self._label)
            add(np.flatnonzero(labels.is_null().to_numpy(zero_copy_only=False)), INVALID,
                lambda i, j, c=self._label: f"bounds:label {c!r} missing")
            self._score_rare(chunk, self._label, add, what="label")
        violation = severity > 0
        scores = np.where(violation, severity, np.minimum(soft, 0.999))
        return CheckScores(scores, violation, self._reasons(n, findings))

    def _score_numeric(self, chunk, column, add, soft) -> None:
        values = chunk.numeric(column)
        missing = chunk.missing(column)
        nan = np.isnan(values) & ~missing
        errors = chunk.errors.get(column)
        if errors is not None and len(errors.positions):
            nan[errors.positions] = False
        add(np.flatnonzero(nan), INVALID, lambda i, j, c=column: f"bounds:{c} is NaN")
        inf = np.isinf(values)
        add(np.flatnonzero(inf), INVALID,
            lambda i, j, c=column, v=values: f"bounds:{c}={'-' if v[i] < 0 else ''}inf")
        rng = self.ranges_.get(column)
        if rng is None:
            return
        fmt = _format_datetime if self._kinds[column] == DATETIME else _format_number
        with np.errstate(invalid="ignore"):
            below = np.flatnonzero(np.isfinite(values) & (values < rng.low))
            above = np.flatnonzero(np.isfinite(values) & (values > rng.high))
            add(below, 1.0 + np.log1p((rng.low - values[below]) / rng.width),
                lambda i, j, c=column, v=values: f"bounds:{c}={fmt(v[i])}<min({fmt(rng.low)})")
            add(above, 1.0 + np.log1p((values[above] - rng.high) / rng.width),
                lambda i, j, c=column, v=values: f"bounds:{c}={fmt(v[i])}>max({fmt(rng.high)})")
            up = (values - rng.median) / max(rng.high - rng.median, 1e-300)
            down = (rng.median - values) / max(rng.median - rng.low, 1e-300)
            position = np.where(values >= rng.median, up, down)
        np.fmax(soft, np.where(np.isfinite(position), position, 0.0), out=soft)

    def _score_rare(self, chunk, column, add, what="") -> None:
        rare = self.rare_.get(column)
        if not rare:
            return
        values = chunk.table.column(column)
        if not pa.types.is_string(values.type):
            values = pc.cast(values, pa.string())
        hit = pc.is_in(values, value_set=pa.array(sorted(rare), pa.string()))
        positions = np.flatnonzero(hit.to_numpy(zero_copy_only=False))
        texts = chunk.strings(column)
        counts = self.counts_[column]
        label = f"label {column!r}" if what else column
        add(positions, RARE, lambda i, j, c=label, t=texts: (
            f"bounds:{c} rare value {_quote(t[i])} ({counts[t[i]]} of {self.n_rows_} rows)"))

    @staticmethod
    def _reasons(n: int, findings) -> np.ndarray:
        """One line per row: its findings, most severe first."""
        per_row: dict[int, list[tuple[float, int, str]]] = {}
        for order, (positions, sev, text) in enumerate(findings):
            for j, (i, s) in enumerate(zip(positions.tolist(), sev.tolist())):
                per_row.setdefault(i, []).append((-s, order, text(i, j)))
        reasons = np.full(n, None, dtype=object)
        for i, items in per_row.items():
            items.sort()
            shown = [t for _, _, t in items[:MAX_FINDINGS_IN_REASON]]
            if len(items) > MAX_FINDINGS_IN_REASON:
                shown.append(f"(+{len(items) - MAX_FINDINGS_IN_REASON} more)")
            reasons[i] = "; ".join(shown)
        return reasons

    def describe(self) -> dict[str, Any]:
        fmt = {c: (_format_datetime if self._kinds.get(c) == DATETIME else _format_number)
               for c in self.ranges_}
        return {
            "ranges": {c: {"min": fmt[c](r.low), "max": fmt[c](r.high)}
                       for c, r in self.ranges_.items()},
            "rare_values": {c: dict(sorted(v.items())[:20]) for c, v in self.counts_.items()},
        }


def _zero_is_a_wall(values: np.ndarray, width: float) -> bool:
    """Whether 0 bounds a never-negative column, rather than lying in its thin tail.

    True when values pile up at exactly 0 (counts, amounts), or when the bulk stays far
    from 0 (ages, scores); false for a continuous column that merely rarely dips below 0.
    """
    return bool((values == 0).mean() >= 0.001 or np.quantile(values, 0.001) >= 0.1 * width)


def _asymmetry(values: np.ndarray, q: float) -> float:
    """How lopsided the inner quantiles are around the median (0 = symmetric)."""
    low, median, high = np.quantile(values, [q, 0.5, 1 - q])
    if high - median <= 0 or median - low <= 0:
        return math.inf
    return abs(math.log((high - median) / (median - low)))


def _quote(value: Any) -> str:
    """A cell value, quoted and escaped onto one line, cut to a readable length."""
    text = str(value)
    if len(text) > MAX_VALUE_CHARS:
        text = text[:MAX_VALUE_CHARS] + "…"
    return repr(text)


def _format_number(x: float) -> str:
    if math.isfinite(x) and x == int(x) and abs(x) < 1e15:
        return str(int(x))
    return f"{x:.6g}"


def _format_datetime(seconds: float) -> str:
    try:
        return _dt.datetime.fromtimestamp(seconds, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    except (OverflowError, OSError, ValueError):
        return _format_number(seconds)

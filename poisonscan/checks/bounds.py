"""Bound checks: values a clean row cannot, or almost never does, hold.

Bounds come from three places, most trusted first:

* **declared** in the config file, per column (``[bounds.age] min = 0``) and per class
  (``[bounds.by_label.spam.links] max = 400``): ``min``/``max`` (inclusive),
  ``min_exclusive``/``max_exclusive`` (strict), ``allowed`` values, a ``pattern`` (regular
  expression a text cell must match in full), ``nullable``, ``max_length``/``min_length``
  (characters) and ``integer``;
* a **reference** profile of trusted data (``reference = "profile.json"``, see
  :mod:`poisonscan.reference`): its robust ranges per column and per class, its categories
  and its classes;
* **learned** from the data being scanned, robustly (below).

For a numeric side (``min`` or ``max``) a class's declared bound overrides the column's;
without a declared bound, the reference's range of the column and of the row's class both
hold. A declared or reference bound that is broken is a **hard** finding: the row is a
suspect by default. Cells that are not valid values at all (unparseable, NaN, ±inf, a missing
label) and categories or labels seen almost never in an otherwise well-populated column are
hard findings too. A **learned** bound that is broken is *evidence*, scored by how far
outside the value lies, unless it is gross: set apart from every value of the column by a
gap of more than ``gross`` inner widths (see :func:`_reach`; below a never-negative column
fenced linearly whose low side is not its long side, on the ratio scale as well: a bill
length of 4 mm where the column starts at 32), or of a sign that the column never has. A
value set apart that at least two sampled rows share, within ten steps of the column's
reach (a sparse count's rare 6), is a property of the column, not an isolated value: it
stays evidence, and so do the few lone values short of it (a 4 below that 6: fewer lone
values than rows that share the recurring one; see :func:`_recurring_floor`).

Learned ranges
--------------
A column's range comes from quantiles, never from its minimum and maximum, so that the
outliers themselves do not widen it, and from the column's bulk: values set apart from it by
a gap (a step longer than ``gross`` times the larger of the interquartile range and the
distance walked from the quartile; at most 5% of the values on a side) are left out of the
quantiles, so that a few percent of inserted gross outliers cannot move them (see
:func:`_bulk`); a column whose only negative values are set apart is never negative. With
``Q`` the quantiles of the column's sampled values, ``W = Q(1 - q) - Q(q)`` and ``M`` the
median, the fence is
``[Q(q) - pad_low, Q(1 - q) + pad_high]`` where each pad is ``margin * max(2 * arm, W / 2)``
times a tail factor: ``arm`` is that side's distance from the median to its inner quantile
(so a skewed column gets a longer arm on its long side) and the tail factor
``max(1, min(5, (W / IQR) / 3.45))`` widens the fence of heavy-tailed columns (3.45 is the
ratio for a normal distribution at ``q = 0.01``). A non-negative column is fenced on the
``log1p`` scale when that makes its inner quantiles more symmetric (incomes, durations)
and its values span a decade (``Q(1 - q)`` at least ten times its smallest positive value:
codes and small counts stay linear).
A column that is (almost) never negative gets 0 as a hard wall when its values pile up at
0, stay far from it, or hug it. A column that piles up at an extreme value and never passes
it (a 1-10 score's 10, a reading clipped at -20, a percentage's 100) gets that value as a
hard wall too, its *floor* or *ceiling*: the highest (lowest) value holding at least
:data:`PILE_SHARE` of the sampled values and about as many as the value just inside it,
with no sampled value just beyond it and few far beyond (:func:`_pile_walls`). A value
beyond a wall is a hard finding, inside the fence or not: a skewed scale's fence reaches
far past its end, and inserted values spread beyond the end bridge each other's gaps. When
one value covers the inner quantiles (a flag, a sparse count), the range is learned from
the other values (not from values of a sign the column never has), or is that single value
when fewer than five others were seen. Integer columns get integer bounds. Classes with at
least ``min_class_rows`` sampled rows also get their own ranges; a value inside the
column's range but outside its class's range is evidence. Rows with no finding get a soft
score below 0.5: how far the most extreme value sits from the median towards the fence.

Quantiles come from the keyed row sample (every row below ``sample_rows``, a uniform
chunk-invariant sample above); whether a column is integral or ever negative is counted
over the whole data in pass 1 (:meth:`BoundsCheck.summarize`).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
import re
from typing import Any, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..config import Option
from ..errors import ConfigError
from ..io.schema import CATEGORICAL, DATETIME
from ..scales import log_scale_helps, on_scale as _on_scale
from .base import Check, CheckScores

#: Severity of a cell that is not a valid value at all (unparseable, NaN, inf, no label).
INVALID = 2.0
#: Severity of a declared or reference bound broken (plus up to 0.5 by distance).
HARD = 1.5
#: Severity of a category or label almost never seen.
RARE = 1.0
#: Severity of a sign a never-negative column does not have (plus up to 0.5 by distance).
SIGN = 1.0
#: Learned-range violations that stand apart score ``0.5 * d / (1 + d)`` (``d`` in inner
#: widths beyond the fence): they rank below every other hard finding.
#: Findings spelled out per row before "(+N more)".
MAX_FINDINGS_IN_REASON = 3
#: Values other than the mode needed to learn the range of a column that one value dominates.
MIN_TAIL_VALUES = 5
#: Most recurring values beyond a learned range that a fence remembers as no hard finding,
#: and how far beyond the column's reach they may lie (in steps: the larger of the inner
#: width and the reach's distance from the inner quantile).
MAX_REPEATED = 64
REPEATED_STEPS = 10.0
#: Largest share of a column's values set apart on one side that :func:`_bulk` leaves out
#: of the quantiles its range is learned from.
MAX_DETACHED = 0.05
#: Finite sampled values a column needs before a range is learned for it.
MIN_LEARN_VALUES = 20
#: A value held by at least this share of a column's sampled values, and by at least
#: ``PILE_MIN_ROWS`` of them, is a pile-up; the highest and the lowest can be the column's
#: walls (see :func:`_pile_walls`).
PILE_SHARE = 0.01
PILE_MIN_ROWS = 10
#: Gap beyond a pile-up wall that no sampled value may lie in, as a share of the distance
#: from the wall to the column's median; and the most values beyond it, as a share of the
#: values at it (hpc's 200 holds 90 rows where 10% of inserted outliers put 66 beyond it; a
#: sparse pixel's tail goes on with 81 values beyond its 29 ones).
PILE_GAP = 0.5
PILE_BEYOND = 1.0
#: Least share of the next inner value's count a pile-up must hold to end the column: a
#: thinning tail's last values hold fewer than their neighbours (a Poisson count's 2.5
#: standard deviations out, under 0.85 of them), a column's end as many (a year's 2007,
#: 2008 and 2009 hold about a third each).
PILE_RISE = 0.9
#: ``(Q(0.99) - Q(0.01)) / IQR`` of a normal distribution: the tail factor's unit.
NORMAL_TAIL_RATIO = 3.45
#: Largest tail factor (widening of the fence for heavy-tailed columns).
MAX_TAIL_FACTOR = 5.0
#: A category of at most this many rows is rare in a column of 1000 times as many rows
#: (however small ``rare_fraction`` is): one injected value may repeat.
RARE_MIN_ROWS = 3
#: Largest share of a column's rows its rare categories may hold together: beyond, they are
#: the column's bulk (identifiers or free text beside one common value), not rare values.
RARE_MAX_SHARE = 0.5
#: Characters of a cell value quoted in a reason.
MAX_VALUE_CHARS = 40
#: Longest declared ``pattern`` accepted, and longest cell a pattern is tried on.
MAX_PATTERN_CHARS = 1000
MAX_PATTERN_INPUT = 10_000
#: Keys of a declared column table.
SPEC_KEYS = ("min", "max", "min_exclusive", "max_exclusive", "allowed", "pattern", "nullable",
             "max_length", "min_length", "integer")
#: Where a bound came from, as written in reasons and the summary.
DECLARED, REFERENCE, LEARNED = "declared", "reference", "learned"


# ============================================================================ declared specs


def _config_error(message: str, *path: str) -> ConfigError:
    """A :class:`ConfigError` carrying the config key path it is about (for the line number)."""
    exc = ConfigError(message)
    exc.key_path = ("bounds",) + tuple(str(p) for p in path)
    return exc


@dataclasses.dataclass(frozen=True)
class ColumnSpec:
    """The declared bounds of one column (or of one column for one class).

    ``low``/``high`` are the raw declared values (numbers, or dates for datetime columns)
    and ``low_strict``/``high_strict`` say whether they came from ``min_exclusive`` /
    ``max_exclusive``.
    """

    low: Any = None
    high: Any = None
    low_strict: bool = False
    high_strict: bool = False
    allowed: tuple | None = None
    pattern: str | None = None
    nullable: bool | None = None
    max_length: int | None = None
    min_length: int | None = None
    integer: bool | None = None

    @property
    def numeric_keys(self) -> list[str]:
        keys = []
        if self.low is not None:
            keys.append("min_exclusive" if self.low_strict else "min")
        if self.high is not None:
            keys.append("max_exclusive" if self.high_strict else "max")
        if self.integer is not None:
            keys.append("integer")
        return keys

    @property
    def text_keys(self) -> list[str]:
        return [k for k in ("pattern", "max_length", "min_length")
                if getattr(self, k) is not None]

    @classmethod
    def parse(cls, spec: Any, path: tuple[str, ...]) -> "ColumnSpec":
        """Validate one declared table; errors name the key (``bounds.age.min``)."""
        name = ".".join(("bounds",) + path)
        if not isinstance(spec, Mapping):
            raise _config_error(f"{name} must be a table of bounds, not {spec!r}", *path)
        unknown = sorted(set(spec) - set(SPEC_KEYS))
        if unknown:
            raise _config_error(f"{name}: unknown key {unknown[0]!r} "
                                f"(known: {', '.join(SPEC_KEYS)})", *path, unknown[0])
        values: dict[str, Any] = {}
        for side in ("min", "max"):
            given = [k for k in (side, f"{side}_exclusive") if k in spec]
            if len(given) == 2:
                raise _config_error(f"{name}: give {side} or {side}_exclusive, not both",
                                    *path, given[1])
            if given:
                key = given[0]
                values["low" if side == "min" else "high"] = _bound_value(spec[key], name, key,
                                                                          path)
                values[f"{'low' if side == 'min' else 'high'}_strict"] = key.endswith("exclusive")
        low, high = values.get("low"), values.get("high")
        numbers = all(isinstance(v, (int, float)) for v in (low, high))
        if numbers and low > high:
            raise _config_error(f"{name}: min {low!r} is above max {high!r}", *path,
                                "max" if "max" in spec else "max_exclusive")
        if "allowed" in spec:
            allowed = spec["allowed"]
            if not isinstance(allowed, (list, tuple)) or not allowed or not all(
                    isinstance(v, (str, int, float, bool)) for v in allowed):
                raise _config_error(f"{name}.allowed must be a non-empty list of values, "
                                    f"not {allowed!r}", *path, "allowed")
            values["allowed"] = tuple(allowed)
        if "pattern" in spec:
            pattern = spec["pattern"]
            if not isinstance(pattern, str) or not pattern:
                raise _config_error(f"{name}.pattern must be a regular expression (a string), "
                                    f"not {pattern!r}", *path, "pattern")
            if len(pattern) > MAX_PATTERN_CHARS:
                raise _config_error(f"{name}.pattern is longer than {MAX_PATTERN_CHARS} "
                                    "characters", *path, "pattern")
            try:
                re.compile(pattern)
            except re.error as exc:
                raise _config_error(f"{name}.pattern is not a valid regular expression: {exc}",
                                    *path, "pattern") from None
            values["pattern"] = pattern
        for key in ("nullable", "integer"):
            if key in spec:
                if not isinstance(spec[key], bool):
                    raise _config_error(f"{name}.{key} must be true or false, not {spec[key]!r}",
                                        *path, key)
                values[key] = spec[key]
        for key in ("max_length", "min_length"):
            if key in spec:
                v = spec[key]
                if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                    raise _config_error(f"{name}.{key} must be an integer >= 0, not {v!r}",
                                        *path, key)
                values[key] = v
        return cls(**values)


def _bound_value(value: Any, name: str, key: str, path: tuple[str, ...]) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float, str, _dt.date, _dt.datetime)):
        raise _config_error(f"{name}.{key} must be a number or a date, not {value!r}", *path, key)
    if isinstance(value, float) and not math.isfinite(value):
        raise _config_error(f"{name}.{key} must be finite, not {value!r}", *path, key)
    return value


def _to_seconds(value: Any) -> float | None:
    """A declared datetime bound as seconds since the epoch (UTC), or ``None`` if not a date."""
    if isinstance(value, str):
        try:
            value = _dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.timezone.utc)
        return value.timestamp()
    if isinstance(value, _dt.date):
        return _dt.datetime(value.year, value.month, value.day, tzinfo=_dt.timezone.utc).timestamp()
    return None


def _plain(value: Any) -> Any:
    """``value`` with dates as ISO text and tuples as lists (JSON-ready)."""
    if isinstance(value, (_dt.date, _dt.datetime, _dt.time)):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


# ============================================================================ learned fences


@dataclasses.dataclass(frozen=True)
class Fence:
    """Learned range of one numeric or datetime column (or of one class of it).

    ``low``/``high`` are in the column's units (integers for integer columns). The fence
    is placed on the ``log1p`` scale when ``log``; ``t_low``, ``t_high``, ``t_median``
    and ``width`` (the inner width ``W``) are on that scale. ``wall`` means 0 is a hard
    lower bound (a sign the column never has). How far a value lies beyond the fence is
    measured in inner widths on the ``g`` scale: ``log1p`` for a never-negative column
    (``g_log``: counts and amounts vary by ratios), the column's own otherwise.
    ``floor`` and ``ceiling`` (column units; infinite where there is none) are values the
    column piles up at and never passes (:func:`_pile_walls`): beyond them a value is a
    hard finding, inside the fence or not.
    """

    low: float
    high: float
    t_low: float
    t_high: float
    t_median: float
    width: float
    log: bool = False
    wall: bool = False
    integer: bool = False
    g_low: float = 0.0
    g_high: float = 0.0
    g_width: float = 1.0
    g_log: bool = False
    mirror: float = math.inf
    reach_low: float = -math.inf
    reach_high: float = math.inf
    low_step: float = 1.0
    high_step: float = 1.0
    median: float = 0.0
    repeated: tuple[float, ...] = ()
    floor: float = -math.inf
    ceiling: float = math.inf

    def g(self, values: np.ndarray) -> np.ndarray:
        """Values on the scale distances beyond the fence are measured on."""
        return _on_scale(values, self.g_log)

    def t(self, values: np.ndarray) -> np.ndarray:
        """Values on the fence's scale."""
        return _on_scale(values, self.log)


def _quantiles(values: np.ndarray, probs) -> np.ndarray:
    return np.quantile(values, probs)


# ============================================================================ the check


class BoundsCheck(Check):
    """Declared, reference and learned bounds; type, NaN/inf and rare-category checks.

    Parameters
    ----------
    quantile : float, default 0.01
        Inner quantile ``q`` of the learned ranges.
    margin : float, default 1.0
        Allowance beyond the inner quantiles, in units of their (shape-adapted) distance.
    gross : float, default 1.5
        A learned-range violation is a hard finding when it stands apart: separated from
        every sampled value the column's bulk reaches (through gaps of at most ``gross``
        inner widths) by a gap of more than ``gross`` inner widths. Nearer ones are
        evidence scored by distance.
    rare_fraction : float, default 1e-4
        A category is rare when it holds at most ``max(1, rare_fraction * rows)`` rows (or
        up to 3 rows in a column of 3,000 rows or more).
    rare_mass : float, default 0.01
        Rare categories are reported in a column where together they hold at most this
        share of the rows, or where they stand apart from the populated categories (almost
        no category of a few rows between them); otherwise the column is long-tailed by nature.
    min_class_rows : int, default 200
        Sampled rows a class needs to get its own learned ranges.
    drift_threshold : float, default 0.2
        Population stability index above which a column or the class mix counts as
        shifted from the reference profile.
    reference : str, optional
        A reference profile (JSON, :mod:`poisonscan.reference`) of trusted data.
    columns : dict, optional
        Declared bounds per column (``{"age": {"min": 0, "max": 120}}``); any other
        table-valued keyword is taken as a column too (``age={"min": 0}``), which is how
        ``[bounds.age]`` arrives from the config file.
    by_label : dict, optional
        Declared bounds per class and column (``{"spam": {"links": {"max": 400}}}``).

    Attributes
    ----------
    fences_ : dict of str to Fence
        Learned range per numeric or datetime column.
    class_fences_ : dict of str to dict of str to Fence
        Learned ranges per class (only classes with ``min_class_rows`` sampled rows).
    rare_ : dict of str to dict of str to int
        Rare categories (with their row counts) per categorical column and the label.
    hard_rare_ : dict of str to bool
        Whether a column's rare categories are hard findings.
    declared_ : dict of str to ColumnSpec
    declared_by_label_ : dict of str to dict of str to ColumnSpec
    reference_ : dict or None
        The validated reference profile.
    drift_ : dict or None
        Shift of the scanned data against the reference (see :func:`reference.drift`).
    n_rows_ : int
        Rows seen in pass 1.
    """

    name = "bounds"
    parameters = (
        Option("quantile", "float", 0.01, "inner quantile of the robust range",
               low=0.0, high=0.25, low_open=True),
        Option("margin", "float", 1.0, "allowance beyond the inner quantiles", low=0.0),
        Option("gross", "float", 1.5,
               "gap, in inner widths, that sets a learned-range violation apart (hard)",
               low=0.0),
        Option("rare_fraction", "float", 1e-4, "share of rows under which a category is rare",
               low=0.0, high=0.5),
        Option("rare_mass", "float", 0.01, "max share of rows in rare categories per column",
               low=0.0, high=1.0),
        Option("min_class_rows", "int", 200, "sampled rows a class needs for its own ranges",
               low=1),
        Option("drift_threshold", "float", 0.2,
               "population stability index above which a shift is flagged", low=0.0,
               low_open=True),
        Option("reference", "str", None, "trusted reference profile (JSON)", nullable=True),
        Option("columns", "table", None, "declared bounds per column", nullable=True),
        Option("by_label", "table", None, "declared bounds per class and column",
               nullable=True),
    )

    def __init__(self, **params: Any):
        known = {p.name for p in self.parameters}
        columns = dict(params.pop("columns", None) or {})
        for key in [k for k, v in params.items() if k not in ("by_label",)
                    and isinstance(v, Mapping)]:
            columns[key] = params.pop(key)
        unknown = sorted(set(params) - known)
        if unknown:
            raise _config_error(f"bounds: unknown parameter(s) "
                                f"{', '.join(f'bounds.{k}' for k in unknown)}", unknown[0])
        super().__init__(**params, **({"columns": columns} if columns else {}))

    # ------------------------------------------------------------------------ validation
    def _validate_params(self) -> None:
        for p in self.parameters:
            if p.kind == "table":
                continue
            try:
                p.validate(getattr(self, p.name), where="[bounds]")
            except ConfigError as exc:
                exc.key_path = ("bounds", p.name)
                raise
        self._declared()

    def _declared(self) -> tuple[dict[str, ColumnSpec], dict[str, dict[str, ColumnSpec]]]:
        """Parse (and so validate) the declared tables."""
        columns = self.columns or {}
        if not isinstance(columns, Mapping):
            raise _config_error(f"bounds.columns must be a table, not {columns!r}", "columns")
        declared = {str(c): ColumnSpec.parse(s, (str(c),)) for c, s in columns.items()}
        by_label: dict[str, dict[str, ColumnSpec]] = {}
        if self.by_label is not None:
            if not isinstance(self.by_label, Mapping):
                raise _config_error(f"bounds.by_label must be a table of classes, "
                                    f"not {self.by_label!r}", "by_label")
            for label, table in self.by_label.items():
                if not isinstance(table, Mapping):
                    raise _config_error(f"bounds.by_label.{label} must be a table of columns, "
                                        f"not {table!r}", "by_label", label)
                by_label[str(label)] = {str(c): ColumnSpec.parse(s, ("by_label", str(label),
                                                                     str(c)))
                                        for c, s in table.items()}
        return declared, by_label

    def validate_schema(self, schema) -> None:
        """Check the declared bounds against the data's columns (before any pass runs).

        Raises
        ------
        ConfigError
            A declared column not in the data, a bound that does not suit the column's
            kind, per-class bounds without a label column, or a reference profile that
            describes none of the data's feature columns (a profile of other data).
        """
        from .. import reference as reference_lib

        declared, by_label = self._declared()
        if self.reference:
            profile = reference_lib.load(self.reference)
            if schema.features and not set(profile["columns"]) & set(schema.features):
                raise _config_error(
                    f"{self.reference}: the reference profile describes none of the data's "
                    f"columns (it has {', '.join(sorted(profile['columns'])[:8])}; the data "
                    f"{', '.join(schema.features[:8])}): a profile of other data?", "reference")
        if by_label and schema.label is None:
            raise _config_error("bounds.by_label needs a label column (give --label)",
                                "by_label")
        items = [((c,), c, s) for c, s in declared.items()]
        items += [(("by_label", label, c), c, s) for label, t in by_label.items()
                  for c, s in t.items()]
        for path, column, spec in items:
            name = ".".join(("bounds",) + path)
            if column not in schema.columns:
                raise _config_error(f"{name}: column {column!r} is not in the data (columns: "
                                    f"{', '.join(schema.columns[:20])})", *path)
            if column in schema.skipped:
                raise _config_error(f"{name}: column {column!r} is not checked "
                                    f"({schema.skipped[column]})", *path)
            kind = _kind(schema, column)
            if kind == CATEGORICAL and spec.numeric_keys:
                key = spec.numeric_keys[0]
                raise _config_error(f"{name}.{key} needs a numeric or datetime column; "
                                    f"{column!r} holds text", *path, key)
            if kind != CATEGORICAL and spec.text_keys:
                key = spec.text_keys[0]
                raise _config_error(f"{name}.{key} needs a text column; {column!r} is {kind}",
                                    *path, key)
            if kind == DATETIME and spec.integer is not None:
                raise _config_error(f"{name}.integer does not apply to a datetime column",
                                    *path, "integer")
            for key, value in (("min", spec.low), ("max", spec.high)):
                if value is None:
                    continue
                if kind == DATETIME and _to_seconds(value) is None:
                    raise _config_error(f"{name}.{key} must be a date for datetime column "
                                        f"{column!r}, not {value!r}", *path, key)
                if kind != DATETIME and not isinstance(value, (int, float)):
                    raise _config_error(f"{name}.{key} must be a number, not {value!r}",
                                        *path, key)
            if kind == DATETIME and spec.low is not None and spec.high is not None \
                    and _to_seconds(spec.low) > _to_seconds(spec.high):
                raise _config_error(f"{name}: min is after max", *path, "max")
            if kind != CATEGORICAL and spec.allowed is not None and not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) for v in spec.allowed):
                raise _config_error(f"{name}.allowed must hold numbers for numeric column "
                                    f"{column!r}", *path, "allowed")

    # ------------------------------------------------------------------------ pass 1
    def summarize(self, chunk) -> dict[str, np.ndarray]:
        """Whole-data counts per numeric column: finite, negative, zero, non-integer values."""
        out = {}
        for column in chunk.schema.features:
            if chunk.schema.kinds[column] != CATEGORICAL:
                v = chunk.numeric(column)
                f = v[np.isfinite(v)]
                out[column] = np.array([f.size, int((f < 0).sum()), int((f == 0).sum()),
                                        int((f != np.floor(f)).sum())], dtype=np.int64)
        return out

    def _merge(self, a, b):
        return {c: a[c] + b[c] for c in a}

    # ------------------------------------------------------------------------ fit
    def fit(self, state, profile) -> "BoundsCheck":
        """Learn ranges and rare categories; resolve declared and reference bounds."""
        from .. import reference as reference_lib

        self._validate_params()
        schema = profile.schema
        self.validate_schema(schema)
        self.declared_, self.declared_by_label_ = self._declared()
        self.reference_ = reference_lib.load(self.reference) if self.reference else None
        self.n_rows_ = profile.n_rows
        self._kinds = {c: _kind(schema, c) for c in schema.columns
                       if c not in schema.skipped and c not in schema.vectors}
        self.vector_lengths_ = {c: profile.vectors[c].length for c in schema.vectors
                                if c in profile.vectors}
        self._label = schema.label
        self._labels_seen = sorted(profile.labels.counts) \
            if profile.labels is not None and profile.labels.counts is not None else []
        state = state or {}
        sample = profile.sample_chunk()
        labels = sample.labels()
        self.fences_, self.class_fences_ = {}, {}
        class_rows: dict[str, np.ndarray] = {}
        if labels is not None:
            codes, classes = _codes(labels)
            for k, cls in enumerate(classes):
                rows = np.flatnonzero(codes == k)
                if rows.size >= self.min_class_rows and len(classes) > 1:
                    class_rows[cls] = rows
        for column in schema.features:
            if schema.kinds[column] == CATEGORICAL:
                continue
            values = sample.numeric(column)
            whole = state.get(column)
            fence = self.learn_fence(values, whole, datetime=schema.kinds[column] == DATETIME)
            if fence is None:
                continue
            self.fences_[column] = fence
            for cls, rows in class_rows.items():
                own = self.learn_fence(values[rows], whole, datetime=schema.kinds[column]
                                       == DATETIME, scale=fence)
                if own is not None:
                    self.class_fences_.setdefault(cls, {})[column] = own
        self.rare_, self.hard_rare_ = {}, {}
        stats = {c: profile.columns[c] for c in schema.of_kind(CATEGORICAL)}
        if profile.labels is not None:
            stats[schema.label] = profile.labels
        for column, st in stats.items():
            rare, hard = self._rare(st.counts, profile.n_rows, column, schema)
            if rare:
                self.rare_[column], self.hard_rare_[column] = rare, hard
        self._build_rules(schema, profile)
        self.drift_ = None
        if self.reference_ is not None:
            self.drift_ = reference_lib.drift(self.reference_, profile, self.drift_threshold)
        return self

    def learn_fence(self, values: np.ndarray, whole: np.ndarray | None = None, *,
                    datetime: bool = False, scale: Fence | None = None) -> Fence | None:
        """The learned range of a column's sampled ``values`` (``None`` if too few).

        Parameters
        ----------
        values : numpy.ndarray
            Sampled values (non-finite ones are ignored).
        whole : numpy.ndarray, optional
            Whole-data counts from :meth:`summarize` (finite, negative, zero, non-integer).
        datetime : bool
            Datetime column: no sign wall, no integer rounding, no log scale.
        scale : Fence, optional
            Reuse this fence's scale, wall and integrality (for a class of the column).
        """
        values = values[np.isfinite(values)]
        if values.size < (MIN_LEARN_VALUES if scale is None else 1):
            return None
        if whole is not None and whole[0] > 0:
            count, negative, zero, nonint = (int(x) for x in whole)
        else:
            count, negative = values.size, int((values < 0).sum())
            zero, nonint = int((values == 0).sum()), int((values != np.floor(values)).sum())
        q = self.quantile
        if scale is not None:
            never_negative, integer, log = scale.g_log, scale.integer, scale.log
        else:
            never_negative = not datetime and _never_negative(values, negative, count, q)
            integer = not datetime and nonint == 0
        # the range is learned from the bulk: values set apart from it by a gap are left out
        full, values = values, _bulk(values, self.gross)
        if scale is None and not datetime and not never_negative and (full < 0).any():
            never_negative = bool((values >= 0).all())  # every negative value is set apart
        uniques, counts = np.unique(values, return_counts=True)
        mode = float(uniques[np.argmax(counts)])
        dominated = counts.max() >= (1 - 2 * q) * values.size
        if scale is None:
            log = (not datetime and never_negative and not dominated
                   and log_scale_helps(values, q))
        t = _on_scale(values, log)
        t_mode = math.log1p(max(mode, 0.0)) if log else mode
        basis = values
        if dominated:
            # one value covers the inner quantiles (a flag, a sparse count): learn the range
            # from the other values; with too few of them, only the mode is normal
            # (not from values of a sign the column never has: they are set apart by it)
            basis = values[(values != mode) & ((values >= 0) | (not never_negative))]
            if basis.size >= MIN_TAIL_VALUES:
                t_low, t_high, width = self._fence(_on_scale(basis, log))
                t_low, t_high = min(t_low, t_mode), max(t_high, t_mode)
            else:
                t_low = t_high = t_mode
                width = 0.0
        else:
            t_low, t_high, width = self._fence(t)
        t_median = float(np.median(t))
        if width <= 0:
            width = max(t_high - t_low, abs(t_mode), 1.0)
        with np.errstate(over="ignore"):  # a fence beyond float64 is unbounded (inf)
            low, high = (float(np.expm1(t_low)), float(np.expm1(t_high))) if log \
                else (t_low, t_high)
        if scale is not None:
            wall = scale.wall
        else:
            wall = never_negative and (log or _zero_is_a_wall(
                values[values >= 0], zero / max(count, 1), high - low, width))
        if wall:
            low = max(low, 0.0)
            t_low = max(t_low, 0.0)
        if integer and math.isfinite(low) and math.isfinite(high):
            low, high = float(math.ceil(low - 1e-9)), float(math.floor(high + 1e-9))
            if low > high:
                low = high = float(round(mode))
        # the scale on which "how far outside" is measured: ratios for never-negative columns
        if log or not never_negative:
            g_low, g_high, g_width = t_low, t_high, width
        else:
            g_low, g_high = math.log1p(max(low, 0.0)), math.log1p(max(high, 0.0))
            g_width = 0.0
            if basis.size >= MIN_TAIL_VALUES:
                ql, qh = np.quantile(_on_scale(basis, True), [q, 1 - q])
                g_width = float(qh - ql)
            if g_width <= 0:
                g_width = max(g_high - g_low, math.log1p(abs(mode)), 1.0)
        reach_low, reach_high, low_step, high_step = -math.inf, math.inf, width, width
        repeated: tuple[float, ...] = ()
        if scale is None:
            reach_low, reach_high = _reach(t, t_low, t_high, width, self.gross, q)
            inner_low, inner_high = (float(v) for v in np.quantile(t, [q, 1 - q]))
            low_step = max(width, inner_low - reach_low)
            high_step = max(width, reach_high - inner_high)
            # (an integer column's steps are at least one unit: its resolution)
            unit = (math.log1p(1.0) if log else 1.0) if integer else 0.0
            t_full = _on_scale(full, log)
            repeated = _repeated_beyond(
                full, t_full, (reach_low - REPEATED_STEPS * max(low_step, unit),
                               reach_low - self.gross * low_step),
                (reach_high + self.gross * high_step,
                 reach_high + REPEATED_STEPS * max(high_step, unit)))
            if repeated:
                # the column reaches a recurring value, and the few values short of it
                t_rep = _on_scale(np.asarray(repeated), log)
                floors = (-_recurring_floor(-t_full, -reach_low, -t_rep),
                          _recurring_floor(t_full, reach_high, t_rep))
                if math.isfinite(floors[0]) or math.isfinite(floors[1]):
                    reach_low, reach_high = _reach(t, t_low, t_high, width, self.gross, q,
                                                   floors=floors)
                    low_step = max(width, inner_low - reach_low)
                    high_step = max(width, reach_high - inner_high)
        floor, ceiling = (-math.inf, math.inf) if scale is not None or datetime \
            else _pile_walls(full)
        mirror = math.inf
        if never_negative:
            mirror = scale.mirror if scale is not None else \
                float(np.quantile(values[values >= 0], 1 - q)) if (values >= 0).any() else 0.0
        return Fence(low, high, t_low, t_high, t_median, width, log=log, wall=wall,
                     integer=integer, g_low=g_low, g_high=g_high, g_width=g_width,
                     g_log=never_negative, mirror=mirror, reach_low=reach_low,
                     reach_high=reach_high, low_step=low_step, high_step=high_step,
                     repeated=repeated, median=float(np.median(values)), floor=floor,
                     ceiling=ceiling)

    def _fence(self, t: np.ndarray) -> tuple[float, float, float]:
        """``(low, high, W)``: the shape-adapted fence of values ``t`` (see module docstring)."""
        q = self.quantile
        ql, q25, med, q75, qh = (float(v) for v in _quantiles(t, [q, 0.25, 0.5, 0.75, 1 - q]))
        width = qh - ql
        iqr = q75 - q25
        tail = 1.0 if iqr <= 0 else min(MAX_TAIL_FACTOR, max(1.0, width / iqr / NORMAL_TAIL_RATIO))
        pad_low = self.margin * tail * max(2 * (med - ql), width / 2)
        pad_high = self.margin * tail * max(2 * (qh - med), width / 2)
        return ql - pad_low, qh + pad_high, width

    def _rare(self, counts: dict[str, int] | None, n_rows: int, column: str,
              schema) -> tuple[dict[str, int], bool]:
        """Rare categories of a column and whether they are hard findings."""
        if not counts:
            return {}, False
        limit = max(1.0, self.rare_fraction * n_rows, min(RARE_MIN_ROWS, 0.001 * n_rows))
        rare = {value: n for value, n in counts.items() if n <= limit}
        if not rare:
            return {}, False
        populated = {v: n for v, n in counts.items() if n > limit}
        if not populated:
            return {}, False  # every category is rare: an identifier-like column
        mass = sum(rare.values())
        if mass > RARE_MAX_SHARE * (mass + sum(populated.values())):
            return {}, False  # mostly one-off values beside a common one: no category is rare
        near = sum(1 for n in populated.values() if n <= 10 * limit)
        apart = near <= 0.25 * len(rare)  # no continuum of small categories: not a long tail
        if mass > self.rare_mass * n_rows and not apart:
            return {}, False
        boolean = column != schema.label and (pa.types.is_boolean(schema.types[column])
                                              or len(counts) <= 2)
        return rare, not boolean

    # ------------------------------------------------------------------------ rules
    def _build_rules(self, schema, profile) -> None:
        """Freeze, per column, the arrays that :meth:`score` looks bounds up in by class."""
        ref = self.reference_
        classes = set(self.class_fences_) | set(self.declared_by_label_)
        if ref is not None and self._label is not None:
            classes |= set(ref.get("by_label", {}))
        self.classes_ = sorted(classes)
        slot = {c: i for i, c in enumerate(self.classes_)}
        k = len(self.classes_)
        self._numeric_rules, self._text_rules = {}, {}
        columns = [c for c in schema.columns if c in self._kinds]
        for column in columns:
            kind = self._kinds[column]
            specs = [(None, self.declared_.get(column))] + [
                (cls, self.declared_by_label_.get(cls, {}).get(column)) for cls in self.classes_]
            if kind == CATEGORICAL:
                rules = []
                for cls, spec in specs:
                    if spec is not None and (spec.allowed is not None or spec.text_keys
                                             or spec.nullable is False):
                        rules.append((cls, spec, DECLARED))
                if ref is not None:
                    info = ref["columns"].get(column)
                    if info is not None and info["type"] == "categorical":
                        allowed = info["allowed"]
                        spec = ColumnSpec(allowed=tuple(allowed) if allowed is not None else None,
                                          nullable=info["nullable"])
                        if spec.allowed is not None or spec.nullable is False:
                            if not any(c is None and s.allowed is not None for c, s, _ in rules):
                                rules.append((None, spec, REFERENCE))
                    elif column == self._label and ref.get("labels"):
                        rules.append((None, ColumnSpec(allowed=tuple(ref["labels"]["classes"])),
                                      REFERENCE))
                if rules:
                    self._text_rules[column] = rules
                continue
            # numeric / datetime: per side, the most specific declared bound, then reference
            lo = np.full(k + 1, -np.inf)
            hi = np.full(k + 1, np.inf)
            lo_strict = np.zeros(k + 1, dtype=bool)
            hi_strict = np.zeros(k + 1, dtype=bool)
            # 0 none, 1 declared, 2 reference, 3 declared for the class, 4 reference for it
            lo_src = np.zeros(k + 1, dtype=np.int8)
            hi_src = np.zeros(k + 1, dtype=np.int8)
            conv = (lambda v: _to_seconds(v)) if kind == DATETIME else float
            ref_cols = ref["columns"] if ref is not None else {}
            ref_by = ref.get("by_label", {}) if ref is not None else {}

            def ref_range(info):
                if info is None or info["type"] == "categorical":
                    return None, None
                return info["range"]["min"], info["range"]["max"]

            g_lo, g_hi = ref_range(ref_cols.get(column))
            for s in range(k + 1):
                cls = self.classes_[s] if s < k else None
                c_lo, c_hi = ref_range(ref_by.get(cls, {}).get("columns", {}).get(column)) \
                    if cls is not None else (None, None)
                own = self.declared_by_label_.get(cls, {}).get(column) if cls is not None else None
                glob = self.declared_.get(column)
                for side, arr, strict, src, r_class, r_glob in (
                        ("low", lo, lo_strict, lo_src, c_lo, g_lo),
                        ("high", hi, hi_strict, hi_src, c_hi, g_hi)):
                    for spec, code in ((own, 3), (glob, 1)):
                        if spec is not None and getattr(spec, side) is not None:
                            arr[s] = conv(getattr(spec, side))
                            strict[s] = getattr(spec, f"{side}_strict")
                            src[s] = code
                            break
                    else:  # reference: the column's range and its class's range both hold
                        tight = max if side == "low" else min
                        given = [(float(v), code) for v, code in ((r_class, 4), (r_glob, 2))
                                 if v is not None]
                        if given:
                            arr[s], src[s] = tight(given, key=lambda vc: vc[0])
            flags = {}
            for key in ("nullable", "integer"):
                values = []
                for cls, spec in specs:
                    if spec is not None and getattr(spec, key) is not None:
                        values.append((cls, getattr(spec, key), DECLARED))
                flags[key] = values
            allowed = [(cls, np.asarray(sorted(float(v) for v in spec.allowed)), DECLARED)
                       for cls, spec in specs if spec is not None and spec.allowed is not None]
            if ref is not None and not any(c is None for c, _, _ in flags["nullable"]):
                info = ref_cols.get(column)
                if info is not None and info["nullable"] is False:
                    flags["nullable"].append((None, False, REFERENCE))
            # learned fences per slot (class fences; NaN = none)
            t_low = np.full(k + 1, np.nan)
            t_high = np.full(k + 1, np.nan)
            width = np.full(k + 1, np.nan)
            c_low = np.full(k + 1, np.nan)
            c_high = np.full(k + 1, np.nan)
            for cls, fences in self.class_fences_.items():
                f = fences.get(column)
                if f is not None:
                    s = slot[cls]
                    t_low[s], t_high[s], width[s] = f.t_low, f.t_high, f.width
                    c_low[s], c_high[s] = f.low, f.high
            self._numeric_rules[column] = dict(
                lo=lo, hi=hi, lo_strict=lo_strict, hi_strict=hi_strict, lo_src=lo_src,
                hi_src=hi_src, flags=flags, allowed=allowed, c_t_low=t_low, c_t_high=t_high,
                c_width=width, c_low=c_low, c_high=c_high,
                has_class=bool(np.isfinite(width).any()),
                has_hard=bool(lo_src.any() or hi_src.any()))

    # ------------------------------------------------------------------------ scoring
    def score(self, chunk) -> CheckScores:
        n = len(chunk)
        severity = np.zeros(n)
        soft = np.zeros(n)
        findings: list[tuple[np.ndarray, np.ndarray, Any]] = []  # (positions, severity, text)

        def add(positions, sev, text, hard=True):
            positions = np.asarray(positions, dtype=np.int64)
            if positions.size:
                sev = np.broadcast_to(np.asarray(sev, dtype=np.float64), positions.shape)
                if hard:
                    np.add.at(severity, positions, sev)
                    findings.append((positions, sev + 10.0, text))
                else:
                    np.maximum.at(soft, positions, sev)
                    findings.append((positions, sev, text))

        slots, class_names = self._slots(chunk)
        for column in chunk.schema.columns:
            kind = self._kinds.get(column)
            if kind is None:
                continue
            errors = chunk.errors.get(column)
            if column in chunk.schema.kinds and errors is not None and len(errors.positions):
                add(errors.positions, INVALID, lambda i, j, c=column, e=errors: (
                    f"bounds:{c} unparseable {_quote(e.values[j])}"))
            if kind == CATEGORICAL:
                if column in self.rare_ and not any(
                        cls is None and spec.allowed is not None
                        for cls, spec, _ in self._text_rules.get(column, ())):
                    self._score_rare(chunk, column, add)  # an allowed set says it better
                if column in self._text_rules:
                    self._score_text(chunk, column, add, slots, class_names)
            else:
                self._score_numeric(chunk, column, add, soft, slots, class_names)
        for column in chunk.schema.vectors:
            self._score_vector(chunk, column, add)
        if self._label is not None:
            labels = chunk.table.column(self._label)
            add(np.flatnonzero(labels.is_null().to_numpy(zero_copy_only=False)), INVALID,
                lambda i, j, c=self._label: f"bounds:label {c!r} missing")
        violation = severity > 0
        scores = np.where(violation, 1.0 + severity, np.minimum(soft, 0.999))
        return CheckScores(scores, violation, self._reasons(n, findings))

    def _slots(self, chunk) -> tuple[np.ndarray, list[str]]:
        """Class slot of every row (``len(classes_)`` for rows of no tracked class)."""
        k = len(self.classes_)
        if self._label is None or not k:
            return np.full(len(chunk), k, dtype=np.int64), self.classes_
        labels = chunk.table.column(self._label)
        if not pa.types.is_string(labels.type):
            labels = pc.cast(labels, pa.string())
        index = pc.index_in(labels, value_set=pa.array(self.classes_, pa.string()))
        return np.asarray(index.fill_null(k).to_numpy(zero_copy_only=False),
                          dtype=np.int64), self.classes_

    def _score_vector(self, chunk, column, add) -> None:
        """A vector (embedding) column: a null, NaN or infinite component is invalid.

        Vectors of another length never get here: reading them is an input error naming
        the row (see :meth:`~poisonscan.io.chunk.Chunk.vectors`).
        """
        values = chunk.vectors(column)
        bad = ~np.isfinite(values) & ~chunk.missing(column)[:, None]
        rows = np.flatnonzero(bad.any(axis=1))
        if not rows.size:
            return
        first = bad[rows].argmax(axis=1)
        count = bad[rows].sum(axis=1)

        def reason(i, j, c=column, v=values, f=first, k=count):
            x = v[i, f[j]]
            what = "null/NaN" if np.isnan(x) else f"{'-' if x < 0 else ''}inf"
            more = f" (and {k[j] - 1} more)" if k[j] > 1 else ""
            return f"bounds:{c}[{f[j]}] is {what}{more}"
        add(rows, INVALID, reason)

    def _score_numeric(self, chunk, column, add, soft, slots, classes) -> None:
        values = chunk.numeric(column)
        missing = chunk.missing(column)
        finite = np.isfinite(values)
        nan = np.isnan(values) & ~missing
        errors = chunk.errors.get(column)
        if errors is not None and len(errors.positions):
            nan[errors.positions] = False
        add(np.flatnonzero(nan), INVALID, lambda i, j, c=column: f"bounds:{c} is NaN")
        add(np.flatnonzero(np.isinf(values)), INVALID,
            lambda i, j, c=column, v=values: f"bounds:{c}={'-' if v[i] < 0 else ''}inf")
        rules = self._numeric_rules.get(column)
        fence = self.fences_.get(column)
        fmt = _format_datetime if self._kinds[column] == DATETIME else _format_number
        k = len(classes)

        def for_class(s):
            return f" for label {classes[s]!r}" if s < k else ""

        if rules is None:
            return
        for cls, flag, src in rules["flags"]["nullable"]:
            if flag is False:
                rows = missing if cls is None else missing & (slots == classes.index(cls))
                add(np.flatnonzero(rows), INVALID,
                    lambda i, j, c=column, s=src, x="" if cls is None else f" for label {cls!r}": (
                        f"bounds:{c} missing, not nullable{x} ({s})"))
        n = len(values)
        free_lo = free_hi = True  # sides without a declared or reference bound
        hard_lo = hard_hi = np.zeros(n, dtype=bool)
        with np.errstate(invalid="ignore"):
            if rules["has_hard"]:  # declared / reference ranges: hard
                lo_strict, hi_strict = rules["lo_strict"][slots], rules["hi_strict"][slots]
                lo, hi = rules["lo"][slots], rules["hi"][slots]
                hard_lo = (values < lo) | (lo_strict & (values == lo))
                hard_hi = (values > hi) | (hi_strict & (values == hi))
                free_lo = rules["lo_src"][slots] == 0
                free_hi = rules["hi_src"][slots] == 0
                scale = self._hard_scale(column, fence)
                names = {1: DECLARED, 2: REFERENCE, 3: DECLARED, 4: REFERENCE}
                for mask, side in ((hard_lo, "lo"), (hard_hi, "hi")):
                    pos = np.flatnonzero(mask)
                    if not pos.size:
                        continue
                    dist = np.abs(values[pos] - rules[side][slots[pos]]) / scale
                    op = "<" if side == "lo" else ">"
                    word = "min" if side == "lo" else "max"
                    add(pos, HARD + 0.5 * dist / (1.0 + dist), lambda i, j, c=column, v=values,
                        o=op, w=word, r=rules, sd=side, t=for_class: (
                            f"bounds:{c}={fmt(v[i])}{o}"
                            f"{'=' if r[sd + '_strict'][slots[i]] else ''}"
                            f"{w}{'_exclusive' if r[sd + '_strict'][slots[i]] else ''}"
                            f"({fmt(r[sd][slots[i]])})"
                            f"{t(slots[i]) if r[sd + '_src'][slots[i]] >= 3 else ''}"
                            f" ({names[int(r[sd + '_src'][slots[i]])]})"))
            for cls, allowed, src in rules["allowed"]:
                rows = finite & ~np.isin(values, allowed)
                if cls is not None:
                    rows &= slots == classes.index(cls)
                add(np.flatnonzero(rows), HARD, lambda i, j, c=column, v=values, s=src,
                    x="" if cls is None else f" for label {cls!r}": (
                        f"bounds:{c}={fmt(v[i])} not allowed{x} ({s})"))
            declared_int = {cls: flag for cls, flag, _ in rules["flags"]["integer"]}
            if declared_int or (fence is not None and fence.integer):
                nonint = finite & (values != np.floor(values))
            if declared_int:
                want = np.zeros(n, dtype=bool)
                for cls, flag in declared_int.items():
                    if cls is None:
                        want[:] = flag
                for cls, flag in declared_int.items():
                    if cls is not None:
                        want[slots == classes.index(cls)] = flag
                add(np.flatnonzero(nonint & want), HARD, lambda i, j, c=column, v=values: (
                    f"bounds:{c}={fmt(v[i])} not an integer (declared)"))
                nonint &= ~want
            if fence is None:
                return
            if fence.integer and not declared_int:
                add(np.flatnonzero(nonint), 0.6, lambda i, j, c=column, v=values: (
                    f"bounds:{c}={fmt(v[i])} not an integer (learned)"), hard=False)
            # learned column fence: evidence by distance, hard when set apart or of the
            # wrong sign (transforms only on the few rows outside)
            out_lo = finite & (values < fence.low)
            out_hi = finite & (values > fence.high)
            if rules["has_hard"]:
                out_lo &= free_lo & ~hard_lo
                out_hi &= free_hi & ~hard_hi
            # a negative value in a never-negative column is of the wrong sign when 0 is a
            # wall, or when it is as large as almost every positive value of the column
            wrong_sign = np.zeros(n, dtype=bool)
            if fence.wall or fence.g_log:
                neg = np.flatnonzero(finite & (values < 0))
                if neg.size:
                    v = values[neg]
                    hit = (fence.wall & out_lo[neg]) | (fence.g_log & (-v >= fence.mirror))
                    if rules["has_hard"]:
                        hit &= free_lo[neg] & ~hard_lo[neg]
                    wrong_sign[neg[hit]] = True
                    out_lo[neg[hit]] = True
            walled = self._score_walls(values, finite & ~wrong_sign, fence, column, add,
                                       free_lo & ~hard_lo, free_hi & ~hard_hi)
            out_lo &= ~walled
            out_hi &= ~walled
            for mask, op, bound in ((out_lo, "<", f"min({fmt(fence.low)})"),
                                    (out_hi, ">", f"max({fmt(fence.high)})")):
                pos = np.flatnonzero(mask)
                if not pos.size:
                    continue
                v = values[pos]
                g = fence.g(v)
                dist = (fence.g_low - g) if op == "<" else (g - fence.g_high)
                dist = np.maximum(dist / fence.g_width, 0.0)
                if op == "<" and fence.g_log:  # below 0 the ratio scale says nothing
                    dist = np.where(v < 0, (max(fence.low, 0.0) - v) / fence.width, dist)
                t = fence.t(v)
                apart = (t < fence.reach_low - self.gross * fence.low_step) if op == "<" \
                    else (t > fence.reach_high + self.gross * fence.high_step)
                if op == "<" and fence.g_log and not fence.log \
                        and fence.t_median - fence.t_low <= fence.t_high - fence.t_median:
                    # a never-negative column fenced linearly, whose low side is not its
                    # long side (a left tail running towards 0 is the column's own): a
                    # positive value that is a small fraction of its reach is set apart on
                    # the ratio scale as well
                    g_reach = math.log1p(max(fence.reach_low, 0.0))
                    apart |= (v >= 0) & (g < g_reach - self.gross * fence.g_width)
                if fence.repeated:  # a value several sampled rows share is no isolated one
                    apart &= ~np.isin(v, fence.repeated)
                text = (lambda i, j, c=column, v=values, o=op, b=bound:
                        f"bounds:{c}={fmt(v[i])}{o}{b} (learned)")
                sign = wrong_sign[pos]
                weight = dist / (1.0 + dist)
                add(pos[sign], SIGN + 0.5 * weight[sign],
                    lambda i, j, c=column, v=values, tx=text: (
                        f"bounds:{c}={fmt(v[i])}<min(0) (learned)" if fence.low < 0
                        else tx(i, j)))
                gross = apart & ~sign
                add(pos[gross], 0.5 * weight[gross], text)
                mild = ~apart & ~sign
                add(pos[mild], 0.5 + 0.5 * weight[mild], text, hard=False)
            inside = finite & ~out_lo & ~out_hi & ~walled
            if rules["has_hard"]:
                inside &= ~hard_lo & ~hard_hi
            # learned class fences: evidence only
            if rules["has_class"]:
                c_lo = inside & free_lo & (values < rules["c_low"][slots])
                c_hi = inside & free_hi & (values > rules["c_high"][slots])
                for mask, op, side in ((c_lo, "<", "c_low"), (c_hi, ">", "c_high")):
                    pos = np.flatnonzero(mask)
                    if not pos.size:
                        continue
                    t = fence.t(values[pos])
                    s_pos = slots[pos]
                    dist = (rules["c_t_low"][s_pos] - t) if op == "<" \
                        else (t - rules["c_t_high"][s_pos])
                    dist = np.maximum(dist / rules["c_width"][s_pos], 0.0)
                    add(pos, 0.5 + 0.45 * dist / (1.0 + dist),
                        lambda i, j, c=column, v=values, o=op, sd=side, tt=for_class: (
                            f"bounds:{c}={fmt(v[i])}{o}{'min' if o == '<' else 'max'}"
                            f"({fmt(rules[sd][slots[i]])}){tt(slots[i])} (learned)"), hard=False)
                    inside[pos] = False
            # rows within every bound: how far towards the fence from the median
            d = values - fence.median
            with np.errstate(over="ignore"):  # far beyond a zero-width side: inf, capped below
                position = np.where(
                    d >= 0, d * (0.5 * 0.999 / max(fence.high - fence.median, 1e-300)),
                    d * (-0.5 * 0.999 / max(fence.median - fence.low, 1e-300)))
            np.minimum(position, 0.5 * 0.999, out=position)
            position *= inside  # NaN where not finite: fmax keeps the other
        np.fmax(soft, position, out=soft)

    @staticmethod
    def _score_walls(values: np.ndarray, finite: np.ndarray, fence: Fence, column: str, add,
                     free_lo: np.ndarray, free_hi: np.ndarray) -> np.ndarray:
        """Hard findings for values beyond the column's pile-up walls (``fence.floor``,
        ``fence.ceiling``) on sides without a declared or reference bound; returns the rows
        found. Severity grows with the distance beyond the wall, in units of the wall's
        distance from the column's median."""
        walled = np.zeros(len(values), dtype=bool)
        if not (math.isfinite(fence.floor) or math.isfinite(fence.ceiling)):
            return walled
        for op, wall in (("<", fence.floor), (">", fence.ceiling)):
            if not math.isfinite(wall):
                continue
            beyond = finite & ((values < wall) & free_lo if op == "<" else
                               (values > wall) & free_hi)
            pos = np.flatnonzero(beyond)
            if not pos.size:
                continue
            dist = np.abs(values[pos] - wall) / max(abs(wall - fence.median), 1e-300)
            add(pos, SIGN + 0.5 * dist / (1.0 + dist),
                lambda i, j, c=column, v=values, o=op, w=wall: (
                    f"bounds:{c}={_format_number(v[i])}{o}{'min' if o == '<' else 'max'}"
                    f"({_format_number(w)}) (learned: the column piles up at "
                    f"{_format_number(w)} and ends there)"))
            walled[pos] = True
        return walled

    @staticmethod
    def _hard_scale(column, fence) -> float:
        """Unit of the distance beyond a declared or reference bound (for its severity)."""
        if fence is None:
            return 1.0
        if not fence.log:
            return fence.width
        return max(fence.high - fence.low, 1e-12)

    def _score_rare(self, chunk, column, add) -> None:
        rare = self.rare_[column]
        values = chunk.table.column(column)
        if pa.types.is_dictionary(values.type):
            values = values.cast(values.type.value_type)
        if not pa.types.is_string(values.type):
            values = pc.cast(values, pa.string())
        hit = pc.is_in(values, value_set=pa.array(sorted(rare), pa.string()))
        positions = np.flatnonzero(hit.to_numpy(zero_copy_only=False))
        if not positions.size:
            return
        texts = dict(zip(positions.tolist(), values.take(pa.array(positions)).to_pylist()))
        label = f"label {column!r}" if column == self._label else column
        add(positions, RARE if self.hard_rare_[column] else 0.7, lambda i, j, c=label, t=texts: (
            f"bounds:{c} rare value {_quote(t[i])} ({rare[t[i]]} of {self.n_rows_} rows)"
            " (learned)"), hard=self.hard_rare_[column])

    def _score_text(self, chunk, column, add, slots, classes) -> None:
        values = chunk.table.column(column)
        if pa.types.is_dictionary(values.type):
            values = values.cast(values.type.value_type)
        if not pa.types.is_string(values.type):
            values = pc.cast(values, pa.string())
        texts = chunk.strings(column)
        present = np.asarray(values.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        name = f"label {column!r}" if column == self._label else column
        for cls, spec, src in self._text_rules[column]:
            sfx = "" if cls is None else f" for label {cls!r}"
            rows = np.ones(len(texts), dtype=bool) if cls is None \
                else slots == classes.index(cls)
            if spec.nullable is False:
                add(np.flatnonzero(rows & ~present), INVALID, lambda i, j, c=name, s=src, x=sfx: (
                    f"bounds:{c} missing, not nullable{x} ({s})"))
            if spec.allowed is not None:
                allowed = pa.array(sorted({str(v).lower() if isinstance(v, bool) else str(v)
                                           for v in spec.allowed}), pa.string())
                ok = np.asarray(pc.is_in(values, value_set=allowed).to_numpy(
                    zero_copy_only=False), dtype=bool)
                add(np.flatnonzero(rows & present & ~ok), HARD, lambda i, j, c=name, s=src, x=sfx: (
                    f"bounds:{c}={_quote(texts[i])} not allowed{x} ({s})"))
            if spec.max_length is not None or spec.min_length is not None:
                length = np.asarray(pc.utf8_length(values).fill_null(0).to_numpy(
                    zero_copy_only=False), dtype=np.int64)
                if spec.max_length is not None:
                    add(np.flatnonzero(rows & present & (length > spec.max_length)), HARD,
                        lambda i, j, c=name, s=src, x=sfx, m=spec.max_length, L=length: (
                            f"bounds:{c} length {L[i]}>max_length({m}){x} ({s})"))
                if spec.min_length is not None:
                    add(np.flatnonzero(rows & present & (length < spec.min_length)), HARD,
                        lambda i, j, c=name, s=src, x=sfx, m=spec.min_length, L=length: (
                            f"bounds:{c} length {L[i]}<min_length({m}){x} ({s})"))
            if spec.pattern is not None:
                ok = _full_match(values, spec.pattern)
                add(np.flatnonzero(rows & present & ~ok), HARD, lambda i, j, c=name, s=src, x=sfx: (
                    f"bounds:{c}={_quote(texts[i])} does not match pattern"
                    f"{x} ({s})"))

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

    # ------------------------------------------------------------------------ reporting
    def describe(self) -> dict[str, Any]:
        """Learned and declared bounds (and the drift against the reference), plain JSON."""
        def fence_dict(column, f):
            fmt = _format_datetime if self._kinds.get(column) == DATETIME else _format_number
            out = {"min": fmt(f.low), "max": fmt(f.high)}
            if f.log:
                out["scale"] = "log1p"
            if f.integer:
                out["integer"] = True
            for key, wall in (("floor", f.floor), ("ceiling", f.ceiling)):
                if math.isfinite(wall):
                    out[key] = fmt(wall)
            return out

        out: dict[str, Any] = {
            "ranges": {c: fence_dict(c, f) for c, f in self.fences_.items()},
            "ranges_by_label": {cls: {c: fence_dict(c, f) for c, f in fences.items()}
                                for cls, fences in sorted(self.class_fences_.items())[:50]},
            "rare_values": {c: dict(sorted(v.items())[:20]) for c, v in self.rare_.items()},
        }
        if self.declared_ or self.declared_by_label_:
            out["declared"] = _plain({**{c: _spec_dict(s) for c, s in self.declared_.items()},
                                      **({"by_label": {
                                          cls: {c: _spec_dict(s) for c, s in t.items()}
                                          for cls, t in self.declared_by_label_.items()}}
                                         if self.declared_by_label_ else {})})
            missing = sorted(set(self.declared_by_label_) - set(self._seen_labels()))
            if missing and self._seen_labels():
                out["declared_labels_not_in_data"] = missing
        if self.reference_ is not None:
            out["reference"] = self.reference
        return out

    def _seen_labels(self) -> list[str]:
        return list(self._labels_seen)

    def tally(self, reasons, columns) -> dict[str, dict[str, int]]:
        """Rows per column and broken bound, from fused reason lines.

        Parameters
        ----------
        reasons : iterable of str or None
            Reason lines (``" | "``-joined across families) of the scanned rows.
        columns : iterable of str
            The data's column names (findings are matched to the longest one).

        Returns
        -------
        dict
            ``{column: {"max (learned)": rows, ...}}``; findings a row did not spell out
            (beyond :data:`MAX_FINDINGS_IN_REASON`) count under ``"(unlisted)"``.
        """
        names = sorted(columns, key=len, reverse=True)
        counts: dict[str, dict[str, int]] = {}
        for line in reasons:
            if not line:
                continue
            seen = set()
            for segment in line.split(" | "):
                if not segment.startswith("bounds:"):
                    continue
                for finding in segment.split("; "):
                    if finding.startswith("(+"):
                        seen.add(("(unlisted)", _parse_int(finding)))
                        continue
                    key = _classify(finding, names, self._label)
                    if key is not None:
                        seen.add(key)
            for column, kind in seen:
                if column == "(unlisted)":
                    bucket = counts.setdefault("(unlisted)", {})
                    bucket["findings"] = bucket.get("findings", 0) + kind
                    continue
                bucket = counts.setdefault(column, {})
                bucket[kind] = bucket.get(kind, 0) + 1
        return {c: dict(sorted(v.items())) for c, v in sorted(counts.items())}


# ============================================================================ helpers


def _kind(schema, column: str) -> str:
    """Kind of any checked column; the label and the id column are text."""
    return schema.kinds.get(column, CATEGORICAL)


def _codes(labels: np.ndarray) -> tuple[np.ndarray, list[str]]:
    present = np.array([v is not None for v in labels], dtype=bool) if labels.dtype == object \
        else np.ones(len(labels), dtype=bool)
    text = np.where(present, labels, "")
    classes, codes = np.unique(text.astype(str), return_inverse=True)
    codes = np.where(present, codes, -1)
    return codes, [str(c) for c in classes]


def _reach(t: np.ndarray, t_low: float, t_high: float, width: float,
           gross: float, q: float,
           floors: tuple[float, float] = (math.inf, -math.inf)) -> tuple[float, float]:
    """How far a column's values extend beyond its fence without a gap that sets them apart.

    Starting from the outermost value inside the fence, walk outwards over the distinct
    values beyond it. A step is a gap when it is longer than ``gross`` times the larger of
    the inner width and how far the walk has already come from the inner quantile (a
    long, thinly populated tail tolerates longer steps than a bounded column). A value
    beyond the result by such a gap is set apart: an isolated value, not a tail.

    ``floors`` (lowest, highest; fence scale) are values the column is known to reach
    (:func:`_recurring_floor`): the walk passes every value up to them whatever the gaps,
    so that a value between the tail and a recurring value (a 4 below a sparse count's
    recurring 6) is not set apart.
    """
    inside = t[(t >= t_low) & (t <= t_high)]
    if not inside.size:
        return t_low, t_high
    inner_low, inner_high = (float(v) for v in np.quantile(t, [q, 1 - q]))

    def walk(start: float, beyond: np.ndarray, inner: float, floor: float) -> float:
        reach = start
        if start < floor < math.inf:
            beyond = np.append(beyond, floor)
        for value in np.unique(beyond).tolist():
            if value > floor and value - reach > gross * max(width, reach - inner):
                break
            reach = value
        return reach

    high = walk(float(inside.max()), t[t > t_high], inner_high, floors[1])
    low = -walk(-float(inside.min()), -t[t < t_low], -inner_low, -floors[0])
    return low, high


def _bulk(values: np.ndarray, gross: float) -> np.ndarray:
    """The values of a column that are not set apart from its bulk.

    Walk outwards from each quartile over the sorted distinct values; a step longer than
    ``gross`` times the larger of the interquartile range and the distance already walked
    is a gap, and the values beyond the first gap on that side are set apart. They are
    left out of the quantiles a range is learned from when they are at most
    :data:`MAX_DETACHED` of the values on that side: enough inserted gross outliers
    otherwise move the inner quantiles themselves (3% of rows with a value two ranges
    beyond the maximum put ``Q(0.99)`` among them), and the range grows to admit them.
    The distance walked tolerates a long, thinning natural tail; a natural extreme value
    left out changes nothing, since it lies beyond the inner quantiles anyway.
    """
    q25, q75 = (float(v) for v in np.quantile(values, [0.25, 0.75]))
    step = q75 - q25
    if step <= 0:
        return values
    uniques = np.unique(values)
    keep = np.ones(values.size, dtype=bool)
    for sign, start in ((1.0, q75), (-1.0, -q25)):
        beyond = np.sort(sign * uniques[sign * uniques > start])
        previous = np.concatenate(([start], beyond[:-1]))
        gaps = np.flatnonzero(beyond - previous > gross * np.maximum(step, previous - start))
        if gaps.size:
            apart = sign * values > previous[gaps[0]]
            if apart.sum() <= MAX_DETACHED * values.size:
                keep &= ~apart
    return values if keep.all() else values[keep]


def _pile_walls(values: np.ndarray) -> tuple[float, float]:
    """``(floor, ceiling)``: the extreme values a column piles up at and never passes
    (``-inf``, ``inf`` where it has none).

    A rating scale's top, a clipped measurement or a percentage's 100 hold many rows, about
    as many as the value just inside them or more, and nothing lies just beyond: the column
    ends there, however far its fence reaches (a skewed 1-10 scale's fence reaches 28). The
    highest pile-up (at least :data:`PILE_SHARE` of the sampled values and
    :data:`PILE_MIN_ROWS` of them) is the column's ceiling when it holds at least
    :data:`PILE_RISE` of the next lower value's count and no sampled value lies above it by
    up to :data:`PILE_GAP` of its distance from the median, nor by up to the step from the
    next lower value (an integer code's 7 continues its 6); values further out are what
    inserted outliers would be, and do not move it, as long as they are few: at most
    :data:`MAX_DETACHED` of the values, and :data:`PILE_BEYOND` of the pile-up's. The
    lowest pile-up is the floor, mirrored. A natural tail fails the test: it thins out
    towards its end (a count's 3 holds fewer rows than its 2), continues just beyond it (a
    4 after the 3), or goes on with more values than the pile-up holds (a sparse pixel's
    1s, 2s, ... 16s after the 1s).
    """
    uniques, counts = np.unique(values, return_counts=True)
    least = max(PILE_MIN_ROWS, PILE_SHARE * values.size)
    median = float(np.median(values))
    # the floor is the ceiling of the negated values
    return (-_ceiling(-uniques[::-1], counts[::-1], least, -median, values.size),
            _ceiling(uniques, counts, least, median, values.size))


def _ceiling(uniques: np.ndarray, counts: np.ndarray, least: float, median: float,
             n: int) -> float:
    """The ceiling of :func:`_pile_walls` from a column's sorted distinct values and
    their counts (``inf`` where there is none)."""
    piles = np.flatnonzero(counts >= least)
    if not piles.size:
        return math.inf
    at = int(piles[-1])
    top = float(uniques[at])
    if at == 0 or counts[at] < PILE_RISE * counts[at - 1] or top <= median:
        return math.inf
    gap = max(PILE_GAP * (top - median), top - float(uniques[at - 1]))  # at least one step
    if at + 1 < uniques.size and uniques[at + 1] <= top + gap:
        return math.inf  # the column goes on just beyond
    if counts[at + 1:].sum() > min(MAX_DETACHED * n, PILE_BEYOND * counts[at]):
        return math.inf  # too many beyond to be inserted values
    return top


def _repeated_beyond(values: np.ndarray, t: np.ndarray, below: tuple[float, float],
                     above: tuple[float, float]) -> tuple[float, ...]:
    """Values (column units) set apart within the bands ``below`` and ``above`` (fence
    scale) that at least two sampled rows share, at most :data:`MAX_REPEATED` of them,
    most frequent first.

    A rare value that recurs a few steps beyond the column's reach (a sparse count's 6, a
    pixel's 2) is a property of the column; an inserted gross outlier is a value of its
    own, and a value repeated far beyond every step (``1e6`` in eight rows of a column of
    hundreds) is a repeated poison, not a tail: both stay hard findings.
    """
    beyond = values[((t >= below[0]) & (t < below[1])) | ((t > above[0]) & (t <= above[1]))]
    if beyond.size < 2:
        return ()
    uniques, counts = np.unique(beyond, return_counts=True)
    keep = counts >= 2
    order = np.argsort(-counts[keep], kind="stable")[:MAX_REPEATED]
    return tuple(float(v) for v in uniques[keep][order])


def _recurring_floor(t: np.ndarray, reach: float, recurring: np.ndarray) -> float:
    """The farthest recurring value above ``reach`` that the column's lone values short of
    it do not outnumber, or ``-inf``.

    A rare value several rows share (a sparse count's 6 in two rows, caravan's 7 in five)
    is the column's own, and so are a lone 4 or 5 below it: fewer lone values than the rows
    that share it. A spread of values beyond the reach, mostly lone with a few meeting by
    chance (inserted outliers in an integer column), outnumbers every recurring value in
    it and extends nothing.
    """
    values, counts = np.unique(t[t > reach], return_counts=True)
    recurring = recurring[recurring > reach]
    at = np.searchsorted(values, recurring)
    lone_short = np.concatenate(([0], np.cumsum(counts == 1)))[at]
    extends = lone_short < counts[at]
    return float(recurring[extends].max()) if extends.any() else -math.inf


def _never_negative(values: np.ndarray, negative: int, count: int, q: float) -> bool:
    """Whether a column is (almost) never negative.

    True when negative values are a trace (at most one, or 0.1% of the whole data), or
    when they are rarer than the inner quantile and stand apart: their typical magnitude
    exceeds the ``1 - q`` quantile of the column's non-negative values, so that they are
    not a tail of the column but values of the wrong sign.
    """
    if negative <= max(1.0, 0.001 * count):
        return True
    if negative > max(q * count, MIN_TAIL_VALUES):
        return False
    neg = values[values < 0]
    pos = values[values >= 0]
    if not neg.size or not pos.size:
        return False
    with np.errstate(over="ignore"):  # the mean of two middle values near ±1.8e308: inf
        return bool(np.median(-neg) >= np.quantile(pos, 1 - q))


def _zero_is_a_wall(values: np.ndarray, zero_share: float, span: float, width: float) -> bool:
    """Whether 0 bounds a never-negative column, rather than lying in its thin tail.

    True when values pile up at exactly 0 (counts, amounts), when the bulk stays far from
    0 (ages, scores), or when the bulk hugs 0 (a uniform or decaying density starting at
    0); false for a continuous column whose bulk sits at a moderate distance from 0, so
    that a small negative value merely continues its tail.
    """
    low = float(np.quantile(values, 0.001))
    return bool(zero_share >= 0.001 or low >= 0.1 * span or low <= 0.02 * width)


def _full_match(values: pa.Array, pattern: str) -> np.ndarray:
    """Which text cells match ``pattern`` in full (nulls: ``True``).

    RE2 (linear time, vectorised) runs the pattern; a pattern RE2 does not support (back
    references, look-around) runs with Python's :mod:`re` on each distinct value, and cells
    longer than :data:`MAX_PATTERN_INPUT` characters never match.
    """
    values = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    short = pc.less_equal(pc.utf8_length(values), MAX_PATTERN_INPUT)
    try:
        hit = pc.match_substring_regex(values, pattern=f"^(?:{pattern})$")
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        compiled = re.compile(pattern)
        encoded = pc.dictionary_encode(values)
        dictionary = encoded.dictionary.to_pylist()
        ok = np.array([len(v) <= MAX_PATTERN_INPUT and compiled.fullmatch(v) is not None
                       for v in dictionary], dtype=bool)
        indices = np.asarray(encoded.indices.fill_null(0).to_numpy(zero_copy_only=False))
        result = ok[indices] if len(dictionary) else np.ones(len(values), dtype=bool)
        return result | ~np.asarray(values.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    hit = pc.and_kleene(hit, short)
    return np.asarray(hit.fill_null(True).to_numpy(zero_copy_only=False), dtype=bool)


def _spec_dict(spec: ColumnSpec) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if spec.low is not None:
        out["min_exclusive" if spec.low_strict else "min"] = spec.low
    if spec.high is not None:
        out["max_exclusive" if spec.high_strict else "max"] = spec.high
    for key in ("allowed", "pattern", "nullable", "max_length", "min_length", "integer"):
        if getattr(spec, key) is not None:
            out[key] = getattr(spec, key)
    return out


_KIND_PATTERNS = (
    (re.compile(r"^ unparseable "), "unparseable"),
    (re.compile(r"^ is NaN"), "nan"),
    (re.compile(r"^\[\d+\] is "), "non-finite component"),
    (re.compile(r"^=-?inf$"), "inf"),
    (re.compile(r"^ missing, not nullable"), "nullable"),
    (re.compile(r"^ missing$"), "missing"),
    (re.compile(r"^ rare value "), "rare"),
    (re.compile(r" not an integer"), "integer"),
    (re.compile(r" not allowed"), "allowed"),
    (re.compile(r" does not match pattern"), "pattern"),
    (re.compile(r"^ length \d+>max_length"), "max_length"),
    (re.compile(r"^ length \d+<min_length"), "min_length"),
    (re.compile(r"^=\S*<=min_exclusive\("), "min_exclusive"),
    (re.compile(r"^=\S*>=max_exclusive\("), "max_exclusive"),
    (re.compile(r"^=\S*<min\("), "min"),
    (re.compile(r"^=\S*>max\("), "max"),
)
_SOURCE = re.compile(r"(?:( for label .*))? \((declared|reference|learned)\)$")


def _classify(finding: str, names: list[str], label: str | None) -> tuple[str, str] | None:
    """``(column, "max (learned)")`` of one finding text, or ``None``."""
    body = finding[len("bounds:"):]
    if label is not None and body.startswith(f"label {label!r}"):
        column, rest = label, body[len(f"label {label!r}"):]
    else:
        column = next((c for c in names if body.startswith(c)), None)
        if column is None:
            return None
        rest = body[len(column):]
    kind = next((k for p, k in _KIND_PATTERNS if p.search(rest)), "other")
    source = _SOURCE.search(rest)
    suffix = ""
    if source is not None:
        suffix = f" ({source.group(2)}{', per class' if source.group(1) else ''})"
    return column, kind + suffix


def _parse_int(text: str) -> int:
    digits = re.search(r"\d+", text)
    return int(digits.group()) if digits else 1


def _quote(value: Any) -> str:
    """A cell value, quoted and escaped onto one line, cut to a readable length.

    ``;`` and ``|`` (which separate findings and families in a reason) are escaped too.
    """
    text = str(value)
    if len(text) > MAX_VALUE_CHARS:
        text = text[:MAX_VALUE_CHARS] + "…"
    return repr(text).replace(";", "\\x3b").replace("|", "\\x7c")


def _format_number(x: float) -> str:
    if math.isfinite(x) and x == int(x) and abs(x) < 1e15:
        return str(int(x))
    return f"{x:.6g}"


def _format_datetime(seconds: float) -> str:
    try:
        return _dt.datetime.fromtimestamp(seconds, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    except (OverflowError, OSError, ValueError):
        return _format_number(seconds)

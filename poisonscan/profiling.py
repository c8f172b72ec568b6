"""Pass 1: small, mergeable summaries of the whole dataset and a keyed row sample.

Every state here has ``of(chunk)`` (summarise one chunk) and ``merge(other)`` (combine
two summaries). ``merge`` is associative and commutative, so chunks can be summarised in
any grouping and order — sequentially on the local engine, as a tree on Dask — and give
the same profile (floating-point moments up to rounding).
"""

from __future__ import annotations

import dataclasses
import math
import threading
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .hashing import row_keys
from .io.chunk import Chunk, ragged_error
from .io.schema import CATEGORICAL, ScanSchema

#: Distinct values tracked per categorical column before it counts as high-cardinality.
MAX_CATEGORIES = 2000
#: Distinct labels tracked before the label column counts as not categorical.
MAX_LABELS = 10_000


@dataclasses.dataclass(frozen=True)
class NumericStats:
    """Counts, range and moments of a numeric (or datetime) column.

    ``count`` counts finite values, ``fractional`` those with a fractional part; ``mean``
    is their running mean and :attr:`m2` their
    sum of squared deviations (Chan et al.'s parallel update). The sum of squares is
    kept as ``scaled_m2 * 4.0**scale``, on the values' scale ``2**scale`` (a power of
    two, so the scaling is exact): the squares of finite values near ±1e308 overflow,
    the scaled ones cannot.
    """

    count: int = 0
    missing: int = 0
    nan: int = 0
    posinf: int = 0
    neginf: int = 0
    unparseable: int = 0
    fractional: int = 0
    min: float = math.inf
    max: float = -math.inf
    mean: float = 0.0
    scaled_m2: float = 0.0
    scale: int = 0

    @classmethod
    def of(cls, chunk: Chunk, column: str) -> "NumericStats":
        values = chunk.numeric(column)
        missing = chunk.missing(column)
        err = chunk.errors.get(column)
        finite = values[np.isfinite(values)]
        nan = int(np.isnan(values).sum() - missing.sum() - (len(err.positions) if err else 0))
        n = finite.size
        scale = math.frexp(float(np.abs(finite).max()))[1] if n else 0
        scaled = np.ldexp(finite, -scale)  # in (-1, 1)
        mean = float(scaled.mean()) if n else 0.0
        return cls(count=n, missing=int(missing.sum()), nan=nan,
                   posinf=int(np.isposinf(values).sum()), neginf=int(np.isneginf(values).sum()),
                   unparseable=len(err.positions) if err else 0,
                   fractional=int((finite != np.floor(finite)).sum()),
                   min=float(finite.min()) if n else math.inf,
                   max=float(finite.max()) if n else -math.inf,
                   mean=_ldexp(mean, scale),
                   scaled_m2=float(((scaled - mean) ** 2).sum()) if n else 0.0, scale=scale)

    @property
    def m2(self) -> float:
        """Sum of squared deviations from the mean (``inf`` where it overflows)."""
        return _ldexp(self.scaled_m2, 2 * self.scale)

    @property
    def std(self) -> float:
        """Population standard deviation of the finite values (``nan`` when there are none)."""
        if not self.count:
            return math.nan
        return _ldexp(math.sqrt(self.scaled_m2 / self.count), self.scale)

    def merge(self, other: "NumericStats") -> "NumericStats":
        n = self.count + other.count
        if not self.count or not other.count:
            kept = self if self.count else other
            mean, scaled_m2, scale = kept.mean, kept.scaled_m2, kept.scale
        else:
            scale = max(self.scale, other.scale)
            a, b = math.ldexp(self.mean, -scale), math.ldexp(other.mean, -scale)
            delta = b - a
            mean = _ldexp(a + delta * other.count / n, scale)
            scaled_m2 = (math.ldexp(self.scaled_m2, 2 * (self.scale - scale))
                         + math.ldexp(other.scaled_m2, 2 * (other.scale - scale))
                         + delta * delta * self.count * other.count / n)
        return NumericStats(
            count=n, missing=self.missing + other.missing, nan=self.nan + other.nan,
            posinf=self.posinf + other.posinf, neginf=self.neginf + other.neginf,
            unparseable=self.unparseable + other.unparseable,
            fractional=self.fractional + other.fractional,
            min=min(self.min, other.min), max=max(self.max, other.max), mean=mean,
            scaled_m2=scaled_m2, scale=scale)

    def to_dict(self) -> dict[str, Any]:
        finite = self.count > 0
        return {"count": self.count, "missing": self.missing, "nan": self.nan,
                "posinf": self.posinf, "neginf": self.neginf, "unparseable": self.unparseable,
                "min": self.min if finite else None, "max": self.max if finite else None,
                "mean": _finite(_round(self.mean)) if finite else None,
                "std": _finite(_round(self.std)) if finite else None}


def _ldexp(x: float, exp: int) -> float:
    """``x * 2**exp``, infinite (not :class:`OverflowError`) when out of range."""
    try:
        return math.ldexp(x, exp)
    except OverflowError:
        return math.copysign(math.inf, x)


def _finite(value: float) -> float | None:
    """``None`` for a moment that overflowed (values near ±1e308): JSON has no inf."""
    return value if math.isfinite(value) else None


@dataclasses.dataclass(frozen=True)
class CategoryStats:
    """Value counts of a categorical column; ``counts`` is ``None`` once it is high-cardinality."""

    count: int = 0
    missing: int = 0
    counts: dict[str, int] | None = dataclasses.field(default_factory=dict)
    cap: int = MAX_CATEGORIES

    @classmethod
    def of_array(cls, values: pa.ChunkedArray | pa.Array, cap: int) -> "CategoryStats":
        """Summarise an Arrow column (any type; values are counted by their text)."""
        if pa.types.is_dictionary(values.type):
            values = values.cast(values.type.value_type)
        if not pa.types.is_string(values.type):
            values = pc.cast(values, pa.string())
        missing = values.null_count
        counted = pc.value_counts(values.drop_null() if missing else values)
        table = None
        if len(counted) <= cap:
            table = dict(zip(counted.field("values").to_pylist(),
                             counted.field("counts").to_pylist()))
        return cls(count=len(values) - missing, missing=missing, counts=table, cap=cap)

    @classmethod
    def of(cls, chunk: Chunk, column: str) -> "CategoryStats":
        return cls.of_array(chunk.table.column(column), MAX_CATEGORIES)

    @property
    def high_cardinality(self) -> bool:
        return self.counts is None

    def merge(self, other: "CategoryStats") -> "CategoryStats":
        counts = None
        if self.counts is not None and other.counts is not None:
            counts = dict(self.counts)
            for value, n in other.counts.items():
                counts[value] = counts.get(value, 0) + n
            if len(counts) > self.cap:
                counts = None
        return CategoryStats(count=self.count + other.count, missing=self.missing + other.missing,
                             counts=counts, cap=self.cap)

    def to_dict(self, top: int = 20) -> dict[str, Any]:
        out: dict[str, Any] = {"count": self.count, "missing": self.missing,
                               "high_cardinality": self.high_cardinality}
        if self.counts is not None:
            ordered = sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))
            out["distinct"] = len(ordered)
            out["top"] = {shorten(v): k for v, k in ordered[:top]}
        return out


@dataclasses.dataclass(frozen=True)
class VectorStats:
    """Counts and the common length of a vector (embedding) column.

    ``length`` is the length of every non-null vector, ``first`` the ``(row, source)``
    of the first such vector (to name a row when two parts disagree). ``nonfinite``
    counts vectors with a null, NaN or infinite component.
    """

    column: str = ""
    count: int = 0
    missing: int = 0
    nonfinite: int = 0
    length: int | None = None
    first: tuple[int, str] | None = None

    @classmethod
    def of(cls, chunk: Chunk, column: str) -> "VectorStats":
        values = chunk.vectors(column)  # raises on vectors of different lengths
        missing = chunk.missing(column)
        present = np.flatnonzero(~missing)
        if not present.size:
            return cls(column, missing=int(missing.sum()))
        bad = ~np.isfinite(values[present]).all(axis=1)
        return cls(column, count=int(present.size), missing=int(missing.sum()),
                   nonfinite=int(bad.sum()), length=int(values.shape[1]),
                   first=(int(chunk.rows[present[0]]), chunk.source))

    def merge(self, other: "VectorStats") -> "VectorStats":
        """Combine two summaries.

        Raises
        ------
        InputError
            The two parts' vectors differ in length (naming the later part's first row).
        """
        if self.length is not None and other.length is not None \
                and self.length != other.length:
            early, late = sorted((self, other), key=lambda s: s.first[0])
            raise ragged_error(late.first[1], late.first[0], self.column, late.length,
                               early.length)
        firsts = [s.first for s in (self, other) if s.first is not None]
        return VectorStats(self.column, count=self.count + other.count,
                           missing=self.missing + other.missing,
                           nonfinite=self.nonfinite + other.nonfinite,
                           length=self.length if self.length is not None else other.length,
                           first=min(firsts) if firsts else None)

    def to_dict(self) -> dict[str, Any]:
        return {"count": self.count, "missing": self.missing, "nonfinite": self.nonfinite,
                "length": self.length}


@dataclasses.dataclass(frozen=True)
class RowSample:
    """A uniform sample of at most ``size`` rows: those with the smallest keyed hashes.

    Because a row's key depends only on (seed, row id), the sample is the same set of
    rows whatever the chunking, and ``merge`` (keep the ``size`` smallest keys of both)
    is associative and commutative.
    """

    size: int
    keys: np.ndarray
    rows: np.ndarray
    table: pa.Table | None

    @classmethod
    def of(cls, chunk: Chunk, size: int, seed: int) -> "RowSample":
        keys = row_keys(seed, chunk.rows)
        keep = np.arange(len(keys)) if len(keys) <= size \
            else np.argpartition(keys, size - 1)[:size]
        return cls._ordered(size, keys[keep], chunk.rows[keep],
                            chunk.table.take(pa.array(keep)))

    @classmethod
    def _ordered(cls, size, keys, rows, table) -> "RowSample":
        order = np.argsort(rows, kind="stable")
        return cls(size, keys[order], rows[order], table.take(pa.array(order)))

    def merge(self, other: "RowSample") -> "RowSample":
        if self.table is None:
            return other
        if other.table is None:
            return self
        keys = np.concatenate([self.keys, other.keys])
        rows = np.concatenate([self.rows, other.rows])
        if len(keys) <= self.size:
            keep = np.arange(len(keys))
        else:
            keep = np.argpartition(keys, self.size - 1)[:self.size]
        table = pa.concat_tables([self.table, other.table]).take(pa.array(keep))
        return RowSample._ordered(self.size, keys[keep], rows[keep], table)

    def __len__(self) -> int:
        return len(self.rows)

    def as_chunk(self, schema: ScanSchema) -> Chunk:
        """The sample as a chunk (rows in row-id order) that checks can score."""
        return Chunk(self.table, self.rows, schema, source="<sample>")


@dataclasses.dataclass(frozen=True)
class Profile:
    """Everything pass 1 learns: row count, column summaries, label counts and the sample."""

    schema: ScanSchema
    n_rows: int
    columns: dict[str, NumericStats | CategoryStats]
    labels: CategoryStats | None
    sample: RowSample
    seed: int = 0
    #: Summaries of the vector (embedding) columns.
    vectors: dict[str, VectorStats] = dataclasses.field(default_factory=dict)
    #: Artefacts fitted once on the final profile and shared by checks (see :meth:`encoder`).
    shared: dict = dataclasses.field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, chunk: Chunk, *, sample_rows: int, seed: int) -> "Profile":
        schema = chunk.schema
        columns = {c: (CategoryStats.of(chunk, c) if schema.kinds[c] == CATEGORICAL
                       else NumericStats.of(chunk, c)) for c in schema.features}
        labels = CategoryStats.of_array(chunk.table.column(schema.label), MAX_LABELS) \
            if schema.label is not None else None
        return cls(schema, len(chunk), columns, labels,
                   RowSample.of(chunk, sample_rows, seed), seed,
                   {c: VectorStats.of(chunk, c) for c in schema.vectors})

    def merge(self, other: "Profile") -> "Profile":
        return Profile(self.schema, self.n_rows + other.n_rows,
                       {c: s.merge(other.columns[c]) for c, s in self.columns.items()},
                       self.labels.merge(other.labels) if self.labels is not None else None,
                       self.sample.merge(other.sample), self.seed,
                       {c: s.merge(other.vectors[c]) for c, s in self.vectors.items()})

    def sample_chunk(self) -> Chunk:
        """The row sample as a chunk (built once; its conversions are cached)."""
        return self._shared("sample", lambda: self.sample.as_chunk(self.schema))

    def encoder(self, *, log_skewed: bool = False):
        """The :class:`~poisonscan.encode.FeatureEncoder` fitted on the sample, shared by checks.

        With ``log_skewed``, the encoder that takes skewed columns on the ``log1p`` scale,
        derived from the shared one (:meth:`~poisonscan.encode.FeatureEncoder.log_scaled`:
        only the numeric columns are fitted, and encoded, again); where the sample has no
        such column it is the shared one itself.
        """
        if log_skewed:
            return self._shared("encoder_log",
                                lambda: self.encoder().log_scaled(self.sample_chunk()))
        from .encode import FeatureEncoder
        return self._shared("encoder", lambda: FeatureEncoder().fit(self.sample_chunk()))

    def _shared(self, key: str, make):
        """``make()``, built once per profile even when checks fitted side by side in
        threads ask for it at once."""
        if key not in self.shared:
            with _SHARED_LOCK:  # reentrant: the log-scaled encoder asks for the other one
                if key not in self.shared:
                    self.shared[key] = make()
        return self.shared[key]


#: Guards the building of :attr:`Profile.shared` artefacts. One lock for every profile (a
#: lock cannot be pickled with a profile): each artefact is built once, and a check that
#: waits for one needs it anyway.
_SHARED_LOCK = threading.RLock()


#: Characters of a value shown in a summary (free-text cells can be megabytes long).
MAX_SHOWN_CHARS = 200


def shorten(value: str, limit: int = MAX_SHOWN_CHARS) -> str:
    """A value cut to ``limit`` characters (saying how long it was)."""
    if len(value) <= limit:
        return value
    return f"{value[:limit]}… ({len(value):,} characters)"


def _round(x: float, digits: int = 10) -> float:
    """Round to ``digits`` significant digits: moments merged in another order agree."""
    return float(f"{x:.{digits}g}")

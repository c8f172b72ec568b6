"""Planted values: one exact value of a continuous column on many rows of one label.

A column measured or computed at full precision (most of its sampled values need
:data:`FULL_DIGITS` significant digits or more) hardly ever holds one value twice. A
backdoor's trigger stamped on its carriers (``f4 = 2.5``), or the values a cluster of near
copies keeps from the row it copies, put one value on many rows — all of the attacker's
label. Such a value is told from a natural one by two tests, both over the whole data:

* **repeat** — it is carried by ``c`` rows of one label, where the column's values
  never repeat: a count no sketch noise explains;
* **purity** — those ``c`` rows are all, or nearly all, of the value's carriers: a natural
  point mass (a clip at 100, a default of 0.5) is shared by the labels at their usual
  rates, a planted value is not.

The sample cannot tell: at 1M rows and the default sample of 100,000, a value on 15 rows
has one or two sampled carriers. So pass 1 counts every non-integer value of every
floating feature column, keyed by ``(column, value)`` and by ``(column, value, label)``,
in two count-min sketches (Cormode & Muthukrishnan 2005) of fixed size: two rows of
``2 ** bits`` one-byte counters each, a value's count the smaller of its two counters. A
counter only overcounts, by the other items hashed to it: ``Poisson(items / 2 ** bits)``,
known exactly at fit. So the repeat test is exact in its level whatever the data's size;
its power falls as the items outgrow the counters (with the default 64 MB, a value on 10
rows of 1M rows x 14 continuous columns passes it, one on 20 rows of 10M does not).

A chunk's state is its counters (sparse while few: sorted counter indices and counts;
dense beyond :data:`DENSE_SHARE` of the counters); ``merge`` adds them, saturating at 255,
so it is associative and commutative and the counts depend neither on chunking nor on
the engine. Fit keeps only the counters at or above the count the repeat test can pass
at all (:attr:`PlantedValues.min_count_`), so pass 2 holds a few small sorted arrays.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pyarrow as pa
from scipy import stats

from ..compiled import LazyKernel
from ..hashing import splitmix64
from ..io.schema import NUMERIC
from .base import quote
from .duplicates import hash_strings

#: A column is continuous when at least :data:`FULL_SHARE` of its sampled non-integer
#: values need this many significant digits (a value rounded to one digit fewer changes).
FULL_DIGITS = 8
FULL_SHARE = 0.5
#: Fewest sampled non-integer values of a column for it to be judged.
MIN_VALUES = 50
#: A column whose sample repeats more than this many distinct values (point masses
#: aside) repeats values by nature — a per-entity value joined onto the entity's rows,
#: ratios of small counts — and is not tested. Planted values are a few; at the default
#: sample rate of a 1M-row file a 10-row value has two sampled carriers 26% of the time.
MAX_SAMPLE_REPEATS = 20
#: Values on at least this share of the sampled values are point masses (a clip, a
#: default), not counted against :data:`MAX_SAMPLE_REPEATS`.
POINT_MASS_SHARE = 0.01
#: Level of the purity test (Bonferroni over the candidate values). Laxer than the repeat
#: test's ``alpha``: it only tells a planted value from a natural point mass in columns
#: whose values do not repeat, and 10 carriers of a label a third of the rows hold reach
#: ``3.5 ** -10 = 3.6e-6`` at most before the correction.
PURITY_ALPHA = 0.01
#: Rows of each count-min sketch.
DEPTH = 2
#: The two sketches: keyed by (column, value), and by (column, value, label).
ALL, LABELLED = 0, 1
#: A sparse state becomes dense when it holds more than this share of the counters.
DENSE_SHARE = 1 / 32
#: Largest count a counter holds (one byte); a value whose count reaches it is not judged
#: (its purity cannot be told).
SATURATED = 255
#: Characters of a label quoted in a reason.
MAX_TEXT = 30

_U64 = np.uint64
#: Salt of a column's index, and of a label's hash.
_COLUMN_SALT = _U64(0x706C616E74656463)
_LABEL_SALT = _U64(0x6C6162656C6C6564)


def floating_columns(schema) -> tuple[str, ...]:
    """The feature columns whose values pass 1 counts: numeric with a floating type."""
    return tuple(c for c in schema.features
                 if schema.kinds[c] == NUMERIC and pa.types.is_floating(schema.types[c]))


def _value_keys(chunk, columns) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per column: the rows holding a finite non-integer value, and the 64-bit key of
    ``(column, value)`` of each (exact: the float's bits)."""
    rows, keys = [], []
    with np.errstate(over="ignore", invalid="ignore"):
        for j, column in enumerate(columns):
            values = chunk.numeric(column)
            held = np.flatnonzero(np.isfinite(values) & (values != np.floor(values)))
            salt = splitmix64(np.array([j], dtype=_U64) ^ _COLUMN_SALT)
            rows.append(held)
            keys.append(splitmix64(values[held].view(_U64) ^ salt))
    return rows, keys


def _label_keys(chunk) -> tuple[np.ndarray, np.ndarray]:
    """The 64-bit hash of every row's label and whether the row has one."""
    column = chunk.table.column(chunk.schema.label)
    labelled = ~np.asarray(column.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    return hash_strings(column) ^ _LABEL_SALT, labelled


def _counters(keys: np.ndarray, kind: int, bits: int) -> np.ndarray:
    """The counter index of every key in each row of sketch ``kind`` (``DEPTH`` rows of
    ``2 ** bits`` counters, laid out kind by kind, row by row), row after row."""
    mask = _U64((1 << bits) - 1)
    width = 1 << bits
    out = []
    for r in range(DEPTH):
        bucket = (keys >> _U64(64 - bits * (r + 1))) & mask
        out.append(bucket.astype(np.int64) + (kind * DEPTH + r) * width)
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def _add_counts(table, index, counts):
    """Add ``counts`` at ``index`` into the one-byte ``table``, saturating."""
    for i in range(len(index)):
        total = table[index[i]] + counts[i]
        table[index[i]] = SATURATED if total > SATURATED else total


_ADD_COUNTS = LazyKernel(globals(), "_add_counts")


@dataclasses.dataclass
class ValueSketch:
    """Pass-1 counts of the values of floating columns (see the module docstring).

    Attributes
    ----------
    bits : int
        Each sketch row has ``2 ** bits`` counters.
    items : numpy.ndarray of int64, shape (2,)
        Keys counted in the ``ALL`` and ``LABELLED`` sketches.
    index : numpy.ndarray of uint32 or None
        Sparse state: the sorted indices of the counters in use (``None`` when dense).
    counts : numpy.ndarray
        Sparse: the count at each index (uint16); dense: every counter (uint8).
    """

    bits: int
    items: np.ndarray
    index: np.ndarray | None
    counts: np.ndarray

    @classmethod
    def of(cls, chunk, columns: tuple[str, ...], bits: int) -> "ValueSketch":
        """The counts of one chunk's values of ``columns`` (its rows with a label)."""
        label_hash, labelled = _label_keys(chunk)
        parts, items = [], np.zeros(2, dtype=np.int64)
        with np.errstate(over="ignore"):
            for rows, keys in zip(*_value_keys(chunk, columns)):
                keep = labelled[rows]
                parts.append(_counters(keys, ALL, bits))
                parts.append(_counters(splitmix64(keys[keep] ^ label_hash[rows[keep]]),
                                       LABELLED, bits))
                items += (len(keys), int(keep.sum()))
        index = np.concatenate(parts).astype(np.uint32) if parts else np.zeros(0, np.uint32)
        return cls._canonical(bits, items, index, np.ones(len(index), dtype=np.uint16))

    @property
    def size(self) -> int:
        """Counters of both sketches, all rows."""
        return 2 * DEPTH << self.bits

    @classmethod
    def _canonical(cls, bits: int, items: np.ndarray, index: np.ndarray,
                   counts: np.ndarray) -> "ValueSketch":
        """The state of the counts ``(index, counts)`` (indices in any order, repeated):
        sparse (sorted distinct indices) with at most ``DENSE_SHARE`` of the counters in
        use, else dense. The form depends only on the counts, so equal counts pickle alike
        whatever the order of the merges."""
        if len(index) <= DENSE_SHARE * (2 * DEPTH << bits):  # few: sorted
            index, inverse = np.unique(index, return_inverse=True)
            total = np.bincount(inverse, weights=counts, minlength=len(index))
            return cls(bits, items, index.astype(np.uint32),
                       np.minimum(total, SATURATED).astype(np.uint16))
        table = np.zeros(2 * DEPTH << bits, dtype=np.uint8)
        _ADD_COUNTS.get()(table, index, counts)
        return cls._of_table(bits, items, table)

    @classmethod
    def _of_table(cls, bits: int, items: np.ndarray, table: np.ndarray) -> "ValueSketch":
        """The state of a dense table of counts (sparse when few counters are in use)."""
        if np.count_nonzero(table) <= DENSE_SHARE * len(table):
            index = np.flatnonzero(table)
            return cls(bits, items, index.astype(np.uint32), table[index].astype(np.uint16))
        return cls(bits, items, None, table)

    def merge(self, other: "ValueSketch") -> "ValueSketch":
        """The counts of both, saturating at :data:`SATURATED`; neither input changes."""
        if other.bits != self.bits:
            raise ValueError("sketches of different sizes cannot be merged")
        items = self.items + other.items
        if self.index is not None and other.index is not None:
            return self._canonical(self.bits, items, np.concatenate([self.index, other.index]),
                                   np.concatenate([self.counts, other.counts]))
        if self.index is None and other.index is None:
            table = np.add(self.counts, other.counts)  # uint8: wraps on overflow
            np.putmask(table, table < self.counts, SATURATED)
        else:  # a dense table (more counters in use than a sparse state holds) and a sparse one
            dense, rest = (self, other) if self.index is None else (other, self)
            table = dense.counts.copy()
            _ADD_COUNTS.get()(table, rest.index, rest.counts)
        return ValueSketch(self.bits, items, None, table)

    def at_least(self, threshold: int) -> tuple[np.ndarray, np.ndarray]:
        """Sorted indices and counts of the counters holding ``threshold`` or more."""
        if self.index is not None:
            index, counts = self.index, self.counts
        else:
            index = np.flatnonzero(self.counts >= threshold)
            counts = self.counts[index]
        keep = counts >= threshold
        return index[keep].astype(np.int64), counts[keep].astype(np.int64)


def continuous(values: np.ndarray) -> bool:
    """Whether a column's sampled values are at full precision (see :data:`FULL_DIGITS`)
    and do not repeat (see :data:`MAX_SAMPLE_REPEATS`)."""
    values = values[np.isfinite(values) & (values != np.floor(values))]
    if len(values) < MIN_VALUES:
        return False
    _, counts = np.unique(values, return_counts=True)
    if ((counts > 1) & (counts < POINT_MASS_SHARE * len(values))).sum() > MAX_SAMPLE_REPEATS:
        return False
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        scale = 10.0 ** (FULL_DIGITS - 2 - np.floor(np.log10(np.abs(values))))
        rounded = np.round(values * scale) / scale
        full = np.abs(rounded - values) > 1e-13 * np.abs(values)
    return bool(full.mean() >= FULL_SHARE)


class PlantedValues:
    """The repeat and purity tests of planted values (see the module docstring).

    Parameters
    ----------
    alpha : float
        Family-wise level of each test (Bonferroni over the values tested).
    min_support : int
        Fewest rows of one label a planted value must be on.

    Attributes
    ----------
    columns_ : tuple of str
        The continuous columns tested (the floating columns counted in pass 1 whose
        sampled values are at full precision).
    noise_ : numpy.ndarray, shape (2,)
        Mean overcount of a counter of the ``ALL`` and ``LABELLED`` sketches.
    min_count_ : int
        Fewest rows of one label on a value for the repeat test to pass.
    candidates_ : int
        Counters of the labelled sketch's first row at or above :attr:`min_count_` (the
        Bonferroni factor of the purity test).
    tested_items_ : int
        Values of one label counted (the Bonferroni factor of the repeat test).
    """

    def __init__(self, alpha: float, min_support: int):
        self.alpha = alpha
        self.min_support = min_support

    def fit(self, sketch: ValueSketch, sample) -> "PlantedValues":
        """Learn the tested columns, the label shares, the noise and the counters kept
        from the pass-1 ``sketch`` and the row ``sample`` (a label unseen in the sample
        has the share of one row more)."""
        counted = floating_columns(sample.schema)
        self._index = {c: j for j, c in enumerate(counted)}
        self.columns_ = tuple(c for c in counted if continuous(sample.numeric(c)))
        self._bits = sketch.bits
        self.noise_ = sketch.items / float(1 << sketch.bits)
        self.tested_items_ = int(sketch.items[LABELLED])
        labels = sample.labels()
        labels = labels[labels != None]  # noqa: E711
        values, counts = np.unique(labels.astype(str), return_counts=True)
        self._shares = dict(zip(values.tolist(), (counts / (len(labels) + 1.0)).tolist()))
        self._unseen_share = 1.0 / (len(labels) + 1.0)
        self.min_count_ = self._min_count()
        self._kept = sketch.at_least(self.min_count_ if self.columns_ else SATURATED + 1)
        first = (self._kept[0] >= LABELLED * DEPTH << self._bits) \
            & (self._kept[0] < (LABELLED * DEPTH + 1) << self._bits)
        self.candidates_ = int(first.sum())
        return self

    def _min_count(self) -> int:
        """The fewest rows of one label the repeat test can pass with."""
        bound = -math.log(self.alpha / max(self.tested_items_, 1)) / DEPTH
        lam = float(self.noise_[LABELLED])
        extra = 0
        while -stats.poisson.logsf(extra - 1, lam) < bound and extra < SATURATED:
            extra += 1  # P(overcount >= extra)
        return max(self.min_support, extra + 1)

    def _count(self, keys: np.ndarray, kind: int) -> np.ndarray:
        """The sketch's count of each key (0 where a row's counter was not kept)."""
        index, counts = self._kept
        flat = _counters(keys, kind, self._bits).reshape(DEPTH, len(keys))
        at = np.searchsorted(index, flat)
        at = np.minimum(at, max(len(index) - 1, 0))
        found = (index[at] == flat) if len(index) else np.zeros(flat.shape, bool)
        return np.where(found, counts[at] if len(index) else 0, 0).min(axis=0)

    def carriers(self, chunk, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The evidence ``-log10 p`` (0 for none) of the rows of ``chunk`` that carry a
        planted value in their label, and the reason of each (``None`` for none)."""
        n = len(chunk)
        evidence = np.zeros(n)
        reasons = np.full(n, None, dtype=object)
        if not self.columns_ or not len(self._kept[0]):
            return evidence, reasons
        label_hash, labelled = _label_keys(chunk)
        columns = floating_columns(chunk.schema)
        with np.errstate(over="ignore"):
            for column, rows, keys in zip(columns, *_value_keys(chunk, columns)):
                if column not in self.columns_:
                    continue
                keep = labelled[rows]
                rows, keys = rows[keep], keys[keep]
                mine = self._count(splitmix64(keys ^ label_hash[rows]), LABELLED)
                hit = (mine >= self.min_count_) & (mine < SATURATED)
                if not hit.any():
                    continue
                rows, keys, mine = rows[hit], keys[hit], mine[hit]
                total = np.maximum(self._count(keys, ALL), mine)
                strength = self._evidence(mine, total, labels[rows])
                values = chunk.numeric(column)[rows]
                for row, e, c, t, value in zip(rows.tolist(), strength.tolist(),
                                               mine.tolist(), total.tolist(), values.tolist()):
                    if e > evidence[row]:
                        evidence[row] = e
                        reasons[row] = (f"backdoor: planted value {column}={value:.10g} on "
                                        f"about {c} rows labelled "
                                        f"{quote(labels[row], MAX_TEXT)} of about {t} "
                                        "(the column's values do not repeat)")
        return evidence, reasons

    def _evidence(self, mine: np.ndarray, total: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """The evidence ``-log10 p`` of a planted value: the weaker of the two tests'
        (Bonferroni-corrected), 0 unless both pass their levels."""
        lam = float(self.noise_[LABELLED])
        repeat = -(DEPTH * stats.poisson.logsf(mine - 2, lam)
                   + math.log(self.tested_items_)) / math.log(10)
        share = np.array([self._shares.get(label, self._unseen_share) for label in labels])
        purity = -(stats.binom.logsf(mine - 1, total, share)
                   + math.log(max(self.candidates_, 1))) / math.log(10)
        passed = (repeat >= -math.log10(self.alpha)) & (purity >= -math.log10(PURITY_ALPHA)) \
            & (total < SATURATED)
        return np.where(passed, np.minimum(repeat, purity), 0.0)

    def describe(self) -> dict:
        return {"columns": list(self.columns_), "min_count": int(self.min_count_),
                "noise": [round(float(x), 4) for x in self.noise_]}

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
floating feature column, keyed by ``(column, value, label)``, in a count-min sketch
(Cormode & Muthukrishnan 2005) of fixed size: per column, two rows of ``width`` one-byte
counters, a key's count the smaller of its two counters. A counter only overcounts, by
the other keys of its column hashed to it: ``Poisson(keys / width)``, known exactly at
fit. (A column of its own keeps the values another column repeats by nature from lending
their counts: a key both of whose counters meet such a value would count as planted.)
So the repeat test is exact in its level whatever the data's size; its power falls as
the keys outgrow the counters (with the default 32 MB and the scale benchmark's 14
floating columns, a value needs 9 rows of one label at 1M rows, 26 at 10M). A value's count over
all labels, for the purity test, is the sum of its counts under every label pass 1 saw
(their hashes are kept, up to :data:`MAX_LABELS`): an overcount, which only makes the
test more cautious. A value on 255 rows or more of its label is judged on 255; one whose
count under another label saturates is not judged.

Columns that repeat values by nature are not tested: those whose sample repeats more
than :data:`MAX_SAMPLE_REPEATS` values, and those whose whole data holds more than
:data:`MAX_REPEATED` values that may pass the repeat test (readings held over a few
rows, which a small sample rate hides). The price: an attacker who plants more than that
many distinct values in one column is not found by this test.

A chunk's state is its counters (sparse while few are in use: sorted counter indices and
counts; else a dense table); ``merge`` adds them, saturating at 255, so it is associative
and commutative and the counts depend neither on chunking nor on the engine. The fitted
test keeps the merged table for pass 2.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pyarrow as pa
from scipy import stats

from ..compiled import LazyKernel
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
#: A column whose whole data holds more than this many values that may pass the repeat
#: test (from the sketch) repeats values by nature — readings held over a few rows, a
#: per-entity value — which a small sample rate hides, and is not tested.
MAX_REPEATED = 20
#: Distinct labels pass 1 keeps (their hashes); beyond, the test is off (a numeric
#: target, not a class label).
MAX_LABELS = 10_000
#: Values on at least this share of the sampled values are point masses (a clip, a
#: default), not counted against :data:`MAX_SAMPLE_REPEATS`.
POINT_MASS_SHARE = 0.01
#: Level of the purity test (Bonferroni over the candidate values). Laxer than the repeat
#: test's ``alpha``: it only tells a planted value from a natural point mass in columns
#: whose values do not repeat, and 10 carriers of a label a third of the rows hold reach
#: ``3 ** -10 = 1.7e-5`` at best before the correction.
PURITY_ALPHA = 0.01
#: Counters per key of the count-min sketch (rows).
DEPTH = 2
#: Floating columns counted at most (the first, in file order).
MAX_COLUMNS = 64
#: A sparse state becomes dense when it holds more than this share of the counters.
DENSE_SHARE = 1 / 32
#: Largest count a counter holds (one byte). A value whose own count reaches it is judged
#: on at least that many rows; one whose count under another label does is not (its
#: purity cannot be told).
SATURATED = 255
#: Characters of a label quoted in a reason.
MAX_TEXT = 30

_U64 = np.uint64
#: Salt of a label's hash.
_LABEL_SALT = _U64(0x6C6162656C6C6564)


def floating_columns(schema) -> tuple[str, ...]:
    """The feature columns whose values pass 1 counts: numeric with a floating type (the
    first :data:`MAX_COLUMNS`)."""
    return tuple(c for c in schema.features if schema.kinds[c] == NUMERIC
                 and pa.types.is_floating(schema.types[c]))[:MAX_COLUMNS]


def _column_salt(j: int) -> int:
    """The salt of the ``j``-th floating column's keys."""
    return (0x706C616E74656463 + j * 0x9E3779B97F4A7C15) % (1 << 64)


def label_hashes(labels) -> np.ndarray:
    """The 64-bit hash of each label's text (a pyarrow array or a sequence of ``str``)."""
    if not isinstance(labels, (pa.Array, pa.ChunkedArray)):
        labels = pa.array(list(labels), pa.string())
    return hash_strings(labels) ^ _LABEL_SALT


# ------------------------------------------------------------------------ compiled kernels
def _mix(z):
    """The SplitMix64 finaliser of one uint64 (:func:`poisonscan.hashing.splitmix64`)."""
    z = z + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _pair(key, base, width):
    """The two counters of ``key``: one in each of the two rows of ``width`` counters
    from ``base``, by independent mixes (multiply-shift onto the row)."""
    w = np.uint64(width)
    first = np.int64(((_mix(key) >> np.uint64(32)) * w) >> np.uint64(32))
    second = np.int64(((_mix(key + np.uint64(1)) >> np.uint64(32)) * w) >> np.uint64(32))
    return base + first, base + width + second


def _counters(values, raw, label_hash, labelled, salt, base, width, out, start):
    """Write the ``DEPTH`` counters of every counted value (a finite non-integer value of
    a labelled row) to ``out`` from ``start``, value after value; return how many values
    were counted."""
    n = 0
    for i in range(len(values)):
        v = values[i]
        if not labelled[i] or not np.isfinite(v) or v == np.floor(v):
            continue
        key = _mix(_mix(raw[i] ^ np.uint64(salt)) ^ label_hash[i])
        out[start + 2 * n], out[start + 2 * n + 1] = _pair(key, base, width)
        n += 1
    return n


def _add_counts(table, index, counts):
    """Add ``counts`` (one each when empty) at ``index`` into the one-byte ``table``,
    saturating."""
    for i in range(len(index)):
        total = table[index[i]] + (counts[i] if len(counts) else 1)
        table[index[i]] = 255 if total > 255 else total  # SATURATED


def _add_tables(a, b, out):
    """``out = a + b``, saturating."""
    for i in range(len(a)):
        total = np.int64(a[i]) + np.int64(b[i])
        out[i] = 255 if total > 255 else total  # SATURATED


def _counts(table, index, heavy, values, raw, label_hash, labelled, salt, base, width, out):
    """The sketch's count of every row's value under its label (0 for a row without a
    counted value): the smaller of its counters, read from the dense ``table``, or from
    the sparse ``(index, table)`` when ``index`` is not empty. With a ``heavy`` bitmap
    (one bit per counter: at least some count), a value whose first counter's bit is
    clear counts 0 without reading the table."""
    for i in range(len(values)):
        v = values[i]
        out[i] = 0
        if not labelled[i] or not np.isfinite(v) or v == np.floor(v):
            continue
        key = _mix(_mix(raw[i] ^ np.uint64(salt)) ^ label_hash[i])
        first, second = _pair(key, base, width)
        if len(heavy) and not (heavy[first >> 3] >> (first & 7)) & 1:
            continue
        least = 255
        for j in (first, second):
            if len(index):
                at = np.searchsorted(index, j)
                c = table[at] if at < len(index) and index[at] == j else 0
            else:
                c = table[j]
            least = min(least, np.int64(c))
        out[i] = least


_COUNTERS = LazyKernel(globals(), "_counters", helpers=("_mix", "_pair"))
_ADD_COUNTS = LazyKernel(globals(), "_add_counts")
_ADD_TABLES = LazyKernel(globals(), "_add_tables")
_COUNTS = LazyKernel(globals(), "_counts", helpers=("_mix", "_pair"))


def _row_labels(chunk) -> tuple[np.ndarray, np.ndarray]:
    """The label hash of every row of ``chunk``, and whether it has a label."""
    column = chunk.table.column(chunk.schema.label)
    labelled = ~np.asarray(column.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    return label_hashes(column), labelled


def _capped(labels: np.ndarray | None) -> np.ndarray | None:
    """Sorted label hashes, or ``None`` (too many) beyond :data:`MAX_LABELS`."""
    return labels if labels is not None and len(labels) <= MAX_LABELS else None


def _width(size: int, columns: int) -> int:
    """Counters of one row of one column, of ``size`` over ``columns`` columns."""
    return size // (DEPTH * max(columns, 1))


@dataclasses.dataclass
class ValueSketch:
    """Pass-1 counts of the values of floating columns (see the module docstring).

    Each column has its own ``DEPTH`` rows of :attr:`width` counters, so that the values
    a column repeats by nature (a column of two decimals, a value joined onto an entity's
    rows) cannot lend their counts to another column's.

    Attributes
    ----------
    size : int
        Counters in all.
    items : numpy.ndarray of int64
        Values counted, per column.
    index : numpy.ndarray or None
        Sparse state: the sorted indices of the counters in use (int64); or a chunk's
        many counters as they come (uint32, repeated); ``None`` when dense.
    counts : numpy.ndarray or None
        Sparse: the count at each index (uint16; ``None`` for one each, as they come);
        dense: every counter (uint8).
    labels : numpy.ndarray of uint64 or None
        The sorted hashes of the labels seen (``None``: more than :data:`MAX_LABELS`).
    """

    size: int
    items: np.ndarray
    index: np.ndarray | None
    counts: np.ndarray | None
    labels: np.ndarray | None

    @property
    def width(self) -> int:
        """Counters of one row of one column."""
        return _width(self.size, len(self.items))

    def _base(self, j: int) -> int:
        return j * DEPTH * self.width

    @classmethod
    def of(cls, chunk, columns: tuple[str, ...], size: int) -> "ValueSketch":
        """The counts of one chunk's values of ``columns`` (its rows with a label) in
        ``size`` counters: sorted when few, else the counter of every value as it comes
        (4 bytes a counter; the merge adds them up)."""
        label_hash, labelled = _row_labels(chunk)
        items = np.zeros(len(columns), dtype=np.int64)
        width = _width(size, len(columns))
        index = np.empty(DEPTH * len(columns) * len(chunk), dtype=np.uint32)
        counters, used = _COUNTERS.get(), 0
        for j, column in enumerate(columns):
            values = np.ascontiguousarray(chunk.numeric(column))
            items[j] = counters(values, values.view(_U64), label_hash, labelled,
                                _U64(_column_salt(j)), j * DEPTH * width, width, index, used)
            used += DEPTH * items[j]
        return cls(size, items, *cls._combine(size, None, [(index[:used], None)],
                                              canonical=False),
                   _capped(np.unique(label_hash[labelled])))

    @staticmethod
    def _combine(size: int, table: np.ndarray | None, parts: list,
                 canonical: bool = True) -> tuple[np.ndarray | None, np.ndarray | None]:
        """The ``(index, counts)`` of a dense ``table`` (or none) plus sparse ``parts``
        (``(index, counts)``, indices in any order and repeated, ``counts`` ``None`` for
        one each).

        The canonical form depends only on the counts, so that equal counts pickle alike
        whatever the order of the merges: sparse (sorted distinct indices) with at most
        ``DENSE_SHARE`` of the counters in use, else dense. Without ``canonical``, many
        counters stay as they come (a chunk's summary; every merge is canonical)."""
        limit = DENSE_SHARE * size
        if table is None and sum(len(index) for index, _ in parts) <= limit:
            index = np.concatenate([index for index, _ in parts]).astype(np.int64)
            counts = np.concatenate([np.ones(len(i), np.uint16) if c is None else c
                                     for i, c in parts])
            index, inverse = np.unique(index, return_inverse=True)
            total = np.bincount(inverse, weights=counts, minlength=len(index))
            return index, np.minimum(total, SATURATED).astype(np.uint16)
        if not canonical:
            (index, counts), = parts
            return index, counts
        fresh = table is None
        table = np.zeros(size, dtype=np.uint8) if fresh else table.copy()
        for index, counts in parts:
            _ADD_COUNTS.get()(table, index, np.zeros(0, np.uint16) if counts is None else counts)
        if fresh and np.count_nonzero(table) <= limit:  # a dense table stays dense
            index = np.flatnonzero(table)
            return index, table[index].astype(np.uint16)
        return None, table

    def canonical(self) -> "ValueSketch":
        """This state in its canonical form (a chunk's summary may not be)."""
        if self.index is not None and self.counts is None:
            return ValueSketch(self.size, self.items,
                               *self._combine(self.size, None, [(self.index, None)]),
                               self.labels)
        return self

    def merge(self, other: "ValueSketch") -> "ValueSketch":
        """The counts of both, saturating at :data:`SATURATED`; neither input changes."""
        if other.size != self.size or len(other.items) != len(self.items):
            raise ValueError("sketches of different shapes cannot be merged")
        if self.index is None and other.index is None:  # two dense tables
            table = np.empty_like(self.counts)
            _ADD_TABLES.get()(self.counts, other.counts, table)
            index, counts = None, table
        else:
            dense = next((s.counts for s in (self, other) if s.index is None), None)
            index, counts = self._combine(self.size, dense, [(s.index, s.counts)
                                                             for s in (self, other)
                                                             if s.index is not None])
        labels = None if self.labels is None or other.labels is None \
            else _capped(np.union1d(self.labels, other.labels))
        return ValueSketch(self.size, self.items + other.items, index, counts, labels)

    def count(self, values: np.ndarray, label_hash: np.ndarray, labelled: np.ndarray,
              j: int, heavy: np.ndarray | None = None) -> np.ndarray:
        """The count of each of ``values`` of the ``j``-th counted column under the label
        of its ``label_hash`` (0 for a value not counted: integer, not finite, or
        without a label; and, with the bitmap ``heavy`` of :meth:`heavy`, for a value
        whose count is below its threshold)."""
        values = np.ascontiguousarray(values, dtype=np.float64)
        out = np.empty(len(values), dtype=np.int64)
        index = self.index if self.index is not None else np.zeros(0, np.int64)
        heavy = heavy if heavy is not None else np.zeros(0, np.uint8)
        _COUNTS.get()(self.counts, index, heavy, values, values.view(_U64),
                      np.ascontiguousarray(label_hash, dtype=_U64), labelled,
                      _U64(_column_salt(j)), self._base(j), self.width, out)
        return out

    def in_use(self, j: int, threshold: int) -> int:
        """Keys of the ``j``-th column that may count ``threshold`` or more: its
        counters that do, over ``DEPTH``."""
        lo, hi = self._base(j), self._base(j + 1)
        if self.index is not None:
            at = (self.index >= lo) & (self.index < hi)
            used = int(np.count_nonzero(self.counts[at] >= threshold))
        else:
            used = int(np.count_nonzero(self.counts[lo:hi] >= threshold))
        return -(-used // DEPTH)

    def heavy(self, thresholds: np.ndarray) -> np.ndarray:
        """A bitmap of the counters holding their column's threshold or more, for
        :meth:`count` (empty for a sparse state, whose few counters are searched
        directly)."""
        if self.index is not None:
            return np.zeros(0, np.uint8)
        mask = np.zeros(self.size, dtype=bool)
        for j, threshold in enumerate(thresholds):
            if threshold <= SATURATED:
                lo, hi = self._base(j), self._base(j + 1)
                np.greater_equal(self.counts[lo:hi], threshold, out=mask[lo:hi])
        return np.packbits(mask, bitorder="little")


def continuous(values: np.ndarray, single: bool = False) -> bool:
    """Whether a column's sampled values are at full precision (see :data:`FULL_DIGITS`;
    with ``single``, values stored as float32, one digit fewer, compared as float32: a
    float32 of two decimals widened to float64 shows spurious digits) and do not repeat
    (see :data:`MAX_SAMPLE_REPEATS`)."""
    values = values[np.isfinite(values) & (values != np.floor(values))]
    if len(values) < MIN_VALUES:
        return False
    _, counts = np.unique(values, return_counts=True)
    if ((counts > 1) & (counts < POINT_MASS_SHARE * len(values))).sum() > MAX_SAMPLE_REPEATS:
        return False
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        scale = 10.0 ** (FULL_DIGITS - 2 - single - np.floor(np.log10(np.abs(values))))
        rounded = np.round(values * scale) / scale
        if single:
            full = rounded.astype(np.float32) != values.astype(np.float32)
        else:
            full = np.abs(rounded - values) > 1e-13 * np.abs(values)
    return bool(full.mean() >= FULL_SHARE)


class PlantedValues:
    """The repeat and purity tests of planted values (see the module docstring).

    Parameters
    ----------
    alpha : float
        Family-wise level of the repeat test (Bonferroni over the values counted).
    min_support : int
        Fewest rows of one label a planted value must be on.

    Attributes
    ----------
    columns_ : tuple of str
        The continuous columns tested (the floating columns counted in pass 1 whose
        sampled values are at full precision and do not repeat).
    noise_ : numpy.ndarray
        Mean overcount of a counter, per counted column.
    min_count_ : numpy.ndarray of int64
        Fewest rows of one label on a value for the repeat test to pass, per counted
        column (above :data:`SATURATED` for a column not tested).
    repeating_ : list of str
        Columns judged continuous on the sample whose whole data holds more than
        :data:`MAX_REPEATED` values that may pass the repeat test: not tested.
    candidates_ : int
        Values of the tested columns that may count :attr:`min_count_` or more (the
        Bonferroni factor of the purity test).
    items_ : int
        Values counted (the Bonferroni factor of the repeat test).
    sketch_ : ValueSketch
        The merged pass-1 counts.
    """

    def __init__(self, alpha: float, min_support: int):
        self.alpha = alpha
        self.min_support = min_support

    def fit(self, sketch: ValueSketch, sample) -> "PlantedValues":
        """Learn the tested columns, the label shares, the noise and the counts from the
        pass-1 ``sketch`` and the row ``sample`` (a label unseen in the sample has the
        share of one row more)."""
        self._counted = floating_columns(sample.schema)
        types = sample.schema.types
        columns = [c for c in self._counted if sketch.labels is not None
                   and continuous(sample.numeric(c), pa.types.is_float32(types[c]))]
        labels = sample.labels()
        labels = labels[labels != None].astype(str)  # noqa: E711
        values, counts = np.unique(labels, return_counts=True)
        self._shares = dict(zip(values.tolist(), (counts / (len(labels) + 1.0)).tolist()))
        self._unseen_share = 1.0 / (len(labels) + 1.0)
        self.sketch_ = sketch = sketch.canonical()
        self._label_hashes = sketch.labels if sketch.labels is not None else np.zeros(0, _U64)
        self.items_ = int(sketch.items.sum())
        self.noise_ = sketch.items / float(sketch.width)
        self.min_count_ = np.full(len(self._counted), SATURATED + 1)
        self.repeating_ = []
        candidates = 0
        for j, column in enumerate(self._counted):
            if column not in columns:
                continue
            k = self._min_count(float(self.noise_[j]))
            found = sketch.in_use(j, k)
            if found > MAX_REPEATED:  # repeats by nature, beyond what the sample shows
                self.repeating_.append(column)
                continue
            self.min_count_[j] = k
            candidates += found
        self.columns_ = tuple(c for c in columns if c not in self.repeating_)
        self.candidates_ = candidates
        self._heavy = sketch.heavy(self.min_count_)
        return self

    def _min_count(self, noise: float) -> int:
        """The fewest rows of one label the repeat test can pass with, at a counter's
        mean overcount ``noise``."""
        bound = -math.log(self.alpha / max(self.items_, 1)) / DEPTH
        extra = 0
        while -stats.poisson.logsf(extra - 1, noise) < bound and extra < SATURATED:
            extra += 1  # P(overcount >= extra)
        return max(self.min_support, extra + 1)

    def carriers(self, chunk, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The evidence ``-log10 p`` (0 for none) of the rows of ``chunk`` that carry a
        planted value in their label, and the reason of each (``None`` for none)."""
        n = len(chunk)
        evidence = np.zeros(n)
        reasons = np.full(n, None, dtype=object)
        if self.candidates_ == 0:
            return evidence, reasons
        label_hash, labelled = _row_labels(chunk)
        for j, column in enumerate(self._counted):
            if column not in self.columns_:
                continue
            values = chunk.numeric(column)
            mine = self.sketch_.count(values, label_hash, labelled, j, self._heavy)
            rows = np.flatnonzero(mine >= self.min_count_[j])
            if not len(rows):
                continue
            mine, values = mine[rows], values[rows]
            others, crowded = self._others(values, label_hash[rows], j)
            strength = self._evidence(mine, mine + others, labels[rows], self.noise_[j])
            strength[crowded] = 0.0
            for row, e, c, t, value in zip(rows.tolist(), strength.tolist(), mine.tolist(),
                                           (mine + others).tolist(), values.tolist()):
                if e > evidence[row]:
                    evidence[row] = e
                    many = "at least" if c >= SATURATED else "about"
                    reasons[row] = (f"backdoor: planted value {column}={value:.10g} on "
                                    f"{many} {c} rows labelled {quote(labels[row], MAX_TEXT)} "
                                    f"of about {t} (a column whose values otherwise do not "
                                    "repeat)")
        return evidence, reasons

    def _others(self, values: np.ndarray, own: np.ndarray, j: int
                ) -> tuple[np.ndarray, np.ndarray]:
        """The count of each of ``values`` (of the ``j``-th counted column) under every
        other label seen in pass 1 than its own label hash ``own`` (the purity test's
        total less its own count: an overcount), and whether one of them saturated (the
        purity cannot be told)."""
        n, hashes = len(values), self._label_hashes
        # one look-up of every value under every label (label by label)
        count = self.sketch_.count(np.tile(values, len(hashes)), np.repeat(hashes, n),
                                   np.ones(n * len(hashes), dtype=bool), j)
        count = count.reshape(len(hashes), n)
        count[hashes[:, None] == own[None, :]] = 0
        return count.sum(axis=0), (count >= SATURATED).any(axis=0)

    def _evidence(self, mine: np.ndarray, total: np.ndarray, labels: np.ndarray,
                  noise: float) -> np.ndarray:
        """The evidence ``-log10 p`` of a planted value: the weaker of the two tests'
        (Bonferroni-corrected), 0 unless both pass their levels."""
        repeat = -(DEPTH * stats.poisson.logsf(mine - 2, noise)
                   + math.log(max(self.items_, 1))) / math.log(10)
        share = np.array([self._shares.get(label, self._unseen_share) for label in labels])
        purity = -(stats.binom.logsf(mine - 1, total, share)
                   + math.log(max(self.candidates_, 1))) / math.log(10)
        passed = (repeat >= -math.log10(self.alpha)) & (purity >= -math.log10(PURITY_ALPHA))
        return np.where(passed, np.minimum(repeat, purity), 0.0)

    def describe(self) -> dict:
        tested = [j for j, c in enumerate(self._counted) if c in self.columns_]
        return {"columns": list(self.columns_), "repeating": list(self.repeating_),
                "min_count": {self._counted[j]: int(self.min_count_[j]) for j in tested},
                "noise": {self._counted[j]: round(float(self.noise_[j]), 4) for j in tested}}

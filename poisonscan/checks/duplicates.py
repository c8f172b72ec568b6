"""Duplicate checks over the whole dataset: conflicting labels, flooding, repeated points.

Every row gets two 64-bit fingerprints of its feature values (the label and the id
column are left out):

* **exact** — numbers rounded to ``digits`` significant digits (so ``1``, ``1.0`` and
  ``1.00`` match, and so do ``0.1 + 0.2`` and ``0.3``; ``-0.0`` is ``0.0``), but integers
  beyond ``2**53`` in magnitude (no float64 holds them: ids, hashes) by their exact value;
  text as stored; a missing cell, NaN, ``+inf``, ``-inf`` and an unparseable cell each
  hash to a token of their own (an unparseable cell together with its text);
* **near** — numbers rounded to ``near_digits`` significant digits, text lower-cased and
  stripped. Rows with equal exact fingerprints always have equal near fingerprints.

Pass 1 keeps, per row, the two fingerprints, the row id (as a 4-byte offset from the
chunk's first row) and a label code: 21 bytes per row with at most 255 labels, 24 at
most. A chunk's state is one *run*, sorted by (near, exact, row); ``merge`` is the
union of runs, kept in row order, so it is associative and commutative. When the runs
held in memory exceed ``memory_mb`` they are written to a temporary directory and read
back through memory maps. ``fit`` groups the rows one slice of fingerprint space at a
time (a slice is a contiguous range of every sorted run), so its working memory is
bounded too, and its result does not depend on chunking, file splits or spilling.

A group is the set of rows sharing a fingerprint; a row is reported with its exact
group, or with its near group where that holds more rows. Questions asked of each group:

* **conflict** — do its members carry different labels? The check does not decide which
  members are wrong: every member gets the same score, and the fusion
  (:mod:`poisonscan.fusion`) settles the group with the label evidence, including the
  neighbourhood's below. Where conflicting groups hold most of the rows
  (:data:`NATURAL_CONFLICT_SHARE`: a few categorical columns and ordinary label noise),
  conflicts are the data's nature: no member is a finding, and the label checks' soft
  evidence ranks them. Where the data's distinct points meet at near precision by nature
  (at least ``RARE_REPEAT_SHARE`` of the near fingerprints are pairs of distinct points
  with one label: one or two continuous columns, whose natural neighbours round alike; or
  the rounding merges most points: values with a large offset), a near group no larger
  than the data's usual near groups is such a meeting: neither its conflict nor its
  neighbourhood makes a finding (a flood of copies is larger; exact conflicts stay
  findings), and near repeats count as usual for the size test below;
* **neighbourhood** — what do the ``neighbors`` nearest *distinct points* of the row
  sample (in the shared encoding) say, the group itself excluded? Copies vouch for each
  other in every neighbour test (Koh, Steinhardt & Liang 2018), so a repeated point
  counts once as a neighbour and its own group never. The row's *disagreement* compares
  the neighbours' support for its label with the best rival label (in a conflict: the
  group's other labels, by neighbour share; otherwise any label, by neighbour count over
  its share of the sample, and only a rival that also outnumbers the row's label among the
  neighbours disfavours it);
* **repetition** — how large is the group against the groups around it (the
  ``LOCAL_QUANTILE`` of the neighbours' group sizes; without neighbours, the
  ``repeat_quantile`` of the sizes of its label's groups, the largest few left out)?

A group of agreeing labels is a *finding* when it repeats a point whose neighbourhood
disfavours its label (the "concentrated" attack), or when it is larger than its label's
usual group and ``SIZE_RATIO`` times larger than the groups around it (``RARE_SIZE_RATIO``
times where rows of its label never repeat by nature; any exact repeat of rows holding
continuous values, where no rows of the dataset and none around it repeat: a copied row
of measurements is no accident, while texts, counts and codes may meet by chance). Size
evidence grows fast with the excess (``1 - 2 ** -(ratio - threshold)``: a point copied ten
times where nothing repeats is as telling as a conflicting label), halved where the
neighbourhood firmly favours the group's label (the natural heart of a class may pile up).
A smaller excess is mild evidence, calibrated like any soft score. Nothing here is a hard
violation: duplicates are evidence, not a broken rule.
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import tempfile
import weakref
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..config import Option
from ..hashing import splitmix64
from ..io.chunk import Chunk
from ..io.schema import CATEGORICAL, NUMERIC
from .base import Check, CheckScores

#: Raw score of a member of an exact group with conflicting labels (near: times NEAR_WEIGHT).
CONFLICT_SCORE = 0.9
#: Size over the groups around it from which a repeated point is evidence by its size alone
#: (``RARE_SIZE_RATIO`` where rows of its label never repeat by nature, ``NEVER_SIZE_RATIO``
#: -- any exact repeat of continuous values -- where no rows of the dataset, and none
#: around it, do).
SIZE_RATIO = 4.0
RARE_SIZE_RATIO = 2.0
NEVER_SIZE_RATIO = 1.0
#: Share of a label's distinct points repeated by nature from which repeats are usual.
RARE_REPEAT_SHARE = 0.01
#: Weaker findings are only mild evidence.
MIN_FINDING = 0.1
#: Raw score of a repeated point that is no finding but larger than its label's usual
#: group, times ``1 - 1 / ratio`` (its size over the groups around it) and the label's
#: rarity of repeats: mild evidence, calibrated like any soft score.
MILD_SCORE = 0.1
#: Weight of near-duplicate evidence relative to exact duplicates.
NEAR_WEIGHT = 0.9
#: Share of the data's rows in groups of identical rows with conflicting labels from which
#: conflicts are how the data is (its label is no function of its features: a few
#: categorical columns and label noise), not an insertion: an inserted conflicting copy
#: puts itself and its source in one, twice the poison rate of the rows at most.
NATURAL_CONFLICT_SHARE = 0.5
#: Distinct near fingerprints, as a share of the distinct exact points, at or below which
#: the near rounding merges the data's own points: near copies are then its nature.
NEAR_MERGED = 0.5
#: Other members named in a reason.
MEMBERS_SHOWN = 5
#: Labels named in a reason.
LABELS_SHOWN = 3
#: Bytes of fit working memory per row of a fingerprint slice (arrays, sort, temporaries).
FIT_BYTES_PER_ROW = 64
#: Quantile of the neighbours' group sizes taken as the local usual group size.
LOCAL_QUANTILE = 0.75
#: Dimensions of the encoded sample the neighbourhood index keeps (principal axes).
NEIGHBOUR_DIMS = 16
#: Largest groups of a label left out of its usual group size (they may be an attack's).
LARGEST_IGNORED = 10
#: Rows in groups up to which every group's neighbourhood is asked (fit-time decision).
ASK_ALL_ROWS = 200_000
#: Fewest rows (on average) in a slice of fingerprint space grouped at once by ``fit``.
MIN_SLICE_ROWS = 65_536
#: Characters of a label quoted in a reason.
MAX_LABEL_CHARS = 30
#: Most cells (rows asked about × labels) of the neighbour counts held at once: with many
#: labels the rows are asked about in blocks (70,000 labels ran out of memory).
NEIGHBOUR_CELLS = 1 << 22

_U64 = np.uint64
# tokens have the top bit set: number codes never do
_NULL = _U64(0xEE756C6C6E756C6C)     # missing cell
_NAN = _U64(0xCE614E4E614E4E61)      # NaN
_POSINF = _U64(0xAB696E662B696E66)   # +inf
_NEGINF = _U64(0xAD696E662D696E66)   # -inf
_ERROR = _U64(0x6261646261646261)    # salt of an unparseable cell's text
_SEED = _U64(0x6475706C69636174)     # start of a row fingerprint
_COLUMN = _U64(0xA0761D6478BD642F)   # odd multiplier combining the columns' hashes
_BIG = _U64(0x6269676E756D6265)      # salt of an integer beyond 2**53 (another if negative)
_BIG_NEGATIVE = _U64(0x6E65676174697665)
#: Integers beyond this magnitude have no exact float64 (see :func:`big_integer_codes`).
FLOAT_EXACT_INTEGERS = 2 ** 53
_LENGTH = _U64(0xE7037ED1A0B428DB)   # salt of a string's length


# ============================================================================ fingerprints

def hash_strings(values: pa.Array | pa.ChunkedArray, *, fold: bool = False) -> np.ndarray:
    """A 64-bit hash of every value's UTF-8 text, vectorised over the bytes.

    The values are dictionary-encoded first, so each distinct text is hashed once: each
    byte is mixed with its position in the string, the mixed bytes of a string are summed
    and the sum is finalised with the length. Nulls hash to a fixed token.

    Parameters
    ----------
    values : pyarrow.Array or ChunkedArray
        Any type; non-string values are cast to their text.
    fold : bool
        Lower-case and strip the texts first (for the near fingerprint).

    Returns
    -------
    numpy.ndarray of uint64
    """
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
    n = len(values)
    if n == 0:
        return np.zeros(0, dtype=_U64)
    if not pa.types.is_dictionary(values.type):
        if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
            values = pc.cast(values, pa.string())
        values = pc.dictionary_encode(values)
    dictionary = values.dictionary
    if not (pa.types.is_string(dictionary.type) or pa.types.is_large_string(dictionary.type)):
        dictionary = pc.cast(dictionary, pa.string())
    if fold:
        dictionary = pc.utf8_lower(pc.utf8_trim_whitespace(dictionary))
    table = _hash_texts(dictionary)
    indices = values.indices
    codes = np.asarray(pc.fill_null(indices, 0).to_numpy(zero_copy_only=False), dtype=np.int64)
    out = table[codes] if len(table) else np.zeros(n, dtype=_U64)
    if values.null_count or indices.null_count:
        out[np.asarray(values.is_null().to_numpy(zero_copy_only=False), dtype=bool)] = _NULL
    return out


def _hash_texts(values: pa.Array) -> np.ndarray:
    """:func:`hash_strings` of a string array without nulls to care about."""
    n = len(values)
    offset_type = np.int64 if pa.types.is_large_string(values.type) else np.int32
    buffers = values.buffers()
    offsets = np.frombuffer(buffers[1], dtype=offset_type, count=n + 1,
                            offset=values.offset * np.dtype(offset_type).itemsize).astype(np.int64)
    lo, hi = int(offsets[0]), int(offsets[-1])
    lengths = np.diff(offsets)
    sums = np.zeros(n, dtype=_U64)
    with np.errstate(over="ignore"):
        if hi > lo:
            data = np.frombuffer(buffers[2], dtype=np.uint8)[lo:hi].astype(_U64)
            starts = offsets[:-1] - lo
            position = np.arange(hi - lo, dtype=np.int64) - np.repeat(starts, lengths)
            mixed = splitmix64(data | (position.astype(_U64) << _U64(8)))
            nonempty = lengths > 0
            sums[nonempty] = np.add.reduceat(mixed, starts[nonempty])
        return splitmix64(sums ^ splitmix64(lengths.astype(_U64) ^ _LENGTH))


#: Powers of ten by exponent + 400 (the two halves of any scaling stay inside).
with np.errstate(over="ignore", under="ignore"):
    _POW10 = 10.0 ** np.arange(-400, 401, dtype=np.float64)
#: Offsets that pack a rounded number's (mantissa, exponent) into 64 bits exactly.
_MANTISSA_BIAS, _EXPONENT_BIAS, _EXPONENT_SHIFT = 2 ** 50, 512, 51


def hash_numbers(values: np.ndarray, digits: int | tuple[int, ...]):
    """A 64-bit hash of every number rounded to ``digits`` significant digits.

    :func:`number_codes`, mixed.
    """
    with np.errstate(over="ignore"):
        codes = number_codes(values, digits)
        if isinstance(codes, list):
            return [splitmix64(c) for c in codes]
        return splitmix64(codes)


def number_codes(values: np.ndarray, digits: int | tuple[int, ...]):
    """An exact 64-bit code of every number rounded to ``digits`` significant digits.

    The rounded value is held as an integer mantissa of exactly ``digits`` digits and a
    decimal exponent, packed into the low 62 bits, so equal rounded values get equal codes
    whatever their binary form (``-0.0`` is ``0.0``) and different ones different codes.
    NaN, ``+inf`` and ``-inf`` get codes of their own (top bit set).

    Parameters
    ----------
    values : numpy.ndarray of float64
    digits : int or tuple of int
        Significant digits kept, 1 to 15. With a tuple (decreasing), one hash array per
        entry: each level rounds the previous level's mantissa, so values equal at one
        level are equal at every coarser one.

    Returns
    -------
    numpy.ndarray of uint64, or a list of them for a tuple of ``digits``
    """
    levels = (digits,) if isinstance(digits, (int, np.integer)) else tuple(digits)
    x = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(x)
    all_finite = bool(finite.all())
    nonzero = finite & (x != 0)
    w = x[nonzero]
    with np.errstate(divide="ignore"):
        e = np.floor(np.log10(np.abs(w))).astype(np.int64)
    outs, q, previous = [], None, None
    for d in levels:
        top = 10.0 ** d
        if q is None:
            q = _scaled(w, d - 1 - e)
            over = np.abs(q) >= top                              # log10 rounded up
            if over.any():
                e[over] += 1
                q[over] = _scaled(w[over], d - 1 - e[over])
            under = np.abs(q) < top / 10                         # log10 rounded down
            if under.any():
                e[under] -= 1
                q[under] = _scaled(w[under], d - 1 - e[under])
        else:
            q = np.rint(q / 10.0 ** (previous - d))
        still = np.abs(q) >= top                                 # 9.99.. rounded up to 10.0
        if still.any():
            q[still] = np.rint(q[still] / 10)
            e[still] += 1
        previous = d
        packed = np.full(x.shape, _MANTISSA_BIAS, dtype=np.int64)  # zero: mantissa 0, exponent 0
        packed[nonzero] = (q.astype(np.int64) + _MANTISSA_BIAS) \
            | ((e + _EXPONENT_BIAS) << _EXPONENT_SHIFT)
        out = packed.view(_U64)
        if not all_finite:
            out[np.isnan(x)] = _NAN
            out[np.isposinf(x)] = _POSINF
            out[np.isneginf(x)] = _NEGINF
        outs.append(out)
    return outs[0] if isinstance(digits, (int, np.integer)) else outs


def big_integer_codes(values: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Positions and exact codes of the integers beyond ``2**53`` in magnitude.

    A float64 cannot hold such integers (``2**60`` and ``2**60 + 1`` are one float64), so
    their :func:`number_codes` would join different values. Their code is a hash of the
    integer itself, of its sign too (an int64 and a uint64 of one value get one code),
    with bit 62 set and bit 63 clear: never a number code (both clear) nor a token.

    Parameters
    ----------
    values : pyarrow.Array or ChunkedArray
        A column of any type; only 64-bit integers (possibly dictionary-encoded) hold such
        values. Nulls are skipped.

    Returns
    -------
    positions : numpy.ndarray of int64
    codes : numpy.ndarray of uint64
    """
    if pa.types.is_dictionary(values.type):
        values = values.cast(values.type.value_type)
    if not pa.types.is_integer(values.type) or values.type.bit_width < 64:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=_U64)
    ints = np.asarray(pc.fill_null(values, 0).to_numpy(zero_copy_only=False))
    if pa.types.is_unsigned_integer(values.type):
        negative = np.zeros(len(ints), dtype=bool)
        big = ints > _U64(FLOAT_EXACT_INTEGERS)
    else:
        negative = ints < 0
        big = (ints > FLOAT_EXACT_INTEGERS) | (ints < -FLOAT_EXACT_INTEGERS)
    positions = np.flatnonzero(big)
    bits = ints[positions].view(_U64)
    with np.errstate(over="ignore"):
        mixed = splitmix64(bits ^ np.where(negative[positions], _BIG_NEGATIVE, _BIG))
    return positions, (mixed >> _U64(2)) | _U64(1 << 62)


def _scaled(w: np.ndarray, power: np.ndarray) -> np.ndarray:
    """``rint(w * 10**power)``; in two steps where one factor would over- or underflow."""
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        if not len(power) or (power.min() >= -300 and power.max() <= 300):
            return np.rint(w * _POW10[power + 400])
        half = power // 2
        return np.rint(w * _POW10[half + 400] * _POW10[power - half + 400])


def fingerprints(chunk, *, digits: int, near_digits: int | None,
                 exclude: tuple[str, ...] = ()) -> tuple[np.ndarray, np.ndarray]:
    """Exact and near fingerprints of every row of ``chunk`` (cached on the chunk).

    Parameters
    ----------
    chunk : Chunk
    digits : int
        Significant digits of numbers in the exact fingerprint.
    near_digits : int or None
        Significant digits of numbers in the near fingerprint (text is also lower-cased
        and stripped); ``None`` makes the near fingerprint the exact one.
    exclude : tuple of str
        Feature columns left out.

    Returns
    -------
    exact, near : numpy.ndarray of uint64
    """
    key = f"{digits}|{near_digits}|{','.join(exclude)}"
    return chunk.cached("duplicates.fingerprints", key,
                        lambda: _fingerprints(chunk, digits, near_digits, exclude))


def fingerprinted_columns(schema, exclude: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The columns the fingerprints are made of: the feature and vector columns, less
    ``exclude``."""
    return tuple(c for c in schema.features + schema.vectors if c not in exclude)


def _fingerprints(chunk, digits, near_digits, exclude):
    n = len(chunk)
    exact = np.full(n, _SEED, dtype=_U64)
    near = np.full(n, _SEED, dtype=_U64) if near_digits is not None else None
    schema = chunk.schema
    with np.errstate(over="ignore"):
        for column in fingerprinted_columns(schema, exclude):
            if column in schema.vectors:
                h_exact, h_near = _vector_codes(chunk, column, digits, near_digits)
            elif schema.kinds[column] == CATEGORICAL:
                raw = chunk.table.column(column)
                h_exact = hash_strings(raw)
                if near is not None:
                    h_near = hash_strings(raw, fold=True)
            else:
                values = chunk.numeric(column)
                missing = chunk.missing(column)
                # exact codes, not hashes: the polynomial below needs only distinct values
                if near is not None:
                    h_exact, h_near = number_codes(values, (digits, min(near_digits, digits)))
                    h_near[missing] = _NULL
                else:
                    h_exact = number_codes(values, digits)
                if (np.abs(values) >= FLOAT_EXACT_INTEGERS).any():  # else every code is exact
                    big, codes = big_integer_codes(chunk.table.column(column))
                    h_exact[big] = codes
                h_exact[missing] = _NULL
                errors = chunk.errors.get(column)
                if errors is not None and len(errors.positions):
                    text = hash_strings(pa.array(list(errors.values), pa.string())) ^ _ERROR
                    h_exact[errors.positions] = text
                    if near is not None:
                        h_near[errors.positions] = text
            # a polynomial over the columns' codes (odd multiplier: a change in one column
            # always changes the sum), mixed once at the end
            exact = exact * _COLUMN + h_exact
            if near is not None:
                near = near * _COLUMN + h_near
        exact = splitmix64(exact)
        near = splitmix64(near) if near is not None else exact.copy()
    return exact, near


def _vector_codes(chunk, column, digits, near_digits):
    """Exact and near codes of a vector column: the components' number codes combined
    in order (a null vector is one fixed token); the near code is ``None`` without
    ``near_digits``."""
    values = chunk.vectors(column)
    n, dim = values.shape
    levels = (digits,) if near_digits is None else (digits, min(near_digits, digits))
    codes = number_codes(values.ravel(), levels)
    out = []
    for level in codes:
        level = level.reshape(n, dim)
        h = np.full(n, _SEED, dtype=_U64)
        for j in range(dim):
            h = h * _COLUMN + level[:, j]
        h = splitmix64(h)
        h[chunk.missing(column)] = _NULL
        out.append(h)
    return out[0], (out[1] if len(out) > 1 else None)


def _label_codes(chunk) -> tuple[np.ndarray, tuple[str, ...]]:
    """Label codes of ``chunk`` (0 = no label, ``i + 1`` = ``vocabulary[i]``), vocabulary sorted."""
    n = len(chunk)
    if chunk.schema.label is None:
        return np.zeros(n, dtype=np.uint8), ()
    labels = chunk.table.column(chunk.schema.label)
    if pa.types.is_dictionary(labels.type):
        labels = labels.cast(labels.type.value_type)
    if not pa.types.is_string(labels.type):
        labels = pc.cast(labels, pa.string())
    encoded = pc.dictionary_encode(labels).combine_chunks()
    vocabulary = np.asarray(encoded.dictionary.to_pylist(), dtype=object)
    order = np.argsort(vocabulary, kind="stable") if len(vocabulary) else np.zeros(0, np.int64)
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(1, len(order) + 1)
    indices = encoded.indices
    raw = np.asarray(pc.fill_null(indices, 0).to_numpy(zero_copy_only=False), dtype=np.int64)
    codes = rank[raw] if len(rank) else np.zeros(n, dtype=np.int64)
    if indices.null_count:
        codes[np.asarray(indices.is_null().to_numpy(zero_copy_only=False), dtype=bool)] = 0
    return codes.astype(_code_dtype(len(vocabulary))), tuple(vocabulary[order].tolist())


def _index_in(values, vocabulary) -> np.ndarray:
    """``i + 1`` where a value is ``vocabulary[i]``, else 0 (missing or unknown)."""
    if not isinstance(values, (pa.Array, pa.ChunkedArray)):
        values = pa.array(list(values), pa.string())
    if pa.types.is_dictionary(values.type):
        values = values.cast(values.type.value_type)
    if not pa.types.is_string(values.type):
        values = pc.cast(values, pa.string())
    if not len(vocabulary):
        return np.zeros(len(values), dtype=np.int64)
    found = pc.index_in(values, value_set=pa.array(list(vocabulary), pa.string()))
    return np.asarray(pc.fill_null(pc.add(found, 1), 0).to_numpy(zero_copy_only=False),
                      dtype=np.int64)


def _code_dtype(n_labels: int) -> np.dtype:
    return np.dtype(np.uint8 if n_labels < 2 ** 8 else np.uint16 if n_labels < 2 ** 16
                    else np.uint32)


# ============================================================================ pass-1 state

class _SpillDir:
    """A temporary directory removed when the last run stored in it is gone (or at exit)."""

    def __init__(self, parent: str | None):
        self.path = tempfile.mkdtemp(prefix="poisonscan-duplicates-", dir=parent)
        self._cleanup = weakref.finalize(self, shutil.rmtree, self.path, True)


@dataclasses.dataclass(frozen=True, eq=False)
class Run:
    """The fingerprints of one block of rows, sorted by (near, exact, row).

    Attributes
    ----------
    start : int
        Row id the offsets count from (the block's first row).
    size : int
        Rows in the run.
    labels : tuple of str
        Label vocabulary of the run: code ``i + 1`` is ``labels[i]``, 0 is no label.
    arrays : tuple of numpy.ndarray or None
        ``near`` (uint64), ``exact`` (uint64), ``offset`` (uint32, or int64 row ids with
        ``start == 0`` when the block spans 2**32 rows or more), ``codes`` (uint8/16/32);
        ``None`` once spilled.
    file : str or None
        Where a spilled run's arrays are (concatenated, in that order).
    dtypes : tuple of str
        Array dtypes (to read a spilled run back).
    """

    start: int
    size: int
    labels: tuple[str, ...]
    arrays: tuple[np.ndarray, ...] | None
    file: str | None = None
    dtypes: tuple[str, ...] = ()
    owner: Any = dataclasses.field(default=None, repr=False)

    @property
    def nbytes(self) -> int:
        """Bytes held in memory."""
        return sum(a.nbytes for a in self.arrays) if self.arrays is not None else 0

    @property
    def bytes_per_row(self) -> int:
        dtypes = [a.dtype for a in self.arrays] if self.arrays is not None \
            else [np.dtype(d) for d in self.dtypes]
        return sum(d.itemsize for d in dtypes)

    def read(self) -> tuple[np.ndarray, ...]:
        """The arrays (memory maps for a spilled run)."""
        if self.arrays is not None:
            return self.arrays
        out, offset = [], 0
        for dtype in map(np.dtype, self.dtypes):
            out.append(np.memmap(self.file, dtype=dtype, mode="r", offset=offset,
                                 shape=(self.size,)) if self.size else np.zeros(0, dtype))
            offset += dtype.itemsize * self.size
        return tuple(out)

    def read_range(self, lo: int, hi: int) -> tuple[np.ndarray, ...]:
        """Entries ``lo:hi`` of the arrays (read from the file for a spilled run: one read
        per array, no memory map left behind)."""
        if self.arrays is not None:
            return tuple(a[lo:hi] for a in self.arrays)
        out, offset = [], 0
        with open(self.file, "rb") as fh:
            for dtype in map(np.dtype, self.dtypes):
                fh.seek(offset + lo * dtype.itemsize)
                out.append(np.fromfile(fh, dtype=dtype, count=hi - lo))
                offset += dtype.itemsize * self.size
        return tuple(out)

    def __reduce__(self):
        # a spilled run sent to another process (a Dask worker) carries its data: the files
        # belong to this process (and machine), which may delete them once its copy is gone
        if self.arrays is None:
            return (Run, (self.start, self.size, self.labels,
                          tuple(np.array(a) for a in self.read())))
        return (Run, (self.start, self.size, self.labels, self.arrays))

    def spill(self, directory) -> "Run":
        """This run written to ``directory`` (a :class:`_SpillDir`)."""
        if self.arrays is None:
            return self
        path = os.path.join(directory.path, f"run-{self.start:013d}-{self.size}.bin")
        tmp = path + ".tmp"
        with open(tmp, "wb") as fh:
            for array in self.arrays:
                fh.write(np.ascontiguousarray(array).tobytes())
        os.replace(tmp, path)
        return Run(self.start, self.size, self.labels, None, path,
                   tuple(a.dtype.str for a in self.arrays), directory)


@dataclasses.dataclass(frozen=True, eq=False)
class DuplicateState:
    """Pass-1 state of the duplicate check: runs in row order.

    Attributes
    ----------
    runs : tuple of Run
    """

    runs: tuple[Run, ...]

    @property
    def n_rows(self) -> int:
        return sum(r.size for r in self.runs)

    @property
    def nbytes(self) -> int:
        """Bytes of fingerprint arrays held in memory."""
        return sum(r.nbytes for r in self.runs)

    @property
    def spilled_bytes(self) -> int:
        return sum(r.size * r.bytes_per_row for r in self.runs if r.arrays is None)


# ============================================================================ fitted groups

@dataclasses.dataclass(frozen=True)
class Groups:
    """Rows sharing a fingerprint, for every fingerprint held by at least two rows.

    Attributes
    ----------
    keys : numpy.ndarray of uint64
        Sorted fingerprints.
    sizes : numpy.ndarray of int64
        Rows per group.
    label_ptr, label_codes, label_counts : numpy.ndarray of int64
        Label counts per group (CSR: group ``g`` holds ``label_codes[label_ptr[g]:
        label_ptr[g + 1]]``, most frequent first).
    members : numpy.ndarray of int64, shape (groups, MEMBERS_SHOWN + 1)
        The smallest row ids of each group (``-1`` pads).
    usual : int
        The usual group size: the ``repeat_quantile`` of sizes over distinct fingerprints.
    conflict : numpy.ndarray of bool
        Groups with at least two distinct known labels.
    label : numpy.ndarray of int64
        The most frequent known label of each group (0 = none).
    usual_by_label : numpy.ndarray of int64
        Per label code, the usual size of the groups whose rows carry that label (and no
        other): the ``repeat_quantile`` of their sizes over distinct points, the
        ``LARGEST_IGNORED`` largest groups left out (they may be the attack's own).
    rarity_by_label : numpy.ndarray of float64
        Per label code, how rarely its points repeat by nature: 1 when, the largest
        groups left out, none does, 0 when ``RARE_REPEAT_SHARE`` of them do.
    rarity : float
        The same over the points of every label together.
    distinct : int
        Distinct fingerprints.
    repeated_rows : int
        Rows in groups.
    """

    keys: np.ndarray
    sizes: np.ndarray
    label_ptr: np.ndarray
    label_codes: np.ndarray
    label_counts: np.ndarray
    members: np.ndarray
    usual: int
    distinct: int
    repeated_rows: int
    conflict: np.ndarray
    label: np.ndarray
    usual_by_label: np.ndarray
    rarity_by_label: np.ndarray
    rarity: float

    def lookup(self, fingerprints: np.ndarray) -> np.ndarray:
        """Group index of each fingerprint, ``-1`` for a fingerprint held by one row."""
        if not len(self.keys):
            return np.full(len(fingerprints), -1, dtype=np.int64)
        at = np.minimum(np.searchsorted(self.keys, fingerprints), len(self.keys) - 1)
        return np.where(self.keys[at] == fingerprints, at, -1)

    @property
    def n_labels(self) -> np.ndarray:
        return np.diff(self.label_ptr)


class _GroupBuilder:
    """Collects the groups of one kind (exact or near) slice by slice."""

    def __init__(self, n_codes: int):
        self.parts: list[tuple[np.ndarray, ...]] = []
        self.distinct = 0
        self.n_codes = n_codes
        self.singles = np.zeros(n_codes + 1, dtype=np.int64)  # one-row fingerprints per label
        self.met_pairs = 0  # groups of two distinct exact points with one label (near)

    def add(self, keys, rows, codes, exact=None) -> None:
        """Add one slice's rows, sorted so that equal keys are adjacent, rows ascending
        (``exact``: the rows' exact fingerprints, given for near groups)."""
        n = len(keys)
        if n == 0:
            return
        new = np.empty(n, dtype=bool)
        new[0] = True
        np.not_equal(keys[1:], keys[:-1], out=new[1:])
        starts = np.flatnonzero(new)
        sizes = np.diff(np.append(starts, n))
        self.distinct += len(starts)
        if exact is not None:
            pairs = starts[sizes == 2]
            self.met_pairs += int(((exact[pairs] != exact[pairs + 1])
                                   & (codes[pairs] == codes[pairs + 1])).sum())
        n_codes = self.n_codes
        self.singles += np.bincount(codes[starts[sizes == 1]], minlength=n_codes + 1)
        kept = np.flatnonzero(sizes >= 2)
        if not len(kept):
            return
        starts, sizes = starts[kept], sizes[kept]
        span = np.arange(MEMBERS_SHOWN + 1)
        at = starts[:, None] + span
        members = np.where(span < sizes[:, None], rows[np.minimum(at, n - 1)], -1)
        # label counts of the kept groups
        group = np.repeat(np.arange(len(starts)), sizes)
        element = _ranges(starts, sizes)
        pair = group * (n_codes + 1) + codes[element]
        unique, counts = np.unique(pair, return_counts=True)
        g = unique // (n_codes + 1)
        code = unique % (n_codes + 1)
        order = np.lexsort((code, -counts, g))  # per group: most frequent first, then code
        g, code, counts = g[order], code[order], counts[order]
        ptr = np.searchsorted(g, np.arange(len(starts) + 1))
        self.parts.append((keys[starts], sizes, ptr, code, counts, members))

    def build(self, quantile: float) -> Groups:
        if self.parts:
            keys = np.concatenate([p[0] for p in self.parts])
            sizes = np.concatenate([p[1] for p in self.parts]).astype(np.int64)
            codes = np.concatenate([p[3] for p in self.parts]).astype(np.int64)
            counts = np.concatenate([p[4] for p in self.parts]).astype(np.int64)
            members = np.concatenate([p[5] for p in self.parts]).astype(np.int64)
            lengths = np.concatenate([np.diff(p[2]) for p in self.parts])
        else:
            keys = np.zeros(0, _U64)
            sizes = codes = counts = lengths = np.zeros(0, np.int64)
            members = np.zeros((0, MEMBERS_SHOWN + 1), np.int64)
        order = np.argsort(keys, kind="stable")
        ptr = np.concatenate([[0], np.cumsum(lengths)])
        element = _ranges(ptr[:-1][order], lengths[order])
        keys, sizes, members, lengths = keys[order], sizes[order], members[order], lengths[order]
        if len(keys) > 1:  # a 64-bit collision between slices: keep the first group
            first = np.concatenate([[True], keys[1:] != keys[:-1]])
            if not first.all():
                keep_elements = np.repeat(first, lengths)
                element = element[keep_elements]
                keys, sizes, members, lengths = keys[first], sizes[first], members[first], \
                    lengths[first]
        singletons = self.distinct - len(keys)
        label_codes = codes[element]
        ptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        known = label_codes > 0
        n_known = np.add.reduceat(known.astype(np.int64), ptr[:-1]) \
            if len(keys) else np.zeros(0, dtype=np.int64)
        # the group's label: its most frequent known label (0 = none)
        main = np.zeros(len(keys), dtype=np.int64)
        if len(keys):
            first = np.minimum.reduceat(np.where(known, np.arange(len(label_codes)),
                                                 len(label_codes)), ptr[:-1])
            has = first < len(label_codes)
            main[has] = label_codes[first[has]]
        conflict = n_known >= 2
        # usual group size among the points of each label, and how rarely they repeat
        usual_by_label = np.ones(self.n_codes + 1, dtype=np.int64)
        rarity_by_label = np.ones(self.n_codes + 1)
        natural_groups = 0
        agreeing = np.flatnonzero(~conflict)
        order = agreeing[np.lexsort((sizes[agreeing], main[agreeing]))]
        bounds = np.searchsorted(main[order], np.arange(self.n_codes + 2))
        for code in np.flatnonzero(np.diff(bounds)).tolist():
            grouped = sizes[order[bounds[code]:bounds[code + 1]]][:-LARGEST_IGNORED]
            usual_by_label[code] = _size_quantile(grouped, int(self.singles[code]), quantile)
            natural_groups += len(grouped)
            natural = len(grouped) / max(int(self.singles[code]) + len(grouped), 1)
            rarity_by_label[code] = _rarity(natural)
        return Groups(keys=keys, sizes=sizes, label_ptr=ptr, label_codes=label_codes,
                      label_counts=counts[element], members=members,
                      usual=_size_quantile(sizes, singletons, quantile),
                      distinct=int(self.distinct), repeated_rows=int(sizes.sum()),
                      conflict=conflict, label=main.astype(np.int64),
                      usual_by_label=usual_by_label, rarity_by_label=rarity_by_label,
                      rarity=_rarity(natural_groups
                                     / max(int(self.singles.sum()) + natural_groups, 1)))


def _key_then_row_order(keys: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Positions sorting ``keys`` ascending, equal keys by ``rows`` (distinct) ascending.

    ``np.lexsort((rows, keys))``, in about 40% of its time when few keys are equal
    (fingerprints, most rows distinct; 2.7 s against 6.4 s for 10 million): one sort by
    key, then the rows of equal keys, in place, by ``(key, row)``. Where more than half
    of the keys are shared, the lexsort itself.
    """
    order = np.argsort(keys)
    ordered = keys[order]
    equal = ordered[1:] == ordered[:-1]
    shared = np.zeros(len(keys), dtype=bool)
    shared[1:] = equal
    shared[:-1] |= equal
    at = np.flatnonzero(shared)
    if 2 * len(at) > len(keys):
        return np.lexsort((rows, keys))
    if len(at):  # equal keys are adjacent: reorder them among their own positions
        order[at] = order[at][np.lexsort((rows[order[at]], ordered[at]))]
    return order


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenated ``arange(s, s + l)`` for every (s, l), vectorised."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.repeat(starts, lengths) + (np.arange(total) - offsets)


def _rarity(natural_share: float) -> float:
    """How rarely points repeat by nature, from the share that do: 1 (never) to 0."""
    return max(0.0, 1.0 - natural_share / RARE_REPEAT_SHARE)


def _size_quantile(sizes: np.ndarray, singletons: int, q: float) -> int:
    """The ``q`` quantile of group sizes over distinct fingerprints (singletons count 1)."""
    total = singletons + len(sizes)
    if total == 0:
        return 1
    index = max(0, math.ceil(q * total) - 1)
    if index < singletons:
        return 1
    return int(np.sort(sizes)[index - singletons])


# ============================================================================ scores

@dataclasses.dataclass
class DuplicateScores(CheckScores):
    """:class:`CheckScores` plus what the fusion needs to settle conflicting groups.

    Attributes
    ----------
    conflict : numpy.ndarray of bool
        The row belongs to a group whose labels conflict (the score is the same for every
        member; the fusion decides which members are suspect).
    disagreement : numpy.ndarray of float64
        How strongly the neighbourhood (excluding the row's group) prefers another label
        to the row's own, in ``[0, 1]`` (0.5 = no preference); NaN where not measured.
    finding : numpy.ndarray of float64
        Strength in ``[0, 1)`` of a group of agreeing labels that is far larger than the
        groups around it or repeats a point where its label does not belong (0 = none):
        evidence that needs no arbitration.
    unnatural : numpy.ndarray of float64
        For a member of a conflicting group, how surely the data holds no such group by
        nature, in ``[0, 1]``: 1 where no two distinct rows of the data share their
        features (every group is then an insertion, and one of its members is a poison
        whatever the label evidence says), 0 where rows repeat by nature. 0 elsewhere.
    natural : numpy.ndarray of bool
        The row's group conflicts as most of the data's do (``natural_conflicts_``), or is
        a near group no larger than the usual in data whose points meet at near precision
        by nature (``near_natural_``): the conflict is no finding, whatever the label
        evidence.
    """

    conflict: np.ndarray = None
    disagreement: np.ndarray = None
    finding: np.ndarray = None
    unnatural: np.ndarray = None
    natural: np.ndarray = None


# ============================================================================ the check

class DuplicatesCheck(Check):
    """Exact and near duplicates over all rows: conflicting labels and suspicious repetition.

    Parameters
    ----------
    digits : int, default 15
        Significant digits numbers keep in the exact fingerprint.
    near_digits : int or None, default 3
        Significant digits numbers keep in the near fingerprint; ``None`` turns near
        duplicates off.
    neighbors : int, default 10
        Distinct sample points asked about a group (the group itself excluded).
    repeat_quantile : float, default 0.99
        Where the neighbourhood cannot be asked, a group is compared with this quantile
        of the sizes of its label's groups over distinct fingerprints.
    memory_mb : float, default 64
        Fingerprints kept in memory in pass 1 before runs are spilled to disk (21 bytes
        per row: about 3 million rows); also bounds the working memory of ``fit``.
    spill_dir : str or None
        Directory for spilled runs (a temporary directory inside it; default: the
        system's temporary directory).
    exclude : list of str or None
        Feature columns left out of the fingerprints (e.g. a row id kept as a feature).

    Attributes
    ----------
    exact_, near_ : Groups
        Groups of the exact and near fingerprints.
    ask_all_ : bool
        Whether every group's neighbourhood is asked (few rows are in groups), or only
        conflicting groups and groups larger than their label's usual.
    continuous_ : bool
        Whether the rows hold continuous values (a fractional value in a floating column
        of the row sample, or a floating embedding): only then is a copied row no accident.
    tree_ : scipy.spatial.cKDTree or None
        Index of the distinct points of the encoded sample on its ``NEIGHBOUR_DIMS``
        principal axes (``None`` without features).
    projection_ : tuple of numpy.ndarray or None
        Mean and principal axes of the encoded sample (``None``: few enough columns).
    labels_ : tuple of str
        Label vocabulary (code ``i + 1``).
    n_rows_ : int
        Rows seen in pass 1.
    state_bytes_, spilled_bytes_ : int
        Pass-1 fingerprint bytes held in memory and on disk at fit.
    note_ : str
        Why there is nothing to check (no column to fingerprint, or every row of the data
        has the same features: one group holding every row tells nothing), else ``""``;
        then every row scores 0 and the summary says why.
    natural_conflicts_ : bool
        Whether groups with conflicting labels hold at least
        :data:`NATURAL_CONFLICT_SHARE` of the rows: conflicts are then the data's nature
        (the fusion makes no finding of them).
    near_natural_ : bool
        Whether the data's distinct points meet at near precision by nature: at least
        ``RARE_REPEAT_SHARE`` of the distinct near fingerprints are pairs of two distinct
        exact points with one label (natural neighbours that round alike; inserted copies
        are exact, or come in larger groups), or there are at most :data:`NEAR_MERGED`
        times as many near fingerprints as distinct points. A near group no larger than
        the usual is then no finding by its labels or its neighbourhood, and near repeats
        are usual for the size test.
    """

    name = "duplicates"
    parameters = (
        Option("digits", "int", 15, "significant digits of numbers in the exact fingerprint",
               low=1, high=15),
        Option("near_digits", "int", 3, "significant digits of numbers in the near fingerprint",
               low=1, high=15, nullable=True),
        Option("neighbors", "int", 10, "sample neighbours asked about a group's label",
               low=1, high=1000),
        Option("repeat_quantile", "float", 0.99,
               "quantile of group sizes beyond which repetition is unusual",
               low=0.5, high=1.0),
        Option("memory_mb", "float", 64.0, "pass-1 fingerprints kept in memory before spilling",
               low=0.0, low_open=True),
        Option("spill_dir", "str", None, "directory for spilled fingerprint runs",
               nullable=True),
        Option("exclude", "list", None, "feature columns left out of the fingerprints",
               nullable=True),
    )

    # ------------------------------------------------------------------------ pass 1
    def _fingerprints(self, chunk):
        return fingerprints(chunk, digits=self.digits, near_digits=self.near_digits,
                            exclude=tuple(self.exclude or ()))

    def summarize(self, chunk) -> DuplicateState | None:
        """One sorted run: fingerprints, row offsets and label codes of ``chunk`` (``None``
        without a column to fingerprint: there is nothing to check)."""
        if not fingerprinted_columns(chunk.schema, tuple(self.exclude or ())):
            return None
        exact, near = self._fingerprints(chunk)
        codes, labels = _label_codes(chunk)
        rows = chunk.rows
        n = len(rows)
        start = int(rows.min()) if n else 0
        if n and int(rows.max()) - start < 2 ** 32:
            offset = (rows - start).astype(np.uint32)
        else:
            offset, start = rows.astype(np.int64), 0
        order = np.lexsort((offset, exact, near))
        arrays = (near[order], exact[order], offset[order], codes[order])
        return DuplicateState((Run(start, n, labels, arrays),))

    def _merge(self, a: DuplicateState, b: DuplicateState) -> DuplicateState:
        runs = sorted(a.runs + b.runs, key=_run_key)
        budget = self.memory_mb * 2 ** 20
        if sum(r.nbytes for r in runs) > budget:
            directory = next((r.owner for r in runs if r.owner is not None
                              and os.path.isdir(r.owner.path)), None)
            if directory is None:
                directory = _SpillDir(self.spill_dir)
            runs = [r.spill(directory) for r in runs]
        return DuplicateState(tuple(runs))

    # ------------------------------------------------------------------------ fit
    def fit(self, state: DuplicateState | None, profile) -> "DuplicatesCheck":
        self._validate_params()
        runs = state.runs if state is not None else ()
        self.n_rows_ = profile.n_rows
        self.state_bytes_ = state.nbytes if state is not None else 0
        self.spilled_bytes_ = state.spilled_bytes if state is not None else 0
        vocabulary = sorted(set().union(*(r.labels for r in runs)))
        self.labels_ = tuple(vocabulary)
        self.note_ = ""
        self.natural_conflicts_ = self.near_natural_ = False
        if not fingerprinted_columns(profile.schema, tuple(self.exclude or ())):
            self.note_ = "nothing to check: no feature column"
            return self
        self.exact_, self.near_, self.near_natural_ = self._group(runs, vocabulary)
        conflicted = int(self.exact_.sizes[self.exact_.conflict].sum())
        self.natural_conflicts_ = conflicted >= NATURAL_CONFLICT_SHARE * max(self.n_rows_, 1)
        if self.exact_.distinct == 1 and self.n_rows_ > 1:  # one group of every row
            self.note_ = "nothing to check: every row has the same features"
            return self
        self.ask_all_ = self.exact_.repeated_rows + self.near_.repeated_rows <= ASK_ALL_ROWS
        self._fit_neighbourhood(profile)
        self._label = profile.schema.label
        self.continuous_ = self._continuous(profile)
        return self

    def _group(self, runs, vocabulary) -> tuple[Groups, Groups, bool]:
        """Group every row by exact and by near fingerprint, one slice of near space at a
        time; and say whether the data's distinct points meet at near precision by nature
        (``near_natural_``)."""
        total = sum(r.size for r in runs)
        budget = self.memory_mb * 2 ** 20
        slices = 1
        while total * FIT_BYTES_PER_ROW / slices > budget \
                and total / (2 * slices) >= MIN_SLICE_ROWS:
            slices *= 2
        shift = _U64(64 - int(math.log2(slices))) if slices > 1 else None
        remap = []
        for run in runs:  # run code -> global code
            table = np.zeros(len(run.labels) + 1, dtype=np.int64)
            table[1:] = _index_in(run.labels, vocabulary)
            remap.append(table)
        # each run's rows in each slice: runs are sorted by near fingerprint
        cuts = (np.arange(1, slices, dtype=_U64) << shift) if shift is not None \
            else np.zeros(0, _U64)
        edges = [np.concatenate([[0], np.searchsorted(run.read()[0], cuts), [run.size]])
                 for run in runs]
        n_codes = len(vocabulary)
        exact, near = _GroupBuilder(n_codes), _GroupBuilder(n_codes)
        for s in range(slices):
            parts = []
            for run, table, edge in zip(runs, remap, edges):
                lo, hi = int(edge[s]), int(edge[s + 1])
                if hi > lo:
                    r_near, r_exact, r_offset, r_codes = run.read_range(lo, hi)
                    parts.append((r_near, r_exact, r_offset.astype(np.int64) + run.start,
                                  table[r_codes]))
            if not parts:
                continue
            s_near, s_exact, s_rows, s_codes = (np.concatenate(x) for x in zip(*parts))
            del parts
            order = _key_then_row_order(s_exact, s_rows)
            exact.add(s_exact[order], s_rows[order], s_codes[order])
            if self.near_digits is not None:
                order = _key_then_row_order(s_near, s_rows)
                near.add(s_near[order], s_rows[order], s_codes[order], s_exact[order])
        # two distinct points that round alike and agree: natural neighbours meeting at
        # near precision, unlike inserted copies (exact, or larger groups); or rounding
        # that merges most of the data's distinct points (values around 1e6 varying by
        # units all round to one fingerprint at three significant digits)
        met = near.met_pairs >= RARE_REPEAT_SHARE * max(near.distinct, 1) \
            or near.distinct <= NEAR_MERGED * exact.distinct
        return exact.build(self.repeat_quantile), near.build(self.repeat_quantile), met

    def _fit_neighbourhood(self, profile) -> None:
        """Index of the distinct points of the encoded sample, for the neighbourhood test.

        Each distinct point (exact fingerprint) is one neighbour however many sample rows
        hold it, so that repeated points cannot outvote the rest of a neighbourhood; it
        carries its labels as weights summing to 1, and the sizes of its exact and near
        groups in the whole dataset.
        """
        self.tree_ = self.projection_ = None
        sample = profile.sample_chunk()
        if len(sample) == 0:
            return
        encoder = profile.encoder()
        X = encoder.transform(sample)
        if X.shape[1] == 0:
            return
        from scipy.spatial import cKDTree

        exact, near = self._fingerprints(sample)
        codes = self._codes(sample)
        _, first, inverse = np.unique(exact, return_index=True, return_inverse=True)
        inverse = inverse.reshape(-1)
        order = np.argsort(first, kind="stable")      # points in sample-row order
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order))
        point = rank[inverse]                          # sample row -> its point
        rep = first[order]
        self.projection_ = _principal_axes(X, NEIGHBOUR_DIMS)
        self.tree_ = cKDTree(self._project(X)[rep])
        self._encoder = encoder
        self.point_keys_ = near[rep]
        self.point_sizes_ = np.column_stack([_sizes(self.exact_, self.exact_.lookup(exact[rep])),
                                             _sizes(self.near_, self.near_.lookup(near[rep]))])
        n_codes = len(self.labels_) + 1
        pair, pair_rows = np.unique(point * n_codes + codes, return_counts=True)
        owner = pair // n_codes
        self.point_label_ptr_ = np.searchsorted(owner, np.arange(len(rep) + 1))
        self.point_label_code_ = pair % n_codes
        self.point_label_weight_ = pair_rows / np.bincount(point, minlength=len(rep))[owner]
        self._sorted_keys = np.sort(self.point_keys_)
        known = self.point_label_code_ > 0
        weights = np.bincount(self.point_label_code_[known], self.point_label_weight_[known],
                              minlength=n_codes)
        self.prior_ = weights / max(weights.sum(), 1e-12)

    def _continuous(self, profile) -> bool:
        """Whether the fingerprinted features hold continuous values (see ``continuous_``)."""
        schema, excluded = profile.schema, set(self.exclude or ())
        if any(pa.types.is_floating(schema.types[c].value_type) for c in schema.vectors
               if c not in excluded):
            return True
        sample = profile.sample_chunk()
        for column in schema.of_kind(NUMERIC):
            if column in excluded or not pa.types.is_floating(schema.types[column]):
                continue
            values = sample.numeric(column)   # cached on the shared sample chunk
            values = values[np.isfinite(values)]
            if (values != np.floor(values)).any():
                return True
        return False

    def _project(self, X: np.ndarray) -> np.ndarray:
        """Encoded rows on the neighbourhood axes (row by row: no batch-dependent rounding)."""
        if self.projection_ is None:
            return np.ascontiguousarray(X, dtype=np.float64)
        mean, axes = self.projection_
        return np.ascontiguousarray(np.einsum("ij,kj->ik", X, axes) - np.einsum("j,kj->k",
                                                                              mean, axes))

    def _codes(self, chunk) -> np.ndarray:
        """Global label codes of ``chunk`` (0 = missing or never seen in pass 1)."""
        if chunk.schema.label is None:
            return np.zeros(len(chunk), dtype=np.int64)
        return _index_in(chunk.table.column(chunk.schema.label), self.labels_)

    # ------------------------------------------------------------------------ pass 2
    def score(self, chunk) -> DuplicateScores:
        n = len(chunk)
        if self.note_:
            return DuplicateScores(np.zeros(n), np.zeros(n, dtype=bool),
                                   np.full(n, None, dtype=object),
                                   conflict=np.zeros(n, dtype=bool),
                                   disagreement=np.full(n, np.nan), finding=np.zeros(n),
                                   unnatural=np.zeros(n))
        exact, near = self._fingerprints(chunk)
        codes = self._codes(chunk)
        kinds = [(self.exact_, self.exact_.lookup(exact), 1.0)]
        if self.near_digits is not None:
            kinds.append((self.near_, self.near_.lookup(near), NEAR_WEIGHT))
        # each row is reported with its exact group, or with its near group when that
        # holds more rows
        reported = kinds[0][1].copy()
        which = np.zeros(n, dtype=np.int64)
        if len(kinds) == 2:
            use_near = _sizes(self.near_, kinds[1][1]) > _sizes(self.exact_, kinds[0][1])
            reported[use_near] = kinds[1][1][use_near]
            which[use_near] = 1
        inside = reported >= 0
        size = np.ones(n)
        conflict = np.zeros(n, dtype=bool)
        baseline = np.ones(n)
        usual = np.ones(n)
        rarity = np.zeros(n)
        never = np.zeros(n)
        unnatural = np.zeros(n)
        weight = np.zeros(n)
        for k, (groups, _, w) in enumerate(kinds):
            rows = np.flatnonzero(inside & (which == k))
            g = reported[rows]
            size[rows] = groups.sizes[g]
            conflict[rows] = groups.conflict[g]
            unnatural[rows] = np.where(groups.conflict[g], groups.rarity, 0.0)
            usual[rows] = baseline[rows] = groups.usual_by_label[groups.label[g]]
            rarity[rows] = groups.rarity_by_label[groups.label[g]]
            if groups is self.near_ and self.near_natural_:
                rarity[rows] = 0.0  # near neighbours meet by nature: repeats are usual
            # rounded values, counts and texts may meet by chance; continuous values not
            if groups is self.exact_ and self.continuous_:
                never[rows] = rarity[rows] * groups.rarity
            weight[rows] = w
        disagreement = np.full(n, np.nan)
        asked = inside & (conflict | (size > baseline) | self.ask_all_)
        if self.tree_ is not None and asked.any():
            asked_rows = np.flatnonzero(asked)
            block = max(1, NEIGHBOUR_CELLS // (len(self.labels_) + 1))
            for start in range(0, len(asked_rows), block):  # a row's answer is its own
                rows = asked_rows[start:start + block]
                disagreement[rows], local = self._neighbourhood(
                    chunk, rows, near, codes, reported, which, kinds, conflict)
                baseline[rows] = np.where(np.isnan(local), baseline[rows], local)
        # a repeated point is a finding when it is larger than the usual group of its label
        # and much larger than the groups around it -- sooner where the label's rows never
        # repeat -- or when the neighbourhood outside the group disfavours its label. Each
        # copy beyond the threshold halves the doubt of the size evidence, which counts
        # half where the neighbourhood firmly favours the label
        ratio = size / np.maximum(baseline, 1.0)
        never = np.where(baseline <= 1.0, never, 0.0)  # nor do the rows around it
        size_ratio = SIZE_RATIO - (SIZE_RATIO - RARE_SIZE_RATIO) * rarity \
            - (RARE_SIZE_RATIO - NEVER_SIZE_RATIO) * never
        measured = ~np.isnan(disagreement)
        foreign = np.where(measured, np.clip(2 * disagreement - 1, 0, 1), 0.0)
        # where the data's distinct points meet at near precision by nature, a near group no
        # larger than the data's usual near groups is such a meeting, whatever its labels
        # and its neighbourhood say (a flood of copies is larger)
        met = (which == 1) & inside & self.near_natural_ & (size <= self.near_.usual)
        foreign[met] = 0.0
        home = np.where(measured, np.clip(1 - 2 * disagreement, 0, 1), 0.0)
        size_evidence = np.where(size > usual, 1.0 - np.exp2(-np.maximum(ratio - size_ratio,
                                                                          0.0)), 0.0)
        size_evidence *= 1 - home / 2
        finding = np.maximum(size_evidence, np.maximum(0.0, 1.0 - 1.0 / ratio) * foreign)
        finding = np.where(inside & ~conflict, np.minimum(weight * finding, 0.999), 0.0)
        finding[finding < MIN_FINDING] = 0.0
        # below a finding, a group larger than its label's usual and than the groups around
        # it is mild evidence, where rows of its label rarely repeat by nature
        mild = np.where(inside & ~conflict & (size > usual),
                        weight * MILD_SCORE * rarity * np.maximum(0.0, 1 - 1 / ratio), 0.0)
        scores = np.where(conflict, weight * CONFLICT_SCORE, np.maximum(finding, mild))
        flagged = conflict | (finding > 0)
        reasons = self._reasons(chunk, codes, reported, which, kinds, flagged, conflict,
                                baseline, disagreement, never)
        # a conflict is the data's nature where most rows are in conflicting groups, and a
        # near one in a natural meeting (``met``)
        natural = conflict & (self.natural_conflicts_ | met)
        return DuplicateScores(scores.astype(np.float64), np.zeros(n, dtype=bool), reasons,
                               conflict=conflict, disagreement=disagreement, finding=finding,
                               unnatural=unnatural, natural=natural)

    def _neighbourhood(self, chunk, rows, near, codes, reported, which, kinds,
                       conflict) -> tuple[np.ndarray, np.ndarray]:
        """What the sample rows nearest to each row, its own group excluded, say about it.

        Returns
        -------
        disagreement : numpy.ndarray of float64
            How strongly the neighbours prefer another label to the row's own,
            ``rival / (own + rival)`` in ``[0, 1]``. In a conflicting group ``own`` and
            ``rival`` are the neighbour shares of the row's label and of the best of the
            group's other labels (which of the group's labels do real rows here carry). In
            an agreeing group they are neighbour counts relative to each label's share of
            the sample (is the group's label under-represented here), ``rival`` the best
            label the neighbours name; at most 0.5 where that rival does not outnumber the
            row's label among the neighbours. NaN without labels or neighbours.
        local : numpy.ndarray of float64
            The ``LOCAL_QUANTILE`` of the sizes of the neighbours' own groups (1 for a
            point held by one row): how much rows repeat around this point. NaN without
            neighbours.
        """
        exact, _ = self._fingerprints(chunk)
        _, first, point = np.unique(exact[rows], return_index=True, return_inverse=True)
        point = point.reshape(-1)
        query = rows[first]
        keys = near[query]
        # encode only the rows asked about (the encoding is row by row)
        X = self._project(self._encoder.transform(
            Chunk(chunk.table.take(pa.array(query)), chunk.rows[query], chunk.schema,
                  source=chunk.source)))
        excluded = np.searchsorted(self._sorted_keys, keys, side="right") \
            - np.searchsorted(self._sorted_keys, keys, side="left")
        m = len(self.point_keys_)
        k = min(self.neighbors, m)
        n_codes = len(self.labels_) + 1
        counts = np.zeros((len(query), n_codes))
        sizes = np.full((len(query), max(k, 1), 2), np.nan)
        for extra in np.unique(excluded):
            batch = np.flatnonzero(excluded == extra)
            K = int(min(k + extra, m))
            if K == 0:
                continue
            _, idx = self.tree_.query(X[batch], k=K)
            idx = np.asarray(idx).reshape(len(batch), K)
            valid = idx < m
            safe = np.where(valid, idx, 0)
            valid &= self.point_keys_[safe] != keys[batch][:, None]  # the group itself
            slot = np.cumsum(valid, axis=1) - 1
            valid &= slot < k
            b, c = np.nonzero(valid)
            neighbour = safe[b, c]
            sizes[batch[b], slot[b, c]] = self.point_sizes_[neighbour]
            lengths = np.diff(self.point_label_ptr_)[neighbour]
            element = _ranges(self.point_label_ptr_[neighbour], lengths)
            np.add.at(counts, (np.repeat(batch[b], lengths), self.point_label_code_[element]),
                      self.point_label_weight_[element])
        local = np.full((len(query), 2), np.nan)
        some = ~np.isnan(sizes[:, 0, 0])
        local[some] = np.nanquantile(sizes[some], LOCAL_QUANTILE, axis=1)
        local = local[point, which[rows]]
        counts[:, 0] = 0.0
        used = counts.sum(axis=1)
        share = (counts + self.prior_) / (used[:, None] + 1.0)
        ratio = (counts + 1.0) / (used[:, None] * self.prior_ + 1.0)
        own_code = codes[rows]
        is_conflict = conflict[rows]
        rival = np.zeros(len(rows))
        own = np.where(is_conflict, share[point, own_code], ratio[point, own_code])
        # conflicts: the best of the group's other labels, by neighbour share
        c_sel = np.flatnonzero(is_conflict)
        for k_i, (groups, _, _) in enumerate(kinds):
            sel = c_sel[which[rows[c_sel]] == k_i]
            if not len(sel):
                continue
            g = reported[rows[sel]]
            lengths = groups.n_labels[g]
            owner = np.repeat(np.arange(len(sel)), lengths)
            label = groups.label_codes[_ranges(groups.label_ptr[g], lengths)]
            value = np.where((label != own_code[sel][owner]) & (label > 0),
                             share[point[sel][owner], label], 0.0)
            best = np.zeros(len(sel))
            np.maximum.at(best, owner, value)
            rival[sel] = best
        # agreeing groups: the best label the neighbours name, by ratio to its share
        # -- and no rival outnumbered by the label among the neighbours disfavours it (a
        # rare label's lift is large where a few of its rows sit among the label's own)
        a_sel = np.flatnonzero(~is_conflict)
        outnumbered = np.zeros(len(rows), dtype=bool)
        if len(a_sel):
            others = np.where(counts[point[a_sel]] > 0, ratio[point[a_sel]], 0.0)
            others[np.arange(len(a_sel)), own_code[a_sel]] = 0.0
            best = others.argmax(axis=1)
            rival[a_sel] = others[np.arange(len(a_sel)), best]
            outnumbered[a_sel] = counts[point[a_sel], best] <= counts[point[a_sel],
                                                                      own_code[a_sel]]
        out = rival / np.maximum(rival + own, 1e-12)
        out = np.where(outnumbered, np.minimum(out, 0.5), out)
        return np.where((used[point] > 0) & (own_code > 0), out, np.nan), local

    # ------------------------------------------------------------------------ reasons
    def _reasons(self, chunk, codes, reported, which, kinds, flagged, conflict, baseline,
                 disagreement, never) -> np.ndarray:
        n = len(chunk)
        reasons = np.full(n, None, dtype=object)
        rows = chunk.rows
        for i in np.flatnonzero(flagged).tolist():
            groups = kinds[which[i]][0]
            g = reported[i]
            size = int(groups.sizes[g])
            others = [int(r) for r in groups.members[g] if r >= 0 and r != rows[i]]
            shown = others[:MEMBERS_SHOWN]
            more = ", …" if size - 1 > len(shown) else ""
            lo, hi = groups.label_ptr[g], groups.label_ptr[g + 1]
            labels = [f"{self._label_text(c)} ×{int(m)}" for c, m in
                      zip(groups.label_codes[lo:hi][:LABELS_SHOWN].tolist(),
                          groups.label_counts[lo:hi][:LABELS_SHOWN].tolist())]
            if hi - lo > LABELS_SHOWN:
                labels.append(f"+{hi - lo - LABELS_SHOWN} more")
            what = "copies" if which[i] == 0 else "near copies"
            text = f"duplicates: {size} {what} (rows {', '.join(map(str, shown))}{more})"
            if self._label is not None:
                text += " — labels " + ", ".join(labels)
            if not conflict[i] and size > baseline[i]:
                text += f"; {size / max(baseline[i], 1.0):.3g}× the groups around it"
                if never[i] >= 0.5:
                    text += ", in data whose rows never repeat"
            d = disagreement[i]
            if not conflict[i] and not math.isnan(d) and codes[i] > 0:
                text += f"; neighbours {'disfavour' if d > 0.5 else 'favour'} " \
                        f"{self._label_text(codes[i])} ({d:.2f})"
            reasons[i] = text
        return reasons

    def _label_text(self, code: int) -> str:
        if code <= 0:
            return "(none)"
        text = self.labels_[code - 1]
        if len(text) > MAX_LABEL_CHARS:
            text = text[:MAX_LABEL_CHARS] + "…"
        return repr(text)

    def describe(self) -> dict[str, Any]:
        if self.note_:
            return {"checked": False, "note": self.note_}
        stored = self.state_bytes_ + self.spilled_bytes_
        out: dict[str, Any] = {"fingerprints": {
            "rows": int(self.n_rows_),
            "bytes_per_row": round(stored / self.n_rows_, 2) if self.n_rows_ else 0.0,
            "in_memory_mb": round(self.state_bytes_ / 2 ** 20, 2),
            "spilled_mb": round(self.spilled_bytes_ / 2 ** 20, 2),
        }}
        for kind, groups in (("exact", self.exact_), ("near", self.near_)):
            if kind == "near" and self.near_digits is None:
                continue
            conflicting = groups.conflict
            out[kind] = {
                "groups": int(len(groups.keys)),
                "rows_in_groups": groups.repeated_rows,
                "distinct": groups.distinct,
                "largest": int(groups.sizes.max()) if len(groups.sizes) else 1,
                "usual": groups.usual,
                "conflicting_groups": int(conflicting.sum()),
                "rows_in_conflicting_groups": int(groups.sizes[conflicting].sum()),
            }
        # whether the rows hold continuous values and none repeats by nature: then any exact
        # copy is evidence (of a label whose rows never repeat, among rows that never do)
        out["any_copy_is_evidence"] = bool(self.continuous_ and self.exact_.rarity >= 1.0)
        out["natural_conflicts"] = bool(self.natural_conflicts_)
        out["natural_near_copies"] = bool(self.near_natural_)
        return out


def _principal_axes(X: np.ndarray, dims: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Mean and top ``dims`` principal axes of ``X`` (``None`` when it has no more columns).

    A k-d tree answers exact queries fast in a few dimensions and slowly in a hundred;
    the neighbourhood of a duplicate group needs the coarse geometry, not every one-hot
    column. Axes are sign-fixed (largest loading positive), so the projection is a
    function of the sample alone.
    """
    if X.shape[1] <= dims:
        return None
    mean = X.mean(axis=0)
    values, vectors = np.linalg.eigh(X.T @ X - len(X) * np.outer(mean, mean))
    axes = vectors[:, np.argsort(values, kind="stable")[::-1][:dims]].T
    axes *= np.where(axes[np.arange(dims), np.abs(axes).argmax(axis=1)] < 0, -1.0, 1.0)[:, None]
    return mean, np.ascontiguousarray(axes)


def _sizes(groups: Groups, index: np.ndarray) -> np.ndarray:
    """Group size of each row (1 outside groups)."""
    out = np.ones(len(index), dtype=np.int64)
    inside = index >= 0
    out[inside] = groups.sizes[index[inside]]
    return out


def _run_key(run: Run) -> tuple:
    return (run.start, run.size, run.file or "")

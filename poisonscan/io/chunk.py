"""The unit of work every pass and every check consumes."""

from __future__ import annotations

import dataclasses
import threading
from typing import Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import InputError
from .schema import DATETIME, ScanSchema


@dataclasses.dataclass(frozen=True)
class CellErrors:
    """Cells of one column that could not be parsed into the column's type.

    Attributes
    ----------
    positions : numpy.ndarray of int64
        Positions of the cells within the chunk.
    values : tuple of str
        The raw text of each cell, in the same order.
    """

    positions: np.ndarray
    values: tuple[str, ...]


class Chunk:
    """A block of consecutive (or sampled) rows with their ids and typed values.

    Parameters
    ----------
    table : pyarrow.Table
        Typed values of every column (unparseable cells are null here and listed in
        ``errors``).
    rows : numpy.ndarray of int64
        Row id of each row (0-based position across all inputs).
    schema : ScanSchema
        Roles and kinds of the columns.
    errors : mapping of str to CellErrors, optional
        Unparseable cells per column.
    source : str, optional
        The file the rows came from (for messages).
    """

    def __init__(self, table: pa.Table, rows: np.ndarray, schema: ScanSchema,
                 errors: Mapping[str, CellErrors] | None = None, source: str = ""):
        if len(rows) != table.num_rows:
            raise ValueError("rows and table disagree in length")
        self.table = table
        self.rows = np.asarray(rows, dtype=np.int64)
        self.schema = schema
        self.errors = dict(errors or {})
        self.source = source
        self._cache: dict[tuple[str, str], object] = {}
        self._lock = threading.RLock()

    def __len__(self) -> int:
        return self.table.num_rows

    def __getstate__(self):  # caches are cheap to rebuild; do not ship them
        state = self.__dict__.copy()
        state["_cache"] = {}
        del state["_lock"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.RLock()

    def cached(self, what: str, key: str, make):
        """``make()``, computed once per chunk for each ``(what, key)``, also when several
        threads ask at once (the checks are fitted side by side on the sample chunk)."""
        key = (what, key)
        if key not in self._cache:
            with self._lock:  # reentrant: a conversion may ask for another one
                if key not in self._cache:
                    self._cache[key] = make()
        return self._cache[key]

    def numeric(self, column: str) -> np.ndarray:
        """Float64 values of a numeric or datetime column; nulls are NaN (see :meth:`missing`).

        Datetimes are seconds since the Unix epoch. An integer beyond ``2**53`` in magnitude
        is the nearest float64 (precision is lost, the scale is kept: enough for the numeric
        checks; the exact duplicate fingerprints read such integers exactly).
        """
        def make():
            arr = self.table.column(column)
            if self.schema.kinds.get(column) == DATETIME:
                if pa.types.is_date(arr.type):
                    arr = arr.cast(pa.date32()).cast(pa.int32()).cast(pa.float64())
                    return np.asarray(arr.to_numpy(zero_copy_only=False)) * 86400.0
                micros = pc.cast(arr.cast(pa.timestamp("us")).cast(pa.int64()), pa.float64(),
                                 safe=False)
                return np.asarray(micros.to_numpy(zero_copy_only=False)) / 1e6
            # unsafe: an integer beyond 2**53 is rounded, not refused (see above)
            return np.asarray(pc.cast(arr, pa.float64(), safe=False)
                              .to_numpy(zero_copy_only=False), dtype=np.float64)
        return self.cached("numeric", column, make)

    def missing(self, column: str) -> np.ndarray:
        """Boolean mask of null (missing) cells, parse failures excluded."""
        def make():
            mask = np.asarray(self.table.column(column).is_null().to_numpy(zero_copy_only=False),
                              dtype=bool)
            err = self.errors.get(column)
            if err is not None and len(err.positions):
                mask = mask.copy()
                mask[err.positions] = False
            return mask
        return self.cached("missing", column, make)

    def vector_lengths(self, column: str) -> np.ndarray:
        """Length of every vector of a list column (``-1`` for a null vector)."""
        def make():
            lengths = pc.list_value_length(self.table.column(column)).fill_null(-1)
            return np.asarray(lengths.to_numpy(zero_copy_only=False), dtype=np.int64)
        return self.cached("vector_lengths", column, make)

    def vectors(self, column: str) -> np.ndarray:
        """The vectors of a list column as a float64 matrix (rows x length).

        A null vector is a row of NaN, a null component is NaN (see :meth:`missing` for
        the null vectors).

        Raises
        ------
        InputError
            The column's vectors differ in length (naming the source, the first row whose
            length differs from the first vector's, and the column).
        """
        def make():
            lengths = self.vector_lengths(column)
            present = lengths >= 0
            dim = int(lengths[present][0]) if present.any() else 0
            ragged = np.flatnonzero(present & (lengths != dim))
            if ragged.size:
                raise ragged_error(self.source, int(self.rows[ragged[0]]), column,
                                   int(lengths[ragged[0]]), dim)
            flat = self.table.column(column).combine_chunks().flatten()
            values = np.asarray(pc.cast(flat, pa.float64(), safe=False)  # see numeric()
                                .to_numpy(zero_copy_only=False), dtype=np.float64)
            out = np.full((len(self), dim), np.nan)
            if dim:
                out[present] = values.reshape(-1, dim)
            return out
        return self.cached("vectors", column, make)

    def strings(self, column: str) -> np.ndarray:
        """Object array of the column's values as text (``None`` for nulls)."""
        def make():
            arr = self.table.column(column)
            if pa.types.is_dictionary(arr.type):
                arr = arr.cast(arr.type.value_type)
            if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
                arr = pc.cast(arr, pa.string())
            return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=object)
        return self.cached("strings", column, make)

    def slice(self, start: int, stop: int) -> "Chunk":
        """Rows ``start:stop`` as a chunk of their own (conversions are not carried over)."""
        errors = {}
        for column, cells in self.errors.items():
            keep = np.flatnonzero((cells.positions >= start) & (cells.positions < stop))
            if len(keep):
                errors[column] = CellErrors(cells.positions[keep] - start,
                                            tuple(cells.values[i] for i in keep))
        return Chunk(self.table.slice(start, stop - start), self.rows[start:stop],
                     self.schema, errors, self.source)

    def labels(self) -> np.ndarray | None:
        """The label column as text, or ``None`` when the scan has no label."""
        if self.schema.label is None:
            return None
        return self.strings(self.schema.label)

    def to_pandas(self) -> pd.DataFrame:
        """The typed values as a DataFrame indexed by row id (for plug-in checks)."""
        df = self.table.to_pandas()
        df.index = pd.Index(self.rows, name="row")
        return df


def ragged_error(source: str, row: int, column: str, length: int, expected: int) -> InputError:
    """The error of a vector column whose vectors differ in length."""
    return InputError(f"vector of length {length} where the column's vectors have length "
                      f"{expected}: an embedding column needs one length (pad, truncate or "
                      "drop such rows, or ignore the column with ignore_columns)",
                      path=source or None, row=row, column=column)

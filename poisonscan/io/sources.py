"""Chunked sources: CSV and Parquet files, globs, directories, and in-memory tables.

A source is opened once (which resolves the files, checks that they share one schema and
decides the type of every column) and can then be streamed any number of times, in
chunks of a fixed number of rows, never holding more than one chunk per file in memory.

CSV files are read as text and typed here, not by pyarrow's inference: pyarrow infers
types from the first block only and stops on the first later value that does not fit.
We infer from a first look, then convert each chunk; a cell that does not parse becomes
a null plus a :class:`~poisonscan.io.chunk.CellErrors` entry that the bounds check
reports, never a crash.
"""

from __future__ import annotations

import csv
import glob
import io
import os
import re
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ..errors import InputError
from .chunk import CellErrors, Chunk
from .schema import ScanSchema
from .storage import is_url, open_input

CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".csv.zst")
PARQUET_SUFFIXES = (".parquet", ".parq", ".pq")
#: Cell texts read as missing values. "NaN" is deliberately not here: a NaN written into
#: a numeric column is a value the bounds check reports, not a missing cell.
NULL_MARKERS = ("", "NA", "N/A", "n/a", "NULL", "null", "None", "#N/A")
_NULLS = pa.array(NULL_MARKERS, pa.string())
#: Bytes of a CSV file used to decide its column types.
FIRST_LOOK_BYTES = 1 << 20
#: Bytes pyarrow's CSV reader parses at a time.
CSV_BLOCK_BYTES = 4 << 20
#: Resource caps against hostile input: the most columns a source may have, and the most
#: bytes one text cell may hold. Past either, the scan stops with an :class:`InputError`
#: naming the file (and the row and column of the cell).
MAX_COLUMNS = 2_000
MAX_CELL_BYTES = 1 << 20


def format_of(path: str | os.PathLike) -> str | None:
    """``"csv"`` or ``"parquet"`` by file name, else ``None``."""
    name = str(path).lower()
    if name.endswith(CSV_SUFFIXES):
        return "csv"
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    return None


def resolve_inputs(inputs: Sequence[str | os.PathLike]) -> list[Path]:
    """Expand files, globs and directories into an ordered list of data files.

    Order: the inputs as given; within a glob or a directory, files sorted by path.
    Hidden files and files starting with ``_`` (``_SUCCESS``, ``_metadata``) are ignored
    in directories. A URL (``s3://bucket/data/``) is listed through fsspec
    (:mod:`poisonscan.io.storage`) and stays a string; local files are paths.

    Raises
    ------
    InputError
        An input that matches nothing, or a file of neither format.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    if not inputs:
        raise InputError("no input given")
    files: list[Path | str] = []
    for item in inputs:
        text = str(item)
        if is_url(text):
            from .storage import expand
            files.extend(expand(text))
        elif any(ch in text for ch in "*?[") and not Path(text).exists():
            matches = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
            if not matches:
                raise InputError("no file matches this pattern", path=text)
            files.extend(matches)
        elif Path(text).is_dir():
            found = sorted(p for p in Path(text).rglob("*")
                           if p.is_file() and format_of(p) is not None
                           and not any(part.startswith((".", "_"))
                                       for part in p.relative_to(text).parts))
            if not found:
                raise InputError("directory holds no CSV or Parquet file", path=text)
            files.extend(found)
        elif Path(text).is_file():
            files.append(Path(text))
        else:
            raise InputError("no such file or directory", path=text)
    for path in files:
        if format_of(path) is None and _sniff_parquet(path) is False:
            raise InputError("not a CSV or Parquet file (expected .csv, .csv.gz, .csv.zst, "
                             ".parquet)", path=str(path))
    return files


def _sniff_parquet(path: Path | str) -> bool:
    try:
        with open_input(path) as fh:
            return fh.read(4) == b"PAR1"
    except OSError as exc:
        raise InputError(f"cannot read file: {exc.strerror}", path=str(path)) from None


class Source:
    """Base of every source: a typed Arrow schema and two ways to stream it.

    Attributes
    ----------
    fmt : {"csv", "parquet"}
        Format of the data (in-memory tables count as Parquet).
    names : list of str
        The files (or a description of the in-memory object), for messages and the summary.
    arrow_schema : pyarrow.Schema
        Typed schema: what :meth:`chunks` yields.
    """

    fmt: str
    names: list[str]
    arrow_schema: pa.Schema

    def tables(self, chunk_rows: int, *, raw: bool = False
               ) -> Iterator[tuple[int, pa.Table, dict[str, CellErrors], str]]:
        """Yield ``(first_row, table, cell_errors, name)`` blocks of at most ``chunk_rows``.

        With ``raw=True`` the table holds the values as stored (CSV cells as text),
        which is what the clean and quarantine files of the same format receive.
        """
        raise NotImplementedError

    def chunks(self, chunk_rows: int, schema: ScanSchema) -> Iterator[Chunk]:
        """Yield typed :class:`Chunk` objects covering every row once, in order."""
        for start, table, errors, name in self.tables(chunk_rows):
            _check_cell_sizes(table, start, name)
            yield Chunk(table, np.arange(start, start + table.num_rows, dtype=np.int64),
                        schema, errors, name)

    def raw_schema(self) -> pa.Schema:
        """Schema of the ``raw=True`` tables."""
        return self.arrow_schema

    def partitions(self, rows: int) -> list["Part"]:
        """Pieces of this source that can be read independently (on other machines).

        The pieces cover every row once, in order; each is a :class:`Source` whose
        :meth:`tables` yields the rows' global ids once its first row is known
        (:attr:`Part.start`; ``None`` until :meth:`Part.count` has run on every earlier
        piece, see :func:`place`).

        Parameters
        ----------
        rows : int
            Rows a piece should hold at least where the format allows (Parquet: whole
            row groups; CSV: one piece per file; in-memory tables: slices).
        """
        raise NotImplementedError


class Part(Source):
    """A piece of a source (see :meth:`Source.partitions`): picklable, self-contained.

    Attributes
    ----------
    start : int or None
        Global id of the piece's first row.
    num_rows : int or None
        Rows in the piece when known without reading it.
    """

    start: int | None = None
    num_rows: int | None = None

    def count(self) -> int:
        """Rows in the piece (reads it when the count is not known)."""
        if self.num_rows is None:
            self.num_rows = sum(table.num_rows for _, table, _, _ in self._tables(1 << 16, True))
        return self.num_rows

    def tables(self, chunk_rows, *, raw=False):
        if self.start is None:
            raise ValueError("the first row of this piece is not known yet (see place())")
        return self._tables(chunk_rows, raw)

    def _tables(self, chunk_rows: int, raw: bool):
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.names[0]!r}, start={self.start})"


def place(parts: Sequence[Part], counts: Sequence[int]) -> list[Part]:
    """Give every piece its first row from the row counts of all pieces (in order)."""
    start = 0
    for part, n in zip(parts, counts):
        part.start, part.num_rows = start, n
        start += n
    return list(parts)


class ParquetSource(Source):
    """Parquet files of one schema, streamed with ``pre_buffer=False`` (see DESIGN §9)."""

    fmt = "parquet"

    def __init__(self, files: Sequence[Path | str]):
        self.files = list(files)
        self.names = [str(f) for f in self.files]
        schema = None
        for path in self.files:
            file_schema = _open_parquet(path).schema_arrow.remove_metadata()
            if schema is None:
                schema, first = file_schema, path
            elif not file_schema.equals(schema):
                raise InputError(f"schema differs from {first}: {_schema_diff(schema, file_schema)}",
                                 path=str(path))
        self.arrow_schema = schema
        _check_column_names(schema.names, self.names[0])

    def tables(self, chunk_rows, *, raw=False):
        start = 0
        for path in self.files:
            for item in _parquet_tables(path, start, chunk_rows, raw):
                yield item
                start += item[1].num_rows

    def partitions(self, rows):
        parts, start = [], 0
        for path in self.files:
            meta = _open_parquet(path).metadata
            group: list[int] = []
            size = 0
            for index in range(meta.num_row_groups):
                group.append(index)
                size += meta.row_group(index).num_rows
                if size >= rows or index == meta.num_row_groups - 1:
                    parts.append(ParquetPart(path, tuple(group), start, size, self.arrow_schema))
                    start += size
                    group, size = [], 0
        return parts


class ParquetPart(Part):
    """Consecutive row groups of one Parquet file."""

    fmt = "parquet"

    def __init__(self, path, row_groups: tuple[int, ...], start: int, num_rows: int,
                 arrow_schema: pa.Schema):
        self.path, self.row_groups = path, row_groups
        self.start, self.num_rows = start, num_rows
        self.names, self.arrow_schema = [str(path)], arrow_schema

    def _tables(self, chunk_rows, raw):
        return _parquet_tables(self.path, self.start, chunk_rows, raw, self.row_groups)


def _open_parquet(path) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(open_input(path) if is_url(path) else path, pre_buffer=False)
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"cannot read Parquet file: {_one_line(exc)}", path=str(path)) from None


def _parquet_tables(path, start: int, chunk_rows: int, raw: bool,
                    row_groups: Sequence[int] | None = None):
    """The blocks of one Parquet file (or of some of its row groups) from row ``start``."""
    try:
        for batch in _open_parquet(path).iter_batches(batch_size=chunk_rows,
                                                      row_groups=row_groups):
            table, bad_text = _repair_utf8(pa.Table.from_batches([batch]))
            yield start, table, ({} if raw else bad_text), str(path)
            start += batch.num_rows
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"cannot read Parquet file after row {start}: {_one_line(exc)}",
                         path=str(path)) from None


class CsvSource(Source):
    """CSV files (optionally gzip/bz2/zstd compressed) with one header."""

    fmt = "csv"

    def __init__(self, files: Sequence[Path | str], *, text_columns: Iterable[str] = ()):
        self.files = list(files)
        self.names = [str(f) for f in self.files]
        header = None
        for path in self.files:
            names, evidence = self._first_look(path)
            if header is None:
                header, looks, first = names, [[e] for e in evidence], path
            elif names != header:
                raise InputError(f"header differs from {first}: {_names_diff(header, names)}",
                                 path=str(path))
            else:
                for seen, e in zip(looks, evidence):
                    seen.append(e)
        # the first look of every file decides, so a file split does not change the types
        types = [_decide_type(seen) for seen in looks]
        _check_column_names(header, self.names[0])
        text_columns = set(text_columns)
        #: Columns whose first looks hold integers only (read as float64 all the same: a
        #: later cell may be "3.5"); a Parquet output keeps them integers where pass 1 saw
        #: no other value (:class:`~poisonscan.engines.pieces.Layout`).
        self.integer_columns = frozenset(n for n, t in zip(header, types)
                                         if pa.types.is_integer(t) and n not in text_columns)
        self.arrow_schema = pa.schema(
            [(n, pa.string() if n in text_columns else _csv_target(t)) for n, t in zip(header, types)])
        self._raw_schema = pa.schema([(n, pa.string()) for n in header])

    def raw_schema(self) -> pa.Schema:
        return self._raw_schema

    @staticmethod
    def _first_look(path: Path | str) -> tuple[list[str], list[tuple]]:
        """Header and column types from the first block of the file.

        pyarrow infers a text type for a column in which a single cell does not parse;
        we call a column numeric when most of its first-look cells parse as numbers
        (the others are then reported by the bounds check).
        """
        if str(path).lower().endswith(".csv"):
            _refuse_binary_csv(path)
        try:
            reader = pacsv.open_csv(
                _csv_input(path), read_options=pacsv.ReadOptions(block_size=FIRST_LOOK_BYTES),
                convert_options=pacsv.ConvertOptions(null_values=list(NULL_MARKERS),
                                                     strings_can_be_null=True))
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                batch = reader.schema.empty_table()
            names = list(batch.schema.names)
        except UnicodeDecodeError:
            raise InputError("the header is not UTF-8 text", path=str(path)) from None
        except (pa.ArrowException, OSError) as exc:
            if "Empty CSV file" in str(exc):
                raise InputError("the file is empty (no header, no data rows)",
                                 path=str(path)) from None
            message = _one_line(exc)
            expected = re.search(r"Expected (\d+) columns, got (\d+)", message)
            if expected:
                where = _locate_malformed_row(path, int(expected.group(1)))
                snippet = message[expected.end():].lstrip(": ")[:60]
                message = (f"malformed CSV row{where}: expected {expected.group(1)} fields, "
                           f"got {expected.group(2)}: {snippet!r}")
            raise InputError(f"cannot read CSV file: {message}", path=str(path)) from None
        evidence = [_type_evidence(batch.column(i)) for i in range(batch.num_columns)]
        return names, evidence

    def tables(self, chunk_rows, *, raw=False):
        start = 0
        for path in self.files:
            for item in _csv_tables(path, start, chunk_rows, raw, self._raw_schema,
                                    self.arrow_schema):
                yield item
                start += item[1].num_rows

    def partitions(self, rows):
        return [CsvPart(path, self._raw_schema, self.arrow_schema) for path in self.files]


class CsvPart(Part):
    """One CSV file of a source; its first row is known once earlier files are counted."""

    fmt = "csv"

    def __init__(self, path, raw_schema: pa.Schema, arrow_schema: pa.Schema):
        self.path, self._raw_schema, self.arrow_schema = path, raw_schema, arrow_schema
        self.names = [str(path)]

    def raw_schema(self) -> pa.Schema:
        return self._raw_schema

    def _tables(self, chunk_rows, raw):
        return _csv_tables(self.path, self.start or 0, chunk_rows, raw, self._raw_schema,
                           self.arrow_schema)


def _csv_input(path):
    """What pyarrow's CSV reader opens: a local path (it detects the compression itself)
    or a decompressing stream of a URL."""
    return open_input(path, compression="infer") if is_url(path) else path


def _csv_reader(path, raw_schema: pa.Schema, problems: list):
    def on_invalid_row(row):
        problems.append(row)
        return "error"
    return pacsv.open_csv(
        _csv_input(path),
        read_options=pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES),
        parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid_row),
        convert_options=pacsv.ConvertOptions(
            column_types=pa.schema([(n, pa.binary()) for n in raw_schema.names]),
            strings_can_be_null=False,
            quoted_strings_can_be_null=False, null_values=[]))


def _csv_tables(path, start: int, chunk_rows: int, raw: bool, raw_schema: pa.Schema,
                arrow_schema: pa.Schema):
    """The blocks of one CSV file from row ``start``: raw text, or typed with cell errors."""
    problems: list = []
    try:
        for table in _rebatch(_csv_reader(path, raw_schema, problems), chunk_rows):
            table, bad_text = _decode_utf8(table, raw_schema)
            _check_cell_sizes(table, start, str(path))
            if raw:
                yield start, table, {}, str(path)
            else:
                typed, errors = _convert(table, arrow_schema)
                for column, bad in bad_text.items():
                    errors[column] = _merge_errors(errors.get(column), bad)
                yield start, typed, errors, str(path)
            start += table.num_rows
    except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:
        if problems:
            bad = problems[0]
            where = _locate_malformed_row(path, bad.expected_columns)
            message = (f"malformed CSV row{where}: expected {bad.expected_columns} "
                       f"fields, got {bad.actual_columns}: {bad.text[:60]!r}")
        else:
            message = f"cannot read CSV file after data row {start}: {_one_line(exc)}"
        raise InputError(message, path=str(path)) from None


class TableSource(Source):
    """An in-memory pandas DataFrame or pyarrow Table, streamed in slices."""

    fmt = "parquet"
    start = 0

    def __init__(self, data, name: str = "<table>"):
        if not isinstance(data, pa.Table):
            try:
                data = pa.Table.from_pandas(data, preserve_index=False)
            except (pa.ArrowException, TypeError, ValueError) as exc:
                raise InputError(f"cannot convert the DataFrame to Arrow: {_one_line(exc)}",
                                 path=name) from None
        self.table = data.replace_schema_metadata(None)
        self.names = [name]
        self.arrow_schema = self.table.schema
        _check_column_names(self.arrow_schema.names, name)

    def tables(self, chunk_rows, *, raw=False):
        for offset in range(0, self.table.num_rows, chunk_rows):
            yield self.start + offset, self.table.slice(offset, chunk_rows), {}, self.names[0]

    def partitions(self, rows):
        return [TablePart(self.table.slice(start, rows), self.names[0], start)
                for start in range(0, max(self.table.num_rows, 1), rows)]


class TablePart(TableSource, Part):
    """A slice of an in-memory table (shipped to the worker with the task)."""

    def __init__(self, table: pa.Table, name: str, start: int):
        self.table, self.names, self.arrow_schema = table, [name], table.schema
        self.start, self.num_rows = start, table.num_rows

    tables = TableSource.tables


def open_source(source, *, text_columns: Iterable[str] = ()) -> Source:
    """Open what the user gave as input.

    Parameters
    ----------
    source : path, glob, directory, list of those, pandas.DataFrame or pyarrow.Table
        The data to scan.
    text_columns : iterable of str
        CSV columns kept as text whatever they look like (the label and the id column).

    Raises
    ------
    InputError
        Missing files, mixed formats, differing schemas, unreadable files.
    """
    if isinstance(source, pa.Table) or type(source).__name__ == "DataFrame":
        return TableSource(source, name=f"<{type(source).__name__}>")
    files = resolve_inputs(source)
    formats = {format_of(f) or "parquet" for f in files}
    if len(formats) > 1:
        raise InputError("inputs mix CSV and Parquet files; scan them separately")
    if formats == {"csv"}:
        return CsvSource(files, text_columns=text_columns)
    return ParquetSource(files)


# ----------------------------------------------------------------------------- helpers

def _csv_target(inferred: pa.DataType) -> pa.DataType:
    """Typed Arrow type of a CSV column given the type inferred from the first look."""
    if pa.types.is_integer(inferred) or pa.types.is_floating(inferred) \
            or pa.types.is_decimal(inferred):
        return pa.float64()  # an integer column may hold "3.5" further down
    if pa.types.is_timestamp(inferred) or pa.types.is_date(inferred):
        return inferred
    return pa.string()  # strings, booleans ("true"/"false"), all-empty columns


def _type_evidence(column, look: int = 10_000) -> tuple[pa.DataType, int, int]:
    """``(inferred type, non-null cells, cells that parse as numbers)`` of a first look."""
    present = column.slice(0, look)
    n = len(present) - present.null_count
    if pa.types.is_integer(column.type) or pa.types.is_floating(column.type) \
            or pa.types.is_decimal(column.type):
        return column.type, n, n
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        values = [v for v in present.to_pylist() if v is not None]
        return column.type, n, sum(_parse_cell(v.strip(), pa.float64()) is not _UNPARSEABLE
                                   for v in values)
    return column.type, n, 0


def _decide_type(looks: Sequence[tuple[pa.DataType, int, int]], share: float = 0.9
                 ) -> pa.DataType:
    """One inferred type from the first looks of every file (see :func:`_mostly_numeric`)."""
    present = [(t, n, p) for t, n, p in looks if n]
    if not present:
        return looks[0][0]
    kinds = {t for t, _, _ in present}
    if len(kinds) == 1 and not (pa.types.is_string(present[0][0])
                                or pa.types.is_large_string(present[0][0])):
        return present[0][0]
    total = sum(n for _, n, _ in present)
    parsed = sum(p for _, _, p in present)
    return pa.float64() if parsed >= share * total else pa.string()


def _mostly_numeric(column, share: float = 0.9, look: int = 10_000) -> pa.DataType:
    """``float64`` for a text column whose non-null cells mostly parse as numbers."""
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        return column.type
    present = [v for v in column.slice(0, look).to_pylist() if v is not None]
    if not present:
        return column.type
    parsed = sum(_parse_cell(v.strip(), pa.float64()) is not _UNPARSEABLE for v in present)
    return pa.float64() if parsed >= share * len(present) else column.type


def _rebatch(reader, rows: int) -> Iterator[pa.Table]:
    """Regroup a stream of record batches into tables of exactly ``rows`` rows (last: fewer)."""
    pending: list[pa.RecordBatch] = []
    have = 0
    for batch in reader:
        pending.append(batch)
        have += batch.num_rows
        while have >= rows:
            table = pa.Table.from_batches(pending)
            yield table.slice(0, rows)
            rest = table.slice(rows)
            pending = rest.to_batches() if rest.num_rows else []
            have = rest.num_rows
    if have:
        yield pa.Table.from_batches(pending)


def _convert(raw: pa.Table, schema: pa.Schema) -> tuple[pa.Table, dict[str, CellErrors]]:
    """Type the text columns of ``raw`` as ``schema`` says; list cells that do not parse."""
    columns, errors = [], {}
    for field in schema:
        text = raw.column(field.name).combine_chunks()
        nulled = pc.if_else(pc.is_in(text, value_set=_NULLS), pa.scalar(None, pa.string()), text)
        if pa.types.is_string(field.type):
            columns.append(nulled)
            continue
        try:
            columns.append(pc.cast(nulled, field.type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            typed, bad = _convert_slowly(nulled, field.type)
            columns.append(typed)
            if len(bad):
                errors[field.name] = CellErrors(
                    bad, tuple(nulled.take(pa.array(bad)).to_pylist()))
    return pa.table(columns, schema=schema), errors


def _convert_slowly(text: pa.Array, target: pa.DataType) -> tuple[pa.Array, np.ndarray]:
    """Cell by cell conversion; returns the typed array and positions that did not parse."""
    values = text.to_pylist()
    out, bad = [], []
    for i, value in enumerate(values):
        if value is None:
            out.append(None)
            continue
        parsed = _parse_cell(value.strip(), target)
        if parsed is _UNPARSEABLE:
            bad.append(i)
            out.append(None)
        else:
            out.append(parsed)
    if pa.types.is_floating(target):
        typed = pa.array(out, pa.float64())
    else:
        typed = pc.cast(pa.array([None if v is None else v for v in out], pa.string()), target)
    return typed, np.asarray(bad, dtype=np.int64)


_UNPARSEABLE = object()


def _decode_utf8(table: pa.Table, schema: pa.Schema) -> tuple[pa.Table, dict[str, CellErrors]]:
    """Binary CSV cells -> text; invalid UTF-8 is decoded with U+FFFD and listed as an error.

    The row then reaches the bounds check as an unparseable cell (and so the quarantine
    file, which is UTF-8), instead of stopping the scan.
    """
    columns, bad = [], {}
    for field in schema:
        cells = table.column(field.name).combine_chunks()
        try:
            columns.append(cells.cast(pa.string()))
            continue
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
        values, positions, shown = [], [], []
        for i, value in enumerate(cells.to_pylist()):
            try:
                values.append(value.decode("utf-8"))
            except UnicodeDecodeError:
                values.append(value.decode("utf-8", errors="replace"))
                positions.append(i)
                shown.append(values[-1])
        columns.append(pa.array(values, pa.string()))
        bad[field.name] = CellErrors(np.asarray(positions, dtype=np.int64), tuple(shown))
    return pa.table(columns, schema=schema), bad


def _repair_utf8(table: pa.Table) -> tuple[pa.Table, dict[str, CellErrors]]:
    """Parquet text columns holding invalid UTF-8 (a damaged or hostile file): decode with
    U+FFFD and list the cells, as :func:`_decode_utf8` does for CSV."""
    bad = {}
    for i, field in enumerate(table.schema):
        if not pa.types.is_string(field.type):
            continue
        column = table.column(i)
        try:
            column.validate(full=True)
            continue
        except pa.ArrowInvalid:
            pass
        raw = pa.Table.from_arrays([column.combine_chunks().view(pa.binary())], names=["c"])
        fixed, errors = _decode_utf8(raw, pa.schema([("c", pa.string())]))
        table = table.set_column(i, field, fixed.column("c"))
        if "c" in errors:
            bad[field.name] = errors["c"]
    return table, bad


def _merge_errors(a: CellErrors | None, b: CellErrors) -> CellErrors:
    if a is None or not len(a.positions):
        return b
    merged = dict(zip(b.positions.tolist(), b.values))
    merged.update(zip(a.positions.tolist(), a.values))
    order = sorted(merged)
    return CellErrors(np.asarray(order, dtype=np.int64), tuple(merged[i] for i in order))


def _check_cell_sizes(table: pa.Table, start: int, name: str) -> None:
    """Refuse a text cell larger than :data:`MAX_CELL_BYTES` (file, row and column named)."""
    for field in table.schema:
        if not (pa.types.is_string(field.type) or pa.types.is_binary(field.type)
                or pa.types.is_large_string(field.type) or pa.types.is_large_binary(field.type)):
            continue
        lengths = pc.binary_length(table.column(field.name))
        longest = pc.max(lengths).as_py()
        if longest is not None and longest > MAX_CELL_BYTES:
            at = int(pc.index(lengths, longest).as_py())
            raise InputError(f"a cell of {longest:,} bytes is larger than the limit of "
                             f"{MAX_CELL_BYTES:,} (poisonscan.io.sources.MAX_CELL_BYTES)",
                             path=name, row=start + at, column=field.name)


def _parse_cell(value: str, target: pa.DataType):
    if pa.types.is_floating(target):
        if "_" in value or not value.isascii():
            return _UNPARSEABLE  # Python's float() takes "1_000" and non-ASCII digits ("١٢")
        try:
            return float(value)  # accepts "nan", "inf", "1e999" as numbers
        except ValueError:
            return _UNPARSEABLE
    try:  # timestamps and dates: let Arrow parse the single cell
        pc.cast(pa.array([value], pa.string()), target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return _UNPARSEABLE
    return value


def _locate_malformed_row(path: Path | str, expected: int) -> str:
    """`` at data row N (line L)`` of the first row with the wrong number of fields.

    pyarrow's streaming reader does not say where a malformed row is; this second,
    slow read runs only after the scan has already failed.
    """
    try:
        with open_input(path, compression="infer") as raw, \
                io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="") as text:
            reader = csv.reader(text)
            next(reader, None)  # header
            for index, fields in enumerate(reader):
                if len(fields) != expected:
                    return f" at data row {index} (line {reader.line_num})"
    except (OSError, csv.Error, pa.ArrowException):
        pass
    return ""


#: Leading bytes of files that are not plain text, with what to call them.
_MAGIC = ((b"\x1f\x8b", "gzip-compressed (name it *.csv.gz)"),
          (b"BZh", "bzip2-compressed (name it *.csv.bz2)"),
          (b"\x28\xb5\x2f\xfd", "zstd-compressed (name it *.csv.zst)"),
          (b"PAR1", "a Parquet file (name it *.parquet)"),
          (b"PK\x03\x04", "a zip archive (unzip it first)"))


def _refuse_binary_csv(path: Path | str) -> None:
    """A ``.csv`` file that is really compressed or binary: say what it looks like."""
    try:
        with open_input(path) as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise InputError(f"cannot read file: {exc.strerror}", path=str(path)) from None
    for sig, what in _MAGIC:
        if magic.startswith(sig) and not (sig == b"BZh" and magic[3:4].isalpha()):
            raise InputError(f"not a plain CSV file: it looks like {what}", path=str(path))


def _check_column_names(names: Sequence[str], where: str) -> None:
    if len(names) > MAX_COLUMNS:
        raise InputError(f"{len(names):,} columns is more than the limit of {MAX_COLUMNS:,} "
                         "(poisonscan.io.sources.MAX_COLUMNS)", path=where)
    seen = set()
    for name in names:
        if name in seen:
            raise InputError(f"duplicate column name {name!r}", path=where)
        seen.add(name)


def _schema_diff(a: pa.Schema, b: pa.Schema) -> str:
    if a.names != b.names:
        return _names_diff(a.names, b.names)
    for fa, fb in zip(a, b):
        if fa.type != fb.type:
            return f"column {fa.name!r} is {fb.type}, expected {fa.type}"
    return "schemas differ"


def _names_diff(expected: Sequence[str], got: Sequence[str]) -> str:
    missing = [n for n in expected if n not in got]
    extra = [n for n in got if n not in expected]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing column(s) {', '.join(map(repr, missing))}")
        if extra:
            parts.append(f"extra column(s) {', '.join(map(repr, extra))}")
        return "; ".join(parts)
    return "columns in a different order"


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__

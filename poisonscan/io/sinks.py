"""Atomic output directory and streaming table writers.

Every output is first written into a private staging directory inside the output
directory and moved into place (``os.replace``, atomic on one file system) only when the
whole scan has succeeded. A failure at any point removes the staging directory: the
output directory then holds exactly what it held before.

The output directory may also be a URL (``s3://bucket/scans/today``,
:mod:`poisonscan.io.storage`). Files are then staged locally, and files that workers of
the Dask engine write go to a staging prefix next to the outputs; both are moved into
place when the scan succeeds, ``summary.json`` last (object stores have no atomic
rename: a present ``summary.json`` marks a complete scan).
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import errno
import os
import re
import shutil
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ..errors import OutputExistsError, UsageError
from . import storage

#: The files of a scan (DESIGN.md §5); ``{fmt}`` is ``csv`` or ``parquet``.
CONTRACT_FILES = ("scores.parquet", "suspects.csv", "quarantine.csv", "quarantine.parquet",
                  "clean.csv", "clean.parquet", "summary.json", "report.html")
#: Columns ``quarantine.<fmt>`` adds to the input's: the row id, score and reason.
QUARANTINE_COLUMNS = ("_row", "_score", "_reason")
#: Columns of ``scores.parquet`` and ``suspects.csv`` besides the id column and one score
#: column per check family.
RESULT_COLUMNS = ("rank", "row", "score", "suspect", "checks", "reason")

#: Rows per Parquet row group of every output.
ROW_GROUP_ROWS = 65_536
#: A cell a spreadsheet would run as a formula starts with one of these (OWASP).
_FORMULA_START = r"^[=+\-@\t\r]"
_PLAIN_NUMBER = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"


class OutputDir:
    """A scan's output directory, written all at once or not at all.

    Parameters
    ----------
    path : path
        The directory (created if missing).
    overwrite : bool
        Replace the files of an earlier scan; without it such a directory is refused.

    Raises
    ------
    OutputExistsError
        ``path`` already holds a scan and ``overwrite`` is false.
    UsageError
        ``path`` exists and is not a directory.
    """

    def __init__(self, path: str | os.PathLike, *, overwrite: bool = False):
        self.url = str(path) if storage.is_url(str(path)) else None
        self.path = Path(path) if self.url is None else None
        self.overwrite = overwrite
        self.staging: Path | None = None
        self.remote_staging: str | None = None
        self._created = False
        if self.url is not None:
            self._fs, self._root = storage.filesystem(self.url)
            existing = self.existing()
            if existing and not overwrite:
                raise OutputExistsError(f"{self.url}: already holds a scan "
                                        f"({', '.join(existing)}); use --overwrite to replace it")
            return
        if self.path.exists() and not self.path.is_dir():
            raise UsageError(f"{self.path}: output path exists and is not a directory")
        existing = self.existing()
        if existing and not overwrite:
            raise OutputExistsError(f"{self.path}: already holds a scan ({', '.join(existing)}); "
                                    "use --overwrite to replace it")

    def existing(self) -> list[str]:
        """Contract files (or directories of parts) already in the directory."""
        if self.url is not None:
            return [name for name in CONTRACT_FILES
                    if self._fs.exists(self._root.rstrip("/") + "/" + name)]
        return [name for name in CONTRACT_FILES if (self.path / name).exists()]

    def __enter__(self) -> "OutputDir":
        if self.url is not None:
            self.staging = Path(tempfile.mkdtemp(prefix=".poisonscan-staging-"))
            self.remote_staging = storage.join(self.url, self.staging.name)
            return self
        if not self.path.exists():
            self.path.mkdir(parents=True)
            self._created = True
        self.staging = Path(tempfile.mkdtemp(prefix=".poisonscan-staging-", dir=self.path))
        return self

    def file(self, name: str) -> Path:
        """Where to write output ``name`` while the scan runs (a local path)."""
        return self.staging / name

    def shared(self, name: str) -> str:
        """Where other machines (Dask workers) write output ``name`` while the scan runs.

        The local staging directory for a local output directory (shared with the
        workers of a local cluster, or a shared file system); a staging prefix in the
        same store for a URL.
        """
        if self.remote_staging is not None:
            return storage.join(self.remote_staging, name)
        return str(self.staging / name)

    def commit(self) -> list[str]:
        """Move every staged file (or directory of parts) into place; ``summary.json`` last."""
        staged = {p.name: str(p) for p in self.staging.iterdir() if not p.name.startswith(".")}
        if self.remote_staging is not None:
            fs, root = storage.filesystem(self.remote_staging)
            if fs.exists(root):
                for entry in fs.ls(root, detail=False):
                    name = entry.rstrip("/").rsplit("/", 1)[-1]
                    if not name.startswith(".") and name not in staged:
                        staged[name] = fs.unstrip_protocol(entry)
        for stale in self.existing():
            if stale not in staged:
                self._remove(stale)
        if self.url is not None:  # a store's directory may not exist (a local file:// one)
            self._fs.makedirs(self._root, exist_ok=True)
        moved = []
        for name in sorted(staged, key=lambda n: (n == "summary.json", n)):
            moved.append(self._move(staged[name], name))
        self._clean_staging()
        return moved

    def _target(self, name: str) -> str:
        return self._root.rstrip("/") + "/" + name if self.url is not None \
            else str(self.path / name)

    def _remove(self, name: str) -> None:
        target = self._target(name)
        if self.url is not None:
            self._fs.rm(target, recursive=True)
        elif os.path.isdir(target):
            shutil.rmtree(target)
        else:
            os.unlink(target)

    def _move(self, item: str, name: str) -> str:
        target = self._target(name)
        if self.url is None:
            if os.path.isdir(target) or (os.path.isdir(item) and os.path.exists(target)):
                self._remove(name)  # a directory of parts replaces a file, or the reverse
            os.replace(item, target)
            return target
        if self._fs.exists(target):
            self._remove(name)
        if storage.is_url(item):
            self._fs.mv(storage.filesystem(item)[1], target, recursive=True)
        else:
            self._fs.put(item, target, recursive=os.path.isdir(item))
        return self._fs.unstrip_protocol(target)

    def _clean_staging(self) -> None:
        if self.staging is not None:
            shutil.rmtree(self.staging, ignore_errors=True)
            self.staging = None
        if self.remote_staging is not None:
            fs, root = storage.filesystem(self.remote_staging)
            try:
                if fs.exists(root):
                    fs.rm(root, recursive=True)
            except OSError:
                pass
            self.remote_staging = None

    def __exit__(self, exc_type, exc, tb) -> None:
        self._clean_staging()
        if self.url is not None:
            return
        if exc_type is not None and self._created:
            try:
                self.path.rmdir()
            except OSError:
                pass
        if exc is not None and _is_disk_error(exc):
            reason = exc.strerror or str(exc).strip().splitlines()[0]
            raise OutputWriteError(f"{self.path}: cannot write the outputs ({reason}); "
                                   "nothing was written") from None


class OutputWriteError(UsageError):
    """The output directory could not be written (disk full, read-only, no permission)."""


_DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO,
                errno.EFBIG}


def _is_disk_error(exc: BaseException) -> bool:
    if not isinstance(exc, OSError):
        return False
    return exc.errno in _DISK_ERRNOS or "No space left" in str(exc) \
        or "Disk quota" in str(exc) or "Read-only file system" in str(exc)


class TableWriter:
    """Append tables to one CSV or Parquet file; the header/schema is written even if empty.

    Parquet row groups always hold :data:`ROW_GROUP_ROWS` rows (the last one fewer),
    whatever the sizes of the appended tables, so the bytes of a file do not depend on
    the chunk size of the scan.

    Parameters
    ----------
    path : path
        File to write.
    schema : pyarrow.Schema
        Schema of every appended table.
    fmt : {"csv", "parquet"}
        File format.
    guard_formulas : bool
        Neutralise text cells a spreadsheet would execute (CSV review files only).
    """

    def __init__(self, path: Path | str, schema: pa.Schema, fmt: str, *,
                 guard_formulas: bool = False, header: bool = True):
        self.schema = schema.remove_metadata()
        self.fmt = fmt
        self.guard = guard_formulas and fmt == "csv"
        self.rows = 0
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        if fmt not in ("parquet", "csv"):
            raise ValueError(f"unknown format {fmt!r}")
        # a URL (a Dask worker writing a part to object storage) is written through fsspec
        self._file = storage.open_output(path) if storage.is_url(str(path)) else None
        sink = self._file if self._file is not None else path
        if fmt == "parquet":
            self._writer = pq.ParquetWriter(sink, self.schema, compression="zstd")
        else:
            head = self.schema
            if self.guard:  # attacker-chosen column names reach the review file's header too
                head = pa.schema([f.with_name(_guard_text(f.name)) for f in self.schema])
            self._header = head
            self._writer = pacsv.CSVWriter(sink, head, write_options=pacsv.WriteOptions(
                include_header=header))

    def write(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        table = table.replace_schema_metadata(None).cast(self.schema)
        self.rows += table.num_rows
        if self.fmt == "csv":
            if self.guard:
                table = guard_formulas(table).rename_columns(self._header.names)
            self._writer.write_table(table)
            return
        self._pending.append(table)
        self._pending_rows += table.num_rows
        if self._pending_rows >= ROW_GROUP_ROWS:
            self._flush(final=False)

    def _flush(self, *, final: bool) -> None:
        if not self._pending:
            return
        table = pa.concat_tables(self._pending)
        full = table.num_rows if final else table.num_rows - table.num_rows % ROW_GROUP_ROWS
        for start in range(0, full, ROW_GROUP_ROWS):
            self._writer.write_table(table.slice(start, min(ROW_GROUP_ROWS, full - start)),
                                     row_group_size=ROW_GROUP_ROWS)
        rest = table.slice(full)
        self._pending = [rest] if rest.num_rows else []
        self._pending_rows = rest.num_rows

    def close(self) -> None:
        if self.fmt == "parquet":
            self._flush(final=True)
        self._writer.close()
        if self._file is not None:
            self._file.close()

    def __enter__(self) -> "TableWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class BackgroundWriter:
    """A writer whose ``write`` calls run in a thread of their own, one after the other.

    The caller goes on reading and routing while a table is encoded, compressed and
    written; at most ``depth`` tables wait. The file's bytes are those of the writer
    written directly (the same calls in the same order). An error of a write is raised
    by the next ``write`` or by ``close``, which waits for every write, then closes the
    writer.

    Parameters
    ----------
    writer : TableWriter
        The writer; only the background thread calls its ``write``.
    depth : int
        Tables queued at most.
    """

    def __init__(self, writer: TableWriter, depth: int = 2):
        self.writer = writer
        self._depth = depth
        self._pool = cf.ThreadPoolExecutor(max_workers=1)
        self._queued: collections.deque = collections.deque()

    def write(self, table: pa.Table) -> None:
        self._queued.append(self._pool.submit(self.writer.write, table))
        while len(self._queued) > self._depth:
            self._queued.popleft().result()

    def close(self) -> None:
        try:
            while self._queued:
                self._queued.popleft().result()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self.writer.close()


def _guard_text(text: str) -> str:
    """:func:`guard_formulas` for one string."""
    if re.match(_FORMULA_START, text) and not re.match(_PLAIN_NUMBER, text):
        return "'" + text
    return text


def guard_formulas(table: pa.Table) -> pa.Table:
    """Prefix ``'`` to text cells that a spreadsheet would run as a formula.

    A cell starting with ``= + - @``, a tab or a carriage return is prefixed unless it is
    a plain number (so ``-1.5`` stays a number).
    """
    columns = []
    for column in table.columns:
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            risky = pc.and_(pc.match_substring_regex(column, _FORMULA_START),
                            pc.invert(pc.match_substring_regex(column, _PLAIN_NUMBER)))
            quote, empty = pa.scalar("'", column.type), pa.scalar("", column.type)
            column = pc.if_else(risky, pc.binary_join_element_wise(quote, column, empty), column)
        columns.append(column)
    return pa.table(columns, schema=table.schema)


def concat_parts(parts, target, schema: pa.Schema, fmt: str, *,
                 guard_formulas: bool = False) -> None:
    """Write one file at ``target`` from parts written by :class:`TableWriter` (CSV parts
    with ``header=False``), in order; the parts stay where they are.

    The result is byte for byte what one :class:`TableWriter` writing the parts' rows
    gives: CSV parts are copied after one header, Parquet parts are read back and
    rewritten in :data:`ROW_GROUP_ROWS` row groups. Parts and target may be local paths
    or URLs; memory stays bounded (one row group).
    """
    if fmt == "csv":
        head = pa.BufferOutputStream()
        TableWriter(head, schema, "csv", guard_formulas=guard_formulas).close()
        with storage.open_output(str(target)) as out:
            out.write(head.getvalue().to_pybytes())
            for part in parts:
                with storage.open_input(part) as fh:
                    shutil.copyfileobj(fh, out, 1 << 20)
        return
    with TableWriter(target, schema, "parquet") as writer:
        for part in parts:
            source = storage.open_input(part) if storage.is_url(str(part)) else part
            for batch in pq.ParquetFile(source, pre_buffer=False).iter_batches(ROW_GROUP_ROWS):
                writer.write(pa.Table.from_batches([batch], schema=writer.schema))

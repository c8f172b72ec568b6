"""Atomic output directory and streaming table writers.

Every output is first written into a private staging directory inside the output
directory and moved into place (``os.replace``, atomic on one file system) only when the
whole scan has succeeded. A failure at any point removes the staging directory: the
output directory then holds exactly what it held before.
"""

from __future__ import annotations

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

#: The files of a scan (DESIGN.md §5); ``{fmt}`` is ``csv`` or ``parquet``.
CONTRACT_FILES = ("scores.parquet", "suspects.csv", "quarantine.csv", "quarantine.parquet",
                  "clean.csv", "clean.parquet", "summary.json", "report.html")

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
        self.path = Path(path)
        self.overwrite = overwrite
        if self.path.exists() and not self.path.is_dir():
            raise UsageError(f"{self.path}: output path exists and is not a directory")
        existing = self.existing()
        if existing and not overwrite:
            raise OutputExistsError(f"{self.path}: already holds a scan ({', '.join(existing)}); "
                                    "use --overwrite to replace it")
        self.staging: Path | None = None
        self._created = False

    def existing(self) -> list[str]:
        """Contract files already in the directory."""
        return [name for name in CONTRACT_FILES if (self.path / name).exists()]

    def __enter__(self) -> "OutputDir":
        if not self.path.exists():
            self.path.mkdir(parents=True)
            self._created = True
        self.staging = Path(tempfile.mkdtemp(prefix=".poisonscan-staging-", dir=self.path))
        return self

    def file(self, name: str) -> Path:
        """Where to write output ``name`` while the scan runs."""
        return self.staging / name

    def commit(self) -> list[Path]:
        """Move every staged file into place; ``summary.json`` goes last."""
        staged = sorted((p for p in self.staging.iterdir() if not p.name.startswith(".")),
                        key=lambda p: (p.name == "summary.json", p.name))
        produced = {p.name for p in staged}
        for stale in self.existing():
            if stale not in produced:
                (self.path / stale).unlink()
        moved = []
        for item in staged:
            target = self.path / item.name
            os.replace(item, target)
            moved.append(target)
        shutil.rmtree(self.staging, ignore_errors=True)
        self.staging = None
        return moved

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.staging is not None:
            shutil.rmtree(self.staging, ignore_errors=True)
            self.staging = None
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

    def __init__(self, path: Path, schema: pa.Schema, fmt: str, *, guard_formulas: bool = False):
        self.schema = schema.remove_metadata()
        self.fmt = fmt
        self.guard = guard_formulas and fmt == "csv"
        self.rows = 0
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        if fmt == "parquet":
            self._writer = pq.ParquetWriter(path, self.schema, compression="zstd")
        elif fmt == "csv":
            header = self.schema
            if self.guard:  # attacker-chosen column names reach the review file's header too
                header = pa.schema([f.with_name(_guard_text(f.name)) for f in self.schema])
            self._header = header
            self._writer = pacsv.CSVWriter(path, header)
        else:
            raise ValueError(f"unknown format {fmt!r}")

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

    def __enter__(self) -> "TableWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


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

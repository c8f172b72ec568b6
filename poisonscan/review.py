"""Reviewer decisions: read ``decisions.csv``, apply it to a scan, remember kept rows.

The review page (``report.html``) exports one line per decided suspect::

    row,id,decision,note,fingerprint
    560,A100560,drop,income is NaN,
    41,A100041,keep,"age -5 is a data-entry code",9c1f0e7d5a3b2c11

``row`` is the scan's 0-based row id, ``id`` the value of the scan's id column (empty
when the scan had none), ``decision`` is ``drop`` or ``keep``, ``note`` is free text and
``fingerprint`` the row's feature fingerprint (16 hex digits; the exact fingerprint of
:func:`poisonscan.checks.duplicates.fingerprints`). ``fingerprint`` is optional; it
lets a later scan recognise a kept row when the data has no id column.

* :func:`read_decisions` parses and validates such a file (an error names the file, the
  line and the column).
* :func:`apply_decisions` rewrites a scan's clean and quarantine files: kept rows go back
  to the clean file at their place in input order; ``summary.json`` records what was
  decided.
* :func:`allowlist_rows` finds the rows of a new scan that a reviewer kept before
  (matched by id, else by fingerprint), so that they are not quarantined again.

Text cells of the review files are formula-guarded (:func:`poisonscan.io.sinks.guard_formulas`
prefixes ``'``); :func:`unguard_text` undoes that where a value has to be compared or
written back to training data.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import hashlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from .errors import InputError
from .io import storage
from .io.sinks import _FORMULA_START, _PLAIN_NUMBER, CONTRACT_FILES, OutputDir, TableWriter
from .report.summary import write_json

#: Columns of ``decisions.csv`` (``id``, ``note`` and ``fingerprint`` may be absent).
DECISION_COLUMNS = ("row", "id", "decision", "note", "fingerprint")
#: The decisions a reviewer can make.
DECISIONS = ("drop", "keep")
#: Largest decisions file read (a reviewer's file, not a dataset).
MAX_DECISIONS_BYTES = 64 << 20
#: Rows per block when streaming the clean and quarantine files.
BLOCK_ROWS = 65_536


@dataclasses.dataclass(frozen=True)
class Decision:
    """One line of ``decisions.csv``.

    Attributes
    ----------
    line : int
        Line of the file (the header is line 1).
    row : int
        The scan's row id.
    id : str or None
        The row's id as exported (possibly formula-guarded: compare it through
        :func:`unguard_text` too), ``None`` when empty.
    decision : {"drop", "keep"}
    note : str
        Free text (formula guard removed).
    fingerprint : int or None
        The row's exact feature fingerprint.
    """

    line: int
    row: int
    id: str | None
    decision: str
    note: str
    fingerprint: int | None


# ============================================================================ formula guard


def unguard_text(text: str) -> str:
    """Undo :func:`poisonscan.io.sinks.guard_formulas` on one cell.

    The guard prefixes ``'`` to a text that starts with ``= + - @``, tab or CR and is
    not a plain number; this strips that ``'`` again. (A cell whose original text was
    ``'`` followed by such a formula cannot be told apart from a guarded one and loses
    its ``'``.)
    """
    if text.startswith("'") and re.match(_FORMULA_START, text[1:]) \
            and not re.match(_PLAIN_NUMBER, text[1:]):
        return text[1:]
    return text


def unguard_table(table: pa.Table) -> pa.Table:
    """:func:`unguard_text` on every text cell of ``table``."""
    columns = []
    for column in table.columns:
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            rest = pc.utf8_slice_codeunits(column, 1)
            guarded = pc.and_(pc.and_(pc.starts_with(column, "'"),
                                      pc.match_substring_regex(rest, _FORMULA_START)),
                              pc.invert(pc.match_substring_regex(rest, _PLAIN_NUMBER)))
            column = pc.if_else(guarded, rest, column)
        columns.append(column)
    return pa.table(columns, schema=table.schema)


# ============================================================================ decisions file


def read_decisions(path: str | os.PathLike) -> list[Decision]:
    """Read and validate a ``decisions.csv``.

    Lines with an empty ``decision`` are skipped (undecided).

    Parameters
    ----------
    path : path
        The file exported by the review page (or written by hand).

    Returns
    -------
    list of Decision
        In file order.

    Raises
    ------
    InputError
        Missing or unreadable file, a missing ``row`` or ``decision`` column, a row id
        that is not a non-negative integer, a decision other than ``drop``/``keep``, a
        row decided twice, a fingerprint that is not 16 hex digits. The message names
        the file, the line and the column.
    """
    path = Path(path)
    name = str(path)
    try:
        if path.stat().st_size > MAX_DECISIONS_BYTES:
            raise InputError(f"decisions file larger than {MAX_DECISIONS_BYTES >> 20} MB",
                             path=name)
        # newline="": a line break inside a quoted cell (an id holding "\r") is data
        with open(path, encoding="utf-8-sig", newline="") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise InputError("decisions file not found", path=name) from None
    except UnicodeDecodeError:
        raise InputError("decisions file is not UTF-8 text", path=name) from None
    except OSError as exc:
        raise InputError(f"cannot read decisions file: {exc.strerror or exc}",
                         path=name) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        raise InputError("empty decisions file (expected a header: "
                         f"{','.join(DECISION_COLUMNS)})", path=name)
    header = [unguard_text(h.strip()) for h in header]
    for needed in ("row", "decision"):
        if needed not in header:
            raise InputError(f"missing column {needed!r} (header: {','.join(header)})",
                             path=name, row=1)
    at = {c: header.index(c) for c in DECISION_COLUMNS if c in header}
    decisions: list[Decision] = []
    seen: dict[int, int] = {}
    for fields in reader:
        line = reader.line_num - fields_lines(fields) + 1  # first line of the record
        if not fields or all(not f.strip() for f in fields):
            continue
        if len(fields) != len(header):
            raise InputError(f"expected {len(header)} fields, got {len(fields)}",
                             path=name, row=line)

        def cell(column: str) -> str:
            return unguard_text(fields[at[column]]) if column in at else ""

        decision = cell("decision").strip().lower()
        if not decision:
            continue
        if decision not in DECISIONS:
            raise InputError(f"expected 'drop' or 'keep', got {cell('decision')[:40]!r}",
                             path=name, row=line, column="decision")
        text_row = cell("row").strip()
        if not re.fullmatch(r"\d{1,18}", text_row):
            raise InputError(f"expected a row id (0, 1, ...), got {text_row[:40]!r}",
                             path=name, row=line, column="row")
        row = int(text_row)
        if row in seen:
            raise InputError(f"row {row} is decided twice (also on line {seen[row]})",
                             path=name, row=line, column="row")
        seen[row] = line
        fingerprint = cell("fingerprint").strip()
        if fingerprint and not re.fullmatch(r"[0-9a-fA-F]{16}", fingerprint):
            raise InputError(f"expected 16 hex digits, got {fingerprint[:40]!r}",
                             path=name, row=line, column="fingerprint")
        raw_id = fields[at["id"]] if "id" in at else ""
        decisions.append(Decision(line=line, row=row, id=raw_id or None,
                                  decision=decision, note=cell("note"),
                                  fingerprint=int(fingerprint, 16) if fingerprint else None))
    return decisions


def fields_lines(fields: list[str]) -> int:
    """Lines a CSV record spans (a quoted field may hold line breaks: ``\\r\\n``, ``\\n``
    or ``\\r``)."""
    return 1 + sum(len(_LINE_BREAK.findall(f)) for f in fields)


#: A line break, as :class:`io.StringIO` with ``newline=""`` splits lines.
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def format_fingerprint(value: int) -> str:
    """A fingerprint as written in ``decisions.csv`` (16 lower-case hex digits)."""
    return f"{int(value):016x}"


# ============================================================================ apply


def apply_decisions(scan_dir: str | os.PathLike, decisions: str | os.PathLike,
                    out: str | os.PathLike | None = None, *, overwrite: bool = False) -> dict:
    """Apply reviewer decisions to a finished scan.

    Kept rows move from the quarantine file back to the clean file, at their place in
    input order (the clean file then holds exactly the rows a scan that had not
    quarantined them would have written); dropped rows stay quarantined. The files are
    written atomically (:class:`~poisonscan.io.sinks.OutputDir`): ``scan_dir`` (or
    ``out``) holds either the old or the new scan, never a mix.

    Parameters
    ----------
    scan_dir : path
        A directory written by ``poisonscan scan``, on this machine (a ``file://`` URL
        is one).
    decisions : path
        A ``decisions.csv`` (see :func:`read_decisions`).
    out : path or URL, optional
        Write the result there (every scan file, the untouched ones copied) instead of
        rewriting ``scan_dir``; a URL of another store is written through fsspec.
    overwrite : bool
        Replace a scan already in ``out``.

    Returns
    -------
    dict
        The new ``summary.json``: ``rows`` updated and a record appended to
        ``decisions``.

    Raises
    ------
    InputError
        ``scan_dir`` is not a scan, or a decision does not fit it (a row that was not
        quarantined marked ``drop``, an id that is not the row's id).
    OutputExistsError
        ``out`` holds a scan and ``overwrite`` is false.
    """
    local = storage.local_path(scan_dir)
    if local is None:
        raise InputError("apply reads a scan directory on this machine (a path or a file:// "
                         "URL); copy the scan from the store first", path=str(scan_dir))
    scan_dir = local
    summary_path = scan_dir / "summary.json"
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
        fmt = summary["output_format"]
        n_rows = int(summary["rows"]["in"])
    except FileNotFoundError:
        raise InputError("not a scan directory (no summary.json)", path=str(scan_dir)) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"unreadable summary.json: {exc}", path=str(summary_path)) from None
    clean_path, quarantine_path = scan_dir / f"clean.{fmt}", scan_dir / f"quarantine.{fmt}"
    for path in (clean_path, quarantine_path):
        if not path.exists():
            raise InputError(f"scan file {path.name} is missing", path=str(scan_dir))
    id_col = summary.get("id_column")
    chosen = read_decisions(decisions)

    quarantine = _Blocks(quarantine_path, fmt, guarded=True)
    q_rows, q_ids = quarantine.rows_and_ids(id_col, {d.row for d in chosen})
    quarantined = set(q_rows[np.isin(q_rows, [d.row for d in chosen])].tolist())
    kept_rows, dropped_rows, already_clean = [], [], []
    for d in chosen:
        if d.row not in quarantined:
            if d.row >= n_rows:
                raise InputError(f"row {d.row} is not in the scan ({n_rows} rows)",
                                 path=str(decisions), row=d.line, column="row")
            if d.decision == "drop":
                raise InputError(f"row {d.row} was not quarantined by this scan; only "
                                 "suspects can be dropped", path=str(decisions), row=d.line,
                                 column="row")
            already_clean.append(d.row)
            continue
        if d.id is not None and id_col is not None and d.row in q_ids:
            scanned = q_ids[d.row]
            if d.id != scanned and unguard_text(d.id) != scanned:
                raise InputError(f"row {d.row} has id {scanned!r} in the scan, not "
                                 f"{d.id[:40]!r} (decisions of another scan?)",
                                 path=str(decisions), row=d.line, column="id")
        (kept_rows if d.decision == "keep" else dropped_rows).append(d.row)
    kept = np.array(sorted(kept_rows), dtype=np.int64)

    target = scan_dir if out is None else storage.local_path(out)  # file:// URLs are local
    if target is None:  # another store: written through fsspec
        target, in_place = str(out), False
    else:
        in_place = target == scan_dir  # both resolved by storage.local_path
    with OutputDir(target, overwrite=overwrite or in_place) as outdir:
        clean_schema = _Blocks(clean_path, fmt).schema
        with TableWriter(outdir.file(clean_path.name), clean_schema, fmt) as clean_w:
            kept_table = _kept_rows(quarantine, kept, clean_schema)
            for block in _merged(_Blocks(clean_path, fmt).tables(), q_rows, kept, kept_table):
                clean_w.write(block)
        with TableWriter(outdir.file(quarantine_path.name), quarantine.schema, fmt,
                         guard_formulas=True) as quarantine_w:
            for block in quarantine.tables(unguard=True):
                rows = block.column("_row").to_numpy()
                quarantine_w.write(block.filter(pa.array(~np.isin(rows, kept))))
        if clean_w.rows + quarantine_w.rows != n_rows:
            raise InputError(f"the scan files disagree with summary.json: {clean_w.rows} clean "
                             f"+ {quarantine_w.rows} quarantined rows != {n_rows}",
                             path=str(scan_dir))
        record = {
            "file": Path(decisions).name,
            "sha256": hashlib.sha256(Path(decisions).read_bytes()).hexdigest(),
            "decided": len(chosen),
            "kept": len(kept_rows),
            "dropped": len(dropped_rows),
            "undecided": len(q_rows) - len(kept_rows) - len(dropped_rows),
            "already_clean": len(already_clean),
            "kept_rows": kept.tolist(),
            "dropped_rows": sorted(dropped_rows),
        }
        summary["rows"].update(clean=clean_w.rows, quarantined=quarantine_w.rows,
                               quarantined_fraction=round(quarantine_w.rows / n_rows, 6)
                               if n_rows else 0.0)
        summary["decisions"] = list(summary.get("decisions") or []) + [record]
        for name in sorted(os.listdir(scan_dir)):
            if name in CONTRACT_FILES and name not in {
                    clean_path.name, quarantine_path.name, "summary.json"}:
                _copy(scan_dir / name, Path(outdir.file(name)))
        write_json(summary, outdir.file("summary.json"))
        outdir.commit()
    return summary


def _copy(source: Path, target: Path) -> None:
    """Hard-link ``source`` to ``target`` where possible (same file system), else copy; a
    directory of parts is copied part by part."""
    if source.is_dir():
        shutil.copytree(source, target, copy_function=_link_or_copy)
    else:
        _link_or_copy(source, target)


def _link_or_copy(source, target) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


class _Blocks:
    """Stream a clean or quarantine file of a scan in blocks of :data:`BLOCK_ROWS`.

    CSV files are read cell for cell as text (``_row`` as an integer and ``_score`` as a
    float, as pass 3 wrote them); ``guarded`` says the file is a formula-guarded review
    file (its header included).
    """

    def __init__(self, path: Path, fmt: str, *, guarded: bool = False):
        self.path, self.fmt, self.guarded = path, fmt, guarded
        if fmt == "parquet":
            self.schema = pq.read_schema(parquet_parts(path)[0]).remove_metadata()
            return
        with open(path, encoding="utf-8", newline="") as handle:
            header = next(csv.reader(handle), [])
        self._names = header
        types = {"_row": pa.int64(), "_score": pa.float64()} if guarded else {}
        self.schema = pa.schema([(unguard_text(n) if guarded else n, types.get(n, pa.string()))
                                 for n in header])

    def _options(self) -> pacsv.ConvertOptions:
        return pacsv.ConvertOptions(
            column_types=pa.schema([(n, t) for n, t in zip(self._names, self.schema.types)]),
            strings_can_be_null=False, quoted_strings_can_be_null=False, null_values=[])

    def tables(self, *, unguard: bool = False, columns: list[str] | None = None
               ) -> Iterator[pa.Table]:
        if self.fmt == "parquet":
            for part in parquet_parts(self.path):
                batches = pq.ParquetFile(part, pre_buffer=False).iter_batches(
                    batch_size=BLOCK_ROWS, columns=columns)
                for batch in batches:
                    yield pa.Table.from_batches([batch])
            return
        # CSV review files hold text; every column is read as text, cell for cell
        reader = pacsv.open_csv(self.path, read_options=pacsv.ReadOptions(block_size=4 << 20),
                                convert_options=self._options())
        with reader:
            for batch in reader:
                table = pa.Table.from_batches([batch]).rename_columns(self.schema.names)
                if unguard:
                    table = unguard_table(table)
                yield table.select(columns) if columns else table

    def rows_and_ids(self, id_col: str | None, wanted: set[int]
                     ) -> tuple[np.ndarray, dict[int, str | None]]:
        """``_row`` of every quarantined row, and the id (unguarded text) of the ``wanted``
        rows among them when the scan had an id column."""
        rows, ids = [], {}
        want = pa.array(sorted(wanted), pa.int64())
        for table in self.tables(unguard=True):
            rows.append(table.column("_row").to_numpy())
            if id_col and id_col in table.column_names and wanted:
                picked = table.filter(pc.is_in(table.column("_row"), value_set=want))
                for row, value in zip(picked.column("_row").to_pylist(),
                                      picked.column(id_col).to_pylist()):
                    ids[row] = None if value is None else str(value)
        q = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
        if len(q) > 1 and np.any(np.diff(q) <= 0):
            raise InputError("quarantine rows are not in input order", path=str(self.path))
        return q.astype(np.int64), ids


def parquet_parts(path: Path) -> list[Path]:
    """The files of a Parquet output: itself, or the sorted parts of a directory (the
    Dask engine may write ``name.parquet/`` as a directory of parts)."""
    path = Path(path)
    if path.is_dir():
        parts = sorted((p for p in path.iterdir() if p.suffix == ".parquet"),
                       key=lambda p: [int(t) if t.isdigit() else t
                                      for t in re.split(r"(\d+)", p.name)])
        if not parts:
            raise InputError("no Parquet parts in the directory", path=str(path))
        return parts
    return [path]


def _kept_rows(quarantine: _Blocks, kept: np.ndarray, schema: pa.Schema) -> pa.Table:
    """The kept rows of the quarantine file, original columns only (guard removed)."""
    parts = []
    for table in quarantine.tables(unguard=True):
        rows = table.column("_row").to_numpy()
        mask = np.isin(rows, kept)
        if mask.any():
            parts.append(table.filter(pa.array(mask)).select(schema.names).cast(schema))
    return pa.concat_tables(parts) if parts else schema.empty_table()


def _merged(clean: Iterator[pa.Table], quarantined: np.ndarray, kept: np.ndarray,
            kept_table: pa.Table) -> Iterator[pa.Table]:
    """Clean blocks with the kept rows inserted at their place in input order.

    A kept row ``r`` follows exactly ``r - #{quarantined rows < r}`` clean rows.
    """
    before = kept - np.searchsorted(quarantined, kept)
    done, k = 0, 0
    for block in clean:
        end = done + block.num_rows
        stop = int(np.searchsorted(before, end, side="left"))
        if stop > k:
            keys = np.concatenate([2 * np.arange(done, end) + 1, 2 * before[k:stop]])
            both = pa.concat_tables([block.cast(kept_table.schema),
                                     kept_table.slice(k, stop - k)])
            block = both.take(pa.array(np.argsort(keys, kind="stable")))
            k = stop
        done = end
        yield block
    if k < len(kept):
        yield kept_table.slice(k)


# ============================================================================ allowlist


def fingerprint_rows(chunk) -> np.ndarray:
    """The exact feature fingerprint of every row of a chunk (uint64).

    The same canonical fingerprint the ``duplicates`` check groups rows by
    (:func:`poisonscan.checks.duplicates.fingerprints` with its default digits): feature
    columns only, so the label and the id column do not enter it.
    """
    from .checks.duplicates import DuplicatesCheck, fingerprints

    digits = DuplicatesCheck().digits
    exact, _ = fingerprints(chunk, digits=digits, near_digits=None)
    return exact


def allowlist_rows(decisions: Iterable[Decision], chunks: Iterable, id_column: str | None,
                   *, path: str = "") -> np.ndarray:
    """Rows of a scan that an earlier review kept.

    A kept decision matches a row by id when both have one, else by fingerprint.

    Parameters
    ----------
    decisions : iterable of Decision
        Only ``keep`` decisions count.
    chunks : iterable of Chunk
        The scan's typed chunks (one pass over the data).
    id_column : str or None
        The scan's id column.
    path : str
        The decisions file (for messages).

    Returns
    -------
    numpy.ndarray of int64
        Sorted ids of the rows to keep out of the quarantine.

    Raises
    ------
    InputError
        A kept decision with nothing to match on (no id usable by this scan and no
        fingerprint).
    """
    ids, prints = set(), set()
    for d in decisions:
        if d.decision != "keep":
            continue
        if d.id is not None and id_column is not None:
            ids.add(d.id)
            ids.add(unguard_text(d.id))
        elif d.fingerprint is not None:
            prints.add(d.fingerprint)
        else:
            raise InputError("a kept row needs an id (and a scan with --id-column) or a "
                             "fingerprint to be recognised", path=path, row=d.line,
                             column="id" if id_column else "fingerprint")
    found: list[np.ndarray] = []
    if not ids and not prints:
        return np.zeros(0, dtype=np.int64)
    id_values = pa.array(sorted(ids), pa.string())
    print_values = np.array(sorted(prints), dtype=np.uint64)
    for chunk in chunks:
        hit = np.zeros(len(chunk), dtype=bool)
        if ids:
            text = chunk.strings(id_column)
            hit |= np.asarray(pc.is_in(pa.array(text, pa.string()), value_set=id_values)
                              .fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)
        if prints:
            hit |= np.isin(fingerprint_rows(chunk), print_values)
        found.append(chunk.rows[hit])
    return np.sort(np.concatenate(found)) if found else np.zeros(0, dtype=np.int64)


def exempt_rows(suspect: np.ndarray, decision: dict, score: np.ndarray,
                exempt: np.ndarray) -> tuple[np.ndarray, dict]:
    """Take allowlisted rows out of a scan's decision.

    Parameters
    ----------
    suspect : numpy.ndarray of bool
        The decision per row (:func:`poisonscan.fusion.decide`).
    decision : dict
        Its summary record.
    score : numpy.ndarray of float64
        Fused score per row.
    exempt : numpy.ndarray of int64
        Ids of the rows a reviewer kept (:func:`allowlist_rows`).

    Returns
    -------
    suspect, decision
        The decision without the exempt rows; the record gains ``allowlisted`` (suspects
        left unquarantined) and its ``suspects`` and ``min_suspect_score`` follow.
    """
    mask = np.zeros(len(suspect), dtype=bool)
    mask[exempt[exempt < len(suspect)]] = True
    spared = suspect & mask
    suspect = suspect & ~mask
    decision = dict(decision, suspects=int(suspect.sum()), allowlisted=int(spared.sum()),
                    min_suspect_score=float(score[suspect].min()) if suspect.any() else None)
    return suspect, decision

"""The work of each pass on one piece of the input, shared by every engine.

The local engine runs each function once over the whole source; the Dask engine runs
it on the workers over every partition (:meth:`poisonscan.io.sources.Source.partitions`)
and combines the results. A piece is any :class:`~poisonscan.io.sources.Source` whose
row ids are global (input order), so every function here gives the same rows, scores
and bytes whichever engine calls it.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .. import pipeline
from ..checks.duplicates import FLOAT_EXACT_INTEGERS
from ..errors import InputError
from ..fusion import Fusion
from ..io.sinks import QUARANTINE_COLUMNS, TableWriter
from ..io.sources import Source
from ..profiling import NumericStats

#: ``progress(stage, rows_done, rows_total_or_None)``
Progress = Callable[[str, int, "int | None"], None]
#: ``advance(rows)``: rows just finished by a piece.
Advance = Callable[[int], None]
#: Name of the intermediate pass-2 output (a file, or a directory of parts on Dask).
PASS2_FILE = ".pass2.parquet"


def _ignore(rows: int) -> None:
    return None


# ---------------------------------------------------------------------------- pass 1

def profile_piece(piece: Source, checks, *, chunk_rows: int, sample_rows: int, seed: int,
                  schema, advance: Advance = _ignore,
                  mapper: Callable | None = None) -> pipeline.PassOneState | None:
    """Pass 1 over one piece: every chunk summarised and merged in row order.

    ``mapper`` (``map`` by default) applies the summary to the chunks and yields the
    results in order, e.g. :func:`~poisonscan.threads.ordered_map` in threads.
    Returns ``None`` for a piece without rows.
    """
    def summarize(chunk):
        part = pipeline.summarize(chunk, checks, sample_rows=sample_rows, seed=seed)
        return part, len(chunk)

    state = None
    for part, rows in (mapper or map)(summarize, piece.chunks(chunk_rows, schema)):
        state = pipeline.merge(state, part, checks)
        advance(rows)
    return state


def require_rows(state: pipeline.PassOneState | None, names) -> pipeline.PassOneState:
    """``state`` unless the input had no data rows (an :class:`InputError`)."""
    if state is None or state.profile.n_rows == 0:
        raise InputError("the input has no data rows", path=", ".join(names))
    return state


# ---------------------------------------------------------------------------- pass 2

@dataclasses.dataclass
class Scored:
    """What pass 2 learned about one piece, besides the rows it wrote.

    Attributes
    ----------
    rows : int
        Rows scored.
    fired : dict of str to int
        Rows each family had something to say about.
    tally : dict or None
        Rows per column and broken bound (see ``BoundsCheck.tally``), when the plan
        has a bounds check.
    """

    rows: int
    fired: dict[str, int]
    tally: dict | None = None


def score_piece(piece: Source, plan: pipeline.Plan, *, chunk_rows: int, path,
                score: np.ndarray, violation: np.ndarray, offset: int = 0,
                tally: bool = False, advance: Advance = _ignore,
                scorer: Callable[[Iterable], Iterable[pa.Table]] | None = None) -> Scored:
    """Pass 2 over one piece: score every chunk, write the pass-2 rows to ``path`` and
    fill ``score`` / ``violation`` at ``row - offset``.

    ``scorer`` maps the piece's chunks to their pass-2 tables in input order (default:
    :meth:`pipeline.Plan.score` in this process; the local engine's worker pool is
    :meth:`.pool.ScorePool.map`).

    Raises
    ------
    InputError
        The piece now holds more rows than the arrays (the input changed).
    """
    n = len(score)
    fired: dict[str, int] = {f: 0 for f in plan.families}
    bounds = next((c for c in plan.checks if c.name == "bounds"), None) if tally else None
    counts: dict | None = {} if bounds is not None and hasattr(bounds, "tally") else None
    done = 0
    scorer = scorer or (lambda chunks: map(plan.score, chunks))
    with TableWriter(path, plan.pass2_schema(), "parquet") as writer:
        for table in scorer(piece.chunks(chunk_rows, plan.schema)):
            rows = table.column("row").to_numpy() - offset
            if len(rows) and (rows[-1] >= n or rows[0] < 0):
                raise InputError("the input changed during the scan (more rows than in pass 1)")
            score[rows] = table.column("score").to_numpy()
            violation[rows] = table.column("violation").to_numpy(zero_copy_only=False)
            count_families(table.column("checks"), fired)
            if counts is not None:
                reasons = table.column("reason").drop_null()
                reasons = pc.filter(reasons, pc.match_substring(reasons, "bounds:"))
                if len(reasons):
                    add_tally(counts, bounds.tally(reasons.to_pylist(), plan.schema.columns))
            writer.write(table)
            done += table.num_rows
            advance(table.num_rows)
    return Scored(done, fired, counts)


def count_families(checks: pa.ChunkedArray, counts: dict[str, int]) -> None:
    """Add the rows each family fired on (the ``checks`` column of pass 2) to ``counts``."""
    present = checks.drop_null()
    if len(present) == 0:
        return
    names = pc.list_flatten(pc.split_pattern(present, ","))
    for item in pc.value_counts(names).to_pylist():
        counts[item["values"]] = counts.get(item["values"], 0) + item["counts"]


def add_tally(total: dict, part: dict) -> dict:
    """Add one piece's bounds tally (``{column: {bound: rows}}``) to ``total``."""
    for column, kinds in part.items():
        bucket = total.setdefault(column, {})
        for kind, rows in kinds.items():
            bucket[kind] = bucket.get(kind, 0) + rows
    return total


def sorted_tally(tally: dict | None) -> dict | None:
    """The tally in the order ``BoundsCheck.tally`` gives it (columns, then bounds)."""
    if tally is None:
        return None
    return {c: dict(sorted(v.items())) for c, v in sorted(tally.items())}


# ---------------------------------------------------------------------------- pass 3

@dataclasses.dataclass(frozen=True)
class Layout:
    """The schemas of the pass-3 outputs of one scan (the same for every piece).

    Build it with :meth:`of`.
    """

    fmt: str
    raw: bool
    data: pa.Schema
    scores: pa.Schema
    quarantine: pa.Schema
    families: tuple[str, ...]
    id_column: str | None
    #: Names the soft evidence of suspects no family explained (:meth:`explained`).
    fusion: Fusion | None = dataclasses.field(default=None, compare=False)

    @classmethod
    def of(cls, plan: pipeline.Plan, source: Source, fmt: str) -> "Layout":
        raw = fmt == source.fmt == "csv"
        data = source.raw_schema() if raw else _integers_kept(
            source.arrow_schema, plan.profile, getattr(source, "integer_columns", ()))
        id_col = plan.schema.id_column
        fields = [("row", pa.int64()), ("score", pa.float64()), ("suspect", pa.bool_())]
        fields += [(f, pa.float64()) for f in plan.families]
        if id_col:
            fields.append(data.field(id_col))
        quarantine = data
        for name, kind in zip(QUARANTINE_COLUMNS,
                              (pa.int64(), pa.float64(), pa.string())):
            quarantine = quarantine.append(pa.field(name, kind))
        return cls(fmt, raw, data, pa.schema(fields), quarantine, tuple(plan.families), id_col,
                   plan.fusion)

    def explained(self, scored: pa.Table, suspect: np.ndarray) -> pa.Table:
        """``scored`` (pass-2 rows) with ``checks`` and ``reason`` for every suspect that
        has none (see :meth:`~poisonscan.fusion.Fusion.explain`)."""
        silent = suspect & pc.is_null(scored.column("reason")).to_numpy(zero_copy_only=False)
        if self.fusion is None or not self.families or not silent.any():
            return scored
        at = np.flatnonzero(silent)
        checks, reason = self.fusion.explain(
            {f: scored.column(f).to_numpy()[at] for f in self.families})
        for name, text in (("checks", checks), ("reason", reason)):
            column = pc.replace_with_mask(scored.column(name).combine_chunks(), pa.array(silent),
                                          pa.array(text, type=pa.string()))
            scored = scored.set_column(scored.schema.get_field_index(name), name, column)
        return scored

    def writers(self, scores, clean, quarantine, *, header: bool = True):
        """The three pass-3 writers (``scores``, ``clean``, ``quarantine``) at these paths."""
        return (TableWriter(scores, self.scores, "parquet"),
                TableWriter(clean, self.data, self.fmt, header=header),
                TableWriter(quarantine, self.quarantine, self.fmt, guard_formulas=True,
                            header=header))


def _integers_kept(schema: pa.Schema, profile, integers) -> pa.Schema:
    """``schema`` with the CSV integer columns as int64 where pass 1 proved them so.

    A CSV source reads numbers as float64 (an integer column may hold "3.5" further
    down). Written as Parquet, a column of ``integers`` (its first looks held integers
    only) whose every value pass 1 saw is an integer below ``2**53`` in magnitude (exact
    in float64; ``2**53 + 1`` reads as ``2**53``), with no NaN, infinity or unparseable
    cell, is written as int64 again: the same values, in the type the file had.
    """
    fields = []
    for field in schema:
        stats = profile.columns.get(field.name)
        if (field.name in integers and pa.types.is_float64(field.type)
                and isinstance(stats, NumericStats)
                and stats.fractional == stats.nan == stats.posinf == stats.neginf == 0
                and stats.unparseable == 0
                and -FLOAT_EXACT_INTEGERS < stats.min and stats.max < FLOAT_EXACT_INTEGERS):
            field = field.with_type(pa.int64())
        fields.append(field)
    return pa.schema(fields, metadata=schema.metadata)


@dataclasses.dataclass
class Routed:
    """What pass 3 did with one piece: the suspect rows (for ``suspects.csv``) and counts."""

    suspects: pa.Table | None
    clean: int
    quarantined: int


def route_piece(piece: Source, layout: Layout, suspect: np.ndarray, pass2, writers, *,
                chunk_rows: int, offset: int = 0, advance: Advance = _ignore) -> Routed:
    """Pass 3 over one piece: write its scores, clean and quarantine rows.

    Parameters
    ----------
    suspect : numpy.ndarray of bool
        The decision, indexed by ``row - offset``.
    pass2 : path
        The piece's pass-2 rows (same rows, same order).
    writers : tuple of TableWriter
        ``(scores, clean, quarantine)``, see :meth:`Layout.writers`.
    """
    scores_w, clean_w, quarantine_w = writers
    picked: list[pa.Table] = []
    aligned = _Aligned(pass2, chunk_rows)
    id_col = layout.id_column
    clean_rows = quarantine_rows = 0
    for start, table, _, _ in piece.tables(chunk_rows, raw=layout.raw):
        scored = aligned.take(table.num_rows)
        mask = suspect[start - offset:start - offset + table.num_rows]
        if scored is None or scored.num_rows != table.num_rows or len(mask) != table.num_rows:
            raise InputError("the input changed during the scan")
        ids = [table.column(id_col)] if id_col else []
        scored = layout.explained(scored, mask)
        scores_w.write(pa.table(
            [scored.column("row"), scored.column("score"), pa.array(mask)]
            + [scored.column(f) for f in layout.families] + ids, schema=layout.scores))
        clean, quarantine = pipeline.route(table, scored, mask)
        clean_w.write(clean)
        quarantine_w.write(quarantine)
        clean_rows += clean.num_rows
        quarantine_rows += quarantine.num_rows
        if mask.any():
            picked.append(_suspect_rows(scored, mask, table, id_col))
        advance(table.num_rows)
    return Routed(pa.concat_tables(picked) if picked else None, clean_rows, quarantine_rows)


def rank(picked: list[pa.Table], layout: Layout) -> pa.Table:
    """The suspects, best ranked first, with a 1-based ``rank`` column."""
    picked = [t for t in picked if t is not None]
    if picked:
        table = pa.concat_tables(picked)
    else:
        id_col = layout.id_column
        fields = [("row", pa.int64())] + ([layout.data.field(id_col)] if id_col else []) \
            + [("score", pa.float64()), ("checks", pa.string()), ("reason", pa.string())]
        table = pa.schema(fields).empty_table()
    order = pc.sort_indices(table, sort_keys=[("score", "descending"), ("row", "ascending")])
    table = table.take(order)
    return table.add_column(0, "rank", pa.array(np.arange(1, table.num_rows + 1, dtype=np.int64)))


class _Aligned:
    """Read pass-2 rows back in blocks of exactly the sizes asked for."""

    def __init__(self, path, batch_rows: int):
        from ..io.storage import is_url, open_input
        source = open_input(path) if is_url(str(path)) else path
        self._batches = pq.ParquetFile(source, pre_buffer=False).iter_batches(
            batch_size=batch_rows)
        self._pending: pa.Table | None = None

    def take(self, n: int) -> pa.Table | None:
        parts, have = [], 0
        while have < n:
            if self._pending is None or self._pending.num_rows == 0:
                batch = next(self._batches, None)
                if batch is None:
                    break
                self._pending = pa.Table.from_batches([batch])
            part = self._pending.slice(0, n - have)
            self._pending = self._pending.slice(part.num_rows)
            parts.append(part)
            have += part.num_rows
        return pa.concat_tables(parts) if parts else None


def _suspect_rows(scored: pa.Table, mask: np.ndarray, table: pa.Table,
                  id_col: str | None) -> pa.Table:
    keep = pa.array(mask)
    columns = {"row": scored.column("row").filter(keep)}
    if id_col:
        columns[id_col] = table.column(id_col).filter(keep)
    for name in ("score", "checks", "reason"):
        columns[name] = scored.column(name).filter(keep)
    return pa.table(columns)

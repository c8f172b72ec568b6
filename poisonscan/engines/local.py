"""The local engine: stream the passes over the source in this process."""

from __future__ import annotations

import time
from typing import Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .. import pipeline
from ..checks.base import Check
from ..config import ScanConfig
from ..errors import InputError, PoisonscanError
from ..fusion import decide
from ..io.schema import ScanSchema
from ..io.sinks import OutputDir, TableWriter
from ..io.sources import Source

#: ``progress(stage, rows_done, rows_total_or_None)``
Progress = Callable[[str, int, "int | None"], None]
PASS2_FILE = ".pass2.parquet"


def _no_progress(stage: str, done: int, total: int | None) -> None:
    return None


class ScanRun:
    """One scan on the local engine; :meth:`run` returns what the report needs.

    Parameters
    ----------
    source : Source
        The opened input.
    schema : ScanSchema
        Roles and kinds of its columns.
    checks : list of Check
        Unfitted checks.
    config : ScanConfig
        The effective configuration.
    out : OutputDir
        Entered output directory (files go to its staging area).
    fmt : {"csv", "parquet"}
        Format of the clean and quarantine files.
    progress : callable, optional
        Called after every chunk of every pass.
    """

    def __init__(self, source: Source, schema: ScanSchema, checks: Sequence[Check],
                 config: ScanConfig, out: OutputDir, fmt: str, progress: Progress | None = None):
        self.source, self.schema, self.checks = source, schema, list(checks)
        self.config, self.out, self.fmt = config, out, fmt
        self.progress = progress or _no_progress
        self.timings: dict[str, float] = {}

    def _timed(self, name: str, started: float) -> None:
        self.timings[name] = round(time.perf_counter() - started, 3)

    def run(self) -> dict:
        cfg = self.config
        t = time.perf_counter()
        state = self.pass_one()
        self._timed("pass1", t)
        t = time.perf_counter()
        plan = pipeline.fit(state, self.checks)
        self._timed("fit", t)
        t = time.perf_counter()
        score, violation, fired = self.pass_two(plan)
        self._timed("pass2", t)
        suspect, decision = decide(score, violation, max_suspects=cfg.max_suspects,
                                   contamination=cfg.contamination)
        t = time.perf_counter()
        routed = self.pass_three(plan, suspect)
        self._timed("pass3", t)
        return {"plan": plan, "decision": decision, "fired": fired, **routed}

    # ---------------------------------------------------------------------------- passes
    def chunks(self):
        return self.source.chunks(self.config.chunk_rows, self.schema)

    def pass_one(self) -> pipeline.PassOneState:
        state, done = None, 0
        self.progress("pass 1/3: profile", 0, None)
        for chunk in self.chunks():
            part = pipeline.summarize(chunk, self.checks, sample_rows=self.config.sample_rows,
                                      seed=self.config.seed)
            state = pipeline.merge(state, part, self.checks)
            done += len(chunk)
            self.progress("pass 1/3: profile", done, None)
        if state is None or state.profile.n_rows == 0:
            raise InputError("the input has no data rows", path=", ".join(self.source.names))
        return state

    def pass_two(self, plan: pipeline.Plan):
        n = plan.profile.n_rows
        score = np.zeros(n)
        violation = np.zeros(n, dtype=bool)
        fired: dict[str, int] = {f: 0 for f in plan.families}
        done = 0
        self.progress("pass 2/3: score", 0, n)
        with TableWriter(self.out.file(PASS2_FILE), plan.pass2_schema(), "parquet") as writer:
            for chunk in self.chunks():
                table = plan.score(chunk)
                rows = chunk.rows
                if rows[-1] >= n:
                    raise InputError("the input changed during the scan (more rows than in pass 1)")
                score[rows] = table.column("score").to_numpy()
                violation[rows] = table.column("violation").to_numpy(zero_copy_only=False)
                _count_families(table.column("checks"), fired)
                writer.write(table)
                done += len(chunk)
                self.progress("pass 2/3: score", done, n)
        if done != n:
            raise InputError("the input changed during the scan (fewer rows than in pass 1)")
        return score, violation, fired

    def pass_three(self, plan: pipeline.Plan, suspect: np.ndarray) -> dict:
        out, cfg, n = self.out, self.config, len(suspect)
        raw = self.fmt == self.source.fmt == "csv"
        data_schema = self.source.raw_schema() if raw else self.source.arrow_schema
        id_col = self.schema.id_column
        scores_schema = _scores_schema(plan.families, data_schema, id_col)
        quarantine_schema = data_schema.append(pa.field("_row", pa.int64())) \
            .append(pa.field("_score", pa.float64())).append(pa.field("_reason", pa.string()))
        picked: list[pa.Table] = []
        aligned = _Aligned(out.file(PASS2_FILE), cfg.chunk_rows)
        self.progress("pass 3/3: write", 0, n)
        with TableWriter(out.file("scores.parquet"), scores_schema, "parquet") as scores_w, \
                TableWriter(out.file(f"clean.{self.fmt}"), data_schema, self.fmt) as clean_w, \
                TableWriter(out.file(f"quarantine.{self.fmt}"), quarantine_schema, self.fmt,
                            guard_formulas=True) as quarantine_w:
            for start, table, _, _ in self.source.tables(cfg.chunk_rows, raw=raw):
                scored = aligned.take(table.num_rows)
                mask = suspect[start:start + table.num_rows]
                if scored.num_rows != table.num_rows or len(mask) != table.num_rows:
                    raise InputError("the input changed during the scan")
                ids = [table.column(id_col)] if id_col else []
                scores_w.write(pa.table(
                    [scored.column("row"), scored.column("score"), pa.array(mask)]
                    + [scored.column(f) for f in plan.families] + ids, schema=scores_schema))
                clean, quarantine = pipeline.route(table, scored, mask)
                clean_w.write(clean)
                quarantine_w.write(quarantine)
                if mask.any():
                    picked.append(_suspect_rows(scored, mask, table, id_col))
                self.progress("pass 3/3: write", start + table.num_rows, n)
        if clean_w.rows + quarantine_w.rows != n:
            raise PoisonscanError(f"internal error: {clean_w.rows} clean + {quarantine_w.rows} "
                                  f"quarantined rows != {n} input rows")
        suspects = _rank(picked, id_col, data_schema)
        return {"suspects": suspects, "rows_clean": clean_w.rows,
                "rows_quarantined": quarantine_w.rows}


# -------------------------------------------------------------------------------- helpers

class _Aligned:
    """Read the pass-2 file back in blocks of exactly the sizes asked for."""

    def __init__(self, path, batch_rows: int):
        self._batches = pq.ParquetFile(path, pre_buffer=False).iter_batches(batch_size=batch_rows)
        self._pending: pa.Table | None = None

    def take(self, n: int) -> pa.Table:
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


def _scores_schema(families, data_schema: pa.Schema, id_col: str | None) -> pa.Schema:
    fields = [("row", pa.int64()), ("score", pa.float64()), ("suspect", pa.bool_())]
    fields += [(f, pa.float64()) for f in families]
    if id_col:
        fields.append(data_schema.field(id_col))
    return pa.schema(fields)


def _suspect_rows(scored: pa.Table, mask: np.ndarray, table: pa.Table,
                  id_col: str | None) -> pa.Table:
    keep = pa.array(mask)
    columns = {"row": scored.column("row").filter(keep)}
    if id_col:
        columns[id_col] = table.column(id_col).filter(keep)
    for name in ("score", "checks", "reason"):
        columns[name] = scored.column(name).filter(keep)
    return pa.table(columns)


def _rank(picked: list[pa.Table], id_col: str | None, data_schema: pa.Schema) -> pa.Table:
    """The suspects, best ranked first, with a 1-based ``rank`` column."""
    if picked:
        table = pa.concat_tables(picked)
    else:
        fields = [("row", pa.int64())] + ([data_schema.field(id_col)] if id_col else []) \
            + [("score", pa.float64()), ("checks", pa.string()), ("reason", pa.string())]
        table = pa.schema(fields).empty_table()
    order = pc.sort_indices(table, sort_keys=[("score", "descending"), ("row", "ascending")])
    table = table.take(order)
    return table.add_column(0, "rank", pa.array(np.arange(1, table.num_rows + 1, dtype=np.int64)))


def _count_families(checks: pa.ChunkedArray, counts: dict[str, int]) -> None:
    present = checks.drop_null()
    if len(present) == 0:
        return
    names = pc.list_flatten(pc.split_pattern(present, ","))
    for item in pc.value_counts(names).to_pylist():
        counts[item["values"]] = counts.get(item["values"], 0) + item["counts"]

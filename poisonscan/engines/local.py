"""The local engine: stream the passes over the source in this process.

The work of each pass on a piece of the input lives in :mod:`.pieces`; here the piece
is the whole source. Pass 1 summarises its chunks in threads, one per core, and merges
the summaries in input order. Pass 2 (most of a scan's time) scores its chunks in threads,
one per core, each chunk's native code on one thread; or, with ``workers`` above one, in that
many processes (:mod:`.pool`). Either way the rows are written here in input order, so
the outputs are byte-identical to one thread's. :class:`ScanRun` is also the skeleton of
the other engines (:mod:`.dask` overrides the three passes).
"""

from __future__ import annotations

import contextlib
import time
from typing import Sequence

import numpy as np

from .. import pipeline
from ..checks.base import Check
from ..config import ScanConfig
from ..errors import PoisonscanError
from ..fusion import decide
from ..io.schema import ScanSchema
from ..io.sinks import BackgroundWriter, OutputDir
from ..io.sources import Source
from ..threads import ordered_map, release_free_memory, usable_cores
from .pieces import PASS2_FILE, Layout, Progress, profile_piece, rank, require_rows, \
    route_piece, score_piece
from .pool import ScorePool

__all__ = ["PASS2_FILE", "Progress", "ScanRun"]


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
    exempt : numpy.ndarray of int64, optional
        Rows a reviewer kept (``--allowlist``): never quarantined
        (:func:`poisonscan.review.exempt_rows`).
    """

    def __init__(self, source: Source, schema: ScanSchema, checks: Sequence[Check],
                 config: ScanConfig, out: OutputDir, fmt: str, progress: Progress | None = None,
                 *, exempt: np.ndarray | None = None):
        self.source, self.schema, self.checks = source, schema, list(checks)
        self.config, self.out, self.fmt = config, out, fmt
        self.progress = progress or _no_progress
        self.exempt = exempt
        self.timings: dict[str, float] = {}
        #: Seconds each family spent scoring in worker processes (timed with ``verbose``).
        self.check_seconds: dict[str, float] = {}

    def _timed(self, name: str, started: float) -> None:
        self.timings[name] = round(time.perf_counter() - started, 3)

    def run(self) -> dict:
        cfg = self.config
        t = time.perf_counter()
        state = self.pass_one()
        self._timed("pass1", t)
        t = time.perf_counter()
        plan = self.fit(state)
        del state  # the pass-1 states (e.g. duplicate fingerprints) are not needed any more
        release_free_memory()  # what the fit's threads freed, before pass 2 allocates
        self._timed("fit", t)
        t = time.perf_counter()
        score, violation, fired = self.pass_two(plan)
        self._timed("pass2", t)
        suspect, decision = decide(score, violation, max_suspects=cfg.max_suspects,
                                   contamination=cfg.contamination, fdr=cfg.fdr,
                                   families=plan.fusion.multiplicity_)
        if self.exempt is not None:
            from ..review import exempt_rows
            suspect, decision = exempt_rows(suspect, decision, score, self.exempt)
        t = time.perf_counter()
        routed = self.pass_three(plan, suspect)
        self._timed("pass3", t)
        return {"plan": plan, "decision": decision, "fired": fired, **routed}

    def _advance(self, stage: str, total: int | None):
        """A callback adding finished rows to ``stage``'s progress."""
        done = [0]
        self.progress(stage, 0, total)

        def advance(rows: int) -> None:
            done[0] += rows
            self.progress(stage, done[0], total)
        return advance

    # ---------------------------------------------------------------------------- passes
    def chunks(self):
        return self.source.chunks(self.config.chunk_rows, self.schema)

    def pass_one(self) -> pipeline.PassOneState:
        cfg = self.config
        threads = usable_cores()

        def summaries(fn, chunks):  # chunks side by side, each on one native thread
            return ordered_map(fn, chunks, threads)

        # chunks of 1/threads the size: the chunks in flight hold what one would
        state = profile_piece(self.source, self.checks,
                              chunk_rows=-(-cfg.chunk_rows // threads),
                              sample_rows=cfg.sample_rows, seed=cfg.seed, schema=self.schema,
                              advance=self._advance("pass 1/3: profile", None),
                              mapper=summaries if threads > 1 else None)
        return require_rows(state, self.source.names)

    def fit(self, state: pipeline.PassOneState) -> pipeline.Plan:
        return pipeline.fit(state, self.checks, fusion_rule=self.config.fusion,
                            family_weights=self.config.family_weights)

    def workers(self, n_rows: int) -> int:
        """Processes pass 2 runs in: ``config.workers``, never more than there are chunks."""
        cfg = self.config
        return max(1, min(cfg.workers, -(-n_rows // cfg.chunk_rows)))

    def threads(self, n_rows: int) -> int:
        """Threads pass 2 scores chunks in, in one process: the usable cores, never more
        than there are chunks."""
        return max(1, min(usable_cores(), -(-n_rows // self.config.chunk_rows)))

    def pass_two(self, plan: pipeline.Plan):
        n = plan.profile.n_rows
        score = np.zeros(n)
        violation = np.zeros(n, dtype=bool)
        workers = self.workers(n)
        threads = self.threads(n) if workers == 1 else 1
        with contextlib.ExitStack() as stack:
            scorer = None
            if workers > 1:
                timed = any(callable(vars(c).get("score")) for c in plan.checks)
                pool = stack.enter_context(ScorePool(plan, workers, timed=timed))
                scorer = pool.map
            elif threads > 1:  # whole chunks side by side, each on one native thread
                def scorer(chunks):
                    return ordered_map(plan.score, chunks, threads)
            # a worker scores chunks 1/workers the size (scores do not depend on the
            # chunking): all workers together hold about what one process would
            chunk_rows = -(-self.config.chunk_rows // max(workers, threads))
            scored = score_piece(self.source, plan, chunk_rows=chunk_rows,
                                 path=self.out.file(PASS2_FILE), score=score,
                                 violation=violation, scorer=scorer,
                                 advance=self._advance("pass 2/3: score", n))
        if workers > 1:
            self.timings["pool_startup"] = pool.startup
            self.check_seconds = dict(pool.seconds)
        if scored.rows != n:
            from ..errors import InputError
            raise InputError("the input changed during the scan (fewer rows than in pass 1)")
        return score, violation, scored.fired

    def pass_three(self, plan: pipeline.Plan, suspect: np.ndarray) -> dict:
        out, n = self.out, len(suspect)
        layout = Layout.of(plan, self.source, self.fmt)
        # each file written in a thread of its own, while this one reads and routes
        writers = [BackgroundWriter(w) for w in layout.writers(
            out.file("scores.parquet"), out.file(f"clean.{self.fmt}"),
            out.file(f"quarantine.{self.fmt}"))]
        try:
            routed = route_piece(self.source, layout, suspect, out.file(PASS2_FILE), writers,
                                 chunk_rows=self.config.chunk_rows,
                                 advance=self._advance("pass 3/3: write", n))
        finally:
            with contextlib.ExitStack() as closing:  # every writer closed, even if one fails
                for writer in reversed(writers):
                    closing.callback(writer.close)
        return self._routed(layout, n, [routed.suspects], routed.clean, routed.quarantined)

    @staticmethod
    def _routed(layout: Layout, n: int, picked, clean: int, quarantined: int) -> dict:
        if clean + quarantined != n:
            raise PoisonscanError(f"internal error: {clean} clean + {quarantined} "
                                  f"quarantined rows != {n} input rows")
        return {"suspects": rank(picked, layout), "rows_clean": clean,
                "rows_quarantined": quarantined}

"""The passes of a scan as pure, engine-agnostic functions.

An engine (:mod:`poisonscan.engines`) decides where and in which order these run:

* :func:`summarize` / :func:`merge` — pass 1, per chunk and combined;
* :func:`fit` — freezes everything pass 2 applies into a :class:`Plan`;
* :meth:`Plan.score` — pass 2, a pure function of (plan, chunk);
* :func:`route` — pass 3, splits a block of rows into clean and quarantine using the
  scores of pass 2.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pyarrow as pa

from .checks.base import Check, CheckScores
from .fusion import Fusion
from .io.chunk import Chunk
from .io.schema import ScanSchema
from .io.sinks import QUARANTINE_COLUMNS
from .profiling import Profile
from .threads import map_single_threaded, usable_cores

#: Fewest sample rows per block scored side by side at fit time.
MIN_BLOCK_ROWS = 5_000

#: The methods of the check contract (:class:`~poisonscan.checks.base.Check`).
CONTRACT_METHODS = ("summarize", "merge", "fit", "score")


def timed(method: Callable, name: str, seconds: dict[str, float]) -> Callable:
    """``method`` wrapped so that the seconds of every call are added to ``seconds[name]``
    (per-family timings with ``verbose``, in this process and in the local engine's
    worker processes; calls in several threads add up their own seconds)."""
    def wrapper(*args, **kwargs):
        begun = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            spent = time.perf_counter() - begun
            with _TIMED_LOCK:
                seconds[name] = seconds.get(name, 0.0) + spent
    return wrapper


_TIMED_LOCK = threading.Lock()


#: Columns of the intermediate pass-2 file, before the family columns.
PASS2_HEAD = (("row", pa.int64()), ("score", pa.float64()), ("violation", pa.bool_()))
PASS2_TAIL = (("checks", pa.string()), ("reason", pa.string()))


@dataclasses.dataclass(frozen=True)
class PassOneState:
    """Merged pass-1 state: the shared profile and each check's own state."""

    profile: Profile
    states: dict[str, Any]


def summarize(chunk: Chunk, checks: Sequence[Check], *, sample_rows: int,
              seed: int) -> PassOneState:
    """Pass 1 on one chunk."""
    return PassOneState(Profile.of(chunk, sample_rows=sample_rows, seed=seed),
                        {c.name: c.summarize(chunk) for c in checks})


def merge(a: PassOneState | None, b: PassOneState, checks: Sequence[Check]) -> PassOneState:
    """Combine two pass-1 states (``a`` may be ``None``: the empty state)."""
    if a is None:
        return b
    return PassOneState(a.profile.merge(b.profile),
                        {c.name: c.merge(a.states[c.name], b.states[c.name]) for c in checks})


@dataclasses.dataclass
class Plan:
    """Everything pass 2 applies, frozen by :func:`fit`."""

    schema: ScanSchema
    checks: list[Check]
    fusion: Fusion
    profile: Profile

    @property
    def families(self) -> list[str]:
        return [c.name for c in self.checks]

    def pass2_schema(self) -> pa.Schema:
        return pa.schema(list(PASS2_HEAD) + [(f, pa.float64()) for f in self.families]
                         + list(PASS2_TAIL))

    def score(self, chunk: Chunk) -> pa.Table:
        """Pass 2 on one chunk: the per-row table written to the intermediate file."""
        results = {c.name: c.score(chunk) for c in self.checks}
        score, violation, checks, reason = self.fusion.fuse(results)
        # "+ 0.0" turns -0.0 into 0.0: the sign of a zero must not depend on the chunking
        columns = [chunk.rows, score + 0.0, violation] \
            + [results[f].scores + 0.0 for f in self.families] + [checks, reason]
        return pa.table([pa.array(c, type=t) for c, t in
                         zip(columns, self.pass2_schema().types)], schema=self.pass2_schema())


def fit(state: PassOneState, checks: Sequence[Check], *, fusion_rule: str = "min",
        family_weights: Mapping[str, float] | None = None) -> Plan:
    """Fit every check on the merged pass-1 state, score the row sample with them, then
    calibrate the fusion on the sample's scores (``fusion_rule`` and ``family_weights``:
    see :class:`~poisonscan.fusion.Fusion`).

    Both steps run in threads, one per core, each with its native code (OpenMP, BLAS) on
    one thread (:func:`~poisonscan.threads.map_single_threaded`), so that a fitted check
    depends neither on the core count nor on the other checks:

    * the checks are fitted side by side, those that spread their fit over threads of
      their own (:attr:`~poisonscan.checks.base.Check.spreads_fit`: the ``labels``
      family's cross-validation) first; no more checks are fitted at once than there are
      cores, which bounds the memory their fits hold together;
    * the sample is scored in one block of rows per core, each by every check (a row's
      score does not depend on the block it is scored in).
    """
    profile = state.profile
    first = sorted(checks, key=lambda check: not check.spreads_fit)  # stable
    map_single_threaded(lambda check: check.fit(state.states[check.name], profile), first)
    sample = profile.sample_chunk()
    n_blocks = max(1, min(usable_cores(), len(sample) // MIN_BLOCK_ROWS))
    if n_blocks == 1:
        blocks = [sample]  # with the conversions the fits cached on it
    else:
        edges = np.linspace(0, len(sample), n_blocks + 1).astype(np.int64)
        blocks = [sample.slice(a, b) for a, b in zip(edges[:-1], edges[1:])]
    parts = map_single_threaded(lambda block: [c.score(block) for c in checks], blocks)
    fusion = Fusion(rule=fusion_rule, weights=family_weights).fit(
        {c.name: CheckScores.concatenate([part[i] for part in parts])
         for i, c in enumerate(checks)})
    return Plan(profile.schema, list(checks), fusion, profile)


def route(table: pa.Table, scored: pa.Table, suspect: np.ndarray
          ) -> tuple[pa.Table, pa.Table]:
    """Pass 3 on one block: ``(clean, quarantine)`` rows of ``table``.

    Parameters
    ----------
    table : pyarrow.Table
        Original rows (as they will be written).
    scored : pyarrow.Table
        The pass-2 rows for the same row ids, in the same order.
    suspect : numpy.ndarray of bool
        The decision for these rows.

    Returns
    -------
    clean : pyarrow.Table
        Rows not suspect, original columns only.
    quarantine : pyarrow.Table
        Suspect rows with ``_row``, ``_score`` and ``_reason`` appended.
    """
    mask = pa.array(suspect)
    clean = table.filter(pa.array(~suspect))
    quarantine = table.filter(mask)
    picked = scored.filter(mask)
    for name, source in zip(QUARANTINE_COLUMNS, ("row", "score", "reason")):
        quarantine = quarantine.append_column(name, picked.column(source))
    return clean, quarantine

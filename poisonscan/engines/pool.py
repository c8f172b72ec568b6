"""Pass 2 of the local engine on several cores: chunks scored in worker processes.

:class:`ScorePool` is a context manager around a :class:`concurrent.futures.ProcessPoolExecutor`
(``spawn`` start method: forking a process that holds BLAS/OpenMP thread pools is unsafe).

* **The plan goes once to each worker.** It is pickled once, here, and unpickled by every
  worker's initializer (the same objects the Dask engine scatters: a plan is picklable,
  spilled duplicate runs carry their data). Each worker limits its BLAS/OpenMP threads to
  its share of the cores, so the pool does not oversubscribe them.
* **Chunks are read here** (any source: one CSV file cannot be split among workers),
  sent to the workers, and their pass-2 tables come back **in input order**
  (:meth:`ScorePool.map`): the caller writes exactly what one process would. At most
  ``in_flight`` chunks are sent and not yet consumed, which bounds memory.
* **Errors** raised while scoring (typed :mod:`poisonscan.errors`) are re-raised here as
  they were raised there; a worker that dies is an internal error.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import copy
import dataclasses
import multiprocessing
import os
import pickle
import time
from typing import Iterable, Iterator

import pyarrow as pa

from .. import pipeline
from ..errors import PoisonscanError

#: Methods a caller may have wrapped on a check instance (e.g. per-check timings with
#: ``verbose``); instance-level wrappers are not sent to the workers.
CONTRACT_METHODS = ("summarize", "merge", "fit", "score")


def usable_cores() -> int:
    """Cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def shippable(plan: pipeline.Plan) -> pipeline.Plan:
    """``plan`` with each check's instance-level wrappers of the contract methods dropped
    (a shallow copy per check: fitted state is shared, not copied)."""
    checks = []
    for check in plan.checks:
        wrapped = [m for m in CONTRACT_METHODS if callable(vars(check).get(m))]
        if wrapped:
            check = copy.copy(check)
            for method in wrapped:
                del vars(check)[method]
        checks.append(check)
    return dataclasses.replace(plan, checks=checks)


class ScorePool:
    """Score pass-2 chunks of one plan in ``workers`` processes.

    Parameters
    ----------
    plan : pipeline.Plan
        The fitted plan (sent once to every worker).
    workers : int
        Worker processes (>= 2; one process needs no pool).
    in_flight : int, optional
        Chunks sent and not yet consumed, at most (default ``2 * workers``).
    timed : bool
        Time each check's ``score`` in the workers; the seconds per family are summed
        into :attr:`seconds`.

    Attributes
    ----------
    seconds : dict of str to float
        Scoring seconds per family in the workers (with ``timed``).
    startup : float
        Seconds from creating the pool until its slowest worker was ready to score
        (process start, imports, unpickling the plan).
    """

    def __init__(self, plan: pipeline.Plan, workers: int, *, in_flight: int | None = None,
                 timed: bool = False):
        if workers < 2:
            raise ValueError("a pool needs at least two workers")
        self.plan, self.workers = plan, workers
        self.in_flight = in_flight or 2 * workers
        self.timed = timed
        self.seconds: dict[str, float] = {}
        self.startup = 0.0
        self._executor: cf.ProcessPoolExecutor | None = None

    def __enter__(self) -> "ScorePool":
        blob = pickle.dumps(shippable(self.plan), protocol=pickle.HIGHEST_PROTOCOL)
        threads = max(1, usable_cores() // self.workers)
        self._executor = cf.ProcessPoolExecutor(
            max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker, initargs=(blob, threads, self.timed, time.time()))
        return self

    def __exit__(self, *exc) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=exc[0] is not None)

    def map(self, chunks: Iterable) -> Iterator[pa.Table]:
        """The pass-2 table of every chunk (:meth:`pipeline.Plan.score`), in input order.

        Raises
        ------
        PoisonscanError
            A worker process died (exit code 3); errors raised while scoring are
            re-raised as they were.
        """
        pending: collections.deque = collections.deque()
        chunks = iter(chunks)
        while True:
            try:
                while len(pending) < self.in_flight:
                    chunk = next(chunks, None)
                    if chunk is None:
                        break
                    pending.append(self._executor.submit(_score_chunk, chunk))
                if not pending:
                    return
                table, seconds, ready = pending.popleft().result()
            except cf.process.BrokenProcessPool as exc:
                raise PoisonscanError(f"internal error: a worker process of the scan ended "
                                      f"unexpectedly ({exc})") from None
            if ready is not None:  # a worker's first chunk
                self.startup = max(self.startup, round(ready, 3))
            for family, spent in seconds.items():
                self.seconds[family] = self.seconds.get(family, 0.0) + spent
            yield table


# ------------------------------------------------------------------ in the workers

_PLAN: pipeline.Plan | None = None
_SECONDS: dict[str, float] | None = None
#: Seconds from the pool's creation to this worker being ready (sent with its first chunk).
_READY: float | None = None


def _start_worker(blob: bytes, threads: int, timed: bool, created: float) -> None:
    """Initializer: unpickle the plan, limit native thread pools, wrap for timing."""
    global _PLAN, _SECONDS, _READY
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads)  # kept for the life of the process
    _PLAN = pickle.loads(blob)
    if timed:
        _SECONDS = {}
        for check in _PLAN.checks:
            check.score = _timed(check.score, check.name)
    _READY = time.time() - created


def _timed(method, name: str):
    def timed(*args, **kwargs):
        begun = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            _SECONDS[name] = _SECONDS.get(name, 0.0) + time.perf_counter() - begun
    return timed


def _score_chunk(chunk) -> tuple[pa.Table, dict[str, float], float | None]:
    global _READY
    table = _PLAN.score(chunk)
    ready, _READY = _READY, None
    if _SECONDS is None:
        return table, {}, ready
    seconds = dict(_SECONDS)
    _SECONDS.clear()
    return table, seconds, ready

"""Pass 2 of the local engine on several cores: chunks scored in worker processes.

:class:`ScorePool` is a context manager around a :class:`concurrent.futures.ProcessPoolExecutor`
(``spawn`` start method: forking a process that holds BLAS/OpenMP thread pools is unsafe)
of ``workers - 1`` processes; the calling process scores chunks too.

* **The plan goes once to each worker**, as the argument of its initializer (serialised
  by :mod:`multiprocessing` between our own processes, like the plan the Dask engine
  scatters: a plan is picklable, spilled duplicate runs carry their data). Each worker
  limits its BLAS/OpenMP threads to its share of the cores, so the pool does not
  oversubscribe them.
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
import contextlib
import copy
import dataclasses
import multiprocessing
import time
from typing import Iterable, Iterator

import pyarrow as pa

from .. import pipeline
from ..errors import PoisonscanError
from ..threads import usable_cores

def shippable(plan: pipeline.Plan) -> pipeline.Plan:
    """``plan`` with each check's instance-level wrappers of the contract methods dropped
    (a shallow copy per check: fitted state is shared, not copied)."""
    checks = []
    for check in plan.checks:
        # methods a caller wrapped on the instance (per-check timings with ``verbose``)
        wrapped = [m for m in pipeline.CONTRACT_METHODS if callable(vars(check).get(m))]
        if wrapped:
            check = copy.copy(check)
            for method in wrapped:
                del vars(check)[method]
        checks.append(check)
    return dataclasses.replace(plan, checks=checks)


class ScorePool:
    """Score pass-2 chunks of one plan in ``workers`` processes: this one and
    ``workers - 1`` spawned ones.

    This process scores a chunk itself whenever the oldest chunk sent out is not back
    yet (so it works while the workers start, and a slow worker does not stall the
    others); one process fewer is started, which saves its memory (imports, a copy of
    the plan). While the pool runs, native thread pools here are limited to this
    process's share of the cores, like the workers'.

    Parameters
    ----------
    plan : pipeline.Plan
        The fitted plan (sent once to every worker).
    workers : int
        Processes scoring, this one included (>= 2; one process needs no pool).
    in_flight : int, optional
        Chunks sent to the workers and not yet consumed, at most (default
        ``2 * (workers - 1)``); chunks scored here wait at most as many more.
    timed : bool
        Time each check's ``score`` in the workers; the seconds per family are summed
        into :attr:`seconds` (this process's calls are timed by whoever wrapped them).

    Attributes
    ----------
    seconds : dict of str to float
        Scoring seconds per family in the workers (with ``timed``).
    startup : float
        Seconds from creating the pool until its slowest worker was ready to score
        (process start, imports, unpickling the plan); this process scored meanwhile.
    local : int
        Chunks scored in this process.
    """

    def __init__(self, plan: pipeline.Plan, workers: int, *, in_flight: int | None = None,
                 timed: bool = False):
        if workers < 2:
            raise ValueError("a pool needs at least two workers")
        self.plan, self.workers = plan, workers
        self.in_flight = in_flight or 2 * (workers - 1)
        self.timed = timed
        self.seconds: dict[str, float] = {}
        self.startup = 0.0
        self.local = 0
        self._executor: cf.ProcessPoolExecutor | None = None
        self._stack: contextlib.ExitStack | None = None

    def __enter__(self) -> "ScorePool":
        from threadpoolctl import threadpool_limits

        threads = max(1, usable_cores() // self.workers)
        with contextlib.ExitStack() as stack:
            stack.enter_context(threadpool_limits(limits=threads))
            self._executor = stack.enter_context(cf.ProcessPoolExecutor(
                max_workers=self.workers - 1, mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker,
                initargs=(shippable(self.plan), threads, self.timed, time.time())))
            self._stack = stack.pop_all()
        return self

    def __exit__(self, *exc) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=exc[0] is not None)
        stack, self._stack = self._stack, None
        if stack is not None:
            stack.close()

    def map(self, chunks: Iterable) -> Iterator[pa.Table]:
        """The pass-2 table of every chunk (:meth:`pipeline.Plan.score`), in input order.

        Raises
        ------
        PoisonscanError
            A worker process died (exit code 3); errors raised while scoring are
            re-raised as they were, wherever they were raised.
        """
        pending: collections.deque = collections.deque()  # futures and tables, in order
        chunks = iter(chunks)
        sent = 0  # futures in pending
        exhausted = False
        while True:
            try:
                while not exhausted and sent < self.in_flight:
                    chunk = next(chunks, None)
                    if chunk is None:
                        exhausted = True
                        break
                    pending.append(self._executor.submit(_score_chunk, chunk))
                    sent += 1
                if not pending:
                    return
                head = pending[0]
                if isinstance(head, cf.Future) and not head.done() and not exhausted \
                        and len(pending) < 2 * self.in_flight:
                    chunk = next(chunks, None)  # work here while the workers do
                    if chunk is None:
                        exhausted = True
                    else:
                        pending.append(self.plan.score(chunk))
                        self.local += 1
                    continue
                item = pending.popleft()
                if not isinstance(item, cf.Future):
                    yield item
                    continue
                sent -= 1
                table, seconds, ready = item.result()
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


def _start_worker(plan: pipeline.Plan, threads: int, timed: bool, created: float) -> None:
    """Initializer: keep the plan, limit native thread pools, wrap for timing."""
    global _PLAN, _SECONDS, _READY
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads)  # kept for the life of the process
    _PLAN = plan
    if timed:
        _SECONDS = {}
        for check in _PLAN.checks:
            check.score = pipeline.timed(check.score, check.name, _SECONDS)
    _READY = time.time() - created


def _score_chunk(chunk) -> tuple[pa.Table, dict[str, float], float | None]:
    global _READY
    table = _PLAN.score(chunk)
    ready, _READY = _READY, None
    if _SECONDS is None:
        return table, {}, ready
    seconds = dict(_SECONDS)
    _SECONDS.clear()
    return table, seconds, ready

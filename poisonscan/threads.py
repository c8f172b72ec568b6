"""Cores, work shared among threads that each run their native code on one thread, and
the memory such threads leave behind.

The classifiers of the ``labels`` family are fitted with OpenMP and BLAS limited to one
thread, so that a fitted model does not depend on the machine's core count (parallel sums
round differently with more threads). Several such fits can still share the cores: each
runs in its own Python thread, and scikit-learn's boosting releases the GIL while it
builds histograms and finds splits (on two cores, four boosting fits of 16,000 rows took
6.5 s side by side against 10.4 s one after the other).
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import ctypes
import os
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def usable_cores() -> int:
    """Cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def native_threads() -> int:
    """Threads a native parallel section started here may use: OpenMP's limit in force
    for the calling thread (as :mod:`threadpoolctl` sets it: one in the pool's workers,
    all cores in a one-process scan), at most the usable cores."""
    limits = [lib.get_num_threads() for lib in _openmp_runtimes()]
    return max(1, min([usable_cores()] + limits))


#: The OpenMP runtimes loaded, as :mod:`threadpoolctl` controllers (found once).
_OPENMP: list = []


def _openmp_runtimes() -> list:
    """The loaded OpenMP runtimes' controllers.

    Finding them walks every loaded library (about 4 ms, too slow for every chunk), so
    they are found once; until one is loaded (scikit-learn loads its runtime on import),
    they are looked for at every call.
    """
    if not _OPENMP:
        from threadpoolctl import ThreadpoolController

        found = ThreadpoolController().select(user_api="openmp").lib_controllers
        _OPENMP[:] = found  # one assignment: two threads finding them at once agree
    return _OPENMP


def lbfgs_reentrant() -> bool:
    """Whether SciPy's L-BFGS-B (behind scikit-learn's logistic regression) may run in two
    threads at once: from SciPy 1.15, whose L-BFGS-B is no longer the Fortran code with
    saved state."""
    import scipy

    try:
        major, minor = (int(part) for part in scipy.__version__.split(".")[:2])
    except ValueError:  # an unusual version string: assume the old code
        return False
    return (major, minor) >= (1, 15)


def single_threaded():
    """A context in which OpenMP and BLAS run on one thread (threadpoolctl).

    OpenMP's thread count is a property of the calling thread: a thread started while
    the caller holds this context does not inherit it, and must enter its own.
    """
    from threadpoolctl import threadpool_limits
    return threadpool_limits(limits=1)


def map_single_threaded(fn: Callable[[T], R], items: Iterable[T],
                        threads: int | None = None) -> list[R]:
    """``[fn(item) for item in items]``, the calls spread over ``threads`` Python threads
    (default: the usable cores), each call's native code on one thread.

    The results are in the order of ``items`` and equal to the sequential ones whenever
    ``fn`` is deterministic on one thread. ``fn`` must not call code that is unsafe to
    run in two threads at once.
    """
    items = list(items)
    threads = min(threads or usable_cores(), len(items))

    def call(item: T) -> R:
        with single_threaded():
            return fn(item)

    if threads <= 1:
        return [call(item) for item in items]
    # BLAS's thread count is process-wide: hold it at one until every call has returned
    # (a call's context, leaving, restores the value it found: one)
    with single_threaded(), cf.ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(call, items))


def release_free_memory() -> None:
    """Give the memory the C heap holds free back to the operating system, where the C
    library can (glibc's ``malloc_trim``; elsewhere nothing happens).

    glibc keeps memory freed by a thread in that thread's arena for later use: after the
    checks were fitted in threads, about 150 MB on the 10M-row scale file, which the
    passes after the fit would otherwise carry in their peak.
    """
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError, TypeError):  # not glibc (macOS, musl, Windows)
        return
    trim(0)


def ordered_map(fn: Callable[[T], R], items: Iterable[T], threads: int) -> Iterator[R]:
    """``map(fn, items)`` with the calls spread over ``threads`` Python threads, each
    call's native code on one thread; results in the order of ``items``.

    Lazy like :func:`map`: ``items`` is consumed as results are taken, at most
    ``threads + 1`` calls ahead (the next item is ready when a thread frees up), so
    memory holds a bounded number of items. An exception raised by a call is raised
    here when its result is due; calls not started yet are then cancelled.
    """
    def call(item: T) -> R:
        with single_threaded():
            return fn(item)

    # BLAS's thread count is process-wide: one until every call has returned
    with single_threaded(), cf.ThreadPoolExecutor(max_workers=threads) as pool:
        pending: collections.deque = collections.deque()
        try:
            for item in items:
                pending.append(pool.submit(call, item))
                if len(pending) > threads:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise

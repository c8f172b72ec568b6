"""Exact nearest rows of a small index, found row by row in compiled code.

The labels family lets each row's nearest rows of an index of the sample vote on its
label (a few thousand indexed rows, a few dozen dimensions, every row of the dataset a
query). :func:`nearest` finds them **exactly** and **row by row**:

* a row's squared Euclidean distance to an indexed row is summed feature by feature in
  one fixed order (feature 0, 1, 2, ...), so it depends on the two rows alone, never on
  the chunk (a BLAS product's rounding depends on how many rows it multiplies at once);
* neighbours are ordered by distance, ties by position in the index;
* a query that is itself indexed is not its own neighbour (``exclude``).

Per row, the distances to every indexed row are computed, then a threshold is taken
from a probe: the ``rank``-th smallest distance among the first ``probe`` indexed rows,
chosen so that about ``3 k`` rows fall within it. Only those compete for the ``k``
places (an insertion sort that keeps equal distances in index order). When fewer than
``k`` rows fall within (rare), every row competes, the NaN distances after the numbers.
Both paths give the same answer; the threshold only saves inserting thousands of
distances per row. (The kernel calls none of numba's sorts: they take seconds to
compile, which the first scan after installing pays.)

The kernel is compiled with numba on first use (:mod:`poisonscan.compiled`; numba is
a dependency of PyOD) and releases the GIL: a large batch is split into blocks
of rows searched in threads, as many as OpenMP may use here
(:func:`poisonscan.threads.native_threads`), so a one-process scan uses every core and a
worker of the process pool its share.
"""

from __future__ import annotations

import concurrent.futures as cf
import math

import numpy as np

from .compiled import LazyKernel
from .threads import native_threads

#: Indexed rows whose distances set a row's threshold (the first ones of the index).
PROBE_ROWS = 512
#: Rows the threshold lets through, in multiples of ``k`` (on average).
PROBE_MARGIN = 3.0
#: Fewest rows per thread (smaller batches are searched in the calling thread).
THREAD_ROWS = 2048


def nearest(X: np.ndarray, columns: np.ndarray, exclude: np.ndarray, k: int, *,
            threads: int | None = None) -> np.ndarray:
    """Positions of each row's ``k`` nearest indexed rows, nearest first.

    Parameters
    ----------
    X : numpy.ndarray of float64, shape (n, d)
        The query rows.
    columns : numpy.ndarray of float64, shape (d, m)
        The indexed rows, transposed (each feature's values contiguous).
    exclude : numpy.ndarray of int64, shape (n,)
        Position in the index of each query row, or -1: that indexed row is not the
        query's neighbour.
    k : int
        Neighbours per row, ``0 <= k <= m`` (``k = m`` only when nothing is excluded).
    threads : int, optional
        Threads to search in (default: :func:`~poisonscan.threads.native_threads`; at
        most one per :data:`THREAD_ROWS` rows). The result does not depend on it.

    Returns
    -------
    numpy.ndarray of int64, shape (n, k)
        Index positions by squared distance ascending, then position ascending (a NaN
        distance after every number).
    """
    X = np.ascontiguousarray(X, dtype=np.float64)
    columns = np.ascontiguousarray(columns, dtype=np.float64)
    exclude = np.ascontiguousarray(exclude, dtype=np.int64)
    d, m = columns.shape
    if X.ndim != 2 or X.shape[1] != d or len(exclude) != len(X) or not 0 <= k <= m:
        raise ValueError(f"nearest: {X.shape} rows, {columns.shape} index columns, "
                         f"{exclude.shape} exclusions, k={k}")
    if len(X) == 0 or k == 0:
        return np.zeros((len(X), k), dtype=np.int64)
    probe = min(m, PROBE_ROWS)
    rank = min(probe, math.ceil(PROBE_MARGIN * k * probe / m) + 1)
    kernel = _KERNEL.get()
    if threads is None:
        threads = native_threads() if len(X) >= 2 * THREAD_ROWS else 1
    threads = max(1, min(threads, len(X) // THREAD_ROWS))
    if threads == 1:
        return kernel(X, columns, exclude, k, probe, rank)
    edges = np.linspace(0, len(X), threads + 1).astype(np.int64)
    with cf.ThreadPoolExecutor(max_workers=threads) as pool:
        parts = pool.map(lambda i: kernel(X[edges[i]:edges[i + 1]], columns,
                                          exclude[edges[i]:edges[i + 1]], k, probe, rank),
                         range(threads))
        return np.concatenate(list(parts))


#: The compiled kernel (:func:`_nearest`, which calls :func:`_insert`), built on first use.
_KERNEL = LazyKernel(globals(), "_nearest", helpers=("_insert",))


def _insert(values, positions, filled, value, position):  # pragma: no cover - compiled
    """Insert ``value`` (at index ``position``) into the ascending ``values[:filled]``,
    after the equal ones; when the buffer is full, the largest drops out. The new fill."""
    size = len(values)
    if filled < size:
        i = filled
        filled += 1
    elif value < values[size - 1]:
        i = size - 1
    else:
        return filled
    while i > 0 and values[i - 1] > value:
        values[i] = values[i - 1]
        positions[i] = positions[i - 1]
        i -= 1
    values[i] = value
    positions[i] = position
    return filled


def _nearest(X, columns, exclude, k, probe, rank):  # pragma: no cover - compiled
    n, d = X.shape
    m = columns.shape[1]
    out = np.empty((n, k), np.int64)
    dist = np.empty(m)
    within = np.empty(m, np.int64)
    lowest = np.empty(rank)
    lowest_at = np.empty(rank, np.int64)
    best = np.empty(k)
    for r in range(n):
        # squared distances, summed feature by feature in order (four per sweep)
        dist[:] = 0.0
        j = 0
        while j + 4 <= d:
            x0, x1, x2, x3 = X[r, j], X[r, j + 1], X[r, j + 2], X[r, j + 3]
            c0, c1, c2, c3 = columns[j], columns[j + 1], columns[j + 2], columns[j + 3]
            for p in range(m):
                a = x0 - c0[p]
                b = x1 - c1[p]
                c = x2 - c2[p]
                e = x3 - c3[p]
                dist[p] = (((dist[p] + a * a) + b * b) + c * c) + e * e
            j += 4
        while j < d:
            x0 = X[r, j]
            c0 = columns[j]
            for p in range(m):
                a = x0 - c0[p]
                dist[p] += a * a
            j += 1
        if exclude[r] >= 0:
            dist[exclude[r]] = np.inf
        # threshold: the rank-th smallest distance of the probe
        filled = 0
        for p in range(probe):
            filled = _insert(lowest, lowest_at, filled, dist[p], p)
        threshold = lowest[rank - 1]
        count = 0
        for p in range(m):  # (branch-free: `within` holds the rows within, in order)
            within[count] = p
            count += dist[p] <= threshold
        if count >= k:  # the k nearest are within the threshold: insert those only
            filled = 0
            for t in range(count):
                filled = _insert(best, out[r], filled, dist[within[t]], within[t])
        else:  # (rare; a NaN threshold lets nothing through) every row competes,
            filled = 0  # the numbers first, then the NaNs, each in index order
            for p in range(m):
                if not np.isnan(dist[p]):
                    filled = _insert(best, out[r], filled, dist[p], p)
            for p in range(m):
                if filled == k:
                    break
                if np.isnan(dist[p]):
                    out[r, filled] = p
                    filled += 1
    return out

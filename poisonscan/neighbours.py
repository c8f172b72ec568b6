"""Exact nearest rows of a small index, found row by row in compiled code.

The labels family lets each row's nearest rows of an index of the sample vote on its
label (a few thousand indexed rows, a few dozen dimensions, every row of the dataset a
query). :func:`nearest` finds them **exactly** and **row by row**:

* a row's squared Euclidean distance to an indexed row is summed feature by feature in
  one fixed order (feature 0, 1, 2, ...) in float64, so it depends on the two rows
  alone, never on the chunk (a BLAS product's rounding depends on how many rows it
  multiplies at once);
* neighbours are ordered by distance, ties by position in the index;
* a query that is itself indexed is not its own neighbour (``exclude``).

A row is searched in two precisions, so that float32 does the bulk of the arithmetic
and float64 alone decides:

1. **Screen.** The squared distances to every indexed row are summed in float32 (twice
   as many per vector instruction as float64).
2. **Bound.** The indexed rows are dealt into ``3 k`` groups (every ``3 k``-th row).
   Each group's smallest screened distance belongs to a row, so the ``k``-th smallest of
   those minima, plus the screen's error bound, is a distance ``T`` within which at least
   ``k`` indexed rows lie.
3. **Exact distances** (float64, in feature order) are computed for the rows the screen
   puts within ``T`` plus their error bound, about ``1.2 k`` rows; those whose exact
   distance is within ``T`` compete for the ``k`` places by (distance, position).

The screen's error is bounded: for a row ``x`` and an indexed row ``c`` in ``d``
dimensions, the float32 sum differs from the float64 one by at most
``(8 + 2 (d + 1)) u (|x|^2 + |c|^2)`` to first order in ``u = 2^-24`` (rounding each
coordinate to float32, each difference, each square, each of the ``d`` additions, and
the float64 sum's own rounding); the search allows twice that. So every row whose exact
distance is within ``T`` passes the screen, and the answer is the one a full sort of the
float64 distances gives: a float32 rounding never decides a neighbour.

Rows the screen cannot bound (a NaN or infinite coordinate, or a squared norm beyond
:data:`SCREEN_LIMIT`, in the row or anywhere in the index) are searched in float64
alone: every distance, the numbers by (distance, position), then the NaNs by position.
The kernel calls none of numba's sorts: they take seconds to compile, which the first
scan after installing pays.

The kernel is compiled with numba on first use (:mod:`poisonscan.compiled`; numba is
a dependency of PyOD) and releases the GIL: a large batch is split into blocks
of rows searched in threads, as many as OpenMP may use here
(:func:`poisonscan.threads.native_threads`), so a one-process scan uses every core and a
worker of the process pool its share.
"""

from __future__ import annotations

import concurrent.futures as cf

import numpy as np

from .compiled import LazyKernel
from .threads import native_threads

#: Groups the indexed rows are dealt into for the bound, per neighbour sought.
GROUPS_PER_NEIGHBOUR = 3
#: Largest squared norm the float32 screen takes, of a row or of an indexed row.
SCREEN_LIMIT = 1e30
#: Fewest rows per thread (smaller batches are searched in the calling thread).
THREAD_ROWS = 2048
#: Unit roundoff of float32.
_U32 = 2.0 ** -24


def nearest(X: np.ndarray, index: "NeighbourIndex | np.ndarray", exclude: np.ndarray,
            k: int, *, threads: int | None = None) -> np.ndarray:
    """Positions of each row's ``k`` nearest indexed rows, nearest first.

    Parameters
    ----------
    X : numpy.ndarray of float64, shape (n, d)
        The query rows.
    index : NeighbourIndex or numpy.ndarray of float64, shape (d, m)
        The indexed rows: a :class:`NeighbourIndex` built once (as the labels family
        does at fit), or their columns (each feature's values contiguous), from which
        one is built for this call.
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
    if not isinstance(index, NeighbourIndex):
        index = NeighbourIndex(index)
    exclude = np.ascontiguousarray(exclude, dtype=np.int64)
    d, m = index.columns.shape
    if X.ndim != 2 or X.shape[1] != d or len(exclude) != len(X) or not 0 <= k <= m:
        raise ValueError(f"nearest: {X.shape} rows, {index.columns.shape} index columns, "
                         f"{exclude.shape} exclusions, k={k}")
    if len(X) == 0 or k == 0:
        return np.zeros((len(X), k), dtype=np.int64)
    groups = min(m, GROUPS_PER_NEIGHBOUR * k)
    kernel = _KERNEL.get()

    def search(rows: slice) -> np.ndarray:
        return kernel(X[rows], index.columns, index.rows, index.columns32, index.slack32,
                      index.largest_slack, exclude[rows], k, groups, index.factor,
                      index.screened)

    if threads is None:
        threads = native_threads() if len(X) >= 2 * THREAD_ROWS else 1
    threads = max(1, min(threads, len(X) // THREAD_ROWS))
    if threads == 1:
        return search(slice(None))
    edges = np.linspace(0, len(X), threads + 1).astype(np.int64)
    with cf.ThreadPoolExecutor(max_workers=threads) as pool:
        parts = pool.map(lambda i: search(slice(edges[i], edges[i + 1])), range(threads))
        return np.concatenate(list(parts))


class NeighbourIndex:
    """The indexed rows in the layouts the search reads, with each one's error bound.

    ``factor * (|x|^2 + |c|^2)`` bounds twice the screen's error for a row ``x`` and an
    indexed row ``c`` (module docstring); ``slack32`` holds the indexed rows' part of it
    (rounded up to float32), ``factor * |x|^2`` is added per row.

    Parameters
    ----------
    columns : numpy.ndarray of float64, shape (d, m)
        The indexed rows, transposed (each feature's values contiguous).
    """

    def __init__(self, columns: np.ndarray):
        columns = np.ascontiguousarray(columns, dtype=np.float64)
        d, m = columns.shape
        self.columns = columns
        self.factor = 2.0 * (8.01 + 2.01 * (d + 1)) * _U32
        self.rows = np.ascontiguousarray(columns.T)
        with np.errstate(over="ignore", invalid="ignore"):
            norms = (columns * columns).sum(axis=0)
        self.screened = bool(np.isfinite(norms).all()
                             and norms.max(initial=0.0) <= SCREEN_LIMIT)
        if self.screened:
            slack = self.factor * norms + 1e-28 * (d + 1)
            self.columns32 = columns.astype(np.float32)
        else:
            slack = np.zeros(m)
            self.columns32 = np.zeros((d, m), np.float32)
        self.slack32 = (slack * (1.0 + 2.0 * _U32)).astype(np.float32)
        self.largest_slack = float(slack.max(initial=0.0))


#: The compiled kernel (:func:`_nearest` and the helpers it calls), built on first use.
_KERNEL = LazyKernel(globals(), "_nearest", helpers=("_insert", "_candidates", "_rank"))


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


def _candidates(dist32, slack32, limit32, flag, within):  # pragma: no cover - compiled
    """Write to ``within`` the positions whose screened distance is within ``limit32``
    plus their own slack, in order; their count. (Flags first, in one vector pass; then
    eight flags at a time, most of them all clear.)"""
    m = len(dist32)
    for p in range(m):
        flag[p] = dist32[p] <= limit32 + slack32[p]
    words = flag.view(np.uint64)
    count = 0
    for w in range(len(words)):
        if words[w] != 0:
            base = 8 * w
            for b in range(8):
                within[count] = base + b
                count += flag[base + b]
    return count


def _rank(values, positions, n, out, best):  # pragma: no cover - compiled
    """Write to ``out`` the positions of the ``len(out)`` smallest of ``values[:n]`` by
    (value, order of arrival). Each one's place is the count of those before it; with
    many more candidates than places, an insertion sort instead."""
    k = len(out)
    if n > 8 * k:
        filled = 0
        for i in range(n):
            filled = _insert(best, out, filled, values[i], positions[i])
        return
    for i in range(n):
        v = values[i]
        place = 0
        for t in range(n):
            place += values[t] < v
        for t in range(i):
            place += values[t] == v
        if place < k:
            out[place] = positions[i]


def _nearest(X, columns, rows, columns32, slack32, largest_slack, exclude, k,
             groups, factor, screened):  # pragma: no cover - compiled
    n, d = X.shape
    m = columns.shape[1]
    out = np.empty((n, k), np.int64)
    best = np.empty(k)
    dist = np.empty(m)
    within = np.empty(m, np.int64)
    dist32 = np.empty(m, np.float32)
    x32 = np.empty(d, np.float32)
    bits = dist32.view(np.int32)  # a non-negative float32 orders like its bits
    full = m // groups
    grid = bits[:full * groups].reshape(full, groups)  # group g: every groups-th row
    rest = bits[full * groups:]
    low = np.empty(groups, np.int32)
    flag = np.zeros(8 * ((m + 7) // 8), np.uint8)
    kth = np.empty(1, np.int32)
    for r in range(n):
        ex = exclude[r]
        sx = 0.0
        for j in range(d):
            sx += X[r, j] * X[r, j]
        if screened and sx <= SCREEN_LIMIT:  # (not for a NaN)
            own = factor * sx
            # 1. screen: float32 distances, summed in order (four features per sweep)
            for j in range(d):
                x32[j] = X[r, j]
            for p in range(m):
                dist32[p] = 0.0
            j = 0
            while j + 4 <= d:
                x0, x1, x2, x3 = x32[j], x32[j + 1], x32[j + 2], x32[j + 3]
                c0, c1 = columns32[j], columns32[j + 1]
                c2, c3 = columns32[j + 2], columns32[j + 3]
                for p in range(m):
                    a = x0 - c0[p]
                    b = x1 - c1[p]
                    c = x2 - c2[p]
                    e = x3 - c3[p]
                    dist32[p] = (((dist32[p] + a * a) + b * b) + c * c) + e * e
                j += 4
            while j < d:
                x0 = x32[j]
                c0 = columns32[j]
                for p in range(m):
                    a = x0 - c0[p]
                    dist32[p] += a * a
                j += 1
            if ex >= 0:
                dist32[ex] = np.inf
            # 2. bound: the k-th smallest of the groups' minima (bisection on the bits)
            first = grid[0]
            for g in range(groups):
                low[g] = first[g]
            for i in range(1, full):
                line = grid[i]
                for g in range(groups):
                    v = line[g]
                    low[g] = v if v < low[g] else low[g]
            for g in range(len(rest)):
                v = rest[g]
                low[g] = v if v < low[g] else low[g]
            lo = low[0]
            hi = low[0]
            for g in range(groups):
                lo = min(lo, low[g])
                hi = max(hi, low[g])
            while lo < hi:
                mid = lo + (hi - lo) // 2
                count = 0
                for g in range(groups):
                    count += low[g] <= mid
                if count >= k:
                    hi = mid
                else:
                    lo = mid + 1
            kth[0] = lo
            threshold = np.float64(kth.view(np.float32)[0]) + largest_slack + own
            # 3. exact distances of the rows the screen puts within it (4 at a time)
            limit32 = np.float32((threshold + own) * (1.0 + 4.0 * _U32))
            count = _candidates(dist32, slack32, limit32, flag, within)
            t = 0
            while t + 4 <= count:
                r0, r1 = rows[within[t]], rows[within[t + 1]]
                r2, r3 = rows[within[t + 2]], rows[within[t + 3]]
                s0 = s1 = s2 = s3 = 0.0
                for j in range(d):
                    xj = X[r, j]
                    a0 = xj - r0[j]
                    a1 = xj - r1[j]
                    a2 = xj - r2[j]
                    a3 = xj - r3[j]
                    s0 += a0 * a0
                    s1 += a1 * a1
                    s2 += a2 * a2
                    s3 += a3 * a3
                dist[t], dist[t + 1], dist[t + 2], dist[t + 3] = s0, s1, s2, s3
                t += 4
            while t < count:
                r0 = rows[within[t]]
                s0 = 0.0
                for j in range(d):
                    a0 = X[r, j] - r0[j]
                    s0 += a0 * a0
                dist[t] = s0
                t += 1
            inside = 0  # those within the threshold, in index order
            for t in range(count):
                value = np.inf if within[t] == ex else dist[t]
                within[inside] = within[t]
                dist[inside] = value
                inside += value <= threshold
            if inside >= k:  # (always, by the bound)
                _rank(dist, within, inside, out[r], best)
                continue
        # float64 alone: every distance; the numbers by distance, then NaNs by position
        for p in range(m):
            dist[p] = 0.0
        for j in range(d):
            xj = X[r, j]
            cj = columns[j]
            for p in range(m):
                a = xj - cj[p]
                dist[p] += a * a
        if ex >= 0:
            dist[ex] = np.inf
        filled = 0
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

"""Matrix products whose every row is rounded the same way, whatever the batch.

A row's score must not depend on the chunk it arrives in (chunk sizes, files and Dask
partitions change nothing in the outputs). BLAS does not promise that: a matrix
product's blocking, and so its rounding, depends on how many rows are multiplied at
once. :func:`row_products` sums each row's products in one fixed order (feature 0, 1,
2, ...), so a row's result is a function of the row alone.

It does so row by row in compiled code (:mod:`poisonscan.compiled`; each product is
rounded, then added, as numpy's multiply and add round them): two to four times faster
than vectorised numpy operations per feature on blocks of rows, with bit-identical
results.
"""

from __future__ import annotations

import numpy as np

from .compiled import LazyKernel


def row_products(X: np.ndarray, W: np.ndarray, *, shift: np.ndarray | None = None,
                 start: np.ndarray | None = None) -> np.ndarray:
    """``start + (X - shift) @ W.T``, each row summed feature by feature, in order.

    Parameters
    ----------
    X : numpy.ndarray of float64, shape (n, d)
        The rows.
    W : numpy.ndarray of float64, shape (q, d)
        One weight vector per output column.
    shift : numpy.ndarray, shape (d,), optional
        Subtracted from every row first (a centre).
    start : numpy.ndarray, shape (q,), optional
        The sums' starting values (an intercept); zero without it.

    Returns
    -------
    numpy.ndarray of float64, shape (n, q)
        ``out[i, k] = (...((start[k] + x_i0 W[k, 0]) + x_i1 W[k, 1]) + ...)`` with
        ``x_i = X[i] - shift``: the same bits for a row in any batch.
    """
    X = np.ascontiguousarray(X, dtype=np.float64)
    W = np.asarray(W, dtype=np.float64)
    n, d = X.shape
    q = W.shape[0]
    if W.shape != (q, d):
        raise ValueError(f"row_products: {X.shape} rows, {W.shape} weights")
    shift = np.zeros(d) if shift is None else np.ascontiguousarray(shift, dtype=np.float64)
    start = np.zeros(q) if start is None else np.ascontiguousarray(start, dtype=np.float64)
    return _KERNEL.get()(X, np.ascontiguousarray(W.T), shift, start)


def _row_products(X, weights, shift, start):  # pragma: no cover - compiled
    """``out[i, k] = start[k] + sum_j (X[i, j] - shift[j]) * weights[j, k]``, in order of
    ``j``; ``weights`` is ``W`` transposed (a row's outputs are updated together)."""
    n, d = X.shape
    q = weights.shape[1]
    out = np.empty((n, q))
    acc = np.empty(q)
    for r in range(n):
        for k in range(q):
            acc[k] = start[k]
        for j in range(d):
            x = X[r, j] - shift[j]
            for k in range(q):
                acc[k] += x * weights[j, k]
        for k in range(q):
            out[r, k] = acc[k]
    return out


#: The compiled kernel (:func:`_row_products`), built on first use.
_KERNEL = LazyKernel(globals(), "_row_products")

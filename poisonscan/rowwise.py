"""Matrix products whose every row is rounded the same way, whatever the batch.

A row's score must not depend on the chunk it arrives in (chunk sizes, files and Dask
partitions change nothing in the outputs). BLAS does not promise that: a matrix
product's blocking, and so its rounding, depends on how many rows are multiplied at
once. :func:`row_products` sums each row's products in one fixed order (feature 0, 1,
2, ...), so a row's result is a function of the row alone.

It does so with a handful of vectorised numpy operations per feature, on blocks of
:data:`BLOCK_ROWS` rows held transposed (each feature's values contiguous, the block's
partial sums small enough to stay in cache): about six times faster than a loop over
the columns of the whole chunk, with bit-identical results.
"""

from __future__ import annotations

import numpy as np

#: Rows per block (the block's features-by-rows copy and its sums fit in a core's cache).
BLOCK_ROWS = 2048


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
    X = np.asarray(X, dtype=np.float64)
    W = np.asarray(W, dtype=np.float64)
    n, d = X.shape
    q = W.shape[0]
    out = np.empty((n, q))
    first = np.zeros(q) if start is None else np.asarray(start, dtype=np.float64)
    sums = np.empty((q, min(n, BLOCK_ROWS)))
    term = np.empty_like(sums)
    for low in range(0, n, BLOCK_ROWS):
        block = X[low:low + BLOCK_ROWS]
        if shift is not None:
            block = block - shift
        columns = np.ascontiguousarray(block.T)
        m = len(block)
        acc, product = sums[:, :m], term[:, :m]
        acc[:] = first[:, None]
        for j in range(d):
            np.multiply(W[:, j:j + 1], columns[j], out=product)
            acc += product
        out[low:low + m] = acc.T
    return out

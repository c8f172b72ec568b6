"""Row-wise products: a row's bits do not depend on the batch it is multiplied in."""

import numpy as np
import pytest

from poisonscan.rowwise import row_products

BATCH_ROWS = 2048  # a batch size; a row's result must not depend on where batches split


def _sequential(X, W, shift, start):
    """The definition: each output summed feature by feature, in order."""
    out = np.empty((len(X), len(W)))
    for i, x in enumerate(X - shift):
        for k, w in enumerate(W):
            total = start[k]
            for j in range(len(w)):
                total = total + x[j] * w[j]
            out[i, k] = total
    return out


@pytest.mark.parametrize("n", [1, 7, BATCH_ROWS - 1, BATCH_ROWS + 3])
def test_row_products_sum_each_row_in_feature_order(n):
    rng = np.random.default_rng(n)
    # values of very different magnitudes, so that another summation order rounds differently
    X = rng.normal(size=(n, 9)) * 10.0 ** rng.integers(-8, 9, size=9)
    W = rng.normal(size=(3, 9))
    shift, start = rng.normal(size=9), rng.normal(size=3)
    got = row_products(X, W, shift=shift, start=start)
    picked = np.unique(np.r_[0, n // 2, n - 1])  # the pure-Python definition is slow
    assert np.array_equal(got[picked], _sequential(X[picked], W, shift, start))


def test_a_rows_result_does_not_depend_on_its_batch():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(2 * BATCH_ROWS + 5, 40)) * 10.0 ** rng.integers(-6, 7, size=40)
    W = rng.normal(size=(16, 40))
    whole = row_products(X, W)
    for low, high in [(0, 1), (3, 900), (BATCH_ROWS - 2, BATCH_ROWS + 2), (5, len(X))]:
        assert np.array_equal(row_products(X[low:high], W), whole[low:high])
    # and it is the product (to rounding)
    assert np.allclose(whole, X @ W.T, rtol=1e-9, atol=1e-9 * np.abs(X).max())


def test_no_rows_and_no_features():
    assert row_products(np.zeros((0, 4)), np.ones((2, 4))).shape == (0, 2)
    assert np.array_equal(row_products(np.zeros((3, 0)), np.zeros((2, 0)),
                                       start=np.array([1.0, 2.0])),
                          np.tile([1.0, 2.0], (3, 1)))


def test_weights_of_another_width_are_refused():
    with pytest.raises(ValueError, match="weights"):
        row_products(np.zeros((3, 4)), np.ones((2, 5)))

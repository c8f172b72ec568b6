"""The exact nearest-row search of the labels family (:mod:`poisonscan.neighbours`)."""

from __future__ import annotations

import numpy as np
import pytest

from poisonscan.neighbours import PROBE_ROWS, THREAD_ROWS, nearest


def reference(X, index, exclude, k):
    """Squared distances summed feature by feature with numpy, ordered by (distance,
    position), NaN last; each row's excluded position at infinity."""
    dist = np.zeros((len(X), len(index)))
    with np.errstate(invalid="ignore"):  # inf - inf
        for j in range(X.shape[1]):
            diff = X[:, j:j + 1] - index[None, :, j]
            dist += diff * diff
    own = exclude >= 0
    dist[np.flatnonzero(own), exclude[own]] = np.inf
    position = np.broadcast_to(np.arange(len(index)), dist.shape)
    return np.lexsort((position, dist), axis=1)[:, :k]


def search(X, index, exclude, k, **options):
    return nearest(X, np.ascontiguousarray(index.T), exclude, k, **options)


@pytest.mark.parametrize("m, d, k", [(2000, 16, 50), (300, 5, 20), (40, 3, 39), (700, 1, 7)])
def test_matches_the_numpy_reference(m, d, k):
    rng = np.random.default_rng(m + d)
    index = rng.normal(size=(m, d)) * rng.uniform(0.1, 3, size=d)
    X = np.vstack([rng.normal(size=(400, d)) * 2,       # anywhere
                   index[rng.integers(0, m, 100)],      # on an indexed row
                   index[:50] + 1e-12])                 # a hair from one
    exclude = np.full(len(X), -1)
    exclude[400:450] = rng.integers(0, m, 50)           # some rows are indexed themselves
    if k == m - 1:
        exclude[:] = rng.integers(0, m, len(X))
    got = search(X, index, exclude, k)
    assert got.shape == (len(X), k) and got.dtype == np.int64
    assert np.array_equal(got, reference(X, index, exclude, k))
    assert not (got == exclude[:, None]).any()


def test_ties_are_broken_by_index_position():
    rng = np.random.default_rng(1)
    codes = rng.permutation(5 ** 4)[:60]                 # 60 distinct points of a 5^4 grid
    rows = (codes[:, None] // 5 ** np.arange(4) % 5 - 2).astype(float)
    index = np.vstack([rows] * 10)                       # every row ten times over
    X = np.vstack([rows, rng.integers(-2, 3, size=(200, 4)).astype(float)])
    got = search(X, index, np.full(len(X), -1), 25)
    assert np.array_equal(got, reference(X, index, np.full(len(X), -1), 25))
    copies = got[:60, :10]                               # a row's ten copies come first, in order
    assert np.array_equal(copies, np.arange(60)[:, None] + 60 * np.arange(10)[None, :])


def test_rows_where_the_probe_is_misleading_are_sorted_in_full():
    """The first indexed rows crowd round the query, so the probe's threshold lets fewer
    than k rows through: the full sort gives the same exact answer."""
    rng = np.random.default_rng(2)
    near = rng.normal(size=(PROBE_ROWS, 8)) * 0.01
    far = 5 + rng.normal(size=(4 * PROBE_ROWS, 8))
    index = np.vstack([near, far])
    X = rng.normal(size=(30, 8)) * 0.01
    k = PROBE_ROWS + 40                                   # more than the crowd holds
    got = search(X, index, np.full(len(X), -1), k)
    assert np.array_equal(got, reference(X, index, np.full(len(X), -1), k))
    assert (got[:, PROBE_ROWS:] >= PROBE_ROWS).all()     # the last 40 are far rows


def test_indexed_rows_with_a_nan_come_last_also_when_every_row_competes():
    """Every row's k takes the search past its threshold (k = 39 of 40 rows): the 37
    numbers by distance, then two of the three NaN rows (the first ones of the index) by
    position."""
    rng = np.random.default_rng(4)
    index = rng.normal(size=(40, 3))
    index[[0, 2, 3], 1] = np.nan
    X = rng.normal(size=(10, 3))
    none = np.full(len(X), -1)
    got = search(X, index, none, 39)
    assert np.array_equal(got, reference(X, index, none, 39))
    assert (got[:, -2:] == [0, 2]).all()


def test_nan_and_infinite_coordinates_rank_last():
    rng = np.random.default_rng(3)
    index = rng.normal(size=(600, 3))
    index[5, 1] = np.nan
    index[9, 0] = np.inf
    X = np.vstack([rng.normal(size=(20, 3)), [[np.nan, 0.0, 0.0]], [[np.inf, 0.0, 0.0]]])
    none = np.full(len(X), -1)
    got = search(X, index, none, 12)
    assert np.array_equal(got, reference(X, index, none, 12))
    assert not np.isin(got[:20], [5, 9]).any()
    assert np.array_equal(got[20], np.arange(12))        # all distances NaN: by position


def test_a_row_gets_the_same_neighbours_alone_or_in_a_batch():
    rng = np.random.default_rng(4)
    index = rng.normal(size=(900, 6))
    X = rng.normal(size=(64, 6))
    exclude = np.full(len(X), -1)
    batch = search(X, index, exclude, 30)
    alone = np.vstack([search(X[i:i + 1], index, exclude[i:i + 1], 30) for i in range(len(X))])
    assert np.array_equal(batch, alone)


def test_empty_input_and_bad_shapes():
    index = np.ones((3, 10))
    assert nearest(np.zeros((0, 3)), index, np.zeros(0, np.int64), 4).shape == (0, 4)
    assert nearest(np.zeros((2, 3)), index, np.full(2, -1), 0).shape == (2, 0)
    with pytest.raises(ValueError, match="k=11"):
        nearest(np.zeros((2, 3)), index, np.full(2, -1), 11)
    with pytest.raises(ValueError):
        nearest(np.zeros((2, 4)), index, np.full(2, -1), 2)


def test_threads_change_nothing():
    rng = np.random.default_rng(5)
    index = rng.normal(size=(1500, 9))
    X = rng.normal(size=(3 * THREAD_ROWS + 17, 9))
    exclude = np.where(rng.random(len(X)) < 0.1, rng.integers(0, 1500, len(X)), -1)
    one = search(X, index, exclude, 40, threads=1)
    assert np.array_equal(one, search(X, index, exclude, 40, threads=3))
    assert np.array_equal(one, search(X, index, exclude, 40))  # the default count
    assert np.array_equal(one[:500], reference(X[:500], index, exclude[:500], 40))

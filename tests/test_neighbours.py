"""The exact nearest-row search of the labels family (:mod:`poisonscan.neighbours`)."""

from __future__ import annotations

import numpy as np
import pytest

from poisonscan.neighbours import GROUPS_PER_NEIGHBOUR, SCREEN_LIMIT, THREAD_ROWS, nearest


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


def test_distances_closer_than_float32_can_tell_apart_are_ordered_exactly():
    """Indexed rows a millionth apart, far from the origin: float32 sees one distance
    (its spacing there is about 1e-4), float64 sees them all; the order is float64's."""
    rng = np.random.default_rng(2)
    centre = 1e4 * rng.normal(size=8)
    index = np.vstack([centre + 1e-6 * rng.normal(size=(300, 8)),   # a tight cloud
                       centre + rng.normal(size=(700, 8))])           # and its halo
    X = centre + 1e-6 * rng.normal(size=(40, 8))
    none = np.full(len(X), -1)
    assert len(np.unique(index[:300].astype(np.float32), axis=0)) < 300
    got = search(X, index, none, 60)
    assert np.array_equal(got, reference(X, index, none, 60))
    assert (got < 300).all()                             # the cloud before the halo


@pytest.mark.parametrize("offset", [0.0, 1e3])
def test_distances_equal_in_float32_are_ordered_by_float64(offset):
    """Sixty indexed rows on a sphere round the query, their radii a billionth apart, and
    a halo further out. Rounded to float32 (a ten-millionth; far from the origin, a
    ten-thousandth), the sixty's order is noise, and the bound falls among them: the
    screen must let every one through to the float64 comparison, whatever its rounding.
    (Without its error bound, these queries get wrong neighbours.)"""
    rng = np.random.default_rng(7)
    none = np.full(1, -1)
    for _ in range(6):
        directions = rng.normal(size=(1000, 8))
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        radii = np.concatenate([1.0 + 1e-9 * rng.permutation(60), 2.0 + rng.random(940)])
        x = offset + rng.normal(size=8)
        index = x + directions * radii[:, None]
        got = search(x[None], index, none, 50)
        assert np.array_equal(got, reference(x[None], index, none, 50))
        assert np.array_equal(np.sort(got[0]), np.sort(np.argsort(radii)[:50]))


def test_ties_beyond_the_bound_fall_back_to_insertion():
    """Four hundred indexed copies of one point, scattered through the index: for a
    query near it, far more rows than ``8 k`` tie within the bound, and the first ``k``
    copies by position are the neighbours."""
    rng = np.random.default_rng(8)
    point = rng.normal(size=4)
    index = 3.0 + rng.normal(size=(600, 4))
    copies = np.sort(rng.choice(600, 400, replace=False))
    index[copies] = point
    X = np.vstack([point, point + 1e-3 * rng.normal(size=(9, 4))])
    none = np.full(len(X), -1)
    k = 5
    got = search(X, index, none, k)
    assert np.array_equal(got, reference(X, index, none, k))
    assert (got == copies[:k]).all()


def test_rows_the_screen_cannot_bound_are_searched_in_float64():
    """A row (or an indexed row) whose squared norm passes the screen's limit is
    searched in float64 alone, with the same answer."""
    rng = np.random.default_rng(6)
    index = rng.normal(size=(800, 5))
    big = np.sqrt(SCREEN_LIMIT) * 10
    X = np.vstack([rng.normal(size=(30, 5)), [[big, 0, 0, 0, 0]], [[-big, big, 0, 0, 0]]])
    none = np.full(len(X), -1)
    assert np.array_equal(search(X, index, none, 25), reference(X, index, none, 25))
    index[17] = big                                      # now no row is screened
    assert np.array_equal(search(X, index, none, 25), reference(X, index, none, 25))


@pytest.mark.parametrize("k", [1, 2, 7])
def test_few_neighbours_and_indexes_smaller_than_the_groups(k):
    rng = np.random.default_rng(k)
    for m in (k + 1, GROUPS_PER_NEIGHBOUR * k - 1, GROUPS_PER_NEIGHBOUR * k + 5, 97):
        index = rng.normal(size=(m, 4))
        X = np.vstack([rng.normal(size=(25, 4)), index[:5]])  # some rows are indexed
        exclude = np.full(len(X), -1)
        exclude[25:] = np.arange(len(X) - 25)
        assert np.array_equal(search(X, index, exclude, k), reference(X, index, exclude, k))


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

"""Keyed randomness: every random choice is a function of (seed, row id).

Drawing random numbers in arrival order would make the sample, and every result
fitted on it, depend on chunk sizes, file splits and Dask partitions. Hashing the row id
with the seed gives each row the same draw wherever and whenever it is processed.
"""

from __future__ import annotations

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def splitmix64(x: np.ndarray) -> np.ndarray:
    """The SplitMix64 finaliser, vectorised (a bijection on uint64 with good avalanche)."""
    z = np.asarray(x, dtype=np.uint64) + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def row_keys(seed: int, rows: np.ndarray, stream: int = 0) -> np.ndarray:
    """64-bit pseudo-random keys of ``rows``, fixed by ``(seed, stream, row)``.

    Parameters
    ----------
    seed : int
        The scan's seed.
    rows : array of int
        Row ids.
    stream : int
        Separates independent uses of randomness (the sample, a fold assignment, ...).
    """
    with np.errstate(over="ignore"):
        base = splitmix64(np.array([(seed * 0x100000001 + stream) % (1 << 64)], dtype=np.uint64))
        return splitmix64(np.asarray(rows, dtype=np.int64).astype(np.uint64) ^ base)


def row_uniform(seed: int, rows: np.ndarray, stream: int = 0) -> np.ndarray:
    """Uniform floats in [0, 1) fixed by ``(seed, stream, row)``."""
    return (row_keys(seed, rows, stream) >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))

"""Work shared among threads, each call's native code on one thread."""

import importlib
import threading
import time

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from poisonscan.threads import (lbfgs_reentrant, map_single_threaded, native_threads,
                                ordered_map, usable_cores)


def _limits():
    """Thread counts of the loaded OpenMP and BLAS libraries, seen from this thread."""
    return {lib["user_api"]: lib["num_threads"] for lib in threadpool_info()}


def test_calls_run_in_threads_in_order_each_on_one_native_thread():
    seen = []

    def work(i):
        seen.append(threading.get_ident())
        return i, _limits()

    out = map_single_threaded(work, range(6), threads=2)
    assert [i for i, _ in out] == list(range(6))
    assert all(set(limits.values()) == {1} for _, limits in out), out
    assert threading.get_ident() not in seen  # the calls ran in the pool's threads


def test_one_thread_runs_in_the_caller_and_restores_the_limits():
    before = _limits()
    here = map_single_threaded(lambda i: (threading.get_ident(), _limits()), [0], threads=1)
    assert here[0][0] == threading.get_ident()
    assert set(here[0][1].values()) == {1}
    assert _limits() == before


def test_boosting_fitted_in_threads_equals_the_sequential_fit():
    from sklearn.ensemble import HistGradientBoostingClassifier
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 8))
    y = (X[:, 0] + X[:, 1] ** 2 + rng.normal(size=3000) > 1).astype(int)
    parts = [(X[i::3], y[i::3]) for i in range(3)]

    def fit(part):
        return HistGradientBoostingClassifier(random_state=0, max_iter=30).fit(*part)

    threaded = map_single_threaded(fit, parts, threads=3)
    alone = map_single_threaded(fit, parts, threads=1)
    for a, b in zip(threaded, alone):
        assert np.array_equal(a.predict_proba(X), b.predict_proba(X))


@pytest.mark.parametrize("version, expected", [("1.10.1", False), ("1.14.1", False),
                                               ("1.15.0", True), ("1.17.1", True),
                                               ("2.0.0rc1", True), ("1.16.dev0", True),
                                               ("unknown", False)])
def test_lbfgs_reentrant_from_the_scipy_version(monkeypatch, version, expected):
    import scipy
    monkeypatch.setattr(scipy, "__version__", version)
    assert lbfgs_reentrant() is expected


def test_native_threads_follow_the_openmp_limit(monkeypatch):
    from threadpoolctl import threadpool_limits

    importlib.import_module("sklearn.ensemble")  # loads scikit-learn's OpenMP runtime

    with threadpool_limits(limits=1):
        assert native_threads() == 1
    with threadpool_limits(limits=64):
        assert native_threads() == usable_cores()  # never more than the cores
    monkeypatch.setattr("poisonscan.threads.usable_cores", lambda: 64)
    with threadpool_limits(limits=3):
        assert native_threads() == 3


def test_ordered_map_keeps_order_runs_in_threads_and_reads_ahead_only_a_little():
    pulled = []

    def items():
        for i in range(10):
            pulled.append(i)
            yield i

    def work(i):
        time.sleep(0.02 * (i % 3 == 0))  # some calls finish after later ones
        return i * i, threading.get_ident(), _limits()

    results = ordered_map(work, items(), 3)
    first = next(results)
    assert first[0] == 0 and len(pulled) <= 4  # at most threads + 1 calls ahead
    rest = list(results)
    assert [r[0] for r in [first] + rest] == [i * i for i in range(10)]
    assert threading.get_ident() not in {r[1] for r in [first] + rest}
    assert all(set(r[2].values()) <= {1} for r in [first] + rest)  # one native thread each


def test_ordered_map_raises_the_error_of_a_call_when_its_result_is_due():
    def work(i):
        if i == 4:
            raise ValueError("four")
        return i

    seen = []
    with pytest.raises(ValueError, match="four"):
        for value in ordered_map(work, range(100), 2):
            seen.append(value)
    assert seen == [0, 1, 2, 3]


def test_free_memory_is_given_back_where_the_c_library_can(monkeypatch):
    from poisonscan import threads

    calls = []

    class Glibc:
        def malloc_trim(self, pad):
            calls.append(pad)
            return 1

    monkeypatch.setattr(threads.ctypes, "CDLL", lambda name: Glibc())
    threads.release_free_memory()
    assert calls == [0]

    class Other:  # no malloc_trim (macOS, musl)
        pass

    monkeypatch.setattr(threads.ctypes, "CDLL", lambda name: Other())
    assert threads.release_free_memory() is None


def test_the_local_engine_gives_back_free_memory_after_the_fit(monkeypatch, tmp_path):
    from poisonscan import scan
    from poisonscan.engines import local

    from conftest import make_frame

    events = []
    real_fit = local.ScanRun.fit
    monkeypatch.setattr(local.ScanRun, "fit", lambda self, state: events.append("fit")
                        or real_fit(self, state))
    monkeypatch.setattr(local, "release_free_memory", lambda: events.append("trim"))
    make_frame(200).to_csv(tmp_path / "d.csv", index=False)
    scan(tmp_path / "d.csv", label="y", out=tmp_path / "out")
    assert events == ["fit", "trim"]

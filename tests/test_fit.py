"""The fit stage (:func:`poisonscan.pipeline.fit`): checks fitted side by side in threads,
and the shared artefacts they build once (the sample chunk's conversions, the encoder)."""

from __future__ import annotations

import pickle
import threading
import time

import numpy as np
import pyarrow as pa
import pytest
from threadpoolctl import threadpool_info

from poisonscan import pipeline, scan
from poisonscan.checks.base import CheckScores
from poisonscan.checks.bounds import BoundsCheck
from poisonscan.io.chunk import CellErrors, Chunk
from poisonscan.io.schema import ScanSchema
from poisonscan.io.sources import TableSource
from poisonscan.profiling import Profile

from conftest import make_frame, poisoned_frame

OUTPUTS = ("scores.parquet", "suspects.csv", "clean.csv", "quarantine.csv")


def _profile(df, label="y") -> Profile:
    src = TableSource(df)
    schema = ScanSchema.build(src.arrow_schema, label=label, id_column=None)
    (chunk,) = src.chunks(10**9, schema)
    return Profile.of(chunk, sample_rows=10**6, seed=0)


def _at_once(fn, threads=4):
    """Results of ``fn()`` called from ``threads`` threads released at the same moment."""
    start = threading.Barrier(threads)
    results = [None] * threads

    def call(i):
        start.wait(timeout=10)
        results[i] = fn()

    workers = [threading.Thread(target=call, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return results


def test_a_chunk_conversion_asked_by_threads_at_once_is_made_once():
    chunk = _profile(make_frame(50)).sample_chunk()
    made = []

    def make():
        made.append(1)
        time.sleep(0.05)  # long enough for every thread to ask while it is being made
        return object()

    results = _at_once(lambda: chunk.cached("test", "key", make))
    assert len(made) == 1
    assert all(r is results[0] for r in results)


def test_a_conversion_may_ask_for_another_one_and_a_pickled_chunk_caches_again():
    chunk = _profile(make_frame(50)).sample_chunk()
    outer = chunk.cached("outer", "x", lambda: chunk.numeric("x") * 2)  # reentrant lock
    assert np.array_equal(outer, chunk.numeric("x") * 2, equal_nan=True)
    copy = pickle.loads(pickle.dumps(chunk))
    assert copy._cache == {}  # caches are not shipped
    assert copy.cached("test", "key", lambda: 7) == 7 and copy.cached("test", "key", lambda: 8) == 7


def test_the_shared_encoder_asked_by_threads_at_once_is_fitted_once():
    profile = _profile(make_frame(200))
    encoders = _at_once(profile.encoder)
    assert all(e is encoders[0] for e in encoders)
    logs = _at_once(lambda: profile.encoder(log_skewed=True))
    assert all(e is logs[0] for e in logs)
    assert pickle.loads(pickle.dumps(profile)).n_rows == profile.n_rows  # still picklable


class _Meeting(BoundsCheck):
    """The bounds check, whose fit waits until ``meeting`` has all its parties, and
    records the order of the fits and the native thread limits they ran under."""

    meeting: threading.Barrier | None = None
    seen: list = []

    def fit(self, state, profile):
        if self.meeting is not None:
            self.meeting.wait(timeout=10)  # fails (BrokenBarrierError) unless side by side
        self.seen.append((self.name, {lib["user_api"]: lib["num_threads"]
                                      for lib in threadpool_info()}))
        return super().fit(state, profile)


def _meeting_checks(n, spreading=()):
    return [type(f"Meeting{i}", (_Meeting,), {"name": f"m{i}", "spreads_fit": i in spreading})()
            for i in range(n)]


def _fit(checks):
    src = TableSource(make_frame(300))
    schema = ScanSchema.build(src.arrow_schema, label="y", id_column=None)
    state = None
    for chunk in src.chunks(100, schema):
        state = pipeline.merge(state, pipeline.summarize(chunk, checks, sample_rows=1000,
                                                         seed=0), checks)
    return pipeline.fit(state, checks)


def test_checks_are_fitted_side_by_side_one_per_core_each_on_one_native_thread(monkeypatch):
    monkeypatch.setattr("poisonscan.threads.usable_cores", lambda: 2)
    monkeypatch.setattr(_Meeting, "meeting", threading.Barrier(2))
    monkeypatch.setattr(_Meeting, "seen", [])
    before = [lib["num_threads"] for lib in threadpool_info()]
    plan = _fit(_meeting_checks(2))
    assert len(_Meeting.seen) == 2
    assert all(set(limits.values()) == {1} for _, limits in _Meeting.seen)
    assert plan.families == ["m0", "m1"]
    assert [lib["num_threads"] for lib in threadpool_info()] == before  # limits restored


def test_checks_that_spread_their_fit_over_threads_start_first(monkeypatch):
    monkeypatch.setattr("poisonscan.threads.usable_cores", lambda: 1)  # one at a time
    monkeypatch.setattr(_Meeting, "seen", [])
    plan = _fit(_meeting_checks(3, spreading=(2,)))
    assert [name for name, _ in _Meeting.seen] == ["m2", "m0", "m1"]
    assert plan.families == ["m0", "m1", "m2"]  # the scan's order is kept


def test_fitting_side_by_side_and_scoring_the_sample_in_blocks_writes_the_same_bytes(
        tmp_path, monkeypatch):
    data = tmp_path / "data.csv"
    poisoned_frame(rows=1_500, seed=5).to_csv(data, index=False)
    blocks = []
    real = Chunk.slice
    monkeypatch.setattr(Chunk, "slice", lambda self, a, b: blocks.append(b - a) or real(self, a, b))
    monkeypatch.setattr(pipeline, "MIN_BLOCK_ROWS", 100)
    monkeypatch.setattr(pipeline, "usable_cores", lambda: 3)
    side = scan(data, label="y", out=tmp_path / "side", chunk_rows=500).out
    assert blocks == [500, 500, 500]  # the sample (every row) in three blocks
    # one after the other, the sample in one block
    monkeypatch.setattr(pipeline, "MIN_BLOCK_ROWS", 10**9)
    monkeypatch.setattr(pipeline, "map_single_threaded",
                        lambda fn, items, threads=None: [fn(item) for item in items])
    sequential = scan(data, label="y", out=tmp_path / "seq", chunk_rows=500).out
    assert blocks == [500, 500, 500]
    for name in OUTPUTS:
        assert (side / name).read_bytes() == (sequential / name).read_bytes(), name


def test_a_slice_of_a_chunk_keeps_its_rows_values_and_unparseable_cells():
    errors = {"x": CellErrors(np.array([1, 4, 7]), ("a", "b", "c"))}
    table = pa.table({"x": [1.0, None, 3.0, 4.0, None, 6.0, 7.0, None]})
    schema = ScanSchema.build(table.schema, label=None, id_column=None)
    chunk = Chunk(table, np.arange(10, 18), schema, errors, "f.csv")
    part = chunk.slice(3, 7)
    assert part.rows.tolist() == [13, 14, 15, 16] and part.source == "f.csv"
    assert part.table.column("x").to_pylist() == [4.0, None, 6.0, 7.0]
    assert part.errors["x"].positions.tolist() == [1] and part.errors["x"].values == ("b",)
    assert chunk.slice(0, 1).errors == {}


def test_scores_of_consecutive_blocks_concatenate_in_order():
    a = CheckScores(np.array([1.0, 2.0]), np.array([True, False]), np.array(["r", None]))
    b = CheckScores(np.array([3.0]), np.array([True]), np.array([None], dtype=object))
    both = CheckScores.concatenate([a, b])
    assert both.scores.tolist() == [1.0, 2.0, 3.0]
    assert both.violation.tolist() == [True, False, True]
    assert both.reasons.tolist() == ["r", None, None]
    assert len(CheckScores.concatenate([]).scores) == 0


def test_an_error_in_one_fit_is_raised_by_the_fit():
    class Failing(BoundsCheck):
        name = "failing"

        def fit(self, state, profile):
            raise ValueError("this check cannot be fitted")

    df = make_frame(100)
    src = TableSource(df)
    schema = ScanSchema.build(src.arrow_schema, label="y", id_column=None)
    checks = [BoundsCheck(), Failing()]
    (chunk,) = src.chunks(10**9, schema)
    state = pipeline.summarize(chunk, checks, sample_rows=1000, seed=0)
    with pytest.raises(ValueError, match="cannot be fitted"):
        pipeline.fit(state, checks)

"""The local engine's worker pool (``workers``): same bytes as one process, same errors.

Every scan here with ``workers=2`` really starts a ``spawn`` process (a few seconds) that
scores the first chunks (see :data:`BAD_ROW`); this process scores some of the others.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os

import numpy as np
import pandas as pd
import pytest

from poisonscan import scan
from poisonscan.checks import registry
from poisonscan.checks.bounds import BoundsCheck
from poisonscan.cli import main
from poisonscan.config import ScanConfig
from poisonscan.engines.local import ScanRun
from poisonscan.errors import ConfigError, InputError, PoisonscanError

from conftest import poisoned_frame

OUTPUTS = ("scores.parquet", "suspects.csv", "clean.csv", "quarantine.csv")
#: A row the exploding check refuses (see :class:`Exploding`): in the first chunk, which
#: a worker process always scores (the first ``in_flight`` chunks are sent out before this
#: process scores any itself).
BAD_ROW = 100


class Exploding(BoundsCheck):
    """The bounds check, except that scoring a chunk holding :data:`BAD_ROW` raises."""

    name = "exploding"

    def score(self, chunk):
        if (chunk.rows == BAD_ROW).any():
            raise InputError("refused in score", row=BAD_ROW, column="x")
        return super().score(chunk)


class Dying(BoundsCheck):
    """The bounds check, except that a worker process scoring :data:`BAD_ROW` dies."""

    name = "dying"

    def score(self, chunk):
        if (chunk.rows == BAD_ROW).any() and multiprocessing.parent_process() is not None:
            os._exit(7)
        return super().score(chunk)


@pytest.fixture(scope="module")
def data_csv(tmp_path_factory):
    """2,000 rows with the shared poisons, scanned in 4 chunks of 500."""
    path = tmp_path_factory.mktemp("workers") / "data.csv"
    poisoned_frame(rows=2_000, seed=3).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def one_and_two(data_csv, tmp_path_factory):
    outs = {}
    for workers in (1, 2):
        out = tmp_path_factory.mktemp(f"w{workers}")
        # verbose: check timings wrap the checks' methods; the pool must still ship them
        outs[workers] = scan(data_csv, label="y", out=out, overwrite=True, chunk_rows=500,
                             workers=workers, verbose=workers == 2)
    return outs


def test_two_workers_write_the_same_bytes_as_one(one_and_two):
    one, two = one_and_two[1].out, one_and_two[2].out
    for name in OUTPUTS:
        assert (one / name).read_bytes() == (two / name).read_bytes(), name
    assert len(one_and_two[1].suspects) > 0  # the comparison covers real suspects


def test_the_pool_ran_and_timed_the_checks_in_the_workers(one_and_two):
    timings = one_and_two[2].summary["timings_seconds"]
    assert "pool_startup" in timings
    assert "pool_startup" not in one_and_two[1].summary["timings_seconds"]
    families = [c for c in one_and_two[2].summary["checks"]]
    assert all(f"check:{f}" in timings for f in families)


def test_one_process_runs_passes_1_and_2_in_threads_and_writes_the_same_bytes(
        data_csv, tmp_path, monkeypatch):
    from poisonscan.engines import local

    threads = []
    real = local.ordered_map
    monkeypatch.setattr(local, "ordered_map",
                        lambda fn, items, n: threads.append(n) or real(fn, items, n))
    outs = {}
    for cores in (1, 3):
        monkeypatch.setattr(local, "usable_cores", lambda: cores)
        outs[cores] = scan(data_csv, label="y", out=tmp_path / f"c{cores}", chunk_rows=500,
                           workers=1, verbose=True).out
    # one core: chunks in this thread; three: passes 1 and 2 in three threads each
    assert threads == [3, 3]
    for name in OUTPUTS:
        assert (outs[1] / name).read_bytes() == (outs[3] / name).read_bytes(), name


@pytest.mark.parametrize("cores, rows, chunk, expected", [
    (2, 10**7, 1_000, 2),
    (8, 2_000, 500, 4),  # never more threads than chunks
    (2, 400, 500, 1),    # one chunk: no threads
    (1, 10**7, 1_000, 1),
])
def test_how_many_threads(monkeypatch, cores, rows, chunk, expected):
    monkeypatch.setattr("poisonscan.engines.local.usable_cores", lambda: cores)
    run = ScanRun(None, None, [], ScanConfig.resolve({"chunk_rows": chunk}), None, "csv")
    assert run.threads(rows) == expected


@pytest.fixture
def exploding(monkeypatch):
    monkeypatch.setitem(registry.REGISTRY, "exploding", f"{__name__}:Exploding")


@pytest.mark.parametrize("workers", [1, 2])
def test_an_error_in_a_worker_is_the_same_typed_error(exploding, data_csv, tmp_path, workers):
    with pytest.raises(InputError, match="refused in score") as raised:
        scan(data_csv, label="y", out=tmp_path / "out", chunk_rows=500, workers=workers,
             checks=("exploding",))
    assert raised.value.row == BAD_ROW and raised.value.column == "x"


@pytest.mark.parametrize("workers", ["1", "2"])
def test_an_error_in_a_worker_exits_2_like_in_process(exploding, data_csv, tmp_path, capsys,
                                                      workers):
    code = main(["scan", str(data_csv), "--label", "y", "--out", str(tmp_path / "out"),
                 "--chunk-rows", "500", "--workers", workers, "--checks", "exploding",
                 "--quiet"])
    assert code == 2
    assert "refused in score" in capsys.readouterr().err
    assert not (tmp_path / "out" / "scores.parquet").exists()  # nothing half-written


def test_a_worker_that_dies_is_an_internal_error(monkeypatch, data_csv, tmp_path):
    monkeypatch.setitem(registry.REGISTRY, "dying", f"{__name__}:Dying")
    with pytest.raises(PoisonscanError, match="worker process") as raised:
        scan(data_csv, label="y", out=tmp_path / "out", chunk_rows=500, workers=2,
             checks=("dying",))
    assert raised.value.exit_code == 3
    assert not (tmp_path / "out" / "scores.parquet").exists()


@pytest.mark.parametrize("value", [0, -1])
def test_workers_below_one_is_a_config_error(value):
    with pytest.raises(ConfigError, match="workers"):
        ScanConfig.resolve({"workers": value})


def test_workers_below_one_exits_2(data_csv, tmp_path, capsys):
    code = main(["scan", str(data_csv), "--label", "y", "--out", str(tmp_path / "o"),
                 "--workers", "0"])
    assert code == 2
    assert "workers" in capsys.readouterr().err


@pytest.mark.parametrize("workers, rows, chunk, expected", [
    (None, 10**7, 1_000, 1),  # unset: one process
    (1, 10**7, 1_000, 1),
    (3, 2_000, 500, 3),
    (8, 2_000, 500, 4),  # never more workers than chunks
    (2, 400, 500, 1),    # one chunk: no pool
])
def test_how_many_workers(workers, rows, chunk, expected):
    run = ScanRun(None, None, [], ScanConfig.resolve({"workers": workers, "chunk_rows": chunk}),
                  None, "csv")
    assert run.workers(rows) == expected


def test_a_plan_with_wrapped_methods_ships_without_them():
    import pickle

    from poisonscan.engines.pool import shippable
    from poisonscan.pipeline import Plan

    check = BoundsCheck()
    check.score = lambda chunk: None  # what verbose timing does (not picklable)
    plan = Plan(None, [check], None, None)
    shipped = pickle.loads(pickle.dumps(shippable(plan)))
    assert "score" not in vars(shipped.checks[0])
    assert "score" in vars(check)  # the caller's check is left as it was
    assert isinstance(shipped.checks[0], BoundsCheck)


def test_frames_score_the_same_in_workers(tmp_path):
    """An in-memory table (no file to re-read) is split among the workers too."""
    frame = pd.DataFrame({"a": np.arange(3_000, dtype=float) % 97,
                          "b": np.sin(np.arange(3_000)),
                          "y": np.where(np.arange(3_000) % 3 == 0, "p", "q")})
    frame.loc[77, "a"] = 1e9
    one = scan(frame, label="y", out=tmp_path / "one", chunk_rows=700, workers=1)
    two = scan(frame, label="y", out=tmp_path / "two", chunk_rows=700, workers=2)
    assert (one.out / "scores.parquet").read_bytes() == (two.out / "scores.parquet").read_bytes()
    pd.testing.assert_frame_equal(one.suspects, two.suspects)


def test_the_workers_score_the_first_chunks_and_this_process_helps():
    """Ordering and sharing of :class:`ScorePool` on a stand-in plan (no fitted checks)."""
    from poisonscan.engines.pool import ScorePool

    chunks = [Tagged(i) for i in range(12)]
    with ScorePool(TaggingPlan(), 3, in_flight=2) as pool:
        tables = list(pool.map(chunks))
    assert [t.column("chunk")[0].as_py() for t in tables] == list(range(12))  # input order
    where = [t.column("pid")[0].as_py() for t in tables]
    assert where[0] != os.getpid() and where[1] != os.getpid()  # sent out first
    assert pool.local == where.count(os.getpid())


class Tagged:
    def __init__(self, index):
        self.index = index


@dataclasses.dataclass
class TaggingPlan:
    """A picklable stand-in for a plan: ``score`` says which process scored the chunk."""

    checks: list = dataclasses.field(default_factory=list)

    def score(self, chunk):
        import time

        import pyarrow as pa
        time.sleep(0.05)
        return pa.table({"chunk": [chunk.index], "pid": [os.getpid()]})

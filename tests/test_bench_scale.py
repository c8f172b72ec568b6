"""A tiny run of the scale benchmark, its data generator and its measurement helper.

Seconds, not minutes: a few thousand rows, small generation blocks so that
several blocks, chunks and row groups are crossed.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import make_data  # noqa: E402

ROWS, BLOCK, RATE = 5_000, 1_000, 0.02


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write(path: Path, *, seed: int = 0, chunk_rows: int = 700, fmt: str | None = None) -> dict:
    return make_data.write_dataset(path, ROWS, fmt=fmt, seed=seed, poison_rate=RATE,
                                   chunk_rows=chunk_rows, row_group_rows=1_500,
                                   block_rows=BLOCK)


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("synth") / "synth.parquet"
    _write(path)
    return path


# --------------------------------------------------------------------------- generator

@pytest.mark.parametrize("fmt, name", [("parquet", "d.parquet"), ("csv", "d.csv")])
def test_output_does_not_depend_on_chunk_size(tmp_path, fmt, name):
    digests = set()
    for chunk_rows in (700, 2_500, 50_000):
        path = tmp_path / str(chunk_rows) / name
        _write(path, chunk_rows=chunk_rows, fmt=fmt)
        digests.add((_digest(path), _digest(make_data.truth_path(path))))
    assert len(digests) == 1


def test_parquet_row_groups_have_the_fixed_size(synth):
    meta = pq.ParquetFile(synth).metadata
    sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    assert sizes == [1_500, 1_500, 1_500, 500]


def test_seed_changes_the_data(tmp_path, synth):
    other = tmp_path / "other.parquet"
    _write(other, seed=1)
    assert _digest(other) != _digest(synth)


def test_csv_gz_holds_the_same_rows_as_parquet(tmp_path, synth):
    import pyarrow.csv as pacsv

    path = tmp_path / "d.csv.gz"
    assert _write(path)["format"] == "csv.gz"
    from_csv = pacsv.read_csv(path).to_pandas()
    from_parquet = pq.read_table(synth).to_pandas()
    assert list(from_csv.columns) == list(from_parquet.columns)
    assert from_csv["id"].tolist() == from_parquet["id"].tolist()
    assert from_csv["label"].tolist() == from_parquet["label"].tolist()
    np.testing.assert_allclose(from_csv["income"], from_parquet["income"], rtol=1e-12)


def test_schema_and_clean_structure(synth):
    frame = pq.read_table(synth).to_pandas()
    assert len(frame) == ROWS
    assert len(frame.columns) == 25
    assert frame["id"].is_unique
    assert set(frame["label"]) == set(make_data.LABELS)
    for column, rate in make_data.MISSING.items():
        assert 0.3 * rate < frame[column].isna().mean() < 3 * rate
    finite = np.isfinite(frame[["f1", "f2"]]).all(axis=1)
    assert frame.loc[finite, "f1"].corr(frame.loc[finite, "f2"]) > 0.3


def test_truth_count_matches_the_rate(synth):
    truth = pq.read_table(make_data.truth_path(synth)).to_pandas()
    assert len(truth) == round(RATE * ROWS)
    assert truth["row"].is_unique and truth["row"].between(0, ROWS - 1).all()
    assert (truth["id"] == truth["row"] + make_data.ID_OFFSET).all()
    counts = truth["attack"].value_counts()
    assert set(counts.index) == set(make_data.ATTACKS)
    assert counts.max() - counts.min() <= 1


def test_each_poison_is_present_in_the_data(synth):
    frame = pq.read_table(synth).to_pandas()
    truth = pq.read_table(make_data.truth_path(synth)).to_pandas()
    features = [c for c in frame.columns if c not in ("id", "label")]
    for row, attack, column in truth[["row", "attack", "column"]].itertuples(index=False):
        value = frame.at[row, column] if column in frame else None
        if attack == "bound_negative":
            assert value < 0
        elif attack == "bound_inf":
            assert np.isinf(value)
        elif attack == "bound_nan":
            assert np.isnan(value)
        elif attack == "unseen_category":
            assert value not in make_data.vocabulary(column)
        elif attack == "outlier":
            clean = frame[column].replace([np.inf, -np.inf], np.nan)
            assert value > clean.median() + 10 * clean.std()
        elif attack == "duplicate_conflict":
            same = (frame[features] == frame.loc[row, features]) | \
                   (frame[features].isna() & frame.loc[row, features].isna())
            twins = frame[same.all(axis=1) & (frame.index != row)]
            assert len(twins) >= 1
            assert (twins["label"] != frame.at[row, "label"]).all()


def test_rechunk_cuts_exact_sizes():
    import pyarrow as pa

    tables = [pa.table({"x": np.arange(n)}) for n in (3, 7, 1, 9)]
    sizes = [t.num_rows for t in make_data.rechunk(tables, 4)]
    assert sizes == [4, 4, 4, 4, 4]
    assert [t.num_rows for t in make_data.rechunk(tables, 6)] == [6, 6, 6, 2]


@pytest.mark.parametrize("text, rows", [("5000", 5000), ("100k", 100_000), ("2.5M", 2_500_000)])
def test_parse_rows(text, rows):
    assert make_data.parse_rows(text) == rows


# --------------------------------------------------------------------------- measurement

import _measure  # noqa: E402
import scale  # noqa: E402

needs_psutil = pytest.mark.skipif(importlib.util.find_spec("psutil") is None,
                                  reason="psutil (bench extra) is not installed")


HOLD = ("import time; block = bytearray({mb} * 2**20); "
        "block[::4096] = b'x' * len(block[::4096]); time.sleep({seconds})")
ALLOCATE_IN_TREE = textwrap.dedent(f"""
    import subprocess, sys, time
    child = subprocess.Popen([sys.executable, "-c", {HOLD.format(mb=150, seconds=1.5)!r}])
    time.sleep(0.3)
    {HOLD.format(mb=150, seconds=1.0)}
    sys.exit(child.wait())
""")


@needs_psutil
def test_peak_memory_sums_the_process_tree():
    # Measure from a fresh, small process: ru_maxrss of a forked child counts the memory
    # it inherited before exec, and the test process is large after a full suite.
    probe = textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {str(BENCH)!r})
        import _measure
        m = _measure.run_measured([sys.executable, "-c", {ALLOCATE_IN_TREE!r}], interval=0.02)
        print(json.dumps(m._asdict() if hasattr(m, "_asdict") else m.__dict__))
    """)
    import subprocess
    from types import SimpleNamespace
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    measured = SimpleNamespace(**json.loads(done.stdout.strip().splitlines()[-1]))
    measured.peak_mb = measured.peak_rss / _measure.MB
    assert measured.status == "ok", measured.stderr
    assert measured.max_processes >= 2
    # Two processes each holding 150 MB at the same time: the tree sum sees both,
    # the largest single process (ru_maxrss) only one.
    assert measured.peak_mb > 300
    assert measured.maxrss / _measure.MB < 300
    assert 1.0 < measured.wall_s < 30


@needs_psutil
def test_failures_and_limits_are_reported():
    failed = _measure.run_measured([sys.executable, "-c", "import sys; sys.exit(3)"])
    assert (failed.status, failed.returncode) == ("failed", 3)
    slow = _measure.run_measured([sys.executable, "-c", "import time; time.sleep(30)"],
                                 timeout=0.5)
    assert slow.status == "timeout" and slow.wall_s < 10
    big = _measure.run_measured(
        [sys.executable, "-c", "import time; b = bytearray(400 * 2**20); time.sleep(30)"],
        max_rss=200 * _measure.MB)
    assert big.status == "memory" and big.wall_s < 10


def test_read_floor_counts_rows(synth, tmp_path):
    assert _measure.read_floor(str(synth), batch_rows=999) == ROWS
    csv = tmp_path / "d.csv"
    _write(csv)
    assert _measure.read_floor(str(csv)) == ROWS


# --------------------------------------------------------------------------- scale.py


def test_update_section_keeps_the_rest_of_the_file(tmp_path):
    results = tmp_path / "RESULTS.md"
    scale.update_section(results, "first")
    assert results.read_text().startswith(scale.RESULTS_HEADING)
    other = "<!-- quality:start -->\nquality table\n<!-- quality:end -->\n"
    results.write_text(results.read_text() + "\n" + other)
    scale.update_section(results, "second")
    text = results.read_text()
    assert "first" not in text and "second" in text and other in text
    assert text.count(scale.MARK_START) == text.count(scale.MARK_END) == 1


@needs_psutil
def test_scale_benchmark_end_to_end(tmp_path):
    results = tmp_path / "RESULTS.md"
    argv = ["--sizes", "4000", "4000:csv", "--data-dir", str(tmp_path / "data"),
            "--out-dir", str(tmp_path / "out"), "--results", str(results),
            "--plot", str(tmp_path / "scale.png"), "--poison-rate", "0.01"]
    assert scale.main(argv) == 0
    raw = json.loads((tmp_path / "out" / "scale.json").read_text())
    assert [(r["rows"], r["format"]) for r in raw["results"]] == [(4000, "parquet"), (4000, "csv")]
    for entry in raw["results"]:
        assert entry["scan"]["status"] == "ok"
        assert entry["scan"]["peak_mb"] > entry["floor"]["peak_mb"] * 0.5 > 10
        assert entry["detection"]["poisoned"] == 40
        assert entry["detection"]["recall"] > 0
        assert set(entry["detection"]["recall_by_attack"]) == set(make_data.ATTACKS)
    text = results.read_text()
    assert "| 4,000 | parquet |" in text and "| 4,000 | csv |" in text
    assert (tmp_path / "scale.png").stat().st_size > 10_000
    again = tmp_path / "AGAIN.md"
    assert scale.main(["--render", str(tmp_path / "out" / "scale.json"), "--results", str(again),
                       "--plot", str(tmp_path / "again.png")]) == 0
    assert again.read_text() == text


def test_timings_table_reports_the_start_up_outside_the_scan():
    scan = _measure.Measurement(wall_s=12.5, peak_rss=0, maxrss=0, max_processes=1,
                                samples=1, returncode=0, status="ok")
    case = scale.CaseResult(scale.Case(1000, "parquet"), 1.0, scan, scan,
                            summary={"timings_seconds": {"pass1": 1.0, "fit": 2.0,
                                                         "total": 9.0}})
    header, _, row = scale.timings_table([case])
    assert header.startswith("| rows | format | start-up s | pass1 s | fit s | total s |")
    assert row == "| 1,000 | parquet | 3.5 | 1.0 | 2.0 | 9.0 |"

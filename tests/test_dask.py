"""The Dask engine gives the local engine's answer, on a LocalCluster started here.

Most tests share one in-process cluster (``processes=False``: starts in milliseconds,
workers are threads of this process); one test runs worker processes, which pickles
every state, the plan and the partitions.
"""

from __future__ import annotations

import copy
import filecmp
import json
import socket
import subprocess
import sys

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

distributed = pytest.importorskip("distributed")

import poisonscan  # noqa: E402
from poisonscan import cli  # noqa: E402
from poisonscan.errors import InputError, UsageError  # noqa: E402
from poisonscan.io.sources import open_source  # noqa: E402

from conftest import FIXTURES  # noqa: E402

#: sample_rows below the row count: the keyed sample is then a real choice across partitions
SCAN = dict(label="default", id_column="application_id", overwrite=True, sample_rows=500)
#: Outputs compared byte for byte (single files on both engines).
SAME_BYTES = ("scores.parquet", "suspects.csv")


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(processes=False, n_workers=2, threads_per_worker=1,
                                  dashboard_address=None) as local:
        yield local


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Local-engine scans of the fixtures, once per input."""
    done = {}

    def scan(key, inputs, **kw):
        if key not in done:
            out = tmp_path_factory.mktemp(f"local-{key}")
            done[key] = poisonscan.scan(inputs, out=out, **SCAN, **kw)
        return done[key]
    return scan


def _dask(inputs, out, cluster, **kw):
    return poisonscan.scan(inputs, out=out, engine="dask", scheduler=cluster.scheduler_address,
                           **SCAN, **kw)


def _table(path) -> pd.DataFrame:
    """A Parquet output as one frame, whether a file or a directory of parts."""
    return pq.read_table(path).to_pandas()


def assert_same(local, dask):
    """Same suspects, scores, reasons and routed rows; same bytes where both are files."""
    a, b = local.out, dask.out
    for name in SAME_BYTES:
        assert filecmp.cmp(a / name, b / name, shallow=False), name
    fmt = local.summary["output_format"]
    for stem in ("clean", "quarantine"):
        name = f"{stem}.{fmt}"
        if (a / name).is_file() and (b / name).is_file():
            assert filecmp.cmp(a / name, b / name, shallow=False), name
        else:  # a directory of parts on the Dask engine
            pd.testing.assert_frame_equal(_table(a / name), _table(b / name))
    for key in ("rows", "decision"):
        assert local.summary[key] == dask.summary[key], key
    for family, found in local.summary["checks"].items():  # parameters may differ by test
        assert _facts(found) == _facts(dask.summary["checks"][family]), family
    assert dask.summary["config"]["engine"] == "dask"


def _facts(check_summary: dict) -> dict:
    """What a check learned, without its parameters and without where the duplicate
    check's fingerprints were kept (memory or disk depends on the budget and the engine)."""
    facts = copy.deepcopy({k: v for k, v in check_summary.items() if k != "params"})
    stored = facts.get("learned", {}).get("fingerprints")
    if stored is not None:
        stored.pop("in_memory_mb")
        stored.pop("spilled_mb")
    return facts


def _parquet_in_row_groups(tmp_path, rows_per_group: int):
    path = tmp_path / "loans_groups.parquet"
    pq.write_table(pq.read_table(FIXTURES / "loans.parquet"), path, row_group_size=rows_per_group)
    return str(path)


def _split_csv(tmp_path, cuts=(700, 701)):
    """loans.csv as three files (one of a single row), header in each."""
    lines = (FIXTURES / "loans.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    head, body = lines[0], lines[1:]
    folder = tmp_path / "split"
    folder.mkdir()
    bounds = (0, *cuts, len(body))
    for i, (lo, hi) in enumerate(zip(bounds, bounds[1:])):
        (folder / f"part-{i}.csv").write_text(head + "".join(body[lo:hi]), encoding="utf-8")
    return str(folder)


# ------------------------------------------------------------------------ partitions

def test_parquet_partitions_follow_row_groups_and_know_their_first_row(tmp_path):
    source = open_source(_parquet_in_row_groups(tmp_path, 250))
    parts = source.partitions(600)
    assert [(p.start, p.num_rows) for p in parts] == [(0, 750), (750, 750), (1500, 500)]
    pieces = [(start, table) for part in parts for start, table, *_ in part.tables(100)]
    assert [start for start, _ in pieces][:9] == [0, 100, 200, 300, 400, 500, 600, 700, 750]
    whole = pa.concat_tables([table for _, table, *_ in source.tables(100)])
    pd.testing.assert_frame_equal(pa.concat_tables([t for _, t in pieces]).to_pandas(),
                                  whole.to_pandas())


def test_csv_partitions_are_files_placed_after_counting(tmp_path):
    from poisonscan.io.sources import place
    parts = open_source(_split_csv(tmp_path)).partitions(10)
    assert [p.start for p in parts] == [None] * 3
    with pytest.raises(ValueError):
        next(parts[0].tables(10))
    parts = place(parts, [p.count() for p in parts])
    assert [(p.start, p.num_rows) for p in parts] == [(0, 700), (700, 1), (701, 1299)]


# ------------------------------------------------------------------------ same answer

@pytest.mark.parametrize("partition_rows", [1, 600, 10_000])
def test_parquet_same_answer_for_any_partitioning(tmp_path, cluster, reference, partition_rows):
    path = _parquet_in_row_groups(tmp_path, 250)
    local = reference("parquet", str(FIXTURES / "loans.parquet"))
    dask = _dask(path, tmp_path / "dask", cluster, partition_rows=partition_rows)
    assert_same(local, dask)
    parts = sorted(p.name for p in (tmp_path / "dask" / "clean.parquet").iterdir())
    assert len(parts) == {1: 8, 600: 3, 10_000: 1}[partition_rows]
    assert local.summary["rows"]["quarantined"] > 0


def test_csv_same_answer_single_file_and_split(tmp_path, cluster, reference):
    local = reference("csv", str(FIXTURES / "loans.csv"))
    assert_same(local, _dask(str(FIXTURES / "loans.csv"), tmp_path / "one", cluster))
    split = _split_csv(tmp_path)
    local_split = poisonscan.scan(split, out=tmp_path / "local-split", **SCAN)
    assert_same(local_split, _dask(split, tmp_path / "split-out", cluster, chunk_rows=128))


def test_all_families_and_a_budget_same_answer(tmp_path, cluster):
    kw = dict(checks="bounds,outliers,labels,duplicates", contamination=0.02,
              family_weights={"labels": 4.0, "outliers": 0.5})
    path = _parquet_in_row_groups(tmp_path, 400)
    local = poisonscan.scan(path, out=tmp_path / "local", **SCAN, **kw)
    dask = _dask(path, tmp_path / "dask", cluster, partition_rows=500, **kw)
    assert_same(local, dask)
    assert local.summary["rows"]["quarantined"] == 40
    # the weights reach the fusion on both engines: without them the ranking differs
    plain = poisonscan.scan(path, out=tmp_path / "plain", **SCAN,
                            **dict(kw, family_weights=None))
    assert not plain.scores().score.equals(local.scores().score)


def test_worker_processes_give_the_same_bytes(tmp_path, reference):
    """Everything crosses process boundaries (pickled partitions, states and plan), and
    the duplicate check spills its fingerprints to files owned by the worker processes."""
    local = reference("parquet", str(FIXTURES / "loans.parquet"))
    spill = {"duplicates": {"memory_mb": 0.005}}  # every merge spills (a 5 kB budget)
    with distributed.LocalCluster(processes=True, n_workers=2, threads_per_worker=1,
                                  dashboard_address=None) as procs:
        dask = _dask(_parquet_in_row_groups(tmp_path, 250), tmp_path / "dask", procs,
                     partition_rows=250, families=spill)
        # a memory:// store lives in this process: workers elsewhere are refused up front
        # (they failed on their first read, exit 3)
        with pytest.raises(UsageError, match="memory:// URL lives in this process"):
            _dask(str(FIXTURES / "loans.parquet"), "memory://elsewhere/out", procs)
        memory = pytest.importorskip("fsspec").filesystem("memory")
        assert not memory.exists("/elsewhere/out")  # and nothing was written
    assert_same(local, dask)


def test_cli_engine_dask_with_scheduler(tmp_path, cluster, reference, capsys):
    local = reference("csv", str(FIXTURES / "loans.csv"))
    out = tmp_path / "cli"
    code = cli.main(["scan", str(FIXTURES / "loans.csv"), "--label", "default",
                     "--id-column", "application_id", "--out", str(out), "--quiet",
                     "--sample-rows", "500", "--engine", "dask", "--scheduler", cluster.scheduler_address])
    assert code == 0
    for name in ("scores.parquet", "suspects.csv", "clean.csv", "quarantine.csv"):
        assert filecmp.cmp(local.out / name, out / name, shallow=False), name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rows"] == local.summary["rows"]
    assert not any(p.name.startswith(".") for p in out.iterdir())  # staging and parts gone


def test_in_memory_frame_is_sliced_into_partitions(tmp_path, cluster, reference):
    frame = pq.read_table(FIXTURES / "loans.parquet").to_pandas()
    local = poisonscan.scan(frame, out=tmp_path / "local", **SCAN)
    assert_same(local, _dask(frame, tmp_path / "dask", cluster, partition_rows=900))


# ------------------------------------------------------------------------ failures

def test_empty_input_is_an_input_error(tmp_path, cluster):
    empty = tmp_path / "empty.parquet"
    pq.write_table(pq.read_table(FIXTURES / "loans.parquet").slice(0, 0), empty)
    with pytest.raises(InputError, match="no data rows"):
        _dask(str(empty), tmp_path / "out", cluster)


def test_a_partition_that_fails_to_parse_names_its_file_and_row(tmp_path, cluster, capsys):
    split = _split_csv(tmp_path)
    bad = tmp_path / "split" / "part-2.csv"
    lines = bad.read_text().splitlines(keepends=True)
    lines[5] = "A1,2,3\n"  # too few fields, in the third file
    bad.write_text("".join(lines))
    with pytest.raises(InputError, match=r"part-2\.csv.*malformed CSV row at data row 4"):
        _dask(split, tmp_path / "out", cluster)
    assert not (tmp_path / "out").exists()
    code = cli.main(["scan", split, "--label", "default", "--out", str(tmp_path / "cli"),
                     "--quiet", "--engine", "dask", "--scheduler", cluster.scheduler_address])
    assert code == 2
    assert "part-2.csv" in capsys.readouterr().err


def test_unreachable_scheduler_is_a_usage_error(tmp_path, monkeypatch):
    from poisonscan.engines import dask as engine
    monkeypatch.setattr(engine, "CONNECT_TIMEOUT", "1s")
    with pytest.raises(UsageError, match="cannot reach the Dask scheduler"):
        poisonscan.scan(str(FIXTURES / "loans.csv"), out=tmp_path / "o", **SCAN, engine="dask",
                        scheduler="tcp://127.0.0.1:9")


def test_a_cluster_without_workers_is_a_usage_error(tmp_path, monkeypatch):
    """It used to fail after 30 s with the scheduler's raw "No valid workers found"."""
    from poisonscan.engines import dask as engine
    monkeypatch.setattr(engine, "CONNECT_TIMEOUT", "1s")
    with distributed.LocalCluster(processes=False, n_workers=0,
                                  dashboard_address=None) as empty:
        with pytest.raises(UsageError, match="has no worker"):
            _dask(str(FIXTURES / "loans.csv"), tmp_path / "o", empty)
    assert not (tmp_path / "o").exists()


def test_rerun_over_a_directory_output_replaces_it(tmp_path, cluster):
    path = _parquet_in_row_groups(tmp_path, 250)
    out = tmp_path / "out"
    _dask(path, out, cluster, partition_rows=250)
    assert (out / "clean.parquet").is_dir()
    local = poisonscan.scan(path, out=out, **SCAN)  # a file replaces the directory
    assert (out / "clean.parquet").is_file()
    assert len(_table(out / "clean.parquet")) == local.summary["rows"]["clean"]


# ------------------------------------------------------------------------ object storage

def test_memory_url_round_trip_on_both_engines(tmp_path, cluster, reference):
    fsspec = pytest.importorskip("fsspec")
    fs = fsspec.filesystem("memory")
    table = pq.read_table(FIXTURES / "loans.parquet")
    for i, start in enumerate(range(0, table.num_rows, 800)):
        with fs.open(f"/bucket/in/part-{i}.parquet", "wb") as fh:
            pq.write_table(table.slice(start, 800), fh, row_group_size=300)
    local = reference("parquet", str(FIXTURES / "loans.parquet"))
    try:
        poisonscan.scan("memory://bucket/in", out="memory://bucket/out-local", **SCAN)
        _dask("memory://bucket/in/*.parquet", "memory://bucket/out-dask", cluster,
              partition_rows=300)
        for out in ("/bucket/out-local", "/bucket/out-dask"):
            names = {p.rsplit("/", 1)[-1] for p in fs.ls(out, detail=False)}
            assert names == {"scores.parquet", "suspects.csv", "clean.parquet",
                             "quarantine.parquet", "summary.json", "report.html"}
            with fs.open(f"{out}/scores.parquet", "rb") as fh:
                assert fh.read() == (local.out / "scores.parquet").read_bytes()
            with fs.open(f"{out}/suspects.csv", "rb") as fh:
                assert fh.read() == (local.out / "suspects.csv").read_bytes()
            clean = pq.read_table(f"{out}/clean.parquet", filesystem=fs).to_pandas()
            pd.testing.assert_frame_equal(clean, _table(local.out / "clean.parquet"))
            summary = json.loads(fs.cat(f"{out}/summary.json"))
            assert summary["rows"] == local.summary["rows"]
            assert not any(p.rsplit("/", 1)[-1].startswith(".")
                           for p in fs.ls(out, detail=False))
        with pytest.raises(poisonscan.OutputExistsError):
            poisonscan.scan("memory://bucket/in", out="memory://bucket/out-local",
                            label="default")
    finally:
        fs.rm("/bucket", recursive=True)


def test_csv_url_input_reads_like_the_local_file(tmp_path, reference):
    fsspec = pytest.importorskip("fsspec")
    fs = fsspec.filesystem("memory")
    fs.pipe("/csvbucket/loans.csv", (FIXTURES / "loans.csv").read_bytes())
    try:
        local = reference("csv", str(FIXTURES / "loans.csv"))
        remote = poisonscan.scan("memory://csvbucket/loans.csv", out=tmp_path / "o", **SCAN)
        for name in ("scores.parquet", "suspects.csv", "clean.csv", "quarantine.csv"):
            assert filecmp.cmp(local.out / name, remote.out / name, shallow=False), name
        with pytest.raises(InputError, match="no such file"):
            poisonscan.scan("memory://csvbucket/missing.csv", out=tmp_path / "m", **SCAN)
    finally:
        fs.rm("/csvbucket", recursive=True)


# ------------------------------------------------------------------------ benchmark

def test_scale_benchmark_runs_dask_beside_local(tmp_path):
    """``scale.py --dask`` on a tiny file: both engines measured, same answer, one section."""
    pytest.importorskip("psutil")
    import sys
    bench = str(FIXTURES.parent / "benchmarks")
    if bench not in sys.path:
        sys.path.insert(0, bench)
    import scale

    results = tmp_path / "RESULTS.md"
    results.write_text("# poisonscan benchmark results\n\n<!-- scale:start -->\nkept\n"
                       "<!-- scale:end -->\n")
    # scans run as subprocesses: give them a TCP scheduler whose workers are threads here
    with distributed.LocalCluster(processes=False, n_workers=1, threads_per_worker=2,
                                  protocol="tcp", dashboard_address=None) as tcp:
        code = scale.main(["--sizes", "3000", "--dask", "--data-dir", str(tmp_path / "data"),
                           "--out-dir", str(tmp_path / "out"), "--results", str(results),
                           "--scan-args", "--sample-rows 500 --checks bounds",
                           "--dask-args", f"--scheduler {tcp.scheduler_address} "
                                          "--partition-rows 1000"])
    assert code == 0
    raw = json.loads((tmp_path / "out" / "scale-dask.json").read_text())
    [entry] = raw["results"]
    assert entry["local"]["status"] == entry["dask"]["status"] == "ok"
    assert entry["same"] and all(entry["same"].values())
    text = results.read_text()
    assert "kept" in text  # the other scale section is left alone
    assert text.count(scale.DASK_START) == text.count(scale.DASK_END) == 1
    assert "| 3,000 | parquet | dask |" in text and "the same answer" in text


def test_its_own_cluster_reaches_a_memory_url(tmp_path):
    """A memory:// store lives in this process: the cluster the engine starts for a scan
    had worker processes, which could not see it (exit 3, FileNotFoundError)."""
    fsspec = pytest.importorskip("fsspec")
    fs = fsspec.filesystem("memory")
    with fs.open("/ownbucket/in/loans.parquet", "wb") as fh:
        fh.write((FIXTURES / "loans.parquet").read_bytes())
    try:
        result = poisonscan.scan("memory://ownbucket/in", out="memory://ownbucket/out",
                                 engine="dask", **SCAN)
        local = poisonscan.scan(str(FIXTURES / "loans.parquet"), out=tmp_path / "local",
                                **SCAN)
        assert result.summary["rows"] == local.summary["rows"]
        assert result.quarantine().equals(local.quarantine())
    finally:
        fs.rm("/ownbucket", recursive=True)


def test_an_input_error_on_a_worker_of_its_own_cluster_is_one_line(tmp_path):
    """With no --scheduler the engine starts its own cluster; a partition's input error
    must reach stderr as the one line of any input error, not as the workers' logs (nor
    as the scheduler's warning that another cluster holds port 8787)."""
    parts = tmp_path / "parts"
    parts.mkdir()
    pq.write_table(pa.table({"v": [[1.0, 2.0]] * 300, "y": ["a", "b"] * 150}),
                   parts / "a.parquet")
    pq.write_table(pa.table({"v": [[1.0, 2.0]] * 299 + [[1.0, 2.0, 3.0]],
                             "y": ["a", "b"] * 150}), parts / "b.parquet")
    held = socket.socket()  # as another cluster would: the scheduler warns, and takes another
    try:
        held.bind(("", 8787))
        held.listen(1)
    except OSError:
        pass  # another cluster of the test session holds it already
    try:
        done = subprocess.run([sys.executable, "-m", "poisonscan", "scan", str(parts),
                               "--label", "y", "--out", str(tmp_path / "out"), "--quiet",
                               "--engine", "dask"], capture_output=True, text=True, timeout=300)
    finally:
        held.close()
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [done.stderr.strip()], done.stderr
    assert "b.parquet: row 599: column 'v'" in done.stderr

"""URLs as inputs and outputs (poisonscan.io.storage), without a network."""

from __future__ import annotations

import csv
import importlib.util
import json
import os

import pytest

from poisonscan import cli
from poisonscan.errors import InputError
from poisonscan.io import storage

from conftest import FIXTURES


def test_urls_and_local_paths_are_told_apart():
    assert storage.is_url("s3://bucket/key.parquet") and storage.is_url("memory://x/y")
    assert not storage.is_url("data/file.csv") and not storage.is_url("/abs/file.csv")
    assert not storage.is_url("C:\\data\\file.csv")
    assert storage.join("gs://b/out/", "scores.parquet") == "gs://b/out/scores.parquet"


@pytest.mark.skipif(importlib.util.find_spec("s3fs") is not None, reason="s3fs is installed")
def test_a_missing_protocol_package_is_one_line_exit_2(tmp_path, capsys):
    assert cli.main(["scan", "s3://bucket/data.csv", "--label", "y", "--out",
                     str(tmp_path / "o"), "--quiet"]) == 2
    assert "s3:// URLs need s3fs: pip install s3fs" in capsys.readouterr().err
    assert cli.main(["scan", str(FIXTURES / "loans.csv"), "--label", "default", "--out",
                     "s3://bucket/out", "--quiet"]) == 2
    assert "pip install s3fs" in capsys.readouterr().err


def test_memory_url_globs_directories_and_misses():
    fsspec = pytest.importorskip("fsspec")
    fs = fsspec.filesystem("memory")
    for name in ("b.csv", "a.csv", "_SUCCESS", ".hidden/c.csv", "sub/d.parquet"):
        fs.pipe(f"/globbucket/{name}", b"x,y\n1,2\n")
    try:
        assert storage.expand("memory://globbucket/*.csv") == [
            "memory:///globbucket/a.csv", "memory:///globbucket/b.csv"]
        assert storage.expand("memory://globbucket") == [
            "memory:///globbucket/a.csv", "memory:///globbucket/b.csv",
            "memory:///globbucket/sub/d.parquet"]
        with pytest.raises(InputError, match="no file matches"):
            storage.expand("memory://globbucket/*.tsv")
        with pytest.raises(InputError, match="no such file"):
            storage.expand("memory://globbucket/nothing.csv")
    finally:
        fs.rm("/globbucket", recursive=True)


def test_a_file_url_output_directory_that_does_not_exist_is_created(tmp_path, capsys):
    """fsspec's local filesystem creates no parents: the scan moved its files into a
    directory that was not there and failed with exit 3."""
    out = tmp_path / "new" / "scan"
    code = cli.main(["scan", str(FIXTURES / "loans.csv"), "--label", "default", "--out",
                     out.as_uri(), "-q"])
    assert code == 0, capsys.readouterr().err
    assert {"clean.csv", "quarantine.csv", "summary.json"} <= set(os.listdir(out))


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_scan_result_reads_its_outputs_from_a_url(tmp_path, fmt):
    """``ScanResult.out`` was a ``Path`` of the URL: ``clean()``, ``quarantine()``,
    ``scores()`` and ``to_html()`` failed for a scan written to object storage."""
    import poisonscan

    kw = dict(label="default", id_column="application_id", checks=["bounds"], format=fmt,
              quiet=True)
    local = poisonscan.scan(str(FIXTURES / "loans.csv"), out=tmp_path / "o", **kw)
    remote = poisonscan.scan(str(FIXTURES / "loans.csv"), out=f"memory://results{fmt}/o", **kw)
    assert remote.out == f"memory://results{fmt}/o"
    assert remote.quarantine().equals(local.quarantine()) and len(local.quarantine()) > 0
    assert remote.clean().equals(local.clean())
    assert remote.scores().equals(local.scores())
    assert remote.to_html().startswith("<!DOCTYPE html>")


def test_apply_writes_a_url_out_through_the_store(tmp_path, capsys, monkeypatch):
    """``apply --out file://DIR`` wrote into a local directory named ``file:``."""
    scan = tmp_path / "scan"
    assert cli.main(["scan", str(FIXTURES / "loans.csv"), "--label", "default", "--checks",
                     "bounds", "--out", str(scan), "-q"]) == 0
    with open(scan / "suspects.csv", encoding="utf-8") as handle:
        row, other = (line["row"] for line, _ in zip(csv.DictReader(handle), range(2)))
    decisions = tmp_path / "d.csv"
    decisions.write_text(f"row,decision\n{row},keep\n", encoding="utf-8")
    target = tmp_path / "reviewed"
    monkeypatch.chdir(tmp_path)  # where a directory named "file:" would appear
    code = cli.main(["apply", str(scan), "--decisions", str(decisions), "--out",
                     target.as_uri(), "-q"])
    assert code == 0, capsys.readouterr().err
    assert not (tmp_path / "file:").exists()
    summary = json.loads((target / "summary.json").read_text(encoding="utf-8"))
    assert summary["decisions"][-1]["kept_rows"] == [int(row)]
    assert {"clean.csv", "quarantine.csv", "scores.parquet"} <= set(os.listdir(target))
    # a file:// scan directory is a local one, read in place and rewritten in place like
    # its path (it was "not a scan directory", and in place needed --overwrite)
    decisions.write_text(f"row,decision\n{other},drop\n", encoding="utf-8")
    assert cli.main(["apply", target.as_uri(), "--decisions", str(decisions), "--out",
                     target.as_uri() + "/", "-q"]) == 0, capsys.readouterr().err
    summary = json.loads((target / "summary.json").read_text(encoding="utf-8"))
    assert summary["decisions"][-1]["dropped_rows"] == [int(other)]
    # a scan directory in another store is refused in one line
    assert cli.main(["apply", "memory://bucket/scan", "--decisions", str(decisions)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "copy the scan from the store first" in err

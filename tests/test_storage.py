"""URLs as inputs and outputs (poisonscan.io.storage), without a network."""

from __future__ import annotations

import importlib.util
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

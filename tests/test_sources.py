"""Sources: every input kind, chunking, robust CSV typing."""

from __future__ import annotations

import bz2
import gzip

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

import poisonscan
from poisonscan.errors import InputError
from poisonscan.io import sources
from poisonscan.io.schema import ScanSchema

from conftest import make_frame


def _frame_with_numeric_poisons(rows=300):
    df = make_frame(rows)
    df["x"] = df["x"].astype(float)
    df.loc[5, "x"] = -5000.0
    df.loc[9, "count"] = 999
    df.loc[20, "colour"] = "ultraviolet"
    return df


def _write(df: pd.DataFrame, path):
    name = str(path)
    if name.endswith(".parquet"):
        df.to_parquet(path, index=False)
        return
    text = df.to_csv(index=False).encode()
    if name.endswith(".gz"):
        text = gzip.compress(text)
    elif name.endswith(".bz2"):
        text = bz2.compress(text)
    elif name.endswith(".zst"):
        text = zstandard.ZstdCompressor().compress(text)
    path.write_bytes(text)


def _scores(source, tmp_path, name, **kw):
    res = poisonscan.scan(source, label="y", out=tmp_path / name, chunk_rows=64, **kw)
    return res.scores()[["row", "score", "suspect"]]


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz", ".csv.bz2", ".csv.zst", ".parquet"])
def test_every_file_kind_gives_the_same_scores(tmp_path, suffix):
    df = _frame_with_numeric_poisons()
    reference = _scores(df, tmp_path, "ref")
    path = tmp_path / f"data{suffix}"
    _write(df, path)
    got = _scores(str(path), tmp_path, "out")
    pd.testing.assert_frame_equal(got, reference)
    assert set(got.loc[got.suspect, "row"]) == {5, 9, 20}


@pytest.mark.parametrize("how", ["list", "glob", "directory"])
def test_several_files_are_one_dataset_in_order(tmp_path, how):
    df = _frame_with_numeric_poisons()
    reference = _scores(df, tmp_path, "ref")
    parts = tmp_path / "parts"
    parts.mkdir()
    paths = []
    for i, (lo, hi) in enumerate([(0, 100), (100, 101), (101, 300)]):
        paths.append(parts / f"part-{i}.parquet")
        _write(df.iloc[lo:hi], paths[-1])
    (parts / "_SUCCESS").write_text("")
    source = {"list": [str(p) for p in paths], "glob": str(parts / "part-*.parquet"),
              "directory": str(parts)}[how]
    got = _scores(source, tmp_path, "out")
    pd.testing.assert_frame_equal(got, reference)


def test_pyarrow_table_source(tmp_path):
    df = _frame_with_numeric_poisons()
    got = _scores(pa.Table.from_pandas(df, preserve_index=False), tmp_path, "out")
    pd.testing.assert_frame_equal(got, _scores(df, tmp_path, "ref"))


def test_directory_order_is_sorted_and_ignores_hidden_files(tmp_path):
    for name in ["b.csv", "a.csv", ".hidden.csv", "_tmp.csv", "notes.txt"]:
        (tmp_path / name).write_text("v\n1\n")
    sub = tmp_path / "c"
    sub.mkdir()
    (sub / "d.csv").write_text("v\n1\n")
    found = [p.relative_to(tmp_path).as_posix() for p in sources.resolve_inputs([str(tmp_path)])]
    assert found == ["a.csv", "b.csv", "c/d.csv"]


def test_csv_chunks_are_exact_and_rows_contiguous_across_files(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "CSV_BLOCK_BYTES", 256)  # many small pyarrow batches
    for i, n in enumerate([50, 23]):
        pd.DataFrame({"v": np.arange(n) + 1000 * i}).to_csv(tmp_path / f"{i}.csv", index=False)
    src = sources.open_source([str(tmp_path / "0.csv"), str(tmp_path / "1.csv")])
    blocks = [(start, t.num_rows) for start, t, _, _ in src.tables(7)]
    assert [n for _, n in blocks] == [7] * 7 + [1] + [7] * 3 + [2]
    starts = [s for s, _ in blocks]
    assert starts == sorted(starts) and starts[0] == 0
    assert all(s + n == nxt for (s, n), nxt in zip(blocks, starts[1:]))


def test_a_late_cell_that_breaks_the_inferred_type_is_a_finding(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "FIRST_LOOK_BYTES", 128)  # inference sees a few rows only
    monkeypatch.setattr(sources, "CSV_BLOCK_BYTES", 512)
    df = make_frame(400).astype(str)
    df.loc[390, "count"] = "lots"
    df.loc[391, "count"] = " 4 "  # padded, still a number
    path = tmp_path / "late.csv"
    df.to_csv(path, index=False)
    src = sources.open_source(str(path), text_columns=["y"])
    assert src.arrow_schema.field("count").type == pa.float64()
    res = poisonscan.scan(str(path), label="y", out=tmp_path / "out", chunk_rows=100)
    assert res.suspects["row"].tolist() == [390]
    assert "count unparseable 'lots'" in res.suspects["reason"][0]
    # the original text survives in the quarantine file
    assert pd.read_csv(tmp_path / "out" / "quarantine.csv", dtype=str)["count"].tolist() == ["lots"]


def test_mostly_numeric_column_stays_numeric_despite_one_bad_cell_in_first_block(tmp_path):
    df = make_frame(200).astype(str)
    df.loc[2, "x"] = "n/a?"
    path = tmp_path / "d.csv"
    df.to_csv(path, index=False)
    src = sources.open_source(str(path))
    assert src.arrow_schema.field("x").type == pa.float64()


def test_null_markers_are_missing_but_nan_is_a_value(tmp_path):
    df = make_frame(200).astype(str)
    df.loc[[1, 2, 3], "x"] = ["", "NA", "null"]
    df.loc[4, "x"] = "NaN"
    path = tmp_path / "d.csv"
    df.to_csv(path, index=False)
    src = sources.open_source(str(path), text_columns=["y"])
    schema = ScanSchema.build(src.arrow_schema, label="y", id_column=None)
    chunk = next(src.chunks(1000, schema))
    assert chunk.missing("x")[[1, 2, 3]].all() and not chunk.missing("x")[4]
    assert np.isnan(chunk.numeric("x")[4])
    res = poisonscan.scan(str(path), label="y", out=tmp_path / "out")
    assert res.suspects["row"].tolist() == [4]


def test_label_and_id_columns_are_read_as_text(tmp_path):
    df = pd.DataFrame({"id": ["007", "010"] * 50, "f": np.arange(100.0), "y": [1, 2] * 50})
    path = tmp_path / "d.csv"
    df.to_csv(path, index=False)
    src = sources.open_source(str(path), text_columns=["id", "y"])
    assert src.arrow_schema.field("id").type == pa.string()
    assert src.arrow_schema.field("y").type == pa.string()


def test_parquet_is_streamed_in_batches(tmp_path):
    df = make_frame(1000)
    path = tmp_path / "d.parquet"
    pq.write_table(pa.Table.from_pandas(df), path, row_group_size=128)
    src = sources.open_source(str(path))
    sizes = [t.num_rows for _, t, _, _ in src.tables(100)]
    assert sum(sizes) == 1000 and max(sizes) <= 100


def test_schema_mismatch_names_both_files_and_the_column(tmp_path):
    make_frame(10).to_parquet(tmp_path / "a.parquet")
    make_frame(10).assign(x=lambda d: d.x.astype("float32")).to_parquet(tmp_path / "b.parquet")
    with pytest.raises(InputError, match=r"b\.parquet.*a\.parquet.*'x'"):
        sources.open_source(str(tmp_path))

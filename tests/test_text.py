"""Free-text columns: detected or declared, hashed + tf-idf + SVD fitted on the sample."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import poisonscan
from poisonscan.cli import main
from poisonscan.encode import FeatureEncoder, TextEncoder
from poisonscan.errors import ConfigError
from poisonscan.io.schema import ScanSchema
from poisonscan.io.sources import TableSource

from conftest import messages


def chunks(df, size, text_columns=(), label="y"):
    source = TableSource(df)
    schema = ScanSchema.build(source.arrow_schema, label=label, id_column=None,
                              text_columns=text_columns)
    return list(source.chunks(size, schema))


def block(enc, X, column="text"):
    return X[:, [i for i, n in enumerate(enc.feature_names_) if n.startswith(column + "__svd")]]


def test_long_distinct_wordy_columns_are_text_identifiers_are_not():
    df = messages()
    df["uid"] = [f"u{i:05d}" for i in range(len(df))]
    df["colour"] = np.where(np.arange(len(df)) % 2, "dark red", "light blue sky")
    (chunk,) = chunks(df, 10_000)
    enc = FeatureEncoder().fit(chunk)
    assert list(enc.text_) == ["text"]
    assert "identifier-like" in enc.skipped_["uid"]
    assert "colour" in enc.categorical_  # few distinct values: a category, wordy or not
    names = [n for n in enc.feature_names_ if n.startswith("text__")]
    assert names == [f"text__svd{i}" for i in range(enc.text_components)] + ["text__length"]
    X = enc.transform(chunk)
    y = df["y"].to_numpy()
    svd = block(enc, X)
    # the leading directions tell the two vocabularies apart
    gap = np.abs(svd[y == "ham"].mean(axis=0) - svd[y == "spam"].mean(axis=0)).max()
    assert gap > 0.5


def test_declared_text_column_is_text_whatever_it_looks_like():
    df = messages()
    df["tag"] = np.where(np.arange(len(df)) % 3, "alpha", "beta gamma")
    (chunk,) = chunks(df, 10_000, text_columns=["tag"])
    enc = FeatureEncoder().fit(chunk)
    assert set(enc.text_) == {"text", "tag"} and "tag" not in enc.categorical_
    with pytest.raises(ConfigError, match="'n' holds int64, not text"):
        chunks(df, 10_000, text_columns=["n"])


def test_detection_can_be_turned_off():
    (chunk,) = chunks(messages(), 10_000)
    enc = FeatureEncoder(text_min_words=None).fit(chunk)
    assert not enc.text_ and "identifier-like" in enc.skipped_["text"]


def test_empty_null_and_huge_cells():
    df = messages(rows=200)
    df.loc[3, "text"] = ""
    df.loc[4, "text"] = None
    huge = "claim cash " * 90_000  # 990 kB (cells above 1 MiB are an input error)
    df.loc[5, "text"] = huge
    (chunk,) = chunks(df, 10_000, text_columns=["text"])
    enc = FeatureEncoder(max_text_chars=500).fit(chunk)
    X = enc.transform(chunk)
    assert np.isfinite(X).all() and X.shape[0] == 200
    names = enc.feature_names_
    assert X[4, names.index("text__missing")] == 1.0
    assert X[:, names.index("text__missing")].sum() == 1.0
    # empty and null cells have the components of an empty document
    np.testing.assert_array_equal(block(enc, X)[3], block(enc, X)[4])
    # only the first max_text_chars characters are featurised; the length counts them all
    text = enc.text_["text"]
    cut = text.transform(np.array([huge[:500], huge], dtype=object))
    np.testing.assert_array_equal(cut[0, :-1 - text.indicator_], cut[1, :-1 - text.indicator_])
    assert X[5, names.index("text__length")] == X[:, names.index("text__length")].max()


def test_unseen_tokens_at_scoring_time():
    df = messages(rows=200)
    (chunk,) = chunks(df, 10_000)
    enc = FeatureEncoder().fit(chunk)
    new = pd.DataFrame({"text": ["zyxw qqqq vvvv neverseen", "", "free prize zyxw"],
                        "n": [1, 1, 1], "y": ["ham", "ham", "spam"]})
    (scored,) = chunks(new, 10)
    X = enc.transform(scored)
    assert np.isfinite(X).all()
    svd = block(enc, X)
    np.testing.assert_allclose(svd[0], svd[1])  # words never seen carry no direction
    assert np.abs(svd[2] - svd[1]).max() > 0.1  # seen words still count beside unseen ones


def test_chunking_invariance_and_determinism():
    df = messages(rows=300)
    (whole,) = chunks(df, 10_000)
    enc = FeatureEncoder().fit(whole)
    parts = np.vstack([enc.transform(c) for c in chunks(df, 37)])
    np.testing.assert_array_equal(parts, enc.transform(whole))
    again = FeatureEncoder().fit(chunks(df, 10_000)[0])
    np.testing.assert_array_equal(again.transform(whole), enc.transform(whole))


def test_block_columns_are_where_the_text_and_vector_columns_are_encoded():
    df = messages(rows=200)
    df["m"] = np.where(np.arange(200) % 7 == 0, np.nan, 1.0)  # a missing indicator too
    rng = np.random.default_rng(0)
    table = pa.Table.from_pandas(df, preserve_index=False).append_column(
        "emb", pa.FixedSizeListArray.from_arrays(pa.array(rng.normal(size=200 * 3)), 3))
    source = TableSource(table)
    schema = ScanSchema.build(source.arrow_schema, label="y", id_column=None)
    (chunk,) = source.chunks(10_000, schema)
    enc = FeatureEncoder().fit(chunk)
    names = enc.feature_names_
    for column in ("text", "emb"):
        inside = names[enc.block_columns(column)]
        assert inside and all(n.startswith(column + "__") for n in inside)
        assert len(inside) == sum(n.startswith(column + "__") for n in names)
    np.testing.assert_array_equal(enc.transform(chunk)[:, enc.block_columns("text")],
                                  enc.text_["text"].transform(chunk.strings("text")))
    with pytest.raises(KeyError):
        enc.block_columns("n")


def test_text_encoder_with_one_distinct_word():
    enc = TextEncoder().fit(np.array(["hello"] * 5 + [None], dtype=object))
    out = enc.transform(np.array(["hello", "bye", None], dtype=object))
    assert out.shape == (3, enc.n_outputs_) and np.isfinite(out).all()


def test_cli_scan_of_text_csv_finds_flipped_labels(tmp_path, capsys):
    df = messages(rows=600, seed=1)
    flipped = [11, 222, 333, 444, 555]
    for row in flipped:
        df.loc[row, "y"] = "spam" if df.loc[row, "y"] == "ham" else "ham"
    df.loc[7, "text"] = "<script>alert(1)</script> " + "x" * 5000
    path = tmp_path / "sms.csv"
    df.to_csv(path, index=False)
    out = tmp_path / "out"
    code = main(["scan", str(path), "--label", "y", "--out", str(out), "--quiet",
                 "--contamination", "0.02"])
    assert code == 0, capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["columns"]["text"]["kind"] == "text"
    assert "text" not in summary["checks"]["outliers"]["learned"]["skipped_columns"]
    suspects = pd.read_csv(out / "suspects.csv")
    assert len(set(flipped) & set(suspects["row"])) >= 4
    clean = pd.read_csv(out / "clean.csv", keep_default_na=False)
    quarantine = pd.read_csv(out / "quarantine.csv", keep_default_na=False)
    assert len(clean) + len(quarantine) == len(df)
    html = (out / "report.html").read_text()
    assert "<script>alert(1)" not in html


def test_text_columns_option_from_the_command_line(tmp_path, capsys):
    df = messages(rows=200)
    df["tag"] = np.where(np.arange(len(df)) % 3, "alpha", "beta gamma")
    path = tmp_path / "d.csv"
    df.to_csv(path, index=False)
    out = tmp_path / "out"
    code = main(["scan", str(path), "--label", "y", "--out", str(out), "--quiet",
                 "--text-columns", "tag", "--ignore-columns", "n"])
    assert code == 0, capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["columns"]["tag"]["kind"] == "text"
    assert summary["skipped_columns"] == {"n": "ignored (ignore_columns)"}
    code = main(["scan", str(path), "--label", "y", "--out", str(tmp_path / "o2"), "--quiet",
                 "--text-columns", "y"])
    assert code == 2 and "label or id column" in capsys.readouterr().err


def test_text_and_vectors_together_in_one_scan(tmp_path):
    df = messages(rows=300)
    rng = np.random.default_rng(0)
    table = pa.Table.from_pandas(df, preserve_index=False).append_column(
        "emb", pa.FixedSizeListArray.from_arrays(pa.array(rng.normal(size=300 * 4)), 4))
    result = poisonscan.scan(table, label="y", out=str(tmp_path / "o"), quiet=True)
    kinds = {c: v["kind"] for c, v in result.summary["columns"].items()}
    assert kinds == {"text": "text", "n": "numeric", "emb": "vector"}

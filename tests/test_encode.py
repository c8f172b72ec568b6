"""The shared feature encoder: every column kind, unseen values, empty and identifier columns."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from poisonscan.encode import FeatureEncoder
from poisonscan.io.schema import ScanSchema
from poisonscan.io.sources import TableSource


def chunks(data, size=None, label=None):
    """The chunks of a DataFrame or Arrow table (one chunk by default)."""
    source = TableSource(data)
    schema = ScanSchema.build(source.arrow_schema, label=label, id_column=None)
    n = source.table.num_rows
    return list(source.chunks(size or max(n, 1), schema))


def one_chunk(data, label=None):
    (chunk,) = chunks(data, label=label)
    return chunk


def mixed(rows=200, seed=0) -> pa.Table:
    """One column of every kind the schema knows."""
    rng = np.random.default_rng(seed)
    start = dt.datetime(2024, 1, 1)
    return pa.table({
        "i": pa.array(rng.integers(0, 100, rows)),
        "f": pa.array(rng.normal(10, 2, rows)),
        "s": pa.array(rng.choice(["a", "b", "c"], rows)),
        "d": pa.array(rng.choice(["x", "y"], rows)).dictionary_encode(),
        "b": pa.array(rng.random(rows) < 0.3),
        "t": pa.array([start + dt.timedelta(hours=int(h)) for h in rng.integers(0, 5000, rows)],
                      pa.timestamp("us")),
        "day": pa.array([dt.date(2020, 1, 1) + dt.timedelta(days=int(k))
                         for k in rng.integers(0, 900, rows)], pa.date32()),
        "y": pa.array(rng.choice(["p", "q"], rows)),
    })


def test_every_column_kind_is_encoded_and_the_label_is_not():
    chunk = one_chunk(mixed(), label="y")
    enc = FeatureEncoder().fit(chunk)
    X = enc.transform(chunk)
    assert enc.numeric_ == ["i", "f", "t", "day"]
    assert enc.categorical_ == ["s", "d", "b"]
    assert enc.skipped_ == {}
    names = enc.feature_names_
    assert names[:4] == ["i", "f", "t", "day"]
    assert {"s_a", "s_b", "s_c", "d_x", "d_y", "b_false", "b_true"} <= set(names)
    assert not [n for n in names if n.startswith("y")]
    assert X.shape == (200, len(names)) and X.dtype == np.float64 and np.isfinite(X).all()
    # numeric columns are centred on their median and scaled by the 10-90% range
    for j, column in enumerate(["i", "f", "t", "day"]):
        assert abs(np.median(X[:, j])) < 1e-9, column
        assert 0.7 < np.subtract(*np.quantile(X[:, j], [0.9, 0.1])) <= 1.0 + 1e-9, column
    # one-hot: exactly one level per categorical row
    for column in ("s", "d", "b"):
        block = X[:, [k for k, n in enumerate(names) if n.startswith(column + "_")]]
        assert np.array_equal(block.sum(axis=1), np.ones(200)), column
    # booleans follow the values
    b = np.asarray(chunk.table.column("b").to_pylist())
    assert np.array_equal(X[:, names.index("b_true")] == 1, b)


def test_missing_non_finite_and_extreme_values():
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, 300)
    x[[5, 6]] = np.nan
    x[7] = np.inf
    x[8] = 1e12
    chunk = one_chunk(pd.DataFrame({"x": x}))
    enc = FeatureEncoder(clip=20.0).fit(chunk)
    X = enc.transform(chunk)
    assert enc.feature_names_ == ["x", "x__missing"]
    assert np.array_equal(np.flatnonzero(X[:, 1]), [5, 6, 7])  # NaN and inf count as missing
    assert np.allclose(X[[5, 6, 7], 0], 0.0)  # imputed with the median
    assert X[8, 0] == 20.0  # clipped
    assert np.isfinite(X).all()


def test_unseen_and_rare_categories_at_scoring_time():
    rng = np.random.default_rng(2)
    colour = rng.choice(["red", "green", "blue"], 1000).astype(object)
    colour[:3] = "mauve"  # 0.3% of the sample: rarer than min_frequency
    sample = one_chunk(pd.DataFrame({"colour": colour}))
    enc = FeatureEncoder(min_frequency=0.005).fit(sample)
    assert "colour_infrequent_sklearn" in enc.feature_names_
    later = one_chunk(pd.DataFrame({"colour": ["red", "ultraviolet", None, "mauve"]}))
    X = enc.transform(later)
    names = enc.feature_names_
    assert X.shape == (4, len(names)) and np.isfinite(X).all()
    assert X[0, names.index("colour_red")] == 1
    assert X[1, names.index("colour_infrequent_sklearn")] == 1  # unseen -> infrequent
    assert X[2, names.index("colour_infrequent_sklearn")] == 1  # missing, never sampled
    assert X[3, names.index("colour_infrequent_sklearn")] == 1  # rare level
    assert np.array_equal(X.sum(axis=1), np.ones(4))


def test_unseen_category_without_an_infrequent_level_encodes_as_no_level():
    sample = one_chunk(pd.DataFrame({"colour": ["red", "green"] * 50}))
    enc = FeatureEncoder().fit(sample)
    X = enc.transform(one_chunk(pd.DataFrame({"colour": ["ultraviolet", "red"]})))
    assert X[0].sum() == 0 and X[1].sum() == 1


def test_all_missing_columns_are_skipped_and_scoring_still_works():
    df = pd.DataFrame({"x": np.arange(50) % 7 * 1.5, "empty_num": [np.nan] * 50,
                       "empty_cat": pd.Series([None] * 50, dtype=object), "c": ["u", "v"] * 25})
    chunk = one_chunk(pa.Table.from_pandas(df, preserve_index=False).cast(pa.schema([
        ("x", pa.float64()), ("empty_num", pa.float64()), ("empty_cat", pa.string()),
        ("c", pa.string())])))
    enc = FeatureEncoder().fit(chunk)
    assert set(enc.skipped_) == {"empty_num", "empty_cat"}
    assert "no finite value" in enc.skipped_["empty_num"]
    assert "no value" in enc.skipped_["empty_cat"]
    assert enc.feature_names_ == ["x", "c_u", "c_v"]
    later = one_chunk(pd.DataFrame({"x": [1.0], "empty_num": [5.0], "empty_cat": ["z"],
                                    "c": ["u"]}))
    assert enc.transform(later).shape == (1, 3)


def test_identifier_like_columns_are_left_out():
    rng = np.random.default_rng(3)
    n = 400
    df = pd.DataFrame({
        "uid": [f"user-{i:06d}" for i in range(n)],               # distinct strings
        "seq": 1_000_000 + np.arange(n),                          # sequential integer id
        "ordered": np.arange(n) * 1.0,                            # float in row order: kept
        "shuffled": rng.permutation(n),                           # distinct, not in row order
        "amount": np.round(rng.lognormal(3, 1, n), 2),           # distinct floats
        "city": rng.choice([f"c{k}" for k in range(30)], n),     # many levels, not an id
    })
    enc = FeatureEncoder().fit(one_chunk(df))
    assert set(enc.skipped_) == {"uid", "seq"}
    assert "identifier-like" in enc.skipped_["uid"] and "identifier-like" in enc.skipped_["seq"]
    assert {"shuffled", "amount", "ordered"} <= set(enc.numeric_)
    assert enc.categorical_ == ["city"]
    keep = FeatureEncoder(sequential_ratio=None).fit(one_chunk(df))
    assert "seq" in keep.numeric_


def test_transform_is_cached_per_chunk_and_chunk_invariant():
    table = mixed(300)
    enc = FeatureEncoder().fit(one_chunk(table))
    whole = one_chunk(table)
    X = enc.transform(whole)
    assert enc.transform(whole) is X  # cached on the chunk
    parts = np.vstack([enc.transform(c) for c in chunks(table, size=37)])
    assert np.array_equal(X, parts)
    mine = enc.transform(whole, owned=True)  # the caller's to change: a copy
    assert mine is not X and np.array_equal(mine, X)
    mine[:] = -1.0
    assert enc.transform(whole) is X and not (X == -1.0).all()


def test_one_row_sample():
    df = pd.DataFrame({"x": [3.0], "c": ["a"]})
    enc = FeatureEncoder().fit(one_chunk(df))
    X = enc.transform(one_chunk(pd.DataFrame({"x": [3.0, 10.0, np.nan], "c": ["a", "b", None]})))
    assert enc.feature_names_ == ["x", "c_a"]
    assert X.shape == (3, 2) and np.isfinite(X).all()
    assert X[0, 0] == 0.0 and X[1, 0] == 7.0  # zero spread: unit scale


@pytest.mark.parametrize("kw", [{"max_categories": 3}, {"min_frequency": 0.2}])
def test_frequent_levels_only(kw):
    rng = np.random.default_rng(4)
    levels = rng.choice(list("abcdefgh"), 500, p=[0.4, 0.3, 0.1, 0.1, 0.05, 0.03, 0.01, 0.01])
    enc = FeatureEncoder(**kw).fit(one_chunk(pd.DataFrame({"c": levels})))
    names = enc.feature_names_
    assert names[-1] == "c_infrequent_sklearn"
    assert {"c_a", "c_b"} <= set(names) and "c_h" not in names


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_one_hot_lookup_matches_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    n = 3000
    frame = pd.DataFrame({
        "zipf": [f"v{int(k)}" for k in rng.zipf(1.6, n)],          # long tail -> infrequent
        "few": rng.choice(["a", "b", "c"], n, p=[0.6, 0.399, 0.001]),
        "flag": rng.random(n) < 0.5,
        "gappy": pd.Series(rng.choice(["x", "y", None], n), dtype=object),
        "num": rng.normal(size=n),
    })
    enc = FeatureEncoder(max_categories=8).fit(one_chunk(frame.iloc[:2000]))
    later = frame.iloc[2000:].copy()
    later.loc[later.index[:5], "few"] = "unseen"
    later.loc[later.index[5:10], "zipf"] = "unseen"
    chunk = one_chunk(later.reset_index(drop=True))
    X = enc.transform(chunk)
    k = len(enc.feature_names_) - len(enc.onehot_.get_feature_names_out())
    expected = enc.onehot_.transform(enc._categorical_matrix(chunk))
    assert np.array_equal(X[:, k:], expected)


def skewed(rows=400, seed=3) -> pd.DataFrame:
    """An income-like column spanning decades, and columns that must stay linear."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "income": np.round(np.exp(rng.normal(10, 1.2, rows)), 2),   # skewed, non-negative
        "height": rng.normal(170, 10, rows),                        # symmetric
        "children": rng.poisson(1.5, rows).astype(float),           # small count (0-9)
        "change": np.exp(rng.normal(0, 1.5, rows)) - 1.0,           # skewed, with negatives
        "seen": pd.to_datetime("1970-01-01")
        + pd.to_timedelta(np.round(np.exp(rng.normal(3, 1.5, rows)), 3), unit="D")
        .floor("s"),                                                # skewed datetime
    })


def test_skewed_non_negative_columns_on_the_log_scale():
    df = skewed()
    chunk = one_chunk(df)
    linear = FeatureEncoder().fit(chunk)
    logged = FeatureEncoder(log_skewed=True).fit(chunk)
    assert linear.log_columns_ == []
    assert logged.log_columns_ == ["income"]
    X, L = linear.transform(chunk), logged.transform(chunk)
    j = logged.feature_names_.index("income")
    x = df["income"].to_numpy()
    knee = np.quantile(x, 0.99)  # log1p up to the knee, linear beyond it
    q10, q90 = np.percentile(x, [10, 90])
    slope = max((np.log1p(q90) - np.log1p(q10)) / (q90 - q10), 1 / (1 + knee))
    t = np.where(x > knee, np.log1p(knee) + (x - knee) * slope, np.log1p(x))
    t10, t50, t90 = np.percentile(t, [10, 50, 90])
    assert np.allclose(L[:, j], np.clip((t - t50) / (t90 - t10), -20, 20))
    others = [i for i, name in enumerate(logged.feature_names_) if name != "income"]
    assert np.array_equal(L[:, others], X[:, others])  # every other column as before
    assert np.ptp(L[:, j]) < np.ptp(X[:, j])  # a few large incomes no longer set the scale


def test_far_beyond_the_sample_a_log_scaled_value_is_as_far_out_as_on_its_own_scale():
    """The log scale keeps the bulk's shape but must not hide an impossible value: five
    times the largest income lies about as many spreads out as on the linear scale."""
    df = skewed()
    sample = one_chunk(df)
    linear = FeatureEncoder(clip=1e9).fit(sample)
    logged = FeatureEncoder(clip=1e9, log_skewed=True).fit(sample)
    probe = df.head(2).copy()
    probe["income"] = [df["income"].max() * 5, df["income"].median()]
    j = logged.feature_names_.index("income")
    far_linear = linear.transform(one_chunk(probe))[0, j]
    far_logged = logged.transform(one_chunk(probe))[0, j]
    assert 0.8 * far_linear < far_logged < 1.2 * far_linear, (far_logged, far_linear)
    on_log = np.log1p(df["income"].to_numpy())
    pure = (np.log1p(probe["income"].iloc[0]) - np.median(on_log)) / np.subtract(
        *np.percentile(on_log, [90, 10]))
    assert far_logged > 3 * pure  # a pure log scale would put it a few spreads out


def test_log_scale_at_scoring_time_negative_missing_and_chunking():
    df = skewed()
    enc = FeatureEncoder(log_skewed=True).fit(one_chunk(df))
    j = enc.feature_names_.index("income")
    probe = df.head(4).copy()
    probe["income"] = [-50_000.0, np.nan, 0.0, 1e12]
    P = enc.transform(one_chunk(probe))
    low = enc.transform(one_chunk(df))[:, j].min()
    assert P[0, j] < low  # a negative income, never sampled, is mirrored below them all
    assert P[1, j] == 0.0  # missing: the median of the sampled values on the log scale
    assert P[2, j] < 0.0 < P[3, j] <= 20.0  # zero and a huge income: ordered, clipped
    assert np.isfinite(P).all()
    whole = enc.transform(one_chunk(df))
    assert np.array_equal(whole, np.vstack([enc.transform(c) for c in chunks(df, size=37)]))


def test_log_encoder_built_on_the_linear_matrix_gives_the_same_numbers():
    df = skewed()
    df.loc[[3, 9], "income"] = [np.nan, np.inf]
    sample = one_chunk(df)
    linear = FeatureEncoder().fit(sample)
    alone = FeatureEncoder(log_skewed=True).fit(sample)
    shared = FeatureEncoder(log_skewed=True).fit(sample).share(linear)
    probe = df.copy()
    probe.loc[[0, 1], "income"] = [-5.0, 1e15]
    for chunk in chunks(probe, size=64):
        expected = alone.transform(chunk)
        assert np.array_equal(shared.transform(chunk), expected)
        assert not np.array_equal(linear.transform(chunk), expected)  # it did relog
        fresh = shared.transform(chunk, owned=True)  # a new matrix each time, uncached
        assert np.array_equal(fresh, expected) and fresh is not shared.transform(chunk)
    with pytest.raises(ValueError, match="linear encoder"):
        FeatureEncoder(log_skewed=True).fit(sample).share(alone)


def test_every_output_column_names_the_input_column_it_encodes():
    data = mixed().to_pandas()
    data.loc[::7, "f"] = np.nan  # a missing-value indicator for "f"
    data["note"] = [f"row {k} says word{k % 5} and more" for k in range(len(data))]
    chunk = one_chunk(pa.Table.from_pandas(data, preserve_index=False), label="y")
    enc = FeatureEncoder(text_components=2).fit(chunk)
    sources = enc.sources()
    assert len(sources) == len(enc.feature_names_)
    named = dict(zip(enc.feature_names_, sources))
    assert named["f__missing"] == "f" and named["i"] == "i"
    assert {named[n] for n in ("s_a", "s_b", "s_c")} == {"s"}
    assert {named[n] for n in ("b_false", "b_true")} == {"b"}
    assert {s for n, s in named.items() if n.startswith("note__")} == {"note"}
    assert set(sources) == set(enc.numeric_) | set(enc.categorical_) | set(enc.text_)

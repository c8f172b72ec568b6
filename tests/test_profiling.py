"""Pass-1 states: the keyed sample and mergeable summaries."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pyarrow as pa
import pytest

from poisonscan.io.sources import TableSource
from poisonscan.io.schema import ScanSchema
from poisonscan.profiling import CategoryStats, NumericStats, Profile

from conftest import make_frame


def _chunks(df, size, label="y"):
    src = TableSource(df)
    schema = ScanSchema.build(src.arrow_schema, label=label, id_column=None)
    return list(src.chunks(size, schema))


def _profile(chunks, sample_rows=50, seed=0, order=None):
    parts = [Profile.of(c, sample_rows=sample_rows, seed=seed) for c in chunks]
    if order is not None:
        parts = [parts[i] for i in order]
    out = parts[0]
    for p in parts[1:]:
        out = out.merge(p)
    return out


def _same(a: Profile, b: Profile):
    assert a.n_rows == b.n_rows
    assert a.sample.rows.tolist() == b.sample.rows.tolist()
    assert a.sample.table.equals(b.sample.table)
    assert a.labels == b.labels
    for name, sa in a.columns.items():
        sb = b.columns[name]
        if isinstance(sa, CategoryStats):
            assert sa == sb
        else:
            exact = ("count", "missing", "nan", "posinf", "neginf", "unparseable", "min", "max")
            assert all(getattr(sa, f) == getattr(sb, f) for f in exact)
            assert sa.mean == pytest.approx(sb.mean, rel=1e-12)
            assert sa.m2 == pytest.approx(sb.m2, rel=1e-9)


def test_profile_does_not_depend_on_chunk_size():
    df = make_frame(500)
    _same(_profile(_chunks(df, 500)), _profile(_chunks(df, 37)))


def test_merge_is_associative_and_commutative():
    chunks = _chunks(make_frame(300), 100)
    a, b, c = (Profile.of(ch, sample_rows=40, seed=3) for ch in chunks)
    left = a.merge(b).merge(c)
    _same(left, a.merge(b.merge(c)))
    for order in itertools.permutations([a, b, c]):
        _same(left, order[0].merge(order[1]).merge(order[2]))


def test_sample_is_a_seeded_uniform_subset():
    chunks = _chunks(make_frame(4000), 250)
    s0 = _profile(chunks, sample_rows=400, seed=0).sample
    s1 = _profile(chunks, sample_rows=400, seed=1).sample
    assert len(s0) == 400 and len(set(s0.rows)) == 400
    assert s0.rows.tolist() != s1.rows.tolist()  # the seed matters
    # uniform over the row range: each quarter of the rows holds about a quarter
    counts = np.histogram(s0.rows, bins=4, range=(0, 4000))[0]
    assert counts.min() > 60
    # the sample's values are those rows' values
    x = make_frame(4000)["x"].to_numpy()
    assert np.allclose(s0.table.column("x").to_numpy(), x[s0.rows])


def test_small_dataset_sample_is_everything():
    prof = _profile(_chunks(make_frame(30), 7), sample_rows=100)
    assert prof.sample.rows.tolist() == list(range(30))


def test_numeric_stats_count_special_values():
    df = make_frame(10)
    df["x"] = [1.0, np.nan, np.inf, -np.inf, 2.0, 3.0, None, 4.0, 5.0, 6.0]
    table = pa.Table.from_pandas(df, preserve_index=False)
    # pandas turns NaN into null on the way to Arrow; build the NaN explicitly
    x = pa.array([1.0, float("nan"), float("inf"), float("-inf"), 2, 3, None, 4, 5, 6],
                 from_pandas=False)
    table = table.set_column(table.schema.get_field_index("x"), "x", x)
    st = _profile(_chunks(table, 4)).columns["x"]
    assert (st.count, st.nan, st.posinf, st.neginf, st.missing) == (6, 1, 1, 1, 1)
    assert (st.min, st.max) == (1.0, 6.0)
    assert st.mean == pytest.approx(3.5)


def test_category_counts_overflow_to_high_cardinality():
    a = CategoryStats.of_array(pa.array([f"v{i}" for i in range(8)]), cap=10)
    b = CategoryStats.of_array(pa.array([f"w{i}" for i in range(8)]), cap=10)
    assert not a.high_cardinality
    merged = a.merge(b)
    assert merged.high_cardinality and merged.count == 16
    assert merged.merge(a).high_cardinality  # once high-cardinality, always


def test_numeric_merge_matches_one_pass():
    values = np.random.default_rng(0).normal(size=1000)
    df = make_frame(1000).assign(x=values)
    whole = _profile(_chunks(df, 1000)).columns["x"]
    parts = _profile(_chunks(df, 33)).columns["x"]
    assert isinstance(whole, NumericStats)
    assert parts.mean == pytest.approx(values.mean(), abs=1e-12)
    assert parts.m2 / parts.count == pytest.approx(values.var(), rel=1e-10)
    assert whole.count == parts.count == 1000


@pytest.mark.parametrize("huge", [[1e308], [1e308, -1e308, 1.7e308]])
@pytest.mark.parametrize("size", [300, 37])
def test_numeric_stats_of_huge_finite_values_do_not_overflow(huge, size):
    # the squares of values near 1e308 overflow; the standard deviation itself does not
    values = np.random.default_rng(0).normal(10, 2, size=300)
    values[4:4 + len(huge)] = huge
    df = make_frame(300).assign(x=values)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a RuntimeWarning (overflow) fails the test
        st = _profile(_chunks(df, size)).columns["x"]
        summary = st.to_dict()
    expected = np.std(values / 1e300) * 1e300
    assert st.std == pytest.approx(expected, rel=1e-12)
    assert summary["std"] == pytest.approx(expected, rel=1e-9)
    assert summary["mean"] == pytest.approx(np.mean(values / 1e300) * 1e300, rel=1e-9)


def test_the_log_scale_encoder_is_the_shared_one_unless_a_column_is_skewed():
    rng = np.random.default_rng(5)
    symmetric = pa.table({"x": rng.normal(size=300), "y": rng.choice(["a", "b"], 300)})
    profile = _profile(_chunks(symmetric, 100), sample_rows=1000)
    assert profile.encoder(log_skewed=True) is profile.encoder()  # encoded once per chunk
    wide = symmetric.append_column("income", pa.array(np.exp(rng.normal(10, 1.2, 300))))
    profile = _profile(_chunks(wide, 100), sample_rows=1000)
    logged = profile.encoder(log_skewed=True)
    assert logged is not profile.encoder() and logged is profile.encoder(log_skewed=True)
    assert logged.log_columns_ == ["income"] and profile.encoder().log_columns_ == []

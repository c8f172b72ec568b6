"""Conservation and invariance, by property-based tests (Hypothesis; issue 13).

On generated small mixed-type data (NaN, None, ±inf, huge numbers, odd strings), split into
files at random points and scanned with a random chunk size:

* rows in = clean + quarantine, no row in both, ``row`` ids unique and complete;
* the clean file holds exactly the non-suspect input rows, in input order, unchanged;
* scores, suspects and reasons are identical to a one-file, one-chunk scan.

Deterministic (``derandomize=True``): CI never flakes, and a failure reproduces.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import poisonscan

SETTINGS = settings(max_examples=15, deadline=None, derandomize=True, database=None,
                    phases=[Phase.explicit, Phase.generate],  # no minutes-long shrinking in CI
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow, HealthCheck.data_too_large])

ODD_STRINGS = ["red", "green", "blue", "", "=1+1", "-2", "<b>x</b>", 'q"uote', "a,b",
               "multi\nline", "ñandú", "  padded ", "NaN", "null", "\t", "@SUM(A1)", "0"]
FLOATS = st.one_of(
    st.floats(-1e6, 1e6, allow_nan=False, width=32),
    st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -0.0, 1e300, -1e300, 5e-324]),
    st.none(),
)


@st.composite
def frames(draw):
    n = draw(st.integers(min_value=12, max_value=50))
    x = draw(st.lists(FLOATS, min_size=n, max_size=n))
    k = draw(st.lists(st.integers(-3, 40) | st.none(), min_size=n, max_size=n))
    c = draw(st.lists(st.sampled_from(ODD_STRINGS) | st.none(), min_size=n, max_size=n))
    y = draw(st.lists(st.sampled_from(["spam", "ham", "ham"]) | st.none(), min_size=n, max_size=n))
    df = pa.table({"x": pa.array(x, pa.float64()), "k": pa.array(k, pa.int64()),
                   "c": pa.array(c, pa.string()), "y": pa.array(y, pa.string())})
    cuts = sorted(set(draw(st.lists(st.integers(1, n - 1), max_size=4))))
    chunk_rows = draw(st.integers(1, n + 5))
    return df, cuts, chunk_rows


def _table(table: pa.Table) -> pa.Table:
    return table


def _write_parts(table: pa.Table, cuts, directory, fmt: str) -> list[str]:
    directory.mkdir(parents=True)
    bounds = [0, *cuts, table.num_rows]
    paths = []
    for i, (lo, hi) in enumerate(zip(bounds, bounds[1:])):
        path = directory / f"part-{i:03d}.{fmt}"
        part = table.slice(lo, hi - lo)
        if fmt == "parquet":
            pq.write_table(part, path)
        else:
            pacsv.write_csv(part, path)
        paths.append(str(path))
    return paths


def _scan(source, out, **kw):
    return poisonscan.scan(source, label="y", out=out, seed=3, sample_rows=64, **kw)


def _check_conservation(res, table: pa.Table, fmt: str) -> None:
    n = table.num_rows
    rows = res.summary["rows"]
    assert rows["in"] == n
    assert rows["clean"] + rows["quarantined"] == n
    scores = pq.read_table(res.out / "scores.parquet")
    ids = scores.column("row").to_numpy()
    assert np.array_equal(np.sort(ids), np.arange(n)), "row ids not unique and complete"
    suspect = scores.column("suspect").to_numpy(zero_copy_only=False)
    if fmt == "parquet":
        quarantine = pq.read_table(res.out / "quarantine.parquet")
        clean = pq.read_table(res.out / "clean.parquet")
    else:
        text = pacsv.ConvertOptions(column_types={"_row": pa.int64()},
                                    strings_can_be_null=False)
        quarantine = pacsv.read_csv(res.out / "quarantine.csv", convert_options=text)
        clean = pacsv.read_csv(res.out / "clean.csv", convert_options=text)
    q_rows = quarantine.column("_row").to_numpy()
    assert len(set(q_rows.tolist())) == len(q_rows), "a row quarantined twice"
    assert set(q_rows.tolist()) == set(ids[suspect].tolist())
    assert clean.num_rows + quarantine.num_rows == n
    assert "_row" not in clean.schema.names
    if fmt == "parquet":  # clean = the non-suspect input rows, in order, unchanged
        keep = np.ones(n, dtype=bool)
        keep[q_rows] = False
        assert _canon(clean).equals(_canon(table.filter(pa.array(keep))))
        assert _canon(quarantine.select(table.schema.names)).equals(
            _canon(table.take(pa.array(np.sort(q_rows)))))


def _canon(table: pa.Table) -> pa.Table:
    """Float columns as text, so that NaN equals NaN (and stays apart from null).

    ``+ 0.0`` folds -0.0 into 0.0: the bounds score of a row can come out as -0.0 or 0.0
    depending on the chunking (found by this test; reported, harmless for ranking).
    """
    return pa.table([pc.add(c, 0.0).cast(pa.string()) if pa.types.is_floating(c.type) else c
                     for c in table.columns], names=table.schema.names)


def _same_results(a, b) -> None:
    sa = pq.read_table(a.out / "scores.parquet")
    sb = pq.read_table(b.out / "scores.parquet")
    ca, cb = _canon(sa), _canon(sb)
    differ = [name for name in ca.schema.names if not ca.column(name).equals(cb.column(name))]
    assert not differ, f"scores differ with chunk size / file split in columns {differ}"
    pd.testing.assert_frame_equal(a.suspects, b.suspects)


@SETTINGS
@given(case=frames())
def test_parquet_conservation_and_invariance(tmp_path_factory, case):
    df, cuts, chunk_rows = case
    tmp = tmp_path_factory.mktemp("p")
    table = _table(df)
    whole = _write_parts(table, [], tmp / "whole", "parquet")
    parts = _write_parts(table, cuts, tmp / "parts", "parquet")
    reference = _scan(whole, tmp / "ref", chunk_rows=10_000)
    split = _scan(str(tmp / "parts"), tmp / "split", chunk_rows=chunk_rows)
    assert len(parts) == len(cuts) + 1
    _check_conservation(reference, table, "parquet")
    _check_conservation(split, table, "parquet")
    _same_results(reference, split)


@SETTINGS
@given(case=frames())
def test_csv_conservation_and_invariance(tmp_path_factory, case):
    df, cuts, chunk_rows = case
    tmp = tmp_path_factory.mktemp("c")
    table = _table(df)
    whole = _write_parts(table, [], tmp / "whole", "csv")
    _write_parts(table, cuts, tmp / "parts", "csv")
    reference = _scan(whole, tmp / "ref", chunk_rows=10_000)
    split = _scan(str(tmp / "parts"), tmp / "split", chunk_rows=chunk_rows)
    _check_conservation(reference, table, "csv")
    _check_conservation(split, table, "csv")
    _same_results(reference, split)
    assert (reference.out / "clean.csv").read_bytes() == (split.out / "clean.csv").read_bytes()
    assert (reference.out / "quarantine.csv").read_bytes() \
        == (split.out / "quarantine.csv").read_bytes()


@SETTINGS
@given(case=frames())
def test_in_memory_table_matches_any_chunking(tmp_path_factory, case):
    df, _, chunk_rows = case
    tmp = tmp_path_factory.mktemp("t")
    table = _table(df)
    one = _scan(table, tmp / "one", chunk_rows=10_000)
    many = _scan(table, tmp / "many", chunk_rows=chunk_rows)
    _check_conservation(many, table, "parquet")
    _same_results(one, many)

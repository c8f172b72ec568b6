"""The bounds check: each kind of finding, robust ranges, rare categories."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import poisonscan

from conftest import POISONS, make_frame, poisoned_frame


def _scan(tmp_path, df, name="out", **kw):
    path = tmp_path / f"{name}.csv"
    df.to_csv(path, index=False)
    kw.setdefault("label", "y")
    return poisonscan.scan(str(path), out=tmp_path / name, **kw)


def test_every_poison_is_found_with_a_reason_naming_column_value_and_bound(tmp_path):
    res = _scan(tmp_path, poisoned_frame())
    found = dict(zip(res.suspects["row"], res.suspects["reason"]))
    assert set(found) == set(POISONS)  # and no clean row
    for row, (_, _, words) in POISONS.items():
        assert words in found[row]
    assert "max(" in found[3] or "min(" in found[3]


def test_robust_range_is_not_widened_by_the_outliers_themselves(tmp_path):
    df = make_frame(2000)
    outliers = np.arange(0, 2000, 250)  # 0.4% of rows, far out
    df.loc[outliers, "x"] = 1e6
    res = _scan(tmp_path, df)
    assert set(res.suspects["row"]) == set(outliers)
    learned = res.summary["checks"]["bounds"]["learned"]["ranges"]["x"]
    assert float(learned["max"]) < 200


def test_a_wider_quantile_tolerates_more_contamination(tmp_path):
    df = make_frame(1000)
    outliers = np.arange(0, 1000, 33)  # 3% of rows
    df.loc[outliers, "x"] = 1e6
    default = _scan(tmp_path, df, "default")
    assert len(default.suspects) < len(outliers)  # Q(0.99) is itself an outlier
    wide = _scan(tmp_path, df, "wide", families={"bounds": {"quantile": 0.05}})
    assert set(wide.suspects["row"]) == set(outliers)


def test_label_missing_and_rare_label(tmp_path):
    df = make_frame(3000)
    df.loc[10, "y"] = None
    df.loc[20, "y"] = "p0s"
    res = _scan(tmp_path, df)
    reasons = dict(zip(res.suspects["row"], res.suspects["reason"]))
    assert set(reasons) == {10, 20}
    assert "label 'y' missing" in reasons[10]
    assert "label 'y' rare value 'p0s'" in reasons[20]


def test_long_tailed_categories_are_not_flagged(tmp_path):
    df = make_frame(1000)
    rng = np.random.default_rng(1)
    df["city"] = [f"city{int(v)}" for v in rng.zipf(1.5, 1000)]  # many singletons by nature
    res = _scan(tmp_path, df)
    assert len(res.suspects) == 0


def test_near_constant_and_sparse_columns(tmp_path):
    df = make_frame(2000)
    df["flag"] = 0
    df.loc[7, "flag"] = 40  # the only other value of a constant column
    sparse = np.zeros(2000)
    sparse[np.arange(5, 2000, 100)] = np.arange(1, 21)  # 1% small positive counts
    df["sparse"] = sparse
    res = _scan(tmp_path, df)
    rows = set(res.suspects["row"])
    assert 7 in rows
    assert len(rows & set(range(5, 2000, 100))) <= 1  # the sparse tail is legitimate


def test_sign_is_a_bound_for_never_negative_columns(tmp_path):
    df = make_frame(1000)
    df.loc[3, "count"] = -1
    df.loc[4, "x"] = 5.0  # x is a normal column: small values are fine
    res = _scan(tmp_path, df)
    assert res.suspects["row"].tolist() == [3]
    assert "count=-1<min(0)" in res.suspects["reason"][0]


def test_datetime_bounds_are_reported_as_dates(tmp_path):
    df = make_frame(1000)
    df["when"] = pd.date_range("2024-01-01", periods=1000, freq="h").strftime("%Y-%m-%d %H:%M:%S")
    df.loc[9, "when"] = "2999-01-01 00:00:00"
    res = _scan(tmp_path, df)
    assert res.suspects["row"].tolist() == [9]
    assert "when=2999-01-01T00:00:00>max(2024-" in res.suspects["reason"][0]


def test_several_findings_in_one_row_rank_it_higher(tmp_path):
    df = make_frame(1000).astype(str)
    df.loc[1, "x"] = "NaN"
    df.loc[2, ["x", "count"]] = ["NaN", "inf"]
    res = _scan(tmp_path, df)
    assert res.suspects["row"].tolist() == [2, 1]
    assert res.suspects["reason"][0].count("bounds:") == 2


@pytest.mark.parametrize("value", ["1e999", "-1e999", "Infinity", "-inf"])
def test_infinity_spellings(tmp_path, value):
    df = make_frame(300).astype(str)
    df.loc[5, "x"] = value
    res = _scan(tmp_path, df)
    assert res.suspects["row"].tolist() == [5]
    assert "x=" in res.suspects["reason"][0] and "inf" in res.suspects["reason"][0]
